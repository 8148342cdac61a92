/*
 * `allocprof record` options: the one place the command line is parsed and checked. Every
 * bad value gets one line naming the option and what was expected; nothing else here prints.
 */
#ifndef ALLOCPROF_OPTIONS_H
#define ALLOCPROF_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define DEFAULT_SAMPLE_BYTES (512 * 1024)
#define DEFAULT_MAX_STACKS   16384
#define DEFAULT_MAX_LIVE     262144
#define DEFAULT_MAX_CFI_ROWS (1u << 21)

struct record_opts {
	pid_t *pids;
	size_t npids;
	bool all;
	char **cmd;	      /* argv after "--", NULL-terminated; NULL when none */
	uint64_t duration_ns; /* 0: until Ctrl-C or every target exits */
	const char *output;   /* NULL: allocprof-<host>-<time>.pb.gz */
	int mode;	      /* --mode: the new file's exact mode; -1: private (outfile.c) */
	uint64_t sample_bytes;
	bool exact;
	uint64_t top; /* functions printed at the end; 0: none */
	bool quiet;
	uint64_t max_stacks;
	bool alloc_only;   /* no in-use tracking: no free or return probes */
	uint64_t max_live; /* blocks tracked for in-use at once */
	bool probe_at_entry;
	int stacks;		/* enum ap_stack_mode (--stacks) */
	uint64_t max_cfi_rows;	/* unwind-table rows kept in the kernel, for every file */
	bool no_follow;		/* -- CMD alone, not its descendants */
	char **comms;		/* --comm: only processes of these names (NULL: any) */
	size_t ncomms;
	const char *cgroup;	/* --cgroup: only processes in this cgroup v2 subtree */
	pid_t *exclude;		/* --exclude-pid */
	size_t nexclude;
	uint64_t interval_ns;	/* --interval: one file per interval; 0: one file at the end */
	const char *output_dir; /* --output-dir: files named allocprof-<host>-<UTC time>.pb.gz */
	uint64_t keep;		/* --keep: own files kept in output_dir; 0: all */
	char **ops;		/* --ops: functions whose calls are counted (AP_MAX_OPS at most) */
	size_t nops;
	uint64_t ops_given; /* --ops N: the number of operations the program did; 0: none */
	const char *svg;    /* --svg: the flame graph of the profile, written after it */
};

/* 0 when the options are good, -1 after --help, else 2 with the reason printed. */
int record_opts__parse(int argc, char **argv, struct record_opts *o);
void record_opts__free(struct record_opts *o);
void record_usage(FILE *f);

#endif
