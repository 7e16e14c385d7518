/* Session affinity: which endpoint served a session last. A fixed-size
 * table indexed by the session's hash, shared by the workers. Each slot is
 * two atomic words written only when the answer changes; a reader that
 * meets a half-written slot sees a mismatched session hash and no
 * affinity, which is harmless (affinity is a hint). Memory is bounded
 * whatever the clients send: a newer session replaces an older one. */
#ifndef IG_GATEWAY_SESSIONS_H
#define IG_GATEWAY_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

struct ig_pool_rt;
struct ig_endpoint;

struct ig_sessions;

struct ig_sessions *ig_sessions_new(void);
void ig_sessions_free(struct ig_sessions *s);
/* The endpoint key stored for this session, or 0. */
uint64_t ig_session_lookup(struct ig_sessions *s, struct ig_str session);
void ig_session_store(struct ig_sessions *s, struct ig_str session, uint64_t endpoint_key);

/* llm-d's session-affinity-scorer names an endpoint by the standard base64
 * of its GIE name, "namespace/pod-rank-N" (N: the port's index in the
 * pool's targetPorts), in the x-session-token header. A pool's tokens are
 * made once, when its snapshot is built (ig_session_tokens_build), and
 * looked up through hash tables: a request formats, allocates and writes
 * nothing to find them, whatever the pool's size. */
#define IG_SESSION_TOKEN_MAX 512
struct ig_session_tokens;
/* The tokens of the pool's endpoints into pool->tokens; -1 when out of
 * memory. An endpoint whose name does not fit IG_SESSION_TOKEN_MAX has
 * none. */
int ig_session_tokens_build(struct ig_pool_rt *pool);
void ig_session_tokens_free(struct ig_session_tokens *t);
/* The token of the pool's endpoint ep, owned by the pool's snapshot;
 * empty when ep is not the pool's or has no token. */
struct ig_str ig_session_token_of(const struct ig_pool_rt *pool, const struct ig_endpoint *ep);
/* The key of the pool's endpoint a token names; 0 for none. */
uint64_t ig_session_token_key(const struct ig_pool_rt *pool, struct ig_str token);

#endif
