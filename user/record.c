/*
 * `allocprof record`: runs one capture from the command line to the written profile. Owns the
 * order of things (check, open the output, load, watch, wait, detach, collect, write, report)
 * and the event loop; watch.c, record_write.c and report.c do the work it sequences.
 */
#include "record.h"
#include "addrspace.h"
#include "allocator.h"
#include "allocprof.skel.h"
#include "attach.h"
#include "capture.h"
#include "collect.h"
#include "exitstatus.h"
#include "load.h"
#include "interval.h"
#include "outfile.h"
#include "preflight.h"
#include "symbolize.h"
#include "target.h"
#include "unwind.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 1000

#include "record_priv.h"

/*
 * libbpf's own lines only with -vv: every failure it reports is also said by allocprof in one
 * line of its own, with the object it was about (a second line would only repeat it).
 */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	if (verbose < 2)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static const char *default_output(char *buf, size_t len)
{
	char stamp[96];

	snprintf(buf, len, "allocprof-%s.pb.gz", host_stamp(stamp, sizeof(stamp)));
	return buf;
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct capture *c = ctx;
	struct run *r = (struct run *)((char *)c - offsetof(struct run, c));
	const struct ap_event *ev = data;

	/* One per counter the probes added: counted here, where it costs nothing. */
	if (len >= sizeof(struct ap_event) && ev->kind == AP_EV_NEW_STACKS)
		r->new_stacks++;

	if (len >= sizeof(struct ap_event_file) && ev->kind == AP_EV_WANT_TABLE) {
		const struct ap_event_file *ef = data;

		unwind__want(c->unwind, (pid_t)ef->proc.pid, ef->ip, &ef->file);
	} else if (len >= sizeof(struct ap_event)) {
		watch_event(c, ev);
	}
	return 0;
}

static void drain_events(struct run *r)
{
	ring_buffer__consume(r->events);
	watch_handle_events(&r->c);
}

/* ---- the event loop ------------------------------------------------------------------ */

/*
 * Once a tick, on a terminal only: elapsed time, allocations seen, stacks, drops (allocations
 * lost: the LOST counters, each named at the end) and how full the stacks are. A stack is
 * counted once per process that reached it (one event each), so the fill is an upper bound of
 * the stacks map's own; counting the map's entries would take a syscall per entry.
 */
static void show_progress(struct run *r)
{
	struct capture *c = &r->c;
	struct ap_stats st;
	uint64_t now = now_ns(), secs = (now - c->start_mono) / 1000000000ull, lost = 0, fill;
	char next[48] = "";

	if (!r->progress || collect_read_stats(bpf_map__fd(c->skel->maps.stats), &st))
		return;
	for (int i = 0; i < AP_STAT_NR; i++)
		if (ap_stat_descs[i].kind == AP_SK_LOST)
			lost += st.v[i];
	fill = r->new_stacks * 100 / c->o.max_stacks;
	/* Periodic capture: the time to the next file. */
	if (r->next_file > now)
		snprintf(next, sizeof(next), ", next file in %llus",
			 (unsigned long long)((r->next_file - now + 999999999) / 1000000000ull));
	fprintf(stderr,
		"\r\033[Kallocprof: %llus, %llu calls, %llu %s, %llu stacks (%llu%% of "
		"--max-stacks), %llu lost%s",
		(unsigned long long)secs, (unsigned long long)st.v[AP_STAT_CALLS],
		(unsigned long long)st.v[AP_STAT_SAMPLED], c->o.exact ? "recorded" : "sampled",
		(unsigned long long)r->new_stacks, (unsigned long long)(fill > 100 ? 100 : fill),
		(unsigned long long)lost, next);
	fflush(stderr);
}

/*
 * A signal from the terminal reached the whole process group, the command included; one sent
 * to allocprof alone (kill, systemd) is passed on, so the command ends too. SIGPIPE is
 * allocprof's own business (its output went away), never the command's.
 */
static void forward_signal(struct capture *c, const struct signalfd_siginfo *si)
{
	const struct child *ch = watch__child(c->watch);

	if (ch && !ch->exited && si->ssi_code == SI_USER && si->ssi_signo != SIGPIPE &&
	    si->ssi_pid != (uint32_t)ch->pid)
		kill(ch->pid, (int)si->ssi_signo);
}

/* Reads the signalfd; true when a signal asked the capture to end. */
static bool read_signals(struct run *r)
{
	struct signalfd_siginfo si;
	bool stop = false;

	while (read(r->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			watch_reap_child(&r->c);
			continue;
		}
		/* With --interval: the current interval's file now. Never fatal. */
		if (si.ssi_signo == SIGUSR1) {
			if (r->base)
				r->write_now = true;
			else if (!r->c.o.quiet)
				fprintf(stderr, "allocprof: SIGUSR1 ignored: without --interval "
						"nothing is written before the end\n");
			continue;
		}
		forward_signal(&r->c, &si);
		stop = true;
	}
	return stop;
}

/*
 * --interval: the interval's file when its time is up or SIGUSR1 asked. Intervals keep to
 * their schedule (start + k * interval), a file that took long to write does not shift the
 * next; after SIGUSR1 a whole interval starts.
 */
static void interval_tick(struct run *r)
{
	uint64_t now = now_ns();

	if (!r->base || (!r->write_now && now < r->next_file))
		return;
	/* The last interval ends with the capture: finish() writes it. */
	if (r->c.end_mono && now >= r->c.end_mono)
		return;
	record_write_interval(r, false);
	now = now_ns();
	if (r->write_now)
		r->next_file = now + r->c.o.interval_ns;
	while (r->next_file <= now)
		r->next_file += r->c.o.interval_ns;
	r->write_now = false;
}

static void run_loop(struct run *r)
{
	struct capture *c = &r->c;
	struct pollfd pfd[3];
	uint64_t next_tick = now_ns() + TICK_MS * 1000000ull;

	while (!c->stop && !watch_all_exited(c)) {
		uint64_t now = now_ns(), wake = next_tick;
		size_t n = 0;
		int timeout, ret;

		if (c->end_mono && now >= c->end_mono)
			break;
		interval_tick(r);
		now = now_ns();
		if (c->end_mono && c->end_mono < wake)
			wake = c->end_mono;
		if (r->base && r->next_file < wake)
			wake = r->next_file;
		timeout = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		if (watch_pending(c) && timeout > 2)
			timeout = 2;
		pfd[n++] = (struct pollfd){ .fd = r->sigfd, .events = POLLIN };
		pfd[n++] =
			(struct pollfd){ .fd = ring_buffer__epoll_fd(r->events), .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = watch__exit_fd(c->watch), .events = POLLIN };
		ret = poll(pfd, n, timeout);
		if (ret < 0 && errno != EINTR)
			break;
		if (ret > 0 && (pfd[0].revents & POLLIN) && read_signals(r))
			c->stop = true;
		if (c->stop)
			break;
		if ((ret > 0 && (pfd[1].revents & POLLIN)) || watch_pending(c))
			drain_events(r);
		if (ret > 0 && (pfd[2].revents & POLLIN))
			watch_check_exits(c);
		if (now_ns() >= next_tick) {
			watch_refresh_maps(c);
			show_progress(r);
			next_tick = now_ns() + TICK_MS * 1000000ull;
		}
	}
	if (r->progress)
		fputs("\r\033[K", stderr);
}

/* ---- set-up and tear-down ------------------------------------------------------------ */

static int setup_signals(struct run *r)
{
	sigset_t set;

	/*
	 * Read from a signalfd, never delivered: each of these ends the capture with its profile
	 * written (SIGQUIT and SIGPIPE as SIGTERM does), except SIGCHLD and SIGUSR1. A write to a
	 * closed pipe still fails with EPIPE, which is reported where it happens.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGPIPE);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	r->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return r->sigfd < 0 ? -errno : 0;
}

/* One descriptor per mapped file is kept for symbolizing; -a can see thousands. */
static void raise_fd_limit(struct capture *c)
{
	struct rlimit raised;

	if (getrlimit(RLIMIT_NOFILE, &c->nofile))
		return;
	raised = c->nofile;
	raised.rlim_cur = raised.rlim_max;
	setrlimit(RLIMIT_NOFILE, &raised);
}

/*
 * After the profile is written: the kernel takes tens of ms per link to remove its probes
 * (attach.c closes them from several threads). Before waiting for a command that runs on.
 */
static void detach(struct capture *c)
{
	attacher__free(c->att);
	c->att = NULL;
}

/* After the profile: the command's exit status is ours; wait for it if it is still running. */
static int wait_child(struct run *r)
{
	struct capture *c = &r->c;
	const struct child *ch = watch__child(c->watch);

	while (ch && !ch->exited) {
		struct pollfd pfd = { .fd = r->sigfd, .events = POLLIN };

		watch_reap_child(c);
		if (ch->exited)
			break;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			break;
		read_signals(r);
	}
	return ch && ch->exited ? exit_code(ch->status) : 0;
}

static void cleanup(struct run *r)
{
	struct capture *c = &r->c;

	attacher__free(c->att);
	unwind__free(c->unwind); /* its worker, before the maps it writes */
	watch__free(c->watch);	 /* its links before the BPF object they belong to */
	ring_buffer__free(r->events);
	allocprof_bpf__destroy(c->skel);
	out_file__abort(r->out);
	out_file__abort(r->svg);
	symbolizer__free(r->sym);
	collect_base__free(r->base);
	interval__free(r->iv);
	addrspaces__free(c->as);
	notes__free(c->notes);
	free(r->out_path);
	if (r->sigfd >= 0)
		close(r->sigfd);
	record_opts__free(&c->o);
}

/*
 * The exit status of a capture whose targets could not be watched (README "Exit status"):
 * watch.c has said why in one line, and its errno tells "nothing to trace" (4) from a failure
 * (1). -ESRCH: every -p pid gone; -EINVAL: a -p pid that is a kernel thread (or a thread's
 * id); -ENOENT: no recognisable allocator, under -p, -a or -- CMD. Under -- CMD, -ENOENT also
 * comes from a command that cannot be found or run, a failure: that is told by looking it up
 * again. (Under -p, an attach the kernel refuses with EINVAL or ENOENT reads as 4 too:
 * watch.c returns the kernel's errno as it is.)
 */
static int watch_failure_status(const struct capture *c, int err)
{
	char *path, *elf = NULL;

	if (c->ops_missing)
		return AP_EXIT_USAGE;
	if (!c->o.cmd)
		return err == -ESRCH || err == -EINVAL || err == -ENOENT ? AP_EXIT_NO_TARGET
									 : AP_EXIT_FAILED;
	if (err != -ENOENT)
		return AP_EXIT_FAILED;
	path = find_command(c->o.cmd[0]);
	if (path)
		elf = exec_file(path);
	free(path);
	free(elf);
	return elf ? AP_EXIT_NO_TARGET : AP_EXIT_FAILED;
}

int cmd_record(int argc, char **argv)
{
	uint64_t launch = now_ns(); /* for -v's "probes live" */
	struct run r = { .sigfd = -1 };
	struct capture *c = &r.c;
	char namebuf[128];
	size_t ntargets;
	int err, ret = AP_EXIT_FAILED;

	err = record_opts__parse(argc, argv, &c->o);
	if (err)
		return err < 0 ? AP_EXIT_OK : err;
	libbpf_set_print(libbpf_print);
	/* Whatever it refuses (privileges, BTF, uprobes, the pid namespace) is this machine's. */
	if (preflight_check(&c->o)) {
		ret = AP_EXIT_NOT_PERMITTED;
		goto out;
	}
	/* Checked before anything is attached; each says itself what is wrong. */
	if (c->o.output_dir && !(r.iv = interval__new(c->o.output_dir, c->o.keep, c->o.mode)))
		goto out;
	if (!c->o.interval_ns) {
		r.out_path = c->o.output ? xstrdup(c->o.output)
			     : r.iv	 ? interval__name(r.iv, realtime_ns())
					 : xstrdup(default_output(namebuf, sizeof(namebuf)));
		err = out_file__open_opts(r.out_path,
					  &(struct out_file_opts){ .mode = c->o.mode,
								   .cmd_stdout = c->o.cmd != NULL },
					  &r.out);
		if (err)
			goto out;
		free(r.out_path); /* the summary says "stdout" for -o - */
		r.out_path = xstrdup(out_file__path(r.out));
	}
	if (c->o.svg && out_file__open_opts(c->o.svg,
					    &(struct out_file_opts){ .mode = c->o.mode,
								     .cmd_stdout = c->o.cmd != NULL,
								     .what = "picture",
								     .opt = "--svg",
								     .no_fallback = true },
					    &r.svg))
		goto out;
	raise_fd_limit(c);
	if (setup_signals(&r)) {
		ap_err("cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	c->as = addrspaces__new();
	c->watch = watch__new();
	c->notes = notes__new();
	err = capture_load(c, on_event, &r.events);
	if (err) {
		/* Refused although preflight passed: a security module (SELinux, a BPF LSM). */
		if (err == -EPERM)
			ret = AP_EXIT_NOT_PERMITTED;
		goto out;
	}

	if (c->o.npids)
		err = watch_pids(c);
	else if (c->o.all)
		err = watch_all(c);
	else
		err = watch_command(c);
	if (err) {
		ret = watch_failure_status(c, err);
		goto out;
	}
	/* From the moment every target is watched, or the command was let run. */
	if (watch__child(c->watch)) {
		c->start_mono = watch__child(c->watch)->released_mono;
		c->start_real = watch__child(c->watch)->released_real;
	} else {
		c->start_mono = now_ns();
		c->start_real = realtime_ns();
	}
	ap_info("recording: probes live%s %.1f ms after start",
		watch__child(c->watch) ? ", command released" : "",
		(double)(c->start_mono - launch) / 1e6);
	if (c->o.duration_ns)
		c->end_mono = c->start_mono + c->o.duration_ns;
	if (c->o.interval_ns) {
		r.base = collect_base__new();
		r.iv_mono = c->start_mono;
		r.iv_real = c->start_real;
		r.next_file = c->start_mono + c->o.interval_ns;
	}
	/* Progress only on a terminal, and not over a command's own output. */
	watch__targets(c->watch, &ntargets);
	r.progress = !c->o.quiet && !watch__child(c->watch) && isatty(STDERR_FILENO);
	/*
	 * The start, one line (a journal, a cron mail); on a terminal the progress follows. Not
	 * before a command's own output, which starts its stderr.
	 */
	if (!c->o.quiet && !watch__child(c->watch))
		fprintf(stderr, "allocprof: recording %s%s\n",
			c->o.all	? "all processes"
			: ntargets == 1 ? "1 process"
					: "processes",
			r.progress ? "; Ctrl-C to stop" : "");
	run_loop(&r);
	watch_reap_child(c);
	ret = record_finish(&r) ? AP_EXIT_FAILED : AP_EXIT_OK;
	detach(c);
	if (watch__child(c->watch)) {
		int status = wait_child(&r);

		if (!ret)
			ret = status;
	}
out:
	cleanup(&r);
	return ret;
}
