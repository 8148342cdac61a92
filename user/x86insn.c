/*
 * Decoding x86-64 machine code (64-bit mode), one instruction at a time: its exact length,
 * and for the instructions compilers put at the start of functions what a probe site needs to
 * know. Lengths come from the opcode tables below (Intel SDM volume 2, appendix A); effects
 * are modelled only for the common integer instructions, everything else says "not modelled".
 * Knows nothing about ELF files, symbols or probes.
 */
#include "x86insn.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* What follows an opcode byte. */
enum {
	M = 1 << 0,   /* a ModRM byte, and the SIB byte and displacement it asks for */
	I8 = 1 << 1,  /* an 8-bit immediate */
	I16 = 1 << 2, /* a 16-bit immediate (before an I8 one: enter) */
	IZ = 1 << 3,  /* a 16-bit immediate with a 66 prefix (and no REX.W), else 32-bit */
	IV = 1 << 4,  /* as IZ, but 64-bit with REX.W: mov $imm64, %reg */
	MO = 1 << 5,  /* a 64-bit absolute address, 32-bit with a 67 prefix: movabs */
	REL = 1 << 6, /* the immediate is a branch displacement from the next instruction */
	RO = 1 << 7,  /* ModRM names registers whatever its mod says: mov to/from %crN, %drN */
	X = 1 << 8,   /* undefined in 64-bit mode, or not decoded here */
};

/* The one-byte map. Prefixes (legacy, REX) and escapes (0f, VEX, EVEX) never get here. */
/* clang-format off */
static const uint16_t map1[256] = {
	/*        0       1       2       3       4       5       6       7 */
	/*        8       9       a       b       c       d       e       f */
	/* 00 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 08 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 10 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 18 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 20 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 28 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 30 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 38 */ M,      M,      M,      M,      I8,     IZ,     X,      X,
	/* 40 */ X,      X,      X,      X,      X,      X,      X,      X,
	/* 48 */ X,      X,      X,      X,      X,      X,      X,      X,
	/* 50 */ 0,      0,      0,      0,      0,      0,      0,      0,
	/* 58 */ 0,      0,      0,      0,      0,      0,      0,      0,
	/* 60 */ X,      X,      X,      M,      X,      X,      X,      X,
	/* 68 */ IZ,     M | IZ, I8,     M | I8, 0,      0,      0,      0,
	/* 70 */ I8|REL, I8|REL, I8|REL, I8|REL, I8|REL, I8|REL, I8|REL, I8|REL,
	/* 78 */ I8|REL, I8|REL, I8|REL, I8|REL, I8|REL, I8|REL, I8|REL, I8|REL,
	/* 80 */ M | I8, M | IZ, X,      M | I8, M,      M,      M,      M,
	/* 88 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 90 */ 0,      0,      0,      0,      0,      0,      0,      0,
	/* 98 */ 0,      0,      X,      0,      0,      0,      0,      0,
	/* a0 */ MO,     MO,     MO,     MO,     0,      0,      0,      0,
	/* a8 */ I8,     IZ,     0,      0,      0,      0,      0,      0,
	/* b0 */ I8,     I8,     I8,     I8,     I8,     I8,     I8,     I8,
	/* b8 */ IV,     IV,     IV,     IV,     IV,     IV,     IV,     IV,
	/* c0 */ M | I8, M | I8, I16,    0,      X,      X,      M | I8, M | IZ,
	/* c8 */ I16|I8, 0,      I16,    0,      0,      I8,     X,      0,
	/* d0 */ M,      M,      M,      M,      X,      X,      X,      0,
	/* d8 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* e0 */ I8|REL, I8|REL, I8|REL, I8|REL, I8,     I8,     I8,     I8,
	/* e8 */ IZ|REL, IZ|REL, X,      I8|REL, 0,      0,      0,      0,
	/* f0 */ X,      0,      X,      X,      0,      0,      M,      M,
	/* f8 */ 0,      0,      0,      0,      0,      0,      M,      M,
};
/* clang-format on */

/* The 0f map. 0f 38 and 0f 3a are maps of their own (all ModRM; 0f 3a adds an imm8). */
/* clang-format off */
static const uint16_t map0f[256] = {
	/* 00 */ M,      M,      M,      M,      X,      0,      0,      0,
	/* 08 */ 0,      0,      X,      0,      X,      M,      0,      M | I8,
	/* 10 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 18 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 20 */ M | RO, M | RO, M | RO, M | RO, X,      X,      X,      X,
	/* 28 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 30 */ 0,      0,      0,      0,      0,      0,      X,      0,
	/* 38 */ X,      X,      X,      X,      X,      X,      X,      X,
	/* 40 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 48 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 50 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 58 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 60 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 68 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 70 */ M | I8, M | I8, M | I8, M | I8, M,      M,      M,      0,
	/* 78 */ M,      M,      X,      X,      M,      M,      M,      M,
	/* 80 */ IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL,
	/* 88 */ IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL, IZ|REL,
	/* 90 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* 98 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* a0 */ 0,      0,      0,      M,      M | I8, M,      X,      X,
	/* a8 */ 0,      0,      0,      M,      M | I8, M,      M,      M,
	/* b0 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* b8 */ M,      M,      M | I8, M,      M,      M,      M,      M,
	/* c0 */ M,      M,      M | I8, M,      M | I8, M | I8, M | I8, M,
	/* c8 */ 0,      0,      0,      0,      0,      0,      0,      0,
	/* d0 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* d8 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* e0 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* e8 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* f0 */ M,      M,      M,      M,      M,      M,      M,      M,
	/* f8 */ M,      M,      M,      M,      M,      M,      M,      M,
};
/* clang-format on */

enum map { MAP1, MAP0F, MAP0F38, MAP0F3A, MAP5, MAP6 };

struct dec {
	const uint8_t *p;
	unsigned int end; /* bytes we may read: min(avail, 15) */
	unsigned int pos;
	bool p66, p67, pf2, pf3, lock;
	bool refused; /* a prefix uprobes refuse: es, cs, ss, ds, lock */
	uint8_t rex;  /* REX byte, or 0 */
	bool vex;     /* VEX or EVEX encoded */
	enum map map;
	uint8_t op;
	uint8_t modrm;
	unsigned int mod, reg, rm; /* reg and rm extended by REX.R and REX.B */
	int64_t imm;		   /* the last immediate, sign-extended */
};

static bool take(struct dec *d, unsigned int n)
{
	if (d->pos + n > d->end)
		return false;
	d->pos += n;
	return true;
}

/* Little-endian, sign-extended. */
static int64_t le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = n; i-- > 0;)
		v = v << 8 | p[i];
	if (n < 8 && (v >> (8 * n - 1)) & 1)
		v |= ~0ull << (8 * n);
	return (int64_t)v;
}

static bool read_modrm(struct dec *d, bool regs_only)
{
	unsigned int disp = 0;
	uint8_t b;

	if (!take(d, 1))
		return false;
	b = d->p[d->pos - 1];
	d->modrm = b;
	d->mod = regs_only ? 3 : b >> 6;
	d->reg = ((b >> 3) & 7) | (d->rex & 4 ? 8 : 0);
	d->rm = (b & 7) | (d->rex & 1 ? 8 : 0);
	if (d->mod == 3)
		return true;
	if (d->mod == 1)
		disp = 1;
	else if (d->mod == 2)
		disp = 4;
	if ((b & 7) == 4) {
		if (!take(d, 1))
			return false;
		if ((d->p[d->pos - 1] & 7) == 5 && d->mod == 0)
			disp = 4; /* no base register: disp32 */
	} else if ((b & 7) == 5 && d->mod == 0) {
		disp = 4; /* %rip-relative */
	}
	return take(d, disp);
}

static bool read_imm(struct dec *d, unsigned int n)
{
	if (!n)
		return true;
	if (!take(d, n))
		return false;
	d->imm = le(d->p + d->pos - n, n);
	return true;
}

/* VEX (c4, c5) and EVEX (62): the prefix, then opcode, ModRM and an imm8 for some. */
static bool decode_vex(struct dec *d, uint8_t esc)
{
	unsigned int mmm;
	uint8_t b1, b2;

	/* A 66, f2, f3, lock or REX prefix before VEX is #UD. */
	if (d->p66 || d->pf2 || d->pf3 || d->rex || d->lock)
		return false;
	d->vex = true;
	if (!take(d, 1))
		return false;
	b1 = d->p[d->pos - 1];
	if (esc == 0xc5) {
		mmm = 1;
		d->rex = 0x40 | (b1 & 0x80 ? 0 : 4);
	} else if (esc == 0xc4) {
		if (!take(d, 1))
			return false;
		b2 = d->p[d->pos - 1];
		mmm = b1 & 0x1f;
		d->rex = 0x40 | (b2 & 0x80 ? 8 : 0) | (~b1 >> 5 & 7);
	} else {
		if (!take(d, 2))
			return false;
		b2 = d->p[d->pos - 2];
		/* Bit 3 of P0 and bit 2 of P1 are fixed in AVX-512; APX's uses are not decoded. */
		if (b1 & 0x08 || !(b2 & 0x04))
			return false;
		mmm = b1 & 0x07;
		d->rex = 0x40 | (b2 & 0x80 ? 8 : 0) | (~b1 >> 5 & 7);
	}
	switch (mmm) {
	case 1:
		d->map = MAP0F;
		break;
	case 2:
		d->map = MAP0F38;
		break;
	case 3:
		d->map = MAP0F3A;
		break;
	case 5: /* AVX512-FP16 */
	case 6:
		if (esc != 0x62)
			return false;
		d->map = mmm == 5 ? MAP5 : MAP6;
		break;
	default:
		return false;
	}
	if (!take(d, 1))
		return false;
	d->op = d->p[d->pos - 1];
	/* vzeroupper and vzeroall are the only ones without ModRM. */
	if (esc != 0x62 && d->map == MAP0F && d->op == 0x77)
		return true;
	if (!read_modrm(d, false))
		return false;
	if (d->map == MAP0F3A ||
	    (d->map == MAP0F && ((d->op >= 0x70 && d->op <= 0x73) || d->op == 0xc2 ||
				 (d->op >= 0xc4 && d->op <= 0xc6))))
		return read_imm(d, 1);
	return true;
}

/* Prefixes, opcode, ModRM, immediates: the length. False when not decoded. */
static bool decode(struct dec *d)
{
	uint16_t f;
	uint8_t b;

	for (;; d->pos++) {
		if (d->pos >= d->end)
			return false;
		b = d->p[d->pos];
		if (b == 0x66)
			d->p66 = true;
		else if (b == 0x67)
			d->p67 = true;
		else if (b == 0xf2)
			d->pf2 = true;
		else if (b == 0xf3)
			d->pf3 = true;
		else if (b == 0xf0)
			d->lock = d->refused = true;
		else if (b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e)
			d->refused = true;
		else if (b != 0x64 && b != 0x65)
			break;
	}
	if ((b & 0xf0) == 0x40) {
		d->rex = b;
		if (!take(d, 1))
			return false;
	}
	if (!take(d, 1))
		return false;
	b = d->p[d->pos - 1];
	/* A REX not right before the opcode is ignored by the CPU; no compiler emits one. */
	if (d->rex &&
	    ((b & 0xf0) == 0x40 || b == 0x66 || b == 0x67 || b == 0xf2 || b == 0xf3 || b == 0x26 ||
	     b == 0x2e || b == 0x36 || b == 0x3e || b == 0x64 || b == 0x65 || b == 0xf0))
		return false;
	if (b == 0xc4 || b == 0xc5 || b == 0x62)
		return decode_vex(d, b);
	if (b == 0x0f) {
		if (!take(d, 1))
			return false;
		b = d->p[d->pos - 1];
		if (b == 0x38 || b == 0x3a) {
			d->map = b == 0x38 ? MAP0F38 : MAP0F3A;
			if (!take(d, 1))
				return false;
			d->op = d->p[d->pos - 1];
			f = d->map == MAP0F38 ? M : M | I8;
		} else {
			d->map = MAP0F;
			d->op = b;
			f = map0f[b];
			/* popcnt needs its f3; without it the opcode is IA-64's jmpe. */
			if (b == 0xb8 && !d->pf3)
				f = X;
			/* extrq/insertq (SSE4a) take two imm8 where vmread takes none. */
			if (b == 0x78 && (d->p66 || d->pf2))
				f = M | I16;
		}
	} else {
		d->map = MAP1;
		d->op = b;
		f = map1[b];
	}
	if (f & X)
		return false;
	/* Direct branches with a 66 prefix: Intel ignores it, AMD truncates %rip to 16 bits. */
	if (f & REL && d->p66)
		return false;
	if (f & M) {
		/* 8f with a nonzero reg field is AMD's XOP prefix. */
		if (d->map == MAP1 && d->op == 0x8f && d->pos < d->end && (d->p[d->pos] & 0x38))
			return false;
		if (!read_modrm(d, f & RO))
			return false;
	}
	if (d->map == MAP1) {
		unsigned int r = d->reg & 7;

		switch (d->op) {
		case 0x8d: /* lea of a register */
			if (d->mod == 3)
				return false;
			break;
		case 0xc6: /* mov $imm, r/m; xabort, xbegin at f8 */
		case 0xc7:
			if (r && d->modrm != 0xf8)
				return false;
			if (d->op == 0xc7 && d->modrm == 0xf8 && d->p66)
				return false; /* xbegin rel16 */
			break;
		case 0xf6: /* group 3: only test has an immediate */
		case 0xf7:
			if (r <= 1)
				f |= d->op == 0xf6 ? I8 : IZ;
			break;
		case 0xfe: /* inc, dec */
			if (r > 1)
				return false;
			break;
		case 0xff: /* far call and jmp take memory; /7 is undefined */
			if (r == 7 || ((r == 3 || r == 5) && d->mod == 3))
				return false;
			break;
		}
	}
	if (d->map == MAP0F && d->op == 0xba && (d->reg & 7) < 4)
		return false;
	if (!read_imm(d, f & I16 ? 2 : 0) || !read_imm(d, f & I8 ? 1 : 0))
		return false;
	if (f & IZ && !read_imm(d, d->p66 && !(d->rex & 8) ? 2 : 4))
		return false;
	if (f & IV && !read_imm(d, d->rex & 8 ? 8 : d->p66 ? 2 : 4))
		return false;
	return !(f & MO) || read_imm(d, d->p67 ? 4 : 8);
}

/* ---- effects ------------------------------------------------------------------------------ */

static const char *const alu_names[8] = { "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp" };
static const char *const shift_names[8] = {
	"rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"
};
static const char *const cc_names[16] = { "o", "no", "b", "ae", "e", "ne", "be", "a",
					  "s", "ns", "p", "np", "l", "ge", "le", "g" };

/* A byte register number: without any REX, 4..7 are %ah, %ch, %dh, %bh. */
static unsigned int reg8(const struct dec *d, unsigned int r)
{
	return !d->rex && r >= 4 && r < 8 ? r - 4 : r;
}

/* The register ModRM.reg names. */
static uint32_t reg_dst(const struct dec *d, bool byte)
{
	return X86_REG(byte ? reg8(d, d->reg) : d->reg);
}

/* The register ModRM.rm names, if it names one rather than memory. */
static uint32_t rm_dst(const struct dec *d, bool byte)
{
	return d->mod == 3 ? X86_REG(byte ? reg8(d, d->rm) : d->rm) : 0;
}

static void known(struct x86_insn *in, const char *name, uint32_t writes)
{
	snprintf(in->name, sizeof(in->name), "%s", name);
	in->modelled = true;
	in->writes = writes;
}

static void sp_moves(struct x86_insn *in, int32_t delta)
{
	in->writes |= X86_REG(X86_RSP);
	in->sp_known = true;
	in->sp_delta = delta;
}

static void branch(struct x86_insn *in, const char *prefix, const char *cc, enum x86_flow flow,
		   const struct dec *d)
{
	snprintf(in->name, sizeof(in->name), "%s%s", prefix, cc);
	in->modelled = true;
	in->flow = flow;
	in->has_target = true;
	in->target = (int64_t)in->len + d->imm;
}

static void model_map1(const struct dec *d, struct x86_insn *in)
{
	unsigned int op = d->op, r = d->reg & 7;
	bool byte = !(op & 1);

	switch (op) {
	case 0x00 ... 0x3f: /* add, or, adc, sbb, and, sub, xor, cmp; 6 and 7 are not opcodes */
		if ((op & 7) < 6) {
			uint32_t w = (op & 7) < 2   ? rm_dst(d, byte)
				     : (op & 7) < 4 ? reg_dst(d, byte)
						    : X86_REG(X86_RAX);

			known(in, alu_names[op >> 3], op >> 3 == 7 ? 0 : w);
		}
		break;
	case 0x50 ... 0x57:
		if (!d->p66) {
			known(in, "push", 0);
			sp_moves(in, -8);
		}
		break;
	case 0x58 ... 0x5f:
		if (!d->p66 && ((op & 7) | (d->rex & 1 ? 8 : 0)) != X86_RSP) {
			known(in, "pop", X86_REG((op & 7) | (d->rex & 1 ? 8 : 0)));
			sp_moves(in, 8);
		}
		break;
	case 0x63:
		known(in, "movsxd", reg_dst(d, false));
		break;
	case 0x68:
	case 0x6a:
		if (!d->p66) {
			known(in, "push", 0);
			sp_moves(in, -8);
		}
		break;
	case 0x69:
	case 0x6b:
		known(in, "imul", reg_dst(d, false));
		break;
	case 0x70 ... 0x7f:
		branch(in, "j", cc_names[op & 15], X86_FLOW_JCC, d);
		break;
	case 0x80:
	case 0x81:
	case 0x83:
		known(in, alu_names[r], r == 7 ? 0 : rm_dst(d, op == 0x80));
		/* sub/add $imm, %rsp: the stack frame's size. */
		if (in->writes & X86_REG(X86_RSP) && op != 0x80 && d->rex & 8 && (r == 0 || r == 5))
			sp_moves(in, (int32_t)(r == 0 ? d->imm : -d->imm));
		break;
	case 0x84:
	case 0x85:
		known(in, "test", 0);
		break;
	case 0x86:
	case 0x87:
		known(in, "xchg", reg_dst(d, byte) | rm_dst(d, byte));
		break;
	case 0x88:
	case 0x89:
		known(in, "mov", rm_dst(d, byte));
		break;
	case 0x8a:
	case 0x8b:
		known(in, "mov", reg_dst(d, byte));
		break;
	case 0x8c:
		known(in, "mov", rm_dst(d, false));
		break;
	case 0x8d:
		known(in, "lea", reg_dst(d, false));
		break;
	case 0x90:
		/* With REX.B this is xchg %r8, %rax, not a nop. */
		if (d->rex & 1)
			known(in, "xchg", X86_REG(X86_RAX) | X86_REG(X86_R8));
		else
			known(in, d->pf3 ? "pause" : "nop", 0);
		break;
	case 0x91 ... 0x97:
		known(in, "xchg", X86_REG(X86_RAX) | X86_REG((op & 7) | (d->rex & 1 ? 8 : 0)));
		break;
	case 0x98:
		known(in, "cdqe", X86_REG(X86_RAX));
		break;
	case 0x99:
		known(in, "cqo", X86_REG(X86_RDX));
		break;
	case 0x9c:
		if (!d->p66) {
			known(in, "pushf", 0);
			sp_moves(in, -8);
		}
		break;
	case 0xa0:
	case 0xa1:
		known(in, "movabs", X86_REG(X86_RAX));
		break;
	case 0xa2:
	case 0xa3:
		known(in, "movabs", 0);
		break;
	case 0xa8:
	case 0xa9:
		known(in, "test", 0);
		break;
	case 0xb0 ... 0xbf:
		known(in, "mov",
		      X86_REG(op < 0xb8 ? reg8(d, (op & 7) | (d->rex & 1 ? 8 : 0))
					: (op & 7) | (d->rex & 1 ? 8 : 0)));
		break;
	case 0xc0:
	case 0xc1:
	case 0xd0 ... 0xd3:
		known(in, shift_names[r], rm_dst(d, byte));
		break;
	case 0xc2:
	case 0xc3:
	case 0xca:
	case 0xcb:
	case 0xcf:
		known(in, "ret", 0);
		in->flow = X86_FLOW_RET;
		break;
	case 0xc6:
	case 0xc7:
		if (d->modrm == 0xf8 && op == 0xc7)
			branch(in, "xbegin", "", X86_FLOW_JCC, d);
		else if (d->modrm != 0xf8)
			known(in, "mov", rm_dst(d, byte));
		break;
	case 0xc9:
		known(in, "leave", X86_REG(X86_RBP) | X86_REG(X86_RSP)); /* %rsp from %rbp */
		break;
	case 0xcc:
	case 0xcd:
	case 0xf1:
	case 0xf4:
		known(in,
		      op == 0xcc   ? "int3"
		      : op == 0xcd ? "int"
		      : op == 0xf1 ? "int1"
				   : "hlt",
		      0);
		in->flow = X86_FLOW_TRAP;
		break;
	case 0xe0 ... 0xe2:
		branch(in, "loop", "", X86_FLOW_JCC, d);
		in->writes = X86_REG(X86_RCX);
		break;
	case 0xe3:
		branch(in, "jrcxz", "", X86_FLOW_JCC, d);
		break;
	case 0xe8:
		branch(in, "call", "", X86_FLOW_CALL, d);
		break;
	case 0xe9:
	case 0xeb:
		branch(in, "jmp", "", X86_FLOW_JMP, d);
		break;
	case 0xf6:
	case 0xf7: {
		static const char *const names[8] = { "test", "test", "not", "neg",
						      "mul",  "imul", "div", "idiv" };

		known(in, names[r],
		      r < 2   ? 0
		      : r < 4 ? rm_dst(d, byte)
			      : X86_REG(X86_RAX) | (op == 0xf7 ? X86_REG(X86_RDX) : 0));
		break;
	}
	case 0xfe:
		known(in, r ? "dec" : "inc", rm_dst(d, true));
		break;
	case 0xff:
		if (r < 2) {
			known(in, r ? "dec" : "inc", rm_dst(d, false));
		} else if (r == 6) {
			known(in, "push", 0);
			sp_moves(in, -8);
		} else {
			known(in, r < 4 ? "call" : "jmp", 0);
			in->flow = r < 4 ? X86_FLOW_CALL_IND : X86_FLOW_JMP_IND;
		}
		break;
	}
}

static void model_map0f(const struct dec *d, struct x86_insn *in)
{
	static const char *const bt_names[8] = { "", "", "", "", "bt", "bts", "btr", "btc" };
	unsigned int op = d->op, r = d->reg & 7;
	char name[16];

	switch (op) {
	case 0x0b:
	case 0xb9:
	case 0xff:
		known(in, "ud", 0);
		in->flow = X86_FLOW_TRAP;
		break;
	case 0x0d:
	case 0x18:
		if (d->mod != 3)
			known(in, "prefetch", 0);
		break;
	case 0x1e: /* endbr64 (f3 0f 1e fa) and endbr32; with other ModRM, rdssp writes a register
		    */
		if (d->pf3 && (d->modrm == 0xfa || d->modrm == 0xfb))
			known(in, d->modrm == 0xfa ? "endbr64" : "endbr32", 0);
		break;
	case 0x1f:
		known(in, "nop", 0);
		break;
	case 0x31:
		known(in, "rdtsc", X86_REG(X86_RAX) | X86_REG(X86_RDX));
		break;
	case 0x40 ... 0x4f:
		snprintf(name, sizeof(name), "cmov%s", cc_names[op & 15]);
		known(in, name, reg_dst(d, false));
		break;
	case 0x80 ... 0x8f:
		branch(in, "j", cc_names[op & 15], X86_FLOW_JCC, d);
		break;
	case 0x90 ... 0x9f:
		snprintf(name, sizeof(name), "set%s", cc_names[op & 15]);
		known(in, name, rm_dst(d, true));
		break;
	case 0xa0:
	case 0xa8:
		known(in, "push", 0);
		sp_moves(in, -8);
		break;
	case 0xa1:
	case 0xa9:
		known(in, "pop", 0);
		sp_moves(in, 8);
		break;
	case 0xa2:
		known(in, "cpuid",
		      X86_REG(X86_RAX) | X86_REG(X86_RBX) | X86_REG(X86_RCX) | X86_REG(X86_RDX));
		break;
	case 0xa3:
		known(in, "bt", 0);
		break;
	case 0xa4:
	case 0xa5:
	case 0xac:
	case 0xad:
		known(in, op < 0xa8 ? "shld" : "shrd", rm_dst(d, false));
		break;
	case 0xab:
	case 0xb3:
	case 0xbb:
		known(in, op == 0xab ? "bts" : op == 0xb3 ? "btr" : "btc", rm_dst(d, false));
		break;
	case 0xaf:
		known(in, "imul", reg_dst(d, false));
		break;
	case 0xb0:
	case 0xb1:
		known(in, "cmpxchg", X86_REG(X86_RAX) | rm_dst(d, op == 0xb0));
		break;
	case 0xb6:
	case 0xb7:
		known(in, "movzx", reg_dst(d, false));
		break;
	case 0xb8:
		known(in, "popcnt", reg_dst(d, false));
		break;
	case 0xba:
		known(in, bt_names[r], r == 4 ? 0 : rm_dst(d, false));
		break;
	case 0xbc:
	case 0xbd:
		known(in, op == 0xbc ? (d->pf3 ? "tzcnt" : "bsf") : (d->pf3 ? "lzcnt" : "bsr"),
		      reg_dst(d, false));
		break;
	case 0xbe:
	case 0xbf:
		known(in, "movsx", reg_dst(d, false));
		break;
	case 0xc0:
	case 0xc1:
		known(in, "xadd", reg_dst(d, op == 0xc0) | rm_dst(d, op == 0xc0));
		break;
	case 0xc8 ... 0xcf:
		known(in, "bswap", X86_REG((op & 7) | (d->rex & 1 ? 8 : 0)));
		break;
	}
}

/*
 * The nops arch/x86/kernel/uprobes.c emulates (branch_setup_xol_ops(), since 6.16): exactly
 * x86_nops[length] of arch/x86/include/asm/nops.h, 64-bit flavour. Its 9- to 11-byte nops
 * carry a %cs prefix, which uprobes refuse altogether, so they are not listed.
 */
static const uint8_t kernel_nops[9][8] = {
	[1] = { 0x90 },
	[2] = { 0x66, 0x90 },
	[3] = { 0x0f, 0x1f, 0x00 },
	[4] = { 0x0f, 0x1f, 0x40, 0x00 },
	[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 },
	[6] = { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 },
	[7] = { 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00 },
	[8] = { 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 },
};

/*
 * Does the kernel emulate a probed instruction instead of single-stepping it out of line?
 * arch_uprobe_analyze_insn() of Linux 6.18: first any es/cs/ss/ds/lock prefix makes the
 * probe fail (is_prefix_bad()); then branch_setup_xol_ops() takes the nops above, opcode 90
 * with any prefixes, jmp rel8/rel32, call rel32 and jcc rel8/rel32, except branches with a 66
 * prefix; then push_setup_xol_ops() takes push %reg without prefix, or with REX 41 exactly.
 * Nothing else (endbr64 included) is emulated. The kernel looks at the opcode byte alone, so it
 * also "emulates" 41 90 (xchg %eax, %r8d) as a nop and VEX/EVEX instructions whose opcode byte
 * is 70-7f, 90, e8, e9 or eb as branches or nops, skipping them (41 90 and vpshufd measured on
 * 6.18). Those are not reported as emulated here, so no site is put on one past the entry.
 */
static bool kernel_emulates(const uint8_t *code, const struct dec *d, unsigned int len)
{
	if (d->refused)
		return false;
	if (len < ARRAY_SIZE(kernel_nops) && !memcmp(code, kernel_nops[len], len))
		return true;
	if (d->vex)
		return false;
	if (d->map == MAP1) {
		/* The kernel also "emulates" 41 90 as a nop, but it is xchg %eax, %r8d. */
		if (d->op == 0x90)
			return !(d->rex & 1);
		if ((d->op >= 0x70 && d->op <= 0x7f) || d->op == 0xe8 || d->op == 0xe9 ||
		    d->op == 0xeb)
			return !d->p66;
		if (d->op >= 0x50 && d->op <= 0x57)
			return len == 1 || (len == 2 && code[0] == 0x41);
	}
	return d->map == MAP0F && d->op >= 0x80 && d->op <= 0x8f && !d->p66;
}

unsigned int x86_decode(const uint8_t *code, size_t avail, struct x86_insn *insn)
{
	struct dec d = { .p = code, .end = avail < 15 ? (unsigned int)avail : 15 };
	static const char *const map_names[] = { "", "0f ", "0f38 ", "0f3a ", "map5 ", "map6 " };

	*insn = (struct x86_insn){ .flow = X86_FLOW_NEXT };
	if (!decode(&d))
		return 0;
	insn->len = d.pos;
	insn->emulated = kernel_emulates(code, &d, d.pos);
	/* The kernel's opcode-byte test (see kernel_emulates()) on what it is not. */
	insn->mishandled = !d.refused && !insn->emulated &&
			   ((d.vex && ((d.op >= 0x70 && d.op <= 0x7f) || d.op == 0x90 ||
				       d.op == 0xe8 || d.op == 0xe9 || d.op == 0xeb)) ||
			    (!d.vex && d.map == MAP1 && d.op == 0x90 && (d.rex & 1)));
	if (!d.vex && d.map == MAP1)
		model_map1(&d, insn);
	else if (!d.vex && d.map == MAP0F)
		model_map0f(&d, insn);
	if (!insn->modelled) {
		insn->writes = 0;
		snprintf(insn->name, sizeof(insn->name), "%s%s%02x", d.vex ? "v" : "",
			 map_names[d.map], d.op);
	}
	return insn->len;
}
