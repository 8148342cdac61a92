/*
 * For targets started with --wait: block until SIGUSR1, so a tracer can attach first. Says so
 * on stderr when it starts waiting, so a script knows the process is there.
 */
#ifndef TARGETS_WAIT_USR1_H
#define TARGETS_WAIT_USR1_H

#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_seen = 1;
}

static void wait_usr1(const char *who)
{
	sigset_t set, old;

	signal(SIGUSR1, on_usr1);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	fprintf(stderr, "%s: waiting for SIGUSR1\n", who);
	while (!usr1_seen)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

#endif
