/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The user stack walk, a part of allocprof.bpf.c. Two walks fill a struct ap_stack:
 *
 * - fp_walk: the kernel's frame-pointer walk (bpf_get_stack), its frame 0 replaced by the
 *   return address read at the probe site, then cut at the first frame outside executable
 *   code (a frame-pointer chain through code built without one wanders into data).
 * - cfi_walk: unwinds frame by frame with the rows userspace built from each file's
 *   call-frame information (allocprof.h, "Unwind tables"), found by binary search in the
 *   shared row pool; where a file has no table (yet) or its code has no CFI, one
 *   frame-pointer step (--stacks auto) or the end (--stacks cfi). A return address the
 *   kernel replaced with its uretprobe trampoline is put back from the task's pending
 *   return instances.
 *
 * Every frame's mapping is found (in_code: the last frame's, the thread's and the process's
 * kept mappings, else bpf_find_vma): a frame outside executable code ends the stack, and the
 * mapping gives the file and the offset the rows are keyed by. Each way a walk ends is in the
 * stack (ap_stack.end) and counted (AP_STAT_END_*).
 */
#ifndef ALLOCPROF_UNWIND_BPF_H
#define ALLOCPROF_UNWIND_BPF_H

#include "common.bpf.h"

#define VM_EXEC 0x4

/* The pending returns looked at for one trampoline: return probes nest this deep. */
#define AP_MAX_PENDING_RETURNS 16

/* Mappings kept per thread (struct walk's `seen`); a power of two. */
#define AP_VMA_CACHE 8

/*
 * The walk's state. It lives in task storage with the stack it fills, not on the BPF stack:
 * the verifier tracks what is on its stack value by value, and a walk's flags and reasons
 * held there multiply the states it explores (seconds of load time); in a map value they are
 * just numbers.
 */
struct walk {
	__u64 ip, sp, bp; /* the frame being unwound: ip is its return address into it */
	__u64 tramp;	  /* the uretprobe trampoline's address, 1 if none */
	__u32 n;	  /* frames in the stack */
	__u32 end;	  /* enum ap_stack_end, once the walk ended */
	__u32 bp_lost;
	/* The mapping of the last frame looked up. */
	__u32 vm_known, have_tab;
	__u32 seen_next; /* the entry of `seen` the next new mapping replaces */
	struct ap_proc_key owner; /* whose mappings `seen` holds: an exec keeps the thread */
	__u64 owner_exec;	  /* and after which exec (task->self_exec_id: the same program
				     exec'd again is mapped elsewhere) */
	struct ap_vma_seen vm;
	/* Its file's rows, when it has a table. */
	struct ap_cfi_file tab;
	/* The mappings this thread's walks met last, across walks. */
	struct ap_vma_seen seen[AP_VMA_CACHE];
};

/* Per process: the mappings its walks found, or userspace saw (allocprof.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ap_proc_key);
	__type(value, struct ap_proc_vmas);
} proc_vmas SEC(".maps");

/* The value a process's cache starts from: one entry, never written. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ap_proc_vmas);
} proc_vmas_zero SEC(".maps");

struct walk_buf {
	struct ap_stack s;
	struct walk w;
};

/* Per thread: where a sampled call builds its stack, created on a thread's first sample. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct walk_buf);
} stack_buf SEC(".maps");

/* What a walk's steps share on the BPF stack: pointers only. */
struct walk_ctx {
	struct walk_buf *b;
	struct ap_stats *st;
	struct task_struct *task;
	struct ap_proc_key proc;
};

/* bpf_find_vma's callback: the mapping found goes into the walk's `vm`. */
static long walk_vma(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct walk_ctx *c = data;
	struct ap_vma_seen *o = &c->b->w.vm;
	struct file *f = vma->vm_file;

	o->start = vma->vm_start;
	o->end = vma->vm_end;
	o->off = (__u64)vma->vm_pgoff << 12;
	o->exec = !!(vma->vm_flags & VM_EXEC);
	o->file = !!f;
	if (f) {
		o->key.ino = f->f_inode->i_ino;
		o->key.dev = f->f_inode->i_sb->s_dev;
	}
	return 0;
}

/*
 * Is ip in executable code? Its mapping is the last frame's, one this thread's walks met
 * recently, one its process's walks (or userspace, at the attach) found, or looked up
 * (bpf_find_vma). The lookup needs the address space's lock, which fails while another thread
 * maps or protects memory (glibc's arenas grow that way), so the mappings found are kept: a
 * process's stacks go through the same few files. A mapping kept could have been replaced
 * since (a library unloaded, another loaded at its address): the walk then reads that frame
 * with the wrong rules, ends early, and says so. When the lock cannot be had and nothing is
 * kept, the walk ends.
 *
 * The process's mappings and the lookup are find_mapping(), a global function: verified once,
 * where inlined its loop was verified again on every path of every step that reached it (two
 * thirds of the walk's verification). The thread's own are looked at here, without a call.
 */
__noinline int find_mapping(__u64 ip, __u32 pid, __u32 image);

static __always_inline bool in_code(struct walk_ctx *c, __u64 ip)
{
	struct walk *w = &c->b->w;

	if (w->vm_known && ip >= w->vm.start && ip < w->vm.end)
		return w->vm.exec;
	w->vm_known = 0;
	w->have_tab = 0;
	for (int k = 0; k < AP_VMA_CACHE; k++) {
		if (ip >= w->seen[k].start && ip < w->seen[k].end) {
			w->vm = w->seen[k];
			w->vm_known = 1;
			goto found;
		}
	}
	if (!find_mapping(ip, c->proc.pid, c->proc.image))
		return false; /* w->end says why */
found:
	if (!w->vm.exec) {
		w->end = AP_END_NOT_CODE;
		return false;
	}
	return true;
}

/*
 * in_code()'s lookup of a mapping the thread has not met: into w->vm (and the thread's and the
 * process's kept ones), 1; or 0 with w->end saying why not.
 */
__noinline int find_mapping(__u64 ip, __u32 pid, __u32 image)
{
	struct walk_ctx c = { .task = bpf_get_current_task_btf(), .proc = { pid, image } };
	struct ap_proc_vmas *pv;
	struct walk *w;
	long err;

	c.b = bpf_task_storage_get(&stack_buf, c.task, 0, 0);
	if (!c.b)
		return 0;
	w = &c.b->w;
	/*
	 * The candidate is copied into w->vm (the thread's), not onto the BPF stack, which the
	 * whole call chain shares (512 bytes): this is 56 of them.
	 */
	pv = bpf_map_lookup_elem(&proc_vmas, &c.proc);
	if (pv) {
		for (int k = 0; k < AP_PROC_VMAS; k++) {
			w->vm = pv->e[k];
			if (w->vm.sum && ip >= w->vm.start && ip < w->vm.end &&
			    w->vm.sum == ap_vma_sum(&w->vm, &c.proc))
				goto keep;
		}
	}
	w->vm = (struct ap_vma_seen){};
	err = bpf_find_vma(c.task, ip, walk_vma, &c, 0);
	if (err) {
		w->end = err == -EBUSY ? AP_END_VMA_BUSY : AP_END_NOT_CODE;
		return 0;
	}
	w->vm.sum = ap_vma_sum(&w->vm, &c.proc);
	if (!pv) {
		__u32 zero = 0;
		struct ap_proc_vmas *z = bpf_map_lookup_elem(&proc_vmas_zero, &zero);

		if (z)
			bpf_map_update_elem(&proc_vmas, &c.proc, z, BPF_NOEXIST);
		pv = bpf_map_lookup_elem(&proc_vmas, &c.proc);
	}
	if (pv) {
		/* Two threads may take one slot: the checksum tells the loser's entry. */
		__u32 slot = pv->next++ % AP_PROC_VMAS;

		pv->e[slot] = w->vm;
	}
keep:
	w->vm_known = 1;
	w->seen[w->seen_next & (AP_VMA_CACHE - 1)] = w->vm;
	w->seen_next++;
	return 1;
}

__noinline __u64 untrampoline(__u64 slot);

/*
 * The allocator's return address, read at `slot`: a tail call into it from a function whose
 * return probe is pending finds the trampoline there. 0 when it cannot be mapped back.
 */
static __always_inline __u64 real_ra(struct walk_ctx *c, __u64 ra, __u64 slot, __u64 tramp)
{
	if (ra != tramp)
		return ra;
	ra = untrampoline(slot);
	if (ra)
		STAT_INC(c->st, AP_STAT_TRAMPOLINE);
	return ra;
}

/* ---- the frame-pointer walk ------------------------------------------------------------ */

static int fp_check_frame(__u32 i, void *data)
{
	struct walk_ctx *c = data;
	struct ap_stack *s = &c->b->s;
	__u64 k = (__u64)i + 1; /* frame 0, the return address at the probe site, is kept */
	__u64 ip;

	if (k >= AP_MAX_FRAMES || k >= s->nr)
		return 1;
	ip = s->ip[k];
	if (!in_code(c, ip)) {
		/* A frame the kernel's walk found is kept when only the check cannot be made. */
		if (c->b->w.end == AP_END_VMA_BUSY) {
			c->b->w.end = AP_END_FP;
			STAT_INC(c->st, AP_STAT_VMA_FAIL);
			return 0;
		}
		s->nr = (__u32)k;
		return 1;
	}
	return 0;
}

/*
 * The kernel's walk. Its frame 0 is the probe site itself and the frame-pointer chain starts
 * in the caller's frame, so the caller is missing: the return address read at the probe site
 * takes frame 0's place.
 */
static __always_inline void fp_walk(struct walk_ctx *c, struct pt_regs *ctx, __u64 ra,
				    __u64 slot)
{
	struct xol_area *area = c->task->mm->uprobes_state.xol_area;
	__u64 real = real_ra(c, ra, slot, area ? area->vaddr : 1);
	struct ap_stack *s = &c->b->s;
	struct walk *w = &c->b->w;
	long n = bpf_get_stack(ctx, s->ip, sizeof(s->ip), BPF_F_USER_STACK);
	__u32 nr;

	if (n <= 0) {
		STAT_INC(c->st, AP_STAT_STACK_FAIL);
		nr = 1;
	} else {
		nr = n / sizeof(__u64);
		if (nr >= AP_MAX_FRAMES) {
			nr = AP_MAX_FRAMES;
			STAT_INC(c->st, AP_STAT_STACK_TRUNC);
		}
	}
	s->ip[0] = real ? real : ra;
	s->nr = nr;
	w->end = AP_END_FP;
	w->vm_known = 0;
	bpf_loop(AP_MAX_FRAMES, fp_check_frame, c, 0);
	s->end = w->end;
}

/* ---- the CFI walk ---------------------------------------------------------------------- */

/* The row pool (allocprof.h): every file's rows, each file's a sorted run. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* set by userspace (--max-cfi-rows) */
	__type(key, __u32);
	__type(value, struct ap_cfi_row);
} cfi_rows SEC(".maps");

/* Which run of the pool is a file's. Written by userspace once the rows are in place. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ap_file_key);
	__type(value, struct ap_cfi_file);
} cfi_files SEC(".maps");

/*
 * Files whose table was asked for (by a walk, or by userspace when it saw the file mapped):
 * a walk asks once per file, through an AP_EV_WANT_TABLE event.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ap_file_key);
	__type(value, __u8);
} cfi_wanted SEC(".maps");

static __always_inline void want_table(struct walk_ctx *c, __u64 ip)
{
	struct walk *w = &c->b->w;
	__u8 one = 1;
	int err = bpf_map_update_elem(&cfi_wanted, &w->vm.key, &one, BPF_NOEXIST);
	struct ap_event_file *ev;

	if (err == -EEXIST)
		return; /* asked already */
	if (err) {
		STAT_INC(c->st, AP_STAT_CFI_WANTED_FULL); /* walked by frame pointer */
		return;
	}
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		STAT_INC(c->st, AP_STAT_EVENTS_LOST);
		bpf_map_delete_elem(&cfi_wanted, &w->vm.key); /* the next walk asks again */
		return;
	}
	ev->kind = AP_EV_WANT_TABLE;
	ev->proc.pid = bpf_get_current_pid_tgid() >> 32;
	ev->proc.image = image_of(c->task);
	ev->pad = 0;
	ev->ip = ip;
	ev->file = w->vm.key;
	bpf_ringbuf_submit(ev, 0);
}

/*
 * The rule of the row covering file offset `off` of the run [first, first + nr) of the pool;
 * AP_CFI_NONE if none. A global function: its search loop is verified once.
 */
__noinline __u32 find_rule(__u32 first, __u32 nr, __u64 off)
{
	__u32 lo = first, hi = first + nr;
	struct ap_cfi_row *row;

	if (!nr || off > 0xffffffffull)
		return AP_CFI_NONE;
	for (__u32 k = 0; k < AP_CFI_SEARCH_STEPS + 1; k++) {
		__u32 mid;

		if (lo + 1 >= hi)
			break;
		mid = lo + (hi - lo) / 2;
		row = bpf_map_lookup_elem(&cfi_rows, &mid);
		if (!row)
			return AP_CFI_NONE;
		if (row->off <= off)
			lo = mid;
		else
			hi = mid;
	}
	row = bpf_map_lookup_elem(&cfi_rows, &lo);
	if (!row || row->off > off)
		return AP_CFI_NONE;
	return row->rule;
}

/*
 * The real return address behind the trampoline, read at `slot` on the stack: the pending
 * return the kernel keeps for that slot. A global function, verified once.
 */
__noinline __u64 untrampoline(__u64 slot)
{
	struct uprobe_task *ut = bpf_get_current_task_btf()->utask;
	struct return_instance *ri;

	if (!ut)
		return 0;
	ri = ut->return_instances;
	for (int k = 0; k < AP_MAX_PENDING_RETURNS && ri; k++) {
		if (ri->stack == slot)
			return ri->orig_ret_vaddr;
		ri = ri->next;
	}
	return 0;
}

/* Ends the walk with `why`. */
static __always_inline int walk_end(struct walk *w, __u32 why)
{
	w->end = why;
	return 1;
}

/*
 * One step: from the frame whose return address is w->ip (its caller's code) to its caller's.
 * 1 when the walk ends.
 */
static int cfi_step(__u32 i, void *data)
{
	struct walk_ctx *c = data;
	struct walk *w = &c->b->w;
	__u64 cfa, ra, bp = w->bp, slot, n;
	__u32 rule = AP_CFI_NONE, kind;
	__s32 rbp_slots = 0;

	/* w->ip's mapping is known: the frame was checked before it was added. */
	if (w->vm.file && !w->have_tab) {
		struct ap_cfi_file *t = bpf_map_lookup_elem(&cfi_files, &w->vm.key);

		if (t) {
			w->tab = *t;
			w->have_tab = 1;
		} else {
			want_table(c, w->ip);
			if (stack_mode == AP_STACKS_CFI)
				return walk_end(w, AP_END_NO_TABLE);
		}
	}
	/* A return address is after its call: the call's row is at ip - 1. */
	if (w->have_tab)
		rule = find_rule(w->tab.first, w->tab.nr, w->ip - 1 - w->vm.start + w->vm.off);
	kind = AP_CFI_KIND(rule);
	if (kind == AP_CFI_RSP) {
		cfa = w->sp + AP_CFI_OFF(rule);
		rbp_slots = AP_CFI_RBP(rule);
	} else if (kind == AP_CFI_RBP) {
		if (w->bp_lost)
			return walk_end(w, AP_END_RBP_LOST);
		cfa = w->bp + AP_CFI_OFF(rule);
		rbp_slots = AP_CFI_RBP(rule);
	} else if (kind == AP_CFI_PLT) {
		cfa = w->sp + AP_CFI_OFF(rule) +
		      (((w->ip - 1) & 15) >= (__u64)AP_CFI_RBP(rule) ? 8 : 0);
	} else if (kind == AP_CFI_NONE) {
		/* No CFI here: JIT code, a file without a table. One frame-pointer step. */
		__u32 why = w->vm.file && !w->have_tab ? AP_END_NO_TABLE : AP_END_NO_CFI;

		if (stack_mode == AP_STACKS_CFI)
			return walk_end(w, AP_END_NO_CFI);
		if (w->bp_lost || !w->bp || (w->bp & 7))
			return walk_end(w, why);
		STAT_INC(c->st, AP_STAT_FP_STEPS);
		cfa = w->bp + 16;
		if (bpf_probe_read_user(&bp, sizeof(bp), (void *)w->bp))
			return walk_end(w, AP_END_READ_FAULT);
	} else if (kind == AP_CFI_END) {
		return walk_end(w, AP_END_ROOT);
	} else if (kind == AP_CFI_SIGNAL) {
		return walk_end(w, AP_END_SIGNAL);
	} else {
		return walk_end(w, AP_END_UNSUPPORTED);
	}
	if (rbp_slots == AP_CFI_RBP_LOST) {
		w->bp_lost = 1;
	} else if (rbp_slots) {
		if (bpf_probe_read_user(&bp, sizeof(bp), (void *)(cfa + (__s64)rbp_slots * 8)))
			return walk_end(w, AP_END_READ_FAULT);
		w->bp_lost = 0;
	}
	/* Callers' frames are above: a CFA that does not rise is a walk gone wrong. */
	if (cfa <= w->sp)
		return walk_end(w, AP_END_UNSUPPORTED);
	slot = cfa - 8;
	if (bpf_probe_read_user(&ra, sizeof(ra), (void *)slot))
		return walk_end(w, AP_END_READ_FAULT);
	/* Only the CFI's "return address undefined" marks a thread's first frame: a zero read
	 * where a return address should be is a walk gone wrong (or code without the marker). */
	if (!ra)
		return walk_end(w, AP_END_NOT_CODE);
	if (ra == w->tramp) {
		ra = untrampoline(slot);
		if (!ra)
			return walk_end(w, AP_END_NOT_CODE);
		STAT_INC(c->st, AP_STAT_TRAMPOLINE);
	}
	if (!in_code(c, ra))
		return 1; /* w->end says why */
	n = w->n;
	if (n >= AP_MAX_FRAMES)
		return walk_end(w, AP_END_DEPTH);
	c->b->s.ip[n] = ra;
	w->n = (__u32)n + 1;
	w->ip = ra;
	w->sp = cfa;
	w->bp = bp;
	return 0;
}

/*
 * The CFI walk, from the allocator's caller: `ra` was read at `slot` (the probe site's
 * return-address slot), so the caller's %rsp is slot + 8 and its %rbp still in the register
 * (a probe site is never after an instruction that writes %rbp: probesite.c).
 */
static __always_inline void cfi_walk(struct walk_ctx *c, struct pt_regs *ctx, __u64 ra,
				     __u64 slot)
{
	struct xol_area *area = c->task->mm->uprobes_state.xol_area;
	struct walk *w = &c->b->w;

	w->tramp = area ? area->vaddr : 1; /* 1: never a return address */
	ra = real_ra(c, ra, slot, w->tramp);
	c->b->s.ip[0] = ra;
	w->n = 1;
	w->ip = ra;
	w->sp = slot + 8;
	w->bp = PT_REGS_FP(ctx);
	w->bp_lost = 0;
	w->vm_known = 0;
	w->have_tab = 0;
	w->end = AP_END_ROOT;
	if (ra && in_code(c, ra))
		bpf_loop(AP_MAX_FRAMES, cfi_step, c, 0);
	else if (!ra)
		w->end = AP_END_NOT_CODE;
	if (w->end == AP_END_ROOT && w->n >= AP_MAX_FRAMES)
		w->end = AP_END_DEPTH;
	c->b->s.nr = w->n > AP_MAX_FRAMES ? AP_MAX_FRAMES : w->n;
	c->b->s.end = w->end;
}

/* The counter of each way a walk ends early (AP_END_FP and AP_END_ROOT are not early). */
static __always_inline void count_end(struct ap_stats *st, __u32 end)
{
	switch (end) {
	case AP_END_NOT_CODE:
		STAT_INC(st, AP_STAT_END_NOT_CODE);
		break;
	case AP_END_NO_CFI:
		STAT_INC(st, AP_STAT_END_NO_CFI);
		break;
	case AP_END_NO_TABLE:
		STAT_INC(st, AP_STAT_END_NO_TABLE);
		break;
	case AP_END_UNSUPPORTED:
		STAT_INC(st, AP_STAT_END_UNSUPPORTED);
		break;
	case AP_END_SIGNAL:
		STAT_INC(st, AP_STAT_END_SIGNAL);
		break;
	case AP_END_READ_FAULT:
		STAT_INC(st, AP_STAT_END_READ_FAULT);
		break;
	case AP_END_DEPTH:
		STAT_INC(st, AP_STAT_STACK_TRUNC);
		break;
	case AP_END_VMA_BUSY:
		STAT_INC(st, AP_STAT_END_VMA_BUSY);
		break;
	case AP_END_RBP_LOST:
		STAT_INC(st, AP_STAT_END_RBP_LOST);
		break;
	}
}

/*
 * Walks the current thread's user stack into its stack_buf, from the allocator's return
 * address `ra` read at `slot`. A global function, so the verifier checks it once, apart from
 * every path of the probes that call it. 0, or -1 when the thread has no buffer.
 */
__noinline int walk_user_stack(struct pt_regs *ctx, __u64 ra, __u64 slot)
{
	struct walk_ctx c = { .task = bpf_get_current_task_btf() };
	struct walk *w;
	__u32 zero = 0;

	c.proc.pid = bpf_get_current_pid_tgid() >> 32;
	c.proc.image = image_of(c.task);
	c.st = bpf_map_lookup_elem(&stats, &zero);
	c.b = bpf_task_storage_get(&stack_buf, c.task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c.st || !c.b)
		return -1;
	w = &c.b->w;
	/* A thread that exec'd runs another program: what it kept is not its mappings now. */
	if (w->owner.pid != c.proc.pid || w->owner.image != c.proc.image ||
	    w->owner_exec != c.task->self_exec_id) {
		for (int k = 0; k < AP_VMA_CACHE; k++)
			w->seen[k] = (struct ap_vma_seen){};
		w->seen_next = 0;
		w->owner = c.proc;
		w->owner_exec = c.task->self_exec_id;
	}
	if (stack_mode == AP_STACKS_FP)
		fp_walk(&c, ctx, ra, slot);
	else
		cfi_walk(&c, ctx, ra, slot);
	count_end(c.st, c.b->s.end);
	return 0;
}

#endif
