/*
 * /proc/PID/maps: parsing one snapshot of a process's mappings (a plain array, valid after the
 * process is gone), and every other small /proc/PID reader. Knows nothing about ELF or symbols.
 */
#ifndef ALLOCPROF_PROCMAPS_H
#define ALLOCPROF_PROCMAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Device numbers as /proc/PID/maps prints them (major << 20 | minor), whatever the source. */
#define DEV_ID(major, minor) (((uint64_t)(major) << 20) | (minor))

struct map_entry {
	uint64_t start, end, pgoff;
	uint64_t dev, ino; /* dev as major << 20 | minor, the kernel's encoding */
	bool exec;
	char *path; /* NULL for anonymous mappings; "[vdso]" etc. for the kernel's */
};

struct proc_maps {
	struct map_entry *e; /* sorted by start, as the kernel prints them */
	size_t n;
};

/* 0, or -errno (-ENOENT: no such process). */
int proc_maps__read(pid_t pid, struct proc_maps *out);
/* Parses maps text (for tests). 0 or -EINVAL. */
int proc_maps__parse(const char *text, struct proc_maps *out);
void proc_maps__free(struct proc_maps *m);
const struct map_entry *proc_maps__find(const struct proc_maps *m, uint64_t addr);
/*
 * 0 and the process `pid` belongs to (itself, unless it is a thread's id), -ESRCH when there
 * is no such process or it has exited.
 */
int pid_check(pid_t pid, pid_t *tgid);
/* Is `pid` a kernel thread (no user address space: nothing to trace)? */
bool pid_is_kernel_thread(pid_t pid);
/* Has `pid` exited (gone, or a zombie its parent has not reaped)? */
bool pid_exited(pid_t pid);
/*
 * A process is known by its pid and the program it runs (see struct ap_proc_key): `image` is
 * the low 32 bits of its executable's inode number, which an exec changes. 0 or -errno.
 */
int proc_image(pid_t pid, uint32_t *image);
/* /proc/PID/root + path: a path as the process sees it, opened from here. Malloc'd. */
char *proc_path(pid_t pid, const char *path);
/*
 * How a file `pid` has mapped is opened from here: through /proc/PID/root and its path, or for
 * a file deleted since it was mapped (a package upgraded under a running process) through the
 * mapping's /proc/PID/map_files entry, which still reaches it. Malloc'd.
 */
char *proc_mapped_path(pid_t pid, const struct map_entry *e);
/* The process's name (/proc/PID/comm), "" when it is gone. */
void proc_read_comm(pid_t pid, char comm[16]);
/*
 * The directory of a cgroup v2 group named as given: a path in the cgroup2 hierarchy's mount,
 * or as /proc/PID/cgroup shows it (relative to that mount). 0, -ENODEV when no cgroup2
 * hierarchy is mounted, or -errno when the group is not there.
 */
int cgroup2_dir(const char *name, char *buf, size_t len);
/* Its executable's path (/proc/PID/exe), "" when it is gone. */
void proc_read_exe(pid_t pid, char *exe, size_t len);

/* A file-backed mapping whose path is a real file (not "[vdso]", not "(deleted)"). */
bool map_entry__is_file(const struct map_entry *e);
/* A file-backed mapping, deleted or not. */
bool map_entry__has_file(const struct map_entry *e);
/* Its path without the " (deleted)" the kernel appends; malloc'd. */
char *map_entry__file_path(const struct map_entry *e);

#endif
