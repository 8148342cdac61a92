/*
 * What must hold before a capture can start: privileges and kernel features. Each check
 * prints one line saying what is missing and how to get it; nothing here changes anything.
 */
#include "preflight.h"
#include "util.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool has_cap(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
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

int preflight_check(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {};
	char path[512];

	if (syscall(SYS_capget, &h, d) == 0 &&
	    !(has_cap(d, CAP_SYS_ADMIN) ||
	      (has_cap(d, CAP_BPF) && has_cap(d, CAP_PERFMON) && has_cap(d, CAP_SYS_PTRACE)))) {
		ap_err("not permitted: allocprof needs root (or CAP_BPF, CAP_PERFMON and "
		       "CAP_SYS_PTRACE); try sudo");
		return -EPERM;
	}
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
	if (access(path, R_OK)) {
		ap_err("this kernel has no uprobes (%s is missing): allocprof needs "
		       "CONFIG_UPROBE_EVENTS=y",
		       path);
		return -ENOTSUP;
	}
	return 0;
}
