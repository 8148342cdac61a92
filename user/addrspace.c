/*
 * What each traced process had mapped, kept past its exit: snapshots of /proc/PID/maps merged
 * over the capture, and one open descriptor per distinct mapped file so it can be symbolized
 * after the process (or the file's directory entry) is gone. Knows nothing about symbols.
 */
#include "addrspace.h"
#include "hashmap.h"
#include "linkmap.h"
#include "procmaps.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct space {
	pid_t pid;
	uint32_t image;
	bool snapshotted;    /* /proc/PID/maps was read, not only the kernel's records */
	const char *exe, *container; /* from the first snapshot (addrspaces__labels) */
	struct space_map *m; /* sorted by start, non-overlapping */
	size_t n, cap;
};

/* A second identity of a file (addrspaces__alias_file), kept to rebuild by_file. */
struct alias {
	uint64_t dev, ino;
	struct mapped_file *f;
};

struct addrspaces {
	struct hashmap *by_proc; /* (pid, image) -> index into spaces */
	struct space *spaces;
	size_t nspaces, cap;
	struct hashmap *by_file; /* (dev, ino) -> index into files */
	struct mapped_file **files;
	size_t nfiles, fcap;
	struct alias *aliases;
	size_t naliases, acap;
	struct strpool *names; /* mapping names */
	uint64_t next_id;
	size_t unreadable;
};

struct addrspaces *addrspaces__new(void)
{
	struct addrspaces *as = xcalloc(1, sizeof(*as));

	as->by_proc = hashmap__new();
	as->by_file = hashmap__new();
	as->names = strpool__new();
	as->next_id = 1;
	return as;
}

void addrspaces__free(struct addrspaces *as)
{
	if (!as)
		return;
	for (size_t i = 0; i < as->nspaces; i++)
		free(as->spaces[i].m);
	for (size_t i = 0; i < as->nfiles; i++) {
		if (as->files[i]->fd >= 0)
			close(as->files[i]->fd);
		free(as->files[i]->path);
		free(as->files[i]);
	}
	free(as->files);
	free(as->aliases);
	free(as->spaces);
	hashmap__free(as->by_proc);
	hashmap__free(as->by_file);
	strpool__free(as->names);
	free(as);
}

static struct mapped_file *known_file(struct addrspaces *as, uint64_t dev, uint64_t ino)
{
	uint64_t key[2] = { dev, ino }, idx;

	return hashmap__get(as->by_file, key, sizeof(key), &idx) ? as->files[idx] : NULL;
}

static void add_known_file(struct addrspaces *as, struct mapped_file *f)
{
	uint64_t key[2] = { f->dev, f->ino };

	grow((void **)&as->files, &as->fcap, as->nfiles + 1, sizeof(*as->files));
	as->files[as->nfiles] = f;
	hashmap__put(as->by_file, key, sizeof(key), as->nfiles++);
}

/* Is the open `fd` the file the mapping `e` shows (its device and inode)? */
static bool same_file(int fd, const struct map_entry *e)
{
	struct stat st;

	return !fstat(fd, &st) && st.st_ino == e->ino &&
	       DEV_ID(major(st.st_dev), minor(st.st_dev)) == e->dev;
}

/* The file behind a mapping, opened once, as proc_mapped_path says. */
static struct mapped_file *get_file(struct addrspaces *as, pid_t pid, const struct map_entry *e)
{
	struct mapped_file *f = known_file(as, e->dev, e->ino);
	char *path;

	if (f)
		return f;
	f = xcalloc(1, sizeof(*f));
	f->dev = e->dev;
	f->ino = e->ino;
	f->path = xstrdup(e->path);
	path = proc_mapped_path(pid, e);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	/*
	 * The path may name another file by now (replaced since the maps were read): then the
	 * mapping's own entry, which is that file whatever its name. It needs more privilege, and
	 * an overlay's file shows another identity than its path's: without it, the path's.
	 */
	if (f->fd < 0 || !same_file(f->fd, e)) {
		char mf[96];
		int fd;

		snprintf(mf, sizeof(mf), "/proc/%d/map_files/%llx-%llx", (int)pid,
			 (unsigned long long)e->start, (unsigned long long)e->end);
		fd = open(mf, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (f->fd >= 0)
				close(f->fd);
			f->fd = fd;
		}
	}
	if (f->fd < 0) {
		as->unreadable++;
		ap_info("pid %d: cannot open mapped file %s: %s", (int)pid, e->path,
			strerror(errno));
	}
	add_known_file(as, f);
	return f;
}

void addrspaces__alias_file(struct addrspaces *as, uint64_t dev, uint64_t ino, uint64_t real_dev,
			    uint64_t real_ino)
{
	struct mapped_file *f = known_file(as, dev, ino);
	uint64_t key[2] = { real_dev, real_ino }, idx;

	if (!f || known_file(as, real_dev, real_ino))
		return;
	/* The same file again under its other identity; freed once, through `files`. */
	for (idx = 0; idx < as->nfiles && as->files[idx] != f; idx++)
		;
	hashmap__put(as->by_file, key, sizeof(key), idx);
	grow((void **)&as->aliases, &as->acap, as->naliases + 1, sizeof(*as->aliases));
	as->aliases[as->naliases++] = (struct alias){ real_dev, real_ino, f };
}

void addrspaces__add_file(struct addrspaces *as, const char *open_path, const char *path)
{
	struct mapped_file *f;
	struct stat st;
	int fd;

	fd = open(open_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) ||
	    known_file(as, DEV_ID(major(st.st_dev), minor(st.st_dev)), st.st_ino)) {
		close(fd);
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->dev = DEV_ID(major(st.st_dev), minor(st.st_dev));
	f->ino = st.st_ino;
	f->path = xstrdup(path);
	f->fd = fd;
	f->pinned = true;
	add_known_file(as, f);
}

enum lookup {
	FIND,
	FIND_OR_CREATE,
};

static struct space *get_space(struct addrspaces *as, pid_t pid, uint32_t image, enum lookup how)
{
	uint64_t key = ((uint64_t)(uint32_t)pid << 32) | image, idx;

	if (hashmap__get(as->by_proc, &key, sizeof(key), &idx))
		return &as->spaces[idx];
	if (how == FIND)
		return NULL;
	grow((void **)&as->spaces, &as->cap, as->nspaces + 1, sizeof(*as->spaces));
	as->spaces[as->nspaces] = (struct space){ .pid = pid, .image = image };
	hashmap__put(as->by_proc, &key, sizeof(key), as->nspaces);
	return &as->spaces[as->nspaces++];
}

static int cmp_start(const void *a, const void *b)
{
	const struct space_map *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The cgroup v2 path of `pid` ("0::PATH"), else systemd's v1 one: "" when only "/". */
static void proc_cgroup(pid_t pid, char *out, size_t len)
{
	char path[64], line[4096];
	FILE *f;

	*out = 0;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "::");
		char *v1 = strstr(line, ":name=systemd:");

		line[strcspn(line, "\n")] = 0;
		if (p == line + 1 && line[0] == '0' && strcmp(p + 2, "/")) {
			snprintf(out, len, "%s", p + 2);
			break;
		}
		if (v1 && !*out && strcmp(v1 + 14, "/"))
			snprintf(out, len, "%s", v1 + 14);
	}
	fclose(f);
}

/* A process in another mount namespace than init's is taken to be in a container. */
static void read_labels(struct addrspaces *as, struct space *sp, pid_t pid)
{
	char exe[4096], ns[64], init_ns[64], path[64], cg[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		sp->exe = strpool__intern(as->names, exe);
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	n = readlink(path, ns, sizeof(ns) - 1);
	if (n <= 0)
		return;
	ns[n] = 0;
	/* init's, or where it cannot be read (a sandbox's pid 1), allocprof's own. */
	n = readlink("/proc/1/ns/mnt", init_ns, sizeof(init_ns) - 1);
	if (n <= 0)
		n = readlink("/proc/self/ns/mnt", init_ns, sizeof(init_ns) - 1);
	if (n <= 0)
		return;
	init_ns[n] = 0;
	if (!strcmp(ns, init_ns))
		return;
	proc_cgroup(pid, cg, sizeof(cg));
	sp->container = strpool__intern(as->names, *cg ? cg : ns);
}

int addrspaces__snapshot(struct addrspaces *as, pid_t pid)
{
	struct proc_maps maps;
	struct space *sp;
	struct space_map *merged = NULL;
	size_t n = 0, cap = 0;
	uint32_t image, after;
	int err;

	err = proc_image(pid, &image);
	if (err)
		return err;
	err = proc_maps__read(pid, &maps);
	if (err)
		return err;
	/* An exec between the two reads would file these mappings under the wrong program. */
	if (proc_image(pid, &after) || after != image) {
		proc_maps__free(&maps);
		return -EAGAIN;
	}
	sp = get_space(as, pid, image, FIND_OR_CREATE);
	
	if (!sp->snapshotted)
		read_labels(as, sp, pid);
	/* Only executable mappings hold frames; the rest would only make the profile bigger. */
	for (size_t i = 0; i < maps.n; i++) {
		const struct map_entry *e = &maps.e[i];
		struct space_map sm = { .start = e->start, .end = e->end, .pgoff = e->pgoff };
		const struct space_map *old;

		if (!e->exec)
			continue;
		sm.name = strpool__intern(as->names, e->path ? e->path : "");
		/* Deleted files too: map_files still opens them. */
		if (e->path && e->path[0] == '/' && e->ino)
			sm.file = get_file(as, pid, e);
		/* The same mapping as before keeps its id, so the profile has one Mapping. */
		old = addrspaces__find(as, pid, image, e->start);
		if (old && old->start == sm.start && old->end == sm.end && old->pgoff == sm.pgoff &&
		    old->file == sm.file)
			sm.id = old->id;
		else
			sm.id = as->next_id++;
		grow((void **)&merged, &cap, n + 1, sizeof(*merged));
		merged[n++] = sm;
	}
	/* Older mappings nothing overlaps now: unmapped since, but earlier stacks point there. */
	for (size_t i = 0; i < sp->n; i++) {
		const struct space_map *o = &sp->m[i];
		bool overlap = false;

		/* (A mapping still there overlaps itself: it is in `merged` already.) */
		for (size_t j = 0; j < n && !overlap; j++)
			overlap = o->start < merged[j].end && merged[j].start < o->end;
		if (!overlap) {
			grow((void **)&merged, &cap, n + 1, sizeof(*merged));
			merged[n++] = *o;
		}
	}
	qsort(merged, n, sizeof(*merged), cmp_start);
	free(sp->m);
	sp->m = merged;
	sp->n = n;
	sp->cap = cap;
	sp->snapshotted = true;
	proc_maps__free(&maps);
	return 0;
}

bool addrspaces__known(const struct addrspaces *as, pid_t pid, uint32_t image)
{
	struct space *sp = get_space((struct addrspaces *)as, pid, image, FIND);

	return sp && sp->snapshotted;
}

void addrspaces__labels(const struct addrspaces *as, pid_t pid, uint32_t image, const char **exe,
			const char **container)
{
	struct space *sp = get_space((struct addrspaces *)as, pid, image, FIND);

	*exe = sp ? sp->exe : NULL;
	*container = sp ? sp->container : NULL;
}

const struct space_map *addrspaces__find(const struct addrspaces *as, pid_t pid, uint32_t image,
					 uint64_t addr)
{
	struct space *sp = get_space((struct addrspaces *)as, pid, image, FIND);
	size_t lo = 0, hi;

	if (!sp)
		return NULL;
	hi = sp->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (addr < sp->m[mid].start)
			hi = mid;
		else if (addr >= sp->m[mid].end)
			lo = mid + 1;
		else
			return &sp->m[mid];
	}
	return NULL;
}

void addrspaces__add_vma(struct addrspaces *as, pid_t pid, uint32_t image, uint64_t start,
			 uint64_t end, uint64_t offset, uint64_t dev, uint64_t ino,
			 const char *name)
{
	struct space *sp = get_space(as, pid, image, FIND_OR_CREATE);
	struct mapped_file *f = known_file(as, dev, ino);
	struct space_map sm = { .start = start, .end = end, .pgoff = offset, .file = f };
	size_t at = 0;

	/* A snapshot's view of the same range wins: it has the full path and an open file. */
	for (size_t i = 0; i < sp->n; i++)
		if (sp->m[i].start < end && start < sp->m[i].end)
			return;
	while (at < sp->n && sp->m[at].start < start)
		at++;
	sm.name = strpool__intern(as->names, f ? f->path : name);
	sm.id = as->next_id++;
	grow((void **)&sp->m, &sp->cap, sp->n + 1, sizeof(*sp->m));
	memmove(&sp->m[at + 1], &sp->m[at], (sp->n - at) * sizeof(*sp->m));
	sp->m[at] = sm;
	sp->n++;
}

size_t addrspaces__unreadable(const struct addrspaces *as)
{
	return as->unreadable;
}

/*
 * The hash tables cannot remove a key: what is kept is compacted and the tables rebuilt, once
 * per file written, in time linear in what is held.
 */
size_t addrspaces__forget(struct addrspaces *as, bool (*gone)(void *ctx, pid_t pid, uint32_t image),
			  void *ctx, size_t *closed)
{
	struct hashmap *used = hashmap__new();
	size_t kept = 0, forgotten, nf = 0, na = 0;

	*closed = 0;
	for (size_t i = 0; i < as->nspaces; i++) {
		struct space *sp = &as->spaces[i];

		if (gone(ctx, sp->pid, sp->image)) {
			free(sp->m);
			continue;
		}
		as->spaces[kept++] = *sp;
	}
	forgotten = as->nspaces - kept;
	if (!forgotten) {
		hashmap__free(used);
		return 0;
	}
	as->nspaces = kept;
	hashmap__free(as->by_proc);
	as->by_proc = hashmap__new();
	for (size_t i = 0; i < as->nspaces; i++) {
		uint64_t key = ((uint64_t)(uint32_t)as->spaces[i].pid << 32) | as->spaces[i].image;

		hashmap__put(as->by_proc, &key, sizeof(key), i);
		for (size_t j = 0; j < as->spaces[i].n; j++)
			if (as->spaces[i].m[j].file)
				hashmap__put(used, &as->spaces[i].m[j].file, sizeof(void *), 1);
	}
	/* Files only the forgotten processes mapped: closed, unless given to add_file. */
	for (size_t i = 0; i < as->nfiles; i++) {
		struct mapped_file *f = as->files[i];
		uint64_t one;

		if (f->pinned || hashmap__get(used, &f, sizeof(f), &one)) {
			as->files[nf++] = f;
			continue;
		}
		for (size_t a = 0; a < as->naliases; a++)
			if (as->aliases[a].f == f)
				as->aliases[a].f = NULL;
		if (f->fd >= 0)
			close(f->fd);
		free(f->path);
		free(f);
	}
	*closed = as->nfiles - nf;
	as->nfiles = nf;
	hashmap__free(as->by_file);
	as->by_file = hashmap__new();
	for (size_t i = 0; i < as->nfiles; i++) {
		uint64_t key[2] = { as->files[i]->dev, as->files[i]->ino };

		hashmap__put(as->by_file, key, sizeof(key), i);
	}
	for (size_t a = 0; a < as->naliases; a++) {
		uint64_t key[2] = { as->aliases[a].dev, as->aliases[a].ino };

		if (!as->aliases[a].f)
			continue;
		for (size_t i = 0; i < as->nfiles; i++)
			if (as->files[i] == as->aliases[a].f)
				hashmap__put(as->by_file, key, sizeof(key), i);
		as->aliases[na++] = as->aliases[a];
	}
	as->naliases = na;
	hashmap__free(used);
	return forgotten;
}

void addrspaces__each(const struct addrspaces *as, void (*fn)(void *ctx, pid_t pid, uint32_t image),
		      void *ctx)
{
	for (size_t i = 0; i < as->nspaces; i++)
		fn(ctx, as->spaces[i].pid, as->spaces[i].image);
}

void addrspaces__counts(const struct addrspaces *as, size_t *procs, size_t *files)
{
	*procs = as->nspaces;
	*files = as->nfiles;
}
