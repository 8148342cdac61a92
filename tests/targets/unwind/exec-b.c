/*
 * The program exec-a execs: three frames with stack frames of their own sizes (so their rules
 * differ from exec-a's functions at the same offsets), 300 allocations from b_leaf, counted
 * after SIGUSR1 (once its unwind table is in place).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "targets/wait_usr1.h"

__attribute__((noinline)) static void *b_leaf(size_t n)
{
	volatile char buf[4096];
	void *p;

	buf[n & 4095] = 1;
	p = malloc(n + (size_t)buf[5]);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

__attribute__((noinline)) static void b_f1(int k)
{
	volatile char pad[700];

	pad[3] = (char)k;
	__asm__ volatile("" : : "r"(pad) : "memory");
	for (int i = 0; i < k; i++)
		free(b_leaf(2000 + (size_t)i));
	__asm__ volatile("");
}

__attribute__((noinline)) static void b_f2(int k)
{
	volatile char pad[300];

	pad[1] = (char)k;
	__asm__ volatile("" : : "r"(pad) : "memory");
	b_f1(k);
	__asm__ volatile("");
}

__attribute__((noinline)) static void b_f3(int k)
{
	volatile char pad[900];

	pad[2] = (char)k;
	__asm__ volatile("" : : "r"(pad) : "memory");
	b_f2(k);
	__asm__ volatile("");
}

int main(void)
{
	char who[64];

	/* The pid, so a test knows whom to signal (the command allocprof started, exec'd). */
	snprintf(who, sizeof(who), "exec-b (pid %d)", (int)getpid());
	wait_usr1(who);
	b_f3(300);
	return 0;
}
