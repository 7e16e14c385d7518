/* What `demo` and `run` will start, worked out from a loaded config before
 * any process exists: one simulator per replica of every model-server
 * Deployment that an InferencePool selects, the Pods that register them,
 * and the listener the seed request goes to. Pure functions, so that the
 * orchestration can be tested without starting anything. */
#ifndef IG_DEMO_PLAN_H
#define IG_DEMO_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"

struct ig_demo_sim {
	char name[96]; /* "<deployment>-<i>" */
	char ip[16];   /* dotted quad, filled by ig_demo_assign_addrs */
	int port;      /* the pool's target port */
	const struct ig_deployment *dep;
	const struct ig_container *ctr; /* the one running the model server */
};

struct ig_demo_plan {
	struct ig_demo_sim *sims;
	size_t nsims;
};

/* Builds the list of simulators. replicas > 0 overrides every
 * Deployment's count. Returns 0, or -1 with a message in err (e.g. a
 * Deployment without containers). */
int ig_demo_plan_build(const struct ig_config *cfg, int replicas, struct ig_demo_plan *plan,
		       char *err, size_t errlen);
void ig_demo_plan_free(struct ig_demo_plan *plan);

/* Gives the sims consecutive addresses after `base` (host order), skipping
 * .0 and .255 and every ip:port for which taken() says true. -1 when the
 * addresses run out of 127.0.0.0/8. */
int ig_demo_assign_addrs(struct ig_demo_plan *plan, uint32_t base,
			 bool (*taken)(const char *ip, int port, void *ud), void *ud);

/* The value of the last `--flag VALUE` (or `--flag=VALUE`) in args, or NULL. */
const char *ig_demo_arg_value(char *const *args, size_t nargs, const char *flag);
/* Appends the names of the --lora-modules entries in args (JSON objects
 * with "name", or "name=path") to out, comma-separated. */
int ig_demo_adapter_names(char *const *args, size_t nargs, struct ig_buf *out);

/* One `v1` Pod per sim, Ready, with the template's labels and the sim's
 * address as status.podIP, as multi-document YAML. */
int ig_demo_pods_yaml(const struct ig_demo_plan *plan, struct ig_buf *out);

/* The listener the seed request goes to: the one named llm-gw, else the
 * first listener an HTTPRoute attaches to. Returns 0 with its gateway and
 * listener, -1 if there is none. */
int ig_demo_seed_listener(const struct ig_config *cfg, const struct ig_gateway **gw,
			  const struct ig_listener **l);
/* The model the seed request asks for: "tweet-summary" when the config
 * serves it (or has no InferenceModel at all), else the first accepted
 * InferenceModel's modelName. A config without InferenceModels (GIE v1)
 * looks in the same way at InferenceModelRewrite matches, then at the
 * first Exact X-Gateway-Model-Name header match of an HTTPRoute. */
const char *ig_demo_seed_model(const struct ig_config *cfg);
/* The other models body-based routing names: the values of Exact
 * X-Gateway-Model-Name header matches, once each, without `seed`; at most
 * max into out (pointers into cfg). Returns how many. */
size_t ig_demo_tour_models(const struct ig_config *cfg, const char *seed, const char **out,
			   size_t max);
/* The first HTTPS listener an HTTPRoute attaches to: 0 with it, or -1. */
int ig_demo_https_listener(const struct ig_config *cfg, const struct ig_gateway **gw,
			   const struct ig_listener **l);
/* The seed request body for that model. */
int ig_demo_seed_body(const char *model, struct ig_buf *out);
/* The equivalent curl command line, shell-quoted; over HTTPS trusting the
 * certificate file `cacert` when it is not NULL. */
int ig_demo_curl_line(const char *host, int port, const char *cacert, const char *body,
		      struct ig_buf *out);

#endif
