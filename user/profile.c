/*
 * The profile being built: pprof's model (samples, locations, functions, mappings, a string
 * table) with every table de-duplicated, held as protobuf-c messages ready to encode. Knows
 * nothing about BPF, processes or files on disk.
 */
#include "profile.h"
#include "hashmap.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pid, comm, exe, container, sampled */
#define PROFILE_MAX_LABELS 5

struct profile {
	Perftools__Profiles__Profile msg;
	size_t cap_sample, cap_mapping, cap_location, cap_function, cap_string, cap_comment;
	struct hashmap *strings, *functions, *locations, *mappings;
	int64_t k_pid, k_comm;
	size_t nvalues;
};

static int64_t str(struct profile *p, const char *s)
{
	Perftools__Profiles__Profile *m = &p->msg;
	uint64_t idx;

	if (!s)
		s = "";
	if (hashmap__get(p->strings, s, strlen(s), &idx))
		return (int64_t)idx;
	grow((void **)&m->string_table, &p->cap_string, m->n_string_table + 1,
	     sizeof(*m->string_table));
	m->string_table[m->n_string_table] = xstrdup(s);
	hashmap__put(p->strings, s, strlen(s), m->n_string_table);
	return (int64_t)m->n_string_table++;
}

static Perftools__Profiles__ValueType *value_type(struct profile *p, const struct value_type *vt)
{
	Perftools__Profiles__ValueType *v = xcalloc(1, sizeof(*v));

	perftools__profiles__value_type__init(v);
	v->type = str(p, vt->type);
	v->unit = str(p, vt->unit);
	return v;
}

struct profile *profile__new(const struct profile_meta *meta)
{
	struct profile *p = xcalloc(1, sizeof(*p));
	Perftools__Profiles__Profile *m = &p->msg;

	perftools__profiles__profile__init(m);
	p->strings = hashmap__new();
	p->functions = hashmap__new();
	p->locations = hashmap__new();
	p->mappings = hashmap__new();
	str(p, ""); /* index 0 is the empty string, always */
	m->n_sample_type = meta->nsample_types;
	m->sample_type = xcalloc(meta->nsample_types, sizeof(*m->sample_type));
	for (size_t i = 0; i < meta->nsample_types; i++)
		m->sample_type[i] = value_type(p, &meta->sample_types[i]);
	p->nvalues = meta->nsample_types;
	m->period_type = value_type(p, &meta->period_type);
	m->period = meta->period;
	m->time_nanos = meta->time_nanos;
	m->duration_nanos = meta->duration_nanos;
	if (meta->default_sample_type)
		m->default_sample_type = str(p, meta->default_sample_type);
	p->k_pid = str(p, "pid");
	p->k_comm = str(p, "comm");
	return p;
}

void profile__free(struct profile *p)
{
	Perftools__Profiles__Profile *m;

	if (!p)
		return;
	m = &p->msg;
	for (size_t i = 0; i < m->n_sample_type; i++)
		free(m->sample_type[i]);
	free(m->sample_type);
	free(m->period_type);
	for (size_t i = 0; i < m->n_sample; i++) {
		for (size_t j = 0; j < m->sample[i]->n_label; j++)
			free(m->sample[i]->label[j]);
		free(m->sample[i]->label);
		free(m->sample[i]->location_id);
		free(m->sample[i]->value);
		free(m->sample[i]);
	}
	free(m->sample);
	for (size_t i = 0; i < m->n_mapping; i++)
		free(m->mapping[i]);
	free(m->mapping);
	for (size_t i = 0; i < m->n_location; i++) {
		for (size_t j = 0; j < m->location[i]->n_line; j++)
			free(m->location[i]->line[j]);
		free(m->location[i]->line);
		free(m->location[i]);
	}
	free(m->location);
	for (size_t i = 0; i < m->n_function; i++)
		free(m->function[i]);
	free(m->function);
	for (size_t i = 0; i < m->n_string_table; i++)
		free(m->string_table[i]);
	free(m->string_table);
	free(m->comment);
	hashmap__free(p->strings);
	hashmap__free(p->functions);
	hashmap__free(p->locations);
	hashmap__free(p->mappings);
	free(p);
}

uint64_t profile__mapping(struct profile *p, uint64_t key, uint64_t start, uint64_t limit,
			  uint64_t offset, const char *file, const char *build_id, bool symbolized)
{
	Perftools__Profiles__Profile *m = &p->msg;
	Perftools__Profiles__Mapping *mp;
	uint64_t id;

	if (hashmap__get(p->mappings, &key, sizeof(key), &id))
		return id;
	mp = xcalloc(1, sizeof(*mp));
	perftools__profiles__mapping__init(mp);
	mp->id = m->n_mapping + 1;
	mp->memory_start = start;
	mp->memory_limit = limit;
	mp->file_offset = offset;
	mp->filename = str(p, file);
	mp->build_id = str(p, build_id);
	/*
	 * Symbolized here: pprof then keeps our names and does not run addr2line on a file
	 * that may not exist where the profile is read. Addresses and build-ids stay real, so
	 * `pprof -symbolize=force` can still redo it against the same binaries.
	 */
	mp->has_functions = mp->has_filenames = mp->has_line_numbers = symbolized;
	mp->has_inline_frames = symbolized;
	grow((void **)&m->mapping, &p->cap_mapping, m->n_mapping + 1, sizeof(*m->mapping));
	m->mapping[m->n_mapping++] = mp;
	hashmap__put(p->mappings, &key, sizeof(key), mp->id);
	return mp->id;
}

static uint64_t function(struct profile *p, const struct sym_frame *f)
{
	Perftools__Profiles__Profile *m = &p->msg;
	Perftools__Profiles__Function *fn;
	int64_t key[3] = { str(p, f->name), str(p, f->system_name), str(p, f->file) };
	uint64_t id;

	if (hashmap__get(p->functions, key, sizeof(key), &id))
		return id;
	fn = xcalloc(1, sizeof(*fn));
	perftools__profiles__function__init(fn);
	fn->id = m->n_function + 1;
	fn->name = key[0];
	fn->system_name = key[1];
	fn->filename = key[2];
	grow((void **)&m->function, &p->cap_function, m->n_function + 1, sizeof(*m->function));
	m->function[m->n_function++] = fn;
	hashmap__put(p->functions, key, sizeof(key), fn->id);
	return fn->id;
}

uint64_t profile__location(struct profile *p, uint64_t mapping_id, uint64_t address,
			   const struct sym_result *sym)
{
	Perftools__Profiles__Profile *m = &p->msg;
	Perftools__Profiles__Location *loc;
	uint64_t key[2] = { mapping_id, address }, id;
	int n = 0;

	if (hashmap__get(p->locations, key, sizeof(key), &id))
		return id;
	loc = xcalloc(1, sizeof(*loc));
	perftools__profiles__location__init(loc);
	loc->id = m->n_location + 1;
	loc->mapping_id = mapping_id;
	loc->address = address;
	for (int i = 0; sym && i < sym->n; i++)
		n += sym->f[i].name != NULL;
	if (n) {
		loc->line = xcalloc((size_t)n, sizeof(*loc->line));
		for (int i = 0; i < sym->n; i++) {
			Perftools__Profiles__Line *l;

			if (!sym->f[i].name)
				continue;
			l = xcalloc(1, sizeof(*l));
			perftools__profiles__line__init(l);
			l->function_id = function(p, &sym->f[i]);
			l->line = sym->f[i].line;
			loc->line[loc->n_line++] = l;
		}
	}
	grow((void **)&m->location, &p->cap_location, m->n_location + 1, sizeof(*m->location));
	m->location[m->n_location++] = loc;
	hashmap__put(p->locations, key, sizeof(key), loc->id);
	return loc->id;
}

void profile__add_sample(struct profile *p, const uint64_t *locs, size_t nlocs,
			 const int64_t *values, int64_t pid, const char *comm)
{
	Perftools__Profiles__Profile *m = &p->msg;
	Perftools__Profiles__Sample *s = xcalloc(1, sizeof(*s));
	Perftools__Profiles__Label *l;

	perftools__profiles__sample__init(s);
	s->n_location_id = nlocs;
	s->location_id = xcalloc(nlocs, sizeof(*s->location_id));
	memcpy(s->location_id, locs, nlocs * sizeof(*locs));
	s->n_value = p->nvalues;
	s->value = xcalloc(p->nvalues, sizeof(*s->value));
	memcpy(s->value, values, p->nvalues * sizeof(*values));
	s->label = xcalloc(PROFILE_MAX_LABELS, sizeof(*s->label)); /* pid, comm, and added ones */
	/* pid is numeric, so `-tagfocus=pid=1234` means exactly 1234, not a regexp. */
	l = xcalloc(1, sizeof(*l));
	perftools__profiles__label__init(l);
	l->key = p->k_pid;
	l->num = pid;
	s->label[s->n_label++] = l;
	if (comm && *comm) {
		l = xcalloc(1, sizeof(*l));
		perftools__profiles__label__init(l);
		l->key = p->k_comm;
		l->str = str(p, comm);
		s->label[s->n_label++] = l;
	}
	grow((void **)&m->sample, &p->cap_sample, m->n_sample + 1, sizeof(*m->sample));
	m->sample[m->n_sample++] = s;
}

void profile__add_label(struct profile *p, const char *key, const char *value)
{
	Perftools__Profiles__Profile *m = &p->msg;
	Perftools__Profiles__Sample *s = m->n_sample ? m->sample[m->n_sample - 1] : NULL;
	Perftools__Profiles__Label *l;

	if (!s || !value || !*value || s->n_label >= PROFILE_MAX_LABELS)
		return;
	l = xcalloc(1, sizeof(*l));
	perftools__profiles__label__init(l);
	l->key = str(p, key);
	l->str = str(p, value);
	s->label[s->n_label++] = l;
}

void profile__add_num_label(struct profile *p, const char *key, int64_t num, const char *unit)
{
	Perftools__Profiles__Profile *m = &p->msg;
	Perftools__Profiles__Sample *s = m->n_sample ? m->sample[m->n_sample - 1] : NULL;
	Perftools__Profiles__Label *l;

	if (!s || s->n_label >= PROFILE_MAX_LABELS)
		return;
	l = xcalloc(1, sizeof(*l));
	perftools__profiles__label__init(l);
	l->key = str(p, key);
	l->num = num;
	if (unit && *unit)
		l->num_unit = str(p, unit);
	s->label[s->n_label++] = l;
}

void profile__add_comment(struct profile *p, const char *fmt, ...)
{
	Perftools__Profiles__Profile *m = &p->msg;
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	grow((void **)&m->comment, &p->cap_comment, m->n_comment + 1, sizeof(*m->comment));
	m->comment[m->n_comment++] = str(p, buf);
}

void profile__set_main(struct profile *p, const char *file)
{
	Perftools__Profiles__Profile *m = &p->msg;

	for (size_t i = 0; i < m->n_mapping; i++) {
		Perftools__Profiles__Mapping *main;

		if (strcmp(m->string_table[m->mapping[i]->filename], file))
			continue;
		/* Ids stay as they are; only the position in the list says "main". */
		main = m->mapping[i];
		memmove(&m->mapping[1], &m->mapping[0], i * sizeof(*m->mapping));
		m->mapping[0] = main;
		return;
	}
}

const Perftools__Profiles__Profile *profile__message(struct profile *p)
{
	return &p->msg;
}

size_t profile__samples(const struct profile *p)
{
	return p->msg.n_sample;
}
