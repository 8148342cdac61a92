/*
 * Unit tests of the Mann-Whitney U test (user/utest.c) against published values: R's
 * wilcox.test (exact, no ties) and the test values of go-moremath's stats package (what Go's
 * benchstat uses), small samples with and without ties and large ones (the normal
 * approximation); and against a count of every subset for small samples with ties. One line
 * per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed".
 */
#include "utest.h"
#include "util.h"

#include "fixtures.h"

/* Relative agreement to 1e-9 (p-values as published carry 16 digits, or R's 4). */
static bool close_to(double a, double b, double tol)
{
	return fabs(a - b) <= tol * fmax(fabs(b), 1e-300);
}

/* utest(x, y) gives U and p, and utest(y, x) gives n1 * n2 - U and the same p. */
static bool check_pair(const double *x, size_t n1, const double *y, size_t n2, double u, double p,
		       double tol)
{
	struct utest_result r, s;

	CHECK_INT(utest(x, n1, y, n2, &r), 0);
	CHECK(r.u == u, "U %.17g, expected %.17g", r.u, u);
	CHECK(close_to(r.p, p, tol), "p %.17g, expected %.17g", r.p, p);
	CHECK_INT(utest(y, n2, x, n1, &s), 0);
	CHECK(s.u == (double)n1 * (double)n2 - u, "swapped: U %.17g, expected %.17g", s.u,
	      (double)n1 * (double)n2 - u);
	CHECK(s.p == r.p, "swapped: p %.17g, expected the same %.17g", s.p, r.p);
	CHECK(r.exact == (n1 + n2 <= UTEST_EXACT_MAX), "exact %d with %zu values", r.exact,
	      n1 + n2);
	return true;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* R: wilcox.test(1:5, 6:10) gives W = 0, p-value = 0.007937 (2 / C(10, 5)). */
TEST(utest_r_separated)
{
	static const double x[] = { 1, 2, 3, 4, 5 }, y[] = { 6, 7, 8, 9, 10 };

	TRY(check_pair(x, N(x), y, N(y), 0, 2.0 / 252, 1e-12));
	TRY(check_pair(x, N(x), y, N(y), 0, 0.007937, 1e-4));
	return true;
}

/*
 * The example of R's wilcox.test documentation: wilcox.test(x, y, alternative = "g") gives
 * W = 35, p-value = 0.1272; two-sided, twice that.
 */
TEST(utest_r_documentation)
{
	static const double x[] = { 0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46 };
	static const double y[] = { 1.15, 0.88, 0.90, 0.74, 1.21 };

	TRY(check_pair(x, N(x), y, N(y), 35, 0.2544, 2e-4));
	TRY(check_pair(x, N(x), y, N(y), 35, 2 * 0.1272, 2e-4));
	return true;
}

static const double s1[] = { 2, 1, 3, 5 }, s2[] = { 12, 11, 13, 15 };
static const double s3[] = { 0, 4, 6, 7 }; /* interleaved with s1, no ties */
static const double s4[] = { 2, 2, 2, 2 }, s5[] = { 1, 1, 1, 1, 1 };

/* go-moremath's TestMannWhitneyUTest, small samples without ties (LocationDiffers). */
TEST(utest_moremath_small)
{
	TRY(check_pair(s1, N(s1), s2, N(s2), 0, 0.028571428571428577, 1e-9));
	TRY(check_pair(s2, N(s2), s1, N(s1), 16, 0.028571428571428577, 1e-9));
	TRY(check_pair(s1, N(s1), s3, N(s3), 5, 0.485714285714285770, 1e-9));
	return true;
}

/*
 * go-moremath, small samples with ties: s1 against itself (p 1) and against s4 (two-sided
 * 0.7142857142857143, twice its one-sided 0.3571428571428571). Against s5 it gives the
 * one-sided 0.04761904761904767 (6 of the C(9, 4) = 126 equally likely choices reach U = 17.5)
 * but a two-sided 0, which cannot be a p-value: twice the one-sided is the two-sided here.
 */
TEST(utest_moremath_ties)
{
	TRY(check_pair(s1, N(s1), s1, N(s1), 8, 1, 1e-12));
	TRY(check_pair(s1, N(s1), s4, N(s4), 10, 0.7142857142857143, 1e-9));
	TRY(check_pair(s1, N(s1), s5, N(s5), 17.5, 2 * 0.04761904761904767, 1e-9));
	TRY(check_pair(s1, N(s1), s5, N(s5), 17.5, 12.0 / 126, 1e-12));
	return true;
}

/*
 * go-moremath, large samples (the normal approximation with the tie and continuity corrections,
 * as R's wilcox.test): l1 = 0, 2, ..., 998; l2 = -41, -39, ..., 1157; l3 = l2 with its first 30
 * values replaced by l1's (ties).
 */
TEST(utest_moremath_large)
{
	double l1[500], l2[600], l3[600];

	for (int i = 0; i < 500; i++)
		l1[i] = i * 2;
	for (int i = 0; i < 600; i++)
		l2[i] = l3[i] = i * 2 - 41;
	for (int i = 0; i < 30; i++)
		l3[i] = l1[i];
	TRY(check_pair(l1, N(l1), l2, N(l2), 135250, 0.0049335360814172224, 1e-9));
	TRY(check_pair(l1, N(l1), l1, N(l1), 125000, 1, 1e-12));
	TRY(check_pair(l1, N(l1), l3, N(l3), 134845, 0.0038703814239617884, 1e-9));
	return true;
}

/* Every value the same: p = 1, U = n1 n2 / 2, exact or not. */
TEST(utest_all_ties)
{
	static const double a[60] = { 0 };
	struct utest_result r;

	TRY(check_pair(s4, N(s4), s4, N(s4), 8, 1, 0));
	TRY(check_pair(a, 3, a, 5, 7.5, 1, 0));
	TRY(check_pair(a, 1, a, 1, 0.5, 1, 0));
	CHECK_INT(utest(a, 30, a, 30, &r), 0);
	CHECK(!r.exact && r.p == 1 && r.u == 450, "exact %d, p %g, U %g", r.exact, r.p, r.u);
	return true;
}

/*
 * The exact p-value against a count of all C(N, n1) splits, ties included (doubled midranks,
 * as in utest.c, but counted one split at a time), for samples drawn with many ties.
 */
static bool brute_force(const double *x, size_t n1, const double *y, size_t n2)
{
	size_t n = n1 + n2;
	double all[20], rank2[20], obs = 0, lower = 0, upper = 0, total = 0, p;
	struct utest_result r;

	for (size_t i = 0; i < n; i++)
		all[i] = i < n1 ? x[i] : y[i - n1];
	for (size_t i = 0; i < n; i++) {
		size_t below = 0, same = 0;

		for (size_t j = 0; j < n; j++) {
			below += all[j] < all[i];
			same += all[j] == all[i];
		}
		rank2[i] = (double)(2 * below + same + 1);
		if (i < n1)
			obs += rank2[i];
	}
	for (uint32_t m = 0; m < (1u << n); m++) {
		double s = 0;

		if ((size_t)__builtin_popcount(m) != n1)
			continue;
		for (size_t i = 0; i < n; i++)
			if (m & (1u << i))
				s += rank2[i];
		total++;
		lower += s <= obs;
		upper += s >= obs;
	}
	p = fmin(1, 2 * fmin(lower, upper) / total);
	CHECK_INT(utest(x, n1, y, n2, &r), 0);
	CHECK(r.exact, "not exact with %zu values", n);
	CHECK(close_to(r.p, p, 1e-12), "p %.17g, counted %.17g (n1 %zu, n2 %zu)", r.p, p, n1, n2);
	return true;
}

TEST(utest_exact_counted)
{
	static const double a[] = { 1, 2, 2, 3, 3, 3, 7 }, b[] = { 2, 3, 4, 4, 5, 8, 8, 9 };
	struct utest_result r;
	unsigned seed = 12345;

	/* by hand: U = 10.5, two-sided 0.039160839160839164 (56 of 1430 splits below, doubled) */
	TRY(check_pair(a, N(a), b, N(b), 10.5, 0.039160839160839164, 1e-12));
	TRY(brute_force(a, N(a), b, N(b)));
	for (int round = 0; round < 200; round++) {
		double x[10], y[10];
		size_t n1 = 1 + (size_t)(rand_r(&seed) % 9), n2 = 1 + (size_t)(rand_r(&seed) % 9);
		int spread = 1 + rand_r(&seed) % 12; /* few distinct values: many ties */
		int shift = rand_r(&seed) % 3;

		for (size_t i = 0; i < n1; i++)
			x[i] = rand_r(&seed) % spread;
		for (size_t i = 0; i < n2; i++)
			y[i] = rand_r(&seed) % spread + shift;
		TRY(brute_force(x, n1, y, n2));
	}
	CHECK_INT(utest(a, 0, b, 3, &r), -EINVAL);
	CHECK_INT(utest(a, 3, b, 0, &r), -EINVAL);
	{
		double nan_one[] = { 1, NAN };

		CHECK_INT(utest(nan_one, 2, b, 3, &r), -EINVAL);
	}
	return true;
}

/*
 * Where the exact distribution ends, the approximation takes over without a jump: 25 against
 * 25 values (exact) and 25 against 26 (normal), shifted alike, give close p-values.
 */
TEST(utest_exact_to_normal)
{
	double x[26], y[26];
	struct utest_result a, b;

	for (int i = 0; i < 26; i++) {
		x[i] = i;
		y[i] = i + 6.5;
	}
	CHECK_INT(utest(x, 25, y, 25, &a), 0);
	CHECK_INT(utest(x, 25, y, 26, &b), 0);
	CHECK(a.exact && !b.exact, "exact %d, %d", a.exact, b.exact);
	CHECK(a.p > 0.005 && a.p < 0.2, "p %g", a.p);
	CHECK(fabs(log(a.p / b.p)) < 0.5, "exact p %g, normal p %g", a.p, b.p);
	return true;
}

/* The smallest p per sample size, and the runs per side a level needs. */
TEST(utest_min_p)
{
	CHECK(close_to(utest_min_p(5, 5), 2.0 / 252, 1e-12), "%g", utest_min_p(5, 5));
	CHECK(close_to(utest_min_p(4, 4), 2.0 / 70, 1e-12), "%g", utest_min_p(4, 4));
	CHECK(close_to(utest_min_p(4, 5), 2.0 / 126, 1e-12), "%g", utest_min_p(4, 5));
	CHECK(utest_min_p(1, 1) == 1, "%g", utest_min_p(1, 1));
	CHECK(utest_min_p(0, 5) == 1, "%g", utest_min_p(0, 5));
	CHECK(utest_min_p(30, 30) < 1e-10, "%g", utest_min_p(30, 30));
	/* what two separated samples really give */
	{
		static const double x[] = { 1, 2, 3, 4 }, y[] = { 5, 6, 7, 8, 9 };
		struct utest_result r;

		CHECK_INT(utest(x, 4, y, 5, &r), 0);
		CHECK(close_to(r.p, utest_min_p(4, 5), 1e-12), "%g", r.p);
	}
	CHECK_U64(utest_min_runs(0.01), 5);
	CHECK_U64(utest_min_runs(0.05), 4);
	CHECK_U64(utest_min_runs(0.1), 3);
	CHECK_U64(utest_min_runs(1), 1);
	CHECK_U64(utest_min_runs(0.001), 7); /* 2 / C(12, 6) = 0.0022, 2 / C(14, 7) = 0.00058 */
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(utest_r_separated),
	T(utest_r_documentation),
	T(utest_moremath_small),
	T(utest_moremath_ties),
	T(utest_moremath_large),
	T(utest_all_ties),
	T(utest_exact_counted),
	T(utest_exact_to_normal),
	T(utest_min_p),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
