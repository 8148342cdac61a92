// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Allocation probes. One program runs at the entry of every allocator function; its attach
 * cookie says how to read the size and where the return address is. Per call it does:
 * per-thread state lookup, the nested-call checks, the sampling countdown; only a sampled
 * call walks the stack and adds into the per-(process, stack) counters. Every allocation that
 * is skipped or lost on the way bumps a counter in `stats`.
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Configuration, fixed before load. */
const volatile bool exact = false;
const volatile __u64 sample_bytes = 512 * 1024;
const volatile __u32 self_tgid = 0; /* non-zero with -a: our own allocations are not traced */

/*
 * Tables filled by userspace after load and before attach (.bss: not stored in the object).
 * exp_q16: equal-probability quantiles of Exp(1) in Q16, the sampling distances.
 * weight_q16: f(x) = x / (1 - exp(-x)) in Q16, see allocprof.h.
 */
__u32 exp_q16[AP_EXP_TABLE_SIZE];
__u32 weight_q16[AP_WEIGHT_ENTRIES];

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

static __always_inline void add_weights(struct ap_count *c, __u64 size)
{
	__u64 r = sample_bytes, xs, i, frac, f, fr;

	if (size >= (__u64)AP_WEIGHT_XMAX * r) {
		__sync_fetch_and_add(&c->w_objects, 1ull << AP_Q);
		__sync_fetch_and_add(&c->w_bytes, size);
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
	__sync_fetch_and_add(&c->w_bytes, fr >> AP_Q);
	__sync_fetch_and_add(&c->w_objects, size ? fr / size : 0);
}

static __always_inline void record(struct pt_regs *ctx, struct ap_stats *st, __u64 ra, __u64 size)
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
		return;
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
	key.stack = h;

	c = bpf_map_lookup_elem(&counts, &key);
	if (!c) {
		struct ap_count zc = {};

		err = bpf_map_update_elem(&stacks, &h, s, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			STAT_INC(st, AP_STAT_STACKS_FULL);
			return;
		}
		err = bpf_map_update_elem(&counts, &key, &zc, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			STAT_INC(st, AP_STAT_COUNTS_FULL);
			return;
		}
		c = bpf_map_lookup_elem(&counts, &key);
		if (!c) {
			STAT_INC(st, AP_STAT_COUNTS_FULL);
			return;
		}
		touch_proc(&key.proc, st);
		record_vmas(task, s, &key.proc, st);
		send_event(AP_EV_NEW_STACKS, key.proc.pid, key.proc.image);
	}
	__sync_fetch_and_add(&c->count, 1);
	__sync_fetch_and_add(&c->bytes, size);
	if (!exact)
		add_weights(c, size);
	STAT_INC(st, AP_STAT_SAMPLED);
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
	if (tail)
		return *ra == t->wrap_ra;
	return in_allocator(t->wrap_lib, t->wrap_bias, *ra) || in_allocator(lib, bias, *ra);
}

SEC("uprobe")
int BPF_KPROBE(on_alloc)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 fn = AP_COOKIE_FN(cookie), lib = AP_COOKIE_LIB(cookie), zero = 0;
	/* %rip is the probe site: this is the library's load bias. */
	__u64 bias = PT_REGS_IP(ctx) - AP_COOKIE_VADDR(cookie);
	__u64 sp = PT_REGS_SP(ctx) + AP_COOKIE_SLOTS(cookie) * 8;
	bool have_ra = false;
	struct ap_thread *t;
	struct ap_stats *st;
	__u64 size, ra = 0;

	if (self_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return 0;
	STAT_INC(st, AP_STAT_CALLS);

	t = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		STAT_INC(st, AP_STAT_NO_THREAD);
		return 0;
	}
	if (!t->init) {
		t->bytes_left = next_distance();
		t->init = 1;
	}
	if (nested(t, sp, fn, lib, bias, &ra, &have_ra, st)) {
		if (have_ra)
			STAT_INC(st, AP_STAT_NESTED);
		return 0;
	}
	/* A counted call: it is now the one later calls are compared with. */
	t->last_fn = fn;
	if (AP_COOKIE_WRAPPER(cookie)) {
		if (!have_ra && bpf_probe_read_user(&ra, sizeof(ra), (void *)sp)) {
			STAT_INC(st, AP_STAT_RA_FAULT);
			t->wrap_sp = 0;
			return 0;
		}
		have_ra = true;
		t->wrap_sp = sp;
		t->wrap_ra = ra;
		t->wrap_bias = bias;
		t->wrap_lib = lib;
	} else {
		t->wrap_sp = 0;
	}

	if (!alloc_size(ctx, AP_COOKIE_KIND(cookie), &size)) {
		STAT_INC(st, AP_STAT_NOT_ALLOC);
		return 0;
	}
	if (size > AP_MAX_ALLOC_SIZE) {
		STAT_INC(st, AP_STAT_NOT_ALLOC); /* fails: larger than the address space */
		return 0;
	}
	if (!exact) {
		t->bytes_left -= (__s64)size;
		if (t->bytes_left > 0)
			return 0;
		t->bytes_left = next_distance();
	}
	/* The return address is the allocation site: the first frame of every stack. */
	if (!have_ra && bpf_probe_read_user(&ra, sizeof(ra), (void *)sp)) {
		STAT_INC(st, AP_STAT_RA_FAULT);
		return 0;
	}
	record(ctx, st, ra, size);
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
