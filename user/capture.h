/*
 * The state of one capture, shared by the files that run it: record.c (the order of things and
 * the event loop), watch.c (the processes watched: resolving, attaching, following their execs
 * and dlopens) and report.c (what is said about it, in the profile and on stderr). Only these
 * three include it.
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
struct hashmap;
struct profile;
struct collect_stats;
struct bpf_link;

/* One process the capture was asked to watch (-p), or the started command. */
struct watched {
	pid_t pid;
	int pidfd; /* -1 for the child, whose exit SIGCHLD reports */
	bool exited;
	char comm[16];
	char exe[4096]; /* its executable now, as /proc/PID/exe names it */
};

struct capture {
	struct record_opts o;
	struct allocprof_bpf *skel;
	struct attacher *att;
	struct bpf_link *exec_link; /* the exec tracepoint, once something is watched */
	struct addrspaces *as;
	struct child child;
	bool have_child;
	struct rlimit nofile; /* as allocprof was started: what the command gets */
	struct watched *w;
	size_t nw, wcap;
	struct hashmap *gens;	  /* ap_proc_key -> procs map generation last snapshotted */
	struct ap_proc_key *snap; /* from events: processes to snapshot */
	size_t nsnap, snap_cap;
	struct relink {
		struct ap_proc_key proc; /* from events: processes to resolve again */
		uint64_t since;		 /* when first asked: a dynamic linker gets 2 s */
		bool linked;		 /* its dynamic linker said it is done */
		bool waiting;		 /* an exec'd dynamic program: wait for that */
	} * relink;
	size_t nrelink, relink_cap;
	char **notes; /* lines for the profile's comments: allocators, late attaches */
	size_t nnotes, notes_cap;
	struct placement placement; /* how every plan's probe sites are chosen */
	size_t probes;
	bool sessions;		 /* in-use returns through uprobe sessions */
	const char *no_sessions; /* why not, when in-use tracking uses return probes */
	uint64_t start_mono, start_real, end_mono;
	bool stop;
};

/* watch.c */
int watch_pids(struct capture *c);
int watch_all(struct capture *c);
int watch_command(struct capture *c);
void watch_event(struct capture *c, const struct ap_event *ev);
void watch_handle_events(struct capture *c);
/* Events wait for a dynamic linker to finish: handle them again within milliseconds. */
bool watch_pending(const struct capture *c);
void watch_refresh_maps(struct capture *c);
void watch_reap_child(struct capture *c);
/* A watched process is gone: its pid may be reused, nothing about it is followed any more. */
void watch_exited(struct capture *c, struct watched *w);
/* At the end: what was still waiting is said in the comments. */
void watch_give_up(struct capture *c);
bool watch_all_exited(const struct capture *c);
void watch_note(struct capture *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* report.c */
void report_prog_time(const struct capture *c);
void report_comments(const struct capture *c, struct profile *p, const struct collect_stats *st,
		     uint64_t duration);
void report_losses(const struct collect_stats *st);

#endif
