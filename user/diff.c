/*
 * `allocprof diff BASE NEW`: two sets of repeated runs compared function by function. Owns the
 * command line and the runs: which profiles each side has, their functions' cum (comments.c's
 * and funcstats.c's reading), per operation when every profile counted operations.
 * difftable.c does the statistics and prints.
 */
#include "diff.h"
#include "comments.h"
#include "diff_priv.h"
#include "exitstatus.h"
#include "flame.h"
#include "funcstats.h"
#include "hashmap.h"
#include "pprof.h"
#include "profiles.h"
#include "top.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the inputs -------------------------------------------------------------------------- */

/* A side's profiles: the file itself, or a directory's profiles in name order. 0 or exit 2. */
static int add_side(struct diff *d, const char *arg, size_t *cap)
{
	char **names = NULL;
	size_t n = 0, ncap = 0;

	if (profiles_expand("diff", arg, &names, &n, &ncap))
		return AP_EXIT_USAGE;
	grow((void **)&d->runs, cap, d->nruns + n, sizeof(*d->runs));
	for (size_t i = 0; i < n; i++)
		d->runs[d->nruns++] = (struct run){ .path = names[i] };
	free(names); /* the paths are the runs' now */
	return 0;
}

static struct fn *fn_of(struct diff *d, const char *name)
{
	uint64_t i;

	if (!hashmap__get(d->by_name, name, strlen(name), &i)) {
		grow((void **)&d->fns, &d->cap, d->nfns + 1, sizeof(*d->fns));
		d->fns[d->nfns] = (struct fn){
			.name = strpool__intern(d->pool, name),
			.v = xcalloc(d->nruns, sizeof(double)),
			.sd = xcalloc(d->nruns, sizeof(double)),
		};
		hashmap__put(d->by_name, name, strlen(name), d->nfns);
		i = d->nfns++;
	}
	return &d->fns[i];
}

/* Reads run `r`: its comments and its functions' cum. 0 or an exit status. */
static int read_run(struct diff *d, size_t r)
{
	struct run *run = &d->runs[r];
	Perftools__Profiles__Profile *p;
	struct funcstats *fs;
	int si;

	if (profiles_read("diff", run->path, &p))
		return AP_EXIT_USAGE;
	si = top_sample_index(p, d->sample_index);
	if (si < 0) {
		ap_err("diff: %s has no sample type '%s'", run->path, d->sample_index);
		perftools__profiles__profile__free_unpacked(p, NULL);
		return AP_EXIT_USAGE;
	}
	if (!d->type) {
		d->type = strpool__intern(d->pool, pprof_str(p, p->sample_type[si]->type));
		d->unit = strpool__intern(d->pool, pprof_str(p, p->sample_type[si]->unit));
	}
	if (funcstats_work(p) > FUNCSTATS_MAX_WORK) {
		ap_err("diff: %s: too complex to summarize (its samples reach more than %llu "
		       "location lines)",
		       run->path, (unsigned long long)FUNCSTATS_MAX_WORK);
		perftools__profiles__profile__free_unpacked(p, NULL);
		return AP_EXIT_USAGE;
	}
	prof_info__read(p, &run->info);
	d->sampled |= run->info.sampling == PROF_SAMPLING_SAMPLED;
	d->unknown += run->info.sampling == PROF_SAMPLING_UNKNOWN;
	fs = funcstats__build(p, si, &run->info);
	for (size_t i = 0; i < fs->nrows; i++) {
		struct fn *fn = fn_of(d, fs->rows[i].name);

		fn->v[r] = (double)fs->rows[i].cum;
		fn->sd[r] = sqrt(fs->rows[i].var_cum);
	}
	d->total.v[r] = (double)fs->total;
	d->total.sd[r] = sqrt(fs->var_total);
	funcstats__free(fs);
	perftools__profiles__profile__free_unpacked(p, NULL);
	return 0;
}

/*
 * Per operation when every profile counted operations: the one operation they name, or
 * --per-op's. Otherwise whole-run totals (the header says why). 0 or exit 2.
 */
static int choose_op(struct diff *d)
{
	struct prof_info all = { 0 };
	const struct prof_op *op;
	size_t with_ops = 0;
	char why[640];

	for (size_t r = 0; r < d->nruns; r++)
		with_ops += d->runs[r].info.nops > 0;
	if (with_ops < d->nruns) {
		for (size_t r = 0; d->per_op && r < d->nruns; r++)
			if (!d->runs[r].info.nops) {
				ap_err("diff: --per-op %s: %s counted no operations", d->per_op,
				       d->runs[r].path);
				return AP_EXIT_USAGE;
			}
		d->with_ops = with_ops;
		for (size_t r = 0; r < d->nruns; r++)
			d->runs[r].ops = 1;
		return 0;
	}
	/* the operation, chosen as check chooses it, over every profile; then each must have it */
	for (size_t r = 0; r < d->nruns; r++)
		prof_info__merge(&all, &d->runs[r].info);
	op = prof_info__divisor(&all, d->per_op, why, sizeof(why));
	if (op)
		d->op = strpool__intern(d->pool, op->name);
	prof_info__free(&all);
	if (!op) {
		ap_err("diff: %s", why);
		return AP_EXIT_USAGE;
	}
	for (size_t r = 0; r < d->nruns; r++) {
		op = prof_info__divisor(&d->runs[r].info, d->op, why, sizeof(why));
		if (!op) {
			ap_err("diff: %s: %s", d->runs[r].path, why);
			return AP_EXIT_USAGE;
		}
		d->runs[r].ops = (double)op->count;
	}
	return 0;
}

static void diff_usage(FILE *f)
{
	fputs("usage: allocprof diff [options] BASE NEW\n"
	      "\n"
	      "Compares the allocations of two sets of runs, function by function, as\n"
	      "benchstat compares timings. BASE and NEW are each a profile or a directory of\n"
	      "profiles of repeated runs (files ending .pb.gz, .pb or .pprof). A function's\n"
	      "value in a run is its cum per operation when every profile counted operations\n"
	      "(record --ops), else its cum for the whole run. Each side shows the median of\n"
	      "its runs and the largest deviation from it; a change is significant when the\n"
	      "Mann-Whitney U test says so (and, for sampled profiles, when it exceeds the\n"
	      "sampling noise), otherwise it shows as ~. Significant changes come first, the\n"
	      "largest first; with one profile per side there is no test and no failure,\n"
	      "and the rows come by the size of their change.\n"
	      "\n"
	      "Options:\n"
	      "      --sample-index TYPE  alloc_objects (default), alloc_space, ...\n"
	      "      --per-op FUNC        the operation to divide by, when the profiles\n"
	      "                           count several\n"
	      "      --alpha A            significance level (default 0.01; 5 runs per side\n"
	      "                           are the fewest that can reach it)\n"
	      "      --threshold P        exit 1 only for a rise above P percent (default 0)\n"
	      "  -n N                     rows without a significant change (default 20;\n"
	      "                           0: all); significant changes are always shown\n"
	      "      --min-share PCT      hide rows without a significant change under PCT\n"
	      "                           percent of the total on both sides (default 0.1)\n"
	      "      --svg FILE           also draw the difference as a flame graph into FILE:\n"
	      "                           widths from NEW, red what grew, blue what shrank\n"
	      "                           (allocprof flame --base BASE NEW draws the same)\n"
	      "  pprof's spelling works too: -sample_index=TYPE\n"
	      "  -h, --help               this text\n"
	      "\n"
	      "Exit status:\n"
	      "  0  no function rose significantly by more than --threshold\n"
	      "  1  some function did (it is listed first)\n"
	      "  2  bad command line, a profile that cannot be read, a side without\n"
	      "     profiles, or a sample type or operation the profiles do not have\n",
	      f);
}

static int parse_double(const char *s, double min, double max, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (!*s || *end || errno || !(*out >= min && *out <= max))
		return -EINVAL;
	return 0;
}

static int parse_args(struct diff *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sample-index", required_argument, NULL, 's' },
		{ "sample_index", required_argument, NULL, 's' },
		{ "per-op", required_argument, NULL, 'o' },
		{ "alpha", required_argument, NULL, 'a' },
		{ "threshold", required_argument, NULL, 't' },
		{ "min-share", required_argument, NULL, 'm' },
		{ "svg", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c;

	optind = 1;
	opterr = 0; /* getopt's own message would be a second line, without our prefix */
	while ((c = getopt_long_only(argc, argv, ":n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, 0, 1000000, &d->nrows)) {
				ap_err("diff: bad -n '%s': expected a number from 0 to 1000000",
				       optarg);
				return AP_EXIT_USAGE;
			}
			break;
		case 's':
			d->sample_index = optarg;
			break;
		case 'o':
			d->per_op = optarg;
			break;
		case 'a':
			if (parse_double(optarg, 1e-12, 0.5, &d->alpha)) {
				ap_err("diff: bad --alpha '%s': expected a number in (0, 0.5]",
				       optarg);
				return AP_EXIT_USAGE;
			}
			break;
		case 't':
			if (parse_double(optarg, 0, 1e12, &d->threshold)) {
				ap_err("diff: bad --threshold '%s': expected a percentage >= 0",
				       optarg);
				return AP_EXIT_USAGE;
			}
			break;
		case 'm':
			if (parse_double(optarg, 0, 100, &d->min_share)) {
				ap_err("diff: bad --min-share '%s': expected a percentage from 0 "
				       "to 100",
				       optarg);
				return AP_EXIT_USAGE;
			}
			break;
		case 'g':
			d->svg = optarg;
			break;
		case 'h':
			diff_usage(stdout);
			return -1;
		default:
			return profiles_bad_option("diff", c, optopt, argv[optind - 1]);
		}
	}
	if (argc - optind != 2) {
		ap_err("diff: expected two profiles or directories, BASE and NEW, %s (see "
		       "allocprof diff --help)",
		       argc - optind < 2 ? "not fewer" : "not more");
		return AP_EXIT_USAGE;
	}
	d->arg[BASE] = argv[optind];
	d->arg[NEW] = argv[optind + 1];
	return 0;
}

/* Reads both sides and fills the table. 0 or an exit status. */
static int diff_read(struct diff *d)
{
	size_t cap = 0;
	int err;

	if ((err = add_side(d, d->arg[BASE], &cap)))
		return err;
	d->nbase = d->nruns;
	if ((err = add_side(d, d->arg[NEW], &cap)))
		return err;
	d->total.v = xcalloc(d->nruns, sizeof(double));
	d->total.sd = xcalloc(d->nruns, sizeof(double));
	for (size_t r = 0; r < d->nruns; r++)
		if ((err = read_run(d, r)))
			return err;
	if ((err = choose_op(d)))
		return err;
	for (size_t r = 0; r < d->nruns; r++) {
		for (size_t i = 0; i < d->nfns; i++) {
			d->fns[i].v[r] /= d->runs[r].ops;
			d->fns[i].sd[r] /= d->runs[r].ops;
		}
		d->total.v[r] /= d->runs[r].ops;
		d->total.sd[r] /= d->runs[r].ops;
	}
	return 0;
}

/* Prints the table; the exit status. */
int cmd_diff(int argc, char **argv)
{
	struct diff d = {
		.sample_index = "alloc_objects",
		.alpha = 0.01,
		.min_share = 0.1,
		.nrows = 20,
		.pool = strpool__new(),
		.by_name = hashmap__new(),
	};
	struct out_file *svg = NULL;
	int ret = parse_args(&d, argc, argv);

	if (ret < 0)
		ret = AP_EXIT_OK; /* --help */
	else if (!ret && d.svg && (!strcmp(d.arg[BASE], "-") || !strcmp(d.arg[NEW], "-"))) {
		ap_err("diff: --svg reads the profiles again to draw them: give files, not "
		       "standard input");
		ret = AP_EXIT_USAGE;
	} else if (!ret && d.svg && paths_same_file(d.svg, "-")) {
		ap_err("diff: --svg %s: the table goes to standard output; give the picture a file",
		       d.svg);
		ret = AP_EXIT_USAGE;
	} else if (!ret && d.svg && /* before anything is read */
		   out_file__open_opts(d.svg,
				       &(struct out_file_opts){ .mode = -1,
								.what = "picture",
								.opt = "--svg",
								.no_fallback = true },
				       &svg))
		ret = AP_EXIT_USAGE;
	else if (!ret && !(ret = diff_read(&d)))
		ret = diff_print(&d);
	/* the picture whatever the table found: a failed check links to what grew */
	if (svg && (ret == AP_EXIT_OK || ret == AP_EXIT_FAILED)) {
		fflush(stdout);
		if (flame_svg_of_diff(svg, d.arg[BASE], d.arg[NEW], d.sample_index, d.op))
			ret = AP_EXIT_USAGE;
	} else if (svg) {
		out_file__abort(svg);
	}
	for (size_t r = 0; r < d.nruns; r++) {
		prof_info__free(&d.runs[r].info);
		free((char *)d.runs[r].path);
	}
	for (size_t i = 0; i < d.nfns; i++) {
		free(d.fns[i].v);
		free(d.fns[i].sd);
	}
	free(d.total.v);
	free(d.total.sd);
	free(d.fns);
	free(d.runs);
	hashmap__free(d.by_name);
	strpool__free(d.pool);
	return ret;
}
