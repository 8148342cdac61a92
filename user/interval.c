/*
 * The files of --output-dir (and --interval, --keep): the directory, each file's name, and the
 * pruning of the oldest. Names sort by time and carry the host: allocprof-<host>-<UTC
 * time>.pb.gz, with _1, _2... before the suffix when two land in one second ('_' sorts after
 * '.', so the second file of a second sorts after the first). UTC, not local time: a daylight
 * saving change would make names go back an hour. Knows nothing of what is in the files;
 * writing them is outfile.c's, collecting them collect.c's.
 */
#include "interval.h"
#include "outfile.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAMP_LEN 16 /* 20261202T031500Z */
#define MAX_SEQ	  1000000

struct interval {
	char *dir;
	int dirfd;
	char host[64];
	char *prefix; /* "allocprof-<host>-" */
	uint64_t keep;
	char last[128]; /* the last name given */
};

static void make_name(const struct interval *iv, uint64_t real_ns, int seq, char *buf, size_t len)
{
	time_t t = (time_t)(real_ns / 1000000000ull);
	char stamp[32];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (seq)
		snprintf(buf, len, "%s%s_%d.pb.gz", iv->prefix, stamp, seq);
	else
		snprintf(buf, len, "%s%s.pb.gz", iv->prefix, stamp);
}

static char *dir_path(const struct interval *iv, const char *name)
{
	return xasprintf("%s%s%s", iv->dir, iv->dir[strlen(iv->dir) - 1] == '/' ? "" : "/", name);
}

struct interval *interval__new(const char *dir, uint64_t keep, int mode)
{
	struct out_file *probe;
	char name[128], *path;
	struct interval *iv = xcalloc(1, sizeof(*iv));
	struct stat st;

	iv->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (iv->dirfd < 0) {
		int err = errno;

		ap_err("cannot write to --output-dir %s: %s", dir,
		       err == ENOENT	? "no such directory (create it first)"
		       : err == ENOTDIR ? "not a directory"
					: strerror(err));
		free(iv);
		errno = err;
		return NULL;
	}
	if (fstat(iv->dirfd, &st) || faccessat(iv->dirfd, ".", W_OK | X_OK, AT_EACCESS)) {
		int err = errno;

		ap_err("cannot write to --output-dir %s: %s", dir, strerror(err));
		close(iv->dirfd);
		free(iv);
		errno = err;
		return NULL;
	}
	iv->dir = xstrdup(dir);
	iv->keep = keep;
	strcpy(iv->host, "host");
	gethostname(iv->host, sizeof(iv->host) - 1);
	iv->host[strcspn(iv->host, ".")] = 0;
	/* A name is one path component: nothing of the host may make it another. */
	for (char *h = iv->host; *h; h++)
		if (*h == '/' || !isprint((unsigned char)*h))
			*h = '_';
	iv->prefix = xasprintf("allocprof-%s-", iv->host);
	/*
	 * Every check -o has (writable, room, a regular file's name, O_TMPFILE), made now on a
	 * file's name, before anything is attached; the files themselves are opened when written.
	 */
	make_name(iv, realtime_ns(), 0, name, sizeof(name));
	path = dir_path(iv, name);
	errno = 0;
	if (out_file__open_opts(path, &(struct out_file_opts){ .mode = mode }, &probe)) {
		int err = errno ? errno : EINVAL;

		free(path);
		interval__free(iv);
		errno = err;
		return NULL;
	}
	out_file__abort(probe);
	free(path);
	return iv;
}

void interval__free(struct interval *iv)
{
	if (!iv)
		return;
	if (iv->dirfd >= 0)
		close(iv->dirfd);
	free(iv->dir);
	free(iv->prefix);
	free(iv);
}

static bool taken(const struct interval *iv, const char *name)
{
	struct stat st;

	return !strcmp(name, iv->last) || !fstatat(iv->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) ||
	       errno != ENOENT;
}

char *interval__name(struct interval *iv, uint64_t real_ns)
{
	char name[128];

	make_name(iv, real_ns, 0, name, sizeof(name));
	for (int seq = 1; taken(iv, name) && seq < MAX_SEQ; seq++)
		make_name(iv, real_ns, seq, name, sizeof(name));
	snprintf(iv->last, sizeof(iv->last), "%s", name);
	return dir_path(iv, name);
}

/* The sequence number of one of our names (0 without one), or -1 when it is not ours. */
static long own_seq(const struct interval *iv, const char *name, char stamp[STAMP_LEN + 1])
{
	size_t pl = strlen(iv->prefix);
	const char *s = name + pl, *end;
	long seq = 0;

	if (strncmp(name, iv->prefix, pl) || strlen(s) < STAMP_LEN)
		return -1;
	for (int i = 0; i < STAMP_LEN; i++) {
		bool ok = i == 8    ? s[i] == 'T'
			  : i == 15 ? s[i] == 'Z'
				    : isdigit((unsigned char)s[i]);

		if (!ok)
			return -1;
	}
	memcpy(stamp, s, STAMP_LEN);
	stamp[STAMP_LEN] = 0;
	end = s + STAMP_LEN;
	if (*end == '_') {
		char *e;

		if (!isdigit((unsigned char)end[1]))
			return -1;
		seq = strtol(end + 1, &e, 10);
		if (seq <= 0 || seq >= MAX_SEQ)
			return -1;
		end = e;
	}
	return strcmp(end, ".pb.gz") ? -1 : seq;
}

int interval__own_name(const struct interval *iv, const char *name)
{
	char stamp[STAMP_LEN + 1];

	return own_seq(iv, name, stamp) >= 0;
}

struct own_file {
	char stamp[STAMP_LEN + 1];
	long seq;
	char *name;
};

static int cmp_own(const void *a, const void *b)
{
	const struct own_file *x = a, *y = b;
	int c = strcmp(x->stamp, y->stamp);

	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Ours to delete: allocprof's user's, or the sudo user's (whom outfile.c gives new files). */
static bool owner_ok(uid_t uid)
{
	const char *su = getenv("SUDO_UID");
	uint64_t v;

	if (uid == geteuid())
		return true;
	return geteuid() == 0 && su && !parse_u64(su, 1, UINT32_MAX - 1, &v) && uid == (uid_t)v;
}

size_t interval__prune(struct interval *iv)
{
	struct own_file *files = NULL;
	size_t n = 0, cap = 0, deleted = 0;
	struct dirent *de;
	int fd;
	DIR *d;

	if (!iv->keep)
		return 0;
	fd = openat(iv->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		ap_warn("--keep: cannot read %s: %s", iv->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct own_file f;
		struct stat st;

		f.seq = own_seq(iv, de->d_name, f.stamp);
		if (f.seq < 0 || fstatat(iv->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode) || !owner_ok(st.st_uid))
			continue;
		f.name = xstrdup(de->d_name);
		grow((void **)&files, &cap, n + 1, sizeof(*files));
		files[n++] = f;
	}
	closedir(d);
	qsort(files, n, sizeof(*files), cmp_own);
	for (size_t i = 0; i + iv->keep < n; i++) {
		if (unlinkat(iv->dirfd, files[i].name, 0) && errno != ENOENT)
			ap_warn("--keep: cannot delete %s/%s: %s", iv->dir, files[i].name,
				strerror(errno));
		else
			deleted++;
	}
	for (size_t i = 0; i < n; i++)
		free(files[i].name);
	free(files);
	if (deleted)
		ap_info("--keep %llu: %zu older file%s deleted from %s",
			(unsigned long long)iv->keep, deleted, deleted == 1 ? "" : "s", iv->dir);
	return deleted;
}
