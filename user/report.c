/*
 * What is said about a capture: the profile's comments (targets, allocators, sampling, every
 * count of calls seen, skipped and lost) and the warnings on stderr. Nothing lost is silent.
 * Each BPF counter's text and where it goes come from the one list in bpf/allocprof.h
 * (AP_STATS); this file puts the lines together.
 */
#include "addrspace.h"
#include "allocprof.skel.h"
#include "capture.h"
#include "collect.h"
#include "profile.h"
#include "record.h"
#include "unwind.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Lines for the comments that only the capture's course knows: allocators, late attaches. */
struct notes {
	char **line;
	size_t n, cap;
};

struct notes *notes__new(void)
{
	return xcalloc(1, sizeof(struct notes));
}

void notes__free(struct notes *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		free(n->line[i]);
	free(n->line);
	free(n);
}

void report_note(struct capture *c, const char *fmt, ...)
{
	struct notes *n = c->notes;
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < n->n; i++)
		if (!strcmp(n->line[i], buf))
			return;
	grow((void **)&n->line, &n->cap, n->n + 1, sizeof(*n->line));
	n->line[n->n++] = xstrdup(buf);
}

void report_unwind(struct capture *c)
{
	static const char *const modes[] = { [AP_STACKS_FP] = "frame pointers",
					      [AP_STACKS_AUTO] = "unwind tables (CFI), frame pointers "
								 "where a file has none",
					      [AP_STACKS_CFI] = "unwind tables (CFI) only" };
	struct unwind_summary u;

	report_note(c, PROFILE_COMMENT_STACKS "%s", modes[c->o.stacks]);
	if (!c->unwind)
		return;
	unwind__summary(c->unwind, &u);
	report_note(c, "unwind tables: %zu files (%zu shared by build-id), %llu of %llu rows "
		    "(%.1f MiB), built in %.0f ms",
		    u.files, u.shared, (unsigned long long)u.rows, (unsigned long long)u.pool,
		    (double)u.rows * sizeof(struct ap_cfi_row) / (1 << 20), u.build_ms);
	if (u.failed)
		report_note(c, "unwind tables that could not be built: %zu (first: %s)", u.failed,
			    u.first_failure);
	if (u.pool_full) {
		ap_warn("%zu unwind tables did not fit in --max-cfi-rows %llu: their frames were "
			"walked by frame pointer",
			u.pool_full, (unsigned long long)u.pool);
		report_note(c, "unwind tables that did not fit (raise --max-cfi-rows): %zu",
			    u.pool_full);
	}
	if (u.pending)
		report_note(c, "unwind tables still being built at the end: %zu", u.pending);
}

static void prog_time(const char *what, const struct bpf_program *prog)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_program__fd(prog);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) || !info.run_cnt)
		return;
	ap_info("%s program: %llu runs, %.1f ns per run (kernel.bpf_stats_enabled)", what,
		(unsigned long long)info.run_cnt, (double)info.run_time_ns / (double)info.run_cnt);
}

/* With kernel.bpf_stats_enabled=1 the kernel times every run of the programs: say so (-v). */
void report_prog_time(const struct capture *c)
{
	if (!verbose)
		return;
	prog_time("allocation", c->skel->progs.on_alloc);
	prog_time("allocation session (entry and return)", c->skel->progs.on_alloc_session);
	prog_time("allocation return", c->skel->progs.on_alloc_ret);
	prog_time("free", c->skel->progs.on_free);
}

#define NEW_UNTRACKED                                                                              \
	"allocations not tracked for in-use: operator new calling no probed function (a "          \
	"return probe on a new that may throw would break C++ exceptions)"

static uint64_t new_untracked(const struct ap_stats *b)
{
	uint64_t armed = b->v[AP_STAT_NEW_ARMED], inner = b->v[AP_STAT_NEW_INNER];

	return armed > inner ? armed - inner : 0;
}

/* One comment of "what: N" fields joined by "; ". */
struct line {
	char s[512]; /* as long as profile__add_comment keeps */
	size_t len;
};

static void line_add(struct line *l, const char *what, uint64_t v)
{
	size_t room = sizeof(l->s) - l->len;
	int n = snprintf(l->s + l->len, room, "%s%s: %llu", l->len ? "; " : "", what,
			 (unsigned long long)v);

	if (n > 0)
		l->len += (size_t)n < room ? (size_t)n : room - 1;
}

/* Every counter of one summary line, in the list's order (bpf/allocprof.h). */
static void line_stats(struct line *l, const struct capture *c, const struct ap_stats *b,
		       enum ap_stat_kind kind)
{
	for (int i = 0; i < AP_STAT_NR; i++) {
		const char *what = ap_stat_descs[i].text;
		char buf[256];

		if (ap_stat_descs[i].kind != kind)
			continue;
		if (i == AP_STAT_FREE_UNMATCHED) {
			snprintf(buf, sizeof(buf), "%s (%s)", what,
				 c->o.exact ? "allocated before the capture, or released by the "
					      "allocator itself, as glibc's thread caches at "
					      "thread exit"
					    : "not sampled, or allocated before the capture");
			what = buf;
		}
		line_add(l, what, b->v[i]);
	}
}

static void in_use_comments(const struct capture *c, struct profile *p,
			    const struct collect_stats *st)
{
	const struct ap_stats *b = &st->bpf;
	struct line l = {};

	profile__add_comment(
		p,
		"in-use tracking: returns seen through %s; inuse_* is what was live at the end "
		"of the capture, or when the process exited",
		c->sessions ? "uprobe sessions" : "return probes (no uprobe sessions)");
	line_stats(&l, c, b, AP_SK_FREES);
	profile__add_comment(p, "%s", l.s);
	if (b->v[AP_STAT_NEW_ARMED]) {
		l = (struct line){};
		line_stats(&l, c, b, AP_SK_NEW);
		line_add(&l, NEW_UNTRACKED, new_untracked(b));
		profile__add_comment(p, "%s", l.s);
	}
	l = (struct line){};
	line_add(&l, "blocks live at the end", st->live_blocks);
	line_add(&l, "without their counter", st->live_orphans);
	line_stats(&l, c, b, AP_SK_LIVE);
	profile__add_comment(p, "%s", l.s);
}

/* A counter said on its own: lost allocations, warnings and notes. */
static bool said_alone(enum ap_stat_kind kind)
{
	return kind == AP_SK_LOST || kind == AP_SK_WARN || kind == AP_SK_NOTE;
}

/*
 * --ops: one "ops: NAME COUNT" line per operation, the form readers parse (profile.h), then
 * who made the calls, for people.
 */
static void ops_comments(const struct capture *c, struct profile *p, const struct collect_stats *st)
{
	/*
	 * Each line names its file: `pprof -proto A B` keeps one of two equal comments, and two
	 * runs (or two periodic files) with as many calls would lose one run's operations.
	 */
	static unsigned int file;
	char host[64] = "", which[160];

	gethostname(host, sizeof(host) - 1);
	host[strcspn(host, ".")] = 0;
	snprintf(which, sizeof(which), "capture on %s by pid %d from %llu.%03llu s, file %u", host,
		 (int)getpid(), (unsigned long long)(c->start_real / 1000000000ull),
		 (unsigned long long)(c->start_real / 1000000ull % 1000), ++file);
	if (c->o.ops_given)
		profile__add_comment(p, PROFILE_COMMENT_OPS PROFILE_OPS_GIVEN " %llu (as --ops gave; %s)",
				     (unsigned long long)c->o.ops_given, which);
	for (size_t i = 0; i < c->o.nops; i++) {
		struct line l = {};
		size_t shown = 0, procs = 0;

		profile__add_comment(p, PROFILE_COMMENT_OPS "%s %llu calls at its entry (%s)",
				     c->o.ops[i], (unsigned long long)st->op_calls[i], which);
		for (size_t k = 0; k < st->nop_procs && k < COLLECT_OP_PROCS; k++) {
			const struct collect_op *o = &st->op_procs[k];

			if (o->op != i)
				continue;
			procs++;
			if (shown++ < 8) {
				char pid[32];

				snprintf(pid, sizeof(pid), "pid %u", (unsigned)o->proc.pid);
				line_add(&l, pid, o->calls);
			}
		}
		if (procs)
			profile__add_comment(p, "calls of %s by process: %s%s", c->o.ops[i], l.s,
					     st->nop_procs > COLLECT_OP_PROCS || shown > 8 ? "; ..."
										   : "");
	}
}

void report_ops_summary(const struct capture *c, const struct collect_stats *st)
{
	char b1[32];

	if (c->o.ops_given)
		fprintf(stderr, "allocprof: %.2f allocations, %s per operation (%llu, --ops)\n",
			st->objects / (double)c->o.ops_given,
			fmt_bytes(st->bytes / (double)c->o.ops_given, b1, sizeof(b1)),
			(unsigned long long)c->o.ops_given);
	for (size_t i = 0; i < c->o.nops; i++) {
		double n = (double)st->op_calls[i];

		if (!st->op_calls[i]) {
			ap_warn("--ops %s: not called during the capture", c->o.ops[i]);
			continue;
		}
		fprintf(stderr,
			"allocprof: %.2f allocations, %s per call of %s (%llu calls; all "
			"allocations of the traced processes, see top --per-op)\n",
			st->objects / n, fmt_bytes(st->bytes / n, b1, sizeof(b1)), c->o.ops[i],
			(unsigned long long)st->op_calls[i]);
	}
}

void report_comments(const struct capture *c, struct profile *p, const struct collect_stats *st,
		     uint64_t duration)
{
	const struct ap_stats *b = &st->bpf;
	struct line calls = {};
	uint64_t lost = 0;
	size_t ntargets;

	const struct child *child = watch__child(c->watch);
	const struct watched *targets = watch__targets(c->watch, &ntargets);

	profile__add_comment(p, "allocprof %s", ALLOCPROF_VERSION);
	if (c->o.all)
		profile__add_comment(p, "target: all processes");
	else if (child)
		profile__add_comment(p, "target: command '%s' (pid %d)", c->o.cmd[0],
				     (int)child->pid);
	for (size_t i = 0; i < ntargets && !child; i++)
		profile__add_comment(p, "target: pid %d (%s)", (int)targets[i].pid,
				     targets[i].comm);
	for (size_t i = 0; i < c->notes->n; i++)
		profile__add_comment(p, "%s", c->notes->line[i]);
	profile__add_comment(p, "duration: %.3f s; %zu probes", (double)duration / 1e9,
			     watch__probes(c->watch));
	if (c->o.exact)
		profile__add_comment(p, PROFILE_COMMENT_EXACT ", every allocation recorded");
	else
		profile__add_comment(p,
				     PROFILE_COMMENT_SAMPLED "%llu bytes on average (Poisson, per "
				     "thread); values are unbiased estimates",
				     (unsigned long long)c->o.sample_bytes);
	line_stats(&calls, c, b, AP_SK_CALLS);
	profile__add_comment(p, "%s", calls.s);
	ops_comments(c, p, st);
	if (c->o.alloc_only)
		profile__add_comment(p, "in-use tracking: off (--alloc-only)");
	else
		in_use_comments(c, p, st);
	for (int i = 0; i < AP_STAT_NR; i++) {
		uint64_t v = b->v[i];

		if (!v || !said_alone(ap_stat_descs[i].kind))
			continue;
		profile__add_comment(p, "%s: %llu", ap_stat_descs[i].text, (unsigned long long)v);
		if (ap_stat_descs[i].kind == AP_SK_LOST)
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
	if (st->frames_dropped)
		profile__add_comment(p,
				     "frames dropped at the first address in no executable mapping "
				     "(a frame-pointer walk through code built without frame "
				     "pointers): %llu",
				     (unsigned long long)st->frames_dropped);
	if (st->stacks_missing)
		profile__add_comment(p, "counters whose stack was missing: %llu",
				     (unsigned long long)st->stacks_missing);
	report_stack_shape(p, st);
}

/* How a stack's walk ended, as the stack-shape lines say it. */
static const char *const end_texts[AP_END_NR] = {
	[AP_END_FP] = "walked by frame pointer (code built without them ends it early)",
	[AP_END_ROOT] = "reached a thread's first frame",
	[AP_END_NOT_CODE] = "a return address outside executable code (or 0)",
	[AP_END_NO_CFI] = "code without unwind information or frame pointer",
	[AP_END_NO_TABLE] = "a file without an unwind table (not built yet, or it could not be)",
	[AP_END_UNSUPPORTED] = "an unwind rule allocprof cannot follow",
	[AP_END_SIGNAL] = "a signal frame",
	[AP_END_READ_FAULT] = "stack memory unreadable",
	[AP_END_DEPTH] = "127 frames",
	[AP_END_VMA_BUSY] = "the address space busy",
	[AP_END_RBP_LOST] = "%rbp not recoverable",
};

void report_stack_shape(struct profile *p, const struct collect_stats *st)
{
	char line[1024];
	size_t len = 0;

	if (st->bytes <= 0)
		return;
	len += (size_t)snprintf(line, sizeof(line), "%s", PROFILE_COMMENT_STACK_ENDS);
	for (int e = 0; e < AP_END_NR && len < sizeof(line); e++) {
		if (st->end_bytes[e] <= 0)
			continue;
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s %s %.1f%%",
					len > strlen(PROFILE_COMMENT_STACK_ENDS) ? ";" : "",
					end_texts[e], 100.0 * st->end_bytes[e] / st->bytes);
	}
	profile__add_comment(p, "%s", line);
	profile__add_comment(p, PROFILE_COMMENT_SHALLOW "%.1f%%",
			     100.0 * st->shallow_bytes / st->bytes);
}

void report_shallow(const struct collect_stats *st, int stacks)
{
	int worst = -1;

	if (st->bytes <= 0 || st->shallow_bytes < st->bytes / 2)
		return;
	for (int e = 0; e < AP_END_NR; e++)
		if (e != AP_END_ROOT && (worst < 0 || st->end_bytes[e] > st->end_bytes[worst]))
			worst = e;
	fprintf(stderr,
		"allocprof: note: %.0f%% of the weight is in stacks of one or two frames that end "
		"before a thread's first frame, mostly at %s%s\n",
		100.0 * st->shallow_bytes / st->bytes, end_texts[worst],
		stacks == AP_STACKS_FP ? "; --stacks auto unwinds code built without frame pointers"
				       : "");
}

void report_losses(const struct collect_stats *st)
{
	for (int i = 0; i < AP_STAT_NR; i++) {
		enum ap_stat_kind kind = ap_stat_descs[i].kind;
		uint64_t v = st->bpf.v[i];

		if (v && (kind == AP_SK_LOST || kind == AP_SK_WARN))
			ap_warn("%s: %llu", ap_stat_descs[i].text, (unsigned long long)v);
	}
	if (st->stacks_missing)
		ap_warn("counters whose stack was missing: %llu",
			(unsigned long long)st->stacks_missing);
	if (new_untracked(&st->bpf))
		ap_warn("%s: %llu", NEW_UNTRACKED, (unsigned long long)new_untracked(&st->bpf));
}
