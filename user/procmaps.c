/*
 * /proc/PID/maps: parsing one snapshot of a process's mappings (a plain array, valid after the
 * process is gone), and every other small /proc/PID reader: whether a pid is a live process,
 * its name, executable and image, and how a file it sees is opened from here (one policy,
 * proc_mapped_path). Knows nothing about ELF or symbols.
 */
#include "procmaps.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_line(char *line, struct map_entry *e)
{
	unsigned long long start, end, pgoff, ino;
	unsigned int maj, min;
	char perms[8] = "";
	int pos = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &pgoff, &maj,
		   &min, &ino, &pos) < 7)
		return -EINVAL;
	*e = (struct map_entry){
		.start = start,
		.end = end,
		.pgoff = pgoff,
		.dev = DEV_ID(maj, min),
		.ino = ino,
		.exec = strlen(perms) > 2 && perms[2] == 'x',
	};
	if (pos && line[pos])
		e->path = xstrdup(line + pos);
	return 0;
}

int proc_maps__parse(const char *text, struct proc_maps *out)
{
	size_t cap = 0;
	char *copy = xstrdup(text), *save = NULL;

	*out = (struct proc_maps){};
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		grow((void **)&out->e, &cap, out->n + 1, sizeof(*out->e));
		if (parse_line(line, &out->e[out->n])) {
			free(copy);
			proc_maps__free(out);
			return -EINVAL;
		}
		out->n++;
	}
	free(copy);
	return 0;
}

int proc_maps__read(pid_t pid, struct proc_maps *out)
{
	char path[64], *text = NULL;
	size_t len = 0;
	FILE *f, *mem;
	char buf[4096];
	size_t n;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	mem = open_memstream(&text, &len);
	if (!mem) {
		fclose(f);
		return -ENOMEM;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, mem);
	err = ferror(f) ? -EIO : 0;
	fclose(f);
	fclose(mem);
	if (!err)
		err = proc_maps__parse(text, out);
	free(text);
	/* A process that exited between open and read shows an empty file. */
	if (!err && !out->n)
		err = -ENOENT;
	return err;
}

void proc_maps__free(struct proc_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->e[i].path);
	free(m->e);
	*m = (struct proc_maps){};
}

const struct map_entry *proc_maps__find(const struct proc_maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (addr < m->e[mid].start)
			hi = mid;
		else if (addr >= m->e[mid].end)
			lo = mid + 1;
		else
			return &m->e[mid];
	}
	return NULL;
}

bool map_entry__is_file(const struct map_entry *e)
{
	size_t len;

	if (!e->path || e->path[0] != '/' || !e->ino)
		return false;
	len = strlen(e->path);
	return len < 10 || strcmp(e->path + len - 10, " (deleted)");
}

bool map_entry__has_file(const struct map_entry *e)
{
	return e->path && e->path[0] == '/' && e->ino;
}

char *map_entry__file_path(const struct map_entry *e)
{
	char *p = xstrdup(e->path);
	size_t len = strlen(p);

	if (len > 10 && !strcmp(p + len - 10, " (deleted)"))
		p[len - 10] = 0;
	return p;
}

void proc_read_comm(pid_t pid, char comm[16])
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	comm[0] = 0;
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, 16, f))
		comm[strcspn(comm, "\n")] = 0;
	fclose(f);
}

void proc_read_exe(pid_t pid, char *exe, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, len - 1);
	exe[n > 0 ? n : 0] = 0;
}

/* ---- the other small /proc/PID files -------------------------------------------------- */

int pid_check(pid_t pid, pid_t *tgid)
{
	char path[64], line[256];
	FILE *f;

	if (kill(pid, 0) && errno == ESRCH)
		return -ESRCH;
	/* /proc/TID/status exists for threads too: Tgid says which process it belongs to. */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	*tgid = pid;
	while (fgets(line, sizeof(line), f)) {
		char state = 0;

		/* A zombie (exited, its parent has not reaped it yet) has nothing left to trace. */
		if (sscanf(line, "State: %c", &state) == 1 && (state == 'Z' || state == 'X')) {
			fclose(f);
			return -ESRCH;
		}
		if (sscanf(line, "Tgid: %d", tgid) == 1)
			break;
	}
	fclose(f);
	return 0;
}

bool pid_is_kernel_thread(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long flags = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	/* pid (comm) state ppid pgrp session tty_nr tpgid flags: comm may hold spaces. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
		return false;
	return flags & 0x00200000; /* PF_KTHREAD */
}

bool pid_exited(pid_t pid)
{
	pid_t tgid;

	return pid_check(pid, &tgid) == -ESRCH;
}

int proc_image(pid_t pid, uint32_t *image)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st))
		return -errno;
	*image = (uint32_t)st.st_ino;
	return 0;
}

char *proc_path(pid_t pid, const char *path)
{
	return xasprintf("/proc/%d/root%s", (int)pid, path);
}

char *proc_mapped_path(pid_t pid, const struct map_entry *e)
{
	/* map_files needs more privilege (see README, Requirements): only where it must. */
	if (map_entry__is_file(e))
		return proc_path(pid, e->path);
	return xasprintf("/proc/%d/map_files/%llx-%llx", (int)pid, (unsigned long long)e->start,
			 (unsigned long long)e->end);
}

int cgroup2_dir(const char *name, char *buf, size_t len)
{
	char line[4096], mnt[4096] = "";
	struct stat st;
	FILE *f = fopen("/proc/self/mounts", "re");
	size_t ml;

	if (!f)
		return -errno;
	while (!*mnt && fgets(line, sizeof(line), f)) {
		char dir[4096], type[64];

		if (sscanf(line, "%*s %4095s %63s", dir, type) == 2 && !strcmp(type, "cgroup2"))
			snprintf(mnt, sizeof(mnt), "%s", dir);
	}
	fclose(f);
	if (!*mnt)
		return -ENODEV;
	ml = strlen(mnt);
	if (!strncmp(name, mnt, ml) && (name[ml] == '/' || !name[ml]))
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%s%s%s", mnt, *name == '/' ? "" : "/", name);
	if (stat(buf, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}
