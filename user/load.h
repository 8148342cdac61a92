/*
 * Loading the capture's BPF object: its configuration from the options (sampling, in-use
 * tracking through sessions or return probes, stack walks, map sizes, the process filters of
 * scope.c), the load itself and what -v says of it (each program's verified instructions and
 * load time), the event ring buffer, and the attacher with the programs it places. record.c
 * calls it once per capture, before anything is watched.
 */
#ifndef ALLOCPROF_LOAD_H
#define ALLOCPROF_LOAD_H

#include <bpf/libbpf.h>

struct capture;

/*
 * Fills c->skel, c->att, c->unwind, c->sessions and the placement; *events gets the ring
 * buffer, `on_event` called for each event with `c`. 0, or -errno with the reason said in one
 * line (what was made is freed with the capture).
 */
int capture_load(struct capture *c, ring_buffer_sample_fn on_event, struct ring_buffer **events);

#endif
