/*
 * The per-function aggregation of a profile (funcstats.h): what `top` prints, what `check`
 * compares with budgets and `diff` compares between profiles. Reads the decoded message only;
 * names are kept raw, escaping is the printer's.
 */
#include "funcstats.h"
#include "profile.h"
#include "hashmap.h"
#include "pprof.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sums saturate: a crafted profile's values near INT64_MAX must not overflow. */
static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

uint64_t funcstats_work(const Perftools__Profiles__Profile *p)
{
	struct hashmap *lines = hashmap__new();
	uint64_t work = 0, n;

	for (size_t i = 0; i < p->n_location; i++)
		hashmap__put(lines, &p->location[i]->id, sizeof(uint64_t),
			     p->location[i]->n_line ? p->location[i]->n_line : 1);
	for (size_t s = 0; s < p->n_sample && work <= FUNCSTATS_MAX_WORK; s++)
		for (size_t k = 0; k < p->sample[s]->n_location_id; k++)
			if (hashmap__get(lines, &p->sample[s]->location_id[k], sizeof(uint64_t),
					 &n))
				work += n;
	hashmap__free(lines);
	return work;
}

struct funcstats *funcstats__new(void)
{
	struct funcstats *fs = xcalloc(1, sizeof(*fs));

	fs->by_name = hashmap__new();
	return fs;
}

void funcstats__free(struct funcstats *fs)
{
	if (!fs)
		return;
	for (size_t i = 0; i < fs->nrows; i++) {
		free(fs->rows[i].name);
		free(fs->rows[i].file);
	}
	free(fs->rows);
	hashmap__free(fs->by_name);
	free(fs);
}

/* The row of `name`, created (with `file`) when new: its index. */
static size_t row_index(struct funcstats *fs, const char *name, const char *file)
{
	uint64_t ri;

	if (hashmap__get(fs->by_name, name, strlen(name), &ri))
		return ri;
	grow((void **)&fs->rows, &fs->cap, fs->nrows + 1, sizeof(*fs->rows));
	fs->rows[fs->nrows] = (struct fs_row){ .name = xstrdup(name), .file = xstrdup(file) };
	hashmap__put(fs->by_name, name, strlen(name), fs->nrows);
	return fs->nrows++;
}

double fs_sample_variance(double objects, double bytes, double mean, bool bytes_var)
{
	double a, p;

	if (!(objects > 0) || !(bytes > 0) || !(mean > 0))
		return 0;
	a = bytes / objects;
	p = -expm1(-a / mean); /* 1 - exp(-a/R), exact for small a/R */
	if (!(p > 0))
		return 0;
	return (bytes_var ? objects * a * a : objects) * (1 - p) / p;
}

double fs_sample_variance_floor(double objects, double bytes, double n, bool bytes_var)
{
	double v;

	if (!(n > 0) || !(objects > 0) || !(bytes > 0))
		return 0;
	v = bytes_var ? bytes * bytes / n - bytes * bytes / objects : objects * objects / n - objects;
	return v > 0 && isfinite(v) ? v : 0;
}

/* The sample's PROFILE_LABEL_SAMPLED, 0 when it has none. */
static double sampled_of(const Perftools__Profiles__Profile *p,
			 const Perftools__Profiles__Sample *smp)
{
	for (size_t i = 0; i < smp->n_label; i++)
		if (!smp->label[i]->str && smp->label[i]->num > 0 &&
		    !strcmp(pprof_str(p, smp->label[i]->key), PROFILE_LABEL_SAMPLED))
			return (double)smp->label[i]->num;
	return 0;
}

int funcstats_type_index(const Perftools__Profiles__Profile *p, const char *name)
{
	for (size_t i = 0; i < p->n_sample_type; i++)
		if (!strcmp(pprof_str(p, p->sample_type[i]->type), name))
			return (int)i;
	return -1;
}

/*
 * Which values estimate the objects and bytes of the type `si` is one of: off when `si`'s
 * type has no variance (exact, or a type other than alloc_* and inuse_*).
 */
void fs_var__init(struct fs_var *v, const Perftools__Profiles__Profile *p, int si,
		  const struct prof_info *info)
{
	static const char *const pairs[][2] = { { "alloc_objects", "alloc_space" },
						{ "inuse_objects", "inuse_space" } };
	const char *t = pprof_str(p, p->sample_type[si]->type);

	*v = (struct fs_var){ .io = -1, .ib = -1 };
	if (!info || info->sampling != PROF_SAMPLING_SAMPLED || !(info->mean_bytes > 0))
		return;
	for (size_t k = 0; k < ARRAY_SIZE(pairs); k++) {
		if (strcmp(t, pairs[k][0]) && strcmp(t, pairs[k][1]))
			continue;
		v->io = funcstats_type_index(p, pairs[k][0]);
		v->ib = funcstats_type_index(p, pairs[k][1]);
		v->bytes = !strcmp(t, pairs[k][1]);
		/* (the count of sampled allocations is alloc_*'s, not inuse_*'s) */
		v->alloc_types = k == 0;
		v->mean = info->mean_bytes;
		v->on = v->io >= 0 && v->ib >= 0;
		return;
	}
}

double fs_var__sample(const struct fs_var *v, const Perftools__Profiles__Profile *p,
		      const Perftools__Profiles__Sample *smp)
{
	double o, b, var;

	if (!v->on || (size_t)v->io >= smp->n_value || (size_t)v->ib >= smp->n_value)
		return 0;
	o = (double)smp->value[v->io];
	b = (double)smp->value[v->ib];
	var = fs_sample_variance(o, b, v->mean, v->bytes);
	if (v->alloc_types)
		var = fmax(var, fs_sample_variance_floor(o, b, sampled_of(p, smp), v->bytes));
	return isfinite(var) ? var : 0;
}

struct funcstats *funcstats__build(const Perftools__Profiles__Profile *p, int si,
				   const struct prof_info *info)
{
	struct funcstats *fs = funcstats__new();
	struct hashmap *loc_idx = hashmap__new(), *fn_idx = hashmap__new();
	uint64_t *fn_row, *last_sample;
	struct fs_var fv;

	fs_var__init(&fv, p, si, info);
	fs->sampled = fv.on;
	for (size_t i = 0; i < p->n_location; i++)
		hashmap__put(loc_idx, &p->location[i]->id, sizeof(uint64_t), i);
	for (size_t i = 0; i < p->n_function; i++)
		hashmap__put(fn_idx, &p->function[i]->id, sizeof(uint64_t), i);
	/* Each function's row, found by its name once: names are not hashed again per line. */
	fn_row = xcalloc(p->n_function ? p->n_function : 1, sizeof(*fn_row));
	for (size_t i = 0; i < p->n_function; i++)
		fn_row[i] = UINT64_MAX;
	last_sample = NULL; /* per row: to count cum once per sample, grown with the rows */

	for (size_t s = 0; s < p->n_sample; s++) {
		const Perftools__Profiles__Sample *smp = p->sample[s];
		int64_t v = (size_t)si < smp->n_value ? smp->value[si] : 0;
		double var = fs_var__sample(&fv, p, smp);
		bool leaf = true;

		fs->total = add_sat(fs->total, v);
		fs->var_total += var;
		for (size_t k = 0; k < smp->n_location_id; k++) {
			const Perftools__Profiles__Location *loc;
			uint64_t li, fi;

			if (!hashmap__get(loc_idx, &smp->location_id[k], sizeof(uint64_t), &li))
				continue;
			loc = p->location[li];
			/* Lines are innermost first: line[0] of the leaf location is the site. */
			for (size_t l = 0; l < loc->n_line || (l == 0 && !loc->n_line); l++) {
				const char *name = NULL, *file = "";
				char addr[32];
				struct fs_row *r;
				int64_t lineno = 0;
				size_t ri, old = fs->nrows;

				fi = UINT64_MAX;
				if (loc->n_line && hashmap__get(fn_idx, &loc->line[l]->function_id,
								sizeof(uint64_t), &fi)) {
					name = pprof_str(p, p->function[fi]->name);
					file = pprof_str(p, p->function[fi]->filename);
					lineno = loc->line[l]->line;
				}
				if (!name || !*name) {
					snprintf(addr, sizeof(addr), "0x%" PRIx64, loc->address);
					name = addr;
					fi = UINT64_MAX;
				}
				if (fi != UINT64_MAX && fn_row[fi] != UINT64_MAX)
					ri = fn_row[fi];
				else
					ri = row_index(fs, name, file);
				if (fs->nrows != old) {
					last_sample = xrealloc(last_sample, fs->cap,
							       sizeof(*last_sample));
					last_sample[ri] = UINT64_MAX;
				}
				if (fi != UINT64_MAX)
					fn_row[fi] = ri;
				r = &fs->rows[ri];
				if (leaf) {
					r->flat = add_sat(r->flat, v);
					r->var_flat += var;
					if (lineno && (!r->line || v > r->line_flat)) {
						r->line = lineno;
						r->line_flat = v;
					}
				}
				if (last_sample[ri] != s) {
					r->cum = add_sat(r->cum, v);
					r->var_cum += var;
					last_sample[ri] = s;
				}
				leaf = false;
			}
		}
	}
	free(last_sample);
	free(fn_row);
	hashmap__free(loc_idx);
	hashmap__free(fn_idx);
	return fs;
}

void funcstats__merge(struct funcstats *into, const struct funcstats *from)
{
	for (size_t i = 0; i < from->nrows; i++) {
		const struct fs_row *f = &from->rows[i];
		size_t ri = row_index(into, f->name, f->file); /* may move into->rows */
		struct fs_row *r = &into->rows[ri];

		if (!*r->file && *f->file) {
			free(r->file);
			r->file = xstrdup(f->file);
		}
		if (f->line && (!r->line || f->line_flat > r->line_flat)) {
			r->line = f->line;
			r->line_flat = f->line_flat;
		}
		r->flat = add_sat(r->flat, f->flat);
		r->cum = add_sat(r->cum, f->cum);
		r->var_flat += f->var_flat;
		r->var_cum += f->var_cum;
	}
	into->total = add_sat(into->total, from->total);
	into->var_total += from->var_total;
	into->sampled = into->sampled || from->sampled;
}

const struct fs_row *funcstats__row(const struct funcstats *fs, const char *name)
{
	uint64_t ri;

	if (!hashmap__get(fs->by_name, name, strlen(name), &ri))
		return NULL;
	return &fs->rows[ri];
}

const struct fs_row *funcstats__row_loose(const struct funcstats *fs, const char *name,
					  size_t *matches)
{
	const struct fs_row *r = funcstats__row(fs, name), *found = NULL;
	size_t len = strlen(name);

	*matches = r ? 1 : 0;
	if (r || !len)
		return r;
	for (size_t i = 0; i < fs->nrows; i++)
		if (!strncmp(fs->rows[i].name, name, len) && fs->rows[i].name[len] == '(') {
			found = &fs->rows[i];
			(*matches)++;
		}
	return *matches == 1 ? found : NULL;
}

void funcstats__sort(struct funcstats *fs, int (*cmp)(const void *, const void *))
{
	if (!fs->nrows) /* rows is NULL then, which qsort must not be given */
		return;
	qsort(fs->rows, fs->nrows, sizeof(*fs->rows), cmp);
	for (size_t i = 0; i < fs->nrows; i++)
		hashmap__put(fs->by_name, fs->rows[i].name, strlen(fs->rows[i].name), i);
}

int fs_row_cmp_flat(const void *a, const void *b)
{
	const struct fs_row *x = a, *y = b;

	if (x->flat != y->flat)
		return x->flat < y->flat ? 1 : -1;
	if (x->cum != y->cum)
		return x->cum < y->cum ? 1 : -1;
	return strcmp(x->name, y->name);
}

int fs_row_cmp_cum(const void *a, const void *b)
{
	const struct fs_row *x = a, *y = b;

	if (x->cum != y->cum)
		return x->cum < y->cum ? 1 : -1;
	if (x->flat != y->flat)
		return x->flat < y->flat ? 1 : -1;
	return strcmp(x->name, y->name);
}
