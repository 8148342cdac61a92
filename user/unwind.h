/*
 * The unwind tables in the kernel: which files have one, building them off the event loop (a
 * worker thread: python3's or cc1plus's table must not stall a capture), and putting their
 * rows in the BPF row pool the stack walk searches (bpf/unwind.bpf.h). Tables are asked for by
 * the walk (a frame in a file without one) and, so the first stacks are whole, for every file
 * a watched process maps when it is attached or has loaded its libraries. A file's table is
 * built once per capture: per inode, and per build-id across inodes (a container's copy).
 * Owns the worker and the pool's mapping; knows nothing about probes or profiles.
 */
#ifndef ALLOCPROF_UNWIND_H
#define ALLOCPROF_UNWIND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "allocprof.h"

struct allocprof_bpf;
struct unwind;

/* After the BPF object is loaded. NULL (with one line said) when the pool cannot be mapped. */
struct unwind *unwind__new(struct allocprof_bpf *skel);
/* Stops the worker (a table being built is finished first) and unmaps the pool. */
void unwind__free(struct unwind *u);
/* A walk met `file`, mapped at `ip` in process `pid`, without a table (AP_EV_WANT_TABLE). */
void unwind__want(struct unwind *u, pid_t pid, uint64_t ip, const struct ap_file_key *file);
/* Every executable file `pid` maps now gets a table, unless it has one or is being built. */
void unwind__prime(struct unwind *u, pid_t pid);

/* The same for the file at `path` (a command's program and libraries, before it runs). */
void unwind__prime_file(struct unwind *u, const char *path);
/*
 * Waits until every table asked for so far is built (or could not be), for at most `max_ms`.
 * True when they all are.
 */
bool unwind__settle(struct unwind *u, unsigned int max_ms);

struct unwind_summary {
	size_t files;	     /* tables in the kernel */
	size_t shared;	     /* of those, another inode's rows (same build-id) */
	size_t failed;	     /* files whose table could not be built */
	size_t pool_full;    /* tables that did not fit in --max-cfi-rows */
	size_t pending;	     /* asked for, not built when the capture ended */
	uint64_t rows, pool; /* rows in use, of the pool's */
	double build_ms;     /* time the worker spent building */
	char first_failure[256];
};
/* What was built, for the comments. Safe while the worker runs. */
void unwind__summary(struct unwind *u, struct unwind_summary *out);

#endif
