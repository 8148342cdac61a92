/*
 * Unit tests of allocator resolution (user/allocator.c) over the dynamic linker's own load
 * orders (load_order__list in user/linkmap.c, which asks `ld.so --list` and runs none of the
 * program's code), on the test targets next to this binary in build/tests: which object
 * defines malloc, free and operator new, for a C program, a C++ one, a static one, one without
 * any allocator, and with an allocator preloaded through the environment. Needs no root.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allocator.h"
#include "elffile.h"
#include "linkmap.h"
#include "util.h"

#include "check.h"

#define JEMALLOC "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

static const struct placement default_placement = { .return_probes = true };

/* build/tests/NAME, beside this binary, into buf; fails when it is not built. */
static bool target(const char *name, char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	snprintf(buf, len, "%s/%s", dirname(self), name);
	CHECK(!access(buf, R_OK), "%s: %s (make build/tests/%s)", buf, strerror(errno), name);
	return true;
}

/* The file name alone: "/usr/lib/x86_64-linux-gnu/libc.so.6" is "libc.so.6". */
static const char *base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/*
 * What the dynamic linker will load for `image`, as allocprof asks before starting a command:
 * its PT_INTERP's `--list`, or the file alone when it is static.
 */
static bool load_order(const char *image, bool secure, struct load_order *lo)
{
	struct elf_file *ef = elf_file__open(image);
	char *interp;
	int err;

	CHECK(ef, "cannot read %s: %s", image, strerror(errno));
	interp = elf_file__interp(ef) ? xstrdup(elf_file__interp(ef)) : NULL;
	elf_file__free(ef);
	err = interp ? load_order__list(interp, image, secure, lo) : load_order__file(image, lo);
	free(interp);
	CHECK(!err, "load order of %s: %s", image, strerror(-err));
	CHECK(lo->n > 0, "load order of %s is empty", image);
	return true;
}

/* The plan's site for the function named `fn`, or NULL when it has none. */
static const struct probe_site *site_of(const struct alloc_plan *p, const char *fn)
{
	for (size_t i = 0; i < p->nsites; i++)
		if (!strcmp(alloc_fns[p->sites[i].fn].name, fn))
			return &p->sites[i];
	return NULL;
}

/* `fn` is probed in the object whose file name starts with `lib`. */
static bool defined_in(const struct alloc_plan *p, const char *fn, const char *lib)
{
	const struct probe_site *s = site_of(p, fn);
	const char *path;

	CHECK(s, "no probe site for %s", fn);
	CHECK(s->lib < p->nlibs, "%s: lib %u of %zu", fn, s->lib, p->nlibs);
	path = p->libs[s->lib].path;
	CHECK(!strncmp(base(path), lib, strlen(lib)), "%s is probed in %s, expected %s...", fn,
	      path, lib);
	return true;
}

/* What holds for every plan: malloc's object is named, sites lie inside their functions. */
static bool plan_is_sound(const struct alloc_plan *p)
{
	const struct probe_site *m = site_of(p, "malloc");

	CHECK(p->malloc_lib >= 0 && (size_t)p->malloc_lib < p->nlibs, "malloc_lib %d of %zu",
	      p->malloc_lib, p->nlibs);
	CHECK(m, "no probe site for malloc");
	CHECK_INT(m->lib, p->malloc_lib);
	CHECK(!m->wrapper, "malloc is marked as a wrapper");
	CHECK(!p->unsure, "an unreadable object before malloc's: %s", p->unsure);
	for (size_t i = 0; i < p->nsites; i++) {
		const struct probe_site *s = &p->sites[i];

		CHECK(s->fn < alloc_fns_nr && s->lib < p->nlibs, "site %zu: fn %u, lib %u", i,
		      s->fn, s->lib);
		CHECK(s->past_entry < s->size, "%s: site +%llu past its size %llu",
		      alloc_fns[s->fn].name, (unsigned long long)s->past_entry,
		      (unsigned long long)s->size);
		CHECK(s->offset, "%s: file offset 0", alloc_fns[s->fn].name);
	}
	return true;
}

/* The plan for `name` from its load order, with `LD_PRELOAD=preload` when not NULL. */
static bool plan_for(const char *name, const char *preload, bool secure, const struct placement *pl,
		     struct alloc_plan *p)
{
	char image[PATH_MAX];
	struct load_order lo;
	bool listed;
	int err;

	TRY(target(name, image, sizeof(image)));
	if (preload)
		setenv("LD_PRELOAD", preload, 1);
	listed = load_order(image, secure, &lo);
	unsetenv("LD_PRELOAD");
	if (!listed)
		return false;
	err = alloc_plan__resolve(&lo, pl, p);
	load_order__free(&lo);
	CHECK(!err, "alloc_plan__resolve(%s): %s", name, strerror(-err));
	TRY(plan_is_sound(p));
	return true;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* The linker's listing starts with the program, then what it preloads, then what it needs. */
TEST(load_order_from_the_linker)
{
	char image[PATH_MAX], *real;
	struct load_order lo;
	bool libc = false, listed;

	TRY(target("sites", image, sizeof(image)));
	TRY(load_order(image, false, &lo));
	real = realpath(image, NULL);
	CHECK(real && !strcmp(lo.o[0].path, real), "first object %s, expected %s", lo.o[0].path,
	      real ? real : image);
	free(real);
	for (size_t i = 0; i < lo.n; i++)
		libc |= !strcmp(base(lo.o[i].path), "libc.so.6");
	CHECK(libc, "no libc.so.6 among %zu objects", lo.n);
	CHECK(lo.rtld_path, "no dynamic linker named");
	load_order__free(&lo);

	setenv("LD_PRELOAD", JEMALLOC, 1);
	listed = load_order(image, false, &lo);
	unsetenv("LD_PRELOAD");
	if (!listed)
		return false;
	CHECK(lo.n > 1, "%zu objects", lo.n);
	CHECK_STR(base(lo.o[1].path), "libjemalloc.so.2");
	load_order__free(&lo);
	return true;
}

TEST(c_program_uses_libc)
{
	struct alloc_plan p;

	TRY(plan_for("sites", NULL, false, &default_placement, &p));
	CHECK_STR(base(p.libs[p.malloc_lib].path), "libc.so.6");
	TRY(defined_in(&p, "malloc", "libc.so"));
	TRY(defined_in(&p, "free", "libc.so"));
	TRY(defined_in(&p, "calloc", "libc.so"));
	TRY(defined_in(&p, "realloc", "libc.so"));
	CHECK(!site_of(&p, "_Znwm"), "operator new probed in a program without libstdc++");
	CHECK(site_of(&p, "calloc")->wrapper, "calloc is not marked as a wrapper");
	alloc_plan__free(&p);
	CHECK_INT(p.malloc_lib, -1);
	CHECK(!p.libs && !p.sites, "alloc_plan__free leaves arrays");
	return true;
}

TEST(cxx_program_new_in_libstdcxx)
{
	struct alloc_plan p;

	TRY(plan_for("cxxsites", NULL, false, &default_placement, &p));
	TRY(defined_in(&p, "malloc", "libc.so"));
	TRY(defined_in(&p, "free", "libc.so"));
	TRY(defined_in(&p, "_Znwm", "libstdc++.so"));
	TRY(defined_in(&p, "_Znam", "libstdc++.so"));
	/* libstdc++'s operator delete calls free, which is probed: a second trap for nothing. */
	CHECK(!site_of(&p, "_ZdlPv"), "libstdc++'s operator delete is probed");
	CHECK(site_of(&p, "_Znwm")->wrapper, "libstdc++'s operator new calls malloc");
	alloc_plan__free(&p);
	return true;
}

TEST(preloaded_allocator)
{
	struct alloc_plan p;

	TRY(plan_for("sites", JEMALLOC, false, &default_placement, &p));
	CHECK_STR(base(p.libs[p.malloc_lib].path), "libjemalloc.so.2");
	TRY(defined_in(&p, "malloc", "libjemalloc.so"));
	TRY(defined_in(&p, "free", "libjemalloc.so"));
	TRY(defined_in(&p, "calloc", "libjemalloc.so"));
	alloc_plan__free(&p);

	/* Before libstdc++ in load order, the allocator's own operator new and delete bind. */
	TRY(plan_for("cxxsites", JEMALLOC, false, &default_placement, &p));
	TRY(defined_in(&p, "malloc", "libjemalloc.so"));
	TRY(defined_in(&p, "free", "libjemalloc.so"));
	TRY(defined_in(&p, "_Znwm", "libjemalloc.so"));
	TRY(defined_in(&p, "_ZdlPv", "libjemalloc.so"));
	CHECK(!site_of(&p, "_Znwm")->wrapper, "the allocator's own operator new is a hot path");
	alloc_plan__free(&p);
	return true;
}

/* A program in secure-execution mode: its linker ignores LD_PRELOAD, and so does the plan. */
TEST(secure_program_ignores_preload)
{
	struct alloc_plan p;

	TRY(plan_for("sites", JEMALLOC, true, &default_placement, &p));
	TRY(defined_in(&p, "malloc", "libc.so"));
	TRY(defined_in(&p, "free", "libc.so"));
	alloc_plan__free(&p);
	return true;
}

TEST(static_program_uses_its_own)
{
	char image[PATH_MAX], *real;
	struct alloc_plan p;

	TRY(target("sites-static", image, sizeof(image)));
	TRY(plan_for("sites-static", NULL, false, &default_placement, &p));
	real = realpath(image, NULL);
	CHECK_INT(p.malloc_lib, 0);
	CHECK(real && !strcmp(p.libs[0].path, real), "malloc in %s, expected %s",
	      p.libs[p.malloc_lib].path, real ? real : image);
	free(real);
	CHECK_INT(p.nlibs, 1);
	CHECK_INT(site_of(&p, "free")->lib, 0);
	alloc_plan__free(&p);
	return true;
}

TEST(no_allocator)
{
	char image[PATH_MAX];
	struct load_order lo;
	struct alloc_plan p;

	TRY(target("nomalloc", image, sizeof(image)));
	TRY(load_order(image, false, &lo));
	CHECK_INT(alloc_plan__resolve(&lo, &default_placement, &p), -ENOENT);
	load_order__free(&lo);
	CHECK_INT(p.malloc_lib, -1);
	CHECK(!p.nlibs && !p.nsites && !p.libs && !p.sites, "a plan left after -ENOENT");
	return true;
}

/* --probe-at-entry puts every site at its function's first byte; the default may not. */
TEST(placement_at_entry)
{
	static const struct placement at_entry = { .at_entry = true, .return_probes = true };
	struct alloc_plan p, q;

	TRY(plan_for("cxxsites", NULL, false, &at_entry, &p));
	for (size_t i = 0; i < p.nsites; i++)
		CHECK(p.sites[i].past_entry == 0, "%s at +%llu with at_entry",
		      alloc_fns[p.sites[i].fn].name, (unsigned long long)p.sites[i].past_entry);
	TRY(plan_for("cxxsites", NULL, false, &default_placement, &q));
	/* The same functions in the same objects either way: only where in them differs. */
	CHECK_INT(q.nsites, p.nsites);
	for (size_t i = 0; i < p.nsites; i++) {
		CHECK_INT(q.sites[i].fn, p.sites[i].fn);
		CHECK_U64(q.sites[i].vaddr, p.sites[i].vaddr);
		CHECK_U64(q.sites[i].offset, p.sites[i].offset);
	}
	alloc_plan__free(&p);
	alloc_plan__free(&q);
	return true;
}

/*
 * Operations (--ops) resolve as the program binds them, first definition in load order, local
 * functions of the program included; one not found has no site and no bit in ops_found.
 */
TEST(operations_resolved)
{
	static char *const ops[] = { "handle_request", "strdup", "no_such_function" };
	static const struct placement with_ops = { .return_probes = true, .ops = ops, .nops = 3 };
	const struct probe_site *found[3] = { NULL };
	struct alloc_plan p, q;

	TRY(plan_for("requests", NULL, false, &with_ops, &p));
	CHECK_INT(p.ops_found, 3u);
	for (size_t i = 0; i < p.nsites; i++)
		if (p.sites[i].op) {
			CHECK(p.sites[i].fn < 3 && !found[p.sites[i].fn], "op site %zu: op %u", i,
			      p.sites[i].fn);
			found[p.sites[i].fn] = &p.sites[i];
			CHECK(!p.sites[i].wrapper, "op %u marked as a wrapper", p.sites[i].fn);
		}
	CHECK(found[0] && found[1] && !found[2], "op sites %p %p %p", (void *)found[0],
	      (void *)found[1], (void *)found[2]);
	CHECK_STR(base(p.libs[found[0]->lib].path), "requests");
	CHECK_STR(base(p.libs[found[1]->lib].path), "libc.so.6");
	CHECK_STR(probe_site__name(found[0]), "handle_request");
	/* The allocator's sites are the same with operations or without. */
	TRY(plan_for("requests", NULL, false, &default_placement, &q));
	CHECK_INT(q.nsites + 2, p.nsites);
	CHECK_INT(q.ops_found, 0u);
	alloc_plan__free(&p);
	alloc_plan__free(&q);
	return true;
}

/* ---- main ----------------------------------------------------------------------------------- */

/* clang-format off */
static const struct unit_test tests[] = {
	T(load_order_from_the_linker),
	T(c_program_uses_libc),
	T(cxx_program_new_in_libstdcxx),
	T(preloaded_allocator),
	T(secure_program_ignores_preload),
	T(static_program_uses_its_own),
	T(no_allocator),
	T(placement_at_entry),
	T(operations_resolved),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
