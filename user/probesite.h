/*
 * Where in an allocator function to put its uprobe: the first instruction that the kernel
 * emulates (a trap ~15x cheaper than a single-stepped one), that every call executes, and
 * before which the arguments the BPF program reads are untouched and the stack is known.
 * Anything not proved by decoding the function's bytes means its entry. Owns the choice;
 * knows nothing about ELF files, processes or BPF (the caller passes the bytes).
 */
#ifndef ALLOCPROF_PROBESITE_H
#define ALLOCPROF_PROBESITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How far from the entry a site may be: prologues are short. */
#define PROBE_SITE_MAX_PREFIX 64

/* Argument registers the BPF program reads at the site. */
#define PROBE_ARG_RDI (1u << 0)
#define PROBE_ARG_RSI (1u << 1)
#define PROBE_ARG_RDX (1u << 2)
#define PROBE_ARG_RCX (1u << 3)
/* Not an argument: both stack walks start from the caller's %rbp, in the register at the site. */
#define PROBE_ARG_RBP (1u << 4)

struct site_choice {
	uint64_t off;	    /* bytes from the function's entry */
	unsigned int slots; /* 8-byte stack slots from %rsp at the site to the return address */
	char why[96];	    /* for -v: "+3 je (emulated), after test" */
	bool refuse;	    /* no safe site: the kernel mishandles the entry instruction */
};

/*
 * code: the function's bytes, `size` of them from its entry (0: size unknown). args: the
 * PROBE_ARG_* registers the program reads at the site. keep_sp: a return probe shares the site
 * (the kernel hijacks the return address at %rsp), so only a site with slots == 0 will do.
 */
void probe_site__choose(const uint8_t *code, size_t size, unsigned int args, bool keep_sp,
			struct site_choice *out);

/*
 * For a probe at the entry whatever the chooser would say (--probe-at-entry, a function too
 * large to decode): true, with the reason in `why`, when its first instruction (in code[0],
 * `avail` bytes readable) is one the kernel mishandles, so it must not be probed at all.
 */
bool probe_site__entry_refused(const uint8_t *code, size_t avail, char *why, size_t len);

#endif
