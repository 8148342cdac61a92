/*
 * The unwind tables in the kernel (see unwind.h). The event loop only queues requests; the
 * worker thread resolves each to a file, builds its rows (cfi.c), copies them into the row
 * pool (a BPF array, mapped here only around each copy: a mapping of the whole pool would be
 * resident all along) and then publishes the file's run in cfi_files, so a walk never sees
 * a run whose rows are not all in place. The pool is only appended to during a
 * capture: what a table takes is known when it is built, and a table that does not fit is
 * counted (its frames are walked by frame pointer).
 */
#include "unwind.h"
#include "allocprof.skel.h"
#include "cfi.h"
#include "elffile.h"
#include "procmaps.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* A file to build: mapped at ip in pid, or (pid 0) the file at path. */
struct request {
	struct ap_file_key key;
	pid_t pid;
	uint64_t ip;
	char *path;
};

/* Times a file's request may fail for a reason of the moment before it counts as failed. */
#define MAX_RETRIES 3

struct retry {
	struct ap_file_key key;
	unsigned int n;
};

/* A table built: where its rows are, under its build-id. */
struct built {
	char build_id[64];
	struct ap_cfi_file run;
};

struct unwind {
	int files_fd, wanted_fd, proc_vmas_fd, rows_fd;
	uint32_t cap, used;

	pthread_t worker;
	bool started;
	pthread_mutex_t mu; /* everything below */
	pthread_cond_t cv;
	bool stop, busy;
	struct request *q;
	size_t nq, qcap;
	struct built *built;
	size_t nbuilt, built_cap;
	struct retry *retries; /* worker only */
	size_t nretries, retries_cap;
	struct unwind_summary sum;
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* The run of a build-id already in the pool; called with mu held. */
static const struct built *built_find(const struct unwind *u, const char *build_id)
{
	if (!*build_id)
		return NULL;
	for (size_t i = 0; i < u->nbuilt; i++)
		if (!strcmp(u->built[i].build_id, build_id))
			return &u->built[i];
	return NULL;
}

static void fail(struct unwind *u, const char *name, const char *why)
{
	pthread_mutex_lock(&u->mu);
	u->sum.failed++;
	if (!u->sum.first_failure[0])
		snprintf(u->sum.first_failure, sizeof(u->sum.first_failure), "%s: %s", name, why);
	pthread_mutex_unlock(&u->mu);
	ap_info("no unwind table for %s: %s", name, why);
}

/* 0, or -errno (the file table full: --max-cfi-rows has room, cfi_files has not). */
static int publish(struct unwind *u, const struct ap_file_key *key, const struct ap_cfi_file *run)
{
	/* The syscall orders the rows' stores before the run becomes visible. */
	return bpf_map_update_elem(u->files_fd, key, run, BPF_ANY) ? -errno : 0;
}

/*
 * What failed was this request's, not the file's (its process exited, another file is mapped
 * there now, the mapping is not readable right now): the file may be asked for again by the
 * next walk through it, a few times, then it counts as failed. Worker only.
 */
static void ask_again(struct unwind *u, const struct ap_file_key *key, const char *what,
		      const char *why)
{
	struct retry *r = NULL;

	for (size_t i = 0; i < u->nretries && !r; i++)
		if (!memcmp(&u->retries[i].key, key, sizeof(*key)))
			r = &u->retries[i];
	if (!r) {
		grow((void **)&u->retries, &u->retries_cap, u->nretries + 1, sizeof(*u->retries));
		r = &u->retries[u->nretries++];
		*r = (struct retry){ .key = *key };
	}
	if (++r->n >= MAX_RETRIES) {
		fail(u, what, why);
		return;
	}
	ap_info("no unwind table for %s yet: %s", what, why);
	bpf_map_delete_elem(u->wanted_fd, key);
}

/* Copies rows into the pool at index `first`, through a mapping of just their pages. */
static int pool_write(struct unwind *u, uint32_t first, const struct ap_cfi_row *rows, size_t nr)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t from = (size_t)first * sizeof(*rows), to = from + nr * sizeof(*rows);
	size_t lo = from & ~(page - 1), len = ((to + page - 1) & ~(page - 1)) - lo;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, u->rows_fd, (off_t)lo);

	if (m == MAP_FAILED)
		return -errno;
	memcpy(m + (from - lo), rows, nr * sizeof(*rows));
	munmap(m, len);
	return 0;
}

/* Resolves, builds and publishes one request. */
static void build_one(struct unwind *u, const struct request *r)
{
	struct proc_maps maps = {};
	const struct map_entry *e;
	struct cfi_table *t = NULL;
	struct elf_file *ef;
	struct ap_cfi_file run;
	const struct built *b;
	char build_id[64] = "", err[256] = "", *path = NULL, *fpath;
	const char *name;
	uint64_t t0 = now_ns();
	int fd, ret, err_maps;

	if (r->path) {
		fpath = xstrdup(r->path);
		path = xstrdup(r->path);
	} else {
		char what[64];

		snprintf(what, sizeof(what), "a file of pid %d", (int)r->pid);
		err_maps = proc_maps__read(r->pid, &maps);
		if (err_maps) {
			ask_again(u, &r->key, what,
				  pid_exited(r->pid) ? "its process exited first"
						     : "its process's mappings are not readable");
			return;
		}
		e = proc_maps__find(&maps, r->ip);
		/*
		 * Not the file the walk saw if its inode differs (unmapped, another loaded in
		 * its place). The device is not compared: on overlayfs the kernel's is the
		 * layer's, /proc's the overlay's (the inode is the layer's in both).
		 */
		if (!e || !map_entry__has_file(e) || e->ino != r->key.ino) {
			ask_again(u, &r->key, what, "it is no longer mapped where it was seen");
			goto out;
		}
		fpath = map_entry__file_path(e);
		path = proc_mapped_path(r->pid, e);
	}
	name = base_name(fpath);
	ef = path ? elf_file__open(path) : NULL;
	if (!ef) {
		fail(u, name, errno == ENOEXEC ? "not an ELF file" : strerror(errno));
		free(fpath);
		goto out;
	}
	snprintf(build_id, sizeof(build_id), "%s", elf_file__build_id(ef));
	elf_file__free(ef);

	pthread_mutex_lock(&u->mu);
	b = built_find(u, build_id);
	if (b) {
		run = b->run;
		pthread_mutex_unlock(&u->mu);
		ret = publish(u, &r->key, &run);
		if (ret) {
			fail(u, name, strerror(-ret));
		} else {
			pthread_mutex_lock(&u->mu);
			u->sum.files++;
			u->sum.shared++;
			pthread_mutex_unlock(&u->mu);
			ap_info("unwind table for %s: %u rows (shared, same build-id)", name,
				run.nr);
		}
		free(fpath);
		goto out;
	}
	pthread_mutex_unlock(&u->mu);

	fd = open(path, O_RDONLY | O_CLOEXEC);
	ret = fd < 0 ? -errno : 0;
	if (!ret) {
		struct stat st;

		/* The file opened is the one asked for, not one renamed over it since. */
		if (fstat(fd, &st) || st.st_ino != r->key.ino) {
			ret = -ESTALE;
			snprintf(err, sizeof(err), "the file was replaced since it was mapped");
		} else {
			ret = cfi_table__build(fd, &t, err, sizeof(err));
		}
		close(fd);
	}
	if (ret) {
		fail(u, name, *err ? err : strerror(-ret));
		free(fpath);
		goto out;
	}
	pthread_mutex_lock(&u->mu);
	u->sum.build_ms += (double)(now_ns() - t0) / 1e6;
	if (t->nr > u->cap - u->used) {
		u->sum.pool_full++;
		pthread_mutex_unlock(&u->mu);
		ap_info("no unwind table for %s: its %zu rows do not fit in the %u left (raise "
			"--max-cfi-rows)",
			name, t->nr, u->cap - u->used);
		cfi_table__free(t);
		free(fpath);
		goto out;
	}
	run = (struct ap_cfi_file){ .first = u->used, .nr = (uint32_t)t->nr };
	u->used += (uint32_t)t->nr;
	pthread_mutex_unlock(&u->mu);

	/* Only this thread writes the pool, and only past the runs already published. */
	ret = pool_write(u, run.first, t->rows, t->nr);
	if (ret) {
		fail(u, name, strerror(-ret));
		cfi_table__free(t);
		free(fpath);
		goto out;
	}
	ret = publish(u, &r->key, &run);
	if (ret) {
		fail(u, name, strerror(-ret));
		cfi_table__free(t);
		free(fpath);
		goto out;
	}
	pthread_mutex_lock(&u->mu);
	u->sum.files++;
	u->sum.rows += t->nr;
	if (*build_id) {
		grow((void **)&u->built, &u->built_cap, u->nbuilt + 1, sizeof(*u->built));
		snprintf(u->built[u->nbuilt].build_id, sizeof(u->built[0].build_id), "%s", build_id);
		u->built[u->nbuilt++].run = run;
	}
	pthread_mutex_unlock(&u->mu);
	ap_info("unwind table for %s: %zu rows in %.1f ms", name, t->nr,
		(double)(now_ns() - t0) / 1e6);
	cfi_table__free(t);
	free(fpath);
out:
	free(path);
	proc_maps__free(&maps);
}

static void *worker(void *arg)
{
	struct unwind *u = arg;

	pthread_mutex_lock(&u->mu);
	for (;;) {
		struct request r;

		while (!u->nq && !u->stop)
			pthread_cond_wait(&u->cv, &u->mu);
		if (u->stop)
			break;
		r = u->q[0];
		u->busy = true;
		memmove(u->q, u->q + 1, (u->nq - 1) * sizeof(*u->q));
		u->nq--;
		pthread_mutex_unlock(&u->mu);
		build_one(u, &r);
		free(r.path);
		pthread_mutex_lock(&u->mu);
		u->busy = false;
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

struct unwind *unwind__new(struct allocprof_bpf *skel)
{
	struct unwind *u = xcalloc(1, sizeof(*u));
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	pthread_condattr_t ca;
	void *probe;
	int err;

	u->cap = bpf_map__max_entries(skel->maps.cfi_rows);
	u->rows_fd = bpf_map__fd(skel->maps.cfi_rows);
	u->files_fd = bpf_map__fd(skel->maps.cfi_files);
	u->wanted_fd = bpf_map__fd(skel->maps.cfi_wanted);
	u->proc_vmas_fd = bpf_map__fd(skel->maps.proc_vmas);
	/* The pool must be mappable: say so now, not at the first table. */
	probe = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, u->rows_fd, 0);
	if (probe == MAP_FAILED) {
		ap_err("cannot map the unwind-table pool: %s", strerror(errno));
		free(u);
		return NULL;
	}
	munmap(probe, page);
	pthread_mutex_init(&u->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* settle's limit: not the wall clock */
	pthread_cond_init(&u->cv, &ca);
	pthread_condattr_destroy(&ca);
	err = pthread_create(&u->worker, NULL, worker, u);
	if (err) {
		ap_err("cannot start the unwind-table worker: %s", strerror(err));
		free(u);
		return NULL;
	}
	u->started = true;
	return u;
}

void unwind__free(struct unwind *u)
{
	if (!u)
		return;
	if (u->started) {
		pthread_mutex_lock(&u->mu);
		u->stop = true;
		pthread_cond_signal(&u->cv);
		pthread_mutex_unlock(&u->mu);
		pthread_join(u->worker, NULL);
	}
	for (size_t i = 0; i < u->nq; i++)
		free(u->q[i].path);
	free(u->q);
	free(u->built);
	free(u->retries);
	free(u);
}

static void enqueue(struct unwind *u, pid_t pid, uint64_t ip, const struct ap_file_key *key,
		    const char *path)
{
	pthread_mutex_lock(&u->mu);
	grow((void **)&u->q, &u->qcap, u->nq + 1, sizeof(*u->q));
	u->q[u->nq++] = (struct request){
		.key = *key, .pid = pid, .ip = ip, .path = path ? xstrdup(path) : NULL
	};
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
}

void unwind__want(struct unwind *u, pid_t pid, uint64_t ip, const struct ap_file_key *file)
{
	if (u)
		enqueue(u, pid, ip, file, NULL);
}

void unwind__prime(struct unwind *u, pid_t pid)
{
	struct proc_maps maps = {};
	struct ap_proc_vmas pv = {};
	struct ap_proc_key pk = { .pid = (__u32)pid };
	__u8 one = 1;

	if (!u || proc_image(pid, &pk.image) || proc_maps__read(pid, &maps))
		return;
	for (size_t i = 0; i < maps.n; i++) {
		const struct map_entry *e = &maps.e[i];
		struct ap_file_key key = { .ino = e->ino, .dev = (__u32)e->dev };

		if (!e->exec || !map_entry__has_file(e) || e->path[0] == '[')
			continue;
		/* The walks find these without the address space's lock from the first one. */
		if (pv.next < AP_PROC_VMAS) {
			struct ap_vma_seen *v = &pv.e[pv.next++];

			*v = (struct ap_vma_seen){ .start = e->start, .end = e->end,
						   .off = e->pgoff, .key = key, .exec = 1,
						   .file = 1 };
			v->sum = ap_vma_sum(v, &pk);
		}
		/*
		 * The walk asks for what is not here; a file asked for already is on its way
		 * (a full table of files asked for is no reason not to build it).
		 */
		if (bpf_map_update_elem(u->wanted_fd, &key, &one, BPF_NOEXIST) && errno == EEXIST)
			continue;
		enqueue(u, pid, e->start, &key, NULL);
	}
	bpf_map_update_elem(u->proc_vmas_fd, &pk, &pv, BPF_ANY);
	proc_maps__free(&maps);
}

void unwind__prime_file(struct unwind *u, const char *path)
{
	struct ap_file_key key = {};
	struct stat st;
	__u8 one = 1;

	if (!u || !path || stat(path, &st))
		return;
	key.ino = st.st_ino;
	key.dev = (__u32)DEV_ID(major(st.st_dev), minor(st.st_dev));
	if (bpf_map_update_elem(u->wanted_fd, &key, &one, BPF_NOEXIST) && errno == EEXIST)
		return;
	enqueue(u, 0, 0, &key, path);
}

bool unwind__settle(struct unwind *u, unsigned int max_ms)
{
	struct timespec until;
	bool done;

	if (!u)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += max_ms / 1000;
	until.tv_nsec += (long)(max_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&u->mu);
	while ((u->nq || u->busy) && !u->stop)
		if (pthread_cond_timedwait(&u->cv, &u->mu, &until) == ETIMEDOUT)
			break;
	done = !u->nq && !u->busy;
	pthread_mutex_unlock(&u->mu);
	return done;
}

void unwind__summary(struct unwind *u, struct unwind_summary *out)
{
	pthread_mutex_lock(&u->mu);
	*out = u->sum;
	out->pending = u->nq;
	out->pool = u->cap;
	out->rows = u->used;
	pthread_mutex_unlock(&u->mu);
}
