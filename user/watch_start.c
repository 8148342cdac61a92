/*
 * How a capture begins to watch its processes: -p (every pid checked and resolved before any
 * is attached), -a (every process there now), and -- CMD (its plan from its dynamic linker,
 * its probes placed before it runs). What they do later is followed by watch.c.
 */
#include "addrspace.h"
#include "allocator.h"
#include "allocprof.skel.h"
#include "attach.h"
#include "capture.h"
#include "elffile.h"
#include "linkmap.h"
#include "procmaps.h"
#include "target.h"
#include "unwind.h"
#include "util.h"
#include "watch_priv.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The allocator of a live process. 0, or -errno with the reason said in one line; -ESRCH,
 * and nothing said, when the process exited meanwhile (its files vanish in any order).
 */
static int plan_for_pid(struct capture *c, pid_t pid, struct alloc_plan *plan, char **rtld_path,
			bool use_cache)
{
	struct load_order lo;
	char comm[16];
	int err;

	proc_read_comm(pid, comm);
	if (pid_is_kernel_thread(pid)) {
		ap_err("pid %d (%s) is a kernel thread: it has no user-space allocator to trace",
		       (int)pid, comm);
		return -EINVAL;
	}
	err = load_order__of_pid(pid, &lo);
	*plan = (struct alloc_plan){ .malloc_lib = -1 };
	*rtld_path = !err && lo.rtld_path ? proc_path(pid, lo.rtld_path) : NULL;
	/*
	 * Many processes of one program: its files are resolved, and probed, once (for the first
	 * of them; watch_pids resolves the others again if that one exits before its attach).
	 */
	if (!err && use_cache && objects_known(c, &lo)) {
		load_order__free(&lo);
		return 0;
	}
	if (!err) {
		err = alloc_plan__resolve(&lo, &c->placement, plan);
		if (!err)
			objects_mark_known(c, &lo);
		load_order__free(&lo);
	}
	if (err && pid_exited(pid))
		return -ESRCH;
	if (err == -ENOENT)
		ap_err("pid %d (%s) has no recognisable allocator: no malloc in its executable or "
		       "loaded libraries",
		       (int)pid, comm);
	else if (err)
		ap_err("cannot resolve the allocator of pid %d (%s): %s", (int)pid, comm,
		       strerror(-err));
	return err;
}

/*
 * --ops: is every function named in the plans resolved (`found`, bit n for o.ops[n])? Else
 * one line for the first missing, and -ENOENT with c->ops_missing set (a bad command line).
 */
static int ops_check_found(struct capture *c, uint32_t found, const char *where)
{
	for (size_t i = 0; i < c->o.nops; i++) {
		if (found & (1u << i))
			continue;
		if (c->ops_same & (1u << i)) {
			ap_err("--ops %s: the same function as another name given to --ops: give it "
			       "once",
			       c->o.ops[i]);
			c->ops_missing = true;
			return -ENOENT;
		}
		ap_err("--ops %s: no function of that name in %s or the libraries loaded (a "
		       "stripped program keeps only its exported functions)",
		       c->o.ops[i], where);
		c->ops_missing = true;
		return -ENOENT;
	}
	return 0;
}

int attach_plan(struct capture *c, pid_t pid, const struct alloc_plan *plan,
		       const char *what, size_t *added_out)
{
	size_t added;
	int err;

	err = attacher__add_plan(c->att, scope(c, pid), plan, &added);
	if (added_out)
		*added_out = added;
	if (err)
		return err;
	c->ops_found |= plan->ops_found;
	c->ops_same |= plan->ops_same;
	c->watch->probes += added;
	report_note(c, "allocator: %s", plan->libs[plan->malloc_lib].path);
	if (plan->unsure) {
		ap_warn("%s: cannot read %s, which is searched before %s: if it defines malloc, "
			"allocations through it are missed",
			what, plan->unsure, plan->libs[plan->malloc_lib].path);
		report_note(c, "%s: %s could not be read; allocations through it may be missing",
			    what, plan->unsure);
	}
	/* Frames in these files resolve even in processes gone before their maps are read. */
	for (size_t i = 0; added && i < plan->nlibs; i++)
		addrspaces__add_file(c->as, plan->libs[i].open_path, plan->libs[i].path);
	/* With shared probes most processes share an allocator: say only what is new. */
	if (added || !c->file_scope) {
		alloc_plan__print(plan, what);
		ap_info("%s: %zu probes attached", what, added);
	}
	return 0;
}

/* The dynamic linker's hook, so new programs and dlopens of `pid` are reported. */
static void watch_linker(struct capture *c, pid_t pid, const char *rtld_path)
{
	int err = hook_linker(c, pid, rtld_path);

	if (err)
		ap_warn("pid %d: libraries it loads later will not be followed (%s: %s)", (int)pid,
			rtld_path, strerror(-err));
}

/*
 * -p: every listed process that is still there is attached. One that is gone before its
 * attach (it exited, or never was) is a warning while others remain, and the capture goes on
 * with those; it fails only when none is left, or on anything else wrong with a pid.
 */
int watch_pids(struct capture *c)
{
	struct alloc_plan *plans = xcalloc(c->o.npids, sizeof(*plans));
	char **rtld = xcalloc(c->o.npids, sizeof(*rtld));
	bool *gone = xcalloc(c->o.npids, sizeof(*gone));
	size_t attached = 0;
	bool redo = false; /* a pid whose plan served others exited before its attach */
	int err = 0;

	/* Check and resolve every pid before attaching to any. */
	for (size_t i = 0; i < c->o.npids && !err; i++) {
		pid_t pid = c->o.pids[i], tgid;

		err = pid_check(pid, &tgid);
		if (!err && tgid != pid) {
			ap_err("cannot attach to pid %d: it is a thread of process %d (give -p %d)",
			       (int)pid, (int)tgid, (int)tgid);
			err = -EINVAL;
		}
		if (!err)
			err = plan_for_pid(c, pid, &plans[i], &rtld[i], true);
		/* Anything else was said by plan_for_pid, or above. */
		if (err == -ESRCH) {
			gone[i] = true;
			err = 0;
		}
	}
	if (!err && c->o.nops) {
		uint32_t found = 0;
		char where[64];

		for (size_t i = 0; i < c->o.npids; i++) {
			found |= plans[i].ops_found;
			c->ops_same |= plans[i].ops_same;
		}
		snprintf(where, sizeof(where), c->o.npids == 1 ? "pid %d" : "any of the pids",
			 (int)c->o.pids[0]);
		err = ops_check_found(c, found, where);
	}
	for (size_t i = 0; i < c->o.npids && !err; i++) {
		char what[64];

		if (gone[i])
			continue;
		snprintf(what, sizeof(what), "pid %d", (int)c->o.pids[i]);
		/*
		 * No plan: its files were resolved for an earlier pid, whose probes serve it.
		 * Unless that one exited before they were attached: then it is resolved itself.
		 */
		if (!plans[i].nlibs && redo) {
			free(rtld[i]);
			err = plan_for_pid(c, c->o.pids[i], &plans[i], &rtld[i], false);
		}
		if (!err && plans[i].nlibs && c->file_scope)
			attacher__real_files(c->skel->progs.real_files, c->o.pids[i], &plans[i]);
		if (!err && plans[i].nlibs)
			err = attach_plan(c, c->o.pids[i], &plans[i], what, NULL);
		if (err == -ESRCH) {
			gone[i] = true;
			redo |= c->file_scope;
			err = 0;
			continue;
		}
		if (err)
			break;
		add_watched(c, c->o.pids[i], EXIT_BY_PIDFD, 0);
		addrspaces__snapshot(c->as, c->o.pids[i]);
		unwind__prime(c->unwind, c->o.pids[i]);
		if (rtld[i])
			watch_linker(c, c->o.pids[i], rtld[i]);
		attached++;
	}
	if (!err && !attached) {
		if (c->o.npids == 1)
			ap_err("cannot attach to pid %d: no such process (it exited?)",
			       (int)c->o.pids[0]);
		else
			ap_err("cannot attach to any of the %zu pids: none is running any more",
			       c->o.npids);
		err = -ESRCH;
	}
	for (size_t i = 0; i < c->o.npids && !err; i++) {
		if (!gone[i])
			continue;
		ap_warn("pid %d is not running (it exited?): recording the others",
			(int)c->o.pids[i]);
		report_note(c, "target: pid %d exited before it was attached", (int)c->o.pids[i]);
	}
	for (size_t i = 0; i < c->o.npids; i++) {
		alloc_plan__free(&plans[i]);
		free(rtld[i]);
	}
	free(plans);
	free(rtld);
	free(gone);
	return err;
}

/*
 * -a: every process there now, each allocator file probed once for all; then what starts
 * later is resolved as it execs or its dynamic linker finishes (relink), so a file no process
 * had at the start (a container's own libc, a library copy, a static program's malloc,
 * jemalloc) is probed when the first process maps it.
 */
int watch_all(struct capture *c)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t procs = 0, failed = 0;
	int err;

	if (!d)
		return -errno;
	follow_start(c); /* first: what starts while the scan runs is reported */
	while ((de = readdir(d))) {
		struct alloc_plan plan;
		struct load_order lo;
		uint64_t v;
		pid_t pid;

		if (parse_u64(de->d_name, 1, INT32_MAX, &v) || (pid_t)v == getpid())
			continue;
		pid = (pid_t)v;
		/* Kernel threads and processes that exit meanwhile have no mappings. */
		if (load_order__of_pid(pid, &lo))
			continue;
		if (lo.rtld_path) {
			char *rtld = proc_path(pid, lo.rtld_path);

			hook_linker(c, pid, rtld);
			free(rtld);
		}
		if (objects_known(c, &lo)) {
			load_order__free(&lo);
			continue;
		}
		err = alloc_plan__resolve(&lo, &c->placement, &plan);
		if (err) {
			if (err == -ENOENT) /* nothing to probe in these files */
				objects_mark_known(c, &lo);
			load_order__free(&lo);
			continue;
		}
		/* Two containers' views of one image layer are one file: probe it once. */
		attacher__real_files(c->skel->progs.real_files, pid, &plan);
		/* One process whose files cannot be probed does not stop the others'. */
		err = attach_plan(c, -1, &plan, "all processes", NULL);
		if (err && err != -ESRCH) {
			failed++;
		} else if (!err) {
			procs++;
			objects_mark_known(c, &lo);
		}
		load_order__free(&lo);
		/* The kernel's records of its frames name the real files: let them resolve. */
		for (size_t i = 0; i < plan.nlibs; i++)
			if (plan.libs[i].real_ino)
				addrspaces__alias_file(c->as, plan.libs[i].dev, plan.libs[i].ino,
						       plan.libs[i].real_dev,
						       plan.libs[i].real_ino);
		alloc_plan__free(&plan);
	}
	closedir(d);
	if (!c->watch->probes) {
		ap_err("no process with a recognisable allocator found");
		return -ENOENT;
	}
	/* (After the scan: -a cannot know before it has read every process.) */
	if (ops_check_found(c, c->ops_found, "any running process"))
		return -ENOENT;
	if (failed)
		report_note(c, "processes whose allocator could not be probed: %zu", failed);
	ap_info("all processes: allocators of %zu running processes probed", procs);
	return 0;
}

/*
 * The command's plan, before it runs: its dynamic linker says which objects it will load
 * (`ld.so --list`), in this environment and mount namespace, which the command inherits.
 */
static int plan_for_command(struct capture *c, const char *elf_path, const char *interp,
			    struct alloc_plan *plan)
{
	struct load_order lo;
	int err;

	err = interp ? load_order__list(interp, elf_path, exec_is_secure(elf_path), &lo)
		     : load_order__file(elf_path, &lo);
	/* Opened now, so they symbolize even if the command is gone before its maps are read. */
	for (size_t i = 0; i < lo.n; i++)
		addrspaces__add_file(c->as, lo.o[i].path, lo.o[i].path);
	if (err && interp)
		ap_warn("%s could not list what '%s' loads (%s); its allocator is resolved when "
			"it has loaded it",
			interp, c->o.cmd[0], strerror(-err));
	err = lo.n ? alloc_plan__resolve(&lo, &c->placement, plan) : -ENOENT;
	load_order__free(&lo);
	if (err == -ENOENT && !interp)
		ap_err("'%s' has no recognisable allocator: a static executable without malloc",
		       c->o.cmd[0]);
	else if (err == -ENOENT)
		ap_err("'%s' has no recognisable allocator: no malloc in it or the libraries it "
		       "loads",
		       c->o.cmd[0]);
	else if (err)
		ap_err("cannot resolve the allocator of '%s': %s", c->o.cmd[0], strerror(-err));
	return err;
}

int watch_command(struct capture *c)
{
	struct alloc_plan plan = { .malloc_lib = -1 };
	char *path, *elf_path = NULL, what[64];
	struct elf_file *ef = NULL;
	const char *interp = NULL;
	int err;

	path = find_command(c->o.cmd[0]);
	if (!path) {
		err = -errno;
		ap_err("cannot run '%s': %s", c->o.cmd[0],
		       err == -ENOENT ? "command not found" : strerror(-err));
		return err;
	}
	elf_path = exec_file(path);
	if (!elf_path) {
		err = -errno;
		ap_err("cannot run '%s': %s", c->o.cmd[0],
		       err == -ENOEXEC ? "not an ELF executable or a #! script" : strerror(-err));
		goto out;
	}
	ef = elf_file__open(elf_path);
	if (!ef) {
		err = -errno;
		ap_err("cannot read %s: %s", elf_path, strerror(-err));
		goto out;
	}
	interp = elf_file__interp(ef);
	err = plan_for_command(c, elf_path, interp, &plan);
	c->ops_same |= plan.ops_same;
	if (!err) {
		snprintf(what, sizeof(what), "'%s'", c->o.cmd[0]);
		err = ops_check_found(c, plan.ops_found, what);
	}
	if (err)
		goto out;
	/* Its first stacks are whole: the tables of what it starts with are built meanwhile. */
	unwind__prime_file(c->unwind, elf_path);
	if (interp)
		unwind__prime_file(c->unwind, interp);
	for (size_t i = 0; i < plan.nlibs; i++)
		unwind__prime_file(c->unwind, plan.libs[i].open_path ? plan.libs[i].open_path
								     : plan.libs[i].path);
	err = child_spawn(c->o.cmd, path, &c->nofile, &c->watch->child);
	if (err) {
		ap_err("cannot start '%s': %s", c->o.cmd[0], strerror(-err));
		goto out;
	}
	c->watch->have_child = true;
	/*
	 * The probes are placed for the child's pid before it execs; uprobes follow a process
	 * through exec, so they are in place before its first instruction. A pid-bound probe on
	 * its dynamic linker reports later programs (exec) and dlopens.
	 */
	snprintf(what, sizeof(what), "'%s'", c->o.cmd[0]);
	err = attach_plan(c, c->watch->child.pid, &plan, what, NULL);
	if (err == -ESRCH)
		ap_err("cannot attach to %s: it exited before it ran", what);
	if (err) {
		child_abort(&c->watch->child);
		c->watch->have_child = false;
		goto out;
	}
	if (interp)
		watch_linker(c, c->watch->child.pid, interp);
	add_watched(c, c->watch->child.pid, EXIT_BY_SIGCHLD, 0);
	/* Bounded: a huge program's table (cc1plus: ~0.6 s) is not worth holding it longer. */
	if (!unwind__settle(c->unwind, 1500))
		ap_info("unwind tables still being built: the command starts now, its first stacks "
			"partly walked by frame pointer");
	err = child_release(&c->watch->child);
	if (err) {
		ap_err("cannot run '%s': %s", c->o.cmd[0], strerror(-err));
		c->watch->have_child = false;
		goto out;
	}
	read_exe(&c->watch->w[c->watch->nw - 1]);
	/* A static program's mappings are all there now; a dynamic one's come with its event. */
	if (!interp) {
		addrspaces__snapshot(c->as, c->watch->child.pid);
		unwind__prime(c->unwind, c->watch->child.pid);
	}
out:
	alloc_plan__free(&plan);
	elf_file__free(ef);
	free(elf_path);
	free(path);
	return err;
}
