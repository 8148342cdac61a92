/*
 * /proc/PID/maps: parsing one snapshot of a process's mappings (a plain array, valid after the
 * process is gone), and the other small /proc/PID files. Knows nothing about ELF or symbols.
 */
#include "procmaps.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
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
