/* A single-producer single-consumer byte ring: one thread writes bytes,
 * one other thread reads them, without a lock and without either ever
 * waiting for the other. A worker hands its trace spans and access log
 * lines to the control thread through one.
 *
 * Two counters of bytes that only grow (and wrap with size_t): `head`,
 * what the producer has published, and `tail`, what the consumer has
 * freed; the bytes between them are in the ring, each at its counter
 * masked by the capacity, a power of two. The producer copies bytes in,
 * then moves head with a release store; the consumer reads head with an
 * acquire load, copies the bytes out, then moves tail with a release
 * store, which the producer reads with an acquire load before it reuses
 * the space. The counters sit on cache lines of their own, so the two
 * threads do not write to the same line.
 *
 * The ring knows nothing of records: its users frame their own (a length
 * before each span, a newline after each log line), and publish and free
 * whole records only, so that the other side never sees half of one. */
#ifndef IG_CORE_SPSC_H
#define IG_CORE_SPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct ig_spsc {
	_Alignas(64) atomic_size_t head; /* written by the producer only */
	_Alignas(64) atomic_size_t tail; /* written by the consumer only */
	/* Set up once, read by both. */
	_Alignas(64) char *buf;
	size_t cap; /* a power of two */
};

/* An empty ring of `cap` bytes rounded up to a power of two. 0, -EINVAL
 * when cap is 0 or above half the address space, -ENOMEM. */
int ig_spsc_init(struct ig_spsc *r, size_t cap);
/* Frees the bytes (no thread may use the ring any more). A zeroed ring is
 * fine. */
void ig_spsc_free(struct ig_spsc *r);

/* ---- producer ---- */

/* Whether n more bytes fit now. Nothing is held: the room only grows
 * until this thread commits, so what fits now still fits then. */
bool ig_spsc_reserve(struct ig_spsc *r, size_t n);
/* Copies n bytes to `off` bytes past the published ones, wrapping at the
 * end of the ring; off + n must be within what ig_spsc_reserve accepted.
 * The consumer does not see them before ig_spsc_commit. */
void ig_spsc_write(struct ig_spsc *r, size_t off, const void *src, size_t n);
/* Publishes the next n bytes written. */
void ig_spsc_commit(struct ig_spsc *r, size_t n);
/* Reserve, write and commit n bytes in one call: false (and nothing
 * written) when they do not fit. */
bool ig_spsc_put(struct ig_spsc *r, const void *src, size_t n);

/* ---- consumer ---- */

/* How many published bytes there are to read. */
size_t ig_spsc_readable(struct ig_spsc *r);
/* Copies n bytes from `off` bytes past the oldest unread one, wrapping at
 * the end of the ring; off + n must be within ig_spsc_readable. */
void ig_spsc_read(struct ig_spsc *r, size_t off, void *dst, size_t n);
/* Frees the n oldest bytes for the producer to reuse. */
void ig_spsc_consume(struct ig_spsc *r, size_t n);

#endif
