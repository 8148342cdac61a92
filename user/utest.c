/*
 * The Mann-Whitney U test. Ranks are midranks (tied values share the mean of their ranks),
 * held doubled so that they are whole numbers and the exact distribution of the rank sum can be
 * counted without rounding: how many ways of choosing the smaller sample's size from all N
 * values give each rank sum, the ties as they are (the permutation distribution conditional on
 * the ties). Counts are doubles: C(50, 25) ~ 1.3e14 is still exact in one.
 */
#include "utest.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

struct ranked {
	double v;
	bool first; /* from the first sample */
};

static int ranked_cmp(const void *a, const void *b)
{
	double x = ((const struct ranked *)a)->v, y = ((const struct ranked *)b)->v;

	return x < y ? -1 : x > y;
}

/* C(n, k) as a double (exact while it fits in 53 bits). */
static double choose(size_t n, size_t k)
{
	double c = 1;

	if (k > n)
		return 0;
	if (k > n - k)
		k = n - k;
	for (size_t i = 1; i <= k; i++)
		c = c * (double)(n - k + i) / (double)i;
	return c;
}

/*
 * P(S <= obs) and P(S >= obs) for S the sum of `k` of the doubled ranks r[0..n), every choice
 * equally likely.
 */
static void exact_tails(const uint32_t *r, size_t n, size_t k, uint64_t obs, double *lower,
			double *upper)
{
	uint64_t max = 0;
	double *cnt, below = 0, above = 0, total = 0;

	for (size_t i = 0; i < n; i++)
		max += r[i];
	/* cnt[j * (max + 1) + s]: the ways of choosing j of the ranks seen so far that sum to s */
	cnt = xcalloc((k + 1) * (max + 1), sizeof(*cnt));
	cnt[0] = 1;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1 < k ? i + 1 : k; j >= 1; j--) {
			double *to = cnt + j * (max + 1), *from = cnt + (j - 1) * (max + 1);

			for (uint64_t s = max; s >= r[i]; s--)
				to[s] += from[s - r[i]];
		}
	for (uint64_t s = 0; s <= max; s++) {
		double c = cnt[k * (max + 1) + s];

		total += c;
		if (s <= obs)
			below += c;
		if (s >= obs)
			above += c;
	}
	free(cnt);
	*lower = below / total;
	*upper = above / total;
}

int utest(const double *x, size_t n1, const double *y, size_t n2, struct utest_result *r)
{
	size_t n = n1 + n2, small = n1 <= n2 ? n1 : n2;
	struct ranked *all;
	uint32_t *rank2;
	uint64_t sum1 = 0, sum_small = 0; /* doubled rank sums: of x, of the smaller sample */
	double ties = 0;		  /* sum of t^3 - t over the groups of t tied values */

	if (!n1 || !n2)
		return -EINVAL;
	all = xcalloc(n, sizeof(*all));
	rank2 = xcalloc(n, sizeof(*rank2));
	for (size_t i = 0; i < n; i++) {
		all[i] = (struct ranked){ i < n1 ? x[i] : y[i - n1], i < n1 };
		if (isnan(all[i].v)) {
			free(all);
			free(rank2);
			return -EINVAL;
		}
	}
	qsort(all, n, sizeof(*all), ranked_cmp);
	for (size_t i = 0, j; i < n; i = j) {
		double t;

		for (j = i + 1; j < n && all[j].v == all[i].v; j++)
			;
		/* positions i..j-1 hold ranks i+1..j, whose mean doubled is i + 1 + j */
		for (size_t k = i; k < j; k++) {
			rank2[k] = (uint32_t)(i + 1 + j);
			if (all[k].first)
				sum1 += rank2[k];
			if (all[k].first == (n1 <= n2))
				sum_small += rank2[k];
		}
		t = (double)(j - i);
		ties += t * t * t - t;
	}
	/* U = R1 - n1 (n1 + 1) / 2, from the doubled rank sum */
	r->u = ((double)sum1 - (double)n1 * (double)(n1 + 1)) / 2;
	r->exact = n <= UTEST_EXACT_MAX;
	if (ties == (double)n * n * n - (double)n) {
		r->p = 1; /* one group of ties: every value the same, no evidence either way */
	} else if (r->exact) {
		double lower, upper;

		exact_tails(rank2, n, small, sum_small, &lower, &upper);
		r->p = fmin(1, 2 * fmin(lower, upper));
	} else {
		double mean = (double)n1 * (double)n2 / 2, N = (double)n;
		double var = (double)n1 * (double)n2 / 12 * (N + 1 - ties / (N * (N - 1)));
		double z = fmax(0, fabs(r->u - mean) - 0.5) / sqrt(var);

		r->p = fmin(1, erfc(z / M_SQRT2));
	}
	free(all);
	free(rank2);
	return 0;
}

double utest_min_p(size_t n1, size_t n2)
{
	double N = (double)(n1 + n2), d, var;

	if (!n1 || !n2)
		return 1;
	if (n1 + n2 <= UTEST_EXACT_MAX)
		return fmin(1, 2 / choose(n1 + n2, n1));
	/* U = 0, as the normal approximation sees it */
	d = (double)n1 * (double)n2 / 2 - 0.5;
	var = (double)n1 * (double)n2 * (N + 1) / 12;
	return fmin(1, erfc(d / sqrt(var) / M_SQRT2));
}

size_t utest_min_runs(double alpha)
{
	size_t k = 1;

	/* (erfc underflows to 0 long before this bound: any alpha > 0 ends the loop) */
	while (k < 100000 && utest_min_p(k, k) > alpha)
		k++;
	return k;
}
