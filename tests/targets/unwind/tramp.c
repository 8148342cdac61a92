/*
 * unwind-tramp-fp / unwind-tramp-nofp: main calls tr_outer (once, after --wait's SIGUSR1),
 * which calls tr_middle --rounds times, which mallocs. A test puts another tracer's return
 * probe on tr_outer (tracefs), so while it runs its return address on the stack is the
 * kernel's uretprobe trampoline; every malloc's stack must still read
 *   tr_middle  tr_outer  main  __libc_start_call_main ...
 * --expect FILE writes "tr_middle objects bytes".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "targets/wait_usr1.h"

#define KEEP(x) __asm__ volatile("" : "+r"(x))
#define TR_SIZE 72

__attribute__((noinline)) long tr_middle(int i)
{
	char *p = malloc(TR_SIZE);

	KEEP(p);
	if (!p)
		abort();
	p[0] = (char)i;
	long r = p[0];
	free(p);
	return r;
}

__attribute__((noinline)) long tr_outer(int rounds)
{
	long sum = 0;

	for (int i = 0; i < rounds; i++) {
		long r = tr_middle(i);

		KEEP(r);
		sum += r;
	}
	KEEP(sum);
	return sum + 1;
}

int main(int argc, char **argv)
{
	const char *expect = NULL;
	int rounds = 20, wait = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (!strcmp(argv[i], "--expect") && i + 1 < argc)
			expect = argv[++i];
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else
			return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (wait)
		wait_usr1("unwind-tramp");
	long r = tr_outer(rounds);
	KEEP(r);
	printf("unwind-tramp: %d mallocs in tr_middle under tr_outer (%ld)\n", rounds, r);
	if (expect) {
		FILE *f = fopen(expect, "w");

		if (!f)
			return 1;
		fprintf(f, "tr_middle %d %d\n", rounds, rounds * TR_SIZE);
		fclose(f);
	}
	return 0;
}
