/*
 * Unit tests of the profile builder, the pprof codec and `allocprof top`. One line per test, "PASS
 * <name>" or "FAIL <name>: <reason>", then "N passed, N failed" (tests/unit/check.h); each test
 * gets a fresh scratch directory.
 */
#include "allocprof.h"
#include "pprof.h"
#include "profile.h"
#include "top.h"
#include "util.h"

#include "fixtures.h"

/* ---- profile.h and pprof.h ------------------------------------------------------------------ */

static const struct value_type test_types[] = {
	{ "alloc_objects", "count" },
	{ "alloc_space", "bytes" },
};

static struct profile *new_test_profile(const char *default_type)
{
	struct profile_meta meta = {
		.sample_types = test_types,
		.nsample_types = ARRAY_SIZE(test_types),
		.period_type = { "space", "bytes" },
		.period = 524288,
		.time_nanos = 1700000000123456789ll,
		.duration_nanos = 5000000000ll,
		.default_sample_type = default_type,
	};

	return profile__new(&meta);
}

static struct sym_result syms(const char *name, const char *file, int line)
{
	struct sym_result r = { .n = 1 };

	r.f[0] = (struct sym_frame){ name, name, file, line };
	return r;
}

/* Location ids of the test profile. */
struct built {
	uint64_t map_prog, map_libc, loc_inl, loc_main, loc_bare, loc_outer2;
};

static bool build_profile(struct profile *p, struct built *b)
{
	struct sym_result inl = { .n = 2 }, r;
	uint64_t locs[3];

	b->map_prog =
		profile__mapping(p, 100, 0x400000, 0x500000, 0, "/usr/bin/prog", "0123abcd", true);
	b->map_libc = profile__mapping(p, 200, 0x7f0000000000, 0x7f0000200000, 0x1000,
				       "/lib/libc.so.6", "", false);
	CHECK_U64(b->map_prog, 1);
	CHECK_U64(b->map_libc, 2);
	CHECK_U64(profile__mapping(p, 100, 1, 2, 3, "/other", "", false), 1);

	/* An inlined frame and the function it was inlined into, innermost first. */
	inl.f[0] = (struct sym_frame){ "inl", "_Z3inlv", "a.c", 10 };
	inl.f[1] = (struct sym_frame){ "outer", "outer", "a.c", 20 };
	b->loc_inl = profile__location(p, b->map_prog, 0x401000, &inl);
	r = syms("main", "m.c", 5);
	b->loc_main = profile__location(p, b->map_libc, 0x7f0000001234, &r);
	b->loc_bare = profile__location(p, 0, 0xdead, NULL);
	r = syms("outer", "a.c", 25);
	r.f[0].system_name = "outer";
	b->loc_outer2 = profile__location(p, b->map_prog, 0x402000, &r);
	CHECK_U64(b->loc_inl, 1);
	CHECK_U64(b->loc_main, 2);
	CHECK_U64(b->loc_bare, 3);
	CHECK_U64(b->loc_outer2, 4);
	CHECK_U64(profile__location(p, b->map_prog, 0x401000, NULL), b->loc_inl);

	locs[0] = b->loc_inl;
	locs[1] = b->loc_main;
	profile__add_sample(p, locs, 2, (const int64_t[]){ 2, 4096 }, 1234, "prog");
	locs[0] = b->loc_bare;
	locs[1] = b->loc_outer2;
	locs[2] = b->loc_main;
	profile__add_sample(p, locs, 3, (const int64_t[]){ 1, 100 }, 77, "");
	profile__add_comment(p, "sampled every %d bytes", 524288);
	CHECK_U64(profile__samples(p), 2);
	return true;
}

static bool encode_to(struct profile *p, const char *path, void **gz, size_t *len)
{
	CHECK_INT(pprof_encode(profile__message(p), gz, len), 0);
	CHECK(*len > 20, "encoded to %zu bytes", *len);
	CHECK(((uint8_t *)*gz)[0] == 0x1f && ((uint8_t *)*gz)[1] == 0x8b, "not gzip");
	TRY(write_file(path, *gz, *len));
	return true;
}

static bool check_label(const Perftools__Profiles__Profile *q, const Perftools__Profiles__Sample *s,
			int64_t pid, const char *comm)
{
	CHECK_U64(s->n_label, comm ? 2 : 1);
	CHECK_STR(pprof_str(q, s->label[0]->key), "pid");
	CHECK_INT(s->label[0]->num, pid);
	CHECK_INT(s->label[0]->str, 0);
	if (comm) {
		CHECK_STR(pprof_str(q, s->label[1]->key), "comm");
		CHECK_STR(pprof_str(q, s->label[1]->str), comm);
		CHECK_INT(s->label[1]->num, 0);
	}
	return true;
}

static bool check_function(const Perftools__Profiles__Profile *q, uint64_t id, const char *name,
			   const char *system_name, const char *file)
{
	const Perftools__Profiles__Function *f;

	CHECK(id >= 1 && id <= q->n_function, "function id %" PRIu64 " of %zu", id, q->n_function);
	f = q->function[id - 1];
	CHECK_U64(f->id, id);
	CHECK_STR(pprof_str(q, f->name), name);
	CHECK_STR(pprof_str(q, f->system_name), system_name);
	CHECK_STR(pprof_str(q, f->filename), file);
	return true;
}

TEST(profile_pprof_roundtrip)
{
	Perftools__Profiles__Profile *q = NULL;
	const Perftools__Profiles__Location *l;
	const Perftools__Profiles__Mapping *mp;
	struct profile *p = new_test_profile("alloc_space");
	const char *why = "unset";
	char path[PATH_MAX];
	struct built b;
	void *gz;
	size_t len;

	snprintf(path, sizeof(path), "%s/test.pb.gz", tmp);
	TRY(build_profile(p, &b));
	TRY(encode_to(p, path, &gz, &len));
	free(gz);
	profile__free(p);

	CHECK_INT(pprof_read(path, &q, &why), 0);
	CHECK(!why, "why = \"%s\" on success", why);
	CHECK(q->n_string_table > 0, "empty string table");
	CHECK_STR(q->string_table[0], "");
	CHECK_STR(pprof_str(q, -1), "");
	CHECK_STR(pprof_str(q, (int64_t)q->n_string_table), "");

	CHECK_U64(q->n_sample_type, 2);
	CHECK_STR(pprof_str(q, q->sample_type[0]->type), "alloc_objects");
	CHECK_STR(pprof_str(q, q->sample_type[0]->unit), "count");
	CHECK_STR(pprof_str(q, q->sample_type[1]->type), "alloc_space");
	CHECK_STR(pprof_str(q, q->sample_type[1]->unit), "bytes");
	CHECK_STR(pprof_str(q, q->default_sample_type), "alloc_space");
	CHECK(q->period_type, "no period type");
	CHECK_STR(pprof_str(q, q->period_type->type), "space");
	CHECK_STR(pprof_str(q, q->period_type->unit), "bytes");
	CHECK_INT(q->period, 524288);
	CHECK_INT(q->time_nanos, 1700000000123456789ll);
	CHECK_INT(q->duration_nanos, 5000000000ll);
	CHECK_U64(q->n_comment, 1);
	CHECK_STR(pprof_str(q, q->comment[0]), "sampled every 524288 bytes");

	CHECK_U64(q->n_mapping, 2);
	mp = q->mapping[0];
	CHECK_U64(mp->id, 1);
	CHECK_U64(mp->memory_start, 0x400000);
	CHECK_U64(mp->memory_limit, 0x500000);
	CHECK_U64(mp->file_offset, 0);
	CHECK_STR(pprof_str(q, mp->filename), "/usr/bin/prog");
	CHECK_STR(pprof_str(q, mp->build_id), "0123abcd");
	CHECK(mp->has_functions, "symbolized mapping without has_functions");
	CHECK(mp->has_filenames, "symbolized mapping without has_filenames");
	CHECK(mp->has_line_numbers, "symbolized mapping without has_line_numbers");
	CHECK(mp->has_inline_frames, "symbolized mapping without has_inline_frames");
	mp = q->mapping[1];
	CHECK_U64(mp->id, 2);
	CHECK_U64(mp->file_offset, 0x1000);
	CHECK_STR(pprof_str(q, mp->filename), "/lib/libc.so.6");
	CHECK(!mp->has_functions, "unsymbolized mapping has_functions");

	/* Functions: inl, outer, main; "outer" at a second address is the same function. */
	CHECK_U64(q->n_function, 3);
	CHECK_U64(q->n_location, 4);
	for (size_t i = 0; i < q->n_location; i++)
		CHECK_U64(q->location[i]->id, i + 1);
	l = q->location[0];
	CHECK_U64(l->mapping_id, 1);
	CHECK_U64(l->address, 0x401000);
	CHECK_U64(l->n_line, 2);
	TRY(check_function(q, l->line[0]->function_id, "inl", "_Z3inlv", "a.c"));
	CHECK_INT(l->line[0]->line, 10);
	TRY(check_function(q, l->line[1]->function_id, "outer", "outer", "a.c"));
	CHECK_INT(l->line[1]->line, 20);
	l = q->location[1];
	CHECK_U64(l->mapping_id, 2);
	CHECK_U64(l->address, 0x7f0000001234);
	CHECK_U64(l->n_line, 1);
	TRY(check_function(q, l->line[0]->function_id, "main", "main", "m.c"));
	l = q->location[2];
	CHECK_U64(l->mapping_id, 0);
	CHECK_U64(l->address, 0xdead);
	CHECK_U64(l->n_line, 0);
	l = q->location[3];
	CHECK_U64(l->n_line, 1);
	CHECK_U64(l->line[0]->function_id, q->location[0]->line[1]->function_id);
	CHECK_INT(l->line[0]->line, 25);

	CHECK_U64(q->n_sample, 2);
	CHECK_U64(q->sample[0]->n_location_id, 2);
	CHECK_U64(q->sample[0]->location_id[0], 1);
	CHECK_U64(q->sample[0]->location_id[1], 2);
	CHECK_U64(q->sample[0]->n_value, 2);
	CHECK_INT(q->sample[0]->value[0], 2);
	CHECK_INT(q->sample[0]->value[1], 4096);
	TRY(check_label(q, q->sample[0], 1234, "prog"));
	CHECK_U64(q->sample[1]->n_location_id, 3);
	CHECK_U64(q->sample[1]->location_id[0], 3);
	CHECK_U64(q->sample[1]->location_id[1], 4);
	CHECK_U64(q->sample[1]->location_id[2], 2);
	CHECK_INT(q->sample[1]->value[0], 1);
	CHECK_INT(q->sample[1]->value[1], 100);
	TRY(check_label(q, q->sample[1], 77, NULL));

	/* Every string once. */
	for (size_t i = 0; i < q->n_string_table; i++)
		for (size_t j = i + 1; j < q->n_string_table; j++)
			CHECK(strcmp(q->string_table[i], q->string_table[j]),
			      "\"%s\" at %zu and %zu", q->string_table[i], i, j);
	perftools__profiles__profile__free_unpacked(q, NULL);
	return true;
}

TEST(profile_set_main)
{
	struct profile *p = new_test_profile(NULL);
	const Perftools__Profiles__Profile *m;

	CHECK_U64(profile__mapping(p, 1, 0x1000, 0x2000, 0, "/lib/a.so", "", true), 1);
	CHECK_U64(profile__mapping(p, 2, 0x3000, 0x4000, 0, "/lib/b.so", "", true), 2);
	CHECK_U64(profile__mapping(p, 3, 0x5000, 0x6000, 0, "/usr/bin/main", "", true), 3);
	CHECK_U64(profile__mapping(p, 4, 0x7000, 0x8000, 0x1000, "/usr/bin/main", "", true), 4);
	profile__set_main(p, "/usr/bin/main");
	m = profile__message(p);
	CHECK_U64(m->n_mapping, 4);
	CHECK_U64(m->mapping[0]->id, 3);
	CHECK_U64(m->mapping[1]->id, 1);
	CHECK_U64(m->mapping[2]->id, 2);
	CHECK_U64(m->mapping[3]->id, 4);
	CHECK_STR(m->string_table[m->mapping[0]->filename], "/usr/bin/main");
	CHECK_U64(m->mapping[0]->memory_start, 0x5000);
	/* An unknown file changes nothing; the first one stays where it is. */
	profile__set_main(p, "/nowhere");
	profile__set_main(p, "/usr/bin/main");
	CHECK_U64(m->mapping[0]->id, 3);
	CHECK_U64(m->mapping[1]->id, 1);
	CHECK_U64(m->mapping[2]->id, 2);
	CHECK_U64(m->mapping[3]->id, 4);
	/* No default sample type given: the field stays 0, the empty string. */
	CHECK_INT(m->default_sample_type, 0);
	profile__free(p);
	return true;
}

static bool expect_bad(const char *path, int want, const char *what)
{
	Perftools__Profiles__Profile *q = NULL;
	const char *why = NULL;
	int err = pprof_read(path, &q, &why);

	CHECK(err == want, "%s: pprof_read = %d (%s), expected %d", what, err, strerror(-err),
	      want);
	if (want == -EBADMSG)
		CHECK(why && *why, "%s: no reason", what);
	return true;
}

TEST(pprof_read_rejects)
{
	struct profile *p = new_test_profile("alloc_space");
	uint8_t junk[4096];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char path[PATH_MAX];
	struct built b;
	void *gz;
	size_t len;

	snprintf(path, sizeof(path), "%s/full.pb.gz", tmp);
	TRY(build_profile(p, &b));
	TRY(encode_to(p, path, &gz, &len));
	profile__free(p);

	snprintf(path, sizeof(path), "%s/truncated.pb.gz", tmp);
	TRY(write_file(path, gz, len / 2));
	free(gz);
	TRY(expect_bad(path, -EBADMSG, "truncated gzip"));

	snprintf(path, sizeof(path), "%s/empty", tmp);
	TRY(write_file(path, "", 0));
	TRY(expect_bad(path, -EBADMSG, "empty file"));

	for (size_t i = 0; i < sizeof(junk); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		junk[i] = (uint8_t)x;
	}
	junk[0] = 0xff;
	snprintf(path, sizeof(path), "%s/random", tmp);
	TRY(write_file(path, junk, sizeof(junk)));
	TRY(expect_bad(path, -EBADMSG, "random bytes"));

	snprintf(path, sizeof(path), "%s/text", tmp);
	TRY(write_file(path, "hello, world\nthis is not a profile\n", 35));
	TRY(expect_bad(path, -EBADMSG, "text file"));

	snprintf(path, sizeof(path), "%s/missing", tmp);
	TRY(expect_bad(path, -ENOENT, "missing file"));
	TRY(expect_bad(tmp, -EISDIR, "directory"));
	return true;
}

/* ---- top.h ---------------------------------------------------------------------------------- */

TEST(top_sample_index)
{
	struct profile *p = new_test_profile("alloc_objects");
	struct profile *nodef = new_test_profile(NULL);
	const Perftools__Profiles__Profile *m = profile__message(p);

	CHECK_INT(top_sample_index(m, "alloc_objects"), 0);
	CHECK_INT(top_sample_index(m, "alloc_space"), 1);
	CHECK_INT(top_sample_index(m, "0"), 0);
	CHECK_INT(top_sample_index(m, "1"), 1);
	CHECK_INT(top_sample_index(m, "2"), -1);
	CHECK_INT(top_sample_index(m, "-1"), -1);
	CHECK_INT(top_sample_index(m, "inuse_space"), -1);
	CHECK_INT(top_sample_index(m, ""), -1);
	CHECK_INT(top_sample_index(m, NULL), 0);
	/* Without a default, pprof takes the last sample type. */
	CHECK_INT(top_sample_index(profile__message(nodef), NULL), 1);
	profile__free(p);
	profile__free(nodef);
	return true;
}

struct top_row {
	long long flat, cum;
	double flat_pct, sum_pct, cum_pct;
	char name[64], rest[64];
};

/* `top_print` output as its header line and rows; false on a malformed row. */
static bool run_top(const Perftools__Profiles__Profile *m, int si, size_t n, char *header,
		    size_t hlen, struct top_row *rows, size_t *nrows, size_t max)
{
	char *text = NULL, *save = NULL, *line;
	size_t len = 0, i = 0;
	FILE *f = open_memstream(&text, &len);

	CHECK(f, "open_memstream");
	top_print(f, m, si, n);
	fclose(f);
	*nrows = 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		struct top_row *r = &rows[*nrows];

		if (i == 0) {
			snprintf(header, hlen, "%s", line);
			continue;
		}
		if (i == 1)
			continue; /* column titles */
		CHECK(*nrows < max, "more than %zu rows:\n%s", max, text);
		r->rest[0] = '\0';
		CHECK(sscanf(line, "%lld B %lf%% %lf%% %lld B %lf%% %63s %63[^\n]", &r->flat,
			     &r->flat_pct, &r->sum_pct, &r->cum, &r->cum_pct, r->name,
			     r->rest) >= 6,
		      "malformed row \"%s\"", line);
		(*nrows)++;
	}
	free(text);
	return true;
}

static bool check_row(const struct top_row *r, const char *name, long long flat, long long cum,
		      double flat_pct, double sum_pct, double cum_pct, const char *rest)
{
	CHECK_STR(r->name, name);
	CHECK_INT(r->flat, flat);
	CHECK_INT(r->cum, cum);
	CHECK(fabs(r->flat_pct - flat_pct) < 0.006, "%s flat%% %.2f, expected %.2f", name,
	      r->flat_pct, flat_pct);
	CHECK(fabs(r->sum_pct - sum_pct) < 0.006, "%s sum%% %.2f, expected %.2f", name, r->sum_pct,
	      sum_pct);
	CHECK(fabs(r->cum_pct - cum_pct) < 0.006, "%s cum%% %.2f, expected %.2f", name, r->cum_pct,
	      cum_pct);
	CHECK_STR(r->rest, rest);
	return true;
}

TEST(top_print)
{
	struct profile *p = new_test_profile("alloc_space");
	struct sym_result ra = syms("A", "src/a.c", 10), rb = syms("B", "/x/b.c", 20);
	uint64_t la, lb, locs[2];
	struct top_row rows[8];
	char header[256];
	size_t n;

	la = profile__location(p, 0, 0x1000, &ra);
	lb = profile__location(p, 0, 0x2000, &rb);
	locs[0] = la;
	locs[1] = lb;
	profile__add_sample(p, locs, 2, (const int64_t[]){ 3, 300 }, 1, "t");
	profile__add_sample(p, &lb, 1, (const int64_t[]){ 1, 100 }, 1, "t");

	TRY(run_top(profile__message(p), 1, 10, header, sizeof(header), rows, &n, 8));
	CHECK_STR(header, "Top 2 of 2 functions by alloc_space, total 400 B");
	CHECK_U64(n, 2);
	TRY(check_row(&rows[0], "A", 300, 300, 75, 75, 75, "(a.c:10)"));
	TRY(check_row(&rows[1], "B", 100, 400, 25, 100, 100, "(b.c:20)"));

	TRY(run_top(profile__message(p), 1, 1, header, sizeof(header), rows, &n, 8));
	CHECK_STR(header, "Top 1 of 2 functions by alloc_space, total 400 B");
	CHECK_U64(n, 1);
	CHECK_STR(rows[0].name, "A");
	profile__free(p);
	return true;
}

/* A recursive stack counts once in cum; an inlined frame is the leaf, its caller is not. */
TEST(top_print_recursion_inline)
{
	struct profile *p = new_test_profile("alloc_space");
	struct sym_result rb = syms("B", NULL, 0), ri = { .n = 2 };
	uint64_t lb, li, locs[3];
	struct top_row rows[8];
	char header[256];
	size_t n;

	ri.f[0] = (struct sym_frame){ "I", "I", NULL, 0 };
	ri.f[1] = (struct sym_frame){ "C", "C", NULL, 0 };
	lb = profile__location(p, 0, 0x2000, &rb);
	li = profile__location(p, 0, 0x3000, &ri);
	locs[0] = lb;
	locs[1] = li;
	locs[2] = lb;
	profile__add_sample(p, locs, 3, (const int64_t[]){ 1, 50 }, 1, "t");
	profile__add_sample(p, &li, 1, (const int64_t[]){ 1, 150 }, 1, "t");

	TRY(run_top(profile__message(p), 1, 10, header, sizeof(header), rows, &n, 8));
	CHECK_STR(header, "Top 3 of 3 functions by alloc_space, total 200 B");
	CHECK_U64(n, 3);
	TRY(check_row(&rows[0], "I", 150, 200, 75, 75, 100, ""));
	TRY(check_row(&rows[1], "B", 50, 50, 25, 100, 25, ""));
	TRY(check_row(&rows[2], "C", 0, 200, 0, 100, 100, ""));
	profile__free(p);
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(profile_pprof_roundtrip),
	T(profile_set_main),
	T(pprof_read_rejects),
	T(top_sample_index),
	T(top_print),
	T(top_print_recursion_inline),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
