/*
 * The profiles a reading command's line names (top, check, diff): a file, "-" for standard
 * input, or a directory meaning every profile file in it; read with their failures said in
 * one line each. Also the one-line message of a bad option, the same in every command.
 */
#include "profiles.h"
#include "exitstatus.h"
#include "pprof.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_profile_name(const char *n)
{
	static const char *const ends[] = { ".pb.gz", ".pb", ".pprof" };
	size_t len = strlen(n);

	for (size_t i = 0; i < ARRAY_SIZE(ends); i++)
		if (len > strlen(ends[i]) && !strcmp(n + len - strlen(ends[i]), ends[i]))
			return true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is the file at `path` one of paths[0..n) already (a file named twice, or in a directory given)? */
static bool listed(char *const *paths, size_t n, const char *path)
{
	struct stat a, b;

	if (!strcmp(path, "-") || stat(path, &a))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(paths[i], "-") && !stat(paths[i], &b) && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return true;
	return false;
}

int profiles_expand(const char *cmd, const char *arg, char ***paths, size_t *n, size_t *cap)
{
	size_t first = *n, found = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;

	if (!strcmp(arg, "-") || stat(arg, &st) || !S_ISDIR(st.st_mode)) {
		/* Counted once: a profile given twice would weigh its run double. */
		if (listed(*paths, *n, arg)) {
			ap_warn("%s: %s is given twice; read once", cmd, arg);
			return 0;
		}
		grow((void **)paths, cap, *n + 1, sizeof(**paths));
		(*paths)[(*n)++] = xstrdup(arg);
		return 0;
	}
	d = opendir(arg);
	if (!d) {
		ap_err("%s: cannot read the directory %s: %s", cmd, arg, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		char *path;

		if (e->d_name[0] == '.' || !is_profile_name(e->d_name))
			continue;
		path = xasprintf("%s%s%s", arg, arg[strlen(arg) - 1] == '/' ? "" : "/", e->d_name);
		if (stat(path, &st) || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		found++;
		if (listed(*paths, first, path)) {
			free(path);
			continue;
		}
		grow((void **)paths, cap, *n + 1, sizeof(**paths));
		(*paths)[(*n)++] = path;
	}
	closedir(d);
	if (!found) {
		ap_err("%s: no profiles in %s (files ending .pb.gz, .pb or .pprof)", cmd, arg);
		return -1;
	}
	qsort(*paths + first, *n - first, sizeof(**paths), cmp_str);
	return 0;
}

void profiles_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int profiles_read(const char *cmd, const char *path, Perftools__Profiles__Profile **out)
{
	const char *name = strcmp(path, "-") ? path : "standard input", *why;
	int err = pprof_read(path, out, &why);

	if (!err)
		return 0;
	if (err == -EBADMSG)
		ap_err("%s: %s: %s", cmd, name, why);
	else if (err == -ENOMEM)
		ap_err("%s: %s: not enough memory to read the profile", cmd, name);
	else
		ap_err("%s: cannot read %s: %s", cmd, name, strerror(-err));
	return -1;
}

int profiles_bad_option(const char *cmd, int c, int optopt, const char *arg)
{
	if (c == ':')
		ap_err("%s: option '%s' needs a value (see allocprof %s --help)", cmd, arg, cmd);
	else if (optopt && optopt < 256)
		ap_err("%s: unknown option '-%c' (see allocprof %s --help)", cmd, optopt, cmd);
	else
		ap_err("%s: unknown option '%s' (see allocprof %s --help)", cmd, arg, cmd);
	return AP_EXIT_USAGE;
}
