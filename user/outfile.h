/*
 * Writing the output file atomically: an unnamed temporary file in the destination's directory
 * from the start (a missing or read-only directory fails before anything is attached; nothing
 * is left if allocprof is killed), renamed over the destination when complete, so a reader
 * never sees a partial file.
 */
#ifndef ALLOCPROF_OUTFILE_H
#define ALLOCPROF_OUTFILE_H

#include <stddef.h>

struct out_file;

/* 0 or -errno; on error nothing is left behind. */
int out_file__open(const char *path, struct out_file **out);
/* Writes, syncs and renames into place, then frees. 0 or -errno (temp file removed). */
int out_file__commit(struct out_file *f, const void *data, size_t len);
/* Removes the temporary file and frees. */
void out_file__abort(struct out_file *f);
const char *out_file__path(const struct out_file *f);

#endif
