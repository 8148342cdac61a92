/*
 * The demo program `make demo` records: a toy key-value server loop with a few clear
 * allocation sites of different sizes and rates, so the profile has something to show.
 * Runs for about a second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

struct entry {
	char *key;
	char *value;
	size_t len;
	struct entry *next;
};

#define BUCKETS 1024
static struct entry *table[BUCKETS];
static size_t live;

/* Small and frequent: every request's key is copied. */
NOINLINE static char *parse_key(unsigned int id)
{
	char buf[32], *key;
	int n = snprintf(buf, sizeof(buf), "user:%u", id % 5000);

	key = malloc((size_t)n + 1);
	memcpy(key, buf, (size_t)n + 1);
	return key;
}

/* Medium: values stored in the cache. */
NOINLINE static void cache_put(char *key, size_t len)
{
	unsigned int h = 0;
	struct entry *e;

	for (const char *p = key; *p; p++)
		h = h * 31 + (unsigned char)*p;
	e = malloc(sizeof(*e));
	e->key = key;
	e->value = calloc(1, len);
	e->len = len;
	e->next = table[h % BUCKETS];
	table[h % BUCKETS] = e;
	if (++live > 20000) { /* evict a bucket now and then */
		struct entry **b = &table[(h + 1) % BUCKETS];

		while (*b) {
			struct entry *x = *b;

			*b = x->next;
			free(x->key);
			free(x->value);
			free(x);
			live--;
		}
	}
}

/* Large and rare: responses are rendered into a growing buffer. */
NOINLINE static void render_response(unsigned int id)
{
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);

	for (int i = 0; i < 64 + (int)(id % 64); i++) {
		if (len + 1024 > cap) {
			cap *= 2;
			out = realloc(out, cap);
		}
		memset(out + len, 'x', 1024);
		len += 1024;
	}
	free(out);
}

NOINLINE static void handle_request(unsigned int id)
{
	char *key = parse_key(id);

	if (id % 4 == 0)
		cache_put(key, 256 + id % 2048);
	else
		free(key);
	if (id % 16 == 0)
		render_response(id);
}

int main(void)
{
	for (unsigned int id = 0; id < 400000; id++)
		handle_request(id);
	printf("demo: handled 400000 requests, %zu cache entries live\n", live);
	return 0;
}
