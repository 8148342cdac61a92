/*
 * The benchmark's floor: attaches a BPF program that does nothing (bpf/floor.bpf.c) to exactly
 * the probe sites allocprof would use for a process, using allocprof's own resolution and
 * attach code, then waits for the process to exit. What allocprof costs above this is its
 * program's work; the floor itself is the price of the uprobe traps.
 *
 *   apfloor PID      prints "probes attached" on stderr once attached
 */
#include "allocator.h"
#include "attach.h"
#include "floor.skel.h"
#include "linkmap.h"
#include "procmaps.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct alloc_plan plan;
	struct load_order lo;
	struct proc_maps maps;
	struct floor_bpf *skel;
	struct attacher *att;
	struct pollfd pfd;
	size_t added;
	uint64_t pid;
	int err;

	if (argc != 2 || parse_u64(argv[1], 1, INT32_MAX, &pid)) {
		fprintf(stderr, "usage: apfloor PID\n");
		return 2;
	}
	pfd.fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	pfd.events = POLLIN;
	if (pfd.fd < 0 || proc_maps__read((pid_t)pid, &maps) ||
	    load_order__read((pid_t)pid, &maps, &lo) || alloc_plan__resolve(&lo, &plan)) {
		fprintf(stderr, "apfloor: cannot resolve the allocator of pid %d\n", (int)pid);
		return 1;
	}
	skel = floor_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "apfloor: cannot load the floor program: %s\n", strerror(errno));
		return 1;
	}
	att = attacher__new(&(struct attach_progs){ .alloc = skel->progs.on_alloc }, -1);
	err = attacher__add_plan(att, (pid_t)pid, &plan, &added);
	if (err)
		return 1;
	fprintf(stderr, "apfloor: %zu probes attached\n", added);
	poll(&pfd, 1, -1);
	attacher__free(att);
	floor_bpf__destroy(skel);
	alloc_plan__free(&plan);
	load_order__free(&lo);
	proc_maps__free(&maps);
	return 0;
}
