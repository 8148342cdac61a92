/*
 * Unit tests of the sampling tables and weights. One line per test, "PASS <name>" or "FAIL <name>:
 * <reason>", then "N passed, N failed" (tests/unit/check.h); each test gets a fresh scratch
 * directory.
 */
#include "allocprof.h"
#include "sampling.h"
#include "util.h"

#include "fixtures.h"

/* ---- sampling.h ----------------------------------------------------------------------------- */

TEST(sampling_exp_table)
{
	const size_t n = AP_EXP_TABLE_SIZE;
	uint32_t *t = calloc(n, sizeof(*t));
	double sum = 0, mean;

	CHECK_U64(n, 65536);
	CHECK(t, "calloc");
	sampling_exp_table(t, n);
	for (size_t i = 0; i < n; i++) {
		if (i)
			CHECK(t[i] < t[i - 1], "t[%zu] = %u, t[%zu] = %u: not decreasing", i - 1,
			      t[i - 1], i, t[i]);
		sum += (double)t[i] / (1 << AP_Q);
	}
	mean = sum / (double)n;
	CHECK(fabs(mean - 1.0) < 1e-3, "mean %.6f, expected 1 (Exp(1))", mean);
	CHECK(t[n - 1] > 0, "t[n-1] = 0: a zero sampling distance");
	/* -ln(0.5 / 65536) = 11.78 in Q16, and the median is ln 2. */
	CHECK_U64(t[0], lround(-log(0.5 / 65536) * 65536));
	CHECK_U64(t[n / 2], lround(-log((n / 2 + 0.5) / n) * 65536));
	CHECK(fabs(t[n / 2] / 65536.0 - M_LN2) < 1e-4, "median %.6f, expected ln 2",
	      t[n / 2] / 65536.0);
	free(t);
	return true;
}

TEST(sampling_weight_table)
{
	const size_t n = AP_WEIGHT_ENTRIES;
	uint32_t *t = calloc(n, sizeof(*t));

	CHECK_U64(n, 32 * 64 + 1);
	CHECK(t, "calloc");
	sampling_weight_table(t, n);
	CHECK_U64(t[0], 1u << AP_Q);
	CHECK_U64(t[1 << AP_WEIGHT_STEPS_LOG2], lround(65536.0 / (1.0 - exp(-1.0))));
	CHECK_U64(t[1 << AP_WEIGHT_STEPS_LOG2], 103676);
	CHECK_U64(t[n - 1], lround(32.0 / (1.0 - exp(-32.0)) * 65536));
	for (size_t i = 1; i < n; i++) {
		double x = (double)i / (1 << AP_WEIGHT_STEPS_LOG2);

		CHECK(t[i] > t[i - 1], "t[%zu] = %u, t[%zu] = %u: not increasing", i - 1, t[i - 1],
		      i, t[i]);
		/* The table's f(x) is x times the weight of an allocation of size x * R. */
		CHECK(fabs(t[i] / 65536.0 - x * sampling_weight(i, 64)) < 1.0 / 65536,
		      "t[%zu] = %u, x * weight = %.6f", i, t[i],
		      x * sampling_weight(i, 64) * 65536);
	}
	free(t);
	return true;
}

TEST(sampling_weight)
{
	static const struct {
		uint64_t size, rate;
	} cases[] = {
		{ 1, 524288 }, { 4096, 524288 }, { 524288, 524288 }, { 1 << 20, 524288 },
		{ 100, 100 },  { 1, 1 },	 { 1000, 1 },	     { 1, 1ull << 30 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		double x = (double)cases[i].size / (double)cases[i].rate;
		double want = 1.0 / (1.0 - exp(-x));
		double got = sampling_weight(cases[i].size, cases[i].rate);

		/* Naive 1 - exp(-x) loses digits for small x: compare to 1e-6 relative. */
		CHECK(fabs(got - want) <= 1e-6 * want,
		      "sampling_weight(%" PRIu64 ", %" PRIu64 ") = %.9g, expected %.9g",
		      cases[i].size, cases[i].rate, got, want);
	}
	CHECK(fabs(sampling_weight(524288, 524288) - 1.5819767068693265) < 1e-12, "w(R, R) = %.17g",
	      sampling_weight(524288, 524288));
	/* Small allocations weigh about R / size + 1/2. */
	CHECK(fabs(sampling_weight(1, 1ull << 30) - (1073741824.0 + 0.5)) < 1e-3,
	      "w(1, 2^30) = %.6f", sampling_weight(1, 1ull << 30));
	CHECK(sampling_weight(1000, 1) == 1.0, "w(1000, 1) = %.17g", sampling_weight(1000, 1));
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(sampling_exp_table),
	T(sampling_weight_table),
	T(sampling_weight),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
