/* Small blocks for a library's own allocations (nghttp2's streams, frames
 * and header buffers), kept per thread for reuse. glibc's per-thread cache
 * keeps 7 blocks of a size: with dozens of HTTP/2 streams in flight each
 * allocating the same few sizes, most frees went through its general
 * allocator. A block carries its size class in a 16-byte header, so it is
 * freed without its size, by any thread (it joins that thread's cache).
 * Classes are 16 bytes apart; a thread keeps at most 256 blocks of a class
 * and 1 MiB in all, heads included. Kept blocks are poisoned under
 * AddressSanitizer, and a block freed twice aborts, as glibc's free does. */
#ifndef IG_CORE_SMALLBLOCK_H
#define IG_CORE_SMALLBLOCK_H

#include <stddef.h>

/* The largest size served from the caches; larger ones are malloc's, with
 * the same header. */
#define IG_SMALLBLOCK_MAX 2048

/* 16-byte aligned memory of at least size bytes, or NULL. */
void *ig_smallblock_alloc(size_t size);
/* The same, zero-filled (n * size, NULL when that overflows). */
void *ig_smallblock_calloc(size_t n, size_t size);
/* realloc's contract for blocks of this allocator. */
void *ig_smallblock_realloc(void *p, size_t size);
/* Gives p (NULL or a block of this allocator) back. */
void ig_smallblock_free(void *p);
/* Bytes p can hold (0 for NULL). */
size_t ig_smallblock_usable(const void *p);
/* Blocks this thread keeps now, all classes together. */
size_t ig_smallblock_kept(void);
/* Frees this thread's kept blocks (at thread exit). */
void ig_smallblock_thread_cleanup(void);

#endif
