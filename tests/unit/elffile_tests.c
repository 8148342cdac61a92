/*
 * Unit tests of reading ELF files. One line per test, "PASS <name>" or "FAIL <name>: <reason>",
 * then "N passed, N failed" (tests/unit/check.h); each test gets a fresh scratch directory.
 */
#include "elffile.h"
#include "procmaps.h"
#include "util.h"

#include "fixtures.h"

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

/* clang-format off */
static const struct unit_test tests[] = {
	T(elffile_libc),
	T(elffile_ld_so),
	T(elffile_self),
	T(elffile_errors),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
