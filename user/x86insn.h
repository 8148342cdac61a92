/*
 * Decoding x86-64 machine code (64-bit mode), one instruction at a time: its exact length,
 * and for the instructions compilers put at the start of functions what a probe site needs to
 * know: where control goes, how %rsp moves, which general registers are written, and whether
 * the kernel's uprobe code emulates the instruction instead of single-stepping it. Anything
 * not decoded with certainty is reported as unknown, never guessed. Knows nothing about ELF
 * files, symbols or probes.
 */
#ifndef ALLOCPROF_X86INSN_H
#define ALLOCPROF_X86INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* General registers in encoding order. */
enum x86_reg {
	X86_RAX,
	X86_RCX,
	X86_RDX,
	X86_RBX,
	X86_RSP,
	X86_RBP,
	X86_RSI,
	X86_RDI,
	X86_R8,
	X86_R9,
	X86_R10,
	X86_R11,
	X86_R12,
	X86_R13,
	X86_R14,
	X86_R15,
};
#define X86_REG(r) (1u << (r)) /* a register's bit in a register mask */

enum x86_flow {
	X86_FLOW_NEXT,	   /* continues with the next instruction */
	X86_FLOW_JCC,	   /* conditional direct branch: jcc, loop, jrcxz, xbegin */
	X86_FLOW_JMP,	   /* unconditional direct jump */
	X86_FLOW_CALL,	   /* direct call */
	X86_FLOW_JMP_IND,  /* indirect or far jump */
	X86_FLOW_CALL_IND, /* indirect or far call */
	X86_FLOW_RET,	   /* ret, far ret, iret */
	X86_FLOW_TRAP,	   /* int3, int n, ud0/1/2, hlt: does not go on */
};

struct x86_insn {
	unsigned int len; /* in bytes; 0: not decoded */
	char name[16];	  /* for messages: "push", "je", "endbr64", or the opcode ("0f38 f0") */
	enum x86_flow flow;
	bool has_target; /* a direct branch, whose target is: */
	int64_t target;	 /* in bytes from the start of this instruction */
	bool emulated;	 /* the kernel's uprobes emulate it: a probe here is not single-stepped */
	bool mishandled; /* the kernel would take it for a branch or nop it is not: never probe */
	bool modelled;	 /* writes and the %rsp effect below are known; if not, assume anything */
	uint32_t writes; /* general registers written (X86_REG bits), %rsp included */
	bool sp_known;	 /* when %rsp is written: it moves by exactly sp_delta bytes */
	int32_t sp_delta;
};

/*
 * Decodes the instruction at code[0], reading at most `avail` bytes. Returns its length (also
 * in insn->len), or 0 when the bytes are not an instruction this decoder knows with certainty
 * (undefined in 64-bit mode, ambiguous between CPU vendors, or cut off by `avail`).
 */
unsigned int x86_decode(const uint8_t *code, size_t avail, struct x86_insn *insn);

#endif
