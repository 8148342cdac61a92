/*
 * The call tree a flame graph draws: every sample's stack root first, merged by function into
 * one tree of one sample type, for one profile, several (summed), or two sides of repeated runs
 * (a difference picture: widths from NEW, the change from BASE). Frames too narrow to matter
 * are merged into one "…" per parent so that every parent still holds the sum of its
 * children and its own value. Knows pprof's message, not SVG (flamesvg.c draws the tree,
 * flamefold.c writes it as folded stacks).
 */
#ifndef ALLOCPROF_FLAMETREE_H
#define ALLOCPROF_FLAMETREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comments.h"
#include "profile.pb-c.h"

/* What a frame is, which says its colour. */
enum flame_kind {
	FLAME_ROOT,	    /* the one root, "all" */
	FLAME_PROGRAM,	    /* in the traced program's own file (a sample's exe, or pprof's main
			       mapping) */
	FLAME_LIBRARY,	    /* in another mapped file */
	FLAME_ALLOCATOR,    /* an allocator's entry point or its wrapper (malloc, operator new) */
	FLAME_UNSYMBOLIZED, /* an address without a function name */
	FLAME_MERGED,	    /* "…": the frames of one parent too narrow to draw, summed */
};

enum { FLAME_NEW, FLAME_BASE }; /* the value slots: NEW (or the only side), BASE */

#define FLAME_MERGED_NAME "\xe2\x80\xa6" /* U+2026 HORIZONTAL ELLIPSIS */
/* Frames drawn at most by default (flame --max-frames), "…" ones included. */
#define FLAME_MAX_FRAMES 10000
/* Frames of the whole tree at most, before any is merged (~96 bytes each): a bound on memory. */
#define FLAME_MAX_NODES (1u << 22)

struct flame_node {
	const char *name; /* the function (the tree's pool); "0xADDR" when unsymbolized */
	const char *file; /* its source file as the profile names it, "" when none */
	int64_t line;	  /* the line in `file` of this frame's largest sample, 0 when none */
	enum flame_kind kind;
	bool program; /* a program's frame at the root (a sample's exe); see flame_tree__finish */
	/* Per slot: this frame's value (itself and every frame above it), and its sampling
	 * variance (0 for exact profiles). After flame_tree__finish, per operation or per run
	 * when the tree was asked to be (see struct flame_side). */
	double value[2], var[2]; /* var: one run's, when a side is the mean of several */
	uint32_t parent;	 /* node index; the root's is itself (0) */
	uint32_t first_child;	 /* 0: none (the root is never a child) */
	uint32_t next;	 /* next sibling, 0: none. Siblings are in name order after finish */
	uint32_t depth;	 /* the root's is 0 */
	uint32_t merged; /* FLAME_MERGED: how many frames it stands for */
	int64_t line_v;	 /* private: the value `line` was taken for */
};

/* What is known of one side's profiles, for titles and notes. */
struct flame_side {
	size_t nprofiles;
	double ops;	       /* the operation's calls summed over the profiles, when per_op */
	double total;	       /* the side's total after scaling (the root's value) */
	int64_t time_nanos;    /* the earliest profile's start, 0 when none says */
	int64_t duration_sum;  /* the profiles' durations summed, ns */
	char *target;	       /* the first profile's "target: " comment, NULL when none */
	bool sampled;	       /* a profile was sampled (values are estimates) */
	size_t unknown;	       /* profiles of other producers (sampling not said) */
	size_t with_ops;       /* profiles that counted operations */
	size_t unsymbolized;   /* locations' frames without a function name */
	size_t negative;       /* samples of a negative value, left out (no width to draw) */
	struct prof_info info; /* the profiles' operations merged */
};

struct flame_tree {
	struct flame_node *nodes; /* nodes[0] is the root */
	size_t n;
	const char *type, *unit; /* the sample type drawn and its unit (the pool's) */
	const char *op;		 /* per operation of this function, NULL: whole captures */
	bool auto_op;	     /* diff: per operation because every run counted the one operation */
	size_t max_programs; /* the most programs (exe labels) one profile had */
	bool diff;	     /* two sides: value[FLAME_BASE] is meaningful */
	struct flame_side side[2];
	/* what finish found and did */
	size_t pruned;	  /* frames merged into "…" frames */
	size_t gone;	  /* diff: frames only BASE has (NEW's widths cannot show them) */
	double gone_base; /* their value in BASE, summed over the topmost such frames */
	/* private */
	size_t cap;
	struct strpool *pool;
	uint32_t *slots; /* the children's table: node index + 1, 0 empty; open addressing */
	size_t nslots;	 /* a power of two, at least twice n */
	char *sample_index, *per_op;
};

/*
 * An empty tree for the sample type `sample_index` (NULL: each profile's default, which must
 * then agree) per call of `per_op` (NULL: whole captures; "" : the profiles' one operation).
 */
struct flame_tree *flame_tree__new(const char *sample_index, const char *per_op, bool diff);
/*
 * Adds `p`'s samples to slot `slot` (FLAME_NEW, or FLAME_BASE of a diff tree). `path` names it
 * in messages. 0, or -1 after one line on stderr (prefix `cmd`): no such sample type, a sample
 * type other than the tree's, too complex.
 */
int flame_tree__add(struct flame_tree *t, const char *cmd, const char *path,
		    const Perftools__Profiles__Profile *p, int slot);
/*
 * After the last add: takes out the programs' frames at the root unless they tell programs
 * apart (a profile of two or more; in a picture of several profiles, two or more programs
 * in all; in a difference, where a renamed program must still match, only the former);
 * divides by the operation's calls (per_op; for a diff also when every
 * profile of both sides counted the same one operation, auto_op) or, for a side of several
 * profiles of a diff, by their number (the mean run); orders siblings by name; merges frames
 * narrower than a drawn pixel (1/FLAME_MIN_FRACTION of the total) and beyond the `max_frames`
 * widest into one "…" per parent; counts what BASE alone had. `max_frames` 0: nothing merged,
 * and BASE's frames are kept (value[FLAME_NEW] 0) for the folded text. The nodes are then in
 * depth-first order, a parent before its children. 0, or -1 after one line on stderr (prefix
 * `cmd`): per_op without a usable operation.
 */
int flame_tree__finish(struct flame_tree *t, const char *cmd, size_t max_frames);
void flame_tree__free(struct flame_tree *t);

/* Frames whose value is under the total divided by this are merged ("…"). */
#define FLAME_MIN_FRACTION 100000

/* An allocator's entry point or wrapper (malloc, je_malloc, operator new, g_malloc, ...). */
bool flame_is_allocator(const char *name);
/* A value of the tree's unit: "1.5 MiB", "1,234", per operation "3.25" (the unit's words
 * are the caller's). */
const char *flame_fmt_value(const struct flame_tree *t, double v, char *buf, size_t len);
/* The same with its unit, for people: "12.30 MiB", "1,234 allocs", "926.7 B/op". */
const char *flame_fmt_amount(const struct flame_tree *t, double v, char *buf, size_t len);

#endif
