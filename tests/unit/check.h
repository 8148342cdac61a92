/*
 * The unit tests' harness: a test is a function returning bool that stops at its first failed
 * check, leaving the reason in fail_msg for the runner to print as "FAIL <name>: <reason>".
 * Knows nothing about what is tested; every test binary includes it once.
 */
#ifndef ALLOCPROF_TESTS_CHECK_H
#define ALLOCPROF_TESTS_CHECK_H

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char fail_msg[8192];

static void fail_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_at(const char *file, int line, const char *fmt, ...)
{
	int n = snprintf(fail_msg, sizeof(fail_msg), "%s:%d: ", file, line);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fail_msg + n, sizeof(fail_msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Fails the test, which returns false, when `cond` does not hold. */
#define CHECK(cond, fmt, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fail_at(__FILE__, __LINE__, "%s: " fmt, #cond, ##__VA_ARGS__);             \
			return false;                                                              \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fail_at(__FILE__, __LINE__, "%s is %lld, expected %lld", #a, _a, _b);      \
			return false;                                                              \
		}                                                                                  \
	} while (0)

#define CHECK_U64(a, b)                                                                            \
	do {                                                                                       \
		unsigned long long _a = (unsigned long long)(a), _b = (unsigned long long)(b);     \
		if (_a != _b) {                                                                    \
			fail_at(__FILE__, __LINE__, "%s is %llu (%#llx), expected %llu (%#llx)",   \
				#a, _a, _a, _b, _b);                                               \
			return false;                                                              \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || strcmp(_a, _b)) {                                                       \
			fail_at(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", #a,           \
				_a ? _a : "(null)", _b);                                           \
			return false;                                                              \
		}                                                                                  \
	} while (0)

/* Runs a helper that checks things itself; its failure is the caller's. */
#define TRY(call)                                                                                  \
	do {                                                                                       \
		if (!(call))                                                                       \
			return false;                                                              \
	} while (0)

/* Every test gets a scratch directory, unused by most. */
#define TEST(name) static bool test_##name(const char *tmp __attribute__((unused)))

struct unit_test {
	const char *name;
	bool (*fn)(const char *tmp);
};

/* clang-format off */
#define T(name) { #name, test_##name }
/* clang-format on */

static int check_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	nftw(dir, check_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The reason, its continuation lines indented. */
static void print_reason(const char *s)
{
	for (; *s; s++) {
		putchar(*s);
		if (*s == '\n' && s[1])
			fputs("    ", stdout);
	}
	putchar('\n');
}

/*
 * Runs every test, each in a fresh scratch directory under /tmp removed after it: one line
 * "PASS <name>" or "FAIL <name>: <reason>" each, then "N passed, N failed". The exit status
 * for main(): 0 only when nothing failed.
 */
static int run_tests(const struct unit_test *tests, size_t n)
{
	int passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < n; i++) {
		char tmp[] = "/tmp/allocprof-unit.XXXXXX";
		bool ok;

		fail_msg[0] = '\0';
		if (!mkdtemp(tmp)) {
			printf("FAIL %s: mkdtemp: %s\n", tests[i].name, strerror(errno));
			failed++;
			continue;
		}
		ok = tests[i].fn(tmp);
		rm_rf(tmp);
		if (ok) {
			printf("PASS %s\n", tests[i].name);
			passed++;
		} else {
			printf("FAIL %s: ", tests[i].name);
			print_reason(fail_msg[0] ? fail_msg : "failed without a message");
			failed++;
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif
