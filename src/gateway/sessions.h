/* Session affinity: which endpoint served a session last. A fixed-size
 * table indexed by the session's hash, shared by the workers. Each slot is
 * two atomic words written only when the answer changes; a reader that
 * meets a half-written slot sees a mismatched session hash and no
 * affinity, which is harmless (affinity is a hint). Memory is bounded
 * whatever the clients send: a newer session replaces an older one. */
#ifndef IG_GATEWAY_SESSIONS_H
#define IG_GATEWAY_SESSIONS_H

#include <stdint.h>

#include "core/str.h"

struct ig_sessions;

struct ig_sessions *ig_sessions_new(void);
void ig_sessions_free(struct ig_sessions *s);
/* The endpoint key stored for this session, or 0. */
uint64_t ig_session_lookup(struct ig_sessions *s, struct ig_str session);
void ig_session_store(struct ig_sessions *s, struct ig_str session, uint64_t endpoint_key);

#endif
