/* Growable byte buffers with a ceiling. Every buffer that grows from peer
 * input is given a maximum when it is set up; going past it is a clean
 * error (-ENOBUFS), never an unbounded realloc. A zeroed struct is a valid
 * empty buffer with no ceiling other than memory. */
#ifndef IG_CORE_BUF_H
#define IG_CORE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/str.h"

struct ig_buf {
	char *ptr;
	size_t len;
	size_t cap;
	size_t max; /* 0: no ceiling */
};

void ig_buf_init(struct ig_buf *b, size_t max);
/* The out-of-line halves of ig_buf_reserve and ig_buf_append, for when the
 * bytes do not fit the room the buffer already has. */
int ig_buf_grow(struct ig_buf *b, size_t extra);
int ig_buf_append_grow(struct ig_buf *b, const void *data, size_t len);

/* Whether `extra` more bytes fit the buffer as it is, under its ceiling. */
static inline bool ig_buf_has_room(const struct ig_buf *b, size_t extra)
{
	return extra <= b->cap - b->len && (!b->max || b->len + extra <= b->max);
}

/* Makes room for `extra` more bytes. 0, -ENOBUFS past max, -ENOMEM. A
 * request appends some twenty pieces, nearly all into room the buffer
 * has: that case stays inline, the growth is a call. */
static inline int ig_buf_reserve(struct ig_buf *b, size_t extra)
{
	return ig_buf_has_room(b, extra) ? 0 : ig_buf_grow(b, extra);
}

static inline int ig_buf_append(struct ig_buf *b, const void *data, size_t len)
{
	if (!ig_buf_has_room(b, len))
		return ig_buf_append_grow(b, data, len);
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	return 0;
}

static inline int ig_buf_append_str(struct ig_buf *b, struct ig_str s)
{
	return ig_buf_append(b, s.ptr, s.len);
}

/* Inline, so that the length of a literal is known where it is written. */
static inline int ig_buf_append_cstr(struct ig_buf *b, const char *s)
{
	return ig_buf_append(b, s, strlen(s));
}
int ig_buf_printf(struct ig_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ig_buf_vprintf(struct ig_buf *b, const char *fmt, va_list ap);
/* Decimal / lowercase hex text of v, without printf's cost. */
int ig_buf_append_u64(struct ig_buf *b, uint64_t v);
int ig_buf_append_hex(struct ig_buf *b, uint64_t v);
/* Appends the pieces in order (a NULL ends the list). */
int ig_buf_append_cstrs(struct ig_buf *b, ...);
/* Drops the first n bytes. */
void ig_buf_consume(struct ig_buf *b, size_t n);
void ig_buf_reset(struct ig_buf *b);
void ig_buf_free(struct ig_buf *b);
/* Frees the blocks this thread keeps for reuse (buf.c); a thread's own
 * are freed when it exits. */
void ig_buf_cache_drain(void);
/* How many blocks this thread keeps (tests). */
size_t ig_buf_cache_held(void);
/* Keeps a NUL after the data (not counted in len) and returns ptr, or NULL. */
const char *ig_buf_cstr(struct ig_buf *b);
static inline struct ig_str ig_buf_str(const struct ig_buf *b)
{
	return (struct ig_str){b->ptr, b->len};
}

#endif
