/*
 * The flame graph's call tree (flametree.h): built from decoded profiles, one sample at a
 * time, then scaled, pruned to what can be drawn and ordered. Names are kept raw; escaping is
 * the writers'.
 */
#include "flametree.h"
#include "allocator.h"
#include "funcstats.h"
#include "hashmap.h"
#include "pprof.h"
#include "top.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The children's table: a child is found by its parent and name (the pool's pointer, so
 * compared by address), not its file: a difference picture of two checkouts' builds (other
 * source paths) must match, and diff's table matches by name. A table of node indices, not a
 * general hashmap: a profile of 100k stacks makes about a million frames, and the keys are the
 * nodes' own fields.
 */
static uint64_t child_hash(uint32_t parent, const char *name)
{
	uint64_t h = (uint64_t)parent * 0x9e3779b97f4a7c15ull;

	h ^= (uint64_t)(uintptr_t)name * 0xff51afd7ed558ccdull;
	return h ^ (h >> 29);
}

static void slots_grow(struct flame_tree *t)
{
	size_t n = t->nslots ? t->nslots * 2 : 1024;
	uint32_t *s = xcalloc(n, sizeof(*s));

	for (size_t i = 1; i < t->n; i++) {
		const struct flame_node *nd = &t->nodes[i];
		size_t j = child_hash(nd->parent, nd->name) & (n - 1);

		while (s[j])
			j = (j + 1) & (n - 1);
		s[j] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = s;
	t->nslots = n;
}

/* Wrappers that allocate on their caller's behalf, beside the entry points we probe. */
static const char *const alloc_wrappers[] = {
	"__libc_malloc",
	"__libc_calloc",
	"__libc_realloc",
	"__libc_memalign",
	"_int_malloc",
	"_int_realloc",
	"strdup",
	"strndup",
	"__strdup",
	"__strndup",
	"xmalloc",
	"xcalloc",
	"xrealloc",
	"xstrdup",
	"g_malloc",
	"g_malloc0",
	"g_realloc",
	"g_try_malloc",
	"g_strdup",
	"zmalloc",
	"zcalloc",
	"zrealloc",
	"ztrymalloc",
	"zmalloc_usable",
	"zcalloc_usable",
	"zrealloc_usable",
	"ztrymalloc_usable",
	"ztryrealloc_usable",
	"zstrdup",
	"PyMem_Malloc",
	"PyMem_Calloc",
	"PyMem_Realloc",
	"PyObject_Malloc",
	"PyObject_Calloc",
	"PyObject_Realloc",
	"_PyObject_Malloc",
	"_PyObject_Calloc",
	"_PyObject_Realloc",
	"PyMem_RawMalloc",
	"PyMem_RawCalloc",
	"PyMem_RawRealloc",
	"_PyMem_RawMalloc",
	"_PyMem_RawCalloc",
	"_PyMem_RawRealloc",
	"runtime.mallocgc",
	"runtime.newobject",
	"runtime.makeslice",
	"runtime.growslice",
	"runtime.makemap",
};

bool flame_is_allocator(const char *name)
{
	/* a prefix: je_malloc, tc_malloc, mi_malloc, __libc_... are the same functions */
	static const char *const prefixes[] = { "je_", "tc_", "mi_" };
	const char *base = name;

	if (!strncmp(name, "operator new", 12) || !strncmp(name, "operator delete", 15))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			base = name + strlen(prefixes[i]);
	for (size_t i = 0; i < alloc_fns_nr; i++)
		if (!strcmp(base, alloc_fns[i].name) || !strcmp(name, alloc_fns[i].name))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(alloc_wrappers); i++)
		if (!strcmp(name, alloc_wrappers[i]))
			return true;
	return false;
}

static uint32_t new_node(struct flame_tree *t, const char *name, const char *file,
			 enum flame_kind kind, uint32_t parent)
{
	struct flame_node *n;

	grow((void **)&t->nodes, &t->cap, t->n + 1, sizeof(*t->nodes));
	n = &t->nodes[t->n];
	*n = (struct flame_node){ .name = name, .file = file, .kind = kind, .parent = parent };
	if (t->n) {
		n->next = t->nodes[parent].first_child;
		t->nodes[parent].first_child = (uint32_t)t->n;
		n->depth = t->nodes[parent].depth + 1;
	}
	return (uint32_t)t->n++;
}

struct flame_tree *flame_tree__new(const char *sample_index, const char *per_op, bool diff)
{
	struct flame_tree *t = xcalloc(1, sizeof(*t));

	t->pool = strpool__new();
	t->sample_index = sample_index ? xstrdup(sample_index) : NULL;
	t->per_op = per_op ? xstrdup(per_op) : NULL;
	t->diff = diff;
	new_node(t, strpool__intern(t->pool, "all"), strpool__intern(t->pool, ""), FLAME_ROOT, 0);
	return t;
}

void flame_tree__free(struct flame_tree *t)
{
	if (!t)
		return;
	for (int s = 0; s < 2; s++) {
		free(t->side[s].target);
		prof_info__free(&t->side[s].info);
	}
	free(t->nodes);
	free(t->slots);
	strpool__free(t->pool);
	free(t->sample_index);
	free(t->per_op);
	free(t);
}

/* One frame of a location, resolved once per profile. */
struct lframe {
	const char *name, *file; /* the pool's */
	int64_t line;
	enum flame_kind kind;
};

/* The sample's string label `key`, NULL when it has none. */
static const char *label_str(const Perftools__Profiles__Profile *p,
			     const Perftools__Profiles__Sample *smp, const char *key)
{
	for (size_t l = 0; l < smp->n_label; l++)
		if (smp->label[l]->str && !strcmp(pprof_str(p, smp->label[l]->key), key))
			return pprof_str(p, smp->label[l]->str);
	return NULL;
}

/* The samples' exe labels, as a set. */
static struct hashmap *exe_set(const Perftools__Profiles__Profile *p)
{
	struct hashmap *exe = hashmap__new();

	for (size_t s = 0; s < p->n_sample; s++) {
		const char *v = label_str(p, p->sample[s], "exe");

		if (v)
			hashmap__put(exe, v, strlen(v), 1);
	}
	return exe;
}

/* Files that are a traced program (a sample's exe label), or pprof's main mapping. */
static struct hashmap *program_files(const Perftools__Profiles__Profile *p)
{
	struct hashmap *exe = exe_set(p);

	if (!hashmap__size(exe) && p->n_mapping) {
		const char *v = pprof_str(p, p->mapping[0]->filename);

		hashmap__put(exe, v, strlen(v), 1);
	}
	return exe;
}

/*
 * A frame without a name: "file+0xOFFSET" (the mapped file's last component and the offset in
 * it, which stays the same from run to run, unlike the address under ASLR), else "0xADDR".
 */
static void unsymbolized_name(const Perftools__Profiles__Profile *p,
			      const Perftools__Profiles__Mapping *map, uint64_t addr, char *buf,
			      size_t len)
{
	const char *file = map ? pprof_str(p, map->filename) : "", *base = strrchr(file, '/');

	base = base ? base + 1 : file;
	if (map && *base && addr >= map->memory_start &&
	    (!map->memory_limit || addr < map->memory_limit))
		snprintf(buf, len, "%.100s+0x%" PRIx64, base,
			 addr - map->memory_start + map->file_offset);
	else
		snprintf(buf, len, "0x%" PRIx64, addr);
}

/* Every location's frames, outermost first (pprof's lines are innermost first). */
static struct lframe *resolve_locations(struct flame_tree *t, const Perftools__Profiles__Profile *p,
					size_t *first, struct hashmap *loc_idx, size_t *unsym)
{
	struct hashmap *fn_idx = hashmap__new(), *map_idx = hashmap__new();
	struct hashmap *programs = program_files(p);
	struct lframe *fr = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < p->n_function; i++)
		hashmap__put(fn_idx, &p->function[i]->id, sizeof(uint64_t), i);
	for (size_t i = 0; i < p->n_mapping; i++) {
		const char *f = pprof_str(p, p->mapping[i]->filename);
		uint64_t one;

		/* its index, and whether it is a program's */
		hashmap__put(map_idx, &p->mapping[i]->id, sizeof(uint64_t),
			     i << 1 | hashmap__get(programs, f, strlen(f), &one));
	}
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *loc = p->location[i];
		const Perftools__Profiles__Mapping *map = NULL;
		uint64_t mi = 0;
		bool prog;
		enum flame_kind in_map;
		size_t nl = loc->n_line ? loc->n_line : 1;

		hashmap__put(loc_idx, &loc->id, sizeof(uint64_t), i);
		first[i] = n;
		if (loc->mapping_id &&
		    hashmap__get(map_idx, &loc->mapping_id, sizeof(uint64_t), &mi)) {
			map = p->mapping[mi >> 1];
			prog = mi & 1;
		} else {
			prog = !p->n_mapping; /* no mappings at all: all of it is the program */
		}
		in_map = prog ? FLAME_PROGRAM : FLAME_LIBRARY;
		grow((void **)&fr, &cap, n + nl, sizeof(*fr));
		for (size_t k = 0; k < nl; k++) {
			/* outermost first: the location's last line is its caller's frame */
			size_t l = nl - 1 - k;
			const char *name = NULL, *file = "";
			int64_t line = 0;
			uint64_t fi;
			char addr[160];

			if (loc->n_line && hashmap__get(fn_idx, &loc->line[l]->function_id,
							sizeof(uint64_t), &fi)) {
				name = pprof_str(p, p->function[fi]->name);
				file = pprof_str(p, p->function[fi]->filename);
				line = loc->line[l]->line;
			}
			if (!name || !*name) {
				unsymbolized_name(p, map, loc->address, addr, sizeof(addr));
				fr[n] = (struct lframe){ .name = strpool__intern(t->pool, addr),
							 .file = strpool__intern(t->pool, ""),
							 .kind = FLAME_UNSYMBOLIZED };
				(*unsym)++;
			} else {
				fr[n] = (struct lframe){
					.name = strpool__intern(t->pool, name),
					.file = strpool__intern(t->pool, file),
					.line = line,
					.kind = flame_is_allocator(name) ? FLAME_ALLOCATOR : in_map,
				};
			}
			n++;
		}
	}
	first[p->n_location] = n;
	hashmap__free(fn_idx);
	hashmap__free(map_idx);
	hashmap__free(programs);
	return fr;
}

/*
 * A profile of several programs (record -a, or a command that runs others) gets one frame per
 * program at the root, as perf's folded stacks have the command first: their mains would merge
 * otherwise (flame_tree__finish takes them out again where they tell nothing apart). Returns
 * the frames per sample (NULL when the samples name no program):
 * the program's name (the sample's comm, else its exe's last component) in its exe.
 */
static struct lframe *program_frames(struct flame_tree *t, const Perftools__Profiles__Profile *p)
{
	struct hashmap *exe = exe_set(p);
	struct lframe *pf = NULL;
	size_t nexe = hashmap__size(exe);

	hashmap__free(exe);
	if (nexe > t->max_programs)
		t->max_programs = nexe;
	if (!nexe)
		return NULL;
	pf = xcalloc(p->n_sample, sizeof(*pf));
	for (size_t s = 0; s < p->n_sample; s++) {
		const char *exe = label_str(p, p->sample[s], "exe"), *base;
		const char *comm = label_str(p, p->sample[s], "comm");

		if (!exe && !comm)
			continue; /* (name NULL: no program frame) */
		base = exe ? strrchr(exe, '/') : NULL;
		pf[s] = (struct lframe){
			.name = strpool__intern(t->pool, comm && *comm ? comm
							 : base	       ? base + 1
								       : exe),
			.file = strpool__intern(t->pool, exe ? exe : ""),
			.kind = FLAME_PROGRAM,
		};
	}
	return pf;
}

static uint32_t child_of(struct flame_tree *t, uint32_t parent, const struct lframe *f)
{
	size_t j;
	uint32_t idx;

	if (2 * (t->n + 1) > t->nslots)
		slots_grow(t);
	j = child_hash(parent, f->name) & (t->nslots - 1);
	for (; t->slots[j]; j = (j + 1) & (t->nslots - 1)) {
		const struct flame_node *nd = &t->nodes[t->slots[j] - 1];

		if (nd->parent == parent && nd->name == f->name)
			return t->slots[j] - 1;
	}
	idx = new_node(t, f->name, f->file, f->kind, parent);
	t->slots[j] = idx + 1;
	return idx;
}

/* The side's facts from one profile: comments, time, target. */
static void note_profile(struct flame_side *sd, const Perftools__Profiles__Profile *p)
{
	struct prof_info info;

	prof_info__read(p, &info);
	sd->sampled |= info.sampling == PROF_SAMPLING_SAMPLED;
	sd->unknown += info.sampling == PROF_SAMPLING_UNKNOWN;
	sd->with_ops += info.nops > 0;
	if (!sd->nprofiles++)
		sd->info = info;
	else {
		prof_info__merge(&sd->info, &info);
		prof_info__free(&info);
	}
	if (p->time_nanos && (!sd->time_nanos || p->time_nanos < sd->time_nanos))
		sd->time_nanos = p->time_nanos;
	sd->duration_sum += p->duration_nanos;
	for (size_t i = 0; !sd->target && i < p->n_comment; i++) {
		const char *c = pprof_str(p, p->comment[i]);

		if (!strncmp(c, "target: ", 8))
			sd->target = xstrdup(c + 8);
	}
}

int flame_tree__add(struct flame_tree *t, const char *cmd, const char *path,
		    const Perftools__Profiles__Profile *p, int slot)
{
	struct hashmap *loc_idx;
	struct lframe *fr, *progs;
	struct fs_var fv;
	struct prof_info info;
	size_t *first;
	const char *type;
	int err = 0;
	int si = top_sample_index(p, t->sample_index);

	if (si < 0) {
		if (t->sample_index)
			ap_err("%s: %s has no sample type '%s'", cmd, path, t->sample_index);
		else
			ap_err("%s: %s has no sample types", cmd, path);
		return -1;
	}
	type = pprof_str(p, p->sample_type[si]->type);
	if (!t->type) {
		t->type = strpool__intern(t->pool, type);
		t->unit = strpool__intern(t->pool, pprof_str(p, p->sample_type[si]->unit));
	} else if (strcmp(t->type, type)) {
		ap_err("%s: %s's sample type is %s, another profile's %s: choose one with "
		       "--sample-index",
		       cmd, path, type, t->type);
		return -1;
	}
	if (funcstats_work(p) > FUNCSTATS_MAX_WORK) {
		ap_err("%s: %s: too complex to draw (its samples reach more than %llu location "
		       "lines)",
		       cmd, path, (unsigned long long)FUNCSTATS_MAX_WORK);
		return -1;
	}
	note_profile(&t->side[slot], p);
	prof_info__read(p, &info);
	fs_var__init(&fv, p, si, &info);
	prof_info__free(&info);

	loc_idx = hashmap__new();
	first = xcalloc(p->n_location + 1, sizeof(*first));
	fr = resolve_locations(t, p, first, loc_idx, &t->side[slot].unsymbolized);
	progs = program_frames(t, p);
	for (size_t s = 0; s < p->n_sample; s++) {
		const Perftools__Profiles__Sample *smp = p->sample[s];
		double v = (size_t)si < smp->n_value ? (double)smp->value[si] : 0;
		double var = fs_var__sample(&fv, p, smp);
		uint32_t node = 0;

		if (v == 0)
			continue;
		if (v < 0) { /* a difference of profiles (pprof -diff_base): no width to draw */
			t->side[slot].negative++;
			continue;
		}
		if (t->n > FLAME_MAX_NODES) {
			ap_err("%s: %s: too complex to draw: more than %u distinct frames in the "
			       "profiles' call tree",
			       cmd, path, FLAME_MAX_NODES);
			err = -1;
			break;
		}
		t->nodes[0].value[slot] += v;
		t->nodes[0].var[slot] += var;
		if (progs && progs[s].name) {
			node = child_of(t, 0, &progs[s]);
			t->nodes[node].program = true;
			t->nodes[node].value[slot] += v;
			t->nodes[node].var[slot] += var;
		}
		/* location_id is leaf first: walk it from the root */
		for (size_t k = smp->n_location_id; k-- > 0;) {
			uint64_t li;

			if (!hashmap__get(loc_idx, &smp->location_id[k], sizeof(uint64_t), &li))
				continue;
			for (size_t f = first[li]; f < first[li + 1]; f++) {
				struct flame_node *n;

				node = child_of(t, node, &fr[f]);
				n = &t->nodes[node];
				n->value[slot] += v;
				n->var[slot] += var;
				/* (file and line together: one name may be in several files) */
				if (fr[f].line && slot == FLAME_NEW &&
				    (!n->line || v > n->line_v)) {
					n->line = fr[f].line;
					n->file = fr[f].file;
					n->line_v = (int64_t)v;
				}
			}
		}
	}
	free(fr);
	free(progs);
	free(first);
	hashmap__free(loc_idx);
	return err;
}

/* ---- finishing: scale, prune, order -------------------------------------------------------- */

/*
 * The tree again without the programs' frames at the root: every frame re-inserted under its
 * parent's new place, in index order (a parent before its children), so that the frames of
 * one name under one parent merge, their values summed.
 */
static void elide_programs(struct flame_tree *t)
{
	struct flame_node *old = t->nodes;
	size_t n = t->n;
	uint32_t *map = xcalloc(n, sizeof(*map));

	t->nodes = NULL;
	t->n = t->cap = 0;
	free(t->slots);
	t->slots = NULL;
	t->nslots = 0;
	new_node(t, old[0].name, old[0].file, FLAME_ROOT, 0);
	memcpy(t->nodes[0].value, old[0].value, sizeof(old[0].value));
	memcpy(t->nodes[0].var, old[0].var, sizeof(old[0].var));
	for (size_t i = 1; i < n; i++) {
		const struct flame_node *o = &old[i];
		struct lframe f = { .name = o->name, .file = o->file, .kind = o->kind };
		struct flame_node *d;

		if (o->program && !o->parent)
			continue; /* map[i] 0: its children go to the root */
		map[i] = child_of(t, map[o->parent], &f);
		d = &t->nodes[map[i]];
		for (int s = 0; s < 2; s++) {
			d->value[s] += o->value[s];
			d->var[s] += o->var[s];
		}
		if (o->line && (!d->line || o->line_v > d->line_v)) {
			d->line = o->line;
			d->file = o->file;
			d->line_v = o->line_v;
		}
	}
	free(old);
	free(map);
}

/* Whether the programs' frames tell programs apart (flame_tree__finish). */
static bool programs_matter(const struct flame_tree *t)
{
	size_t roots = 0;

	if (t->max_programs >= 2)
		return true;
	if (t->diff) /* a program renamed between BASE and NEW is the same program */
		return false;
	for (uint32_t c = t->nodes[0].first_child; c; c = t->nodes[c].next)
		roots += t->nodes[c].program;
	return roots >= 2;
}

/* The divisor of each side: operations (per_op), runs (a diff side's mean), or 1. */
static int scale_sides(struct flame_tree *t, const char *cmd)
{
	int sides = t->diff ? 2 : 1;
	double div[2] = { 1, 1 };
	char why[640];

	/*
	 * A difference of runs that all counted one operation is per operation without being
	 * asked, as diff's table is: runs of different lengths then compare.
	 */
	if (t->diff && !t->per_op) {
		const struct prof_op *a, *b;

		t->auto_op = true;
		for (int s = 0; s < 2; s++)
			t->auto_op &=
				t->side[s].nprofiles && t->side[s].with_ops == t->side[s].nprofiles;
		a = t->auto_op
			    ? prof_info__divisor(&t->side[FLAME_NEW].info, NULL, why, sizeof(why))
			    : NULL;
		b = a ? prof_info__divisor(&t->side[FLAME_BASE].info, a->name, why, sizeof(why))
		      : NULL;
		t->auto_op = b != NULL;
		if (t->auto_op)
			t->per_op = xstrdup(a->name);
	}
	for (int s = 0; s < sides; s++) {
		struct flame_side *sd = &t->side[s];
		const struct prof_op *op;
		const char *name = t->op ? t->op : (t->per_op && *t->per_op ? t->per_op : NULL);

		if (t->per_op && sd->with_ops < sd->nprofiles) {
			ap_err("%s: --per-op: %s%zu of the %zu profiles counted no operations "
			       "(record "
			       "with --ops)",
			       cmd, t->diff ? (s ? "BASE: " : "NEW: ") : "",
			       sd->nprofiles - sd->with_ops, sd->nprofiles);
			return -1;
		}
		if (t->per_op) {
			op = prof_info__divisor(&sd->info, name, why, sizeof(why));
			if (!op) {
				ap_err("%s: --per-op: %s%s", cmd,
				       t->diff ? (s ? "BASE: " : "NEW: ") : "", why);
				return -1;
			}
			t->op = strpool__intern(t->pool, op->name);
			sd->ops = (double)op->count;
			div[s] = sd->ops;
		} else if (t->diff && sd->nprofiles > 1) {
			div[s] = (double)sd->nprofiles;
		}
	}
	/*
	 * The variances are one run's, as diff's noise gate has them: a side of n runs holds n
	 * runs' variance, of which the mean's would be 1/n (a gate √n narrower than the
	 * table's).
	 */
	for (size_t i = 0; i < t->n; i++)
		for (int s = 0; s < sides; s++) {
			double n =
				t->diff && t->side[s].nprofiles ? (double)t->side[s].nprofiles : 1;

			t->nodes[i].value[s] /= div[s];
			t->nodes[i].var[s] /= div[s] * div[s] / n;
		}
	for (int s = 0; s < sides; s++) {
		t->side[s].total = t->nodes[0].value[s];
		t->side[s].total_var = t->nodes[0].var[s];
	}
	return 0;
}

/* Rank order: wider first; of equal widths the shallower (a parent before its child). */
static int cmp_rank(const void *a, const void *b, void *arg)
{
	const struct flame_node *n = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	double vx = n[x].value[FLAME_NEW], vy = n[y].value[FLAME_NEW];

	if (vx != vy)
		return vx < vy ? 1 : -1;
	if (n[x].depth != n[y].depth)
		return n[x].depth < n[y].depth ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * Which frames are drawn: the `max` widest that, with the "…" frame of each parent whose
 * other children are not drawn, fit in `max`, none under the total's 1/FLAME_MIN_FRACTION.
 * By rank, not by a threshold value: chains of frames of one width (a stack that calls
 * through many functions) would otherwise be all or nothing. A prefix of the rank order is a
 * tree, since a parent is at least as wide as its child and ranks first when as wide. Sets
 * keep[i].
 */
static void choose_kept(const struct flame_tree *t, size_t max, uint8_t *keep)
{
	double floor_v = t->nodes[0].value[FLAME_NEW] / FLAME_MIN_FRACTION;
	uint32_t *order = xcalloc(t->n ? t->n : 1, sizeof(*order));
	uint32_t *rank = xcalloc(t->n ? t->n : 1, sizeof(*rank));
	uint8_t *has_cut = xcalloc(t->n ? t->n : 1, 1);
	size_t m = 0, lo = 0, hi;

	for (size_t i = 1; i < t->n; i++) {
		rank[i] = UINT32_MAX;
		if (t->nodes[i].value[FLAME_NEW] > 0 && t->nodes[i].value[FLAME_NEW] >= floor_v)
			order[m++] = (uint32_t)i;
	}
	qsort_r(order, m, sizeof(*order), cmp_rank, t->nodes);
	for (size_t r = 0; r < m; r++)
		rank[order[r]] = (uint32_t)r;
	/* the largest k that fits: adding a frame adds 0, 1 or 2 drawn, so the count grows */
	hi = m;
	while (lo < hi) {
		size_t k = (lo + hi + 1) / 2, drawn = 1 + k;

		memset(has_cut, 0, t->n);
		for (size_t i = 1; i < t->n; i++) {
			const struct flame_node *nd = &t->nodes[i];

			if (nd->value[FLAME_NEW] > 0 && rank[i] >= k &&
			    (!nd->parent || rank[nd->parent] < k))
				drawn += !has_cut[nd->parent]++;
		}
		if (drawn <= max)
			lo = k;
		else
			hi = k - 1;
	}
	keep[0] = 1;
	for (size_t i = 1; i < t->n; i++)
		keep[i] = rank[i] < lo;
	free(order);
	free(rank);
	free(has_cut);
}

static int cmp_sibling(const void *a, const void *b)
{
	const struct flame_node *x = *(const struct flame_node *const *)a;
	const struct flame_node *y = *(const struct flame_node *const *)b;
	int c;

	if ((x->kind == FLAME_MERGED) != (y->kind == FLAME_MERGED))
		return x->kind == FLAME_MERGED ? 1 : -1; /* "…" last */
	c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->file, y->file);
}

/*
 * The tree again with only the frames `keep` says (NULL: every frame of a positive value), one
 * "…" per parent for the rest, in depth-first order with siblings in name order.
 */
static void rebuild(struct flame_tree *t, const uint8_t *keep, bool keep_base)
{
	size_t n = t->n, out = 0, cap = 0;
	struct flame_node *old = t->nodes, *nw = NULL;
	uint32_t *map = xcalloc(n, sizeof(uint32_t)); /* old index -> new, 0: not kept */
	uint32_t *cut = xcalloc(n, sizeof(uint32_t)); /* old parent -> its "…" (new) */
	struct flame_node **kids = NULL, *tmp;
	size_t kcap = 0, *stack = NULL, scap = 0, sp = 0;
	const char *ell = strpool__intern(t->pool, FLAME_MERGED_NAME);
	const char *empty = strpool__intern(t->pool, "");
	int sides = t->diff ? 2 : 1;
	uint32_t *below = xcalloc(n ? n : 1, sizeof(*below)); /* frames of a positive value in
								 each subtree */

	for (size_t i = n; i-- > 1;) {
		below[i] += old[i].value[FLAME_NEW] > 0;
		below[old[i].parent] += below[i];
	}
	/* the kept frames, in their old order, and the "…" of each parent */
	grow((void **)&nw, &cap, 1, sizeof(*nw));
	nw[out++] = old[0];
	for (size_t i = 1; i < n; i++) {
		struct flame_node *o = &old[i];
		uint32_t par = o->parent;
		bool parent_kept = !par || map[par];

		if (keep_base && parent_kept && o->value[FLAME_NEW] <= 0 &&
		    o->value[FLAME_BASE] > 0) {
			/* folded text of a diff: BASE's own stacks are lines too */
			grow((void **)&nw, &cap, out + 1, sizeof(*nw));
			nw[out] = *o;
			nw[out].parent = par ? map[par] : 0;
			map[i] = (uint32_t)out++;
			continue;
		}
		if (!parent_kept || o->value[FLAME_NEW] <= 0) {
			/* under a frame not drawn, or BASE's alone */
			if (parent_kept && o->value[FLAME_BASE] > 0 && t->diff) {
				t->gone++;
				t->gone_base += o->value[FLAME_BASE];
			}
			continue;
		}
		if (!keep || keep[i]) {
			grow((void **)&nw, &cap, out + 1, sizeof(*nw));
			nw[out] = *o;
			nw[out].parent = par ? map[par] : 0;
			map[i] = (uint32_t)out++;
			continue;
		}
		if (!cut[par]) {
			grow((void **)&nw, &cap, out + 1, sizeof(*nw));
			nw[out] = (struct flame_node){ .name = ell,
						       .file = empty,
						       .kind = FLAME_MERGED,
						       .parent = par ? map[par] : 0 };
			cut[par] = (uint32_t)out++;
		}
		tmp = &nw[cut[par]];
		tmp->merged += below[i];
		t->pruned += below[i];
		for (int s = 0; s < sides; s++) {
			tmp->value[s] += o->value[s];
			tmp->var[s] += o->var[s];
		}
	}
	free(old);
	free(below);
	free(map);
	free(cut);
	t->nodes = nw;
	t->n = out;
	t->cap = cap;

	/* children lists again, in name order */
	for (size_t i = 0; i < t->n; i++)
		t->nodes[i].first_child = t->nodes[i].next = 0;
	for (size_t i = t->n; i-- > 1;) {
		struct flame_node *c = &t->nodes[i];

		c->next = t->nodes[c->parent].first_child;
		t->nodes[c->parent].first_child = (uint32_t)i;
	}
	for (size_t i = 0; i < t->n; i++) {
		size_t k = 0;
		uint32_t c;

		for (c = t->nodes[i].first_child; c; c = t->nodes[c].next) {
			grow((void **)&kids, &kcap, k + 1, sizeof(*kids));
			kids[k++] = &t->nodes[c];
		}
		if (k < 2)
			continue;
		qsort(kids, k, sizeof(*kids), cmp_sibling);
		t->nodes[i].first_child = (uint32_t)(kids[0] - t->nodes);
		for (size_t j = 0; j + 1 < k; j++)
			kids[j]->next = (uint32_t)(kids[j + 1] - t->nodes);
		kids[k - 1]->next = 0;
	}
	free(kids);

	/* depth-first order, so that writers walk the array; indices renumbered */
	{
		struct flame_node *dfs = xcalloc(t->n, sizeof(*dfs));
		uint32_t *renum = xcalloc(t->n, sizeof(uint32_t));
		size_t o = 0;

		grow((void **)&stack, &scap, 1, sizeof(*stack));
		stack[sp++] = 0;
		while (sp) {
			size_t i = stack[--sp], k = 0;
			uint32_t c;

			renum[i] = (uint32_t)o;
			dfs[o++] = t->nodes[i];
			for (c = t->nodes[i].first_child; c; c = t->nodes[c].next)
				k++;
			grow((void **)&stack, &scap, sp + k, sizeof(*stack));
			/* pushed in reverse so that the first child comes out first */
			sp += k;
			k = sp;
			for (c = t->nodes[i].first_child; c; c = t->nodes[c].next)
				stack[--k] = c;
		}
		for (size_t i = 0; i < t->n; i++) {
			struct flame_node *d = &dfs[i];

			d->parent = i ? renum[d->parent] : 0;
			d->first_child = d->first_child ? renum[d->first_child] : 0;
			d->next = d->next ? renum[d->next] : 0;
			d->depth = i ? dfs[d->parent].depth + 1 : 0;
		}
		free(renum);
		free(t->nodes);
		t->nodes = dfs;
		t->cap = t->n;
	}
	free(stack);
}

int flame_tree__finish(struct flame_tree *t, const char *cmd, size_t max_frames)
{
	uint8_t *keep = NULL;

	if (t->max_programs && !programs_matter(t))
		elide_programs(t);
	free(t->slots);
	t->slots = NULL;
	t->nslots = 0;
	if (scale_sides(t, cmd))
		return -1;
	/* max_frames 0: every frame of a positive value, BASE's too */
	if (max_frames) {
		keep = xcalloc(t->n, 1);
		choose_kept(t, max_frames, keep);
	}
	rebuild(t, keep, !max_frames && t->diff);
	free(keep);
	return 0;
}

/* "1,234,567" (whole numbers of a count). */
static const char *fmt_thousands(double v, char *buf, size_t len)
{
	char digits[64];
	size_t n, o = 0;
	int lead;

	snprintf(digits, sizeof(digits), "%.0f", fabs(v));
	n = strlen(digits);
	if (v < 0 && o + 1 < len)
		buf[o++] = '-';
	lead = (int)(n % 3 ? n % 3 : 3);
	for (size_t i = 0; i < n && o + 2 < len; i++) {
		if (i && (int)((i - (size_t)lead) % 3) == 0 && i >= (size_t)lead)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

const char *flame_fmt_value(const struct flame_tree *t, double v, char *buf, size_t len)
{
	bool bytes = t->unit && !strcmp(t->unit, "bytes");

	if (bytes)
		return t->op ? fmt_bytes_op(v, buf, len) : fmt_bytes(v, buf, len);
	if (fabs(v) >= 1000 || (!t->op && v == floor(v)))
		return fmt_thousands(v, buf, len);
	snprintf(buf, len, "%.3g", v);
	return buf;
}
