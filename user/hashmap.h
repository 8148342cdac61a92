/*
 * A small open-addressing hash table from byte-string keys to 64-bit values, for the
 * de-duplication tables of the profile builder and the caches (keys are copied in), and a
 * string pool built on it.
 */
#ifndef ALLOCPROF_HASHMAP_H
#define ALLOCPROF_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hashmap;

struct hashmap *hashmap__new(void);
void hashmap__free(struct hashmap *h);
/* true and *val when found. */
bool hashmap__get(const struct hashmap *h, const void *key, size_t len, uint64_t *val);
/* Inserts or replaces. */
void hashmap__put(struct hashmap *h, const void *key, size_t len, uint64_t val);
size_t hashmap__size(const struct hashmap *h);
uint64_t hash_bytes(const void *p, size_t len);

/* Interned strings: one copy of each, stable pointers, freed with the pool. */
struct strpool;

struct strpool *strpool__new(void);
void strpool__free(struct strpool *sp);
/* The pool's copy of s (NULL for NULL). */
const char *strpool__intern(struct strpool *sp, const char *s);

#endif
