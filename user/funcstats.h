/*
 * Per-function totals of one sample type of a profile, as `pprof -top` counts them: a
 * function's flat is what its samples' leaf frames hold, its cum what every sample it appears
 * in holds, once per sample even when it recurs. For sampled profiles each value comes with an
 * estimate of its variance. Shared by top, check and diff; prints nothing.
 */
#ifndef ALLOCPROF_FUNCSTATS_H
#define ALLOCPROF_FUNCSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comments.h"
#include "profile.pb-c.h"

/*
 * A small file can ask for very many rows to visit (one location of a million lines in a
 * million samples): readers refuse a profile whose funcstats_work exceeds this.
 */
#define FUNCSTATS_MAX_WORK (1ull << 26)
/* The 99% interval's half-width in standard deviations (normal approximation): top's ±,
 * check's margin, diff's noise gate. */
#define FUNCSTATS_Z99 2.576

struct fs_row {
	char *name;		  /* the function's name, "0xADDR" for a frame without one; raw */
	char *file;		  /* its file as the profile names it, "" when none; raw */
	int64_t line;		  /* the line of its largest leaf value, 0 when none known */
	int64_t line_flat;	  /* that value (which line to keep when rows merge) */
	int64_t flat, cum;	  /* sums saturate at INT64_MIN/MAX */
	double var_flat, var_cum; /* variance estimates of flat and cum; 0 when exact */
};

struct funcstats {
	struct fs_row *rows;
	size_t nrows;
	int64_t total;	  /* of every sample, whatever its stack */
	double var_total; /* its variance estimate */
	bool sampled;	  /* variances were estimated (a sampled profile of known types) */
	/* private */
	size_t cap;
	struct hashmap *by_name;
};

/* The rows funcstats__build would visit for `p`, counted up to just past FUNCSTATS_MAX_WORK. */
/* Index of the sample type named exactly `name`, -1 if none. */
int funcstats_type_index(const Perftools__Profiles__Profile *p, const char *name);
uint64_t funcstats_work(const Perftools__Profiles__Profile *p);
/* No rows, zero total: what funcstats__merge adds into. */
struct funcstats *funcstats__new(void);
/*
 * The rows of sample type `si` (a valid index) of `p`, in no particular order. `info` (NULL:
 * exact) says how `p` was sampled: when sampled, variances are estimated for the types
 * alloc_objects and alloc_space (from each sample's values of those two, found by name) and
 * likewise inuse_objects and inuse_space; other types get variance 0. No work bound here: see
 * funcstats_work.
 */
struct funcstats *funcstats__build(const Perftools__Profiles__Profile *p, int si,
				   const struct prof_info *info);
/* Adds `from`'s rows into `into`'s by name (values and variances summed), and the totals. */
void funcstats__merge(struct funcstats *into, const struct funcstats *from);
/* The row of the function `name`, NULL when none. Valid until the next merge or sort. */
const struct fs_row *funcstats__row(const struct funcstats *fs, const char *name);
/* Sorts the rows with `cmp` (on two struct fs_row *). */
/*
 * The row of a function named as a person writes it: exactly, or else the one row whose
 * name is `name` followed by its parameters ("Server::handle" for a C++ profile's
 * "Server::handle(Request const&)"). *matches: how many rows matched that way (more than
 * one, overloads: NULL is returned).
 */
const struct fs_row *funcstats__row_loose(const struct funcstats *fs, const char *name,
					  size_t *matches);
void funcstats__sort(struct funcstats *fs, int (*cmp)(const void *, const void *));
/* top's order: flat descending, then cum descending, then name. */
int fs_row_cmp_flat(const void *a, const void *b);
/* cum descending, then flat descending, then name. */
int fs_row_cmp_cum(const void *a, const void *b);
void funcstats__free(struct funcstats *fs);

/*
 * The variance of one sample's estimated objects (or, `bytes`, bytes) when its allocations
 * were sampled with mean distance `mean` (R): allocprof's estimates are sums of 1/p and size/p
 * over sampled allocations, p = 1 - exp(-size/R). With O estimated objects, B bytes and the
 * mean size a = B/O, p = 1 - exp(-a/R): Var(objects) ~ O(1-p)/p, Var(bytes) ~ O a^2 (1-p)/p.
 * 0 for O or B not positive, or R not positive.
 */
double fs_sample_variance(double objects, double bytes, double mean, bool bytes_var);
/*
 * A bound from below on the same variance from the number of allocations sampled, n (the
 * PROFILE_LABEL_SAMPLED label): the estimate is a sum of n weights w_i (objects) or s_i w_i
 * (bytes), Var ~ sum w_i (w_i - 1) >= O^2/n - O, or for bytes B^2/n - B^2/O, equal to
 * fs_sample_variance's when every size is the same, far above it when one stack allocates
 * small blocks beside large ones (the mean size then says nothing of the small ones'
 * weights). 0 when n is not known (n <= 0).
 */
double fs_sample_variance_floor(double objects, double bytes, double n, bool bytes_var);

/*
 * One sample's variance of type `si` in a profile sampled as `info` says (NULL: exact), as
 * funcstats__build estimates it: the larger of fs_sample_variance and, for alloc_*, its floor
 * from the sample's PROFILE_LABEL_SAMPLED. For other readers of samples (flame graphs).
 */
struct fs_var {
	int io, ib;	  /* the objects' and bytes' types */
	bool bytes;	  /* `si` is the bytes type */
	bool alloc_types; /* alloc_*: the sampled count applies */
	bool on;	  /* a variance is estimated at all */
	double mean;
};

void fs_var__init(struct fs_var *v, const Perftools__Profiles__Profile *p, int si,
		  const struct prof_info *info);
/* 0 when `v` is off or the sample lacks the values. */
double fs_var__sample(const struct fs_var *v, const Perftools__Profiles__Profile *p,
		      const Perftools__Profiles__Sample *smp);

#endif
