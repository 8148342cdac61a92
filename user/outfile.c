/*
 * Writing the output file atomically: an unnamed temporary file (O_TMPFILE) is created in the
 * destination's directory when the capture starts, so a missing or read-only directory fails
 * before anything is attached, and nothing is left behind if allocprof is killed. When the data
 * is complete it is given a temporary name and renamed over the destination, so a reader never
 * sees a partial file and an old file is replaced only by a whole new one. Filesystems without
 * O_TMPFILE get a named temporary file from the start.
 */
#include "outfile.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct out_file {
	char *path, *dir, *base;
	char *tmp; /* the temporary name, once there is one */
	int fd;
};

static void release(struct out_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->dir);
	free(f->base);
	free(f->tmp);
	free(f);
}

/* A named temporary file next to the destination, for filesystems without O_TMPFILE. */
static int open_named(struct out_file *f)
{
	mode_t mask = umask(0);

	umask(mask);
	f->tmp = xasprintf("%s/.%s.XXXXXX", f->dir, f->base);
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	/* mkostemp makes it 0600; a profile is as readable as any file the user creates. */
	fchmod(f->fd, 0666 & ~mask);
	return 0;
}

int out_file__open(const char *path, struct out_file **out)
{
	struct out_file *f;
	struct stat st;
	char *copy;
	int err = 0;

	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		return -EISDIR;
	f = xcalloc(1, sizeof(*f));
	f->path = xstrdup(path);
	copy = xstrdup(path);
	f->dir = xstrdup(dirname(copy));
	free(copy);
	copy = xstrdup(path);
	f->base = xstrdup(basename(copy));
	free(copy);
	f->fd = open(f->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
	if (f->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
		err = open_named(f);
	else if (f->fd < 0)
		err = -errno;
	if (err) {
		free(f->tmp);
		f->tmp = NULL;
		release(f);
		return err;
	}
	*out = f;
	return 0;
}

void out_file__abort(struct out_file *f)
{
	if (!f)
		return;
	if (f->tmp)
		unlink(f->tmp);
	release(f);
}

/* Gives the unnamed file a temporary name in its directory. */
static int link_tmp(struct out_file *f)
{
	char fdpath[64];

	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", f->fd);
	for (int i = 0; i < 100; i++) {
		f->tmp = xasprintf("%s/.%s.%d.%d", f->dir, f->base, (int)getpid(), i);
		if (!linkat(AT_FDCWD, fdpath, AT_FDCWD, f->tmp, AT_SYMLINK_FOLLOW))
			return 0;
		free(f->tmp);
		f->tmp = NULL;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int out_file__commit(struct out_file *f, const void *data, size_t len)
{
	const char *p = data;
	size_t done = 0;
	int err = 0, dfd;

	while (done < len) {
		ssize_t n = write(f->fd, p + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		done += (size_t)n;
	}
	if (!err && fsync(f->fd))
		err = -errno;
	if (!err && !f->tmp)
		err = link_tmp(f);
	/* Closed whatever happened: a failed write must not keep the file's space alive. */
	if (close(f->fd) && !err)
		err = -errno;
	f->fd = -1;
	if (!err && rename(f->tmp, f->path))
		err = -errno;
	if (err) {
		out_file__abort(f);
		return err;
	}
	free(f->tmp);
	f->tmp = NULL; /* renamed: nothing to remove */
	/* Make the rename itself durable. */
	dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	release(f);
	return 0;
}

const char *out_file__path(const struct out_file *f)
{
	return f->path;
}
