/*
 * Unit tests of /proc/PID/maps and the small /proc/PID readers. One line per test, "PASS <name>" or
 * "FAIL <name>: <reason>", then "N passed, N failed" (tests/unit/check.h); each test gets a fresh
 * scratch directory.
 */
#include "procmaps.h"
#include "util.h"

#include "fixtures.h"

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

/* clang-format off */
static const struct unit_test tests[] = {
	T(procmaps_parse),
	T(procmaps_find),
	T(procmaps_is_file),
	T(procmaps_read_self),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
