/*
 * What must hold before a capture can start: privileges and kernel features. Each check
 * prints one line saying what is missing and how to get it; nothing here changes anything
 * (the one probe of the kernel, a uprobe refused by design, places nothing).
 *
 * What each step of a capture needs, measured on Linux 6.18 (README "Requirements"):
 * - loading the BPF object (kprobe-type and tracing programs, task storage, ring buffer):
 *   CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, which implies both;
 * - uprobes made as perf events, as libbpf makes them: CAP_SYS_ADMIN since Linux 6.16 and
 *   the stable kernels of July 2025 (CAP_PERFMON from 5.8 until then);
 * - another process's /proc/PID/mem, auxv, map_files and root: CAP_SYS_PTRACE unless it is
 *   ours (same user, no more capabilities than we have), and CAP_DAC_READ_SEARCH when it
 *   belongs to another user (those files are readable by their owner only).
 */
#include "preflight.h"
#include "options.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/* Effective capabilities as one mask; all of them when the kernel will not say. */
static uint64_t effective_caps(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {};

	if (syscall(SYS_capget, &h, d))
		return ~0ull;
	return (uint64_t)d[1].effective << 32 | d[0].effective;
}

static bool has(uint64_t caps, int cap)
{
	return caps & (1ull << cap);
}

/* Where the kernel's feature files are; tests point it at a fake tree. */
static const char *sysfs(void)
{
	const char *s = getenv("ALLOCPROF_SYSFS");

	return s && *s ? s : "/sys";
}

/*
 * BPF reports pids as the host sees them; /proc here shows this namespace's. Inside a nested
 * pid namespace the two disagree, so that is refused. The initial pid namespace's inode is a
 * kernel constant (PROC_PID_INIT_INO).
 */
static bool in_initial_pid_ns(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) || st.st_ino == 0xEFFFFFFCu;
}

/* The uprobe PMU's perf event type, or -1. */
static int uprobe_pmu_type(const char *path)
{
	FILE *f = fopen(path, "re");
	int type = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &type) != 1)
		type = -1;
	fclose(f);
	return type;
}

/*
 * Whether this kernel lets us create uprobes as perf events of the uprobe PMU, the way libbpf
 * attaches them. perf_uprobe_event_init() checks the capability first; the offset asked for is
 * past the end of our own file, so a permitted request then fails with EINVAL before any probe
 * is placed. User-space only, so perf_event_paranoid's check of kernel profiling does not
 * answer in its place.
 */
static bool uprobes_permitted(int type)
{
	struct perf_event_attr attr = {
		.size = sizeof(attr),
		.type = (__u32)type,
		.exclude_kernel = 1,
		.exclude_hv = 1,
	};
	long fd;

	attr.config1 = (__u64)(uintptr_t) "/proc/self/exe"; /* uprobe_path */
	attr.config2 = 1ull << 62;			    /* probe_offset */
	fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd >= 0) {
		close((int)fd);
		return true;
	}
	return errno != EACCES && errno != EPERM;
}

/*
 * Whether the kernel is locked down for confidentiality ("none integrity [confidentiality]"):
 * it then withholds the helpers that read kernel memory (LOCKDOWN_BPF_READ_KERNEL), which the
 * programs use for process and file names, and would refuse to load them with only EINVAL
 * to say why. Integrity mode leaves what allocprof uses alone.
 */
static bool locked_down(const char *path)
{
	FILE *f = fopen(path, "re");
	char buf[128] = "";
	bool yes;

	if (!f)
		return false;
	yes = fgets(buf, sizeof(buf), f) && strstr(buf, "[confidentiality]");
	fclose(f);
	return yes;
}

/* The capabilities for loading the programs and placing the probes. */
static int check_probing(uint64_t caps, int uprobe_type)
{
	if (has(caps, CAP_SYS_ADMIN))
		return 0;
	if (!uprobes_permitted(uprobe_type)) {
		if (has(caps, CAP_PERFMON))
			ap_err("not permitted: this kernel places uprobes for CAP_SYS_ADMIN only "
			       "(CAP_PERFMON was enough before Linux 6.16): allocprof needs root "
			       "or CAP_SYS_ADMIN; try sudo");
		else
			ap_err("not permitted: allocprof needs root or CAP_SYS_ADMIN; try sudo");
		return -EPERM;
	}
	/* An older kernel, where CAP_PERFMON places uprobes: the programs need CAP_BPF too. */
	if (!has(caps, CAP_BPF) || !has(caps, CAP_PERFMON)) {
		ap_err("not permitted: allocprof needs root, CAP_SYS_ADMIN, or CAP_BPF and "
		       "CAP_PERFMON (%s is missing); try sudo",
		       has(caps, CAP_BPF) ? "CAP_PERFMON" : "CAP_BPF");
		return -EPERM;
	}
	return 0;
}

static bool reads_any_file(uint64_t caps)
{
	return has(caps, CAP_DAC_READ_SEARCH) || has(caps, CAP_DAC_OVERRIDE);
}

/*
 * Whether we may read `pid`'s memory, the strictest access a capture needs (/proc/PID/mem:
 * the kernel's ptrace attach check, on a file only its owner may read). Pids that do not exist
 * pass: the caller says so in its own words.
 */
static int check_target(pid_t pid, uint64_t caps)
{
	bool no_ptrace = !has(caps, CAP_SYS_PTRACE), other_user, no_dac;
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != EACCES && errno != EPERM)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	other_user = !stat(path, &st) && st.st_uid != geteuid();
	no_dac = other_user && !reads_any_file(caps);
	/*
	 * Refused with every capability it takes: a stricter policy (kernel.yama.ptrace_scope=3,
	 * a security module). The memory is only read for the dynamic linker's list of objects;
	 * without it the load order is guessed from the mappings, so this is not fatal.
	 */
	if (!no_ptrace && !no_dac) {
		ap_warn("cannot read the memory of pid %d (%s): the order of its libraries is "
			"guessed from its mappings",
			(int)pid, strerror(errno));
		return 0;
	}
	ap_err("not permitted to read the memory of pid %d (%s): allocprof needs %s; try sudo",
	       (int)pid, other_user ? "another user's process" : "a more privileged process",
	       no_ptrace && no_dac ? "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"
	       : no_ptrace	   ? "CAP_SYS_PTRACE"
				   : "CAP_DAC_READ_SEARCH");
	return -EPERM;
}

/* The capabilities for reading the targets: -p's pids, or with -a everyone's. */
static int check_targets(const struct record_opts *o, uint64_t caps)
{
	if (o->all && (!has(caps, CAP_SYS_PTRACE) || !reads_any_file(caps))) {
		ap_err("not permitted: -a reads every process's memory and needs %s; try sudo",
		       !has(caps, CAP_SYS_PTRACE) && !reads_any_file(caps)
			       ? "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"
		       : !has(caps, CAP_SYS_PTRACE) ? "CAP_SYS_PTRACE"
						    : "CAP_DAC_READ_SEARCH");
		return -EPERM;
	}
	for (size_t i = 0; i < o->npids; i++)
		if (check_target(o->pids[i], caps))
			return -EPERM;
	return 0;
}

int preflight_check(const struct record_opts *o)
{
	uint64_t caps = effective_caps();
	char path[512];
	int type;

	if (!in_initial_pid_ns()) {
		ap_err("allocprof runs in a nested pid namespace (a container): run it in the "
		       "host's (e.g. docker run --pid=host)");
		return -ENOTSUP;
	}
	snprintf(path, sizeof(path), "%s/kernel/btf/vmlinux", sysfs());
	if (access(path, R_OK)) {
		ap_err("this kernel has no BTF (%s is missing): allocprof needs a kernel built "
		       "with CONFIG_DEBUG_INFO_BTF=y",
		       path);
		return -ENOTSUP;
	}
	snprintf(path, sizeof(path), "%s/bus/event_source/devices/uprobe/type", sysfs());
	type = uprobe_pmu_type(path);
	if (type < 0) {
		ap_err("this kernel has no uprobes (%s is missing): allocprof needs "
		       "CONFIG_UPROBE_EVENTS=y",
		       path);
		return -ENOTSUP;
	}
	snprintf(path, sizeof(path), "%s/kernel/security/lockdown", sysfs());
	if (locked_down(path)) {
		ap_err("this kernel is locked down for confidentiality (%s): BPF programs may not "
		       "read kernel memory, which allocprof's need; boot with lockdown=integrity "
		       "or none",
		       path);
		return -EPERM;
	}
	if (check_probing(caps, type))
		return -EPERM;
	return check_targets(o, caps);
}
