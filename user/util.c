/* Small shared helpers: diagnostics, number and duration parsing, checked allocation. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int verbose;

/* The message is escaped: names in it (comm, mapped files, symbols) come from targets. */
static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024], *e;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	e = xstrdup_escaped(buf);
	fprintf(stderr, "allocprof: %s%s\n", prefix, e);
	free(e);
}

void ap_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void ap_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

void ap_info(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

/* Splits "12.5ms" into the number and the unit; the number may have a fraction. */
static int split_number(const char *s, double *num, const char **unit)
{
	char *end;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	*num = strtod(s, &end);
	if (end == s || errno || *num != *num || *num < 0)
		return -EINVAL;
	*unit = end;
	return 0;
}

int parse_duration_ns(const char *s, uint64_t *ns)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = { { "", 1e9 },  { "ns", 1 },   { "us", 1e3 },   { "ms", 1e6 },
		      { "s", 1e9 }, { "m", 60e9 }, { "min", 60e9 }, { "h", 3600e9 } };
	const char *unit;
	double num;

	if (split_number(s, &num, &unit))
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(unit, units[i].unit))
			continue;
		num *= units[i].ns;
		if (num < 1 || num > 1e18)
			return -ERANGE;
		*ns = (uint64_t)num;
		return 0;
	}
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		double mul;
	} units[] = { { "", 1 },
		      { "b", 1 },
		      { "k", 1024.0 },
		      { "kb", 1024.0 },
		      { "kib", 1024.0 },
		      { "m", 1048576.0 },
		      { "mb", 1048576.0 },
		      { "mib", 1048576.0 },
		      { "g", 1073741824.0 },
		      { "gb", 1073741824.0 },
		      { "gib", 1073741824.0 } };
	const char *unit;
	double num;

	if (split_number(s, &num, &unit))
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcasecmp(unit, units[i].unit))
			continue;
		num *= units[i].mul;
		if (num > 1.8e19 || num != (double)(uint64_t)num)
			return num > 1.8e19 ? -ERANGE : -EINVAL;
		*out = (uint64_t)num;
		return 0;
	}
	return -EINVAL;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static void oom(void)
{
	fputs("allocprof: out of memory\n", stderr);
	abort();
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		oom();
	p = realloc(p, (n * size) != 0 ? n * size : 1);
	if (!p)
		oom();
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	return p;
}

void grow(void **arr, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	*arr = xrealloc(*arr, n, size);
	memset((char *)*arr + *cap * size, 0, (n - *cap) * size);
	*cap = n;
}

/* Length of the well-formed UTF-8 sequence at s (not a C1 control, U+0080-U+009F), 0 if none. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	uint32_t cp = s[0] & (0x7f >> n);

	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < 0xa0 || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

char *xstrdup_escaped(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = 0, len = strlen(s);
	char *out = xcalloc(len * 4 + 1, 1);

	while (*u) {
		size_t k = *u >= 0x80 ? utf8_len(u) : (*u >= 0x20 && *u != 0x7f);

		if (k) {
			memcpy(out + n, u, k);
			n += k;
			u += k;
		} else {
			n += (size_t)sprintf(out + n, "\\x%02x", *u++);
		}
	}
	out[n] = '\0';
	return out;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t realtime_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

const char *fmt_bytes(double b, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;
	bool neg = b < 0;

	if (neg)
		b = -b;
	/* 1023.996 KiB prints as 1.00 MiB, not 1024.00 KiB. */
	while (b >= (u ? 1023.995 : 1024) && u < ARRAY_SIZE(units) - 1) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%s%.0f %s", neg ? "-" : "", b, units[u]);
	else
		snprintf(buf, len, "%s%.2f %s", neg ? "-" : "", b, units[u]);
	return buf;
}

const char *fmt_bytes_op(double b, char *buf, size_t len)
{
	double a = fabs(b);

	if (a >= 100 * 1024)
		return fmt_bytes(b, buf, len);
	if (a == floor(a))
		snprintf(buf, len, "%.0f B", b);
	else if (a >= 100)
		snprintf(buf, len, "%.1f B", b);
	else
		snprintf(buf, len, "%.4g B", b);
	return buf;
}

const char *host_stamp(char *buf, size_t len)
{
	char host[64] = "host";
	time_t t = time(NULL);
	struct tm tm;

	gethostname(host, sizeof(host) - 1);
	host[strcspn(host, ".")] = 0;
	localtime_r(&t, &tm);
	snprintf(buf, len, "%s-%04d%02d%02dT%02d%02d%02d", host, tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return buf;
}

/* The path's directory, resolved, and its last component: "/real/dir" "name". */
static char *resolved_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, (size_t)(slash - path + 1)) : xstrdup("."), *real, *out;

	real = realpath(dir, NULL);
	free(dir);
	if (!real)
		return NULL;
	if (asprintf(&out, "%s/%s", real, slash ? slash + 1 : path) < 0)
		out = NULL;
	free(real);
	return out;
}

bool paths_same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	char *ra, *rb;
	bool same;

	a = strcmp(a, "-") ? a : "/dev/stdout";
	b = strcmp(b, "-") ? b : "/dev/stdout";
	/* (a device is no file to overwrite: /dev/null as both is harmless) */
	if (!stat(a, &sa) && !stat(b, &sb))
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino && !S_ISCHR(sa.st_mode);
	ra = resolved_name(a);
	rb = resolved_name(b);
	same = ra && rb && !strcmp(ra, rb);
	free(ra);
	free(rb);
	return same;
}
