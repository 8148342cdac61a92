/*
 * The allocation microbenchmark `make bench` measures: THREADS threads each replace blocks in
 * a ring of 1024 live ones (free the oldest, malloc a new one) ITERS times, with a size mix
 * like a real program's (mostly small, a tail of larger blocks), and print the mean
 * wall-clock time of one malloc+free pair.
 *
 *   bench [--threads N] [--iters N] [--wait] [--rate N] [--depth N]
 *
 * --depth N: each pair is made N calls deep (a recursion the compiler keeps), for the cost
 * of walking deep stacks; built also without frame pointers, as bench-nofp.
 * --wait: say so on stderr and block until SIGUSR1, so probes can be attached first.
 * --rate N: pace each thread to about N pairs per second (in 1 ms steps), for measuring the
 * tracer rather than the traced: a steady load for as long as --iters lasts.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wait_usr1.h"

#define RING 1024

static long iters = 1000000;
static long rate; /* pairs per second per thread; 0: as fast as possible */
static int depth; /* calls between the worker and each pair */
static pthread_barrier_t start;

static uint64_t now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* 70% 16-64 B, 20% 64-512 B, 9% 512 B-4 KiB, 1% 4-64 KiB, from a cheap generator. */
static size_t size_of(uint32_t r)
{
	uint32_t pick = r % 100, v = r >> 8;

	if (pick < 70)
		return 16 + v % 49;
	if (pick < 90)
		return 64 + v % 449;
	if (pick < 99)
		return 512 + v % 3585;
	return 4096 + v % 61441;
}

/* One pair, `d` calls deep: the call is not a tail call (its result is used after it). */
__attribute__((noinline)) static void *pair(int d, void *old, size_t size)
{
	void *p;

	if (d > 0) {
		p = pair(d - 1, old, size);
		__asm__ volatile("" : "+r"(p));
		return p;
	}
	free(old);
	return malloc(size);
}

static void *worker(void *arg)
{
	void *ring[RING] = { 0 };
	uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;

	uint64_t t0;

	pthread_barrier_wait(&start);
	t0 = now();
	for (long i = 0; i < iters; i++) {
		size_t slot = (size_t)i % RING;

		/* Every millisecond's worth of pairs, wait for that millisecond. */
		if (rate && i % (rate / 1000 + 1) == 0) {
			uint64_t due = t0 + (uint64_t)i * 1000000000ull / (uint64_t)rate;
			struct timespec ts = { (time_t)(due / 1000000000ull),
					       (long)(due % 1000000000ull) };

			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (depth) {
			ring[slot] = pair(depth, ring[slot], size_of(x));
		} else {
			free(ring[slot]);
			ring[slot] = malloc(size_of(x));
		}
		if (!ring[slot])
			abort();
		*(volatile char *)ring[slot] = 1;
	}
	for (size_t i = 0; i < RING; i++)
		free(ring[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 1, wait = 0;
	pthread_t tid[64];
	uint64_t t0, t1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = atol(argv[++i]);
		else if (!strcmp(argv[i], "--depth") && i + 1 < argc)
			depth = atoi(argv[++i]);
		else
			return 2;
	}
	if (threads < 1 || threads > 64 || iters < 1 || rate < 0 || depth < 0 || depth > 100)
		return 2;
	if (wait)
		wait_usr1("bench");
	pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
	for (int t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)(t + 1));
	pthread_barrier_wait(&start);
	t0 = now();
	for (int t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	t1 = now();
	/* Wall time per pair per thread: what one thread's malloc+free costs while all run. */
	printf("%.1f\n", (double)(t1 - t0) / (double)iters);
	return 0;
}
