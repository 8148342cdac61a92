/*
 * What must hold before a capture can start: privileges and kernel features. Each check
 * prints one line saying what is missing and how to get it; nothing here changes anything.
 */
#ifndef ALLOCPROF_PREFLIGHT_H
#define ALLOCPROF_PREFLIGHT_H

struct record_opts;

/*
 * 0 when the capture of `o`'s targets can go ahead; -EPERM (privileges, lockdown) or -ENOTSUP
 * (no BTF, no uprobes, a nested pid namespace) with the reason printed: either way this
 * machine cannot be profiled as asked (exit status 3). Targets that do not exist are left for
 * the caller to report.
 */
int preflight_check(const struct record_opts *o);

#endif
