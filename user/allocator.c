/*
 * Which allocator a process uses: the allocation entry points we know (malloc,
 * calloc, ..., the C++ operator new family) resolved the way the dynamic linker
 * binds them, first definition in load order, into a plan of probe sites (file,
 * offset, size kind). Owns the function table; knows nothing about BPF.
 */
#include "allocator.h"
#include "elffile.h"
#include "probesite.h"
#include "symbolize.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Order matters twice: malloc first (the plan's anchor), and among aliases the first wins.
 * The operator new variants that throw std::bad_alloc never get a return probe: the kernel
 * replaces the return address with its trampoline's, where the C++ unwinder finds no frame
 * information and calls std::terminate. Their blocks are tracked through the malloc they call.
 */
const struct alloc_fn alloc_fns[] = {
	{ "malloc", "malloc", AP_SIZE_ARG1, FN_ALLOC },
	{ "calloc", "calloc", AP_SIZE_ARG1_X_ARG2, FN_ALLOC },
	{ "realloc", "realloc", AP_SIZE_REALLOC, FN_ALLOC },
	{ "reallocarray", "reallocarray", AP_SIZE_REALLOCARRAY, FN_ALLOC },
	{ "posix_memalign", "posix_memalign", AP_SIZE_POSIX_MEMALIGN, FN_ALLOC },
	{ "aligned_alloc", "aligned_alloc", AP_SIZE_ARG2, FN_ALLOC },
	{ "memalign", "memalign", AP_SIZE_ARG2, FN_ALLOC },
	{ "valloc", "valloc", AP_SIZE_ARG1, FN_ALLOC },
	{ "pvalloc", "pvalloc", AP_SIZE_ARG1, FN_ALLOC },
	{ "_Znwm", "operator new(size_t)", AP_SIZE_ARG1, FN_ALLOC, true },
	{ "_Znam", "operator new[](size_t)", AP_SIZE_ARG1, FN_ALLOC, true },
	{ "_ZnwmRKSt9nothrow_t", "operator new(size_t, nothrow_t)", AP_SIZE_ARG1, FN_ALLOC },
	{ "_ZnamRKSt9nothrow_t", "operator new[](size_t, nothrow_t)", AP_SIZE_ARG1, FN_ALLOC },
	{ "_ZnwmSt11align_val_t", "operator new(size_t, align_val_t)", AP_SIZE_ARG1, FN_ALLOC,
	  true },
	{ "_ZnamSt11align_val_t", "operator new[](size_t, align_val_t)", AP_SIZE_ARG1, FN_ALLOC,
	  true },
	{ "_ZnwmSt11align_val_tRKSt9nothrow_t", "operator new(size_t, align_val_t, nothrow_t)",
	  AP_SIZE_ARG1, FN_ALLOC },
	{ "_ZnamSt11align_val_tRKSt9nothrow_t", "operator new[](size_t, align_val_t, nothrow_t)",
	  AP_SIZE_ARG1, FN_ALLOC },
	{ "free", "free", AP_SIZE_ARG1, FN_FREE },
	{ "cfree", "cfree", AP_SIZE_ARG1, FN_FREE },
	{ "free_sized", "free_sized", AP_SIZE_ARG1, FN_FREE },
	{ "free_aligned_sized", "free_aligned_sized", AP_SIZE_ARG1, FN_FREE },
	/* The delete family is probed only in the allocator itself (see resolve()). */
	{ "_ZdlPv", "operator delete(void*)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdaPv", "operator delete[](void*)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdlPvm", "operator delete(void*, size_t)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdaPvm", "operator delete[](void*, size_t)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdlPvRKSt9nothrow_t", "operator delete(void*, nothrow_t)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdaPvRKSt9nothrow_t", "operator delete[](void*, nothrow_t)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdlPvSt11align_val_t", "operator delete(void*, align_val_t)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdaPvSt11align_val_t", "operator delete[](void*, align_val_t)", AP_SIZE_ARG1, FN_FREE },
	{ "_ZdlPvmSt11align_val_t", "operator delete(void*, size_t, align_val_t)", AP_SIZE_ARG1,
	  FN_FREE },
	{ "_ZdaPvmSt11align_val_t", "operator delete[](void*, size_t, align_val_t)", AP_SIZE_ARG1,
	  FN_FREE },
	{ "_ZdlPvSt11align_val_tRKSt9nothrow_t", "operator delete(void*, align_val_t, nothrow_t)",
	  AP_SIZE_ARG1, FN_FREE },
	{ "_ZdaPvSt11align_val_tRKSt9nothrow_t", "operator delete[](void*, align_val_t, nothrow_t)",
	  AP_SIZE_ARG1, FN_FREE },
};
const size_t alloc_fns_nr = ARRAY_SIZE(alloc_fns);

_Static_assert(ARRAY_SIZE(alloc_fns) <= AP_MAX_FNS, "function ids must fit the cookie");

struct candidate {
	struct elf_file *ef;
	unsigned int lib;
	bool is_exe;
};

static unsigned int add_lib(struct alloc_plan *p, size_t *cap, const struct loaded_obj *o,
			    const char *open_path)
{
	for (size_t i = 0; i < p->nlibs; i++)
		if (p->libs[i].dev == o->dev && p->libs[i].ino == o->ino &&
		    !strcmp(p->libs[i].path, o->path))
			return (unsigned int)i;
	grow((void **)&p->libs, cap, p->nlibs + 1, sizeof(*p->libs));
	p->libs[p->nlibs] = (struct alloc_lib){
		.path = xstrdup(o->path),
		.open_path = xstrdup(open_path),
		.dev = o->dev,
		.ino = o->ino,
		.base = o->base,
	};
	return (unsigned int)p->nlibs++;
}

/*
 * The object that binds `name`: the first in load order with a dynamic
 * definition; a statically linked executable's own .symtab counts too (nothing
 * else is loaded then).
 */
static int find_def(struct candidate *c, size_t n, bool static_exe, const char *name,
		    struct elf_sym *sym)
{
	for (size_t i = 0; i < n; i++) {
		if (!c[i].ef || elf_file__lookup(c[i].ef, name, sym) || sym->object)
			continue;
		if (sym->dynamic || (c[i].is_exe && static_exe))
			return (int)i;
	}
	return -1;
}

/* The argument registers the BPF programs read at a function's site (see read_args()). */
static unsigned int args_read(const struct alloc_fn *f)
{
	if (f->role == FN_FREE)
		return PROBE_ARG_RDI;
	switch (f->kind) {
	case AP_SIZE_ARG1:
		return PROBE_ARG_RDI;
	case AP_SIZE_ARG2:
		return PROBE_ARG_RSI;
	case AP_SIZE_POSIX_MEMALIGN: /* its out-parameter, and the size */
		return PROBE_ARG_RDI | PROBE_ARG_RDX;
	case AP_SIZE_ARG1_X_ARG2:
	case AP_SIZE_REALLOC:
		return PROBE_ARG_RDI | PROBE_ARG_RSI;
	case AP_SIZE_REALLOCARRAY:
		return PROBE_ARG_RDI | PROBE_ARG_RSI | PROBE_ARG_RDX;
	}
	return PROBE_ARG_RDI | PROBE_ARG_RSI | PROBE_ARG_RDX | PROBE_ARG_RCX;
}

/* Largest function whose bytes are decoded to place its probe; larger ones are probed at entry. */
#define MAX_DECODED (1u << 20)

/* The most a first instruction takes. */
#define MAX_INSN 15

/*
 * Where in the function its probe goes; false when it must not be probed at all. `args`: the
 * PROBE_ARG_* registers read at the site; keep_sp: a return probe shares it.
 */
static bool place(const struct elf_file *ef, const struct elf_sym *sym, unsigned int args,
		  bool keep_sp, const struct placement *pl, struct probe_site *s)
{
	bool whole = sym->size && sym->size <= MAX_DECODED;
	size_t n = whole ? sym->size : MAX_INSN;
	struct site_choice ch;
	uint8_t *code;
	int err;

#if !defined(__x86_64__)
	snprintf(s->why, sizeof(s->why), "entry (not x86_64)");
	return true;
#endif
	code = xcalloc(1, n);
	err = elf_file__read(ef, sym->vaddr, code, n);
	if (err) {
		snprintf(s->why, sizeof(s->why), "entry: code unreadable (%s)", strerror(-err));
		free(code);
		return true;
	}
	if (pl->at_entry || !whole) {
		bool refused = probe_site__entry_refused(code, n, s->why, sizeof(s->why));

		free(code);
		if (refused)
			return false;
		if (pl->at_entry)
			snprintf(s->why, sizeof(s->why), "entry (--probe-at-entry)");
		else
			snprintf(s->why, sizeof(s->why), "entry: function size %s",
				 sym->size ? "too large to decode" : "unknown");
		return true;
	}
	/* Both stack walks start from the caller's %rbp, in the register at the site. */
	probe_site__choose(code, n, args, keep_sp, &ch);
	free(code);
	snprintf(s->why, sizeof(s->why), "%s", ch.why);
	if (ch.refuse)
		return false;
	s->past_entry = ch.off;
	s->slots = ch.slots;
	return true;
}

static void add_site(struct alloc_plan *p, size_t *cap, const struct candidate *c, unsigned int fn,
		     const struct elf_sym *sym, const struct placement *pl)
{
	struct probe_site site;
	uint64_t off;

	/* One probe per address: glibc's memalign is aligned_alloc, tcmalloc's free
	 * is cfree. */
	for (size_t i = 0; i < p->nsites; i++) {
		struct probe_site *s = &p->sites[i];
		size_t len = strlen(s->aliases);

		if (s->lib != c->lib || s->vaddr != sym->vaddr)
			continue;
		if (alloc_fns[s->fn].role != alloc_fns[fn].role)
			ap_warn("%s and %s share an address in %s; probing it as %s",
				alloc_fns[s->fn].name, alloc_fns[fn].name, p->libs[c->lib].path,
				alloc_fns[s->fn].name);
		snprintf(s->aliases + len, sizeof(s->aliases) - len, "%s%s", len ? ", " : "",
			 alloc_fns[fn].pretty);
		return;
	}
	if (elf_file__vaddr_to_offset(c->ef, sym->vaddr, &off)) {
		ap_warn("%s in %s: no file offset for address 0x%llx; not probed",
			alloc_fns[fn].name, p->libs[c->lib].path, (unsigned long long)sym->vaddr);
		return;
	}
	site = (struct probe_site){
		.fn = fn,
		.lib = c->lib,
		.vaddr = sym->vaddr,
		.size = sym->size ? sym->size : 1,
		.offset = off,
	};
	if (!place(c->ef, sym, args_read(&alloc_fns[fn]) | PROBE_ARG_RBP,
		   pl->return_probes && alloc_fns[fn].role == FN_ALLOC && !alloc_fns[fn].throws, pl,
		   &site)) {
		ap_warn("%s in %s: %s", alloc_fns[fn].name, p->libs[c->lib].path, site.why);
		return;
	}
	grow((void **)&p->sites, cap, p->nsites + 1, sizeof(*p->sites));
	p->sites[p->nsites++] = site;
}

/* libstdc++ and libc++, whose operator delete is free. */
static bool forwards_to_free(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libstdc++.so", 12) || !strncmp(base, "libc++.so", 9);
}

/* A C++ function looked for by its demangled name, without its parameters. */
struct cxx_match {
	const char *want; /* "Server::handle" */
	const char *last; /* its last component, a prefilter on mangled names: "handle" */
	struct elf_sym sym;
	size_t n;	 /* distinct functions that match */
	char first[96]; /* the first one's demangled name, for messages */
};

static bool cxx_match_one(void *ctx, const char *name, const struct elf_sym *sym)
{
	struct cxx_match *m = ctx;
	char *d, *paren;

	if (strncmp(name, "_Z", 2) || !strstr(name, m->last))
		return false;
	d = demangle(name);
	if (!d)
		return false;
	paren = strchr(d, '(');
	if (paren)
		*paren = 0;
	if (!strcmp(d, m->want) && (!m->n || m->sym.vaddr != sym->vaddr)) {
		if (paren)
			*paren = '(';
		if (!m->n++) {
			m->sym = *sym;
			snprintf(m->first, sizeof(m->first), "%s", d);
		}
	}
	free(d);
	return false;
}

/*
 * The first object in load order with a C++ function named `name` once demangled, its
 * parameters left out ("Server::handle" for _ZN6Server6handleERK7Request). Only one function
 * may match there (overloads: give the symbol). -1 when none matches.
 */
static int find_cxx(struct candidate *c, size_t n, const char *name, struct elf_sym *sym,
		    const struct alloc_plan *p)
{
	const char *colon = strrchr(name, ':');
	struct cxx_match m = { .want = name, .last = colon ? colon + 1 : name };

	for (size_t i = 0; i < n; i++) {
		if (!c[i].ef)
			continue;
		elf_file__each_function(c[i].ef, cxx_match_one, &m);
		if (m.n == 1) {
			*sym = m.sym;
			return (int)i;
		}
		if (m.n > 1) {
			ap_warn("--ops %s: %zu functions of that name in %s (%s, ...): give the one "
				"meant as nm shows it",
				name, m.n, p->libs[c[i].lib].path, m.first);
			return -1;
		}
	}
	return -1;
}

/*
 * An operation (--ops): the first definition in load order of a function by that name, local
 * ones included (a program's handler is rarely exported), or else of a C++ function by its
 * demangled name; probed where nothing but its entry matters: the first emulated instruction
 * every call executes, no register read.
 */
static void add_op_site(struct alloc_plan *p, size_t *cap, struct candidate *c, size_t n,
			unsigned int op, const struct placement *pl)
{
	const char *name = pl->ops[op];
	struct probe_site site;
	struct elf_sym sym;
	uint64_t off;
	size_t i;

	for (i = 0; i < n; i++)
		if (c[i].ef && !elf_file__lookup(c[i].ef, name, &sym) && !sym.object)
			break;
	if (i == n) {
		int k = find_cxx(c, n, name, &sym, p);

		if (k < 0)
			return;
		i = (size_t)k;
	}
	if (sym.ifunc) {
		ap_warn("--ops %s in %s is resolved at run time (IFUNC); not counted", name,
			p->libs[c[i].lib].path);
		return;
	}
	if (elf_file__vaddr_to_offset(c[i].ef, sym.vaddr, &off)) {
		ap_warn("--ops %s in %s: no file offset for address 0x%llx; not counted", name,
			p->libs[c[i].lib].path, (unsigned long long)sym.vaddr);
		return;
	}
	for (size_t k = 0; k < p->nsites; k++)
		if (p->sites[k].op && p->sites[k].lib == c[i].lib && p->sites[k].vaddr == sym.vaddr) {
			p->ops_same |= 1u << op;
			return;
		}
	site = (struct probe_site){
		.fn = op,
		.op = true,
		.lib = c[i].lib,
		.vaddr = sym.vaddr,
		.size = sym.size ? sym.size : 1,
		.offset = off,
	};
	snprintf(site.aliases, sizeof(site.aliases), "%s", name); /* for -v */
	if (!place(c[i].ef, &sym, 0, false, pl, &site)) {
		ap_warn("--ops %s in %s: %s", name, p->libs[c[i].lib].path, site.why);
		return;
	}
	grow((void **)&p->sites, cap, p->nsites + 1, sizeof(*p->sites));
	p->sites[p->nsites++] = site;
	p->ops_found |= 1u << op;
}

static int resolve(struct candidate *c, size_t n, bool static_exe, const struct placement *pl,
		   struct alloc_plan *p)
{
	size_t cap = 0;
	int malloc_def = -1;

	for (unsigned int fn = 0; fn < alloc_fns_nr; fn++) {
		struct elf_sym sym;
		int def = find_def(c, n, static_exe, alloc_fns[fn].name, &sym);

		if (def < 0)
			continue;
		if (fn == 0)
			malloc_def = def;
		if (malloc_def < 0)
			break;
		/*
		 * operator new is probed where it resolves. In the allocator it is the only
		 * probe on the call; libstdc++'s calls malloc, and that inner call is
		 * recognised as nested. Probing it costs a second trap per new. With
		 * --stacks fp it is what keeps the allocation site (libstdc++ keeps no frame
		 * pointer, so the walk from malloc skips new's caller); the CFI walk from
		 * malloc would find the site through new's frame, but the probe stays: it
		 * records what the program asked for (new(0) asks malloc for 1 byte, aligned
		 * new rounds the size up to the alignment), the site is the leaf without
		 * trimming new's frame, and a profile does not change with --stacks.
		 */
		/*
		 * The C++ runtimes' operator delete calls free, which is probed: a second probe
		 * would be a second trap per delete for nothing. Any other (the allocator's own,
		 * a program's pool) may not, so it is probed.
		 */
		if (alloc_fns[fn].role == FN_FREE && !strncmp(alloc_fns[fn].name, "_Zd", 3) &&
		    forwards_to_free(p->libs[c[def].lib].path))
			continue;
		if (sym.ifunc) {
			ap_warn("%s in %s is resolved at run time (IFUNC); not probed",
				alloc_fns[fn].name, p->libs[c[def].lib].path);
			continue;
		}
		add_site(p, &cap, &c[def], fn, &sym, pl);
	}
	if (malloc_def < 0)
		return -ENOENT;
	for (unsigned int op = 0; op < pl->nops && op < AP_MAX_OPS; op++)
		add_op_site(p, &cap, c, n, op, pl);
	/* An object the linker searched first but we cannot read may define a function too. */
	for (int i = 0; i < malloc_def && !p->unsure; i++)
		if (!c[i].ef)
			p->unsure = p->libs[c[i].lib].path;
	/*
	 * Wrappers, which may call another entry point: all but malloc and the allocator's own
	 * operator new(size_t), the hot paths. (libstdc++'s operator new calls malloc;
	 * jemalloc's new[] calls its new.)
	 */
	for (size_t i = 0; i < p->nsites; i++) {
		const char *name;

		if (p->sites[i].op)
			continue;
		name = alloc_fns[p->sites[i].fn].name;
		bool own_new = p->sites[i].lib == c[malloc_def].lib && !strcmp(name, "_Znwm");

		p->sites[i].wrapper = strcmp(name, "malloc") && !own_new;
	}
	p->malloc_lib = (int)c[malloc_def].lib;
	return 0;
}

int alloc_plan__resolve(const struct load_order *lo, const struct placement *pl,
			struct alloc_plan *out)
{
	struct candidate *c = xcalloc(lo->n, sizeof(*c));
	size_t libcap = 0;
	bool static_exe;
	int err;

	*out = (struct alloc_plan){ .malloc_lib = -1 };
	for (size_t i = 0; i < lo->n; i++) {
		const char *open_path = lo->o[i].open_path ? lo->o[i].open_path : lo->o[i].path;

		c[i].ef = elf_file__open(open_path);
		if (!c[i].ef)
			ap_info("cannot read %s: %s", open_path, strerror(errno));
		c[i].lib = add_lib(out, &libcap, &lo->o[i], open_path);
		c[i].is_exe = i == 0;
	}
	static_exe = lo->n && c[0].ef && !elf_file__interp(c[0].ef) && !lo->from_link_map;
	err = resolve(c, lo->n, static_exe, pl, out);
	for (size_t i = 0; i < lo->n; i++)
		elf_file__free(c[i].ef);
	free(c);
	if (err)
		alloc_plan__free(out);
	return err;
}

int alloc_plan__of_pid(pid_t pid, const struct placement *pl, struct alloc_plan *out,
		       char **rtld_path)
{
	struct load_order lo;
	int err;

	*out = (struct alloc_plan){ .malloc_lib = -1 };
	if (rtld_path)
		*rtld_path = NULL;
	err = load_order__of_pid(pid, &lo);
	if (err)
		return err;
	err = alloc_plan__resolve(&lo, pl, out);
	if (!err && rtld_path && lo.rtld_path)
		*rtld_path = proc_path(pid, lo.rtld_path);
	load_order__free(&lo);
	return err;
}

void alloc_plan__free(struct alloc_plan *p)
{
	for (size_t i = 0; i < p->nlibs; i++) {
		free(p->libs[i].path);
		free(p->libs[i].open_path);
	}
	free(p->libs);
	free(p->sites);
	*p = (struct alloc_plan){ .malloc_lib = -1 };
}

const char *probe_site__name(const struct probe_site *s)
{
	return s->op ? s->aliases : alloc_fns[s->fn].name;
}

void alloc_plan__print(const struct alloc_plan *p, const char *what)
{
	if (!verbose)
		return;
	ap_info("%s: allocator %s", what, p->malloc_lib >= 0 ? p->libs[p->malloc_lib].path : "?");
	for (size_t i = 0; i < p->nsites; i++) {
		const struct probe_site *s = &p->sites[i];

		if (s->op)
			ap_info("  %-22s %s+0x%llx (offset 0x%llx), operation (--ops)", s->aliases,
				p->libs[s->lib].path, (unsigned long long)s->vaddr,
				(unsigned long long)s->offset);
		else
			ap_info("  %-22s %s+0x%llx (offset 0x%llx)%s%s", alloc_fns[s->fn].pretty,
				p->libs[s->lib].path, (unsigned long long)s->vaddr,
				(unsigned long long)s->offset, s->aliases[0] ? " also " : "",
				s->aliases);
		ap_info("  %-22s probe at %s", "", s->why);
	}
}
