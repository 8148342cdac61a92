/*
 * Unwind tables: one ELF file's call-frame information (.eh_frame, and .debug_frame for code
 * .eh_frame does not cover) evaluated by libdw and turned into the sorted rows the BPF stack
 * walk searches (struct ap_cfi_row in allocprof.h), keyed by file offset. Owns the rows it
 * builds; knows nothing about processes, mappings or BPF maps.
 */
#ifndef ALLOCPROF_CFI_H
#define ALLOCPROF_CFI_H

#include <stdbool.h>
#include <stddef.h>

#include "allocprof.h"

struct cfi_table {
	/* sorted by off, strictly increasing, adjacent equal rules merged */
	struct ap_cfi_row *rows;
	size_t nr;
	/* what the build saw, for -v and the profile comments */
	size_t fdes;	    /* FDEs (or CIE/FDE ranges) read */
	size_t unsupported; /* rows marked AP_CFI_UNSUPPORTED */
	size_t plt;	    /* rows using the PLT expression */
	size_t signal;	    /* signal-frame rows */
	bool debug_frame;   /* .debug_frame contributed rows */
	double build_ms;    /* wall time of the build */
};

/*
 * Builds the table of the ELF file open on fd (not closed). 0, or a negative errno with a one-line
 * reason in err (e.g. "no .eh_frame or .debug_frame", "not an x86-64 ELF file").
 */
int cfi_table__build(int fd, struct cfi_table **out, char *err, size_t errlen);
void cfi_table__free(struct cfi_table *t);

#endif
