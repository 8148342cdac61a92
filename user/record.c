/*
 * `allocprof record`: runs one capture from the command line to the written profile. Owns the
 * order of things (check, resolve, attach, wait, detach, collect, write, report) and the
 * event loop; the work itself is done by the modules it calls.
 */
#include "record.h"
#include "addrspace.h"
#include "allocator.h"
#include "allocprof.skel.h"
#include "attach.h"
#include "collect.h"
#include "elffile.h"
#include "hashmap.h"
#include "linkmap.h"
#include "options.h"
#include "outfile.h"
#include "pprof.h"
#include "preflight.h"
#include "profile.h"
#include "sampling.h"
#include "symbolize.h"
#include "target.h"
#include "top.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS	 1000
#define MAX_POLL 1024

/* One process the capture was asked to watch (-p), or the started command. */
struct watched {
	pid_t pid;
	int pidfd; /* -1 for the child, whose exit SIGCHLD reports */
	bool exited;
	char comm[16];
	char exe[4096]; /* its executable, as /proc/PID/exe names it after exec */
};

struct capture {
	struct record_opts o;
	struct allocprof_bpf *skel;
	struct attacher *att;
	struct addrspaces *as;
	struct out_file *out;
	char *out_path;
	struct child child;
	bool have_child;
	uint64_t child_mm; /* the address space the child was last stopped and attached in */
	struct watched *w;
	size_t nw, wcap;
	struct hashmap *gens; /* ap_proc_key -> procs map generation last snapshotted */
	struct ring_buffer *events;
	pid_t *dirty; /* pids announced with new stacks, to snapshot */
	size_t ndirty, dirty_cap;
	char **allocators;    /* one line per distinct allocator, for the comments */
	size_t nalloc, alloc_cap;
	uint64_t start_mono, start_real, end_mono;
	int sigfd;
	bool stop;
	bool progress;
	size_t probes;
};

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG && verbose < 2)
		return 0;
	if (level == LIBBPF_INFO && verbose < 1)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static const char *default_output(char *buf, size_t len)
{
	char host[64] = "host";
	time_t t = time(NULL);
	struct tm tm;

	gethostname(host, sizeof(host) - 1);
	host[strcspn(host, ".")] = 0;
	localtime_r(&t, &tm);
	snprintf(buf, len, "allocprof-%s-%04d%02d%02dT%02d%02d%02d.pb.gz", host, tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return buf;
}

static void read_comm(pid_t pid, char comm[16])
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	comm[0] = 0;
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, 16, f))
		comm[strcspn(comm, "\n")] = 0;
	fclose(f);
}

static void read_exe(pid_t pid, char *exe, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, len - 1);
	exe[n > 0 ? n : 0] = 0;
}

static void note_allocator(struct capture *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < c->nalloc; i++)
		if (!strcmp(c->allocators[i], buf))
			return;
	grow((void **)&c->allocators, &c->alloc_cap, c->nalloc + 1, sizeof(*c->allocators));
	c->allocators[c->nalloc++] = xstrdup(buf);
}

/* ---- the BPF object ------------------------------------------------------------------ */

/* A process showed its first stacks: note it, to snapshot its mappings once per batch. */
static int on_event(void *ctx, void *data, size_t len)
{
	struct capture *c = ctx;
	pid_t pid;

	if (len < sizeof(struct ap_proc_key))
		return 0;
	pid = (pid_t)((struct ap_proc_key *)data)->pid;
	for (size_t i = 0; i < c->ndirty; i++)
		if (c->dirty[i] == pid)
			return 0;
	grow((void **)&c->dirty, &c->dirty_cap, c->ndirty + 1, sizeof(*c->dirty));
	c->dirty[c->ndirty++] = pid;
	return 0;
}


static int open_bpf(struct capture *c)
{
	struct allocprof_bpf *s;
	int err;

	s = allocprof_bpf__open();
	if (!s) {
		err = -errno;
		ap_err("cannot open the BPF object: %s", strerror(-err));
		return err;
	}
	s->rodata->exact = c->o.exact;
	s->rodata->sample_bytes = c->o.exact ? 1 : c->o.sample_bytes;
	s->rodata->self_tgid = (__u32)getpid();
	bpf_map__set_max_entries(s->maps.stacks, (__u32)c->o.max_stacks);
	bpf_map__set_max_entries(s->maps.counts, (__u32)c->o.max_stacks * 2);
	bpf_map__set_max_entries(s->maps.libs, 256);
	/* Memory is only taken as stacks appear, not reserved up front. */
	bpf_map__set_map_flags(s->maps.stacks, BPF_F_NO_PREALLOC);
	bpf_map__set_map_flags(s->maps.counts, BPF_F_NO_PREALLOC);
	err = allocprof_bpf__load(s);
	if (err) {
		ap_err("cannot load the BPF programs: %s%s", strerror(-err),
		       verbose ? "" : " (run with -vv for the verifier's log)");
		allocprof_bpf__destroy(s);
		return err;
	}
	sampling_exp_table(s->bss->exp_q16, AP_EXP_TABLE_SIZE);
	sampling_weight_table(s->bss->weight_q16, AP_WEIGHT_ENTRIES);
	c->events = ring_buffer__new(bpf_map__fd(s->maps.events), on_event, c, NULL);
	if (!c->events) {
		err = -errno;
		ap_err("cannot set up the event buffer: %s", strerror(-err));
		allocprof_bpf__destroy(s);
		return err;
	}
	c->skel = s;
	c->att = attacher__new(s->progs.on_alloc, bpf_map__fd(s->maps.libs));
	return 0;
}

/* ---- targets ------------------------------------------------------------------------- */

static void watch(struct capture *c, pid_t pid, bool is_child)
{
	struct watched w = { .pid = pid, .pidfd = -1 };

	if (!is_child)
		w.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	read_comm(pid, w.comm);
	if (!is_child)
		read_exe(pid, w.exe, sizeof(w.exe));
	grow((void **)&c->w, &c->wcap, c->nw + 1, sizeof(*c->w));
	c->w[c->nw++] = w;
}

/* Resolves the allocator of a live process. 0, or -errno with the reason printed. */
static int plan_for_pid(pid_t pid, struct alloc_plan *plan)
{
	struct load_order lo;
	struct proc_maps maps;
	char comm[16];
	int err;

	read_comm(pid, comm);
	err = proc_maps__read(pid, &maps);
	if (err) {
		ap_err("cannot read the mappings of pid %d: %s", (int)pid,
		       err == -ENOENT ? "the process exited" : strerror(-err));
		return err;
	}
	err = load_order__read(pid, &maps, &lo);
	proc_maps__free(&maps);
	if (err) {
		ap_err("cannot tell which objects pid %d (%s) has loaded: %s", (int)pid, comm,
		       strerror(-err));
		return err;
	}
	err = alloc_plan__resolve(pid, &lo, plan);
	load_order__free(&lo);
	if (err == -ENOENT)
		ap_err("pid %d (%s) has no recognisable allocator: no malloc in its executable or "
		       "loaded libraries",
		       (int)pid, comm);
	else if (err)
		ap_err("cannot resolve the allocator of pid %d (%s): %s", (int)pid, comm,
		       strerror(-err));
	return err;
}

static int attach_plan(struct capture *c, pid_t pid, const struct alloc_plan *plan,
		       const char *what)
{
	size_t added;
	int err;

	err = attacher__add_plan(c->att, pid, plan, &added);
	if (err)
		return err;
	c->probes += added;
	note_allocator(c, "%s", plan->libs[plan->malloc_lib].path);
	/* With -a most processes share an allocator: say only what is new. */
	if (added || pid != -1) {
		alloc_plan__print(plan, what);
		ap_info("%s: %zu probes attached", what, added);
	}
	return 0;
}

static int attach_pids(struct capture *c)
{
	struct alloc_plan *plans = xcalloc(c->o.npids, sizeof(*plans));
	int err = 0;

	/* Check and resolve every pid before attaching to any. */
	for (size_t i = 0; i < c->o.npids && !err; i++) {
		pid_t pid = c->o.pids[i];

		err = pid_check(pid);
		if (err == -ESRCH)
			ap_err("cannot attach to pid %d: no such process", (int)pid);
		else if (err)
			ap_err("cannot attach to pid %d: %s", (int)pid, strerror(-err));
		if (!err)
			err = plan_for_pid(pid, &plans[i]);
	}
	for (size_t i = 0; i < c->o.npids && !err; i++) {
		char what[64];

		snprintf(what, sizeof(what), "pid %d", (int)c->o.pids[i]);
		err = attach_plan(c, c->o.pids[i], &plans[i], what);
		if (!err) {
			watch(c, c->o.pids[i], false);
			addrspaces__snapshot(c->as, c->o.pids[i]);
		}
	}
	for (size_t i = 0; i < c->o.npids; i++)
		alloc_plan__free(&plans[i]);
	free(plans);
	return err;
}

/* -a: the allocators of every process running now, probed for every process. */
static int attach_all(struct capture *c)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t procs = 0;
	int err = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct alloc_plan plan;
		struct load_order lo;
		struct proc_maps maps;
		uint64_t v;
		pid_t pid;

		if (parse_u64(de->d_name, 1, INT32_MAX, &v) || (pid_t)v == getpid())
			continue;
		pid = (pid_t)v;
		/* Kernel threads and processes that exit meanwhile have no mappings. */
		if (proc_maps__read(pid, &maps))
			continue;
		err = load_order__read(pid, &maps, &lo);
		proc_maps__free(&maps);
		if (err) {
			err = 0;
			continue;
		}
		if (alloc_plan__resolve(pid, &lo, &plan)) {
			load_order__free(&lo);
			continue;
		}
		load_order__free(&lo);
		err = attach_plan(c, -1, &plan, "all processes");
		alloc_plan__free(&plan);
		if (err)
			break;
		procs++;
	}
	closedir(d);
	if (!err && !c->probes) {
		ap_err("no process with a recognisable allocator found");
		err = -ENOENT;
	}
	if (!err)
		ap_info("all processes: allocators of %zu running processes probed", procs);
	return err;
}

/* The child stopped itself at its dynamic linker: attach to what it loaded, let it go on. */
static int child_stopped_at_rtld(struct capture *c)
{
	struct alloc_plan plan;
	char what[64];
	int err;

	snprintf(what, sizeof(what), "pid %d (%s)", (int)c->child.pid, c->o.cmd[0]);
	err = plan_for_pid(c->child.pid, &plan);
	if (!err) {
		err = attach_plan(c, c->child.pid, &plan, what);
		alloc_plan__free(&plan);
	}
	addrspaces__snapshot(c->as, c->child.pid);
	if (c->nw) {
		read_comm(c->child.pid, c->w[0].comm);
		read_exe(c->child.pid, c->w[0].exe, sizeof(c->w[0].exe));
	}
	kill(c->child.pid, SIGCONT);
	return err;
}

static bool stopped_by_us(struct capture *c)
{
	__u32 pid = (__u32)c->child.pid;
	__u64 mm;

	if (bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.rtld_stopped), &pid, &mm))
		return false;
	if (mm == c->child_mm)
		return false; /* stopped by someone else (job control), not by the probe */
	c->child_mm = mm;
	return true;
}

static int start_command(struct capture *c)
{
	char *path, *image;
	struct elf_file *ef = NULL;
	const char *interp;
	int err;

	path = find_command(c->o.cmd[0]);
	if (!path) {
		err = -errno;
		ap_err("cannot run '%s': %s", c->o.cmd[0],
		       err == -ENOENT ? "command not found" : strerror(-err));
		return err;
	}
	image = exec_image(path);
	if (!image) {
		err = -errno;
		ap_err("cannot run '%s': %s", c->o.cmd[0],
		       err == -ENOEXEC ? "not an ELF executable or a #! script" : strerror(-err));
		free(path);
		return err;
	}
	ef = elf_file__open(image);
	if (!ef) {
		err = -errno;
		ap_err("cannot read %s: %s", image, strerror(-err));
		goto out;
	}
	err = child_spawn(c->o.cmd, path, &c->child);
	if (err) {
		ap_err("cannot start '%s': %s", c->o.cmd[0], strerror(-err));
		goto out;
	}
	c->have_child = true;
	interp = elf_file__interp(ef);
	if (interp) {
		/*
		 * Dynamically linked: which allocator it gets is known once the dynamic linker
		 * has mapped its libraries. A probe on the linker's debugger hook stops it
		 * there, before any of its code runs; the loop attaches and resumes it.
		 */
		err = attacher__add_rtld(c->att, c->skel->progs.on_rtld_state, c->child.pid,
					 interp);
		if (err)
			ap_err("cannot attach to the dynamic linker %s of '%s': %s", interp,
			       c->o.cmd[0], strerror(-err));
	} else {
		struct alloc_plan plan;
		char what[64];

		err = alloc_plan__resolve_file(image, &plan);
		if (err == -ENOENT)
			ap_err("'%s' has no recognisable allocator: a static executable without "
			       "malloc",
			       c->o.cmd[0]);
		if (!err) {
			snprintf(what, sizeof(what), "'%s'", c->o.cmd[0]);
			err = attach_plan(c, c->child.pid, &plan, what);
			alloc_plan__free(&plan);
		}
	}
	if (err) {
		child_abort(&c->child);
		c->have_child = false;
		goto out;
	}
	watch(c, c->child.pid, true);
	c->start_mono = now_ns();
	c->start_real = realtime_ns();
	err = child_release(&c->child);
	if (err) {
		ap_err("cannot run '%s': %s", c->o.cmd[0], strerror(-err));
		c->have_child = false;
	}
	if (!interp && !err) {
		addrspaces__snapshot(c->as, c->child.pid);
		read_exe(c->child.pid, c->w[0].exe, sizeof(c->w[0].exe));
	}
out:
	elf_file__free(ef);
	free(image);
	free(path);
	return err;
}

/* ---- the event loop ------------------------------------------------------------------ */

static bool all_exited(const struct capture *c)
{
	if (c->o.all || !c->nw)
		return false;
	for (size_t i = 0; i < c->nw; i++)
		if (!c->w[i].exited)
			return false;
	return true;
}

static void reap_child(struct capture *c)
{
	int status;
	pid_t r;

	if (!c->have_child || c->child.exited)
		return;
	while ((r = waitpid(c->child.pid, &status, WNOHANG | WUNTRACED)) > 0) {
		if (WIFSTOPPED(status)) {
			if (stopped_by_us(c) && child_stopped_at_rtld(c)) {
				/* No allocator to trace: stopping is all that is left. */
				kill(c->child.pid, SIGKILL);
				c->stop = true;
			}
			continue;
		}
		c->child.status = status;
		c->child.exited = true;
		for (size_t i = 0; i < c->nw; i++)
			if (c->w[i].pid == c->child.pid)
				c->w[i].exited = true;
		break;
	}
}

/* New stacks were announced: snapshot each of their processes once, now. */
static void drain_events(struct capture *c)
{
	c->ndirty = 0;
	ring_buffer__consume(c->events);
	for (size_t i = 0; i < c->ndirty; i++)
		addrspaces__snapshot(c->as, c->dirty[i]);
}

/*
 * Snapshots the mappings of processes that showed new stacks since the last look; catches
 * what the ring buffer had no room to announce.
 */
static void refresh_maps(struct capture *c)
{
	int fd = bpf_map__fd(c->skel->maps.procs);
	struct ap_proc_key key, next, *prev = NULL;
	struct ap_proc pr;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		uint64_t seen = 0;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &pr))
			continue;
		if (hashmap__get(c->gens, &key, sizeof(key), &seen) && seen == pr.gen)
			continue;
		/* Gone, or running another program now: nothing to read for this one. */
		addrspaces__snapshot(c->as, (pid_t)key.pid);
		hashmap__put(c->gens, &key, sizeof(key), pr.gen);
	}
}

static void show_progress(struct capture *c)
{
	struct ap_stats st;
	uint64_t secs = (now_ns() - c->start_mono) / 1000000000ull;

	if (!c->progress || collect_read_stats(bpf_map__fd(c->skel->maps.stats), &st))
		return;
	fprintf(stderr, "\r\033[Kallocprof: %llus, %llu calls, %llu %s", (unsigned long long)secs,
		(unsigned long long)st.v[AP_STAT_CALLS], (unsigned long long)st.v[AP_STAT_SAMPLED],
		c->o.exact ? "recorded" : "sampled");
	fflush(stderr);
}

static void on_signal(struct capture *c, const struct signalfd_siginfo *si)
{
	if (si->ssi_signo == SIGCHLD) {
		reap_child(c);
		return;
	}
	/*
	 * A signal from the terminal reached the whole process group, the command included; one
	 * sent to allocprof alone (kill, systemd) is passed on so the command ends too.
	 */
	if (c->have_child && !c->child.exited && si->ssi_code == SI_USER &&
	    si->ssi_pid != (uint32_t)c->child.pid)
		kill(c->child.pid, (int)si->ssi_signo);
	c->stop = true;
}

static void run_loop(struct capture *c)
{
	struct pollfd pfd[MAX_POLL];
	uint64_t next_tick = now_ns() + TICK_MS * 1000000ull;

	while (!c->stop && !all_exited(c)) {
		uint64_t now = now_ns(), wake = next_tick;
		size_t n = 0;
		int timeout, r;

		if (c->end_mono && c->end_mono < wake)
			wake = c->end_mono;
		if (c->end_mono && now >= c->end_mono)
			break;
		timeout = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		pfd[n++] = (struct pollfd){ .fd = c->sigfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = ring_buffer__epoll_fd(c->events), .events = POLLIN };
		for (size_t i = 0; i < c->nw && n < MAX_POLL; i++)
			if (c->w[i].pidfd >= 0 && !c->w[i].exited)
				pfd[n++] = (struct pollfd){ .fd = c->w[i].pidfd, .events = POLLIN };
		r = poll(pfd, n, timeout);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			while (read(c->sigfd, &si, sizeof(si)) == sizeof(si))
				on_signal(c, &si);
		}
		if (r > 0 && (pfd[1].revents & POLLIN))
			drain_events(c);
		for (size_t k = 2; r > 0 && k < n; k++) {
			if (!pfd[k].revents)
				continue;
			for (size_t i = 0; i < c->nw; i++)
				if (c->w[i].pidfd == pfd[k].fd)
					c->w[i].exited = true;
		}
		if (now_ns() >= next_tick) {
			refresh_maps(c);
			show_progress(c);
			next_tick = now_ns() + TICK_MS * 1000000ull;
		}
	}
	if (c->progress)
		fputs("\r\033[K", stderr);
}

/* ---- the end: profile, report -------------------------------------------------------- */

static const struct {
	enum ap_stat stat;
	const char *what;
} losses[] = {
	{ AP_STAT_NO_THREAD, "lost: no per-thread state could be allocated" },
	{ AP_STAT_RA_FAULT, "lost: return address unreadable" },
	{ AP_STAT_STACKS_FULL, "lost: stack map full (raise --max-stacks)" },
	{ AP_STAT_COUNTS_FULL, "lost: counter map full (raise --max-stacks)" },
	{ AP_STAT_STACK_FAIL, "stack walk failed: recorded with the caller only" },
	{ AP_STAT_STACK_TRUNC, "stacks truncated at 127 frames" },
	{ AP_STAT_PROCS_FULL, "process table full: names read from /proc instead" },
	{ AP_STAT_EVENTS_LOST, "new-stack notices dropped: mappings read at the next tick" },
};

static void describe(struct capture *c, struct profile *p, const struct collect_stats *st,
		     uint64_t duration)
{
	const struct ap_stats *b = &st->bpf;
	uint64_t lost = 0;

	profile__add_comment(p, "allocprof %s", ALLOCPROF_VERSION);
	if (c->o.all)
		profile__add_comment(p, "target: all processes");
	else if (c->have_child)
		profile__add_comment(p, "target: command '%s' (pid %d)", c->o.cmd[0],
				     (int)c->child.pid);
	for (size_t i = 0; i < c->nw && !c->have_child; i++)
		profile__add_comment(p, "target: pid %d (%s)", (int)c->w[i].pid, c->w[i].comm);
	for (size_t i = 0; i < c->nalloc; i++)
		profile__add_comment(p, "allocator: %s", c->allocators[i]);
	profile__add_comment(p, "duration: %.3f s; %zu probes", (double)duration / 1e9, c->probes);
	if (c->o.exact)
		profile__add_comment(p, "sampling: none (--exact), every allocation recorded");
	else
		profile__add_comment(p,
				     "sampling: one per %llu bytes on average (Poisson, per "
				     "thread); values are unbiased estimates",
				     (unsigned long long)c->o.sample_bytes);
	profile__add_comment(p,
			     "allocator calls seen: %llu; recorded: %llu; nested calls inside "
			     "the allocator: %llu; not allocations (realloc to 0, overflow): "
			     "%llu",
			     (unsigned long long)b->v[AP_STAT_CALLS],
			     (unsigned long long)b->v[AP_STAT_SAMPLED],
			     (unsigned long long)b->v[AP_STAT_NESTED],
			     (unsigned long long)b->v[AP_STAT_NOT_ALLOC]);
	for (size_t i = 0; i < ARRAY_SIZE(losses); i++) {
		uint64_t v = b->v[losses[i].stat];

		if (!v)
			continue;
		profile__add_comment(p, "%s: %llu", losses[i].what, (unsigned long long)v);
		if (!strncmp(losses[i].what, "lost", 4))
			lost += v;
	}
	if (!lost)
		profile__add_comment(p, "lost allocations: 0");
	profile__add_comment(
		p,
		"frames: %llu; outside any known mapping: %llu; without a symbol: "
		"%llu; unreadable mapped files: %zu",
		(unsigned long long)st->frames, (unsigned long long)st->frames_unmapped,
		(unsigned long long)st->frames_unsymbolized, addrspaces__unreadable(c->as));
	if (st->stacks_missing)
		profile__add_comment(p, "counters whose stack was missing: %llu",
				     (unsigned long long)st->stacks_missing);
}

/* With kernel.bpf_stats_enabled=1 the kernel times every run of the program: report it. */
static void report_prog_time(struct capture *c)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (!verbose ||
	    bpf_obj_get_info_by_fd(bpf_program__fd(c->skel->progs.on_alloc), &info, &len) ||
	    !info.run_cnt)
		return;
	ap_info("probe program: %llu runs, %.1f ns per run (kernel.bpf_stats_enabled)",
		(unsigned long long)info.run_cnt, (double)info.run_time_ns / (double)info.run_cnt);
}

static void warn_losses(const struct collect_stats *st)
{
	for (size_t i = 0; i < ARRAY_SIZE(losses); i++) {
		uint64_t v = st->bpf.v[losses[i].stat];

		if (v)
			ap_warn("%s: %llu", losses[i].what, (unsigned long long)v);
	}
	if (st->stacks_missing)
		ap_warn("counters whose stack was missing: %llu",
			(unsigned long long)st->stacks_missing);
}

static int finish(struct capture *c)
{
	static const struct value_type types[] = { { "alloc_objects", "count" },
						   { "alloc_space", "bytes" } };
	struct collect_maps maps = {
		.counts_fd = bpf_map__fd(c->skel->maps.counts),
		.stacks_fd = bpf_map__fd(c->skel->maps.stacks),
		.procs_fd = bpf_map__fd(c->skel->maps.procs),
		.stats_fd = bpf_map__fd(c->skel->maps.stats),
	};
	uint64_t duration = now_ns() - c->start_mono;
	struct profile_meta meta = {
		.sample_types = types,
		.nsample_types = ARRAY_SIZE(types),
		.period_type = { "space", "bytes" },
		.period = c->o.exact ? 1 : (int64_t)c->o.sample_bytes,
		.time_nanos = (int64_t)c->start_real,
		.duration_nanos = (int64_t)duration,
		.default_sample_type = "alloc_space",
	};
	struct collect_stats st = {};
	struct symbolizer *sym;
	struct profile *p;
	void *data = NULL;
	size_t len = 0;
	char b1[32];
	int err;

	report_prog_time(c);
	/* Detach first: the counters stop moving while they are read. */
	attacher__free(c->att);
	c->att = NULL;
	drain_events(c);
	for (size_t i = 0; i < c->nw; i++)
		if (!c->w[i].exited)
			addrspaces__snapshot(c->as, c->w[i].pid);
	refresh_maps(c);

	collect_read_stats(maps.stats_fd, &st.bpf);
	p = profile__new(&meta);
	sym = symbolizer__new();
	err = collect_samples(&maps, c->o.exact, c->as, sym, p, &st);
	if (err) {
		ap_err("cannot read the recorded counters: %s", strerror(-err));
		goto out;
	}
	if (c->nw)
		profile__set_main(p, c->w[0].exe);
	describe(c, p, &st, duration);
	err = pprof_encode(profile__message(p), &data, &len);
	if (!err)
		err = out_file__commit(c->out, data, len);
	c->out = NULL;
	if (err) {
		ap_err("cannot write %s: %s", c->out_path, strerror(-err));
		goto out;
	}
	warn_losses(&st);
	/* A summary for people, on stderr: a command's stdout stays exactly its own. */
	if (!c->o.quiet) {
		fprintf(stderr,
			"allocprof: wrote %s: %llu allocations, %s in %llu stacks from %llu "
			"process%s over %.1f s (%s)\n",
			c->out_path, (unsigned long long)(st.objects + 0.5),
			fmt_bytes(st.bytes, b1, sizeof(b1)), (unsigned long long)st.samples,
			(unsigned long long)st.procs, st.procs == 1 ? "" : "es",
			(double)duration / 1e9, c->o.exact ? "exact" : "sampled, estimates");
		if (c->o.top && st.samples) {
			const Perftools__Profiles__Profile *m = profile__message(p);

			top_print(stderr, m, top_sample_index(m, "alloc_space"), c->o.top);
		}
	}
out:
	free(data);
	symbolizer__free(sym);
	profile__free(p);
	return err;
}

/* ---- set-up and tear-down ------------------------------------------------------------ */

static int setup_signals(struct capture *c)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	c->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return c->sigfd < 0 ? -errno : 0;
}

static void raise_fd_limit(void)
{
	struct rlimit r;

	/* One descriptor per mapped file is kept for symbolizing; -a can see thousands. */
	if (!getrlimit(RLIMIT_NOFILE, &r) && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

/* After the profile: the command's exit status is ours; wait for it if it is still running. */
static int wait_child(struct capture *c)
{
	while (c->have_child && !c->child.exited) {
		struct pollfd pfd = { .fd = c->sigfd, .events = POLLIN };
		struct signalfd_siginfo si;

		reap_child(c);
		if (c->child.exited)
			break;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			break;
		while (read(c->sigfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				reap_child(c);
			else if (si.ssi_code == SI_USER)
				kill(c->child.pid, (int)si.ssi_signo);
		}
	}
	return c->have_child && c->child.exited ? exit_code(c->child.status) : 0;
}

int cmd_record(int argc, char **argv)
{
	struct capture c = { .sigfd = -1 };
	char namebuf[128];
	int err, ret = 1;

	err = record_opts__parse(argc, argv, &c.o);
	if (err)
		return err < 0 ? 0 : err;
	libbpf_set_print(libbpf_print);
	if (preflight_check())
		goto out;
	c.out_path = xstrdup(c.o.output ? c.o.output : default_output(namebuf, sizeof(namebuf)));
	err = out_file__open(c.out_path, &c.out);
	if (err) {
		ap_err("cannot write %s: %s", c.out_path,
		       err == -ENOENT ? "no such directory" : strerror(-err));
		goto out;
	}
	raise_fd_limit();
	if (setup_signals(&c)) {
		ap_err("cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	c.as = addrspaces__new();
	c.gens = hashmap__new();
	if (open_bpf(&c))
		goto out;

	if (c.o.npids)
		err = attach_pids(&c);
	else if (c.o.all)
		err = attach_all(&c);
	else
		err = start_command(&c);
	if (err)
		goto out;
	if (!c.start_mono) {
		c.start_mono = now_ns();
		c.start_real = realtime_ns();
	}
	if (c.o.duration_ns)
		c.end_mono = c.start_mono + c.o.duration_ns;
	/* Progress only on a terminal, and not over a command's own output. */
	c.progress = !c.o.quiet && !c.have_child && isatty(STDERR_FILENO);
	if (c.progress)
		fprintf(stderr, "allocprof: recording %s%s; Ctrl-C to stop\n",
			c.o.all ? "all processes" : "", c.o.all ? "" : "");
	run_loop(&c);
	reap_child(&c);
	ret = finish(&c) ? 1 : 0;
	if (c.have_child) {
		int status = wait_child(&c);

		if (!ret)
			ret = status;
	}
out:
	if (c.have_child && !c.child.exited && ret == 1 && !c.start_mono)
		child_abort(&c.child);
	attacher__free(c.att);
	ring_buffer__free(c.events);
	allocprof_bpf__destroy(c.skel);
	free(c.dirty);
	out_file__abort(c.out);
	addrspaces__free(c.as);
	hashmap__free(c.gens);
	for (size_t i = 0; i < c.nw; i++)
		if (c.w[i].pidfd >= 0)
			close(c.w[i].pidfd);
	free(c.w);
	for (size_t i = 0; i < c.nalloc; i++)
		free(c.allocators[i]);
	free(c.allocators);
	free(c.out_path);
	if (c.sigfd >= 0)
		close(c.sigfd);
	record_opts__free(&c.o);
	return ret;
}
