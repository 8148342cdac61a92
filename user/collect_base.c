/*
 * Periodic capture's baseline (collect.h, struct collect_base): what the last file was computed
 * from, which processes have exited since, and, once a file is written, the new baseline and
 * the release of what exited processes held in the kernel's maps and here.
 */
#include "collect_priv.h"
#include "addrspace.h"
#include "hashmap.h"
#include "procmaps.h"
#include "util.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void collect_base__drop_pending(struct collect_base *b)
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
	collect_base__drop_pending(b);
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
int collect_base__find_gone(struct collect_base *b, int procs_fd, const struct addrspaces *as)
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
	collect_base__drop_pending(b);
}
