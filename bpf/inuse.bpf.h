/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * In-use tracking, a part of allocprof.bpf.c: the live-block set and its count filter, the
 * pending returns of a thread (struct ap_pending), and the return of an allocation. The
 * programs that use them (the allocation entry, its return, free) are in allocprof.bpf.c.
 */
#ifndef ALLOCPROF_INUSE_BPF_H
#define ALLOCPROF_INUSE_BPF_H

#include "common.bpf.h"

/*
 * Sampled mode: how many live blocks hash to each slot (by process and address), so that a
 * free of an untracked block, nearly every free, is told apart without a lookup in `live`,
 * whose bucket array is megabytes: a cache miss, ~110 ns here, where this is 128 KiB.
 */
#define AP_LIVE_FILTER_BITS 14
__u64 live_filter[1 << AP_LIVE_FILTER_BITS];

static __always_inline __u32 filter_slot(__u64 addr)
{
	__u64 tgid = bpf_get_current_pid_tgid() >> 32;

	return (__u32)(((addr ^ (tgid << 48)) * 0x9e3779b97f4a7c15ull) >>
		       (64 - AP_LIVE_FILTER_BITS));
}

/* Could `addr` be a tracked block of this process? Always "maybe" in exact mode. */
static __always_inline bool maybe_live(__u32 slot)
{
	return exact || live_filter[slot];
}

static __always_inline struct ap_live_key live_key(__u64 addr)
{
	struct ap_live_key k = {
		.proc.pid = bpf_get_current_pid_tgid() >> 32,
		.proc.image = image_of(bpf_get_current_task_btf()),
		.addr = addr,
	};
	return k;
}

/*
 * Takes a block out of the live set, its entry copied to *out when `out` is given; false when
 * it was not in it.
 */
static __always_inline bool live_take(__u64 addr, struct ap_live *out)
{
	__u32 slot = filter_slot(addr);
	struct ap_live_key k;
	struct ap_live *v;

	if (!maybe_live(slot))
		return false;
	k = live_key(addr);
	if (out) {
		v = bpf_map_lookup_elem(&live, &k);
		if (!v)
			return false;
		*out = *v;
	}
	if (bpf_map_delete_elem(&live, &k)) {
		if (out)
			out->stack = 0; /* another thread took it first */
		return false;
	}
	if (!exact)
		__sync_fetch_and_add(&live_filter[slot], -1);
	return true;
}

/* Puts a block into the live set; false when the map is full. */
static __always_inline bool live_add(__u64 addr, struct ap_live *v)
{
	__u32 slot = filter_slot(addr);
	struct ap_live_key k = live_key(addr);
	int err; /* not a long: see map_add() */

	/* Counted first, so a concurrent free of it never misses it in the filter. */
	if (!exact)
		__sync_fetch_and_add(&live_filter[slot], 1);
	err = bpf_map_update_elem(&live, &k, v, BPF_NOEXIST);
	if (!err)
		return true;
	/* There already: a block whose free we did not see. Replaced, counted once. */
	if (err == -EEXIST)
		err = bpf_map_update_elem(&live, &k, v, BPF_ANY);
	if (!exact)
		__sync_fetch_and_add(&live_filter[slot], -1);
	return !err;
}

/* Pending slots (see struct ap_pending) whose call's frame is gone, returned unseen. */
static __always_inline void clear_stale(struct ap_thread *t, __u64 sp, struct ap_stats *st)
{
	for (int i = 0; i < 2; i++) {
		struct ap_pending *pd = &t->pend[i];

		if (!pd->state || sp < pd->ra_slot)
			continue;
		if (pd->state == AP_PEND_WAITING)
			STAT_INC(st, AP_STAT_RET_MISSED);
		pd->state = AP_PEND_FREE;
	}
}

/* The slot in `state` whose ra_slot is `at` (`below`: above `at`), or NULL. */
static __always_inline struct ap_pending *find_slot(struct ap_thread *t, __u32 state, __u64 at,
						    bool below)
{
	for (int i = 0; i < 2; i++) {
		struct ap_pending *pd = &t->pend[i];

		if (pd->state == state && (below ? at < pd->ra_slot : at == pd->ra_slot))
			return pd;
	}
	return NULL;
}

/* A slot for a new pending call: a free one, else the inner one (its call is lost). */
static __always_inline struct ap_pending *free_slot(struct ap_thread *t, struct ap_stats *st)
{
	struct ap_pending *a = &t->pend[0], *b = &t->pend[1];

	if (!a->state)
		return a;
	if (!b->state)
		return b;
	a = a->ra_slot < b->ra_slot ? a : b;
	if (a->state == AP_PEND_WAITING)
		STAT_INC(st, AP_STAT_RET_MISSED);
	return a;
}

/*
 * The allocator call inside a sampled throwing operator new (libstdc++'s calls malloc): its
 * return gives the block the new's allocation is; `arg` is what that return needs (struct
 * call_args). 0 when it takes that role (its return is wanted), 1 otherwise.
 */
static __always_inline int inner_of_new(struct ap_thread *t, __u64 sp, __u32 fn, __u32 kind,
					__u64 arg, struct ap_stats *st)
{
	struct ap_pending *a;

	if (!track_live || (throwing_fns >> fn) & 1)
		return 1;
	a = find_slot(t, AP_PEND_ARMED, sp, true);
	if (!a)
		return 1;
	STAT_INC(st, AP_STAT_NEW_INNER);
	a->state = AP_PEND_WAITING;
	a->kind = kind;
	a->ra_slot = sp;
	a->arg = arg;
	a->old.stack = 0;
	return 0;
}

/* A recorded allocation failed: it is taken back out of its counters. */
static __always_inline void unrecord(struct ap_stats *st, struct ap_proc_key *proc,
				     struct ap_pending *pd)
{
	struct ap_count_key key = { .proc = *proc, .stack = pd->stack };
	struct ap_count *c = bpf_map_lookup_elem(&counts, &key);

	STAT_INC(st, AP_STAT_FAILED);
	if (!c)
		return;
	__sync_fetch_and_sub(&c->count, 1);
	__sync_fetch_and_sub(&c->bytes, pd->size);
	if (!exact) {
		__sync_fetch_and_sub(&c->w_objects, pd->w_objects);
		__sync_fetch_and_sub(&c->w_bytes, pd->w_bytes);
	}
}

/*
 * The return of an allocation function whose entry left a pending state. A global function:
 * its frame is not the allocation entry's, which the stack walk's calls are made from.
 */
__noinline int alloc_return(struct pt_regs *ctx)
{
	__u64 ret = PT_REGS_RC(ctx), addr = ret;
	/* The return popped the return address: %rsp is 8 above where it was. */
	__u64 ra_slot = PT_REGS_SP(ctx) - 8;
	struct ap_pending *pd;
	struct ap_live_key k;
	struct ap_thread *t;
	struct ap_stats *st;
	__u32 zero = 0;
	struct ap_live v;

	t = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0, 0);
	st = bpf_map_lookup_elem(&stats, &zero);
	if (!t || !st)
		return 0;
	/* A classic return probe sees every call return: most are not waited for. */
	pd = find_slot(t, AP_PEND_WAITING, ra_slot, false);
	if (!pd)
		return 0;
	pd->state = AP_PEND_FREE;
	switch (pd->kind) {
	case AP_SIZE_POSIX_MEMALIGN: /* 0 and the block in *memptr */
		if (ret) {
			addr = 0;
			break;
		}
		if (bpf_probe_read_user(&addr, sizeof(addr), (void *)pd->arg)) {
			if (pd->stack)
				STAT_INC(st, AP_STAT_MEMPTR_FAULT);
			return 0;
		}
		break;
	case AP_SIZE_REALLOC:
	case AP_SIZE_REALLOCARRAY:
		/* A failed realloc leaves the old block as it was: back into the live set. */
		if (!ret && pd->old.stack) {
			if (live_add(pd->arg, &pd->old))
				__sync_fetch_and_add(&st->v[AP_STAT_FREE_MATCHED], -1);
			else
				STAT_INC(st, AP_STAT_LIVE_FULL);
		}
		break;
	}
	if (!pd->stack)
		return 0;
	k = live_key(addr);
	if (!addr) {
		unrecord(st, &k.proc, pd);
		return 0;
	}
	v.stack = pd->stack;
	v.size = pd->size;
	v.w_objects = pd->w_objects;
	v.w_bytes = pd->w_bytes;
	if (!live_add(addr, &v))
		STAT_INC(st, AP_STAT_LIVE_FULL);
	return 0;
}

#endif
