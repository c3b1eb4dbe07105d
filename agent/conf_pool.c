/*
 * The text values of a loaded configuration, each kept once: the agent
 * holds thousands of enrollments, and most of their values are the same
 * string (every key of the unnamed section, a token URI, a PIN source).
 * conf_file_get() points an enrollment's fields here instead of copying
 * each value; the strings sit in large blocks, without a malloc header
 * each.  The enrollments that point here hold a reference: the pool lives
 * until the last of them and the file are freed (a reload's new
 * enrollments take a new pool; the old one goes with the old ones).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

#define BLOCK_MIN 4096
#define BLOCK_MAX 65536

typedef struct block {
	struct block *next;
	size_t used, size;
	char text[];
} block;

struct conf_pool {
	size_t refs;
	block *blocks;
	/* the lookup, while the file interns: open addressing, a power of
	 * two slots, at most half of them taken */
	const char **slots;
	size_t cap, n;
	int sealed;
};

conf_pool *conf_pool_new(void)
{
	conf_pool *p = calloc(1, sizeof(*p));

	if (p != NULL)
		p->refs = 1;
	return p;
}

conf_pool *conf_pool_up(conf_pool *p)
{
	p->refs++;
	return p;
}

void conf_pool_seal(conf_pool *p)
{
	if (p == NULL)
		return;
	free(p->slots);
	p->slots = NULL;
	p->cap = p->n = 0;
	p->sealed = 1;
}

void conf_pool_free(conf_pool *p)
{
	block *b;

	if (p == NULL || --p->refs > 0)
		return;
	while ((b = p->blocks) != NULL) {
		p->blocks = b->next;
		free(b);
	}
	free(p->slots);
	free(p);
}

static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The slot of s: where it is, or the free one it goes to. */
static size_t slot_of(const conf_pool *p, const char *s, uint64_t h)
{
	size_t i = (size_t)h & (p->cap - 1);

	while (p->slots[i] != NULL && strcmp(p->slots[i], s) != 0)
		i = (i + 1) & (p->cap - 1);
	return i;
}

static int grow(conf_pool *p)
{
	size_t cap = p->cap == 0 ? 64 : 2 * p->cap, i, k;
	const char **old = p->slots, **slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -1;
	p->slots = slots;
	k = p->cap;
	p->cap = cap;
	for (i = 0; i < k; i++)
		if (old[i] != NULL)
			p->slots[slot_of(p, old[i], hash(old[i]))] = old[i];
	free(old);
	return 0;
}

static char *store(conf_pool *p, const char *s)
{
	size_t len = strlen(s) + 1;
	block *b = p->blocks;
	char *at;

	if (b == NULL || b->size - b->used < len) {
		size_t size = b == NULL ? BLOCK_MIN : b->size * 2;

		if (size > BLOCK_MAX)
			size = BLOCK_MAX;
		if (size < len)
			size = len;
		if ((b = malloc(sizeof(*b) + size)) == NULL)
			return NULL;
		b->size = size;
		b->used = 0;
		/* a block that is full stays behind the one being filled */
		if (p->blocks != NULL && p->blocks->size - p->blocks->used >= BLOCK_MIN) {
			b->next = p->blocks->next;
			p->blocks->next = b;
		} else {
			b->next = p->blocks;
			p->blocks = b;
		}
	}
	at = b->text + b->used;
	memcpy(at, s, len);
	b->used += len;
	return at;
}

const char *conf_pool_get0(conf_pool *p, const char *s)
{
	uint64_t h = hash(s);
	size_t i;
	char *at;

	if (p->sealed)
		return store(p, s);
	if ((p->n + 1) * 2 > p->cap && grow(p) < 0)
		return NULL;
	i = slot_of(p, s, h);
	if (p->slots[i] != NULL)
		return p->slots[i];
	if ((at = store(p, s)) == NULL)
		return NULL;
	p->slots[i] = at;
	p->n++;
	return at;
}
