// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Allocation probes. One program runs at the entry of every allocator function; its attach
 * cookie says how to read the size and where the return address is. Per call it does:
 * per-thread state lookup, the nested-call checks, the sampling countdown; only a sampled
 * call walks the stack and adds into the per-(process, stack) counters. Every allocation that
 * is skipped or lost on the way bumps a counter in `stats`.
 *
 * In-use tracking (unless --alloc-only): a sampled allocation's address, known at its return,
 * goes into `live` with its stack and weights; free and delete take it out. The return is seen
 * through a uprobe session where the kernel has them (the entry says whether this call needs
 * its return: only sampled calls pay for one), else through a classic return probe.
 *
 * Two more programs tell userspace when a watched process has a new program or library to
 * resolve: the dynamic linker's debugger hook, and exec. Nothing here ever stops a process.
 *
 * Uprobe programs run with migration disabled but may be preempted, so nothing is kept in
 * per-CPU scratch space across a helper call, and per-CPU counters are added atomically.
 *
 * One object in four files: common.bpf.h (configuration, maps, the helpers every part uses),
 * record.bpf.h (what a sampled allocation records) and inuse.bpf.h (the live-block set and
 * pending returns) are parts of this file; each includes what it uses.
 */
#include "common.bpf.h"
#include "record.bpf.h"
#include "inuse.bpf.h"

/* Uprobe session kfuncs (Linux 6.13+); only the session program calls them. */
extern bool bpf_session_is_return(void) __ksym __weak;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline __s64 next_distance(void)
{
	__u32 i = bpf_get_prandom_u32() & (AP_EXP_TABLE_SIZE - 1);

	return (__s64)(((__u64)exp_q16[i] * sample_bytes) >> AP_Q) + 1;
}

/* a * b unless it overflows, written so clang does not turn it into a 128-bit multiply. */
static __always_inline bool mul_ok(__u64 a, __u64 b, __u64 *r)
{
	__u64 p = a * b;

	if (!((a | b) >> 32) || !a) {
		*r = p;
		return true;
	}
	asm volatile("" : "+r"(p));
	*r = p;
	return p / a == b;
}

/*
 * A call's arguments as its size kind says to read them: the BPF side's one reading of enum
 * ap_size_kind (userspace's, which registers these are, is allocator.c's args_read()).
 */
struct call_args {
	__u64 size; /* bytes asked for, when `alloc` */
	__u64 old;  /* realloc, reallocarray: the block it replaces (0: none) */
	__u64 arg;  /* what the return needs (ap_pending.arg): memptr, or the old block */
	bool alloc; /* false: the call allocates nothing (realloc to 0, an overflowing size) */
	bool frees; /* realloc to size 0: it frees `old` */
};

static __always_inline void read_args(struct pt_regs *ctx, __u32 kind, struct call_args *ca)
{
	__u64 a = PT_REGS_PARM1(ctx), b = PT_REGS_PARM2(ctx), c = PT_REGS_PARM3(ctx);

	ca->size = 0;
	ca->old = 0;
	ca->arg = 0;
	ca->alloc = true;
	ca->frees = false;
	switch (kind) {
	case AP_SIZE_ARG1:
		ca->size = a;
		return;
	case AP_SIZE_ARG2:
		ca->size = b;
		return;
	case AP_SIZE_POSIX_MEMALIGN:
		ca->size = c;
		ca->arg = a;
		return;
	case AP_SIZE_ARG1_X_ARG2:
		ca->alloc = mul_ok(a, b, &ca->size); /* an overflow fails with ENOMEM */
		return;
	case AP_SIZE_REALLOC:
		ca->size = b;
		break;
	case AP_SIZE_REALLOCARRAY:
		if (!mul_ok(b, c, &ca->size)) {
			ca->alloc = false;
			return;
		}
		break;
	default:
		ca->alloc = false;
		return;
	}
	/* realloc(p, 0) frees p */
	ca->old = a;
	ca->arg = a;
	ca->frees = a && !ca->size;
	ca->alloc = !ca->frees;
}

/*
 * Is `ra` inside one of library `lib`'s probed allocator functions, loaded at `bias`? A global
 * function: its loop is verified once, not again on each path of the programs that call it
 * (inlined, it was a tenth of the allocation program's verification).
 */
__noinline int in_allocator(__u32 lib, __u64 bias, __u64 ra)
{
	struct ap_lib *l;
	__u64 rav = ra - bias;

	if (lib == AP_NO_LIB)
		return 0;
	l = bpf_map_lookup_elem(&libs, &lib);
	if (!l || rav < l->lo || rav >= l->hi)
		return 0;
	for (__u32 i = 0; i < AP_MAX_LIB_RANGES; i++) {
		if (i >= l->nr)
			break;
		if (rav >= l->r[i].start && rav < l->r[i].end)
			return 1;
	}
	return 0;
}

/*
 * Where the kernel's return-probe trampoline is in this process: a return address it has
 * taken over reads as this.
 */
static __always_inline __u64 uretprobe_trampoline(void)
{
	struct xol_area *area = bpf_get_current_task_btf()->mm->uprobes_state.xol_area;

	return area ? area->vaddr : 0;
}

/*
 * Is this call an allocator entry point calling another (see struct ap_thread)? Reads the
 * return address into *ra when it has to look.
 */
static __always_inline bool nested(struct ap_thread *t, __u64 sp, __u32 fn, __u32 lib, __u64 bias,
				   __u64 *ra, bool *have_ra, struct ap_stats *st)
{
	bool tail = sp == t->wrap_sp;

	if (!t->wrap_sp || sp > t->wrap_sp || t->wrap_sp - sp >= AP_NEST_WINDOW)
		return false;
	if (tail && fn == t->last_fn)
		return false; /* the same function from the same frame: a loop, not a tail call */
	if (bpf_probe_read_user(ra, sizeof(*ra), (void *)sp)) {
		STAT_INC(st, AP_STAT_RA_FAULT);
		return true; /* counted as lost */
	}
	*have_ra = true;
	/* A tail call from a wrapper with a return probe finds the trampoline's address. */
	if (tail ? *ra == t->wrap_ra || *ra == uretprobe_trampoline()
		 : in_allocator(t->wrap_lib, t->wrap_bias, *ra) || in_allocator(lib, bias, *ra))
		goto nested;
	return false;
nested:
	STAT_INC(st, AP_STAT_NESTED);
	return true;
}

/*
 * The entry of every allocation function. Returns 1 when the call's return is not needed
 * (a uprobe session then skips it), 0 when it is: the pending state is left in the thread.
 */
static __always_inline int alloc_entry(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 fn = AP_COOKIE_FN(cookie), lib = AP_COOKIE_LIB(cookie), zero = 0;
	__u32 kind = AP_COOKIE_KIND(cookie);
	/* %rip is the probe site: this is the library's load bias. */
	__u64 bias = PT_REGS_IP(ctx) - AP_COOKIE_VADDR(cookie);
	__u64 sp = PT_REGS_SP(ctx) + AP_COOKIE_SLOTS(cookie) * 8;
	bool have_ra = false, sampled = true;
	__u64 ra = 0, stack = 0;
	struct alloc_sample smp = {};
	struct ap_live old_v = {};
	struct call_args ca;
	struct ap_pending *pd;
	struct ap_thread *t;
	struct ap_stats *st;

	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return 1;
	STAT_INC(st, AP_STAT_CALLS);

	t = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		STAT_INC(st, AP_STAT_NO_THREAD);
		return 1;
	}
	if (!t->init) {
		t->bytes_left = next_distance();
		t->init = 1;
	}
	read_args(ctx, kind, &ca);
	if (nested(t, sp, fn, lib, bias, &ra, &have_ra, st))
		return inner_of_new(t, sp, fn, kind, ca.arg, st);
	/* A counted call: it is now the one later calls are compared with. */
	t->last_fn = fn;
	if (track_live)
		clear_stale(t, sp, st);
	if (AP_COOKIE_WRAPPER(cookie)) {
		if (!have_ra && bpf_probe_read_user(&ra, sizeof(ra), (void *)sp)) {
			STAT_INC(st, AP_STAT_RA_FAULT);
			t->wrap_sp = 0;
			return 1;
		}
		have_ra = true;
		t->wrap_sp = sp;
		t->wrap_ra = ra;
		t->wrap_bias = bias;
		t->wrap_lib = lib;
	} else {
		t->wrap_sp = 0;
	}

	if (!ca.alloc) {
		STAT_INC(st, AP_STAT_NOT_ALLOC);
		/* realloc(p, 0) frees p (the allocator's inner free then finds it gone). */
		if (track_live && ca.frees && live_take(ca.old, NULL))
			STAT_INC(st, AP_STAT_FREE_MATCHED);
		return 1;
	}
	if (ca.size > AP_MAX_ALLOC_SIZE) {
		STAT_INC(st, AP_STAT_NOT_ALLOC); /* fails: larger than the address space */
		return 1;
	}
	if (!exact) {
		t->bytes_left -= (__s64)ca.size;
		sampled = t->bytes_left <= 0;
		if (sampled)
			t->bytes_left = next_distance();
	}
	/*
	 * realloc's old block leaves the live set now, before the allocator can give its
	 * address to another thread; a failed realloc puts it back at the return.
	 */
	if (track_live && ca.old && live_take(ca.old, &old_v))
		STAT_INC(st, AP_STAT_FREE_MATCHED);
	if (!sampled) {
		if (!old_v.stack)
			return 1;
		goto pending;
	}
	/* The return address is the allocation site: the first frame of every stack. */
	if (!have_ra && bpf_probe_read_user(&ra, sizeof(ra), (void *)sp)) {
		STAT_INC(st, AP_STAT_RA_FAULT);
		return 1; /* (an old block taken out stays out: realloc rarely fails) */
	}
	smp.size = ca.size;
	weights(ca.size, &smp.w_objects, &smp.w_bytes);
	/*
	 * The walk and the counting are global functions, each verified once on its own; called
	 * one after the other, not one from the other, so that neither's frame adds to the
	 * other's on the 512 bytes of stack a call chain has.
	 */
	if (walk_user_stack(ctx, ra, sp))
		STAT_INC(st, AP_STAT_NO_THREAD);
	else
		stack = record(&smp);
	if (!track_live || (!stack && !old_v.stack))
		return 1;
pending:
	pd = free_slot(t, st);
	pd->state = AP_PEND_WAITING;
	pd->kind = kind;
	pd->ra_slot = sp;
	pd->stack = stack;
	pd->size = ca.size;
	pd->w_objects = smp.w_objects;
	pd->w_bytes = smp.w_bytes;
	pd->arg = ca.arg;
	pd->old = old_v;
	/* A throwing operator new: no return probe, its inner allocator call will tell. */
	if ((throwing_fns >> fn) & 1) {
		pd->state = AP_PEND_ARMED;
		STAT_INC(st, AP_STAT_NEW_ARMED);
		return 1;
	}
	return 0;
}

/*
 * Is this allocation call not to be counted: the capture is ending, or its process is not
 * traced (counted as such)? Global, so it is verified once and its frame is its own.
 */
__noinline bool skip_call(void)
{
	struct ap_stats *st;
	__u32 zero = 0;

	if (stopped)
		return true;
	if (traced())
		return false;
	st = bpf_map_lookup_elem(&stats, &zero);
	if (st && (__u32)(bpf_get_current_pid_tgid() >> 32) != self_tgid)
		STAT_INC(st, AP_STAT_FILTERED);
	return true;
}

/* --alloc-only, or in-use tracking with a classic return probe (on_alloc_ret) beside it. */
SEC("uprobe")
int BPF_KPROBE(on_alloc)
{
	if (skip_call())
		return 0;
	alloc_entry(ctx);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_alloc_ret)
{
	alloc_return(ctx);
	return 0;
}

/*
 * In-use tracking with a uprobe session (loaded as BPF_TRACE_UPROBE_SESSION, attached with a
 * uprobe_multi link): the entry's 1 tells the kernel to skip this call's return.
 */
SEC("uprobe")
int BPF_KPROBE(on_alloc_session)
{
	if (bpf_session_is_return()) {
		if (!stopped)
			alloc_return(ctx);
		return 0;
	}
	if (skip_call())
		return 1;
	return alloc_entry(ctx);
}

/*
 * free, cfree and the allocator's operator delete family: the block is no longer in use.
 * A block not found was never tracked: unsampled, allocated before the capture, or (exact
 * mode tells) already forgotten by the allocator entry point this free is called from.
 */
SEC("uprobe")
int BPF_KPROBE(on_free)
{
	__u64 addr = PT_REGS_PARM1(ctx), cookie, ra;
	struct ap_stats *st;
	__u32 zero = 0;

	if (!addr || stopped || !traced())
		return 0;
	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return 0;
	STAT_INC(st, AP_STAT_FREES);
	if (live_take(addr, NULL)) {
		STAT_INC(st, AP_STAT_FREE_MATCHED);
		return 0;
	}
	if (exact) {
		/* Called from inside a probed allocator function: realloc(p, 0), delete. */
		cookie = bpf_get_attach_cookie(ctx);
		if (!bpf_probe_read_user(&ra, sizeof(ra),
					 (void *)(PT_REGS_SP(ctx) + AP_COOKIE_SLOTS(cookie) * 8)) &&
		    in_allocator(AP_COOKIE_LIB(cookie), PT_REGS_IP(ctx) - AP_COOKIE_VADDR(cookie),
				 ra)) {
			STAT_INC(st, AP_STAT_FREE_NESTED);
			return 0;
		}
	}
	STAT_INC(st, AP_STAT_FREE_UNMATCHED);
	return 0;
}

/* --ops: each process's calls of each operation (struct ap_op_key, allocprof.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1); /* set by userspace */
	__type(key, struct ap_op_key);
	__type(value, __u64);
} ops SEC(".maps");

/*
 * --ops: a call of an operation (the cookie is its index), counted for every call, sampled
 * capture or not: the divisor of allocations per operation. A plain entry probe, no stack.
 */
SEC("uprobe")
int BPF_KPROBE(on_op)
{
	struct ap_op_key k = {};
	struct ap_stats *st;
	__u64 one = 1, *v;
	__u32 zero = 0;
	int err;

	if (stopped || !traced())
		return 0;
	k.proc.pid = bpf_get_current_pid_tgid() >> 32;
	k.proc.image = image_of(bpf_get_current_task_btf());
	k.op = (__u32)bpf_get_attach_cookie(ctx) & (AP_MAX_OPS - 1);
	v = bpf_map_lookup_elem(&ops, &k);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return 0;
	}
	err = bpf_map_update_elem(&ops, &k, &one, BPF_NOEXIST);
	if (!err)
		return 0;
	/* Another thread of the process added it first (compared as an int: see map_add). */
	if (err == -EEXIST) {
		v = bpf_map_lookup_elem(&ops, &k);
		if (v) {
			__sync_fetch_and_add(v, 1);
			return 0;
		}
	}
	st = bpf_map_lookup_elem(&stats, &zero);
	if (st)
		STAT_INC(st, AP_STAT_OPS_FULL);
	return 0;
}

/*
 * On the dynamic linker's _dl_debug_state(), which it calls around every change to its list of
 * objects: when r_debug says the list is consistent (a program's libraries are all mapped, or
 * a dlopen is done), tell userspace. The cookie is AP_RTLD_COOKIE's (allocprof.h).
 */
SEC("uprobe")
int BPF_KPROBE(on_rtld_state)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 base = PT_REGS_IP(ctx) - AP_RTLD_COOKIE_SITE(cookie);
	__u64 r_debug = base + AP_RTLD_COOKIE_R_DEBUG(cookie);
	int state;

	if (!traced())
		return 0;
	if (bpf_probe_read_user(&state, sizeof(state), (void *)(r_debug + AP_R_DEBUG_STATE_OFF)))
		return 0;
	if (state != AP_RT_CONSISTENT)
		return 0;
	send_event(AP_EV_LINKED, bpf_get_current_pid_tgid() >> 32,
		   image_of(bpf_get_current_task_btf()), 0);
	return 0;
}

/*
 * A traced process exec'd (with -a: any process): a statically linked program gets no dynamic
 * linker event, and a new program may bring an allocator no probe is on yet.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;
	struct ap_proc_key k = { .pid = tgid, .image = image_of(p) };

	/* The mappings the walks kept for this process (the same program exec'd again) are gone. */
	bpf_map_delete_elem(&proc_vmas, &k);
	if ((watch_forks && !bpf_map_lookup_elem(&watched, &tgid)) || !traced())
		return 0;
	send_event(AP_EV_EXEC, tgid, k.image, 0);
	return 0;
}

/*
 * A traced process forked: with -- CMD its child is traced from its first instruction (the
 * probes of the files it shares with its parent are in its memory already), and userspace
 * is told so it can follow the child's exit and execs. Otherwise it is counted, to be said.
 * Threads are not new processes.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid, zero = 0;
	struct ap_stats *st;
	__u8 one = 1;

	if (!watch_forks || ptgid == ctgid || !bpf_map_lookup_elem(&watched, &ptgid))
		return 0;
	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return 0;
	if (!follow_forks) {
		STAT_INC(st, AP_STAT_FORKS_NOT_FOLLOWED);
		return 0;
	}
	if (map_add(&watched, &ctgid, &one)) {
		STAT_INC(st, AP_STAT_WATCHED_FULL);
		return 0;
	}
	send_event(AP_EV_FORK, ctgid, image_of(parent), ptgid);
	return 0;
}

/*
 * A traced process's last thread exited: its pid may be another process's soon, which must
 * not be traced. (Userspace sees the exit too, later.)
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (watch_forks && !p->signal->live.counter)
		bpf_map_delete_elem(&watched, &tgid);
	return 0;
}

/* The files a process's mappings really are (struct ap_real_file), for a task_vma iterator. */
SEC("iter/task_vma")
int real_files(struct bpf_iter__task_vma *ctx)
{
	struct vm_area_struct *vma = ctx->vma;
	struct ap_real_file rf = {};
	struct file *f;

	if (!vma)
		return 0;
	f = vma->vm_file;
	if (!f)
		return 0;
	rf.start = vma->vm_start;
	rf.ino = f->f_inode->i_ino;
	rf.dev = f->f_inode->i_sb->s_dev;
	bpf_seq_write(ctx->meta->seq, &rf, sizeof(rf));
	return 0;
}
