/*
 * The files of --output-dir (and --interval, --keep): the directory, each file's name, and the
 * pruning of the oldest. Names sort by time and carry the host: allocprof-<host>-<UTC
 * time>.pb.gz, with _1, _2... before the suffix when two land in one second. Knows nothing of
 * what is in the files; writing them is outfile.c's, collecting them collect.c's.
 */
#ifndef ALLOCPROF_INTERVAL_H
#define ALLOCPROF_INTERVAL_H

#include <stddef.h>
#include <stdint.h>

struct interval;

/*
 * Opens the directory (it must exist) and checks that a file of mode `mode` (--mode; -1:
 * private) can be written there, for files kept `keep` at most (0: all). NULL with the reason
 * said in one line.
 */
struct interval *interval__new(const char *dir, uint64_t keep, int mode);
void interval__free(struct interval *iv);

/*
 * The path of the next file, written at `real_ns` (CLOCK_REALTIME, the end of its interval):
 * a name no file in the directory has, nor the last one given. Malloc'd.
 */
char *interval__name(struct interval *iv, uint64_t real_ns);

/*
 * After a file was written: deletes the oldest of this host's allocprof files in the directory
 * (regular files of allocprof's user or the sudo user, named as interval__name() names them)
 * beyond `keep`. Nothing else is ever deleted. How many were.
 */
size_t interval__prune(struct interval *iv);

/* Whether `name` (no directory) is one of this host's files, as --keep sees them (tests). */
int interval__own_name(const struct interval *iv, const char *name);

#endif
