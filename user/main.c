/* The allocprof command: dispatches to its subcommands. */
#include "record.h"
#include "top.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
	fputs("usage: allocprof COMMAND [ARGS]\n"
	      "\n"
	      "An allocation profiler for live processes: uprobes on the allocator, counts per\n"
	      "call stack in BPF maps, gzipped pprof profiles out.\n"
	      "\n"
	      "Commands:\n"
	      "  record [-p PID | -a | -- CMD] [options]   record a profile (see record --help)\n"
	      "  top FILE [-n N] [--sample-index TYPE]     top functions of a profile\n"
	      "  version                                   print the version\n"
	      "\n"
	      "Examples:\n"
	      "  sudo allocprof record -p 4242 -d 30s -o heap.pb.gz\n"
	      "  sudo allocprof record --exact -- ./bench --iterations 1000\n"
	      "  allocprof top heap.pb.gz\n"
	      "  pprof -http=: heap.pb.gz\n",
	      f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "record"))
		return cmd_record(argc - 1, argv + 1);
	if (!strcmp(argv[1], "top"))
		return cmd_top(argc - 1, argv + 1);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("allocprof %s\n", ALLOCPROF_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	ap_err("unknown command '%s'", argv[1]);
	usage(stderr);
	return 2;
}
