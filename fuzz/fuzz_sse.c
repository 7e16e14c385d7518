/* Fuzzes the text/event-stream splitter (http/sse.h) and what reads the
 * payloads behind it: bench's chunk reader and the usage finder. The
 * first input byte picks the line ceiling (small, so that over-long lines
 * are common) and strict mode; the rest is the stream. The splitter must
 * report the same payloads and drop the same lines whether the stream
 * comes whole, in pieces the input chooses, or byte by byte, and that
 * must match a plain line-by-line reading of the whole stream. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "http/sse.h"
#include "json/usage.h"

/* Payloads as length-prefixed records, so that runs compare with memcmp. */
struct record {
	struct ig_buf out;
};

static int on_data(void *ud, const char *data, size_t len)
{
	struct record *r = ud;
	struct ig_bench_chunk ch;
	struct ig_usage u;

	if (ig_buf_append(&r->out, &len, sizeof len) < 0 || ig_buf_append(&r->out, data, len) < 0)
		abort();
	(void)ig_bench_chunk_parse(data, len, &ch);
	if (ig_json_find_usage(data, len, &u) == 0 &&
	    (u.prompt_tokens < -1 || u.completion_tokens < -1 || u.cached_tokens < -1))
		abort();
	return 0;
}

/* The splitter's rules applied to whole lines of the whole stream. */
static int reference(const char *p, size_t len, size_t max, bool strict, struct record *r,
		     uint64_t *dropped)
{
	const char *end = p + len;
	bool first = true;

	*dropped = 0;
	for (const char *nl; (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
		const char *l = p;
		size_t n = (size_t)(nl - p);

		if (n && l[n - 1] == '\r')
			n--;
		if (n > max) {
			++*dropped;
			if (strict)
				return -ENOBUFS;
			first = false;
			continue;
		}
		if (first && n >= 3 && memcmp(l, "\xef\xbb\xbf", 3) == 0)
			l += 3, n -= 3;
		first = false;
		if (n == 4 && memcmp(l, "data", 4) == 0) {
			on_data(r, l, 0);
		} else if (n >= 5 && memcmp(l, "data:", 5) == 0) {
			size_t skip = n > 5 && l[5] == ' ' ? 6 : 5;
			on_data(r, l + skip, n - skip);
		}
	}
	/* A last line without its end is over-long once it is longer than
	 * the ceiling and a CR. */
	if ((size_t)(end - p) > max + 1) {
		++*dropped;
		if (strict)
			return -ENOBUFS;
	}
	return 0;
}

/* Feeds [p, p + len) in pieces: each piece length is the next byte of
 * `sizes` (cycled; a 0 feeds an empty piece, then one byte), or `fixed`
 * bytes when there are no sizes. Each piece is in an exact-size heap
 * block so that ASan sees reads past its end. */
static int feed(const char *p, size_t len, size_t max, unsigned flags, const uint8_t *sizes,
		size_t nsizes, size_t fixed, struct record *r, uint64_t *dropped)
{
	struct ig_sse s;
	int rc = 0;

	ig_sse_init(&s, max, flags);
	for (size_t at = 0, i = 0; at < len && rc == 0; i++) {
		size_t n = nsizes ? sizes[i % nsizes] : fixed;
		if (n == 0) {
			rc = ig_sse_feed(&s, p + at, 0, on_data, r);
			n = 1;
		}
		if (n > len - at)
			n = len - at;
		char *piece = malloc(n);
		memcpy(piece, p + at, n);
		if (rc == 0)
			rc = ig_sse_feed(&s, piece, n, on_data, r);
		free(piece);
		at += n;
	}
	*dropped = s.dropped;
	ig_sse_free(&s);
	return rc;
}

static void same(int rc1, uint64_t d1, struct record *r1, int rc2, uint64_t d2, struct record *r2)
{
	if (rc1 != rc2 || d1 != d2 || r1->out.len != r2->out.len ||
	    (r1->out.len && memcmp(r1->out.ptr, r2->out.ptr, r1->out.len) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;

	size_t max = 1 + (size_t)(data[0] & 0x7f) * 4;
	unsigned flags = data[0] & 0x80 ? IG_SSE_STRICT : 0;
	const char *p = (const char *)data + 1;
	size_t len = size - 1;
	struct record ref = {0}, whole = {0}, cut = {0}, bytes = {0};
	uint64_t d_ref, d_whole, d_cut, d_bytes;

	int rc_ref = reference(p, len, max, flags & IG_SSE_STRICT, &ref, &d_ref);
	int rc_whole = feed(p, len, max, flags, NULL, 0, len, &whole, &d_whole);
	int rc_bytes = feed(p, len, max, flags, NULL, 0, 1, &bytes, &d_bytes);
	/* Piece sizes 0..15 from the stream's own bytes: cuts everywhere. */
	uint8_t sizes[64];
	size_t nsizes = len < sizeof sizes ? len : sizeof sizes;
	for (size_t i = 0; i < nsizes; i++)
		sizes[i] = (uint8_t)(data[1 + i] % 16);
	int rc_cut = feed(p, len, max, flags, sizes, nsizes, len, &cut, &d_cut);

	same(rc_ref, d_ref, &ref, rc_whole, d_whole, &whole);
	same(rc_ref, d_ref, &ref, rc_bytes, d_bytes, &bytes);
	same(rc_ref, d_ref, &ref, rc_cut, d_cut, &cut);
	ig_buf_free(&ref.out);
	ig_buf_free(&whole.out);
	ig_buf_free(&cut.out);
	ig_buf_free(&bytes.out);

	/* What bench does with a non-streamed answer. */
	struct ig_bench_chunk ch;
	(void)ig_bench_response_parse(p, len, &ch);
	return 0;
}
