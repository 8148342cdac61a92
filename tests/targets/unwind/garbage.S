/*
 * What a frame-pointer walk finds in code built without frame pointers, made on purpose; each
 * function is a frame-pointer-less function of the kind seen in real programs, with correct
 * CFI, so a CFI walk unwinds it, and each calls malloc(%rdi) and returns the block:
 *
 *   gb_data_rbp     %rbp holds a pointer into the program's .data (python3.11): the word
 *                   above it, which a frame-pointer walk takes for the return address, is a
 *                   .data address too, and the next saved %rbp is 0
 *   gb_fake_chain   %rbp points at a chain of GB_CHAIN fake frame records in .data, each
 *                   {next record, a .data address} (glibc's main_arena bins)
 *   gb_stale_record %rbp points at a stale frame record in its own stack frame whose
 *                   return-address word is inside gb_decoy, code that never called anything
 *                   on this stack (cc1plus's xmalloc <- free)
 *
 * Each keeps the caller's %rbp (pushed, .cfi_offset), as the ABI wants.
 */
#define GB_CHAIN 100

	.text
	.globl	gb_data_rbp
	.type	gb_data_rbp, @function
gb_data_rbp:
	.cfi_startproc
	push	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	lea	gb_data_words(%rip), %rbp
	call	malloc@PLT
	pop	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	ret
	.cfi_endproc
	.size	gb_data_rbp, .-gb_data_rbp

	.globl	gb_fake_chain
	.type	gb_fake_chain, @function
gb_fake_chain:
	.cfi_startproc
	push	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	lea	gb_chain(%rip), %rbp
	call	malloc@PLT
	pop	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	ret
	.cfi_endproc
	.size	gb_fake_chain, .-gb_fake_chain

	.globl	gb_stale_record
	.type	gb_stale_record, @function
gb_stale_record:
	.cfi_startproc
	push	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	sub	$32, %rsp
	.cfi_adjust_cfa_offset 32
	/* The record at 8(%rsp): saved %rbp 0, "return address" inside gb_decoy after a call. */
	movq	$0, 8(%rsp)
	lea	gb_decoy_ret(%rip), %rax
	mov	%rax, 16(%rsp)
	lea	8(%rsp), %rbp
	call	malloc@PLT
	add	$32, %rsp
	.cfi_adjust_cfa_offset -32
	pop	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	ret
	.cfi_endproc
	.size	gb_stale_record, .-gb_stale_record

	/* Real code, never called here: a return address into it is what a call left. */
	.globl	gb_decoy
	.type	gb_decoy, @function
gb_decoy:
	.cfi_startproc
	sub	$8, %rsp
	.cfi_adjust_cfa_offset 8
	call	free@PLT
gb_decoy_ret:
	add	$8, %rsp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	gb_decoy, .-gb_decoy

	.data
	.balign	16
	.globl	gb_data_words
	.type	gb_data_words, @object
gb_data_words:
	.quad	0			/* "saved %rbp": the walk ends after one more word */
	.quad	gb_data_words + 64	/* "return address": a .data address */
	.zero	64
	.size	gb_data_words, .-gb_data_words

	.balign	16
	.globl	gb_chain
	.type	gb_chain, @object
gb_chain:
	.set	gb_i, 0
	.rept	GB_CHAIN - 1
	.quad	gb_chain + 16 * (gb_i + 1)	/* next record */
	.quad	gb_chain + 16 * gb_i + 8	/* "return address": .data */
	.set	gb_i, gb_i + 1
	.endr
	.quad	0
	.quad	gb_chain + 16 * gb_i + 8
	.size	gb_chain, .-gb_chain

	.section .note.GNU-stack, "", @progbits
