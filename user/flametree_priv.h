/*
 * What flametree.c (building the tree from profiles) and flametree_finish.c (scaling,
 * pruning, ordering it) share.
 */
#ifndef ALLOCPROF_FLAMETREE_PRIV_H
#define ALLOCPROF_FLAMETREE_PRIV_H

#include <stdint.h>

#include "flametree.h"

/* One frame of a location, resolved once per profile. */
struct lframe {
	const char *name, *file; /* the pool's */
	int64_t line;
	enum flame_kind kind;
};

/* A new frame `name` in `file` under `parent` (any index for the root, the first): its index. */
uint32_t flame_new_node(struct flame_tree *t, const char *name, const char *file,
			enum flame_kind kind, uint32_t parent);
/* The child `f->name` of `parent`, made when new (the children's table, t->slots). */
uint32_t flame_child_of(struct flame_tree *t, uint32_t parent, const struct lframe *f);

#endif
