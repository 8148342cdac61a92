/*
 * What diff.c (the command line, reading the runs) and difftable.c (the statistics, the table,
 * the exit status) share: the runs and every function's values in them.
 */
#ifndef ALLOCPROF_DIFF_PRIV_H
#define ALLOCPROF_DIFF_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comments.h"
#include "utest.h"

enum { BASE, NEW };

/* One function, or the total, over every run of both sides. */
struct fn {
	const char *name; /* the pool's; NULL for the total */
	double *v, *sd;	  /* per run (base runs first): the value and its sampling σ */
	double med[2], spread[2], sd_med[2];
	double change; /* percent; +INFINITY when the base is 0 */
	struct utest_result ut;
	bool tested, significant, hidden;
};

struct run {
	const char *path;
	struct prof_info info; /* its ops and how it was sampled */
	double ops;	       /* the chosen operation's count, 1 when comparing totals */
};

struct diff {
	/* the command line */
	const char *sample_index, *per_op, *arg[2];
	const char *svg; /* --svg: the difference picture, beside the table */
	double alpha, threshold, min_share;
	uint64_t nrows;
	/* the runs: base then new */
	struct run *runs;
	size_t nruns, nbase;
	const char *type, *unit, *op; /* op NULL: whole-run totals */
	size_t with_ops;	      /* with op NULL, the profiles that counted operations */
	bool sampled;		      /* some profile says it was sampled */
	size_t unknown; /* profiles that say neither (other producers'): taken as exact */
	/* the functions */
	struct strpool *pool;
	struct hashmap *by_name;
	struct fn *fns, total;
	size_t nfns, cap;
};

/* Computes every row's statistics and prints the table on stdout; the exit status. */
int diff_print(struct diff *d);

#endif
