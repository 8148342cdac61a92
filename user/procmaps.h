/*
 * /proc/PID/maps: parsing one snapshot of a process's mappings. Knows nothing about ELF or
 * symbols; a snapshot is a plain array, valid after the process is gone.
 */
#ifndef ALLOCPROF_PROCMAPS_H
#define ALLOCPROF_PROCMAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
/* A file-backed mapping whose path is a real file (not "[vdso]", not "(deleted)"). */
bool map_entry__is_file(const struct map_entry *e);

#endif
