/*
 * Reading ELF files with libelf: defined function symbols by name, the program interpreter,
 * the GNU build-id and the mapping between file offsets and virtual addresses. Owns nothing
 * but the open file; knows nothing about processes.
 */
#ifndef ALLOCPROF_ELFFILE_H
#define ALLOCPROF_ELFFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elf_file;

struct elf_sym {
	uint64_t vaddr;
	uint64_t size;
	bool ifunc;   /* STT_GNU_IFUNC: the address is a resolver, not the function */
	bool object;  /* STT_OBJECT: data, not code */
	bool dynamic; /* from .dynsym: visible to the dynamic linker */
};

/* Opens and indexes `path`. NULL with errno set on failure (ENOEXEC: not a usable ELF). */
struct elf_file *elf_file__open(const char *path);
void elf_file__free(struct elf_file *ef);

/*
 * A function or data object this object defines: from .dynsym (default version) when it is there,
 * else from .symtab, which only a statically linked executable's own calls are bound to. 0 or
 * -ENOENT.
 */
int elf_file__lookup(const struct elf_file *ef, const char *name, struct elf_sym *out);

/*
 * Calls fn for every function symbol (.dynsym, then .symtab, by name), until it returns
 * true. True when one did.
 */
bool elf_file__each_function(const struct elf_file *ef,
			     bool (*fn)(void *ctx, const char *name, const struct elf_sym *sym),
			     void *ctx);

const char *elf_file__interp(const struct elf_file *ef);   /* PT_INTERP, NULL if none */
bool elf_file__is_dyn(const struct elf_file *ef);	   /* ET_DYN (PIE or library) */
const char *elf_file__build_id(const struct elf_file *ef); /* lowercase hex, "" if none */

/* Through the PT_LOAD segments. 0 or -ENOENT when no segment covers the address. */
int elf_file__vaddr_to_offset(const struct elf_file *ef, uint64_t vaddr, uint64_t *off);
int elf_file__offset_to_vaddr(const struct elf_file *ef, uint64_t off, uint64_t *vaddr);
/* `len` bytes of the file at `vaddr`. 0, -ENOENT when not all of them are in the file (bss,
 * holes, no segment), or -errno. */
int elf_file__read(const struct elf_file *ef, uint64_t vaddr, void *buf, size_t len);

#endif
