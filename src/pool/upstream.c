#include "pool/upstream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "http/tls.h"

struct idle {
	struct ig_http_client *c;
	uint64_t parked_ns;
};

/* The idle connections to one endpoint in one protocol, over one TLS
 * context or none, oldest first. A bucket does not move once made: its
 * parked connections point to it. It holds a reference on its context as
 * on its endpoint, so that a context freed by a reload can never be taken
 * for a new one at the same address. */
struct bucket {
	struct ig_upstreams *u;
	struct ig_endpoint *ep; /* a reference */
	enum ig_http_proto proto;
	struct ig_tls_client_ctx *tls; /* a reference; NULL: clear text */
	struct idle *v;
	size_t n, cap;
};

struct ig_upstreams {
	struct ig_loop *loop;
	struct ig_upstream_config cfg;
	struct bucket **b;
	size_t nb, capb;
	/* Open-addressed index of b by endpoint pointer and protocol: slot
	 * holds i + 1. */
	uint32_t *index;
	size_t index_cap; /* power of two, > 2 * nb */
	size_t total;
	struct ig_timer sweep;
};

static size_t key_hash(const void *p, enum ig_http_proto proto, const void *tls)
{
	uint64_t x = (uint64_t)(uintptr_t)p ^ (uint64_t)proto ^ ((uint64_t)(uintptr_t)tls << 7);
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdu;
	x ^= x >> 33;
	return (size_t)x;
}

static int reindex(struct ig_upstreams *u)
{
	size_t cap = 16;
	while (cap < 2 * (u->nb + 1))
		cap *= 2;
	uint32_t *ix = calloc(cap, sizeof *ix);
	if (!ix)
		return -1;
	for (size_t i = 0; i < u->nb; i++) {
		size_t h = key_hash(u->b[i]->ep, u->b[i]->proto, u->b[i]->tls) & (cap - 1);
		while (ix[h])
			h = (h + 1) & (cap - 1);
		ix[h] = (uint32_t)(i + 1);
	}
	free(u->index);
	u->index = ix;
	u->index_cap = cap;
	return 0;
}

static struct bucket *find(const struct ig_upstreams *u, const struct ig_endpoint *ep,
			   enum ig_http_proto proto, const struct ig_tls_client_ctx *tls)
{
	if (!u->index_cap)
		return NULL;
	for (size_t h = key_hash(ep, proto, tls) & (u->index_cap - 1);;
	     h = (h + 1) & (u->index_cap - 1)) {
		uint32_t i = u->index[h];
		if (!i)
			return NULL;
		const struct bucket *b = u->b[i - 1];
		if (b->ep == ep && b->proto == proto && b->tls == tls)
			return u->b[i - 1];
	}
}

static void bucket_free(struct bucket *b)
{
	ig_endpoint_put(b->ep);
	ig_tls_client_ctx_unref(b->tls);
	free(b->v);
	free(b);
}

static struct bucket *find_or_add(struct ig_upstreams *u, struct ig_endpoint *ep,
				  enum ig_http_proto proto, struct ig_tls_client_ctx *tls)
{
	struct bucket *b = find(u, ep, proto, tls);
	if (b)
		return b;
	if (u->nb == u->capb) {
		size_t cap = u->capb ? u->capb * 2 : 8;
		struct bucket **nb = realloc(u->b, cap * sizeof *nb);
		if (!nb)
			return NULL;
		u->b = nb;
		u->capb = cap;
	}
	b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->u = u;
	b->ep = ig_endpoint_ref(ep);
	b->proto = proto;
	b->tls = ig_tls_client_ctx_ref(tls);
	u->b[u->nb++] = b;
	if (reindex(u) < 0) {
		u->nb--;
		bucket_free(b);
		return NULL;
	}
	return b;
}

static void remove_at(struct ig_upstreams *u, struct bucket *b, size_t i)
{
	memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof *b->v);
	b->n--;
	u->total--;
}

static void on_idle_event(struct ig_http_client *c, void *ud);
static void on_sweep(struct ig_loop *loop, struct ig_timer *t);

struct ig_upstreams *ig_upstreams_new(struct ig_loop *loop, const struct ig_upstream_config *cfg)
{
	struct ig_upstreams *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->loop = loop;
	u->cfg = *cfg;
	return u;
}

struct ig_http_client *ig_upstreams_take(struct ig_upstreams *u, struct ig_endpoint *ep,
					 enum ig_http_proto proto, struct ig_tls_client_ctx *tls)
{
	struct bucket *b = find(u, ep, proto, tls);
	if (!b || !b->n)
		return NULL;
	struct ig_http_client *c = b->v[--b->n].c;
	u->total--;
	return c;
}

struct ig_http_client *ig_upstreams_connect(struct ig_upstreams *u, struct ig_endpoint *ep,
					    enum ig_http_proto proto, struct ig_tls_client_ctx *tls)
{
	const struct sockaddr *sa = (const struct sockaddr *)&ep->sa;
	if (tls)
		return ig_http_client_connect_tls(u->loop, sa, ep->salen, u->cfg.connect_timeout_ms,
						  tls);
	if (proto == IG_PROTO_H2C)
		return ig_http_client_connect_h2c(u->loop, sa, ep->salen,
						  u->cfg.connect_timeout_ms);
	return ig_http_client_connect(u->loop, sa, ep->salen, u->cfg.connect_timeout_ms);
}

static uint64_t sweep_period_ms(const struct ig_upstreams *u)
{
	uint64_t p = u->cfg.idle_timeout_ms / 4;
	return p < 10 ? 10 : p > 1000 ? 1000 : p;
}

void ig_upstreams_release(struct ig_upstreams *u, struct ig_endpoint *ep, struct ig_http_client *c)
{
	if (!u->cfg.idle_timeout_ms || !u->cfg.max_idle || !ig_http_client_reusable(c)) {
		ig_http_client_close(c);
		return;
	}
	struct bucket *b = find_or_add(u, ep, ig_http_client_proto(c), ig_http_client_tls_ctx(c));
	if (!b) {
		ig_http_client_close(c);
		return;
	}
	if (b->n >= u->cfg.max_idle) {
		/* Full: the least recently parked connection makes room. */
		ig_http_client_close(b->v[0].c);
		remove_at(u, b, 0);
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4;
		struct idle *v = realloc(b->v, cap * sizeof *v);
		if (!v) {
			ig_http_client_close(c);
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = (struct idle){c, u->loop->now_ns};
	u->total++;
	ig_http_client_park(c, on_idle_event, b);
	if (!ig_timer_armed(&u->sweep))
		ig_timer_start(u->loop, &u->sweep, sweep_period_ms(u), on_sweep, u);
}

/* A parked connection saw an event: its server closed or reset it, or
 * sent bytes nobody asked for. It leaves the pool and is closed now. */
static void on_idle_event(struct ig_http_client *c, void *ud)
{
	struct bucket *b = ud;
	struct ig_upstreams *u = b->u;
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].c == c) {
			remove_at(u, b, i);
			break;
		}
	ig_http_client_close(c);
}

/* Closes connections idle for too long and forgets endpoints with no idle
 * connection left (dropping the reference). */
static void on_sweep(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_upstreams *u = t->data;
	uint64_t now = ig_now_ns(), max = u->cfg.idle_timeout_ms * 1000000u;
	size_t kept = 0;
	for (size_t i = 0; i < u->nb; i++) {
		struct bucket *b = u->b[i];
		size_t expired = 0;
		while (expired < b->n && now - b->v[expired].parked_ns >= max)
			ig_http_client_close(b->v[expired++].c);
		if (expired) {
			memmove(b->v, b->v + expired, (b->n - expired) * sizeof *b->v);
			b->n -= expired;
			u->total -= expired;
		}
		if (b->n == 0) {
			bucket_free(b);
			continue;
		}
		u->b[kept++] = b;
	}
	if (kept != u->nb) {
		u->nb = kept;
		reindex(u);
	}
	if (u->total)
		ig_timer_start(loop, t, sweep_period_ms(u), on_sweep, u);
}

void ig_upstreams_close_idle(struct ig_upstreams *u)
{
	for (size_t i = 0; i < u->nb; i++) {
		struct bucket *b = u->b[i];
		for (size_t k = 0; k < b->n; k++)
			ig_http_client_close(b->v[k].c);
		bucket_free(b);
	}
	u->nb = 0;
	u->total = 0;
	reindex(u);
	ig_timer_stop(u->loop, &u->sweep);
}

void ig_upstreams_free(struct ig_upstreams *u)
{
	if (!u)
		return;
	ig_upstreams_close_idle(u);
	free(u->b);
	free(u->index);
	free(u);
}

size_t ig_upstreams_idle(const struct ig_upstreams *u)
{
	return u->total;
}

size_t ig_upstreams_idle_to(const struct ig_upstreams *u, const struct ig_endpoint *ep)
{
	size_t n = 0;
	for (size_t i = 0; i < u->nb; i++)
		if (u->b[i]->ep == ep)
			n += u->b[i]->n;
	return n;
}
