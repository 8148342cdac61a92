// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor: a program that does nothing, attached to exactly the probe sites
 * allocprof uses. Whatever allocprof costs above this is the program's own work; the rest is
 * the uprobe trap, which no program can avoid.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("uprobe")
int on_alloc(void *ctx)
{
	return 0;
}
