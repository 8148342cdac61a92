/*
 * What allocprof's own comments in a profile say, read back from the decoded message (the
 * lines are written down in profile.h): the operations `record --ops` counted, and how the
 * values were sampled. Pure reading: no printing, no policy about what a reader does with it.
 * Profiles of other producers have neither: no operations, sampling unknown.
 */
#ifndef ALLOCPROF_COMMENTS_H
#define ALLOCPROF_COMMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "profile.pb-c.h"

enum prof_sampling {
	PROF_SAMPLING_UNKNOWN, /* no sampling comment (another producer): take it as exact */
	PROF_SAMPLING_EXACT,   /* PROFILE_COMMENT_EXACT: every allocation, weight 1 */
	PROF_SAMPLING_SAMPLED, /* PROFILE_COMMENT_SAMPLED: Poisson, mean distance `mean_bytes` */
};

/* One operation of `record --ops`: NAME (PROFILE_OPS_GIVEN for `--ops N`) and its count. */
struct prof_op {
	char *name;
	uint64_t count; /* saturates at UINT64_MAX */
};

struct prof_info {
	struct prof_op *ops; /* in the order of their first line; a repeated NAME sums */
	size_t nops;
	enum prof_sampling sampling;
	double mean_bytes; /* R of 1 - exp(-size/R), > 0 when sampled, else 0 */
};

/*
 * Reads `p`'s comments into *out (zeroed first; free with prof_info__free even on error).
 * Lines that do not parse are ignored, as any other comment. A sampling line without a usable
 * number takes the profile's period when positive, else leaves the sampling unknown. Returns 0.
 */
int prof_info__read(const Perftools__Profiles__Profile *p, struct prof_info *out);
void prof_info__free(struct prof_info *info);
/* The operation named `name`, NULL when there is none. */
const struct prof_op *prof_info__op(const struct prof_info *info, const char *name);
/* Adds `count` to the operation `name` of `info`, creating it (what reading and merging do). */
void prof_info__add_op(struct prof_info *info, const char *name, uint64_t count);
/*
 * Adds `from`'s operations to `into`'s (by name, summed), for readers of several profiles:
 * `into` is the first profile's (prof_info__read), then each other's is merged into it.
 * Sampling: `into` keeps its own when both agree; else SAMPLED when either is (mean_bytes then
 * the larger, a bound only: variances are per profile, see funcstats.h), EXACT or UNKNOWN.
 */
void prof_info__merge(struct prof_info *into, const struct prof_info *from);

/*
 * The operation readers divide by: the one named `name`, or with `name` NULL the only one.
 * NULL when there is none, several and no `name`, no `name` among them, or it counted 0: then
 * `why` holds one line saying which and what to do ("no operations counted: record with --ops
 * FUNC or --ops N"), names raw (the printer escapes).
 */
const struct prof_op *prof_info__divisor(const struct prof_info *info, const char *name, char *why,
					 size_t len);
/* "1000 calls of handle_request", or "1000 operations, given by --ops" (raw). */
const char *prof_op_describe(const struct prof_op *op, char *buf, size_t len);

#endif
