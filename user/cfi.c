/*
 * Unwind tables: one ELF file's call-frame information evaluated by libdw and translated into
 * the rows the BPF stack walk searches. libdw does all the DWARF CFA interpretation; this file
 * only enumerates the code ranges (the .eh_frame_hdr search table, .debug_frame's FDEs), asks
 * libdw for each row of each range, and encodes what x86-64 frames need: the CFA's base and
 * offset, where %rbp was saved, the .plt expression, outermost and signal frames. Must not
 * interpret CFA instructions itself or know anything about processes.
 */
#include "cfi.h"
#include "util.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* x86-64 DWARF register numbers. */
#define REG_RBP 6
#define REG_RSP 7
#define REG_RA	16

#define RULE_NONE	 AP_CFI_RULE(AP_CFI_NONE, 0, 0)
#define RULE_END	 AP_CFI_RULE(AP_CFI_END, 0, 0)
#define RULE_SIGNAL	 AP_CFI_RULE(AP_CFI_SIGNAL, 0, 0)
#define RULE_UNSUPPORTED AP_CFI_RULE(AP_CFI_UNSUPPORTED, 0, 0)

/* A row before the translation to file offsets. */
struct vrow {
	uint64_t vaddr;
	uint32_t rule;
};

struct exec_seg {
	uint64_t vaddr, filesz, memsz, offset;
};

struct range {
	uint64_t lo, hi;
};

struct builder {
	Elf *elf;
	struct cfi_table *t;
	struct exec_seg *segs;
	size_t nsegs, segs_cap;
	struct vrow *v;
	size_t nv, v_cap;
	/* What .eh_frame covers, in address order, for .debug_frame to fill in around. */
	struct range *eh;
	size_t neh, eh_cap;
	char *err;
	size_t errlen;
};

static int fail(struct builder *b, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct builder *b, int ret, const char *fmt, ...)
{
	va_list ap;

	if (b->errlen) {
		va_start(ap, fmt);
		vsnprintf(b->err, b->errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static void add_row(struct builder *b, uint64_t vaddr, uint32_t rule)
{
	grow((void **)&b->v, &b->v_cap, b->nv + 1, sizeof(*b->v));
	b->v[b->nv++] = (struct vrow){ .vaddr = vaddr, .rule = rule };
}

/* ---- translating one libdw frame ------------------------------------------------------------ */

static bool is_cfa_plus(const Dwarf_Op *ops, size_t nops, int64_t *off)
{
	if (nops == 1 && ops[0].atom == DW_OP_call_frame_cfa) {
		*off = 0;
		return true;
	}
	if (nops == 2 && ops[0].atom == DW_OP_call_frame_cfa && ops[1].atom == DW_OP_plus_uconst) {
		/* libdw stores the signed DW_CFA_offset value in the unsigned operand. */
		*off = (int64_t)ops[1].number;
		return true;
	}
	return false;
}

/*
 * The .plt expression GCC and binutils emit for lazy-binding PLT entries: the CFA is %rsp + 8,
 * plus 8 once the entry has pushed its relocation index (the %rip & 15 >= threshold test).
 */
static bool is_plt_expr(const Dwarf_Op *ops, size_t nops, unsigned *threshold)
{
	if (nops != 9)
		return false;
	if (ops[0].atom != DW_OP_breg7 || ops[0].number != 8 || ops[1].atom != DW_OP_breg16 ||
	    ops[1].number != 0 || ops[2].atom != DW_OP_lit15 || ops[3].atom != DW_OP_and ||
	    ops[4].atom < DW_OP_lit0 || ops[4].atom > DW_OP_lit15 || ops[5].atom != DW_OP_ge ||
	    ops[6].atom != DW_OP_lit3 || ops[7].atom != DW_OP_shl || ops[8].atom != DW_OP_plus)
		return false;
	*threshold = ops[4].atom - DW_OP_lit0;
	return true;
}

/*
 * The rule of one row. What libdw 0.188 hands back (checked against real files):
 *   CFA "reg + off":  one DW_OP_bregx op, number = regno, number2 = offset (not DW_OP_bregN);
 *   CFA expression:   the expression's ops as written (the PLT one starts with DW_OP_breg7);
 *   register rules:   offset(N) is DW_OP_call_frame_cfa, DW_OP_plus_uconst N (N signed in an
 *                     unsigned field, the op left out when N is 0); val_offset appends
 *                     DW_OP_stack_value; register(R) is DW_OP_regx R; expression(E) is
 *                     DW_OP_call_frame_cfa followed by E's ops; undefined is nops 0 with ops
 *                     pointing at ops_mem; same-value is nops 0 with ops NULL. A register the
 *                     CFI never mentions gets the ABI's default: same-value for %rbp.
 */
static uint32_t frame_rule(Dwarf_Frame *f, int ra_reg, bool signal)
{
	Dwarf_Op mem[3], *ops;
	size_t nops;
	int64_t ra_off, rbp_off;
	unsigned threshold;
	int kind, rbp_slots;
	uint64_t off;

	if (signal)
		return RULE_SIGNAL;
	if (ra_reg != REG_RA)
		return RULE_UNSUPPORTED;

	if (dwarf_frame_register(f, REG_RA, mem, &ops, &nops))
		return RULE_UNSUPPORTED;
	if (nops == 0 && ops == mem)
		return RULE_END; /* %rip undefined: _start, a thread's first frame */
	if (!is_cfa_plus(ops, nops, &ra_off) || ra_off != -8)
		return RULE_UNSUPPORTED;

	if (dwarf_frame_cfa(f, &ops, &nops) || nops == 0)
		return RULE_UNSUPPORTED;
	if (is_plt_expr(ops, nops, &threshold))
		return AP_CFI_RULE(AP_CFI_PLT, threshold, 8);
	kind = -1;
	if (nops == 1 && ops[0].atom == DW_OP_bregx && ops[0].number == REG_RSP)
		kind = AP_CFI_RSP;
	else if (nops == 1 && ops[0].atom == DW_OP_bregx && ops[0].number == REG_RBP)
		kind = AP_CFI_RBP;
	if (kind < 0 || (int64_t)ops[0].number2 < 0 || ops[0].number2 > AP_CFI_MAX_OFF)
		return RULE_UNSUPPORTED;
	off = ops[0].number2;

	if (dwarf_frame_register(f, REG_RBP, mem, &ops, &nops))
		return RULE_UNSUPPORTED;
	if (nops == 0 && ops == NULL)
		rbp_slots = 0; /* same value */
	else if (is_cfa_plus(ops, nops, &rbp_off) && rbp_off != 0 && rbp_off % 8 == 0 &&
		 rbp_off / 8 > AP_CFI_RBP_LOST && rbp_off / 8 <= 127)
		rbp_slots = (int)(rbp_off / 8);
	else
		rbp_slots = AP_CFI_RBP_LOST; /* undefined, in a register, an expression, a value */
	return AP_CFI_RULE(kind, rbp_slots, off);
}

/*
 * Rows for [lo, hi) from `cfi`, one per libdw row, then a NONE row where the CFI stops covering
 * code (hi itself is left to whatever covers it). Returns where the coverage ended.
 *
 * dwarf_cfi_addrframe runs the CIE's and the FDE's instructions from their start on every call,
 * so a walk row by row is quadratic in an FDE's rows, and libdw's API has no cursor to avoid it.
 * Measured: typical FDEs have a handful of rows and cost ~0.8 us a row (lookup, malloc); the
 * longest FDE of cc1plus (6,679 rows) takes 145 ms of its ~600 ms.
 */
static uint64_t walk_range(struct builder *b, Dwarf_CFI *cfi, uint64_t lo, uint64_t hi)
{
	uint64_t addr = lo;

	while (addr < hi) {
		Dwarf_Frame *f;
		Dwarf_Addr start, end;
		bool signal = false;
		int ra_reg;

		if (dwarf_cfi_addrframe(cfi, addr, &f))
			break;
		ra_reg = dwarf_frame_info(f, &start, &end, &signal);
		if (ra_reg < 0 || end <= addr || start > addr) {
			free(f);
			break;
		}
		add_row(b, addr, frame_rule(f, ra_reg, signal));
		free(f);
		addr = end < hi ? end : hi;
	}
	if (addr < hi)
		add_row(b, addr, RULE_NONE);
	return addr;
}

/* ---- enumerating the code ranges ------------------------------------------------------------ */

static Elf_Scn *find_section(Elf *elf, const char *name, GElf_Shdr *shdr)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *n;

		if (!gelf_getshdr(scn, shdr) || shdr->sh_type == SHT_NOBITS)
			continue;
		n = elf_strptr(elf, shstrndx, shdr->sh_name);
		if (n && !strcmp(n, name))
			return scn;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A pointer of .eh_frame_hdr's header: `enc` one of the few encodings linkers write there. */
static int read_hdr_ptr(const uint8_t *p, const uint8_t *end, uint8_t enc, uint64_t here,
			uint64_t *val, size_t *len)
{
	uint64_t v;

	switch (enc & 0x0f) {
	case DW_EH_PE_udata4:
	case DW_EH_PE_sdata4:
		if (end - p < 4)
			return -1;
		if ((enc & 0x0f) == DW_EH_PE_sdata4) {
			int32_t s;
			memcpy(&s, p, 4);
			v = (uint64_t)(int64_t)s;
		} else {
			uint32_t u;
			memcpy(&u, p, 4);
			v = u;
		}
		*len = 4;
		break;
	case DW_EH_PE_udata8:
	case DW_EH_PE_sdata8:
		if (end - p < 8)
			return -1;
		memcpy(&v, p, 8);
		*len = 8;
		break;
	default:
		return -1;
	}
	switch (enc & 0x70) {
	case DW_EH_PE_absptr:
		break;
	case DW_EH_PE_pcrel:
		v += here;
		break;
	default:
		return -1;
	}
	*val = v;
	return 0;
}

/*
 * Every .eh_frame FDE's start, from .eh_frame_hdr's binary-search table (sorted, as the linker
 * wrote it). libdw looks rows up through the same table.
 */
static int eh_frame_starts(struct builder *b, uint64_t **starts, size_t *n)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = find_section(b->elf, ".eh_frame_hdr", &shdr);
	Elf_Data *d;
	const uint8_t *hdr, *p, *end;
	uint64_t eh_ptr, count;
	size_t len;

	if (!scn)
		return fail(b, -ENOENT, ".eh_frame has no .eh_frame_hdr");
	d = elf_getdata(scn, NULL);
	if (!d || d->d_size < 4)
		return fail(b, -EINVAL, ".eh_frame_hdr is truncated");
	/* version, eh_frame_ptr_enc, fde_count_enc, table_enc, eh_frame_ptr, fde_count, table */
	hdr = d->d_buf;
	end = hdr + d->d_size;
	if (hdr[0] != 1)
		return fail(b, -EINVAL, ".eh_frame_hdr version %u, only version 1 is known",
			    hdr[0]);
	p = hdr + 4;
	if (read_hdr_ptr(p, end, hdr[1], shdr.sh_addr + 4, &eh_ptr, &len))
		return fail(b, -EINVAL, ".eh_frame_hdr: unknown .eh_frame pointer encoding %#x",
			    hdr[1]);
	p += len;
	if (read_hdr_ptr(p, end, hdr[2], shdr.sh_addr + (uint64_t)(p - hdr), &count, &len))
		return fail(b, -EINVAL, ".eh_frame_hdr has no search table (count encoding %#x)",
			    hdr[2]);
	p += len;
	if (hdr[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
		return fail(b, -EINVAL, ".eh_frame_hdr: unsupported search table encoding %#x",
			    hdr[3]);
	if (count > (uint64_t)(end - p) / 8)
		return fail(b, -EINVAL, ".eh_frame_hdr: %" PRIu64 " entries do not fit", count);
	*starts = xcalloc(count ? count : 1, sizeof(**starts));
	for (uint64_t i = 0; i < count; i++, p += 8) {
		int32_t loc;

		memcpy(&loc, p, 4);
		(*starts)[i] = shdr.sh_addr + (uint64_t)(int64_t)loc;
	}
	*n = count;
	qsort(*starts, *n, sizeof(**starts), cmp_u64); /* sorted already; cheap insurance */
	return 0;
}

static void add_covered(struct builder *b, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return;
	if (b->neh && b->eh[b->neh - 1].hi == lo) {
		b->eh[b->neh - 1].hi = hi;
		return;
	}
	grow((void **)&b->eh, &b->eh_cap, b->neh + 1, sizeof(*b->eh));
	b->eh[b->neh++] = (struct range){ lo, hi };
}

static int build_eh_frame(struct builder *b, Dwarf_CFI *cfi)
{
	uint64_t *starts = NULL, cursor = 0;
	size_t n = 0;
	int err = eh_frame_starts(b, &starts, &n);

	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		uint64_t lo = starts[i] > cursor ? starts[i] : cursor;
		uint64_t hi = i + 1 < n ? starts[i + 1] : UINT64_MAX;
		uint64_t end;

		if (i && starts[i] == starts[i - 1])
			continue;
		b->t->fdes++;
		if (lo >= hi)
			continue;
		end = walk_range(b, cfi, lo, hi);
		add_covered(b, lo, end);
		cursor = end;
	}
	free(starts);
	return 0;
}

/* [lo, hi) minus what .eh_frame covers, walked with the .debug_frame CFI. */
static void walk_uncovered(struct builder *b, Dwarf_CFI *cfi, uint64_t lo, uint64_t hi)
{
	size_t i = 0, j = b->neh;

	/* The first covered range ending after lo (binary search: b->eh is sorted, disjoint). */
	while (i < j) {
		size_t m = i + (j - i) / 2;

		if (b->eh[m].hi <= lo)
			i = m + 1;
		else
			j = m;
	}
	for (; lo < hi; i++) {
		uint64_t piece_hi = hi;

		if (i < b->neh && b->eh[i].lo < hi) {
			if (b->eh[i].lo > lo)
				piece_hi = b->eh[i].lo;
			else
				piece_hi = lo; /* lo is covered: skip to the range's end */
		}
		if (piece_hi > lo) {
			uint64_t end = walk_range(b, cfi, lo, piece_hi);

			if (end > lo)
				b->t->debug_frame = true;
			/* The end, unless .eh_frame goes on there. */
			if (end == piece_hi && (i >= b->neh || b->eh[i].lo >= hi))
				add_row(b, end, RULE_NONE);
		}
		if (i >= b->neh || b->eh[i].lo >= hi)
			break;
		lo = b->eh[i].hi;
	}
}

/* .debug_frame FDEs (absolute addresses) for code .eh_frame does not cover. */
static void build_debug_frame(struct builder *b)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = find_section(b->elf, ".debug_frame", &shdr);
	const unsigned char *ident;
	Dwarf_Off off = 0, next;
	Dwarf_CFI *cfi;
	Elf_Data *d;
	Dwarf *dw;

	if (!scn)
		return;
	if ((shdr.sh_flags & SHF_COMPRESSED) && elf_compress(scn, 0, 0) < 0)
		return;
	d = elf_getdata(scn, NULL);
	ident = (const unsigned char *)elf_getident(b->elf, NULL);
	if (!d || !ident)
		return;
	dw = dwarf_begin_elf(b->elf, DWARF_C_READ, NULL);
	if (!dw)
		return; /* e.g. .debug_frame without .debug_info: libdw refuses such files */
	cfi = dwarf_getcfi(dw);
	for (; cfi; off = next) {
		Dwarf_CFI_Entry e;
		uint64_t lo, len;
		int r = dwarf_next_cfi(ident, d, false, off, &next, &e);

		if (r > 0)
			break;
		if (r < 0) {
			if (next == (Dwarf_Off)-1 || next <= off)
				break;
			continue;
		}
		if (dwarf_cfi_cie_p(&e) || e.fde.end - e.fde.start < 16)
			continue;
		/* x86-64 .debug_frame: initial_location and address_range are 8-byte addresses. */
		memcpy(&lo, e.fde.start, 8);
		memcpy(&len, e.fde.start + 8, 8);
		b->t->fdes++;
		if (len && lo + len > lo)
			walk_uncovered(b, cfi, lo, lo + len);
	}
	dwarf_end(dw);
}

/* ---- from virtual addresses to file offsets ------------------------------------------------- */

static int read_segments(struct builder *b)
{
	size_t phnum;

	if (elf_getphdrnum(b->elf, &phnum))
		return fail(b, -ENOEXEC, "no program headers");
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(b->elf, (int)i, &ph) || ph.p_type != PT_LOAD ||
		    !(ph.p_flags & PF_X))
			continue;
		grow((void **)&b->segs, &b->segs_cap, b->nsegs + 1, sizeof(*b->segs));
		b->segs[b->nsegs++] =
			(struct exec_seg){ ph.p_vaddr, ph.p_filesz, ph.p_memsz, ph.p_offset };
	}
	if (!b->nsegs)
		return fail(b, -ENOEXEC, "no executable segment");
	return 0;
}

/*
 * The file offset of a row's start. A row starting in the file part of an executable segment;
 * a NONE row also at its very end, so an address past the last function finds no rule.
 */
static bool row_offset(const struct builder *b, const struct vrow *r, uint64_t *off)
{
	for (size_t i = 0; i < b->nsegs; i++) {
		const struct exec_seg *s = &b->segs[i];
		uint64_t lim = s->filesz;

		if (r->vaddr < s->vaddr)
			continue;
		if (r->vaddr - s->vaddr < lim ||
		    (r->rule == RULE_NONE && r->vaddr - s->vaddr == lim)) {
			*off = r->vaddr - s->vaddr + s->offset;
			return true;
		}
	}
	return false;
}

static int cmp_row(const void *a, const void *b)
{
	const struct ap_cfi_row *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	/* At one offset a NONE marker gives way to the rule that starts there. */
	if ((x->rule == RULE_NONE) != (y->rule == RULE_NONE))
		return x->rule == RULE_NONE ? 1 : -1;
	return x->rule < y->rule ? -1 : x->rule > y->rule;
}

static int finish(struct builder *b)
{
	struct cfi_table *t = b->t;
	struct ap_cfi_row *rows;
	size_t n = 0;

	rows = xcalloc(b->nv ? b->nv : 1, sizeof(*rows));
	for (size_t i = 0; i < b->nv; i++) {
		uint64_t off;

		if (!row_offset(b, &b->v[i], &off))
			continue;
		if (off > UINT32_MAX) {
			free(rows);
			return fail(b, -EFBIG, "code at file offset %#" PRIx64 " is beyond 4 GiB",
				    off);
		}
		rows[n++] = (struct ap_cfi_row){ .off = (__u32)off, .rule = b->v[i].rule };
	}
	/* In address order already unless .debug_frame filled gaps or segments are out of order. */
	for (size_t i = 1; i < n; i++) {
		if (cmp_row(&rows[i - 1], &rows[i]) > 0) {
			qsort(rows, n, sizeof(*rows), cmp_row);
			break;
		}
	}

	/* One row per offset (the first after sorting, a real rule), then merge equal rules. */
	t->nr = 0;
	for (size_t i = 0; i < n; i++) {
		if (i && rows[i - 1].off == rows[i].off)
			continue;
		if (t->nr && rows[t->nr - 1].rule == rows[i].rule)
			continue;
		if (!t->nr && rows[i].rule == RULE_NONE)
			continue; /* nothing before the first rule needs a NONE row */
		rows[t->nr++] = rows[i];
	}
	if (t->nr > AP_CFI_MAX_ROWS) {
		free(rows);
		n = t->nr;
		t->nr = 0;
		return fail(b, -E2BIG, "%zu unwind rows, more than the %u a table can hold", n,
			    AP_CFI_MAX_ROWS);
	}
	t->rows = t->nr ? xrealloc(rows, t->nr, sizeof(*rows)) : (free(rows), NULL);
	for (size_t i = 0; i < t->nr; i++) {
		switch (AP_CFI_KIND(t->rows[i].rule)) {
		case AP_CFI_UNSUPPORTED:
			t->unsupported++;
			break;
		case AP_CFI_PLT:
			t->plt++;
			break;
		case AP_CFI_SIGNAL:
			t->signal++;
			break;
		}
	}
	return 0;
}

/* ---- the table ------------------------------------------------------------------------------ */

int cfi_table__build(int fd, struct cfi_table **out, char *err, size_t errlen)
{
	struct builder b = { .err = err, .errlen = errlen };
	uint64_t t0 = now_ns();
	Dwarf_CFI *eh_cfi = NULL;
	GElf_Ehdr eh;
	GElf_Shdr shdr;
	bool has_eh, has_debug;
	int ret;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	elf_version(EV_CURRENT);
	b.elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!b.elf)
		return fail(&b, -ENOEXEC, "not an ELF file: %s", elf_errmsg(-1));
	if (elf_kind(b.elf) != ELF_K_ELF || !gelf_getehdr(b.elf, &eh) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64) {
		ret = fail(&b, -ENOEXEC, "not an x86-64 ELF file");
		goto out;
	}
	b.t = xcalloc(1, sizeof(*b.t));
	ret = read_segments(&b);
	if (ret)
		goto out;
	has_eh = find_section(b.elf, ".eh_frame", &shdr) && shdr.sh_size > 0;
	has_debug = find_section(b.elf, ".debug_frame", &shdr) && shdr.sh_size > 0;
	if (!has_eh && !has_debug) {
		ret = fail(&b, -ENOENT, "no .eh_frame or .debug_frame");
		goto out;
	}
	if (has_eh) {
		eh_cfi = dwarf_getcfi_elf(b.elf);
		if (!eh_cfi) {
			ret = fail(&b, -EINVAL, "cannot read .eh_frame: %s", dwarf_errmsg(-1));
			goto out;
		}
		ret = build_eh_frame(&b, eh_cfi);
		/* Without a search table .debug_frame alone may still do. */
		if (ret && !has_debug)
			goto out;
	}
	if (has_debug)
		build_debug_frame(&b);
	if (!b.nv) {
		ret = ret ? ret : fail(&b, -ENOENT, "no usable .eh_frame or .debug_frame rows");
		goto out;
	}
	if (errlen)
		err[0] = '\0';
	ret = finish(&b);
out:
	if (eh_cfi)
		dwarf_cfi_end(eh_cfi);
	elf_end(b.elf);
	free(b.segs);
	free(b.v);
	free(b.eh);
	if (ret) {
		cfi_table__free(b.t);
		return ret;
	}
	b.t->build_ms = (double)(now_ns() - t0) / 1e6;
	*out = b.t;
	return 0;
}

void cfi_table__free(struct cfi_table *t)
{
	if (!t)
		return;
	free(t->rows);
	free(t);
}
