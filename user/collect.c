/*
 * Turning the kernel's counters into a profile: drains the counts, stacks, mappings (vmas),
 * procs and stats maps in batches (at the end with the counters frozen; with --interval also
 * between files, while the probes run, keeping what it read to subtract from the next read),
 * resolves each frame to a mapping and a symbol, and adds one sample per (process, stack); with
 * --interval, collect_base.c keeps the baseline and releases what exited processes held.
 * Knows the BPF maps' layout, not how the capture was run.
 */
#include "collect.h"
#include "collect_priv.h"
#include "addrspace.h"
#include "hashmap.h"
#include "procmaps.h"
#include "profile.h"
#include "symbolize.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
		collect_base__drop_pending(b);
		err = collect_base__find_gone(b, cm->procs_fd, as);
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
