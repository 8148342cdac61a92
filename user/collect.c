/*
 * Turning the kernel's counters into a profile: drains the counts, stacks, procs and stats
 * maps in batches after the probes are detached, resolves each frame to a mapping and a
 * symbol, and adds one sample per (process, stack). Knows the BPF maps' layout, not how the
 * capture was run.
 */
#include "collect.h"
#include "addrspace.h"
#include "hashmap.h"
#include "profile.h"
#include "symbolize.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
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

struct counter {
	struct ap_count_key key;
	struct ap_count val;
};

/* Every entry of the counts map, with batched lookups. */
static int read_counts(int fd, struct counter **out, size_t *n)
{
	size_t cap = BATCH, got = 0;
	struct ap_count_key *keys = xcalloc(cap, sizeof(*keys));
	struct ap_count *vals = xcalloc(cap, sizeof(*vals));
	__u32 in = 0, outb = 0;
	bool first = true;
	size_t ocap = 0;
	int err = 0;

	*out = NULL;
	for (;;) {
		__u32 count = (__u32)cap;

		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &outb, keys, vals, &count, NULL);
		if (err && errno == ENOSPC) {
			/* One hash bucket holds more entries than fit: a bigger buffer. */
			cap *= 2;
			keys = xrealloc(keys, cap, sizeof(*keys));
			vals = xrealloc(vals, cap, sizeof(*vals));
			continue;
		}
		if (err && errno != ENOENT) {
			err = -errno;
			break;
		}
		grow((void **)out, &ocap, got + count, sizeof(**out));
		for (__u32 i = 0; i < count; i++)
			(*out)[got + i] = (struct counter){ keys[i], vals[i] };
		got += count;
		if (err) { /* ENOENT: that was the last batch */
			err = 0;
			break;
		}
		in = outb;
		first = false;
	}
	free(keys);
	free(vals);
	*n = got;
	return err;
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
	char path[64];
	uint32_t image;
	FILE *f;

	memset(comm, 0, 16);
	if (!bpf_map_lookup_elem(procs_fd, pk, &pr)) {
		memcpy(comm, pr.comm, 15);
		return;
	}
	/* Not in the table (it was full): /proc knows, if the process still runs that program. */
	if (proc_image((pid_t)pk->pid, &image) || image != pk->image)
		return;
	snprintf(path, sizeof(path), "/proc/%u/comm", pk->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, 16, f))
		comm[strcspn(comm, "\n")] = 0;
	fclose(f);
}

static uint64_t frame_location(const struct ap_proc_key *pk, uint64_t ret_addr,
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

int collect_samples(const struct collect_maps *cm, bool exact, struct addrspaces *as,
		    struct symbolizer *sym, struct profile *p, struct collect_stats *st)
{
	struct counter *c = NULL;
	size_t n = 0;
	uint64_t locs[AP_MAX_FRAMES];
	struct ap_stack stack;
	char comm[16] = "";
	struct ap_proc_key cur = {};
	int err;

	err = read_counts(cm->counts_fd, &c, &n);
	if (err)
		return err;
	/* By process, so each one's name is looked up once. */
	qsort(c, n, sizeof(*c), cmp_counter);
	for (size_t i = 0; i < n; i++) {
		const struct counter *e = &c[i];
		int64_t values[2];
		size_t nlocs = 0;

		if (i == 0 || memcmp(&e->key.proc, &cur, sizeof(cur))) {
			if (i == 0 || e->key.proc.pid != cur.pid)
				st->procs++;
			cur = e->key.proc;
			proc_comm(cm->procs_fd, &cur, comm);
		}
		if (bpf_map_lookup_elem(cm->stacks_fd, &e->key.stack, &stack)) {
			st->stacks_missing++;
			stack.nr = 0;
		}
		if (stack.nr > AP_MAX_FRAMES)
			stack.nr = AP_MAX_FRAMES;
		for (__u32 f = 0; f < stack.nr; f++) {
			/*
			 * Kernels that find the caller themselves at a probe on `push %rbp` put
			 * it in frame 1, where we put it in frame 0 too: keep one.
			 */
			if (f == 1 && stack.ip[1] == stack.ip[0])
				continue;
			locs[nlocs++] = frame_location(&cur, stack.ip[f], as, sym, p, st);
		}
		st->frames += nlocs;
		if (exact) {
			values[0] = (int64_t)e->val.count;
			values[1] = (int64_t)e->val.bytes;
		} else {
			values[0] = (int64_t)((e->val.w_objects + (1u << (AP_Q - 1))) >> AP_Q);
			values[1] = (int64_t)e->val.w_bytes;
		}
		st->objects += (double)values[0];
		st->bytes += (double)values[1];
		profile__add_sample(p, locs, nlocs, values, cur.pid, comm);
		st->samples++;
	}
	free(c);
	return 0;
}
