/*
 * What the unit test files share: small file helpers, and markers in the test binary's own
 * code and data for the procmaps and ELF tests. Included once per test binary, after check.h.
 */
#ifndef ALLOCPROF_UNIT_FIXTURES_H
#define ALLOCPROF_UNIT_FIXTURES_H

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

#include "check.h"

/* ---- small helpers -------------------------------------------------------------------------- */

static __attribute__((unused)) bool write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "we");

	CHECK(f, "fopen(%s): %s", path, strerror(errno));
	CHECK(fwrite(data, 1, len, f) == len, "write %s", path);
	CHECK(!fclose(f), "close %s", path);
	return true;
}

/* The whole file, NUL-terminated, in a malloc'd buffer. */
static __attribute__((unused)) bool slurp(const char *path, char **buf, size_t *len)
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

static __attribute__((unused)) bool file_is(const char *path, const char *content)
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
static __attribute__((unused)) void list_dir(const char *dir, char *out, size_t len)
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
static __attribute__((unused)) int fd_under(const char *dir, char *target, size_t len)
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

#endif
