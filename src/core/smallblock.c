#include "core/smallblock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/asan.h"

/* Size classes every 16 bytes up to 2,048 (a block wastes under 16
 * bytes beside its header: nghttp2's long-lived allocations are what an
 * idle connection holds). */
#define GRAIN 16
#define NCLASS (IG_SMALLBLOCK_MAX / GRAIN)
/* Blocks kept per class and thread (the allocations of a few hundred
 * streams in flight), and bytes kept per thread in all. */
#define KEEP_MAX 256
#define KEEP_BYTES (1u << 20)
#define LARGE 0xffffffffu
/* head.mark of a kept block: a second free of it is caught. */
#define KEPT_MARK 0x6b657074u

struct head {
	uint32_t cls;  /* class index, or LARGE */
	uint32_t mark; /* KEPT_MARK while kept, else 0 */
	union {
		size_t size;	   /* payload bytes, in use */
		struct head *next; /* kept: the next one of its class */
	};
};

_Static_assert(sizeof(struct head) == 16, "payloads stay 16-byte aligned");

/* Kept blocks are linked through their heads, which stay unpoisoned and
 * are the start of what malloc gave: LeakSanitizer finds them from here. */
static _Thread_local struct head *kept[NCLASS];
static _Thread_local unsigned nkept[NCLASS];
static _Thread_local size_t kept_bytes;

/* The class of 1 .. IG_SMALLBLOCK_MAX bytes (0 bytes: the first). */
static inline unsigned class_of(size_t size)
{
	return size ? (unsigned)((size - 1) / GRAIN) : 0;
}

static inline size_t class_bytes(unsigned c)
{
	return ((size_t)c + 1) * GRAIN;
}

static inline struct head *head_of(const void *p)
{
	return (struct head *)((char *)(uintptr_t)p - sizeof(struct head));
}

void *ig_smallblock_alloc(size_t size)
{
	if (size > IG_SMALLBLOCK_MAX) {
		if (size > SIZE_MAX - sizeof(struct head))
			return NULL;
		struct head *h = malloc(sizeof *h + size);
		if (!h)
			return NULL;
		*h = (struct head){.cls = LARGE, .size = size};
		return h + 1;
	}
	unsigned c = class_of(size);
	size_t bytes = class_bytes(c);
	struct head *h = kept[c];
	if (h) {
		kept[c] = h->next;
		nkept[c]--;
		kept_bytes -= sizeof *h + bytes;
		h->mark = 0;
		h->size = bytes;
		IG_UNPOISON(h + 1, bytes);
		return h + 1;
	}
	h = malloc(sizeof *h + bytes);
	if (!h)
		return NULL;
	*h = (struct head){.cls = c, .size = bytes};
	return h + 1;
}

void *ig_smallblock_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = ig_smallblock_alloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

size_t ig_smallblock_usable(const void *p)
{
	return p ? head_of(p)->size : 0;
}

void ig_smallblock_free(void *p)
{
	if (!p)
		return;
	struct head *h = head_of(p);
	if (h->mark == KEPT_MARK) {
		/* As glibc does: a double free is a bug to stop at, not a
		 * block to hand out twice. */
		fprintf(stderr, "smallblock: double free of %p\n", p);
		abort();
	}
	unsigned c = h->cls;
	size_t bytes = sizeof *h + h->size; /* heads count against the bound */
	if (c >= NCLASS || nkept[c] >= KEEP_MAX || kept_bytes + bytes > KEEP_BYTES) {
		free(h);
		return;
	}
	IG_POISON(p, h->size);
	h->mark = KEPT_MARK;
	kept_bytes += bytes;
	h->next = kept[c];
	kept[c] = h;
	nkept[c]++;
}

void *ig_smallblock_realloc(void *p, size_t size)
{
	if (!p)
		return ig_smallblock_alloc(size);
	size_t have = head_of(p)->size;
	if (size <= have && (head_of(p)->cls != LARGE || size > IG_SMALLBLOCK_MAX))
		return p;
	void *q = ig_smallblock_alloc(size);
	if (!q)
		return NULL;
	memcpy(q, p, have < size ? have : size);
	ig_smallblock_free(p);
	return q;
}

size_t ig_smallblock_kept(void)
{
	size_t n = 0;
	for (unsigned c = 0; c < NCLASS; c++)
		n += nkept[c];
	return n;
}

void ig_smallblock_thread_cleanup(void)
{
	for (unsigned c = 0; c < NCLASS; c++) {
		while (kept[c]) {
			struct head *h = kept[c];
			kept[c] = h->next;
			free(h);
		}
		nkept[c] = 0;
	}
	kept_bytes = 0;
}
