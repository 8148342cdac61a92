/*
 * `allocprof top`: the top functions of any pprof profile by one sample type, as text, with
 * flat and cumulative values like `pprof -top`. Works on the decoded message, ours or Go's.
 */
#include "top.h"
#include "comments.h"
#include "exitstatus.h"
#include "funcstats.h"
#include "pprof.h"
#include "profiles.h"
#include "profile.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int top_sample_index(const Perftools__Profiles__Profile *p, const char *name)
{
	uint64_t idx;

	if (!name) {
		const char *def = pprof_str(p, p->default_sample_type);

		for (size_t i = 0; *def && i < p->n_sample_type; i++)
			if (!strcmp(pprof_str(p, p->sample_type[i]->type), def))
				return (int)i;
		return p->n_sample_type ? (int)p->n_sample_type - 1 : -1;
	}
	for (size_t i = 0; i < p->n_sample_type; i++)
		if (!strcmp(pprof_str(p, p->sample_type[i]->type), name))
			return (int)i;
	if (!parse_u64(name, 0, p->n_sample_type ? p->n_sample_type - 1 : 0, &idx) &&
	    p->n_sample_type)
		return (int)idx;
	return -1;
}

static const char *fmt_value(int64_t v, const char *unit, char *buf, size_t len)
{
	if (!strcmp(unit, "bytes"))
		return fmt_bytes((double)v, buf, len);
	if (!strcmp(unit, "nanoseconds")) {
		snprintf(buf, len, "%.3fs", (double)v / 1e9);
		return buf;
	}
	snprintf(buf, len, "%" PRId64, v);
	return buf;
}

/* Sums saturate: a crafted profile's values near INT64_MAX must not overflow. */
static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* Prints a string from the profile with its control characters escaped. */
static void put_escaped(FILE *out, const char *s)
{
	char *e = xstrdup_escaped(s);

	fputs(e, out);
	free(e);
}

/* " (file.c:12)" after a function's name: the file's last component, when it has one. */
static void put_file(FILE *out, const struct fs_row *r)
{
	const char *base;

	if (!*r->file)
		return;
	base = strrchr(r->file, '/');
	fputs(" (", out);
	put_escaped(out, base ? base + 1 : r->file);
	if (r->line)
		fprintf(out, ":%" PRId64, r->line);
	fputc(')', out);
}

/*
 * On stderr the table is part of allocprof's log (the end of `record`): without a terminal
 * (a journal, a cron mail, a CI log) each of its lines starts with "allocprof: " as every
 * other line there does, so a reader of the log can tell whose it is.
 */
static const char *line_prefix(FILE *out)
{
	return out == stderr && !isatty(STDERR_FILENO) ? "allocprof: " : "";
}

void top_print(FILE *out, const Perftools__Profiles__Profile *p, int si, size_t n)
{
	const char *pfx = line_prefix(out);
	const char *unit = pprof_str(p, p->sample_type[si]->unit);
	struct funcstats *fs = funcstats__build(p, si, NULL);
	int64_t sum = 0;
	char b1[32], b2[32];

	funcstats__sort(fs, fs_row_cmp_flat);
	fprintf(out, "%sTop %zu of %zu functions by ", pfx, n < fs->nrows ? n : fs->nrows,
		fs->nrows);
	put_escaped(out, pprof_str(p, p->sample_type[si]->type));
	fprintf(out, ", total %s\n", fmt_value(fs->total, unit, b1, sizeof(b1)));
	fprintf(out, "%s%12s %7s %7s %12s %7s  %s\n", pfx, "flat", "flat%", "sum%", "cum", "cum%",
		"function");
	for (size_t i = 0; i < fs->nrows && i < n; i++) {
		const struct fs_row *r = &fs->rows[i];
		double d = fs->total ? (double)fs->total : 1;

		sum = add_sat(sum, r->flat);
		fprintf(out, "%s%12s %6.2f%% %6.2f%% %12s %6.2f%%  ", pfx,
			fmt_value(r->flat, unit, b1, sizeof(b1)), 100.0 * (double)r->flat / d,
			100.0 * (double)sum / d, fmt_value(r->cum, unit, b2, sizeof(b2)),
			100.0 * (double)r->cum / d);
		put_escaped(out, r->name);
		put_file(out, r);
		fputc('\n', out);
	}
	funcstats__free(fs);
}

/* A count per operation: a few significant digits, whole numbers from 1000 on. */
static const char *fmt_count_op(double v, char *buf, size_t len)
{
	if (v == 0)
		snprintf(buf, len, "0");
	else if (fabs(v) >= 1000)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.4g", v);
	return buf;
}

/* "v" or, when sampled, "v ±e" (e: the 99% interval's half-width), into buf. */
static const char *fmt_op(double v, double var, bool sampled, bool bytes, char *buf, size_t len)
{
	char a[32], b[32];

	if (bytes)
		fmt_bytes_op(v, a, sizeof(a));
	else
		fmt_count_op(v, a, sizeof(a));
	if (!sampled)
		snprintf(buf, len, "%s", a);
	else if (bytes)
		snprintf(buf, len, "%s ±%s", a, fmt_bytes_op(FUNCSTATS_Z99 * sqrt(var), b, sizeof(b)));
	else
		snprintf(buf, len, "%s ±%s", a, fmt_count_op(FUNCSTATS_Z99 * sqrt(var), b, sizeof(b)));
	return buf;
}

/*
 * `top --per-op`: alloc_objects and alloc_space of each function divided by the operations
 * counted, flat and cum, sorted by cum of `by_bytes`'s type; the header says the divisor.
 */
static void top_print_per_op(FILE *out, const Perftools__Profiles__Profile *p, int io, int ib,
			     const struct prof_info *info, const struct prof_op *op, bool by_bytes,
			     size_t n)
{
	struct funcstats *fo = funcstats__build(p, io, info), *fb = funcstats__build(p, ib, info);
	struct funcstats *key = by_bytes ? fb : fo;
	const double ops = (double)op->count, ops2 = ops * ops;
	const bool sampled = fo->sampled || fb->sampled;
	const int w = sampled ? 24 : 15;
	char b1[96], b2[96], b3[96], b4[96], desc[512];

	funcstats__sort(key, fs_row_cmp_cum);
	fprintf(out, "per operation: ");
	put_escaped(out, prof_op_describe(op, desc, sizeof(desc)));
	fprintf(out, "\n");
	fprintf(out, "Top %zu of %zu functions by cum %s, total %s allocs/op, %s/op\n",
		n < key->nrows ? n : key->nrows, key->nrows, by_bytes ? "bytes/op" : "allocs/op",
		fmt_op((double)fo->total / ops, fo->var_total / ops2, sampled, false, b1,
		       sizeof(b1)),
		fmt_op((double)fb->total / ops, fb->var_total / ops2, sampled, true, b2,
		       sizeof(b2)));
	fprintf(out, "%*s %*s %*s %*s  %s\n", 15, "flat allocs/op", w, "cum allocs/op", 15,
		"flat bytes/op", w, "cum bytes/op", "function");
	for (size_t i = 0; i < key->nrows && i < n; i++) {
		const struct fs_row *k = &key->rows[i];
		const struct fs_row *ro = by_bytes ? funcstats__row(fo, k->name) : k;
		const struct fs_row *rb = by_bytes ? k : funcstats__row(fb, k->name);

		if (!ro || !rb) /* the same stacks give the same names: not reached */
			continue;
		fprintf(out, "%15s %*s %15s %*s  ",
			fmt_op((double)ro->flat / ops, 0, false, false, b1, sizeof(b1)), w,
			fmt_op((double)ro->cum / ops, ro->var_cum / ops2, sampled, false, b2,
			       sizeof(b2)),
			fmt_op((double)rb->flat / ops, 0, false, true, b3, sizeof(b3)), w,
			fmt_op((double)rb->cum / ops, rb->var_cum / ops2, sampled, true, b4,
			       sizeof(b4)));
		put_escaped(out, k->name);
		put_file(out, k);
		fputc('\n', out);
	}
	if (sampled)
		fprintf(out,
			"Note: sampled (one allocation per %s on average): ± is a 99%% "
			"interval; the totals' are ±%.1f%% (allocs), ±%.1f%% (bytes).\n",
			fmt_bytes(info->mean_bytes, b1, sizeof(b1)),
			fo->total ? 100 * FUNCSTATS_Z99 * sqrt(fo->var_total) / fabs((double)fo->total) : 0.0,
			fb->total ? 100 * FUNCSTATS_Z99 * sqrt(fb->var_total) / fabs((double)fb->total)
				  : 0.0);
	else if (info->sampling == PROF_SAMPLING_UNKNOWN)
		fprintf(out, "Note: the profile does not say how it was sampled: its values are "
			     "taken as exact.\n");
	funcstats__free(fo);
	funcstats__free(fb);
}

/*
 * When most of the weight is in stacks of one or two frames that end early, flat equals cum
 * and the table says little about callers: say so, with why, as the profile's producer said
 * (allocprof's comments; other producers' profiles get no note, their stacks' ends unknown).
 */
static void shallow_note(FILE *out, const Perftools__Profiles__Profile *p)
{
	const size_t n = strlen(PROFILE_COMMENT_SHALLOW);
	double pct = -1;

	for (size_t i = 0; i < p->n_comment; i++) {
		const char *c = pprof_str(p, p->comment[i]);

		if (!strncmp(c, PROFILE_COMMENT_SHALLOW, n))
			pct = strtod(c + n, NULL);
	}
	if (pct < 50)
		return;
	fprintf(out,
		"Note: %.0f%% of the weight is in stacks of one or two frames that end before a "
		"thread's first frame, so flat and cum say little about callers.\n",
		pct);
	for (size_t i = 0; i < p->n_comment; i++) {
		const char *c = pprof_str(p, p->comment[i]);

		if (!strncmp(c, PROFILE_COMMENT_STACK_ENDS, strlen(PROFILE_COMMENT_STACK_ENDS)) ||
		    !strncmp(c, PROFILE_COMMENT_STACKS, strlen(PROFILE_COMMENT_STACKS))) {
			fputs("  ", out);
			put_escaped(out, c);
			fputc('\n', out);
		}
	}
}

/* --per-op: the divisor and the two types found, or one line and exit status 2. */
static int per_op_print(const Perftools__Profiles__Profile *p, const char *name, int si,
			const char *fn, size_t n)
{
	int io = top_sample_index(p, "alloc_objects"), ib = top_sample_index(p, "alloc_space");
	const struct prof_op *op;
	struct prof_info info;
	char why[768];

	if (io < 0 || ib < 0 || strcmp(pprof_str(p, p->sample_type[io]->type), "alloc_objects") ||
	    strcmp(pprof_str(p, p->sample_type[ib]->type), "alloc_space")) {
		ap_err("%s: --per-op needs the sample types alloc_objects and alloc_space", name);
		return AP_EXIT_USAGE;
	}
	if (si >= 0 && si != io && si != ib) {
		ap_err("top: --per-op sorts by alloc_objects or alloc_space, not '%s'",
		       pprof_str(p, p->sample_type[si]->type));
		return AP_EXIT_USAGE;
	}
	prof_info__read(p, &info);
	op = prof_info__divisor(&info, fn, why, sizeof(why));
	if (!op) {
		ap_err("%s: %s", name, why);
		prof_info__free(&info);
		return AP_EXIT_USAGE;
	}
	top_print_per_op(stdout, p, io, ib, &info, op, si == ib, n);
	prof_info__free(&info);
	return AP_EXIT_OK;
}

static void top_usage(FILE *f)
{
	fputs("usage: allocprof top FILE [-n N] [--sample-index TYPE] [--per-op[=FUNC]]\n"
	      "\n"
	      "Prints the top functions of a pprof profile (gzipped, zlib'd or plain, any\n"
	      "producer). FILE may be a pipe, or - for standard input.\n"
	      "\n"
	      "With --per-op, the allocations and bytes of each function per operation that\n"
	      "`record --ops` counted, flat and cum, sorted by cum allocs/op (or by cum\n"
	      "bytes/op with --sample-index alloc_space); for a sampled profile each cum value\n"
	      "has its 99% interval.\n"
	      "\n"
	      "Options:\n"
	      "  -n N                     how many functions (default 10)\n"
	      "      --sample-index TYPE  alloc_space, alloc_objects, ... or its number\n"
	      "                           (default: the profile's default type)\n"
	      "      --per-op[=FUNC]      per operation; FUNC chooses the operation when the\n"
	      "                           profile counted several. `--per-op FUNC` also works:\n"
	      "                           the word after --per-op is FUNC, unless it is the\n"
	      "                           only argument left for FILE\n"
	      "  pprof's spellings work too: -sample_index=TYPE, -nodecount=N\n"
	      "  -h, --help               this text\n"
	      "\n"
	      "Exit status:\n"
	      "  0  the summary was printed\n"
	      "  1  the profile could not be read (missing, corrupt, too large or complex)\n"
	      "  2  bad command line, a sample type the profile does not have, or --per-op\n"
	      "     without one operation to divide by\n",
	      f);
}

int cmd_top(int argc, char **argv)
{
	/* pprof's spellings too (-sample_index=, -nodecount=): people type what they know. */
	static const struct option opts[] = {
		{ "sample-index", required_argument, NULL, 's' },
		{ "sample_index", required_argument, NULL, 's' },
		{ "nodecount", required_argument, NULL, 'n' },
		{ "per-op", optional_argument, NULL, 'o' },
		{ "per_op", optional_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	Perftools__Profiles__Profile *p;
	const char *index = NULL, *why, *name, *per_op_fn = NULL, *per_op_word = NULL;
	bool per_op = false;
	uint64_t n = 10;
	int c, si, err;

	optind = 1;
	opterr = 0; /* getopt's own message would be a second line, without our prefix */
	/* _only: a single dash takes long names as well, as pprof's flags do. */
	while ((c = getopt_long_only(argc, argv, ":n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, 1, 1000000, &n)) {
				ap_err("bad -n '%s': expected a number from 1 to 1000000", optarg);
				return 2;
			}
			break;
		case 's':
			index = optarg;
			break;
		case 'o':
			per_op = true;
			per_op_fn = optarg;
			/*
			 * An optional argument is only ever "--per-op=FUNC" to getopt; "--per-op
			 * FUNC" takes the next word, given back below when it was FILE.
			 */
			if (!optarg && optind < argc && argv[optind][0] != '-')
				per_op_word = argv[optind++];
			break;
		case 'h':
			top_usage(stdout);
			return 0;
		default:
			return profiles_bad_option("top", c, optopt, argv[optind - 1]);
		}
	}
	if (per_op_word && optind == argc) {
		argv[--optind] = (char *)per_op_word; /* it was FILE: the only word left */
	} else if (per_op_word) {
		per_op_fn = per_op_word;
	}
	if (optind != argc - 1) {
		ap_err(optind == argc ? "top: no profile given (see allocprof top --help)"
				      : "top: one profile at a time (see allocprof top --help)");
		return AP_EXIT_USAGE;
	}
	name = strcmp(argv[optind], "-") ? argv[optind] : "standard input";
	err = pprof_read(argv[optind], &p, &why);
	if (err) {
		if (err == -EBADMSG)
			ap_err("%s: %s", name, why);
		else if (err == -ENOMEM)
			ap_err("%s: not enough memory to read the profile", name);
		else
			ap_err("cannot read %s: %s", name, strerror(-err));
		return 1;
	}
	si = top_sample_index(p, index);
	if (si < 0) {
		char types[256] = "";

		/* (ap_err escapes what the profile's names hold) */
		for (size_t i = 0; i < p->n_sample_type; i++)
			snprintf(types + strlen(types), sizeof(types) - strlen(types), "%s%s",
				 i ? ", " : "", pprof_str(p, p->sample_type[i]->type));
		ap_err("%s: no sample type '%s' (it has: %s)", name, index ? index : "(default)",
		       types);
		perftools__profiles__profile__free_unpacked(p, NULL);
		return 2;
	}
	if (funcstats_work(p) > FUNCSTATS_MAX_WORK) {
		ap_err("%s: too complex to summarize (its samples reach more than %llu location "
		       "lines)",
		       name, (unsigned long long)FUNCSTATS_MAX_WORK);
		perftools__profiles__profile__free_unpacked(p, NULL);
		return 1;
	}
	if (per_op) {
		err = per_op_print(p, name, index ? si : -1, per_op_fn, n);
		if (!err) /* shallow stacks make cum per operation say as little */
			shallow_note(stdout, p);
		perftools__profiles__profile__free_unpacked(p, NULL);
		return err;
	}
	top_print(stdout, p, si, n);
	shallow_note(stdout, p);
	perftools__profiles__profile__free_unpacked(p, NULL);
	return 0;
}
