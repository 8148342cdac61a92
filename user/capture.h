/*
 * The state of one capture, shared by the files that run it: record.c (the order of things and
 * the event loop), load.c (the BPF object's configuration and load), scope.c (which processes
 * count, how probes are scoped), watch_start.c and watch.c (the processes watched:
 * resolving, attaching, following their forks, execs and dlopens) and report.c (what is said about it, in the
 * profile and on stderr). Only these include it, and the unit test of report.c's statistics.
 */
#ifndef ALLOCPROF_CAPTURE_H
#define ALLOCPROF_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "allocator.h"
#include "allocprof.h"
#include "options.h"
#include "target.h"

struct allocprof_bpf;
struct attacher;
struct addrspaces;
struct profile;
struct collect_stats;

/* One process the capture was asked to watch (-p), or the started command. */
struct watched {
	pid_t pid;
	int pidfd; /* -1 for the child, whose exit SIGCHLD reports */
	bool exited;
	char comm[16];
	char *exe;	/* its executable now, as /proc/PID/exe names it (malloc'd, "" if not) */
	pid_t parent;	/* followed: the watched process that started it; 0 for a target */
};

struct watch;
struct notes;
struct unwind;

/*
 * What the three files share. Each piece has one owner: record.c creates and frees the BPF
 * object, the attacher, the address spaces, the unwind tables and the notes, and alone writes the times; the
 * processes watched are watch.c's (struct watch); the notes' text is report.c's.
 */
struct capture {
	struct record_opts o;
	struct allocprof_bpf *skel;
	struct attacher *att;
	struct addrspaces *as;
	struct unwind *unwind;	    /* unwind.c; NULL with --stacks fp */
	struct watch *watch;	    /* watch.c */
	struct notes *notes;	    /* report.c: lines for the profile's comments */
	struct placement placement; /* how every plan's probe sites are chosen */
	struct rlimit nofile;	    /* as allocprof was started: what the command gets */
	bool sessions;		    /* in-use returns through uprobe sessions */
	/*
	 * Each file's probes serve every process that maps it, filtered in BPF (-a, -- CMD
	 * followed, many pids); else each target has links of its own (watch.c says why).
	 */
	bool file_scope;
	const char *no_sessions;    /* why not, when in-use tracking uses return probes */
	uint32_t ops_found;	    /* bit n: o.ops[n] has probes (attach_plan) */
	uint32_t ops_same;	    /* bit n: o.ops[n] is another name's function */
	bool ops_missing;	    /* an --ops function found nowhere: a bad command line */
	uint64_t start_mono, start_real, end_mono;
	bool stop;
};

/* watch.c and watch_start.c: the processes watched, from resolving them to their exit. */
struct watch *watch__new(void);

/*
 * scope.c. Before the BPF object is loaded: how probes are scoped (c->file_scope) and which
 * processes the programs count (the filters of the options).
 */
void scope_configure(struct capture *c, struct allocprof_bpf *s);
/* After it is loaded: the filter maps filled. 0, or -errno said in one line. */
int scope_fill_filters(struct capture *c);
/* Closes what it holds (pidfds, the exec tracepoint's link). */
void watch__free(struct watch *w);
int watch_pids(struct capture *c);
int watch_all(struct capture *c);
/* Starts the command with its probes in place; it runs when this returns 0. */
int watch_command(struct capture *c);
void watch_event(struct capture *c, const struct ap_event *ev);
void watch_handle_events(struct capture *c);
/* Events wait for a dynamic linker to finish: handle them again within milliseconds. */
bool watch_pending(const struct capture *c);
void watch_refresh_maps(struct capture *c);
void watch_reap_child(struct capture *c);
/* Readable when a watched process (not the command: SIGCHLD) may have exited. */
int watch__exit_fd(const struct watch *w);
/* After watch__exit_fd was readable: what exited is not followed any more (its pid is free). */
void watch_check_exits(struct capture *c);
/* At the end, with the probes: execs are not followed any more. */
void watch_stop_following(struct capture *c);
/*
 * Then, once the last events are read: what was still waiting is said in the comments, and
 * every process with stacks since its last snapshot has its mappings read.
 */
void watch_finish(struct capture *c);
bool watch_all_exited(const struct capture *c);
/* The started command (NULL without one): its pid, and its status once it exited. */
const struct child *watch__child(const struct watch *w);
/* The processes watched: the targets in the order given, then those followed (-a: none). */
const struct watched *watch__targets(const struct watch *w, size_t *n);
size_t watch__probes(const struct watch *w);

/* report.c */
struct notes *notes__new(void);
void notes__free(struct notes *n);
/* A line for the profile's comments (said once, however often it is added). */
/* How stacks were walked (--stacks) and what the unwind tables took, as notes. */
void report_unwind(struct capture *c);
void report_note(struct capture *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_prog_time(const struct capture *c);
void report_comments(const struct capture *c, struct profile *p, const struct collect_stats *st,
		     uint64_t duration);
void report_losses(const struct collect_stats *st);
/* On stderr: allocations per operation (--ops), the whole profile's. */
void report_ops_summary(const struct capture *c, const struct collect_stats *st);
/* The comments on how the stacks' walks ended, by weight (report_comments writes them). */
void report_stack_shape(struct profile *p, const struct collect_stats *st);
/* On stderr, when most of the weight is in stacks of one or two frames that ended early. */
void report_shallow(const struct collect_stats *st, int stacks);

#endif
