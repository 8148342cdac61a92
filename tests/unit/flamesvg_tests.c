/*
 * Unit tests of the flame graph's SVG writer (user/flamesvg.c) on trees built by hand: the file
 * is well-formed XML whatever the names hold, refers to nothing outside itself, draws every
 * frame of a positive value in pre-order with its exact value, lays children out left to
 * right, and colours a difference red, blue or white as the change and its noise say.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flamesvg.h"
#include "flametree.h"
#include "util.h"

#include "check.h"

/* ---- building trees ------------------------------------------------------------------------ */

struct tb {
	struct flame_tree t;
	uint32_t last_child[64 * 1024];
};

/* A tree holding only its root, "all". */
static struct tb *tb_new(bool diff)
{
	struct tb *b = xcalloc(1, sizeof(*b));

	b->t.nodes = xcalloc(64 * 1024, sizeof(struct flame_node));
	b->t.n = 1;
	b->t.unit = "bytes";
	b->t.type = "alloc_space";
	b->t.diff = diff;
	b->t.nodes[0] = (struct flame_node){ .name = "all", .file = "", .kind = FLAME_ROOT };
	return b;
}

/* A child of `parent`, after its others (add them in name order, as finish leaves them). */
static uint32_t tb_add(struct tb *b, uint32_t parent, const char *name, enum flame_kind kind,
		       double vn, double vb)
{
	uint32_t i = (uint32_t)b->t.n++;
	struct flame_node *n = &b->t.nodes[i];

	*n = (struct flame_node){ .name = name, .file = "", .kind = kind, .parent = parent };
	n->value[FLAME_NEW] = vn;
	n->value[FLAME_BASE] = vb;
	n->depth = b->t.nodes[parent].depth + 1;
	if (b->last_child[parent])
		b->t.nodes[b->last_child[parent]].next = i;
	else
		b->t.nodes[parent].first_child = i;
	b->last_child[parent] = i;
	return i;
}

static void tb_free(struct tb *b)
{
	free(b->t.nodes);
	free(b);
}

/* The picture of `t` in a malloc'd string; NULL when the writer failed. */
static char *svg_of(const struct flame_tree *t, const struct flame_svg_opts *o)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int err = f ? flame_svg_write(f, t, o) : -errno;

	if (f)
		fclose(f);
	if (err) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- reading the picture back -------------------------------------------------------------- */

/* An entity reference at s ("&amp;", "&#39;", ...): its length, 0 when not one. */
static size_t entity_len(const char *s)
{
	static const char *names[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
	size_t n;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strncmp(s, names[i], strlen(names[i])))
			return strlen(names[i]);
	if (s[1] != '#')
		return 0;
	n = strspn(s + 2, "0123456789");
	return n && s[2 + n] == ';' ? n + 3 : 0;
}

/*
 * Well-formed enough for the writer's output: the declaration, then elements whose tags
 * balance, attribute values quoted, '&' only in references and '<' only in markup outside
 * CDATA sections, valid UTF-8 with no control character but tab and newline.
 */
static bool xml_ok(const char *s)
{
	const char *stack[64], *p = s;
	size_t depth = 0, stack_len[64];
	bool root_seen = false;

	for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
		CHECK(*u >= 0x20 || *u == '\t' || *u == '\n', "control byte %#x at %zu", *u,
		      (size_t)(u - (const unsigned char *)s));
		if (*u >= 0x80) {
			int n = *u >= 0xf0 ? 3 : *u >= 0xe0 ? 2 : 1;

			CHECK(*u >= 0xc2 && *u <= 0xf4, "bad UTF-8 lead %#x at %zu", *u,
			      (size_t)(u - (const unsigned char *)s));
			for (int i = 1; i <= n; i++)
				CHECK((u[i] & 0xc0) == 0x80, "bad UTF-8 at %zu",
				      (size_t)(u - (const unsigned char *)s));
			u += n;
		}
	}
	CHECK(!strncmp(p, "<?xml ", 6), "no XML declaration");
	p = strstr(p, "?>") + 2;
	while (*p) {
		if (!strncmp(p, "<![CDATA[", 9)) {
			const char *end = strstr(p, "]]>");

			CHECK(end, "CDATA section not closed");
			CHECK(depth, "CDATA outside the root");
			p = end + 3;
		} else if (!strncmp(p, "<!--", 4)) {
			CHECK(strstr(p, "-->"), "comment not closed");
			p = strstr(p, "-->") + 3;
		} else if (p[0] == '<' && p[1] == '/') {
			size_t n = strcspn(p + 2, ">");

			CHECK(depth, "close tag %.20s without an open one", p);
			depth--;
			CHECK(n == stack_len[depth] && !strncmp(p + 2, stack[depth], n),
			      "</%.*s> closes <%.*s>", (int)n, p + 2, (int)stack_len[depth],
			      stack[depth]);
			p += n + 3;
		} else if (p[0] == '<') {
			const char *name = p + 1;
			size_t n = strcspn(name, " \t\n/>");

			CHECK(n, "empty tag name at %.20s", p);
			CHECK(depth || !root_seen, "a second root element at %.20s", p);
			p = name + n;
			for (;;) {
				p += strspn(p, " \t\n");
				if (*p == '>' || (p[0] == '/' && p[1] == '>'))
					break;
				size_t an = strcspn(p, "= \t\n/>");

				CHECK(an && p[an] == '=' && p[an + 1] == '"',
				      "bad attribute at %.40s", p);
				for (p += an + 2; *p != '"'; p++) {
					CHECK(*p && *p != '<', "bad attribute value at %.40s", p);
					CHECK(*p != '&' || entity_len(p),
					      "raw & in an attribute at %.40s", p);
				}
				p++;
			}
			if (*p == '/') {
				p += 2;
			} else {
				CHECK(depth < ARRAY_SIZE(stack), "nested too deep");
				stack[depth] = name, stack_len[depth] = n, depth++;
				p++;
			}
			root_seen = true;
		} else {
			CHECK(*p != '&' || entity_len(p), "raw & in text at %.40s", p);
			CHECK(depth || strchr(" \t\n", *p), "text outside the root at %.20s", p);
			p++;
		}
	}
	CHECK(depth == 0, "%zu elements not closed, the innermost <%.*s>", depth,
	      (int)stack_len[depth - 1], stack[depth - 1]);
	CHECK(root_seen, "no root element");
	return true;
}

/* One drawn frame as the file says it. */
struct frame {
	double v, b;
	bool has_b;
	char title[1024], label[512];
	int r, g, bl;
	double x, y, w;
};

/* An attribute's value within [s, end), or NULL. */
static const char *attr(const char *s, const char *end, const char *name, char *buf, size_t len)
{
	char key[32];
	const char *at;
	size_t n;

	snprintf(key, sizeof(key), " %s=\"", name);
	at = strstr(s, key);
	if (!at || at >= end)
		return NULL;
	at += strlen(key);
	n = strcspn(at, "\"");
	if (n >= len)
		n = len - 1;
	memcpy(buf, at, n);
	buf[n] = '\0';
	return buf;
}

/* A number attribute's value within [s, end), NaN when none. */
static double num_attr(const char *s, const char *end, const char *name)
{
	char buf[64];

	return s && attr(s, end, name, buf, sizeof(buf)) ? strtod(buf, NULL) : NAN;
}

/* Text between `open` and the next '<' within [s, end), into buf. */
static void inner(const char *s, const char *end, const char *open, char *buf, size_t len)
{
	const char *at = strstr(s, open);
	size_t n = 0;

	buf[0] = '\0';
	if (!at || at >= end)
		return;
	at = strchr(at, '>') + 1;
	n = strcspn(at, "<");
	if (n >= len)
		n = len - 1;
	memcpy(buf, at, n);
	buf[n] = '\0';
}

/* The frames of `svg` in file order (malloc'd), their number in *n. */
static struct frame *frames_of(const char *svg, size_t *n)
{
	struct frame *fr = NULL;
	size_t cap = 0;
	char buf[128];

	*n = 0;
	for (const char *p = strstr(svg, "<g class=\"f\""); p;
	     p = strstr(p + 1, "<g class=\"f\"")) {
		const char *end = strstr(p, "</g>");
		struct frame *f;

		grow((void **)&fr, &cap, *n + 1, sizeof(*fr));
		f = &fr[(*n)++];
		memset(f, 0, sizeof(*f));
		f->v = num_attr(p, end, "data-v");
		f->has_b = attr(p, end, "data-b", buf, sizeof(buf));
		f->b = f->has_b ? strtod(buf, NULL) : NAN;
		if (attr(p, end, "fill", buf, sizeof(buf)))
			sscanf(buf, "rgb(%d,%d,%d)", &f->r, &f->g, &f->bl);
		f->x = num_attr(strstr(p, "<rect"), end, "x");
		f->y = num_attr(strstr(p, "<rect"), end, "y");
		f->w = num_attr(p, end, "width");
		inner(p, end, "<title", f->title, sizeof(f->title));
		inner(p, end, "<text", f->label, sizeof(f->label));
	}
	return fr;
}

/* The frame whose title starts with `name` followed by " (" or ":". */
static const struct frame *frame_named(const struct frame *fr, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (!strncmp(fr[i].title, name, len) &&
		    (fr[i].title[len] == ':' || !strncmp(fr[i].title + len, " (", 2)))
			return &fr[i];
	return NULL;
}

/* ---- the tests ----------------------------------------------------------------------------- */

/* main -> {alloc_a -> malloc, alloc_b}, from libc and the program, in bytes. */
static struct tb *simple_tree(void)
{
	struct tb *b = tb_new(false);
	uint32_t m, a;

	b->t.nodes[0].value[FLAME_NEW] = 100 << 20;
	m = tb_add(b, 0, "main", FLAME_PROGRAM, 100 << 20, 0);
	b->t.nodes[m].file = "/src/app/main.c";
	b->t.nodes[m].line = 12;
	a = tb_add(b, m, "alloc_a", FLAME_LIBRARY, 60 << 20, 0);
	tb_add(b, a, "malloc", FLAME_ALLOCATOR, 60 << 20, 0);
	tb_add(b, m, "alloc_b", FLAME_PROGRAM, 40 << 20, 0);
	return b;
}

TEST(simple_tree)
{
	struct flame_svg_opts o = { .title = "Allocations", .subtitle = "100 MiB in all" };
	struct tb *b = simple_tree();
	char *svg = svg_of(&b->t, &o);
	static const char *order[] = { "all", "main", "alloc_a", "malloc", "alloc_b" };
	struct frame *fr;
	size_t n;

	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	CHECK(strstr(svg, "xmlns=\"http://www.w3.org/2000/svg\""), "no SVG namespace");
	CHECK(strstr(svg, "width=\"1200\""), "not 1200 wide");
	for (const char *id = "title\0subtitle\0details\0unzoom\0search\0matched\0"; *id;
	     id += strlen(id) + 1) {
		char want[32];

		snprintf(want, sizeof(want), "id=\"%s\"", id);
		CHECK(strstr(svg, want), "no %s", want);
	}
	CHECK(strstr(svg, ">Allocations</text>"), "no title");
	CHECK(strstr(svg, ">100 MiB in all</text>"), "no subtitle");
	fr = frames_of(svg, &n);
	CHECK_INT(n, 5);
	/* pre-order, the root first */
	for (size_t i = 0; i < n; i++)
		CHECK(frame_named(fr, n, order[i]) == &fr[i], "frame %zu is \"%s\"", i,
		      fr[i].title);
	CHECK(fr[0].v == 100 << 20, "root data-v %g", fr[0].v);
	CHECK(!fr[0].has_b, "data-b in a picture of one side");
	/* the root full width, at the bottom; children left to right in order */
	CHECK(fr[0].x == 10 && fr[0].w == 1180, "root at %g width %g", fr[0].x, fr[0].w);
	for (size_t i = 1; i < n; i++)
		CHECK(fr[i].y < fr[0].y, "frame %zu below the root", i);
	CHECK(fr[1].y == fr[0].y - 16 && fr[2].y == fr[1].y - 16 && fr[3].y == fr[2].y - 16,
	      "rows %g %g %g %g", fr[0].y, fr[1].y, fr[2].y, fr[3].y);
	CHECK(fr[4].y == fr[2].y, "siblings on different rows");
	CHECK(fr[2].x == 10 && fabs(fr[2].w - 708) < 0.1, "alloc_a at %g width %g", fr[2].x,
	      fr[2].w);
	CHECK(fabs(fr[4].x - 718) < 0.1 && fabs(fr[4].w - 472) < 0.1, "alloc_b at %g width %g",
	      fr[4].x, fr[4].w);
	CHECK_STR(fr[1].title, "main (main.c:12): 100.00 MiB (100.00%)");
	CHECK_STR(fr[4].title, "alloc_b: 40.00 MiB (40.00%)");
	CHECK_STR(fr[1].label, "main");
	/* the kinds' palettes: program red to orange, library yellow, allocator green */
	CHECK(fr[1].r >= 205 && fr[1].g <= 160 && fr[1].bl <= 55, "program rgb(%d,%d,%d)", fr[1].r,
	      fr[1].g, fr[1].bl);
	CHECK(fr[2].r >= 215 && fr[2].g >= 180 && fr[2].bl <= 80, "library rgb(%d,%d,%d)", fr[2].r,
	      fr[2].g, fr[2].bl);
	CHECK(fr[3].g > fr[3].r && fr[3].g > fr[3].bl, "allocator rgb(%d,%d,%d)", fr[3].r, fr[3].g,
	      fr[3].bl);
	free(fr);
	free(svg);
	tb_free(b);
	return true;
}

/* Nothing outside the file: no link, no imported style, no script source, no font file. */
TEST(self_contained)
{
	struct tb *b = simple_tree();
	char *svg = svg_of(&b->t, NULL), *p;

	CHECK(svg, "write failed");
	for (const char *bad = "href\0url(\0@import\0src=\0@font-face\0<!DOCTYPE\0"; *bad;
	     bad += strlen(bad) + 1)
		CHECK(!strstr(svg, bad), "the file has \"%s\"", bad);
	/* the only URI is the namespace's name */
	p = strstr(svg, "http");
	CHECK(p && !strncmp(p, "http://www.w3.org/2000/svg\"", 27) && !strstr(p + 1, "http"),
	      "a URI other than the namespace");
	CHECK(strstr(svg, "<script type=\"text/ecmascript\"><![CDATA[\n"), "no inline script");
	/* the style's and the script's CDATA sections end once each */
	p = strstr(svg, "]]>");
	CHECK(p && (p = strstr(p + 3, "]]>")) && !strstr(p + 3, "]]>"), "\"]]>\" not twice");
	CHECK(strstr(svg, "Flame Graph"), "no default title");
	free(svg);
	tb_free(b);
	return true;
}

/* Names of any bytes: escaped, invalid UTF-8 and controls replaced, long ones cut. */
TEST(names_escaped)
{
	char longname[1200];
	struct tb *b = tb_new(false);
	const char *want;
	char *svg;
	struct frame *fr;
	size_t n;

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	b->t.nodes[0].value[FLAME_NEW] = 400;
	tb_add(b, 0, "a&b<c>\"d'e", FLAME_PROGRAM, 100, 0);
	tb_add(b, 0, "bad\xff\xfe utf8 \xc3( \xed\xa0\x80 \xe0\x80\xaf", FLAME_PROGRAM, 100, 0);
	tb_add(b, 0, "ctl\x01\x1b[31m\ttab", FLAME_PROGRAM, 100, 0);
	tb_add(b, 0, longname, FLAME_PROGRAM, 100, 0);
	b->t.nodes[1].file = "/src/<odd>&file.c";
	b->t.nodes[1].line = 3;
	svg = svg_of(&b->t, &(struct flame_svg_opts){ .title = "t<&>\xff", .subtitle = "s\"'" });
	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	fr = frames_of(svg, &n);
	CHECK_INT(n, 5);
	CHECK_STR(fr[1].title, "a&amp;b&lt;c&gt;&quot;d&#39;e (&lt;odd&gt;&amp;file.c:3): 100 B "
			       "(25.00%)");
	CHECK(!strncmp(fr[1].label, "a&amp;b&lt;c&gt;&quot;d&#39;e", 28), "label %s", fr[1].label);
	/* a lone byte, a surrogate and an overlong sequence: a U+FFFD per byte */
	want = "bad\xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd( "
	       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
	       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd: ";
	CHECK(!strncmp(fr[2].title, want, strlen(want)), "title %s", fr[2].title);
	want = "ctl\xef\xbf\xbd\xef\xbf\xbd[31m tab: ";
	CHECK(!strncmp(fr[3].title, want, strlen(want)), "title %s", fr[3].title);
	/* cut at 300 bytes with "…", the label within its frame */
	CHECK(strlen(fr[4].title) < 300 + 3 + 40, "title of %zu bytes", strlen(fr[4].title));
	CHECK(strstr(fr[4].title, "xxx\xe2\x80\xa6: 100 B"), "title %s", fr[4].title);
	CHECK(strlen(fr[4].label) == 40 && !strcmp(fr[4].label + 38, ".."), "label %s",
	      fr[4].label);
	CHECK(strstr(svg, ">t&lt;&amp;&gt;\xef\xbf\xbd</text>"), "title not escaped");
	CHECK(strstr(svg, ">s&quot;&#39;</text>"), "subtitle not escaped");
	free(fr);
	free(svg);
	tb_free(b);
	return true;
}

/* A title wider than the picture is cut between the buttons, and whole in its tooltip. */
TEST(long_title)
{
	char title[301], *svg, *at, *end;
	struct tb *b = simple_tree();
	size_t shown;

	memset(title, 'T', sizeof(title) - 1);
	title[sizeof(title) - 1] = '\0';
	svg = svg_of(&b->t, &(struct flame_svg_opts){ .title = title, .subtitle = "short" });
	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	at = strstr(svg, "<text id=\"title\"");
	CHECK(at, "no title");
	at = strchr(at, '>') + 1;
	shown = strspn(at, "T");
	/* (1200 - 2 * 10 - 2 * 90) px at 10.2 px a glyph: 98, the last one "…" */
	CHECK_INT(shown, 97);
	CHECK(!strncmp(at + shown, "\xe2\x80\xa6<title>", 10), "%.20s", at + shown);
	end = strstr(at, "</title></text>");
	CHECK(end && end - (at + shown + 10) == 300, "tooltip not the whole title");
	CHECK(strstr(svg, ">short</text>"), "subtitle cut");
	free(svg);
	tb_free(b);
	return true;
}

/* A narrow picture: everything inside it, the frames still their share of the width. */
TEST(narrow_width)
{
	struct tb *b = simple_tree();
	char *svg = svg_of(&b->t, &(struct flame_svg_opts){ .title = "a title", .width = 200 });
	struct frame *fr;
	size_t n;

	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	CHECK(strstr(svg, " width=\"200\" "), "not 200 wide");
	for (const char *p = strstr(svg, " x=\""); p; p = strstr(p + 1, " x=\""))
		CHECK(atof(p + 4) >= 0 && atof(p + 4) <= 200, "x=%.10s", p + 4);
	fr = frames_of(svg, &n);
	CHECK_INT(n, 5);
	CHECK(fr[0].w == 180 && fabs(fr[4].x - 118) < 0.1, "root %g, alloc_b at %g", fr[0].w,
	      fr[4].x);
	free(fr);
	free(svg);
	tb_free(b);
	return true;
}

/* Frames narrower than three characters have no label; wider ones what fits, then "..". */
TEST(labels_fit)
{
	struct tb *b = tb_new(false);
	char *svg;
	struct frame *fr;
	size_t n;

	/* 1180 px of 1180 units: a frame's value is its width */
	b->t.unit = "count";
	b->t.type = "alloc_objects";
	b->t.nodes[0].value[FLAME_NEW] = 1180;
	tb_add(b, 0, "abcdefghij", FLAME_PROGRAM, 3 + 7.2 * 10, 0); /* just fits */
	tb_add(b, 0, "bcdefghijk", FLAME_PROGRAM, 3 + 7.2 * 9, 0);  /* 9: 7 and ".." */
	tb_add(b, 0, "cdefghijkl", FLAME_PROGRAM, 3 + 7.2 * 3, 0);  /* 3: "c.." */
	tb_add(b, 0, "defghijklm", FLAME_PROGRAM, 3 + 7.2 * 2.9, 0);
	tb_add(b, 0, "\xc3\xa9t\xc3\xa9\xc3\xa9t\xc3\xa9", FLAME_PROGRAM, 3 + 7.2 * 5, 0);
	svg = svg_of(&b->t, NULL);
	CHECK(svg, "write failed");
	fr = frames_of(svg, &n);
	CHECK_INT(n, 6);
	CHECK_STR(fr[1].label, "abcdefghij");
	CHECK_STR(fr[2].label, "bcdefgh..");
	CHECK_STR(fr[3].label, "c..");
	CHECK_STR(fr[4].label, "");
	CHECK_STR(fr[5].label, "\xc3\xa9t\xc3\xa9..");
	CHECK_STR(fr[0].title, "all: 1,180 allocs (100.00%)");
	free(fr);
	free(svg);
	tb_free(b);
	return true;
}

/* Values print back exactly; children's widths follow their values, zero ones are not drawn. */
TEST(values_exact)
{
	struct tb *b = tb_new(false);
	uint32_t z;
	char *svg;
	struct frame *fr;
	size_t n;

	b->t.op = "handle_request";
	b->t.nodes[0].value[FLAME_NEW] = 1804.0 / 3;
	tb_add(b, 0, "a", FLAME_PROGRAM, 1000.0 / 3, 0);
	z = tb_add(b, 0, "b", FLAME_PROGRAM, 0, 0);
	tb_add(b, z, "under_zero", FLAME_PROGRAM, 5, 0);
	tb_add(b, 0, "c", FLAME_PROGRAM, -7, 0);
	tb_add(b, 0, "d", FLAME_PROGRAM, 804.0 / 3, 0);
	tb_add(b, 0, "e", FLAME_PROGRAM, NAN, 0);
	svg = svg_of(&b->t, NULL);
	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	fr = frames_of(svg, &n);
	CHECK_INT(n, 3);
	CHECK(fr[0].v == 1804.0 / 3 && fr[1].v == 1000.0 / 3 && fr[2].v == 804.0 / 3,
	      "values %.17g %.17g %.17g", fr[0].v, fr[1].v, fr[2].v);
	CHECK(fabs(fr[2].x - (10 + 1180 * 1000.0 / 1804)) < 0.1, "d at %g", fr[2].x);
	CHECK_STR(fr[0].title, "all: 601.3 B/op (100.00%)");
	CHECK_STR(fr[1].title, "a: 333.3 B/op (55.43%)");
	free(fr);
	free(svg);
	tb_free(b);
	return true;
}

/* "…" frames say how many frames they stand for, in light grey. */
TEST(merged_frame)
{
	struct tb *b = tb_new(false);
	uint32_t m;
	char *svg;
	struct frame *fr;
	size_t n;

	b->t.nodes[0].value[FLAME_NEW] = 1000;
	tb_add(b, 0, "big", FLAME_PROGRAM, 900, 0);
	m = tb_add(b, 0, FLAME_MERGED_NAME, FLAME_MERGED, 100, 0);
	b->t.nodes[m].merged = 7;
	svg = svg_of(&b->t, NULL);
	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	fr = frames_of(svg, &n);
	CHECK_INT(n, 3);
	CHECK_STR(fr[2].title, "\xe2\x80\xa6 7 frames too narrow to draw: 100 B (10.00%)");
	CHECK_STR(fr[2].label, "\xe2\x80\xa6");
	CHECK(fr[2].r == fr[2].g && fr[2].g == fr[2].bl && fr[2].r >= 200, "rgb(%d,%d,%d)", fr[2].r,
	      fr[2].g, fr[2].bl);
	free(fr);
	free(svg);
	tb_free(b);
	return true;
}

/* A function's colour is its name's, whatever the tree around it. */
TEST(colour_stable)
{
	struct tb *b1 = tb_new(false), *b2 = tb_new(false);
	char *s1, *s2;
	struct frame *f1, *f2;
	const struct frame *x1, *x2;
	size_t n1, n2;

	b1->t.nodes[0].value[FLAME_NEW] = 10;
	tb_add(b1, 0, "aaa", FLAME_PROGRAM, 5, 0);
	tb_add(b1, 0, "zzz", FLAME_PROGRAM, 5, 0);
	b2->t.nodes[0].value[FLAME_NEW] = 30;
	tb_add(b2, 0, "mmm", FLAME_PROGRAM, 20, 0);
	tb_add(b2, 0, "zzz", FLAME_PROGRAM, 10, 0);
	s1 = svg_of(&b1->t, NULL);
	s2 = svg_of(&b2->t, NULL);
	CHECK(s1 && s2, "write failed");
	f1 = frames_of(s1, &n1);
	f2 = frames_of(s2, &n2);
	x1 = frame_named(f1, n1, "zzz");
	x2 = frame_named(f2, n2, "zzz");
	CHECK(x1 && x2, "no zzz");
	CHECK(x1->r == x2->r && x1->g == x2->g && x1->bl == x2->bl, "rgb(%d,%d,%d) and (%d,%d,%d)",
	      x1->r, x1->g, x1->bl, x2->r, x2->g, x2->bl);
	x1 = frame_named(f1, n1, "aaa");
	CHECK(x1->r != x2->r || x1->g != x2->g || x1->bl != x2->bl, "aaa and zzz alike");
	free(f1);
	free(f2);
	free(s1);
	free(s2);
	tb_free(b1);
	tb_free(b2);
	return true;
}

/* A difference of every kind: grown, shrunk, equal, within noise, new, gone, slightly. */
static struct tb *diff_tree(void)
{
	struct tb *b = tb_new(true);
	uint32_t m, g;

	b->t.unit = "count";
	b->t.type = "alloc_objects";
	b->t.op = "run";
	b->t.nodes[0].value[FLAME_NEW] = 465;
	b->t.nodes[0].value[FLAME_BASE] = 430;
	m = tb_add(b, 0, "main", FLAME_PROGRAM, 465, 430);
	tb_add(b, m, "equal", FLAME_PROGRAM, 100, 100);
	tb_add(b, m, "grown", FLAME_PROGRAM, 200, 100);
	tb_add(b, m, "new_one", FLAME_PROGRAM, 10, 0);
	g = tb_add(b, m, "noisy", FLAME_PROGRAM, 105, 100);
	b->t.nodes[g].var[FLAME_NEW] = b->t.nodes[g].var[FLAME_BASE] = 100;
	g = tb_add(b, m, "old_one", FLAME_PROGRAM, 0, 30);
	tb_add(b, g, "under_old", FLAME_PROGRAM, 0, 30);
	tb_add(b, m, "shrunk", FLAME_PROGRAM, 50, 100);
	tb_add(b, m, "slightly", FLAME_PROGRAM, 101, 100);
	return b;
}

/* Red grew, blue shrank, white within noise; deeper the larger the change. */
TEST(diff_colours)
{
	struct tb *b = diff_tree();
	char *svg = svg_of(&b->t, NULL);
	const struct frame *f;
	struct frame *fr;
	size_t n;

	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	fr = frames_of(svg, &n);
	/* old_one and what is above it: not in NEW, not drawn */
	CHECK_INT(n, 8);
	CHECK(!frame_named(fr, n, "old_one") && !frame_named(fr, n, "under_old"), "drawn");
	for (size_t i = 0; i < n; i++)
		CHECK(fr[i].has_b, "frame %zu without data-b", i);
	CHECK(fr[0].v == 465 && fr[0].b == 430, "root %g %g", fr[0].v, fr[0].b);

	f = frame_named(fr, n, "equal");
	CHECK(f->r == 250 && f->g == 250 && f->bl == 250, "equal rgb(%d,%d,%d)", f->r, f->g, f->bl);
	CHECK_STR(f->title, "equal: NEW 100 allocs/op (21.51%), BASE 100 allocs/op, change +0.0%");
	f = frame_named(fr, n, "noisy");
	CHECK(f->r == 250 && f->g == 250 && f->bl == 250, "noisy rgb(%d,%d,%d)", f->r, f->g, f->bl);
	CHECK(strstr(f->title, "change +5.0% (noise)"), "%s", f->title);
	f = frame_named(fr, n, "grown");
	CHECK(f->r == 255 && f->g < 100 && f->g == f->bl, "grown rgb(%d,%d,%d)", f->r, f->g, f->bl);
	CHECK(strstr(f->title, "change +100.0%"), "%s", f->title);
	f = frame_named(fr, n, "new_one");
	CHECK(f->r == 255 && f->g < 100, "new rgb(%d,%d,%d)", f->r, f->g, f->bl);
	CHECK(strstr(f->title, "BASE 0 allocs/op, change new"), "%s", f->title);
	f = frame_named(fr, n, "shrunk");
	CHECK(f->bl == 255 && f->r < 200 && f->r == f->g, "shrunk rgb(%d,%d,%d)", f->r, f->g,
	      f->bl);
	CHECK(strstr(f->title, "change -50.0%"), "%s", f->title);
	/* 1% without noise: a change, the least tint, still visible */
	f = frame_named(fr, n, "slightly");
	CHECK(f->r == 255 && f->g <= 230 && f->g > frame_named(fr, n, "grown")->g,
	      "slightly rgb(%d,%d,%d)", f->r, f->g, f->bl);
	CHECK(strstr(svg, ">grew</text>") && strstr(svg, ">shrank</text>") &&
		      strstr(svg, ">unchanged</text>"),
	      "no legend");
	free(fr);
	free(svg);
	tb_free(b);
	return true;
}

/* A failed write is the writer's error. */
TEST(write_error)
{
	struct tb *b = simple_tree();
	FILE *f = fopen("/dev/full", "w");
	int err;

	CHECK(f, "/dev/full: %s", strerror(errno));
	err = flame_svg_write(f, &b->t, NULL);
	fclose(f);
	CHECK_INT(err, -ENOSPC);
	tb_free(b);
	return true;
}

/* Nothing to draw: still a picture, saying so. */
TEST(empty_tree)
{
	struct tb *b = tb_new(false);
	char *svg = svg_of(&b->t, NULL);
	size_t n;

	CHECK(svg, "write failed");
	TRY(xml_ok(svg));
	free(frames_of(svg, &n));
	CHECK_INT(n, 0);
	CHECK(strstr(svg, ">no samples</text>"), "no word of it");
	free(svg);
	tb_free(b);
	return true;
}

/*
 * FLAME_MAX_FRAMES frames of C++-length names: the file stays small enough to open and mail.
 * Prints what a frame costs, for the record.
 */
TEST(max_frames_size)
{
	struct tb *b = tb_new(false);
	static char names[FLAME_MAX_FRAMES][48];
	uint32_t k = 0;
	char *svg;
	size_t n, len;

	b->t.nodes[0].value[FLAME_NEW] = 1e9;
	for (uint32_t i = 0; i < 100; i++) {
		uint32_t p;

		snprintf(names[k], sizeof(names[k]), "ns::Service::handler_%03u(Request&)", i);
		p = tb_add(b, 0, names[k++], FLAME_PROGRAM, 1e7, 0);
		b->t.nodes[p].file = "/src/service/handler.cc";
		b->t.nodes[p].line = 100 + i;
		for (uint32_t j = 0; j < 99 && k < FLAME_MAX_FRAMES - 1; j++) {
			snprintf(names[k], sizeof(names[k]), "std::vector<int>::_M_realloc_%02u",
				 j);
			tb_add(b, p, names[k++], FLAME_LIBRARY, 1e7 / 99, 0);
		}
	}
	svg = svg_of(&b->t, NULL);
	CHECK(svg, "write failed");
	len = strlen(svg);
	free(frames_of(svg, &n));
	CHECK_INT(n, FLAME_MAX_FRAMES);
	printf("# %zu frames: %zu bytes, %.0f per frame\n", n, len, (double)len / n);
	CHECK(len < 3 << 20, "%zu bytes", len);
	free(svg);
	tb_free(b);
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(simple_tree),
	T(self_contained),
	T(names_escaped),
	T(long_title),
	T(narrow_width),
	T(labels_fit),
	T(values_exact),
	T(merged_frame),
	T(colour_stable),
	T(diff_colours),
	T(write_error),
	T(empty_tree),
	T(max_frames_size),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
