/*
 * Turning the kernel's counters into a profile: drains the counts, stacks, mappings (vmas),
 * procs and stats maps in batches after the probes are detached, resolves each frame to a mapping
 * and a symbol, and adds one sample per (process, stack). Knows the BPF maps' layout, not how the
 * capture was run.
 */
#ifndef ALLOCPROF_COLLECT_H
#define ALLOCPROF_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allocprof.h"

#include "profile.h"

struct bpf_map;
struct addrspaces;
struct symbolizer;

/* The sample types collect_samples() fills, in this order: Go's heap profile types. */
enum collect_value {
	VALUE_ALLOC_OBJECTS,
	VALUE_ALLOC_SPACE,
	VALUE_INUSE_OBJECTS, /* these two only with a live map */
	VALUE_INUSE_SPACE,
	VALUE_NR,
};
/* The profile's sample types for them: all four, or without a live map the first two. */
const struct value_type *collect_sample_types(bool inuse, size_t *n);

struct collect_maps {
	int counts_fd, stacks_fd, procs_fd, stats_fd, vmas_fd;
	int live_fd; /* -1: no in-use tracking, two values per sample */
};

struct collect_stats {
	struct ap_stats bpf;		   /* summed over CPUs */
	uint64_t samples;		   /* (process, stack) pairs written */
	uint64_t frames;		   /* frames written */
	uint64_t frames_unmapped;	   /* in no mapping we saw: address only */
	uint64_t frames_dropped;	   /* after a frame in no executable mapping: not frames */
	uint64_t frames_unsymbolized;	   /* in a mapping but no symbol found */
	uint64_t stacks_missing;	   /* counter without its stack: sample written frameless */
	uint64_t procs;			   /* distinct processes with samples */
	double objects, bytes;		   /* totals written (estimates when sampled) */
	uint64_t live_blocks;		   /* blocks still tracked as in use at the end */
	uint64_t live_orphans;		   /* of those, without a counter: not in the profile */
	double inuse_objects, inuse_bytes; /* totals written */
	/* alloc_space written, by how its stack's walk ended (enum ap_stack_end) */
	double end_bytes[AP_END_NR];
	double shallow_bytes; /* in stacks of 1-2 frames that did not reach a thread's root */
};

/*
 * Every entry of a hash map, read with batched lookups: `n` keys and values in malloc'd
 * arrays. 0 or -errno.
 */
int map_read_all(int fd, size_t ksize, size_t vsize, void **keys, void **vals, size_t *n);

/* Sums the per-CPU statistics. 0 or -errno. */
int collect_read_stats(int stats_fd, struct ap_stats *out);

/*
 * Adds every counter as a sample to `p`: values alloc_objects, alloc_space, and with a live map
 * inuse_objects, inuse_space (unbiased estimates unless `exact`). 0 or -errno.
 */
int collect_samples(const struct collect_maps *m, bool exact, struct addrspaces *as,
		    struct symbolizer *sym, struct profile *p, struct collect_stats *st);

#endif
