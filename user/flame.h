/*
 * `allocprof flame` (flame.c), and the pictures other commands write beside their own output:
 * `record --svg` of the profile it wrote, `diff --svg` of the runs it compared.
 */
#ifndef ALLOCPROF_FLAME_H
#define ALLOCPROF_FLAME_H

#include <stddef.h>

#include "flametree.h"
#include "outfile.h"
#include "profile.pb-c.h"

int cmd_flame(int argc, char **argv);
/*
 * The picture of profile `p` (`name` for messages and the title when it has no target) into
 * `of`, opened before the capture; committed, or aborted on error. 0, or -1 after one line.
 */
int flame_svg_of_profile(struct out_file *of, const Perftools__Profiles__Profile *p,
			 const char *name);
/*
 * The difference picture of `base` and `nw` (each a profile or a directory) of the sample
 * type `sample_index`, per call of `op` (NULL: whole runs, the mean of each side's) into
 * `of`; committed, or aborted on error. 0, or -1 after one line.
 */
int flame_svg_of_diff(struct out_file *of, const char *base, const char *nw,
		      const char *sample_index, const char *op);
/* The picture's title and second line for a finished tree; arg: NEW's and BASE's names. */
void flame_titles(const struct flame_tree *t, const char *const arg[2], char *title, size_t tlen,
		  char *sub, size_t slen);

#endif
