/*
 * The processes a capture watches, once watch_start.c has begun watching them: their state
 * (struct watch), and following them as they change: a child forked (followed or counted), a
 * new program (exec) or new libraries (dlopen) resolved again when the programs' events say
 * so, mappings read while the processes are alive, exits seen. Never stops or signals a
 * watched process.
 */
#include "addrspace.h"
#include "allocator.h"
#include "allocprof.skel.h"
#include "attach.h"
#include "capture.h"
#include "collect.h"
#include "elffile.h"
#include "hashmap.h"
#include "linkmap.h"
#include "procmaps.h"
#include "unwind.h"
#include "util.h"
#include "watch_priv.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <poll.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>


struct watch *watch__new(void)
{
	struct watch *w = xcalloc(1, sizeof(*w));

	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->gens = hashmap__new();
	w->files = hashmap__new();
	w->by_pid = hashmap__new();
	return w;
}

void watch__free(struct watch *w)
{
	if (!w)
		return;
	bpf_link__destroy(w->exec_link);
	bpf_link__destroy(w->fork_link);
	bpf_link__destroy(w->exit_link);
	for (size_t i = 0; i < w->nw; i++) {
		if (w->w[i].pidfd >= 0)
			close(w->w[i].pidfd);
		free(w->w[i].exe);
	}
	if (w->epfd >= 0)
		close(w->epfd);
	free(w->w);
	hashmap__free(w->gens);
	hashmap__free(w->files);
	hashmap__free(w->by_pid);
	free(w->snap);
	free(w->relink);
	free(w);
}

int watch__exit_fd(const struct watch *w)
{
	return w->epfd;
}

const struct child *watch__child(const struct watch *w)
{
	return w->have_child ? &w->child : NULL;
}

const struct watched *watch__targets(const struct watch *w, size_t *n)
{
	*n = w->nw;
	return w->w;
}

size_t watch__probes(const struct watch *w)
{
	return w->probes;
}

/* The pid a probe is attached for: the target's, or -1 (every process) when file-scoped. */
pid_t scope(const struct capture *c, pid_t pid)
{
	return c->file_scope ? -1 : pid;
}

/* A file resolved (or a dynamic linker hooked) once for all processes: file-scoped probes. */
struct file_id {
	uint64_t dev, ino;
	uint64_t rtld; /* 1: its dynamic-linker hook */
};

static bool file_known(struct capture *c, uint64_t dev, uint64_t ino, bool rtld, bool mark)
{
	struct file_id k = { dev, ino, rtld };
	uint64_t v;

	if (hashmap__get(c->watch->files, &k, sizeof(k), &v))
		return true;
	if (mark)
		hashmap__put(c->watch->files, &k, sizeof(k), 1);
	return false;
}

/*
 * Were all of `lo`'s objects resolved before (so their probes, shared, are in this process
 * already)? Only with file-scoped probes; an object whose file is not known is new.
 */
bool objects_known(struct capture *c, const struct load_order *lo)
{
	if (!c->file_scope || !lo->n)
		return false;
	for (size_t i = 0; i < lo->n; i++)
		if (!lo->o[i].ino || !file_known(c, lo->o[i].dev, lo->o[i].ino, false, false))
			return false;
	return true;
}

void objects_mark_known(struct capture *c, const struct load_order *lo)
{
	for (size_t i = 0; c->file_scope && i < lo->n; i++)
		if (lo->o[i].ino)
			file_known(c, lo->o[i].dev, lo->o[i].ino, false, true);
}

/* The dynamic linker's hook on `rtld` (a /proc/PID/root path), once per file when shared. */
int hook_linker(struct capture *c, pid_t pid, const char *rtld)
{
	struct stat st;

	bool shared = c->file_scope && !stat(rtld, &st);
	int err;

	if (shared && file_known(c, (uint64_t)st.st_dev, (uint64_t)st.st_ino, true, false))
		return 0;
	err = attacher__add_rtld(c->att, c->skel->progs.on_rtld_state, scope(c, pid), rtld);
	/* Known once it is hooked: a failure is tried again with the next process. */
	if (!err && shared)
		file_known(c, (uint64_t)st.st_dev, (uint64_t)st.st_ino, true, true);
	return err;
}

/*
 * The tracepoints that follow processes: exec (a new program to resolve), and for -p and
 * -- CMD fork (a child to follow, or to count as not followed) and exit (its pid leaves the
 * table before it can be reused). Attached once, when the first process is watched.
 */
void follow_start(struct capture *c)
{
	struct watch *w = c->watch;

	if (w->exec_link)
		return;
	w->exec_link = bpf_program__attach(c->skel->progs.on_exec);
	if (!w->exec_link)
		ap_warn("execs will not be followed: %s", strerror(errno));
	if (c->o.all)
		return;
	w->fork_link = bpf_program__attach(c->skel->progs.on_fork);
	w->exit_link = bpf_program__attach(c->skel->progs.on_exit);
	if (!w->fork_link || !w->exit_link)
		ap_warn("child processes will not be followed: %s", strerror(errno));
}

/* The newest entry of `pid`: an older one is a process that exited, whose pid was reused. */
struct watched *find_watched(struct capture *c, pid_t pid)
{
	uint64_t i;

	return hashmap__get(c->watch->by_pid, &pid, sizeof(pid), &i) ? &c->watch->w[i] : NULL;
}

/* Its executable now (a build follows thousands of processes: not 4 KiB each). */
void read_exe(struct watched *w)
{
	char exe[4096];

	proc_read_exe(w->pid, exe, sizeof(exe));
	free(w->exe);
	w->exe = xstrdup(exe);
}


/* Its execs are reported from now on (the tracepoint is attached on first use). */
void add_watched(struct capture *c, pid_t pid, enum exit_seen seen, pid_t parent)
{
	struct watched w = { .pid = pid, .pidfd = -1, .parent = parent };
	size_t idx = c->watch->nw;
	__u32 key = (__u32)pid;
	__u8 one = 1;

	if (seen != EXIT_BY_SIGCHLD) {
		w.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		/* Gone already: nothing will report its exit, so it has exited. */
		w.exited = w.pidfd < 0 && errno == ESRCH;
	}
	proc_read_comm(pid, w.comm);
	read_exe(&w);
	if (w.pidfd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = idx };

		if (epoll_ctl(c->watch->epfd, EPOLL_CTL_ADD, w.pidfd, &ev))
			ap_warn("pid %d: its exit will be seen only at the end: %s", (int)pid,
				strerror(errno));
	}
	grow((void **)&c->watch->w, &c->watch->wcap, c->watch->nw + 1, sizeof(*c->watch->w));
	c->watch->w[c->watch->nw++] = w;
	hashmap__put(c->watch->by_pid, &pid, sizeof(pid), idx);
	c->watch->targets += !parent;
	c->watch->targets_running += !w.exited && !parent;
	/* A followed child is in the table already (on_fork), or out of it again if it exited. */
	if (seen != EXIT_BY_PIDFD_FOLLOWED &&
	    bpf_map_update_elem(bpf_map__fd(c->skel->maps.watched), &key, &one, BPF_ANY))
		ap_warn("pid %d: it will not be traced: %s", (int)pid, strerror(errno));
	follow_start(c);
}


static void queue(struct ap_proc_key **list, size_t *n, size_t *cap, const struct ap_proc_key *k)
{
	for (size_t i = 0; i < *n; i++)
		if ((*list)[i].pid == k->pid && (*list)[i].image == k->image)
			return;
	grow((void **)list, cap, *n + 1, sizeof(**list));
	(*list)[(*n)++] = *k;
}

static bool gone(struct capture *c, struct watched *w);

/* A followed process started a child: the kernel traces it already; follow its exit, execs. */
static void followed(struct capture *c, const struct ap_event *ev)
{
	pid_t pid = (pid_t)ev->proc.pid;

	struct watched *w = find_watched(c, pid);

	if (w && !gone(c, w))
		return;
	add_watched(c, pid, EXIT_BY_PIDFD_FOLLOWED, (pid_t)ev->arg);
	c->watch->followed++;
	ap_info("pid %d (%s): started by pid %d, followed", (int)pid,
		c->watch->w[c->watch->nw - 1].comm, (int)ev->arg);
}

void watch_event(struct capture *c, const struct ap_event *ev)
{
	if (ev->kind == AP_EV_NEW_STACKS) {
		queue(&c->watch->snap, &c->watch->nsnap, &c->watch->snap_cap, &ev->proc);
		return;
	}
	if (ev->kind == AP_EV_FORK) {
		followed(c, ev);
		return;
	}
	if (ev->kind != AP_EV_LINKED && ev->kind != AP_EV_EXEC)
		return;
	/*
	 * A new program, or new libraries: its files are opened now, while it is alive (a
	 * short-lived process may be gone before its first stacks are announced).
	 */
	queue(&c->watch->snap, &c->watch->nsnap, &c->watch->snap_cap, &ev->proc);
	for (size_t i = 0; i < c->watch->nrelink; i++) {
		if (memcmp(&c->watch->relink[i].proc, &ev->proc, sizeof(ev->proc)))
			continue;
		c->watch->relink[i].linked |= ev->kind == AP_EV_LINKED;
		return;
	}
	grow((void **)&c->watch->relink, &c->watch->relink_cap, c->watch->nrelink + 1,
	     sizeof(*c->watch->relink));
	c->watch->relink[c->watch->nrelink++] = (struct relink){
		.proc = ev->proc,
		.since = now_ns(),
		.linked = ev->kind == AP_EV_LINKED,
	};
}

/* A watched process is gone: its pid may be reused, nothing about it is followed any more. */
static void watch_exited(struct capture *c, struct watched *w)
{
	__u32 key = (__u32)w->pid;
	size_t left = 0;

	if (w->exited)
		return;
	w->exited = true;
	/* Closed: a build's thousands of followed processes would otherwise keep one each. */
	if (w->pidfd >= 0) {
		epoll_ctl(c->watch->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
		close(w->pidfd);
		w->pidfd = -1;
	}
	/* on_exit took it out already, when attached: its pid may be a new child's by now. */
	if (!c->watch->exit_link)
		bpf_map_delete_elem(bpf_map__fd(c->skel->maps.watched), &key);
	if (!w->parent) {
		left = --c->watch->targets_running;
		ap_info("pid %d (%s) exited; %zu of %zu target%s still running", (int)w->pid,
			w->comm, left, c->watch->targets, c->watch->targets == 1 ? "" : "s");
	} else {
		ap_info("pid %d (%s), followed, exited", (int)w->pid, w->comm);
	}
}

/* Has the process behind `w` exited (so its pid may already be someone else's)? */
static bool gone(struct capture *c, struct watched *w)
{
	struct pollfd pfd = { .fd = w->pidfd, .events = POLLIN };

	if (!w->exited && w->pidfd >= 0 && poll(&pfd, 1, 0) == 1)
		watch_exited(c, w);
	return w->exited;
}

/*
 * A watched process has a new program, or new libraries: resolve its allocator again and
 * attach what is new. Late by nature (the process runs on meanwhile), so it is said in the
 * profile when it added probes after the process started.
 */
enum relink_result { RELINK_DONE, RELINK_RETRY };

static enum relink_result relink(struct capture *c, struct relink *e)
{
	pid_t pid = (pid_t)e->proc.pid;
	struct watched *w = find_watched(c, pid);
	bool late = now_ns() - e->since >= 2000000000ull;
	struct alloc_plan plan;
	struct load_order lo;
	char what[64], comm[16], *rtld = NULL;
	uint32_t image;
	size_t added = 0;
	int err;

	/*
	 * Gone (its pid may be someone else's now), or already another program. With -a any
	 * process is resolved (it has no entry of its own), else only those watched.
	 */
	if (c->o.all ? pid_exited(pid) : !w || gone(c, w))
		return RELINK_DONE;
	if (proc_image(pid, &image) || image != e->proc.image)
		return RELINK_DONE;
	/* An exec'd dynamic program, its linker already probed: wait for its "done". */
	if (e->waiting && !e->linked && !late)
		return RELINK_RETRY;
	proc_read_comm(pid, comm);
	if (w) {
		memcpy(w->comm, comm, sizeof(w->comm));
		read_exe(w);
	}
	snprintf(what, sizeof(what), "pid %d (%s)", (int)pid, comm);
	err = load_order__of_pid(pid, &lo);
	/* Gone, or not ours to read any more (a setuid program): nothing to wait for. */
	if (err == -ENOENT || err == -EACCES || err == -EPERM)
		return RELINK_DONE;
	if (err)
		return late ? RELINK_DONE : RELINK_RETRY;
	if (lo.rtld_path) {
		/* Its next program or dlopen is reported by its (possibly new) linker. */
		rtld = proc_path(pid, lo.rtld_path);
		if (hook_linker(c, pid, rtld))
			ap_info("%s: libraries it loads later will not be followed", what);
		free(rtld);
		/*
		 * Handled after the fact: the linker may still be at work. Only its own report
		 * that its list is consistent says the list read now is whole (an exec is
		 * reported before the linker even starts, and r_debug reads as consistent
		 * before it begins); past 2 s, whatever is there is taken.
		 */
		if (!e->linked && !late) {
			e->waiting = true;
			load_order__free(&lo);
			return RELINK_RETRY;
		}
		if ((!lo.rtld_consistent || lo.n < 2) && !late) {
			load_order__free(&lo);
			return RELINK_RETRY;
		}
	}
	/* Shared probes: a process of files resolved before has them all already. */
	if (objects_known(c, &lo)) {
		load_order__free(&lo);
		goto snapshot;
	}
	err = alloc_plan__resolve(&lo, &c->placement, &plan);
	/* Nothing to probe in these files: nothing to look for again. */
	if (err == -ENOENT)
		objects_mark_known(c, &lo);
	if (!err) {
		/* Shared probes: another container's view of a file probed already is that file. */
		if (c->file_scope)
			attacher__real_files(c->skel->progs.real_files, pid, &plan);
		err = attach_plan(c, pid, &plan, what, &added);
		/* Known once probed: after a failure the next process of these files tries. */
		if (!err)
			objects_mark_known(c, &lo);
		if (err == -ESRCH)
			report_note(c, "%s: exited before its allocator was probed", what);
		else if (err)
			report_note(c,
				    "%s: its allocator could not be probed: its allocations are "
				    "not in the profile",
				    what);
		alloc_plan__free(&plan);
	} else if (err == -ENOENT && !c->o.all) {
		report_note(c, "%s: no recognisable allocator in %s", what, w->exe);
	}
	load_order__free(&lo);
	if (added && c->o.all)
		c->watch->discovered++;
snapshot:
	addrspaces__snapshot(c->as, pid);
	unwind__prime(c->unwind, pid);
	if (added)
		report_note(c,
			    "%s: %zu probes attached after it started running: its allocations "
			    "through them before that are not in the profile",
			    what, added);
	return RELINK_DONE;
}

void watch_handle_events(struct capture *c)
{
	size_t keep = 0;

	/* Snapshots first: they are cheap, and what they read may be gone in milliseconds. */
	for (size_t i = 0; i < c->watch->nsnap; i++)
		addrspaces__snapshot(c->as, (pid_t)c->watch->snap[i].pid);
	c->watch->nsnap = 0;
	/* What cannot be done yet stays queued (watch_pending), until done or gone. */
	for (size_t i = 0; i < c->watch->nrelink; i++)
		if (relink(c, &c->watch->relink[i]) == RELINK_RETRY)
			c->watch->relink[keep++] = c->watch->relink[i];
	c->watch->nrelink = keep;
}

void watch_stop_following(struct capture *c)
{
	bpf_link__destroy(c->watch->exec_link);
	bpf_link__destroy(c->watch->fork_link);
	bpf_link__destroy(c->watch->exit_link);
	c->watch->exec_link = c->watch->fork_link = c->watch->exit_link = NULL;
}

void watch_finish(struct capture *c)
{
	struct watch *wt = c->watch;

	if (wt->followed)
		report_note(c, "processes followed: %zu (started by the command or its children)",
			    wt->followed);
	if (wt->discovered)
		report_note(c,
			    "processes that brought allocator files probed after the start: %zu",
			    wt->discovered);

	watch_check_exits(c); /* a pid that exited meanwhile may be another process's now */
	for (size_t i = 0; i < wt->nrelink; i++) {
		struct watched *w = find_watched(c, (pid_t)wt->relink[i].proc.pid);

		if (w && !w->exited)
			report_note(
				c,
				"pid %d (%s): its new program was still loading when the capture "
				"ended; its allocator was not resolved again",
				(int)w->pid, w->comm);
	}
	wt->nrelink = 0;
	watch_handle_events(c); /* the snapshots still queued */
	/*
	 * Every process with stacks since its last snapshot (the procs map's generations), not
	 * every target: a thousand idle ones took 0.3 s at the end for nothing.
	 */
	watch_refresh_maps(c);
}

void watch_check_exits(struct capture *c)
{
	struct epoll_event ev[64];
	int n;

	while ((n = epoll_wait(c->watch->epfd, ev, ARRAY_SIZE(ev), 0)) > 0)
		for (int k = 0; k < n; k++)
			if (ev[k].data.u64 < c->watch->nw)
				watch_exited(c, &c->watch->w[ev[k].data.u64]);
}

/*
 * Snapshots the mappings of processes that showed new stacks since the last look; catches
 * what the ring buffer had no room to announce.
 */
void watch_refresh_maps(struct capture *c)
{
	struct ap_proc_key *keys;
	struct ap_proc *vals;
	size_t n;

	struct hashmap *gens;

	if (map_read_all(bpf_map__fd(c->skel->maps.procs), sizeof(*keys), sizeof(*vals),
			 (void **)&keys, (void **)&vals, &n))
		return;
	/* Made anew from the map: a process released from it (periodic files) is forgotten. */
	gens = hashmap__new();
	for (size_t i = 0; i < n; i++) {
		uint64_t seen = 0;

		hashmap__put(gens, &keys[i], sizeof(keys[i]), vals[i].gen);
		if (hashmap__get(c->watch->gens, &keys[i], sizeof(keys[i]), &seen) &&
		    seen == vals[i].gen)
			continue;
		/* Gone, or running another program now: nothing to read for this one. */
		addrspaces__snapshot(c->as, (pid_t)keys[i].pid);
	}
	hashmap__free(c->watch->gens);
	c->watch->gens = gens;
	free(keys);
	free(vals);
}

void watch_reap_child(struct capture *c)
{
	struct watched *w;
	int status;

	if (!c->watch->have_child || c->watch->child.exited)
		return;
	if (waitpid(c->watch->child.pid, &status, WNOHANG) != c->watch->child.pid)
		return;
	c->watch->child.status = status;
	c->watch->child.exited = true;
	w = find_watched(c, c->watch->child.pid);
	if (w)
		watch_exited(c, w);
}

/* Something to retry soon: not what waits for its dynamic linker's event (it wakes the loop). */
bool watch_pending(const struct capture *c)
{
	uint64_t now = now_ns();

	for (size_t i = 0; i < c->watch->nrelink; i++) {
		const struct relink *e = &c->watch->relink[i];

		if (!e->waiting || e->linked || now - e->since >= 2000000000ull)
			return true;
	}
	return false;
}

/* The capture's end: every target (not the children followed: the command's end is its own). */
bool watch_all_exited(const struct capture *c)
{
	return !c->o.all && c->watch->nw && !c->watch->targets_running;
}
