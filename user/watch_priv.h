/*
 * What the two halves of watch.c share, and only they: struct watch itself and the helpers
 * both use. watch_start.c begins watching (-p, -a, -- CMD); watch.c keeps the state and
 * follows what the processes do (forks, execs, dlopens, exits).
 */
#ifndef ALLOCPROF_WATCH_PRIV_H
#define ALLOCPROF_WATCH_PRIV_H

#include "allocator.h"
#include "capture.h"
#include "hashmap.h"
#include "linkmap.h"
#include "target.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bpf_link;

struct watch {
	struct watched *w; /* what -p named, or the command */
	size_t nw, wcap;
	struct child child; /* the command, with -- CMD */
	bool have_child;
	int epfd;		    /* every watched pidfd: readable when one exits */
	struct bpf_link *exec_link; /* the exec tracepoint, once something is watched */
	struct bpf_link *fork_link, *exit_link; /* following children, forgetting exits */
	struct hashmap *gens;	    /* ap_proc_key -> procs map generation last snapshotted */
	/*
	 * With file-scoped probes: the files (dev, ino) already resolved, so a process whose
	 * every object is one of them needs no new probe (most of -a's execs).
	 */
	struct hashmap *files;
	size_t followed;	    /* children followed (-- CMD) */
	struct hashmap *by_pid;	    /* pid -> index in w of its newest entry */
	size_t targets, targets_running; /* targets (not children followed), and not exited */
	size_t discovered;	    /* -a: processes whose new files were probed after the start */
	struct ap_proc_key *snap;   /* from events: processes to snapshot */
	size_t nsnap, snap_cap;
	struct relink {
		struct ap_proc_key proc; /* from events: processes to resolve again */
		uint64_t since;		 /* when first asked: a dynamic linker gets 2 s */
		bool linked;		 /* its dynamic linker said it is done */
		bool waiting;		 /* an exec'd dynamic program: wait for that */
	} * relink;
	size_t nrelink, relink_cap;
	size_t probes;
};

/* How a watched process's exit is seen: its pidfd, or (the command's) SIGCHLD. */
enum exit_seen {
	EXIT_BY_PIDFD,
	EXIT_BY_PIDFD_FOLLOWED, /* a child on_fork put in the table */
	EXIT_BY_SIGCHLD,
};

/* The pid a probe is attached for: the target's, or -1 (every process) when file-scoped. */
pid_t scope(const struct capture *c, pid_t pid);
/* With shared probes: were all of `lo`'s objects probed before (then they serve it)? */
bool objects_known(struct capture *c, const struct load_order *lo);
/* `lo`'s objects are probed now. */
void objects_mark_known(struct capture *c, const struct load_order *lo);
/* The dynamic linker's hook on `rtld` (a /proc/PID/root path), once per file when shared. */
int hook_linker(struct capture *c, pid_t pid, const char *rtld);
/* The exec, fork and exit tracepoints, attached once. */
void follow_start(struct capture *c);
/* The newest entry of `pid`, or NULL. */
struct watched *find_watched(struct capture *c, pid_t pid);
/* Its executable now (malloc'd). */
void read_exe(struct watched *w);
/* `pid` is watched from now on: its exit seen as `seen` says; `parent` 0 for a target. */
void add_watched(struct capture *c, pid_t pid, enum exit_seen seen, pid_t parent);
/* Attaches `plan` for `pid` as scoped; says what is new. 0, -ESRCH (it exited) or -errno. */
int attach_plan(struct capture *c, pid_t pid, const struct alloc_plan *plan, const char *what,
		size_t *added_out);

#endif
