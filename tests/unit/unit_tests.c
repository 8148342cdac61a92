/*
 * Unit tests of the pure userspace modules: parsing helpers, the hash table, /proc/PID/maps,
 * the sampling tables, ELF reading, the profile builder and pprof codec, the atomic output
 * file and `allocprof top`.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed. A test stops at its first failed check.
 * Each test gets a fresh scratch directory under /tmp, removed after it ran.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "allocprof.h"
#include "elffile.h"
#include "hashmap.h"
#include "outfile.h"
#include "pprof.h"
#include "procmaps.h"
#include "profile.h"
#include "sampling.h"
#include "top.h"
#include "util.h"

#include "check.h"

/* ---- small helpers -------------------------------------------------------------------------- */

static bool write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "we");

	CHECK(f, "fopen(%s): %s", path, strerror(errno));
	CHECK(fwrite(data, 1, len, f) == len, "write %s", path);
	CHECK(!fclose(f), "close %s", path);
	return true;
}

/* The whole file, NUL-terminated, in a malloc'd buffer. */
static bool slurp(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "re");
	char chunk[4096];
	size_t n;
	FILE *mem;

	CHECK(f, "fopen(%s): %s", path, strerror(errno));
	mem = open_memstream(buf, len);
	CHECK(mem, "open_memstream");
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, mem);
	fclose(f);
	fclose(mem);
	return true;
}

static bool file_is(const char *path, const char *content)
{
	char *buf = NULL;
	size_t len = 0;
	bool same;

	TRY(slurp(path, &buf, &len));
	same = len == strlen(content) && !memcmp(buf, content, len);
	CHECK(same, "%s holds \"%.*s\", expected \"%s\"", path, (int)len, buf, content);
	free(buf);
	return true;
}

/* Names in `dir` other than "." and "..", joined by spaces, sorted. */
static void list_dir(const char *dir, char *out, size_t len)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;

		if (strcmp(name, ".") && strcmp(name, ".."))
			snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? " " : "",
				 name);
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
}

/* A descriptor of this process open on a file under `dir` (deleted or not), or -1. */
static int fd_under(const char *dir, char *target, size_t len)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int found = -1;

	if (!d)
		return -1;
	while (found < 0 && (de = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), de->d_name, target, len - 1);

		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strncmp(target, dir, strlen(dir)) && target[strlen(dir)] == '/')
			found = atoi(de->d_name);
	}
	closedir(d);
	return found;
}

/* Addresses of this program's own code and data, for the procmaps and ELF tests. */
__attribute__((noinline, noclone)) void unit_marker_fn(void);
__attribute__((noinline, noclone)) void unit_marker_fn(void)
{
	__asm__ volatile("" ::: "memory");
}

int unit_marker_data = 42;

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

/* ---- procmaps.h ----------------------------------------------------------------------------- */

/* Padding as the kernel's, shortened; the parser takes any run of blanks. */
static const char maps_text[] =
	"55d0c0a00000-55d0c0a28000 r--p 00000000 08:02 1311234          /usr/bin/my prog\n"
	"55d0c0a28000-55d0c0b00000 r-xp 00028000 08:02 1311234          /usr/bin/my prog\n"
	"55d0c0c00000-55d0c0c21000 rw-p 00000000 00:00 0                [heap]\n"
	"7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 \n"
	"7f1c2b000000-7f1c2b002000 r-xp 00001000 103:0a 42              /tmp/lib.so (deleted)\n"
	"7f1c2c000000-7f1c2c001000 ---p 00000000 00:00 0\n"
	"7ffd1e9f0000-7ffd1e9f2000 r-xp 00000000 00:00 0                [vdso]\n";

TEST(procmaps_parse)
{
	static const struct map_entry want[] = {
		{ 0x55d0c0a00000, 0x55d0c0a28000, 0, 8 << 20 | 2, 1311234, false,
		  "/usr/bin/my prog" },
		{ 0x55d0c0a28000, 0x55d0c0b00000, 0x28000, 8 << 20 | 2, 1311234, true,
		  "/usr/bin/my prog" },
		{ 0x55d0c0c00000, 0x55d0c0c21000, 0, 0, 0, false, "[heap]" },
		{ 0x7f1c2a000000, 0x7f1c2a021000, 0, 0, 0, false, NULL },
		{ 0x7f1c2b000000, 0x7f1c2b002000, 0x1000, 0x103 << 20 | 0xa, 42, true,
		  "/tmp/lib.so (deleted)" },
		{ 0x7f1c2c000000, 0x7f1c2c001000, 0, 0, 0, false, NULL },
		{ 0x7ffd1e9f0000, 0x7ffd1e9f2000, 0, 0, 0, true, "[vdso]" },
	};
	struct proc_maps m;

	CHECK_INT(proc_maps__parse(maps_text, &m), 0);
	CHECK_U64(m.n, ARRAY_SIZE(want));
	for (size_t i = 0; i < m.n; i++) {
		const struct map_entry *e = &m.e[i], *w = &want[i];

		CHECK_U64(e->start, w->start);
		CHECK_U64(e->end, w->end);
		CHECK_U64(e->pgoff, w->pgoff);
		CHECK_U64(e->dev, w->dev);
		CHECK_U64(e->ino, w->ino);
		CHECK(e->exec == w->exec, "entry %zu: exec %d", i, e->exec);
		if (w->path)
			CHECK_STR(e->path, w->path);
		else
			CHECK(!e->path, "entry %zu: path \"%s\" for an anonymous mapping", i,
			      e->path);
	}
	proc_maps__free(&m);
	CHECK(!m.e && !m.n, "proc_maps__free leaves %zu entries", m.n);

	CHECK_INT(proc_maps__parse("", &m), 0);
	CHECK_U64(m.n, 0);
	proc_maps__free(&m);
	CHECK_INT(proc_maps__parse("not a maps line\n", &m), -EINVAL);
	/* A bad line anywhere fails the whole parse. */
	CHECK_INT(proc_maps__parse("00400000-00401000 r-xp 00000000 08:02 17 /x\nbad\n", &m),
		  -EINVAL);
	return true;
}

TEST(procmaps_find)
{
	struct proc_maps m;
	const struct map_entry *e;

	CHECK_INT(proc_maps__parse(maps_text, &m), 0);
	CHECK(!proc_maps__find(&m, 0), "found address 0");
	CHECK(!proc_maps__find(&m, 0x55d0c0a00000 - 1), "found below the first mapping");
	e = proc_maps__find(&m, 0x55d0c0a00000);
	CHECK(e == &m.e[0], "start of the first mapping: entry %td", e ? e - m.e : -1);
	e = proc_maps__find(&m, 0x55d0c0a27fff);
	CHECK(e == &m.e[0], "last byte of the first mapping: entry %td", e ? e - m.e : -1);
	/* Adjacent mappings: the end is exclusive, so it is the next one's start. */
	e = proc_maps__find(&m, 0x55d0c0a28000);
	CHECK(e == &m.e[1], "end of the first mapping: entry %td", e ? e - m.e : -1);
	CHECK(!proc_maps__find(&m, 0x55d0c0b00000), "found the end of the second mapping (a gap)");
	CHECK(!proc_maps__find(&m, 0x55d0c0bfffff), "found the last byte of a gap");
	e = proc_maps__find(&m, 0x55d0c0c00000);
	CHECK(e == &m.e[2], "start after a gap: entry %td", e ? e - m.e : -1);
	e = proc_maps__find(&m, 0x7f1c2b001234);
	CHECK(e == &m.e[4], "middle of the deleted file: entry %td", e ? e - m.e : -1);
	e = proc_maps__find(&m, 0x7ffd1e9f1fff);
	CHECK(e == &m.e[6], "last byte of the last mapping: entry %td", e ? e - m.e : -1);
	CHECK(!proc_maps__find(&m, 0x7ffd1e9f2000), "found the end of the last mapping");
	CHECK(!proc_maps__find(&m, UINT64_MAX), "found UINT64_MAX");
	proc_maps__free(&m);
	CHECK(!proc_maps__find(&m, 0x55d0c0a00000), "found an address in an empty snapshot");
	return true;
}

TEST(procmaps_is_file)
{
	static const bool want[] = { true, true, false, false, false, false, false };
	struct proc_maps m;

	CHECK_INT(proc_maps__parse(maps_text, &m), 0);
	CHECK_U64(m.n, ARRAY_SIZE(want));
	for (size_t i = 0; i < m.n; i++)
		CHECK(map_entry__is_file(&m.e[i]) == want[i], "entry %zu (%s): is_file %d", i,
		      m.e[i].path ? m.e[i].path : "anonymous", !want[i]);
	proc_maps__free(&m);
	return true;
}

TEST(procmaps_read_self)
{
	uint64_t fn = (uint64_t)(uintptr_t)&unit_marker_fn;
	uint64_t data = (uint64_t)(uintptr_t)&unit_marker_data;
	const struct map_entry *e;
	char exe[PATH_MAX];
	struct proc_maps m;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	CHECK_INT(proc_maps__read(getpid(), &m), 0);
	CHECK(m.n > 3, "only %zu mappings", m.n);
	for (size_t i = 1; i < m.n; i++)
		CHECK(m.e[i - 1].start < m.e[i].start, "entries %zu and %zu out of order", i - 1,
		      i);
	e = proc_maps__find(&m, fn);
	CHECK(e, "no mapping holds unit_marker_fn at %#" PRIx64, fn);
	CHECK(e->exec, "the mapping of unit_marker_fn is not executable");
	CHECK_STR(e->path, exe);
	CHECK(map_entry__is_file(e), "the mapping of unit_marker_fn is not a file");
	e = proc_maps__find(&m, data);
	CHECK(e, "no mapping holds unit_marker_data at %#" PRIx64, data);
	CHECK(!e->exec, "the mapping of unit_marker_data is executable");
	CHECK_STR(e->path, exe);
	proc_maps__free(&m);

	CHECK_INT(proc_maps__read(INT_MAX, &m), -ENOENT);
	return true;
}

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

/* ---- elffile.h ------------------------------------------------------------------------------ */

#define LIBC "/usr/lib/x86_64-linux-gnu/libc.so.6"
#define LDSO "/lib64/ld-linux-x86-64.so.2"

static bool is_lower_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

TEST(elffile_libc)
{
	struct elf_file *ef = elf_file__open(LIBC);
	struct elf_sym s, s2;
	uint64_t off, vaddr;

	CHECK(ef, "elf_file__open(" LIBC "): %s", strerror(errno));
	CHECK(elf_file__is_dyn(ef), "libc is not ET_DYN");
	CHECK_INT(elf_file__lookup(ef, "malloc", &s), 0);
	CHECK(s.dynamic, "malloc not from .dynsym");
	CHECK(!s.object, "malloc is an object");
	CHECK(!s.ifunc, "malloc is an ifunc");
	CHECK(s.size > 0, "malloc has size 0");
	CHECK(s.vaddr > 0, "malloc at 0");

	CHECK_INT(elf_file__lookup(ef, "memalign", &s), 0);
	CHECK_INT(elf_file__lookup(ef, "aligned_alloc", &s2), 0);
	CHECK_U64(s2.vaddr, s.vaddr);
	/* memcpy@@GLIBC_2.14 (an ifunc) is the default; memcpy@GLIBC_2.2.5 is a plain function. */
	CHECK_INT(elf_file__lookup(ef, "memcpy", &s), 0);
	CHECK(s.ifunc, "memcpy: found the old version, not the default one");
	CHECK_INT(elf_file__lookup(ef, "no_such_function_anywhere", &s), -ENOENT);
	CHECK_INT(elf_file__lookup(ef, "", &s), -ENOENT);

	CHECK_INT(elf_file__lookup(ef, "malloc", &s), 0);
	CHECK_INT(elf_file__vaddr_to_offset(ef, s.vaddr, &off), 0);
	CHECK_INT(elf_file__offset_to_vaddr(ef, off, &vaddr), 0);
	CHECK_U64(vaddr, s.vaddr);
	CHECK_INT(elf_file__vaddr_to_offset(ef, UINT64_MAX / 2, &off), -ENOENT);
	CHECK_INT(elf_file__offset_to_vaddr(ef, UINT64_MAX / 2, &vaddr), -ENOENT);
	CHECK(is_lower_hex(elf_file__build_id(ef), 40), "build-id \"%s\"", elf_file__build_id(ef));
	elf_file__free(ef);
	return true;
}

TEST(elffile_ld_so)
{
	struct elf_file *ef = elf_file__open(LDSO);
	struct elf_sym s;

	CHECK(ef, "elf_file__open(" LDSO "): %s", strerror(errno));
	CHECK_INT(elf_file__lookup(ef, "_r_debug", &s), 0);
	CHECK(s.object, "_r_debug is not an object");
	CHECK(s.dynamic, "_r_debug not from .dynsym");
	CHECK(s.size > 0, "_r_debug has size 0");
	CHECK(is_lower_hex(elf_file__build_id(ef), 40), "build-id \"%s\"", elf_file__build_id(ef));
	elf_file__free(ef);
	return true;
}

/*
 * This program: its interpreter, its own static symbols from .symtab, and file offsets that
 * agree with where the kernel mapped them.
 */
TEST(elffile_self)
{
	uint64_t fn = (uint64_t)(uintptr_t)&unit_marker_fn;
	uint64_t data = (uint64_t)(uintptr_t)&unit_marker_data;
	struct elf_sym sf, sd;
	const struct map_entry *e;
	struct elf_file *ef;
	struct proc_maps m;
	uint64_t off, vaddr;

	ef = elf_file__open("/proc/self/exe");
	CHECK(ef, "elf_file__open(/proc/self/exe): %s", strerror(errno));
	CHECK_STR(elf_file__interp(ef), LDSO);
	CHECK_INT(elf_file__lookup(ef, "unit_marker_fn", &sf), 0);
	CHECK(!sf.object && !sf.ifunc, "unit_marker_fn: object %d ifunc %d", sf.object, sf.ifunc);
	CHECK_INT(elf_file__lookup(ef, "unit_marker_data", &sd), 0);
	CHECK(sd.object, "unit_marker_data is not an object");
	CHECK_U64(sd.size, sizeof(unit_marker_data));
	/* One load bias for code and data. */
	CHECK_U64(data - sd.vaddr, fn - sf.vaddr);

	CHECK_INT(proc_maps__read(getpid(), &m), 0);
	e = proc_maps__find(&m, fn);
	CHECK(e, "no mapping holds unit_marker_fn");
	CHECK_INT(elf_file__vaddr_to_offset(ef, sf.vaddr, &off), 0);
	CHECK_U64(off, fn - e->start + e->pgoff);
	CHECK_INT(elf_file__offset_to_vaddr(ef, off, &vaddr), 0);
	CHECK_U64(vaddr, sf.vaddr);
	e = proc_maps__find(&m, data);
	CHECK(e, "no mapping holds unit_marker_data");
	CHECK_INT(elf_file__vaddr_to_offset(ef, sd.vaddr, &off), 0);
	CHECK_U64(off, data - e->start + e->pgoff);
	CHECK_INT(elf_file__offset_to_vaddr(ef, off, &vaddr), 0);
	CHECK_U64(vaddr, sd.vaddr);
	proc_maps__free(&m);
	elf_file__free(ef);
	return true;
}

TEST(elffile_errors)
{
	char path[PATH_MAX];
	struct elf_file *ef;

	snprintf(path, sizeof(path), "%s/hostname", tmp);
	TRY(write_file(path, "myhost\n", 7));
	errno = 0;
	ef = elf_file__open(path);
	CHECK(!ef && errno == ENOEXEC, "text file: %p, errno %d (%s)", (void *)ef, errno,
	      strerror(errno));
	snprintf(path, sizeof(path), "%s/empty", tmp);
	TRY(write_file(path, "", 0));
	errno = 0;
	ef = elf_file__open(path);
	CHECK(!ef && errno == ENOEXEC, "empty file: %p, errno %d (%s)", (void *)ef, errno,
	      strerror(errno));
	snprintf(path, sizeof(path), "%s/missing", tmp);
	errno = 0;
	ef = elf_file__open(path);
	CHECK(!ef && errno == ENOENT, "missing file: %p, errno %d (%s)", (void *)ef, errno,
	      strerror(errno));
	return true;
}

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

/* ---- outfile.h ------------------------------------------------------------------------------ */

TEST(outfile_commit)
{
	char path[PATH_MAX], names[1024], want[1024];
	struct out_file *f;
	struct stat st;
	mode_t mask;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	CHECK_INT(out_file__open(path, &f), 0);
	CHECK_STR(out_file__path(f), path);
	CHECK(access(path, F_OK) && errno == ENOENT, "the destination exists before commit");
	/* Unnamed until it is complete (O_TMPFILE; the test directory's filesystem has it). */
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "");
	CHECK_INT(out_file__commit(f, "profile data", 12), 0);
	TRY(file_is(path, "profile data"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");
	mask = umask(0);
	umask(mask);
	CHECK(!stat(path, &st), "stat %s", path);
	CHECK_INT(st.st_mode & 0777, 0600); /* private, whatever the umask */

	/* An empty commit is an empty file, not a missing one. */
	snprintf(path, sizeof(path), "%s/empty", tmp);
	CHECK_INT(out_file__open(path, &f), 0);
	CHECK_INT(out_file__commit(f, NULL, 0), 0);
	TRY(file_is(path, ""));
	snprintf(want, sizeof(want), "empty out.pb.gz");
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, want);
	return true;
}

TEST(outfile_abort)
{
	char path[PATH_MAX], names[1024];
	struct out_file *f;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	CHECK_INT(out_file__open(path, &f), 0);
	out_file__abort(f);
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "");
	out_file__abort(NULL);
	return true;
}

TEST(outfile_errors)
{
	char path[PATH_MAX], names[1024];
	struct out_file *f = NULL;

	snprintf(path, sizeof(path), "%s/no/such/dir/out.pb.gz", tmp);
	CHECK_INT(out_file__open(path, &f), -ENOENT);
	CHECK_INT(out_file__open(tmp, &f), -EISDIR);
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "");
	return true;
}

TEST(outfile_replace)
{
	char path[PATH_MAX], names[1024];
	struct out_file *f;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	TRY(write_file(path, "old profile", 11));
	CHECK_INT(out_file__open(path, &f), 0);
	TRY(file_is(path, "old profile"));
	CHECK_INT(out_file__commit(f, "new", 3), 0);
	TRY(file_is(path, "new"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");

	/* An abort leaves the old file as it was. */
	CHECK_INT(out_file__open(path, &f), 0);
	out_file__abort(f);
	TRY(file_is(path, "new"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");
	return true;
}

/*
 * A commit whose write fails (here: the file size limit) returns the error, removes the
 * temporary file, keeps the old destination, and leaks no descriptor.
 */
TEST(outfile_commit_error)
{
	char path[PATH_MAX], names[1024], target[PATH_MAX], data[16384];
	struct rlimit old, lim;
	struct out_file *f;
	void (*old_handler)(int);
	int fd, err;

	snprintf(path, sizeof(path), "%s/out.pb.gz", tmp);
	TRY(write_file(path, "old", 3));
	memset(data, 'p', sizeof(data));
	CHECK_INT(out_file__open(path, &f), 0);
	CHECK(!getrlimit(RLIMIT_FSIZE, &old), "getrlimit");
	lim = old;
	lim.rlim_cur = 4096;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	CHECK(!setrlimit(RLIMIT_FSIZE, &lim), "setrlimit");
	err = out_file__commit(f, data, sizeof(data));
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_handler);
	CHECK_INT(err, -EFBIG);
	TRY(file_is(path, "old"));
	list_dir(tmp, names, sizeof(names));
	CHECK_STR(names, "out.pb.gz");
	fd = fd_under(tmp, target, sizeof(target));
	CHECK(fd < 0, "descriptor %d still open on \"%s\" after the failed commit", fd, target);
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

/* ---- main ----------------------------------------------------------------------------------- */

/* clang-format off */
static const struct unit_test tests[] = {
	T(util_parse_duration),
	T(util_parse_size),
	T(util_parse_u64),
	T(util_fmt_bytes),
	T(hashmap_put_get_replace),
	T(hashmap_rehash),
	T(hashmap_prefix_keys),
	T(procmaps_parse),
	T(procmaps_find),
	T(procmaps_is_file),
	T(procmaps_read_self),
	T(sampling_exp_table),
	T(sampling_weight_table),
	T(sampling_weight),
	T(elffile_libc),
	T(elffile_ld_so),
	T(elffile_self),
	T(elffile_errors),
	T(profile_pprof_roundtrip),
	T(profile_set_main),
	T(pprof_read_rejects),
	T(outfile_commit),
	T(outfile_abort),
	T(outfile_errors),
	T(outfile_replace),
	T(outfile_commit_error),
	T(top_sample_index),
	T(top_print),
	T(top_print_recursion_inline),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
