/*
 * Unit tests of the x86-64 decoder (user/x86insn.c) and the probe site chooser
 * (user/probesite.c): hand-written encodings of every instruction form, objdump as an oracle
 * for instruction boundaries in the allocator libraries installed here, and the sites chosen
 * for real and synthetic functions.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed. Lines starting with spaces are notes.
 * X86_TESTS_VERBOSE=1 also lists the site chosen for every allocator function.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "elffile.h"
#include "probesite.h"
#include "util.h"
#include "x86insn.h"

#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"

/* ---- helpers -------------------------------------------------------------------------------- */

/* "48 85 ff" into bytes; the count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*s && n < cap) {
		unsigned int b;
		int used;

		if (sscanf(s, " %2x%n", &b, &used) != 1)
			break;
		out[n++] = (uint8_t)b;
		s += used;
	}
	return n;
}

#define R(r)   X86_REG(X86_##r)
#define NM     UINT32_MAX /* effects not modelled */
#define SP_NO  1	  /* %rsp not written */
#define SP_UNK 2	  /* %rsp written by an amount not known */

struct vec {
	const char *hex;
	unsigned int len; /* 0: must not decode */
	const char *name; /* NULL: not checked */
	bool emulated;
	uint32_t writes; /* NM: not modelled */
	int sp;		 /* SP_NO, SP_UNK, or the delta */
};

static bool check_vec(const struct vec *v)
{
	uint8_t code[32];
	size_t n = unhex(v->hex, code, sizeof(code));
	struct x86_insn in;
	unsigned int len = x86_decode(code, n, &in);

	CHECK(len == v->len, "%s: length %u, expected %u", v->hex, len, v->len);
	CHECK(in.len == len, "%s: insn.len %u, returned %u", v->hex, in.len, len);
	if (!len)
		return true;
	CHECK(!v->name || !strcmp(in.name, v->name), "%s: name \"%s\", expected \"%s\"", v->hex,
	      in.name, v->name);
	CHECK(in.emulated == v->emulated, "%s (%s): emulated %d, expected %d", v->hex, in.name,
	      in.emulated, v->emulated);
	if (v->writes == NM) {
		CHECK(!in.modelled, "%s (%s): modelled, expected not", v->hex, in.name);
		return true;
	}
	CHECK(in.modelled, "%s (%s): not modelled", v->hex, in.name);
	CHECK(in.writes == v->writes, "%s (%s): writes %#x, expected %#x", v->hex, in.name,
	      in.writes, v->writes);
	if (v->sp == SP_NO) {
		CHECK(!(in.writes & R(RSP)), "%s (%s): writes %%rsp", v->hex, in.name);
	} else if (v->sp == SP_UNK) {
		CHECK(in.writes & R(RSP) && !in.sp_known, "%s (%s): %%rsp effect known (%d)",
		      v->hex, in.name, in.sp_delta);
	} else {
		CHECK(in.writes & R(RSP) && in.sp_known && in.sp_delta == v->sp,
		      "%s (%s): %%rsp moves by %d (known %d), expected %d", v->hex, in.name,
		      in.sp_delta, in.sp_known, v->sp);
	}
	return true;
}

static bool check_vecs(const struct vec *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		TRY(check_vec(&v[i]));
	return true;
}

/* ---- the decoder, by hand ---------------------------------------------------------------- */

TEST(x86_prefixes)
{
	static const struct vec v[] = {
		{ "55", 1, "push", true, R(RSP), -8 },
		{ "41 54", 2, "push", true, R(RSP), -8 },
		{ "40 55", 2, "push", false, R(RSP), -8 }, /* REX other than 41: single-stepped */
		{ "48 55", 2, "push", false, R(RSP), -8 },
		{ "66 55", 2, NULL, false, NM, 0 }, /* push %bp: 2 bytes of stack */
		{ "f0 48 0f b1 0a", 5, "cmpxchg", false, R(RAX), SP_NO },
		{ "64 48 8b 04 25 28 00 00 00", 9, "mov", false, R(RAX), SP_NO },
		{ "65 48 8b 04 25 28 00 00 00", 9, "mov", false, R(RAX), SP_NO },
		{ "2e 74 05", 3, "je", false, 0, SP_NO }, /* %cs: uprobes refuse it */
		{ "3e ff e0", 3, "jmp", false, 0, SP_NO },
		{ "f2 e9 10 00 00 00", 6, "jmp", true, 0, SP_NO },
		{ "f3 48 ab", 3, NULL, false, NM, 0 },
		{ "67 8b 05 10 00 00 00", 7, "mov", false, R(RAX), SP_NO },
		{ "66 2e 0f 1f 84 00 00 00 00 00", 10, "nop", false, 0, SP_NO },
		{ "66 66 2e 0f 1f 84 00 00 00 00 00", 11, "nop", false, 0, SP_NO },
		{ "f3 90", 2, "pause", true, 0, SP_NO },
		{ "66 90", 2, "nop", true, 0, SP_NO },
		{ "48 90", 2, "nop", true, 0, SP_NO },
		{ "41 90", 2, "xchg", false, R(RAX) | R(R8), SP_NO }, /* not a nop */
		{ "48 74 05", 3, "je", true, 0, SP_NO },
		{ "26 8b 00", 3, "mov", false, R(RAX), SP_NO },
		{ "36 8b 00", 3, "mov", false, R(RAX), SP_NO },
	};

	return check_vecs(v, ARRAY_SIZE(v));
}

TEST(x86_modrm_sib)
{
	static const struct vec v[] = {
		{ "48 8b 00", 3, "mov", false, R(RAX), SP_NO },		       /* mod 00 */
		{ "48 8b 44 24 08", 5, "mov", false, R(RAX), SP_NO },	       /* mod 01, SIB */
		{ "48 8b 84 24 88 00 00 00", 8, "mov", false, R(RAX), SP_NO }, /* mod 10, SIB */
		{ "48 89 c7", 3, "mov", false, R(RDI), SP_NO },		       /* mod 11 */
		{ "48 89 fb", 3, "mov", false, R(RBX), SP_NO },
		{ "4c 89 c7", 3, "mov", false, R(RDI), SP_NO }, /* REX.R: from %r8 */
		{ "49 89 f8", 3, "mov", false, R(R8), SP_NO },	/* REX.B: into %r8 */
		{ "8b 04 85 00 00 00 00", 7, "mov", false, R(RAX),
		  SP_NO },						 /* SIB base 101, mod 00 */
		{ "8b 44 85 00", 4, "mov", false, R(RAX), SP_NO },	 /* SIB base 101, mod 01 */
		{ "8b 45 08", 3, "mov", false, R(RAX), SP_NO },		 /* rm 101, mod 01 */
		{ "8b 85 00 01 00 00", 6, "mov", false, R(RAX), SP_NO }, /* rm 101, mod 10 */
		{ "48 8b 05 d6 9e 13 00", 7, "mov", false, R(RAX), SP_NO }, /* %rip-relative */
		{ "4c 8d 04 24", 4, "lea", false, R(R8), SP_NO },
		{ "48 8d 3d 10 00 00 00", 7, "lea", false, R(RDI), SP_NO },
		{ "0f 20 c0", 3, NULL, false, NM, 0 },
		{ "0f 20 05", 3, NULL, false, NM, 0 }, /* mov from %cr0: mod ignored, no disp32 */
		{ "0f 22 d8", 3, NULL, false, NM, 0 },
		{ "88 e0", 2, "mov", false, R(RAX), SP_NO },	/* %ah into %al */
		{ "88 c7", 2, "mov", false, R(RBX), SP_NO },	/* into %bh, not %dil */
		{ "40 88 c7", 3, "mov", false, R(RDI), SP_NO }, /* into %dil */
		{ "0f b6 34 02", 4, "movzx", false, R(RSI), SP_NO },
		{ "48 0f be c7", 4, "movsx", false, R(RAX), SP_NO },
		{ "48 63 c7", 3, "movsxd", false, R(RAX), SP_NO },
		{ "48 87 fe", 3, "xchg", false, R(RSI) | R(RDI), SP_NO },
	};

	return check_vecs(v, ARRAY_SIZE(v));
}

TEST(x86_immediates)
{
	static const struct vec v[] = {
		{ "66 c7 00 34 12", 5, "mov", false, 0, SP_NO }, /* imm16 */
		{ "c7 00 78 56 34 12", 6, "mov", false, 0, SP_NO },
		{ "48 c7 c0 ff ff ff ff", 7, "mov", false, R(RAX), SP_NO },
		{ "48 b8 88 77 66 55 44 33 22 11", 10, "mov", false, R(RAX), SP_NO }, /* imm64 */
		{ "49 bf 01 00 00 00 00 00 00 00", 10, "mov", false, R(R15), SP_NO },
		{ "b8 01 00 00 00", 5, "mov", false, R(RAX), SP_NO },
		{ "66 b8 01 00", 4, "mov", false, R(RAX), SP_NO },
		{ "41 b8 01 00 00 00", 6, "mov", false, R(R8), SP_NO },
		{ "b4 01", 2, "mov", false, R(RAX), SP_NO },	/* mov $1, %ah */
		{ "40 b7 01", 3, "mov", false, R(RDI), SP_NO }, /* mov $1, %dil */
		{ "f6 c1 01", 3, "test", false, 0, SP_NO },	/* group 3 test imm8 */
		{ "f6 d0", 2, "not", false, R(RAX), SP_NO },	/* group 3 without imm */
		{ "f7 c7 00 10 00 00", 6, "test", false, 0, SP_NO },
		{ "66 f7 c7 00 10", 5, "test", false, 0, SP_NO },
		{ "48 f7 c7 00 10 00 00", 7, "test", false, 0, SP_NO },
		{ "f7 d8", 2, "neg", false, R(RAX), SP_NO },
		{ "48 f7 e6", 3, "mul", false, R(RAX) | R(RDX), SP_NO },
		{ "f6 e1", 2, "mul", false, R(RAX), SP_NO },
		{ "c8 10 00 00", 4, NULL, false, NM, 0 }, /* enter imm16, imm8 */
		{ "c2 08 00", 3, "ret", false, 0, SP_NO },
		{ "a0 00 00 00 00 00 00 00 00", 9, "movabs", false, R(RAX), SP_NO },
		{ "67 a0 00 00 00 00", 6, "movabs", false, R(RAX), SP_NO },
		{ "48 a3 00 00 00 00 00 00 00 00", 10, "movabs", false, 0, SP_NO },
		{ "6a 00", 2, "push", false, R(RSP), -8 },
		{ "68 00 10 00 00", 5, "push", false, R(RSP), -8 },
		{ "c6 05 10 00 00 00 01", 7, "mov", false, 0, SP_NO }, /* %rip-relative and imm8 */
		{ "48 c7 05 10 00 00 00 01 00 00 00", 11, "mov", false, 0, SP_NO },
		{ "0f ba e0 03", 4, "bt", false, 0, SP_NO },
		{ "48 0f a4 c2 04", 5, "shld", false, R(RDX), SP_NO },
		{ "66 0f 78 c1 08 10", 6, NULL, false, NM, 0 }, /* extrq: two imm8 */
		{ "f2 0f 79 c1", 4, NULL, false, NM, 0 },
		{ "0f 0f c1 b4", 4, NULL, false, NM, 0 }, /* 3DNow: its opcode is an imm8 */
		{ "48 83 c0 08", 4, "add", false, R(RAX), SP_NO },
		{ "48 81 ff 00 10 00 00", 7, "cmp", false, 0, SP_NO },
		{ "80 3d 46 1b 14 00 00", 7, "cmp", false, 0, SP_NO },
		{ "c1 ef 03", 3, "shr", false, R(RDI), SP_NO },
	};

	return check_vecs(v, ARRAY_SIZE(v));
}

TEST(x86_maps)
{
	static const struct vec v[] = {
		{ "f2 48 0f 38 f1 c1", 6, "0f38 f1", false, NM, 0 },
		{ "66 0f 3a 0f c1 08", 6, "0f3a 0f", false, NM, 0 },
		{ "66 0f 70 c0 1b", 5, NULL, false, NM, 0 },
		{ "66 0f 73 d8 04", 5, NULL, false, NM, 0 },
		{ "66 0f ef c0", 4, "0f ef", false, NM, 0 },
		{ "f3 0f 6f 06", 4, NULL, false, NM, 0 },
		{ "c5 f8 77", 3, "v0f 77", false, NM, 0 },		 /* VEX2, no ModRM */
		{ "c5 fd 6f 06", 4, NULL, false, NM, 0 },		 /* VEX2 */
		{ "c4 e2 7d 18 05 10 00 00 00", 9, NULL, false, NM, 0 }, /* VEX3 0f38, %rip */
		{ "c4 e3 7d 18 c1 01", 6, NULL, false, NM, 0 },		 /* VEX3 0f3a, imm8 */
		{ "c5 f9 70 c0 1b", 5, NULL, false, NM, 0 },		 /* VEX 0f with imm8 */
		{ "c4 c1 7e 6f 44 24 20", 7, NULL, false, NM, 0 },
		{ "c5 f9 90 c1", 4, NULL, false, NM, 0 },	   /* kmovb: opcode 90, not a nop */
		{ "62 f1 7d 48 6f 06", 6, NULL, false, NM, 0 },	   /* EVEX */
		{ "62 f1 fe 48 6f 46 01", 7, NULL, false, NM, 0 }, /* EVEX disp8*N */
		{ "62 f3 7d 48 1e c9 00", 7, NULL, false, NM, 0 }, /* EVEX 0f3a imm8 */
		{ "62 f1 7c 48 c2 c1 00", 7, NULL, false, NM, 0 }, /* EVEX 0f c2 imm8 */
		{ "62 f5 7c 48 58 c1", 6, "vmap5 58", false, NM, 0 }, /* EVEX map 5 */
		{ "f3 0f b8 c0", 4, "popcnt", false, R(RAX), SP_NO },
		{ "f3 0f bc c7", 4, "tzcnt", false, R(RAX), SP_NO },
		{ "0f bc c7", 3, "bsf", false, R(RAX), SP_NO },
		{ "48 0f af c1", 4, "imul", false, R(RAX), SP_NO },
		{ "0f 44 c1", 3, "cmove", false, R(RAX), SP_NO },
		{ "0f 94 c0", 3, "sete", false, R(RAX), SP_NO },
		{ "0f c8", 2, "bswap", false, R(RAX), SP_NO },
		{ "49 0f c9", 3, "bswap", false, R(R9), SP_NO },
		{ "0f 18 0e", 3, "prefetch", false, 0, SP_NO },
		{ "0f 0d 0e", 3, "prefetch", false, 0, SP_NO },
		{ "0f 01 d0", 3, NULL, false, NM, 0 },
		{ "0f 31", 2, "rdtsc", false, R(RAX) | R(RDX), SP_NO },
		{ "0f a2", 2, "cpuid", false, R(RAX) | R(RBX) | R(RCX) | R(RDX), SP_NO },
		{ "0f c7 0e", 3, NULL, false, NM, 0 },
		{ "d9 ee", 2, NULL, false, NM, 0 },
		{ "dd 44 24 08", 4, NULL, false, NM, 0 },
		{ "8f c0", 2, NULL, false, NM, 0 },
		{ "0f 05", 2, NULL, false, NM, 0 },	  /* syscall */
		{ "0f 0e", 2, NULL, false, NM, 0 },	  /* femms */
		{ "3e c5 f8 77", 4, NULL, false, NM, 0 }, /* a segment prefix before VEX is fine */
	};

	return check_vecs(v, ARRAY_SIZE(v));
}

TEST(x86_rejects)
{
	static const char *const bad[] = {
		"06",
		"27",
		"d6",
		"d5 00",
		"0f 04",
		"0f 0a",
		"0f 24",
		"0f 7a",
		"82 c0 01",
		"9a 00 00 00 00 00 00",
		"ea 00 00 00 00 00 00",
		"fe d0",	     /* fe /2 */
		"ff f8",	     /* ff /7 */
		"ff d8",	     /* far call through a register */
		"8d c0",	     /* lea of a register */
		"c7 c8 00 00 00 00", /* c7 /1 */
		"40 66 90",
		"48 48 90",	     /* REX not right before the opcode */
		"66 c5 f8 77",	     /* 66 before VEX */
		"f0 c5 f8 77",	     /* lock before VEX */
		"48 c5 f8 77",	     /* REX before VEX */
		"c4 e0 7d 18 c1",    /* VEX map 0 */
		"62 f1 79 48 6f 06", /* EVEX with P1 bit 2 clear (APX) */
		"62 f9 7c 48 6f 06", /* EVEX with P0 bit 3 set */
		"62 f4 7c 48 6f 06", /* EVEX map 4 */
		"0f b8 c0",	     /* jmpe */
		"0f ba c0 03",	     /* 0f ba /0 */
		"66 74 05",
		"66 e9 00 00",
		"66 e8 00 00",
		"66 0f 84 00 00",				   /* Intel and AMD differ */
		"8f e8 78 c2 c1 00",				   /* XOP */
		"66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", /* longer than 15 bytes */
		"48 8b 05 d6 9e",				   /* cut off in the displacement */
		"e8 00 00",					   /* in the immediate */
		"48 8b 44",					   /* before the SIB byte */
		"0f",
		"f3",
		"48",
		"62 f1 7d",
		"c4 e2",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vec v = { bad[i], 0, NULL, false, 0, 0 };

		TRY(check_vec(&v));
	}
	return true;
}

TEST(x86_branches)
{
	static const struct {
		const char *hex;
		enum x86_flow flow;
		bool has_target;
		int64_t target;
		bool emulated;
	} v[] = {
		{ "74 05", X86_FLOW_JCC, true, 7, true },
		{ "7f 80", X86_FLOW_JCC, true, -126, true },
		{ "0f 84 bf 00 00 00", X86_FLOW_JCC, true, 0xc5, true },
		{ "0f 8f 00 ff ff ff", X86_FLOW_JCC, true, 6 - 256, true },
		{ "e8 00 00 00 00", X86_FLOW_CALL, true, 5, true },
		{ "e9 10 00 00 00", X86_FLOW_JMP, true, 0x15, true },
		{ "eb fe", X86_FLOW_JMP, true, 0, true },
		{ "f2 e9 10 00 00 00", X86_FLOW_JMP, true, 0x16, true },
		{ "2e 74 05", X86_FLOW_JCC, true, 8, false },
		{ "ff d0", X86_FLOW_CALL_IND, false, 0, false },
		{ "ff 15 10 00 00 00", X86_FLOW_CALL_IND, false, 0, false },
		{ "3e ff e0", X86_FLOW_JMP_IND, false, 0, false },
		{ "ff 25 10 00 00 00", X86_FLOW_JMP_IND, false, 0, false },
		{ "c3", X86_FLOW_RET, false, 0, false },
		{ "f3 c3", X86_FLOW_RET, false, 0, false },
		{ "c7 f8 00 00 00 00", X86_FLOW_JCC, true, 6, false }, /* xbegin */
		{ "e3 fe", X86_FLOW_JCC, true, 0, false },	       /* jrcxz */
		{ "e2 fe", X86_FLOW_JCC, true, 0, false },	       /* loop */
		{ "cc", X86_FLOW_TRAP, false, 0, false },
		{ "0f 0b", X86_FLOW_TRAP, false, 0, false },
		{ "f4", X86_FLOW_TRAP, false, 0, false },
		{ "48 85 ff", X86_FLOW_NEXT, false, 0, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		uint8_t code[16];
		size_t n = unhex(v[i].hex, code, sizeof(code));
		struct x86_insn in;

		CHECK(x86_decode(code, n, &in) == n, "%s: not %zu bytes", v[i].hex, n);
		CHECK(in.flow == v[i].flow, "%s: flow %d, expected %d", v[i].hex, in.flow,
		      v[i].flow);
		CHECK(in.has_target == v[i].has_target, "%s: has_target %d", v[i].hex,
		      in.has_target);
		CHECK(!in.has_target || in.target == v[i].target,
		      "%s: target %" PRId64 ", expected %" PRId64, v[i].hex, in.target,
		      v[i].target);
		CHECK(in.emulated == v[i].emulated, "%s: emulated %d", v[i].hex, in.emulated);
	}
	return true;
}

/* Exactly the kernel's own nops are emulated; other nops and endbr64 are single-stepped. */
TEST(x86_emulated_nops)
{
	static const struct vec v[] = {
		{ "90", 1, "nop", true, 0, SP_NO },
		{ "66 90", 2, "nop", true, 0, SP_NO },
		{ "0f 1f 00", 3, "nop", true, 0, SP_NO },
		{ "0f 1f 40 00", 4, "nop", true, 0, SP_NO },
		{ "0f 1f 44 00 00", 5, "nop", true, 0, SP_NO },
		{ "66 0f 1f 44 00 00", 6, "nop", true, 0, SP_NO },
		{ "0f 1f 80 00 00 00 00", 7, "nop", true, 0, SP_NO },
		{ "0f 1f 84 00 00 00 00 00", 8, "nop", true, 0, SP_NO },
		{ "66 0f 1f 84 00 00 00 00 00", 9, "nop", false, 0, SP_NO },
		{ "2e 0f 1f 84 00 00 00 00 00", 9, "nop", false, 0, SP_NO },
		{ "0f 1f 04 00", 4, "nop", false, 0, SP_NO }, /* a nop, not the kernel's */
		{ "66 66 90", 3, "nop", true, 0, SP_NO },     /* opcode 90, any prefixes */
		{ "f3 0f 1e fa", 4, "endbr64", false, 0, SP_NO },
		{ "f3 0f 1e fb", 4, "endbr32", false, 0, SP_NO },
		{ "f3 48 0f 1e c8", 5, NULL, false, NM, 0 }, /* rdsspq %rax writes %rax */
		{ "48 85 ff", 3, "test", false, 0, SP_NO },
	};

	return check_vecs(v, ARRAY_SIZE(v));
}

TEST(x86_stack_effects)
{
	static const struct vec v[] = {
		{ "48 83 ec 18", 4, "sub", false, R(RSP), -24 },
		{ "48 81 ec 88 00 00 00", 7, "sub", false, R(RSP), -136 },
		{ "48 83 c4 08", 4, "add", false, R(RSP), 8 },
		{ "48 83 ec f8", 4, "sub", false, R(RSP), 8 }, /* sub $-8 */
		{ "48 83 e4 f0", 4, "and", false, R(RSP), SP_UNK },
		{ "83 ec 08", 3, "sub", false, R(RSP), SP_UNK }, /* %esp */
		{ "48 29 c4", 3, "sub", false, R(RSP), SP_UNK }, /* sub %rax, %rsp */
		{ "48 89 e5", 3, "mov", false, R(RBP), SP_NO },
		{ "48 89 c4", 3, "mov", false, R(RSP), SP_UNK },
		{ "48 8d 64 24 08", 5, "lea", false, R(RSP), SP_UNK },
		{ "48 83 fc 08", 4, "cmp", false, 0, SP_NO },
		{ "5d", 1, "pop", false, R(RBP) | R(RSP), 8 },
		{ "41 5c", 2, "pop", false, R(R12) | R(RSP), 8 },
		{ "5c", 1, NULL, false, NM, 0 }, /* pop %rsp */
		{ "c9", 1, "leave", false, R(RBP) | R(RSP), SP_UNK },
		{ "9c", 1, "pushf", false, R(RSP), -8 },
		{ "ff 74 24 08", 4, "push", false, R(RSP), -8 },
		{ "48 ff c4", 3, "inc", false, R(RSP), SP_UNK },
	};

	return check_vecs(v, ARRAY_SIZE(v));
}

/* ---- objdump as the oracle ----------------------------------------------------------------- */

struct od_insn {
	uint64_t addr;
	unsigned int len; /* bytes objdump shows */
	bool bad;	  /* "(bad)" or a lone prefix: objdump did not decode it either */
	char text[80];
};

struct od_label {
	uint64_t addr;
	char name[64];
};

struct od {
	struct od_insn *v;
	size_t n, cap;
	struct od_label *labels;
	size_t nlabels, labels_cap;
};

static void od_free(struct od *od)
{
	free(od->v);
	free(od->labels);
	*od = (struct od){ 0 };
}

/* objdump's disassembly of `path`, over [start, stop) or, when stop is 0, all of .text. */
static bool run_objdump(const char *path, uint64_t start, uint64_t stop, struct od *od)
{
	char cmd[512], line[1024];
	FILE *f;

	if (stop)
		snprintf(cmd, sizeof(cmd),
			 "objdump -d -w -z --start-address=0x%" PRIx64 " --stop-address=0x%" PRIx64
			 " %s 2>&1",
			 start, stop, path);
	else
		snprintf(cmd, sizeof(cmd), "objdump -d -w -z -j .text %s 2>&1", path);
	f = popen(cmd, "r");
	CHECK(f, "popen(%s): %s", cmd, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long long addr;
		char *bytes, *text;
		struct od_insn *in;
		int used;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] != ' ') {
			char name[256];

			if (sscanf(line, "%llx <%255[^>]>:", &addr, name) != 2)
				continue;
			grow((void **)&od->labels, &od->labels_cap, od->nlabels + 1,
			     sizeof(*od->labels));
			od->labels[od->nlabels].addr = addr;
			snprintf(od->labels[od->nlabels++].name, sizeof(od->labels->name), "%.63s",
				 name);
			continue;
		}
		if (sscanf(line, " %llx:%n", &addr, &used) != 1 || line[used] != '\t')
			continue;
		bytes = line + used + 1;
		text = strchr(bytes, '\t');
		grow((void **)&od->v, &od->cap, od->n + 1, sizeof(*od->v));
		in = &od->v[od->n++];
		*in = (struct od_insn){ .addr = addr };
		for (char *p = bytes; p < (text ? text : bytes + strlen(bytes)); p++)
			if (p[0] != ' ' && (p == bytes || p[-1] == ' '))
				in->len++;
		text = text ? text + 1 : (char *)"";
		snprintf(in->text, sizeof(in->text), "%s", text);
		/* A prefix shown on its own line ("rex.W", "fs", "data16") is objdump giving up. */
		in->bad = strstr(text, "(bad)") || !strncmp(text, ".byte", 5) ||
			  (in->len == 1 && !strchr(text, ' ') &&
			   (!strncmp(text, "rex", 3) || !strcmp(text, "fs") ||
			    !strcmp(text, "gs") || !strcmp(text, "ds") || !strcmp(text, "cs") ||
			    !strcmp(text, "es") || !strcmp(text, "ss") || !strcmp(text, "data16") ||
			    !strcmp(text, "addr32") || !strcmp(text, "lock") ||
			    !strcmp(text, "repz") || !strcmp(text, "repnz")));
	}
	CHECK(pclose(f) == 0, "%s failed", cmd);
	return true;
}

/*
 * Our linear sweep over [vaddr, vaddr + size) against objdump's instructions od[0..n): every
 * boundary the same, and "not decoded" only where objdump could not decode either (the sweep
 * stops there). Counts the instructions compared into *count, such stops into *unknown.
 */
static bool compare_sweep(const char *what, const uint8_t *code, uint64_t vaddr, uint64_t size,
			  const struct od_insn *od, size_t n, size_t *count, size_t *unknown)
{
	uint64_t pos = 0;
	size_t i = 0;

	for (; pos < size; i++) {
		struct x86_insn in;
		unsigned int len = x86_decode(code + pos, size - pos, &in);

		CHECK(i < n, "%s+%#" PRIx64 ": objdump shows nothing here", what, pos);
		CHECK(od[i].addr == vaddr + pos,
		      "%s+%#" PRIx64 ": objdump's instruction is at +%#" PRIx64, what, pos,
		      od[i].addr - vaddr);
		if (!len) {
			CHECK(od[i].bad, "%s+%#" PRIx64 ": not decoded; objdump: %s", what, pos,
			      od[i].text);
			(*unknown)++;
			return true;
		}
		CHECK(!od[i].bad, "%s+%#" PRIx64 ": decoded %u bytes (%s); objdump: %s", what, pos,
		      len, in.name, od[i].text);
		CHECK(len == od[i].len, "%s+%#" PRIx64 ": %u bytes (%s); objdump %u: %s", what, pos,
		      len, in.name, od[i].len, od[i].text);
		pos += len;
		(*count)++;
	}
	CHECK(i == n, "%s: objdump shows %zu instructions past the end", what, n - i);
	return true;
}

struct lib {
	const char *name, *path;
	bool required;
};

static const struct lib libs[] = {
	{ "glibc", LIBC, true },
	{ "jemalloc", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", false },
	{ "tcmalloc", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", false },
	{ "mimalloc", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2", false },
};

#define A_RDI PROBE_ARG_RDI
#define A_RSI PROBE_ARG_RSI
#define A_RDX PROBE_ARG_RDX

/* The allocator entry points, the argument registers the BPF program reads at each (see
 * read_args() in bpf/allocprof.bpf.c), and whether a return probe shares the site. */
static const struct {
	const char *name;
	unsigned int args;
	bool ret_probe;
} fns[] = {
	{ "malloc", A_RDI, true },
	{ "calloc", A_RDI | A_RSI, true },
	{ "realloc", A_RDI | A_RSI, true },
	{ "reallocarray", A_RDI | A_RSI | A_RDX, true },
	{ "posix_memalign", A_RDI | A_RDX, true },
	{ "aligned_alloc", A_RSI, true },
	{ "memalign", A_RSI, true },
	{ "valloc", A_RDI, true },
	{ "pvalloc", A_RDI, true },
	{ "free", A_RDI, false },
	{ "cfree", A_RDI, false },
	{ "_Znwm", A_RDI, true },
	{ "_Znam", A_RDI, true },
	{ "_ZnwmRKSt9nothrow_t", A_RDI, true },
	{ "_ZnamRKSt9nothrow_t", A_RDI, true },
	{ "_ZnwmSt11align_val_t", A_RDI, true },
	{ "_ZnamSt11align_val_t", A_RDI, true },
	{ "_ZnwmSt11align_val_tRKSt9nothrow_t", A_RDI, true },
	{ "_ZnamSt11align_val_tRKSt9nothrow_t", A_RDI, true },
	{ "_ZdlPv", A_RDI, false },
	{ "_ZdaPv", A_RDI, false },
	{ "_ZdlPvm", A_RDI, false },
	{ "_ZdaPvm", A_RDI, false },
	{ "_ZdlPvRKSt9nothrow_t", A_RDI, false },
	{ "_ZdaPvRKSt9nothrow_t", A_RDI, false },
	{ "_ZdlPvSt11align_val_t", A_RDI, false },
	{ "_ZdaPvSt11align_val_t", A_RDI, false },
	{ "_ZdlPvmSt11align_val_t", A_RDI, false },
	{ "_ZdaPvmSt11align_val_t", A_RDI, false },
	{ "_ZdlPvSt11align_val_tRKSt9nothrow_t", A_RDI, false },
	{ "_ZdaPvSt11align_val_tRKSt9nothrow_t", A_RDI, false },
};

/* A function's bytes, from its dynamic symbol. False (nothing to do) when not there. */
static bool read_fn(struct elf_file *ef, const char *name, struct elf_sym *sym, uint8_t **code)
{
	*code = NULL;
	if (elf_file__lookup(ef, name, sym) || sym->object || sym->ifunc || !sym->size)
		return false;
	*code = xcalloc(1, sym->size);
	if (elf_file__read(ef, sym->vaddr, *code, sym->size)) {
		free(*code);
		*code = NULL;
		return false;
	}
	return true;
}

static struct elf_file *open_lib(const struct lib *l)
{
	struct elf_file *ef = elf_file__open(l->path);

	if (!ef && !l->required)
		printf("  %s: %s not installed (%s); skipped\n", l->name, l->path, strerror(errno));
	return ef;
}

TEST(x86_oracle_allocators)
{
	for (size_t li = 0; li < ARRAY_SIZE(libs); li++) {
		struct elf_file *ef = open_lib(&libs[li]);
		size_t nfns = 0, ninsns = 0, unknown = 0;

		if (!ef) {
			CHECK(!libs[li].required, "elf_file__open(%s): %s", libs[li].path,
			      strerror(errno));
			continue;
		}
		for (size_t fi = 0; fi < ARRAY_SIZE(fns); fi++) {
			struct od od = { 0 };
			struct elf_sym sym;
			uint8_t *code;
			char what[128];
			bool ok;

			if (!read_fn(ef, fns[fi].name, &sym, &code))
				continue;
			snprintf(what, sizeof(what), "%s %s", libs[li].name, fns[fi].name);
			ok = run_objdump(libs[li].path, sym.vaddr, sym.vaddr + sym.size, &od) &&
			     compare_sweep(what, code, sym.vaddr, sym.size, od.v, od.n, &ninsns,
					   &unknown);
			od_free(&od);
			free(code);
			if (!ok) {
				elf_file__free(ef);
				return false;
			}
			nfns++;
		}
		printf("  %s: %zu functions, %zu instructions, every boundary as objdump's, %zu "
		       "unknown where objdump has none either\n",
		       libs[li].name, nfns, ninsns, unknown);
		CHECK(nfns > 0 || !libs[li].required, "%s: no allocator function found",
		      libs[li].name);
		elf_file__free(ef);
	}
	return true;
}

/* Every instruction of each library's .text, from each symbol objdump labels to the next. */
TEST(x86_oracle_text)
{
	for (size_t li = 0; li < ARRAY_SIZE(libs); li++) {
		struct elf_file *ef = open_lib(&libs[li]);
		size_t ninsns = 0, unknown = 0, i = 0;
		struct od od = { 0 };
		bool ok = true;

		if (!ef) {
			CHECK(!libs[li].required, "elf_file__open(%s): %s", libs[li].path,
			      strerror(errno));
			continue;
		}
		if (!run_objdump(libs[li].path, 0, 0, &od)) {
			elf_file__free(ef);
			od_free(&od);
			return false;
		}
		for (size_t l = 0; ok && l < od.nlabels; l++) {
			uint64_t start = od.labels[l].addr, end;
			size_t first;
			uint8_t *code;
			char what[128];

			while (i < od.n && od.v[i].addr < start)
				i++;
			first = i;
			while (i < od.n &&
			       (l + 1 == od.nlabels || od.v[i].addr < od.labels[l + 1].addr))
				i++;
			if (first == i)
				continue;
			end = od.v[i - 1].addr + od.v[i - 1].len;
			code = xcalloc(1, end - start);
			snprintf(what, sizeof(what), "%s <%s>", libs[li].name, od.labels[l].name);
			ok = !elf_file__read(ef, start, code, end - start);
			if (!ok)
				fail_at(__FILE__, __LINE__, "%s: not readable", what);
			else
				ok = compare_sweep(what, code, start, end - start, od.v + first,
						   i - first, &ninsns, &unknown);
			free(code);
		}
		if (ok)
			printf("  %s: .text, %zu symbols, %zu instructions, every boundary as "
			       "objdump's, %zu unknown where objdump has none either\n",
			       libs[li].name, od.nlabels, ninsns, unknown);
		od_free(&od);
		elf_file__free(ef);
		if (!ok)
			return false;
	}
	return true;
}

TEST(elffile_read)
{
	struct elf_file *ef = elf_file__open(LIBC);
	uint8_t a[16], b[16];
	struct elf_sym sym;
	uint64_t off;
	FILE *f;

	CHECK(ef, "elf_file__open(" LIBC "): %s", strerror(errno));
	/* The first PT_LOAD maps the file from offset 0 at vaddr 0. */
	CHECK_INT(elf_file__read(ef, 0, a, 4), 0);
	CHECK(!memcmp(a,
		      "\x7f"
		      "ELF",
		      4),
	      "vaddr 0 is not the ELF header");
	CHECK_INT(elf_file__lookup(ef, "malloc", &sym), 0);
	CHECK_INT(elf_file__vaddr_to_offset(ef, sym.vaddr, &off), 0);
	CHECK_INT(elf_file__read(ef, sym.vaddr, a, sizeof(a)), 0);
	f = fopen(LIBC, "re");
	CHECK(f, "fopen: %s", strerror(errno));
	CHECK(!fseek(f, (long)off, SEEK_SET) && fread(b, 1, sizeof(b), f) == sizeof(b), "fread");
	fclose(f);
	CHECK(!memcmp(a, b, sizeof(a)), "malloc's bytes differ from the file's");
	CHECK_INT(elf_file__read(ef, UINT64_MAX / 2, a, 1), -ENOENT);
	CHECK_INT(elf_file__read(ef, sym.vaddr, a, 0), 0);
	elf_file__free(ef);
	return true;
}

/* ---- the chooser ------------------------------------------------------------------------------
 */

static bool choose_in(const char *path, const char *fn, unsigned int args, bool keep_sp,
		      struct site_choice *c)
{
	struct elf_file *ef = elf_file__open(path);
	struct elf_sym sym;
	uint8_t *code;

	CHECK(ef, "elf_file__open(%s): %s", path, strerror(errno));
	if (!read_fn(ef, fn, &sym, &code)) {
		elf_file__free(ef);
		CHECK(false, "%s in %s: not found or not readable", fn, path);
	}
	probe_site__choose(code, sym.size, args, keep_sp, c);
	free(code);
	elf_file__free(ef);
	return true;
}

TEST(site_glibc_free)
{
	struct site_choice c;

	TRY(choose_in(LIBC, "free", A_RDI, false, &c));
	CHECK_U64(c.off, 3);
	CHECK_INT(c.slots, 0);
	CHECK_STR(c.why, "+3 je (emulated), after test");
	/* Nothing moves %rsp before the je: a return probe could share it. */
	TRY(choose_in(LIBC, "free", A_RDI, true, &c));
	CHECK_U64(c.off, 3);
	return true;
}

TEST(site_glibc_malloc)
{
	struct site_choice c;

	TRY(choose_in(LIBC, "malloc", A_RDI, true, &c));
	CHECK_U64(c.off, 0);
	CHECK_INT(c.slots, 0);
	CHECK_STR(c.why, "entry: push (emulated)");
	return true;
}

static bool choose_hex(const char *hex, unsigned int args, bool keep_sp, struct site_choice *c)
{
	uint8_t code[256];
	size_t n = unhex(hex, code, sizeof(code));

	CHECK(n > 0, "bad test bytes %s", hex);
	probe_site__choose(code, n, args, keep_sp, c);
	return true;
}

/* test %rdi,%rdi; je +2; <body>; ret: the je at +3 unless something says otherwise. */
TEST(site_synthetic)
{
	static const struct {
		const char *hex;
		unsigned int args;
		bool keep_sp;
		uint64_t off;
		unsigned int slots;
		const char *why; /* a part of it */
	} v[] = {
		{ "48 85 ff 74 02 eb 00 c3", A_RDI, false, 3, 0, "+3 je (emulated), after test" },
		/* A branch back to the site itself or before it: the entry. */
		{ "48 85 ff 74 02 eb fc c3", A_RDI, false, 0, 0, "'jmp' at +5 branches to +3" },
		{ "48 85 ff 74 02 eb fa c3", A_RDI, false, 0, 0, "branches to +1" },
		{ "48 85 ff 74 02 eb f9 c3", A_RDI, false, 3, 0, "+3 je" }, /* to 0: fine */
		{ "48 85 ff 74 02 eb fd c3", A_RDI, false, 3, 0, "+3 je" }, /* to +4: fine */
		{ "48 85 ff 74 02 0f 84 f7 ff ff ff c3", A_RDI, false, 0, 0, "branches to +2" },
		/* An argument register written before: the entry, unless not read. */
		{ "48 89 fe 74 00 c3", A_RDI, false, 3, 0, "+3 je" },
		{ "48 89 fe 74 00 c3", A_RDI | A_RSI, false, 0, 0, "%rsi written by 'mov' at +0" },
		{ "48 85 ff 31 ff 74 00 c3", A_RDI, false, 0, 0, "%rdi written by 'xor' at +3" },
		/* mov %dl, %dh: without REX, rm 6 is %dh, not %sil. */
		{ "48 85 ff 88 d6 74 00 c3", A_RSI, false, 5, 0, "+5 je" },
		/* mov %rdi,%rbp: the stack walks need the caller's %rbp at the site */
		{ "48 85 ff 48 89 fd 74 00 c3", A_RDI, false, 6, 0, "+6 je" },
		{ "48 85 ff 48 89 fd 74 00 c3", A_RDI | PROBE_ARG_RBP, false, 0, 0,
		  "%rbp written by 'mov' at +3" },
		{ "48 85 ff 88 d6 74 00 c3", A_RDX, false, 0, 0, "%rdx written by 'mov' at +3" },
		/* The stack. */
		{ "6a 00 74 00 c3", A_RDI, false, 2, 1, "+2 je (emulated), after push" },
		{ "6a 00 74 00 c3", A_RDI, true, 0, 0, "return probe needs %rsp" },
		{ "48 83 ec 18 e8 00 00 00 00 c3", A_RDI, false, 4, 3,
		  "+4 call (emulated), after sub" },
		{ "48 83 ec 14 e8 00 00 00 00 c3", A_RDI, false, 0, 0, "moves %rsp unknowably" },
		{ "48 83 c4 08 74 00 c3", A_RDI, false, 0, 0, "moves %rsp unknowably" },
		{ "48 83 e4 f0 74 00 c3", A_RDI, false, 0, 0, "moves %rsp unknowably" },
		{ "48 81 ec 00 01 00 00 74 00 c3", A_RDI, false, 0, 0, "more than 31 stack slots" },
		/* endbr64 is single-stepped: the push after it. */
		{ "f3 0f 1e fa 55 48 89 e5 c3", A_RDI, true, 4, 0,
		  "+4 push (emulated), after endbr64" },
		{ "f3 0f 1e fa 48 85 ff 0f 1f 44 00 00 c3", A_RDI, false, 7, 0,
		  "+7 nop (emulated), after endbr64, test" },
		/* Undecodable anywhere in the function: the entry. */
		{ "48 85 ff 74 00 06 c3", A_RDI, false, 0, 0, "byte at +5 not decoded" },
		{ "48 85 ff 74 00 e8 00", A_RDI, false, 0, 0, "byte at +5 not decoded" },
		/* What the walk may not pass. */
		{ "48 85 ff e3 00 c3", A_RDI, false, 0, 0, "'jrcxz' at +3 branches first" },
		{ "48 85 ff c3", A_RDI, false, 0, 0, "'ret' at +3 branches first" },
		{ "66 0f ef c0 74 00 c3", A_RDI, false, 0, 0,
		  "effects of '0f ef' at +0 not modelled" },
		{ "48 85 ff 2e 74 00 c3", A_RDI, false, 0, 0, "'je' at +3 branches first" },
		{ "41 90 74 00 c3", A_RDI, false, 2, 0, "+2 je (emulated), after xchg" },
		{ "06", A_RDI, false, 0, 0, "entry: first instruction not decoded" },
		{ "55 48 89 e5 c3", A_RDI, true, 0, 0, "entry: push (emulated)" },
		{ "48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 "
		  "ff "
		  "48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 ff 48 85 "
		  "ff "
		  "48 85 ff 48 85 ff 48 85 ff 48 85 ff 74 00 c3",
		  A_RDI, false, 0, 0, "no emulated instruction in the first 66 bytes" },
		{ "48 85 ff 48 85 ff", A_RDI, false, 0, 0,
		  "no emulated instruction in the first 6" },
	};
	struct site_choice c;

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		TRY(choose_hex(v[i].hex, v[i].args, v[i].keep_sp, &c));
		CHECK(c.off == v[i].off && c.slots == v[i].slots && strstr(c.why, v[i].why),
		      "%s: +%" PRIu64 " slots %u \"%s\", expected +%" PRIu64 " slots %u \"%s\"",
		      v[i].hex, c.off, c.slots, c.why, v[i].off, v[i].slots, v[i].why);
	}
	/* Size unknown. */
	probe_site__choose((const uint8_t *)"\x48\x85\xff\x74\x00", 0, A_RDI, false, &c);
	CHECK(c.off == 0 && c.slots == 0, "size 0: +%" PRIu64, c.off);
	CHECK_STR(c.why, "entry: size of the function unknown");
	return true;
}

/*
 * The kernel takes 41 90 (xchg %eax, %r8d) for a nop and VEX vpshufd (opcode byte 70) for a
 * jo: a function starting with one is not probed at all, unless a later site is found.
 */
TEST(site_mishandled_entry)
{
	struct site_choice c;

	TRY(choose_hex("41 90 c3", A_RDI, false, &c));
	CHECK(c.refuse, "41 90 at the entry: \"%s\"", c.why);
	CHECK(strstr(c.why, "mishandles its first instruction 'xchg'"), "%s", c.why);
	TRY(choose_hex("c5 f9 70 c0 00 c3", A_RDI, false, &c));
	CHECK(c.refuse, "vpshufd at the entry: \"%s\"", c.why);
	TRY(choose_hex("41 90 74 00 c3", A_RDI, false, &c));
	CHECK(!c.refuse && c.off == 2, "41 90 then je: +%" PRIu64 " \"%s\"", c.off, c.why);
	TRY(choose_hex("48 85 ff 74 00 c3", A_RDI, false, &c));
	CHECK(!c.refuse && c.off == 3, "test, je: +%" PRIu64, c.off);
	/* The same rule for an entry probe whatever the chooser would say. */
	{
		static const uint8_t xchg[] = { 0x41, 0x90, 0x74, 0x00, 0xc3 };
		static const uint8_t push[] = { 0x55, 0x48, 0x89, 0xe5, 0xc3 };
		char why[96] = "";

		CHECK(probe_site__entry_refused(xchg, sizeof(xchg), why, sizeof(why)),
		      "41 90 entry accepted");
		CHECK(strstr(why, "'xchg'"), "%s", why);
		CHECK(!probe_site__entry_refused(push, sizeof(push), why, sizeof(why)),
		      "push entry refused");
		CHECK(!probe_site__entry_refused(xchg, 0, why, sizeof(why)), "nothing read");
	}
	return true;
}

/* The site of every allocator function here: on an instruction boundary, and slots 0 when a
 * return probe shares it. X86_TESTS_VERBOSE=1 lists them. */
static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Every direct branch target in a library's .text, sorted: our sweep from each symbol. */
static bool text_targets(const struct lib *l, struct elf_file *ef, uint64_t **out, size_t *n)
{
	struct od od = { 0 };
	size_t cap = 0, i = 0;

	*out = NULL;
	*n = 0;
	TRY(run_objdump(l->path, 0, 0, &od));
	for (size_t k = 0; k < od.nlabels; k++) {
		uint64_t start = od.labels[k].addr, end, pos = 0;
		struct x86_insn in;
		uint8_t *code;

		while (i < od.n && od.v[i].addr < start)
			i++;
		while (i < od.n && (k + 1 == od.nlabels || od.v[i].addr < od.labels[k + 1].addr))
			i++;
		if (!i || od.v[i - 1].addr < start)
			continue;
		end = od.v[i - 1].addr + od.v[i - 1].len;
		code = xcalloc(1, end - start);
		if (!elf_file__read(ef, start, code, end - start))
			for (; pos < end - start && x86_decode(code + pos, end - start - pos, &in);
			     pos += in.len) {
				if (!in.has_target)
					continue;
				grow((void **)out, &cap, *n + 1, sizeof(**out));
				(*out)[(*n)++] = start + pos + (uint64_t)in.target;
			}
		free(code);
	}
	od_free(&od);
	qsort(*out, *n, sizeof(**out), u64_cmp);
	return true;
}

/* Is any of the sorted targets in (lo, hi]? */
static bool any_in(const uint64_t *t, size_t n, uint64_t lo, uint64_t hi)
{
	size_t a = 0, b = n;

	while (a < b) {
		size_t m = (a + b) / 2;

		if (t[m] <= lo)
			a = m + 1;
		else
			b = m;
	}
	return a < n && t[a] <= hi;
}

/*
 * The site of every allocator function here: on an instruction boundary, slots 0 when a
 * return probe shares it, and, beyond what the chooser sees, no direct branch from anywhere
 * in the library's .text (cold parts, other functions) lands between entry and site.
 * X86_TESTS_VERBOSE=1 lists them.
 */
TEST(site_allocators)
{
	const char *verbose_env = getenv("X86_TESTS_VERBOSE");
	bool list = verbose_env && *verbose_env && strcmp(verbose_env, "0");

	for (size_t li = 0; li < ARRAY_SIZE(libs); li++) {
		struct elf_file *ef = open_lib(&libs[li]);
		size_t n = 0, moved = 0, ntargets;
		uint64_t *targets;

		if (!ef) {
			CHECK(!libs[li].required, "elf_file__open(%s): %s", libs[li].path,
			      strerror(errno));
			continue;
		}
		if (!text_targets(&libs[li], ef, &targets, &ntargets)) {
			elf_file__free(ef);
			return false;
		}
		for (size_t fi = 0; fi < ARRAY_SIZE(fns); fi++) {
			struct site_choice c;
			struct elf_sym sym;
			uint8_t *code;
			uint64_t pos = 0;

			if (!read_fn(ef, fns[fi].name, &sym, &code))
				continue;
			probe_site__choose(code, sym.size, fns[fi].args, fns[fi].ret_probe, &c);
			for (struct x86_insn in;
			     pos < c.off && x86_decode(code + pos, sym.size - pos, &in);)
				pos += in.len;
			free(code);
			if (list)
				printf("  %-8s %-36s +%-3" PRIu64 " slots %u  %s\n", libs[li].name,
				       fns[fi].name, c.off, c.slots, c.why);
			CHECK(pos == c.off, "%s %s: +%" PRIu64 " is not an instruction boundary",
			      libs[li].name, fns[fi].name, c.off);
			CHECK(!fns[fi].ret_probe || !c.slots,
			      "%s %s: %u slots under a return probe", libs[li].name, fns[fi].name,
			      c.slots);
			CHECK(!c.off || !any_in(targets, ntargets, sym.vaddr, sym.vaddr + c.off),
			      "%s %s: a branch in .text lands in (entry, +%" PRIu64 "]",
			      libs[li].name, fns[fi].name, c.off);
			n++;
			moved += c.off != 0;
		}
		printf("  %s: %zu functions, %zu probed past their entry; no branch among %zu in "
		       ".text lands before a site\n",
		       libs[li].name, n, moved, ntargets);
		free(targets);
		elf_file__free(ef);
	}
	return true;
}

/* ---- main ----------------------------------------------------------------------------------- */

/* clang-format off */
static const struct unit_test tests[] = {
	T(x86_prefixes),
	T(x86_modrm_sib),
	T(x86_immediates),
	T(x86_maps),
	T(x86_rejects),
	T(x86_branches),
	T(x86_emulated_nops),
	T(x86_stack_effects),
	T(elffile_read),
	T(x86_oracle_allocators),
	T(x86_oracle_text),
	T(site_glibc_free),
	T(site_glibc_malloc),
	T(site_synthetic),
	T(site_mishandled_entry),
	T(site_allocators),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
