/*
 * What must hold before a capture can start: privileges and kernel features. Each check
 * prints one line saying what is missing and how to get it; nothing here changes anything.
 */
#ifndef ALLOCPROF_PREFLIGHT_H
#define ALLOCPROF_PREFLIGHT_H

/* 0 when the capture can go ahead; -EPERM or -ENOTSUP with the reason printed. */
int preflight_check(void);

#endif
