/*
 * allocprof's exit statuses: a contract that scripts, timers and CI read, so each has one
 * meaning (README "Exit status", and every subcommand's --help, which the man page is made
 * from). With `record -- CMD`, CMD's own status is passed on instead once the profile is
 * written, so there 1 to 4 can also be CMD's. `check` is CI's: 1 when a budget is exceeded,
 * 2 for any input it cannot use (a profile or budget file), so that 1 always means "over".
 * `diff` likewise: 1 when a function rose significantly, 2 for input it cannot use.
 */
#ifndef ALLOCPROF_EXITSTATUS_H
#define ALLOCPROF_EXITSTATUS_H

enum ap_exit {
	AP_EXIT_OK = 0,		   /* the profile was written (top: printed) */
	AP_EXIT_FAILED = 1,	   /* the capture (or the reading) failed */
	AP_EXIT_USAGE = 2,	   /* bad command line */
	AP_EXIT_NOT_PERMITTED = 3, /* privileges, or a kernel or place allocprof cannot run in */
	AP_EXIT_NO_TARGET = 4,	   /* nothing to trace */
};

#endif
