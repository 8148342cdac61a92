/*
 * unwind-deep-fp / unwind-deep-nofp: the same source built with and without frame pointers
 * (its library, libunwdeep-*.so, too). After --wait's SIGUSR1 the main thread and --threads
 * N threads each run --rounds R rounds of: a recursion UNW_DEPTH levels deep (unw_recurse)
 * whose last level calls unw_lib_entry in the library, which makes one malloc, one calloc
 * and one realloc. So every counted stack is, leaf first:
 *   unw_lib_{malloc,calloc,realloc} unw_lib_entry unw_recurse x (UNW_DEPTH + 1) ROOTFN ...
 * (work is a function of its own too) with ROOTFN unw_main_work (then main) or unw_thread_main (then start_thread). Nothing in
 * the chain is inlined or a tail call, in either build.
 *
 *   --expect FILE   writes "site objects bytes" lines: each leaf, and "via:ROOTFN" for the
 *                   stacks going through that function
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deep.h"
#include "targets/wait_usr1.h"

#define KEEP(x) __asm__ volatile("" : "+r"(x))

static int rounds = 50;

__attribute__((noinline)) long unw_recurse(int depth, int salt)
{
	long r;

	if (depth == 0)
		r = unw_lib_entry(salt);
	else
		r = unw_recurse(depth - 1, salt + 1);
	KEEP(r);
	return r + 1;
}

__attribute__((noinline)) static long work(void)
{
	long sum = 0;

	for (int i = 0; i < rounds; i++) {
		long r = unw_recurse(UNW_DEPTH, i);

		KEEP(r);
		sum += r;
	}
	return sum;
}

__attribute__((noinline)) long unw_main_work(void)
{
	long r = work();

	KEEP(r);
	return r;
}

__attribute__((noinline)) void *unw_thread_main(void *arg)
{
	long r = work();

	KEEP(r);
	*(long *)arg = r;
	return arg;
}

int main(int argc, char **argv)
{
	const char *expect = NULL;
	int nthreads = 2, wait = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (!strcmp(argv[i], "--expect") && i + 1 < argc)
			expect = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--wait] [--expect FILE] [--threads N] "
					"[--rounds N]\n", argv[0]);
			return 2;
		}
	}
	if (nthreads < 0 || nthreads > 16 || rounds < 1)
		return 2;
	/* Whatever stdio allocates for itself, before the counted work. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (wait)
		wait_usr1("unwind-deep");

	pthread_t th[16];
	long res[16];
	for (int t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, unw_thread_main, &res[t]))
			return 1;
	long r = unw_main_work();
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	KEEP(r);

	long per = rounds, all = (long)rounds * (nthreads + 1);
	printf("unwind-deep: %d threads + main, %d rounds each, depth %d: %ld malloc, %ld calloc, "
	       "%ld realloc\n", nthreads, rounds, UNW_DEPTH, all, all, all);
	if (expect) {
		FILE *f = fopen(expect, "w");
		long round_bytes = UNW_MALLOC_SIZE + UNW_CALLOC_NMEMB * UNW_CALLOC_SIZE +
				   UNW_REALLOC_SIZE;

		if (!f)
			return 1;
		fprintf(f, "unw_lib_malloc %ld %ld\n", all, all * UNW_MALLOC_SIZE);
		fprintf(f, "unw_lib_calloc %ld %ld\n", all,
			all * UNW_CALLOC_NMEMB * UNW_CALLOC_SIZE);
		fprintf(f, "unw_lib_realloc %ld %ld\n", all, all * UNW_REALLOC_SIZE);
		fprintf(f, "via:unw_main_work %ld %ld\n", 3 * per, per * round_bytes);
		fprintf(f, "via:unw_thread_main %ld %ld\n", 3 * per * nthreads,
			per * nthreads * round_bytes);
		fclose(f);
	}
	return 0;
}
