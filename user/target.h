/*
 * The command a capture starts: finding it the way the shell would, and starting it held just
 * before exec so probes can be attached first. Owns the child's lifetime (fork, release,
 * wait); knows nothing about BPF.
 */
#ifndef ALLOCPROF_TARGET_H
#define ALLOCPROF_TARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

struct child {
	pid_t pid;
	int go_fd;  /* write end: one byte lets the child exec */
	int err_fd; /* read end: the child's errno if exec fails, EOF when it succeeded */
	int status; /* as from waitpid, once exited */
	bool exited;
	uint64_t released_mono, released_real; /* when it was let exec (now_ns, realtime_ns) */
};

/* The executable CMD names, searched in $PATH when it has no '/'. NULL with errno set. */
char *find_command(const char *cmd);
/*
 * The ELF file exec will load for `path`: itself, or for a "#!" script its interpreter.
 * Malloc'd, NULL with errno (ENOEXEC: neither).
 */
char *exec_file(const char *path);

/*
 * Forks a child that waits for child_release() and then execs argv[0] at `path`, with the
 * open-files limit `nofile` (allocprof raises its own).
 */
int child_spawn(char *const argv[], const char *path, const struct rlimit *nofile, struct child *c);
/* Lets the child exec; 0 once it did, -errno when exec failed (the child is reaped). */
int child_release(struct child *c);
/* Kills and reaps a child that was never released. */
void child_abort(struct child *c);
/* The shell's view of a wait status: the exit code, or 128 + signal. */
int exit_code(int status);

#endif
