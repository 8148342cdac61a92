/*
 * `allocprof flame`: a flame graph of profiles as one SVG file (flamesvg.c), the difference
 * picture of two sets of runs, or folded stacks (flamefold.c). Owns the command line, the
 * reading of the profiles into the tree (flametree.c) and the picture's title; also the
 * pictures `record --svg` and `diff --svg` write.
 */
#include "flame.h"
#include "exitstatus.h"
#include "flamefold.h"
#include "flamesvg.h"
#include "flametree.h"
#include "outfile.h"
#include "pprof.h"
#include "profiles.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct flame_args {
	const char *out, *sample_index, *per_op, *base, *title;
	bool folded, per_op_set;
	uint64_t max_frames, width;
	char **paths[2]; /* per slot: the profiles (directories expanded) */
	size_t npaths[2], cap[2];
	const char *arg[2]; /* as given, for the title: NEW's first, BASE */
};

/* ---- the title --------------------------------------------------------------------------- */

static void cat(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

/* "2026-12-02 06:37:49 UTC for 1.46 s" of a side, "" when its profiles say no time. */
static void cat_when(char *buf, size_t len, const struct flame_side *sd)
{
	time_t secs = (time_t)(sd->time_nanos / 1000000000);
	struct tm tm;
	char when[64];

	if (!sd->time_nanos || !gmtime_r(&secs, &tm))
		return;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	cat(buf, len, "%s", when);
	if (sd->duration_sum > 0)
		cat(buf, len, " for %.3g s%s", (double)sd->duration_sum / 1e9,
		    sd->nprofiles > 1 ? " in all" : "");
}

/* What the profiles of a side are: "command 'x' (pid 1)" and how many, or the argument. */
static void cat_what(char *buf, size_t len, const struct flame_side *sd, const char *arg)
{
	if (sd->target)
		cat(buf, len, "%s", sd->target);
	else
		cat(buf, len, "%s", arg);
	if (sd->nprofiles > 1)
		cat(buf, len, " (%zu profiles%s)", sd->nprofiles,
		    sd->target ? ", the first's target" : "");
}

/* A target's length without its " (pid N)": runs of one program differ in their pids only. */
static size_t target_len(const char *target)
{
	const char *pid = target ? strstr(target, " (pid ") : NULL;

	return !target ? 0 : pid && !strchr(pid + 2, '(') ? (size_t)(pid - target) : strlen(target);
}

void flame_titles(const struct flame_tree *t, const char *const arg[2], char *title, size_t tlen,
		  char *sub, size_t slen)
{
	const struct flame_side *nw = &t->side[FLAME_NEW], *bs = &t->side[FLAME_BASE];
	char v1[48], v2[48];

	title[0] = sub[0] = '\0';
	if (t->diff) {
		/* the sides by their names as given; the program once when both ran the same */
		size_t lb = target_len(bs->target), ln = target_len(nw->target);

		cat(title, tlen, "%s, change from %s (%zu run%s) to %s (%zu run%s)", t->type,
		    arg[FLAME_BASE], bs->nprofiles, bs->nprofiles == 1 ? "" : "s", arg[FLAME_NEW],
		    nw->nprofiles, nw->nprofiles == 1 ? "" : "s");
		if (nw->target && bs->target && (lb != ln || strncmp(bs->target, nw->target, ln)))
			cat(title, tlen, ": %.*s \xe2\x86\x92 %.*s", (int)lb, bs->target, (int)ln,
			    nw->target);
		else if (nw->target)
			cat(title, tlen, ": %.*s", (int)ln, nw->target);
	} else {
		cat(title, tlen, "%s of ", t->type);
		cat_what(title, tlen, nw, arg[FLAME_NEW]);
	}

	cat_when(sub, slen, nw);
	if (*sub)
		cat(sub, slen, " \xc2\xb7 ");
	if (t->diff) {
		double b = bs->total, n = nw->total;

		cat(sub, slen, "total NEW %s, BASE %s", flame_fmt_amount(t, n, v1, sizeof(v1)),
		    flame_fmt_amount(t, b, v2, sizeof(v2)));
		if (b > 0)
			cat(sub, slen, " (%+.1f%%)", 100.0 * (n - b) / b);
		if (!t->op && (nw->nprofiles > 1 || bs->nprofiles > 1))
			cat(sub, slen, ", the mean of each side's runs");
		cat(sub, slen, " \xc2\xb7 widths NEW's, red grew, blue shrank");
		if (t->gone)
			cat(sub, slen, " \xc2\xb7 %zu frame%s only in BASE (%s) not drawn", t->gone,
			    t->gone == 1 ? "" : "s",
			    flame_fmt_amount(t, t->gone_base, v1, sizeof(v1)));
	} else {
		cat(sub, slen, "total %s", flame_fmt_amount(t, nw->total, v1, sizeof(v1)));
	}
	if (t->op) {
		cat(sub, slen, " \xc2\xb7 per call of %s (", t->op);
		cat(sub, slen, "%.0f calls", nw->ops);
		if (t->diff)
			cat(sub, slen, "; BASE %.0f", bs->ops);
		cat(sub, slen, ")");
	}
	if (nw->sampled || (t->diff && bs->sampled))
		cat(sub, slen, " \xc2\xb7 sampled: estimates%s",
		    t->diff ? ", white within noise" : "");
	if (t->pruned)
		cat(sub, slen, " \xc2\xb7 %zu narrow frames merged into \xe2\x80\xa6", t->pruned);
	if (nw->negative || bs->negative)
		cat(sub, slen, " \xc2\xb7 %zu samples of negative value left out",
		    nw->negative + bs->negative);
	if (nw->unsymbolized || bs->unsymbolized)
		cat(sub, slen, " \xc2\xb7 %zu locations without a symbol (grey)",
		    nw->unsymbolized + bs->unsymbolized);
	if (t->diff && (nw->sampled || bs->sampled) && (nw->unknown || bs->unknown))
		cat(sub, slen, " \xc2\xb7 %zu profiles say nothing of sampling: taken as exact",
		    nw->unknown + bs->unknown);
}

/* ---- reading and writing ----------------------------------------------------------------- */

/* Reads every profile of `paths` into slot `slot`. 0 or an exit status. */
static int read_side(struct flame_tree *t, const char *cmd, char **paths, size_t n, int slot)
{
	for (size_t i = 0; i < n; i++) {
		Perftools__Profiles__Profile *p;
		int err;

		if (profiles_read(cmd, paths[i], &p))
			return AP_EXIT_USAGE;
		err = flame_tree__add(t, cmd, paths[i], p, slot);
		perftools__profiles__profile__free_unpacked(p, NULL);
		if (err)
			return AP_EXIT_USAGE;
	}
	return 0;
}

/*
 * The picture (or with `folded`, the text) of a finished tree, into `of`, which is committed
 * (or aborted). 0, or -1 after one line on stderr.
 */
static int write_out(struct out_file *of, const struct flame_tree *t, const char *const arg[2],
		     bool folded, const char *title, int width)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int err;

	if (!m) {
		ap_err("flame: %s", strerror(errno));
		out_file__abort(of);
		return -1;
	}
	if (folded) {
		err = flame_fold_write(m, t);
	} else {
		char tt[1024], sub[2048];

		flame_titles(t, arg, tt, sizeof(tt), sub, sizeof(sub));
		err = flame_svg_write(m, t,
				      &(struct flame_svg_opts){
					      .title = title ? title : tt,
					      .subtitle = sub,
					      .width = width,
				      });
	}
	if (fclose(m) || err) {
		ap_err("flame: cannot make the %s: %s", folded ? "text" : "picture",
		       strerror(err ? -err : ENOMEM));
		free(buf);
		out_file__abort(of);
		return -1;
	}
	err = out_file__commit(of, buf, len);
	free(buf);
	return err ? -1 : 0;
}

int flame_svg_of_profile(struct out_file *of, const Perftools__Profiles__Profile *p,
			 const char *name)
{
	struct flame_tree *t = flame_tree__new(NULL, NULL, false);
	const char *arg[2] = { name, NULL };
	int err = -1;

	if (!flame_tree__add(t, "record --svg", name, p, FLAME_NEW) &&
	    !flame_tree__finish(t, "record --svg", FLAME_MAX_FRAMES))
		err = write_out(of, t, arg, false, NULL, 0);
	else
		out_file__abort(of);
	flame_tree__free(t);
	return err;
}

int flame_svg_of_diff(struct out_file *of, const char *base, const char *nw,
		      const char *sample_index, const char *op)
{
	struct flame_tree *t = flame_tree__new(sample_index, op, true);
	const char *arg[2] = { nw, base };
	char **paths[2] = { NULL, NULL };
	size_t n[2] = { 0, 0 }, cap[2] = { 0, 0 };
	int err = -1;

	if (!profiles_expand("diff --svg", nw, &paths[FLAME_NEW], &n[FLAME_NEW], &cap[FLAME_NEW]) &&
	    !profiles_expand("diff --svg", base, &paths[FLAME_BASE], &n[FLAME_BASE],
			     &cap[FLAME_BASE]) &&
	    !read_side(t, "diff --svg", paths[FLAME_NEW], n[FLAME_NEW], FLAME_NEW) &&
	    !read_side(t, "diff --svg", paths[FLAME_BASE], n[FLAME_BASE], FLAME_BASE) &&
	    !flame_tree__finish(t, "diff --svg", FLAME_MAX_FRAMES))
		err = write_out(of, t, arg, false, NULL, 0);
	else
		out_file__abort(of);
	for (int s = 0; s < 2; s++)
		profiles_free(paths[s], n[s]);
	flame_tree__free(t);
	return err;
}

/* ---- the command line -------------------------------------------------------------------- */

/* "-", or a name of what standard output is (/dev/stdout, /dev/fd/1, a terminal's device). */
static bool is_stdout(const char *path)
{
	struct stat a, b;

	return !strcmp(path, "-") || (!stat(path, &a) && !fstat(STDOUT_FILENO, &b) &&
				      a.st_dev == b.st_dev && a.st_ino == b.st_ino);
}

static void flame_usage(FILE *f)
{
	fputs("usage: allocprof flame [options] PROFILE...\n"
	      "       allocprof flame --base BASE [options] NEW...\n"
	      "\n"
	      "Draws profiles as a flame graph: one SVG file that opens in any browser, with\n"
	      "nothing else needed (no network, no scripts or fonts from elsewhere). A frame's\n"
	      "width is its share of the sample type; its colour says what it is: the program\n"
	      "(red-orange), a library (yellow), the allocator (green), an address without a\n"
	      "symbol (grey). Hover shows a frame's function, file:line, value and share; a\n"
	      "click zooms to it; Search (or Ctrl-F) highlights the frames whose function\n"
	      "matches a regular expression and shows their share. Several profiles (or a\n"
	      "directory of them) are summed. Frames too narrow to draw are merged into one\n"
	      "\"\xe2\x80\xa6\" per parent, so every width and total stays true.\n"
	      "\n"
	      "With --base, the picture of what changed: widths from NEW, colour from the change\n"
	      "of each frame since BASE (red grew, blue shrank, stronger for larger changes,\n"
	      "white within sampling noise); each side is a profile or a directory of repeated\n"
	      "runs, taken as the mean of its runs, or per operation when every run counted\n"
	      "the same one operation (record --ops; --per-op FUNC chooses among several).\n"
	      "\n"
	      "Options:\n"
	      "  -o, --output FILE        the SVG file (default: standard output, not a\n"
	      "                           terminal); replaced atomically\n"
	      "      --sample-index TYPE  alloc_space (the default of allocprof's profiles),\n"
	      "                           alloc_objects, inuse_space, inuse_objects\n"
	      "      --per-op[=FUNC]      values per call of the operation `record --ops`\n"
	      "                           counted (FUNC: which one, when there are several;\n"
	      "                           the word after --per-op is FUNC unless it is a file)\n"
	      "      --base BASE          draw the change from BASE to NEW\n"
	      "      --folded             folded stacks instead, one line per stack, for\n"
	      "                           flamegraph.pl, inferno or speedscope (with --base:\n"
	      "                           two values per line, BASE then NEW)\n"
	      "      --max-frames N       frames drawn at most (default 10000: files of a few\n"
	      "                           MB at most); the narrowest are merged into "
	      "\"\xe2\x80\xa6\"\n"
	      "      --title TEXT         the picture's title\n"
	      "      --width PX           the picture's width (default 1200)\n"
	      "  pprof's spelling works too: -sample_index=TYPE\n"
	      "  -h, --help               this text\n"
	      "\n"
	      "Exit status:\n"
	      "  0  the picture (or text) was written\n"
	      "  1  it could not be written\n"
	      "  2  bad command line, a profile that cannot be read, a sample type or\n"
	      "     operation the profiles do not have\n",
	      f);
}

static int parse_args(struct flame_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "sample-index", required_argument, NULL, 's' },
		{ "sample_index", required_argument, NULL, 's' },
		{ "per-op", optional_argument, NULL, 'p' },
		{ "per_op", optional_argument, NULL, 'p' },
		{ "base", required_argument, NULL, 'b' },
		{ "folded", no_argument, NULL, 'f' },
		{ "max-frames", required_argument, NULL, 'm' },
		{ "title", required_argument, NULL, 't' },
		{ "width", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct stat st;
	int c;

	optind = 1;
	opterr = 0; /* getopt's own message would be a second line, without our prefix */
	while ((c = getopt_long_only(argc, argv, ":o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			a->out = optarg;
			break;
		case 's':
			a->sample_index = optarg;
			break;
		case 'p':
			a->per_op_set = true;
			a->per_op = optarg;
			/* "--per-op FUNC": the next word, unless it is a profile */
			if (!optarg && optind < argc && argv[optind][0] != '-' &&
			    stat(argv[optind], &st))
				a->per_op = argv[optind++];
			break;
		case 'b':
			a->base = optarg;
			break;
		case 'f':
			a->folded = true;
			break;
		case 'm':
			if (parse_u64(optarg, 2, 10000000, &a->max_frames)) {
				ap_err("flame: bad --max-frames '%s': expected a number from 2 to "
				       "10000000",
				       optarg);
				return AP_EXIT_USAGE;
			}
			break;
		case 't':
			a->title = optarg;
			break;
		case 'w':
			if (parse_u64(optarg, 200, 100000, &a->width)) {
				ap_err("flame: bad --width '%s': expected pixels from 200 to "
				       "100000",
				       optarg);
				return AP_EXIT_USAGE;
			}
			break;
		case 'h':
			flame_usage(stdout);
			return -1;
		default:
			return profiles_bad_option("flame", c, optopt, argv[optind - 1]);
		}
	}
	if (optind == argc) {
		ap_err("flame: no profile given (see allocprof flame --help)");
		return AP_EXIT_USAGE;
	}
	if (a->folded && (a->title || a->width || a->max_frames)) {
		ap_err("flame: --folded writes every stack as text: --%s is for the picture",
		       a->title	  ? "title"
		       : a->width ? "width"
				  : "max-frames");
		return AP_EXIT_USAGE;
	}
	a->arg[FLAME_NEW] = argv[optind];
	a->arg[FLAME_BASE] = a->base;
	for (int i = optind; i < argc; i++)
		if (profiles_expand("flame", argv[i], &a->paths[FLAME_NEW], &a->npaths[FLAME_NEW],
				    &a->cap[FLAME_NEW]))
			return AP_EXIT_USAGE;
	if (a->base && profiles_expand("flame", a->base, &a->paths[FLAME_BASE],
				       &a->npaths[FLAME_BASE], &a->cap[FLAME_BASE]))
		return AP_EXIT_USAGE;
	return 0;
}

int cmd_flame(int argc, char **argv)
{
	struct flame_args a = { 0 };
	struct flame_tree *t = NULL;
	struct out_file *of = NULL;
	int ret = parse_args(&a, argc, argv);

	if (ret < 0) {
		ret = AP_EXIT_OK; /* --help */
		goto out;
	}
	if (ret)
		goto out;
	/* the destination is checked before any profile is read ("-" there is stdin) */
	for (int s = 0; a.out && s < 2; s++)
		for (size_t i = 0; i < a.npaths[s]; i++)
			if (strcmp(a.paths[s][i], "-") && paths_same_file(a.out, a.paths[s][i])) {
				ap_err("flame: -o %s is one of the profiles it reads: give the %s "
				       "another name",
				       a.out, a.folded ? "text" : "picture");
				ret = AP_EXIT_USAGE;
				goto out;
			}
	if (a.out && a.folded && is_stdout(a.out))
		a.out = NULL; /* folded text is for a terminal too */
	if ((a.out || !a.folded) &&
	    out_file__open_opts(a.out ? a.out : "-",
				&(struct out_file_opts){ .mode = -1,
							 .what = a.folded ? "text" : "picture",
							 .no_fallback = true },
				&of)) {
		ret = AP_EXIT_FAILED; /* it cannot be written, as at the end */
		goto out;
	}
	t = flame_tree__new(a.sample_index, a.per_op_set ? (a.per_op ? a.per_op : "") : NULL,
			    a.base != NULL);
	if ((ret = read_side(t, "flame", a.paths[FLAME_NEW], a.npaths[FLAME_NEW], FLAME_NEW)) ||
	    (ret = read_side(t, "flame", a.paths[FLAME_BASE], a.npaths[FLAME_BASE], FLAME_BASE)))
		goto out;
	if (flame_tree__finish(t, "flame",
			       a.folded	      ? 0
			       : a.max_frames ? a.max_frames
					      : FLAME_MAX_FRAMES)) {
		ret = AP_EXIT_USAGE;
		goto out;
	}
	if (!(t->nodes[0].value[FLAME_NEW] > 0) && !(t->diff && t->nodes[0].value[FLAME_BASE] > 0))
		ap_warn("flame: the profiles have no %s: the %s is empty",
			t->type ? t->type : "samples", a.folded ? "text" : "picture");
	if (!of) {
		ret = flame_fold_write(stdout, t) ? AP_EXIT_FAILED : AP_EXIT_OK;
		if (ret)
			ap_err("flame: cannot write the text: %s", strerror(errno ? errno : EIO));
	} else {
		ret = write_out(of, t, a.arg, a.folded, a.title, (int)a.width) ? AP_EXIT_FAILED
									       : AP_EXIT_OK;
		of = NULL;
	}
out:
	if (of)
		out_file__abort(of);
	flame_tree__free(t);
	for (int s = 0; s < 2; s++)
		profiles_free(a.paths[s], a.npaths[s]);
	return ret;
}
