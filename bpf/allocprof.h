/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The ABI shared by the BPF programs and userspace: limits, enums, map key and value layouts
 * and the statistics struct. Plain fixed-width types only, explicit padding, sizes asserted,
 * so both compilers agree byte for byte. What only the BPF side uses is in bpf/common.bpf.h.
 */
#ifndef ALLOCPROF_H
#define ALLOCPROF_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Frames kept per stack, the immediate caller included (the kernel's limit is 127). */
#define AP_MAX_FRAMES 127

/* Allocator functions probed in one library, for the nested-call check. */
#define AP_MAX_LIB_RANGES 48

/* Entries of the exponential-draw table used by sampling; a power of two. */
#define AP_EXP_TABLE_BITS 16
#define AP_EXP_TABLE_SIZE (1u << AP_EXP_TABLE_BITS)

/*
 * Weight table: f(x) = x / (1 - exp(-x)) for x = s/R in [0, AP_WEIGHT_XMAX), AP_WEIGHT_STEPS
 * steps per unit, Q16 fixed point. Beyond AP_WEIGHT_XMAX the weight is 1 to within e^-32.
 */
#define AP_WEIGHT_XMAX	     32
#define AP_WEIGHT_STEPS_LOG2 6
#define AP_WEIGHT_ENTRIES    ((AP_WEIGHT_XMAX << AP_WEIGHT_STEPS_LOG2) + 1)
#define AP_Q		     16

/* Largest --sample-bytes; keeps the fixed-point weight arithmetic inside 64 bits. */
#define AP_MAX_SAMPLE_BYTES (1ull << 30)

/*
 * How a probed function's size is computed from its arguments. The function identity itself
 * is kept by userspace; the BPF side needs only the argument shape. Each side reads a kind in
 * one place: the BPF programs' read_args() (what the arguments mean), allocator.c's args_read()
 * (which argument registers those are, so the probe site leaves them untouched).
 */
enum ap_size_kind {
	AP_SIZE_ARG1 = 0,	    /* malloc, valloc, pvalloc, operator new */
	AP_SIZE_ARG2 = 1,	    /* aligned_alloc, memalign */
	AP_SIZE_POSIX_MEMALIGN = 2, /* arg3; arg1 is the out-parameter the return reads */
	AP_SIZE_ARG1_X_ARG2 = 3,    /* calloc */
	AP_SIZE_REALLOC = 4,	    /* realloc: arg2, not an allocation when arg1 && !arg2 */
	AP_SIZE_REALLOCARRAY = 5,   /* reallocarray: arg2 * arg3, same rule as realloc */
};

/*
 * The attach cookie of every allocation probe:
 *   bits  0..3   enum ap_size_kind
 *   bits  4..9   function id (userspace's index; tells a tail call from one entry to another)
 *   bits 10..14  8-byte stack slots between the probe's %rsp and the return address
 *   bit  15      the function may call another allocator entry point (see struct ap_thread,
 *                bpf/common.bpf.h)
 *   bits 16..27  library index into the libs map, AP_NO_LIB when there is none
 *   bits 28..63  the probe site's file virtual address, to find the library's load bias
 * Each field's width is the limit userspace keeps to when it fills it: the function table
 * (AP_MAX_FNS), the probe site chooser (AP_MAX_SITE_SLOTS), the library table (AP_NO_LIB),
 * the site's address (AP_MAX_SITE_VADDR).
 */
#define AP_COOKIE_KIND_SHIFT	0
#define AP_COOKIE_KIND_BITS	4
#define AP_COOKIE_FN_SHIFT	4
#define AP_COOKIE_FN_BITS	6
#define AP_COOKIE_SLOTS_SHIFT	10
#define AP_COOKIE_SLOTS_BITS	5
#define AP_COOKIE_WRAPPER_SHIFT 15
#define AP_COOKIE_WRAPPER_BITS	1
#define AP_COOKIE_LIB_SHIFT	16
#define AP_COOKIE_LIB_BITS	12
#define AP_COOKIE_VADDR_SHIFT	28
#define AP_COOKIE_VADDR_BITS	36

#define AP_MAX_FNS (1 << AP_COOKIE_FN_BITS)
/* The most 8-byte stack slots a probe site may be below the return address. */
#define AP_MAX_SITE_SLOTS ((1 << AP_COOKIE_SLOTS_BITS) - 1)
#define AP_NO_LIB	  ((1u << AP_COOKIE_LIB_BITS) - 1)
/* Libraries the nested-call check knows (the libs map's size); others get AP_NO_LIB. */
#define AP_LIBS_ENTRIES	  256
#define AP_MAX_SITE_VADDR ((1ull << AP_COOKIE_VADDR_BITS) - 1)

#define AP_COOKIE_PUT(f, v) ((__u64)(v) << AP_COOKIE_##f##_SHIFT)
#define AP_COOKIE_GET(c, f)                                                                        \
	(((__u64)(c) >> AP_COOKIE_##f##_SHIFT) & ((1ull << AP_COOKIE_##f##_BITS) - 1))
#define AP_COOKIE(kind, fn, slots, wrapper, lib, vaddr)                                            \
	(AP_COOKIE_PUT(KIND, kind) | AP_COOKIE_PUT(FN, fn) | AP_COOKIE_PUT(SLOTS, slots) |         \
	 AP_COOKIE_PUT(WRAPPER, !!(wrapper)) | AP_COOKIE_PUT(LIB, lib) |                           \
	 AP_COOKIE_PUT(VADDR, vaddr))
#define AP_COOKIE_KIND(c)    ((__u32)AP_COOKIE_GET(c, KIND))
#define AP_COOKIE_FN(c)	     ((__u32)AP_COOKIE_GET(c, FN))
#define AP_COOKIE_SLOTS(c)   ((__u32)AP_COOKIE_GET(c, SLOTS))
#define AP_COOKIE_WRAPPER(c) ((__u32)AP_COOKIE_GET(c, WRAPPER))
#define AP_COOKIE_LIB(c)     ((__u32)AP_COOKIE_GET(c, LIB))
#define AP_COOKIE_VADDR(c)   ((__u64)AP_COOKIE_GET(c, VADDR))

/* Each field starts where the one before ends, the last ends at bit 63, each value fits. */
_Static_assert(AP_COOKIE_FN_SHIFT == AP_COOKIE_KIND_SHIFT + AP_COOKIE_KIND_BITS &&
		       AP_COOKIE_SLOTS_SHIFT == AP_COOKIE_FN_SHIFT + AP_COOKIE_FN_BITS &&
		       AP_COOKIE_WRAPPER_SHIFT == AP_COOKIE_SLOTS_SHIFT + AP_COOKIE_SLOTS_BITS &&
		       AP_COOKIE_LIB_SHIFT == AP_COOKIE_WRAPPER_SHIFT + AP_COOKIE_WRAPPER_BITS &&
		       AP_COOKIE_VADDR_SHIFT == AP_COOKIE_LIB_SHIFT + AP_COOKIE_LIB_BITS &&
		       AP_COOKIE_VADDR_SHIFT + AP_COOKIE_VADDR_BITS == 64,
	       "attach cookie fields");
_Static_assert(AP_SIZE_REALLOCARRAY < 1 << AP_COOKIE_KIND_BITS, "size kinds fit the cookie");
_Static_assert(AP_LIBS_ENTRIES <= AP_NO_LIB, "library indexes fit the cookie, AP_NO_LIB apart");

/*
 * The dynamic linker's hook (on_rtld_state, on _dl_debug_state) reads glibc's r_debug, found
 * through the cookie: the probe site's file virtual address in the dynamic linker in the low
 * 32 bits (with %rip, its load bias), that of _r_debug in the high 32 bits. r_state is at
 * AP_R_DEBUG_STATE_OFF in the 64-bit layout, which linkmap.c's struct r_debug64 also reads.
 */
#define AP_RTLD_MAX_VADDR	      0xffffffffull
#define AP_RTLD_COOKIE(site, r_debug) ((__u64)(site) | ((__u64)(r_debug) << 32))
#define AP_RTLD_COOKIE_SITE(c)	      ((__u64)(c)&AP_RTLD_MAX_VADDR)
#define AP_RTLD_COOKIE_R_DEBUG(c)     ((__u64)(c) >> 32)
/* struct r_debug { int r_version; struct link_map *r_map; ElfW(Addr) r_brk; r_state; ... } */
#define AP_R_DEBUG_STATE_OFF 24
#define AP_RT_CONSISTENT     0 /* r_state: the list of objects is complete */

/*
 * Address ranges, in the library's own (file) virtual addresses, of the allocator functions
 * probed in one library. A call whose return address lies inside one of them is the allocator
 * calling its own entry point (glibc's realloc calling malloc) and is not counted again.
 */
struct ap_range {
	__u64 start;
	__u64 end;
};

struct ap_lib {
	__u64 lo; /* hull of all ranges, a cheap first test */
	__u64 hi;
	__u32 nr;
	__u32 pad;
	struct ap_range r[AP_MAX_LIB_RANGES];
};

/*
 * Why a stack walk ended. The frame-pointer walk (the kernel's) cannot tell, so it says
 * AP_END_FP; the CFI walk knows, and only AP_END_ROOT is a stack that reached its thread's
 * first frame (_start, clone3): the others are counted (AP_STATS) and shown in the summary.
 */
enum ap_stack_end {
	AP_END_FP = 0,		/* the kernel's frame-pointer walk ended (root or not: unknown) */
	AP_END_ROOT = 1,	/* CFI: the outermost frame (its return address undefined) */
	AP_END_NOT_CODE = 2,	/* the next return address is outside executable code, or 0 */
	AP_END_NO_CFI = 3,	/* code without CFI, and no frame pointer to follow (--stacks cfi) */
	AP_END_NO_TABLE = 4,	/* a file without a table (yet), and no frame pointer to follow */
	AP_END_UNSUPPORTED = 5, /* a CFI rule not expressible in a row */
	AP_END_SIGNAL = 6,	/* a signal frame */
	AP_END_READ_FAULT = 7,	/* the stack could not be read (paged out, or a bad CFA) */
	AP_END_DEPTH = 8,	/* AP_MAX_FRAMES reached */
	AP_END_VMA_BUSY = 9,	/* a frame's mapping could not be looked up (mmap lock busy) */
	AP_END_RBP_LOST = 10,	/* a CFA based on a %rbp no frame had saved */
	AP_END_NR
};

/* One user stack, innermost frame first: [0] is the allocator's immediate caller. */
struct ap_stack {
	__u32 nr;
	__u32 end; /* enum ap_stack_end */
	__u64 ip[AP_MAX_FRAMES];
};

/*
 * Unwind tables (issue: whole stacks without frame pointers). Userspace turns each mapped
 * file's call-frame information (.eh_frame, .debug_frame) into sorted rows, one per code
 * range with one rule; the BPF walk finds a frame's row by binary search and computes the
 * caller's %rip, %rsp and %rbp from it. Rows are keyed by file offset (what the walk knows
 * from the mapping: ip - vm_start + vm_pgoff * 4096), not by ELF virtual address.
 *
 * A row covers [off, next row's off). Its rule, 32 bits:
 *   bits  0..3   enum ap_cfi_kind
 *   bits  4..11  where the caller's %rbp was saved, as a signed count of 8-byte slots from
 *                the CFA (0: %rbp is unchanged in this frame; AP_CFI_RBP_LOST: not
 *                recoverable, a later %rbp-based CFA ends the walk); for AP_CFI_PLT the
 *                threshold of the PLT expression (11 for a 16-byte .plt entry)
 *   bits 12..31  the CFA's offset from its base register, in bytes (< 1 MiB)
 * The return address is always at CFA - 8 (x86-64's rule; a file that says otherwise gets
 * AP_CFI_UNSUPPORTED rows).
 */
enum ap_cfi_kind {
	AP_CFI_NONE = 0,	/* no CFI covers this code: a frame-pointer step, or the end */
	AP_CFI_RSP = 1,		/* CFA = %rsp + off */
	AP_CFI_RBP = 2,		/* CFA = %rbp + off */
	AP_CFI_PLT = 3,		/* CFA = %rsp + off + ((%rip & 15) >= threshold ? 8 : 0) */
	AP_CFI_END = 4,		/* the return address is undefined: the outermost frame */
	AP_CFI_SIGNAL = 5,	/* a signal frame (sigreturn trampoline): the walk ends */
	AP_CFI_UNSUPPORTED = 6, /* a DWARF expression or register rule not expressible here */
};

#define AP_CFI_KIND_BITS 4
#define AP_CFI_RBP_SHIFT 4
#define AP_CFI_RBP_BITS	 8
#define AP_CFI_OFF_SHIFT 12
#define AP_CFI_OFF_BITS	 20
#define AP_CFI_MAX_OFF	 ((1u << AP_CFI_OFF_BITS) - 1)
#define AP_CFI_RBP_LOST	 (-128) /* the rbp field's value when %rbp cannot be recovered */

#define AP_CFI_RULE(kind, rbp_slots, off)                                                          \
	((__u32)(kind) | ((__u32)((rbp_slots)&0xff) << AP_CFI_RBP_SHIFT) |                         \
	 ((__u32)(off) << AP_CFI_OFF_SHIFT))
#define AP_CFI_KIND(r) ((r) & ((1u << AP_CFI_KIND_BITS) - 1))
#define AP_CFI_RBP(r)  ((__s32)(__s8)(((r) >> AP_CFI_RBP_SHIFT) & 0xff))
#define AP_CFI_OFF(r)  ((r) >> AP_CFI_OFF_SHIFT)

struct ap_cfi_row {
	__u32 off; /* file offset of the first byte of code the row covers */
	__u32 rule;
};

/* A file as the kernel names it (the inode a mapping holds, as uprobes do). */
struct ap_file_key {
	__u64 ino;
	__u32 dev; /* major << 20 | minor, as in struct ap_vma */
	__u32 pad;
};

/* Where a file's rows are in the row pool: [first, first + nr), sorted by off. */
struct ap_cfi_file {
	__u32 first;
	__u32 nr;
};

/* The most binary-search steps a row lookup takes: tables of up to 2^AP_CFI_SEARCH_STEPS rows. */
#define AP_CFI_SEARCH_STEPS 24
#define AP_CFI_MAX_ROWS	    (1u << AP_CFI_SEARCH_STEPS)

/* How a stack walk is made (--stacks). */
enum ap_stack_mode {
	AP_STACKS_FP = 0,   /* the kernel's frame-pointer walk */
	AP_STACKS_AUTO = 1, /* CFI where a file has a table, a frame-pointer step elsewhere */
	AP_STACKS_CFI = 2,  /* CFI only: a frame without a table ends the stack */
};

/*
 * A process is a tgid and the program it runs: `image` is the low 32 bits of the inode of its
 * executable, which changes at exec, so a forked shell's allocations before it execs a program
 * are not mixed with the program's, whose addresses mean something else.
 */
struct ap_proc_key {
	__u32 pid; /* tgid */
	__u32 image;
};

/*
 * An executable mapping as the walks need it: where it is, the file offset of its start, its
 * file. The walks keep the ones they found per thread and per process (ap_proc_vmas), so a
 * frame's mapping is rarely looked up under the address space's lock; userspace fills a
 * process's entries from /proc/PID/maps when it attaches. Entries are written without a lock
 * by threads (and userspace): each carries ap_vma_sum() of its fields and its process, and one
 * torn by two writers, or left by another process in a reused slot, is taken for a miss.
 */
struct ap_vma_seen {
	__u64 start, end, off;
	struct ap_file_key key;
	__u32 exec, file;
	__u64 sum; /* ap_vma_sum() of the rest; 0: an empty entry */
};

#define AP_PROC_VMAS 32

struct ap_proc_vmas {
	struct ap_vma_seen e[AP_PROC_VMAS];
	__u32 next; /* the entry the next mapping found replaces, modulo AP_PROC_VMAS */
	__u32 pad;
};

/* `p` is the process the entry is for: an entry of another (an LRU slot reused) is a miss. */
static inline __u64 ap_vma_sum(const struct ap_vma_seen *v, const struct ap_proc_key *p)
{
	__u64 h = (v->start ^ ((__u64)p->pid << 32 | p->image)) * 0x9e3779b97f4a7c15ull;

	h = (h ^ v->end) * 0xff51afd7ed558ccdull;
	h = (h ^ v->off) * 0xc4ceb9fe1a85ec53ull;
	h = (h ^ v->key.ino) * 0x9e3779b97f4a7c15ull;
	h = (h ^ ((__u64)v->key.dev << 2 | (__u64)v->exec << 1 | v->file)) * 0xff51afd7ed558ccdull;
	return h | 1;
}

/*
 * --ops: the calls of each function named are counted per process, in the ops map; the probe's
 * cookie is the function's index in the list given.
 */
#define AP_MAX_OPS 16
struct ap_op_key {
	struct ap_proc_key proc;
	__u32 op;
	__u32 pad;
};

struct ap_count_key {
	struct ap_proc_key proc;
	__u64 stack; /* key into the stacks map: a 64-bit hash of the frames */
};

/*
 * Per (pid, stack) counters. `count`/`bytes` are what the probes saw (every call in exact
 * mode, the sampled calls otherwise); `w_objects` (Q16) and `w_bytes` are the unbiased
 * estimates of sampled mode, summed per allocation.
 */
struct ap_count {
	__u64 count;
	__u64 bytes;
	__u64 w_objects;
	__u64 w_bytes;
};

/*
 * The file-backed mapping holding a frame, recorded by the kernel when a stack is first seen,
 * so frames resolve even when the process is gone before userspace could read its maps (a
 * short-lived command) or unmapped the library since.
 */
struct ap_vma_key {
	struct ap_proc_key proc;
	__u64 start;
};

struct ap_vma {
	__u64 end;
	__u64 offset; /* file offset of `start`, in bytes */
	__u64 ino;
	__u32 dev; /* major << 20 | minor, as /proc/PID/maps prints it */
	__u32 pad;
	char name[32]; /* the file's name, without its directory */
};

/*
 * One mapping as the kernel holds it, from the task_vma iterator: on overlayfs /proc/PID/maps
 * shows the overlay's inode, but the mapping (and a uprobe placed through either path) is the
 * file underneath, so two containers sharing an image layer share it.
 */
struct ap_real_file {
	__u64 start;
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

/* Per process (ap_proc_key): its name, and a generation bumped at each new stack it shows. */
struct ap_proc {
	char comm[16];
	__u64 gen;
};

/*
 * A block allocated during the capture and not freed yet, by process and address. Its weights
 * are those its allocation added to its stack's counters, so in-use estimates are unbiased the
 * same way. Read at the end: what a process still running holds, what an exited one leaked.
 */
struct ap_live_key {
	struct ap_proc_key proc;
	__u64 addr;
};

struct ap_live {
	__u64 stack;
	__u64 size;
	__u64 w_objects; /* Q16 */
	__u64 w_bytes;
};

/*
 * What the programs tell userspace as it happens, through the `events` ring buffer: a process
 * showed its first stacks (read its mappings while it is alive), the dynamic linker finished
 * loading objects (a new program or a dlopen: resolve its allocator again), a watched process
 * exec'd (a statically linked program gets no dynamic linker event).
 */
enum ap_event_kind {
	AP_EV_NEW_STACKS = 1,
	AP_EV_LINKED = 2,
	AP_EV_EXEC = 3,
	AP_EV_WANT_TABLE = 4, /* struct ap_event_file: a walk met a file without a table */
	AP_EV_FORK = 5,	      /* a followed process started `proc` (its parent in `arg`) */
};

struct ap_event {
	__u32 kind;
	struct ap_proc_key proc;
	__u32 arg; /* AP_EV_FORK: the parent's tgid */
};

/* A process name the probes are limited to (--comm), as the kernel keeps it: 15 bytes and NUL. */
struct ap_comm {
	char c[16];
};

/* An event about one file a process maps: `ip` is an address in its mapping. */
struct ap_event_file {
	__u32 kind;
	struct ap_proc_key proc;
	__u32 pad;
	__u64 ip;
	struct ap_file_key file;
};

/*
 * Statistics, per CPU; every path that loses or skips an allocation has its own counter. One
 * list, X(name, kind, text), makes the enum (AP_STAT_<name>) and, in userspace, each counter's
 * user-facing text (ap_stat_descs), so a counter cannot be added without being reported. The
 * kind says where report.c writes "text: N":
 *   LOST  an allocation missing from the profile: a comment and a warning on stderr when
 *         nonzero, and part of the "lost allocations" total
 *   WARN  can change what the profile says: a comment and a warning when nonzero
 *   NOTE  a comment when nonzero
 *   CALLS, FREES, NEW, LIVE  a field of one of report.c's summary lines (calls; frees; throwing
 *         operator new; blocks live at the end), always written, in this list's order
 * The order of this list is the order of the comments. Texts are what tests and users grep for.
 */
#define AP_STATS(X)                                                                                \
	/* probe hits that reached the program */                                                  \
	X(CALLS, CALLS, "allocator calls seen")                                                    \
	/* a file's probes serve every process mapping it: calls of the others, not counted */     \
	X(FILTERED, NOTE, "allocator calls of processes not traced (skipped in the kernel)")       \
	/* a followed process started a child the table of followed processes had no room for */   \
	X(WATCHED_FULL, WARN, "child processes not followed: too many processes followed")         \
	/* children of the targets, not followed (-p, --no-follow) */                              \
	X(FORKS_NOT_FOLLOWED, WARN, "child processes of the targets not followed")                 \
	/* allocations recorded (all of them in exact mode) */                                     \
	X(SAMPLED, CALLS, "recorded")                                                              \
	/* allocator calling its own entry point, not counted again */                             \
	X(NESTED, CALLS, "nested calls inside the allocator")                                      \
	/* realloc(p, 0), overflowing sizes, requests beyond the address space */                  \
	X(NOT_ALLOC, CALLS, "not allocations (realloc to 0, impossible sizes)")                    \
	/* task storage could not be had */                                                        \
	X(NO_THREAD, LOST, "lost: no per-thread state could be allocated")                         \
	X(RA_FAULT, LOST, "lost: return address unreadable")                                       \
	X(STACKS_FULL, LOST, "lost: stack map full (raise --max-stacks)")                          \
	X(COUNTS_FULL, LOST, "lost: counter map full (raise --max-stacks)")                        \
	/* recorded with the caller frame only */                                                  \
	X(STACK_FAIL, WARN, "stack walk failed: recorded with the caller only")                    \
	/* stack deeper than AP_MAX_FRAMES: recorded truncated */                                  \
	X(STACK_TRUNC, WARN, "stacks truncated at 127 frames")                                     \
	/* procs map full: process named by pid only */                                            \
	X(PROCS_FULL, WARN, "process table full: names read from /proc instead")                   \
	/* notices the ring buffer had no room for */                                              \
	/* --ops: a call of an operation the ops map had no room for */                           \
	X(OPS_FULL, WARN, "operations not counted: the table of processes' operations is full")   \
	X(EVENTS_LOST, WARN,                                                                       \
	  "notices dropped (new stacks: mappings read at the next tick; new programs or "          \
	  "libraries: not followed)")                                                              \
	/* How stack walks ended before the thread's first frame (enum ap_stack_end). */         \
	X(END_NOT_CODE, NOTE, "stacks ended at a frame outside executable code")                  \
	X(END_NO_CFI, NOTE, "stacks ended in code without unwind information")                    \
	X(END_NO_TABLE, NOTE,                                                                      \
	  "stacks ended in a file without an unwind table (not built yet, or it could not be)")   \
	X(END_UNSUPPORTED, NOTE, "stacks ended at an unwind rule allocprof cannot follow")       \
	X(END_SIGNAL, NOTE, "stacks ended at a signal frame")                                     \
	X(END_READ_FAULT, NOTE, "stacks ended: the stack could not be read")                      \
	X(END_VMA_BUSY, NOTE,                                                                      \
	  "stacks ended: a frame's mapping could not be looked up (address space busy)")          \
	X(END_RBP_LOST, NOTE, "stacks ended: a frame's %rbp could not be recovered")              \
	/* frames stepped by frame pointer in --stacks auto (no table for their file) */          \
	X(FP_STEPS, NOTE, "frames walked with frame pointers (no unwind table for their file)")   \
	/* files a walk met without a table when no more could be asked for (cfi_wanted full) */ \
	X(CFI_WANTED_FULL, NOTE,                                                                   \
	  "frames in files no unwind table could be asked for (too many files)")                  \
	/* a pending return probe's trampoline, in place of a return address */                   \
	X(TRAMPOLINE, NOTE, "return addresses restored from the uretprobe trampoline")            \
	/* A frame these miss resolves through /proc instead, or counts as outside any mapping. */ \
	X(VMAS_FULL, NOTE, "mapping table full: frames resolved via /proc only")                   \
	/* a frame's mapping could not be looked up (mmap lock busy) */                            \
	X(VMA_FAIL, NOTE, "frame mappings the kernel could not look up (address space busy)")      \
	/* free/delete calls of a non-NULL block */                                                \
	X(FREES, FREES, "frees seen")                                                              \
	/* blocks forgotten: freed, or the old block of a realloc */                               \
	X(FREE_MATCHED, FREES, "blocks forgotten (freed, or moved by realloc)")                    \
	/* not a tracked block; report.c adds why (unsampled, allocated before the capture) */     \
	X(FREE_UNMATCHED, FREES, "frees of untracked blocks")                                      \
	/* the allocator's own inner free of a block already forgotten */                          \
	X(FREE_NESTED, FREES, "inner frees of the allocator")                                      \
	/* In-use tracking: the allocation is in alloc_*, missing from inuse_*. */                 \
	/* live-block map full (or no kernel memory) */                                            \
	X(LIVE_FULL, WARN,                                                                         \
	  "allocations not tracked for in-use: live-block map full (raise --max-live) or no "      \
	  "kernel memory")                                                                         \
	/* a pending call's return was not seen */                                                 \
	X(RET_MISSED, WARN, "allocations not tracked for in-use: their return was not seen")       \
	X(MEMPTR_FAULT, WARN,                                                                      \
	  "allocations not tracked for in-use: posix_memalign's result unreadable")                \
	/* recorded allocations that failed: taken back out */                                     \
	X(FAILED, LIVE, "recorded allocations that failed (taken back out of alloc_*)")            \
	/* sampled throwing operator new, waiting for its inner call (the line is written only */  \
	/* when there was one, and ends with how many were not tracked: armed - inner) */          \
	X(NEW_ARMED, NEW, "sampled throwing operator new")                                         \
	/* of those, whose inner allocator call gave the block */                                  \
	X(NEW_INNER, NEW, "its block found through the allocator call inside it")

#define AP_STAT_ENUM(name, kind, text) AP_STAT_##name,
enum ap_stat {
	AP_STATS(AP_STAT_ENUM) AP_STAT_NR,
};
#undef AP_STAT_ENUM

struct ap_stats {
	__u64 v[AP_STAT_NR];
};

/* Both compilers check: a layout the two sides disagree on fails the build. */
_Static_assert(sizeof(struct ap_lib) == 24 + AP_MAX_LIB_RANGES * 16, "ap_lib layout");
_Static_assert(sizeof(struct ap_stack) == 8 + AP_MAX_FRAMES * 8, "ap_stack layout");
_Static_assert(sizeof(struct ap_proc_key) == 8, "ap_proc_key layout");
_Static_assert(sizeof(struct ap_count_key) == 16, "ap_count_key layout");
_Static_assert(sizeof(struct ap_count) == 32, "ap_count layout");
_Static_assert(sizeof(struct ap_proc) == 24, "ap_proc layout");
_Static_assert(sizeof(struct ap_live_key) == 16, "ap_live_key layout");
_Static_assert(sizeof(struct ap_live) == 32, "ap_live layout");
_Static_assert(sizeof(struct ap_event) == 16, "ap_event layout");
_Static_assert(sizeof(struct ap_event_file) == 40, "ap_event_file layout");
_Static_assert(sizeof(struct ap_vma_key) == 16, "ap_vma_key layout");
_Static_assert(sizeof(struct ap_vma) == 64, "ap_vma layout");
_Static_assert(sizeof(struct ap_real_file) == 24, "ap_real_file layout");
_Static_assert(sizeof(struct ap_cfi_row) == 8, "ap_cfi_row layout");
_Static_assert(sizeof(struct ap_file_key) == 16, "ap_file_key layout");
_Static_assert(sizeof(struct ap_cfi_file) == 8, "ap_cfi_file layout");
_Static_assert(sizeof(struct ap_vma_seen) == 56, "ap_vma_seen layout");
_Static_assert(sizeof(struct ap_proc_vmas) == 8 + AP_PROC_VMAS * 56, "ap_proc_vmas layout");
_Static_assert(AP_CFI_OFF_SHIFT + AP_CFI_OFF_BITS == 32 &&
		       AP_CFI_RBP_SHIFT == AP_CFI_KIND_BITS &&
		       AP_CFI_OFF_SHIFT == AP_CFI_RBP_SHIFT + AP_CFI_RBP_BITS,
	       "unwind rule fields");

#ifndef __VMLINUX_H__
/* Userspace only: what each counter is called, and where report.c writes it. */
enum ap_stat_kind {
	AP_SK_LOST,
	AP_SK_WARN,
	AP_SK_NOTE,
	AP_SK_CALLS,
	AP_SK_FREES,
	AP_SK_NEW,
	AP_SK_LIVE,
};

struct ap_stat_desc {
	enum ap_stat_kind kind;
	const char *text;
};

#define AP_STAT_DESC(name, kind, text) [AP_STAT_##name] = { AP_SK_##kind, text },
static const struct ap_stat_desc ap_stat_descs[AP_STAT_NR] = { AP_STATS(AP_STAT_DESC) };
#undef AP_STAT_DESC
#endif

#endif /* ALLOCPROF_H */
