/* The single-producer single-consumer byte ring (spsc.h). Each side loads
 * its own counter relaxed (no other thread writes it) and the other's
 * with acquire, and stores its own with release. */
#include "core/spsc.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int ig_spsc_init(struct ig_spsc *r, size_t cap)
{
	if (cap == 0 || cap > SIZE_MAX / 2 + 1)
		return -EINVAL;
	size_t pow2 = 1;
	while (pow2 < cap)
		pow2 <<= 1;
	char *buf = malloc(pow2);
	if (!buf)
		return -ENOMEM;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->buf = buf;
	r->cap = pow2;
	return 0;
}

void ig_spsc_free(struct ig_spsc *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

bool ig_spsc_reserve(struct ig_spsc *r, size_t n)
{
	size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	return n <= r->cap - (head - tail);
}

void ig_spsc_write(struct ig_spsc *r, size_t off, const void *src, size_t n)
{
	size_t at = (atomic_load_explicit(&r->head, memory_order_relaxed) + off) & (r->cap - 1);
	size_t first = n < r->cap - at ? n : r->cap - at;
	if (!n)
		return;
	memcpy(r->buf + at, src, first);
	memcpy(r->buf, (const char *)src + first, n - first);
}

void ig_spsc_commit(struct ig_spsc *r, size_t n)
{
	size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	atomic_store_explicit(&r->head, head + n, memory_order_release);
}

bool ig_spsc_put(struct ig_spsc *r, const void *src, size_t n)
{
	if (!ig_spsc_reserve(r, n))
		return false;
	ig_spsc_write(r, 0, src, n);
	ig_spsc_commit(r, n);
	return true;
}

size_t ig_spsc_readable(struct ig_spsc *r)
{
	size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	return head - tail;
}

void ig_spsc_read(struct ig_spsc *r, size_t off, void *dst, size_t n)
{
	size_t at = (atomic_load_explicit(&r->tail, memory_order_relaxed) + off) & (r->cap - 1);
	size_t first = n < r->cap - at ? n : r->cap - at;
	if (!n)
		return;
	memcpy(dst, r->buf + at, first);
	memcpy((char *)dst + first, r->buf, n - first);
}

void ig_spsc_consume(struct ig_spsc *r, size_t n)
{
	size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	atomic_store_explicit(&r->tail, tail + n, memory_order_release);
}
