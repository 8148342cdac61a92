/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every part of the BPF object shares, and only the BPF side: its configuration (set by
 * userspace between open and load), the tables and maps, the statistics counter and the small
 * helpers the parts use. allocprof.bpf.c, record.bpf.h and inuse.bpf.h each include it first,
 * so each compiles wherever it is included; they are still one object (allocprof.bpf.c), whose
 * skeleton names these maps and variables.
 */
#ifndef ALLOCPROF_COMMON_BPF_H
#define ALLOCPROF_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "allocprof.h"

#define EEXIST 17
#define EBUSY  16

/* BPF-private state and limits: userspace never sees them, so they are not in allocprof.h. */

/* The largest request that could succeed: user address space on x86_64 is 128 TiB. */
#define AP_MAX_ALLOC_SIZE (1ull << 47)

/*
 * How far below a wrapper's entry (in bytes of stack) a nested call into another entry point
 * is looked for: the wrapper's own frame and those of its internal helpers.
 */
#define AP_NEST_WINDOW 4096

/*
 * In-use tracking: an allocation's address is known only when it returns. The entry of a call
 * that needs its return (a sampled allocation, or a realloc of a block being tracked) leaves
 * this in the thread's state; the return finds it by the stack address of the return address,
 * which is the same at entry and (less 8, popped) at return, so a call nested inside cannot
 * take it. A thread has two: a counted allocation can run inside a pending one (the exception
 * object libstdc++ allocates inside a failing nothrow new, a signal handler's).
 *
 * A sampled operator new that may throw gets no return probe (the C++ unwinder cannot pass
 * the kernel's trampoline): it is "armed" instead, and the allocator call inside it (the
 * malloc libstdc++'s new calls) becomes pending with its allocation.
 */
enum ap_pending_state {
	AP_PEND_FREE = 0,
	AP_PEND_WAITING = 1, /* ra_slot is the call's; its return is wanted */
	AP_PEND_ARMED = 2,   /* ra_slot is a throwing new's; its inner call is wanted */
};

struct ap_pending {
	__u32 state;   /* enum ap_pending_state */
	__u32 kind;    /* enum ap_size_kind of the call whose return is wanted */
	__u64 ra_slot; /* where the pending call's return address is */
	__u64 stack;   /* its stack hash when it was recorded; 0: not recorded (realloc only) */
	__u64 size;
	__u64 w_objects; /* Q16, as in ap_count */
	__u64 w_bytes;
	__u64 arg; /* realloc: the old block; posix_memalign: memptr */
	/*
	 * realloc: the old block's entry, taken out of the live set at entry (before the
	 * allocator can hand the address to another thread) and put back if realloc fails.
	 * old.stack 0: the old block was not tracked.
	 */
	struct ap_live old;
};

/*
 * Per thread, in task storage. Some entry points call others: glibc's realloc calls malloc,
 * memalign tail-calls it, libstdc++'s operator new calls malloc in libc. Such an inner call is
 * the same allocation and is not counted again. The functions that may do this ("wrappers":
 * every probed function but malloc and the allocator's own operator new) leave a mark when
 * they are entered; a later call is examined only when it is entered while the mark could still
 * be live: deeper on the stack within AP_NEST_WINDOW (a direct call), or at the same stack
 * pointer as another function (a tail call). Only then is its return address read, which is the
 * expensive part (a user-memory read): a program calling malloc in a loop never pays for it.
 * The return address of the inner call lies inside a probed function (of the wrapper's library
 * or the inner function's own), or, for a tail call, equals the wrapper's.
 */
struct ap_thread {
	__s64 bytes_left; /* until the next sample */
	__u64 wrap_sp;	  /* stack pointer at the last counted wrapper's entry; 0: none */
	__u64 wrap_ra;	  /* its return address */
	__u64 wrap_bias;  /* load bias of its library */
	__u32 wrap_lib;	  /* its library index, AP_NO_LIB if none */
	__u32 last_fn;	  /* function id of the last counted call */
	__u32 init;
	__u32 pad;
	struct ap_pending pend[2];
};

_Static_assert(sizeof(struct ap_pending) == 88, "ap_pending layout");
_Static_assert(sizeof(struct ap_thread) == 48 + 2 * 88, "ap_thread layout");

/* Configuration, fixed before load. */
const volatile bool exact = false;
const volatile __u64 sample_bytes = 512 * 1024;
const volatile __u32 self_tgid = 0;    /* allocprof itself: never traced */
const volatile bool track_live = true; /* false with --alloc-only */
/* Function ids (bit n: id n) of the operator new variants that throw (see ap_pending). */
const volatile __u64 throwing_fns = 0;
/* enum ap_stack_mode (--stacks). */
const volatile __u32 stack_mode = AP_STACKS_FP;
/*
 * Which processes count (traced()). A file's probes may serve every process that maps it (one
 * link per file): then these say whose calls are counted. only_watched: the tgids in `watched`
 * (-p, -- CMD; with links of their own the kernel filters already), follow_forks: and their
 * children from the moment they are forked (-- CMD); watch_forks: forks and exits of the
 * watched processes are followed or counted (-p, -- CMD).
 */
const volatile bool only_watched = false;
const volatile bool follow_forks = false;
const volatile bool watch_forks = false;
const volatile bool filter_excluded = false; /* --exclude-pid: not the tgids in `excluded` */
const volatile bool filter_comm = false;     /* --comm: only the names in `comms` */
const volatile bool filter_cgroup = false;   /* --cgroup: only tasks under `cgroups`[0] */

/*
 * Tables filled by userspace after load and before attach (.bss: not stored in the object).
 * exp_q16: equal-probability quantiles of Exp(1) in Q16, the sampling distances.
 * weight_q16: f(x) = x / (1 - exp(-x)) in Q16, see allocprof.h.
 */
__u32 exp_q16[AP_EXP_TABLE_SIZE];
__u32 weight_q16[AP_WEIGHT_ENTRIES];

/*
 * Set by userspace when the capture ends: the counters stop moving while they are read and the
 * profile is written, before the probes are detached (which takes the kernel tens of ms per
 * link). A call already past the check finishes what it started.
 */
volatile bool stopped;

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

/*
 * The processes traced with -p and -- CMD (the targets, the command and, followed, its
 * descendants): tgid -> 1. Their execs are reported. Filled by userspace and, as they fork,
 * by on_fork; a process leaves it when it exits.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set by userspace */
	__type(key, __u32);
	__type(value, __u8);
} watched SEC(".maps");

/* --exclude-pid: tgid -> 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* set by userspace */
	__type(key, __u32);
	__type(value, __u8);
} excluded SEC(".maps");

/* --comm: the names traced. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* set by userspace */
	__type(key, struct ap_comm);
	__type(value, __u8);
} comms SEC(".maps");

/* --cgroup: the cgroup (v2) whose subtree is traced, at index 0. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroups SEC(".maps");

#define STAT_INC(st, i) __sync_fetch_and_add(&(st)->v[i], 1)

/*
 * Adds key -> val unless the key is there already. 0 when it is there now (added, or it was
 * already: another CPU's, or an earlier stack's), else the error (map full, no kernel memory).
 *
 * The helper's result is kept and compared as an int, not a long. With a JIT on a 64-bit
 * kernel the verifier turns the helper call into a direct call of the map's update function,
 * whose return type was int before Linux 6.4 (Debian 12's 6.1 among them): on x86-64 an int
 * is only the low half of r0, the upper half zero in practice (0x00000000ffffffef for
 * -EEXIST), undefined by the ABI. The 64-bit compare clang emits for a long never matches
 * -EEXIST then: every key already there would count as a full map (a stack two processes
 * share, a mapping two stacks share). Compared as an int, only the low half counts, right on
 * every kernel. (bcc's libbpf-tools/maps.bpf.h, bpf_map_lookup_or_try_init, notes the same.)
 */
static __always_inline int map_add(void *map, const void *key, const void *val)
{
	int err = bpf_map_update_elem(map, key, val, BPF_NOEXIST);

	return err == -EEXIST ? 0 : err;
}

/*
 * Are the current process's calls counted? Never allocprof's own; then the filters the
 * options set, cheapest first. Each costs one map lookup or helper call per probe hit, and
 * only when asked for. A global function, verified once and with its own stack frame (the
 * allocation program's is near the 512-byte limit).
 */
__noinline bool traced(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (tgid == self_tgid)
		return false;
	if (only_watched && !bpf_map_lookup_elem(&watched, &tgid))
		return false;
	if (filter_excluded && bpf_map_lookup_elem(&excluded, &tgid))
		return false;
	if (filter_comm) {
		struct ap_comm k = {};

		bpf_get_current_comm(k.c, sizeof(k.c));
		if (!bpf_map_lookup_elem(&comms, &k))
			return false;
	}
	if (filter_cgroup && bpf_current_task_under_cgroup(&cgroups, 0) != 1)
		return false;
	return true;
}

static __always_inline __u32 image_of(struct task_struct *task)
{
	return (__u32)task->mm->exe_file->f_inode->i_ino;
}

static __always_inline void send_event(__u32 kind, __u32 tgid, __u32 image, __u32 arg)
{
	struct ap_event ev = { .kind = kind, .proc = { .pid = tgid, .image = image }, .arg = arg };
	__u32 zero = 0;

	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0)) {
		struct ap_stats *st = bpf_map_lookup_elem(&stats, &zero);

		if (st)
			STAT_INC(st, AP_STAT_EVENTS_LOST);
	}
}

#endif
