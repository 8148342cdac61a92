/*
 * A request-shaped target for allocations per operation: a server loop whose handler,
 * handle_request(), makes a known number of allocations per call, in functions of its own,
 * beside allocations outside any request (start-up, shutdown) that a per-operation figure of
 * the handler must not include.
 *
 *   requests [--requests N] [--threads N] [--extra N] [--bigger N] [--wait] [--expect FILE]
 *            [--time]
 *
 * Per request: parse_headers() 3 x malloc(64); build_response() calloc(4, 128) and
 * malloc(1000); log_line() malloc(100): 6 allocations, 1804 bytes. --extra N: N more
 * malloc(32) in build_response() (a regression of N allocations per request); --bigger N:
 * log_line() asks for N bytes more (a regression of bytes only). Outside requests: 10 x
 * malloc(4096) at start-up and 1 x malloc(8192) at shutdown.
 *
 * --expect FILE: "NAME N" lines, what was done: requests, per_request_objects,
 * per_request_bytes (the C library allocates outside requests too: threads, the file).
 * --wait: block until SIGUSR1 first. --time: say on stderr how long the requests took
 * (scripts/ops-cost.sh).
 * Memory is freed as it goes; nothing here measures speed.
 */
#include <alloca.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wait_usr1.h"

#define NOINLINE __attribute__((noinline))

static int extra, bigger;

/* Keeps a block from being optimised away. */
static void touch(void *p)
{
	if (!p)
		abort();
	__asm__ volatile("" : : "r"(p) : "memory");
}

NOINLINE void parse_headers(void **out)
{
	for (int i = 0; i < 3; i++) {
		out[i] = malloc(64);
		touch(out[i]);
	}
}

NOINLINE void build_response(void **out, void **more)
{
	out[0] = calloc(4, 128);
	out[1] = malloc(1000);
	touch(out[0]);
	touch(out[1]);
	for (int i = 0; i < extra; i++) {
		more[i] = malloc(32);
		touch(more[i]);
	}
}

NOINLINE void *log_line(void)
{
	void *p = malloc(100 + (size_t)bigger);

	touch(p);
	return p;
}

NOINLINE int handle_request(int id)
{
	void *h[3], *r[2], **more = extra ? alloca(sizeof(void *) * (size_t)extra) : NULL, *l;

	parse_headers(h);
	build_response(r, more);
	l = log_line();
	for (int i = 0; i < 3; i++)
		free(h[i]);
	free(r[0]);
	free(r[1]);
	for (int i = 0; i < extra; i++)
		free(more[i]);
	free(l);
	return id;
}

static int nrequests = 1000;

static void *serve(void *arg)
{
	volatile int sum = 0;

	(void)arg;
	for (int i = 0; i < nrequests; i++)
		sum += handle_request(i);
	return NULL;
}

NOINLINE void start_up(void **pool)
{
	for (int i = 0; i < 10; i++) {
		pool[i] = malloc(4096);
		touch(pool[i]);
	}
}

NOINLINE void shut_down(void **pool)
{
	void *p = malloc(8192);

	touch(p);
	free(p);
	for (int i = 0; i < 10; i++)
		free(pool[i]);
}

int main(int argc, char **argv)
{
	const char *expect = NULL;
	int threads = 1, wait = 0, timed = 0;
	struct timespec t0, t1;
	pthread_t t[64];
	void *pool[10];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			nrequests = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--extra") && i + 1 < argc)
			extra = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--bigger") && i + 1 < argc)
			bigger = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--expect") && i + 1 < argc)
			expect = argv[++i];
		else if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (!strcmp(argv[i], "--time"))
			timed = 1;
		else {
			fprintf(stderr, "requests: bad argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (threads < 1 || threads > 64 || nrequests < 0 || extra < 0 || extra > 1000 ||
	    bigger < 0) {
		fprintf(stderr, "requests: bad values\n");
		return 2;
	}
	if (wait)
		wait_usr1("requests");
	start_up(pool);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 1; i < threads; i++)
		if (pthread_create(&t[i], NULL, serve, NULL))
			abort();
	serve(NULL);
	for (int i = 1; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	shut_down(pool);
	if (timed) {
		double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);

		fprintf(stderr, "requests: %lld requests in %.0f ns: %.1f ns per request\n",
			(long long)nrequests * threads, ns, ns / ((double)nrequests * threads));
	}
	if (expect) {
		FILE *f = fopen(expect, "w");

		if (!f)
			return 1;
		fprintf(f, "requests %lld\n", (long long)nrequests * threads);
		fprintf(f, "per_request_objects %d\n", 6 + extra);
		fprintf(f, "per_request_bytes %d\n", 1804 + 32 * extra + bigger);
		fclose(f);
	}
	return 0;
}
