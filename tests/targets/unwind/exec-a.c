/*
 * The first program of an exec (tests/test_stacks.py, Exec): allocates through a_leaf, so its
 * threads' walks keep its mappings, then execs argv[1] in the same thread. With ASLR off
 * (setarch -R) the next program is mapped where this one was: what the walk kept of this
 * program must not be used for that one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static void *a_leaf(size_t n)
{
	void *p = malloc(n);

	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

__attribute__((noinline)) static void a_work(int k)
{
	for (int i = 0; i < k; i++)
		free(a_leaf(1000 + (size_t)i));
	__asm__ volatile("");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	a_work(200);
	execv(argv[1], argv + 1);
	perror("exec");
	return 1;
}
