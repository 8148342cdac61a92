/*
 * Attaching uprobes: turns plans into links, one per (process, file, offset), never two on one
 * site, and keeps the BPF side's table of allocator function ranges per library up to date.
 * Owns the links; knows nothing about how a plan was made or what the program does.
 */
#ifndef ALLOCPROF_ATTACH_H
#define ALLOCPROF_ATTACH_H

#include <stddef.h>
#include <sys/types.h>

#include "allocator.h"

struct bpf_program;
struct attacher;

/*
 * The programs placed on a plan's sites. Allocation functions get `alloc` at their entry and,
 * when set, `alloc_ret` as a classic return probe; or, when `session` is set instead, one
 * uprobe session program for both (the entry decides whether the return runs). Free functions
 * get `free`, or nothing when it is NULL; operations (--ops) get `op`.
 */
struct attach_progs {
	struct bpf_program *alloc;
	struct bpf_program *alloc_ret;
	struct bpf_program *session;
	struct bpf_program *free;
	/* free was loaded as a uprobe_multi program (attach_multi_type()): one link per file */
	bool free_multi;
	/* the dynamic linker's hook program was loaded as a uprobe_multi program too */
	bool rtld_multi;
	/* operations' sites (--ops): an entry probe that counts, NULL without --ops */
	struct bpf_program *op;
	bool op_multi; /* loaded as a uprobe_multi program */
};

/* The attach type of a uprobe_multi program (BPF_TRACE_UPROBE_MULTI, Linux 6.6+). */
int attach_multi_type(void);

/* `libs_fd`: the libs map, or -1 when the program does no nested-call check (the floor). */
struct attacher *attacher__new(const struct attach_progs *progs, int libs_fd);

/*
 * Can this kernel attach uprobe sessions (BPF_TRACE_UPROBE_SESSION, Linux 6.13+)? Tried for
 * real, once: a program is loaded and attached to a function of our own. Its reason when not.
 */
bool attach_sessions_supported(const char **why);

/* The expected attach type a session program must be loaded with. */
int attach_session_type(void);
void attacher__free(struct attacher *a);

/*
 * Attaches every allocation site of `plan` for `pid` (-1: every process). 0 or -errno with a
 * message printed, or -ESRCH without one when the process exited meanwhile; sites already
 * attached for that pid are skipped. *added counts new links.
 */
int attacher__add_plan(struct attacher *a, pid_t pid, const struct alloc_plan *plan, size_t *added);

/*
 * Attaches `prog` at the dynamic linker's _dl_debug_state in `rtld_path` (opened as given)
 * for `pid` (-1: every process), with the cookie the program needs to find r_debug. 0 or
 * -errno.
 */
int attacher__add_rtld(struct attacher *a, struct bpf_program *prog, pid_t pid,
		       const char *rtld_path);

/*
 * Fills in the files `plan`'s objects really are in process `pid`, from the task_vma iterator
 * program `iter`: on overlayfs two paths (two containers' views of one image layer) can be one
 * file, and a system-wide probe placed through both would run twice per call. 0 or -errno.
 */
int attacher__real_files(struct bpf_program *iter, pid_t pid, struct alloc_plan *plan);

#endif
