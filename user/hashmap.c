/*
 * A small open-addressing hash table from byte-string keys to 64-bit values, for the
 * de-duplication tables of the profile builder and the caches (keys are copied in), and a
 * string pool built on it.
 */
#include "hashmap.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	uint64_t hash; /* 0: empty */
	void *key;
	size_t len;
	uint64_t val;
};

struct hashmap {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t n;
};

uint64_t hash_bytes(const void *p, size_t len)
{
	/* FNV-1a, then a final mix; good enough for de-duplication tables. */
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

struct hashmap *hashmap__new(void)
{
	struct hashmap *h = xcalloc(1, sizeof(*h));

	h->cap = 64;
	h->slots = xcalloc(h->cap, sizeof(*h->slots));
	return h;
}

void hashmap__free(struct hashmap *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->cap; i++)
		free(h->slots[i].key);
	free(h->slots);
	free(h);
}

static struct slot *find(const struct hashmap *h, uint64_t hash, const void *key, size_t len)
{
	for (size_t i = hash & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
		struct slot *s = &h->slots[i];

		if (!s->hash)
			return s;
		if (s->hash == hash && s->len == len && !memcmp(s->key, key, len))
			return s;
	}
}

bool hashmap__get(const struct hashmap *h, const void *key, size_t len, uint64_t *val)
{
	struct slot *s = find(h, hash_bytes(key, len), key, len);

	if (!s->hash)
		return false;
	*val = s->val;
	return true;
}

static void rehash(struct hashmap *h)
{
	struct slot *old = h->slots;
	size_t oldcap = h->cap;

	h->cap *= 2;
	h->slots = xcalloc(h->cap, sizeof(*h->slots));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].hash)
			*find(h, old[i].hash, old[i].key, old[i].len) = old[i];
	free(old);
}

void hashmap__put(struct hashmap *h, const void *key, size_t len, uint64_t val)
{
	uint64_t hash = hash_bytes(key, len);
	struct slot *s = find(h, hash, key, len);

	if (s->hash) {
		s->val = val;
		return;
	}
	s->hash = hash;
	s->key = xcalloc(1, len);
	memcpy(s->key, key, len);
	s->len = len;
	s->val = val;
	if (++h->n * 2 > h->cap)
		rehash(h);
}

size_t hashmap__size(const struct hashmap *h)
{
	return h->n;
}

struct strpool {
	struct hashmap *idx; /* string -> index into strs */
	char **strs;
	size_t n, cap;
};

struct strpool *strpool__new(void)
{
	struct strpool *sp = xcalloc(1, sizeof(*sp));

	sp->idx = hashmap__new();
	return sp;
}

void strpool__free(struct strpool *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < sp->n; i++)
		free(sp->strs[i]);
	free(sp->strs);
	hashmap__free(sp->idx);
	free(sp);
}

const char *strpool__intern(struct strpool *sp, const char *s)
{
	uint64_t i;

	if (!s)
		return NULL;
	if (hashmap__get(sp->idx, s, strlen(s), &i))
		return sp->strs[i];
	grow((void **)&sp->strs, &sp->cap, sp->n + 1, sizeof(*sp->strs));
	sp->strs[sp->n] = xstrdup(s);
	hashmap__put(sp->idx, s, strlen(s), sp->n);
	return sp->strs[sp->n++];
}
