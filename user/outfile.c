/*
 * Writing the output file atomically: a temporary file is created next to the destination
 * when the capture starts (so a missing or read-only directory fails before anything is
 * attached) and renamed over it when the data is complete, so a reader never sees a partial
 * file and an old file is replaced only by a whole new one.
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
	char *path, *tmp, *dir;
	int fd;
};

int out_file__open(const char *path, struct out_file **out)
{
	struct out_file *f;
	char *copy = xstrdup(path), *base;
	struct stat st;

	if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		free(copy);
		return -EISDIR;
	}
	f = xcalloc(1, sizeof(*f));
	f->path = xstrdup(path);
	f->dir = xstrdup(dirname(copy));
	free(copy);
	copy = xstrdup(path);
	base = basename(copy);
	f->tmp = xasprintf("%s/.%s.XXXXXX", f->dir, base);
	free(copy);
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0) {
		int err = -errno;

		free(f->path);
		free(f->tmp);
		free(f->dir);
		free(f);
		return err;
	}
	/* mkostemp makes it 0600; a profile is as readable as any file the user creates. */
	{
		mode_t mask = umask(0);

		umask(mask);
		fchmod(f->fd, 0666 & ~mask);
	}
	*out = f;
	return 0;
}

static void out_file__release(struct out_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->tmp);
	free(f->dir);
	free(f);
}

void out_file__abort(struct out_file *f)
{
	if (!f)
		return;
	unlink(f->tmp);
	out_file__release(f);
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
	/* Closed whatever happened: a failed write must not keep the unlinked file alive. */
	if (close(f->fd) && !err)
		err = -errno;
	f->fd = -1;
	if (!err && rename(f->tmp, f->path))
		err = -errno;
	if (err) {
		out_file__abort(f);
		return err;
	}
	/* Make the rename itself durable. */
	dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	out_file__release(f);
	return 0;
}

const char *out_file__path(const struct out_file *f)
{
	return f->path;
}
