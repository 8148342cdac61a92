/*
 * A target that knows its own allocations. Eight threads (by default) run the same call sites;
 * each site is a function of its own, so a profile's leaf function names the site, and at the
 * end the program writes what each site allocated: "site objects bytes" per line.
 *
 *   sites [--threads N] [--rounds N] [--wait] [--expect FILE] [--profile small|sampled]
 *         [--linger MS]
 *
 * --wait: block until SIGUSR1 before allocating (for attaching with -p first).
 * --linger MS: stay MS milliseconds after allocating, as a short-lived process of that
 *   lifetime would (a run is a few milliseconds otherwise).
 * --profile sampled: the size mix the sampled-estimate test needs (Sampled in
 *   tests/test_counts.py).
 * Memory is freed as it goes; nothing here measures speed.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wait_usr1.h"

#define NOINLINE  __attribute__((noinline))
#define MAX_SITES 16

struct site {
	const char *name;
	atomic_ullong objects, bytes;
};

static struct site sites[MAX_SITES];
static int nsites;
static int rounds = 200;
static int sampled_mix;

static struct site *site(const char *name)
{
	for (int i = 0; i < nsites; i++)
		if (!strcmp(sites[i].name, name))
			return &sites[i];
	sites[nsites].name = name;
	return &sites[nsites++];
}

static void count(const char *name, unsigned long long bytes)
{
	struct site *s = site(name);

	atomic_fetch_add(&s->objects, 1);
	atomic_fetch_add(&s->bytes, bytes);
}

/* Keeps the compiler from treating an allocation as dead. */
static void *volatile sink;

static void must(void *p)
{
	if (!p) {
		fputs("sites: allocation failed\n", stderr);
		exit(1);
	}
	sink = p;
}

NOINLINE static void site_malloc(int i)
{
	static const size_t sizes[] = { 16, 24, 100, 1000, 4096 };
	size_t n = sizes[i % 5];
	void *p = malloc(n);

	must(p);
	count("site_malloc", n);
	free(p);
}

NOINLINE static void site_calloc(int i)
{
	size_t n = 1 + i % 7;
	void *p = calloc(n, 32);

	must(p);
	count("site_calloc", n * 32);
	free(p);
}

/* A growing buffer: realloc(NULL, n) first, then four moves; each call is one allocation. */
NOINLINE static void site_realloc(int i)
{
	void *p = NULL;
	size_t n = 64 + i % 3;

	for (int k = 0; k < 5; k++, n *= 3) {
		p = realloc(p, n);
		must(p);
		count("site_realloc", n);
	}
	free(p);
}

NOINLINE static void site_posix_memalign(int i)
{
	size_t n = 200 + 8 * (i % 4);
	void *p = NULL;

	if (posix_memalign(&p, 64, n))
		must(NULL);
	must(p);
	count("site_posix_memalign", n);
	free(p);
}

NOINLINE static void site_aligned_alloc(int i)
{
	size_t n = 256 * (1 + i % 2);
	void *p = aligned_alloc(128, n);

	must(p);
	count("site_aligned_alloc", n);
	free(p);
}

NOINLINE static void site_reallocarray(int i)
{
	size_t n = 10 + i % 5;
	void *p = reallocarray(NULL, n, 12);

	must(p);
	count("site_reallocarray", n * 12);
	free(p);
}

/* malloc at the bottom of a 20-deep call chain: the stack must survive whole. */
NOINLINE static void site_deep(int i)
{
	void *p = malloc(48);

	must(p);
	count("site_deep", 48);
	free(p);
	(void)i;
}

NOINLINE static void chain(int depth, int i)
{
	if (depth == 0)
		site_deep(i);
	else
		chain(depth - 1, i);
	__asm__ volatile("" ::: "memory"); /* no tail call: every level keeps its frame */
}

NOINLINE static void site_large(int i)
{
	size_t n = (size_t)(1 + i % 4) << 20;
	void *p = malloc(n);

	must(p);
	count("site_large", n);
	free(p);
}

/* Sampled-mode sites: sizes around and above the test's sampling rate. */
NOINLINE static void site_medium(int i)
{
	size_t n = 32768 + 64 * (i % 16);
	void *p = malloc(n);

	must(p);
	count("site_medium", n);
	free(p);
}

/* One stack, two very different sizes: the per-stack average would mis-weight this. */
NOINLINE static void site_mixed(int i)
{
	size_t n = i % 2 ? 262144 : 64;
	void *p = malloc(n);

	must(p);
	count("site_mixed", n);
	free(p);
}

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < rounds; i++) {
		if (sampled_mix) {
			for (int k = 0; k < 20; k++)
				site_malloc(i * 20 + k);
			site_medium(i);
			site_mixed(2 * i);
			site_mixed(2 * i + 1);
			if (i % 16 == 0)
				site_large(i / 16);
			continue;
		}
		site_malloc(i);
		site_calloc(i);
		site_realloc(i);
		site_posix_memalign(i);
		site_aligned_alloc(i);
		site_reallocarray(i);
		chain(20, i);
		if (i % 50 == 0)
			site_large(i / 50);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *expect = NULL;
	int threads = 8, wait = 0, linger_ms = 0;
	pthread_t tid[64];
	FILE *f;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (!strcmp(argv[i], "--expect") && i + 1 < argc)
			expect = argv[++i];
		else if (!strcmp(argv[i], "--profile") && i + 1 < argc)
			sampled_mix = !strcmp(argv[++i], "sampled");
		else if (!strcmp(argv[i], "--linger") && i + 1 < argc)
			linger_ms = atoi(argv[++i]);
		else {
			fprintf(stderr, "sites: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (threads < 1 || threads > 64)
		return 2;
	/* Register every site before the threads start, so the table never changes under them. */
	if (sampled_mix) {
		site("site_malloc"), site("site_medium"), site("site_mixed"), site("site_large");
	} else {
		const char *names[] = { "site_malloc",	      "site_calloc",
					"site_realloc",	      "site_posix_memalign",
					"site_aligned_alloc", "site_reallocarray",
					"site_deep",	      "site_large" };

		for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			site(names[i]);
	}
	if (wait)
		wait_usr1("sites");
	for (int t = 0; t < threads; t++)
		if (pthread_create(&tid[t], NULL, worker, NULL))
			return 1;
	for (int t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	f = expect ? fopen(expect, "w") : stdout;
	if (!f)
		return 1;
	for (int i = 0; i < nsites; i++)
		fprintf(f, "%s %llu %llu\n", sites[i].name, (unsigned long long)sites[i].objects,
			(unsigned long long)sites[i].bytes);
	if (f != stdout)
		fclose(f);
	if (linger_ms > 0)
		usleep((useconds_t)linger_ms * 1000);
	return 0;
}
