/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a sampled allocation records, a part of allocprof.bpf.c: the unbiased weights, the stack
 * walk and its hash, the per-(process, stack) counters, and for a stack seen for the first time
 * the process's name and the mapping of every frame, with a notice to userspace.
 */
#ifndef ALLOCPROF_RECORD_BPF_H
#define ALLOCPROF_RECORD_BPF_H

#include "common.bpf.h"
#include "unwind.bpf.h"

static __always_inline void touch_proc(struct ap_proc_key *pk, struct ap_stats *st)
{
	struct ap_proc *p = bpf_map_lookup_elem(&procs, pk);
	struct task_struct *task;
	struct ap_proc np = { .gen = 1 };

	if (p) {
		__sync_fetch_and_add(&p->gen, 1);
		return;
	}
	/* The process's name is its group leader's; other threads may have renamed themselves. */
	task = bpf_get_current_task_btf();
	bpf_probe_read_kernel_str(np.comm, sizeof(np.comm), task->group_leader->comm);
	if (map_add(&procs, pk, &np))
		STAT_INC(st, AP_STAT_PROCS_FULL);
}

/* What the steps of record_vmas() share. */
struct vmas_ctx {
	struct ap_stack *s;
	struct ap_stats *st;
	struct ap_proc_key proc;
	__u64 lo, hi; /* the last mapping found: consecutive frames share a few */
};

static long record_vma(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vmas_ctx *x = data;
	struct ap_vma_key k = { .proc = x->proc, .start = vma->vm_start };
	struct file *f = vma->vm_file;
	struct ap_vma v = {};

	x->lo = vma->vm_start;
	x->hi = vma->vm_end;
	if (!f)
		return 0;
	if (!(vma->vm_flags & VM_EXEC))
		return 0; /* never a frame: the walks end before data */
	v.end = vma->vm_end;
	v.offset = (__u64)vma->vm_pgoff << 12;
	v.ino = f->f_inode->i_ino;
	v.dev = f->f_inode->i_sb->s_dev;
	bpf_probe_read_kernel_str(v.name, sizeof(v.name), f->f_path.dentry->d_name.name);
	if (map_add(&vmas, &k, &v))
		STAT_INC(x->st, AP_STAT_VMAS_FULL);
	return 0;
}

static int record_frame_vma(__u32 i, void *data)
{
	struct vmas_ctx *x = data;
	__u64 k = i, ip; /* 64-bit: the bound checked is the index used */

	if (k >= AP_MAX_FRAMES || k >= x->s->nr)
		return 1;
	ip = x->s->ip[k];
	if (ip >= x->lo && ip < x->hi)
		return 0;
	x->lo = x->hi = 0;
	/* -ENOENT: no mapping there (the walk went astray); anything else is a failure. */
	if (bpf_find_vma(bpf_get_current_task_btf(), ip, record_vma, x, 0) == -EBUSY)
		STAT_INC(x->st, AP_STAT_VMA_FAIL);
	return 0;
}

/*
 * Records the mapping of every frame of a new stack. A bpf_loop, not a bounded loop: the
 * verifier went through a loop's body (and bpf_find_vma's callback) once per frame on each
 * of its paths, a third of the allocation program's verification.
 */
static __always_inline void record_vmas(struct ap_stack *s, struct ap_proc_key *proc,
					struct ap_stats *st)
{
	struct vmas_ctx x = { .s = s, .st = st, .proc = *proc };

	bpf_loop(AP_MAX_FRAMES, record_frame_vma, &x, 0);
}

/* The unbiased weights of one sampled allocation of `size` bytes (Q16 objects, bytes). */
static __always_inline void weights(__u64 size, __u64 *w_objects, __u64 *w_bytes)
{
	__u64 r = sample_bytes, xs, i, frac, f, fr;

	if (exact || size >= (__u64)AP_WEIGHT_XMAX * r) {
		*w_objects = 1ull << AP_Q;
		*w_bytes = size;
		return;
	}
	/* x = size / r in steps of 1/2^AP_WEIGHT_STEPS_LOG2, linear interpolation between. */
	xs = size << AP_WEIGHT_STEPS_LOG2;
	i = xs / r;
	frac = ((xs - i * r) << AP_Q) / r;
	if (i >= AP_WEIGHT_ENTRIES - 1)
		i = AP_WEIGHT_ENTRIES - 2;
	f = weight_q16[i];
	f += (((__u64)weight_q16[i + 1] - f) * frac) >> AP_Q;
	/*
	 * An allocation of size s sampled with probability p = 1 - exp(-s/r) stands for 1/p
	 * allocations and s/p bytes; with x = s/r: s/p = f(x) * r and 1/p = f(x) * r / s.
	 */
	fr = f * r;
	*w_bytes = fr >> AP_Q;
	*w_objects = size ? fr / size : 0;
}

/* A new stack's counters start from this (not from a copy on the BPF stack, which is short). */
static const struct ap_count zero_count;

/* One sampled allocation: its size and unbiased weights (weights()). */
struct alloc_sample {
	__u64 size;
	__u64 w_objects; /* Q16 */
	__u64 w_bytes;
};

/*
 * Adds one allocation `a` to the counters of the stack walk_user_stack() just left in the
 * thread's stack_buf. The stack's hash, or 0 when the allocation was lost (and counted as
 * such). A global function: the verifier checks it once, apart from the paths of the
 * allocation entry that reach it.
 */
__noinline __u64 record(const struct alloc_sample *a)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ap_count_key key = {
		.proc.pid = bpf_get_current_pid_tgid() >> 32,
		.proc.image = image_of(task),
	};
	struct ap_count *c;
	struct walk_buf *b;
	struct ap_stats *st;
	struct ap_stack *s;
	__u32 nr, zero = 0;
	__u64 h;

	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st || !a)
		return 0;
	b = bpf_task_storage_get(&stack_buf, task, 0, 0);
	if (!b) {
		STAT_INC(st, AP_STAT_NO_THREAD);
		return 0;
	}
	s = &b->s;
	nr = s->nr;
	if (nr > AP_MAX_FRAMES)
		nr = AP_MAX_FRAMES;

	h = (nr | (__u64)s->end << 32) * 0x9e3779b97f4a7c15ull;
	for (__u32 i = 0; i < AP_MAX_FRAMES; i++) {
		if (i >= nr)
			break;
		h = (h ^ s->ip[i]) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	h |= 1; /* never 0, which means "not recorded" */
	key.stack = h;

	c = bpf_map_lookup_elem(&counts, &key);
	if (!c) {
		if (map_add(&stacks, &h, s)) {
			STAT_INC(st, AP_STAT_STACKS_FULL);
			return 0;
		}
		if (map_add(&counts, &key, &zero_count)) {
			STAT_INC(st, AP_STAT_COUNTS_FULL);
			return 0;
		}
		c = bpf_map_lookup_elem(&counts, &key);
		if (!c) {
			STAT_INC(st, AP_STAT_COUNTS_FULL);
			return 0;
		}
		touch_proc(&key.proc, st);
		record_vmas(s, &key.proc, st);
		send_event(AP_EV_NEW_STACKS, key.proc.pid, key.proc.image, 0);
	}
	__sync_fetch_and_add(&c->count, 1);
	__sync_fetch_and_add(&c->bytes, a->size);
	if (!exact) {
		__sync_fetch_and_add(&c->w_objects, a->w_objects);
		__sync_fetch_and_add(&c->w_bytes, a->w_bytes);
	}
	STAT_INC(st, AP_STAT_SAMPLED);
	return h;
}

#endif
