/* Small shared helpers: diagnostics, number and duration parsing, checked allocation. */
#ifndef ALLOCPROF_UTIL_H
#define ALLOCPROF_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Verbosity: 0 quiet, 1 our details, 2 also libbpf's debug output. Set by option parsing. */
extern int verbose;

/* "allocprof: <message>" on stderr. */
void ap_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ap_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Only with -v. */
void ap_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "500ms", "30s", "2m", "1h", a bare number is seconds. 0 or -EINVAL. */
int parse_duration_ns(const char *s, uint64_t *ns);
/* "4096", "512k", "1M", "1GiB". 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);
/* A whole decimal number in [min, max]. 0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Allocation that cannot fail: out of memory here is not recoverable. */
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A copy of a string from outside (a target's symbol or file name) that is safe to print on a
 * terminal: control characters, C1 controls and bytes that are not UTF-8 as "\x1b"; malloc'd.
 */
char *xstrdup_escaped(const char *s);

/* Grow *arr (of *cap elements of `size`) so that index `need - 1` fits. */
void grow(void **arr, size_t *cap, size_t need, size_t size);
/*
 * Whether two paths name one file ("-" is standard output): the same device and inode when
 * both exist (a character device never: /dev/null twice is harmless), else the same name in
 * the same directory.
 */
bool paths_same_file(const char *a, const char *b);

uint64_t now_ns(void);	    /* CLOCK_MONOTONIC */
uint64_t realtime_ns(void); /* CLOCK_REALTIME */

/* "<host>-<YYYYMMDD>T<HHMMSS>" (short host name, local time) into buf: profiles' names. */
const char *host_stamp(char *buf, size_t len);

/* "1.5 MiB", "312 B" into buf. */
const char *fmt_bytes(double b, char *buf, size_t len);
/*
 * Bytes per operation, where a byte matters (budgets, diffs): whole below 100 KiB ("1804 B",
 * "926.7 B", "0.25 B", "64.06 B"), fmt_bytes above.
 */
const char *fmt_bytes_op(double b, char *buf, size_t len);

#endif
