// A C++ program that asks for more than any allocator can give and copes: new throws
// std::bad_alloc three times, caught; new (std::nothrow) returns nullptr three times.
// Prints "caught N, null N"; exits 0 only when all six failed as they should.
#include <cstdio>
#include <new>

#define NOINLINE __attribute__((noinline))

// Nearly all of a 47-bit address space: refused by every allocator.
static const size_t too_much = (static_cast<size_t>(1) << 47) - (static_cast<size_t>(1) << 20);

NOINLINE static char *site_throwing(size_t n)
{
	return new char[n];
}

NOINLINE static char *site_nothrow(size_t n)
{
	return new (std::nothrow) char[n];
}

int main()
{
	int caught = 0, null = 0;

	for (int i = 0; i < 3; i++) {
		try {
			delete[] site_throwing(too_much);
		} catch (const std::bad_alloc &) {
			caught++;
		}
		char *p = site_nothrow(too_much);
		null += !p;
		delete[] p;
	}
	std::printf("caught %d, null %d\n", caught, null);
	return caught == 3 && null == 3 ? 0 : 1;
}
