// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor: programs that do nothing, attached to exactly the probe sites
 * allocprof uses (allocation entries, frees, and returns where asked). Whatever allocprof costs
 * above this is the programs' own work; the rest is the uprobe traps, which no program can
 * avoid.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("uprobe")
int on_alloc(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int on_ret(void *ctx)
{
	return 0;
}

SEC("uprobe")
int on_free(void *ctx)
{
	return 0;
}
