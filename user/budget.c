/*
 * The budget file's parser (budget.h). Strict on purpose: a budget that silently means
 * something else (a typo in a unit, a size suffix misread) would pass a CI check it should
 * fail, so every line is a budget, a comment or blank, or the whole file is refused.
 */
#include "budget.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Larger files are not budgets someone wrote. */
#define BUDGET_MAX_FILE (16u << 20)

static const char EXPECTED[] = "expected 'FUNCTION N allocs/op' or 'FUNCTION SIZE bytes/op'";

const char *budget_unit(enum budget_kind kind)
{
	return kind == BUDGET_BYTES ? "bytes/op" : "allocs/op";
}

void budgets__free(struct budgets *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->b[i].func);
	free(b->b);
	*b = (struct budgets){ 0 };
}

/* A plain decimal number at the start of s: "2", "2.5", ".5", "2."; its end, NULL if none. */
static const char *decimal(const char *s, double *out)
{
	const char *p = s;
	bool digits = false;
	char *end;

	while (isdigit((unsigned char)*p))
		p++, digits = true;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			digits = true;
	if (!digits)
		return NULL;
	errno = 0;
	*out = strtod(s, &end);
	if (end != p || errno || !isfinite(*out))
		return NULL;
	return p;
}

/* N of allocs/op: a decimal number and nothing after it. */
static bool parse_allocs(const char *s, double *out)
{
	const char *end = decimal(s, out);

	return end && !*end;
}

/* SIZE of bytes/op: a decimal number and a suffix of parse_size's (whose table is reused). */
static bool parse_bytes(const char *s, double *out)
{
	const char *end = decimal(s, out);
	char unit[16];
	uint64_t mul;

	if (!end || strlen(end) > 4)
		return false;
	snprintf(unit, sizeof(unit), "1%s", end);
	if (parse_size(unit, &mul))
		return false;
	*out *= (double)mul;
	return isfinite(*out);
}

/* The line's fields (at most `max`, NUL-terminated in place); how many, or max + 1 if more. */
static size_t fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			return n;
		if (n == max)
			return max + 1;
		f[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (!*p)
			return n;
		*p++ = '\0';
	}
}

static int bad(char *err, size_t len, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int bad(char *err, size_t len, const char *file, int line, const char *fmt, ...)
{
	int at = snprintf(err, len, "%s:%d: ", file, line);
	va_list ap;

	if (at < 0 || (size_t)at >= len)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err + at, len - (size_t)at, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Fields a line may have: a C++ signature's words, the number and the unit. */
#define MAX_FIELDS 64

/* One line (NUL-terminated, no newline): a budget added to `out`, or nothing, or an error. */
static int parse_line(char *line, size_t len, int lineno, const char *file, struct budgets *out,
		      char *err, size_t errlen)
{
	struct budget b = { .line = lineno };
	char *f[MAX_FIELDS], *func;
	size_t n, flen = 0;
	int ret = 0;

	if (strlen(line) != len)
		return bad(err, errlen, file, lineno, "a NUL byte; %s", EXPECTED);
	n = fields(line, f, MAX_FIELDS);
	if (n == 0)
		return 0;
	if (n < 3 || n > MAX_FIELDS)
		return bad(err, errlen, file, lineno, "%s", EXPECTED);
	/* FUNCTION is every field before the last two: a C++ signature has spaces. */
	for (size_t i = 0; i + 2 < n; i++)
		flen += strlen(f[i]) + 1;
	func = xcalloc(1, flen);
	for (size_t i = 0; i + 2 < n; i++) {
		if (i)
			strcat(func, " ");
		strcat(func, f[i]);
	}
	f[1] = f[n - 2];
	f[2] = f[n - 1];
	f[0] = func;
	b.func = func;
	if (!strcmp(f[2], "allocs/op")) {
		b.kind = BUDGET_ALLOCS;
		if (!parse_allocs(f[1], &b.limit))
			ret = bad(err, errlen, file, lineno,
				  "'%s' is not a number of allocations (%s; N such as 3 or 2.5)",
				  f[1], EXPECTED);
	} else if (!strcmp(f[2], "bytes/op")) {
		b.kind = BUDGET_BYTES;
		if (!parse_bytes(f[1], &b.limit))
			ret = bad(err, errlen, file, lineno,
				  "'%s' is not a size (%s; SIZE such as 4096, 1.5k or 2MiB)", f[1],
				  EXPECTED);
	} else {
		ret = bad(err, errlen, file, lineno, "unknown unit '%s'; %s", f[2], EXPECTED);
	}
	for (size_t i = 0; i < out->n && !ret; i++)
		if (out->b[i].kind == b.kind && !strcmp(out->b[i].func, f[0]))
			ret = bad(err, errlen, file, lineno,
				  "a second %s budget for '%s' (the first is on line %d)",
				  budget_unit(b.kind), f[0], out->b[i].line);
	if (ret) {
		free(func);
		return ret;
	}
	out->b = xrealloc(out->b, out->n + 1, sizeof(*out->b));
	out->b[out->n++] = b;
	return 0;
}

int budgets__parse(const char *text, size_t len, const char *file, struct budgets *out, char *err,
		   size_t errlen)
{
	const char *p = text, *end = text + len;
	int lineno = 0, ret = 0;

	*out = (struct budgets){ 0 };
	err[0] = '\0';
	while (p < end && !ret) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line = xcalloc(n + 1, 1);

		memcpy(line, p, n);
		ret = parse_line(line, n, ++lineno, file, out, err, errlen);
		free(line);
		p += n + 1;
	}
	if (!ret && !out->n) {
		snprintf(err, errlen, "%s: no budgets in it (%s)", file, EXPECTED);
		ret = -EINVAL;
	}
	if (ret)
		budgets__free(out);
	return ret;
}

int budgets__read(const char *path, struct budgets *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, got;
	int ret;

	*out = (struct budgets){ 0 };
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-ret));
		return ret;
	}
	do {
		grow((void **)&buf, &cap, len + 65536, 1);
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got && len <= BUDGET_MAX_FILE);
	if (ferror(f)) {
		ret = errno ? -errno : -EIO;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-ret));
	} else if (len > BUDGET_MAX_FILE) {
		ret = -EFBIG;
		snprintf(err, errlen, "%s: too large for a budget file (more than %u MiB)", path,
			 BUDGET_MAX_FILE >> 20);
	} else {
		ret = budgets__parse(buf, len, path, out, err, errlen);
	}
	fclose(f);
	free(buf);
	return ret;
}
