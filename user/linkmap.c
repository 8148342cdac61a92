/*
 * The objects a process loads, in the dynamic linker's search order (the executable, preloaded
 * libraries, then needed libraries breadth-first): for a live process from the dynamic
 * linker's r_debug/link_map list in its memory; for a program not started yet from the dynamic
 * linker itself (`ld.so --list`), so both are the dynamic linker's own answer. Owns the reading
 * of another process's memory; knows nothing about allocators.
 */
#include "linkmap.h"
#include "allocprof.h"
#include "elffile.h"
#include "util.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Enough for any real program; the walk stops here rather than trust a corrupt list. */
#define MAX_OBJECTS 4096

/* Reads len bytes at addr of a process's memory, through its open /proc/PID/mem. */
static int mem_read(int fd, uint64_t addr, void *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len, (off_t)addr);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int read_auxv(pid_t pid, uint64_t *at_base, uint64_t *at_phdr)
{
	char path[64];
	uint64_t v[2];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*at_base = *at_phdr = 0;
	while (read(fd, v, sizeof(v)) == sizeof(v) && v[0] != AT_NULL) {
		if (v[0] == AT_BASE)
			*at_base = v[1];
		else if (v[0] == AT_PHDR)
			*at_phdr = v[1];
	}
	close(fd);
	return 0;
}

/*
 * Adds the object mapped by `e` once; its first (lowest) mapping gives the base, and says how
 * it is opened from here (proc_mapped_path).
 */
static void add_obj(struct load_order *lo, size_t *cap, pid_t pid, const struct map_entry *e,
		    const struct proc_maps *m)
{
	struct loaded_obj o = { .dev = e->dev, .ino = e->ino };

	for (size_t i = 0; i < lo->n; i++)
		if (lo->o[i].dev == e->dev && lo->o[i].ino == e->ino)
			return;
	o.path = map_entry__file_path(e);
	for (size_t i = 0; i < m->n; i++) {
		if (m->e[i].dev == e->dev && m->e[i].ino == e->ino) {
			o.base = m->e[i].start;
			o.open_path = proc_mapped_path(pid, &m->e[i]);
			break;
		}
	}
	if (!o.open_path)
		o.open_path = proc_path(pid, o.path);
	grow((void **)&lo->o, cap, lo->n + 1, sizeof(*lo->o));
	lo->o[lo->n++] = o;
}

/*
 * struct r_debug and struct link_map as glibc lays them out on 64-bit targets (found through its
 * exported _r_debug; musl exports no such symbol, so its processes get the guessed order).
 */
struct r_debug64 {
	int32_t r_version;
	int32_t pad;
	uint64_t r_map, r_brk;
	int32_t r_state;
};

_Static_assert(offsetof(struct r_debug64, r_state) == AP_R_DEBUG_STATE_OFF,
	       "the BPF dynamic linker hook reads r_state where this does");

struct link_map64 {
	uint64_t l_addr, l_name, l_ld, l_next, l_prev;
};

static int walk_link_map(pid_t pid, const struct proc_maps *m, const char *rtld_path,
			 struct load_order *lo, size_t *cap)
{
	struct elf_sym sym;
	struct elf_file *ef;
	struct r_debug64 rd;
	uint64_t lm_addr, rd_addr;
	char *open_path = proc_path(pid, rtld_path), mem[64];
	int fd, err, n = 0;

	ef = elf_file__open(open_path);
	free(open_path);
	if (!ef)
		return -errno;
	err = elf_file__lookup(ef, "_r_debug", &sym);
	elf_file__free(ef);
	if (err)
		return err;
	rd_addr = lo->rtld_base + sym.vaddr;
	snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)pid);
	fd = open(mem, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = mem_read(fd, rd_addr, &rd, sizeof(rd));
	if (!err && !rd.r_map)
		err = -EAGAIN; /* the dynamic linker has not started its list yet */
	if (err) {
		close(fd);
		return err;
	}
	lo->rtld_consistent = rd.r_state == AP_RT_CONSISTENT;
	for (lm_addr = rd.r_map; lm_addr && n < MAX_OBJECTS; n++) {
		const struct map_entry *e;
		struct link_map64 lm;

		err = mem_read(fd, lm_addr, &lm, sizeof(lm));
		if (err)
			break;
		/*
		 * l_name may be a path the mappings spell differently (/lib vs /usr/lib): the
		 * object is the file whose mapping holds its dynamic section. The executable
		 * (empty name) is found the same way; the vDSO has no file and is skipped.
		 */
		e = proc_maps__find(m, lm.l_ld);
		if (e && map_entry__has_file(e))
			add_obj(lo, cap, pid, e, m);
		lm_addr = lm.l_next;
	}
	close(fd);
	return err;
}

int load_order__read(pid_t pid, const struct proc_maps *m, struct load_order *out)
{
	const struct map_entry *exe, *rtld;
	uint64_t at_phdr = 0;
	size_t cap = 0;
	int err;

	*out = (struct load_order){};
	err = read_auxv(pid, &out->rtld_base, &at_phdr);
	if (err)
		return err;
	/* The executable is the mapping holding its own program headers. */
	exe = proc_maps__find(m, at_phdr);
	if (!exe || !map_entry__has_file(exe))
		return -ENOEXEC;
	add_obj(out, &cap, pid, exe, m);

	rtld = out->rtld_base ? proc_maps__find(m, out->rtld_base) : NULL;
	if (rtld && map_entry__has_file(rtld)) {
		out->rtld_path = map_entry__file_path(rtld);
		err = walk_link_map(pid, m, out->rtld_path, out, &cap);
		if (!err) {
			out->from_link_map = true;
			return 0;
		}
		ap_info("pid %d: cannot read the dynamic linker's list (%s); guessing load order "
			"from mappings",
			(int)pid, strerror(-err));
	} else {
		out->rtld_consistent = true; /* statically linked: nothing more will be loaded */
	}
	/* No link map: every executable file mapping, by address (right for static binaries). */
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].exec && map_entry__has_file(&m->e[i]))
			add_obj(out, &cap, pid, &m->e[i], m);
	return 0;
}

int load_order__of_pid(pid_t pid, struct load_order *out)
{
	struct proc_maps maps;
	int err;

	*out = (struct load_order){};
	err = proc_maps__read(pid, &maps);
	if (err)
		return err;
	err = load_order__read(pid, &maps, out);
	proc_maps__free(&maps);
	return err;
}

void load_order__free(struct load_order *lo)
{
	for (size_t i = 0; i < lo->n; i++) {
		free(lo->o[i].path);
		free(lo->o[i].open_path);
	}
	free(lo->o);
	free(lo->rtld_path);
	*lo = (struct load_order){};
}

/* Adds a file by its path (no process to ask for mappings: the file's own identity). */
static void add_path(struct load_order *lo, size_t *cap, const char *name)
{
	/* As the mappings will name it: symbolic links resolved (libfoo.so.2 -> .so.2.0). */
	char *path = realpath(name, NULL);
	struct stat st;

	if (!path || stat(path, &st)) {
		free(path);
		return;
	}
	for (size_t i = 0; i < lo->n; i++)
		if (lo->o[i].dev == DEV_ID(major(st.st_dev), minor(st.st_dev)) &&
		    lo->o[i].ino == st.st_ino) {
			free(path);
			return;
		}
	grow((void **)&lo->o, cap, lo->n + 1, sizeof(*lo->o));
	lo->o[lo->n++] = (struct loaded_obj){
		.path = path,
		.open_path = xstrdup(path),
		.dev = DEV_ID(major(st.st_dev), minor(st.st_dev)),
		.ino = st.st_ino,
	};
}

/*
 * One line of `ld.so --list`: "\tlibc.so.6 => /lib/.../libc.so.6 (0x...)", "\t/lib64/ld.so
 * (0x...)" or "\tlinux-vdso.so.1 (0x...)". The path, or NULL for lines without a file.
 */
static char *listed_path(char *line)
{
	char *arrow = strstr(line, " => "), *p, *end;

	p = arrow ? arrow + 4 : line + strspn(line, " \t");
	if (*p != '/')
		return NULL;
	end = strstr(p, " (0x");
	if (end)
		*end = 0;
	p[strcspn(p, "\n")] = 0;
	return p;
}

int load_order__file(const char *path, struct load_order *out)
{
	size_t cap = 0;

	*out = (struct load_order){};
	add_path(out, &cap, path);
	return out->n ? 0 : -errno;
}

bool exec_is_secure(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return false;
	if (((st.st_mode & S_ISUID) && st.st_uid != geteuid()) ||
	    ((st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP) && st.st_gid != getegid()))
		return true;
	return getxattr(path, "security.capability", NULL, 0) > 0;
}

int load_order__list(const char *interp, const char *program, bool secure, struct load_order *out)
{
	char *argv[] = { (char *)interp, "--list", (char *)program, NULL };
	size_t cap = 0, len = 0;
	char *line = NULL;
	int pfd[2], status, err = 0;
	pid_t pid;
	FILE *f;

	*out = (struct load_order){ .from_link_map = true, .rtld_path = xstrdup(interp) };
	add_path(out, &cap, program);
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return err;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(pfd[1], STDOUT_FILENO);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		if (secure) {
			/* What glibc's linker ignores for a secure program (a close match). */
			unsetenv("LD_PRELOAD");
			unsetenv("LD_LIBRARY_PATH");
			unsetenv("LD_AUDIT");
		}
		execv(interp, argv);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	while (f && getline(&line, &len, f) > 0) {
		char *path = listed_path(line);

		if (path)
			add_path(out, &cap, path);
	}
	free(line);
	if (f)
		fclose(f);
	else
		close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		err = -ENOEXEC; /* a missing library: the program would not start either */
	return err;
}
