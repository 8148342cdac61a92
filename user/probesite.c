/*
 * Where in an allocator function to put its uprobe. The kernel emulates push, jmp/jcc/call
 * rel and its own nops (~0.7 us a hit) and single-steps everything else out of line (~10 us),
 * so a function starting with `test %rdi,%rdi; je` is probed at its je. Owns the choice;
 * knows nothing about ELF files, processes or BPF (but the most stack slots an attach cookie
 * holds, AP_MAX_SITE_SLOTS in bpf/allocprof.h).
 */
#include "probesite.h"
#include "allocprof.h"
#include "util.h"
#include "x86insn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	unsigned int arg;
	enum x86_reg reg;
	const char *name;
} arg_regs[] = {
	{ PROBE_ARG_RDI, X86_RDI, "%rdi" },
	{ PROBE_ARG_RSI, X86_RSI, "%rsi" },
	{ PROBE_ARG_RDX, X86_RDX, "%rdx" },
	{ PROBE_ARG_RCX, X86_RCX, "%rcx" },
	{ PROBE_ARG_RBP, X86_RBP, "%rbp" },
};

/* The entry, and why nothing later would do. */
static void at_entry(struct site_choice *out, const char *first, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void at_entry(struct site_choice *out, const char *first, const char *fmt, ...)
{
	int n = 0;
	va_list ap;

	out->off = 0;
	out->slots = 0;
	if (first)
		n = snprintf(out->why, sizeof(out->why), "entry: '%s' would be single-stepped; ",
			     first);
	else
		n = snprintf(out->why, sizeof(out->why), "entry: ");
	if (n < 0 || (size_t)n >= sizeof(out->why))
		return;
	va_start(ap, fmt);
	vsnprintf(out->why + n, sizeof(out->why) - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * Does every call reach `site` exactly once, in straight line from the entry? Not if a direct
 * branch of the function lands in (0, site]: into the instructions walked over (they may be
 * skipped, or split) or on the site itself (a second hit in the same call). Every byte of the
 * function must decode for the answer to mean anything.
 */
static bool only_entered_at_top(const uint8_t *code, size_t size, uint64_t site,
				struct site_choice *out, const char *first)
{
	struct x86_insn in;

	for (size_t pos = 0; pos < size; pos += in.len) {
		int64_t to;

		if (!x86_decode(code + pos, size - pos, &in)) {
			at_entry(out, first, "byte at +%zu not decoded", pos);
			return false;
		}
		if (!in.has_target)
			continue;
		to = (int64_t)pos + in.target;
		if (to > 0 && (uint64_t)to <= site) {
			at_entry(out, first, "'%s' at +%zu branches to +%lld", in.name, pos,
				 (long long)to);
			return false;
		}
	}
	return true;
}

static void choose(const uint8_t *code, size_t size, unsigned int args, bool keep_sp,
		   struct site_choice *out)
{
	uint32_t arg_mask = 0;
	unsigned int slots = 0;
	char after[64] = "";
	struct x86_insn in;
	char first[sizeof(in.name)];
	uint64_t off = 0;

	for (size_t i = 0; i < ARRAY_SIZE(arg_regs); i++)
		if (args & arg_regs[i].arg)
			arg_mask |= X86_REG(arg_regs[i].reg);
	if (!size) {
		at_entry(out, NULL, "size of the function unknown");
		return;
	}
	if (!x86_decode(code, size, &in)) {
		at_entry(out, NULL, "first instruction not decoded");
		return;
	}
	if (in.emulated) {
		out->off = 0;
		out->slots = 0;
		snprintf(out->why, sizeof(out->why), "entry: %s (emulated)", in.name);
		return;
	}
	memcpy(first, in.name, sizeof(first));
	/* `in` runs before any later site: it must leave the arguments and the stack known. */
	for (;;) {
		size_t len = strlen(after);

		if (in.flow != X86_FLOW_NEXT) {
			at_entry(out, first, "'%s' at +%llu branches first", in.name,
				 (unsigned long long)off);
			return;
		}
		if (!in.modelled) {
			at_entry(out, first, "effects of '%s' at +%llu not modelled", in.name,
				 (unsigned long long)off);
			return;
		}
		for (size_t i = 0; i < ARRAY_SIZE(arg_regs); i++) {
			if (!(in.writes & arg_mask & X86_REG(arg_regs[i].reg)))
				continue;
			at_entry(out, first, "%s written by '%s' at +%llu", arg_regs[i].name,
				 in.name, (unsigned long long)off);
			return;
		}
		if (in.writes & X86_REG(X86_RSP)) {
			if (keep_sp) {
				at_entry(out, first,
					 "return probe needs %%rsp; '%s' at +%llu moves it",
					 in.name, (unsigned long long)off);
				return;
			}
			/* Only growing the frame by whole slots keeps the return address found. */
			if (!in.sp_known || in.sp_delta >= 0 || in.sp_delta % 8) {
				at_entry(out, first, "'%s' at +%llu moves %%rsp unknowably",
					 in.name, (unsigned long long)off);
				return;
			}
			slots += (unsigned int)(-in.sp_delta / 8);
			if (slots > AP_MAX_SITE_SLOTS) { /* the cookie could not say so */
				at_entry(out, first, "more than %d stack slots at +%llu",
					 AP_MAX_SITE_SLOTS, (unsigned long long)off);
				return;
			}
		}
		snprintf(after + len, sizeof(after) - len, "%s%s", len ? ", " : "", in.name);
		off += in.len;
		if (off >= size || off >= PROBE_SITE_MAX_PREFIX) {
			at_entry(out, first, "no emulated instruction in the first %llu bytes",
				 (unsigned long long)off);
			return;
		}
		if (!x86_decode(code + off, size - off, &in)) {
			at_entry(out, first, "byte at +%llu not decoded", (unsigned long long)off);
			return;
		}
		if (in.emulated)
			break;
	}
	if (!only_entered_at_top(code, size, off, out, first))
		return;
	out->off = off;
	out->slots = slots;
	snprintf(out->why, sizeof(out->why), "+%llu %s (emulated), after %s",
		 (unsigned long long)off, in.name, after);
}

/*
 * The kernel takes some instructions for a branch or a nop by their opcode byte alone (41 90,
 * VEX 70-7f...) and would skip or jump instead of running them: a probe on one would break the
 * process.
 */
bool probe_site__entry_refused(const uint8_t *code, size_t avail, char *why, size_t len)
{
	struct x86_insn in;

	if (!avail || !x86_decode(code, avail, &in) || !in.mishandled)
		return false;
	snprintf(why, len, "not probed: the kernel mishandles its first instruction '%s'", in.name);
	return true;
}

void probe_site__choose(const uint8_t *code, size_t size, unsigned int args, bool keep_sp,
			struct site_choice *out)
{
	*out = (struct site_choice){ 0 };
	choose(code, size, args, keep_sp, out);
	/* Where no later site was found, such a function is not probed. */
	if (!out->off && probe_site__entry_refused(code, size, out->why, sizeof(out->why)))
		out->refuse = true;
}
