/*
 * A bounded, deterministic fuzz run of the parsers that read what users and targets hand us:
 * the pprof reader (pprof_decode, then top_print), the /proc/PID/maps parser and the ELF reader.
 * Seeds are real inputs (a profile encoded here by our own writer, a captured maps file, the
 * machine's /bin/true), mutated from a fixed seed so that a failure repeats. Built with ASan and
 * UBSan, every report is fatal; each parser is one test, "PASS fuzz_<parser>", counted by
 * tests/run.py.
 */
#include "check.h"

#include "elffile.h"
#include "pprof.h"
#include "procmaps.h"
#include "profile.h"
#include "top.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <zlib.h>

/*
 * Enough to find what the sanitizers found in the reader (271 reports in 3,000 profiles), in a
 * few seconds. A longer run by hand: -DFUZZ_SCALE=100 (and -DFUZZ_SEED=n for other inputs).
 */
#ifndef FUZZ_SCALE
#define FUZZ_SCALE 1
#endif
#ifndef FUZZ_SEED
#define FUZZ_SEED 0
#endif
#define PPROF_RUNS (3000 * FUZZ_SCALE)
#define MAPS_RUNS  (3000 * FUZZ_SCALE)
#define ELF_RUNS   (1500 * FUZZ_SCALE)

static uint64_t rng = 0x2545f4914f6cdd1dull + FUZZ_SEED;

static uint64_t rnd(void)
{
	rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_set(struct buf *b, const void *data, size_t len)
{
	grow((void **)&b->p, &b->cap, len + 4096, 1);
	memcpy(b->p, data, len);
	b->len = len;
}

/*
 * One to four mutations at positions in [lo, hi) of the buffer: bit flips, bytes and words set
 * to boundary values, ranges deleted or inserted (random or copied bytes), truncation. The
 * buffer grows to `limit` at most.
 */
static void mutate(struct buf *b, size_t lo, size_t hi, size_t limit)
{
	static const uint64_t edges[] = { 0,	      1,	  0x7f,	     0x80,
					  0xff,	      0x7fff,	  0xffff,    0x7fffffff,
					  0x80000000, 0xffffffff, INT64_MAX, UINT64_MAX };

	for (int k = 1 + (int)(rnd() % 4); k > 0 && b->len; k--) {
		size_t span = (hi < b->len ? hi : b->len) - (lo < b->len ? lo : 0);
		size_t at = (lo < b->len ? lo : 0) + (span ? rnd() % span : 0);
		size_t n = 1 + rnd() % 16;
		uint64_t v = edges[rnd() % ARRAY_SIZE(edges)];

		switch (rnd() % 8) {
		case 0:
			b->p[at] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1:
			b->p[at] = (uint8_t)v;
			break;
		case 2:
			n = (size_t)1 << (rnd() % 4);
			for (size_t i = 0; i < n && at + i < b->len; i++)
				b->p[at + i] = (uint8_t)(v >> (8 * i));
			break;
		case 3:
			n = n < b->len - at ? n : b->len - at;
			memmove(b->p + at, b->p + at + n, b->len - at - n);
			b->len -= n;
			break;
		case 4:
		case 5:
			if (b->len + n > limit)
				break;
			grow((void **)&b->p, &b->cap, b->len + n + 1, 1);
			memmove(b->p + at + n, b->p + at, b->len - at);
			for (size_t i = 0; i < n; i++)
				b->p[at + i] =
					(uint8_t)(rnd() % 4 == 0 ? rnd() : b->p[rnd() % b->len]);
			b->len += n;
			break;
		case 6:
			b->p[at] = (uint8_t)rnd();
			break;
		default:
			if (rnd() % 4 == 0)
				b->len = at;
			break;
		}
	}
}

static bool read_file(const char *path, struct buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	b->len = 0;
	do {
		grow((void **)&b->p, &b->cap, b->len + 65536, 1);
		r = read(fd, b->p + b->len, b->cap - b->len);
		b->len += r > 0 ? (size_t)r : 0;
	} while (r > 0);
	close(fd);
	CHECK(r == 0 && b->len, "%s: read failed or empty", path);
	return true;
}

/* ---- pprof ------------------------------------------------------------------------------- */

static const struct value_type types[] = {
	{ "alloc_objects", "count" },
	{ "alloc_space", "bytes" },
	{ "inuse_objects", "count" },
	{ "inuse_space", "bytes" },
};

/* A profile as a capture writes one: mappings, inlined frames, labels, comments. */
static void seed_profile(struct buf *raw)
{
	struct profile_meta meta = {
		.sample_types = types,
		.nsample_types = ARRAY_SIZE(types),
		.period_type = { "space", "bytes" },
		.period = 524288,
		.time_nanos = 1700000000000000000ll,
		.duration_nanos = 30000000000ll,
		.default_sample_type = "alloc_space",
	};
	struct profile *p = profile__new(&meta);
	const Perftools__Profiles__Profile *m;
	uint64_t locs[8], map;
	struct sym_result r = { .n = 2 };

	map = profile__mapping(p, 1, 0x400000, 0x500000, 0, "/usr/bin/prog", "00ab", true);
	r.f[0] = (struct sym_frame){ "inl", "_Z3inlv", "a.c", 10 };
	r.f[1] = (struct sym_frame){ "outer", "outer", "a.c", 20 };
	locs[0] = profile__location(p, map, 0x401000, &r);
	for (int i = 1; i < 8; i++) {
		char name[32];

		snprintf(name, sizeof(name), "fn%d", i);
		r = (struct sym_result){ .n = 1 };
		r.f[0] = (struct sym_frame){ name, name, "b.c", i };
		locs[i] = profile__location(p, map, 0x402000 + 0x100 * (uint64_t)i, &r);
	}
	profile__add_sample(p, locs, 8, (const int64_t[]){ 3, 3000, 1, 1000 }, 42, "prog");
	profile__add_sample(p, locs + 3, 4, (const int64_t[]){ 1, 64, 0, 0 }, 42, "prog");
	profile__add_sample(p, locs + 6, 2, (const int64_t[]){ INT64_MAX, INT64_MAX, 1, 1 }, 7, "");
	profile__add_comment(p, "sampled every %d bytes", 524288);
	m = profile__message(p);
	raw->len = 0;
	grow((void **)&raw->p, &raw->cap, perftools__profiles__profile__get_packed_size(m) + 4096,
	     1);
	raw->len = perftools__profiles__profile__pack(m, raw->p);
	profile__free(p);
}

static void gzip_into(const struct buf *in, struct buf *out, int wbits)
{
	z_stream z = {};

	deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
	grow((void **)&out->p, &out->cap, deflateBound(&z, in->len) + 32, 1);
	z.next_in = in->p;
	z.avail_in = (uInt)in->len;
	z.next_out = out->p;
	z.avail_out = (uInt)out->cap;
	deflate(&z, Z_FINISH);
	out->len = z.total_out;
	deflateEnd(&z);
}

/* Strings escaped for the terminal keep no control character. */
static bool check_escaped(const char *s)
{
	char *e = xstrdup_escaped(s);
	bool ok = true;

	for (const unsigned char *u = (const unsigned char *)e; *u; u++)
		ok &= *u >= 0x20 && *u != 0x7f;
	free(e);
	CHECK(ok, "control character left in escaped \"%s\"", s);
	return true;
}

TEST(fuzz_pprof)
{
	struct buf seed = {}, in = {}, gz = {};
	FILE *null = fopen("/dev/null", "w");
	int decoded = 0;

	CHECK(null, "/dev/null: %s", strerror(errno));
	seed_profile(&seed);
	for (int i = 0; i < PPROF_RUNS; i++) {
		Perftools__Profiles__Profile *p = NULL;
		const char *why = NULL;
		struct buf *b = &in;
		int err;

		buf_set(&in, seed.p, seed.len);
		switch (i % 3) {
		case 0: /* plain protobuf */
			mutate(&in, 0, SIZE_MAX, seed.len + 4096);
			break;
		case 1: /* mutated protobuf, gzip'd or zlib'd: the decoder's input */
			mutate(&in, 0, SIZE_MAX, seed.len + 4096);
			gzip_into(&in, &gz, i % 2 ? 31 : 15);
			b = &gz;
			break;
		default: /* mutated compressed data: the inflater's input */
			gzip_into(&in, &gz, 31);
			mutate(&gz, 0, SIZE_MAX, gz.len + 4096);
			b = &gz;
			break;
		}
		err = pprof_decode(b->p, b->len, &p, &why);
		CHECK(err == 0 || (err == -EBADMSG && why && *why), "input %d: %d (%s)", i, err,
		      why ? why : "no reason");
		if (err)
			continue;
		decoded++;
		for (size_t s = 0; s < p->n_sample_type; s++)
			top_print(null, p, (int)s, 1 + (size_t)i % 20);
		for (size_t s = 0; s < p->n_string_table; s++)
			TRY(check_escaped(p->string_table[s]));
		perftools__profiles__profile__free_unpacked(p, NULL);
	}
	printf("fuzz_pprof: %d inputs, %d decoded\n", PPROF_RUNS, decoded);
	CHECK(decoded > PPROF_RUNS / 20, "only %d of %d inputs decoded", decoded, PPROF_RUNS);
	fclose(null);
	free(seed.p);
	free(in.p);
	free(gz.p);
	return true;
}

/* ---- /proc/PID/maps ----------------------------------------------------------------------- */

/* `cat /proc/self/maps` on the build machine, kept fixed: a live one moves with ASLR. */
static const char seed_maps[] =
	"559cf538c000-559cf538e000 r--p 00000000 fe:00 247134                     /usr/bin/cat\n"
	"559cf538e000-559cf5393000 r-xp 00002000 fe:00 247134                     /usr/bin/cat\n"
	"559cf5393000-559cf5396000 r--p 00007000 fe:00 247134                     /usr/bin/cat\n"
	"559cf5396000-559cf5397000 r--p 00009000 fe:00 247134                     /usr/bin/cat\n"
	"559cf5397000-559cf5398000 rw-p 0000a000 fe:00 247134                     /usr/bin/cat\n"
	"559d13889000-559d138aa000 rw-p 00000000 00:00 0                          [heap]\n"
	"7fe8d1fb0000-7fe8d1fd2000 rw-p 00000000 00:00 0 \n"
	"7fe8d1fd2000-7fe8d2029000 r--p 00000000 fe:00 320475                     "
	"/usr/lib/locale/C.utf8/LC_CTYPE\n"
	"7fe8d2029000-7fe8d202a000 r--p 00000000 fe:00 320482                     "
	"/usr/lib/locale/C.utf8/LC_NUMERIC\n"
	"7fe8d202a000-7fe8d202b000 r--p 00000000 fe:00 320485                     "
	"/usr/lib/locale/C.utf8/LC_TIME\n"
	"7fe8d202b000-7fe8d202c000 r--p 00000000 fe:00 320474                     "
	"/usr/lib/locale/C.utf8/LC_COLLATE\n"
	"7fe8d202c000-7fe8d202d000 r--p 00000000 fe:00 320480                     "
	"/usr/lib/locale/C.utf8/LC_MONETARY\n"
	"7fe8d202d000-7fe8d202e000 r--p 00000000 fe:00 320479                     "
	"/usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES\n"
	"7fe8d202e000-7fe8d202f000 r--p 00000000 fe:00 320483                     "
	"/usr/lib/locale/C.utf8/LC_PAPER\n"
	"7fe8d202f000-7fe8d2030000 r--p 00000000 fe:00 320481                     "
	"/usr/lib/locale/C.utf8/LC_NAME\n"
	"7fe8d2030000-7fe8d2033000 rw-p 00000000 00:00 0 \n"
	"7fe8d2033000-7fe8d2059000 r--p 00000000 fe:00 332835                     "
	"/usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7fe8d2059000-7fe8d21af000 r-xp 00026000 fe:00 332835                     "
	"/usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7fe8d21af000-7fe8d2202000 r--p 0017c000 fe:00 332835                     "
	"/usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7fe8d2202000-7fe8d2206000 r--p 001cf000 fe:00 332835                     "
	"/usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7fe8d2206000-7fe8d2208000 rw-p 001d3000 fe:00 332835                     "
	"/usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7fe8d2208000-7fe8d2215000 rw-p 00000000 00:00 0 \n"
	"7fe8d2215000-7fe8d2216000 r--p 00000000 fe:00 320473                     "
	"/usr/lib/locale/C.utf8/LC_ADDRESS\n"
	"7fe8d2216000-7fe8d2217000 r--p 00000000 fe:00 320484                     "
	"/usr/lib/locale/C.utf8/LC_TELEPHONE\n"
	"7fe8d2217000-7fe8d2218000 r--p 00000000 fe:00 320477                     "
	"/usr/lib/locale/C.utf8/LC_MEASUREMENT\n"
	"7fe8d2218000-7fe8d221f000 r--s 00000000 fe:00 332280                     "
	"/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache\n"
	"7fe8d221f000-7fe8d2220000 r--p 00000000 fe:00 320476                     "
	"/usr/lib/locale/C.utf8/LC_IDENTIFICATION\n"
	"7fe8d2220000-7fe8d2222000 rw-p 00000000 00:00 0 \n"
	"7fe8d2222000-7fe8d2226000 r--p 00000000 00:00 0                          [vvar]\n"
	"7fe8d2226000-7fe8d2228000 r--p 00000000 00:00 0                          [vvar_vclock]\n"
	"7fe8d2228000-7fe8d222a000 r-xp 00000000 00:00 0                          [vdso]\n"
	"7fe8d222a000-7fe8d222b000 r--p 00000000 fe:00 332383                     "
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7fe8d222b000-7fe8d2251000 r-xp 00001000 fe:00 332383                     "
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7fe8d2251000-7fe8d225b000 r--p 00027000 fe:00 332383                     "
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7fe8d225b000-7fe8d225d000 r--p 00031000 fe:00 332383                     "
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7fe8d225d000-7fe8d225f000 rw-p 00033000 fe:00 332383                     "
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
	"7ffe501cc000-7ffe501ed000 rw-p 00000000 00:00 0                          [stack]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

TEST(fuzz_procmaps)
{
	struct buf seed = {}, in = {};
	int parsed = 0;

	buf_set(&seed, seed_maps, strlen(seed_maps));
	for (int i = 0; i < MAPS_RUNS; i++) {
		struct proc_maps m = {};
		int err;

		buf_set(&in, seed.p, seed.len);
		mutate(&in, 0, SIZE_MAX, seed.len + 4096);
		grow((void **)&in.p, &in.cap, in.len + 1, 1);
		in.p[in.len] = '\0';
		err = proc_maps__parse((const char *)in.p, &m);
		CHECK(err == 0 || err == -EINVAL, "input %d: %d", i, err);
		if (err)
			continue;
		parsed++;
		for (size_t k = 0; k < m.n; k++) {
			const struct map_entry *e = &m.e[k];

			(void)proc_maps__find(&m, e->start);
			(void)proc_maps__find(&m, e->end - 1);
			if (map_entry__has_file(e))
				free(map_entry__file_path(e));
			(void)map_entry__is_file(e);
		}
		(void)proc_maps__find(&m, rnd());
		proc_maps__free(&m);
	}
	printf("fuzz_procmaps: %d inputs, %d parsed\n", MAPS_RUNS, parsed);
	CHECK(parsed > MAPS_RUNS / 20, "only %d of %d inputs parsed", parsed, MAPS_RUNS);
	free(seed.p);
	free(in.p);
	return true;
}

/* ---- ELF ---------------------------------------------------------------------------------- */

static bool write_all(const char *path, const struct buf *b)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	CHECK(write(fd, b->p, b->len) == (ssize_t)b->len, "%s: short write", path);
	close(fd);
	return true;
}

TEST(fuzz_elffile)
{
	static const char *names[] = { "main", "malloc", "_start", "__libc_start_main", "" };
	struct buf seed = {}, in = {};
	char path[PATH_MAX];
	int opened = 0;

	snprintf(path, sizeof(path), "%s/f.elf", tmp);
	TRY(read_file("/bin/true", &seed));
	for (int i = 0; i < ELF_RUNS; i++) {
		struct elf_file *ef;
		struct elf_sym s;
		uint64_t off, vaddr;
		uint8_t bytes[16];

		buf_set(&in, seed.p, seed.len);
		/* Mostly in the headers: the ELF, program and section headers, at either end. */
		switch (i % 3) {
		case 0:
			mutate(&in, 0, 4096, seed.len + 4096);
			break;
		case 1:
			mutate(&in, seed.len > 8192 ? seed.len - 8192 : 0, SIZE_MAX,
			       seed.len + 4096);
			break;
		default:
			mutate(&in, 0, SIZE_MAX, seed.len + 4096);
			break;
		}
		TRY(write_all(path, &in));
		errno = 0;
		ef = elf_file__open(path);
		if (!ef) {
			CHECK(errno, "input %d: NULL without errno", i);
			continue;
		}
		opened++;
		(void)elf_file__interp(ef);
		(void)elf_file__is_dyn(ef);
		(void)strlen(elf_file__build_id(ef));
		for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
			if (elf_file__lookup(ef, names[k], &s))
				continue;
			if (!elf_file__vaddr_to_offset(ef, s.vaddr, &off))
				(void)elf_file__offset_to_vaddr(ef, off, &vaddr);
			(void)elf_file__read(ef, s.vaddr, bytes, sizeof(bytes));
		}
		vaddr = rnd() % 0x10000;
		(void)elf_file__read(ef, vaddr, bytes, sizeof(bytes));
		(void)elf_file__offset_to_vaddr(ef, rnd() % (seed.len + 1), &vaddr);
		elf_file__free(ef);
	}
	printf("fuzz_elffile: %d inputs, %d opened\n", ELF_RUNS, opened);
	CHECK(opened > ELF_RUNS / 20, "only %d of %d inputs opened", opened, ELF_RUNS);
	free(seed.p);
	free(in.p);
	return true;
}

static const struct unit_test tests[] = {
	T(fuzz_pprof),
	T(fuzz_procmaps),
	T(fuzz_elffile),
};

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
