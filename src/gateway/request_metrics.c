/* What a request's stages record in the gateway's metrics (metrics.h),
 * made from the request: each stage makes one call at the point where
 * GIE v1.5 records the same thing, and the labels are gathered here. */
#include "gateway/metrics.h"
#include "gateway/request.h"

void ig_req_metrics_dispatched(struct ig_req *p)
{
	if (p->service || p->running)
		return; /* Service backends are not inference requests */
	p->running = ig_gw_metrics_running(p->w->gw->metrics, p->w->mcache, p->model.ptr,
					   p->target.ptr, p->priority, !p->resolved);
}
