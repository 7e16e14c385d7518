#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Spare standard blocks kept per thread: enough for the requests a busy
 * worker has in flight at once to reuse blocks instead of calling malloc. */
#define CACHE_MAX 256

struct ig_arena_block {
	struct ig_arena_block *next;
	size_t size; /* usable bytes after the header */
	_Alignas(16) char data[];
};

static _Thread_local struct ig_arena_block *cache;
static _Thread_local size_t ncache;

static struct ig_arena_block *block_new(size_t size)
{
	if (size == IG_ARENA_BLOCK && cache) {
		struct ig_arena_block *b = cache;
		cache = b->next;
		ncache--;
		return b;
	}
	struct ig_arena_block *b = malloc(sizeof *b + size);
	if (b)
		b->size = size;
	return b;
}

static void block_free(struct ig_arena_block *b)
{
	if (b->size == IG_ARENA_BLOCK && ncache < CACHE_MAX) {
		b->next = cache;
		cache = b;
		ncache++;
		return;
	}
	free(b);
}

void *ig_arena_alloc(struct ig_arena *a, size_t n)
{
	size_t need = n ? (n + 15) & ~(size_t)15 : 16;
	if (need < n)
		return NULL;
	if ((size_t)(a->end - a->ptr) >= need && a->ptr) {
		void *p = a->ptr;
		a->ptr += need;
		a->used += need;
		return p;
	}
	/* A large allocation gets its own block behind the current one, so
	 * the free space of the current block stays usable. */
	if (need > IG_ARENA_BLOCK / 4) {
		struct ig_arena_block *b = block_new(need > IG_ARENA_BLOCK ? need : IG_ARENA_BLOCK);
		if (!b)
			return NULL;
		if (a->blocks) {
			b->next = a->blocks->next;
			a->blocks->next = b;
		} else {
			b->next = NULL;
			a->blocks = b;
			a->ptr = b->data + need;
			a->end = b->data + b->size;
		}
		a->used += need;
		return b->data;
	}
	struct ig_arena_block *b = block_new(IG_ARENA_BLOCK);
	if (!b)
		return NULL;
	b->next = a->blocks;
	a->blocks = b;
	a->ptr = b->data + need;
	a->end = b->data + b->size;
	a->used += need;
	return b->data;
}

void *ig_arena_calloc(struct ig_arena *a, size_t n)
{
	void *p = ig_arena_alloc(a, n);
	if (p)
		memset(p, 0, n);
	return p;
}

struct ig_str ig_arena_strdup(struct ig_arena *a, struct ig_str s)
{
	char *p = ig_arena_alloc(a, s.len + 1);
	if (!p)
		return (struct ig_str){NULL, 0};
	if (s.len)
		memcpy(p, s.ptr, s.len);
	p[s.len] = '\0';
	return (struct ig_str){p, s.len};
}

void ig_arena_free(struct ig_arena *a)
{
	struct ig_arena_block *b = a->blocks;
	while (b) {
		struct ig_arena_block *next = b->next;
		block_free(b);
		b = next;
	}
	a->blocks = NULL;
	a->ptr = a->end = NULL;
	a->used = 0;
}

void ig_arena_thread_cleanup(void)
{
	while (cache) {
		struct ig_arena_block *next = cache->next;
		free(cache);
		cache = next;
	}
	ncache = 0;
}
