/*
 * What record.c (the order of things, the event loop) and record_write.c (each file's profile:
 * collected, commented, encoded, written, summarized) share of one run. Only these include it.
 */
#ifndef ALLOCPROF_RECORD_PRIV_H
#define ALLOCPROF_RECORD_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"

struct out_file;
struct ring_buffer;
struct interval;
struct collect_base;
struct symbolizer;

/* What only the event loop and the set-up need, around the shared capture state. */
struct run {
	struct capture c;
	struct out_file *out;
	struct out_file *svg; /* --svg: the picture of the profile, written after it */
	char *out_path;
	struct ring_buffer *events;
	int sigfd;
	bool progress;
	/* New (process, stack) counters the probes reported: the progress line's stacks. */
	uint64_t new_stacks;
	struct interval *iv; /* --output-dir: names, --keep */
	/* --interval: the interval being recorded, and what the last file was computed from */
	struct collect_base *base;
	uint64_t iv_mono, iv_real; /* when it began */
	uint64_t next_file;	   /* when it ends (CLOCK_MONOTONIC) */
	bool write_now;		   /* SIGUSR1: it ends now */
	bool write_failed;	   /* a file could not be written where it should: exit status 1 */
	size_t files;
	/*
	 * --interval: the symbols of the files' frames, kept from file to file (reading a
	 * file's symbols and DWARF again for every file would cost more than the rest of it),
	 * and made anew once about as many mapped files were closed as are open: what it holds
	 * of files no process maps any more stays bounded.
	 */
	struct symbolizer *sym;
	size_t sym_closed; /* files closed since it was made */
};

/*
 * --interval: the file of the interval that ends now (`last`: the capture's last), while the
 * probes run; its failures are said and set r->write_failed.
 */
void record_write_interval(struct run *r, bool last);
/* The end: the counters frozen, the profile (or the last interval's) written. 0 or -1. */
int record_finish(struct run *r);

#endif
