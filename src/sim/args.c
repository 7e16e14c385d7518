/* The simulator's command line. It takes vLLM's flag names so that the args
 * of a vLLM Deployment can be handed over unchanged: our own flags are
 * parsed, common vLLM flags we do not model are accepted with a warning,
 * and anything else is an error that names the flag. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/flags.h"
#include "core/log.h"
#include "json/json.h"
#include "sim/sim.h"

/* Measured setups (docs/SIMULATOR.md gives the sources and the arithmetic):
 * the seed's vLLM 0.8 on ~12 CPU cores serving Qwen2.5-1.5B (V0 engine, no
 * chunked prefill, so the budget is the whole context), and vLLM on one
 * H100 80GB serving Llama-3.1-8B in BF16. */
static const struct ig_sim_profile profiles[] = {
    {.name = "qwen2.5-1.5b-cpu",
     .ttft_ms = 70,
     .prefill_us_per_token = 3000,
     .itl_ms = 70,
     .decode_us_per_seq = 8000,
     .lora_load_ms = 200,
     .max_num_seqs = 256,
     .max_num_batched_tokens = 32768,
     .num_gpu_blocks = 9362},
    {.name = "llama3.1-8b-h100",
     .ttft_ms = 20,
     .prefill_us_per_token = 30,
     .itl_ms = 7,
     .decode_us_per_seq = 70,
     .lora_load_ms = 10,
     .max_num_seqs = 256,
     .max_num_batched_tokens = 8192,
     .num_gpu_blocks = 27000},
};

const struct ig_sim_profile *ig_sim_find_profile(const char *name)
{
	for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

static const struct ig_sim_failure_info failures[IG_SIM_FAIL_N] = {
    [IG_SIM_FAIL_RATE_LIMIT] = {"rate_limit", 429, "RateLimitError"},
    [IG_SIM_FAIL_INVALID_API_KEY] = {"invalid_api_key", 401, "AuthenticationError"},
    [IG_SIM_FAIL_CONTEXT_LENGTH] = {"context_length", 400, "BadRequestError"},
    [IG_SIM_FAIL_SERVER_ERROR] = {"server_error", 500, "InternalServerError"},
    [IG_SIM_FAIL_INVALID_REQUEST] = {"invalid_request", 400, "BadRequestError"},
    [IG_SIM_FAIL_MODEL_NOT_FOUND] = {"model_not_found", 404, "NotFoundError"},
};

const struct ig_sim_failure_info *ig_sim_failure_info(enum ig_sim_failure f)
{
	return &failures[f];
}

const char *ig_sim_error_type(int status)
{
	switch (status) {
	case 400:
		return "BadRequestError";
	case 401:
		return "AuthenticationError";
	case 403:
		return "PermissionDeniedError";
	case 404:
		return "NotFoundError";
	case 408:
		return "TimeoutError";
	case 409:
		return "ConflictError";
	case 422:
		return "UnprocessableEntityError";
	case 429:
		return "RateLimitError";
	case 503:
		return "ServiceUnavailableError";
	}
	return status >= 500 ? "InternalServerError" : "BadRequestError";
}

/* vLLM flags found in real manifests that change nothing we simulate. */
static const char *const vllm_value_flags[] = {
    "dtype",
    "gpu-memory-utilization",
    "tensor-parallel-size",
    "pipeline-parallel-size",
    "data-parallel-size",
    "max-cpu-loras",
    "max-lora-rank",
    "lora-extra-vocab-size",
    "lora-dtype",
    "long-lora-scaling-factors",
    "download-dir",
    "load-format",
    "kv-cache-dtype",
    "swap-space",
    "cpu-offload-gb",
    "tokenizer",
    "tokenizer-mode",
    "revision",
    "code-revision",
    "tokenizer-revision",
    "chat-template",
    "chat-template-content-format",
    "quantization",
    "uvicorn-log-level",
    "generation-config",
    "distributed-executor-backend",
    "response-role",
    "ssl-keyfile",
    "ssl-certfile",
    "root-path",
    "reasoning-parser",
    "config-format",
    "max-seq-len-to-capture",
    "device",
    "compilation-config",
    "override-generation-config",
    "hf-overrides",
    "guided-decoding-backend",
    "num-scheduler-steps",
    "speculative-config",
    "task",
    "limit-mm-per-prompt",
    "mm-processor-kwargs",
    "max-parallel-loading-workers",
    "preemption-mode",
    "worker-cls",
    "kv-transfer-config",
    "tool-parser-plugin",
    "api-server-count",
    "hf-token",
    "otlp-traces-endpoint",
    "max-num-partial-prefills",
    "prefix-caching-hash-algo",
    "served-model-name-suffix",
    "max-log-len",
    "middleware",
    "lora-cpu-cache-size",
};

static const char *const vllm_bool_flags[] = {
    "trust-remote-code",
    "enforce-eager",
    "disable-log-requests",
    "disable-log-stats",
    "enable-chunked-prefill",
    "no-enable-chunked-prefill",
    "fully-sharded-loras",
    "disable-custom-all-reduce",
    "disable-frontend-multiprocessing",
    "disable-fastapi-docs",
    "disable-sliding-window",
    "skip-tokenizer-init",
    "return-tokens-as-token-ids",
    "enable-request-id-headers",
    "enable-sleep-mode",
    "enable-reasoning",
    "disable-async-output-proc",
    "use-v2-block-manager",
    "enable-log-requests",
    "disable-uvicorn-access-log",
    "enable-lora-bias",
};

void ig_sim_config_init(struct ig_sim_config *c)
{
	memset(c, 0, sizeof *c);
	c->model = "Qwen/Qwen2.5-1.5B-Instruct";
	c->host = "0.0.0.0";
	c->port = 8000;
	c->max_loras = 1;
	c->max_num_seqs = 256;
	c->max_model_len = 32768;
	c->ttft_ms = 10;
	c->prefill_us_per_token = 20;
	c->itl_ms = 2;
	c->decode_us_per_seq = 10;
	c->lora_load_ms = 20;
	c->max_num_batched_tokens = 8192;
	c->time_scale = 1;
	c->num_gpu_blocks = 9362;
	c->block_size = 16;
	c->enable_prefix_caching = true;
	c->max_logprobs = 20;
	c->version = IG_SIM_V_LATEST;
	c->embedding_dim = 64;
}

static void adapter_free(struct ig_sim_adapter *a)
{
	free(a->name);
	free(a->path);
	free(a->base);
	memset(a, 0, sizeof *a);
}

void ig_sim_fixed_clear(struct ig_sim_fixed *f)
{
	free(f->lora_running);
	free(f->lora_waiting);
	memset(f, 0, sizeof *f);
}

static void cors_list_free(struct ig_sim_cors_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct ig_sim_cors_list){0};
}

/* --allowed-origins and the like: a JSON list of strings, as vLLM reads
 * them with json.loads. */
static int set_cors_list(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct ig_sim_cors_list *l = f->dst;
	struct ig_json_value list, e;
	size_t pos = 0, n = 0;
	if (ig_json_parse(v, strlen(v), &list) < 0 || list.type != IG_JSON_ARRAY)
		return ig_flags_invalid(fl, v, "a JSON list of strings, e.g. '[\"*\"]'");
	while (ig_json_array_next(list, &pos, &e) == 1)
		if (e.type != IG_JSON_STRING || n++ > 1024)
			return ig_flags_invalid(fl, v, "a JSON list of strings, e.g. '[\"*\"]'");
	cors_list_free(l);
	l->v = calloc(n ? n : 1, sizeof *l->v);
	if (!l->v)
		return ig_flags_invalid(fl, v, "a shorter list (out of memory)");
	l->given = true;
	pos = 0;
	while (ig_json_array_next(list, &pos, &e) == 1) {
		struct ig_buf b = {0};
		if (ig_json_string(e, &b) < 0 || !ig_buf_cstr(&b)) {
			ig_buf_free(&b);
			return ig_flags_invalid(fl, v, "a shorter list (out of memory)");
		}
		l->v[l->n++] = b.ptr;
	}
	return IG_OK;
}

void ig_sim_config_free(struct ig_sim_config *c)
{
	cors_list_free(&c->allowed_origins);
	cors_list_free(&c->allowed_methods);
	cors_list_free(&c->allowed_headers);
	for (size_t i = 0; i < c->nadapters; i++)
		adapter_free(&c->adapters[i]);
	free(c->adapters);
	ig_flag_list_free(&c->served);
	ig_sim_fixed_clear(&c->fixed);
	memset(c, 0, sizeof *c);
}

const char *ig_sim_label_name(const struct ig_sim_config *c)
{
	return c->served.n ? c->served.v[0] : c->model;
}

bool ig_sim_is_base_name(const struct ig_sim_config *c, struct ig_str name)
{
	if (!c->served.n)
		return ig_str_eq_cstr(name, c->model);
	for (size_t i = 0; i < c->served.n; i++)
		if (ig_str_eq_cstr(name, c->served.v[i]))
			return true;
	return false;
}

int ig_sim_find_adapter(const struct ig_sim_config *c, struct ig_str name)
{
	for (size_t i = 0; i < c->nadapters; i++)
		if (ig_str_eq_cstr(name, c->adapters[i].name))
			return (int)i;
	return -1;
}

int ig_sim_add_adapter(struct ig_sim_config *c, struct ig_str name, struct ig_str path,
		       struct ig_str base)
{
	if (ig_sim_find_adapter(c, name) >= 0)
		return -EEXIST;
	if (c->nadapters == c->adapters_cap) {
		size_t cap = c->adapters_cap ? c->adapters_cap * 2 : 4;
		struct ig_sim_adapter *a = realloc(c->adapters, cap * sizeof *a);
		if (!a)
			return -ENOMEM;
		c->adapters = a;
		c->adapters_cap = cap;
	}
	struct ig_sim_adapter *a = &c->adapters[c->nadapters];
	a->name = ig_str_dup(name);
	a->path = ig_str_dup(path);
	a->base = base.ptr ? ig_str_dup(base) : NULL;
	if (!a->name || !a->path || (base.ptr && !a->base)) {
		adapter_free(a);
		return -ENOMEM;
	}
	c->nadapters++;
	return 0;
}

int ig_sim_remove_adapter(struct ig_sim_config *c, struct ig_str name)
{
	int i = ig_sim_find_adapter(c, name);
	if (i < 0)
		return -ENOENT;
	adapter_free(&c->adapters[i]);
	memmove(&c->adapters[i], &c->adapters[i + 1],
		(c->nadapters - (size_t)i - 1) * sizeof c->adapters[0]);
	c->nadapters--;
	return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int json_member_str(struct ig_json_value obj, const char *key, struct ig_buf *out,
			   bool required)
{
	struct ig_json_value v;
	if (ig_json_get(obj, key, &v) < 0 || v.type == IG_JSON_NULL)
		return required ? -1 : 1;
	if (v.type != IG_JSON_STRING || ig_json_string(v, out) < 0 || !ig_buf_cstr(out))
		return -1;
	return 0;
}

static int lora_from_json(const char *s, struct ig_sim_adapter *out)
{
	struct ig_json_value root;
	struct ig_buf name = {0}, path = {0}, base = {0};
	int rc = -1;
	if (ig_json_parse(s, strlen(s), &root) < 0 || root.type != IG_JSON_OBJECT)
		goto done;
	if (json_member_str(root, "name", &name, true) < 0 ||
	    json_member_str(root, "path", &path, true) < 0)
		goto done;
	int b = json_member_str(root, "base_model_name", &base, false);
	if (b < 0)
		goto done;
	out->name = strdup(name.ptr);
	out->path = strdup(path.ptr);
	out->base = b == 0 ? strdup(base.ptr) : NULL;
	rc = (out->name && out->path && (b != 0 || out->base)) ? 0 : -1;
	if (rc < 0)
		adapter_free(out);
done:
	ig_buf_free(&name);
	ig_buf_free(&path);
	ig_buf_free(&base);
	return rc;
}

int ig_sim_parse_lora_module(const char *s, struct ig_sim_adapter *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	const char *eq = strchr(s, '=');
	/* vLLM's rule: `name=path` when there is a '=' and no ',', else JSON. */
	if (eq && !strchr(s, ',')) {
		if (eq == s || !eq[1])
			return fail(err, errlen, "--lora-modules: '%s' is not name=path", s);
		out->name = strndup(s, (size_t)(eq - s));
		out->path = strdup(eq + 1);
		if (!out->name || !out->path) {
			adapter_free(out);
			return fail(err, errlen, "out of memory");
		}
		return 0;
	}
	if (lora_from_json(s, out) < 0)
		return fail(err, errlen,
			    "--lora-modules: '%s' is neither name=path nor a JSON object with "
			    "string \"name\" and \"path\"",
			    s);
	if (!out->name[0]) {
		adapter_free(out);
		return fail(err, errlen, "--lora-modules: '%s' has an empty name", s);
	}
	return 0;
}

/* ---- the command line ---- */

static int set_string(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	char **dst = f->dst;
	free(*dst);
	*dst = strdup(v);
	return *dst ? IG_OK : ig_flags_error(fl, "out of memory");
}

/* One item of --lora-modules (the flag takes one or more). */
static int add_lora_module(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct ig_sim_config *c = f->dst;
	struct ig_sim_adapter a;
	if (ig_sim_parse_lora_module(v, &a, fl->err, sizeof fl->err) < 0)
		return IG_ERROR;
	struct ig_str base = a.base ? ig_str_from(a.base) : (struct ig_str){NULL, 0};
	int rc = ig_sim_add_adapter(c, ig_str_from(a.name), ig_str_from(a.path), base);
	if (rc < 0)
		ig_flags_error(fl, "--lora-modules: %s '%s'",
			       rc == -EEXIST ? "duplicate adapter" : "cannot add", a.name);
	adapter_free(&a);
	return rc < 0 ? IG_ERROR : IG_OK;
}

static int failure_type(const char *name, size_t len)
{
	for (int i = 0; i < IG_SIM_FAIL_N; i++)
		if (strlen(failures[i].name) == len && memcmp(failures[i].name, name, len) == 0)
			return i;
	return -1;
}

/* One word of --failure-types: a name or comma-joined names, like the peer
 * simulator's. Every word of every --failure-types counts. */
static int add_failure_types(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	unsigned *types = f->dst;
	while (*v) {
		size_t len = strcspn(v, ",");
		int t = failure_type(v, len);
		if (len && t < 0)
			return ig_flags_error(fl,
					      "--failure-types: unknown '%.*s' (rate_limit, "
					      "invalid_api_key, context_length, server_error, "
					      "invalid_request, model_not_found)",
					      (int)len, v);
		if (len)
			*types |= 1u << t;
		v += len + (v[len] == ',');
	}
	return IG_OK;
}

static int set_version(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	enum ig_sim_version *version = f->dst;
	const char *num = v[0] == 'v' ? v + 1 : v;
	if (strcmp(num, "latest") == 0)
		*version = IG_SIM_V_LATEST;
	else if (strcmp(num, "0.8") == 0 || strncmp(num, "0.8.", 4) == 0)
		*version = IG_SIM_V_0_8;
	else
		return ig_flags_invalid(fl, v, "0.8 or latest");
	return IG_OK;
}

static int set_profile(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	if (!ig_sim_find_profile(v))
		return ig_flags_invalid(fl, v, "qwen2.5-1.5b-cpu or llama3.1-8b-h100");
	*(const char **)f->dst = v;
	return IG_OK;
}

/* vLLM's --scheduling-policy choices. */
static int set_policy(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	if (strcmp(v, "fcfs") != 0 && strcmp(v, "priority") != 0)
		return ig_flags_invalid(fl, v, "fcfs or priority");
	*(bool *)f->dst = strcmp(v, "priority") == 0;
	return IG_OK;
}

/* `vllm serve MODEL`: one positional argument names the model. */
struct positional {
	struct ig_sim_config *c;
	bool seen;
};

static int set_model_arg(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct positional *p = fl->ud;
	if (p->seen)
		return IG_DECLINED;
	p->seen = true;
	p->c->model = v;
	return IG_OK;
}

static bool in_list(const char *const *list, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && memcmp(list[i], name, len) == 0)
			return true;
	return false;
}

static int ignore_vllm_flag(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	ig_warn("sim: ignoring vLLM flag %s (not simulated)", fl->flag);
	return IG_OK;
}

static const struct ig_flag vllm_value_flag =
    IG_FLAG_FN("vllm-flag", 0, ignore_vllm_flag, NULL, "VALUE", NULL);
static const struct ig_flag vllm_switch =
    IG_FLAG_FN("vllm-flag", 0, ignore_vllm_flag, NULL, NULL, NULL);

/* Flags outside the table: vLLM's that we accept and ignore. */
static const struct ig_flag *vllm_flag(struct ig_flags *fl, const char *name, size_t len)
{
	if (in_list(vllm_value_flags, sizeof vllm_value_flags / sizeof vllm_value_flags[0], name,
		    len))
		return &vllm_value_flag;
	if (in_list(vllm_bool_flags, sizeof vllm_bool_flags / sizeof vllm_bool_flags[0], name, len))
		return &vllm_switch;
	return NULL;
}

/* A profile fills in what the command line left unset, wherever on the
 * line --profile came. */
static void apply_profile(struct ig_sim_config *c, const struct ig_sim_profile *p,
			  const struct ig_flags *fl)
{
	if (!ig_flags_given(fl, &c->ttft_ms))
		c->ttft_ms = p->ttft_ms;
	if (!ig_flags_given(fl, &c->prefill_us_per_token))
		c->prefill_us_per_token = p->prefill_us_per_token;
	if (!ig_flags_given(fl, &c->itl_ms))
		c->itl_ms = p->itl_ms;
	if (!ig_flags_given(fl, &c->decode_us_per_seq))
		c->decode_us_per_seq = p->decode_us_per_seq;
	if (!ig_flags_given(fl, &c->lora_load_ms))
		c->lora_load_ms = p->lora_load_ms;
	if (!ig_flags_given(fl, &c->max_num_seqs))
		c->max_num_seqs = p->max_num_seqs;
	if (!ig_flags_given(fl, &c->max_num_batched_tokens))
		c->max_num_batched_tokens = p->max_num_batched_tokens;
	if (!ig_flags_given(fl, &c->num_gpu_blocks))
		c->num_gpu_blocks = p->num_gpu_blocks;
}

/* What depends on more than one flag. */
static int finish(struct ig_sim_config *c, struct ig_flags *fl)
{
	c->fixed.has_waiting |= ig_flags_given(fl, &c->fixed.waiting);
	c->fixed.has_running |= ig_flags_given(fl, &c->fixed.running);
	c->fixed.has_kv |= ig_flags_given(fl, &c->fixed.kv);
	c->has_seed |= ig_flags_given(fl, &c->seed);
	if (c->time_scale <= 0)
		return ig_flags_error(fl, "--time-scale: must be above 0");
	if (c->profile)
		apply_profile(c, ig_sim_find_profile(c->profile), fl);
	/* 0.8 imitates the seed's V0 engine, whose prefix caching is off
	 * unless asked for (V1 turned it on by default). */
	if (c->version == IG_SIM_V_0_8 && !ig_flags_given(fl, &c->enable_prefix_caching))
		c->enable_prefix_caching = false;
	if (c->nadapters && !c->enable_lora)
		ig_warn("sim: --lora-modules given without --enable-lora; serving them anyway");
	return IG_OK;
}

static const char usage_text[] =
    "usage: infergate sim [MODEL] [OPTIONS]\n"
    "\n"
    "A vLLM-compatible model server that generates text without a model.\n"
    "\n";

static const char footer_text[] =
    "Other common vLLM flags are accepted and ignored with a warning.\n"
    "POST /sim/state {\"waiting\":N,\"running\":N,\"kv_usage\":F,\"lora_running\":[..],"
    "\"lora_waiting\":[..]}\n"
    "sets the same overrides at run time; DELETE /sim/state clears them.\n"
    "A request header x-sim-force-status: CODE answers with that error status.\n";

int ig_sim_parse_args(struct ig_sim_config *c, int argc, char **argv, char *err, size_t errlen)
{
	struct ig_sim_fixed *fx = &c->fixed;
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("vLLM options:"),
	    IG_FLAG_STR("model", 0, &c->model, "NAME",
			"base model (default Qwen/Qwen2.5-1.5B-Instruct); also the\n"
			"one positional argument, as in `vllm serve MODEL`"),
	    IG_FLAG_LIST_GREEDY("served-model-name", 0, &c->served, "NAME...",
				"names the base model answers to"),
	    IG_FLAG_STR("host", 0, &c->host, "ADDR", "listen address (default 0.0.0.0)"),
	    IG_FLAG_UINT("port", 0, &c->port, 0, 65535, "N", "listen port (default 8000)"),
	    IG_FLAG_BOOL("enable-lora", 0, &c->enable_lora, "serve LoRA adapters"),
	    IG_FLAG_UINT("max-loras", 0, &c->max_loras, 1, 1024, "N",
			 "adapters in one batch (default 1)"),
	    IG_FLAG_FN_GREEDY("lora-modules", 0, add_lora_module, c, "ITEM...",
			      "name=path or {\"name\":..,\"path\":..,\"base_model_name\":..}"),
	    IG_FLAG_UINT("max-num-seqs", 0, &c->max_num_seqs, 1, 1000000, "N",
			 "running batch size (default 256)"),
	    IG_FLAG_UINT("max-model-len", 0, &c->max_model_len, 1, 100000000, "N",
			 "context length (default 32768)"),
	    IG_FLAG_UINT("block-size", 0, &c->block_size, 1, 1 << 20, "N",
			 "KV block size in tokens (default 16)"),
	    IG_FLAG_UINT("num-gpu-blocks", 0, &c->num_gpu_blocks, 1, 1000000000, "N",
			 "KV cache blocks (default 9362)"),
	    IG_FLAG_UINT("num-gpu-blocks-override", 0, &c->num_gpu_blocks, 1, 1000000000, "N",
			 "the same, by vLLM's name"),
	    IG_FLAG_UINT("max-num-batched-tokens", 0, &c->max_num_batched_tokens, 1, 100000000, "N",
			 "token budget of one engine step (default 8192)"),
	    IG_FLAG_BOOL("enable-prefix-caching", 0, &c->enable_prefix_caching,
			 "reuse cached prompt blocks (the default, but with\n"
			 "--vllm-version 0.8, whose V0 engine had it off)"),
	    IG_FLAG_BOOL_OFF("no-enable-prefix-caching", 0, &c->enable_prefix_caching,
			     "compute every prompt block"),
	    IG_FLAG_UINT("max-logprobs", 0, &c->max_logprobs, 0, 1000000, "N",
			 "the most logprobs a request may ask for per token (default 20)"),
	    IG_FLAG_BOOL("enable-prompt-tokens-details", 0, &c->prompt_tokens_details,
			 "usage.prompt_tokens_details.cached_tokens on a prefix-cache hit"),
	    IG_FLAG_BOOL("enable-force-include-usage", 0, &c->force_include_usage,
			 "end every stream with a usage chunk"),
	    IG_FLAG_BOOL("enable-request-id-headers", 0, &c->request_id_headers,
			 "answer with X-Request-Id: the request's, else a new one"),
	    IG_FLAG_FN("allowed-origins", 0, set_cors_list, &c->allowed_origins, "JSON",
		       "CORS: origins answered, a JSON list (default [\"*\"])"),
	    IG_FLAG_FN("allowed-methods", 0, set_cors_list, &c->allowed_methods, "JSON",
		       "CORS: methods a preflight allows (default [\"*\"])"),
	    IG_FLAG_FN("allowed-headers", 0, set_cors_list, &c->allowed_headers, "JSON",
		       "CORS: headers a preflight allows (default [\"*\"])"),
	    IG_FLAG_BOOL("allow-credentials", 0, &c->allow_credentials,
			 "CORS: Access-Control-Allow-Credentials: true"),
	    IG_FLAG_STR("api-key", 0, &c->api_key, "KEY",
			"requests to /v1/... need Authorization: Bearer KEY (else 401)"),
	    IG_FLAG_BOOL("enable-auto-tool-choice", 0, &c->auto_tool_choice,
			 "tool_choice \"auto\" (with --tool-call-parser): a chat whose last\n"
			 "message is the user's calls one of its tools"),
	    IG_FLAG_STR("tool-call-parser", 0, &c->tool_call_parser, "NAME",
			"taken as vLLM takes it (hermes, llama3_json, ...); the simulator\n"
			"answers tool calls in the API's fields whatever the parser"),
	    IG_FLAG_FN("scheduling-policy", 0, set_policy, &c->priority_policy, "fcfs|priority",
		       "priority: requests' `priority` orders the waiting queue (lower\n"
		       "first); fcfs (the default) refuses a priority other than 0"),
	    IG_FLAG_BOOL("enable-server-load-tracking", 0, &c->server_load_tracking,
			 "count the requests in progress for GET /load"),
	    IG_FLAG_UINT("seed", 0, &c->seed, 0, LONG_MAX, "N", "makes sampled text reproducible"),
	    IG_FLAG_SECTION("simulation:"),
	    IG_FLAG_FN("profile", 0, set_profile, &c->profile, "NAME",
		       "step costs and capacities of a measured setup:\n"
		       "qwen2.5-1.5b-cpu, llama3.1-8b-h100 (flags win)"),
	    IG_FLAG_DOUBLE("ttft-ms", 0, &c->ttft_ms, 0, 3600e3, "MS",
			   "fixed cost of a step with prefill (default 10)"),
	    IG_FLAG_DOUBLE("prefill-us-per-token", 0, &c->prefill_us_per_token, 0, 1e6, "US",
			   "prefill cost per uncached token (default 20)"),
	    IG_FLAG_DOUBLE("itl-ms", 0, &c->itl_ms, 0, 3600e3, "MS",
			   "decode step time at batch 1 (default 2)"),
	    IG_FLAG_DOUBLE("decode-us-per-seq", 0, &c->decode_us_per_seq, 0, 1e6, "US",
			   "extra decode step time per request (default 10)"),
	    IG_FLAG_DOUBLE("lora-load-ms", 0, &c->lora_load_ms, 0, 3600e3, "MS",
			   "loading a non-resident adapter (default 20)"),
	    IG_FLAG_DOUBLE("time-scale", 0, &c->time_scale, 0, 1e6, "F",
			   "run F times faster than real time (default 1)"),
	    IG_FLAG_DOUBLE("failure-injection-rate", 0, &c->failure_rate, 0, 100, "PCT",
			   "fail this share of requests to the model APIs"),
	    IG_FLAG_FN_GREEDY("failure-types", 0, add_failure_types, &c->failure_types, "T...",
			      "rate_limit invalid_api_key context_length\n"
			      "server_error invalid_request model_not_found\n"
			      "(default: all)"),
	    IG_FLAG_UINT("embedding-dim", 0, &c->embedding_dim, 1, 65536, "N",
			 "length of the vectors /v1/embeddings returns (default 64)"),
	    IG_FLAG_FN("vllm-version", 0, set_version, &c->version, "0.8|latest",
		       "error shape and metric names (default latest)"),
	    IG_FLAG_UINT("fixed-waiting", 0, &fx->waiting, 0, 1000000000, "N",
			 "what /metrics reports as waiting, whatever the load"),
	    IG_FLAG_UINT("fixed-running", 0, &fx->running, 0, 1000000000, "N",
			 "the same for running"),
	    IG_FLAG_DOUBLE("fixed-kv-usage", 0, &fx->kv, 0, 1, "F", "the same for KV cache usage"),
	    IG_FLAG_FN("fixed-lora-running", 0, set_string, &fx->lora_running, "a,b",
		       "the same for running adapters"),
	    IG_FLAG_FN("fixed-lora-waiting", 0, set_string, &fx->lora_waiting, "a,b",
		       "the same for waiting adapters"),
	    IG_FLAG_END,
	};
	struct positional pos = {.c = c};
	struct ig_flags fl = {
	    .prog = "infergate sim",
	    .usage = usage_text,
	    .footer = footer_text,
	    .table = table,
	    .positional = set_model_arg,
	    .fallback = vllm_flag,
	    .ud = &pos,
	};
	int rc = ig_flags_parse(&fl, argc, argv);
	if (rc == IG_DONE)
		return 1;
	if (rc == IG_OK)
		rc = finish(c, &fl);
	if (rc != IG_OK) {
		snprintf(err, errlen, "%s", fl.err);
		return -1;
	}
	return 0;
}
