/*
 * `allocprof diff BASE NEW`: what changed in the allocations between two sets of repeated runs
 * (benchstat for allocations): per function, the median of each side, its spread, the change and
 * whether the Mann-Whitney U test (user/utest.c) finds it significant; exit 1 on a significant
 * rise, for CI.
 */
#ifndef ALLOCPROF_DIFF_H
#define ALLOCPROF_DIFF_H

int cmd_diff(int argc, char **argv);

#endif
