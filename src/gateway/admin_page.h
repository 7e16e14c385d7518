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
 * counts and latency percentiles, and the workers' recent picks. */
void ig_admin_status_serve(struct ig_gateway_rt *gw, struct ig_http_exchange *ex);

#endif
