/* What the simulator puts on the wire: vLLM's response and error bodies,
 * its SSE chunks, and its Prometheus exposition, key for key and in the
 * order vLLM writes them (vllm-api.md §1-§5), so that clients and routers
 * that depend on the details see what a real server would send. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "sim/sim.h"

/* ---- responses ------------------------------------------------------------ */

static int put_head(struct ig_buf *b, const struct ig_sim_resp *r, const char *object)
{
	int rc = ig_buf_append_cstr(b, "{\"id\":");
	rc |= ig_json_write_string(b, r->id.ptr, r->id.len);
	rc |= ig_buf_printf(b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object,
			    (long long)r->created);
	rc |= ig_json_write_string(b, r->model.ptr, r->model.len);
	return rc ? -1 : 0;
}

static int put_finish(struct ig_buf *b, const char *finish)
{
	if (!finish)
		return ig_buf_append_cstr(b, "null");
	return ig_buf_printf(b, "\"%s\"", finish);
}

static int put_usage(struct ig_buf *b, const struct ig_sim_resp *r, bool details)
{
	return ig_buf_printf(
	    b, "{\"prompt_tokens\":%ld,\"total_tokens\":%ld,\"completion_tokens\":%ld%s}",
	    r->prompt_tokens, r->prompt_tokens + r->completion_tokens, r->completion_tokens,
	    details ? ",\"prompt_tokens_details\":null" : "");
}

static const char *object_name(const struct ig_sim_resp *r, bool chunk)
{
	if (r->kind == IG_SIM_COMPLETION)
		return "text_completion";
	return chunk ? "chat.completion.chunk" : "chat.completion";
}

int ig_sim_render_full(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = put_head(out, r, object_name(r, false));
	if (r->kind == IG_SIM_COMPLETION) {
		rc |= ig_buf_append_cstr(out, ",\"choices\":[{\"index\":0,\"text\":");
		rc |= ig_json_write_string(out, r->text.ptr, r->text.len);
		rc |= ig_buf_append_cstr(out, ",\"logprobs\":null,\"finish_reason\":");
		rc |= put_finish(out, r->finish);
		rc |= ig_buf_append_cstr(out, ",\"stop_reason\":null,\"prompt_logprobs\":null}],"
					      "\"usage\":");
		rc |= put_usage(out, r, true);
		rc |= ig_buf_append_cstr(out, "}");
	} else {
		rc |= ig_buf_append_cstr(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
					      "\"assistant\",\"content\":");
		rc |= ig_json_write_string(out, r->text.ptr, r->text.len);
		rc |= ig_buf_append_cstr(out, ",\"reasoning_content\":null,\"tool_calls\":[]},"
					      "\"logprobs\":null,\"finish_reason\":");
		rc |= put_finish(out, r->finish);
		rc |= ig_buf_append_cstr(out, ",\"stop_reason\":null}],\"usage\":");
		rc |= put_usage(out, r, true);
		rc |= ig_buf_append_cstr(out, ",\"prompt_logprobs\":null}");
	}
	return rc ? -1 : 0;
}

int ig_sim_render_chunk(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(out, "data: ");
	rc |= put_head(out, r, object_name(r, true));
	if (r->kind == IG_SIM_COMPLETION) {
		rc |= ig_buf_append_cstr(out, ",\"choices\":[{\"index\":0,\"text\":");
		rc |= ig_json_write_string(out, r->text.ptr, r->text.len);
		rc |= ig_buf_append_cstr(out, ",\"logprobs\":null,\"finish_reason\":");
		rc |= put_finish(out, r->finish);
		rc |= ig_buf_append_cstr(out, ",\"stop_reason\":null}],\"usage\":null}\n\n");
		return rc ? -1 : 0;
	}
	/* Chat chunks are dumped with exclude_unset: stop_reason appears only
	 * on the chunk that finishes the choice. */
	rc |= ig_buf_append_cstr(out, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
	rc |= ig_json_write_string(out, r->text.ptr, r->text.len);
	rc |= ig_buf_append_cstr(out, "},\"logprobs\":null,\"finish_reason\":");
	rc |= put_finish(out, r->finish);
	rc |= ig_buf_append_cstr(out, r->finish ? ",\"stop_reason\":null}]}\n\n" : "}]}\n\n");
	return rc ? -1 : 0;
}

int ig_sim_render_role_chunk(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(out, "data: ");
	rc |= put_head(out, r, object_name(r, true));
	rc |=
	    ig_buf_append_cstr(out, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
				    "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}"
				    "\n\n");
	return rc ? -1 : 0;
}

int ig_sim_render_usage_chunk(struct ig_buf *out, const struct ig_sim_resp *r)
{
	int rc = ig_buf_append_cstr(out, "data: ");
	rc |= put_head(out, r, object_name(r, true));
	rc |= ig_buf_append_cstr(out, ",\"choices\":[],\"usage\":");
	rc |= put_usage(out, r, false);
	rc |= ig_buf_append_cstr(out, "}\n\n");
	return rc ? -1 : 0;
}

int ig_sim_render_error(struct ig_buf *out, enum ig_sim_version v, int code, const char *type,
			const char *param, const char *msg)
{
	int rc;
	if (v == IG_SIM_V_0_8) {
		rc = ig_buf_append_cstr(out, "{\"object\":\"error\",\"message\":");
		rc |= ig_json_write_string(out, msg, strlen(msg));
		rc |=
		    ig_buf_printf(out, ",\"type\":\"%s\",\"param\":null,\"code\":%d}", type, code);
		return rc ? -1 : 0;
	}
	rc = ig_buf_append_cstr(out, "{\"error\":{\"message\":");
	rc |= ig_json_write_string(out, msg, strlen(msg));
	rc |= ig_buf_printf(out, ",\"type\":\"%s\",\"param\":", type);
	if (param)
		rc |= ig_json_write_string(out, param, strlen(param));
	else
		rc |= ig_buf_append_cstr(out, "null");
	rc |= ig_buf_printf(out, ",\"code\":%d}}", code);
	return rc ? -1 : 0;
}

/* ---- numbers ------------------------------------------------------------------- */

/* The fewest significant digits that read back as v. */
static int shortest_digits(double v)
{
	char tmp[40];
	for (int p = 1; p < 17; p++) {
		snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
		if (strtod(tmp, NULL) == v)
			return p;
	}
	return 17;
}

/* Python's repr(), then prometheus_client's floatToGoString(), which moves
 * positive numbers with more than six integer digits to exponent form
 * (1742577733.4 -> "1.7425777334e+09"). */
int ig_sim_fmt_float(char *out, size_t len, double v)
{
	if (isinf(v))
		return snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
	if (isnan(v))
		return snprintf(out, len, "NaN");
	int p = shortest_digits(v);
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
	int exp = atoi(strchr(tmp, 'e') + 1);
	if (exp < -4 || exp >= 16)
		return snprintf(out, len, "%s", tmp);
	int decimals = p - 1 - exp;
	snprintf(tmp, sizeof tmp, "%.*f", decimals < 1 ? 1 : decimals, v);
	char *dot = strchr(tmp, '.');
	int ipart = (int)(dot - tmp);
	if (v > 0 && ipart > 6) {
		char mant[64];
		size_t m = 0;
		mant[m++] = tmp[0];
		mant[m++] = '.';
		for (const char *s = tmp + 1; *s; s++)
			if (*s != '.')
				mant[m++] = *s;
		while (m > 1 && (mant[m - 1] == '0' || mant[m - 1] == '.'))
			m--;
		mant[m] = '\0';
		return snprintf(out, len, "%se+0%d", mant, ipart - 1);
	}
	return snprintf(out, len, "%s", tmp);
}

/* ---- histograms and LoRA history ----------------------------------------------- */

static const double ttft_buckets[] = {0.001, 0.005, 0.01, 0.02,	 0.04,	0.06,  0.08, 0.1,
				      0.25,  0.5,   0.75, 1.0,	 2.5,	5.0,   7.5,  10.0,
				      20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double e2e_buckets[] = {0.3,  0.5,	  0.8,	 1.0,	1.5,   2.0,    2.5,
				     5.0,  10.0,  15.0,	 20.0,	30.0,  40.0,   50.0,
				     60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

/* v0.8 (V0) stops at 10 s and 60 s; later releases added the long tail. */
const double *ig_sim_ttft_buckets(enum ig_sim_version v, size_t *n)
{
	*n = v == IG_SIM_V_0_8 ? 16 : sizeof ttft_buckets / sizeof ttft_buckets[0];
	return ttft_buckets;
}

const double *ig_sim_e2e_buckets(enum ig_sim_version v, size_t *n)
{
	*n = v == IG_SIM_V_0_8 ? 15 : sizeof e2e_buckets / sizeof e2e_buckets[0];
	return e2e_buckets;
}

void ig_sim_hist_observe(struct ig_sim_hist *h, const double *bounds, size_t n, double v)
{
	size_t i = 0;
	while (i < n && v > bounds[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

static void series_free(struct ig_sim_lora_series *l)
{
	free(l->running);
	free(l->waiting);
	memset(l, 0, sizeof *l);
}

int ig_sim_lora_note(struct ig_sim_stats *s, const char *running, const char *waiting, double now)
{
	/* Strictly increasing even when two changes share a clock reading, so
	 * "largest value" always names the newest state. */
	double t = now > s->lora_last_t ? now : s->lora_last_t + 0.001;
	struct ig_sim_lora_series cur = {0};
	size_t i;
	for (i = 0; i < s->nlora; i++)
		if (strcmp(s->lora[i].running, running) == 0 &&
		    strcmp(s->lora[i].waiting, waiting) == 0)
			break;
	if (i < s->nlora) {
		cur = s->lora[i];
	} else {
		cur.running = strdup(running);
		cur.waiting = strdup(waiting);
		if (!cur.running || !cur.waiting) {
			series_free(&cur);
			return -1;
		}
		if (s->nlora == IG_SIM_LORA_HISTORY) {
			series_free(&s->lora[0]);
			i = 0;
		} else {
			i = s->nlora++;
			s->lora[i] = cur;
		}
	}
	memmove(&s->lora[i], &s->lora[i + 1], (s->nlora - i - 1) * sizeof s->lora[0]);
	cur.t = t;
	s->lora[s->nlora - 1] = cur;
	s->lora_last_t = t;
	return 0;
}

void ig_sim_stats_free(struct ig_sim_stats *s)
{
	for (size_t i = 0; i < s->nlora; i++)
		series_free(&s->lora[i]);
	s->nlora = 0;
}

/* ---- exposition ------------------------------------------------------------------ */

static int put_label_value(struct ig_buf *b, const char *v)
{
	int rc = 0;
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			rc |= ig_buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			rc |= ig_buf_append_cstr(b, "\\n");
		else
			rc |= ig_buf_append(b, v, 1);
	}
	return rc;
}

static int put_family(struct ig_buf *b, const char *name, const char *type, const char *help)
{
	return ig_buf_printf(b, "# HELP vllm:%s %s\n# TYPE vllm:%s %s\n", name, help, name, type);
}

static int put_value(struct ig_buf *b, double v)
{
	char num[64];
	ig_sim_fmt_float(num, sizeof num, v);
	return ig_buf_printf(b, " %s\n", num);
}

/* name{model_name="m"} v */
static int put_model_sample(struct ig_buf *b, const char *name, const char *model, double v)
{
	int rc = ig_buf_printf(b, "vllm:%s{model_name=\"", name);
	rc |= put_label_value(b, model);
	rc |= ig_buf_append_cstr(b, "\"}");
	rc |= put_value(b, v);
	return rc;
}

static int put_gauge(struct ig_buf *b, const char *name, const char *help, const char *model,
		     double v)
{
	return put_family(b, name, "gauge", help) | put_model_sample(b, name, model, v);
}

static int put_counter(struct ig_buf *b, const char *name, const char *help, const char *model,
		       double v)
{
	return put_family(b, name, "counter", help) | put_model_sample(b, name, model, v);
}

static int put_hist(struct ig_buf *b, const char *name, const char *help, const char *model,
		    const struct ig_sim_hist *h, const double *bounds, size_t n)
{
	int rc = put_family(b, name, "histogram", help);
	uint64_t cum = 0;
	char le[64];
	for (size_t i = 0; i <= n; i++) {
		cum += h->counts[i];
		ig_sim_fmt_float(le, sizeof le, i < n ? bounds[i] : INFINITY);
		rc |= ig_buf_printf(b, "vllm:%s_bucket{le=\"%s\",model_name=\"", name, le);
		rc |= put_label_value(b, model);
		rc |= ig_buf_append_cstr(b, "\"}");
		rc |= put_value(b, (double)cum);
	}
	rc |= ig_buf_printf(b, "vllm:%s_count{model_name=\"", name);
	rc |= put_label_value(b, model);
	rc |= ig_buf_append_cstr(b, "\"}");
	rc |= put_value(b, (double)h->count);
	rc |= ig_buf_printf(b, "vllm:%s_sum{model_name=\"", name);
	rc |= put_label_value(b, model);
	rc |= ig_buf_append_cstr(b, "\"}");
	rc |= put_value(b, h->sum);
	return rc;
}

static int put_lora(struct ig_buf *b, const struct ig_sim_config *c, const struct ig_sim_stats *s)
{
	/* vLLM V0 reports max_lora="0" when LoRA is off. */
	long max_lora = c->enable_lora || c->nadapters ? c->max_loras : 0;
	int rc = put_family(b, "lora_requests_info", "gauge", "Running stats on lora requests.");
	for (size_t i = 0; i < s->nlora; i++) {
		rc |= ig_buf_printf(
		    b, "vllm:lora_requests_info{max_lora=\"%ld\",running_lora_adapters=\"",
		    max_lora);
		rc |= put_label_value(b, s->lora[i].running);
		rc |= ig_buf_append_cstr(b, "\",waiting_lora_adapters=\"");
		rc |= put_label_value(b, s->lora[i].waiting);
		rc |= ig_buf_append_cstr(b, "\"}");
		rc |= put_value(b, s->lora[i].t);
	}
	return rc;
}

static const char *const finish_names[IG_SIM_FIN_N] = {"stop", "length", "abort"};

static int put_success(struct ig_buf *b, const struct ig_sim_config *c,
		       const struct ig_sim_stats *s, const char *model)
{
	int rc = put_family(b, "request_success_total", "counter",
			    "Count of successfully processed requests.");
	for (int i = 0; i < IG_SIM_FIN_N; i++) {
		/* V0 creates a series on first use; V1 creates them all up front. */
		if (c->version == IG_SIM_V_0_8 && !s->success_seen[i])
			continue;
		rc |= ig_buf_printf(b,
				    "vllm:request_success_total{finished_reason=\"%s\","
				    "model_name=\"",
				    finish_names[i]);
		rc |= put_label_value(b, model);
		rc |= ig_buf_append_cstr(b, "\"}");
		rc |= put_value(b, s->success[i]);
	}
	return rc;
}

/* V1 counts prefix-cache lookups in tokens; v0.9 dropped the gpu_ prefix.
 * The 0.8 flavour also carries V0's hit-rate gauge (-1 when off). */
static int put_prefix_cache(struct ig_buf *b, const struct ig_sim_config *c,
			    const struct ig_sim_stats *s, const char *model)
{
	bool old = c->version == IG_SIM_V_0_8;
	int rc =
	    put_counter(b, old ? "gpu_prefix_cache_queries_total" : "prefix_cache_queries_total",
			"Prefix cache queries, in terms of number of queried tokens.", model,
			s->prefix_queries);
	rc |= put_counter(b, old ? "gpu_prefix_cache_hits_total" : "prefix_cache_hits_total",
			  "Prefix cache hits, in terms of number of cached tokens.", model,
			  s->prefix_hits);
	if (old) {
		double rate = !c->enable_prefix_caching ? -1
			      : s->prefix_queries > 0	? s->prefix_hits / s->prefix_queries
							: 0;
		rc |= put_gauge(b, "gpu_prefix_cache_hit_rate", "GPU prefix cache block hit rate.",
				model, rate);
	}
	return rc;
}

static int put_cache_config(struct ig_buf *b, const struct ig_sim_config *c)
{
	int rc =
	    put_family(b, "cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
	rc |= ig_buf_printf(b,
			    "vllm:cache_config_info{block_size=\"%ld\",cache_dtype=\"auto\","
			    "enable_prefix_caching=\"%s\",gpu_memory_utilization=\"0.9\","
			    "num_cpu_blocks=\"0\",num_gpu_blocks=\"%ld\"} 1.0\n",
			    c->block_size, c->enable_prefix_caching ? "True" : "False",
			    c->num_gpu_blocks);
	return rc;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* One query parameter, %XX and '+' decoded into out (cut at its size). */
static size_t url_decode(struct ig_str s, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < s.len && n < cap; i++) {
		char ch = s.ptr[i];
		int hi, lo;
		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%' && i + 2 < s.len && (hi = hex_digit(s.ptr[i + 1])) >= 0 &&
			   (lo = hex_digit(s.ptr[i + 2])) >= 0) {
			ch = (char)(hi * 16 + lo);
			i += 2;
		}
		out[n++] = ch;
	}
	return n;
}

#define MAX_NAMES 32

/* The name[] values of a query. */
static size_t query_names(struct ig_str query, char (*names)[128], size_t *lens)
{
	size_t n = 0;
	while (query.len && n < MAX_NAMES) {
		const char *amp = memchr(query.ptr, '&', query.len);
		struct ig_str param = {query.ptr, amp ? (size_t)(amp - query.ptr) : query.len};
		query =
		    amp ? (struct ig_str){amp + 1, query.len - param.len - 1} : (struct ig_str){0};
		const char *eq = memchr(param.ptr, '=', param.len);
		if (!eq)
			continue;
		char key[16];
		size_t klen = url_decode((struct ig_str){param.ptr, (size_t)(eq - param.ptr)}, key,
					 sizeof key);
		if (klen != 6 || memcmp(key, "name[]", 6) != 0)
			continue;
		lens[n] =
		    url_decode((struct ig_str){eq + 1, param.len - (size_t)(eq - param.ptr) - 1},
			       names[n], sizeof names[n]);
		n++;
	}
	return n;
}

int ig_sim_filter_metrics(struct ig_str page, struct ig_str query, struct ig_buf *out)
{
	char names[MAX_NAMES][128];
	size_t lens[MAX_NAMES];
	size_t nnames = query_names(query, names, lens);
	if (nnames == 0)
		return ig_buf_append(out, page.ptr, page.len);
	/* The comment lines of the current family wait for its first kept
	 * sample: a HELP line, or a comment that does not follow the previous
	 * one, starts a new family's. */
	struct ig_str comments = {page.ptr, 0};
	const char *p = page.ptr, *end = page.ptr + page.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		struct ig_str line = {p, (size_t)(next - p)};
		p = next;
		if (line.ptr[0] == '#') {
			bool help = line.len > 7 && memcmp(line.ptr, "# HELP ", 7) == 0;
			if (help || comments.ptr + comments.len != line.ptr)
				comments = line;
			else
				comments.len += line.len;
			continue;
		}
		size_t nlen = 0;
		while (nlen < line.len && line.ptr[nlen] != '{' && line.ptr[nlen] != ' ')
			nlen++;
		bool keep = false;
		for (size_t i = 0; i < nnames && !keep; i++)
			keep = lens[i] == nlen && memcmp(names[i], line.ptr, nlen) == 0;
		if (!keep)
			continue;
		if (comments.len && ig_buf_append(out, comments.ptr, comments.len) < 0)
			return -1;
		comments.len = 0;
		if (ig_buf_append(out, line.ptr, line.len) < 0)
			return -1;
	}
	return 0;
}

int ig_sim_render_metrics(struct ig_buf *out, const struct ig_sim_config *c,
			  const struct ig_sim_stats *s, const struct ig_sim_gauges *g)
{
	const char *m = ig_sim_label_name(c);
	size_t nt, ne;
	const double *tb = ig_sim_ttft_buckets(c->version, &nt);
	const double *eb = ig_sim_e2e_buckets(c->version, &ne);
	int rc = put_gauge(out, "num_requests_running",
			   "Number of requests currently running on GPU.", m, (double)g->running);
	rc |= put_gauge(out, "num_requests_waiting", "Number of requests waiting to be processed.",
			m, (double)g->waiting);
	rc |= put_gauge(out, "gpu_cache_usage_perc",
			"GPU KV-cache usage. 1 means 100 percent usage.", m, g->kv_usage);
	if (c->version != IG_SIM_V_0_8)
		rc |= put_gauge(out, "kv_cache_usage_perc",
				"KV-cache usage. 1 means 100 percent usage.", m, g->kv_usage);
	if (c->version == IG_SIM_V_0_8 || c->enable_lora || c->nadapters)
		rc |= put_lora(out, c, s);
	rc |= put_counter(out, "num_preemptions_total",
			  "Cumulative number of preemption from the engine.", m, s->preemptions);
	rc |= put_prefix_cache(out, c, s, m);
	rc |= put_counter(out, "prompt_tokens_total", "Number of prefill tokens processed.", m,
			  s->prompt_tokens);
	rc |= put_counter(out, "generation_tokens_total", "Number of generation tokens processed.",
			  m, s->generation_tokens);
	rc |= put_success(out, c, s, m);
	rc |= put_hist(out, "time_to_first_token_seconds",
		       "Histogram of time to first token in seconds.", m, &s->ttft, tb, nt);
	rc |= put_hist(out, "e2e_request_latency_seconds",
		       "Histogram of end to end request latency in seconds.", m, &s->e2e, eb, ne);
	rc |= put_cache_config(out, c);
	return rc ? -1 : 0;
}
