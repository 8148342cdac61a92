/*
 * Writing the profile where -o says, safely: a regular file is replaced atomically (written to
 * an unnamed temporary file in the destination's directory, renamed over it when complete);
 * stdout, a FIFO or a character device gets the gzip stream written to it; anything else is
 * refused when the capture starts. When the final write fails the profile goes to a fallback
 * file instead, never lost silently.
 */
#ifndef ALLOCPROF_OUTFILE_H
#define ALLOCPROF_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct out_file;

struct out_file_opts {
	int mode;	  /* the new file's exact mode (--mode); -1: private, see outfile.c */
	bool cmd_stdout;  /* a command will share our stdout: the profile must not go there */
	const char *what; /* what is written, for messages (NULL: "profile") */
	const char *opt;  /* the option that names it, for messages (NULL: "-o") */
	bool no_fallback; /* a failed final write is said, not saved in a fallback file (what
			     can be made again from files the user still has) */
};

/*
 * Checks the destination and prepares the write, before anything is attached. 0 or -errno;
 * on error the reason has been printed (one line) and nothing is left behind.
 */
int out_file__open_opts(const char *path, const struct out_file_opts *opts, struct out_file **out);
/* The same with the defaults: a private file, no command sharing stdout. */
int out_file__open(const char *path, struct out_file **out);
/*
 * Writes the data and puts it in place, then frees. 0 or -errno; on error the reason and
 * where the profile went instead have been printed (one line).
 */
int out_file__commit(struct out_file *f, const void *data, size_t len);
/* Removes the temporary file and frees. */
void out_file__abort(struct out_file *f);
/* For messages: the destination as given, or "stdout". */
const char *out_file__path(const struct out_file *f);

#endif
