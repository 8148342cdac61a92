/*
 * The two-sided Mann-Whitney U test (Wilcoxon rank-sum test) of two samples of doubles: is one
 * sample's location shifted from the other's? No assumption about the distribution, which is
 * what repeated runs of a benchmark give. Pure numbers: knows nothing about profiles.
 */
#ifndef ALLOCPROF_UTEST_H
#define ALLOCPROF_UTEST_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Up to this many values in all (n1 + n2), the p-value is exact: the permutation distribution
 * of the rank sum given the ties. Beyond it, the normal approximation with the tie and the
 * continuity corrections.
 */
#define UTEST_EXACT_MAX 50

struct utest_result {
	/*
	 * U of the first sample: the pairs (x, y) with x > y, a tie counting one half; from 0 to
	 * n1 * n2 (n1 * n2 - U is the second sample's). R's wilcox.test calls it W.
	 */
	double u;
	double p;   /* two-sided: twice the smaller tail, at most 1; 1 when every value is equal */
	bool exact; /* p from the exact distribution (else the normal approximation) */
};

/* Tests x[0..n1) against y[0..n2). 0, or -EINVAL when a sample is empty or holds a NaN. */
int utest(const double *x, size_t n1, const double *y, size_t n2, struct utest_result *r);

/*
 * The smallest two-sided p-value any two samples of n1 and n2 distinct values can have: one
 * sample wholly above the other. 1 when a sample is empty.
 */
double utest_min_p(size_t n1, size_t n2);

/* The fewest runs per side (n1 = n2) whose smallest p-value is at most alpha (0 < alpha). */
size_t utest_min_runs(double alpha);

#endif
