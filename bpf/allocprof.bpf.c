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
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "allocprof.h"

#define EEXIST 17
#define EBUSY  16
#define ENOENT 2

/* Uprobe session kfuncs (Linux 6.13+); only the session program calls them. */
extern bool bpf_session_is_return(void) __ksym __weak;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Configuration, fixed before load. */
const volatile bool exact = false;
const volatile __u64 sample_bytes = 512 * 1024;
const volatile __u32 self_tgid = 0;    /* non-zero with -a: our own allocations are not traced */
const volatile bool track_live = true; /* false with --alloc-only */
/* Function ids (bit n: id n) of the operator new variants that throw (see ap_pending). */
const volatile __u64 throwing_fns = 0;

/*
 * Tables filled by userspace after load and before attach (.bss: not stored in the object).
 * exp_q16: equal-probability quantiles of Exp(1) in Q16, the sampling distances.
 * weight_q16: f(x) = x / (1 - exp(-x)) in Q16, see allocprof.h.
 */
__u32 exp_q16[AP_EXP_TABLE_SIZE];
__u32 weight_q16[AP_WEIGHT_ENTRIES];

/*
 * Sampled mode: how many live blocks hash to each slot (by process and address), so that a
 * free of an untracked block, nearly every free, is told apart without a lookup in `live`,
 * whose bucket array is megabytes: a cache miss, ~110 ns here, where this is 128 KiB.
 */
#define AP_LIVE_FILTER_BITS 14
__u64 live_filter[1 << AP_LIVE_FILTER_BITS];

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ap_thread);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* set by userspace */
	__type(key, __u64);
	__type(value, struct ap_stack);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set by userspace */
	__type(key, struct ap_count_key);
	__type(value, struct ap_count);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192); /* set by userspace */
	__type(key, struct ap_proc_key);
	__type(value, struct ap_proc);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set by userspace to the number of libraries */
	__type(key, __u32);
	__type(value, struct ap_lib);
} libs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ap_stats);
} stats SEC(".maps");

/* Where a sampled call builds its stack: per thread, created on a thread's first sample. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ap_stack);
} stack_buf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536); /* set by userspace */
	__type(key, struct ap_vma_key);
	__type(value, struct ap_vma);
} vmas SEC(".maps");

/* Blocks allocated and not freed yet (struct ap_live). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 262144); /* set by userspace */
	__type(key, struct ap_live_key);
	__type(value, struct ap_live);
} live SEC(".maps");

/* struct ap_event, see allocprof.h. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* Processes whose execs are reported (the command started and -p targets): tgid -> 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} watched SEC(".maps");

#define STAT_INC(st, i) __sync_fetch_and_add(&(st)->v[i], 1)

static __always_inline __u32 image_of(struct task_struct *task)
{
	return (__u32)task->mm->exe_file->f_inode->i_ino;
}

static __always_inline void send_event(__u32 kind, __u32 tgid, __u32 image)
{
	struct ap_event ev = { .kind = kind, .proc = { .pid = tgid, .image = image } };
	__u32 zero = 0;

	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0)) {
		struct ap_stats *st = bpf_map_lookup_elem(&stats, &zero);

		if (st)
			STAT_INC(st, AP_STAT_EVENTS_LOST);
	}
}

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

/* Size requested by this call; false when the call allocates nothing. */
static __always_inline bool alloc_size(struct pt_regs *ctx, __u32 kind, __u64 *size)
{
	__u64 a = PT_REGS_PARM1(ctx), b = PT_REGS_PARM2(ctx), c = PT_REGS_PARM3(ctx);

	switch (kind) {
	case AP_SIZE_ARG1:
		*size = a;
		return true;
	case AP_SIZE_ARG2:
		*size = b;
		return true;
	case AP_SIZE_ARG3:
		*size = c;
		return true;
	case AP_SIZE_ARG1_X_ARG2:
		return mul_ok(a, b, size); /* an overflow fails with ENOMEM */
	case AP_SIZE_REALLOC:
		*size = b;
		return !a || b; /* realloc(p, 0) frees */
	case AP_SIZE_REALLOCARRAY:
		return mul_ok(b, c, size) && (!a || *size);
	}
	return false;
}

/* Is `ra` inside one of library `lib`'s probed allocator functions, loaded at `bias`? */
static __always_inline bool in_allocator(__u32 lib, __u64 bias, __u64 ra)
{
	struct ap_lib *l;
	__u64 rav = ra - bias;

	if (lib == AP_NO_LIB)
		return false;
	l = bpf_map_lookup_elem(&libs, &lib);
	if (!l || rav < l->lo || rav >= l->hi)
		return false;
	for (__u32 i = 0; i < AP_MAX_LIB_RANGES; i++) {
		if (i >= l->nr)
			break;
		if (rav >= l->r[i].start && rav < l->r[i].end)
			return true;
	}
	return false;
}

static __always_inline void touch_proc(struct ap_proc_key *pk, struct ap_stats *st)
{
	struct ap_proc *p = bpf_map_lookup_elem(&procs, pk);
	struct task_struct *task;
	struct ap_proc np = { .gen = 1 };
	long err;

	if (p) {
		__sync_fetch_and_add(&p->gen, 1);
		return;
	}
	/* The process's name is its group leader's; other threads may have renamed themselves. */
	task = bpf_get_current_task_btf();
	bpf_probe_read_kernel_str(np.comm, sizeof(np.comm), task->group_leader->comm);
	err = bpf_map_update_elem(&procs, pk, &np, BPF_NOEXIST);
	if (err && err != -EEXIST)
		STAT_INC(st, AP_STAT_PROCS_FULL);
}

struct vma_ctx {
	struct ap_proc_key proc;
	__u64 start, end; /* out: the mapping found */
	struct ap_stats *st;
};

static long record_vma(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_ctx *vc = data;
	struct ap_vma_key k = { .proc = vc->proc, .start = vma->vm_start };
	struct file *f = vma->vm_file;
	struct ap_vma v = {};
	long err;

	vc->start = vma->vm_start;
	vc->end = vma->vm_end;
	if (!f)
		return 0;
	v.end = vma->vm_end;
	v.offset = (__u64)vma->vm_pgoff << 12;
	v.ino = f->f_inode->i_ino;
	v.dev = f->f_inode->i_sb->s_dev;
	bpf_probe_read_kernel_str(v.name, sizeof(v.name), f->f_path.dentry->d_name.name);
	err = bpf_map_update_elem(&vmas, &k, &v, BPF_NOEXIST);
	if (err && err != -EEXIST)
		STAT_INC(vc->st, AP_STAT_VMAS_FULL);
	return 0;
}

/* Records the mapping of every frame of a new stack (consecutive frames share a few). */
static __always_inline void record_vmas(struct task_struct *task, struct ap_stack *s,
					struct ap_proc_key *proc, struct ap_stats *st)
{
	struct vma_ctx vc = { .proc = *proc, .st = st };
	__u64 lo = 0, hi = 0;

	for (__u32 i = 0; i < AP_MAX_FRAMES; i++) {
		__u64 ip;

		if (i >= s->nr)
			break;
		ip = s->ip[i];
		if (ip >= lo && ip < hi)
			continue;
		vc.start = vc.end = 0;
		/* -ENOENT: no mapping there (the walk went astray); anything else is a failure. */
		if (bpf_find_vma(task, ip, record_vma, &vc, 0) == -EBUSY)
			STAT_INC(st, AP_STAT_VMA_FAIL);
		lo = vc.start;
		hi = vc.end;
	}
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

/*
 * Walks the stack and adds one allocation of `size` to its counters. The stack's hash, or 0
 * when the allocation was lost (and counted as such).
 */
static __always_inline __u64 record(struct pt_regs *ctx, struct ap_stats *st, __u64 ra, __u64 size,
				    __u64 w_objects, __u64 w_bytes)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ap_count_key key = {
		.proc.pid = bpf_get_current_pid_tgid() >> 32,
		.proc.image = image_of(task),
	};
	struct ap_count *c;
	struct ap_stack *s;
	__u32 nr;
	__u64 h;
	long n, err;

	s = bpf_task_storage_get(&stack_buf, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		STAT_INC(st, AP_STAT_NO_THREAD);
		return 0;
	}
	/*
	 * Frame 0 of the kernel's walk is the probe site itself and the frame-pointer chain
	 * starts in the caller's frame, so the caller is missing: put the return address read
	 * from the stack in place of frame 0.
	 */
	n = bpf_get_stack(ctx, s->ip, sizeof(s->ip), BPF_F_USER_STACK);
	if (n <= 0) {
		STAT_INC(st, AP_STAT_STACK_FAIL);
		nr = 1;
	} else {
		nr = n / sizeof(__u64);
		if (nr >= AP_MAX_FRAMES) {
			nr = AP_MAX_FRAMES;
			STAT_INC(st, AP_STAT_STACK_TRUNC);
		}
	}
	s->ip[0] = ra;
	s->nr = nr;

	h = nr * 0x9e3779b97f4a7c15ull;
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
		struct ap_count zc = {};

		err = bpf_map_update_elem(&stacks, &h, s, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			STAT_INC(st, AP_STAT_STACKS_FULL);
			return 0;
		}
		err = bpf_map_update_elem(&counts, &key, &zc, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			STAT_INC(st, AP_STAT_COUNTS_FULL);
			return 0;
		}
		c = bpf_map_lookup_elem(&counts, &key);
		if (!c) {
			STAT_INC(st, AP_STAT_COUNTS_FULL);
			return 0;
		}
		touch_proc(&key.proc, st);
		record_vmas(task, s, &key.proc, st);
		send_event(AP_EV_NEW_STACKS, key.proc.pid, key.proc.image);
	}
	__sync_fetch_and_add(&c->count, 1);
	__sync_fetch_and_add(&c->bytes, size);
	if (!exact) {
		__sync_fetch_and_add(&c->w_objects, w_objects);
		__sync_fetch_and_add(&c->w_bytes, w_bytes);
	}
	STAT_INC(st, AP_STAT_SAMPLED);
	return h;
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

static __always_inline __u32 filter_slot(__u64 addr)
{
	__u64 tgid = bpf_get_current_pid_tgid() >> 32;

	return (__u32)(((addr ^ (tgid << 48)) * 0x9e3779b97f4a7c15ull) >>
		       (64 - AP_LIVE_FILTER_BITS));
}

/* Could `addr` be a tracked block of this process? Always "maybe" in exact mode. */
static __always_inline bool maybe_live(__u64 addr)
{
	return exact || live_filter[filter_slot(addr)];
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

/* Takes a block out of the live set; false when it was not in it. */
static __always_inline bool forget(__u64 addr)
{
	struct ap_live_key k;

	if (!maybe_live(addr))
		return false;
	k = live_key(addr);
	if (bpf_map_delete_elem(&live, &k))
		return false;
	if (!exact)
		__sync_fetch_and_add(&live_filter[filter_slot(addr)], -1);
	return true;
}

/* Puts a block into the live set; false when the map is full. */
static __always_inline bool remember(__u64 addr, struct ap_live *v)
{
	struct ap_live_key k = live_key(addr);
	long err;

	/* Counted first, so a concurrent free of it never misses it in the filter. */
	if (!exact)
		__sync_fetch_and_add(&live_filter[filter_slot(addr)], 1);
	err = bpf_map_update_elem(&live, &k, v, BPF_NOEXIST);
	if (!err)
		return true;
	/* There already: a block whose free we did not see. Replaced, counted once. */
	if (err == -EEXIST)
		err = bpf_map_update_elem(&live, &k, v, BPF_ANY);
	if (!exact)
		__sync_fetch_and_add(&live_filter[filter_slot(addr)], -1);
	return !err;
}

/* Does this realloc (reallocarray) free its block: a size of 0? */
static __always_inline bool frees_old(struct pt_regs *ctx, __u32 kind)
{
	__u64 n;

	if (kind == AP_SIZE_REALLOC)
		return !PT_REGS_PARM2(ctx);
	return kind == AP_SIZE_REALLOCARRAY && mul_ok(PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), &n) &&
	       !n;
}

/* Pending slots (see struct ap_pending) whose call's frame is gone, returned unseen. */
static __always_inline void clear_stale(struct ap_thread *t, __u64 sp, struct ap_stats *st)
{
	struct ap_pending *a = &t->pend[0], *b = &t->pend[1];

	if (a->state && sp >= a->ra_slot) {
		if (a->state == AP_PEND_WAITING)
			STAT_INC(st, AP_STAT_RET_MISSED);
		a->state = AP_PEND_FREE;
	}
	if (b->state && sp >= b->ra_slot) {
		if (b->state == AP_PEND_WAITING)
			STAT_INC(st, AP_STAT_RET_MISSED);
		b->state = AP_PEND_FREE;
	}
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
 * return gives the block the new's allocation is. 0 when it takes that role (its return is
 * wanted), 1 otherwise.
 */
static __always_inline int inner_of_new(struct pt_regs *ctx, struct ap_thread *t, __u64 sp,
					__u32 fn, __u32 kind, struct ap_stats *st)
{
	struct ap_pending *a = &t->pend[0], *b = &t->pend[1];

	if (!track_live || (throwing_fns >> fn) & 1)
		return 1;
	if (!(a->state == AP_PEND_ARMED && sp < a->ra_slot)) {
		if (!(b->state == AP_PEND_ARMED && sp < b->ra_slot))
			return 1;
		a = b;
	}
	STAT_INC(st, AP_STAT_NEW_INNER);
	a->state = AP_PEND_WAITING;
	a->kind = kind;
	a->ra_slot = sp;
	a->arg = kind == AP_SIZE_ARG3 ? PT_REGS_PARM1(ctx) : 0;
	a->old.stack = 0;
	return 0;
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
	__u64 old = PT_REGS_PARM1(ctx); /* realloc's block */
	bool have_ra = false, is_realloc, sampled = true;
	__u64 size, ra = 0, stack = 0, w_objects = 0, w_bytes = 0;
	struct ap_live old_v = {}, *lv;
	struct ap_pending *pd;
	struct ap_live_key k;
	struct ap_thread *t;
	struct ap_stats *st;

	if (self_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 1;
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
	if (nested(t, sp, fn, lib, bias, &ra, &have_ra, st))
		return inner_of_new(ctx, t, sp, fn, kind, st);
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

	is_realloc = kind == AP_SIZE_REALLOC || kind == AP_SIZE_REALLOCARRAY;
	if (!alloc_size(ctx, kind, &size)) {
		STAT_INC(st, AP_STAT_NOT_ALLOC);
		/* realloc(p, 0) frees p (the allocator's inner free then finds it gone). */
		if (track_live && is_realloc && old && frees_old(ctx, kind) && forget(old))
			STAT_INC(st, AP_STAT_FREE_MATCHED);
		return 1;
	}
	if (size > AP_MAX_ALLOC_SIZE) {
		STAT_INC(st, AP_STAT_NOT_ALLOC); /* fails: larger than the address space */
		return 1;
	}
	if (!exact) {
		t->bytes_left -= (__s64)size;
		sampled = t->bytes_left <= 0;
		if (sampled)
			t->bytes_left = next_distance();
	}
	/*
	 * realloc's old block leaves the live set now, before the allocator can give its
	 * address to another thread; a failed realloc puts it back at the return.
	 */
	if (track_live && is_realloc && old && maybe_live(old)) {
		k = live_key(old);
		lv = bpf_map_lookup_elem(&live, &k);
		if (lv) {
			old_v = *lv;
			if (forget(old))
				STAT_INC(st, AP_STAT_FREE_MATCHED);
			else
				old_v.stack = 0;
		}
	}
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
	weights(size, &w_objects, &w_bytes);
	stack = record(ctx, st, ra, size, w_objects, w_bytes);
	if (!track_live || (!stack && !old_v.stack))
		return 1;
pending:
	pd = free_slot(t, st);
	pd->state = AP_PEND_WAITING;
	pd->kind = kind;
	pd->ra_slot = sp;
	pd->stack = stack;
	pd->size = size;
	pd->w_objects = w_objects;
	pd->w_bytes = w_bytes;
	pd->arg = kind == AP_SIZE_ARG3 ? PT_REGS_PARM1(ctx) : is_realloc ? old : 0;
	pd->old = old_v;
	/* A throwing operator new: no return probe, its inner allocator call will tell. */
	if ((throwing_fns >> fn) & 1) {
		pd->state = AP_PEND_ARMED;
		STAT_INC(st, AP_STAT_NEW_ARMED);
		return 1;
	}
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

/* The return of an allocation function whose entry left a pending state. */
static __always_inline void alloc_return(struct pt_regs *ctx)
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
		return;
	/* A classic return probe sees every call return: most are not waited for. */
	pd = &t->pend[0];
	if (!(pd->state == AP_PEND_WAITING && pd->ra_slot == ra_slot)) {
		pd = &t->pend[1];
		if (!(pd->state == AP_PEND_WAITING && pd->ra_slot == ra_slot))
			return;
	}
	pd->state = AP_PEND_FREE;
	switch (pd->kind) {
	case AP_SIZE_ARG3: /* posix_memalign: 0 and the block in *memptr */
		if (ret) {
			addr = 0;
			break;
		}
		if (bpf_probe_read_user(&addr, sizeof(addr), (void *)pd->arg)) {
			if (pd->stack)
				STAT_INC(st, AP_STAT_MEMPTR_FAULT);
			return;
		}
		break;
	case AP_SIZE_REALLOC:
	case AP_SIZE_REALLOCARRAY:
		/* A failed realloc leaves the old block as it was: back into the live set. */
		if (!ret && pd->old.stack) {
			if (remember(pd->arg, &pd->old))
				__sync_fetch_and_add(&st->v[AP_STAT_FREE_MATCHED], -1);
			else
				STAT_INC(st, AP_STAT_LIVE_FULL);
		}
		break;
	}
	if (!pd->stack)
		return;
	k = live_key(addr);
	if (!addr) {
		unrecord(st, &k.proc, pd);
		return;
	}
	v.stack = pd->stack;
	v.size = pd->size;
	v.w_objects = pd->w_objects;
	v.w_bytes = pd->w_bytes;
	if (!remember(addr, &v))
		STAT_INC(st, AP_STAT_LIVE_FULL);
}

/* --alloc-only, or in-use tracking with a classic return probe (on_alloc_ret) beside it. */
SEC("uprobe")
int BPF_KPROBE(on_alloc)
{
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
		alloc_return(ctx);
		return 0;
	}
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

	if (!addr || (self_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid))
		return 0;
	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return 0;
	STAT_INC(st, AP_STAT_FREES);
	if (forget(addr)) {
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

/*
 * On the dynamic linker's _dl_debug_state(), which it calls around every change to its list of
 * objects: when r_debug says the list is consistent (a program's libraries are all mapped, or
 * a dlopen is done), tell userspace. Cookie: low 32 bits the probe site's vaddr in ld.so, high
 * 32 bits the vaddr of _r_debug.
 */
SEC("uprobe")
int BPF_KPROBE(on_rtld_state)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 base = PT_REGS_IP(ctx) - (cookie & 0xffffffff);
	int state;

	/* struct r_debug { int r_version; link_map *r_map; ElfW(Addr) r_brk; r_state; ... } */
	if (bpf_probe_read_user(&state, sizeof(state), (void *)(base + (cookie >> 32) + 24)))
		return 0;
	if (state != 0 /* RT_CONSISTENT */)
		return 0;
	send_event(AP_EV_LINKED, bpf_get_current_pid_tgid() >> 32,
		   image_of(bpf_get_current_task_btf()));
	return 0;
}

/* A watched process exec'd: a statically linked program gets no dynamic linker event. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;

	if (!bpf_map_lookup_elem(&watched, &tgid))
		return 0;
	send_event(AP_EV_EXEC, tgid, image_of(p));
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
