/*
 * libunwdeep-*.so: the shared library at the end of deep.c's recursion. Built twice from this
 * source, with and without frame pointers, like the program. Each call of unw_lib_entry makes
 * one malloc, one calloc and one realloc, each from a function of its own (the allocation's
 * caller, the leaf of its stack), and frees what they returned.
 */
#include <stdlib.h>
#include <string.h>

#include "deep.h"

/* Used after every call, so no call is a tail call and both builds have the same chain. */
#define KEEP(x) __asm__ volatile("" : "+r"(x))

__attribute__((noinline)) void *unw_lib_malloc(size_t n)
{
	void *p = malloc(n);

	KEEP(p);
	return p;
}

__attribute__((noinline)) void *unw_lib_calloc(size_t n)
{
	void *p = calloc(UNW_CALLOC_NMEMB, n);

	KEEP(p);
	return p;
}

__attribute__((noinline)) void *unw_lib_realloc(void *old, size_t n)
{
	void *p = realloc(old, n);

	KEEP(p);
	return p;
}

__attribute__((noinline)) long unw_lib_entry(int salt)
{
	char *a = unw_lib_malloc(UNW_MALLOC_SIZE);
	char *b = unw_lib_calloc(UNW_CALLOC_SIZE);
	long r;

	if (!a || !b)
		abort();
	a[0] = (char)salt;
	a = unw_lib_realloc(a, UNW_REALLOC_SIZE);
	if (!a)
		abort();
	r = a[0] + b[1];
	KEEP(r);
	free(a);
	free(b);
	return r;
}
