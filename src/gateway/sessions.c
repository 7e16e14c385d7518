#include "gateway/sessions.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/buf.h"
#include "gateway/snapshot.h"

#define SLOTS 65536u

struct slot {
	atomic_uint_least64_t session;
	atomic_uint_least64_t endpoint;
};

struct ig_sessions {
	struct slot table[SLOTS];
};

struct ig_sessions *ig_sessions_new(void)
{
	return calloc(1, sizeof(struct ig_sessions));
}

void ig_sessions_free(struct ig_sessions *s)
{
	free(s);
}

static uint64_t session_hash(struct ig_str s)
{
	uint64_t h = XXH64(s.ptr, s.len, 7);
	return h ? h : 1; /* 0 marks an empty slot */
}

uint64_t ig_session_lookup(struct ig_sessions *s, struct ig_str session)
{
	uint64_t h = session_hash(session);
	struct slot *sl = &s->table[h & (SLOTS - 1)];
	/* The endpoint is read between two reads of the session: a writer
	 * replacing the slot in between makes them differ. */
	uint64_t a = atomic_load_explicit(&sl->session, memory_order_acquire);
	uint64_t ep = atomic_load_explicit(&sl->endpoint, memory_order_acquire);
	uint64_t b = atomic_load_explicit(&sl->session, memory_order_acquire);
	return a == h && b == h ? ep : 0;
}

void ig_session_store(struct ig_sessions *s, struct ig_str session, uint64_t endpoint_key)
{
	uint64_t h = session_hash(session);
	struct slot *sl = &s->table[h & (SLOTS - 1)];
	/* Most requests of a session land where it already is: no write. */
	if (atomic_load_explicit(&sl->session, memory_order_relaxed) == h &&
	    atomic_load_explicit(&sl->endpoint, memory_order_relaxed) == endpoint_key)
		return;
	atomic_store_explicit(&sl->session, 0, memory_order_release);
	atomic_store_explicit(&sl->endpoint, endpoint_key, memory_order_release);
	atomic_store_explicit(&sl->session, h, memory_order_release);
}

/* ---- llm-d's x-session-token ---- */

/* Each endpoint's token (tok[i], NUL-terminated in text; empty: none) and
 * two open-addressed tables of endpoint index + 1 (0: an empty slot), one
 * by token and one by endpoint, at most half full. Built with the
 * snapshot and never written after, so workers share it without care. */
struct ig_session_tokens {
	struct ig_str *tok;
	struct ig_buf text;
	uint32_t *by_token;
	uint32_t *by_ep;
	size_t mask;
};

static uint64_t token_hash(struct ig_str t)
{
	return XXH3_64bits(t.ptr, t.len);
}

/* The endpoint's key is already a hash (of its address); mixed again so
 * that its low bits, which pick the slot, depend on all of it. */
static uint64_t ep_hash(const struct ig_endpoint *ep)
{
	uint64_t h = ep->key;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* The GIE name of the pool's i-th endpoint, base64-encoded and
 * NUL-terminated, appended to text; its length, 0 for none, -1 when out
 * of memory. */
static long token_append(const struct ig_pool_rt *pool, size_t i, struct ig_buf *text)
{
	const struct ig_pod *pod = pool->ep_pods ? pool->ep_pods[i] : NULL;
	char name[IG_SESSION_TOKEN_MAX];
	if (!pod || !pod->meta.name)
		return 0;
	int n = snprintf(name, sizeof name, "%s/%s-rank-%u", pod->meta.ns ? pod->meta.ns : "",
			 pod->meta.name, pool->ep_ranks ? (unsigned)pool->ep_ranks[i] : 0u);
	if (n < 0 || (size_t)n >= sizeof name)
		return 0;
	size_t tl = IG_BASE64_LEN((size_t)n);
	if (tl + 1 > IG_SESSION_TOKEN_MAX)
		return 0;
	if (ig_buf_reserve(text, tl + 1) < 0)
		return -1;
	ig_base64_encode(name, (size_t)n, text->ptr + text->len);
	text->ptr[text->len + tl] = '\0';
	text->len += tl + 1;
	return (long)tl;
}

/* Endpoint i into both tables. A token another endpoint already has
 * keeps naming that one: the first of the pool's endpoints wins. */
static void tokens_index(struct ig_session_tokens *t, const struct ig_pool_rt *pool, size_t i)
{
	size_t s = ep_hash(pool->eps[i]) & t->mask;
	while (t->by_ep[s])
		s = (s + 1) & t->mask;
	t->by_ep[s] = (uint32_t)i + 1;
	if (!t->tok[i].len)
		return;
	for (s = token_hash(t->tok[i]) & t->mask; t->by_token[s]; s = (s + 1) & t->mask)
		if (ig_str_eq(t->tok[t->by_token[s] - 1], t->tok[i]))
			return;
	t->by_token[s] = (uint32_t)i + 1;
}

int ig_session_tokens_build(struct ig_pool_rt *pool)
{
	size_t n = pool->neps, slots = 2;
	if (n >= UINT32_MAX / 2)
		return -1;
	while (slots < 2 * n)
		slots *= 2;
	struct ig_session_tokens *t = calloc(1, sizeof *t);
	size_t *off = calloc(n ? n : 1, sizeof *off);
	if (!t || !off)
		goto fail;
	t->mask = slots - 1;
	t->tok = calloc(n ? n : 1, sizeof *t->tok);
	t->by_token = calloc(slots, sizeof *t->by_token);
	t->by_ep = calloc(slots, sizeof *t->by_ep);
	if (!t->tok || !t->by_token || !t->by_ep)
		goto fail;
	/* Offsets first: the text moves while it grows. */
	for (size_t i = 0; i < n; i++) {
		off[i] = t->text.len;
		long tl = token_append(pool, i, &t->text);
		if (tl < 0)
			goto fail;
		t->tok[i].len = (size_t)tl;
	}
	for (size_t i = 0; i < n; i++) {
		t->tok[i].ptr = t->tok[i].len ? t->text.ptr + off[i] : "";
		tokens_index(t, pool, i);
	}
	free(off);
	pool->tokens = t;
	return 0;
fail:
	free(off);
	ig_session_tokens_free(t);
	return -1;
}

void ig_session_tokens_free(struct ig_session_tokens *t)
{
	if (!t)
		return;
	free(t->tok);
	ig_buf_free(&t->text);
	free(t->by_token);
	free(t->by_ep);
	free(t);
}

struct ig_str ig_session_token_of(const struct ig_pool_rt *pool, const struct ig_endpoint *ep)
{
	const struct ig_session_tokens *t = pool ? pool->tokens : NULL;
	if (!t || !ep)
		return (struct ig_str){"", 0};
	for (size_t s = ep_hash(ep) & t->mask; t->by_ep[s]; s = (s + 1) & t->mask)
		if (pool->eps[t->by_ep[s] - 1] == ep)
			return t->tok[t->by_ep[s] - 1];
	return (struct ig_str){"", 0};
}

uint64_t ig_session_token_key(const struct ig_pool_rt *pool, struct ig_str token)
{
	const struct ig_session_tokens *t = pool ? pool->tokens : NULL;
	token = ig_str_trim(token);
	if (!t || !token.len || token.len >= IG_SESSION_TOKEN_MAX)
		return 0;
	for (size_t s = token_hash(token) & t->mask; t->by_token[s]; s = (s + 1) & t->mask)
		if (ig_str_eq(t->tok[t->by_token[s] - 1], token))
			return pool->eps[t->by_token[s] - 1]->key;
	return 0;
}
