/*
 * Finishing the flame graph's call tree (flametree.h) once every profile is in: the programs'
 * frames taken out where they tell nothing apart, values per operation or per run, the
 * frames that fit chosen by rank and the rest merged into "…", depth-first order.
 */
#include "flametree.h"
#include "flametree_priv.h"
#include "hashmap.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * The tree again without the programs' frames at the root: every frame re-inserted under its
 * parent's new place, in index order (a parent before its children), so that the frames of
 * one name under one parent merge, their values summed.
 */
static void elide_programs(struct flame_tree *t)
{
	struct flame_node *old = t->nodes;
	size_t n = t->n;
	uint32_t *map = xcalloc(n, sizeof(*map));

	t->nodes = NULL;
	t->n = t->cap = 0;
	free(t->slots);
	t->slots = NULL;
	t->nslots = 0;
	flame_new_node(t, old[0].name, old[0].file, FLAME_ROOT, 0);
	memcpy(t->nodes[0].value, old[0].value, sizeof(old[0].value));
	memcpy(t->nodes[0].var, old[0].var, sizeof(old[0].var));
	for (size_t i = 1; i < n; i++) {
		const struct flame_node *o = &old[i];
		struct lframe f = { .name = o->name, .file = o->file, .kind = o->kind };
		struct flame_node *d;

		if (o->program && !o->parent)
			continue; /* map[i] 0: its children go to the root */
		map[i] = flame_child_of(t, map[o->parent], &f);
		d = &t->nodes[map[i]];
		for (int s = 0; s < 2; s++) {
			d->value[s] += o->value[s];
			d->var[s] += o->var[s];
		}
		if (o->line && (!d->line || o->line_v > d->line_v)) {
			d->line = o->line;
			d->file = o->file;
			d->line_v = o->line_v;
		}
	}
	free(old);
	free(map);
}

/* Whether the programs' frames tell programs apart (flame_tree__finish). */
static bool programs_matter(const struct flame_tree *t)
{
	size_t roots = 0;

	if (t->max_programs >= 2)
		return true;
	if (t->diff) /* a program renamed between BASE and NEW is the same program */
		return false;
	for (uint32_t c = t->nodes[0].first_child; c; c = t->nodes[c].next)
		roots += t->nodes[c].program;
	return roots >= 2;
}

/* The divisor of each side: operations (per_op), runs (a diff side's mean), or 1. */
static int scale_sides(struct flame_tree *t, const char *cmd)
{
	int sides = t->diff ? 2 : 1;
	double div[2] = { 1, 1 };
	char why[640];

	/*
	 * A difference of runs that all counted one operation is per operation without being
	 * asked, as diff's table is: runs of different lengths then compare.
	 */
	if (t->diff && !t->per_op) {
		const struct prof_op *a, *b;

		t->auto_op = true;
		for (int s = 0; s < 2; s++)
			t->auto_op &=
				t->side[s].nprofiles && t->side[s].with_ops == t->side[s].nprofiles;
		a = t->auto_op
			    ? prof_info__divisor(&t->side[FLAME_NEW].info, NULL, why, sizeof(why))
			    : NULL;
		b = a ? prof_info__divisor(&t->side[FLAME_BASE].info, a->name, why, sizeof(why))
		      : NULL;
		t->auto_op = b != NULL;
		if (t->auto_op)
			t->per_op = xstrdup(a->name);
	}
	for (int s = 0; s < sides; s++) {
		struct flame_side *sd = &t->side[s];
		const struct prof_op *op;
		const char *name = t->op ? t->op : (t->per_op && *t->per_op ? t->per_op : NULL);

		if (t->per_op && sd->with_ops < sd->nprofiles) {
			ap_err("%s: --per-op: %s%zu of the %zu profiles counted no operations "
			       "(record "
			       "with --ops)",
			       cmd, t->diff ? (s ? "BASE: " : "NEW: ") : "",
			       sd->nprofiles - sd->with_ops, sd->nprofiles);
			return -1;
		}
		if (t->per_op) {
			op = prof_info__divisor(&sd->info, name, why, sizeof(why));
			if (!op) {
				ap_err("%s: --per-op: %s%s", cmd,
				       t->diff ? (s ? "BASE: " : "NEW: ") : "", why);
				return -1;
			}
			t->op = strpool__intern(t->pool, op->name);
			sd->ops = (double)op->count;
			div[s] = sd->ops;
		} else if (t->diff && sd->nprofiles > 1) {
			div[s] = (double)sd->nprofiles;
		}
	}
	/*
	 * The variances are one run's, as diff's noise gate has them: a side of n runs holds n
	 * runs' variance, of which the mean's would be 1/n (a gate √n narrower than the
	 * table's).
	 */
	for (size_t i = 0; i < t->n; i++)
		for (int s = 0; s < sides; s++) {
			double n =
				t->diff && t->side[s].nprofiles ? (double)t->side[s].nprofiles : 1;

			t->nodes[i].value[s] /= div[s];
			t->nodes[i].var[s] /= div[s] * div[s] / n;
		}
	for (int s = 0; s < sides; s++)
		t->side[s].total = t->nodes[0].value[s];
	return 0;
}

/* Rank order: wider first; of equal widths the shallower (a parent before its child). */
static int cmp_rank(const void *a, const void *b, void *arg)
{
	const struct flame_node *n = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	double vx = n[x].value[FLAME_NEW], vy = n[y].value[FLAME_NEW];

	if (vx != vy)
		return vx < vy ? 1 : -1;
	if (n[x].depth != n[y].depth)
		return n[x].depth < n[y].depth ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * Which frames are drawn: the `max` widest that, with the "…" frame of each parent whose
 * other children are not drawn, fit in `max`, none under the total's 1/FLAME_MIN_FRACTION.
 * By rank, not by a threshold value: chains of frames of one width (a stack that calls
 * through many functions) would otherwise be all or nothing. A prefix of the rank order is a
 * tree, since a parent is at least as wide as its child and ranks first when as wide. Sets
 * keep[i].
 */
static void choose_kept(const struct flame_tree *t, size_t max, uint8_t *keep)
{
	double floor_v = t->nodes[0].value[FLAME_NEW] / FLAME_MIN_FRACTION;
	uint32_t *order = xcalloc(t->n ? t->n : 1, sizeof(*order));
	uint32_t *rank = xcalloc(t->n ? t->n : 1, sizeof(*rank));
	uint8_t *has_cut = xcalloc(t->n ? t->n : 1, 1);
	size_t m = 0, lo = 0, hi;

	for (size_t i = 1; i < t->n; i++) {
		rank[i] = UINT32_MAX;
		if (t->nodes[i].value[FLAME_NEW] > 0 && t->nodes[i].value[FLAME_NEW] >= floor_v)
			order[m++] = (uint32_t)i;
	}
	qsort_r(order, m, sizeof(*order), cmp_rank, t->nodes);
	for (size_t r = 0; r < m; r++)
		rank[order[r]] = (uint32_t)r;
	/* the largest k that fits: adding a frame adds 0, 1 or 2 drawn, so the count grows */
	hi = m;
	while (lo < hi) {
		size_t k = (lo + hi + 1) / 2, drawn = 1 + k;

		memset(has_cut, 0, t->n);
		for (size_t i = 1; i < t->n; i++) {
			const struct flame_node *nd = &t->nodes[i];

			if (nd->value[FLAME_NEW] > 0 && rank[i] >= k &&
			    (!nd->parent || rank[nd->parent] < k))
				drawn += !has_cut[nd->parent]++;
		}
		if (drawn <= max)
			lo = k;
		else
			hi = k - 1;
	}
	keep[0] = 1;
	for (size_t i = 1; i < t->n; i++)
		keep[i] = rank[i] < lo;
	free(order);
	free(rank);
	free(has_cut);
}

static int cmp_sibling(const void *a, const void *b)
{
	const struct flame_node *x = *(const struct flame_node *const *)a;
	const struct flame_node *y = *(const struct flame_node *const *)b;
	int c;

	if ((x->kind == FLAME_MERGED) != (y->kind == FLAME_MERGED))
		return x->kind == FLAME_MERGED ? 1 : -1; /* "…" last */
	c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->file, y->file);
}

/*
 * The tree again with only the frames `keep` says (NULL: every frame of a positive value), one
 * "…" per parent for the rest, in depth-first order with siblings in name order.
 */
static void rebuild(struct flame_tree *t, const uint8_t *keep, bool keep_base)
{
	size_t n = t->n, out = 0, cap = 0;
	struct flame_node *old = t->nodes, *nw = NULL;
	uint32_t *map = xcalloc(n, sizeof(uint32_t)); /* old index -> new, 0: not kept */
	uint32_t *cut = xcalloc(n, sizeof(uint32_t)); /* old parent -> its "…" (new) */
	struct flame_node **kids = NULL, *tmp;
	size_t kcap = 0, *stack = NULL, scap = 0, sp = 0;
	const char *ell = strpool__intern(t->pool, FLAME_MERGED_NAME);
	const char *empty = strpool__intern(t->pool, "");
	int sides = t->diff ? 2 : 1;
	uint32_t *below = xcalloc(n ? n : 1, sizeof(*below)); /* frames of a positive value in
								 each subtree */

	for (size_t i = n; i-- > 1;) {
		below[i] += old[i].value[FLAME_NEW] > 0;
		below[old[i].parent] += below[i];
	}
	/* the kept frames, in their old order, and the "…" of each parent */
	grow((void **)&nw, &cap, 1, sizeof(*nw));
	nw[out++] = old[0];
	for (size_t i = 1; i < n; i++) {
		struct flame_node *o = &old[i];
		uint32_t par = o->parent;
		bool parent_kept = !par || map[par];

		if (keep_base && parent_kept && o->value[FLAME_NEW] <= 0 &&
		    o->value[FLAME_BASE] > 0) {
			/* folded text of a diff: BASE's own stacks are lines too */
			grow((void **)&nw, &cap, out + 1, sizeof(*nw));
			nw[out] = *o;
			nw[out].parent = par ? map[par] : 0;
			map[i] = (uint32_t)out++;
			continue;
		}
		if (!parent_kept || o->value[FLAME_NEW] <= 0) {
			/* under a frame not drawn, or BASE's alone */
			if (parent_kept && o->value[FLAME_BASE] > 0 && t->diff) {
				t->gone++;
				t->gone_base += o->value[FLAME_BASE];
			}
			continue;
		}
		if (!keep || keep[i]) {
			grow((void **)&nw, &cap, out + 1, sizeof(*nw));
			nw[out] = *o;
			nw[out].parent = par ? map[par] : 0;
			map[i] = (uint32_t)out++;
			continue;
		}
		if (!cut[par]) {
			grow((void **)&nw, &cap, out + 1, sizeof(*nw));
			nw[out] = (struct flame_node){ .name = ell,
						       .file = empty,
						       .kind = FLAME_MERGED,
						       .parent = par ? map[par] : 0 };
			cut[par] = (uint32_t)out++;
		}
		tmp = &nw[cut[par]];
		tmp->merged += below[i];
		t->pruned += below[i];
		for (int s = 0; s < sides; s++) {
			tmp->value[s] += o->value[s];
			tmp->var[s] += o->var[s];
		}
	}
	free(old);
	free(below);
	free(map);
	free(cut);
	t->nodes = nw;
	t->n = out;
	t->cap = cap;

	/* children lists again, in name order */
	for (size_t i = 0; i < t->n; i++)
		t->nodes[i].first_child = t->nodes[i].next = 0;
	for (size_t i = t->n; i-- > 1;) {
		struct flame_node *c = &t->nodes[i];

		c->next = t->nodes[c->parent].first_child;
		t->nodes[c->parent].first_child = (uint32_t)i;
	}
	for (size_t i = 0; i < t->n; i++) {
		size_t k = 0;
		uint32_t c;

		for (c = t->nodes[i].first_child; c; c = t->nodes[c].next) {
			grow((void **)&kids, &kcap, k + 1, sizeof(*kids));
			kids[k++] = &t->nodes[c];
		}
		if (k < 2)
			continue;
		qsort(kids, k, sizeof(*kids), cmp_sibling);
		t->nodes[i].first_child = (uint32_t)(kids[0] - t->nodes);
		for (size_t j = 0; j + 1 < k; j++)
			kids[j]->next = (uint32_t)(kids[j + 1] - t->nodes);
		kids[k - 1]->next = 0;
	}
	free(kids);

	/* depth-first order, so that writers walk the array; indices renumbered */
	{
		struct flame_node *dfs = xcalloc(t->n, sizeof(*dfs));
		uint32_t *renum = xcalloc(t->n, sizeof(uint32_t));
		size_t o = 0;

		grow((void **)&stack, &scap, 1, sizeof(*stack));
		stack[sp++] = 0;
		while (sp) {
			size_t i = stack[--sp], k = 0;
			uint32_t c;

			renum[i] = (uint32_t)o;
			dfs[o++] = t->nodes[i];
			for (c = t->nodes[i].first_child; c; c = t->nodes[c].next)
				k++;
			grow((void **)&stack, &scap, sp + k, sizeof(*stack));
			/* pushed in reverse so that the first child comes out first */
			sp += k;
			k = sp;
			for (c = t->nodes[i].first_child; c; c = t->nodes[c].next)
				stack[--k] = c;
		}
		for (size_t i = 0; i < t->n; i++) {
			struct flame_node *d = &dfs[i];

			d->parent = i ? renum[d->parent] : 0;
			d->first_child = d->first_child ? renum[d->first_child] : 0;
			d->next = d->next ? renum[d->next] : 0;
			d->depth = i ? dfs[d->parent].depth + 1 : 0;
		}
		free(renum);
		free(t->nodes);
		t->nodes = dfs;
		t->cap = t->n;
	}
	free(stack);
}

int flame_tree__finish(struct flame_tree *t, const char *cmd, size_t max_frames)
{
	uint8_t *keep = NULL;

	if (t->max_programs && !programs_matter(t))
		elide_programs(t);
	free(t->slots);
	t->slots = NULL;
	t->nslots = 0;
	if (scale_sides(t, cmd))
		return -1;
	/* max_frames 0: every frame of a positive value, BASE's too */
	if (max_frames) {
		keep = xcalloc(t->n, 1);
		choose_kept(t, max_frames, keep);
	}
	rebuild(t, keep, !max_frames && t->diff);
	free(keep);
	return 0;
}
