/*
 * The unit tests' harness: a test is a function returning bool that stops at its first failed
 * check, leaving the reason in fail_msg for the runner to print as "FAIL <name>: <reason>".
 * Knows nothing about what is tested; every test binary includes it once.
 */
#ifndef ALLOCPROF_TESTS_CHECK_H
#define ALLOCPROF_TESTS_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

#endif
