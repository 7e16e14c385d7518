/* Decoders for the inference APIs: InferencePool (x-k8s v1alpha2 as in
 * GIE v0.2, and v1), InferenceModel (v0.2), InferenceObjective and
 * InferenceModelRewrite (GIE's x-k8s group and llm-d Router's llm-d.ai
 * group), InferencePoolImport. Each API version keeps its own schema. */
#include <stdint.h>
#include <string.h>

#include "config/load.h"

/* ---- InferencePool ----------------------------------------------------------- */

static const char *const failure_modes[] = {"FailOpen", "FailClose", NULL};

static void decode_epp(struct session *s, yaml_node_t *n, const char *path, struct ig_pool *p)
{
	static const char *const alpha_fields[] = {"group",	 "kind",	"name",
						   "portNumber", "failureMode", NULL};
	static const char *const v1_fields[] = {"group", "kind",	"name",
						"port",	 "failureMode", NULL};
	static const char *const port_fields[] = {"number", NULL};
	int line, kline;
	ld_fields(s, n, path, p->v1 ? v1_fields : alpha_fields, NULL);
	p->epp_group = ld_str(s, n, path, "group", false, &line);
	ld_check_group(s, p->epp_group, line, path, "group");
	p->epp_kind = ld_str(s, n, path, "kind", false, &kline);
	ld_check_kind(s, p->epp_kind, kline, path, "kind");
	p->epp_name = ld_str(s, n, path, "name", true, &line);
	p->epp_line = line;
	ld_check_object_name(s, p->epp_name, line, path, "name");
	if (p->v1) {
		char sub[LD_PATH];
		yaml_node_t *port = ld_map(s, n, path, "port", false, &line);
		ld_join(sub, path, "port");
		if (port) {
			ld_fields(s, port, sub, port_fields, NULL);
			ld_int_range(s, port, sub, "number", true, 1, 65535, &p->epp_port);
		}
		if ((!p->epp_kind || !strcmp(p->epp_kind, "Service")) &&
		    !ld_get(s, n, "port", &line))
			ld_err(s, ig_yaml_line(n), path, NULL,
			       "port is required when kind is 'Service' or unspecified (defaults "
			       "to 'Service')");
	} else {
		ld_int_range(s, n, path, "portNumber", false, 1, 65535, &p->epp_port);
	}
	char *fm = ld_str(s, n, path, "failureMode", false, &line);
	ld_check_enum(s, fm, line, path, "failureMode", failure_modes);
	p->failure_mode = fm && !strcmp(fm, "FailOpen") ? IG_FAIL_OPEN : IG_FAIL_CLOSE;
	if (!p->epp_kind)
		p->epp_kind = "Service";
	if (!p->epp_group)
		p->epp_group = "";
}

static void decode_pool_v1alpha2(struct session *s, yaml_node_t *spec, struct ig_pool *p)
{
	static const char *const fields[] = {"selector", "targetPortNumber", "extensionRef", NULL};
	int line;
	ld_fields(s, spec, "spec", fields, NULL);
	yaml_node_t *sel = ld_map(s, spec, "spec", "selector", true, &line);
	if (sel)
		p->selector = ld_labels(s, sel, line, "spec", "selector", &p->nselector);
	p->target_ports = ld_alloc(s, sizeof(int));
	if (ld_int_range(s, spec, "spec", "targetPortNumber", true, 1, 65535, &p->target_ports[0]))
		p->nports = 1;
	yaml_node_t *ext = ld_map(s, spec, "spec", "extensionRef", true, &line);
	if (ext)
		decode_epp(s, ext, "spec.extensionRef", p);
}

static void decode_target_ports(struct session *s, yaml_node_t *seq, int line, struct ig_pool *p)
{
	static const char *const fields[] = {"number", NULL};
	char path[LD_PATH];
	size_t n = ld_seq_len(seq);
	ld_check_items(s, seq, line, "spec", "targetPorts", 1, 8);
	p->target_ports = ld_alloc(s, (n + 1) * sizeof(int));
	for (size_t i = 0; i < n; i++) {
		ld_item(path, "spec", "targetPorts", i);
		yaml_node_t *t = ld_seq_map(s, seq, i, path);
		if (!t)
			continue;
		ld_fields(s, t, path, fields, NULL);
		int port = 0;
		if (!ld_int_range(s, t, path, "number", true, 1, 65535, &port))
			continue;
		bool dup = false;
		for (size_t j = 0; j < p->nports; j++)
			dup |= p->target_ports[j] == port;
		if (dup)
			ld_err(s, ig_yaml_line(t), "spec", "targetPorts",
			       "port number must be unique");
		else
			p->target_ports[p->nports++] = port;
	}
}

static void decode_pool_v1(struct session *s, yaml_node_t *spec, struct ig_pool *p)
{
	static const char *const fields[] = {"selector", "targetPorts", "appProtocol",
					     "endpointPickerRef", NULL};
	static const char *const selector_fields[] = {"matchLabels", NULL};
	static const char *const app_protocols[] = {"http", "kubernetes.io/h2c", NULL};
	int line;
	ld_fields(s, spec, "spec", fields, NULL);
	yaml_node_t *sel = ld_map(s, spec, "spec", "selector", true, &line);
	if (sel)
		ld_fields(s, sel, "spec.selector", selector_fields, NULL);
	yaml_node_t *ml = sel ? ld_map(s, sel, "spec.selector", "matchLabels", true, &line) : NULL;
	if (ml) {
		size_t n = ld_map_len(ml);
		if (n < 1 || n > 64)
			ld_err(s, line, "spec.selector", "matchLabels",
			       "must have between 1 and 64 labels");
		p->selector = ld_labels(s, ml, line, "spec.selector", "matchLabels", &p->nselector);
	}
	yaml_node_t *tp = ld_seq(s, spec, "spec", "targetPorts", true, &line);
	if (tp)
		decode_target_ports(s, tp, line, p);
	char *ap = ld_str(s, spec, "spec", "appProtocol", false, &line);
	ld_check_enum(s, ap, line, "spec", "appProtocol", app_protocols);
	p->app_protocol = ap && !strcmp(ap, "kubernetes.io/h2c") ? IG_APP_H2C : IG_APP_HTTP;
	yaml_node_t *epp = ld_map(s, spec, "spec", "endpointPickerRef", false, &line);
	if (epp)
		decode_epp(s, epp, "spec.endpointPickerRef", p);
}

void ld_pool(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	struct ig_pool p = {0};
	int line;
	p.v1 = !strcmp(api, "inference.networking.k8s.io/v1");
	p.group = p.v1 ? IG_POOL_GROUP_V1 : IG_POOL_GROUP_ALPHA;
	p.epp_kind = "Service";
	p.epp_group = "";
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "InferencePool", &p.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	if (spec && p.v1)
		decode_pool_v1(s, spec, &p);
	else if (spec)
		decode_pool_v1alpha2(s, spec, &p);
	*LD_APPEND(s, K_POOL, pools) = p;
}

/* ---- poolRef ----------------------------------------------------------------- */

/* spec.poolRef of InferenceModel, InferenceObjective and
 * InferenceModelRewrite: name required, group and kind defaulted. */
static void decode_pool_ref(struct session *s, yaml_node_t *spec, const struct ig_meta *m,
			    const char *default_group, char **name, char **group, char **kind)
{
	static const char *const fields[] = {"group", "kind", "name", NULL};
	int line, kline;
	yaml_node_t *ref = ld_map(s, spec, "spec", "poolRef", true, &line);
	if (!ref)
		return;
	ld_fields(s, ref, "spec.poolRef", fields, NULL);
	*group = ld_str(s, ref, "spec.poolRef", "group", false, &line);
	ld_check_group(s, *group, line, "spec.poolRef", "group");
	char *k = ld_str(s, ref, "spec.poolRef", "kind", false, &kline);
	ld_check_kind(s, k, kline, "spec.poolRef", "kind");
	*name = ld_str(s, ref, "spec.poolRef", "name", true, &line);
	ld_check_object_name(s, *name, line, "spec.poolRef", "name");
	if (!*group)
		*group = (char *)default_group;
	if (kind)
		*kind = k ? k : "InferencePool";
	if (k && strcmp(k, "InferencePool") != 0)
		ld_warn(s, kline, "spec.poolRef", "kind",
			"kind %s: only InferencePool is understood, so this %s applies to no pool",
			k, m->kind);
	else
		ld_ref(s, "InferencePool", m->ns, *name, ig_yaml_line(ref), "spec.poolRef");
}

/* ---- InferenceModel ------------------------------------------------------------ */

static void decode_targets(struct session *s, yaml_node_t *seq, int line, struct ig_model *m)
{
	static const char *const fields[] = {"name", "weight", NULL};
	char path[LD_PATH];
	size_t with = 0;
	int iline;
	ld_check_items(s, seq, line, "spec", "targetModels", 0, 10);
	m->ntargets = ld_seq_len(seq);
	m->targets = ld_alloc(s, (m->ntargets + 1) * sizeof(*m->targets));
	for (size_t i = 0; i < m->ntargets; i++) {
		struct ig_target_model *tm = &m->targets[i];
		ld_item(path, "spec", "targetModels", i);
		yaml_node_t *t = ld_seq_map(s, seq, i, path);
		if (!t)
			continue;
		ld_fields(s, t, path, fields, NULL);
		tm->name = ld_str(s, t, path, "name", true, &iline);
		ld_check_len(s, tm->name, iline, path, "name", 0, 253);
		if (ld_get(s, t, "weight", &iline)) {
			with++;
			tm->has_weight = true;
			ld_int_range(s, t, path, "weight", false, 1, 1000000, &tm->weight);
		}
	}
	if (with != 0 && with != m->ntargets)
		ld_err(s, line, "spec", "targetModels",
		       "Weights should be set for all models, or none of the models.");
}

void ld_model(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const fields[] = {"modelName", "criticality", "poolRef", "targetModels",
					     NULL};
	static const char *const crits[] = {"Critical", "Standard", "Sheddable", NULL};
	struct ig_model m = {.accepted = true};
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "InferenceModel", &m.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	if (spec) {
		ld_fields(s, spec, "spec", fields, NULL);
		m.model_name = ld_str(s, spec, "spec", "modelName", true, &line);
		ld_check_len(s, m.model_name, line, "spec", "modelName", 0, 256);
		char *c = ld_str(s, spec, "spec", "criticality", false, &line);
		ld_check_enum(s, c, line, "spec", "criticality", crits);
		if (c)
			m.criticality = !strcmp(c, "Critical")	  ? IG_CRIT_CRITICAL
					: !strcmp(c, "Standard")  ? IG_CRIT_STANDARD
					: !strcmp(c, "Sheddable") ? IG_CRIT_SHEDDABLE
								  : IG_CRIT_UNSET;
		decode_pool_ref(s, spec, &m.meta, IG_POOL_GROUP_ALPHA, &m.pool_name, &m.pool_group,
				NULL);
		yaml_node_t *tms = ld_seq(s, spec, "spec", "targetModels", false, &line);
		if (tms)
			decode_targets(s, tms, line, &m);
	}
	*LD_APPEND(s, K_MODEL, models) = m;
}

/* ---- InferenceObjective ---------------------------------------------------------- */

void ld_objective(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const fields[] = {"priority", "poolRef", NULL};
	struct ig_objective o = {0};
	int line;
	long long prio;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "InferenceObjective", &o.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	if (spec) {
		ld_fields(s, spec, "spec", fields, NULL);
		/* A Go int: any 64-bit value. Requests order by a 32-bit
		 * priority, so the rare one beyond that range is held at
		 * its end (and said so). */
		if (ld_int(s, spec, "spec", "priority", false, &line, &prio)) {
			o.priority = prio < INT32_MIN	? INT32_MIN
				     : prio > INT32_MAX ? INT32_MAX
							: (int)prio;
			o.has_priority = true;
			if (o.priority != prio)
				ld_warn(s, line, "spec", "priority",
					"%lld is beyond 32 bits: requests are ordered as if it "
					"were %d",
					prio, o.priority);
		}
		decode_pool_ref(s, spec, &o.meta, NULL, &o.pool_name, &o.pool_group, &o.pool_kind);
	}
	*LD_APPEND(s, K_OBJECTIVE, objectives) = o;
}

/* ---- InferenceModelRewrite ------------------------------------------------------- */

static void decode_rewrite_matches(struct session *s, yaml_node_t *rule, const char *path,
				   struct ig_rewrite_rule *r)
{
	static const char *const fields[] = {"model", NULL};
	static const char *const model_fields[] = {"type", "value", NULL};
	static const char *const types[] = {"Exact", NULL};
	char it[LD_PATH], sub[LD_PATH];
	int line;
	yaml_node_t *ms = ld_seq(s, rule, path, "matches", false, &line);
	if (!ms)
		return;
	r->models = ld_alloc(s, (ld_seq_len(ms) + 1) * sizeof(char *));
	for (size_t i = 0; i < ld_seq_len(ms); i++) {
		ld_item(it, path, "matches", i);
		yaml_node_t *m = ld_seq_map(s, ms, i, it);
		if (!m)
			continue;
		ld_fields(s, m, it, fields, NULL);
		yaml_node_t *model = ld_map(s, m, it, "model", true, &line);
		if (!model)
			continue;
		ld_join(sub, it, "model");
		ld_fields(s, model, sub, model_fields, NULL);
		char *type = ld_str(s, model, sub, "type", false, &line);
		ld_check_enum(s, type, line, sub, "type", types);
		char *v = ld_str(s, model, sub, "value", true, &line);
		ld_check_len(s, v, line, sub, "value", 1, SIZE_MAX);
		if (v && *v)
			r->models[r->nmodels++] = v;
	}
}

static void decode_rewrite_targets(struct session *s, yaml_node_t *rule, const char *path,
				   struct ig_rewrite_rule *r)
{
	static const char *const fields[] = {"modelRewrite", "weight", NULL};
	char it[LD_PATH];
	int line;
	size_t with = 0;
	yaml_node_t *ts = ld_seq(s, rule, path, "targets", false, &line);
	if (!ts)
		return;
	ld_check_items(s, ts, line, path, "targets", 1, SIZE_MAX);
	r->targets = ld_alloc(s, (ld_seq_len(ts) + 1) * sizeof(*r->targets));
	for (size_t i = 0; i < ld_seq_len(ts); i++) {
		ld_item(it, path, "targets", i);
		yaml_node_t *t = ld_seq_map(s, ts, i, it);
		if (!t)
			continue;
		struct ig_rewrite_target *tg = &r->targets[r->ntargets];
		int tline;
		ld_fields(s, t, it, fields, NULL);
		tg->model = ld_str(s, t, it, "modelRewrite", true, &tline);
		if (ld_get(s, t, "weight", &tline)) {
			tg->has_weight = true;
			with++;
			ld_int_range(s, t, it, "weight", false, 1, 1000000, &tg->weight);
		}
		if (tg->model)
			r->ntargets++;
	}
	/* The API's documentation asks for all weights or none, but the CRD
	 * does not check it; GIE then gives unset weights 0. */
	if (with && with != ld_seq_len(ts))
		ld_warn(s, line, path, "targets",
			"weight is set on some targets and not others: GIE gives the unset ones "
			"weight 0, so they get no traffic");
}

void ld_model_rewrite(struct session *s, yaml_node_t *root, const char *api)
{
	static const char *const top[] = {"spec", NULL};
	static const char *const fields[] = {"poolRef", "rules", NULL};
	static const char *const rule_fields[] = {"matches", "targets", NULL};
	struct ig_model_rewrite w = {0};
	char it[LD_PATH];
	int line;
	ld_top_fields(s, root, top);
	ld_meta(s, root, api, "InferenceModelRewrite", &w.meta, false);
	yaml_node_t *spec = ld_map(s, root, "", "spec", true, &line);
	yaml_node_t *rules = NULL;
	if (spec) {
		ld_fields(s, spec, "spec", fields, NULL);
		decode_pool_ref(s, spec, &w.meta, NULL, &w.pool_name, &w.pool_group, &w.pool_kind);
		rules = ld_seq(s, spec, "spec", "rules", true, &line);
	}
	if (rules)
		w.rules = ld_alloc(s, (ld_seq_len(rules) + 1) * sizeof(*w.rules));
	for (size_t i = 0; rules && i < ld_seq_len(rules); i++) {
		ld_item(it, "spec", "rules", i);
		yaml_node_t *r = ld_seq_map(s, rules, i, it);
		if (!r)
			continue;
		struct ig_rewrite_rule *rule = &w.rules[w.nrules++];
		ld_fields(s, r, it, rule_fields, NULL);
		decode_rewrite_matches(s, r, it, rule);
		decode_rewrite_targets(s, r, it, rule);
		if (!ld_get(s, r, "targets", &line))
			ld_warn(s, ig_yaml_line(r), it, NULL,
				"a rule without targets rewrites nothing: matching models pass "
				"through unchanged (GIE would send an empty model)");
	}
	*LD_APPEND(s, K_REWRITE, rewrites) = w;
}

/* ---- InferencePoolImport ---------------------------------------------------------- */

void ld_pool_import(struct session *s, yaml_node_t *root, const char *api)
{
	struct ig_pool_import p = {0};
	ld_top_fields(s, root, NULL);
	ld_meta(s, root, api, "InferencePoolImport", &p.meta, false);
	ld_warn(s, p.meta.line, NULL, NULL,
		"InferencePoolImport \"%s/%s\" is accepted but not routed: it stands for a pool "
		"exported by other clusters, which infergate (one cluster's gateway) cannot reach",
		p.meta.ns, p.meta.name ? p.meta.name : "");
	*LD_APPEND(s, K_IMPORT, imports) = p;
}
