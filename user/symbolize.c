/*
 * Symbolization of addresses in ELF files with libdwfl: function names from the symbol tables
 * (the file's own or its separate debug file), file:line and inlined frames from DWARF when
 * there is any, C++ names demangled. One libdwfl session per file, results cached per address.
 * Knows nothing about processes: callers give a file and an offset in it.
 */
#include "symbolize.h"
#include "elffile.h"
#include "hashmap.h"
#include "util.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* From libstdc++ (the C++ ABI's demangler), which the build links. */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

struct sym_mod {
	Dwfl *dwfl;
	Dwfl_Module *mod;
	GElf_Addr bias;
	struct elf_file *ef; /* for file offset -> vaddr */
	char build_id[129];
	int err;
};

struct symbolizer {
	struct hashmap *files; /* (dev, ino) -> index into mods */
	struct sym_mod *mods;
	size_t nmods, cap;
	struct hashmap *results; /* (mod, offset) -> index into results */
	struct sym_result *res;
	size_t nres, rescap;
	struct strpool *strings;
	char *debuginfo_path; /* NULL: libdwfl's default search path for debug files */
	Dwfl_Callbacks callbacks;
};

char *demangle(const char *name)
{
	int status = 0;
	char *d;

	if (!name || strncmp(name, "_Z", 2))
		return NULL;
	d = __cxa_demangle(name, NULL, NULL, &status);
	if (status) {
		free(d);
		return NULL;
	}
	return d;
}

struct symbolizer *symbolizer__new(void)
{
	struct symbolizer *s = xcalloc(1, sizeof(*s));

	s->files = hashmap__new();
	s->results = hashmap__new();
	s->strings = strpool__new();
	s->callbacks = (Dwfl_Callbacks){
		.find_elf = dwfl_build_id_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.section_address = dwfl_offline_section_address,
		.debuginfo_path = &s->debuginfo_path,
	};
	return s;
}

void symbolizer__free(struct symbolizer *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nmods; i++) {
		if (s->mods[i].dwfl)
			dwfl_end(s->mods[i].dwfl);
		elf_file__free(s->mods[i].ef);
	}
	free(s->mods);
	free(s->res);
	hashmap__free(s->files);
	hashmap__free(s->results);
	strpool__free(s->strings);
	free(s);
}

static struct sym_mod *get_mod(struct symbolizer *s, const struct sym_file *f)
{
	uint64_t key[2] = { f->dev, f->ino }, idx;
	struct sym_mod *m;
	char fdpath[64];
	int fd;

	if (hashmap__get(s->files, key, sizeof(key), &idx))
		return &s->mods[idx];
	grow((void **)&s->mods, &s->cap, s->nmods + 1, sizeof(*s->mods));
	m = &s->mods[s->nmods];
	hashmap__put(s->files, key, sizeof(key), s->nmods++);

	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", f->fd);
	m->ef = elf_file__open(fdpath);
	if (!m->ef) {
		m->err = -errno;
		return m;
	}
	snprintf(m->build_id, sizeof(m->build_id), "%s", elf_file__build_id(m->ef));
	m->dwfl = dwfl_begin(&s->callbacks);
	if (!m->dwfl) {
		m->err = -ENOMEM;
		return m;
	}
	fd = dup(f->fd);
	if (fd < 0) {
		m->err = -errno;
		return m;
	}
	/* libdwfl takes the descriptor; the name is what it reports and searches debug files by. */
	m->mod = dwfl_report_offline(m->dwfl, f->path, f->path, fd);
	dwfl_report_end(m->dwfl, NULL, NULL);
	if (!m->mod) {
		m->err = -ENOEXEC;
		return m;
	}
	dwfl_module_getelf(m->mod, &m->bias);
	return m;
}

static void set_frame(struct symbolizer *s, struct sym_frame *fr, const char *linkage,
		      const char *plain)
{
	char *d = demangle(linkage ? linkage : plain);

	fr->system_name = strpool__intern(s->strings, linkage ? linkage : plain);
	fr->name = d ? strpool__intern(s->strings, d) : fr->system_name;
	free(d);
}

static const char *die_name(Dwarf_Die *die, const char **linkage)
{
	Dwarf_Attribute a;

	*linkage = NULL;
	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &a) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a))
		*linkage = dwarf_formstring(&a);
	if (dwarf_attr_integrate(die, DW_AT_name, &a))
		return dwarf_formstring(&a);
	return NULL;
}

#define MAX_CHAIN 64

/*
 * Inlined frames at `addr`, innermost first, then the real function. dwarf_getscopes gives the
 * scopes at the address, but after an inlined instance it continues into that function's
 * abstract definition; the concrete chain (inlined copy -> the function it was inlined into
 * -> ... -> the real function) comes from dwarf_getscopes_die on the innermost instance, as
 * eu-addr2line -i does. Each frame's line is where the frame inside it was inlined
 * (DW_AT_call_line); the innermost keeps the line table's.
 */
static void add_inline_frames(struct symbolizer *s, struct sym_mod *m, Dwarf_Addr addr,
			      const char *elf_name, struct sym_result *r)
{
	Dwarf_Die *cu, *scopes = NULL, inner, chain[MAX_CHAIN];
	const char *files_of[MAX_CHAIN];
	int lines[MAX_CHAIN], n, nchain = 0, first = -1;
	Dwarf_Files *files = NULL;
	Dwarf_Addr bias;

	cu = dwfl_module_addrdie(m->mod, addr, &bias);
	if (!cu)
		return;
	n = dwarf_getscopes(cu, addr - bias, &scopes);
	for (int i = 0; i < n && first < 0; i++) {
		int tag = dwarf_tag(&scopes[i]);

		if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_subprogram)
			first = i;
	}
	if (first < 0) {
		free(scopes);
		return;
	}
	inner = scopes[first];
	free(scopes);
	scopes = NULL;
	n = dwarf_getscopes_die(&inner, &scopes);
	dwarf_getsrcfiles(cu, &files, NULL);
	lines[0] = r->f[0].line;
	files_of[0] = r->f[0].file;
	for (int i = 0; i < n && nchain < MAX_CHAIN; i++) {
		int tag = dwarf_tag(&scopes[i]);
		Dwarf_Attribute a;
		Dwarf_Word w;

		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		chain[nchain++] = scopes[i];
		if (tag == DW_TAG_subprogram || nchain == MAX_CHAIN)
			break;
		/* The next frame out is at the place this copy was inlined. */
		lines[nchain] = 0;
		files_of[nchain] = NULL;
		if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &a), &w) == 0)
			lines[nchain] = (int)w;
		if (files && dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &a), &w) == 0)
			files_of[nchain] = dwarf_filesrc(files, w, NULL, NULL);
	}
	free(scopes);
	if (!nchain)
		return;
	/* Too deep: the innermost frames, and always the real function last. */
	r->n = 0;
	for (int i = 0; i < nchain; i++) {
		const char *name, *linkage;
		bool last = i == nchain - 1;

		if (!last && r->n == SYM_MAX_INLINE - 1)
			continue;
		name = die_name(&chain[i], &linkage);
		/*
		 * The symbol table names the real function fully (static functions and C++
		 * members have an unqualified DW_AT_name and often no linkage name).
		 */
		if (last && dwarf_tag(&chain[i]) == DW_TAG_subprogram && elf_name) {
			linkage = elf_name;
			name = NULL;
		}
		if (!name && !linkage)
			name = "??";
		set_frame(s, &r->f[r->n], linkage, name);
		r->f[r->n].file = strpool__intern(s->strings, files_of[i]);
		r->f[r->n].line = lines[i];
		r->n++;
	}
}

static void lookup(struct symbolizer *s, struct sym_mod *m, uint64_t vaddr, struct sym_result *r)
{
	Dwarf_Addr addr = vaddr + m->bias;
	GElf_Off symoff = 0;
	GElf_Sym sym;
	const char *name;
	Dwfl_Line *line;

	name = dwfl_module_addrinfo(m->mod, addr, &symoff, &sym, NULL, NULL, NULL);
	/* A symbol without a size, or one the address is past, does not name this code. */
	if (name && sym.st_size && symoff >= sym.st_size)
		name = NULL;
	if (name) {
		set_frame(s, &r->f[0], name, NULL);
		r->n = 1;
	}
	line = dwfl_module_getsrc(m->mod, addr);
	if (line) {
		int lineno = 0;
		const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);

		r->f[0].file = strpool__intern(s->strings, file);
		r->f[0].line = lineno;
		if (!r->n)
			r->n = 1;
		/* With DWARF the scopes give the inlined chain and the real function's name. */
		add_inline_frames(s, m, addr, name, r);
		if (!r->n || !r->f[0].name) {
			r->n = name ? 1 : 0;
			if (name)
				set_frame(s, &r->f[0], name, NULL);
		}
	}
}

int symbolizer__lookup(struct symbolizer *s, const struct sym_file *f, uint64_t off,
		       struct sym_result *out)
{
	struct sym_mod *m = get_mod(s, f);
	uint64_t key[2] = { (uint64_t)(m - s->mods), off }, idx, vaddr;

	memset(out, 0, sizeof(*out));
	if (m->err)
		return m->err;
	if (hashmap__get(s->results, key, sizeof(key), &idx)) {
		*out = s->res[idx];
		return 0;
	}
	if (!elf_file__offset_to_vaddr(m->ef, off, &vaddr))
		lookup(s, m, vaddr, out);
	grow((void **)&s->res, &s->rescap, s->nres + 1, sizeof(*s->res));
	s->res[s->nres] = *out;
	hashmap__put(s->results, key, sizeof(key), s->nres++);
	return 0;
}

const char *symbolizer__build_id(struct symbolizer *s, const struct sym_file *f)
{
	struct sym_mod *m = get_mod(s, f);

	return m->ef ? m->build_id : "";
}
