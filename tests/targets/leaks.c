/*
 * A target that knows what it leaves allocated. Eight threads (by default) run the same call
 * sites, each a function of its own; some free everything they allocate, some keep part of it
 * until exit (deliberate leaks), one hands its blocks to the next thread, which frees them.
 * At the end it writes, per site, "site objects bytes inuse_objects inuse_bytes": what it
 * allocated, and what was still allocated when it exited.
 *
 *   leaks [--threads N] [--rounds N] [--wait] [--expect FILE]
 *   leaks --live-mb N [--churn N] [--wait] [--expect FILE]
 *
 * The second form holds a live set of about N MB in blocks of mixed sizes (site_hold), while
 * allocating and freeing N * churn MB more (site_churn), then waits for SIGTERM (or exits with
 * --exit) so the live set is what a capture ends with.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wait_usr1.h"

#define NOINLINE    __attribute__((noinline))
#define MAX_SITES   16
#define MAX_THREADS 64

struct site {
	const char *name;
	atomic_ullong objects, bytes, inuse_objects, inuse_bytes;
};

static struct site sites[MAX_SITES];
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;
static int rounds = 200;
static int nthreads = 8;
static pthread_barrier_t barrier;
static void **handoff[MAX_THREADS];

static struct site *site(const char *name)
{
	struct site *s = NULL;

	pthread_mutex_lock(&sites_lock);
	for (int i = 0; i < MAX_SITES && sites[i].name && !s; i++)
		if (!strcmp(sites[i].name, name))
			s = &sites[i];
	for (int i = 0; i < MAX_SITES && !s; i++)
		if (!sites[i].name) {
			sites[i].name = name;
			s = &sites[i];
		}
	pthread_mutex_unlock(&sites_lock);
	return s;
}

static void alloced(const char *name, unsigned long long bytes)
{
	struct site *s = site(name);

	atomic_fetch_add(&s->objects, 1);
	atomic_fetch_add(&s->bytes, bytes);
}

static void leaked(const char *name, unsigned long long bytes)
{
	struct site *s = site(name);

	atomic_fetch_add(&s->inuse_objects, 1);
	atomic_fetch_add(&s->inuse_bytes, bytes);
}

static void *volatile sink;

static void must(void *p)
{
	if (!p) {
		fputs("leaks: allocation failed\n", stderr);
		exit(1);
	}
	sink = p;
}

/* Kept until exit: every fourth round. */
NOINLINE static void site_leak(int i)
{
	size_t n = 40 + 8 * (i % 5);
	void *p = malloc(n);

	must(p);
	alloced("site_leak", n);
	if (i % 4 == 0)
		leaked("site_leak", n);
	else
		free(p);
}

NOINLINE static void site_freed(int i)
{
	size_t n = 100 + i % 50;
	void *p = calloc(1, n);

	must(p);
	alloced("site_freed", n);
	free(p);
}

/* Allocated here, freed by the next thread (site_handoff_free frees, allocates nothing). */
NOINLINE static void site_handoff(int self, int i)
{
	size_t n = 64 + 16 * (i % 3);
	void *p = malloc(n);

	must(p);
	alloced("site_handoff", n);
	handoff[self][i] = p;
}

/* A growing buffer, realloc(NULL, n) then three moves; every other round's final block kept. */
NOINLINE static void site_realloc_chain(int i)
{
	void *p = NULL;
	size_t n = 24 + i % 7;

	for (int k = 0; k < 4; k++, n *= 5) {
		p = realloc(p, n);
		must(p);
		alloced("site_realloc_chain", n);
	}
	n /= 5;
	if (i % 2)
		leaked("site_realloc_chain", n);
	else
		free(p);
}

/* realloc that cannot succeed: NULL, and the old block stays allocated (and is kept). */
NOINLINE static void site_realloc_fails(int i)
{
	size_t n = 72;
	void *p = malloc(n), *q;

	must(p);
	alloced("site_realloc_fails", n);
	if (i % 50)
		free(p);
	else {
		/* Nearly the whole address space: refused by every allocator. */
		q = realloc(p, ((size_t)1 << 47) - ((size_t)1 << 20));
		if (q) {
			fputs("leaks: a 128 TiB realloc succeeded\n", stderr);
			exit(1);
		}
		leaked("site_realloc_fails", n);
	}
}

/* realloc(p, 0) frees p, and so does reallocarray(p, n, 0). */
NOINLINE static void site_realloc_zero(int i)
{
	size_t n = 300;
	void *p = malloc(n), *r;

	must(p);
	alloced("site_realloc_zero", n);
	/* In a local: `sink` is every thread's, another's block may be there by the free. */
	if (i % 2)
		r = realloc(p, 0);
	else
		r = reallocarray(p, 4, 0);
	sink = r;
	free(r);
}

NOINLINE static void site_memalign(int i)
{
	size_t n = 96 + 32 * (i % 2);
	void *p = NULL, *q;

	if (posix_memalign(&p, 64, n))
		must(NULL);
	must(p);
	alloced("site_memalign", n);
	q = aligned_alloc(256, 512);
	must(q);
	alloced("site_memalign", 512);
	free(q);
	if (i % 10 == 0)
		leaked("site_memalign", n);
	else
		free(p);
}

static void *worker(void *arg)
{
	int self = (int)(intptr_t)arg, next = (self + 1) % nthreads;

	handoff[self] = calloc((size_t)rounds, sizeof(void *));
	must(handoff[self]);
	for (int i = 0; i < rounds; i++) {
		site_leak(i);
		site_freed(i);
		site_handoff(self, i);
		site_realloc_chain(i);
		site_realloc_fails(i);
		site_realloc_zero(i);
		site_memalign(i);
	}
	/* Everyone has filled their hand-off list: free the next thread's. */
	pthread_barrier_wait(&barrier);
	for (int i = 0; i < rounds; i++)
		free(handoff[next][i]);
	pthread_barrier_wait(&barrier);
	free(handoff[self]);
	return NULL;
}

/* ---- the live-set form ---------------------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Sizes from 64 B to 256 KiB, log-uniform: the mix a server holds. */
static size_t mixed_size(void)
{
	return (size_t)64 << (next_rand() % 13);
}

NOINLINE static void *site_hold(size_t n)
{
	void *p = malloc(n);

	must(p);
	memset(p, 1, n < 4096 ? n : 4096);
	alloced("site_hold", n);
	leaked("site_hold", n);
	return p;
}

NOINLINE static void site_churn(size_t n)
{
	void *p = malloc(n);

	must(p);
	alloced("site_churn", n);
	free(p);
}

static void hold_live_set(unsigned long long mb, unsigned long long churn)
{
	unsigned long long target = mb << 20, held = 0, churned = 0;

	while (held < target) {
		size_t n = mixed_size();

		site_hold(n);
		held += n;
		for (int k = 0; k < (int)churn; k++) {
			size_t c = mixed_size();

			site_churn(c);
			churned += c;
		}
	}
	fprintf(stderr, "leaks: holding %llu bytes, churned %llu\n", held, churned);
}

static void write_expect(const char *path)
{
	FILE *f = fopen(path, "we");

	if (!f) {
		perror(path);
		exit(1);
	}
	for (int i = 0; i < MAX_SITES && sites[i].name; i++)
		fprintf(f, "%s %llu %llu %llu %llu\n", sites[i].name,
			(unsigned long long)sites[i].objects, (unsigned long long)sites[i].bytes,
			(unsigned long long)sites[i].inuse_objects,
			(unsigned long long)sites[i].inuse_bytes);
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *expect = NULL;
	unsigned long long live_mb = 0, churn = 4;
	pthread_t th[MAX_THREADS];
	int wait = 0, stay = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--expect") && i + 1 < argc)
			expect = argv[++i];
		else if (!strcmp(argv[i], "--live-mb") && i + 1 < argc)
			live_mb = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--churn") && i + 1 < argc)
			churn = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--exit"))
			stay = 0;
		else if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else {
			fprintf(stderr, "usage: leaks [--threads N] [--rounds N] [--wait] "
					"[--expect FILE] [--live-mb N [--churn N] [--exit]]\n");
			return 2;
		}
	}
	if (nthreads < 1 || nthreads > MAX_THREADS || rounds < 1)
		return 2;
	if (wait)
		wait_usr1("leaks");
	if (live_mb) {
		hold_live_set(live_mb, churn);
		if (expect)
			write_expect(expect);
		fprintf(stderr, "leaks: holding\n");
		while (stay)
			pause(); /* until SIGTERM */
		return 0;
	}
	pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i)) {
			fputs("leaks: cannot start threads\n", stderr);
			return 1;
		}
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	if (expect)
		write_expect(expect);
	return 0;
}
