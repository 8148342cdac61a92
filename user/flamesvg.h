/*
 * A flame graph as one self-contained, interactive SVG file: no network, no external script,
 * style or font. Every frame is drawn in the file itself (it reads without its script, as an
 * <img>), and the embedded script (user/flame.js) adds what flamegraph.pl's pictures do: hover
 * details, click to zoom, search with the matches' share, reset. Draws a finished flame_tree
 * (flametree.h); computes nothing about profiles.
 */
#ifndef ALLOCPROF_FLAMESVG_H
#define ALLOCPROF_FLAMESVG_H

#include <stdio.h>

#include "flametree.h"

struct flame_svg_opts {
	const char *title;    /* first line, raw (escaped here) */
	const char *subtitle; /* second line (totals, notes), raw; NULL: none */
	int width;	      /* in px; 0: 1200 */
};

/*
 * Writes the picture of `t` to `f`. Widths are value[FLAME_NEW]; with t->diff the colour says
 * the change from value[FLAME_BASE] (red grew, blue shrank, white no change beyond noise),
 * else the frame's kind, stable per function name. 0, or -errno of the write.
 */
int flame_svg_write(FILE *f, const struct flame_tree *t, const struct flame_svg_opts *o);

#endif
