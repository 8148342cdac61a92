/*
 * `allocprof diff`'s statistics and table (diff_priv.h): per function and side the median of the
 * runs and its spread, the change, the U test (utest.c) and, for sampled profiles, the sampling
 * noise a change must exceed; the rows' order and limits; the exit status.
 */
#include "diff_priv.h"
#include "exitstatus.h"
#include "funcstats.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A significant rise above --threshold: the status CI acts on. */
#define DIFF_EXIT_ROSE 1
/*
 * For sampled profiles, a change must also exceed this many standard deviations of the
 * sampling noise (two-sided 1%): with 30 functions tested, the U test alone would flag one of
 * them in a fifth of the comparisons of two identical programs.
 */
#define SAMPLING_Z FUNCSTATS_Z99

/* ---- the statistics ---------------------------------------------------------------------- */

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, size_t n, double *scratch)
{
	memcpy(scratch, v, n * sizeof(*v));
	qsort(scratch, n, sizeof(*scratch), dbl_cmp);
	return n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2;
}

static void fn_stats(const struct diff *d, struct fn *f, double *scratch)
{
	size_t first[2] = { 0, d->nbase }, n[2] = { d->nbase, d->nruns - d->nbase };
	double dev;

	for (int s = BASE; s <= NEW; s++) {
		const double *v = f->v + first[s];

		f->med[s] = median(v, n[s], scratch);
		f->sd_med[s] = median(f->sd + first[s], n[s], scratch);
		dev = 0;
		for (size_t i = 0; i < n[s]; i++)
			dev = fmax(dev, fabs(v[i] - f->med[s]));
		f->spread[s] = !dev ? 0 : f->med[s] ? 100 * dev / fabs(f->med[s]) : INFINITY;
	}
	/* (fabs: a negative base, a crafted or periodic file's, must not turn a rise around) */
	f->change = f->med[BASE]  ? 100 * (f->med[NEW] - f->med[BASE]) / fabs(f->med[BASE])
		    : f->med[NEW] ? INFINITY
				  : 0;
	f->tested = n[BASE] > 1 || n[NEW] > 1;
	if (!f->tested)
		return;
	/* A test that cannot be made (values it refuses) is no evidence of a change. */
	if (utest(f->v, n[BASE], f->v + d->nbase, n[NEW], &f->ut))
		f->ut.p = 1;
	f->significant = f->ut.p <= d->alpha && f->med[NEW] != f->med[BASE];
	/* sampling noise alone must not be taken for a change (see SAMPLING_Z) */
	if (d->sampled && f->significant)
		f->significant = fabs(f->med[NEW] - f->med[BASE]) >
				 SAMPLING_Z * hypot(f->sd_med[BASE], f->sd_med[NEW]);
}

/*
 * The key of the rows that are not significant: the larger of the two medians; without a test
 * (one profile per side), the size of the change first, or a function that appeared would sit
 * at the bottom.
 */
static double rest_key(const struct fn *f)
{
	return f->tested ? fmax(f->med[BASE], f->med[NEW]) : fabs(f->med[NEW] - f->med[BASE]);
}

/* Significant changes first, the largest first; then the rest by rest_key. */
static int fn_cmp(const void *a, const void *b)
{
	const struct fn *x = a, *y = b;
	double kx, ky;

	if (x->significant != y->significant)
		return x->significant ? -1 : 1;
	kx = x->significant ? fabs(x->change) : rest_key(x);
	ky = y->significant ? fabs(y->change) : rest_key(y);
	if (kx == ky && !x->significant) {
		kx = fmax(x->med[BASE], x->med[NEW]);
		ky = fmax(y->med[BASE], y->med[NEW]);
	}
	if (kx != ky)
		return kx < ky ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* ---- the table --------------------------------------------------------------------------- */

static const char *fmt_num(const struct diff *d, double v, char *buf, size_t len)
{
	static const char *const sfx[] = { "", "k", "M", "G", "T" };
	size_t u = 0;

	if (!strcmp(d->unit, "bytes"))
		return fmt_bytes_op(v, buf, len);
	if (fabs(v) < 10000) {
		snprintf(buf, len, "%.4g%s", v, strcmp(d->unit, "bytes") ? "" : " B");
		return buf;
	}
	while (fabs(v) >= 1000 && u < ARRAY_SIZE(sfx) - 1) {
		v /= 1000;
		u++;
	}
	snprintf(buf, len, "%.2f%s", v, sfx[u]);
	return buf;
}

static const char *fmt_side(const struct diff *d, const struct fn *f, int s, char *buf, size_t len)
{
	char num[32];

	fmt_num(d, f->med[s], num, sizeof(num));
	if (isinf(f->spread[s]))
		snprintf(buf, len, "%s ±inf", num);
	else
		snprintf(buf, len, "%s ±%2.0f%%", num, f->spread[s]);
	return buf;
}

static const char *fmt_change(const struct fn *f, char *buf, size_t len)
{
	if (f->tested && !f->significant)
		snprintf(buf, len, "~");
	else if (!f->med[BASE] && f->med[NEW])
		snprintf(buf, len, "new");
	else if (f->med[BASE] && !f->med[NEW])
		snprintf(buf, len, "gone");
	else
		snprintf(buf, len, "%+.2f%%", f->change);
	return buf;
}

static void print_row(FILE *out, const struct diff *d, const struct fn *f)
{
	char b[48], n[48], c[32], p[48];
	char *name = xstrdup_escaped(f->name ? f->name : "[total]");

	if (f->tested)
		snprintf(p, sizeof(p), "(p=%.3f n=%zu+%zu)", f->ut.p, d->nbase,
			 d->nruns - d->nbase);
	else
		snprintf(p, sizeof(p), "(n=1+1)");
	fprintf(out, "%18s %18s %9s  %-17s %s\n", fmt_side(d, f, BASE, b, sizeof(b)),
		fmt_side(d, f, NEW, n, sizeof(n)), fmt_change(f, c, sizeof(c)), p, name);
	free(name);
}

static void print_header(FILE *out, const struct diff *d)
{
	char *a = xstrdup_escaped(d->arg[BASE]), *b = xstrdup_escaped(d->arg[NEW]);
	size_t nnew = d->nruns - d->nbase;

	fprintf(out, "base: %zu profile%s (%s)   new: %zu profile%s (%s)\n", d->nbase,
		d->nbase == 1 ? "" : "s", a, nnew, nnew == 1 ? "" : "s", b);
	free(a);
	free(b);
	a = xstrdup_escaped(d->type);
	if (d->op) {
		b = xstrdup_escaped(d->op);
		fprintf(out, "%s, cum per operation (ops: %s)", a, b);
		free(b);
	} else {
		fprintf(out, "%s, cum of the whole run", a);
		if (d->with_ops)
			fprintf(out, " (operations counted in %zu of the %zu profiles only)",
				d->with_ops, d->nruns);
	}
	free(a);
	fprintf(out, "; %s\n",
		d->sampled   ? "sampled"
		: d->unknown ? "taken as exact (no sampling comment)"
			     : "exact counts");
	if (d->total.tested)
		fprintf(out,
			"medians ± the largest deviation; a change is ~ unless the Mann-Whitney U "
			"test's p <= %g%s\n",
			d->alpha,
			d->sampled
				? "\nand it exceeds 2.576 standard deviations of the sampling noise"
				: "");
}

int diff_print(struct diff *d)
{
	double *scratch = xcalloc(d->nruns, sizeof(double));
	size_t shown = 0, more = 0, hidden = 0, rose = 0, nsig = 0;
	size_t nnew = d->nruns - d->nbase;
	double min_p = utest_min_p(d->nbase, nnew);

	fn_stats(d, &d->total, scratch);
	for (size_t i = 0; i < d->nfns; i++) {
		struct fn *f = &d->fns[i];

		fn_stats(d, f, scratch);
		f->hidden = !f->significant &&
			    f->med[BASE] < d->min_share / 100 * d->total.med[BASE] &&
			    f->med[NEW] < d->min_share / 100 * d->total.med[NEW];
		nsig += f->significant;
		rose += f->significant && f->change > d->threshold;
	}
	free(scratch);
	if (d->nfns)
		qsort(d->fns, d->nfns, sizeof(*d->fns), fn_cmp);

	print_header(stdout, d);
	if (!d->total.tested)
		printf("One profile per side: the changes without a test, largest first; none\n"
		       "counts as significant (exit 0). %zu runs per side can test them.\n",
		       utest_min_runs(d->alpha));
	else if (min_p > d->alpha)
		printf("With %zu and %zu runs no p-value can be below %.3f: nothing can be\n"
		       "significant at --alpha %g, which needs %zu runs per side.\n",
		       d->nbase, nnew, min_p, d->alpha, utest_min_runs(d->alpha));
	printf("\n%18s %18s %9s  %-17s %s\n", d->op ? "base/op" : "base", d->op ? "new/op" : "new",
	       "change", "", "function");
	print_row(stdout, d, &d->total);
	for (size_t i = 0; i < d->nfns; i++) {
		const struct fn *f = &d->fns[i];

		if (f->hidden)
			hidden++;
		else if (f->significant || !d->nrows || shown < d->nrows) {
			print_row(stdout, d, f);
			shown += !f->significant;
		} else
			more++;
	}
	if (more || hidden) {
		printf("(");
		if (more)
			printf("%zu more without a significant change%s", more, hidden ? "; " : "");
		if (hidden)
			printf("%zu under %g%% of the total on both sides", hidden, d->min_share);
		printf(": -n 0 --min-share 0 shows them)\n");
	}
	if (!d->total.tested)
		return AP_EXIT_OK;
	printf("%zu significant change%s; ", nsig, nsig == 1 ? "" : "s");
	if (rose)
		printf("%zu rose by more than --threshold %g%%: exit 1\n", rose, d->threshold);
	else
		printf("none rose by more than --threshold %g%%\n", d->threshold);
	return rose ? DIFF_EXIT_ROSE : AP_EXIT_OK;
}
