/* Fuzzes turning a GIE v1 rewrite back in a response
 * (ig_req_restore_feed), which reads the model server's bytes: the input
 * is a response body cut into pieces at places the input names; whatever
 * the cuts, the output must be what one replacement over the whole body
 * gives, stay within ig_req_restore_bound, and nothing may be left held
 * at the end.
 *   byte 0: bit 0 picks the name asked for (shorter or longer than the
 *           target), bits 1-3 the number of cuts (0-7);
 *   then one byte per cut (its place, scaled to the body's length);
 *   the rest is the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "gateway/request.h"

static int gather(void *ud, const char *data, size_t len)
{
	return ig_buf_append(ud, data, len) < 0 ? -1 : 0;
}

static void reference(const uint8_t *in, size_t n, const char *asked, const char *target,
		      struct ig_buf *out)
{
	char from[2][64], to[2][64];
	size_t fl[2], tl[2];
	for (int k = 0; k < 2; k++) {
		fl[k] = (size_t)snprintf(from[k], sizeof from[k], "\"model\":%s\"%s\"",
					 k ? " " : "", target);
		tl[k] = (size_t)snprintf(to[k], sizeof to[k], "\"model\":%s\"%s\"", k ? " " : "",
					 asked);
	}
	for (size_t i = 0; i < n;) {
		int hit = -1;
		for (int k = 0; k < 2 && hit < 0; k++)
			if (n - i >= fl[k] && memcmp(in + i, from[k], fl[k]) == 0)
				hit = k;
		if (hit >= 0) {
			ig_buf_append(out, to[hit], tl[hit]);
			i += fl[hit];
		} else {
			ig_buf_append(out, in + i++, 1);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *asked = data[0] & 1 ? "a-name-longer-than-it" : "q";
	size_t ncuts = (data[0] >> 1) & 7;
	if (size < 1 + ncuts)
		return 0;
	const uint8_t *body = data + 1 + ncuts;
	size_t n = size - 1 - ncuts;
	size_t cuts[8];
	for (size_t i = 0; i < ncuts; i++)
		cuts[i] = (size_t)data[1 + i] * n / 255;
	for (size_t i = 1; i < ncuts; i++)
		for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			size_t t = cuts[j];
			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}

	struct ig_arena arena = {0};
	struct ig_http_exchange ex = {0};
	struct ig_req p = {0};
	ex.arena = &arena;
	p.ex = &ex;
	p.model = ig_str_from(asked);
	p.target = ig_str_from("tgt");
	p.restore_model = true;
	if (ig_req_restore_setup(&p) < 0)
		abort();
	struct ig_buf got = {0}, want = {0};
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		/* An exact-size copy: ASan sees any read past the piece. */
		char *piece = malloc(end - at ? end - at : 1);
		memcpy(piece, body + at, end - at);
		if (ig_buf_reserve(&got, ig_req_restore_bound(&p, end - at)) < 0)
			abort();
		size_t room = got.cap - got.len, before = got.len;
		if (ig_req_restore_feed(&p, piece, end - at, i == ncuts, gather, &got) < 0)
			abort();
		if (got.len - before > room)
			abort(); /* past the bound */
		free(piece);
		at = end;
	}
	if (p.carry_len)
		abort();
	reference(body, n, asked, "tgt", &want);
	if (got.len != want.len || (got.len && memcmp(got.ptr, want.ptr, got.len) != 0))
		abort();
	ig_buf_free(&got);
	ig_buf_free(&want);
	ig_arena_free(&arena);
	return 0;
}
