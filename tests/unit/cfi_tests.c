/*
 * The unwind tables: rows of programs compiled here with and without frame pointers (entry,
 * prologue, .plt, _start, code without CFI, a non-PIE executable, .debug_frame only), the
 * invariants of every table, clean errors, and a cross-check of libc's and other system files'
 * rows against readelf's own interpretation of the same CFI.
 */
#include "fixtures.h"

#include "cfi.h"
#include "elffile.h"
#include "util.h"

#include <gelf.h>
#include <libelf.h>
#include <sys/wait.h>

#define LIBC   "/usr/lib/x86_64-linux-gnu/libc.so.6"
#define LD_SO  "/lib64/ld-linux-x86-64.so.2"
#define PYTHON "/usr/bin/python3.11"

#define RSP(off)	AP_CFI_RULE(AP_CFI_RSP, 0, off)
#define RBP(slots, off) AP_CFI_RULE(AP_CFI_RBP, slots, off)
#define NONE		AP_CFI_RULE(AP_CFI_NONE, 0, 0)
#define END		AP_CFI_RULE(AP_CFI_END, 0, 0)
#define SIGNAL		AP_CFI_RULE(AP_CFI_SIGNAL, 0, 0)
#define UNSUPPORTED	AP_CFI_RULE(AP_CFI_UNSUPPORTED, 0, 0)

/* leaf: no stack use; framed: a 256-byte buffer and calls through the PLT; nocfi: no CFI. */
static const char prog_src[] =
	"#include <stdio.h>\n"
	"#include <string.h>\n"
	"__attribute__((noinline)) int leaf(int x) { return x * 3 + 1; }\n"
	"__attribute__((noinline)) int framed(const char *s)\n"
	"{\n"
	"	char buf[256];\n"
	"	strncpy(buf, s, sizeof(buf) - 1);\n"
	"	buf[255] = 0;\n"
	"	return puts(buf) + leaf((int)strlen(buf));\n"
	"}\n"
	"asm(\".text\\n.p2align 4\\n.globl nocfi\\n.type nocfi,@function\\nnocfi:\\n"
	"\\tnop\\n\\tnop\\n\\tret\\n.size nocfi,.-nocfi\\n\");\n"
	"int main(int argc, char **argv)\n"
	"{\n"
	"	(void)argv;\n"
	"	return framed(argc > 5 ? \"x\" : \"hello\") & 1;\n"
	"}\n";

/* Compiles `src` with `flags` into tmp/name. */
static bool compile(const char *tmp, const char *name, const char *src, const char *flags,
		    char *out, size_t outlen)
{
	char c_path[PATH_MAX], cmd[PATH_MAX * 3], log[4096];
	size_t n;
	FILE *f;
	int st;

	snprintf(c_path, sizeof(c_path), "%s/%s.c", tmp, name);
	snprintf(out, outlen, "%s/%s", tmp, name);
	TRY(write_file(c_path, src, strlen(src)));
	snprintf(cmd, sizeof(cmd), "gcc %s -o %s %s 2>&1", flags, out, c_path);
	f = popen(cmd, "r");
	CHECK(f, "popen(%s): %s", cmd, strerror(errno));
	n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = '\0';
	st = pclose(f);
	CHECK(st == 0, "%s failed: %s", cmd, log);
	return true;
}

static bool build(const char *path, struct cfi_table **t)
{
	char err[256] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	ret = cfi_table__build(fd, t, err, sizeof(err));
	close(fd);
	CHECK(ret == 0, "cfi_table__build(%s): %d (%s)", path, ret, err);
	CHECK((*t)->nr > 0, "%s: no rows", path);
	return true;
}

/* The rule covering file offset `off`: the last row at or before it, NONE before the first. */
static uint32_t lookup(const struct cfi_table *t, uint64_t off)
{
	size_t lo = 0, hi = t->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->rows[mid].off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? t->rows[lo - 1].rule : NONE;
}

static const char *kind_name(uint32_t rule)
{
	static const char *names[] = {
		"NONE", "RSP", "RBP", "PLT", "END", "SIGNAL", "UNSUPPORTED"
	};
	unsigned k = AP_CFI_KIND(rule);

	return k < ARRAY_SIZE(names) ? names[k] : "?";
}

static const char *rule_str(uint32_t rule, char *buf, size_t len)
{
	snprintf(buf, len, "%s rbp=%d off=%u", kind_name(rule), AP_CFI_RBP(rule), AP_CFI_OFF(rule));
	return buf;
}

/* Rule at the virtual address `vaddr` of the file `ef` is `want`. */
static bool check_rule_at(const struct elf_file *ef, const struct cfi_table *t, uint64_t vaddr,
			  uint32_t want, const char *what)
{
	char a[64], b[64];
	uint64_t off;
	uint32_t got;

	CHECK(!elf_file__vaddr_to_offset(ef, vaddr, &off), "%s: %#" PRIx64 " not in the file", what,
	      vaddr);
	got = lookup(t, off);
	CHECK(got == want, "%s (vaddr %#" PRIx64 ", off %#" PRIx64 "): %s, expected %s", what,
	      vaddr, off, rule_str(got, a, sizeof(a)), rule_str(want, b, sizeof(b)));
	return true;
}

static bool sym(const struct elf_file *ef, const char *name, struct elf_sym *s)
{
	CHECK(!elf_file__lookup(ef, name, s), "no symbol %s", name);
	return true;
}

/* Sorted strictly by offset, no two adjacent rows alike, counters match the rows. */
static bool check_invariants(const struct cfi_table *t, const char *what)
{
	size_t plt = 0, unsupported = 0, signal = 0;

	for (size_t i = 0; i < t->nr; i++) {
		uint32_t k = AP_CFI_KIND(t->rows[i].rule);

		CHECK(k <= AP_CFI_UNSUPPORTED, "%s: row %zu has kind %u", what, i, k);
		plt += k == AP_CFI_PLT;
		unsupported += k == AP_CFI_UNSUPPORTED;
		signal += k == AP_CFI_SIGNAL;
		if (!i)
			continue;
		CHECK(t->rows[i - 1].off < t->rows[i].off, "%s: rows %zu and %zu at %#x, %#x", what,
		      i - 1, i, t->rows[i - 1].off, t->rows[i].off);
		CHECK(t->rows[i - 1].rule != t->rows[i].rule, "%s: rows %zu, %zu have rule %#x",
		      what, i - 1, i, t->rows[i].rule);
	}
	CHECK_INT(t->plt, plt);
	CHECK_INT(t->unsupported, unsupported);
	CHECK_INT(t->signal, signal);
	return true;
}

/* The executable PT_LOAD segments' file ranges; every row must be inside one (or at its end). */
static bool check_rows_in_exec_segments(const char *path, const struct cfi_table *t)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t lo[8], hi[8];
	size_t nseg = 0, phnum;
	Elf *elf;

	CHECK(fd >= 0, "open %s", path);
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	CHECK(elf && !elf_getphdrnum(elf, &phnum), "libelf: %s", elf_errmsg(-1));
	for (size_t i = 0; i < phnum && nseg < ARRAY_SIZE(lo); i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
			lo[nseg] = ph.p_offset;
			hi[nseg++] = ph.p_offset + ph.p_filesz;
		}
	}
	elf_end(elf);
	close(fd);
	for (size_t i = 0; i < t->nr; i++) {
		bool in = false;

		for (size_t s = 0; s < nseg; s++)
			in |= t->rows[i].off >= lo[s] && t->rows[i].off <= hi[s];
		CHECK(in, "%s: row %zu at off %#x is outside the executable segments", path, i,
		      t->rows[i].off);
	}
	return true;
}

/* A section's [addr, addr + size). */
static bool section(const char *path, const char *name, uint64_t *addr, uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	bool found = false;
	Elf *elf;

	CHECK(fd >= 0, "open %s", path);
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	CHECK(elf && !elf_getshdrstrndx(elf, &shstrndx), "libelf: %s", elf_errmsg(-1));
	while (!found && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *n;

		if (!gelf_getshdr(scn, &sh))
			continue;
		n = elf_strptr(elf, shstrndx, sh.sh_name);
		if (n && !strcmp(n, name)) {
			*addr = sh.sh_addr;
			*size = sh.sh_size;
			found = true;
		}
	}
	elf_end(elf);
	close(fd);
	CHECK(found, "%s has no %s", path, name);
	return true;
}

/* ---- programs compiled here ----------------------------------------------------------------- */

/* Rows every build of prog_src must have: entries, _start, nocfi, the .plt. */
static bool check_common(const char *path, const struct elf_file *ef, const struct cfi_table *t)
{
	struct elf_sym s;
	uint64_t plt, plt_size;
	uint32_t r;
	uint64_t off;

	TRY(check_invariants(t, path));
	TRY(check_rows_in_exec_segments(path, t));
	TRY(sym(ef, "leaf", &s));
	TRY(check_rule_at(ef, t, s.vaddr, RSP(8), "leaf's entry"));
	TRY(sym(ef, "framed", &s));
	TRY(check_rule_at(ef, t, s.vaddr, RSP(8), "framed's entry"));
	TRY(sym(ef, "main", &s));
	TRY(check_rule_at(ef, t, s.vaddr, RSP(8), "main's entry"));
	/* glibc's _start marks %rip undefined: the outermost frame. */
	TRY(sym(ef, "_start", &s));
	TRY(check_rule_at(ef, t, s.vaddr, END, "_start"));
	TRY(check_rule_at(ef, t, s.vaddr + 4, END, "_start + 4"));
	/* No CFI at all: NONE, never the rule of the function before it. */
	TRY(sym(ef, "nocfi", &s));
	TRY(check_rule_at(ef, t, s.vaddr, NONE, "nocfi"));
	TRY(check_rule_at(ef, t, s.vaddr + 2, NONE, "nocfi's ret"));
	/* PLT0 pushes twice, then every 16-byte entry uses the expression (threshold 11). */
	TRY(section(path, ".plt", &plt, &plt_size));
	CHECK(plt_size >= 32, ".plt is %" PRIu64 " bytes", plt_size);
	TRY(check_rule_at(ef, t, plt, RSP(16), ".plt0"));
	TRY(check_rule_at(ef, t, plt + 6, RSP(24), ".plt0 + 6"));
	CHECK(!elf_file__vaddr_to_offset(ef, plt + 16, &off), ".plt + 16 not in the file");
	r = lookup(t, off);
	CHECK(AP_CFI_KIND(r) == AP_CFI_PLT && AP_CFI_OFF(r) == 8 &&
		      (AP_CFI_RBP(r) == 11 || AP_CFI_RBP(r) == 10),
	      ".plt + 16: rule %#x", r);
	TRY(check_rule_at(ef, t, plt + plt_size - 1, r, "the .plt's last byte"));
	CHECK(t->plt >= 1, "plt counter %zu", t->plt);
	return true;
}

/*
 * -O2 -fomit-frame-pointer: the CFA is on %rsp throughout; %rbp is at most saved as an ordinary
 * callee-saved register, never lost.
 */
TEST(cfi_omit_frame_pointer)
{
	char path[PATH_MAX];
	struct cfi_table *t;
	struct elf_file *ef;
	struct elf_sym s;
	bool big = false;
	uint64_t off;

	TRY(compile(tmp, "prog", prog_src, "-O2 -fomit-frame-pointer -fcf-protection=none", path,
		    sizeof(path)));
	TRY(build(path, &t));
	ef = elf_file__open(path);
	CHECK(ef, "elf_file__open: %s", strerror(errno));
	TRY(check_common(path, ef, t));
	CHECK(!t->debug_frame, ".debug_frame used");
	TRY(sym(ef, "leaf", &s));
	for (uint64_t a = s.vaddr; a < s.vaddr + s.size; a++)
		TRY(check_rule_at(ef, t, a, RSP(8), "leaf"));
	/* framed's body: CFA = %rsp + more than its 256-byte buffer. */
	TRY(sym(ef, "framed", &s));
	CHECK(!elf_file__vaddr_to_offset(ef, s.vaddr, &off), "framed not in the file");
	for (uint64_t a = off; a < off + s.size; a++) {
		uint32_t r = lookup(t, a);

		CHECK(AP_CFI_KIND(r) == AP_CFI_RSP, "framed + %" PRIu64 ": rule %#x", a - off, r);
		CHECK(AP_CFI_RBP(r) <= 0 && AP_CFI_RBP(r) != AP_CFI_RBP_LOST,
		      "framed + %" PRIu64 ": rbp slot %d", a - off, AP_CFI_RBP(r));
		big |= AP_CFI_OFF(r) > 256;
	}
	CHECK(big, "no row of framed has CFA = rsp + >256");
	elf_file__free(ef);
	cfi_table__free(t);
	return true;
}

/*
 * The vaddr just after framed's `mov %rsp,%rbp` (GCC may schedule other instructions between it
 * and the `push %rbp` that starts the function).
 */
static bool after_frame_setup(const struct elf_file *ef, const struct elf_sym *s, uint64_t *at)
{
	unsigned char code[32];

	CHECK(!elf_file__read(ef, s->vaddr, code, sizeof(code)), "read framed");
	CHECK(code[0] == 0x55, "framed starts with %02x, not push %%rbp", code[0]);
	for (size_t i = 1; i + 3 <= sizeof(code); i++) {
		if (code[i] == 0x48 && code[i + 1] == 0x89 && code[i + 2] == 0xe5) {
			*at = s->vaddr + i + 3;
			return true;
		}
	}
	CHECK(false, "no mov %%rsp,%%rbp in framed's first %zu bytes", sizeof(code));
}

/* -fno-omit-frame-pointer: push %rbp; mov %rsp,%rbp makes CFA = %rbp + 16, %rbp at CFA - 16. */
TEST(cfi_frame_pointer)
{
	char path[PATH_MAX];
	struct cfi_table *t;
	struct elf_file *ef;
	struct elf_sym s;
	uint64_t body;

	TRY(compile(tmp, "prog", prog_src, "-O2 -fno-omit-frame-pointer -fcf-protection=none", path,
		    sizeof(path)));
	TRY(build(path, &t));
	ef = elf_file__open(path);
	CHECK(ef, "elf_file__open: %s", strerror(errno));
	TRY(check_common(path, ef, t));
	TRY(sym(ef, "framed", &s));
	TRY(after_frame_setup(ef, &s, &body));
	TRY(check_rule_at(ef, t, s.vaddr + 1, AP_CFI_RULE(AP_CFI_RSP, -2, 16), "after push %rbp"));
	TRY(check_rule_at(ef, t, body - 1, AP_CFI_RULE(AP_CFI_RSP, -2, 16), "at mov %rsp,%rbp"));
	TRY(check_rule_at(ef, t, body, RBP(-2, 16), "after mov %rsp,%rbp"));
	TRY(check_rule_at(ef, t, body + 1, RBP(-2, 16), "framed's body"));
	elf_file__free(ef);
	cfi_table__free(t);
	return true;
}

/* A non-PIE executable: rows keyed by file offset, which is not the virtual address. */
TEST(cfi_non_pie)
{
	char path[PATH_MAX];
	struct cfi_table *t;
	struct elf_file *ef;
	struct elf_sym s;
	uint64_t off;

	TRY(compile(tmp, "prog", prog_src, "-O2 -no-pie -fomit-frame-pointer -fcf-protection=none",
		    path, sizeof(path)));
	TRY(build(path, &t));
	ef = elf_file__open(path);
	CHECK(ef, "elf_file__open: %s", strerror(errno));
	CHECK(!elf_file__is_dyn(ef), "built a PIE");
	TRY(check_common(path, ef, t));
	TRY(sym(ef, "leaf", &s));
	CHECK(!elf_file__vaddr_to_offset(ef, s.vaddr, &off) && off != s.vaddr,
	      "leaf at vaddr %#" PRIx64 " off %#" PRIx64, s.vaddr, off);
	CHECK(t->rows[t->nr - 1].off < s.vaddr, "a row at %#x: keyed by vaddr?",
	      t->rows[t->nr - 1].off);
	elf_file__free(ef);
	cfi_table__free(t);
	return true;
}

/* Without unwind tables GCC writes .debug_frame: it fills in what .eh_frame (crt's) lacks. */
static bool check_debug_frame(const char *tmp, const char *flags)
{
	char path[PATH_MAX], all[512];
	struct cfi_table *t;
	struct elf_file *ef;
	struct elf_sym s;
	uint64_t body;

	snprintf(all, sizeof(all),
		 "-O2 -g -fno-omit-frame-pointer -fcf-protection=none "
		 "-fno-asynchronous-unwind-tables -fno-unwind-tables %s",
		 flags);
	TRY(compile(tmp, "prog", prog_src, all, path, sizeof(path)));
	TRY(build(path, &t));
	ef = elf_file__open(path);
	CHECK(ef, "elf_file__open: %s", strerror(errno));
	CHECK(t->debug_frame, "%s: .debug_frame not used", flags);
	TRY(check_common(path, ef, t));
	TRY(sym(ef, "framed", &s));
	TRY(after_frame_setup(ef, &s, &body));
	TRY(check_rule_at(ef, t, body, RBP(-2, 16), "framed after its prologue"));
	TRY(check_rule_at(ef, t, s.vaddr + s.size, NONE, "after framed"));
	elf_file__free(ef);
	cfi_table__free(t);
	return true;
}

TEST(cfi_debug_frame)
{
	TRY(check_debug_frame(tmp, ""));
	return check_debug_frame(tmp, "-gz=zlib"); /* a compressed .debug_frame */
}

TEST(cfi_errors)
{
	char path[PATH_MAX], err[256];
	struct cfi_table *t = (void *)1;
	char *buf = NULL;
	size_t len = 0;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/text", tmp);
	TRY(write_file(path, "hello, world\n", 13));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ret = cfi_table__build(fd, &t, err, sizeof(err));
	close(fd);
	CHECK_INT(ret, -ENOEXEC);
	CHECK(!t, "table on failure");
	CHECK(strstr(err, "not an") != NULL, "text file: \"%s\"", err);

	/* An x86-64 file but for its machine field. */
	TRY(slurp(LIBC, &buf, &len));
	CHECK(len > 64, "libc is %zu bytes", len);
	buf[18] = (char)EM_AARCH64;
	buf[19] = 0;
	snprintf(path, sizeof(path), "%s/arm", tmp);
	TRY(write_file(path, buf, len));
	free(buf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ret = cfi_table__build(fd, &t, err, sizeof(err));
	close(fd);
	CHECK_INT(ret, -ENOEXEC);
	CHECK_STR(err, "not an x86-64 ELF file");

	/* No CFI at all. */
	TRY(compile(tmp, "bare", "void _start(void) { for (;;) ; }\n",
		    "-O2 -nostdlib -static -fno-asynchronous-unwind-tables -fno-unwind-tables",
		    path, sizeof(path)));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ret = cfi_table__build(fd, &t, err, sizeof(err));
	close(fd);
	CHECK_INT(ret, -ENOENT);
	CHECK_STR(err, "no .eh_frame or .debug_frame");

	/* .eh_frame without the search table that lists its FDEs. */
	TRY(compile(tmp, "nohdr", prog_src, "-O2 -Wl,--no-eh-frame-hdr", path, sizeof(path)));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ret = cfi_table__build(fd, &t, err, sizeof(err));
	close(fd);
	CHECK_INT(ret, -ENOENT);
	CHECK_STR(err, ".eh_frame has no .eh_frame_hdr");
	CHECK(!t, "table on failure");
	return true;
}

/* libc: clone's child and clone3's mark %rip undefined (END); __restore_rt is a signal frame. */
TEST(cfi_libc)
{
	struct cfi_table *t;
	struct elf_file *ef;
	struct elf_sym s;
	size_t ends = 0, ends_in_clone = 0;
	uint64_t lo, hi;

	TRY(build(LIBC, &t));
	ef = elf_file__open(LIBC);
	CHECK(ef, "elf_file__open: %s", strerror(errno));
	TRY(check_invariants(t, LIBC));
	TRY(check_rows_in_exec_segments(LIBC, t));
	TRY(sym(ef, "__clone", &s));
	TRY(check_rule_at(ef, t, s.vaddr, RSP(8), "__clone's entry"));
	CHECK(!elf_file__vaddr_to_offset(ef, s.vaddr, &lo), "__clone");
	hi = lo + s.size;
	for (size_t i = 0; i < t->nr; i++) {
		if (AP_CFI_KIND(t->rows[i].rule) != AP_CFI_END)
			continue;
		ends++;
		ends_in_clone += t->rows[i].off >= lo && t->rows[i].off < hi;
	}
	CHECK(ends == 2 && ends_in_clone == 1, "%zu END rows, %zu in __clone", ends, ends_in_clone);
	CHECK(t->signal >= 1, "no signal frame row");
	CHECK(t->plt == 1, "%zu .plt rows", t->plt);
	CHECK(t->fdes > 1000, "%zu FDEs", t->fdes);
	elf_file__free(ef);
	cfi_table__free(t);
	return true;
}

/* ---- cross-check with readelf --------------------------------------------------------------- */

struct rrow {
	uint64_t lo, hi; /* [lo, hi): one row of readelf's table, or a gap (NONE) */
	uint32_t want;
	bool maybe_unsupported; /* an expression CFA outside .plt: SIGNAL or UNSUPPORTED */
};

struct rtab {
	struct rrow *v;
	size_t n, cap;
};

static void rtab_add(struct rtab *rt, uint64_t lo, uint64_t hi, uint32_t want, bool maybe)
{
	if (hi <= lo)
		return;
	grow((void **)&rt->v, &rt->cap, rt->n + 1, sizeof(*rt->v));
	rt->v[rt->n++] = (struct rrow){ lo, hi, want, maybe };
}

/* Splits readelf's row into columns; "r2 (rcx)" is one. */
static int columns(char *line, char **col, int max)
{
	int n = 0;

	for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
		if (tok[0] == '(' && n)
			continue;
		if (n < max)
			col[n++] = tok;
	}
	return n;
}

/* What allocprof's rule must be for one readelf row. */
static uint32_t expected(const char *cfa, const char *rbp, const char *ra, bool signal, bool in_plt,
			 bool *maybe)
{
	unsigned long off;
	long slot;
	int kind, rbp_slots;

	*maybe = false;
	if (signal)
		return SIGNAL;
	if (!strcmp(ra, "u"))
		return END;
	if (strcmp(ra, "c-8"))
		return UNSUPPORTED;
	if (!strcmp(cfa, "exp")) {
		if (in_plt)
			return AP_CFI_RULE(AP_CFI_PLT, 11, 8);
		*maybe = true;
		return UNSUPPORTED;
	}
	if (sscanf(cfa, "rsp+%lu", &off) == 1)
		kind = AP_CFI_RSP;
	else if (sscanf(cfa, "rbp+%lu", &off) == 1)
		kind = AP_CFI_RBP;
	else
		return UNSUPPORTED;
	if (off > AP_CFI_MAX_OFF)
		return UNSUPPORTED;
	/* readelf's "u" for %rbp: not mentioned, or restored to the CIE's (same value) rule. */
	if (!rbp || !strcmp(rbp, "u"))
		rbp_slots = 0;
	else if (sscanf(rbp, "c%ld", &slot) == 1 && slot && slot % 8 == 0 && slot / 8 > -128 &&
		 slot / 8 < 128)
		rbp_slots = (int)(slot / 8);
	else
		rbp_slots = AP_CFI_RBP_LOST;
	return AP_CFI_RULE(kind, rbp_slots, off);
}

/* readelf --debug-dump=frames-interp of .eh_frame as rows with allocprof's expected rules. */
static bool readelf_rows(const char *path, struct rtab *rt)
{
	uint64_t plt_lo = 0, plt_size = 0, fde_lo = 0, fde_hi = 0, row_lo = 0, cie_off = 0;
	uint32_t row_want = 0, cie_want[64] = { 0 };
	uint64_t cie_offs[64], cie_of_fde = 0;
	bool cie_signal[64] = { false }, row_maybe = false, in_fde = false, in_cie = false;
	bool have_row = false, signal = false, eh = false;
	int rbp_col = -1, ra_col = -1, ncie = 0, cur_cie = -1;
	char cmd[PATH_MAX + 64], line[4096];
	FILE *f;

	TRY(section(path, ".plt", &plt_lo, &plt_size));
	snprintf(cmd, sizeof(cmd), "readelf -wN --debug-dump=frames-interp %s 2>/dev/null", path);
	f = popen(cmd, "r");
	CHECK(f, "popen(%s): %s", cmd, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *col[64], aug[32];
		unsigned long long a, b, c, d, e, g;
		int n;

		if (strstr(line, "Contents of the")) {
			eh = strstr(line, ".eh_frame section") != NULL;
			continue;
		}
		if (!eh)
			continue;
		if (sscanf(line, "%llx %llx %llx CIE \"%31[^\"]\"", &a, &b, &c, aug) == 4) {
			if (in_fde && have_row)
				rtab_add(rt, row_lo, fde_hi, row_want, row_maybe);
			in_fde = have_row = false;
			in_cie = ncie < (int)ARRAY_SIZE(cie_offs);
			cur_cie = ncie;
			if (in_cie) {
				cie_offs[ncie] = a;
				cie_signal[ncie] = strchr(aug, 'S') != NULL;
				cie_want[ncie++] = RSP(8);
			}
			continue;
		}
		if (sscanf(line, "%llx %llx %llx FDE cie=%llx pc=%llx..%llx", &a, &b, &c, &d, &e,
			   &g) == 6) {
			if (in_fde && have_row)
				rtab_add(rt, row_lo, fde_hi, row_want, row_maybe);
			cie_of_fde = d;
			fde_lo = e;
			fde_hi = g;
			in_cie = false;
			in_fde = true;
			have_row = false;
			cie_off = cie_of_fde;
			signal = false;
			cur_cie = -1;
			for (int i = 0; i < ncie; i++) {
				if (cie_offs[i] == cie_off) {
					cur_cie = i;
					signal = cie_signal[i];
				}
			}
			/* Until the first row (there may be none): the CIE's initial row. */
			if (cur_cie >= 0 && !signal) {
				row_lo = fde_lo;
				row_want = cie_want[cur_cie];
				row_maybe = false;
				have_row = true;
			}
			continue;
		}
		if (strstr(line, "LOC") && strstr(line, "CFA")) {
			n = columns(line, col, 64);
			rbp_col = ra_col = -1;
			for (int i = 0; i < n; i++) {
				if (!strcmp(col[i], "rbp"))
					rbp_col = i;
				if (!strcmp(col[i], "ra"))
					ra_col = i;
			}
			continue;
		}
		n = columns(line, col, 64);
		if (n < 3 || strlen(col[0]) != 16 || sscanf(col[0], "%llx", &a) != 1 ||
		    ra_col < 0 || ra_col >= n)
			continue;
		{
			bool maybe;
			uint32_t want = expected(
				col[1], rbp_col >= 0 && rbp_col < n ? col[rbp_col] : NULL,
				col[ra_col], signal, a >= plt_lo && a < plt_lo + plt_size, &maybe);

			if (in_cie) {
				if (cur_cie >= 0)
					cie_want[cur_cie] = want;
				continue;
			}
			if (!in_fde)
				continue;
			if (have_row)
				rtab_add(rt, row_lo, a, row_want, row_maybe);
			row_lo = a;
			row_want = want;
			row_maybe = maybe;
			have_row = true;
		}
	}
	if (in_fde && have_row)
		rtab_add(rt, row_lo, fde_hi, row_want, row_maybe);
	CHECK(pclose(f) == 0, "%s failed", cmd);
	CHECK(rt->n > 100, "readelf gave %zu rows for %s", rt->n, path);
	return true;
}

static int cmp_rrow(const void *a, const void *b)
{
	const struct rrow *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/*
 * Every row of readelf's that is unusual (not a plain CFA on %rsp), and a few hundred others
 * spread over the file, at their first, middle and last byte; the gaps between FDEs likewise.
 */
static bool cross_check(const char *path)
{
	struct rtab rt = { 0 };
	struct cfi_table *t;
	struct elf_file *ef;
	size_t checked = 0, gaps = 0, step, n;

	TRY(build(path, &t));
	TRY(check_invariants(t, path));
	ef = elf_file__open(path);
	CHECK(ef, "elf_file__open(%s): %s", path, strerror(errno));
	TRY(readelf_rows(path, &rt));
	qsort(rt.v, rt.n, sizeof(*rt.v), cmp_rrow);
	n = rt.n;
	for (size_t i = 0; i + 1 < n; i++) {
		if (rt.v[i].hi < rt.v[i + 1].lo) {
			rtab_add(&rt, rt.v[i].hi, rt.v[i + 1].lo, NONE, false);
			gaps++;
		}
	}
	step = rt.n / 400 ? rt.n / 400 : 1;
	for (size_t i = 0; i < rt.n; i++) {
		const struct rrow *r = &rt.v[i];
		uint64_t at[3] = { r->lo, r->lo + (r->hi - r->lo) / 2, r->hi - 1 };
		bool unusual = AP_CFI_KIND(r->want) != AP_CFI_RSP || AP_CFI_RBP(r->want) != 0;

		if (!unusual && i % step && !(i >= n && (i - n) % 8 == 0))
			continue;
		for (int k = 0; k < 3; k++) {
			char a[64], b[64];
			uint64_t off;
			uint32_t got;

			if (elf_file__vaddr_to_offset(ef, at[k], &off))
				continue;
			got = lookup(t, off);
			checked++;
			if (r->maybe_unsupported && (got == UNSUPPORTED || got == SIGNAL))
				continue;
			CHECK(got == r->want,
			      "%s at %#" PRIx64 " (readelf row [%#" PRIx64 ", %#" PRIx64 ")): %s, "
			      "readelf says %s",
			      path, at[k], r->lo, r->hi, rule_str(got, a, sizeof(a)),
			      rule_str(r->want, b, sizeof(b)));
		}
	}
	CHECK(checked >= 600, "only %zu addresses checked in %s", checked, path);
	CHECK(gaps > 0, "no gaps between FDEs in %s", path);
	free(rt.v);
	elf_file__free(ef);
	cfi_table__free(t);
	return true;
}

TEST(cfi_readelf_libc)
{
	return cross_check(LIBC);
}

TEST(cfi_readelf_ld_so)
{
	return cross_check(LD_SO);
}

TEST(cfi_readelf_python)
{
	if (access(PYTHON, R_OK))
		return true; /* not every machine has it; libc's check is the one that must run */
	return cross_check(PYTHON);
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(cfi_omit_frame_pointer),
	T(cfi_frame_pointer),
	T(cfi_non_pie),
	T(cfi_debug_frame),
	T(cfi_errors),
	T(cfi_libc),
	T(cfi_readelf_libc),
	T(cfi_readelf_ld_so),
	T(cfi_readelf_python),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
