/*
 * `allocprof record`: runs one capture from the command line to the written profile. Owns the
 * order of things (check, resolve, attach, wait, detach, collect, write, report) and the
 * event loop; the work itself is done by the modules it calls.
 */
#ifndef ALLOCPROF_RECORD_H
#define ALLOCPROF_RECORD_H

#define ALLOCPROF_VERSION "0.1.0"

/* Returns the process exit status. */
int cmd_record(int argc, char **argv);

#endif
