/*
 * What is said about a capture: the profile's comments (targets, allocators, sampling, every
 * count of calls seen, skipped and lost) and the warnings on stderr. Nothing lost is silent.
 */
#include "addrspace.h"
#include "allocprof.skel.h"
#include "capture.h"
#include "collect.h"
#include "profile.h"
#include "record.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <string.h>

/*
 * Every counter of an allocation (or a notice) that did not make it, and what it means. All go
 * into the comments; those that can change what the profile says are also warned about.
 */
static const struct {
	enum ap_stat stat;
	bool lost; /* an allocation missing from the profile */
	bool warn; /* also on stderr */
	const char *what;
} losses[] = {
	{ AP_STAT_NO_THREAD, true, true, "lost: no per-thread state could be allocated" },
	{ AP_STAT_RA_FAULT, true, true, "lost: return address unreadable" },
	{ AP_STAT_STACKS_FULL, true, true, "lost: stack map full (raise --max-stacks)" },
	{ AP_STAT_COUNTS_FULL, true, true, "lost: counter map full (raise --max-stacks)" },
	{ AP_STAT_STACK_FAIL, false, true, "stack walk failed: recorded with the caller only" },
	{ AP_STAT_STACK_TRUNC, false, true, "stacks truncated at 127 frames" },
	{ AP_STAT_PROCS_FULL, false, true, "process table full: names read from /proc instead" },
	{ AP_STAT_EVENTS_LOST, false, true,
	  "notices dropped (new stacks: mappings read at the next tick; new programs or "
	  "libraries: not followed)" },
	/* A frame these miss resolves through /proc instead, or counts as outside any mapping. */
	{ AP_STAT_VMAS_FULL, false, false, "mapping table full: frames resolved via /proc only" },
	{ AP_STAT_VMA_FAIL, false, false,
	  "frame mappings the kernel could not look up (address space busy)" },
	/* In-use tracking: the allocation is in alloc_*, missing from inuse_*. */
	{ AP_STAT_LIVE_FULL, false, true,
	  "allocations not tracked for in-use: live-block map full (raise --max-live) or no "
	  "kernel memory" },
	{ AP_STAT_RET_MISSED, false, true,
	  "allocations not tracked for in-use: their return was not seen" },
	{ AP_STAT_MEMPTR_FAULT, false, true,
	  "allocations not tracked for in-use: posix_memalign's result unreadable" },
};

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

static void in_use_comments(const struct capture *c, struct profile *p,
			    const struct collect_stats *st)
{
	const struct ap_stats *b = &st->bpf;

	profile__add_comment(
		p,
		"in-use tracking: returns seen through %s; inuse_* is what was live at the end "
		"of the capture, or when the process exited",
		c->sessions ? "uprobe sessions" : "return probes (no uprobe sessions)");
	profile__add_comment(p,
			     "frees seen: %llu; blocks forgotten (freed, or moved by realloc): "
			     "%llu; frees of untracked blocks (%s): %llu; inner frees of the "
			     "allocator: %llu",
			     (unsigned long long)b->v[AP_STAT_FREES],
			     (unsigned long long)b->v[AP_STAT_FREE_MATCHED],
			     c->o.exact
				     ? "allocated before the capture, or released by the "
				       "allocator itself, as glibc's thread caches at thread exit"
				     : "not sampled, or allocated before the capture",
			     (unsigned long long)b->v[AP_STAT_FREE_UNMATCHED],
			     (unsigned long long)b->v[AP_STAT_FREE_NESTED]);
	if (b->v[AP_STAT_NEW_ARMED])
		profile__add_comment(
			p,
			"sampled throwing operator new: %llu; its block found through the "
			"allocator call inside it: %llu; %s: %llu",
			(unsigned long long)b->v[AP_STAT_NEW_ARMED],
			(unsigned long long)b->v[AP_STAT_NEW_INNER], NEW_UNTRACKED,
			(unsigned long long)new_untracked(b));
	profile__add_comment(p,
			     "blocks live at the end: %llu; without their counter: %llu; "
			     "recorded allocations that failed (taken back out of alloc_*): %llu",
			     (unsigned long long)st->live_blocks,
			     (unsigned long long)st->live_orphans,
			     (unsigned long long)b->v[AP_STAT_FAILED]);
}

void report_comments(const struct capture *c, struct profile *p, const struct collect_stats *st,
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
	for (size_t i = 0; i < c->nnotes; i++)
		profile__add_comment(p, "%s", c->notes[i]);
	profile__add_comment(p, "duration: %.3f s; %zu probes", (double)duration / 1e9, c->probes);
	if (c->o.exact)
		profile__add_comment(p, "sampling: none (--exact), every allocation recorded");
	else
		profile__add_comment(p,
				     "sampling: one per %llu bytes on average (Poisson, per "
				     "thread); values are unbiased estimates",
				     (unsigned long long)c->o.sample_bytes);
	profile__add_comment(p,
			     "allocator calls seen: %llu; recorded: %llu; nested calls inside the "
			     "allocator: %llu; not allocations (realloc to 0, impossible sizes): "
			     "%llu",
			     (unsigned long long)b->v[AP_STAT_CALLS],
			     (unsigned long long)b->v[AP_STAT_SAMPLED],
			     (unsigned long long)b->v[AP_STAT_NESTED],
			     (unsigned long long)b->v[AP_STAT_NOT_ALLOC]);
	if (c->o.alloc_only)
		profile__add_comment(p, "in-use tracking: off (--alloc-only)");
	else
		in_use_comments(c, p, st);
	for (size_t i = 0; i < ARRAY_SIZE(losses); i++) {
		uint64_t v = b->v[losses[i].stat];

		if (!v)
			continue;
		profile__add_comment(p, "%s: %llu", losses[i].what, (unsigned long long)v);
		if (losses[i].lost)
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
}

void report_losses(const struct collect_stats *st)
{
	for (size_t i = 0; i < ARRAY_SIZE(losses); i++) {
		uint64_t v = st->bpf.v[losses[i].stat];

		if (v && losses[i].warn)
			ap_warn("%s: %llu", losses[i].what, (unsigned long long)v);
	}
	if (st->stacks_missing)
		ap_warn("counters whose stack was missing: %llu",
			(unsigned long long)st->stacks_missing);
	if (new_untracked(&st->bpf))
		ap_warn("%s: %llu", NEW_UNTRACKED, (unsigned long long)new_untracked(&st->bpf));
}
