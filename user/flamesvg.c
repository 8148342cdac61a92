/*
 * The flame graph as one SVG file (flamesvg.h): the layout, the colours and the file's text,
 * with flame.js (embedded from build/flame_js.h) for hover, zoom and search. Every frame is
 * drawn here so that the file reads as a picture with scripts off; the script only moves,
 * hides and relabels what is already there. Must not compute anything about profiles (the
 * tree comes finished from flametree.c) nor refer to anything outside the file: no href, no
 * url(), no web font, since the picture is opened from mail, a CI artefact or file://.
 */
#include "flamesvg.h"
#include "funcstats.h"
#include "util.h"

#include "flame_js.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * The geometry flame.js reads back from the file (it finds depth from a frame's y, the plot's
 * left and width from the root's rect): change one, change the script's constants too.
 */
#define FRAME_H	  16  /* a frame's row; its rect is one pixel less, the gap between rows */
#define XPAD	  10  /* left and right margin */
#define TOP	  66  /* title, subtitle, legend */
#define BOTTOM	  28  /* the details line */
#define CHAR_W	  7.2 /* monospace at 12px: every glyph 0.6 em wide */
#define LABEL_PAD 3   /* a label starts this far into its frame */
#define LABEL_MIN 3   /* characters of room below which a frame has no label */
/* The title is centred between "Reset Zoom" and "Search"; its font's glyphs average under
 * 0.6 em (Verdana's, DejaVu Sans's), so 0.6 of 17px keeps it clear of them. */
#define TITLE_CHAR_W 10.2
#define BUTTONS_W    90

/*
 * Bounds on a frame's bytes in the file, which holds up to FLAME_MAX_FRAMES of them: a C++
 * name can be kilobytes of template arguments.
 */
#define NAME_MAX_BYTES 300
#define FILE_MAX_BYTES 100
#define TEXT_BUF       (NAME_MAX_BYTES + 8)

/* No change beyond noise, and the highlight of nothing (the background). */
#define DIFF_SAME  "rgb(250,250,250)"
#define BACKGROUND "rgb(238,238,238)"

struct rgb {
	int r, g, b;
};

/* A valid UTF-8 sequence at s: its length and code point, or 0 for none (overlong, a
 * surrogate, beyond U+10FFFF, cut short). Never reads past a NUL. */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1, c &= 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2, c &= 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n + 1;
}

/* The bytes `n` bytes of `s` take once put_esc has escaped them. */
static size_t esc_cost(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += s[i] == '&' || s[i] == '\''  ? 5
		     : s[i] == '<' || s[i] == '>' ? 4
		     : s[i] == '"'		  ? 6
						  : 1;
	return c;
}

/*
 * `s` as text an XML file may hold and a person can read: valid UTF-8 kept; a byte that does
 * not start a valid sequence, a control character and the non-characters XML forbids each
 * replaced by U+FFFD; tabs and line breaks by a space (a label is one line). Stops before
 * `max` bytes of output, counted as they will be once escaped (put_esc: "&quot;" is 6), so
 * that a frame's size is bounded whatever its name, and then ends with "…". buf holds at
 * least max + 4 bytes; *chars
 * counts code points (what a label's width is), *units UTF-16 code units (what the script's
 * string functions count). Returns the length.
 */
static size_t clean_text(const char *s, size_t max, char *buf, size_t *chars, size_t *units)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = 0, nc = 0, nu = 0, cost = 0;

	while (*p) {
		const char *out = (const char *)p;
		uint32_t cp;
		size_t n = utf8_seq(p, &cp), skip = n ? n : 1;

		if (!n || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f ||
		    (cp >= 0x80 && cp <= 0x9f) || cp == 0xfffe || cp == 0xffff) {
			out = "\xef\xbf\xbd", n = 3, cp = 0xfffd;
		} else if (cp < 0x20) {
			out = " ", n = 1;
		}
		if (cost + esc_cost(out, n) > max) {
			memcpy(buf + len, FLAME_MERGED_NAME, 3);
			len += 3, nc++, nu++;
			break;
		}
		memcpy(buf + len, out, n);
		cost += esc_cost(out, n);
		len += n, nc++, nu += cp >= 0x10000 ? 2 : 1;
		p += skip;
	}
	buf[len] = '\0';
	if (chars)
		*chars = nc;
	if (units)
		*units = nu;
	return len;
}

/* n bytes of clean text, XML-escaped (for text and attribute values alike). */
static void put_esc(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			putc(s[i], f);
		}
	}
}

/*
 * A line of any length from the caller (title, subtitle), cleaned and escaped, cut to
 * `maxchars` with "…" so that it does not run off the picture or under the buttons; then the
 * whole line as its <title>, which the browser shows on hover.
 */
static void put_line(FILE *f, const char *s, size_t maxchars)
{
	/* (every byte escaped costs 6 at most: nothing is cut here but by maxchars) */
	size_t max = 6 * strlen(s) + 4, chars, len, i = 0;
	char *buf = xcalloc(1, max + 4);

	if (maxchars < 2) /* a picture too narrow for its title still cuts it */
		maxchars = 2;
	len = clean_text(s, max, buf, &chars, NULL);
	if (chars <= maxchars) {
		put_esc(f, buf, len);
	} else {
		for (size_t c = 0; c + 1 < maxchars; c++)
			for (i++; i < len && ((unsigned char)buf[i] & 0xc0) == 0x80; i++)
				;
		put_esc(f, buf, i);
		fputs(FLAME_MERGED_NAME "<title>", f);
		put_esc(f, buf, len);
		fputs("</title>", f);
	}
	free(buf);
}

/* A node's value as drawn: negative, NaN and infinite values are nothing. */
static double val(const struct flame_node *n, int slot)
{
	double v = n->value[slot];

	return isfinite(v) && v > 0 ? v : 0;
}

static double var(const struct flame_node *n, int slot)
{
	double v = n->var[slot];

	return isfinite(v) && v > 0 ? v : 0;
}

/* A value that reads back as the same double: the tests sum them. */
static const char *fmt_exact(double v, char *buf, size_t len)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.17g", v);
	return buf;
}

/* A coordinate to a tenth of a pixel, without a trailing ".0". */
static const char *fmt_px(double v, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%.1f", v);

	if (n > 2 && (size_t)n < len && !strcmp(buf + n - 2, ".0"))
		buf[n - 2] = '\0';
	if (!strcmp(buf, "-0"))
		strcpy(buf, "0");
	return buf;
}

/*
 * A frame's change is noise when within the 99% interval of the two sides' sampling (diff's
 * gate, FUNCSTATS_Z99), or within rounding of two equal sums.
 */
static bool diff_same(const struct flame_node *n, double *delta)
{
	double vn = val(n, FLAME_NEW), vb = val(n, FLAME_BASE), d = vn - vb;
	double sd = sqrt(var(n, FLAME_NEW) + var(n, FLAME_BASE));

	*delta = d;
	return fabs(d) <= FUNCSTATS_Z99 * sd || fabs(d) <= 1e-9 * fmax(vn, vb);
}

/*
 * Red grew, blue shrank, deeper the larger the change relative to BASE (all of it, new), with
 * a tint that still shows for the smallest change beyond noise: exact profiles have no noise,
 * and one allocation more in a million is then a change.
 */
static struct rgb diff_colour(const struct flame_node *n)
{
	double delta, vb = val(n, FLAME_BASE), rel;
	int c;

	if (diff_same(n, &delta))
		return (struct rgb){ 250, 250, 250 };
	rel = vb > 0 ? fmin(1, fabs(delta) / vb) : 1;
	/* 225: the least tint, 40 the deepest; the root spreads the small changes apart */
	c = (int)lround(225 - 185 * sqrt(rel));
	if (delta > 0)
		return (struct rgb){ 255, c, c };
	return (struct rgb){ c, c, 255 };
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/*
 * By kind, the shade within the kind's palette from a hash of the name: the same function has
 * the same colour in every picture, whatever else changed.
 */
static struct rgb kind_colour(enum flame_kind kind, const char *name)
{
	uint32_t h = fnv1a(name);
	double a = (h & 0xff) / 255.0, b = ((h >> 8) & 0xff) / 255.0,
	       c = ((h >> 16) & 0xff) / 255.0;

	switch (kind) {
	case FLAME_ROOT:
		return (struct rgb){ 190, 190, 205 };
	case FLAME_PROGRAM: /* flamegraph.pl's "hot", red to orange */
		return (struct rgb){ 205 + (int)(50 * c), 40 + (int)(120 * a), (int)(55 * b) };
	case FLAME_LIBRARY: /* yellow to gold */
		return (struct rgb){ 215 + (int)(40 * c), 180 + (int)(50 * a), 20 + (int)(60 * b) };
	case FLAME_ALLOCATOR:
		return (struct rgb){ 60 + (int)(70 * a), 175 + (int)(55 * b), 60 + (int)(60 * c) };
	case FLAME_UNSYMBOLIZED: {
		int g = 150 + (int)(45 * a);

		return (struct rgb){ g, g, g };
	}
	case FLAME_MERGED:
		break;
	}
	return (struct rgb){ 215, 215, 215 };
}

static bool drawn(const struct flame_tree *t, uint32_t i)
{
	return i < t->n && val(&t->nodes[i], FLAME_NEW) > 0;
}

/* The first sibling from i on (i itself included) that is drawn, 0 when none. */
static uint32_t drawn_from(const struct flame_tree *t, uint32_t i)
{
	for (size_t k = 0; i && i < t->n && k < t->n; k++, i = t->nodes[i].next)
		if (drawn(t, i))
			return i;
	return 0;
}

/*
 * The drawn frame after i in depth-first pre-order (i's first drawn child when `descend`),
 * 0 at the end; *depth follows. xv[], when given, gets each frame's left edge in value units:
 * its parent's, plus its previous siblings' values.
 */
static uint32_t walk_next(const struct flame_tree *t, uint32_t i, bool descend, uint32_t *depth,
			  double *xv)
{
	uint32_t c = descend ? drawn_from(t, t->nodes[i].first_child) : 0;

	if (c) {
		if (xv)
			xv[c] = xv[i];
		++*depth;
		return c;
	}
	while (i && *depth) {
		uint32_t s = drawn_from(t, t->nodes[i].next);

		if (s) {
			if (xv)
				xv[s] = xv[i] + val(&t->nodes[i], FLAME_NEW);
			return s;
		}
		i = t->nodes[i].parent;
		if (i >= t->n)
			return 0;
		--*depth;
	}
	return 0;
}

/* The label of a frame `w` px wide: the name, or as much as fits ending "..", or nothing. */
static void put_label(FILE *f, const char *name, size_t len, size_t chars, double w)
{
	double room = floor((w - LABEL_PAD) / CHAR_W);
	size_t keep, i = 0;

	if (room < LABEL_MIN)
		return;
	if ((double)chars <= room) {
		put_esc(f, name, len);
		return;
	}
	keep = (size_t)room - 2;
	for (size_t c = 0; i < len && c < keep; c++)
		for (i++; i < len && ((unsigned char)name[i] & 0xc0) == 0x80; i++)
			;
	put_esc(f, name, i);
	fputs("..", f);
}

/* "NEW v (s%), BASE w, change +x.x%", or "v (s%)" for one side. */
static void put_values(FILE *f, const struct flame_tree *t, const struct flame_node *n,
		       double total)
{
	char v[96], b[96];
	double vn = val(n, FLAME_NEW), vb = val(n, FLAME_BASE), delta;
	bool same;

	flame_fmt_amount(t, vn, v, sizeof(v));
	if (!t->diff) {
		fprintf(f, "%s (%.2f%%)", v, 100 * vn / total);
		return;
	}
	flame_fmt_amount(t, vb, b, sizeof(b));
	fprintf(f, "NEW %s (%.2f%%), BASE %s, change ", v, 100 * vn / total, b);
	if (vb <= 0) {
		fputs("new", f);
		return;
	}
	same = diff_same(n, &delta);
	fprintf(f, "%+.1f%%", 100 * delta / vb);
	if (same && delta != 0)
		fputs(" (noise)", f);
}

static void put_frame(FILE *f, const struct flame_tree *t, const struct flame_node *n, double x,
		      double w, int y, double total)
{
	char name[TEXT_BUF], file[FILE_MAX_BYTES + 8], num[40], px[24];
	size_t len, chars, units;
	struct rgb c;

	len = clean_text(n->name ? n->name : "", NAME_MAX_BYTES, name, &chars, &units);
	fprintf(f, "<g class=\"f\" data-v=\"%s\"", fmt_exact(val(n, FLAME_NEW), num, sizeof(num)));
	if (t->diff)
		fprintf(f, " data-b=\"%s\"", fmt_exact(val(n, FLAME_BASE), num, sizeof(num)));
	/* data-l: where the name ends in the title, for the script's labels and search. */
	if (n->kind == FLAME_MERGED) {
		fprintf(f, " data-l=\"1\"><title>%s %" PRIu32 " frame%s too narrow to draw: ",
			FLAME_MERGED_NAME, n->merged, n->merged == 1 ? "" : "s");
		len = strlen(FLAME_MERGED_NAME);
		strcpy(name, FLAME_MERGED_NAME);
		chars = 1;
	} else {
		fprintf(f, " data-l=\"%zu\"><title>", units);
		put_esc(f, name, len);
		if (n->file && *n->file) {
			const char *base = strrchr(n->file, '/');
			size_t flen = clean_text(base ? base + 1 : n->file, FILE_MAX_BYTES, file,
						 NULL, NULL);

			fputs(" (", f);
			put_esc(f, file, flen);
			if (n->line > 0)
				fprintf(f, ":%" PRId64, n->line);
			putc(')', f);
		}
		fputs(": ", f);
	}
	put_values(f, t, n, total);
	c = t->diff ? diff_colour(n) : kind_colour(n->kind, n->name ? n->name : "");
	fprintf(f, "</title><rect x=\"%s\" y=\"%d\"", fmt_px(x, px, sizeof(px)), y);
	fprintf(f, " width=\"%s\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" rx=\"2\"/>",
		fmt_px(w, px, sizeof(px)), FRAME_H - 1, c.r, c.g, c.b);
	fprintf(f, "<text x=\"%s\" y=\"%d\">", fmt_px(x + LABEL_PAD, px, sizeof(px)), y + 11);
	put_label(f, name, len, chars, w);
	fputs("</text></g>\n", f);
}

/* One swatch and its word, right to left from *right; none from the first that does not fit. */
static void put_swatch(FILE *f, int *right, int y, const char *fill, const char *word)
{
	int w = (int)ceil(strlen(word) * CHAR_W), x = *right - w;

	if (x - 14 < XPAD) {
		*right = 0;
		return;
	}
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>", x - 14,
		y - 9, fill);
	fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", x, y, word);
	*right = x - 14 - 16;
}

/* What the colours say, at the right of the row under the subtitle. */
static void put_legend(FILE *f, const struct flame_tree *t, int width)
{
	static const struct {
		enum flame_kind kind;
		const char *word;
	} kinds[] = {
		{ FLAME_MERGED, "too narrow" },	  { FLAME_UNSYMBOLIZED, "unsymbolized" },
		{ FLAME_ALLOCATOR, "allocator" }, { FLAME_LIBRARY, "library" },
		{ FLAME_PROGRAM, "program" },
	};
	int right = width - XPAD, y = 58;
	char fill[24];

	fputs("<g id=\"legend\">", f);
	if (t->diff) {
		put_swatch(f, &right, y, DIFF_SAME, "unchanged");
		put_swatch(f, &right, y, "rgb(80,80,255)", "shrank");
		put_swatch(f, &right, y, "rgb(255,80,80)", "grew");
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
			/* a name hashing to the middle of each palette would do; any one will */
			struct rgb c = kind_colour(kinds[i].kind, "legend");

			snprintf(fill, sizeof(fill), "rgb(%d,%d,%d)", c.r, c.g, c.b);
			put_swatch(f, &right, y, fill, kinds[i].word);
		}
	}
	fputs("</g>\n", f);
}

int flame_svg_write(FILE *f, const struct flame_tree *t, const struct flame_svg_opts *o)
{
	int width = o && o->width > 0 ? o->width : 1200, height;
	const char *title = o && o->title ? o->title : "Flame Graph";
	double plotw = width - 2 * XPAD, total = t->n ? val(&t->nodes[0], FLAME_NEW) : 0;
	uint32_t maxdepth = 0, depth = 0, i;
	double *xv = NULL;

	/* First the depth, which says the height, and so every frame's y. */
	for (i = 0; total > 0;) {
		if (depth > maxdepth)
			maxdepth = depth;
		i = walk_next(t, i, true, &depth, NULL);
		if (!i)
			break;
	}
	height = TOP + (int)(maxdepth + 1) * FRAME_H + BOTTOM;

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n", f);
	fprintf(f,
		"<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\">\n",
		width, height, width, height);
	fputs("<title>", f);
	put_line(f, title, SIZE_MAX);
	fputs("</title>\n", f);
	fputs("<style type=\"text/css\"><![CDATA[\n"
	      "text{font-family:monospace;font-size:12px;fill:rgb(0,0,0)}\n"
	      "#title{font-family:Verdana,sans-serif;font-size:17px;text-anchor:middle}\n"
	      "#subtitle{text-anchor:middle;fill:rgb(90,90,90)}\n"
	      "#unzoom,#search,#matched{cursor:pointer}\n"
	      ".f:hover rect{stroke:rgb(0,0,0);stroke-width:0.5}\n"
	      ".f{cursor:pointer}\n"
	      ".parent{opacity:0.5}\n"
	      ".hide{display:none}\n"
	      "]]></style>\n",
	      f);
	/* The script only runs when the file is opened as a document, not as an <img>. */
	fputs("<script type=\"text/ecmascript\"><![CDATA[\n", f);
	fputs(flame_js, f);
	fputs("]]></script>\n", f);
	fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", width,
		height, BACKGROUND);
	fprintf(f, "<text id=\"title\" x=\"%d\" y=\"24\">", width / 2);
	put_line(f, title, (size_t)fmax(0, (width - 2 * XPAD - 2 * BUTTONS_W) / TITLE_CHAR_W));
	fprintf(f, "</text>\n<text id=\"subtitle\" x=\"%d\" y=\"42\">", width / 2);
	put_line(f, o && o->subtitle ? o->subtitle : "", (size_t)fmax(0, plotw / CHAR_W));
	fputs("</text>\n", f);
	fprintf(f, "<text id=\"unzoom\" class=\"hide\" x=\"%d\" y=\"24\">Reset Zoom</text>\n",
		XPAD);
	fprintf(f, "<text id=\"search\" x=\"%d\" y=\"24\" text-anchor=\"end\">Search</text>\n",
		width - XPAD);
	fprintf(f,
		"<text id=\"matched\" class=\"hide\" x=\"%d\" y=\"%d\" text-anchor=\"end\">"
		"Matched: </text>\n",
		width - XPAD, height - 10);
	fprintf(f, "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n", XPAD, height - 10);
	put_legend(f, t, width);

	if (total > 0) {
		int ybase = height - BOTTOM - FRAME_H;

		xv = xcalloc(t->n, sizeof(*xv));
		fputs("<g id=\"frames\">\n", f);
		depth = 0;
		for (i = 0;;) {
			const struct flame_node *n = &t->nodes[i];

			put_frame(f, t, n, XPAD + xv[i] / total * plotw,
				  val(n, FLAME_NEW) / total * plotw, ybase - (int)depth * FRAME_H,
				  total);
			i = walk_next(t, i, true, &depth, xv);
			if (!i)
				break;
		}
		fputs("</g>\n", f);
		free(xv);
	} else {
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no samples</text>\n",
			width / 2, height - BOTTOM - 4);
	}
	fputs("</svg>\n", f);
	if (fflush(f) == EOF || ferror(f))
		return errno ? -errno : -EIO;
	return 0;
}
