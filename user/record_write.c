/*
 * The profile of a capture, or of one --interval file: the counters collected (collect.c),
 * commented (report.c), encoded, written atomically (outfile.c), and summarized on stderr.
 * record.c says when.
 */
#include "record_priv.h"
#include "flame.h"
#include "addrspace.h"
#include "allocprof.skel.h"
#include "capture.h"
#include "collect.h"
#include "interval.h"
#include "outfile.h"
#include "pprof.h"
#include "profile.h"
#include "symbolize.h"
#include "top.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --interval: files closed, beyond those open, before the symbolizer is made anew. */
#define SYM_KEEP_CLOSED 64

/* ---- the end: profile, report -------------------------------------------------------- */

/* For people, on stderr: a command's stdout stays exactly its own. */
static void print_wrote(const struct run *r, const char *path, const struct collect_stats *st,
			uint64_t duration, const char *attached)
{
	char b1[32];

	fprintf(stderr,
		"allocprof: wrote %s: %llu allocations, %s in %llu stacks from %llu process%s%s "
		"over %.1f s (%s)\n",
		path, (unsigned long long)(st->objects + 0.5), fmt_bytes(st->bytes, b1, sizeof(b1)),
		(unsigned long long)st->samples, (unsigned long long)st->procs,
		st->procs == 1 ? "" : "es", attached, (double)duration / 1e9,
		r->c.o.exact ? "exact" : "sampled, estimates");
}

static void summarize(struct run *r, struct profile *p, const struct collect_stats *st,
		      uint64_t duration)
{
	const Perftools__Profiles__Profile *m = profile__message(p);
	char b1[32];

	size_t ntargets = 0;
	char attached[96] = "";

	/*
	 * "from 0 processes" of a process that was attached but did not allocate would read as
	 * if nothing had been attached: say how many were.
	 */
	watch__targets(r->c.watch, &ntargets);
	if (!r->c.o.all && ntargets > st->procs)
		snprintf(attached, sizeof(attached),
			 " (%zu attached, %zu with no allocation recorded)", ntargets,
			 ntargets - (size_t)st->procs);
	print_wrote(r, r->out_path, st, duration, attached);
	if (!r->c.o.alloc_only)
		fprintf(stderr, "allocprof: in use at the end (or at exit): %llu allocations, %s\n",
			(unsigned long long)(st->inuse_objects + 0.5),
			fmt_bytes(st->inuse_bytes, b1, sizeof(b1)));
	report_ops_summary(&r->c, st);
	if (r->c.o.top && st->samples)
		top_print(stderr, m, top_sample_index(m, "alloc_space"), r->c.o.top);
	report_shallow(st, r->c.o.stacks);
}

static struct collect_maps capture_maps(const struct capture *c)
{
	return (struct collect_maps){
		.counts_fd = bpf_map__fd(c->skel->maps.counts),
		.stacks_fd = bpf_map__fd(c->skel->maps.stacks),
		.procs_fd = bpf_map__fd(c->skel->maps.procs),
		.stats_fd = bpf_map__fd(c->skel->maps.stats),
		.vmas_fd = bpf_map__fd(c->skel->maps.vmas),
		.live_fd = c->o.alloc_only ? -1 : bpf_map__fd(c->skel->maps.live),
		.ops_fd = c->o.nops ? bpf_map__fd(c->skel->maps.ops) : -1,
	};
}

/* What an --interval file says of itself, after report_comments()'s lines. */
static void interval_comments(const struct run *r, struct profile *p, uint64_t duration, bool last)
{
	char from[32];
	time_t t = (time_t)(r->iv_real / 1000000000ull);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(from, sizeof(from), "%Y-%m-%dT%H:%M:%SZ", &tm);
	profile__add_comment(p,
			     "periodic capture: file %zu, one per %.0f s (--interval), from %s "
			     "for %.3f s%s; merged (pprof -proto FILES...) the files are the whole "
			     "capture, each allocation in one file",
			     r->files + 1, (double)r->c.o.interval_ns / 1e9, from,
			     (double)duration / 1e9, last ? ", the capture's last" : "");
	profile__add_comment(p, "periodic capture: inuse_* is what was live at this interval's end "
				"(leaks of processes that exited in it included); merged files sum "
				"these, read one file for it");
	profile__add_comment(p,
			     "periodic capture: the counts in these comments are this interval's, "
			     "except blocks live at the end (at this interval's end), unreadable "
			     "mapped files and the notes (the capture's so far)%s",
			     last ? ""
				  : "; the unwind-table summary is in the capture's last file");
}

/*
 * --interval: the file of the interval that ends now, while the probes run (at the end,
 * finish() has frozen the counters first). Its values are what the counters grew by since the
 * last file, so the files add up to the capture. When it cannot be written where it should
 * (said by outfile.c), the next file covers this interval too; when it went to the fallback
 * instead, the interval is done.
 */
void record_write_interval(struct run *r, bool last)
{
	struct capture *c = &r->c;
	struct collect_maps maps = capture_maps(c);
	uint64_t end = now_ns(), duration = end - r->iv_mono;
	struct profile_meta meta = {
		.period_type = { "space", "bytes" },
		.period = c->o.exact ? 1 : (int64_t)c->o.sample_bytes,
		.time_nanos = (int64_t)r->iv_real,
		.duration_nanos = (int64_t)duration,
		.default_sample_type = "alloc_space",
	};
	struct collect_stats st = {};
	struct collect_release rel;
	const struct watched *targets;
	struct out_file *out = NULL;
	struct symbolizer *sym;
	struct profile *p;
	char *path = NULL;
	void *data = NULL;
	size_t ntargets, len = 0;
	int err;

	if (r->progress)
		fputs("\r\033[K", stderr);
	meta.sample_types = collect_sample_types(!c->o.alloc_only, &meta.nsample_types);
	p = profile__new(&meta);
	if (!r->sym)
		r->sym = symbolizer__new();
	sym = r->sym;
	err = collect_interval(&maps, c->o.exact, c->as, sym, p, &st, r->base);
	if (err) {
		ap_err("cannot read the recorded counters: %s; the next file covers this interval "
		       "too",
		       strerror(-err));
		r->write_failed = true;
		goto out;
	}
	targets = watch__targets(c->watch, &ntargets);
	if (ntargets)
		profile__set_main(p, targets[0].exe);
	report_comments(c, p, &st, duration);
	interval_comments(r, p, duration, last);
	err = pprof_encode(profile__message(p), &data, &len);
	if (err) {
		ap_err("cannot encode the profile: %s; the next file covers this interval too",
		       strerror(-err));
		r->write_failed = true;
		goto out;
	}
	path = interval__name(r->iv, r->iv_real);
	/* Checked again for each file: the directory may have changed since the start. */
	err = out_file__open_opts(path, &(struct out_file_opts){ .mode = c->o.mode }, &out);
	if (err) {
		/* Said by outfile.c in its one line; the counts are not lost. */
		if (!last)
			ap_info("the interval's counts are carried into the next file");
		r->write_failed = true;
		goto out;
	}
	/* On failure it says why, and where the file went instead: the interval is done. */
	err = out_file__commit(out, data, len);
	if (err)
		r->write_failed = true;
	r->files++;
	r->iv_mono = end;
	r->iv_real += duration; /* so each file's time and duration adjoin the next's */
	if (!last) {
		size_t spaces, files;

		collect_base__advance(r->base, &maps, c->as, &rel);
		addrspaces__counts(c->as, &spaces, &files);
		r->sym_closed += rel.files;
		if (r->sym_closed > files + SYM_KEEP_CLOSED) {
			symbolizer__free(r->sym);
			r->sym = NULL;
			r->sym_closed = 0;
		}
		if (rel.procs)
			ap_info("released %zu exited process%s: %zu counters, %zu stacks, %zu live "
				"blocks, %zu recorded mappings, %zu snapshots, %zu files",
				rel.procs, rel.procs == 1 ? "" : "es", rel.counters, rel.stacks,
				rel.live, rel.vmas, rel.spaces, rel.files);
		/* What stays bounded over days; scripts/soak.sh reads this line. */
		ap_info("held: %zu counters, %zu stacks, %zu live blocks, %zu recorded mappings, "
			"%zu processes in the kernel; %zu mapping snapshots, %zu open files; "
			"%.0f ms to collect and write the file",
			rel.held_counters, rel.held_stacks, rel.held_live, rel.held_vmas,
			rel.held_procs, rel.held_spaces, rel.held_files,
			(double)(now_ns() - end) / 1e6);
	}
	report_losses(&st);
	if (!err) {
		if (!c->o.quiet)
			print_wrote(r, path, &st, duration, "");
		if (last && !c->o.quiet)
			report_shallow(&st, c->o.stacks);
		interval__prune(r->iv);
	}
out:
	free(path);
	free(data);
	profile__free(p);
}

int record_finish(struct run *r)
{
	struct capture *c = &r->c;
	struct collect_maps maps = capture_maps(c);
	uint64_t duration = now_ns() - c->start_mono;
	struct profile_meta meta = {
		.period_type = { "space", "bytes" },
		.period = c->o.exact ? 1 : (int64_t)c->o.sample_bytes,
		.time_nanos = (int64_t)c->start_real,
		.duration_nanos = (int64_t)duration,
		.default_sample_type = "alloc_space",
	};
	struct collect_stats st = {};
	const struct watched *targets;
	size_t ntargets;
	struct symbolizer *sym;
	struct profile *p;
	void *data = NULL;
	size_t len = 0;
	int err;

	meta.sample_types = collect_sample_types(!c->o.alloc_only, &meta.nsample_types);
	report_prog_time(c);
	/*
	 * The counters stop moving while they are read; the probes stay until the profile is
	 * written (detaching is the slow part of the end, see detach()).
	 */
	c->skel->bss->stopped = true;
	watch_stop_following(c);
	ring_buffer__consume(r->events);
	watch_finish(c);
	report_unwind(c);
	if (r->base) {
		/* The partial last interval, counted to the moment the counters stopped. */
		record_write_interval(r, true);
		return r->write_failed ? -EIO : 0;
	}

	collect_read_stats(maps.stats_fd, &st.bpf);
	p = profile__new(&meta);
	sym = symbolizer__new();
	err = collect_samples(&maps, c->o.exact, c->as, sym, p, &st);
	if (err) {
		ap_err("cannot read the recorded counters: %s", strerror(-err));
		goto out;
	}
	targets = watch__targets(c->watch, &ntargets);
	if (ntargets)
		profile__set_main(p, targets[0].exe);
	report_comments(c, p, &st, duration);
	err = pprof_encode(profile__message(p), &data, &len);
	if (err) {
		ap_err("cannot encode the profile: %s", strerror(-err));
		out_file__abort(r->out);
	} else {
		/* On failure it says why, and where the profile was written instead. */
		err = out_file__commit(r->out, data, len);
	}
	r->out = NULL;
	if (!err) {
		report_losses(&st);
		if (!c->o.quiet)
			summarize(r, p, &st, duration);
	}
	/* the picture even when the profile went to the fallback file instead */
	if (r->svg) {
		if (flame_svg_of_profile(r->svg, profile__message(p), r->out_path))
			err = err ? err : -EIO;
		else if (!c->o.quiet)
			fprintf(stderr, "allocprof: wrote %s: the profile's flame graph\n",
				c->o.svg);
		r->svg = NULL;
	}
	if (err)
		goto out;
	if (r->iv)
		interval__prune(r->iv);
out:
	free(data);
	symbolizer__free(sym);
	profile__free(p);
	return err;
}
