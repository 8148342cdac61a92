/*
 * The profiles a reading command's line names (top, check, diff): a file, "-" for standard
 * input, or a directory meaning every profile file in it; read with their failures said in
 * one line each. Also the one-line message of a bad option, the same in every command.
 */
#ifndef ALLOCPROF_PROFILES_H
#define ALLOCPROF_PROFILES_H

#include <stddef.h>

#include "profile.pb-c.h"

/*
 * Appends to *paths (malloc'd strings, *n of them, room for *cap) the profiles `arg` names:
 * itself, or for a directory its files ending .pb.gz, .pb or .pprof, in name order; a file
 * already in the list is not added again (said, when it was named itself). 0, or -1
 * after one line on stderr (`cmd`: "check", "diff", for its beginning) when the directory
 * cannot be read or has no profile.
 */
int profiles_expand(const char *cmd, const char *arg, char ***paths, size_t *n, size_t *cap);
void profiles_free(char **paths, size_t n);

/* Reads a profile (pprof_read). 0, or -1 after one line on stderr saying why not. */
int profiles_read(const char *cmd, const char *path, Perftools__Profiles__Profile **out);

/*
 * For getopt_long_only's ':' (a missing value) and '?' (an unknown option) returns: says so
 * in one line naming the command and its --help, and returns the exit status of a bad
 * command line.
 */
int profiles_bad_option(const char *cmd, int c, int optopt, const char *arg);

#endif
