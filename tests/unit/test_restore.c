/* Unit tests for turning a GIE v1 rewrite back in a response
 * (ig_req_restore_feed): a body cut into pieces in every place (one cut,
 * two cuts, byte by byte, random cuts) gives what one replacement over the
 * whole body gives; bytes are held back only where a member may begin
 * (an SSE event's end goes at once); a body that ends inside a member's
 * beginning gives it back unchanged; names of other lengths, the spaced
 * form, decoys (other keys, other values, an escaped key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "core/buf.h"
#include "gateway/request.h"

struct fixture {
	struct ig_arena arena;
	struct ig_http_exchange ex;
	struct ig_req p;
};

static void setup(struct fixture *f, const char *asked, const char *target)
{
	memset(f, 0, sizeof *f);
	f->ex.arena = &f->arena;
	f->p.ex = &f->ex;
	f->p.model = ig_str_from(asked);
	f->p.target = ig_str_from(target);
	f->p.restore_model = true;
	assert_int_equal(ig_req_restore_setup(&f->p), 0);
}

static int gather(void *ud, const char *data, size_t len)
{
	return ig_buf_append(ud, data, len) < 0 ? -1 : 0;
}

/* The whole body at once, left to right: the unspaced member, else the
 * spaced one, at each place the key begins. */
static void reference(const char *in, size_t n, const char *asked, const char *target,
		      struct ig_buf *out)
{
	char from[2][256], to[2][256];
	size_t fl[2], tl[2];
	for (int k = 0; k < 2; k++) {
		fl[k] = (size_t)snprintf(from[k], sizeof from[k], "\"model\":%s\"%s\"",
					 k ? " " : "", target);
		tl[k] = (size_t)snprintf(to[k], sizeof to[k], "\"model\":%s\"%s\"", k ? " " : "",
					 asked);
	}
	size_t i = 0;
	while (i < n) {
		int hit = -1;
		for (int k = 0; k < 2 && hit < 0; k++)
			if (n - i >= fl[k] && memcmp(in + i, from[k], fl[k]) == 0)
				hit = k;
		if (hit >= 0) {
			ig_buf_append(out, to[hit], tl[hit]);
			i += fl[hit];
		} else {
			ig_buf_append(out, in + i, 1);
			i++;
		}
	}
}

/* Feeds the body cut at the given places (sorted) and checks the result
 * against the reference. */
static void check_cuts(const char *body, const char *asked, const char *target, const size_t *cuts,
		       size_t ncuts)
{
	struct fixture f;
	setup(&f, asked, target);
	size_t n = strlen(body), at = 0;
	struct ig_buf got = {0}, want = {0};
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		assert_true(end >= at && end <= n);
		assert_int_equal(ig_buf_reserve(&got, ig_req_restore_bound(&f.p, end - at)), 0);
		size_t before = got.len, room = got.cap - got.len;
		assert_int_equal(
		    ig_req_restore_feed(&f.p, body + at, end - at, i == ncuts, gather, &got), 0);
		assert_true(got.len - before <= room); /* within the bound */
		at = end;
	}
	assert_int_equal(f.p.carry_len, 0);
	reference(body, n, asked, target, &want);
	if (got.len != want.len || (got.len && memcmp(got.ptr, want.ptr, got.len) != 0))
		fail_msg("cuts %zu: got %.*s\nwant %.*s", ncuts, (int)got.len, got.ptr,
			 (int)want.len, want.ptr);
	ig_buf_free(&got);
	ig_buf_free(&want);
	ig_arena_free(&f.arena);
}

static const char *const bodies[] = {
    "{\"id\":\"x\",\"model\":\"tgt\",\"choices\":[]}",
    "{\"model\": \"tgt\",\"x\":{\"model\":\"tgt\"},\"model\":\"tgt-2\",\"models\":\"tgt\"}",
    "data: {\"model\":\"tgt\",\"i\":1}\n\ndata: {\"model\":\"tgt\",\"i\":2}\n\ndata: [DONE]\n\n",
    "\"model\":\"\"model\":\"tgt\"\"model\":",
    "{\"note\":\"\\\"model\\\":\\\"tgt\\\"\",\"model\":\"tgt\"}",
    "\"model\":\"tg",
    "\"mod",
    "",
};

static void test_every_cut(void **state)
{
	(void)state;
	const char *names[][2] = {{"a", "tgt"}, {"a-longer-name", "tgt"}, {"same", "tgt"}};
	for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++)
		for (size_t k = 0; k < 3; k++) {
			size_t n = strlen(bodies[b]);
			check_cuts(bodies[b], names[k][0], names[k][1], NULL, 0);
			for (size_t i = 0; i <= n; i++) {
				check_cuts(bodies[b], names[k][0], names[k][1], &i, 1);
				for (size_t j = i; j <= n; j++) {
					size_t two[2] = {i, j};
					check_cuts(bodies[b], names[k][0], names[k][1], two, 2);
				}
			}
			size_t every[128];
			for (size_t i = 0; i < n && i < 128; i++)
				every[i] = i;
			check_cuts(bodies[b], names[k][0], names[k][1], every, n < 128 ? n : 128);
		}
}

static void test_random_cuts(void **state)
{
	(void)state;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char body[600];
	static const char *const parts[] = {"\"model\":\"tgt\"",
					    "\"model\": \"tgt\"",
					    "\"model\":",
					    "\"tg",
					    "t\"",
					    "\n\n",
					    "data: ",
					    "{",
					    "}",
					    "x",
					    "\""};
	for (int round = 0; round < 2000; round++) {
		size_t n = 0;
		while (n < 500) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			const char *s = parts[x % (sizeof parts / sizeof parts[0])];
			memcpy(body + n, s, strlen(s));
			n += strlen(s);
		}
		body[n] = 0;
		size_t cuts[8];
		for (int i = 0; i < 8; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			cuts[i] = x % (n + 1);
		}
		for (int i = 1; i < 8; i++)
			for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
				size_t t = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
			}
		check_cuts(body, round % 2 ? "asked-name" : "q", "tgt", cuts, 8);
	}
}

/* What goes out at once: an event's end is never held; only the bytes
 * that may begin a member are. */
static void test_holds_only_a_member_start(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "asked", "tgt");
	struct ig_buf out = {0};
	const char *ev = "data: {\"model\":\"tgt\"}\n\n";
	ig_buf_reserve(&out, ig_req_restore_bound(&f.p, strlen(ev)));
	ig_req_restore_feed(&f.p, ev, strlen(ev), false, gather, &out);
	assert_int_equal(f.p.carry_len, 0);
	assert_int_equal(out.len, strlen("data: {\"model\":\"asked\"}\n\n"));
	out.len = 0;
	const char *cut = "{\"x\":1,\"model\":\"tg";
	ig_buf_reserve(&out, ig_req_restore_bound(&f.p, strlen(cut)));
	ig_req_restore_feed(&f.p, cut, strlen(cut), false, gather, &out);
	assert_int_equal(out.len, strlen("{\"x\":1,"));
	assert_int_equal(f.p.carry_len, strlen("\"model\":\"tg"));
	out.len = 0;
	const char *other = "x\"}";
	ig_buf_reserve(&out, ig_req_restore_bound(&f.p, strlen(other)));
	ig_req_restore_feed(&f.p, other, strlen(other), false, gather, &out);
	assert_int_equal(f.p.carry_len, 0);
	assert_memory_equal(out.ptr, "\"model\":\"tgx\"}", out.len);
	out.len = 0;
	ig_buf_reserve(&out, ig_req_restore_bound(&f.p, 2));
	ig_req_restore_feed(&f.p, "\"m", 2, false, gather, &out);
	assert_int_equal(out.len, 0);
	assert_int_equal(f.p.carry_len, 2);
	ig_buf_free(&out);
	ig_arena_free(&f.arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_cut),
	    cmocka_unit_test(test_random_cuts),
	    cmocka_unit_test(test_holds_only_a_member_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
