/* /api/status's view of the configuration (admin_page.h): the Gateways'
 * listeners, the routes' parents and the InferencePools' parents with the
 * conditions the Gateway API and GIE give them (gateway/attach.c, the same
 * that --kube writes as status), and how the last reload went. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/admin_page.h"
#include "gateway/attach.h"
#include "gateway/snapshot.h"
#include "json/json.h"

static void str(struct ig_buf *b, const char *v)
{
	if (v)
		ig_json_write_string(b, v, strlen(v));
	else
		ig_buf_append_cstr(b, "null");
}

/* One condition as metav1.Condition writes it (no times: the page shows
 * the current state). */
static void cond(struct ig_buf *b, bool first, const char *type, bool status, const char *reason,
		 const char *message)
{
	ig_buf_printf(b, "%s{\"type\":\"%s\",\"status\":\"%s\",\"reason\":", first ? "" : ",", type,
		      status ? "True" : "False");
	str(b, reason);
	ig_buf_append_cstr(b, ",\"message\":");
	str(b, message);
	ig_buf_append_cstr(b, "}");
}

static void listener(struct ig_buf *b, const struct ig_snapshot *s, const struct ig_gateway *gw,
		     const struct ig_listener *l, bool first)
{
	struct ig_listener_status st;
	ig_listener_status(s->cfg, gw, l, &st);
	bool prog = ig_snapshot_serves(s, gw, l);
	ig_buf_printf(b, "%s{\"name\":", first ? "" : ",");
	str(b, l->name);
	if (l->set) {
		ig_buf_append_cstr(b, ",\"listener_set\":");
		char set[300];
		snprintf(set, sizeof set, "%s/%s", l->set->meta.ns, l->set->meta.name);
		str(b, set);
	}
	ig_buf_printf(b, ",\"port\":%d,\"protocol\":", l->port);
	str(b, l->protocol);
	ig_buf_printf(b, ",\"attached_routes\":%zu,\"conditions\":[",
		      ig_listener_attached_routes(s->cfg, gw, l));
	cond(b, true, "Accepted", st.accepted, st.reason, st.message);
	cond(b, false, "Programmed", prog,
	     prog	    ? "Programmed"
	     : st.given_way ? st.conflict
			    : "Invalid",
	     prog	   ? "Listening"
	     : st.conflict ? st.conflict_message
			   : "Not served (see the gateway's log)");
	cond(b, false, "ResolvedRefs", st.resolved, st.refs_reason, st.refs_message);
	if (st.conflict)
		cond(b, false, "Conflicted", true, st.conflict, st.conflict_message);
	else
		cond(b, false, "Conflicted", false, "NoConflicts", "No conflicts");
	if (st.overlap)
		cond(b, false, "OverlappingTLSConfig", true, "OverlappingHostnames",
		     IG_OVERLAP_MESSAGE);
	ig_buf_append_cstr(b, "]}");
}

/* The Gateway's own conditions, as --kube writes them into its
 * status.conditions. */
static void gateway_conditions(struct ig_buf *b, const struct ig_snapshot *s,
			       const struct ig_gateway *gw, const char *bind)
{
	size_t nserved = 0;
	for (size_t i = 0; i < gw->nlisteners; i++)
		nserved += ig_snapshot_serves(s, gw, &gw->listeners[i]);
	struct ig_gateway_status st;
	ig_gateway_status(s->cfg, gw, nserved, bind, &st);
	ig_buf_append_cstr(b, ",\"conditions\":[");
	cond(b, true, "Accepted", st.accepted.status, st.accepted.reason, st.accepted.message);
	cond(b, false, "Programmed", st.programmed.status, st.programmed.reason,
	     st.programmed.message);
	if (st.has_refs)
		cond(b, false, "ResolvedRefs", st.resolved.status, st.resolved.reason,
		     st.resolved.message);
	if (st.has_insecure)
		cond(b, false, "InsecureFrontendValidationMode", st.insecure.status,
		     st.insecure.reason, st.insecure.message);
	ig_buf_append_cstr(b, "]");
}

static void gateways(struct ig_buf *b, const struct ig_snapshot *s, const char *bind)
{
	const struct ig_config *cfg = s->cfg;
	ig_buf_append_cstr(b, "\"gateways\":[");
	for (size_t g = 0; g < cfg->ngateways; g++) {
		const struct ig_gateway *gw = &cfg->gateways[g];
		ig_buf_printf(b, "%s{\"namespace\":", g ? "," : "");
		str(b, gw->meta.ns);
		ig_buf_append_cstr(b, ",\"name\":");
		str(b, gw->meta.name);
		gateway_conditions(b, s, gw, bind);
		ig_buf_append_cstr(b, ",\"listeners\":[");
		bool first = true;
		for (size_t i = 0; i < gw->nlisteners; i++, first = false)
			listener(b, s, gw, &gw->listeners[i], first);
		/* Then the ListenerSets' that its allowedListeners admits. */
		for (size_t k = 0; k < cfg->nlistener_sets; k++) {
			const struct ig_listener_set *ls = &cfg->listener_sets[k];
			if (ls->gw != gw || ls->state == IG_LSET_NOT_ALLOWED)
				continue;
			for (size_t i = 0; i < ls->nlisteners; i++, first = false)
				listener(b, s, gw, &ls->listeners[i], first);
		}
		ig_buf_append_cstr(b, "]}");
	}
	ig_buf_append_cstr(b, "]");
}

static void parent_ref(struct ig_buf *b, const struct ig_parent_ref *p)
{
	ig_buf_append_cstr(b, "{\"group\":");
	str(b, p->group);
	ig_buf_append_cstr(b, ",\"kind\":");
	str(b, p->kind);
	ig_buf_append_cstr(b, ",\"namespace\":");
	str(b, p->ns);
	ig_buf_append_cstr(b, ",\"name\":");
	str(b, p->name);
	if (p->section_name) {
		ig_buf_append_cstr(b, ",\"sectionName\":");
		str(b, p->section_name);
	}
	if (p->port)
		ig_buf_printf(b, ",\"port\":%d", p->port);
	ig_buf_append_cstr(b, "}");
}

/* An object's namespace, name, and the file and line it came from, as
 * members after one already written. */
static void place(struct ig_buf *b, const struct ig_meta *m)
{
	ig_buf_append_cstr(b, ",\"namespace\":");
	str(b, m->ns);
	ig_buf_append_cstr(b, ",\"name\":");
	str(b, m->name);
	ig_buf_append_cstr(b, ",\"file\":");
	str(b, m->file);
	ig_buf_printf(b, ",\"line\":%d", m->line);
}

/* Each route with one parents[] entry per parentRef to a Gateway (or a
 * ListenerSet of one) of the configuration, as its status.parents. */
static void routes(struct ig_buf *b, const struct ig_config *cfg)
{
	ig_buf_append_cstr(b, "\"routes\":[");
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct ig_httproute *r = &cfg->routes[i];
		ig_buf_printf(b, "%s{\"kind\":", i ? "," : "");
		str(b, r->meta.kind);
		place(b, &r->meta);
		ig_buf_append_cstr(b, ",\"parents\":[");
		bool first = true;
		for (size_t k = 0; k < r->nparents; k++) {
			struct ig_parent_status st;
			if (!ig_route_parent_status(cfg, r, &r->parents[k], &st))
				continue;
			ig_buf_printf(b, "%s{\"parentRef\":", first ? "" : ",");
			parent_ref(b, &r->parents[k]);
			ig_buf_append_cstr(b, ",\"conditions\":[");
			cond(b, true, "Accepted", st.accepted, st.reason, st.message);
			cond(b, false, "ResolvedRefs", st.resolved, st.refs_reason,
			     st.refs_message);
			ig_buf_append_cstr(b, "]}");
			first = false;
		}
		ig_buf_append_cstr(b, "]}");
	}
	ig_buf_append_cstr(b, "]");
}

/* Each InferencePool with one parents[] entry per Gateway an accepted
 * HTTPRoute reaches it through, as --kube writes its status.parents
 * (kube_status.c: the same ig_pool_parent_status). */
static void pools(struct ig_buf *b, const struct ig_snapshot *s)
{
	const struct ig_config *cfg = s->cfg;
	ig_buf_append_cstr(b, "\"pools\":[");
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct ig_pool *p = &cfg->pools[i];
		ig_buf_printf(b, "%s{\"group\":", i ? "," : "");
		str(b, p->group);
		place(b, &p->meta);
		ig_buf_append_cstr(b, ",\"parents\":[");
		bool first = true;
		for (size_t g = 0; g < cfg->ngateways; g++) {
			const struct ig_gateway *gw = &cfg->gateways[g];
			struct ig_pool_parent_status st;
			if (!ig_pool_parent_status(s, gw, p, &st))
				continue;
			ig_buf_printf(b,
				      "%s{\"parentRef\":{\"group\":\"gateway.networking.k8s.io\","
				      "\"kind\":\"Gateway\",\"namespace\":",
				      first ? "" : ",");
			str(b, gw->meta.ns);
			ig_buf_append_cstr(b, ",\"name\":");
			str(b, gw->meta.name);
			ig_buf_append_cstr(b, "},\"conditions\":[");
			cond(b, true, "Accepted", true, st.reason, st.message);
			cond(b, false, "ResolvedRefs", st.resolved, st.refs_reason,
			     st.refs_message);
			ig_buf_append_cstr(b, "]}");
			first = false;
		}
		ig_buf_append_cstr(b, "]}");
	}
	ig_buf_append_cstr(b, "]");
}

char *ig_admin_render_attachment(const struct ig_snapshot *s, const char *bind)
{
	struct ig_buf b = {0};
	gateways(&b, s, bind);
	ig_buf_append_cstr(&b, ",");
	routes(&b, s->cfg);
	ig_buf_append_cstr(&b, ",");
	pools(&b, s);
	char *out = b.len ? strndup(b.ptr, b.len) : NULL;
	ig_buf_free(&b);
	return out;
}

/* RFC 3339 in UTC, or null for 0 (never). */
static void timestamp(struct ig_buf *b, double t)
{
	if (t <= 0) {
		ig_buf_append_cstr(b, "null");
		return;
	}
	time_t secs = (time_t)t;
	struct tm tm;
	char text[32];
	strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", gmtime_r(&secs, &tm));
	ig_buf_printf(b, "\"%s.%03dZ\"", text, (int)((t - (double)secs) * 1000));
}

void ig_admin_render_reload(const struct ig_gateway_rt *gw, struct ig_buf *b)
{
	ig_buf_printf(b, "{\"successes\":%llu,\"failures\":%llu,\"last\":",
		      (unsigned long long)gw->reload.ok, (unsigned long long)gw->reload.failed);
	if (!gw->reload.last_at) {
		ig_buf_append_cstr(b, "null");
	} else {
		ig_buf_printf(b, "{\"result\":\"%s\",\"reason\":",
			      gw->reload.last_failed ? "failure" : "success");
		str(b, gw->reload.last_why);
		ig_buf_append_cstr(b, ",\"time\":");
		timestamp(b, gw->reload.last_at);
		ig_buf_append_cstr(b, ",\"errors\":[");
		const char *p = gw->reload.last_failed ? gw->reload.errors : NULL;
		for (bool first = true; p && *p; first = false) {
			const char *e = strchr(p, '\n');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			if (!first)
				ig_buf_append_cstr(b, ",");
			ig_json_write_string(b, p, n);
			p += n + (e != NULL);
		}
		ig_buf_append_cstr(b, "]}");
	}
	ig_buf_append_cstr(b, ",\"last_success_time\":");
	timestamp(b, gw->reload.ok_at);
	/* A reload refused for want of resources is tried again then. */
	ig_buf_append_cstr(b, ",\"retry_time\":");
	timestamp(b, gw->reload.retry_at);
	ig_buf_append_cstr(b, "}");
}
