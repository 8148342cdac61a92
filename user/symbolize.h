/*
 * Symbolization of addresses in ELF files with libdwfl: function names from the symbol tables
 * (the file's own or its separate debug file), file:line and inlined frames from DWARF when
 * there is any, C++ names demangled. One libdwfl session per file, results cached per address.
 * Knows nothing about processes: callers give a file and an offset in it.
 */
#ifndef ALLOCPROF_SYMBOLIZE_H
#define ALLOCPROF_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#define SYM_MAX_INLINE 8

struct sym_file {
	int fd;		   /* an open descriptor of the file; the symbolizer dups it */
	uint64_t dev, ino; /* identity, for caching */
	const char *path;  /* for messages */
};

struct sym_frame {
	const char *name;	 /* demangled; NULL when unknown */
	const char *system_name; /* as in the symbol table (mangled) */
	const char *file;	 /* source file, NULL without DWARF */
	int line;
};

/* Frames at one address, innermost (inlined) first; the last is the real function. */
struct sym_result {
	struct sym_frame f[SYM_MAX_INLINE];
	int n; /* 0: nothing known */
};

struct symbolizer;

struct symbolizer *symbolizer__new(void);
void symbolizer__free(struct symbolizer *s);

/*
 * Symbolizes the code at file offset `off` of `f`. Strings in *out live as long as the
 * symbolizer. 0, or -errno when the file cannot be read as ELF (counted by the caller).
 */
int symbolizer__lookup(struct symbolizer *s, const struct sym_file *f, uint64_t off,
		       struct sym_result *out);

/* GNU build-id of the file in lowercase hex, "" when it has none or cannot be read. */
const char *symbolizer__build_id(struct symbolizer *s, const struct sym_file *f);

/* Demangles a C++ symbol; a malloc'd string or NULL when it is not a mangled name. */
char *demangle(const char *name);

#endif
