/*
 * The objects a process loads, in the dynamic linker's search order (the executable, preloaded
 * libraries, then needed libraries breadth-first): for a live process from the dynamic
 * linker's r_debug/link_map list in its memory; for a program not started yet from the dynamic
 * linker itself (`ld.so --list`), so both are the dynamic linker's own answer. Owns the reading
 * of another process's memory; knows nothing about allocators.
 */
#ifndef ALLOCPROF_LINKMAP_H
#define ALLOCPROF_LINKMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "procmaps.h"

struct loaded_obj {
	char *path;	   /* as the process sees it (its mount namespace) */
	char *open_path;   /* how we open it: /proc/PID/root + path, or /proc/PID/map_files/... */
	uint64_t base;	   /* lowest mapped address of its first segment (0 if unknown) */
	uint64_t dev, ino; /* from the mapping, to match snapshots; 0 if not mapped */
};

struct load_order {
	struct loaded_obj *o;
	size_t n;
	bool from_link_map; /* false: the executable then mappings by address (a guess) */
	bool rtld_consistent;
	uint64_t rtld_base; /* AT_BASE: where the dynamic linker is loaded, 0 if static */
	char *rtld_path;    /* the dynamic linker, as the process sees it; NULL if static */
};

/* 0 or -errno; `maps` is a snapshot of the same process. */
int load_order__read(pid_t pid, const struct proc_maps *maps, struct load_order *out);
/* The same from a snapshot of its mappings taken now. 0 or -errno (-ENOENT: no such pid). */
int load_order__of_pid(pid_t pid, struct load_order *out);
/*
 * What the dynamic linker `interp` will load for the program file `program`, in this process's
 * environment and mount namespace (a command started from here inherits both). Asks it with
 * `interp --list program`, which maps the objects and runs none of their code. With `secure`
 * (the program will run in secure-execution mode: setuid, setgid, file capabilities) the
 * variables such a program's linker ignores are left out. 0 or -errno.
 */
int load_order__list(const char *interp, const char *program, bool secure, struct load_order *out);
/* Whether exec of `path` from here runs it in secure-execution mode (AT_SECURE). */
bool exec_is_secure(const char *path);
/* Just one file, for a statically linked program: nothing else is loaded. 0 or -errno. */
int load_order__file(const char *path, struct load_order *out);
void load_order__free(struct load_order *lo);

#endif
