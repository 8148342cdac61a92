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
#include <pthread.h>
#include <signal.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/*
 * Uprobe sessions postdate the kernel headers and libbpf Debian 12 ships (Linux 6.1, libbpf
 * 1.1): the attach type's number and the link_create layout of a uprobe_multi link, from the
 * kernel's UAPI, are written out here and the link is created with the bpf syscall.
 */
#define AP_BPF_TRACE_UPROBE_MULTI   48
#define AP_BPF_TRACE_UPROBE_SESSION 57

union ap_link_create_attr {
	struct {
		__u32 prog_fd;
		__u32 target_fd;
		__u32 attach_type;
		__u32 flags;
		struct {
			__u64 path;
			__u64 offsets;
			__u64 ref_ctr_offsets;
			__u64 cookies;
			__u32 cnt;
			__u32 flags;
			__u32 pid;
		} uprobe_multi;
	};
	__u8 pad[64];
};

int attach_session_type(void)
{
	return AP_BPF_TRACE_UPROBE_SESSION;
}

int attach_multi_type(void)
{
	return AP_BPF_TRACE_UPROBE_MULTI;
}

/*
 * A uprobe_multi link (`type`: a session, or plain entry probes) of `prog_fd` at `cnt`
 * offsets of `path`, each with its cookie; pid 0: every process. One link for all of a file's
 * sites: the kernel detaches them together when it is closed (a link per site cost a close
 * of 24-232 ms each at the end of a capture).
 */
static int multi_link(int prog_fd, __u32 type, pid_t pid, const char *path, const __u64 *offsets,
		      const __u64 *cookies, __u32 cnt)
{
	union ap_link_create_attr attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = (__u32)prog_fd;
	attr.attach_type = type;
	attr.uprobe_multi.path = (__u64)(uintptr_t)path;
	attr.uprobe_multi.offsets = (__u64)(uintptr_t)offsets;
	attr.uprobe_multi.cookies = (__u64)(uintptr_t)cookies;
	attr.uprobe_multi.cnt = cnt;
	attr.uprobe_multi.pid = pid > 0 ? (__u32)pid : 0;
	fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	return fd < 0 ? -errno : (int)fd;
}

/* Never runs: the session probe of attach_sessions_supported() is placed here. */
__attribute__((noinline, used)) void allocprof_session_probe_site(void);
__attribute__((noinline, used)) void allocprof_session_probe_site(void)
{
	__asm__ volatile("" ::: "memory");
}

/*
 * Asks the kernel whether it takes session links without making one: a link at a path that
 * cannot be (/dev/null is no directory) fails with ENOTDIR only where the kernel has session
 * links, which look the path up after every check of the attach type; one without says EINVAL
 * before. A real link cost ~10 ms to create and ~30 ms to close (the kernel's RCU grace
 * periods), before any probe was placed. False for any other answer: then the real link tells.
 */
static bool session_links_known(int prog)
{
	__u64 off = 0, cookie = 0;
	int link = multi_link(prog, AP_BPF_TRACE_UPROBE_SESSION, getpid(), "/dev/null/x", &off,
			      &cookie, 1);

	if (link >= 0) /* /dev/null is someone's directory: a link all the same */
		close(link);
	return link >= 0 || link == -ENOTDIR;
}

bool attach_sessions_supported(const char **why)
{
	/* r0 = 1; exit: an entry that never asks for the return. */
	static const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	static int cached = -1;
	static char reason[128];
	LIBBPF_OPTS(bpf_prog_load_opts, opts,
		    .expected_attach_type = (enum bpf_attach_type)AP_BPF_TRACE_UPROBE_SESSION);
	uint64_t site = (uint64_t)(uintptr_t)allocprof_session_probe_site;
	const struct map_entry *m;
	struct proc_maps maps;
	int prog, link;

	if (cached >= 0)
		goto out;
	cached = 0;
	if (getenv("ALLOCPROF_NO_SESSIONS")) {
		snprintf(reason, sizeof(reason), "disabled by ALLOCPROF_NO_SESSIONS");
		goto out;
	}
	prog = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "ap_session", "GPL", insns, 2, &opts);
	if (prog < 0) {
		snprintf(reason, sizeof(reason),
			 "the kernel rejects a session program (%s; Linux 6.13+ has them)",
			 strerror(errno));
		goto out;
	}
	if (session_links_known(prog)) {
		cached = 1;
		close(prog);
		goto out;
	}
	/* Where our own test site is in our file: from the mapping, so a stripped binary works. */
	if (proc_maps__read(getpid(), &maps)) {
		snprintf(reason, sizeof(reason), "cannot read our own mappings");
		close(prog);
		goto out;
	}
	m = proc_maps__find(&maps, site);
	if (!m || !m->path) {
		snprintf(reason, sizeof(reason), "cannot find our own test site");
	} else {
		__u64 off = site - m->start + m->pgoff, cookie = 0;

		link = multi_link(prog, AP_BPF_TRACE_UPROBE_SESSION, getpid(), "/proc/self/exe",
				  &off, &cookie, 1);
		if (link >= 0) {
			close(link);
			cached = 1;
		} else {
			snprintf(reason, sizeof(reason),
				 "the kernel cannot attach a uprobe session (%s; Linux 6.13+ can)",
				 strerror(-link));
		}
	}
	proc_maps__free(&maps);
	close(prog);
out:
	if (why)
		*why = reason;
	return cached == 1;
}

struct attached {
	pid_t pid;
	uint64_t dev, ino, offset;
};

struct lib_ranges {
	uint64_t dev, ino;
	bool warned; /* about having too many functions */
	struct ap_lib lib;
};

struct attacher {
	struct attach_progs progs;
	int libs_fd;
	struct bpf_link **links;
	size_t nlinks, links_cap;
	int *link_fds; /* session links, made without libbpf */
	size_t nfds, fds_cap;
	struct attached *sites;
	size_t nsites, sites_cap;
	struct lib_ranges *libs;
	size_t nlibs, libs_cap;
};

struct attacher *attacher__new(const struct attach_progs *progs, int libs_fd)
{
	struct attacher *a = xcalloc(1, sizeof(*a));

	a->progs = *progs;
	a->libs_fd = libs_fd;
	return a;
}

/* Detaching threads: each closes every DETACHERS-th link. */
#define DETACHERS 16

struct detacher {
	struct attacher *a;
	size_t first;
};

static void *detach_some(void *arg)
{
	struct detacher *d = arg;

	for (size_t i = d->first; i < d->a->nlinks; i += DETACHERS)
		bpf_link__destroy(d->a->links[i]);
	for (size_t i = d->first; i < d->a->nfds; i += DETACHERS)
		close(d->a->link_fds[i]);
	return NULL;
}

/*
 * The kernel waits for its probes to be quiet before a link's close returns (tens of ms
 * each): with many links (a link per file per process) they are closed from several threads
 * at once, whose waits overlap.
 */
static void detach_all(struct attacher *a)
{
	struct detacher d[DETACHERS];
	pthread_t t[DETACHERS];
	bool started[DETACHERS] = { false };

	for (size_t k = 0; k < DETACHERS; k++)
		d[k] = (struct detacher){ a, k };
	if (a->nlinks + a->nfds >= 2 * DETACHERS)
		for (size_t k = 1; k < DETACHERS; k++)
			started[k] = !pthread_create(&t[k], NULL, detach_some, &d[k]);
	for (size_t k = 0; k < DETACHERS; k++)
		if (!started[k])
			detach_some(&d[k]);
	for (size_t k = 1; k < DETACHERS; k++)
		if (started[k])
			pthread_join(t[k], NULL);
}

void attacher__free(struct attacher *a)
{
	if (!a)
		return;
	detach_all(a);
	free(a->links);
	free(a->link_fds);
	free(a->sites);
	free(a->libs);
	free(a);
}

static bool site_attached(const struct attacher *a, pid_t pid, uint64_t dev, uint64_t ino,
			  uint64_t off)
{
	for (size_t i = 0; i < a->nsites; i++) {
		const struct attached *s = &a->sites[i];

		if (s->pid == pid && s->dev == dev && s->ino == ino && s->offset == off)
			return true;
	}
	return false;
}

static void note_attached(struct attacher *a, pid_t pid, uint64_t dev, uint64_t ino, uint64_t off)
{
	grow((void **)&a->sites, &a->sites_cap, a->nsites + 1, sizeof(*a->sites));
	a->sites[a->nsites++] = (struct attached){ pid, dev, ino, off };
}

/* Where a classic probe fires: at its site, or when the function returns (uretprobe). */
enum probe_at {
	AT_SITE,
	AT_RETURN,
};

static int attach_one(struct attacher *a, struct bpf_program *prog, pid_t pid, const char *path,
		      uint64_t offset, uint64_t cookie, enum probe_at at)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie, .retprobe = at == AT_RETURN);
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
static unsigned int libs_map_slot(struct attacher *a, const struct alloc_plan *plan,
				  unsigned int li)
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

		if (s->lib != li || s->op)
			continue;
		for (__u32 r = 0; r < l->nr; r++)
			have |= l->r[r].start == s->vaddr;
		if (have)
			continue;
		if (l->nr == AP_MAX_LIB_RANGES) {
			if (lr->warned)
				continue;
			lr->warned = true;
			ap_warn("%s: more than %d allocator functions; nested calls from %s "
				"(and later ones) are counted again",
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

/* Which program a site gets, and which of a file's links it goes into. */
enum site_kind {
	SITE_ALLOC, /* the session's */
	SITE_FREE,
	SITE_OP,
	SITE_KINDS,
};

static enum site_kind site_kind(const struct probe_site *s)
{
	if (s->op)
		return SITE_OP;
	return alloc_fns[s->fn].role == FN_FREE ? SITE_FREE : SITE_ALLOC;
}

/*
 * Where a site's probe is, as the table of attached sites keys it: an operation's probe is
 * another program's, even at an address an allocator function's probe has too.
 */
static uint64_t site_key(const struct probe_site *s, uint64_t off)
{
	return s->op ? off | 1ull << 63 : off;
}

/* One link for `n` sites of the file at `path`: the session's, free's or the operations'. */
static int attach_multi(struct attacher *a, enum site_kind kind, pid_t pid, const char *path,
			const __u64 *offsets, const __u64 *cookies, size_t n)
{
	int fd = kind == SITE_ALLOC ? multi_link(bpf_program__fd(a->progs.session),
						 AP_BPF_TRACE_UPROBE_SESSION, pid, path, offsets,
						 cookies, (__u32)n)
				    : multi_link(bpf_program__fd(kind == SITE_FREE ? a->progs.free
										  : a->progs.op),
						 AP_BPF_TRACE_UPROBE_MULTI, pid, path, offsets,
						 cookies, (__u32)n);

	if (fd < 0)
		return fd;
	grow((void **)&a->link_fds, &a->fds_cap, a->nfds + 1, sizeof(*a->link_fds));
	a->link_fds[a->nfds++] = fd;
	return 0;
}

/*
 * The probes of one site that has a link of its own (classic uprobes: a kernel without
 * sessions, the benchmark's floor): entry, and the return where the programs want it.
 * Session and uprobe_multi sites go into one link per file (attach_batch).
 */
static int attach_site(struct attacher *a, pid_t pid, const char *path, const struct probe_site *s,
		       uint64_t offset, uint64_t cookie)
{
	int err;

	if (s->op)
		return attach_one(a, a->progs.op, pid, path, offset, cookie, AT_SITE);
	if (alloc_fns[s->fn].role == FN_FREE)
		return attach_one(a, a->progs.free, pid, path, offset, cookie, AT_SITE);
	err = attach_one(a, a->progs.alloc, pid, path, offset, cookie, AT_SITE);
	/* Never on a throwing operator new: C++ unwinding cannot pass the kernel's trampoline. */
	if (!err && a->progs.alloc_ret && !alloc_fns[s->fn].throws) {
		err = attach_one(a, a->progs.alloc_ret, pid, path, offset, cookie, AT_RETURN);
		if (err) /* not half a site: the entry without its return */
			bpf_link__destroy(a->links[--a->nlinks]);
	}
	return err;
}

/* The sites of one file that go into one link (one for the session, one for free). */
struct batch {
	size_t n, cap;
	__u64 *offsets, *cookies;
	size_t *site; /* index into plan->sites */
};

static int site_failed(pid_t pid, const char *fn, const struct alloc_lib *l, int err)
{
	/*
	 * A short-lived process can exit while it is being attached: not an error. (A zombie
	 * still answers kill(pid, 0), so the check is pid_exited's.)
	 */
	pid_t via = 0;

	if (pid > 0 && pid_exited(pid))
		return -ESRCH;
	/*
	 * Probes shared by every process (pid -1) still reach the file through the process it
	 * was found in (/proc/PID/root/...): that process exiting is the same case.
	 */
	if (pid <= 0 && sscanf(l->open_path ? l->open_path : "", "/proc/%d/", &via) == 1 &&
	    via > 0 && pid_exited(via))
		return -ESRCH;
	if (pid > 0)
		ap_err("cannot attach to %s in %s for pid %d: %s", fn, l->path, (int)pid,
		       strerror(-err));
	else
		ap_err("cannot attach to %s in %s: %s", fn, l->path, strerror(-err));
	return err;
}

/*
 * The session sites of plan->libs[lib], in one link. When the kernel refuses it, the sites are
 * tried one by one, so the one it refuses is named.
 */
static int attach_batch(struct attacher *a, enum site_kind kind, pid_t pid,
			const struct alloc_plan *plan, size_t lib, const struct batch *b,
			size_t *added)
{
	const struct alloc_lib *l = &plan->libs[lib];
	int err;

	if (!b->n)
		return 0;
	err = attach_multi(a, kind, pid, l->open_path, b->offsets, b->cookies, b->n);
	if (err) {
		for (size_t i = 0; i < b->n; i++) {
			const struct probe_site *s = &plan->sites[b->site[i]];
			int e = attach_multi(a, kind, pid, l->open_path, &b->offsets[i],
					     &b->cookies[i], 1);

			if (e)
				return site_failed(pid, probe_site__name(s), l, e);
			note_attached(a, pid, lib_dev(l), lib_ino(l), site_key(s, b->offsets[i]));
			(*added)++;
		}
		return 0;
	}
	for (size_t i = 0; i < b->n; i++)
		note_attached(a, pid, lib_dev(l), lib_ino(l),
			      site_key(&plan->sites[b->site[i]], b->offsets[i]));
	*added += b->n;
	return 0;
}

int attacher__add_plan(struct attacher *a, pid_t pid, const struct alloc_plan *plan, size_t *added)
{
	/* [SITE_KINDS * lib + kind]: the sites of plan->libs[lib] of each kind. */
	struct batch *batches =
		xcalloc(SITE_KINDS * (plan->nlibs ? plan->nlibs : 1), sizeof(*batches));
	int err = 0;

	*added = 0;
	for (size_t i = 0; i < plan->nsites && !err; i++) {
		const struct probe_site *s = &plan->sites[i];
		const struct alloc_lib *l = &plan->libs[s->lib];
		enum site_kind kind = site_kind(s);
		uint64_t off = s->offset + s->past_entry, cookie;
		unsigned int slot; /* the library's in the BPF libs map (s->lib is plan->libs's) */
		bool multi = kind == SITE_FREE ? a->progs.free_multi
			     : kind == SITE_OP ? a->progs.op_multi
					       : !!a->progs.session;
		struct batch *b = &batches[SITE_KINDS * s->lib + kind];
		bool queued = false;

		if ((kind == SITE_FREE && !a->progs.free) || (kind == SITE_OP && !a->progs.op) ||
		    site_attached(a, pid, lib_dev(l), lib_ino(l), site_key(s, off)))
			continue;
		for (size_t k = 0; k < b->n && !queued; k++)
			queued = b->offsets[k] == off;
		if (queued)
			continue;
		if (kind == SITE_OP) {
			cookie = s->fn; /* the operation's index: all its program needs */
		} else {
			slot = libs_map_slot(a, plan, s->lib);
			if (s->vaddr + s->past_entry > AP_MAX_SITE_VADDR)
				slot = AP_NO_LIB;
			/* The cookie has the site's address: the program finds the load bias. */
			cookie = AP_COOKIE(alloc_fns[s->fn].kind, s->fn, s->slots, s->wrapper, slot,
					   slot == AP_NO_LIB ? 0 : s->vaddr + s->past_entry);
		}
		if (multi) {
			if (b->n == b->cap) {
				b->cap = b->cap ? 2 * b->cap : 16;
				b->offsets = xrealloc(b->offsets, b->cap, sizeof(*b->offsets));
				b->cookies = xrealloc(b->cookies, b->cap, sizeof(*b->cookies));
				b->site = xrealloc(b->site, b->cap, sizeof(*b->site));
			}
			b->offsets[b->n] = off;
			b->cookies[b->n] = cookie;
			b->site[b->n++] = i;
			continue;
		}
		err = attach_site(a, pid, l->open_path, s, off, cookie);
		if (err) {
			err = site_failed(pid, probe_site__name(s), l, err);
			break;
		}
		note_attached(a, pid, lib_dev(l), lib_ino(l), site_key(s, off));
		(*added)++;
	}
	for (size_t k = 0; k < SITE_KINDS * plan->nlibs && !err; k++)
		err = attach_batch(a, (enum site_kind)(k % SITE_KINDS), pid, plan, k / SITE_KINDS,
				   &batches[k], added);
	for (size_t k = 0; k < SITE_KINDS * plan->nlibs; k++) {
		free(batches[k].offsets);
		free(batches[k].cookies);
		free(batches[k].site);
	}
	free(batches);
	return err;
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
	if (hook.vaddr > AP_RTLD_MAX_VADDR || rdebug.vaddr > AP_RTLD_MAX_VADDR)
		return -ERANGE;
	if (site_attached(a, pid, dev, st.st_ino, off))
		return 0;
	if (a->progs.rtld_multi) {
		__u64 offset = off, cookie = AP_RTLD_COOKIE(hook.vaddr, rdebug.vaddr);
		int fd = multi_link(bpf_program__fd(prog), AP_BPF_TRACE_UPROBE_MULTI, pid,
				    rtld_path, &offset, &cookie, 1);

		err = fd < 0 ? fd : 0;
		if (fd >= 0) {
			grow((void **)&a->link_fds, &a->fds_cap, a->nfds + 1,
			     sizeof(*a->link_fds));
			a->link_fds[a->nfds++] = fd;
		}
	} else {
		err = attach_one(a, prog, pid, rtld_path, off,
				 AP_RTLD_COOKIE(hook.vaddr, rdebug.vaddr), AT_SITE);
	}
	if (!err)
		note_attached(a, pid, dev, st.st_ino, off);
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
