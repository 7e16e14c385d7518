/* Endpoints outlive snapshots: a reload that keeps a pod keeps its metrics
 * and counters. The registry is touched only when snapshots are built and
 * freed (control thread), under a mutex; the per-request path reads
 * endpoints through the snapshot it holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "gateway/gw.h"
#include "http/client.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ig_endpoint *registry;

/* A seqlock in C11 terms: the words are relaxed atomics, the acquire
 * fence orders their loads before the second load of seq, and the writer's
 * release fence orders its odd seq before the words. So if any word read
 * comes from a write that started after s1, the second load sees seq moved
 * and the copy is taken again. */
void ig_endpoint_read_metrics(struct ig_endpoint *ep, struct ig_endpoint_metrics *out)
{
	uint64_t w[IG_ENDPOINT_METRICS_WORDS];
	for (;;) {
		unsigned s1 = atomic_load_explicit(&ep->seq, memory_order_acquire);
		if (s1 & 1u)
			continue;
		for (size_t i = 0; i < IG_ENDPOINT_METRICS_WORDS; i++)
			w[i] = atomic_load_explicit(&ep->metrics[i], memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&ep->seq, memory_order_relaxed) == s1)
			break;
	}
	memcpy(out, w, sizeof *out);
}

void ig_endpoint_write_metrics(struct ig_endpoint *ep, const struct ig_endpoint_metrics *m)
{
	uint64_t w[IG_ENDPOINT_METRICS_WORDS] = {0};
	memcpy(w, m, sizeof *m);
	atomic_fetch_add_explicit(&ep->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < IG_ENDPOINT_METRICS_WORDS; i++)
		atomic_store_explicit(&ep->metrics[i], w[i], memory_order_relaxed);
	atomic_fetch_add_explicit(&ep->seq, 1, memory_order_release);
}

struct ig_endpoint *ig_endpoint_get(const char *addr)
{
	pthread_mutex_lock(&registry_lock);
	struct ig_endpoint *ep;
	for (ep = registry; ep; ep = ep->next)
		if (strcmp(ep->addr, addr) == 0)
			break;
	if (ep) {
		atomic_fetch_add(&ep->refs, 1);
	} else if ((ep = calloc(1, sizeof *ep)) != NULL) {
		snprintf(ep->addr, sizeof ep->addr, "%s", addr);
		if (ig_sockaddr_parse(addr, &ep->sa, &ep->salen) < 0) {
			free(ep);
			ep = NULL;
		} else {
			atomic_init(&ep->refs, 1);
			ep->key = XXH64(ep->addr, strlen(ep->addr), 0);
			ep->next = registry;
			registry = ep;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return ep;
}

void ig_endpoint_put(struct ig_endpoint *ep)
{
	pthread_mutex_lock(&registry_lock);
	if (atomic_fetch_sub(&ep->refs, 1) == 1) {
		struct ig_endpoint **pp = &registry;
		while (*pp && *pp != ep)
			pp = &(*pp)->next;
		if (*pp)
			*pp = ep->next;
		free(ep);
	}
	pthread_mutex_unlock(&registry_lock);
}
