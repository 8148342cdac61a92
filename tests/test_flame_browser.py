"""The flame graph's SVG in a real browser: `allocprof flame` draws a recorded program, and
Debian's chromium, headless, runs the embedded script and dumps the document it made (--dump-dom)
or paints it (--screenshot). The URL fragment drives
search and zoom (#s=REGEX, #z=N); a test-only script appended to a copy of the file drives hover,
click, keys and the search prompt, and leaves what it saw in the document. What the script shows
is checked against the static file: the matches' share from its data-v values, a zoomed frame's
width from its value. Chromium returns when the page is done: no test waits for a guessed time,
the timeouts only bound a broken run."""

import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import urllib.parse
import xml.etree.ElementTree as ET
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ALLOCPROF, Case, needs, record, target  # noqa: E402
import pprofwrite  # noqa: E402

SVG_NS = "{http://www.w3.org/2000/svg}"
FRAME_H = 16  # a frame's row (user/flamesvg.c)
CHAR_W, PAD, MIN_CHARS = 7.2, 3, 3  # its labels' fitting
HL_FILL = "rgb(230,0,230)"


def chromium(args, user_dir, timeout=120):
    """Runs headless chromium; its CompletedProcess (bytes). A profile directory of the
    test's own, so that runs never share a lock or a cache."""
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                           "--user-data-dir=" + user_dir, "--virtual-time-budget=5000", *args],
                          capture_output=True, timeout=timeout)
    return proc


def url(path, fragment=""):
    return "file://" + urllib.parse.quote(os.path.abspath(path)) + (
        "#" + fragment if fragment else "")


def classes(el):
    return set((el.get("class") or "").split())


def frames(root):
    """The drawn frames of a parsed SVG in document order, each a dict: its element, v (data-v),
    b (data-b or None), name (the title up to data-l), title, fill, x, y, w, label, classes,
    depth (from its row), parent (index, -1 for the root) and end (one past its subtree)."""
    out, stack, ybase = [], [], None
    for g in root.iter(SVG_NS + "g"):
        if "f" not in classes(g):
            continue
        rect, text = g.find(SVG_NS + "rect"), g.find(SVG_NS + "text")
        title = g.findtext(SVG_NS + "title") or ""
        y = float(rect.get("y"))
        if ybase is None:
            ybase = y
        depth = round((ybase - y) / FRAME_H)
        # data-l counts UTF-16 code units, as the script's substr does
        units = title.encode("utf-16-le")
        name = units[:2 * int(g.get("data-l"))].decode("utf-16-le")
        f = dict(el=g, v=float(g.get("data-v")),
                 b=float(g.get("data-b")) if g.get("data-b") is not None else None,
                 name=name, title=title, fill=rect.get("fill"), x=float(rect.get("x")), y=y,
                 w=float(rect.get("width")), label=text.text or "" if text is not None else "",
                 classes=classes(g), depth=depth, parent=stack[-1] if stack else -1, end=None)
        i = len(out)
        while len(stack) > depth:
            out[stack.pop()]["end"] = i
        f["parent"] = stack[-1] if stack else -1
        stack.append(i)
        out.append(f)
    for i in stack:
        out[i]["end"] = len(out)
    return out


def by_id(root, ident):
    for el in root.iter():
        if el.get("id") == ident:
            return el
    raise AssertionError("no element with id %r" % ident)


def matched_share(fr, pattern):
    """flamegraph.pl's share of a search: each matching frame's value, a match inside another
    match counted once (the outer one holds it), over the root's."""
    total, covered_to = 0.0, 0
    for i, f in enumerate(fr):
        if re.search(pattern, f["name"]) and i >= covered_to:
            total += f["v"]
            covered_to = f["end"]
    return 100 * total / fr[0]["v"]


def label(name, w):
    """The label flamesvg.c and flame.js give a frame `w` px wide."""
    room = int((w - PAD) // CHAR_W)
    if room < MIN_CHARS:
        return ""
    return name if len(name) <= room else name[:room - 2] + ".."


def png_colours(path, rows=None):
    """The distinct (r, g, b) colours of an 8-bit RGB or RGBA PNG (chromium's screenshots),
    decoded with zlib alone; only the first `rows` rows when given (the picture's, not the
    empty page under it)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and not interlace, \
                "PNG of depth %d colour type %d interlace %d" % (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    for r in range(min(height, rows or height)):
        ftype = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xff
        elif ftype == 2:
            line = bytearray((a + b) & 0xff for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xff
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xff
        else:
            assert ftype == 0, "PNG filter %d" % ftype
        for i in range(0, stride, bpp):
            colours.add(bytes(line[i:i + 3]))
        prev = line
    return {tuple(c) for c in colours}


def rgb(fill):
    m = re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill)
    assert m, fill
    return tuple(int(x) for x in m.groups())


# Appended to a copy of the picture: drives what a person does (hover, click, Escape, "/",
# the search prompt, a click on the matches) after flame.js's own load handler (registered
# first), and writes what each step left into <text id="test-result"> as JSON.
DRIVER = """<script type="text/ecmascript"><![CDATA[
window.addEventListener("load", function () {
	var out = {}, gs = document.querySelectorAll("g.f"), I = %(zoom)d;
	function $(id) { return document.getElementById(id); }
	function fire(el, type) { el.dispatchEvent(new MouseEvent(type, {bubbles: true})); }
	function key(k) { document.dispatchEvent(new KeyboardEvent("keydown", {key: k, bubbles: true})); }
	function state() {
		var s = {x: [], w: [], hidden: [], parent: [], hl: [], labels: []};
		for (var i = 0; i < gs.length; i++) {
			var r = gs[i].querySelector("rect");
			s.x.push(+r.getAttribute("x"));
			s.w.push(+r.getAttribute("width"));
			s.labels.push(gs[i].querySelector("text").textContent);
			if (gs[i].classList.contains("hide")) s.hidden.push(i);
			if (gs[i].classList.contains("parent")) s.parent.push(i);
			if (gs[i].classList.contains("hl")) s.hl.push(i);
		}
		s.unzoom = !$("unzoom").classList.contains("hide");
		s.matched = $("matched").classList.contains("hide") ? null : $("matched").textContent;
		s.hash = location.hash;
		return s;
	}
	try {
		fire(gs[I].querySelector("rect"), "mouseover");
		out.details = $("details").textContent;
		fire(gs[I].querySelector("rect"), "mouseout");
		out.detailsAfter = $("details").textContent;
		fire(gs[I].querySelector("text"), "click");
		out.zoomed = state();
		key("Escape");
		out.escaped = state();
		fire(gs[I].querySelector("rect"), "click");
		fire($("unzoom"), "click");
		out.reset = state();
		window.prompt = function () { return %(regex)s; };
		key("/");
		out.searched = state();
		fire($("matched"), "click");
		out.cleared = state();
		window.prompt = function () { return %(regex)s; };
		fire($("search"), "click");
		window.prompt = function () { return ""; };
		fire($("search"), "click");
		out.emptied = state();
	} catch (e) {
		out.error = String(e) + " " + e.stack;
	}
	var t = document.createElementNS("http://www.w3.org/2000/svg", "text");
	t.setAttribute("id", "test-result");
	t.textContent = JSON.stringify(out);
	document.documentElement.appendChild(t);
});
]]></script>
"""


class BrowserCase(Case):
    """What the browser tests share: chromium's DOM and screenshot of a file, and the checks of
    a search and a zoom against the static file's frames (self.fr unless given)."""

    fr = []

    def dom(self, path, fragment=""):
        """The document chromium made of `path` after its scripts ran, parsed."""
        proc = chromium(["--dump-dom", url(path, fragment)], self.path("chromium"))
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace")[-2000:])
        try:
            return ET.fromstring(proc.stdout)
        except ET.ParseError as e:
            self.fail("chromium's DOM is not XML (%s):\n%s" % (e, proc.stdout[:2000]))

    def screenshot(self, path, png, fragment=""):
        proc = chromium(["--screenshot=" + png, "--window-size=1200,800", url(path, fragment)],
                        self.path("chromium"))
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace")[-2000:])
        self.assertTrue(os.path.exists(png), "no screenshot")

    def check_search(self, dom, pattern, st=None):
        fr, st = frames(dom), st or self.fr
        self.assertEqual(len(fr), len(st))
        hl = [f["name"] for f in fr if "hl" in f["classes"]]
        want = [f["name"] for f in st if re.search(pattern, f["name"])]
        self.assertTrue(want, "nothing matches %r" % pattern)
        self.assertEqual(hl, want)
        for f in fr:
            self.assertEqual(f["fill"] == HL_FILL, "hl" in f["classes"], f["name"])
        matched = by_id(dom, "matched")
        self.assertNotIn("hide", classes(matched))
        self.assertEqual(matched.text, "Matched: %.1f%%" % matched_share(st, pattern))

    def check_zoom(self, dom, z, st=None):
        fr, st = frames(dom), st or self.fr
        plot_x, plot_w = st[0]["x"], st[0]["w"]
        self.assertAlmostEqual(fr[z]["x"], plot_x, places=2)
        self.assertAlmostEqual(fr[z]["w"], plot_w, places=2)
        ancestors = set()
        a = st[z]["parent"]
        while a >= 0:
            ancestors.add(a)
            a = st[a]["parent"]
        for i, f in enumerate(fr):
            inside = z <= i < st[z]["end"]
            if inside:
                self.assertNotIn("hide", f["classes"], f["name"])
                # descendants scaled with it, from its left edge
                self.assertAlmostEqual(f["w"], st[i]["v"] / st[z]["v"] * plot_w, places=1)
                self.assertGreaterEqual(f["x"], plot_x - 0.01)
                self.assertEqual(f["label"], label(f["name"], f["w"]), f["name"])
            elif i in ancestors:
                self.assertIn("parent", f["classes"], f["name"])
                self.assertAlmostEqual(f["w"], plot_w, places=2)
            else:
                self.assertIn("hide", f["classes"], f["name"])
        self.assertNotIn("hide", classes(by_id(dom, "unzoom")))


@needs("root", "chromium")
class FlameBrowser(BrowserCase):
    """The flame graph of tests/targets/requests.c recorded exactly, and the difference of two
    of its runs: the second makes 3 more allocations per request in build_response (grew) and
    none of the first's 100 extra bytes in log_line (shrank); parse_headers is the same."""

    @classmethod
    def setUpClass(cls):
        cls._dir = tempfile.TemporaryDirectory(prefix="allocprof-flame-")
        d = cls._dir.name
        cls.svg, cls.diff_svg = os.path.join(d, "flame.svg"), os.path.join(d, "diff.svg")
        runs = {"one": ["--requests", "500"], "base": ["--requests", "300", "--bigger", "100"],
                "new": ["--requests", "300", "--extra", "3"]}
        for name, args in runs.items():
            proc = record(["--exact", "-q", "-o", os.path.join(d, name + ".pb.gz"), "--",
                           target("requests"), *args])
            assert proc.returncode == 0, proc.stderr
        for args in ([os.path.join(d, "one.pb.gz"), "-o", cls.svg],
                     ["--base", os.path.join(d, "base.pb.gz"), os.path.join(d, "new.pb.gz"),
                      "-o", cls.diff_svg]):
            proc = subprocess.run([ALLOCPROF, "flame", *args], capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, proc.stderr
        cls.static = ET.parse(cls.svg).getroot()
        cls.fr = frames(cls.static)

    @classmethod
    def tearDownClass(cls):
        cls._dir.cleanup()

    def find(self, name):
        for i, f in enumerate(self.fr):
            if f["name"] == name:
                return i
        self.fail("no frame %r in %s" % (name, [f["name"] for f in self.fr]))

    def zoom_target(self):
        """A frame to zoom to: the widest one that has a sibling (so that something is
        hidden) and a child."""
        fr = self.fr
        best = None
        for i, f in enumerate(fr):
            if i == 0 or f["end"] == i + 1:
                continue
            siblings = [j for j, g in enumerate(fr) if g["parent"] == f["parent"] and j != i]
            if siblings and (best is None or f["v"] > fr[best]["v"]):
                best = i
        self.assertIsNotNone(best, "no frame with a sibling and a child")
        return best

    # -- the static file ---------------------------------------------------------------------

    def test_static_file(self):
        # Python's parser is strict XML; xmllint too where installed.
        if shutil.which("xmllint"):
            proc = subprocess.run(["xmllint", "--noout", self.svg], capture_output=True,
                                  text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(self.svg, encoding="utf-8") as f:
            text = f.read()
        for bad in ("href", "url(", "@import", "<script src", "@font-face", "<!DOCTYPE"):
            self.assertNotIn(bad, text)
        self.assertEqual(re.findall(r"https?://[^\"\s]*", text), ["http://www.w3.org/2000/svg"])
        fr = self.fr
        self.assertEqual(fr[0]["name"], "all")
        self.assertEqual(fr[0]["w"], float(self.static.get("width")) - 20)
        # a parent holds its children
        for i, f in enumerate(fr):
            kids = [g["v"] for g in fr if g["parent"] == i]
            self.assertLessEqual(sum(kids), f["v"] * (1 + 1e-9), f["name"])
        for ident in ("title", "subtitle", "details", "unzoom", "search", "matched"):
            by_id(self.static, ident)
        self.assertIn("hide", classes(by_id(self.static, "unzoom")))
        self.assertIn("hide", classes(by_id(self.static, "matched")))

    # -- the fragment ------------------------------------------------------------------------

    def test_search_fragment(self):
        for pattern in ("request", "^(parse|log)_", "_", "^main$"):
            with self.subTest(pattern=pattern):
                self.check_search(self.dom(self.svg, "s=" + urllib.parse.quote(pattern, "")),
                                  pattern)

    def test_zoom_fragment(self):
        z = self.zoom_target()
        dom = self.dom(self.svg, "z=%d" % z)
        self.check_zoom(dom, z)
        hidden = [i for i, f in enumerate(frames(dom)) if "hide" in f["classes"]]
        self.assertTrue(hidden, "nothing outside the zoomed frame hidden")
        self.assertIsNone(frames(dom)[0]["el"].get("style"))

    def test_zoom_and_search(self):
        z = self.zoom_target()
        dom = self.dom(self.svg, "z=%d&s=%s" % (z, urllib.parse.quote("_(headers|line)$", "")))
        self.check_zoom(dom, z)
        self.check_search(dom, "_(headers|line)$")

    def test_bad_fragment(self):
        # what cannot be done is not done, and the picture stays whole
        for fragment in ("z=99999", "z=-1", "s=%28", "s=%E0%A4%A", "q=1&&="):
            with self.subTest(fragment=fragment):
                dom = self.dom(self.svg, fragment)
                fr = frames(dom)
                self.assertFalse([f for f in fr if f["classes"] & {"hide", "hl"}])
                self.assertAlmostEqual(fr[0]["w"], self.fr[0]["w"], places=2)

    # -- what a person does ------------------------------------------------------------------

    def test_hover_click_keys(self):
        z, pattern = self.zoom_target(), "response|start"
        with open(self.svg, encoding="utf-8") as f:
            text = f.read()
        driven = self.path("driven.svg")
        with open(driven, "w", encoding="utf-8") as f:
            f.write(text.replace("</svg>", DRIVER % {"zoom": z, "regex": json.dumps(pattern)}
                                 + "</svg>"))
        dom = self.dom(driven)
        out = json.loads(by_id(dom, "test-result").text)
        self.assertNotIn("error", out, out.get("error"))
        fr = self.fr
        self.assertEqual(out["details"], fr[z]["title"])
        self.assertEqual(out["detailsAfter"].strip(), "")
        # a click zooms, like #z=N, and says so in the address
        zs = out["zoomed"]
        self.assertAlmostEqual(zs["w"][z], fr[0]["w"], places=2)
        self.assertTrue(zs["unzoom"])
        inside = set(range(z, fr[z]["end"]))
        self.assertEqual(set(zs["hidden"]),
                         set(range(len(fr))) - inside - set(zs["parent"]))
        self.assertTrue(zs["hidden"])
        self.assertEqual(zs["hash"], "#z=%d" % z)
        # Escape and Reset Zoom each put every frame back where the file has it
        for step in ("escaped", "reset"):
            s = out[step]
            self.assertEqual((s["hidden"], s["parent"], s["unzoom"]), ([], [], False), step)
            for i, f in enumerate(fr):
                self.assertAlmostEqual(s["x"][i], f["x"], delta=0.051, msg=(step, f["name"]))
                self.assertAlmostEqual(s["w"][i], f["w"], delta=0.051, msg=(step, f["name"]))
                self.assertEqual(s["labels"][i], f["label"], (step, f["name"]))
            self.assertEqual(s["hash"], "", step)
        # "/" asks for a regular expression; a click on the share clears it, so does ""
        s = out["searched"]
        self.assertEqual(s["hl"], [i for i, f in enumerate(fr) if re.search(pattern, f["name"])])
        self.assertEqual(s["matched"], "Matched: %.1f%%" % matched_share(fr, pattern))
        self.assertEqual(s["hash"], "#s=" + urllib.parse.quote(pattern, safe="-_.!~*'()"))
        for step in ("cleared", "emptied"):
            self.assertEqual((out[step]["hl"], out[step]["matched"]), ([], None), step)

    # -- the picture -------------------------------------------------------------------------

    def check_painted(self, svg, png):
        self.screenshot(svg, png)
        root = ET.parse(svg).getroot()
        colours = png_colours(png, rows=int(root.get("height")))
        self.assertGreater(len(colours), 10, "a blank screenshot")
        wide = {rgb(f["fill"]) for f in frames(root) if f["w"] >= 10}
        self.assertTrue(wide)
        self.assertEqual(wide - colours, set(), "frames' colours not painted")
        return colours

    def test_screenshot(self):
        png = self.path("flame.png")
        self.check_painted(self.svg, png)
        # to look at it: ALLOCPROF_KEEP_SHOTS=DIR tests/run.py flame_browser
        if os.environ.get("ALLOCPROF_KEEP_SHOTS"):
            shutil.copy(png, os.path.join(os.environ["ALLOCPROF_KEEP_SHOTS"], "flame-shot.png"))

    def test_diff_screenshot(self):
        fr = frames(ET.parse(self.diff_svg).getroot())
        self.assertTrue(all(f["b"] is not None for f in fr))
        by = {f["name"]: f for f in fr}
        grew, shrank, same = (rgb(by[n]["fill"]) for n in ("build_response", "log_line",
                                                           "parse_headers"))
        self.assertTrue(grew[0] == 255 and grew[1] < 250, grew)
        self.assertTrue(shrank[2] == 255 and shrank[0] < 250, shrank)
        self.assertEqual(same, (250, 250, 250))
        colours = self.check_painted(self.diff_svg, self.path("diff.png"))
        self.assertLessEqual({grew, shrank, same}, colours)
        if os.environ.get("ALLOCPROF_KEEP_SHOTS"):
            shutil.copy(self.path("diff.png"),
                        os.path.join(os.environ["ALLOCPROF_KEEP_SHOTS"], "flame-diff-shot.png"))


@needs("chromium")
class ManyFrames(BrowserCase):
    """A picture of as many frames as flame draws by default (FLAME_MAX_FRAMES): the script
    reads, zooms and searches it all (chromium returns only when it is done)."""

    def test_search_and_zoom_10000_frames(self):
        p = pprofwrite.Profile()
        p.exact()
        main = p.function("main", "/src/main.c")
        for i in range(100):
            svc = p.function("ns::Service%02d::handle(Request const&)" % i, "/src/svc.cc")
            for j in range(98):
                leaf = p.function("ns::Service%02d::step_%02d()" % (i, j), "/src/svc.cc")
                p.sample([leaf, svc, main], [1, 64 + i])
        prof, svg = self.path("big.pb.gz"), self.path("big.svg")
        with open(prof, "wb") as f:
            f.write(gzip.compress(p.encode()))
        proc = subprocess.run([ALLOCPROF, "flame", prof, "-o", svg], capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        st = frames(ET.parse(svg).getroot())
        self.assertEqual(len(st), 2 + 100 + 100 * 98)
        self.assertLess(os.path.getsize(svg), 4 << 20)  # a few MB, as flame --help says
        z = next(i for i, f in enumerate(st) if f["name"].startswith("ns::Service07::"))
        pattern = r"Service0[0-4]::step_0[0-9]|Service1"
        dom = self.dom(svg, "z=%d&s=%s" % (z, urllib.parse.quote(pattern, "")))
        self.check_zoom(dom, z, st)
        self.check_search(dom, pattern, st)


if __name__ == "__main__":
    unittest.main()
