/*
 * `allocprof check --budget FILE PROFILE...`: allocations per operation of functions, over one
 * or more profiles, against a budget file (budget.h), for CI: a table and an exit status.
 */
#ifndef ALLOCPROF_CHECK_H
#define ALLOCPROF_CHECK_H

int cmd_check(int argc, char **argv);

#endif
