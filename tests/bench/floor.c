/*
 * The benchmark's floor: attaches a BPF program that does nothing (bpf/floor.bpf.c) to exactly
 * the probe sites allocprof would use for a process, using allocprof's own resolution and
 * attach code, then waits for the process to exit. What allocprof costs above this is its
 * program's work; the floor itself is the price of the uprobe traps.
 *
 *   apfloor [--free] [--ret] PID
 *
 * --free: free and delete too (allocprof's default); --ret: a return probe on every allocation
 * function too (what in-use tracking costs without uprobe sessions, and --exact's returns).
 * Prints "probes attached" on stderr once attached.
 */
#include "allocator.h"
#include "attach.h"
#include "floor.skel.h"
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
	struct placement pl;
	struct floor_bpf *skel;
	struct attacher *att;
	struct pollfd pfd;
	size_t added;
	bool with_free = false, with_ret = false;
	struct attach_progs progs = {};
	uint64_t pid;
	int err, i;

	for (i = 1; i < argc - 1; i++) {
		if (!strcmp(argv[i], "--free"))
			with_free = true;
		else if (!strcmp(argv[i], "--ret"))
			with_ret = true;
		else
			break;
	}
	if (i != argc - 1 || parse_u64(argv[i], 1, INT32_MAX, &pid)) {
		fprintf(stderr, "usage: apfloor [--free] [--ret] PID\n");
		return 2;
	}
	/* The sites allocprof chooses: with return probes, those that keep %rsp as at entry. */
	pl = (struct placement){ .return_probes = with_ret || with_free };
	pfd.fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	pfd.events = POLLIN;
	if (pfd.fd < 0 || alloc_plan__of_pid((pid_t)pid, &pl, &plan, NULL)) {
		fprintf(stderr, "apfloor: cannot resolve the allocator of pid %d\n", (int)pid);
		return 1;
	}
	skel = floor_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "apfloor: cannot load the floor program: %s\n", strerror(errno));
		return 1;
	}
	progs.alloc = skel->progs.on_alloc;
	progs.alloc_ret = with_ret ? skel->progs.on_ret : NULL;
	progs.free = with_free ? skel->progs.on_free : NULL;
	att = attacher__new(&progs, -1);
	err = attacher__add_plan(att, (pid_t)pid, &plan, &added);
	if (err)
		return 1;
	fprintf(stderr, "apfloor: %zu probes attached\n", added);
	poll(&pfd, 1, -1);
	attacher__free(att);
	floor_bpf__destroy(skel);
	alloc_plan__free(&plan);
	return 0;
}
