/*
 * unwind-garbage: calls each function of garbage.S (see there) from a C function of its own,
 * called from main, --rounds times after --wait's SIGUSR1. Each case allocates its own size,
 * so its counts are known: --expect FILE writes "site objects bytes", site being the
 * assembly function (the allocation's caller).
 *
 *   expected stack (leaf first): gb_X  gb_run_X  main  __libc_start_call_main ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "targets/wait_usr1.h"

#define KEEP(x) __asm__ volatile("" : "+r"(x))

void *gb_data_rbp(size_t n);
void *gb_fake_chain(size_t n);
void *gb_stale_record(size_t n);

#define SIZE_DATA  24
#define SIZE_CHAIN 40
#define SIZE_STALE 56

/* Each C caller uses the block after the call: no tail call, its own frame on the stack. */
#define CALLER(name, fn, size)                                                                     \
	__attribute__((noinline)) int name(void)                                                   \
	{                                                                                          \
		char *p = fn(size);                                                                \
		KEEP(p);                                                                           \
		if (!p)                                                                            \
			abort();                                                                   \
		p[0] = 1;                                                                          \
		int r = p[0];                                                                      \
		free(p);                                                                           \
		return r;                                                                          \
	}
CALLER(gb_run_data_rbp, gb_data_rbp, SIZE_DATA)
CALLER(gb_run_fake_chain, gb_fake_chain, SIZE_CHAIN)
CALLER(gb_run_stale_record, gb_stale_record, SIZE_STALE)

int main(int argc, char **argv)
{
	const char *expect = NULL;
	int rounds = 10, wait = 0, sum = 0;

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
		wait_usr1("unwind-garbage");
	for (int i = 0; i < rounds; i++) {
		sum += gb_run_data_rbp();
		KEEP(sum);
		sum += gb_run_fake_chain();
		KEEP(sum);
		sum += gb_run_stale_record();
		KEEP(sum);
	}
	printf("unwind-garbage: %d rounds of 3 cases (%d)\n", rounds, sum);
	if (expect) {
		FILE *f = fopen(expect, "w");

		if (!f)
			return 1;
		fprintf(f, "gb_data_rbp %d %d\n", rounds, rounds * SIZE_DATA);
		fprintf(f, "gb_fake_chain %d %d\n", rounds, rounds * SIZE_CHAIN);
		fprintf(f, "gb_stale_record %d %d\n", rounds, rounds * SIZE_STALE);
		fclose(f);
	}
	return 0;
}
