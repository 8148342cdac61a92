/*
 * `allocprof top`: the top functions of any pprof profile by one sample type, as text, with
 * flat and cumulative values like `pprof -top`. Works on the decoded message, ours or Go's.
 */
#ifndef ALLOCPROF_TOP_H
#define ALLOCPROF_TOP_H

#include <stdio.h>

#include "profile.pb-c.h"

/* Index of the sample type named `name` (or a number), -1 if none. NULL: the default. */
int top_sample_index(const Perftools__Profiles__Profile *p, const char *name);
void top_print(FILE *out, const Perftools__Profiles__Profile *p, int sample_index, size_t n);
int cmd_top(int argc, char **argv);

#endif
