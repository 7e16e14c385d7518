#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ig_buf_init(struct ig_buf *b, size_t max)
{
	*b = (struct ig_buf){0};
	b->max = max;
}

int ig_buf_reserve(struct ig_buf *b, size_t extra)
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
	char *p = realloc(b->ptr, cap);
	if (!p)
		return -ENOMEM;
	b->ptr = p;
	b->cap = cap;
	return 0;
}

int ig_buf_append(struct ig_buf *b, const void *data, size_t len)
{
	int rc = ig_buf_reserve(b, len);
	if (rc < 0)
		return rc;
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	return 0;
}

int ig_buf_append_str(struct ig_buf *b, struct ig_str s)
{
	return ig_buf_append(b, s.ptr, s.len);
}

int ig_buf_append_cstr(struct ig_buf *b, const char *s)
{
	return ig_buf_append(b, s, strlen(s));
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
