// The flame graph's interaction, embedded in every SVG allocprof writes (user/flamesvg.c, by
// scripts/embed-js.py): hover details, click to zoom, search with the matches' share, reset,
// and the URL fragment that drives zoom and search (#z=N&s=REGEX) so a view can be shared.
// Plain ES2015, no library, nothing fetched. The file is already the full picture: this only
// moves, hides and relabels the frames that are there, and reads the tree back from them.
(function () {
	"use strict";

	// The writer's geometry (flamesvg.c's FRAME_H, CHAR_W, LABEL_PAD, LABEL_MIN).
	var FRAME_H = 16, CHAR_W = 7.2, PAD = 3, MIN_CHARS = 3;
	var HL_FILL = "rgb(230,0,230)";

	var frames = [], byG = new Map(), total = 0, xpad = 0, plotw = 0;
	var details, unzoomBtn, searchBtn, matchedText;
	var zoomed = -1, searchSrc = "";

	function label(f, w) {
		var room = Math.floor((w - PAD) / CHAR_W);
		if (room < MIN_CHARS)
			return "";
		if (f.chars.length <= room)
			return f.name;
		return f.chars.slice(0, room - 2).join("") + "..";
	}

	// The details line ends short of "Matched: 100.0%" at the right.
	function fit(s) {
		var room = Math.floor((plotw - 130) / CHAR_W), c = Array.from(s);
		return c.length <= room ? s : c.slice(0, room - 1).join("") + "\u2026";
	}

	function place(f, x, w) {
		f.rect.setAttribute("x", x.toFixed(2));
		f.rect.setAttribute("width", w.toFixed(2));
		f.text.setAttribute("x", (x + PAD).toFixed(2));
		f.text.textContent = label(f, w);
	}

	function show(el, on) {
		if (on)
			el.classList.remove("hide");
		else
			el.classList.add("hide");
	}

	// The tree back from the file: frames come in depth-first pre-order, a frame's depth is
	// its row (the root's at the bottom), and a frame's left edge in value units is its
	// parent's plus its earlier siblings' values (exact, unlike the rounded x of the file).
	function readFrames() {
		var gs = document.querySelectorAll("g.f"), stack = [], ybase = 0;
		for (var i = 0; i < gs.length; i++) {
			var g = gs[i], rect = g.querySelector("rect"), title = g.querySelector("title");
			var y = parseFloat(rect.getAttribute("y")), tt = title ? title.textContent : "";
			if (i === 0) {
				ybase = y;
				xpad = parseFloat(rect.getAttribute("x"));
				plotw = parseFloat(rect.getAttribute("width"));
				total = parseFloat(g.getAttribute("data-v"));
			}
			var d = Math.max(0, Math.round((ybase - y) / FRAME_H));
			var name = tt.substr(0, parseInt(g.getAttribute("data-l"), 10) || tt.length);
			var f = {
				g: g, rect: rect, text: g.querySelector("text"), title: tt,
				v: parseFloat(g.getAttribute("data-v")) || 0, depth: d, parent: -1,
				i: i, xv: 0, cursor: 0, end: gs.length, name: name, chars: Array.from(name),
				fill: rect.getAttribute("fill")
			};
			if (d > stack.length)
				d = f.depth = stack.length;
			while (stack.length > d)
				frames[stack.pop()].end = i;
			if (d > 0) {
				var p = frames[stack[d - 1]];
				f.parent = stack[d - 1];
				f.xv = p.cursor;
				p.cursor += f.v;
			}
			f.cursor = f.xv;
			byG.set(g, f);
			stack.push(i);
			frames.push(f);
		}
	}

	function frameOf(el) {
		var g = el && el.closest ? el.closest("g.f") : null;
		return g ? byG.get(g) || null : null;
	}

	function updateHash() {
		var parts = [];
		if (zoomed >= 0)
			parts.push("z=" + zoomed);
		if (searchSrc)
			parts.push("s=" + encodeURIComponent(searchSrc));
		try {
			history.replaceState(null, "", parts.length ? "#" + parts.join("&") :
				location.pathname + location.search);
		} catch (e) {
			// file:// may refuse: the view still works, only the address does not say it
		}
	}

	// Frame i full width, its descendants scaled with it, its ancestors full width and
	// dimmed under it, everything else hidden.
	function zoom(i) {
		var z = frames[i], scale = plotw / z.v, up = {};
		for (var a = z.parent; a >= 0; a = frames[a].parent)
			up[a] = true;
		for (var j = 0; j < frames.length; j++) {
			var f = frames[j], inside = j >= i && j < z.end;
			show(f.g, inside || up[j]);
			if (inside) {
				f.g.classList.remove("parent");
				place(f, xpad + (f.xv - z.xv) * scale, f.v * scale);
			} else if (up[j]) {
				f.g.classList.add("parent");
				place(f, xpad, plotw);
			}
		}
		zoomed = i;
		show(unzoomBtn, true);
	}

	function unzoom() {
		for (var j = 0; j < frames.length; j++) {
			var f = frames[j];
			show(f.g, true);
			f.g.classList.remove("parent");
			place(f, xpad + f.xv / total * plotw, f.v / total * plotw);
		}
		zoomed = -1;
		show(unzoomBtn, false);
	}

	// Every frame whose name matches is highlighted; the share counts a match inside another
	// match once (the outer one holds it), as flamegraph.pl does.
	function search(src) {
		var re = null;
		if (src) {
			try {
				re = new RegExp(src);
			} catch (e) {
				details.textContent = "not a regular expression: " + src;
				return;
			}
		}
		var sum = 0, coveredTo = 0;
		for (var i = 0; i < frames.length; i++) {
			var f = frames[i], hit = re !== null && re.test(f.name);
			if (hit) {
				f.g.classList.add("hl");
				f.rect.setAttribute("fill", HL_FILL);
				if (i >= coveredTo) {
					sum += f.v;
					coveredTo = f.end;
				}
			} else if (f.g.classList.contains("hl")) {
				f.g.classList.remove("hl");
				f.rect.setAttribute("fill", f.fill);
			}
		}
		searchSrc = re ? src : "";
		if (re)
			matchedText.textContent =
				"Matched: " + (total > 0 ? 100 * sum / total : 0).toFixed(1) + "%";
		show(matchedText, re !== null);
	}

	function askSearch() {
		var s = prompt("Search for functions (a regular expression; empty clears)", searchSrc);
		if (s === null)
			return;
		search(s);
		updateHash();
	}

	function fromHash() {
		var parts = location.hash.replace(/^#/, "").split("&");
		for (var k = 0; k < parts.length; k++) {
			var eq = parts[k].indexOf("="), key = parts[k].slice(0, eq), v = parts[k].slice(eq + 1);
			if (eq < 0)
				continue;
			try {
				v = decodeURIComponent(v);
			} catch (e) {
				// a raw '%' in the address: take it as written
			}
			if (key === "z" && /^[0-9]+$/.test(v) && +v < frames.length && frames[+v].v > 0)
				zoom(+v);
			else if (key === "s")
				search(v);
		}
	}

	function init() {
		details = document.getElementById("details");
		unzoomBtn = document.getElementById("unzoom");
		searchBtn = document.getElementById("search");
		matchedText = document.getElementById("matched");
		readFrames();
		var svg = document.documentElement;
		svg.addEventListener("mouseover", function (e) {
			var f = frameOf(e.target);
			if (f)
				details.textContent = fit(f.title);
		});
		svg.addEventListener("mouseout", function (e) {
			if (frameOf(e.target))
				details.textContent = " ";
		});
		svg.addEventListener("click", function (e) {
			var f = frameOf(e.target);
			if (e.target === unzoomBtn) {
				unzoom();
				updateHash();
			} else if (e.target === searchBtn) {
				askSearch();
			} else if (e.target === matchedText) {
				search("");
				updateHash();
			} else if (f && f.v > 0) {
				zoom(f.i);
				updateHash();
			}
		});
		document.addEventListener("keydown", function (e) {
			if (e.key === "Escape") {
				if (zoomed >= 0)
					unzoom();
				else
					search("");
				updateHash();
			} else if (e.key === "/" || ((e.ctrlKey || e.metaKey) && e.key === "f")) {
				e.preventDefault();
				askSearch();
			}
		});
		window.addEventListener("hashchange", function () {
			unzoom();
			search("");
			fromHash();
		});
		if (frames.length)
			fromHash();
	}

	window.addEventListener("load", init);
})();
