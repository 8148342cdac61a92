/*
 * The profile being built: pprof's model (samples, locations, functions, mappings, a string
 * table) with every table de-duplicated, held as protobuf-c messages ready to encode. Knows
 * nothing about BPF, processes or files on disk.
 */
#ifndef ALLOCPROF_PROFILE_H
#define ALLOCPROF_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.pb-c.h"
#include "symbolize.h"

struct profile;

struct value_type {
	const char *type, *unit;
};

struct profile_meta {
	const struct value_type *sample_types;
	size_t nsample_types;
	struct value_type period_type;
	int64_t period;
	int64_t time_nanos, duration_nanos;
	const char *default_sample_type;
};

struct profile *profile__new(const struct profile_meta *meta);
void profile__free(struct profile *p);

/* The Mapping for a capture-unique mapping key (created on first use); returns its id. */
uint64_t profile__mapping(struct profile *p, uint64_t key, uint64_t start, uint64_t limit,
			  uint64_t offset, const char *file, const char *build_id, bool symbolized);
/*
 * The Location at `address` in mapping `mapping_id` (0: none known), with its lines from `sym`
 * (innermost first; NULL or n == 0: address only). Returns its id.
 */
uint64_t profile__location(struct profile *p, uint64_t mapping_id, uint64_t address,
			   const struct sym_result *sym);
/*
 * Comments that say how the stacks' walks ended (report.c writes them, top.c reads them back
 * to say why a profile's stacks are shallow): the beginning of each line.
 */
#define PROFILE_COMMENT_STACK_ENDS "stack ends by weight:"
#define PROFILE_COMMENT_SHALLOW	   "weight in stacks of one or two frames that end early: "
#define PROFILE_COMMENT_STACKS	   "stacks: "

/*
 * What readers of a profile (top --per-op, check, diff: user/comments.c) take from allocprof's
 * comments, each the beginning of a line:
 * - one line per operation of `record --ops`: "ops: NAME COUNT", NAME a symbol without
 *   whitespace (PROFILE_OPS_GIVEN for `--ops N`), COUNT decimal, anything after it free text
 *   ("ops: handle_request 1000 calls of /srv/app"). Counted exactly even in sampled profiles.
 * - how the values were sampled: PROFILE_COMMENT_EXACT, or PROFILE_COMMENT_SAMPLED followed by
 *   the mean sampling distance in bytes, also the profile's period.
 */
#define PROFILE_COMMENT_OPS	"ops: "
/*
 * A numeric label of a sampled profile's samples: how many allocations were sampled for its
 * alloc_* estimates, from which readers bound their variance (funcstats.c).
 */
#define PROFILE_LABEL_SAMPLED "sampled"
#define PROFILE_OPS_GIVEN	"operations"
#define PROFILE_COMMENT_EXACT	"sampling: none (--exact)"
#define PROFILE_COMMENT_SAMPLED "sampling: one per "

/* A sample: locations leaf first, one value per sample type, labelled with pid and comm. */
void profile__add_sample(struct profile *p, const uint64_t *locs, size_t nlocs,
			 const int64_t *values, int64_t pid, const char *comm);
/* A string label on the sample added last (`-tagfocus=KEY=VALUE`). */
void profile__add_label(struct profile *p, const char *key, const char *value);
/* A numeric label (unit: "" or pprof's unit name) on the sample added last. */
void profile__add_num_label(struct profile *p, const char *key, int64_t num, const char *unit);
void profile__add_comment(struct profile *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Makes the first Mapping of `file` the first of all, which pprof takes for the main binary. */
void profile__set_main(struct profile *p, const char *file);

/* The message, complete; valid until the next call that adds to the profile. */
const Perftools__Profiles__Profile *profile__message(struct profile *p);
size_t profile__samples(const struct profile *p);

#endif
