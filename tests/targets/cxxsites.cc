// A C++ target that knows its own allocations through operator new and new[], plain,
// nothrow and aligned, and frees them with the matching delete (sized where the compiler
// picks it), keeping every tenth until exit. Four threads run the sites;
// "site objects bytes inuse_objects inuse_bytes" lines at the end.
//   cxxsites [--expect FILE]
#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#define NOINLINE __attribute__((noinline))

struct Site {
	const char *name;
	std::atomic<unsigned long long> objects{ 0 }, bytes{ 0 }, inuse_objects{ 0 },
		inuse_bytes{ 0 };
};

static Site sites[] = {
	{ "site_new" }, { "site_new_array" }, { "site_new_nothrow" }, { "site_new_aligned" }
};

static void count(int i, size_t n)
{
	sites[i].objects += 1;
	sites[i].bytes += n;
}

// Every tenth block is kept until exit.
static bool keep(int site, int i, size_t n)
{
	if (i % 10)
		return false;
	sites[site].inuse_objects += 1;
	sites[site].inuse_bytes += n;
	return true;
}

struct alignas(64) Aligned {
	char b[192];
};

static void *volatile sink;

NOINLINE static void site_new(int i)
{
	auto *p = new std::array<char, 40>; // 40 bytes
	sink = p;
	count(0, 40);
	if (!keep(0, i, 40))
		delete p; // sized: operator delete(void*, size_t)
}

NOINLINE static void site_new_array(int i)
{
	size_t n = 16 + i % 8;
	char *p = new char[n];
	sink = p;
	count(1, n);
	if (!keep(1, i, n))
		delete[] p;
}

NOINLINE static void site_new_nothrow(int i)
{
	long *p = new (std::nothrow) long[4];
	sink = p;
	count(2, 4 * sizeof(long));
	if (!keep(2, i, 4 * sizeof(long)))
		delete[] p;
}

NOINLINE static void site_new_aligned(int i)
{
	Aligned *p = new Aligned; // sizeof 192, align 64: operator new(size_t, align_val_t)
	sink = p;
	count(3, sizeof(Aligned));
	if (!keep(3, i, sizeof(Aligned)))
		delete p; // operator delete(void*, size_t, align_val_t)
}

int main(int argc, char **argv)
{
	const char *expect = nullptr;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--expect") && i + 1 < argc)
			expect = argv[++i];
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; t++)
		threads.emplace_back([] {
			for (int i = 0; i < 500; i++) {
				site_new(i);
				site_new_array(i);
				site_new_nothrow(i);
				site_new_aligned(i);
			}
		});
	for (auto &t : threads)
		t.join();
	FILE *f = expect ? fopen(expect, "w") : stdout;
	if (!f)
		return 1;
	for (auto &s : sites)
		fprintf(f, "%s %llu %llu %llu %llu\n", s.name, s.objects.load(), s.bytes.load(),
			s.inuse_objects.load(), s.inuse_bytes.load());
	if (f != stdout)
		fclose(f);
	return 0;
}
