/*
 * Reading allocprof's comments back (comments.h): the operations and the sampling. The lines'
 * beginnings are profile.h's; everything here tolerates lines another producer or a damaged
 * file wrote, by ignoring them.
 */
#include "comments.h"
#include "pprof.h"
#include "profile.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prof_info__add_op(struct prof_info *info, const char *name, uint64_t count)
{
	struct prof_op *op = (struct prof_op *)prof_info__op(info, name);

	if (!op) {
		info->ops = xrealloc(info->ops, info->nops + 1, sizeof(*info->ops));
		op = &info->ops[info->nops++];
		*op = (struct prof_op){ .name = xstrdup(name) };
	}
	op->count = count > UINT64_MAX - op->count ? UINT64_MAX : op->count + count;
}

/* "NAME COUNT[ free text]" after PROFILE_COMMENT_OPS; false when the line is not that. */
static bool parse_op(const char *s, size_t *name_len, uint64_t *count)
{
	const char *end = s, *num;
	unsigned long long v;
	char *after;

	while (*end && !isspace((unsigned char)*end))
		end++;
	if (end == s || *end != ' ')
		return false;
	num = end + 1;
	if (!isdigit((unsigned char)*num))
		return false;
	errno = 0;
	v = strtoull(num, &after, 10);
	/* (What follows the number is free text: a space, or "," or ";" after it.) */
	if (errno || (*after && !isspace((unsigned char)*after) && *after != ',' && *after != ';'))
		return false;
	*name_len = (size_t)(end - s);
	*count = v;
	return true;
}

/* The mean distance of PROFILE_COMMENT_SAMPLED's line ("524288 bytes ..."), 0 if unusable. */
static double parse_mean(const char *s)
{
	char *end;
	double v;

	if (!isdigit((unsigned char)*s))
		return 0;
	errno = 0;
	v = strtod(s, &end);
	/* A distance beyond 2^40 bytes makes no sampled profile: a crafted line, unusable. */
	if (errno || !isfinite(v) || v <= 0 || v > 0x1p40 ||
	    (*end && !isspace((unsigned char)*end)))
		return 0;
	return v;
}

int prof_info__read(const Perftools__Profiles__Profile *p, struct prof_info *out)
{
	const size_t nops = strlen(PROFILE_COMMENT_OPS), nsam = strlen(PROFILE_COMMENT_SAMPLED);
	bool sampled = false;
	double mean = 0;

	*out = (struct prof_info){ 0 };
	for (size_t i = 0; i < p->n_comment; i++) {
		const char *c = pprof_str(p, p->comment[i]);
		uint64_t count;
		size_t len;

		if (!strncmp(c, PROFILE_COMMENT_OPS, nops)) {
			if (parse_op(c + nops, &len, &count)) {
				char *name = xasprintf("%.*s", (int)len, c + nops);

				prof_info__add_op(out, name, count);
				free(name);
			}
		} else if (!strncmp(c, PROFILE_COMMENT_EXACT, strlen(PROFILE_COMMENT_EXACT)) &&
			   !isalnum((unsigned char)c[strlen(PROFILE_COMMENT_EXACT)])) {
			if (!sampled)
				out->sampling = PROF_SAMPLING_EXACT;
		} else if (!strncmp(c, PROFILE_COMMENT_SAMPLED, nsam)) {
			sampled = true;
			mean = parse_mean(c + nsam);
		}
	}
	/* Sampled wins over exact: claiming exactness wrongly would hide an uncertainty. */
	if (sampled) {
		if (mean <= 0 && p->period > 0)
			mean = (double)p->period;
		if (mean > 0) {
			out->sampling = PROF_SAMPLING_SAMPLED;
			out->mean_bytes = mean;
		} else {
			out->sampling = PROF_SAMPLING_UNKNOWN;
		}
	}
	return 0;
}

void prof_info__free(struct prof_info *info)
{
	for (size_t i = 0; i < info->nops; i++)
		free(info->ops[i].name);
	free(info->ops);
	*info = (struct prof_info){ 0 };
}

const struct prof_op *prof_info__op(const struct prof_info *info, const char *name)
{
	for (size_t i = 0; i < info->nops; i++)
		if (!strcmp(info->ops[i].name, name))
			return &info->ops[i];
	return NULL;
}

void prof_info__merge(struct prof_info *into, const struct prof_info *from)
{
	for (size_t i = 0; i < from->nops; i++)
		prof_info__add_op(into, from->ops[i].name, from->ops[i].count);
	into->mean_bytes = fmax(into->mean_bytes, from->mean_bytes);
	if (into->sampling == from->sampling)
		return;
	if (into->sampling == PROF_SAMPLING_SAMPLED || from->sampling == PROF_SAMPLING_SAMPLED)
		into->sampling = PROF_SAMPLING_SAMPLED;
	else /* exact and unknown: unknown, the weaker claim */
		into->sampling = PROF_SAMPLING_UNKNOWN;
}

/* "a, b, c" of the operations' names into buf (cut short when long). */
static void op_names(const struct prof_info *info, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < info->nops && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "",
				       info->ops[i].name);
}

const struct prof_op *prof_info__divisor(const struct prof_info *info, const char *name, char *why,
					 size_t len)
{
	const struct prof_op *op;
	char names[512];

	if (!info->nops) {
		snprintf(why, len, "no operations counted: record with --ops FUNC or --ops N");
		return NULL;
	}
	op_names(info, names, sizeof(names));
	if (!name && info->nops > 1) {
		snprintf(why, len,
			 "operations of several functions (%s): choose one with --per-op FUNC",
			 names);
		return NULL;
	}
	op = name ? prof_info__op(info, name) : &info->ops[0];
	if (!op) {
		snprintf(why, len, "no operation '%s' (it has: %s)", name, names);
		return NULL;
	}
	if (!op->count) {
		snprintf(why, len, "operation '%s' counted 0 times: nothing to divide by",
			 op->name);
		return NULL;
	}
	return op;
}

const char *prof_op_describe(const struct prof_op *op, char *buf, size_t len)
{
	if (!strcmp(op->name, PROFILE_OPS_GIVEN))
		snprintf(buf, len, "%llu operations, given by --ops",
			 (unsigned long long)op->count);
	else
		snprintf(buf, len, "%llu calls of %s", (unsigned long long)op->count, op->name);
	return buf;
}
