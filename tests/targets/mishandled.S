/*
 * libmishandled.so: a preloadable malloc whose first instruction the kernel's uprobe code
 * mishandles. `xchg %eax,%r8d` is encoded 41 90, and the kernel, looking at the opcode byte
 * alone, takes it for a nop: a probe on it would skip the exchange. This malloc records what
 * %r8d holds after it, then hands the call to glibc; free goes straight to glibc.
 */
	.text
	.globl	malloc
	.type	malloc, @function
malloc:
	xchg	%eax, %r8d
	push	%rbx
	mov	mishandled_seen_r8@GOTPCREL(%rip), %rbx
	mov	%r8d, (%rbx)
	pop	%rbx
	jmp	__libc_malloc@PLT
	.size	malloc, .-malloc

	.globl	free
	.type	free, @function
free:
	jmp	__libc_free@PLT
	.size	free, .-free

	.data
	.globl	mishandled_seen_r8
	.type	mishandled_seen_r8, @object
	.size	mishandled_seen_r8, 4
mishandled_seen_r8:
	.long	0

	.section .note.GNU-stack, "", @progbits
