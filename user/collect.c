/*
 * Turning the kernel's counters into a profile: drains the counts, stacks, mappings (vmas),
 * procs and stats maps in batches (at the end with the counters frozen; with --interval also
 * between files, while the probes run, keeping what it read to subtract from the next read),
 * resolves each frame to a mapping and a symbol, and adds one sample per (process, stack); with
 * --interval it also releases what exited processes held. Knows the BPF maps' layout, not how
 * the capture was run.
 */
#include "collect.h"
#include "addrspace.h"
#include "hashmap.h"
#include "procmaps.h"
#include "profile.h"
#include "symbolize.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 4096

int collect_read_stats(int stats_fd, struct ap_stats *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ap_stats *percpu;
	__u32 zero = 0;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	percpu = xcalloc((size_t)ncpu, sizeof(*percpu));
	if (bpf_map_lookup_elem(stats_fd, &zero, percpu)) {
		int err = -errno;

		free(percpu);
		return err;
	}
	for (int c = 0; c < ncpu; c++)
		for (int i = 0; i < AP_STAT_NR; i++)
			out->v[i] += percpu[c].v[i];
	free(percpu);
	return 0;
}

/* Room for `need` keys and values. */
static void reserve(char **keys, char **vals, size_t *cap, size_t need, size_t ksize, size_t vsize)
{
	size_t kcap = *cap, vcap = *cap;

	grow((void **)keys, &kcap, need, ksize);
	grow((void **)vals, &vcap, need, vsize);
	*cap = kcap;
}

int map_read_all(int fd, size_t ksize, size_t vsize, void **keys_out, void **vals_out, size_t *n)
{
	size_t cap = 0, got = 0;
	char *keys = NULL, *vals = NULL;
	__u32 in = 0, out = 0;
	bool first = true;
	int err = 0;

	reserve(&keys, &vals, &cap, BATCH, ksize, vsize);
	for (;;) {
		__u32 count;

		if (cap - got < BATCH)
			reserve(&keys, &vals, &cap, got + BATCH, ksize, vsize);
		count = (__u32)(cap - got);
		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys + got * ksize,
					   vals + got * vsize, &count, NULL);
		if (err && errno == ENOSPC) {
			/* One hash bucket holds more entries than fit: make room and retry. */
			reserve(&keys, &vals, &cap, cap * 2, ksize, vsize);
			continue;
		}
		if (err && errno != ENOENT) {
			err = -errno;
			free(keys);
			free(vals);
			return err;
		}
		got += count;
		if (err) /* ENOENT: that was the last batch */
			break;
		in = out;
		first = false;
	}
	*keys_out = keys;
	*vals_out = vals;
	*n = got;
	return 0;
}

struct counter {
	struct ap_count_key key;
	struct ap_count val;
	uint64_t inuse_count, inuse_bytes; /* exact */
	uint64_t inuse_w_objects, inuse_w_bytes;
};

static int read_counts(int fd, struct counter **out, size_t *n)
{
	struct ap_count_key *keys;
	struct ap_count *vals;
	int err;

	err = map_read_all(fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, n);
	if (err)
		return err;
	*out = xcalloc(*n, sizeof(**out));
	for (size_t i = 0; i < *n; i++)
		(*out)[i] = (struct counter){ keys[i], vals[i] };
	free(keys);
	free(vals);
	return 0;
}

/*
 * The mappings the kernel recorded for new stacks, for the processes gone since. With
 * `keys_out`, the keys read (malloc'd, `*n_out` of them).
 */
static int add_kernel_vmas(int fd, struct addrspaces *as, struct ap_vma_key **keys_out,
			   size_t *n_out)
{
	struct ap_vma_key *keys;
	struct ap_vma *vals;
	size_t n;
	int err;

	err = map_read_all(fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		vals[i].name[sizeof(vals[i].name) - 1] = 0;
		addrspaces__add_vma(as, (pid_t)keys[i].proc.pid, keys[i].proc.image, keys[i].start,
				    vals[i].end, vals[i].offset, vals[i].dev, vals[i].ino,
				    vals[i].name);
	}
	if (keys_out) {
		*keys_out = keys;
		*n_out = n;
	} else {
		free(keys);
	}
	free(vals);
	return 0;
}

/* Every stack, by its hash. */
static int read_stacks(int fd, struct hashmap **out, __u64 **keys_out, struct ap_stack **vals_out)
{
	size_t n;
	int err;

	err = map_read_all(fd, sizeof(**keys_out), sizeof(**vals_out), (void **)keys_out,
			   (void **)vals_out, &n);
	if (err)
		return err;
	*out = hashmap__new();
	for (size_t i = 0; i < n; i++)
		hashmap__put(*out, &(*keys_out)[i], sizeof(__u64), i);
	return 0;
}

/*
 * What each counter's stack still holds: the live blocks, summed per (process, stack). Blocks
 * of an exited process are what it never freed.
 */
static int add_live(int fd, struct counter *c, size_t n, struct collect_stats *st,
		    struct ap_live_key **keys_out, size_t *n_out)
{
	struct hashmap *idx = hashmap__new();
	struct ap_live_key *keys;
	struct ap_live *vals;
	size_t nlive;
	int err;

	err = map_read_all(fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals,
			   &nlive);
	if (err) {
		hashmap__free(idx);
		return err;
	}
	for (size_t i = 0; i < n; i++)
		hashmap__put(idx, &c[i].key, sizeof(c[i].key), i);
	for (size_t i = 0; i < nlive; i++) {
		struct ap_count_key k = { .proc = keys[i].proc, .stack = vals[i].stack };
		uint64_t ci;

		st->live_blocks++;
		if (!hashmap__get(idx, &k, sizeof(k), &ci)) {
			st->live_orphans++;
			continue;
		}
		c[ci].inuse_count++;
		c[ci].inuse_bytes += vals[i].size;
		c[ci].inuse_w_objects += vals[i].w_objects;
		c[ci].inuse_w_bytes += vals[i].w_bytes;
	}
	if (keys_out) {
		*keys_out = keys;
		*n_out = nlive;
	} else {
		free(keys);
	}
	free(vals);
	hashmap__free(idx);
	return 0;
}

static int cmp_counter(const void *a, const void *b)
{
	const struct counter *x = a, *y = b;

	if (x->key.proc.pid != y->key.proc.pid)
		return x->key.proc.pid < y->key.proc.pid ? -1 : 1;
	if (x->key.proc.image != y->key.proc.image)
		return x->key.proc.image < y->key.proc.image ? -1 : 1;
	return x->key.stack < y->key.stack ? -1 : x->key.stack > y->key.stack;
}

static void proc_comm(int procs_fd, const struct ap_proc_key *pk, char comm[16])
{
	struct ap_proc pr;
	uint32_t image;

	memset(comm, 0, 16);
	if (!bpf_map_lookup_elem(procs_fd, pk, &pr)) {
		memcpy(comm, pr.comm, 15);
		return;
	}
	/* Not in the table (it was full): /proc knows, if the process still runs that program. */
	if (!proc_image((pid_t)pk->pid, &image) && image == pk->image)
		proc_read_comm((pid_t)pk->pid, comm);
}

static int64_t clamp_value(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/*
 * The Location of one frame, or 0 where the stack should end: past the first frame, an address
 * in no executable mapping of a process whose mappings are known is not a return address but
 * what a frame-pointer walk found going through code built without frame pointers.
 */
static uint64_t frame_location(const struct ap_proc_key *pk, uint64_t ret_addr, bool first,
			       struct addrspaces *as, struct symbolizer *sym, struct profile *p,
			       struct collect_stats *st)
{
	/* A return address points after the call; the call instruction is the frame's place. */
	uint64_t addr = ret_addr ? ret_addr - 1 : 0;
	const struct space_map *m = addrspaces__find(as, (pid_t)pk->pid, pk->image, addr);
	struct sym_result res = {};
	const char *build_id = "";
	uint64_t mapping_id;
	bool symbolized = false;

	if (!m) {
		if (!first && addrspaces__known(as, (pid_t)pk->pid, pk->image))
			return 0;
		st->frames_unmapped++;
		return profile__location(p, 0, addr, NULL);
	}
	if (m->file && m->file->fd >= 0) {
		struct sym_file f = { m->file->fd, m->file->dev, m->file->ino, m->file->path };

		if (!symbolizer__lookup(sym, &f, addr - m->start + m->pgoff, &res))
			symbolized = true;
		build_id = symbolizer__build_id(sym, &f);
	}
	if (!res.n)
		st->frames_unsymbolized++;
	mapping_id = profile__mapping(p, m->id, m->start, m->end, m->pgoff, m->name, build_id,
				      symbolized);
	return profile__location(p, mapping_id, addr, &res);
}

const struct value_type *collect_sample_types(bool inuse, size_t *n)
{
	/* Indexed by enum collect_value, so a value cannot be filled under another's name. */
	static const struct value_type types[VALUE_NR] = {
		[VALUE_ALLOC_OBJECTS] = { "alloc_objects", "count" },
		[VALUE_ALLOC_SPACE] = { "alloc_space", "bytes" },
		[VALUE_INUSE_OBJECTS] = { "inuse_objects", "count" },
		[VALUE_INUSE_SPACE] = { "inuse_space", "bytes" },
	};

	*n = inuse ? VALUE_NR : VALUE_INUSE_OBJECTS;
	return types;
}

/* ---- periodic capture: the baseline ------------------------------------------------- */

struct collect_base {
	/* What the last file written was computed from: each counter's values, the statistics. */
	struct hashmap *prev_idx; /* ap_count_key -> index into prev, prev_keys */
	struct ap_count_key *prev_keys;
	struct ap_count *prev;
	size_t nprev;
	struct ap_stats prev_stats;
	/*
	 * Stacks deleted from the kernel at the last advance, kept one interval more: a process
	 * may have met one just before it was deleted and made its counter just after (the
	 * program adds the stack, then the counter), and would otherwise have none.
	 */
	struct hashmap *grace_idx; /* stack hash -> index into grace */
	struct ap_stack *grace;
	size_t ngrace;
	/* Read by the last collect_interval(), for the advance. */
	bool pending;
	struct counter *cur; /* every counter read, its live blocks summed */
	size_t ncur;
	struct ap_stats cur_stats;
	struct hashmap *gone; /* ap_proc_key -> 1: seen exited before the counters were read */
	struct ap_proc_key *gone_keys;
	size_t ngone, gone_cap;
	__u64 *stack_keys; /* every stack read */
	struct ap_stack *stacks;
	size_t nstacks;
	struct ap_live_key *live_keys; /* every live block read */
	size_t nlive;
	struct ap_vma_key *vma_keys; /* every recorded mapping read */
	size_t nvmas;
	size_t nprocs; /* processes the kernel named */
	/* --ops: the calls each (process, operation) had at the last file; those read since */
	struct hashmap *prev_ops; /* ap_op_key -> calls */
	struct ap_op_key *prev_op_keys; /* its keys, whose processes are checked for exits */
	size_t nprev_ops;
	struct ap_op_key *op_keys;
	__u64 *op_calls;
	size_t nops;
};

static void drop_pending(struct collect_base *b)
{
	free(b->cur);
	free(b->gone_keys);
	free(b->stack_keys);
	free(b->stacks);
	free(b->live_keys);
	free(b->vma_keys);
	free(b->op_keys);
	free(b->op_calls);
	b->op_keys = NULL;
	b->op_calls = NULL;
	b->nops = 0;
	hashmap__free(b->gone);
	b->cur = NULL;
	b->gone_keys = NULL;
	b->stack_keys = NULL;
	b->stacks = NULL;
	b->live_keys = NULL;
	b->vma_keys = NULL;
	b->gone = NULL;
	b->ncur = b->ngone = b->gone_cap = b->nstacks = b->nlive = b->nvmas = b->nprocs = 0;
	b->pending = false;
}

struct collect_base *collect_base__new(void)
{
	struct collect_base *b = xcalloc(1, sizeof(*b));

	b->prev_idx = hashmap__new();
	b->grace_idx = hashmap__new();
	b->prev_ops = hashmap__new();
	return b;
}

void collect_base__free(struct collect_base *b)
{
	if (!b)
		return;
	drop_pending(b);
	hashmap__free(b->prev_idx);
	hashmap__free(b->grace_idx);
	hashmap__free(b->prev_ops);
	free(b->prev_op_keys);
	free(b->prev_keys);
	free(b->prev);
	free(b->grace);
	free(b);
}

static bool is_gone(const struct collect_base *b, const struct ap_proc_key *pk)
{
	uint64_t one;

	return b->gone && hashmap__get(b->gone, pk, sizeof(*pk), &one);
}

/*
 * A thread group whose leader exited (pthread_exit in main) while other threads run: the
 * leader's /proc/PID/exe is gone with its address space, another thread's is not.
 */
static int threads_image(pid_t pid, uint32_t *image)
{
	char path[64], leader[16];
	struct dirent *de;
	int err = -ENOENT;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	snprintf(leader, sizeof(leader), "%d", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (err && (de = readdir(d))) {
		char exe[320];
		struct stat st;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, leader))
			continue;
		snprintf(exe, sizeof(exe), "/proc/%d/task/%s/exe", (int)pid, de->d_name);
		if (!stat(exe, &st)) {
			*image = (uint32_t)st.st_ino;
			err = 0;
		}
	}
	closedir(d);
	return err;
}

/*
 * Exited: its pid is gone (a zombie has no executable any more), or runs another program now.
 * A process that cannot be looked at (no permission) is taken to be running: releasing the
 * counters of a process that still allocates would lose what it adds to them meanwhile.
 */
static bool proc_gone(const struct ap_proc_key *pk)
{
	uint32_t image;
	int err = proc_image((pid_t)pk->pid, &image);

	if (err == -ENOENT)
		err = threads_image((pid_t)pk->pid, &image);
	if (err)
		return err == -ENOENT || err == -ESRCH;
	return image != pk->image;
}

static void check_gone(struct collect_base *b, struct hashmap *checked,
		       const struct ap_proc_key *pk)
{
	uint64_t one;

	if (hashmap__get(checked, pk, sizeof(*pk), &one))
		return;
	hashmap__put(checked, pk, sizeof(*pk), 1);
	if (!proc_gone(pk))
		return;
	hashmap__put(b->gone, pk, sizeof(*pk), 1);
	grow((void **)&b->gone_keys, &b->gone_cap, b->ngone + 1, sizeof(*b->gone_keys));
	b->gone_keys[b->ngone++] = *pk;
}

struct check_ctx {
	struct collect_base *b;
	struct hashmap *checked;
};

static void check_space(void *ctx, pid_t pid, uint32_t image)
{
	struct check_ctx *cc = ctx;
	struct ap_proc_key pk = { .pid = (__u32)pid, .image = image };

	check_gone(cc->b, cc->checked, &pk);
}

/*
 * Which processes have exited, looked at before the counters are read: what those hold then
 * is final, all of it in this interval's file. The processes are those the kernel named
 * (procs), those of the last file's counters (procs may have been full), and those with a
 * mapping snapshot (a process that exec'd a program that never allocated through a probe has
 * a snapshot and nothing else).
 */
static int find_gone(struct collect_base *b, int procs_fd, const struct addrspaces *as)
{
	struct hashmap *checked = hashmap__new();
	struct ap_proc_key *keys;
	struct ap_proc *vals;
	size_t n;
	int err;

	b->gone = hashmap__new();
	err = map_read_all(procs_fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals,
			   &n);
	if (err) {
		hashmap__free(checked);
		return err;
	}
	for (size_t i = 0; i < n; i++)
		check_gone(b, checked, &keys[i]);
	b->nprocs = n;
	for (size_t i = 0; i < b->nprev; i++)
		check_gone(b, checked, &b->prev_keys[i].proc);
	/* A process may call an operation and never have a sampled allocation. */
	for (size_t i = 0; i < b->nprev_ops; i++)
		check_gone(b, checked, &b->prev_op_keys[i].proc);
	addrspaces__each(as, check_space, &(struct check_ctx){ b, checked });
	free(keys);
	free(vals);
	hashmap__free(checked);
	return 0;
}

/* ---- collecting ---------------------------------------------------------------------- */

/*
 * --ops: every process's calls of each operation (since the last file, with `b`), into st.
 * Read with the counters, so a file's operations and allocations cover one stretch of time.
 */
static int collect_ops(const struct collect_maps *cm, struct collect_stats *st,
		       struct collect_base *b)
{
	struct ap_op_key *keys = NULL;
	__u64 *calls = NULL;
	size_t n = 0;
	int err;

	if (cm->ops_fd < 0)
		return 0;
	err = map_read_all(cm->ops_fd, sizeof(*keys), sizeof(*calls), (void **)&keys,
			   (void **)&calls, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		uint64_t before = 0, v;

		if (keys[i].op >= AP_MAX_OPS)
			continue;
		if (b)
			hashmap__get(b->prev_ops, &keys[i], sizeof(keys[i]), &before);
		v = calls[i] - before;
		if (!v)
			continue;
		st->op_calls[keys[i].op] += v;
		if (st->nop_procs < COLLECT_OP_PROCS)
			st->op_procs[st->nop_procs] =
				(struct collect_op){ keys[i].proc, keys[i].op, v };
		st->nop_procs++;
	}
	if (b) {
		b->op_keys = keys;
		b->op_calls = calls;
		b->nops = n;
	} else {
		free(keys);
		free(calls);
	}
	return 0;
}

/* A counter's cumulative alloc_objects and alloc_space, as the file shows them. */
static void alloc_values(const struct ap_count *v, bool exact, int64_t out[2])
{
	if (exact) {
		out[0] = clamp_value(v->count);
		out[1] = clamp_value(v->bytes);
	} else {
		out[0] = clamp_value((v->w_objects + (1u << (AP_Q - 1))) >> AP_Q);
		out[1] = clamp_value(v->w_bytes);
	}
}

/* The stack a counter names: the kernel's, or one deleted at the last advance (put back). */
static const struct ap_stack *find_stack(const struct collect_maps *cm, struct hashmap *stack_idx,
					 const struct ap_stack *stacks, struct collect_base *b,
					 __u64 hash)
{
	uint64_t si;

	if (hashmap__get(stack_idx, &hash, sizeof(hash), &si))
		return &stacks[si];
	if (!b || !hashmap__get(b->grace_idx, &hash, sizeof(hash), &si))
		return NULL;
	/* In use again: back into the kernel's map, for the files after this one. */
	bpf_map_update_elem(cm->stacks_fd, &hash, &b->grace[si], BPF_NOEXIST);
	return &b->grace[si];
}

static int collect(const struct collect_maps *cm, bool exact, struct addrspaces *as,
		   struct symbolizer *sym, struct profile *p, struct collect_stats *st,
		   struct collect_base *b)
{
	struct counter *c = NULL;
	struct hashmap *stack_idx = NULL;
	struct ap_stack *stacks = NULL;
	__u64 *stack_keys = NULL;
	uint64_t locs[AP_MAX_FRAMES];
	struct ap_proc_key cur = {};
	char comm[16] = "";
	const char *exe, *container;
	bool new_proc = true;
	size_t n = 0;
	int err;

	if (b) {
		drop_pending(b);
		err = find_gone(b, cm->procs_fd, as);
		if (err)
			return err;
	}
	/*
	 * Counters first: the program adds a stack, and the mappings of its frames, around the
	 * counter that names it, so what is read after a counter has them (while the probes run,
	 * between files; at the end the counters are frozen anyway).
	 */
	err = read_counts(cm->counts_fd, &c, &n);
	/* Just after the counters, so a file's statistics and its samples tell one story. */
	if (!err && b)
		err = collect_read_stats(cm->stats_fd, &b->cur_stats);
	if (!err)
		err = collect_ops(cm, st, b);
	if (!err)
		err = read_stacks(cm->stacks_fd, &stack_idx, &stack_keys, &stacks);
	if (!err)
		err = add_kernel_vmas(cm->vmas_fd, as, b ? &b->vma_keys : NULL,
				      b ? &b->nvmas : NULL);
	if (!err && cm->live_fd >= 0)
		err = add_live(cm->live_fd, c, n, st, b ? &b->live_keys : NULL,
			       b ? &b->nlive : NULL);
	if (err)
		goto out;
	/* By process, so each one's name is looked up once. */
	qsort(c, n, sizeof(*c), cmp_counter);
	for (size_t i = 0; i < n; i++) {
		const struct counter *e = &c[i];
		const struct ap_stack *stack;
		int64_t values[VALUE_NR], before[2] = { 0, 0 };
		size_t nlocs = 0;
		uint64_t pi = 0;
		bool have_before;

		if (i == 0 || memcmp(&e->key.proc, &cur, sizeof(cur))) {
			new_proc = i == 0 || e->key.proc.pid != cur.pid;
			cur = e->key.proc;
			proc_comm(cm->procs_fd, &cur, comm);
		}
		alloc_values(&e->val, exact, values);
		have_before = b && hashmap__get(b->prev_idx, &e->key, sizeof(e->key), &pi);
		if (have_before)
			alloc_values(&b->prev[pi], exact, before);
		/* What this file adds; a failed allocation taken back can make it negative. */
		values[VALUE_ALLOC_OBJECTS] -= before[0];
		values[VALUE_ALLOC_SPACE] -= before[1];
		if (exact) {
			values[VALUE_INUSE_OBJECTS] = clamp_value(e->inuse_count);
			values[VALUE_INUSE_SPACE] = clamp_value(e->inuse_bytes);
		} else {
			values[VALUE_INUSE_OBJECTS] =
				clamp_value((e->inuse_w_objects + (1u << (AP_Q - 1))) >> AP_Q);
			values[VALUE_INUSE_SPACE] = clamp_value(e->inuse_w_bytes);
		}
		/* Nothing allocated in the interval, nothing live at its end: not in this file. */
		if (b && !values[VALUE_ALLOC_OBJECTS] && !values[VALUE_ALLOC_SPACE] &&
		    (cm->live_fd < 0 ||
		     (!values[VALUE_INUSE_OBJECTS] && !values[VALUE_INUSE_SPACE])))
			continue;
		if (new_proc) {
			st->procs++;
			new_proc = false;
		}
		stack = find_stack(cm, stack_idx, stacks, b, e->key.stack);
		if (!stack)
			st->stacks_missing++;
		for (__u32 f = 0; stack && f < stack->nr && f < AP_MAX_FRAMES; f++) {
			/*
			 * Kernels that find the caller themselves at a probe on `push %rbp` put
			 * it in frame 1, where we put it in frame 0 too: keep one.
			 */
			if (f == 1 && stack->ip[1] == stack->ip[0])
				continue;
			locs[nlocs] = frame_location(&cur, stack->ip[f], f == 0, as, sym, p, st);
			if (!locs[nlocs]) {
				st->frames_dropped += stack->nr - f;
				break;
			}
			nlocs++;
		}
		st->frames += nlocs;
		st->objects += (double)values[VALUE_ALLOC_OBJECTS];
		st->bytes += (double)values[VALUE_ALLOC_SPACE];
		if (stack) {
			__u32 end = stack->end < AP_END_NR ? stack->end : AP_END_FP;

			st->end_bytes[end] += (double)values[VALUE_ALLOC_SPACE];
			if (end != AP_END_ROOT && nlocs <= 2)
				st->shallow_bytes += (double)values[VALUE_ALLOC_SPACE];
		}
		if (cm->live_fd >= 0) {
			st->inuse_objects += (double)values[VALUE_INUSE_OBJECTS];
			st->inuse_bytes += (double)values[VALUE_INUSE_SPACE];
		}
		profile__add_sample(p, locs, nlocs, values, cur.pid, comm);
		addrspaces__labels(as, (pid_t)cur.pid, cur.image, &exe, &container);
		profile__add_label(p, "exe", exe);
		profile__add_label(p, "container", container);
		/* How many sampled allocations the estimates stand on (readers' variance). */
		if (!exact)
			profile__add_num_label(p, PROFILE_LABEL_SAMPLED,
					       clamp_value(e->val.count - (b && have_before
									   ? b->prev[pi].count
									   : 0)),
					       "count");
		st->samples++;
	}
	if (b) {
		/* Kept for the advance: the counters read become the next file's baseline. */
		b->cur = c;
		b->ncur = n;
		b->stack_keys = stack_keys;
		b->stacks = stacks;
		b->nstacks = hashmap__size(stack_idx);
		b->pending = true;
		c = NULL;
		stacks = NULL;
		stack_keys = NULL;
	}
out:
	free(c);
	free(stacks);
	free(stack_keys);
	hashmap__free(stack_idx);
	return err;
}

int collect_samples(const struct collect_maps *cm, bool exact, struct addrspaces *as,
		    struct symbolizer *sym, struct profile *p, struct collect_stats *st)
{
	return collect(cm, exact, as, sym, p, st, NULL);
}

int collect_interval(const struct collect_maps *cm, bool exact, struct addrspaces *as,
		     struct symbolizer *sym, struct profile *p, struct collect_stats *st,
		     struct collect_base *b)
{
	int err;

	err = collect(cm, exact, as, sym, p, st, b);
	if (err)
		return err;
	for (int i = 0; i < AP_STAT_NR; i++)
		st->bpf.v[i] = b->cur_stats.v[i] - b->prev_stats.v[i];
	return 0;
}

/* Deletes each key; one already gone is no error. The number deleted. */
static size_t delete_keys(int fd, const void *keys, size_t ksize, size_t n,
			  bool (*want)(const struct collect_base *b, const void *key),
			  const struct collect_base *b)
{
	size_t deleted = 0;

	for (size_t i = 0; i < n; i++) {
		const void *k = (const char *)keys + i * ksize;

		if (want(b, k) && !bpf_map_delete_elem(fd, k))
			deleted++;
	}
	return deleted;
}

/* Every key type starts with its ap_proc_key. */
static bool proc_is_gone(const struct collect_base *b, const void *key)
{
	return is_gone(b, key);
}

static bool space_gone(void *ctx, pid_t pid, uint32_t image)
{
	struct ap_proc_key pk = { .pid = (__u32)pid, .image = image };

	return is_gone(ctx, &pk);
}

void collect_base__advance(struct collect_base *b, const struct collect_maps *cm,
			   struct addrspaces *as, struct collect_release *rel)
{
	struct hashmap *used = hashmap__new(), *grace_idx = hashmap__new();
	struct ap_stack *grace = NULL;
	size_t kept = 0, ngrace = 0, gcap = 0;

	memset(rel, 0, sizeof(*rel));
	if (!b->pending) {
		hashmap__free(used);
		hashmap__free(grace_idx);
		return;
	}
	/* The new baseline: every counter read but those of processes gone. */
	hashmap__free(b->prev_idx);
	b->prev_idx = hashmap__new();
	free(b->prev_keys);
	free(b->prev);
	b->prev_keys = xcalloc(b->ncur ? b->ncur : 1, sizeof(*b->prev_keys));
	b->prev = xcalloc(b->ncur ? b->ncur : 1, sizeof(*b->prev));
	for (size_t i = 0; i < b->ncur; i++) {
		const struct counter *e = &b->cur[i];
		uint64_t one;

		if (is_gone(b, &e->key.proc)) {
			if (!bpf_map_delete_elem(cm->counts_fd, &e->key))
				rel->counters++;
			continue;
		}
		b->prev_keys[kept] = e->key;
		b->prev[kept] = e->val;
		hashmap__put(b->prev_idx, &e->key, sizeof(e->key), kept++);
		if (!hashmap__get(used, &e->key.stack, sizeof(e->key.stack), &one))
			hashmap__put(used, &e->key.stack, sizeof(e->key.stack), 1);
	}
	b->nprev = kept;
	b->prev_stats = b->cur_stats;
	/* Stacks no counter left uses (a stack is shared by every process that shows it). */
	for (size_t i = 0; i < b->nstacks; i++) {
		uint64_t one;

		if (hashmap__get(used, &b->stack_keys[i], sizeof(__u64), &one))
			continue;
		if (bpf_map_delete_elem(cm->stacks_fd, &b->stack_keys[i]))
			continue;
		rel->stacks++;
		grow((void **)&grace, &gcap, ngrace + 1, sizeof(*grace));
		grace[ngrace] = b->stacks[i];
		hashmap__put(grace_idx, &b->stack_keys[i], sizeof(__u64), ngrace++);
	}
	hashmap__free(b->grace_idx);
	free(b->grace);
	b->grace_idx = grace_idx;
	b->grace = grace;
	b->ngrace = ngrace;
	if (cm->live_fd >= 0)
		rel->live = delete_keys(cm->live_fd, b->live_keys, sizeof(*b->live_keys), b->nlive,
					proc_is_gone, b);
	rel->vmas = delete_keys(cm->vmas_fd, b->vma_keys, sizeof(*b->vma_keys), b->nvmas,
				proc_is_gone, b);
	/* Operations: the calls read are the next baseline, those of processes gone deleted. */
	hashmap__free(b->prev_ops);
	b->prev_ops = hashmap__new();
	free(b->prev_op_keys);
	b->prev_op_keys = xcalloc(b->nops ? b->nops : 1, sizeof(*b->prev_op_keys));
	b->nprev_ops = 0;
	for (size_t i = 0; i < b->nops; i++)
		if (!is_gone(b, &b->op_keys[i].proc)) {
			hashmap__put(b->prev_ops, &b->op_keys[i], sizeof(b->op_keys[i]),
				     b->op_calls[i]);
			b->prev_op_keys[b->nprev_ops++] = b->op_keys[i];
		}
	if (cm->ops_fd >= 0)
		delete_keys(cm->ops_fd, b->op_keys, sizeof(*b->op_keys), b->nops, proc_is_gone, b);
	for (size_t i = 0; i < b->ngone; i++)
		bpf_map_delete_elem(cm->procs_fd, &b->gone_keys[i]);
	rel->procs = b->ngone;
	rel->spaces = addrspaces__forget(as, space_gone, b, &rel->files);
	rel->held_counters = b->nprev;
	rel->held_stacks = b->nstacks - rel->stacks;
	rel->held_live = b->nlive - rel->live;
	rel->held_vmas = b->nvmas - rel->vmas;
	rel->held_procs = b->nprocs > b->ngone ? b->nprocs - b->ngone : 0;
	addrspaces__counts(as, &rel->held_spaces, &rel->held_files);
	hashmap__free(used);
	drop_pending(b);
}
