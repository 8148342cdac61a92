/*
 * The processes a capture watches: checking that pids exist, finding a command the way the
 * shell would, and starting it held just before exec so probes can be attached first. Owns
 * the child's lifetime (fork, release, wait); knows nothing about BPF.
 */
#include "target.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static bool is_exec_file(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode) && !access(path, X_OK);
}

char *find_command(const char *cmd)
{
	const char *path_env = getenv("PATH");
	char *copy, *save = NULL;
	int err = ENOENT;

	if (!*cmd) {
		errno = ENOENT;
		return NULL;
	}
	if (strchr(cmd, '/')) {
		if (is_exec_file(cmd))
			return xstrdup(cmd);
		if (!access(cmd, F_OK))
			errno = EACCES;
		return NULL;
	}
	copy = xstrdup(path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", *dir ? dir : ".", cmd);

		if (is_exec_file(p)) {
			free(copy);
			return p;
		}
		if (!access(p, F_OK))
			err = EACCES;
		free(p);
	}
	free(copy);
	errno = err;
	return NULL;
}

char *exec_file(const char *path)
{
	char buf[256], *nl, *interp, *end;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 4) {
		errno = ENOEXEC;
		return NULL;
	}
	buf[n] = 0;
	if (!memcmp(buf, "\177ELF", 4))
		return xstrdup(path);
	if (buf[0] != '#' || buf[1] != '!') {
		errno = ENOEXEC;
		return NULL;
	}
	/* "#! /path/to/interp [arg]": the kernel execs the interpreter. */
	nl = strchr(buf, '\n');
	if (nl)
		*nl = 0;
	interp = buf + 2;
	while (*interp == ' ' || *interp == '\t')
		interp++;
	end = interp + strcspn(interp, " \t");
	*end = 0;
	if (!*interp || !is_exec_file(interp)) {
		errno = ENOEXEC;
		return NULL;
	}
	return xstrdup(interp);
}

int child_spawn(char *const argv[], const char *path, const struct rlimit *nofile, struct child *c)
{
	int go[2], errp[2];

	*c = (struct child){ .pid = -1, .go_fd = -1, .err_fd = -1 };
	if (pipe2(go, O_CLOEXEC))
		return -errno;
	if (pipe2(errp, O_CLOEXEC)) {
		close(go[0]);
		close(go[1]);
		return -errno;
	}
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		int err = -errno;

		close(go[0]);
		close(go[1]);
		close(errp[0]);
		close(errp[1]);
		return err;
	}
	if (c->pid == 0) {
		char b;
		int e;
		sigset_t none;

		close(go[1]);
		close(errp[0]);
		/* The parent blocks signals it reads from a signalfd; CMD starts with none. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setrlimit(RLIMIT_NOFILE, nofile);
		if (read(go[0], &b, 1) != 1)
			_exit(127); /* the parent gave up before releasing us */
		execv(path, argv);
		e = errno;
		if (write(errp[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(go[0]);
	close(errp[1]);
	c->go_fd = go[1];
	c->err_fd = errp[0];
	return 0;
}

int child_release(struct child *c)
{
	char b = 1;
	int e = 0;
	ssize_t n;

	c->released_mono = now_ns();
	c->released_real = realtime_ns();
	if (write(c->go_fd, &b, 1) != 1) {
		int err = -errno;

		child_abort(c);
		return err;
	}
	close(c->go_fd);
	c->go_fd = -1;
	do
		n = read(c->err_fd, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(c->err_fd);
	c->err_fd = -1;
	if (n == sizeof(e)) {
		waitpid(c->pid, &c->status, 0);
		c->exited = true;
		return -e;
	}
	return 0;
}

void child_abort(struct child *c)
{
	if (c->pid > 0 && !c->exited) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, &c->status, 0);
		c->exited = true;
	}
	if (c->go_fd >= 0)
		close(c->go_fd);
	if (c->err_fd >= 0)
		close(c->err_fd);
	c->go_fd = c->err_fd = -1;
}

int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}
