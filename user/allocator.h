/*
 * Which allocator a process uses: the allocation entry points we know (malloc, calloc, ...,
 * the C++ operator new family) resolved the way the dynamic linker binds them, first
 * definition in load order, into a plan of probe sites (file, offset, size kind). Owns the
 * function table; knows nothing about BPF.
 */
#ifndef ALLOCPROF_ALLOCATOR_H
#define ALLOCPROF_ALLOCATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "allocprof.h"
#include "linkmap.h"

enum fn_role {
	FN_ALLOC,
	FN_FREE,
};

struct alloc_fn {
	const char *name;
	const char *pretty; /* for messages: "operator new(size_t)" */
	enum ap_size_kind kind;
	enum fn_role role;
	bool throws; /* a throwing operator new: never a return probe (see allocator.c) */
};

extern const struct alloc_fn alloc_fns[];
extern const size_t alloc_fns_nr;

struct alloc_lib {
	char *path;	 /* as the process sees it */
	char *open_path; /* how we open it: /proc/PID/root + path */
	uint64_t dev, ino;
	uint64_t base;		     /* where it is mapped in the process (0: not yet) */
	uint64_t real_dev, real_ino; /* the file under an overlay, when known (0: as dev/ino) */
};

struct probe_site {
	unsigned int fn;     /* index into alloc_fns; for an operation, into placement.ops */
	bool op;	     /* an operation's (--ops): counted at entry, nothing read */
	unsigned int lib;    /* index into plan.libs */
	uint64_t vaddr;	     /* of the function, in the file's own address space */
	uint64_t size;	     /* of the function, from its symbol */
	uint64_t offset;     /* file offset of vaddr */
	uint64_t past_entry; /* where the probe goes: bytes from the entry (see probesite.h) */
	unsigned int slots;  /* 8-byte stack slots from %rsp to the return address at the site */
	bool wrapper;	     /* may call another entry point (bpf/common.bpf.h, struct ap_thread) */
	char aliases[96];    /* other names at the same address, for messages (an operation:
				its name) */
	char why[96];	     /* why the site is where it is, for -v */
};

/* How probe sites are chosen (probesite.h says how a site past the entry is found). */
struct placement {
	bool at_entry;	    /* each function at its entry, not the first emulated instruction */
	bool return_probes; /* allocation functions also get a return probe at their site,
			       which needs the entry's stack pointer */
	char *const *ops;   /* functions whose calls are counted (--ops), resolved as well */
	size_t nops;
};

struct alloc_plan {
	struct alloc_lib *libs;
	size_t nlibs;
	struct probe_site *sites;
	size_t nsites;
	int malloc_lib;	    /* index of the object providing malloc */
	uint32_t ops_found; /* bit n: placement.ops[n] has a site (it may be in another plan's
			       files, which a cache of known files skips: the caller keeps count) */
	uint32_t ops_same;  /* bit n: placement.ops[n] is the function of an earlier name: no
			       site of its own (two names for one function, refused) */
	const char *unsure; /* an unreadable object searched before it: it may define malloc */
};

/*
 * Resolves the plan for `pid` from objects in load order (opened through their open_path,
 * else their path), its sites placed as `pl` says. -ENOENT when no object provides malloc.
 */
int alloc_plan__resolve(const struct load_order *lo, const struct placement *pl,
			struct alloc_plan *out);
/*
 * The same for a live process, from its load order now (load_order__of_pid); `rtld_path`,
 * when not NULL, gets its dynamic linker as /proc/PID/root sees it (NULL if static). 0 or
 * -errno: the load order's error, or -ENOENT when no object provides malloc.
 */
int alloc_plan__of_pid(pid_t pid, const struct placement *pl, struct alloc_plan *out,
		       char **rtld_path);
void alloc_plan__free(struct alloc_plan *p);
/* A site's function for messages: "malloc", "_Znwm", an operation's name. */
const char *probe_site__name(const struct probe_site *s);
/* One line per probed function, for -v. */
void alloc_plan__print(const struct alloc_plan *p, const char *what);

#endif
