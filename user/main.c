/* The allocprof command: dispatches to its subcommands. */
#include "check.h"
#include "diff.h"
#include "exitstatus.h"
#include "flame.h"
#include "record.h"
#include "top.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
	      "  check --budget FILE PROFILE...            allocations per operation against\n"
	      "                                            budgets, for CI\n"
	      "  diff [options] BASE NEW                   compare two sets of runs, for CI\n"
	      "  flame [options] PROFILE...                a flame graph as one SVG file; with\n"
	      "                                            --base, the picture of what changed\n"
	      "  version                                   print the version\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help               this text\n"
	      "      --version            print the version\n"
	      "\n"
	      "Examples:\n"
	      "  sudo allocprof record -p 4242 -d 30s -o heap.pb.gz\n"
	      "  sudo allocprof record --exact -- ./bench --iterations 1000\n"
	      "  allocprof top heap.pb.gz\n"
	      "  allocprof check --budget budget.txt bench.pb.gz\n"
	      "  allocprof diff base/ new/\n"
	      "  allocprof flame heap.pb.gz -o heap.svg\n"
	      "  pprof -http=: heap.pb.gz\n"
	      "\n"
	      "Exit status: 0 success; 1 the capture or the reading failed, or (check) a\n"
	      "budget is exceeded, or (diff) a function rose significantly; 2 bad command\n"
	      "line (check, diff: also input they cannot use); 3 (record) not permitted or\n"
	      "not possible here; 4 (record) nothing to trace. Each command's --help says\n"
	      "more.\n",
	      f);
}

/*
 * A wrong command is one line, as every message (a log without a terminal reads one event
 * a line); the whole usage only where someone reads it.
 */
static int bad_command(const char *cmd)
{
	if (cmd)
		ap_err("unknown command '%s' (see allocprof --help)", cmd);
	else
		ap_err("no command given: record, top, check, diff, flame or version (see allocprof "
		       "--help)");
	if (isatty(STDERR_FILENO))
		usage(stderr);
	return AP_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return bad_command(NULL);
	if (!strcmp(argv[1], "record"))
		return cmd_record(argc - 1, argv + 1);
	if (!strcmp(argv[1], "top"))
		return cmd_top(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "diff"))
		return cmd_diff(argc - 1, argv + 1);
	if (!strcmp(argv[1], "flame"))
		return cmd_flame(argc - 1, argv + 1);
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("allocprof %s\n", ALLOCPROF_VERSION);
		return AP_EXIT_OK;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return AP_EXIT_OK;
	}
	return bad_command(argv[1]);
}
