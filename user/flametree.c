/*
 * The flame graph's call tree (flametree.h): built from decoded profiles, one sample at a
 * time (flametree_finish.c then scales, prunes and orders it). Names are kept raw; escaping is
 * the writers'.
 */
#include "flametree.h"
#include "flametree_priv.h"
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

uint32_t flame_new_node(struct flame_tree *t, const char *name, const char *file,
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
	flame_new_node(t, strpool__intern(t->pool, "all"), strpool__intern(t->pool, ""), FLAME_ROOT,
		       0);
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

uint32_t flame_child_of(struct flame_tree *t, uint32_t parent, const struct lframe *f)
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
	idx = flame_new_node(t, f->name, f->file, f->kind, parent);
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
			node = flame_child_of(t, 0, &progs[s]);
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

				node = flame_child_of(t, node, &fr[f]);
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

/* What one of a count's units is called: "allocs", "objects", or the sample type. */
static const char *count_noun(const struct flame_tree *t)
{
	const char *type = t->type ? t->type : "";
	size_t n = strlen(type);

	if (!strcmp(type, "alloc_objects"))
		return "allocs";
	if (n >= 7 && !strcmp(type + n - 7, "objects"))
		return "objects";
	return type;
}

const char *flame_fmt_amount(const struct flame_tree *t, double v, char *buf, size_t len)
{
	const char *unit = t->unit ? t->unit : "", *noun = unit;
	char num[64];

	if (!strcmp(unit, "bytes"))
		noun = "";
	else if (!strcmp(unit, "count"))
		noun = count_noun(t);
	flame_fmt_value(t, v, num, sizeof(num));
	snprintf(buf, len, "%s%s%s%s", num, *noun ? " " : "", noun, t->op ? "/op" : "");
	return buf;
}
