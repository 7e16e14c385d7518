/* Working out what `demo` and `run` start: sims, their addresses, their
 * Pods and the seed request. Nothing here touches a process or a socket
 * (address probing is the caller's callback). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "demo/plan.h"
#include "gateway/route.h"
#include "json/json.h"

static bool has_arg(char *const *args, size_t nargs, const char *flag)
{
	size_t n = strlen(flag);

	for (size_t i = 0; i < nargs; i++)
		if (!strncmp(args[i], flag, n) && (args[i][n] == '\0' || args[i][n] == '='))
			return true;
	return false;
}

/* The model server is the container that is given a --model; sidecars
 * (log shippers, proxies) are not. */
static const struct ig_container *server_container(const struct ig_deployment *d)
{
	for (size_t i = 0; i < d->ncontainers; i++)
		if (has_arg(d->containers[i].args, d->containers[i].nargs, "--model"))
			return &d->containers[i];
	return d->ncontainers ? &d->containers[0] : NULL;
}

/* The first pool in the Deployment's namespace whose selector picks the
 * Pods its template would create. An empty selector would pick every
 * Deployment, which is never what a manifest means, so it picks none. */
static const struct ig_pool *selecting_pool(const struct ig_config *cfg,
					    const struct ig_deployment *d)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct ig_pool *p = &cfg->pools[i];
		if (p->nselector && !strcmp(p->meta.ns, d->meta.ns) &&
		    ig_labels_match(p->selector, p->nselector, d->template_labels,
				    d->ntemplate_labels))
			return p;
	}
	return NULL;
}

static int add_sims(struct ig_demo_plan *plan, const struct ig_deployment *d,
		    const struct ig_pool *p, int count, char *err, size_t errlen)
{
	const struct ig_container *c = server_container(d);
	struct ig_demo_sim *grown;

	if (!c) {
		snprintf(err, errlen, "%s:%d: Deployment %s has no containers", d->meta.file,
			 d->meta.line, d->meta.name);
		return -1;
	}
	if (!p->nports) {
		snprintf(err, errlen, "%s:%d: InferencePool %s has no target port", p->meta.file,
			 p->meta.line, p->meta.name);
		return -1;
	}
	grown = realloc(plan->sims, (plan->nsims + (size_t)count) * sizeof(*grown));
	if (!grown) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	plan->sims = grown;
	for (int i = 0; i < count; i++) {
		struct ig_demo_sim *s = &plan->sims[plan->nsims];
		int n = snprintf(s->name, sizeof(s->name), "%s-%d", d->meta.name, i);
		if (n < 0 || (size_t)n >= sizeof(s->name)) {
			snprintf(err, errlen, "Deployment name too long: %s", d->meta.name);
			return -1;
		}
		s->ip[0] = '\0';
		s->port = p->target_ports[0];
		s->dep = d;
		s->ctr = c;
		plan->nsims++;
	}
	return 0;
}

int ig_demo_plan_build(const struct ig_config *cfg, int replicas, struct ig_demo_plan *plan,
		       char *err, size_t errlen)
{
	*plan = (struct ig_demo_plan){0};
	for (size_t i = 0; i < cfg->ndeployments; i++) {
		const struct ig_deployment *d = &cfg->deployments[i];
		const struct ig_pool *p = selecting_pool(cfg, d);
		if (!p)
			continue;
		if (add_sims(plan, d, p, replicas > 0 ? replicas : d->replicas, err, errlen)) {
			ig_demo_plan_free(plan);
			return -1;
		}
	}
	return 0;
}

void ig_demo_plan_free(struct ig_demo_plan *plan)
{
	free(plan->sims);
	*plan = (struct ig_demo_plan){0};
}

int ig_demo_assign_addrs(struct ig_demo_plan *plan, uint32_t base,
			 bool (*taken)(const char *ip, int port, void *ud), void *ud)
{
	uint32_t a = base;

	for (size_t i = 0; i < plan->nsims; i++) {
		struct ig_demo_sim *s = &plan->sims[i];
		for (;;) {
			a++;
			if ((a >> 24) != 127)
				return -1;
			if ((a & 0xff) == 0 || (a & 0xff) == 0xff)
				continue;
			snprintf(s->ip, sizeof(s->ip), "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff,
				 (a >> 8) & 0xff, a & 0xff);
			if (!taken || !taken(s->ip, s->port, ud))
				break;
		}
	}
	return 0;
}

const char *ig_demo_arg_value(char *const *args, size_t nargs, const char *flag)
{
	const char *v = NULL;
	size_t n = strlen(flag);

	for (size_t i = 0; i < nargs; i++) {
		if (strncmp(args[i], flag, n))
			continue;
		if (args[i][n] == '=')
			v = args[i] + n + 1;
		else if (args[i][n] == '\0' && i + 1 < nargs)
			v = args[i + 1];
	}
	return v;
}

/* One --lora-modules entry: vLLM takes either a JSON object with "name"
 * or the older "name=path" form. */
static int append_adapter(const char *entry, struct ig_buf *out)
{
	struct ig_json_value root, name;
	const char *eq;

	if (out->len && ig_buf_append_cstr(out, ", "))
		return -1;
	if (entry[0] == '{') {
		if (ig_json_parse(entry, strlen(entry), &root) || ig_json_get(root, "name", &name))
			return ig_buf_append_cstr(out, "?");
		return ig_json_string(name, out);
	}
	eq = strchr(entry, '=');
	return ig_buf_append(out, entry, eq ? (size_t)(eq - entry) : strlen(entry));
}

int ig_demo_adapter_names(char *const *args, size_t nargs, struct ig_buf *out)
{
	static const char flag[] = "--lora-modules";
	bool in_list = false;

	for (size_t i = 0; i < nargs; i++) {
		const char *a = args[i];
		if (!strcmp(a, flag)) {
			in_list = true;
			continue;
		}
		if (!strncmp(a, flag, sizeof(flag) - 1) && a[sizeof(flag) - 1] == '=') {
			in_list = true;
			a += sizeof(flag);
		} else if (!strncmp(a, "--", 2)) {
			in_list = false;
			continue;
		}
		if (in_list && append_adapter(a, out))
			return -1;
	}
	return 0;
}

static int yaml_kv(struct ig_buf *out, const char *indent, const char *key, const char *value)
{
	if (ig_buf_printf(out, "%s", indent) || ig_json_write_string(out, key, strlen(key)) ||
	    ig_buf_append_cstr(out, ": ") || ig_json_write_string(out, value, strlen(value)) ||
	    ig_buf_append_cstr(out, "\n"))
		return -1;
	return 0;
}

/* Keys and values are written as double-quoted scalars (JSON string
 * syntax is valid YAML), so no label value can change the document's
 * structure. */
static int pod_yaml(const struct ig_demo_sim *s, struct ig_buf *out)
{
	const struct ig_deployment *d = s->dep;

	if (ig_buf_append_cstr(out, "---\napiVersion: v1\nkind: Pod\nmetadata:\n") ||
	    yaml_kv(out, "  ", "name", s->name) || yaml_kv(out, "  ", "namespace", d->meta.ns) ||
	    ig_buf_append_cstr(out, d->ntemplate_labels ? "  labels:\n" : "  labels: {}\n"))
		return -1;
	for (size_t i = 0; i < d->ntemplate_labels; i++)
		if (yaml_kv(out, "    ", d->template_labels[i].key, d->template_labels[i].value))
			return -1;
	if (ig_buf_append_cstr(out, "status:\n") || yaml_kv(out, "  ", "podIP", s->ip) ||
	    ig_buf_append_cstr(out, "  conditions:\n  - type: Ready\n    status: \"True\"\n"))
		return -1;
	return 0;
}

int ig_demo_pods_yaml(const struct ig_demo_plan *plan, struct ig_buf *out)
{
	if (ig_buf_append_cstr(out, "# Pods of the simulators started by infergate demo/run.\n"))
		return -1;
	for (size_t i = 0; i < plan->nsims; i++)
		if (pod_yaml(&plan->sims[i], out))
			return -1;
	return 0;
}

static const struct ig_listener *attached_listener(const struct ig_gateway *g,
						   const struct ig_parent_ref *pr)
{
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct ig_listener *l = &g->listeners[i];
		if (pr->section_name && strcmp(pr->section_name, l->name))
			continue;
		if (pr->port && pr->port != l->port)
			continue;
		return l;
	}
	return NULL;
}

static int route_listener(const struct ig_config *cfg, const struct ig_gateway **gw,
			  const struct ig_listener **l)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct ig_httproute *r = &cfg->routes[i];
		for (size_t j = 0; j < r->nparents; j++) {
			const struct ig_parent_ref *pr = &r->parents[j];
			const struct ig_gateway *g;
			if (pr->kind && strcmp(pr->kind, "Gateway"))
				continue;
			g = ig_config_find_gateway(cfg, pr->ns ? pr->ns : r->meta.ns, pr->name);
			if (g && (*l = attached_listener(g, pr))) {
				*gw = g;
				return 0;
			}
		}
	}
	return -1;
}

int ig_demo_seed_listener(const struct ig_config *cfg, const struct ig_gateway **gw,
			  const struct ig_listener **l)
{
	for (size_t i = 0; i < cfg->ngateways; i++) {
		const struct ig_gateway *g = &cfg->gateways[i];
		for (size_t j = 0; j < g->nlisteners; j++) {
			if (g->listeners[j].name && !strcmp(g->listeners[j].name, "llm-gw")) {
				*gw = g;
				*l = &g->listeners[j];
				return 0;
			}
		}
	}
	return route_listener(cfg, gw, l);
}

/* GIE v1 configs have no InferenceModels: the models they serve show in
 * InferenceModelRewrite matches and in body-based routing's header
 * matches. */
static const char *bbr_model(const struct ig_header_match *h)
{
	return h->type == IG_MATCH_EXACT && !strcasecmp(h->name, "X-Gateway-Model-Name") ? h->value
											 : NULL;
}

const char *ig_demo_seed_model(const struct ig_config *cfg)
{
	const char *first = NULL;

	for (size_t i = 0; i < cfg->nmodels; i++) {
		const struct ig_model *m = &cfg->models[i];
		if (!m->accepted || !m->model_name)
			continue;
		if (!strcmp(m->model_name, "tweet-summary"))
			return m->model_name;
		if (!first)
			first = m->model_name;
	}
	for (size_t i = 0; !cfg->nmodels && i < cfg->nrewrites; i++) {
		const struct ig_model_rewrite *w = &cfg->rewrites[i];
		for (size_t j = 0; j < w->nrules; j++)
			for (size_t k = 0; k < w->rules[j].nmodels; k++) {
				if (!strcmp(w->rules[j].models[k], "tweet-summary"))
					return w->rules[j].models[k];
				if (!first)
					first = w->rules[j].models[k];
			}
	}
	for (size_t i = 0; !cfg->nmodels && !first && i < cfg->nroutes; i++) {
		const struct ig_httproute *r = &cfg->routes[i];
		for (size_t j = 0; !first && j < r->nrules; j++)
			for (size_t m = 0; !first && m < r->rules[j].nmatches; m++)
				for (size_t h = 0; !first && h < r->rules[j].matches[m].nheaders;
				     h++)
					first = bbr_model(&r->rules[j].matches[m].headers[h]);
	}
	return first ? first : "tweet-summary";
}

size_t ig_demo_tour_models(const struct ig_config *cfg, const char *seed, const char **out,
			   size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct ig_httproute *r = &cfg->routes[i];
		for (size_t j = 0; j < r->nrules; j++)
			for (size_t m = 0; m < r->rules[j].nmatches; m++)
				for (size_t h = 0; h < r->rules[j].matches[m].nheaders; h++) {
					const char *v =
					    bbr_model(&r->rules[j].matches[m].headers[h]);
					bool seen = !v || !strcmp(v, seed);
					for (size_t k = 0; !seen && k < n; k++)
						seen = !strcmp(out[k], v);
					if (!seen && n < max)
						out[n++] = v;
				}
	}
	return n;
}

int ig_demo_https_listener(const struct ig_config *cfg, const struct ig_gateway **gw,
			   const struct ig_listener **l)
{
	for (size_t i = 0; i < cfg->ngateways; i++) {
		const struct ig_gateway *g = &cfg->gateways[i];
		for (size_t j = 0; j < g->nlisteners; j++) {
			const struct ig_listener *li = &g->listeners[j];
			if (!li->protocol || strcmp(li->protocol, "HTTPS"))
				continue;
			for (size_t k = 0; k < cfg->nroutes; k++) {
				if (ig_route_attaches(cfg, &cfg->routes[k], g, li)) {
					*gw = g;
					*l = li;
					return 0;
				}
			}
		}
	}
	return -1;
}

int ig_demo_seed_body(const char *model, struct ig_buf *out)
{
	if (ig_buf_append_cstr(out, "{\"model\": ") ||
	    ig_json_write_string(out, model, strlen(model)) ||
	    ig_buf_append_cstr(out, ", \"prompt\": \"Write as if you were a critic: San Francisco\""
				    ", \"max_tokens\": 100, \"temperature\": 0}"))
		return -1;
	return 0;
}

/* Single quotes keep everything literal in a POSIX shell; a single quote
 * itself is closed, escaped and reopened. */
static int shell_quote(const char *s, struct ig_buf *out)
{
	if (ig_buf_append_cstr(out, "'"))
		return -1;
	for (; *s; s++) {
		if (*s == '\'' ? ig_buf_append_cstr(out, "'\\''") : ig_buf_append(out, s, 1))
			return -1;
	}
	return ig_buf_append_cstr(out, "'");
}

int ig_demo_curl_line(const char *host, int port, const char *cacert, const char *body,
		      struct ig_buf *out)
{
	if ((cacert && (ig_buf_append_cstr(out, "curl --cacert ") || shell_quote(cacert, out) ||
			ig_buf_printf(out, " https://%s:%d/v1/completions", host, port))) ||
	    (!cacert && ig_buf_printf(out, "curl http://%s:%d/v1/completions", host, port)) ||
	    ig_buf_append_cstr(out, " -H 'Content-Type: application/json' -d ") ||
	    shell_quote(body, out))
		return -1;
	return 0;
}
