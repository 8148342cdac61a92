/*
 * Unit tests of the parsing helpers and the hash table. One line per test, "PASS <name>" or "FAIL
 * <name>: <reason>", then "N passed, N failed" (tests/unit/check.h); each test gets a fresh scratch
 * directory.
 */
#include "allocprof.h"
#include "hashmap.h"
#include "util.h"

#include "fixtures.h"

/* ---- util.h --------------------------------------------------------------------------------- */

TEST(util_parse_duration)
{
	static const struct {
		const char *s;
		uint64_t ns;
	} good[] = {
		{ "500ms", 500000000ull },  { "30s", 30000000000ull }, { "2m", 120000000000ull },
		{ "1h", 3600000000000ull }, { "1.5s", 1500000000ull }, { "2", 2000000000ull },
		{ "10us", 10000ull },	    { "100ns", 100ull },       { "1min", 60000000000ull },
	};
	static const char *const bad[] = { "", "5x", "-1s", "0", "s", " 1s", "1s ", "+1s", "nan" };

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uint64_t ns = 0;
		int err = parse_duration_ns(good[i].s, &ns);

		CHECK(!err && ns == good[i].ns,
		      "parse_duration_ns(\"%s\") = %d, %" PRIu64 "; expected 0, %" PRIu64,
		      good[i].s, err, ns, good[i].ns);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t ns = 12345;
		int err = parse_duration_ns(bad[i], &ns);

		CHECK(err == -EINVAL || err == -ERANGE,
		      "parse_duration_ns(\"%s\") = %d, %" PRIu64 "; expected -EINVAL or -ERANGE",
		      bad[i], err, ns);
		CHECK(ns == 12345, "parse_duration_ns(\"%s\") wrote %" PRIu64 " on error", bad[i],
		      ns);
	}
	return true;
}

TEST(util_parse_size)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "4096", 4096 }, { "512k", 524288 }, { "1M", 1048576 }, { "1GiB", 1073741824ull },
		{ "1.5k", 1536 }, { "1kB", 1024 },    { "3b", 3 },	 { "2g", 2147483648ull },
	};
	static const char *const bad[] = { "0.3", "abc", "-1", "", "1.5", "12q", " 1k", "k" };
	uint64_t v;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		int err;

		v = 0;
		err = parse_size(good[i].s, &v);
		CHECK(!err && v == good[i].v,
		      "parse_size(\"%s\") = %d, %" PRIu64 "; expected 0, %" PRIu64, good[i].s, err,
		      v, good[i].v);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK(parse_size(bad[i], &v) == -EINVAL,
		      "parse_size(\"%s\") accepted or not -EINVAL", bad[i]);
	CHECK_INT(parse_size("100000000000G", &v), -ERANGE);
	return true;
}

TEST(util_parse_u64)
{
	uint64_t v = 0;

	CHECK_INT(parse_u64("123", 0, 1000, &v), 0);
	CHECK_U64(v, 123);
	CHECK_INT(parse_u64("1000", 0, 1000, &v), 0);
	CHECK_U64(v, 1000);
	CHECK_INT(parse_u64("10", 10, 10, &v), 0);
	CHECK_U64(v, 10);
	CHECK_INT(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	CHECK_U64(v, UINT64_MAX);

	v = 7;
	CHECK_INT(parse_u64("1001", 0, 1000, &v), -ERANGE);
	CHECK_INT(parse_u64("9", 10, 1000, &v), -ERANGE);
	CHECK_INT(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	CHECK_INT(parse_u64("", 0, 1000, &v), -EINVAL);
	CHECK_INT(parse_u64("12a", 0, 1000, &v), -EINVAL);
	CHECK_INT(parse_u64("-1", 0, 1000, &v), -EINVAL);
	CHECK_INT(parse_u64("+1", 0, 1000, &v), -EINVAL);
	CHECK_INT(parse_u64(" 1", 0, 1000, &v), -EINVAL);
	CHECK_INT(parse_u64("1 ", 0, 1000, &v), -EINVAL);
	CHECK_INT(parse_u64("1.0", 0, 1000, &v), -EINVAL);
	CHECK_INT(parse_u64("0x10", 0, 1000, &v), -EINVAL);
	CHECK_U64(v, 7);
	return true;
}

TEST(util_fmt_bytes)
{
	static const struct {
		double b;
		const char *s;
	} cases[] = {
		{ 0, "0 B" },
		{ 312, "312 B" },
		{ 1023, "1023 B" },
		{ 1024, "1.00 KiB" },
		{ 1536, "1.50 KiB" },
		{ 1.5 * 1024 * 1024, "1.50 MiB" },
		{ 3.0 * 1024 * 1024 * 1024, "3.00 GiB" },
		{ 2.0 * 1024 * 1024 * 1024 * 1024, "2.00 TiB" },
		{ 4096.0 * 1024 * 1024 * 1024 * 1024, "4096.00 TiB" },
		{ -2048, "-2.00 KiB" },
	};
	char buf[32];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK_STR(fmt_bytes(cases[i].b, buf, sizeof(buf)), cases[i].s);
	return true;
}

/* ---- hashmap.h ------------------------------------------------------------------------------ */

TEST(hashmap_put_get_replace)
{
	struct hashmap *h = hashmap__new();
	uint64_t v = 99;

	CHECK_U64(hashmap__size(h), 0);
	CHECK(!hashmap__get(h, "one", 3, &v), "found a key in an empty map");
	CHECK_U64(v, 99);
	hashmap__put(h, "one", 3, 1);
	hashmap__put(h, "two", 3, 2);
	CHECK_U64(hashmap__size(h), 2);
	CHECK(hashmap__get(h, "one", 3, &v), "\"one\" missing");
	CHECK_U64(v, 1);
	CHECK(hashmap__get(h, "two", 3, &v), "\"two\" missing");
	CHECK_U64(v, 2);
	hashmap__put(h, "one", 3, UINT64_MAX);
	CHECK_U64(hashmap__size(h), 2);
	CHECK(hashmap__get(h, "one", 3, &v), "\"one\" missing after replace");
	CHECK_U64(v, UINT64_MAX);
	CHECK(!hashmap__get(h, "three", 5, &v), "found \"three\"");
	/* The key is copied in: changing the caller's buffer changes nothing. */
	{
		char key[] = "mutable";

		hashmap__put(h, key, sizeof(key), 5);
		key[0] = 'M';
		CHECK(!hashmap__get(h, key, sizeof(key), &v), "found the changed key");
		CHECK(hashmap__get(h, "mutable", sizeof(key), &v), "original key lost");
		CHECK_U64(v, 5);
	}
	CHECK_U64(hash_bytes("abc", 3), hash_bytes("abc", 3));
	CHECK(hash_bytes("abc", 3) != hash_bytes("abd", 3), "hash ignores the last byte");
	hashmap__free(h);
	return true;
}

TEST(hashmap_rehash)
{
	struct hashmap *h = hashmap__new();
	enum { N = 100000 };
	char key[32];
	uint64_t v;

	for (uint64_t i = 0; i < N; i++) {
		int len = snprintf(key, sizeof(key), "key-%" PRIu64, i);

		hashmap__put(h, key, (size_t)len, i * 3);
	}
	CHECK_U64(hashmap__size(h), N);
	for (uint64_t i = 0; i < N; i++) {
		int len = snprintf(key, sizeof(key), "key-%" PRIu64, i);

		CHECK(hashmap__get(h, key, (size_t)len, &v), "%s missing", key);
		CHECK(v == i * 3, "%s = %" PRIu64 ", expected %" PRIu64, key, v, i * 3);
	}
	/* Replacing every other key changes values, not the size. */
	for (uint64_t i = 0; i < N; i += 2) {
		int len = snprintf(key, sizeof(key), "key-%" PRIu64, i);

		hashmap__put(h, key, (size_t)len, i + 7);
	}
	CHECK_U64(hashmap__size(h), N);
	for (uint64_t i = 0; i < N; i++) {
		int len = snprintf(key, sizeof(key), "key-%" PRIu64, i);
		uint64_t want = i % 2 ? i * 3 : i + 7;

		CHECK(hashmap__get(h, key, (size_t)len, &v), "%s missing", key);
		CHECK(v == want, "%s = %" PRIu64 ", expected %" PRIu64, key, v, want);
	}
	CHECK(!hashmap__get(h, "key-100000", 10, &v), "found key-100000");
	hashmap__free(h);
	return true;
}

TEST(hashmap_prefix_keys)
{
	struct hashmap *h = hashmap__new();
	char buf[128];
	uint64_t v;

	/* "", "x", "xx", ... : every key is a prefix of the next. */
	memset(buf, 'x', sizeof(buf));
	for (size_t len = 0; len <= sizeof(buf); len++)
		hashmap__put(h, buf, len, 1000 + len);
	/* "abc" and "abc\0" differ by their length only. */
	hashmap__put(h, "abc", 3, 3);
	hashmap__put(h, "abc", 4, 4);
	CHECK_U64(hashmap__size(h), sizeof(buf) + 1 + 2);
	for (size_t len = 0; len <= sizeof(buf); len++) {
		CHECK(hashmap__get(h, buf, len, &v), "key of %zu 'x' missing", len);
		CHECK(v == 1000 + len, "key of %zu 'x' = %" PRIu64, len, v);
	}
	CHECK(hashmap__get(h, "abc", 3, &v), "\"abc\" missing");
	CHECK_U64(v, 3);
	CHECK(hashmap__get(h, "abc", 4, &v), "\"abc\\0\" missing");
	CHECK_U64(v, 4);
	CHECK(!hashmap__get(h, "ab", 2, &v), "found \"ab\"");
	CHECK(!hashmap__get(h, "xxy", 3, &v), "found \"xxy\"");
	hashmap__free(h);
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(util_parse_duration),
	T(util_parse_size),
	T(util_parse_u64),
	T(util_fmt_bytes),
	T(hashmap_put_get_replace),
	T(hashmap_rehash),
	T(hashmap_prefix_keys),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
