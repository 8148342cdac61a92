/*
 * `allocprof record` options: the one place the command line is parsed and checked. Every
 * bad value gets one line naming the option and what was expected; nothing else here prints.
 */
#include "options.h"
#include "allocator.h"
#include "allocprof.h"
#include "exitstatus.h"
#include "procmaps.h"
#include "profile.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void record_usage(FILE *f)
{
	fputs("usage: allocprof record [TARGET] [options]\n"
	      "\n"
	      "Records the allocations of live processes into a gzipped pprof profile.\n"
	      "\n"
	      "Target (one of):\n"
	      "  -p, --pid PID[,PID...]   attach to running processes\n"
	      "  -a, --all                every process on the host that uses an allocator,\n"
	      "                           including those started later\n"
	      "  -- CMD [ARGS...]         start CMD with the probes attached before it runs, and\n"
	      "                           follow the processes it starts; its exit status\n"
	      "                           becomes allocprof's\n"
	      "\n"
	      "Which processes (filters, combined):\n"
	      "      --no-follow          with -- CMD: CMD alone, not the processes it starts\n"
	      "      --comm NAME          only processes named NAME (as ps -o comm shows it,\n"
	      "                           15 characters at most); repeatable\n"
	      "      --cgroup PATH        only processes in the cgroup v2 PATH or below it\n"
	      "                           (under the cgroup2 mount, or as /proc/PID/cgroup\n"
	      "                           shows it)\n"
	      "      --exclude-pid PID[,PID...]\n"
	      "                           never these processes\n"
	      "\n"
	      "Options:\n"
	      "  -d, --duration DURATION  stop after DURATION (500ms, 30s, 2m, 1h); default: at\n"
	      "                           Ctrl-C/SIGTERM or when every target has exited\n"
	      "  -o, --output FILE        where the profile goes (default:\n"
	      "                           allocprof-<host>-<time>.pb.gz in this directory); a\n"
	      "                           file is replaced whole, never partly written; '-'\n"
	      "                           (stdout), a FIFO or a character device gets the\n"
	      "                           gzip stream; if the write fails at the end, the\n"
	      "                           profile goes to $TMPDIR or /tmp and exit is 1\n"
	      "      --output-dir DIR     write into DIR, named allocprof-<host>-<UTC time>.pb.gz\n"
	      "                           (DIR must exist; not with -o)\n"
	      "      --interval D         with --output-dir, one complete profile per interval\n"
	      "                           D (at least 1s), each covering exactly its interval,\n"
	      "                           until -d, a signal or the targets' exit; SIGUSR1\n"
	      "                           writes the current interval at once (without\n"
	      "                           --interval SIGUSR1 writes nothing and says so)\n"
	      "      --keep N             with --output-dir, after each file, delete this\n"
	      "                           host's oldest allocprof files in DIR beyond N\n"
	      "      --svg FILE           also draw the profile as a flame graph into FILE (an\n"
	      "                           SVG, as allocprof flame draws it), after the profile\n"
	      "      --mode MODE          the files' mode, exactly (octal, e.g. 0640; default\n"
	      "                           0600, or the replaced file's if stricter)\n"
	      "      --sample-bytes N     sample one allocation per N bytes on average, per "
	      "thread\n"
	      "                           (default 512KiB; accepts k, M, G suffixes)\n"
	      "      --exact              record every allocation (higher overhead)\n"
	      "      --alloc-only         allocations only: no in-use (inuse_objects/space)\n"
	      "                           tracking, no probes on free or on returns; lowest\n"
	      "                           overhead\n"
	      "      --max-live N         allocated blocks tracked for in-use at once (default\n"
	      "                           262144); beyond it allocations are counted untracked\n"
	      "  -n, --top N              functions to summarize on stderr at the end (default\n"
	      "                           10, 0: none); none with --interval\n"
	      "  -q, --quiet              print nothing but errors and warnings\n"
	      "      --max-stacks N       distinct stacks kept in the kernel (default 16384)\n"
	      "      --stacks MODE        how stacks are walked: auto (default: the unwind\n"
	      "                           information of each file, .eh_frame, and frame\n"
	      "                           pointers where a file has none), cfi (unwind\n"
	      "                           information only: code without it ends the\n"
	      "                           stack), fp (frame pointers only)\n"
	      "      --max-cfi-rows N     unwind-table rows kept in the kernel for all files\n"
	      "                           together (default 2097152, 8 bytes each)\n"
	      "      --probe-at-entry     probe every function at its first instruction instead\n"
	      "                           of the first one the kernel emulates (slower)\n"
	      "      --ops FUNC[,FUNC...] count the calls of each FUNC (a function of the\n"
	      "                           program or a library it loads; C++: ns::Class::fn\n"
	      "                           without parameters, or the symbol), per process,\n"
	      "                           into the profile: the operations of `top --per-op`,\n"
	      "                           `check` and `diff`; a FUNC found nowhere is an\n"
	      "                           error (repeatable)\n"
	      "      --ops N              the program did N operations (a benchmark that\n"
	      "                           knows its count)\n"
	      "  -v, --verbose            more detail (-vv: also libbpf's own messages)\n"
	      "  -h, --help               this text\n"
	      "\n"
	      "Exit status:\n"
	      "  0  the profile was written, even if some allocations were lost or some\n"
	      "     process could not be probed (stderr and the profile's comments say so);\n"
	      "     with -- CMD: CMD's status (128+N if signal N killed it)\n"
	      "  1  the capture failed (the reason on one line of stderr)\n"
	      "  2  bad command line\n"
	      "  3  not permitted or not possible here: privileges missing, a kernel without\n"
	      "     BTF or uprobes, BPF refused (lockdown), a nested pid namespace\n"
	      "  4  nothing to trace: no process with a recognisable allocator (-a), every\n"
	      "     -p pid gone or a kernel thread or without an allocator, a CMD without one\n",
	      f);
}

static int bad(const char *fmt, const char *arg);

/* An allocator function counts itself: as an operation it would say 1 alloc/op. */
static bool is_allocator_fn(const char *name)
{
	for (size_t i = 0; i < alloc_fns_nr; i++)
		if (!strcmp(alloc_fns[i].name, name))
			return true;
	return false;
}

/* --ops FUNC[,FUNC...] or --ops N, into o->ops (copies) or o->ops_given. */
static int parse_ops(const char *optarg_, struct record_opts *o)
{
	_Static_assert(AP_MAX_OPS == 16, "the message below says 16");
	uint64_t n;
	char *save = NULL, *name, *arg;
	int ret = 0;

	if (*optarg_ >= '0' && *optarg_ <= '9') {
		const char *arg = optarg_;

		if (parse_u64(arg, 1, UINT64_MAX / 2, &n))
			return bad("bad --ops '%s': expected function names or a number of "
				   "operations from 1",
				   arg);
		if (o->ops_given)
			return bad("--ops %s: a number of operations was given already", arg);
		o->ops_given = n;
		return 0;
	}
	if (!*optarg_)
		return bad("empty --ops%s: expected FUNC[,FUNC...] or a number", "");
	arg = xstrdup(optarg_); /* (strtok writes into it; argv may be read-only) */
	for (name = strtok_r(arg, ",", &save); name && !ret; name = strtok_r(NULL, ",", &save)) {
		for (const char *ch = name; *ch && !ret; ch++)
			if (*ch == ' ' || *ch == '\t' || *ch == '\n' || *ch == '(')
				ret = bad("bad --ops '%s': expected a function name (C++: "
					  "ns::Class::fn without parameters, or the symbol)",
					  name);
		if (!ret && !strcmp(name, PROFILE_OPS_GIVEN))
			ret = bad("--ops %s: the name --ops N gives its count; name a function",
				  name);
		if (!ret && is_allocator_fn(name))
			ret = bad("--ops %s: an allocator function; name the function whose "
				  "calls are the operations",
				  name);
		for (size_t i = 0; i < o->nops && !ret; i++)
			if (!strcmp(o->ops[i], name))
				ret = bad("--ops %s: given twice", name);
		if (!ret && o->nops == AP_MAX_OPS)
			ret = bad("--ops %s: more than 16 functions", name);
		if (ret)
			break;
		o->ops = xrealloc(o->ops, o->nops + 1, sizeof(*o->ops));
		o->ops[o->nops++] = xstrdup(name);
	}
	if (!ret && !o->nops)
		ret = bad("bad --ops '%s': expected FUNC[,FUNC...] or a number", optarg_);
	free(arg);
	return ret;
}

static int bad(const char *fmt, const char *arg)
{
	char buf[256];

	snprintf(buf, sizeof(buf), fmt, arg);
	/* One line, as every message: a log reads one event per line (README "Exit status"). */
	ap_err("%s (see allocprof record --help)", buf);
	return AP_EXIT_USAGE;
}

/* An octal mode of permission bits only: "0640", "600". */
static int parse_mode(const char *s, int *mode)
{
	long v;

	if (!*s || strlen(s) > 4 || strspn(s, "01234567") != strlen(s))
		return -EINVAL;
	v = strtol(s, NULL, 8);
	if (v > 0777)
		return -ERANGE;
	*mode = (int)v;
	return 0;
}

/* What can be told from the name alone: it must name a file, not a directory. */
static bool names_directory(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !*base || !strcmp(base, ".") || !strcmp(base, "..");
}

static int parse_pids(const char *arg, pid_t **pids, size_t *npids)
{
	char *copy = xstrdup(arg), *save = NULL;
	size_t cap = *npids;
	int ret = 0;

	if (!*arg || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
		ret = bad("bad pid list '%s': expected PID[,PID...]", arg);
	for (char *t = strtok_r(copy, ",", &save); t && !ret; t = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		int err = parse_u64(t, 1, INT_MAX, &v);

		if (err) {
			ret = bad(err == -ERANGE ? "pid '%s' is out of range"
						 : "pid '%s' is not a number",
				  t);
			break;
		}
		/* The same pid twice would be probed twice: once is what is meant. */
		for (size_t i = 0; i < *npids && v; i++)
			if ((*pids)[i] == (pid_t)v)
				v = 0;
		if (!v)
			continue;
		grow((void **)pids, &cap, *npids + 1, sizeof(**pids));
		(*pids)[(*npids)++] = (pid_t)v;
	}
	free(copy);
	return ret;
}

int record_opts__parse(int argc, char **argv, struct record_opts *o)
{
	enum {
		OPT_SAMPLE_BYTES = 256,
		OPT_EXACT,
		OPT_MAX_STACKS,
		OPT_ALLOC_ONLY,
		OPT_MAX_LIVE,
		OPT_PROBE_AT_ENTRY,
		OPT_MODE,
		OPT_STACKS,
		OPT_MAX_CFI_ROWS,
		OPT_NO_FOLLOW,
		OPT_COMM,
		OPT_CGROUP,
		OPT_EXCLUDE_PID,
		OPT_INTERVAL,
		OPT_OUTPUT_DIR,
		OPT_KEEP,
		OPT_OPS,
		OPT_SVG,
	};
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "sample-bytes", required_argument, NULL, OPT_SAMPLE_BYTES },
		{ "exact", no_argument, NULL, OPT_EXACT },
		{ "top", required_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "max-stacks", required_argument, NULL, OPT_MAX_STACKS },
		{ "alloc-only", no_argument, NULL, OPT_ALLOC_ONLY },
		{ "max-live", required_argument, NULL, OPT_MAX_LIVE },
		{ "probe-at-entry", no_argument, NULL, OPT_PROBE_AT_ENTRY },
		{ "stacks", required_argument, NULL, OPT_STACKS },
		{ "max-cfi-rows", required_argument, NULL, OPT_MAX_CFI_ROWS },
		{ "no-follow", no_argument, NULL, OPT_NO_FOLLOW },
		{ "comm", required_argument, NULL, OPT_COMM },
		{ "cgroup", required_argument, NULL, OPT_CGROUP },
		{ "exclude-pid", required_argument, NULL, OPT_EXCLUDE_PID },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "output-dir", required_argument, NULL, OPT_OUTPUT_DIR },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "ops", required_argument, NULL, OPT_OPS },
		{ "svg", required_argument, NULL, OPT_SVG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	bool sample_given = false, max_live_given = false;
	int c, ret, targets;

	*o = (struct record_opts){
		.sample_bytes = DEFAULT_SAMPLE_BYTES,
		.top = 10,
		.max_stacks = DEFAULT_MAX_STACKS,
		.max_live = DEFAULT_MAX_LIVE,
		.mode = -1,
		.stacks = AP_STACKS_AUTO,
		.max_cfi_rows = DEFAULT_MAX_CFI_ROWS,
	};
	optind = 0; /* 0, not 1: glibc then forgets a cluster left over from an earlier parse */
	opterr = 0;
	/* "+": stop at the first non-option; ":": report a missing value as ':'. */
	while ((c = getopt_long(argc, argv, "+:p:ad:o:n:qvh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((ret = parse_pids(optarg, &o->pids, &o->npids)))
				return ret;
			break;
		case 'a':
			o->all = true;
			break;
		case 'd':
			ret = parse_duration_ns(optarg, &o->duration_ns);
			if (ret)
				return bad(ret == -ERANGE ? "duration '%s' is out of range"
							  : "bad duration '%s': expected e.g. "
							    "500ms, 30s, 2m, 1h",
					   optarg);
			break;
		case 'o':
			if (!*optarg)
				return bad("empty output file name%s", "");
			if (names_directory(optarg))
				return bad("bad --output '%s': it names a directory; give a file "
					   "name",
					   optarg);
			o->output = optarg;
			break;
		case OPT_MODE:
			if (parse_mode(optarg, &o->mode))
				return bad("bad --mode '%s': expected an octal mode from 0 to 0777 "
					   "(e.g. 0640)",
					   optarg);
			break;
		case OPT_SAMPLE_BYTES:
			if (parse_size(optarg, &o->sample_bytes) || o->sample_bytes < 1 ||
			    o->sample_bytes > AP_MAX_SAMPLE_BYTES)
				return bad(
					"bad --sample-bytes '%s': expected a size from 1 to 1GiB "
					"(e.g. 4096, 512k, 1M)",
					optarg);
			sample_given = true;
			break;
		case OPT_EXACT:
			o->exact = true;
			break;
		case 'n':
			if (parse_u64(optarg, 0, 1000000, &o->top))
				return bad("bad --top '%s': expected a number from 0 to 1000000",
					   optarg);
			break;
		case 'q':
			o->quiet = true;
			break;
		case OPT_MAX_STACKS:
			if (parse_u64(optarg, 16, 1u << 22, &o->max_stacks))
				return bad("bad --max-stacks '%s': expected a number from 16 to "
					   "4194304",
					   optarg);
			break;
		case OPT_ALLOC_ONLY:
			o->alloc_only = true;
			break;
		case OPT_MAX_LIVE:
			if (parse_u64(optarg, 16, 1u << 26, &o->max_live))
				return bad("bad --max-live '%s': expected a number from 16 to "
					   "67108864",
					   optarg);
			max_live_given = true;
			break;
		case OPT_PROBE_AT_ENTRY:
			o->probe_at_entry = true;
			break;
		case OPT_STACKS:
			if (!strcmp(optarg, "auto"))
				o->stacks = AP_STACKS_AUTO;
			else if (!strcmp(optarg, "cfi"))
				o->stacks = AP_STACKS_CFI;
			else if (!strcmp(optarg, "fp"))
				o->stacks = AP_STACKS_FP;
			else
				return bad("bad --stacks '%s': expected auto, cfi or fp", optarg);
			break;
		case OPT_MAX_CFI_ROWS:
			if (parse_u64(optarg, 1024, AP_CFI_MAX_ROWS, &o->max_cfi_rows))
				return bad(
					"bad --max-cfi-rows '%s': expected a number from 1024 to "
					"16777216",
					optarg);
			break;
		case OPT_NO_FOLLOW:
			o->no_follow = true;
			break;
		case OPT_COMM:
			if (!*optarg || strchr(optarg, '/'))
				return bad("bad --comm '%s': expected a process name (not a path)",
					   optarg);
			o->comms = xrealloc(o->comms, o->ncomms + 1, sizeof(*o->comms));
			o->comms[o->ncomms++] = optarg;
			break;
		case OPT_CGROUP: {
			char dir[4096];
			int err = cgroup2_dir(optarg, dir, sizeof(dir));

			if (err == -ENODEV)
				return bad("bad --cgroup '%s': no cgroup v2 hierarchy is mounted",
					   optarg);
			if (err)
				return bad("bad --cgroup '%s': no such cgroup v2 group", optarg);
			o->cgroup = optarg;
			break;
		}
		case OPT_EXCLUDE_PID:
			if ((ret = parse_pids(optarg, &o->exclude, &o->nexclude)))
				return ret;
			break;
		case OPT_INTERVAL:
			ret = parse_duration_ns(optarg, &o->interval_ns);
			if (ret || o->interval_ns < 1000000000ull)
				return bad(ret == -ERANGE
						   ? "--interval '%s' is out of range"
						   : "bad --interval '%s': expected a duration "
						     "of at least 1s (e.g. 10s, 5m, 1h)",
					   optarg);
			break;
		case OPT_SVG:
			if (!*optarg)
				return bad("empty --svg%s", "");
			o->svg = optarg;
			break;
		case OPT_OUTPUT_DIR:
			if (!*optarg)
				return bad("empty --output-dir%s", "");
			o->output_dir = optarg;
			break;
		case OPT_KEEP:
			if (parse_u64(optarg, 1, 1000000000, &o->keep))
				return bad("bad --keep '%s': expected a number of files from 1",
					   optarg);
			break;
		case OPT_OPS:
			if ((ret = parse_ops(optarg, o)))
				return ret;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			record_usage(stdout);
			return -1; /* done, successfully */
		case ':':
			return bad("option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt && optopt < 256) {
				char opt[3] = { '-', (char)optopt, 0 };

				return bad("unknown option '%s'", opt);
			}
			return bad("unknown option '%s'", argv[optind - 1]);
		}
	}
	/* getopt consumes a "--" and stops after it: what follows is CMD. */
	if (optind < argc) {
		if (strcmp(argv[optind - 1], "--"))
			return bad("unexpected argument '%s' (put a command after --)",
				   argv[optind]);
		o->cmd = &argv[optind];
	}
	if (o->exact && sample_given)
		return bad("--exact and --sample-bytes contradict each other%s", "");
	if (o->alloc_only && max_live_given)
		return bad("--max-live has no effect with --alloc-only%s", "");
	if (o->output && o->interval_ns)
		return bad("-o names one file and --interval writes many: give --output-dir DIR "
			   "instead of -o%s",
			   "");
	if (o->output && o->output_dir)
		return bad("-o and --output-dir contradict each other: give one%s", "");
	if (o->interval_ns && !o->output_dir)
		return bad("--interval needs --output-dir DIR, where its files go%s", "");
	if (o->svg && o->interval_ns)
		return bad("--svg draws one profile and --interval writes many: draw a file with "
			   "allocprof flame FILE -o FILE.svg%s",
			   "");
	if (o->svg && paths_same_file(o->svg, o->output ? o->output : "/nonexistent/."))
		return bad("--svg and -o name the same file '%s': the picture and the profile "
			   "need two",
			   o->svg);
	if (o->keep && !o->output_dir)
		return bad("--keep needs --output-dir DIR, whose files it prunes%s", "");
	if (o->ops_given && o->interval_ns)
		return bad(
			"--ops N counts the whole run, and --interval writes a file per interval: "
			"count the calls of a function instead (--ops FUNC)%s",
			"");
	targets = (o->npids > 0) + o->all + (o->cmd != NULL);
	if (targets == 0)
		return bad("no target: give -p PID, -a, or -- CMD%s", "");
	if (targets > 1)
		return bad("give one target: -p PID, -a, or -- CMD%s", "");
	if (o->no_follow && !o->cmd)
		return bad("--no-follow is for -- CMD: -p and -a never follow children%s", "");
	if (o->exact)
		o->sample_bytes = 1;
	return 0;
}

void record_opts__free(struct record_opts *o)
{
	free(o->pids);
	o->pids = NULL;
	free(o->comms);
	o->comms = NULL;
	free(o->exclude);
	o->exclude = NULL;
	for (size_t i = 0; i < o->nops; i++)
		free(o->ops[i]);
	free(o->ops);
	o->ops = NULL;
	o->nops = 0;
}
