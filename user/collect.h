/*
 * Turning the kernel's counters into a profile: drains the counts, stacks, mappings (vmas),
 * procs and stats maps in batches (at the end with the counters frozen; with --interval also
 * between files, while the probes run, keeping what it read to subtract from the next read),
 * resolves each frame to a mapping and a symbol, and adds one sample per (process, stack); with
 * --interval it also releases what exited processes held. Knows the BPF maps' layout, not how
 * the capture was run.
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
	int ops_fd;  /* -1: no --ops */
};

/* --ops: one process's calls of one operation. */
struct collect_op {
	struct ap_proc_key proc;
	uint32_t op;
	uint64_t calls;
};

/* The processes whose calls of operations collect_stats keeps one by one (for the comments). */
#define COLLECT_OP_PROCS 32

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
	/* --ops: calls of each operation, all processes; the first processes' one by one */
	uint64_t op_calls[AP_MAX_OPS];
	struct collect_op op_procs[COLLECT_OP_PROCS];
	size_t nop_procs;     /* (process, operation) pairs with calls, all of them */
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

/*
 * Periodic capture (--interval): what one file's collection leaves for the next. The kernel's
 * counters and statistics only grow while the probes run; each file gets what they grew by
 * since the last file written (the values read then are kept here, per counter), so the files
 * together are exactly one capture, nothing counted twice or lost at a boundary. inuse_* is
 * not a difference: it is what is live when the file's interval ends.
 *
 * A process that exited (its pid gone, or running another program) keeps everything until the
 * file of the interval it was seen gone in is written; then its counters, the stacks no other
 * counter uses, its name, its live blocks and its recorded mappings are deleted from the maps,
 * and its mapping snapshots forgotten: memory stays bounded however many processes come and go.
 */
struct collect_base;

struct collect_base *collect_base__new(void);
void collect_base__free(struct collect_base *b);

/*
 * collect_samples() for the interval since the last collect_base__advance() (the capture's
 * start before the first): every value the difference, st->bpf too. 0 or -errno.
 */
int collect_interval(const struct collect_maps *m, bool exact, struct addrspaces *as,
		     struct symbolizer *sym, struct profile *p, struct collect_stats *st,
		     struct collect_base *b);

/* What collect_base__advance() released, and what is held after it (for -v, the soak). */
struct collect_release {
	size_t procs, counters, stacks, live, vmas; /* deleted from the kernel's maps */
	size_t spaces, files;			    /* mapping snapshots forgotten, files closed */
	/* kept for the next interval, in the kernel's maps and here */
	size_t held_counters, held_stacks, held_live, held_vmas, held_procs;
	size_t held_spaces, held_files;
};

/*
 * The interval's file was written (or saved elsewhere): the next one starts from what
 * collect_interval() read, and the processes seen gone are released. Not called when the file
 * could not be written at all: the next file then covers both intervals.
 */
void collect_base__advance(struct collect_base *b, const struct collect_maps *m,
			   struct addrspaces *as, struct collect_release *rel);

#endif
