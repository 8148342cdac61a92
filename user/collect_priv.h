/*
 * What collect.c and collect_base.c share: a counter as read, and the baseline periodic capture
 * keeps from one file to the next. Only these two include it.
 */
#ifndef ALLOCPROF_COLLECT_PRIV_H
#define ALLOCPROF_COLLECT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allocprof.h"
#include "collect.h"

struct hashmap;
struct addrspaces;

struct counter {
	struct ap_count_key key;
	struct ap_count val;
	uint64_t inuse_count, inuse_bytes; /* exact */
	uint64_t inuse_w_objects, inuse_w_bytes;
};

struct collect_base {
	/* What the last file written was computed from: each counter's values, the statistics. */
	struct hashmap *prev_idx; /* ap_count_key -> index into prev, prev_keys */
	struct ap_count_key *prev_keys;
	struct ap_count *prev;
	size_t nprev;
	struct ap_stats prev_stats;
	/*
	 * Stacks deleted from the kernel at the last advance, kept one interval more: a process
	 * may have met one just before it was deleted and made its counter just after (the
	 * program adds the stack, then the counter), and would otherwise have none.
	 */
	struct hashmap *grace_idx; /* stack hash -> index into grace */
	struct ap_stack *grace;
	size_t ngrace;
	/* Read by the last collect_interval(), for the advance. */
	bool pending;
	struct counter *cur; /* every counter read, its live blocks summed */
	size_t ncur;
	struct ap_stats cur_stats;
	struct hashmap *gone; /* ap_proc_key -> 1: seen exited before the counters were read */
	struct ap_proc_key *gone_keys;
	size_t ngone, gone_cap;
	__u64 *stack_keys; /* every stack read */
	struct ap_stack *stacks;
	size_t nstacks;
	struct ap_live_key *live_keys; /* every live block read */
	size_t nlive;
	struct ap_vma_key *vma_keys; /* every recorded mapping read */
	size_t nvmas;
	size_t nprocs; /* processes the kernel named */
	/* --ops: the calls each (process, operation) had at the last file; those read since */
	struct hashmap *prev_ops; /* ap_op_key -> calls */
	struct ap_op_key *prev_op_keys; /* its keys, whose processes are checked for exits */
	size_t nprev_ops;
	struct ap_op_key *op_keys;
	__u64 *op_calls;
	size_t nops;
};

/* Forgets what the last collect_interval() read (after the advance, or before a new read). */
void collect_base__drop_pending(struct collect_base *b);
/* Which processes the maps name have exited (b->gone), before the counters are read. */
int collect_base__find_gone(struct collect_base *b, int procs_fd, const struct addrspaces *as);

#endif
