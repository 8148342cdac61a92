/*
 * Loading the capture's BPF object (see load.h). Owns nothing after it returns: the object,
 * the attacher and the unwind tables are the capture's (record.c frees them).
 */
#include "load.h"
#include "allocprof.skel.h"
#include "attach.h"
#include "capture.h"
#include "sampling.h"
#include "unwind.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_BOOTTIME, the clock of bpf_prog_info.load_time. */
static uint64_t boot_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * -v: how long the object took to load, and each program's share, as the kernel recorded it:
 * a program's load (the verifier, then the JIT) starts at its bpf_prog_info.load_time and
 * lasts until the next one's starts (the last one's, until the object's load returned).
 * Start-up is mostly the verifier's, on the programs with the most verified instructions.
 */
static void report_load(const struct bpf_object *obj, uint64_t start, uint64_t end)
{
	struct loaded {
		const char *name;
		uint64_t at;
		__u32 insns;
	} p[32], t;
	struct bpf_program *prog;
	size_t n = 0;

	ap_info("BPF object loaded in %.1f ms", (double)(end - start) / 1e6);
	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);

		if (fd < 0 || n == sizeof(p) / sizeof(p[0]) ||
		    bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		p[n++] = (struct loaded){ bpf_program__name(prog), info.load_time,
					  info.verified_insns };
	}
	for (size_t i = 1; i < n; i++) /* by load time: libbpf's order */
		for (size_t j = i; j > 0 && p[j].at < p[j - 1].at; j--) {
			t = p[j];
			p[j] = p[j - 1];
			p[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++)
		ap_info("program %s: %u instructions verified in %.1f ms", p[i].name, p[i].insns,
			(double)((i + 1 < n ? p[i + 1].at : end) - p[i].at) / 1e6);
}

/*
 * Counters of operations (process, operation) at once: beyond, calls are counted as lost
 * (AP_STAT_OPS_FULL). Periodic capture releases those of processes gone.
 */
#define OPS_ENTRIES 65536

int capture_load(struct capture *c, ring_buffer_sample_fn on_event, struct ring_buffer **events)
{
	struct attach_progs progs = {};
	struct allocprof_bpf *s;
	uint64_t load_start;
	int err;

	s = allocprof_bpf__open();
	if (!s) {
		err = -errno;
		ap_err("cannot open the BPF object: %s", strerror(-err));
		return err;
	}
	s->rodata->exact = c->o.exact;
	s->rodata->sample_bytes = c->o.exact ? 1 : c->o.sample_bytes;
	s->rodata->track_live = !c->o.alloc_only;
	s->rodata->stack_mode = (__u32)c->o.stacks;
	/* The row pool is taken whole at load: nothing of it with frame pointers only. */
	bpf_map__set_max_entries(s->maps.cfi_rows,
				 c->o.stacks == AP_STACKS_FP ? 1 : (__u32)c->o.max_cfi_rows);
	for (size_t i = 0; i < alloc_fns_nr; i++)
		if (alloc_fns[i].throws)
			s->rodata->throwing_fns |= 1ull << i;
	scope_configure(c, s);
	/*
	 * In-use tracking needs an allocation's return: through a uprobe session where the
	 * kernel has them (unsampled calls skip it), else a classic return probe on every call.
	 */
	if (!c->o.alloc_only)
		c->sessions = attach_sessions_supported(&c->no_sessions);
	c->placement = (struct placement){ .at_entry = c->o.probe_at_entry,
					   .return_probes = !c->o.alloc_only,
					   .ops = c->o.ops,
					   .nops = c->o.nops };
	if (c->sessions) {
		bpf_program__set_expected_attach_type(s->progs.on_alloc_session,
						      (enum bpf_attach_type)attach_session_type());
		/*
		 * A kernel with sessions has uprobe_multi links: free's sites, one link a file,
		 * and the dynamic linker's hook.
		 */
		bpf_program__set_expected_attach_type(s->progs.on_free,
						      (enum bpf_attach_type)attach_multi_type());
		bpf_program__set_expected_attach_type(s->progs.on_rtld_state,
						      (enum bpf_attach_type)attach_multi_type());
		bpf_program__set_expected_attach_type(s->progs.on_op,
						      (enum bpf_attach_type)attach_multi_type());
	}
	/* --ops: one counter per process and operation, taken as processes call them. */
	bpf_program__set_autoload(s->progs.on_op, c->o.nops > 0);
	bpf_map__set_max_entries(s->maps.ops, c->o.nops ? OPS_ENTRIES : 1);
	bpf_program__set_autoload(s->progs.on_alloc_session, c->sessions);
	bpf_program__set_autoload(s->progs.on_alloc, !c->sessions);
	bpf_program__set_autoload(s->progs.on_alloc_ret, !c->sessions && !c->o.alloc_only);
	bpf_program__set_autoload(s->progs.on_free, !c->o.alloc_only);
	bpf_map__set_max_entries(s->maps.live, (__u32)c->o.max_live);
	bpf_map__set_max_entries(s->maps.stacks, (__u32)c->o.max_stacks);
	bpf_map__set_max_entries(s->maps.counts, (__u32)c->o.max_stacks * 2);
	bpf_map__set_max_entries(s->maps.vmas, (__u32)c->o.max_stacks * 4);
	bpf_map__set_max_entries(s->maps.libs, AP_LIBS_ENTRIES);
	/* Memory is only taken as stacks appear, not reserved up front. */
	bpf_map__set_map_flags(s->maps.stacks, BPF_F_NO_PREALLOC);
	bpf_map__set_map_flags(s->maps.counts, BPF_F_NO_PREALLOC);
	/* Attached by hand when something is watched, or run as an iterator. */
	bpf_program__set_autoattach(s->progs.on_exec, false);
	bpf_program__set_autoattach(s->progs.on_fork, false);
	bpf_program__set_autoattach(s->progs.on_exit, false);
	bpf_program__set_autoattach(s->progs.real_files, false);
	load_start = boot_ns();
	err = allocprof_bpf__load(s);
	if (!err && verbose)
		report_load(s->obj, load_start, boot_ns());
	if (err) {
		ap_err("cannot load the BPF programs: %s%s", strerror(-err),
		       verbose ? "" : " (run with -vv for the verifier's log)");
		allocprof_bpf__destroy(s);
		return err;
	}
	sampling_exp_table(s->bss->exp_q16, AP_EXP_TABLE_SIZE);
	sampling_weight_table(s->bss->weight_q16, AP_WEIGHT_ENTRIES);
	*events = ring_buffer__new(bpf_map__fd(s->maps.events), on_event, c, NULL);
	if (!*events) {
		err = -errno;
		ap_err("cannot set up the event buffer: %s", strerror(-err));
		allocprof_bpf__destroy(s);
		return err;
	}
	c->skel = s;
	err = scope_fill_filters(c);
	if (err)
		return err; /* said, and the object is freed with the capture */
	if (c->o.stacks != AP_STACKS_FP) {
		c->unwind = unwind__new(s);
		if (!c->unwind)
			return -ENOMEM; /* said, and the object is freed with the capture */
	}
	if (c->o.alloc_only)
		progs.alloc = s->progs.on_alloc;
	else if (c->sessions)
		progs = (struct attach_progs){ .session = s->progs.on_alloc_session,
					       .free = s->progs.on_free,
					       .free_multi = true };
	else
		progs = (struct attach_progs){ .alloc = s->progs.on_alloc,
					       .alloc_ret = s->progs.on_alloc_ret,
					       .free = s->progs.on_free };
	if (!c->o.alloc_only)
		ap_info("in-use tracking: returns through %s%s%s",
			c->sessions ? "uprobe sessions" : "return probes on every call (slower)",
			c->sessions ? "" : ": ", c->sessions ? "" : c->no_sessions);
	progs.rtld_multi = c->sessions;
	if (c->o.nops) {
		progs.op = s->progs.on_op;
		progs.op_multi = c->sessions;
	}
	c->att = attacher__new(&progs, bpf_map__fd(s->maps.libs));
	return 0;
}
