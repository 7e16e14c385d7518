/* The simulator's command line. It takes vLLM's flag names so that the args
 * of a vLLM Deployment can be handed over unchanged: our own flags are
 * parsed, common vLLM flags we do not model are accepted with a warning,
 * and anything else is an error that names the flag. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "json/json.h"
#include "sim/sim.h"

enum opt_id {
	O_MODEL,
	O_SERVED,
	O_HOST,
	O_PORT,
	O_ENABLE_LORA,
	O_MAX_LORAS,
	O_LORA_MODULES,
	O_MAX_NUM_SEQS,
	O_MAX_MODEL_LEN,
	O_TTFT,
	O_PREFILL,
	O_ITL,
	O_LORA_LOAD,
	O_GPU_BLOCKS,
	O_BLOCK_SIZE,
	O_VERSION,
	O_SEED,
	O_FIX_WAITING,
	O_FIX_RUNNING,
	O_FIX_KV,
	O_FIX_LORA_RUNNING,
	O_FIX_LORA_WAITING,
	O_BATCHED,
	O_DECODE,
	O_PREFIX,
	O_NO_PREFIX,
	O_TIME_SCALE,
	O_PROFILE,
	O_FAIL_RATE,
	O_FAIL_TYPES,
	O_N
};

/* How many values a flag takes: none, exactly one, or one or more (the
 * argparse nargs="+" of vLLM's list flags). */
enum arity { NONE, ONE, MANY };

struct opt {
	const char *name;
	enum opt_id id;
	enum arity arity;
};

static const struct opt opts[] = {
    {"model", O_MODEL, ONE},
    {"served-model-name", O_SERVED, MANY},
    {"host", O_HOST, ONE},
    {"port", O_PORT, ONE},
    {"enable-lora", O_ENABLE_LORA, NONE},
    {"max-loras", O_MAX_LORAS, ONE},
    {"lora-modules", O_LORA_MODULES, MANY},
    {"max-num-seqs", O_MAX_NUM_SEQS, ONE},
    {"max-model-len", O_MAX_MODEL_LEN, ONE},
    {"ttft-ms", O_TTFT, ONE},
    {"prefill-us-per-token", O_PREFILL, ONE},
    {"itl-ms", O_ITL, ONE},
    {"lora-load-ms", O_LORA_LOAD, ONE},
    {"num-gpu-blocks", O_GPU_BLOCKS, ONE},
    {"num-gpu-blocks-override", O_GPU_BLOCKS, ONE},
    {"block-size", O_BLOCK_SIZE, ONE},
    {"vllm-version", O_VERSION, ONE},
    {"seed", O_SEED, ONE},
    {"fixed-waiting", O_FIX_WAITING, ONE},
    {"fixed-running", O_FIX_RUNNING, ONE},
    {"fixed-kv-usage", O_FIX_KV, ONE},
    {"fixed-lora-running", O_FIX_LORA_RUNNING, ONE},
    {"fixed-lora-waiting", O_FIX_LORA_WAITING, ONE},
    {"max-num-batched-tokens", O_BATCHED, ONE},
    {"decode-us-per-seq", O_DECODE, ONE},
    {"enable-prefix-caching", O_PREFIX, NONE},
    {"no-enable-prefix-caching", O_NO_PREFIX, NONE},
    {"time-scale", O_TIME_SCALE, ONE},
    {"profile", O_PROFILE, ONE},
    {"failure-injection-rate", O_FAIL_RATE, ONE},
    {"failure-types", O_FAIL_TYPES, MANY},
};

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
    "api-key",
    "uvicorn-log-level",
    "generation-config",
    "distributed-executor-backend",
    "max-logprobs",
    "response-role",
    "ssl-keyfile",
    "ssl-certfile",
    "root-path",
    "tool-call-parser",
    "reasoning-parser",
    "config-format",
    "max-seq-len-to-capture",
    "device",
    "scheduling-policy",
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
    "allowed-origins",
    "allowed-methods",
    "allowed-headers",
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
    "enable-auto-tool-choice",
    "fully-sharded-loras",
    "disable-custom-all-reduce",
    "enable-prompt-tokens-details",
    "disable-frontend-multiprocessing",
    "enable-request-id-headers",
    "enable-server-load-tracking",
    "disable-fastapi-docs",
    "disable-sliding-window",
    "skip-tokenizer-init",
    "return-tokens-as-token-ids",
    "enable-sleep-mode",
    "enable-reasoning",
    "disable-async-output-proc",
    "use-v2-block-manager",
    "enable-force-include-usage",
    "enable-log-requests",
    "disable-uvicorn-access-log",
    "enable-lora-bias",
    "allow-credentials",
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
	c->version = IG_SIM_V_LATEST;
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

void ig_sim_config_free(struct ig_sim_config *c)
{
	for (size_t i = 0; i < c->nadapters; i++)
		adapter_free(&c->adapters[i]);
	free(c->adapters);
	free(c->served);
	ig_sim_fixed_clear(&c->fixed);
	memset(c, 0, sizeof *c);
}

const char *ig_sim_label_name(const struct ig_sim_config *c)
{
	return c->nserved ? c->served[0] : c->model;
}

bool ig_sim_is_base_name(const struct ig_sim_config *c, struct ig_str name)
{
	if (!c->nserved)
		return ig_str_eq_cstr(name, c->model);
	for (size_t i = 0; i < c->nserved; i++)
		if (ig_str_eq_cstr(name, c->served[i]))
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

static int parse_long(const char *flag, const char *v, long lo, long hi, long *out, char *err,
		      size_t errlen)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi)
		return fail(err, errlen, "--%s: '%s' is not an integer in [%ld, %ld]", flag, v, lo,
			    hi);
	*out = x;
	return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out,
			char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
		return fail(err, errlen, "--%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
	*out = x;
	return 0;
}

static int set_string(char **dst, const char *v, char *err, size_t errlen)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : fail(err, errlen, "out of memory");
}

static int add_served(struct ig_sim_config *c, char **vals, size_t n, char *err, size_t errlen)
{
	const char **s = realloc(c->served, (c->nserved + n) * sizeof *s);
	if (!s)
		return fail(err, errlen, "out of memory");
	c->served = s;
	for (size_t i = 0; i < n; i++)
		c->served[c->nserved++] = vals[i];
	return 0;
}

static int add_lora_modules(struct ig_sim_config *c, char **vals, size_t n, char *err,
			    size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		struct ig_sim_adapter a;
		if (ig_sim_parse_lora_module(vals[i], &a, err, errlen) < 0)
			return -1;
		struct ig_str base = a.base ? ig_str_from(a.base) : (struct ig_str){NULL, 0};
		int rc = ig_sim_add_adapter(c, ig_str_from(a.name), ig_str_from(a.path), base);
		if (rc < 0) {
			fail(err, errlen, "--lora-modules: %s '%s'",
			     rc == -EEXIST ? "duplicate adapter" : "cannot add", a.name);
			adapter_free(&a);
			return -1;
		}
		adapter_free(&a);
	}
	return 0;
}

static int failure_type(const char *name, size_t len)
{
	for (int i = 0; i < IG_SIM_FAIL_N; i++)
		if (strlen(failures[i].name) == len && memcmp(failures[i].name, name, len) == 0)
			return i;
	return -1;
}

/* Values as separate words or comma-joined, like the peer simulator's. */
static int set_failure_types(struct ig_sim_config *c, char **vals, size_t n, char *err,
			     size_t errlen)
{
	c->failure_types = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = vals[i];
		while (*p) {
			size_t len = strcspn(p, ",");
			int t = failure_type(p, len);
			if (len && t < 0)
				return fail(err, errlen,
					    "--failure-types: unknown '%.*s' (rate_limit, "
					    "invalid_api_key, context_length, server_error, "
					    "invalid_request, model_not_found)",
					    (int)len, p);
			if (len)
				c->failure_types |= 1u << t;
			p += len + (p[len] == ',');
		}
	}
	return 0;
}

static int set_version(struct ig_sim_config *c, const char *v, char *err, size_t errlen)
{
	if (v[0] == 'v')
		v++;
	if (strcmp(v, "latest") == 0)
		c->version = IG_SIM_V_LATEST;
	else if (strcmp(v, "0.8") == 0 || strncmp(v, "0.8.", 4) == 0)
		c->version = IG_SIM_V_0_8;
	else
		return fail(err, errlen, "--vllm-version: '%s' is not 0.8 or latest", v);
	return 0;
}

/* Applies one of our flags; vals has 1 element unless the flag is MANY. */
static int apply(struct ig_sim_config *c, const struct opt *o, char **vals, size_t n, char *err,
		 size_t errlen)
{
	const char *v = n ? vals[0] : NULL;
	const char *f = o->name;
	long l;
	switch (o->id) {
	case O_MODEL:
		c->model = v;
		return 0;
	case O_SERVED:
		return add_served(c, vals, n, err, errlen);
	case O_HOST:
		c->host = v;
		return 0;
	case O_PORT:
		if (parse_long(f, v, 0, 65535, &l, err, errlen) < 0)
			return -1;
		c->port = (int)l;
		return 0;
	case O_ENABLE_LORA:
		c->enable_lora = true;
		return 0;
	case O_MAX_LORAS:
		return parse_long(f, v, 1, 1024, &c->max_loras, err, errlen);
	case O_LORA_MODULES:
		return add_lora_modules(c, vals, n, err, errlen);
	case O_MAX_NUM_SEQS:
		return parse_long(f, v, 1, 1000000, &c->max_num_seqs, err, errlen);
	case O_MAX_MODEL_LEN:
		return parse_long(f, v, 1, 100000000, &c->max_model_len, err, errlen);
	case O_TTFT:
		return parse_double(f, v, 0, 3600e3, &c->ttft_ms, err, errlen);
	case O_PREFILL:
		return parse_double(f, v, 0, 1e6, &c->prefill_us_per_token, err, errlen);
	case O_ITL:
		return parse_double(f, v, 0, 3600e3, &c->itl_ms, err, errlen);
	case O_LORA_LOAD:
		return parse_double(f, v, 0, 3600e3, &c->lora_load_ms, err, errlen);
	case O_GPU_BLOCKS:
		return parse_long(f, v, 1, 1000000000, &c->num_gpu_blocks, err, errlen);
	case O_BLOCK_SIZE:
		return parse_long(f, v, 1, 1 << 20, &c->block_size, err, errlen);
	case O_VERSION:
		return set_version(c, v, err, errlen);
	case O_SEED:
		if (parse_long(f, v, 0, LONG_MAX, &l, err, errlen) < 0)
			return -1;
		c->has_seed = true;
		c->seed = (uint64_t)l;
		return 0;
	case O_FIX_WAITING:
		c->fixed.has_waiting = true;
		return parse_long(f, v, 0, 1000000000, &c->fixed.waiting, err, errlen);
	case O_FIX_RUNNING:
		c->fixed.has_running = true;
		return parse_long(f, v, 0, 1000000000, &c->fixed.running, err, errlen);
	case O_FIX_KV:
		c->fixed.has_kv = true;
		return parse_double(f, v, 0, 1, &c->fixed.kv, err, errlen);
	case O_FIX_LORA_RUNNING:
		return set_string(&c->fixed.lora_running, v, err, errlen);
	case O_FIX_LORA_WAITING:
		return set_string(&c->fixed.lora_waiting, v, err, errlen);
	case O_BATCHED:
		return parse_long(f, v, 1, 100000000, &c->max_num_batched_tokens, err, errlen);
	case O_DECODE:
		return parse_double(f, v, 0, 1e6, &c->decode_us_per_seq, err, errlen);
	case O_PREFIX:
	case O_NO_PREFIX:
		c->enable_prefix_caching = o->id == O_PREFIX;
		return 0;
	case O_TIME_SCALE:
		if (parse_double(f, v, 0, 1e6, &c->time_scale, err, errlen) < 0)
			return -1;
		if (c->time_scale <= 0)
			return fail(err, errlen, "--time-scale: must be above 0");
		return 0;
	case O_PROFILE:
		if (!ig_sim_find_profile(v))
			return fail(err, errlen,
				    "--profile: unknown '%s' (qwen2.5-1.5b-cpu, llama3.1-8b-h100)",
				    v);
		c->profile = v;
		return 0;
	case O_FAIL_RATE:
		return parse_double(f, v, 0, 100, &c->failure_rate, err, errlen);
	case O_FAIL_TYPES:
		return set_failure_types(c, vals, n, err, errlen);
	case O_N:
		break;
	}
	return fail(err, errlen, "--%s: not handled", f);
}

static bool in_list(const char *const *list, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && memcmp(list[i], name, len) == 0)
			return true;
	return false;
}

static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
		if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

/* Recognises a vLLM flag we ignore; *arity says how many values to skip. */
static bool ignored_flag(const char *name, size_t len, enum arity *arity)
{
	if (in_list(vllm_value_flags, sizeof vllm_value_flags / sizeof vllm_value_flags[0], name,
		    len)) {
		*arity = ONE;
		return true;
	}
	if (in_list(vllm_bool_flags, sizeof vllm_bool_flags / sizeof vllm_bool_flags[0], name,
		    len)) {
		*arity = NONE;
		return true;
	}
	return false;
}

/* Collects the values of the flag at argv[*i] into vals, advancing *i past
 * the last one used. */
static int take_values(int argc, char **argv, int *i, const char *inline_val, enum arity arity,
		       char **vals, size_t *n, const char *flag, char *err, size_t errlen)
{
	*n = 0;
	if (arity == NONE) {
		if (inline_val)
			return fail(err, errlen, "--%s takes no value", flag);
		return 0;
	}
	if (inline_val) {
		vals[(*n)++] = (char *)inline_val;
		return 0;
	}
	/* Like argparse, a following "--flag" is never taken as a value. */
	while (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
		vals[(*n)++] = argv[++*i];
		if (arity == ONE)
			break;
	}
	if (*n == 0)
		return fail(err, errlen, "--%s needs a value", flag);
	return 0;
}

static int parse_one(struct ig_sim_config *c, int argc, char **argv, int *i, char **vals,
		     bool *have_positional, bool *given, char *err, size_t errlen)
{
	const char *a = argv[*i];
	if (strncmp(a, "--", 2) != 0) {
		/* `vllm serve MODEL`: one positional argument names the model. */
		if (*have_positional || a[0] == '-')
			return fail(err, errlen, "unexpected argument '%s'", a);
		*have_positional = true;
		c->model = a;
		return 0;
	}
	const char *name = a + 2;
	const char *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const char *inline_val = eq ? eq + 1 : NULL;
	const struct opt *o = find_opt(name, len);
	enum arity arity;
	size_t n;
	if (o) {
		if (take_values(argc, argv, i, inline_val, o->arity, vals, &n, o->name, err,
				errlen) < 0)
			return -1;
		given[o->id] = true;
		return apply(c, o, vals, n, err, errlen);
	}
	if (!ignored_flag(name, len, &arity))
		return fail(err, errlen, "unknown flag '--%.*s'", (int)len, name);
	if (take_values(argc, argv, i, inline_val, arity, vals, &n, "flag", err, errlen) < 0)
		return fail(err, errlen, "--%.*s needs a value", (int)len, name);
	ig_warn("sim: ignoring vLLM flag --%.*s (not simulated)", (int)len, name);
	return 0;
}

/* A profile fills in what the command line left unset, wherever on the
 * line --profile came. */
static void apply_profile(struct ig_sim_config *c, const struct ig_sim_profile *p,
			  const bool *given)
{
	if (!given[O_TTFT])
		c->ttft_ms = p->ttft_ms;
	if (!given[O_PREFILL])
		c->prefill_us_per_token = p->prefill_us_per_token;
	if (!given[O_ITL])
		c->itl_ms = p->itl_ms;
	if (!given[O_DECODE])
		c->decode_us_per_seq = p->decode_us_per_seq;
	if (!given[O_LORA_LOAD])
		c->lora_load_ms = p->lora_load_ms;
	if (!given[O_MAX_NUM_SEQS])
		c->max_num_seqs = p->max_num_seqs;
	if (!given[O_BATCHED])
		c->max_num_batched_tokens = p->max_num_batched_tokens;
	if (!given[O_GPU_BLOCKS])
		c->num_gpu_blocks = p->num_gpu_blocks;
}

int ig_sim_parse_args(struct ig_sim_config *c, int argc, char **argv, char *err, size_t errlen)
{
	char **vals = calloc((size_t)argc + 1, sizeof *vals);
	bool have_positional = false;
	bool given[O_N] = {0};
	int rc = 0;
	if (!vals)
		return fail(err, errlen, "out of memory");
	for (int i = 1; i < argc && rc == 0; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			ig_sim_usage(stdout);
			rc = 1;
			break;
		}
		rc = parse_one(c, argc, argv, &i, vals, &have_positional, given, err, errlen);
	}
	free(vals);
	if (rc == 0 && c->profile)
		apply_profile(c, ig_sim_find_profile(c->profile), given);
	if (rc == 0 && c->nadapters && !c->enable_lora)
		ig_warn("sim: --lora-modules given without --enable-lora; serving them anyway");
	return rc;
}

void ig_sim_usage(FILE *f)
{
	fprintf(f,
		"usage: infergate sim [OPTIONS]\n"
		"\n"
		"A vLLM-compatible model server that generates text without a model.\n"
		"\n"
		"vLLM options:\n"
		"  --model NAME                 base model (default Qwen/Qwen2.5-1.5B-Instruct)\n"
		"  --served-model-name NAME...  names the base model answers to\n"
		"  --host ADDR --port N         listen address (default 0.0.0.0:8000)\n"
		"  --enable-lora                serve LoRA adapters\n"
		"  --max-loras N                adapters in one batch (default 1)\n"
		"  --lora-modules ITEM...       name=path or {\"name\":..,\"path\":..,"
		"\"base_model_name\":..}\n"
		"  --max-num-seqs N             running batch size (default 256)\n"
		"  --max-model-len N            context length (default 32768)\n"
		"  --block-size N               KV block size in tokens (default 16)\n"
		"  --num-gpu-blocks N           KV cache blocks (default 9362)\n"
		"  --max-num-batched-tokens N   token budget of one engine step (default 8192)\n"
		"  --[no-]enable-prefix-caching reuse cached prompt blocks (default on)\n"
		"  --seed N                     makes sampled text reproducible\n"
		"\n"
		"simulation:\n"
		"  --profile NAME               step costs and capacities of a measured setup:\n"
		"                               qwen2.5-1.5b-cpu, llama3.1-8b-h100 (flags win)\n"
		"  --ttft-ms MS                 fixed cost of a step with prefill (default 10)\n"
		"  --prefill-us-per-token US    prefill cost per uncached token (default 20)\n"
		"  --itl-ms MS                  decode step time at batch 1 (default 2)\n"
		"  --decode-us-per-seq US       extra decode step time per request (default 10)\n"
		"  --lora-load-ms MS            loading a non-resident adapter (default 20)\n"
		"  --time-scale F               run F times faster than real time (default 1)\n"
		"  --failure-injection-rate PCT fail this share of generation requests\n"
		"  --failure-types T...         rate_limit invalid_api_key context_length\n"
		"                               server_error invalid_request model_not_found\n"
		"                               (default: all)\n"
		"  --vllm-version 0.8|latest    error shape and metric names (default latest)\n"
		"  --fixed-waiting N, --fixed-running N, --fixed-kv-usage F,\n"
		"  --fixed-lora-running a,b, --fixed-lora-waiting c\n"
		"                               what /metrics reports, whatever the load\n"
		"\n"
		"Other common vLLM flags are accepted and ignored with a warning.\n"
		"POST /sim/state {\"waiting\":N,\"running\":N,\"kv_usage\":F,\"lora_running\":[..],"
		"\"lora_waiting\":[..]}\n"
		"sets the same overrides at run time; DELETE /sim/state clears them.\n"
		"A request header x-sim-force-status: CODE answers with that error status.\n");
}
