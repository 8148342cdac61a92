/*
 * What each traced process had mapped, kept past its exit: snapshots of /proc/PID/maps merged
 * over the capture, and one open descriptor per distinct mapped file so it can be symbolized
 * after the process (or the file's directory entry) is gone. Knows nothing about symbols.
 */
#ifndef ALLOCPROF_ADDRSPACE_H
#define ALLOCPROF_ADDRSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mapped_file {
	uint64_t dev, ino;
	char *path;  /* as the process saw it */
	int fd;	     /* -1 when it could not be opened */
	bool pinned; /* added by addrspaces__add_file: kept for processes not seen yet */
};

struct space_map {
	uint64_t start, end, pgoff;
	struct mapped_file *file; /* NULL: anonymous or a kernel mapping like [vdso] */
	const char *name;	  /* the maps line's name, "" for anonymous */
	uint64_t id;		  /* unique over the capture, for the profile's Mapping ids */
};

struct addrspaces;

struct addrspaces *addrspaces__new(void);
void addrspaces__free(struct addrspaces *as);

/*
 * Reads pid's mappings now and merges them into what is known of it for the program it runs
 * now: a mapping seen before and overlapped by none now is kept, so stacks recorded earlier
 * still resolve. 0 or -errno.
 */
int addrspaces__snapshot(struct addrspaces *as, pid_t pid);
const struct space_map *addrspaces__find(const struct addrspaces *as, pid_t pid, uint32_t image,
					 uint64_t addr);

/*
 * Whether /proc/PID/maps of this process and program was read: then an address in none of its
 * executable mappings is not code (the kernel's records alone cover only some frames, and no
 * anonymous code).
 */
bool addrspaces__known(const struct addrspaces *as, pid_t pid, uint32_t image);
/*
 * What its first snapshot said of the process: its executable (/proc/PID/exe) and, when it
 * is in a container (a mount namespace other than init's, or allocprof's own where init's
 * cannot be read), the container: its cgroup path, or
 * its mount namespace when that path says nothing. NULL for what is not known.
 */
void addrspaces__labels(const struct addrspaces *as, pid_t pid, uint32_t image, const char **exe,
			const char **container);

/*
 * A file processes map or will map (a command's libraries known before it runs, the libraries
 * probed), opened now at `open_path`; `path` is its name as the processes see it.
 */
void addrspaces__add_file(struct addrspaces *as, const char *open_path, const char *path);
/* The file known as (dev, ino) is also (real_dev, real_ino): the one under an overlay. */
void addrspaces__alias_file(struct addrspaces *as, uint64_t dev, uint64_t ino, uint64_t real_dev,
			    uint64_t real_ino);
/*
 * A mapping the kernel recorded for a process (struct ap_vma), added where no snapshot has one:
 * for a process gone before its mappings could be read. Its file is one opened before (by a
 * snapshot or addrspaces__add_file) with the same identity; otherwise only `name` is known.
 */
void addrspaces__add_vma(struct addrspaces *as, pid_t pid, uint32_t image, uint64_t start,
			 uint64_t end, uint64_t offset, uint64_t dev, uint64_t ino,
			 const char *name);
/*
 * Periodic capture: forgets every process for which `gone` says true (it exited, and the last
 * file that needs its frames is written), and closes the files no process left maps, except
 * those given to addrspaces__add_file (how many: *closed). Returns how many processes were
 * forgotten.
 */
size_t addrspaces__forget(struct addrspaces *as, bool (*gone)(void *ctx, pid_t pid, uint32_t image),
			  void *ctx, size_t *closed);
/* Calls fn for every process held (a process may have a snapshot and no counter at all). */
void addrspaces__each(const struct addrspaces *as, void (*fn)(void *ctx, pid_t pid, uint32_t image),
		      void *ctx);
/* Processes and open files held, for -v and the soak measurement. */
void addrspaces__counts(const struct addrspaces *as, size_t *procs, size_t *files);
/* Files that could not be opened (each counted once), for the capture's statistics. */
size_t addrspaces__unreadable(const struct addrspaces *as);

#endif
