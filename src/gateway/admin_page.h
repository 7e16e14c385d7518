/* The admin listener's live page: GET / serves one self-contained HTML
 * page (its CSS and JavaScript inline, nothing fetched from elsewhere),
 * which renders /api/status and polls it again every second (?refresh=MS
 * changes that). */
#ifndef IG_GATEWAY_ADMIN_PAGE_H
#define IG_GATEWAY_ADMIN_PAGE_H

#include "core/buf.h"
#include "gateway/runtime.h"
#include "http/server.h"

/* Answers GET / with the page. */
void ig_admin_page_serve(struct ig_http_exchange *ex);
/* Answers GET /api/status: pools and endpoints (as /pools), request
 * counts and latency percentiles, the workers' recent picks, the last
 * reload, and the Gateways' listeners and routes' parents with their
 * conditions. */
void ig_admin_status_serve(struct ig_gateway_rt *gw, struct ig_http_exchange *ex);

/* admin_config.c: the members "gateways" (each Gateway's Accepted and
 * Programmed, each listener's Accepted, Programmed, ResolvedRefs and
 * Conflicted, attached routes), "routes" and "pools" (each parents[]
 * entry's Accepted and ResolvedRefs) of the snapshot, as malloc'd JSON text
 * (NULL: out of memory); made once per snapshot. bind: the listeners'
 * address, which a Gateway's AddressNotUsable names. */
struct ig_snapshot;
char *ig_admin_render_attachment(const struct ig_snapshot *s, const char *bind);
/* The object "reload": reloads taken and refused, the last one's result,
 * reason, time and errors, and the time of the configuration served. */
void ig_admin_render_reload(const struct ig_gateway_rt *gw, struct ig_buf *b);

#endif
