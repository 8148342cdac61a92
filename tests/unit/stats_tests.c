/*
 * Unit tests of the BPF statistics' one list (AP_STATS in bpf/allocprof.h) and of what
 * user/report.c says with it: every counter has its own text, and every counter's value
 * reaches the profile's comments (and, for losses and warnings, stderr) with its text. Includes
 * capture.h, which only record.c, watch.c and report.c use otherwise, to call report.c as the
 * capture does.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addrspace.h"
#include "allocprof.h"
#include "capture.h"
#include "collect.h"
#include "profile.h"
#include "util.h"

#include "check.h"

/* Every counter has a kind and a text of its own. */
TEST(stats_text)
{
	for (int i = 0; i < AP_STAT_NR; i++) {
		const char *t = ap_stat_descs[i].text;

		CHECK(t && *t, "counter %d has no text", i);
		CHECK(ap_stat_descs[i].kind <= AP_SK_LIVE, "counter %d (%s): kind %d", i, t,
		      (int)ap_stat_descs[i].kind);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(t, ap_stat_descs[j].text), "counters %d and %d: \"%s\"", j, i,
			      t);
	}
	return true;
}

/* A value no other number in the comments is, nor contains. */
static uint64_t value_of(int i)
{
	return 7000001 + 1000 * (uint64_t)i;
}

/* Some line of `lines` has `text` followed (maybe after a qualifier) by ": v" ending a field. */
static bool said(char **lines, size_t n, const char *text, uint64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), ": %llu", (unsigned long long)v);
	for (size_t i = 0; i < n; i++) {
		const char *at = strstr(lines[i], text), *x;

		if (!at)
			continue;
		x = strstr(at, num);
		if (x && (x[strlen(num)] == ';' || !x[strlen(num)]))
			return true;
	}
	return false;
}

static bool has_line(char **lines, size_t n, const char *line)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(lines[i], line))
			return true;
	return false;
}

static const struct value_type types[] = { { "alloc_objects", "count" },
					   { "alloc_space", "bytes" },
					   { "inuse_objects", "count" },
					   { "inuse_space", "bytes" } };

/* The comments report_comments writes for these statistics, in a profile of its own. */
static struct profile *comments(const struct capture *c, const struct collect_stats *st,
				char ***lines, size_t *n)
{
	struct profile_meta meta = { .sample_types = types,
				     .nsample_types = 4,
				     .period_type = { "space", "bytes" },
				     .period = 1,
				     .default_sample_type = "alloc_space" };
	struct profile *p = profile__new(&meta);
	const Perftools__Profiles__Profile *m;
	static char *out[64];

	report_comments(c, p, st, 1000000000);
	m = profile__message(p);
	*n = 0;
	for (size_t i = 0; i < m->n_comment && *n < 64; i++)
		out[(*n)++] = m->string_table[m->comment[i]];
	*lines = out;
	return p;
}

/*
 * Every counter's value is in the comments after its text, summary lines word for word as
 * they have always been; those that lose allocations or warn are on stderr too.
 */
TEST(stats_all_reported)
{
	struct capture c = { .o.sample_bytes = 524288 };
	struct collect_stats st = { .live_blocks = 11, .live_orphans = 12 };
	char **lines, path[4200], *err = NULL, line[512];
	struct profile *p;
	size_t n, len;
	int fd, saved;

	c.as = addrspaces__new();
	c.watch = watch__new();
	c.notes = notes__new();
	for (int i = 0; i < AP_STAT_NR; i++)
		st.bpf.v[i] = value_of(i);
	p = comments(&c, &st, &lines, &n);
	for (int i = 0; i < AP_STAT_NR; i++)
		CHECK(said(lines, n, ap_stat_descs[i].text, value_of(i)), "counter %d: \"%s\"", i,
		      ap_stat_descs[i].text);
	snprintf(line, sizeof(line),
		 "allocator calls seen: %llu; recorded: %llu; nested calls inside the "
		 "allocator: %llu; not allocations (realloc to 0, impossible sizes): %llu",
		 (unsigned long long)value_of(AP_STAT_CALLS),
		 (unsigned long long)value_of(AP_STAT_SAMPLED),
		 (unsigned long long)value_of(AP_STAT_NESTED),
		 (unsigned long long)value_of(AP_STAT_NOT_ALLOC));
	CHECK(has_line(lines, n, line), "no \"%s\"", line);
	snprintf(line, sizeof(line),
		 "frees seen: %llu; blocks forgotten (freed, or moved by realloc): %llu; frees of "
		 "untracked blocks (not sampled, or allocated before the capture): %llu; inner "
		 "frees of the allocator: %llu",
		 (unsigned long long)value_of(AP_STAT_FREES),
		 (unsigned long long)value_of(AP_STAT_FREE_MATCHED),
		 (unsigned long long)value_of(AP_STAT_FREE_UNMATCHED),
		 (unsigned long long)value_of(AP_STAT_FREE_NESTED));
	CHECK(has_line(lines, n, line), "no \"%s\"", line);
	snprintf(line, sizeof(line),
		 "sampled throwing operator new: %llu; its block found through the allocator call "
		 "inside it: %llu; allocations not tracked for in-use: operator new calling no "
		 "probed function (a return probe on a new that may throw would break C++ "
		 "exceptions): 0",
		 (unsigned long long)value_of(AP_STAT_NEW_ARMED),
		 (unsigned long long)value_of(AP_STAT_NEW_INNER));
	CHECK(has_line(lines, n, line), "no \"%s\"", line);
	snprintf(line, sizeof(line),
		 "blocks live at the end: 11; without their counter: 12; recorded allocations that "
		 "failed (taken back out of alloc_*): %llu",
		 (unsigned long long)value_of(AP_STAT_FAILED));
	CHECK(has_line(lines, n, line), "no \"%s\"", line);
	CHECK(!has_line(lines, n, "lost allocations: 0"), "lost allocations said to be 0");
	profile__free(p);

	/* Warnings: every loss and warning, nothing else of the list. */
	snprintf(path, sizeof(path), "%s/stderr", tmp);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "%s", path);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	report_losses(&st);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	{
		FILE *f = fopen(path, "r");

		CHECK(f, "%s", path);
		err = calloc(1, 65536);
		len = fread(err, 1, 65535, f);
		fclose(f);
		err[len] = '\0';
	}
	for (int i = 0; i < AP_STAT_NR; i++) {
		enum ap_stat_kind k = ap_stat_descs[i].kind;
		bool warned = k == AP_SK_LOST || k == AP_SK_WARN;
		char want[600];

		snprintf(want, sizeof(want), "%s: %llu\n", ap_stat_descs[i].text,
			 (unsigned long long)value_of(i));
		CHECK(!strstr(err, want) == !warned, "counter %d \"%s\" %s on stderr:\n%s", i,
		      ap_stat_descs[i].text, warned ? "not" : "also", err);
	}
	free(err);

	/* Nothing lost: said so. */
	memset(&st.bpf, 0, sizeof(st.bpf));
	p = comments(&c, &st, &lines, &n);
	CHECK(has_line(lines, n, "lost allocations: 0"), "no \"lost allocations: 0\"");
	profile__free(p);
	addrspaces__free(c.as);
	watch__free(c.watch);
	notes__free(c.notes);
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(stats_text),
	T(stats_all_reported),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
