/*
 * `allocprof check` (check.h): reads the budgets and every profile, sums each budgeted
 * function's cum over the profiles, divides by the operations they counted, and says which
 * budgets hold. The per-function sums are funcstats.c's and the operations comments.c's, so
 * the numbers are those `top --per-op` prints. Exit statuses are the contract CI reads.
 */
#include "check.h"
#include "budget.h"
#include "comments.h"
#include "exitstatus.h"
#include "funcstats.h"
#include "pprof.h"
#include "profiles.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Equal within double rounding is equal: a budget of 0.3 holds for 300 in 1000 operations. */
#define EPSILON 1e-9

enum { CHECK_OK = 0, CHECK_OVER = 1, CHECK_ERROR = 2 };

/* What the profiles add up to. */
struct totals {
	struct funcstats *fs[2]; /* indexed by enum budget_kind: alloc_objects, alloc_space */
	struct prof_info info;	 /* the first profile's, the others' merged in */
	char **names;		 /* each profile, and its operations, for the divisor check */
	struct prof_info *infos;
	size_t n;
	bool unknown; /* a profile did not say how it was sampled */
};

static void check_usage(FILE *f)
{
	fputs("usage: allocprof check --budget FILE [--per-op FUNC] [--strict] PROFILE...\n"
	      "\n"
	      "Checks allocations per operation against budgets, for CI. Each PROFILE is a\n"
	      "profile of `allocprof record --ops`, or a directory: every *.pb.gz, *.pb and\n"
	      "*.pprof file in it. A function's value is its cum over all the profiles,\n"
	      "divided by all their operations. Prints a table of every budget and its status.\n"
	      "\n"
	      "The budget file has one budget a line, 'FUNCTION N allocs/op' or 'FUNCTION\n"
	      "SIZE bytes/op' (N may be fractional, 2.5; SIZE takes --sample-bytes' suffixes,\n"
	      "1.5k, 2MiB); '#' starts a comment, at the start of a line or after a space. A\n"
	      "function may have one budget of each kind. FUNCTION is all before N, as top\n"
	      "shows it; a C++ function may leave out its parameters unless it has overloads.\n"
	      "\n"
	      "A function no profile has measures 0 and passes, marked 'not seen' (a typo in\n"
	      "a name shows there); --strict fails it. In a sampled profile each value has a\n"
	      "99% interval (±); a budget fails only when the value is over it by more than\n"
	      "that, and is 'over, within uncertainty' (passing) otherwise.\n"
	      "\n"
	      "Options:\n"
	      "  -b, --budget FILE        the budgets (required)\n"
	      "      --per-op FUNC        divide by the operations of FUNC (needed when the\n"
	      "                           profiles counted several)\n"
	      "      --strict             a budgeted function no profile has fails\n"
	      "  -h, --help               this text\n"
	      "\n"
	      "Exit status:\n"
	      "  0  every budget holds\n"
	      "  1  a budget is exceeded (or, with --strict, a function is not seen)\n"
	      "  2  bad command line, a budget file that cannot be read or has a malformed\n"
	      "     line, a profile that cannot be read or counted no operations\n",
	      f);
}

/* One profile's rows and operations added to `t`; 0, or -1 after its one line on stderr. */
static int add_profile(struct totals *t, const char *path)
{
	const char *name = strcmp(path, "-") ? path : "standard input";
	Perftools__Profiles__Profile *p;
	struct prof_info info;
	int io, ib, err = 0;

	if (profiles_read("check", path, &p))
		return -1;
	io = funcstats_type_index(p, "alloc_objects");
	ib = funcstats_type_index(p, "alloc_space");
	prof_info__read(p, &info);
	if (io < 0 || ib < 0) {
		ap_err("%s: no sample types alloc_objects and alloc_space to check", name);
		err = -1;
	} else if (!info.nops) {
		ap_err("%s: no operations counted: record with --ops FUNC or --ops N", name);
		err = -1;
	} else if (funcstats_work(p) > FUNCSTATS_MAX_WORK) {
		ap_err("%s: too complex to summarize (its samples reach more than %llu location "
		       "lines)",
		       name, (unsigned long long)FUNCSTATS_MAX_WORK);
		err = -1;
	}
	if (err) {
		prof_info__free(&info);
		perftools__profiles__profile__free_unpacked(p, NULL);
		return -1;
	}
	for (int k = 0; k < 2; k++) {
		struct funcstats *fs = funcstats__build(p, k == BUDGET_BYTES ? ib : io, &info);

		funcstats__merge(t->fs[k], fs);
		funcstats__free(fs);
	}
	if (info.sampling == PROF_SAMPLING_UNKNOWN)
		t->unknown = true;
	prof_info__merge(&t->info, &info);
	if (!t->n) /* the first: its sampling, not a merge with the empty one's "unknown" */
		t->info.sampling = info.sampling;
	t->names = xrealloc(t->names, t->n + 1, sizeof(*t->names));
	t->infos = xrealloc(t->infos, t->n + 1, sizeof(*t->infos));
	t->names[t->n] = xstrdup(name);
	t->infos[t->n++] = info;
	perftools__profiles__profile__free_unpacked(p, NULL);
	return 0;
}

static void totals_free(struct totals *t)
{
	funcstats__free(t->fs[0]);
	funcstats__free(t->fs[1]);
	prof_info__free(&t->info);
	for (size_t i = 0; i < t->n; i++) {
		free(t->names[i]);
		prof_info__free(&t->infos[i]);
	}
	free(t->names);
	free(t->infos);
}

/* A value of a budget's kind: "2.5 allocs/op", "1804 B/op" (fmt_bytes_op). */
static const char *fmt_value(double v, enum budget_kind kind, char *buf, size_t len)
{
	char b[32];

	if (kind == BUDGET_BYTES) {
		snprintf(buf, len, "%s/op", fmt_bytes_op(v, b, sizeof(b)));
	} else {
		if (fabs(v) >= 1000)
			snprintf(buf, len, "%.0f allocs/op", v);
		else
			snprintf(buf, len, "%.4g allocs/op", v);
	}
	return buf;
}

/* The value without its unit, for "±e" and "over by": "2.5", "1804 B". */
static const char *fmt_amount(double v, enum budget_kind kind, char *buf, size_t len)
{
	if (kind == BUDGET_BYTES)
		return fmt_bytes_op(v, buf, len);
	snprintf(buf, len, fabs(v) >= 1000 ? "%.0f" : "%.4g", v);
	return buf;
}

struct cell {
	char *func, *budget, *measured, *status;
};

/*
 * A budget whose function is named without parameters where the profiles have several
 * (overloads): which one is meant cannot be told. True after one line saying so.
 */
static bool ambiguous(const struct totals *t, const struct budgets *bs, const char *file)
{
	for (size_t i = 0; i < bs->n; i++) {
		const struct budget *b = &bs->b[i];
		size_t matches;

		if (funcstats__row_loose(t->fs[b->kind], b->func, &matches) || matches < 2)
			continue;
		ap_err("%s:%d: '%s' is %zu functions in the profiles (overloads): give the one "
		       "meant with its parameters, as top shows it",
		       file, b->line, b->func, matches);
		return true;
	}
	return false;
}

/* Compares every budget and prints the table; CHECK_OK or CHECK_OVER. */
static int report(const struct totals *t, const struct budgets *bs, const struct prof_op *op,
		  bool strict)
{
	const double ops = (double)op->count;
	struct cell *cells = xcalloc(bs->n, sizeof(*cells));
	int wf = (int)strlen("function"), wb = (int)strlen("budget"), wm = (int)strlen("measured");
	size_t over = 0, unseen = 0;
	char desc[512];

	for (size_t i = 0; i < bs->n; i++) {
		const struct budget *b = &bs->b[i];
		const struct funcstats *fs = t->fs[b->kind];
		size_t matches;
		const struct fs_row *r = funcstats__row_loose(fs, b->func, &matches);
		double v = r ? (double)r->cum / ops : 0, e = r ? FUNCSTATS_Z99 * sqrt(r->var_cum) / ops : 0;
		char m[96], x[48], y[48], status[160];

		if (fs->sampled && r)
			snprintf(m, sizeof(m), "%s ±%s", fmt_amount(v, b->kind, x, sizeof(x)),
				 fmt_value(e, b->kind, y, sizeof(y)));
		else
			fmt_value(v, b->kind, m, sizeof(m));
		if (!r) {
			snprintf(status, sizeof(status), strict ? "not seen" : "ok, not seen");
			unseen++;
		} else if (v <= b->limit * (1 + EPSILON)) {
			snprintf(status, sizeof(status), "ok");
		} else if (v - e <= b->limit * (1 + EPSILON)) {
			snprintf(status, sizeof(status), "over, within uncertainty");
		} else {
			fmt_value(v - b->limit, b->kind, x, sizeof(x));
			if (b->limit > 0)
				snprintf(status, sizeof(status), "over by %s (%.1f%%)", x,
					 100 * (v - b->limit) / b->limit);
			else
				snprintf(status, sizeof(status), "over by %s", x);
			over++;
		}
		cells[i].func = xstrdup_escaped(b->func);
		cells[i].budget = xstrdup(fmt_value(b->limit, b->kind, x, sizeof(x)));
		cells[i].measured = xstrdup(m);
		cells[i].status = xstrdup(status);
		wf = (int)fmax(wf, strlen(cells[i].func));
		wb = (int)fmax(wb, strlen(cells[i].budget));
		/* ± is two bytes and one column */
		wm = (int)fmax(wm, strlen(cells[i].measured) - (strstr(m, "±") ? 1 : 0));
	}
	printf("per operation: ");
	{
		char *e = xstrdup_escaped(prof_op_describe(op, desc, sizeof(desc)));

		fputs(e, stdout);
		free(e);
	}
	if (t->n > 1)
		printf(", in %zu profiles", t->n);
	putchar('\n');
	printf("%-*s  %-*s  %-*s  %s\n", wf, "function", wb, "budget", wm, "measured", "status");
	for (size_t i = 0; i < bs->n; i++) {
		int pad = strstr(cells[i].measured, "±") ? 1 : 0;

		printf("%-*s  %-*s  %-*s  %s\n", wf, cells[i].func, wb, cells[i].budget, wm + pad,
		       cells[i].measured, cells[i].status);
		free(cells[i].func);
		free(cells[i].budget);
		free(cells[i].measured);
		free(cells[i].status);
	}
	free(cells);
	if (t->fs[0]->sampled || t->fs[1]->sampled)
		printf("Note: sampled values: ± is a 99%% interval; a budget fails only beyond "
		       "it.\n");
	if (t->unknown)
		printf("Note: a profile does not say how it was sampled: its values are taken as "
		       "exact.\n");
	if (over || (strict && unseen))
		printf("%zu of %zu budgets exceeded%s\n", over + (strict ? unseen : 0), bs->n,
		       strict && unseen ? " or not seen" : "");
	else
		printf("all %zu budgets hold\n", bs->n);
	return over || (strict && unseen) ? CHECK_OVER : CHECK_OK;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "budget", required_argument, NULL, 'b' },
		{ "per-op", required_argument, NULL, 'o' },
		{ "per_op", required_argument, NULL, 'o' },
		{ "strict", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *budget_file = NULL, *fn = NULL;
	struct totals t = { 0 };
	struct budgets bs = { 0 };
	const struct prof_op *op;
	char **paths = NULL, err[1024];
	size_t npaths = 0, cap = 0;
	bool strict = false;
	int c, ret = CHECK_ERROR;

	optind = 1;
	opterr = 0; /* getopt's own message would be a second line, without our prefix */
	while ((c = getopt_long_only(argc, argv, ":b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			budget_file = optarg;
			break;
		case 'o':
			fn = optarg;
			break;
		case 'S':
			strict = true;
			break;
		case 'h':
			check_usage(stdout);
			return AP_EXIT_OK;
		default:
			return profiles_bad_option("check", c, optopt, argv[optind - 1]);
		}
	}
	if (!budget_file) {
		ap_err("check: no budget file given: --budget FILE (see allocprof check --help)");
		return AP_EXIT_USAGE;
	}
	if (optind == argc) {
		ap_err("check: no profile given (see allocprof check --help)");
		return AP_EXIT_USAGE;
	}
	if (budgets__read(budget_file, &bs, err, sizeof(err))) {
		ap_err("%s", err);
		return CHECK_ERROR;
	}
	for (int i = optind; i < argc; i++)
		if (profiles_expand("check", argv[i], &paths, &npaths, &cap))
			goto cleanup;
	t.fs[0] = funcstats__new();
	t.fs[1] = funcstats__new();
	for (size_t i = 0; i < npaths; i++)
		if (add_profile(&t, paths[i]))
			goto cleanup;
	op = prof_info__divisor(&t.info, fn, err, sizeof(err));
	if (!op) {
		ap_err("%s: %s", t.n == 1 ? t.names[0] : "the profiles", err);
		goto cleanup;
	}
	/* Every profile must count the divisor: else its allocations would be over no work. */
	for (size_t i = 0; i < t.n; i++) {
		if (!prof_info__op(&t.infos[i], op->name)) {
			prof_info__divisor(&t.infos[i], op->name, err, sizeof(err));
			ap_err("%s: %s", t.names[i], err);
			goto cleanup;
		}
	}
	if (ambiguous(&t, &bs, budget_file))
		goto cleanup;
	ret = report(&t, &bs, op, strict);
cleanup:
	profiles_free(paths, npaths);
	if (t.fs[0])
		totals_free(&t);
	budgets__free(&bs);
	return ret;
}
