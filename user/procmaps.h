/*
 * /proc/PID/maps: parsing one snapshot of a process's mappings (a plain array, valid after the
 * process is gone), and the other small /proc/PID files. Knows nothing about ELF or symbols.
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
/* The process's name (/proc/PID/comm), "" when it is gone. */
void proc_read_comm(pid_t pid, char comm[16]);
/* Its executable's path (/proc/PID/exe), "" when it is gone. */
void proc_read_exe(pid_t pid, char *exe, size_t len);

/* A file-backed mapping whose path is a real file (not "[vdso]", not "(deleted)"). */
bool map_entry__is_file(const struct map_entry *e);
/* A file-backed mapping, deleted or not. */
bool map_entry__has_file(const struct map_entry *e);
/* Its path without the " (deleted)" the kernel appends; malloc'd. */
char *map_entry__file_path(const struct map_entry *e);

#endif
