/*
 * Attaching uprobes: turns plans into links, one per (process, file, offset), never two on one
 * site, and keeps the BPF side's table of allocator function ranges per library up to date.
 * Owns the links; knows nothing about how a plan was made or what the program does.
 */
#include "attach.h"
#include "elffile.h"
#include "procmaps.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct attached {
	pid_t pid;
	uint64_t dev, ino, offset;
};

struct lib_ranges {
	uint64_t dev, ino;
	struct ap_lib lib;
};

struct attacher {
	struct bpf_program *prog;
	int libs_fd;
	struct bpf_link **links;
	size_t nlinks, links_cap;
	struct attached *sites;
	size_t nsites, sites_cap;
	struct lib_ranges *libs;
	size_t nlibs, libs_cap;
};

struct attacher *attacher__new(struct bpf_program *prog, int libs_fd)
{
	struct attacher *a = xcalloc(1, sizeof(*a));

	a->prog = prog;
	a->libs_fd = libs_fd;
	return a;
}

void attacher__free(struct attacher *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nlinks; i++)
		bpf_link__destroy(a->links[i]);
	free(a->links);
	free(a->sites);
	free(a->libs);
	free(a);
}

static bool already(const struct attacher *a, pid_t pid, uint64_t dev, uint64_t ino, uint64_t off)
{
	for (size_t i = 0; i < a->nsites; i++) {
		const struct attached *s = &a->sites[i];

		if (s->pid == pid && s->dev == dev && s->ino == ino && s->offset == off)
			return true;
	}
	return false;
}

static void remember(struct attacher *a, pid_t pid, uint64_t dev, uint64_t ino, uint64_t off)
{
	grow((void **)&a->sites, &a->sites_cap, a->nsites + 1, sizeof(*a->sites));
	a->sites[a->nsites++] = (struct attached){ pid, dev, ino, off };
}

static int attach_one(struct attacher *a, struct bpf_program *prog, pid_t pid, const char *path,
		      uint64_t offset, uint64_t cookie)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie);
	struct bpf_link *link;

	link = bpf_program__attach_uprobe_opts(prog, pid, path, offset, &opts);
	if (!link)
		return -errno;
	grow((void **)&a->links, &a->links_cap, a->nlinks + 1, sizeof(*a->links));
	a->links[a->nlinks++] = link;
	return 0;
}

/* The identity a probe on `l` has: the file underneath when an overlay shows another. */
static uint64_t lib_dev(const struct alloc_lib *l)
{
	return l->real_ino ? l->real_dev : l->dev;
}

static uint64_t lib_ino(const struct alloc_lib *l)
{
	return l->real_ino ? l->real_ino : l->ino;
}

/* Index of the library in the BPF libs map, with its ranges merged in; AP_NO_LIB if full. */
static unsigned int lib_index(struct attacher *a, const struct alloc_plan *plan, unsigned int li)
{
	const struct alloc_lib *pl = &plan->libs[li];
	struct lib_ranges *lr = NULL;
	unsigned int idx;
	__u32 key;

	if (a->libs_fd < 0)
		return AP_NO_LIB;
	for (idx = 0; idx < a->nlibs; idx++)
		if (a->libs[idx].dev == lib_dev(pl) && a->libs[idx].ino == lib_ino(pl))
			break;
	if (idx == a->nlibs) {
		if (idx >= AP_LIBS_ENTRIES)
			return AP_NO_LIB;
		grow((void **)&a->libs, &a->libs_cap, a->nlibs + 1, sizeof(*a->libs));
		a->libs[a->nlibs++] = (struct lib_ranges){ .dev = lib_dev(pl), .ino = lib_ino(pl) };
	}
	lr = &a->libs[idx];
	for (size_t i = 0; i < plan->nsites; i++) {
		const struct probe_site *s = &plan->sites[i];
		struct ap_lib *l = &lr->lib;
		bool have = false;

		if (s->lib != li)
			continue;
		for (__u32 r = 0; r < l->nr; r++)
			have |= l->r[r].start == s->vaddr;
		if (have)
			continue;
		if (l->nr == AP_MAX_LIB_RANGES) {
			ap_warn("%s: more than %d allocator functions; nested calls from %s are "
				"counted again",
				pl->path, AP_MAX_LIB_RANGES, alloc_fns[s->fn].name);
			continue;
		}
		l->r[l->nr++] = (struct ap_range){ s->vaddr, s->vaddr + s->size };
		if (l->nr == 1 || s->vaddr < l->lo)
			l->lo = s->vaddr;
		if (s->vaddr + s->size > l->hi)
			l->hi = s->vaddr + s->size;
	}
	key = idx;
	if (bpf_map_update_elem(a->libs_fd, &key, &lr->lib, BPF_ANY)) {
		ap_warn("cannot update the library table: %s", strerror(errno));
		return AP_NO_LIB;
	}
	return idx;
}

int attacher__add_plan(struct attacher *a, pid_t pid, const struct alloc_plan *plan, size_t *added)
{
	*added = 0;
	for (size_t i = 0; i < plan->nsites; i++) {
		const struct probe_site *s = &plan->sites[i];
		const struct alloc_lib *l = &plan->libs[s->lib];
		const struct alloc_fn *f = &alloc_fns[s->fn];
		unsigned int lib;
		uint64_t cookie;
		int err;

		if (f->role != FN_ALLOC || already(a, pid, lib_dev(l), lib_ino(l), s->offset))
			continue;
		lib = lib_index(a, plan, s->lib);
		if (s->vaddr > AP_MAX_SITE_VADDR)
			lib = AP_NO_LIB;
		cookie = AP_COOKIE(f->kind, s->fn, s->slots, s->wrapper, lib,
				   lib == AP_NO_LIB ? 0 : s->vaddr);
		err = attach_one(a, a->prog, pid, l->open_path, s->offset, cookie);
		if (err) {
			if (pid > 0)
				ap_err("cannot attach to %s in %s for pid %d: %s", f->name, l->path,
				       (int)pid, strerror(-err));
			else
				ap_err("cannot attach to %s in %s: %s", f->name, l->path,
				       strerror(-err));
			return err;
		}
		remember(a, pid, lib_dev(l), lib_ino(l), s->offset);
		(*added)++;
	}
	return 0;
}

int attacher__add_rtld(struct attacher *a, struct bpf_program *prog, pid_t pid,
		       const char *rtld_path)
{
	struct elf_sym hook, rdebug;
	struct elf_file *ef;
	struct stat st;
	uint64_t off, dev;
	int err;

	if (stat(rtld_path, &st))
		return -errno;
	dev = DEV_ID(major(st.st_dev), minor(st.st_dev));
	ef = elf_file__open(rtld_path);
	if (!ef)
		return -errno;
	err = elf_file__lookup(ef, "_dl_debug_state", &hook);
	if (!err)
		err = elf_file__lookup(ef, "_r_debug", &rdebug);
	if (!err)
		err = elf_file__vaddr_to_offset(ef, hook.vaddr, &off);
	elf_file__free(ef);
	if (err)
		return err;
	if (hook.vaddr > UINT32_MAX || rdebug.vaddr > UINT32_MAX)
		return -ERANGE;
	if (already(a, pid, dev, st.st_ino, off))
		return 0;
	err = attach_one(a, prog, pid, rtld_path, off, hook.vaddr | (rdebug.vaddr << 32));
	if (!err)
		remember(a, pid, dev, st.st_ino, off);
	return err;
}

int attacher__real_files(struct bpf_program *iter, pid_t pid, struct alloc_plan *plan)
{
	union bpf_iter_link_info info = { .task.pid = (__u32)pid };
	LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &info, .link_info_len = sizeof(info));
	struct ap_real_file rf;
	struct bpf_link *link;
	int fd, err = 0;

	link = bpf_program__attach_iter(iter, &opts);
	if (!link)
		return -errno;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		err = -errno;
		bpf_link__destroy(link);
		return err;
	}
	while (read(fd, &rf, sizeof(rf)) == sizeof(rf))
		for (size_t i = 0; i < plan->nlibs; i++)
			if (plan->libs[i].base == rf.start) {
				plan->libs[i].real_dev = rf.dev;
				plan->libs[i].real_ino = rf.ino;
			}
	close(fd);
	bpf_link__destroy(link);
	return 0;
}
