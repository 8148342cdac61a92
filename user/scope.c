/*
 * Which processes a capture's probes count, and how they are scoped: links of each target's
 * own, or one link per file that every process mapping it shares, with the BPF programs'
 * filters (the table of watched processes, --comm, --cgroup, --exclude-pid, allocprof itself)
 * set before the object is loaded and their maps filled after. Knows the options and the BPF
 * object's configuration; watch.c attaches accordingly (c->file_scope).
 */
#include "allocprof.skel.h"
#include "capture.h"
#include "procmaps.h"
#include "util.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * How probes are scoped. The kernel's per-process filter (a link per target) puts breakpoints
 * only in the targets' memory, so no other process pays for a capture; but each link costs an
 * attach and a detach that walk every process mapping the file (1,100 pids took 13 minutes),
 * and a child forked or exec'd would need links of its own before it runs. One link per file
 * serves every process that maps the file, from its first instruction (fork copies the
 * breakpoints, exec and mmap place them), and the programs count only the processes traced()
 * says; the others take a trap per call (~1 us). So: links per target for a few -p targets and
 * a command not followed; one link per file for -a, a followed command, and more targets.
 */
#define PID_LINKS_MAX 8

/* Followed processes and targets at once, in the BPF table (beyond: not followed, counted). */
#define WATCHED_MAX 65536

void scope_configure(struct capture *c, struct allocprof_bpf *s)
{
	const struct record_opts *o = &c->o;

	const char *force = getenv("ALLOCPROF_SCOPE"); /* for measuring both: pid or file */

	c->file_scope = o->all || (o->cmd && !o->no_follow) || o->npids > PID_LINKS_MAX;
	if (force && !o->all && !strcmp(force, "pid"))
		c->file_scope = false;
	else if (force && !strcmp(force, "file"))
		c->file_scope = true;
	s->rodata->self_tgid = (__u32)getpid();
	s->rodata->only_watched = !o->all && c->file_scope;
	s->rodata->watch_forks = !o->all;
	s->rodata->follow_forks = o->cmd && !o->no_follow;
	s->rodata->filter_excluded = o->nexclude > 0;
	s->rodata->filter_comm = o->ncomms > 0;
	s->rodata->filter_cgroup = o->cgroup != NULL;
	if (c->file_scope)
		ap_info("probes shared by every process that maps their file; counted for %s",
			o->all	 ? "every process"
			: o->cmd ? "the command and the processes it starts"
				 : "the targets");
	bpf_map__set_max_entries(s->maps.watched, WATCHED_MAX);
	bpf_map__set_max_entries(s->maps.excluded, o->nexclude ? (__u32)o->nexclude : 1);
	bpf_map__set_max_entries(s->maps.comms, o->ncomms ? (__u32)o->ncomms : 1);
}

/* --cgroup's directory (options.c checked that it is there). */
static int open_cgroup(const char *name)
{
	char buf[4096];
	int fd, err = cgroup2_dir(name, buf, sizeof(buf));

	fd = err ? -1 : open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = err ? err : -errno;
		ap_err("cannot open the cgroup '%s': %s", name, strerror(-err));
		return err;
	}
	return fd;
}

int scope_fill_filters(struct capture *c)
{
	const struct record_opts *o = &c->o;
	__u8 one = 1;

	for (size_t i = 0; i < o->nexclude; i++) {
		__u32 key = (__u32)o->exclude[i];

		if (bpf_map_update_elem(bpf_map__fd(c->skel->maps.excluded), &key, &one, BPF_ANY))
			goto fail;
	}
	for (size_t i = 0; i < o->ncomms; i++) {
		struct ap_comm k = {};

		/* The kernel keeps 15 characters of a name: a longer one matches those. */
		strncpy(k.c, o->comms[i], sizeof(k.c) - 1);
		if (bpf_map_update_elem(bpf_map__fd(c->skel->maps.comms), &k, &one, BPF_ANY))
			goto fail;
	}
	if (o->cgroup) {
		__u32 key = 0;
		int fd = open_cgroup(o->cgroup), err = 0;

		if (fd < 0)
			return fd;
		if (bpf_map_update_elem(bpf_map__fd(c->skel->maps.cgroups), &key, &fd, BPF_ANY))
			err = -errno;
		close(fd);
		if (err) {
			ap_err("cannot set the --cgroup filter: %s", strerror(-err));
			return err;
		}
	}
	return 0;
fail:
	ap_err("cannot set the process filters: %s", strerror(errno));
	return -errno;
}
