/*
 * The folded-stack text of a flame tree, one line per stack, root first, frames joined by ';'
 * and the stack's own value last: what flamegraph.pl, inferno and speedscope read. A
 * difference tree gives two values per line, BASE then NEW, as difffolded.pl writes them.
 */
#ifndef ALLOCPROF_FLAMEFOLD_H
#define ALLOCPROF_FLAMEFOLD_H

#include <stdio.h>

#include "flametree.h"

/* Writes every stack of `t` (finished with max_frames 0). 0, or -errno of the write. */
int flame_fold_write(FILE *f, const struct flame_tree *t);

#endif
