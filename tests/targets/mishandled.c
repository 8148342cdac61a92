/*
 * Run with LD_PRELOAD=libmishandled.so (see mishandled.S): calls malloc with %eax = 7 and
 * %r8 = 99, and checks that malloc's first instruction, xchg %eax,%r8d, ran: %r8d was 7 after
 * it. Prints "seen_r8=N" and exits 0 only when N is 7.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	unsigned int *seen = dlsym(RTLD_DEFAULT, "mishandled_seen_r8");
	register unsigned long r8 __asm__("r8") = 99;
	unsigned int got;
	void *p;

	if (!seen) {
		fputs("mishandled: run with LD_PRELOAD=libmishandled.so\n", stderr);
		return 2;
	}
	__asm__ volatile("mov $7, %%eax; mov $1000, %%edi; call malloc@PLT; mov %%rax, %0"
			 : "=r"(p), "+r"(r8)
			 :
			 : "rax", "rdi", "rsi", "rdx", "rcx", "r9", "r10", "r11", "memory");
	got = *seen; /* before printf's own malloc changes it */
	printf("seen_r8=%u\n", got);
	free(p);
	return got == 7 ? 0 : 1;
}
