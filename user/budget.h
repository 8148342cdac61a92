/*
 * Allocation budgets (`allocprof check --budget FILE`): the file's format and its parser. One
 * budget a line, "FUNCTION N allocs/op" or "FUNCTION SIZE bytes/op"; knows nothing of profiles.
 */
#ifndef ALLOCPROF_BUDGET_H
#define ALLOCPROF_BUDGET_H

#include <stddef.h>

enum budget_kind {
	BUDGET_ALLOCS, /* allocations per operation */
	BUDGET_BYTES,  /* bytes per operation */
};

struct budget {
	char *func; /* any non-whitespace characters; raw (escape to print) */
	enum budget_kind kind;
	double limit; /* >= 0; may be fractional */
	int line;     /* where in the file, from 1 */
};

struct budgets {
	struct budget *b; /* in the file's order */
	size_t n;
};

/*
 * Parses a budget file's text (`len` bytes, NULs allowed: they make a line malformed) read
 * from `file` (the name messages give). The format:
 * - "FUNCTION N allocs/op": N a decimal number (2, 2.5, .5);
 * - "FUNCTION SIZE bytes/op": SIZE a decimal number with an optional suffix that
 *   --sample-bytes takes (b, k, kb, kib, m, mb, mib, g, gb, gib; any case): 4096, 1.5k, 2MiB;
 * - "#" at the start of a line or after whitespace starts a comment to the end of the line;
 *   blank lines are ignored. Fields are separated by any whitespace.
 * A function may have one budget of each kind. Returns 0, or -EINVAL with one line in `err`
 * saying "FILE:LINE: what is wrong" (a file without any budget is an error too).
 */
int budgets__parse(const char *text, size_t len, const char *file, struct budgets *out, char *err,
		   size_t errlen);
/* Reads and parses `path`: as budgets__parse, or -errno (err says so too) when unreadable. */
int budgets__read(const char *path, struct budgets *out, char *err, size_t errlen);
void budgets__free(struct budgets *b);
/* "allocs/op" or "bytes/op". */
const char *budget_unit(enum budget_kind kind);

#endif
