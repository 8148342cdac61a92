/*
 * Unit tests of what readers take from a profile: allocprof's comments read back
 * (user/comments.c: operations, sampling, the divisor) and the per-function aggregation
 * (user/funcstats.c: flat, cum once per sample, lines, merging, variances of sampled values),
 * on profiles built by hand with user/profile.c.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "comments.h"
#include "funcstats.h"
#include "profile.h"
#include "util.h"

#include "check.h"

static const struct value_type types[] = { { "alloc_objects", "count" },
					   { "alloc_space", "bytes" } };

static struct profile *new_profile(int64_t period)
{
	struct profile_meta meta = { .sample_types = types,
				     .nsample_types = ARRAY_SIZE(types),
				     .period_type = { "space", "bytes" },
				     .period = period,
				     .default_sample_type = "alloc_space" };

	return profile__new(&meta);
}

static bool close_to(double a, double b)
{
	return fabs(a - b) <= 1e-9 * fmax(1, fabs(b));
}

TEST(comments_ops)
{
	struct profile *p = new_profile(1);
	const struct prof_op *op;
	struct prof_info info;
	char why[256], buf[128];

	profile__add_comment(p, "ops: handle_request 1000 calls of /srv/app");
	profile__add_comment(p, "lost allocations: 0");
	profile__add_comment(p, "ops: handle_request 500");
	profile__add_comment(p, "ops: other 7");
	profile__add_comment(p, "ops: operations 50");
	profile__add_comment(p, "ops: big 18446744073709551615");
	profile__add_comment(p, "ops: big 5"); /* saturates */
	/* malformed: ignored */
	profile__add_comment(p, "ops: noname");
	profile__add_comment(p, "ops: x y");
	profile__add_comment(p, "ops: z 12abc");
	profile__add_comment(p, "ops:  lead 3");
	profile__add_comment(p, "ops: neg -3");
	profile__add_comment(p, "ops: tab\t3");
	profile__add_comment(p, "ops: huge 99999999999999999999");
	profile__add_comment(p, "ops: ");
	profile__add_comment(p, "ops:other 2");
	CHECK_INT(prof_info__read(profile__message(p), &info), 0);
	CHECK_U64(info.nops, 4);
	CHECK_STR(info.ops[0].name, "handle_request");
	CHECK_U64(info.ops[0].count, 1500);
	CHECK_STR(info.ops[1].name, "other");
	CHECK_U64(info.ops[1].count, 7);
	CHECK_STR(info.ops[2].name, PROFILE_OPS_GIVEN);
	CHECK_U64(info.ops[2].count, 50);
	CHECK_U64(info.ops[3].count, UINT64_MAX);
	CHECK(!prof_info__op(&info, "z"), "a malformed line counted");
	CHECK_INT(info.sampling, PROF_SAMPLING_UNKNOWN);

	CHECK(!prof_info__divisor(&info, NULL, why, sizeof(why)), "several and no name");
	CHECK_STR(why, "operations of several functions (handle_request, other, operations, big): "
		       "choose one with --per-op FUNC");
	CHECK(!prof_info__divisor(&info, "nope", why, sizeof(why)), "nope");
	CHECK_STR(why, "no operation 'nope' (it has: handle_request, other, operations, big)");
	op = prof_info__divisor(&info, "other", why, sizeof(why));
	CHECK(op && op == prof_info__op(&info, "other"), "other");
	CHECK_STR(prof_op_describe(op, buf, sizeof(buf)), "7 calls of other");
	op = prof_info__op(&info, PROFILE_OPS_GIVEN);
	CHECK_STR(prof_op_describe(op, buf, sizeof(buf)), "50 operations, given by --ops");
	prof_info__free(&info);
	CHECK(!info.ops && !info.nops, "not cleared");
	profile__free(p);
	return true;
}

TEST(comments_divisor_one_or_none)
{
	struct prof_info info = { 0 }, more = { 0 };
	char why[256];

	CHECK(!prof_info__divisor(&info, NULL, why, sizeof(why)), "none");
	CHECK_STR(why, "no operations counted: record with --ops FUNC or --ops N");
	prof_info__add_op(&info, "f", 0);
	CHECK(!prof_info__divisor(&info, NULL, why, sizeof(why)), "zero");
	CHECK_STR(why, "operation 'f' counted 0 times: nothing to divide by");
	prof_info__add_op(&info, "f", 3);
	CHECK(prof_info__divisor(&info, NULL, why, sizeof(why)) == &info.ops[0], "one");
	/* merging: ops by name, sampled over exact */
	info.sampling = PROF_SAMPLING_EXACT;
	prof_info__add_op(&more, "f", 4);
	prof_info__add_op(&more, "g", 1);
	more.sampling = PROF_SAMPLING_SAMPLED;
	more.mean_bytes = 4096;
	prof_info__merge(&info, &more);
	CHECK_U64(info.nops, 2);
	CHECK_U64(prof_info__op(&info, "f")->count, 7);
	CHECK_U64(prof_info__op(&info, "g")->count, 1);
	CHECK_INT(info.sampling, PROF_SAMPLING_SAMPLED);
	CHECK(info.mean_bytes == 4096, "%g", info.mean_bytes);
	more.sampling = PROF_SAMPLING_UNKNOWN;
	info.sampling = PROF_SAMPLING_EXACT;
	prof_info__merge(&info, &more);
	CHECK_INT(info.sampling, PROF_SAMPLING_UNKNOWN);
	prof_info__free(&info);
	prof_info__free(&more);
	return true;
}

static bool sampling_of(const char *const *comments, size_t n, int64_t period,
			enum prof_sampling want, double mean)
{
	struct profile *p = new_profile(period);
	struct prof_info info;

	for (size_t i = 0; i < n; i++)
		profile__add_comment(p, "%s", comments[i]);
	prof_info__read(profile__message(p), &info);
	CHECK(info.sampling == want, "\"%s\": sampling %d, expected %d", n ? comments[0] : "",
	      (int)info.sampling, (int)want);
	CHECK(info.mean_bytes == mean, "\"%s\": mean %g, expected %g", n ? comments[0] : "",
	      info.mean_bytes, mean);
	prof_info__free(&info);
	profile__free(p);
	return true;
}

TEST(comments_sampling)
{
	const char *exact[] = { PROFILE_COMMENT_EXACT };
	const char *sampled[] = { PROFILE_COMMENT_SAMPLED "524288 bytes on average" };
	const char *bare[] = { PROFILE_COMMENT_SAMPLED "4096" };
	const char *nonum[] = { PROFILE_COMMENT_SAMPLED "many bytes" };
	const char *both[] = { PROFILE_COMMENT_EXACT, PROFILE_COMMENT_SAMPLED "8192 bytes" };
	const char *other[] = { "sampling: something else" };

	TRY(sampling_of(exact, 1, 1, PROF_SAMPLING_EXACT, 0));
	TRY(sampling_of(sampled, 1, 524288, PROF_SAMPLING_SAMPLED, 524288));
	TRY(sampling_of(bare, 1, 1, PROF_SAMPLING_SAMPLED, 4096));
	/* no number: the period says it, or nothing does */
	TRY(sampling_of(nonum, 1, 65536, PROF_SAMPLING_SAMPLED, 65536));
	TRY(sampling_of(nonum, 1, 0, PROF_SAMPLING_UNKNOWN, 0));
	/* claiming exactness wrongly would hide an uncertainty: sampled wins */
	TRY(sampling_of(both, 2, 8192, PROF_SAMPLING_SAMPLED, 8192));
	TRY(sampling_of(other, 1, 1, PROF_SAMPLING_UNKNOWN, 0));
	TRY(sampling_of(NULL, 0, 1, PROF_SAMPLING_UNKNOWN, 0));
	return true;
}

static struct sym_result syms(const char *name, const char *file, int line)
{
	struct sym_result r = { .n = 1 };

	r.f[0] = (struct sym_frame){ name, name, file, line };
	return r;
}

/*
 * main -> handle -> rec -> rec -> leaf (recursion), main -> leaf, and a frame without a
 * symbol: rec's cum counts its sample once, leaf's flat is both samples'.
 */
static struct profile *build(int64_t period, const char *comment)
{
	struct profile *p = new_profile(period);
	struct sym_result m = syms("main", "/src/main.c", 10), h = syms("handle", "/src/h.c", 20),
			  r = syms("rec", "/src/r.c", 30), l = syms("leaf", "/src/l.c", 40),
			  l2 = syms("leaf", "/src/l.c", 41);
	uint64_t lm = profile__location(p, 0, 0x1000, &m), lh = profile__location(p, 0, 0x2000, &h),
		 lr = profile__location(p, 0, 0x3000, &r), ll = profile__location(p, 0, 0x4000, &l),
		 ll2 = profile__location(p, 0, 0x4100, &l2),
		 lx = profile__location(p, 0, 0xabc0, NULL);
	uint64_t s1[] = { ll, lr, lr, lh, lm }, s2[] = { ll2, lm }, s3[] = { lx, lh, lm };

	profile__add_sample(p, s1, ARRAY_SIZE(s1), (const int64_t[]){ 10, 10240 }, 1, "t");
	profile__add_sample(p, s2, ARRAY_SIZE(s2), (const int64_t[]){ 4, 400 }, 1, "t");
	profile__add_sample(p, s3, ARRAY_SIZE(s3), (const int64_t[]){ 1, 50 }, 1, "t");
	if (comment)
		profile__add_comment(p, "%s", comment);
	return p;
}

static bool row_is(const struct funcstats *fs, const char *name, int64_t flat, int64_t cum,
		   const char *file, int64_t line)
{
	const struct fs_row *r = funcstats__row(fs, name);

	CHECK(r, "no row %s", name);
	CHECK(r->flat == flat && r->cum == cum, "%s: flat %lld cum %lld, expected %lld %lld", name,
	      (long long)r->flat, (long long)r->cum, (long long)flat, (long long)cum);
	CHECK_STR(r->file, file);
	CHECK(r->line == line, "%s: line %lld, expected %lld", name, (long long)r->line,
	      (long long)line);
	return true;
}

TEST(funcstats_rows)
{
	struct profile *p = build(1, PROFILE_COMMENT_EXACT);
	const Perftools__Profiles__Profile *m = profile__message(p);
	struct prof_info info;
	struct funcstats *fs, *sum;

	prof_info__read(m, &info);
	CHECK(funcstats_work(m) == 10, "work %llu", (unsigned long long)funcstats_work(m));
	fs = funcstats__build(m, 0, &info);
	CHECK_U64(fs->nrows, 5);
	CHECK_INT(fs->total, 15);
	CHECK(!fs->sampled && fs->var_total == 0, "exact profile with variance");
	TRY(row_is(fs, "main", 0, 15, "/src/main.c", 0));
	TRY(row_is(fs, "handle", 0, 11, "/src/h.c", 0));
	TRY(row_is(fs, "rec", 0, 10, "/src/r.c", 0));	 /* twice in its stack, once in cum */
	TRY(row_is(fs, "leaf", 14, 14, "/src/l.c", 40)); /* the line of the larger flat */
	TRY(row_is(fs, "0xabc0", 1, 1, "", 0));
	CHECK(!funcstats__row(fs, "nope"), "a row for nope");
	funcstats__sort(fs, fs_row_cmp_flat);
	CHECK_STR(fs->rows[0].name, "leaf");
	CHECK_STR(fs->rows[1].name, "0xabc0");
	CHECK_STR(fs->rows[2].name, "main");	      /* flat 0: by cum */
	TRY(row_is(fs, "rec", 0, 10, "/src/r.c", 0)); /* found after the sort */
	funcstats__sort(fs, fs_row_cmp_cum);
	CHECK_STR(fs->rows[0].name, "main");
	CHECK_STR(fs->rows[1].name, "leaf");
	CHECK_STR(fs->rows[4].name, "0xabc0");

	/* merged twice, into an empty one: sums by name */
	sum = funcstats__new();
	funcstats__merge(sum, fs);
	funcstats__merge(sum, fs);
	CHECK_U64(sum->nrows, 5);
	CHECK_INT(sum->total, 30);
	TRY(row_is(sum, "rec", 0, 20, "/src/r.c", 0));
	TRY(row_is(sum, "leaf", 28, 28, "/src/l.c", 40));
	funcstats__free(sum);
	funcstats__free(fs);
	fs = funcstats__build(m, 1, NULL);
	CHECK_INT(fs->total, 10690);
	TRY(row_is(fs, "leaf", 10640, 10640, "/src/l.c", 40));
	funcstats__free(fs);
	funcstats__free(NULL);
	prof_info__free(&info);
	profile__free(p);
	return true;
}

/* The formula by hand (python3 -c 'import math; p = 1 - math.exp(-1024/524288); ...'). */
TEST(funcstats_variance_formula)
{
	const double R = 524288;

	CHECK(close_to(fs_sample_variance(10, 10240, R, false), 5115.0016276042), "%.10g",
	      fs_sample_variance(10, 10240, R, false));
	CHECK(close_to(fs_sample_variance(10, 10240, R, true), 5363467946.666701), "%.10g",
	      fs_sample_variance(10, 10240, R, true));
	CHECK(close_to(fs_sample_variance(4, 400, R, false), 20969.520063580363), "%.10g",
	      fs_sample_variance(4, 400, R, false));
	CHECK(close_to(fs_sample_variance(4, 400, R, true), 209695200.63580364), "%.10g",
	      fs_sample_variance(4, 400, R, true));
	CHECK(fs_sample_variance(0, 100, R, true) == 0, "no objects");
	CHECK(fs_sample_variance(-3, 100, R, false) == 0, "negative objects");
	CHECK(fs_sample_variance(3, 0, R, false) == 0, "no bytes");
	CHECK(fs_sample_variance(3, 100, 0, false) == 0, "no mean");
	return true;
}

/*
 * The bound from the number sampled: the same as the mean-size formula when every block has
 * one size; above it for small blocks beside 1 MiB ones, where one sampled small block
 * weighs 32768 objects (p = 16/524288), which the mean size (80 B) understates.
 */
TEST(funcstats_variance_floor)
{
	const double R = 524288, a = 1024, p = -expm1(-a / R), n = 10, o = n / p;
	double w = 1 / -expm1(-16.0 / R), big = 1 / -expm1(-1048576.0 / R);
	double mo = w + 2 * big, mb = 16 * w + 2 * 1048576 * big;

	CHECK(close_to(fs_sample_variance_floor(o, o * a, n, false),
		       fs_sample_variance(o, o * a, R, false)),
	      "%.10g vs %.10g", fs_sample_variance_floor(o, o * a, n, false),
	      fs_sample_variance(o, o * a, R, false));
	CHECK(close_to(fs_sample_variance_floor(o, o * a, n, true),
		       fs_sample_variance(o, o * a, R, true)),
	      "bytes: %.10g", fs_sample_variance_floor(o, o * a, n, true));
	/* One small and the two large sampled: the one small block's weight is the noise. */
	CHECK(fs_sample_variance_floor(mo, mb, 3, false) > fs_sample_variance(mo, mb, R, false),
	      "%.10g <= %.10g", fs_sample_variance_floor(mo, mb, 3, false),
	      fs_sample_variance(mo, mb, R, false));
	CHECK(sqrt(fs_sample_variance_floor(mo, mb, 3, false)) > 15000, "%.10g",
	      sqrt(fs_sample_variance_floor(mo, mb, 3, false)));
	CHECK(fs_sample_variance_floor(10, 100, 0, false) == 0, "n unknown");
	CHECK(fs_sample_variance_floor(5, 100, 5, false) == 0, "weights of 1: no variance");
	return true;
}

/* Variances of a sampled profile: each sample's, added where its value is. */
TEST(funcstats_variance_rows)
{
	struct profile *p = build(524288, PROFILE_COMMENT_SAMPLED "524288 bytes on average");
	const Perftools__Profiles__Profile *m = profile__message(p);
	const double R = 524288;
	double o1 = fs_sample_variance(10, 10240, R, false),
	       o2 = fs_sample_variance(4, 400, R, false), o3 = fs_sample_variance(1, 50, R, false),
	       b1 = fs_sample_variance(10, 10240, R, true);
	struct prof_info info;
	struct funcstats *fo, *fb, *sum;

	prof_info__read(m, &info);
	CHECK_INT(info.sampling, PROF_SAMPLING_SAMPLED);
	fo = funcstats__build(m, 0, &info);
	fb = funcstats__build(m, 1, &info);
	CHECK(fo->sampled && fb->sampled, "not sampled");
	CHECK(close_to(fo->var_total, o1 + o2 + o3), "total %g", fo->var_total);
	CHECK(close_to(funcstats__row(fo, "main")->var_cum, o1 + o2 + o3), "main");
	CHECK(close_to(funcstats__row(fo, "main")->var_flat, 0), "main flat");
	CHECK(close_to(funcstats__row(fo, "rec")->var_cum, o1), "rec counted once");
	CHECK(close_to(funcstats__row(fo, "leaf")->var_flat, o1 + o2), "leaf flat");
	CHECK(close_to(funcstats__row(fb, "rec")->var_cum, b1), "rec bytes");
	sum = funcstats__new();
	funcstats__merge(sum, fo);
	funcstats__merge(sum, fo);
	CHECK(sum->sampled, "merge lost sampled");
	CHECK(close_to(funcstats__row(sum, "rec")->var_cum, 2 * o1), "merged variance");
	CHECK(close_to(sum->var_total, 2 * (o1 + o2 + o3)), "merged total");
	funcstats__free(sum);
	funcstats__free(fo);
	funcstats__free(fb);
	prof_info__free(&info);
	profile__free(p);
	return true;
}

/* Types other than alloc_* and inuse_* have no variance; nor do profiles not sampled. */
TEST(funcstats_variance_none)
{
	static const struct value_type other[] = { { "samples", "count" },
						   { "cpu", "nanoseconds" } };
	struct profile_meta meta = { .sample_types = other, .nsample_types = 2, .period = 1 };
	struct profile *p = profile__new(&meta), *q = build(524288, NULL);
	struct prof_info info = { .sampling = PROF_SAMPLING_SAMPLED, .mean_bytes = 4096 };
	struct sym_result f = syms("f", NULL, 0);
	uint64_t l = profile__location(p, 0, 0x1000, &f);
	struct funcstats *fs;

	profile__add_sample(p, &l, 1, (const int64_t[]){ 5, 100 }, 1, "t");
	fs = funcstats__build(profile__message(p), 0, &info);
	CHECK(!fs->sampled && fs->var_total == 0, "variance for samples");
	funcstats__free(fs);
	/* unknown sampling (no comment): exact */
	prof_info__read(profile__message(q), &info);
	fs = funcstats__build(profile__message(q), 1, &info);
	CHECK(!fs->sampled && fs->var_total == 0, "variance without a sampling comment");
	funcstats__free(fs);
	prof_info__free(&info);
	profile__free(p);
	profile__free(q);
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(comments_ops),
	T(comments_divisor_one_or_none),
	T(comments_sampling),
	T(funcstats_rows),
	T(funcstats_variance_formula),
	T(funcstats_variance_floor),
	T(funcstats_variance_rows),
	T(funcstats_variance_none),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
