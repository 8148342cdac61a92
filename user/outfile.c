/*
 * Writing the profile where -o says, without ever replacing what is not a regular file, without
 * being steered by other users of a shared directory, and without losing a capture.
 *
 * A regular file (or a name not taken yet) is written atomically: the destination's directory is
 * opened once when the capture starts, and every later step is relative to that descriptor, so
 * swapping a directory of the path for a symlink during the capture cannot redirect the write.
 * (Symlinks in the path as it is at the start are followed, O_NOFOLLOW would refuse /var/run;
 * a swap during the capture is told, see moved_to().)
 * An unnamed temporary file (O_TMPFILE) is created in it at the start, so a missing or read-only
 * directory fails before anything is attached and nothing is left behind if allocprof is killed.
 * When the data is complete it gets a random temporary name (never a predictable one another
 * user could take first) and is renamed over the destination, so a reader never sees a partial
 * file. Filesystems without O_TMPFILE get a randomly named temporary file from the start.
 *
 * Stdout (-o -, /dev/stdout, /dev/fd/N: whatever it is, a pipe, a socket, a file), a FIFO or
 * a character device gets the gzip stream written to it directly. A path naming anything else
 * (a socket, a block device, a directory, a symlink to a regular file) is refused at the start,
 * as is another user's entry in a directory others can write to (as fs.protected_regular
 * does) and a symlink that is not ours. The destination is replaced only if it is still what
 * was checked at the start (nothing, or the same file).
 *
 * Permissions: a profile carries its targets' address-space layout, so it is private (0600) by
 * default; a file it replaces keeps a stricter mode, and its owner and group when they are
 * allocprof's user (or the sudo user). --mode is applied exactly, without the umask. Under
 * sudo, a new file belongs to the user who ran sudo (its group stays a setgid directory's).
 *
 * When the final write fails anyway (disk full, /dev/full, the destination became a
 * directory), the profile is written to a fallback file in $TMPDIR, /tmp or the current
 * directory, and the one error line says where.
 *
 * This file prints its own errors: only it knows which check failed on what. It must not
 * print anything else, nor write anything to stdout but the profile.
 */
#include "outfile.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Less free space than this fails at the start: a small profile would not fit. */
#define MIN_FREE_BYTES (64 * 1024)
#define PRIVATE_MODE   0600
#define TMP_TRIES      16

struct out_file {
	char *path;	  /* as given */
	char *dir, *base; /* the destination's directory (as given) and its name there */
	int dirfd;	  /* that directory, opened once at the start; -1 for a stream */
	int fd;		  /* the temporary file, or the stream */
	bool stream;
	bool stream_reg; /* the stream is a regular file (a shell's redirection): sync it */
	bool named;	 /* the temporary file has the name tmp in dirfd */
	char tmp[48];
	struct stat dir_st; /* the directory as opened, to notice it being moved or replaced */
	bool existed;	    /* the destination existed at the start: replaced only if unchanged */
	dev_t old_dev;	    /* and was this file */
	ino_t old_ino;
	uid_t uid; /* owner to give the new file; (uid_t)-1: the creator's */
	gid_t gid;
	mode_t mode;
	const char *what; /* the noun of messages: "profile", "picture" */
	const char *opt;  /* the option that names the file: "-o", "--svg" */
	bool no_fallback; /* a failed write is reported, not saved elsewhere */
};

static void release(struct out_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->dirfd >= 0)
		close(f->dirfd);
	free(f->path);
	free(f->dir);
	free(f->base);
	free(f);
}

/* Under sudo, the user who ran it: a root-owned 0600 profile would be unreadable to them. */
static bool sudo_user(uid_t *uid, gid_t *gid)
{
	const char *u = getenv("SUDO_UID"), *g = getenv("SUDO_GID");
	uint64_t a, b;

	if (geteuid() != 0 || !u || !g || parse_u64(u, 1, UINT32_MAX - 1, &a) ||
	    parse_u64(g, 0, UINT32_MAX - 1, &b))
		return false;
	*uid = (uid_t)a;
	*gid = (gid_t)b;
	return true;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		/* An inherited non-blocking stdout: wait for room (its flags are shared). */
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* ---- streams: stdout, a FIFO, a character device ------------------------------------- */

/* "-", /dev/stdout, /dev/stderr, /dev/stdin, /dev/fd/N, /proc/self/fd/N: N; else -1. */
static int fd_alias(const char *path)
{
	static const char *const prefixes[] = { "/dev/fd/", "/proc/self/fd/" };
	uint64_t n;

	if (!strcmp(path, "-") || !strcmp(path, "/dev/stdout"))
		return 1;
	if (!strcmp(path, "/dev/stderr"))
		return 2;
	if (!strcmp(path, "/dev/stdin"))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		size_t l = strlen(prefixes[i]);

		if (!strncmp(path, prefixes[i], l) && !parse_u64(path + l, 0, INT32_MAX, &n))
			return (int)n;
	}
	return -1;
}

/* What every stream must pass, whichever way it was named. */
static int check_stream(struct out_file *f, int fd, const struct stat *st,
			const struct out_file_opts *o)
{
	struct stat so;

	if (S_ISDIR(st->st_mode) || S_ISBLK(st->st_mode)) {
		ap_err("cannot write %s: it is a %s; give a file name", out_file__path(f),
		       S_ISDIR(st->st_mode) ? "directory" : "block device");
		return -EINVAL;
	}
	if (isatty(fd)) {
		if (strcmp(f->what, "profile"))
			ap_err("will not write the %s to the terminal %s: redirect it (> FILE) or "
			       "give %s FILE",
			       f->what, out_file__path(f), f->opt);
		else
			ap_err("will not write the gzipped profile to the terminal %s: redirect it "
			       "(-o - > FILE, -o - | ...) or give -o FILE",
			       out_file__path(f));
		return -ENOTTY;
	}
	/* /dev/null as both is harmless; a pipe or file shared with the command is not. */
	if (o->cmd_stdout && !S_ISCHR(st->st_mode) && !fstat(STDOUT_FILENO, &so) &&
	    so.st_dev == st->st_dev && so.st_ino == st->st_ino) {
		ap_err("cannot write %s: the command after -- shares allocprof's stdout and its "
		       "output would corrupt the %s; give %s FILE, or the %s another "
		       "descriptor (%s /dev/fd/3 -- CMD 3>&1 >&2 | ...)",
		       out_file__path(f), f->what, f->opt, f->what, f->opt);
		return -EINVAL;
	}
	/* Messages on stderr would land inside the gzip stream (-o - 2>&1 | ...). */
	if (!S_ISCHR(st->st_mode) && !fstat(STDERR_FILENO, &so) && so.st_dev == st->st_dev &&
	    so.st_ino == st->st_ino) {
		ap_err("cannot write %s: it is also allocprof's stderr, whose messages would "
		       "corrupt the %s; send stderr elsewhere (2>FILE) or give %s FILE",
		       out_file__path(f), f->what, f->opt);
		return -EINVAL;
	}
	if (o->mode >= 0) {
		ap_err("--mode applies to a file allocprof creates, not to %s", out_file__path(f));
		return -EINVAL;
	}
	f->stream = true;
	f->stream_reg = S_ISREG(st->st_mode);
	/* Our own copy, close-on-exec: a command started later must not inherit it. */
	f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (f->fd < 0) {
		ap_err("cannot write %s: %s", out_file__path(f), strerror(errno));
		return -errno;
	}
	return 0;
}

static int open_fd(struct out_file *f, int n, const struct out_file_opts *o)
{
	struct stat st;
	int fl;

	if (n == STDERR_FILENO) {
		ap_err("cannot write the %s to stderr: allocprof's messages go there; use "
		       "%s - or %s FILE",
		       f->what, f->opt, f->opt);
		return -EINVAL;
	}
	if (fstat(n, &st) || (fl = fcntl(n, F_GETFL)) < 0) {
		ap_err("cannot write %s: descriptor %d is not open", out_file__path(f), n);
		return -EBADF;
	}
	if ((fl & O_ACCMODE) == O_RDONLY) {
		ap_err("cannot write %s: descriptor %d is open for reading only", out_file__path(f),
		       n);
		return -EBADF;
	}
	/* A command started later must not hold the profile's pipe open (or write into it). */
	if (n > STDERR_FILENO)
		fcntl(n, F_SETFD, FD_CLOEXEC);
	return check_stream(f, n, &st, o);
}

/*
 * A FIFO or character device named by a path (st: what the path leads to). The path is
 * pinned with O_PATH and checked before anything opens it for writing (opening a device can
 * act by itself), then reopened through /proc/self/fd: what is written is what was checked.
 */
static int open_special(struct out_file *f, const struct stat *st, const struct out_file_opts *o)
{
	struct stat now;
	char pinned[64];
	int pin, fd, err;

	pin = open(f->path, O_PATH | O_CLOEXEC);
	if (pin < 0 || fstat(pin, &now) || now.st_dev != st->st_dev || now.st_ino != st->st_ino ||
	    (!S_ISFIFO(now.st_mode) && !S_ISCHR(now.st_mode))) {
		ap_err("cannot write %s: it changed while being opened; try again", f->path);
		if (pin >= 0)
			close(pin);
		return -EAGAIN;
	}
	snprintf(pinned, sizeof(pinned), "/proc/self/fd/%d", pin);
	/* Non-blocking first: a FIFO without a reader would otherwise hang here, unexplained. */
	fd = open(pinned, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENXIO && S_ISFIFO(now.st_mode)) {
		ap_warn("no reader on the FIFO %s yet: waiting for one", f->path);
		fd = open(pinned, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	}
	close(pin);
	if (fd < 0) {
		err = -errno;
		ap_err("cannot write %s: %s", f->path, strerror(errno));
		return err;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	err = check_stream(f, fd, &now, o);
	close(fd);
	return err;
}

static int write_stream(struct out_file *f, const void *data, size_t len)
{
	struct timespec zero = {};
	sigset_t pipe, old;
	int err;

	/* A reader that went away is an error to report, not a reason to die unsaved. */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe, &old);
	err = write_all(f->fd, data, len);
	if (err == -EPIPE)
		sigtimedwait(&pipe, NULL, &zero);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (!err && f->stream_reg && fsync(f->fd))
		err = -errno;
	return err;
}

/* ---- regular files: replaced atomically ---------------------------------------------- */

static void split_path(struct out_file *f)
{
	const char *slash = strrchr(f->path, '/');

	if (!slash) {
		f->dir = xstrdup(".");
		f->base = xstrdup(f->path);
	} else {
		f->dir = slash == f->path ? xstrdup("/")
					  : xasprintf("%.*s", (int)(slash - f->path), f->path);
		f->base = xstrdup(slash + 1);
	}
}

/* A name nobody can predict, independent of the destination's length. */
static void tmp_name(char *buf, size_t len)
{
	uint64_t r;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = now_ns() ^ ((uint64_t)getpid() << 40);
	snprintf(buf, len, ".allocprof-%016llx.tmp", (unsigned long long)r);
}

/* For filesystems without O_TMPFILE: a named temporary file from the start. */
static int open_named(struct out_file *f)
{
	for (int i = 0; i < TMP_TRIES; i++) {
		tmp_name(f->tmp, sizeof(f->tmp));
		f->fd = openat(f->dirfd, f->tmp,
			       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, PRIVATE_MODE);
		if (f->fd >= 0) {
			f->named = true;
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* An existing entry at the destination: what it is decides what happens. */
static int check_existing(struct out_file *f, const struct stat *st, const struct out_file_opts *o,
			  bool *special)
{
	struct stat to;
	uid_t su;
	gid_t sg;
	bool sudo = sudo_user(&su, &sg);

	/* Ours: allocprof's user, or the user who ran it through sudo. */
	bool ours = st->st_uid == geteuid() || (sudo && st->st_uid == su);

	/*
	 * In a directory others can write to, another user's entry is theirs to keep (as
	 * fs.protected_regular/protected_symlinks do, even for root): they could have planted it
	 * to be given the profile, or to have it written into something of their choosing.
	 */
	if ((f->dir_st.st_mode & (S_IWOTH | S_IWGRP)) && !ours && st->st_uid != f->dir_st.st_uid) {
		ap_err("will not replace %s: it belongs to another user (uid %u) in the shared "
		       "directory %s; remove it or choose another name",
		       f->path, (unsigned)st->st_uid, f->dir);
		return -EPERM;
	}
	if (S_ISLNK(st->st_mode)) {
		char target[256] = "";
		ssize_t n = readlinkat(f->dirfd, f->base, target, sizeof(target) - 1);

		if (n > 0)
			target[n] = 0;
		/* Followed only when ours: another's link could point at any device. */
		if (ours && !stat(f->path, &to) && (S_ISFIFO(to.st_mode) || S_ISCHR(to.st_mode))) {
			*special = true;
			return open_special(f, &to, o);
		}
		ap_err("cannot write %s: it is a symbolic link (to %s); give the path of the file "
		       "itself",
		       f->path, target);
		return -ELOOP;
	}
	if (S_ISFIFO(st->st_mode) || S_ISCHR(st->st_mode)) {
		/* Devices are root's; a FIFO of another user would hand them the profile. */
		if (!ours && st->st_uid != 0) {
			ap_err("will not write %s: it belongs to another user (uid %u); remove it "
			       "or "
			       "choose another name",
			       f->path, (unsigned)st->st_uid);
			return -EPERM;
		}
		*special = true;
		return open_special(f, st, o);
	}
	if (S_ISDIR(st->st_mode)) {
		ap_err("cannot write %s: %s; give a file name", f->path, strerror(EISDIR));
		return -EISDIR;
	}
	if (!S_ISREG(st->st_mode)) {
		ap_err("cannot write %s: it is a %s; allocprof writes regular files, FIFOs and "
		       "character devices (or stdout: -o -)",
		       f->path, S_ISSOCK(st->st_mode) ? "socket" : "block device");
		return -EINVAL;
	}
	/*
	 * A rerun keeps the file's owner when it is ours (the sudo user's), and its mode when that
	 * is stricter than private; another's file is replaced by one of allocprof's user.
	 */
	f->existed = true;
	f->old_dev = st->st_dev;
	f->old_ino = st->st_ino;
	f->uid = ours ? st->st_uid : (uid_t)-1;
	f->gid = ours ? st->st_gid : (gid_t)-1;
	if (o->mode < 0 && !(st->st_mode & 0777 & ~PRIVATE_MODE))
		f->mode = st->st_mode & 0777;
	return 0;
}

static int open_path(struct out_file *f, const struct out_file_opts *o)
{
	struct statvfs vfs;
	struct stat st;
	bool special = false;
	int err;

	split_path(f);
	if (!*f->base || !strcmp(f->base, ".") || !strcmp(f->base, "..")) {
		ap_err("cannot write %s: %s; give a file name", f->path, strerror(EISDIR));
		return -EISDIR;
	}
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dirfd < 0 || fstat(f->dirfd, &f->dir_st)) {
		err = -errno;
		ap_err("cannot write %s: %s", f->path,
		       err == -ENOENT ? "no such directory" : strerror(-err));
		return err;
	}
	f->mode = o->mode >= 0 ? (mode_t)o->mode : PRIVATE_MODE;
	if (!fstatat(f->dirfd, f->base, &st, AT_SYMLINK_NOFOLLOW)) {
		err = check_existing(f, &st, o, &special);
		if (err || special)
			return err;
	} else if (errno != ENOENT) {
		err = -errno;
		ap_err("cannot write %s: %s", f->path, strerror(-err));
		return err;
	} else if (!sudo_user(&f->uid, &f->gid)) {
		f->uid = (uid_t)-1;
		f->gid = (gid_t)-1;
	} else if (f->dir_st.st_mode & S_ISGID) {
		f->gid = (gid_t)-1; /* the directory's group, as the kernel gave it */
	}
	/* Some filesystems (FUSE) report no sizes at all: nothing to check then. */
	if (!fstatvfs(f->dirfd, &vfs) && vfs.f_blocks && vfs.f_frsize) {
		uint64_t blocks = geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail;
		uint64_t avail = blocks * vfs.f_frsize;

		if ((vfs.f_flag & ST_RDONLY)) {
			ap_err("cannot write %s: %s", f->path, strerror(EROFS));
			return -EROFS;
		}
		if (avail < MIN_FREE_BYTES) {
			ap_err("cannot write %s: only %llu KiB free on its filesystem; free some "
			       "space or give another -o",
			       f->path, (unsigned long long)(avail / 1024));
			return -ENOSPC;
		}
	}
	f->fd = openat(f->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, PRIVATE_MODE);
	err = f->fd < 0 ? -errno : 0;
	if (err == -EOPNOTSUPP || err == -EISDIR || err == -EINVAL)
		err = open_named(f);
	if (err) {
		ap_err("cannot write %s: %s", f->path, strerror(-err));
		return err;
	}
	/* Owner first: a chown may clear mode bits. As non-root it may fail: the creator's. */
	if (f->uid != (uid_t)-1 && (f->uid != geteuid() || f->gid != getegid()))
		if (fchown(f->fd, f->uid, f->gid))
			ap_warn("cannot give %s to uid %u: %s", f->path, (unsigned)f->uid,
				strerror(errno));
	/* Exactly this mode: O_TMPFILE's was filtered by the umask. */
	if (fchmod(f->fd, f->mode)) {
		err = -errno;
		ap_err("cannot set the mode of %s: %s", f->path, strerror(-err));
		return err;
	}
	return 0;
}

/* Gives the unnamed file a random temporary name in its directory. */
static int link_tmp(struct out_file *f)
{
	char fdpath[64];

	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", f->fd);
	for (int i = 0; i < TMP_TRIES; i++) {
		tmp_name(f->tmp, sizeof(f->tmp));
		if (!linkat(AT_FDCWD, fdpath, f->dirfd, f->tmp, AT_SYMLINK_FOLLOW)) {
			f->named = true;
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/*
 * Puts the temporary file in place, but only over what was checked at the start: nothing
 * (RENAME_NOREPLACE), or the same file. Something put there meanwhile is kept (-EEXIST).
 */
static int replace(struct out_file *f)
{
	struct stat now;

	if (!f->existed) {
		if (!renameat2(f->dirfd, f->tmp, f->dirfd, f->base, RENAME_NOREPLACE))
			return 0;
		if (errno != EINVAL)
			return -errno;
		/* A filesystem without RENAME_NOREPLACE: the check below, then a rename. */
		if (!fstatat(f->dirfd, f->base, &now, AT_SYMLINK_NOFOLLOW))
			return -EEXIST;
	} else if (fstatat(f->dirfd, f->base, &now, AT_SYMLINK_NOFOLLOW) ||
		   now.st_dev != f->old_dev || now.st_ino != f->old_ino) {
		return -EEXIST;
	}
	return renameat(f->dirfd, f->tmp, f->dirfd, f->base) ? -errno : 0;
}

static int commit_file(struct out_file *f, const void *data, size_t len)
{
	int err = write_all(f->fd, data, len);

	if (!err && fsync(f->fd))
		err = -errno;
	if (!err && !f->named)
		err = link_tmp(f);
	if (!err)
		err = replace(f);
	if (err) {
		if (f->named)
			unlinkat(f->dirfd, f->tmp, 0);
		f->named = false;
		return err;
	}
	f->named = false; /* renamed: nothing to remove */
	fsync(f->dirfd);  /* make the rename itself durable */
	return 0;
}

/* The directory was moved or replaced since the start: where the profile is now, or NULL. */
static char *moved_to(struct out_file *f)
{
	char link[64], buf[4096];
	struct stat st;
	ssize_t n;

	if (!stat(f->dir, &st) && st.st_dev == f->dir_st.st_dev && st.st_ino == f->dir_st.st_ino)
		return NULL;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", f->dirfd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n <= 0)
		return xasprintf("%s in the directory that was %s", f->base, f->dir);
	buf[n] = 0;
	return xasprintf("%s%s%s", buf, strcmp(buf, "/") ? "/" : "", f->base);
}

/* ---- the fallback: never lose a capture ---------------------------------------------- */

static int write_fallback(const char *dir, const void *data, size_t len, char **name)
{
	char stamp[96], rnd[48];
	uid_t uid;
	gid_t gid;
	int fd = -1, err;

	host_stamp(stamp, sizeof(stamp));
	for (int i = 0; i < TMP_TRIES && fd < 0; i++) {
		/* The plain name first; a random part only if someone has taken it. */
		tmp_name(rnd, sizeof(rnd));
		*name = i ? xasprintf("%s/allocprof-%s-%d-%.8s.pb.gz", dir, stamp, (int)getpid(),
				      rnd + 11)
			  : xasprintf("%s/allocprof-%s-%d.pb.gz", dir, stamp, (int)getpid());
		fd = open(*name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			  PRIVATE_MODE);
		if (fd < 0) {
			err = -errno;
			free(*name);
			*name = NULL;
			if (err != -EEXIST)
				return err;
		}
	}
	if (fd < 0)
		return -EEXIST;
	if (sudo_user(&uid, &gid) && fchown(fd, uid, gid))
		ap_warn("cannot give %s to uid %u: %s", *name, (unsigned)uid, strerror(errno));
	err = fchmod(fd, PRIVATE_MODE) ? -errno : 0;
	if (!err)
		err = write_all(fd, data, len);
	if (!err && fsync(fd))
		err = -errno;
	close(fd);
	if (err) {
		unlink(*name);
		free(*name);
		*name = NULL;
	}
	return err;
}

static void save_fallback(struct out_file *f, int why, const void *data, size_t len)
{
	const char *tmpdir = getenv("TMPDIR"), *dirs[3];
	/* -EEXIST: replace() found something other than what was checked at the start. */
	const char *reason = why == -EEXIST ? "something else was put at that name during the "
					      "capture, and is kept"
					    : strerror(-why);
	size_t n = 0;
	char *name = NULL;
	int err = 0;

	if (tmpdir && tmpdir[0] == '/')
		dirs[n++] = tmpdir;
	dirs[n++] = "/tmp";
	dirs[n++] = ".";
	for (size_t i = 0; i < n; i++) {
		if (i && !strcmp(dirs[i], dirs[0]))
			continue;
		err = write_fallback(dirs[i], data, len, &name);
		if (!err) {
			ap_err("cannot write %s: %s; the profile was written to %s instead",
			       out_file__path(f), reason, name);
			free(name);
			return;
		}
	}
	ap_err("cannot write %s: %s; nor a copy in %s%s or the current directory (%s): the "
	       "profile is lost",
	       out_file__path(f), reason, n == 3 ? "$TMPDIR, " : "", "/tmp", strerror(-err));
}

/* ---- the interface ------------------------------------------------------------------- */

int out_file__open_opts(const char *path, const struct out_file_opts *opts, struct out_file **out)
{
	struct out_file *f = xcalloc(1, sizeof(*f));
	int n = fd_alias(path), err;

	f->path = xstrdup(path);
	f->what = opts->what ? opts->what : "profile";
	f->opt = opts->opt ? opts->opt : "-o";
	f->no_fallback = opts->no_fallback;
	f->dirfd = -1;
	f->fd = -1;
	err = n >= 0 ? open_fd(f, n, opts) : open_path(f, opts);
	if (err) {
		out_file__abort(f);
		return err;
	}
	*out = f;
	return 0;
}

int out_file__open(const char *path, struct out_file **out)
{
	return out_file__open_opts(path, &(struct out_file_opts){ .mode = -1 }, out);
}

void out_file__abort(struct out_file *f)
{
	if (!f)
		return;
	if (f->named)
		unlinkat(f->dirfd, f->tmp, 0);
	release(f);
}

int out_file__commit(struct out_file *f, const void *data, size_t len)
{
	char *moved;
	int err;

	if (f->stream) {
		err = write_stream(f, data, len);
	} else {
		err = commit_file(f, data, len);
		/* In place, but a swap of the path's directories left it away from the path. */
		if (!err && (moved = moved_to(f))) {
			ap_err("cannot write %s: its directory was moved or replaced during the "
			       "capture; the %s was written to %s instead",
			       f->path, f->what, moved);
			free(moved);
			err = -ESTALE;
		}
	}
	if (err && err != -ESTALE && f->no_fallback)
		ap_err("cannot write %s: %s; the %s is not written", out_file__path(f),
		       err == -EEXIST ? "something else was put at that name meanwhile, and is kept"
				      : strerror(-err),
		       f->what);
	else if (err && err != -ESTALE)
		save_fallback(f, err, data, len);
	out_file__abort(f);
	return err;
}

const char *out_file__path(const struct out_file *f)
{
	return !strcmp(f->path, "-") ? "stdout" : f->path;
}
