/*
 * Folded stacks (flamefold.h) from a finished flame tree: each frame's own value (its value
 * minus its children's) is the value of the stack that ends in it.
 */
#include "flamefold.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A frame's name in the text: ';' separates frames and a newline ends the line. */
static void put_frame(FILE *f, const char *name)
{
	for (const char *c = name; *c; c++)
		fputc(*c == ';' ? ':' : (*c == '\n' || *c == '\r' || *c == '\t') ? ' ' : *c, f);
}

/* Whole values as integers, the rest (per operation, a mean of runs) in decimal. */
static void put_value(FILE *f, double v)
{
	if (v == floor(v) && fabs(v) < 0x1p53)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.10g", v);
}

/* The node's value minus its children's, in slot `s`; 0 when rounding leaves less. */
static double self_of(const struct flame_tree *t, uint32_t i, int s)
{
	double v = t->nodes[i].value[s];
	bool whole = v == floor(v);

	for (uint32_t c = t->nodes[i].first_child; c; c = t->nodes[c].next) {
		v -= t->nodes[c].value[s];
		whole &= t->nodes[c].value[s] == floor(t->nodes[c].value[s]);
	}
	/*
	 * Whole values subtract exactly; per-operation values and means are quotients, where a
	 * difference of 1e-9 of the value is rounding, not a stack of its own.
	 */
	if (whole)
		return v > 0 ? v : 0;
	return v > 1e-9 * fabs(t->nodes[i].value[s]) ? v : 0;
}

int flame_fold_write(FILE *f, const struct flame_tree *t)
{
	uint32_t *path = xcalloc(t->n ? t->n : 1, sizeof(*path));

	for (uint32_t i = 0; i < t->n; i++) {
		const struct flame_node *n = &t->nodes[i];
		double self[2] = { self_of(t, i, FLAME_NEW),
				   t->diff ? self_of(t, i, FLAME_BASE) : 0 };

		path[n->depth] = i;
		if (!(self[0] > 0) && !(self[1] > 0))
			continue;
		if (!i) {
			fputs("[no frames]", f); /* samples without a location */
		} else {
			for (uint32_t d = 1; d <= n->depth; d++) {
				if (d > 1)
					fputc(';', f);
				put_frame(f, t->nodes[path[d]].name);
			}
		}
		if (t->diff) {
			fputc(' ', f);
			put_value(f, self[FLAME_BASE]);
		}
		fputc(' ', f);
		put_value(f, self[FLAME_NEW]);
		fputc('\n', f);
	}
	free(path);
	if (fflush(f) || ferror(f))
		return errno ? -errno : -EIO;
	return 0;
}
