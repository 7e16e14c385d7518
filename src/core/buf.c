#include "core/buf.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/asan.h"

/* Blocks of the sizes connections read into (16, 32 and 64 KiB) come and
 * go with every request: a connection takes one to read and gives it back
 * as soon as it holds no unread bytes, so that an idle one holds none. A
 * few such blocks given back are kept per thread and handed to the next
 * buffer that needs one, instead of a trip through malloc each time (5 %
 * of a proxied request's user CPU). At most CACHE_DEPTH per size and
 * thread (under 1 MiB); freed when the thread exits. */
#define CACHE_CLASSES 3
#define CACHE_DEPTH 8

static __thread struct {
	void *v[CACHE_CLASSES][CACHE_DEPTH];
	unsigned n[CACHE_CLASSES];
	bool registered;
} cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static int class_of(size_t cap)
{
	switch (cap) {
	case 16384:
		return 0;
	case 32768:
		return 1;
	case 65536:
		return 2;
	default:
		return -1;
	}
}

void ig_buf_cache_drain(void)
{
	for (int k = 0; k < CACHE_CLASSES; k++)
		while (cache.n[k]) {
			void *p = cache.v[k][--cache.n[k]];
			IG_UNPOISON(p, (size_t)16384 << k);
			free(p);
		}
}

size_t ig_buf_cache_held(void)
{
	size_t n = 0;
	for (int k = 0; k < CACHE_CLASSES; k++)
		n += cache.n[k];
	return n;
}

static void drain_at_exit(void *unused)
{
	(void)unused;
	ig_buf_cache_drain();
}

static void make_key(void)
{
	(void)pthread_key_create(&cache_key, drain_at_exit);
}

static void *cache_take(size_t cap)
{
	int k = class_of(cap);
	if (k < 0 || !cache.n[k])
		return NULL;
	void *p = cache.v[k][--cache.n[k]];
	IG_UNPOISON(p, cap);
	return p;
}

static bool cache_put(void *p, size_t cap)
{
	int k = class_of(cap);
	if (k < 0 || cache.n[k] == CACHE_DEPTH)
		return false;
	if (!cache.registered) {
		/* The key's destructor runs at thread exit for a non-NULL value. */
		if (pthread_once(&cache_once, make_key) != 0 ||
		    pthread_setspecific(cache_key, &cache) != 0)
			return false;
		cache.registered = true;
	}
	IG_POISON(p, cap);
	cache.v[k][cache.n[k]++] = p;
	return true;
}

void ig_buf_init(struct ig_buf *b, size_t max)
{
	*b = (struct ig_buf){0};
	b->max = max;
}

int ig_buf_grow(struct ig_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len)
		return -ENOBUFS;
	size_t need = b->len + extra;
	if (b->max && need > b->max)
		return -ENOBUFS;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (b->max && cap > b->max + 1)
		cap = b->max + 1; /* +1 leaves room for ig_buf_cstr's NUL */
	char *p = b->ptr ? NULL : cache_take(cap);
	if (!p && !(p = realloc(b->ptr, cap)))
		return -ENOMEM;
	b->ptr = p;
	b->cap = cap;
	return 0;
}

int ig_buf_append_grow(struct ig_buf *b, const void *data, size_t len)
{
	int rc = ig_buf_grow(b, len);
	if (rc < 0)
		return rc;
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	return 0;
}

int ig_buf_vprintf(struct ig_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	int rc = ig_buf_reserve(b, (size_t)n + 1);
	if (rc < 0)
		return rc;
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int ig_buf_printf(struct ig_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = ig_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void ig_buf_consume(struct ig_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->ptr, b->ptr + n, b->len - n);
	b->len -= n;
}

void ig_buf_reset(struct ig_buf *b)
{
	b->len = 0;
}

void ig_buf_free(struct ig_buf *b)
{
	if (b->ptr && !cache_put(b->ptr, b->cap))
		free(b->ptr);
	size_t max = b->max;
	*b = (struct ig_buf){0};
	b->max = max;
}

const char *ig_buf_cstr(struct ig_buf *b)
{
	if (b->len == b->cap) {
		size_t max = b->max;
		b->max = 0; /* the NUL is not data: it may sit one past the ceiling */
		int rc = ig_buf_reserve(b, 1);
		b->max = max;
		if (rc < 0)
			return NULL;
	}
	b->ptr[b->len] = '\0';
	return b->ptr;
}

int ig_buf_append_u64(struct ig_buf *b, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do
		tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	return ig_buf_append(b, tmp + sizeof tmp - n, n);
}

int ig_buf_append_hex(struct ig_buf *b, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0;
	do
		tmp[sizeof tmp - ++n] = digits[v & 15];
	while ((v >>= 4) != 0);
	return ig_buf_append(b, tmp + sizeof tmp - n, n);
}

int ig_buf_append_cstrs(struct ig_buf *b, ...)
{
	va_list ap;
	va_start(ap, b);
	int rc = 0;
	for (const char *s; rc == 0 && (s = va_arg(ap, const char *)) != NULL;)
		rc = ig_buf_append_cstr(b, s);
	va_end(ap);
	return rc;
}
