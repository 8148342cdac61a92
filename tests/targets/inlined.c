/*
 * A target whose allocation sits three inline functions deep inside the function that is
 * really called: the profile must show every inlined frame, innermost first, then outer_fn,
 * then main. Prints "site objects bytes" like the other targets.
 */
#include <stdio.h>
#include <stdlib.h>

#define INLINE static inline __attribute__((always_inline))

static void *volatile sink;

INLINE void *l3(size_t n)
{
	return malloc(n);
}

INLINE void *l2(size_t n)
{
	return l3(n + 1);
}

INLINE void *l1(size_t n)
{
	return l2(n + 1);
}

__attribute__((noinline)) static void outer_fn(int i)
{
	void *p = l1(30 + (size_t)(i % 2));

	sink = p;
	free(p);
}

int main(void)
{
	for (int i = 0; i < 100; i++)
		outer_fn(i);
	printf("l3 100 %d\n", 50 * 32 + 50 * 33);
	return 0;
}
