/* Fuzzes manifest loading: arbitrary bytes through libyaml, the kind
 * decoders and the cross-object checks, then the queries the gateway
 * makes of a loaded config (pool membership, model mode, rewrites and
 * objectives, Service endpoints, namespace selectors, ReferenceGrants,
 * Gateway addresses);
 * everything is freed again so that leaks show up too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "gateway/addresses.h"

static void query_pools(const struct ig_config *cfg)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct ig_pool *p = &cfg->pools[i];
		for (size_t j = 0; j < cfg->npods; j++)
			(void)ig_pool_selects(p, &cfg->pods[j]);
		(void)ig_pool_model_mode(cfg, p);
		for (size_t m = 0; m < cfg->nmodels; m++) {
			const char *name = cfg->models[m].model_name;
			if (name)
				(void)ig_config_find_model(cfg, p, name, strlen(name));
		}
		for (size_t o = 0; o < cfg->nobjectives; o++) {
			const char *name = cfg->objectives[o].meta.name;
			if (name)
				(void)ig_config_find_objective_for_pool(cfg, p, name, strlen(name));
		}
		for (size_t w = 0; w < cfg->nrewrites; w++)
			for (size_t r = 0; r < cfg->rewrites[w].nrules; r++) {
				const struct ig_rewrite_rule *rule = &cfg->rewrites[w].rules[r];
				const char *model = rule->nmodels ? rule->models[0] : "any";
				const struct ig_rewrite_rule *got =
				    ig_config_find_rewrite(cfg, p, model, strlen(model), NULL);
				(void)ig_rewrite_choose(got, r * 7919u);
			}
	}
}

static void query_services(const struct ig_config *cfg)
{
	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct ig_service *s = &cfg->services[i];
		for (size_t p = 0; p < s->nports; p++) {
			struct ig_service_addr *a = NULL;
			size_t n = 0;
			if (ig_config_service_endpoints(cfg, s, s->ports[p].port, &a, &n, NULL) ==
			    0)
				free(a);
		}
	}
}

static void query_listeners(const struct ig_config *cfg)
{
	for (size_t g = 0; g < cfg->ngateways; g++)
		for (size_t l = 0; l < cfg->gateways[g].nlisteners; l++) {
			const struct ig_listener *li = &cfg->gateways[g].listeners[l];
			for (size_t r = 0; r < cfg->nroutes; r++) {
				const char *ns = cfg->routes[r].meta.ns;
				(void)ig_config_namespace_selected(cfg, ns, &li->allowed.selector);
				(void)ig_config_reference_allowed(cfg, "gateway.networking.k8s.io",
								  "HTTPRoute", ns, "", "Service",
								  cfg->gateways[g].meta.ns, "x");
			}
		}
}

/* Body-based routing's base models: every adapter and base model a
 * ConfigMap names is known, by the index and by the scan alike. */
static void query_base_models(struct ig_config *cfg)
{
	for (size_t i = 0; i < cfg->nconfigmaps; i++) {
		const struct ig_configmap *cm = &cfg->configmaps[i];
		for (size_t a = 0; cm->bbr_base && a <= cm->nbbr_adapters; a++) {
			const char *m = a < cm->nbbr_adapters ? cm->bbr_adapters[a] : cm->bbr_base;
			const char *by_index = ig_config_base_model(cfg, m, strlen(m));
			struct ig_config_index *x = cfg->index;
			cfg->index = NULL;
			const char *by_scan = ig_config_base_model(cfg, m, strlen(m));
			cfg->index = x;
			if (!by_index || !by_scan || strcmp(by_index, by_scan))
				abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_config *cfg = NULL;
	struct ig_diags diags = {0};
	if (ig_config_load_text("fuzz.yaml", (const char *)data, size, &cfg, &diags) == 0) {
		query_pools(cfg);
		query_services(cfg);
		query_listeners(cfg);
		query_base_models(cfg);
		/* spec.addresses against a wildcard and a specific --bind (a
		 * bind() per address: no packet leaves). */
		ig_log_level = IG_LOG_ERROR;
		ig_gateway_addresses_check(cfg, "0.0.0.0");
		ig_gateway_addresses_check(cfg, "127.0.0.1");
		ig_config_free(cfg);
	}
	ig_diags_free(&diags);
	return 0;
}
