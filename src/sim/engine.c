/* The simulator's model of vLLM's continuous batching. Requests wait in a
 * FIFO; the scheduler admits them while the running batch is below
 * --max-num-seqs, the KV cache has blocks for their prompt, and their LoRA
 * adapter is active or a LoRA slot is free (a request whose adapter cannot
 * join the batch is skipped and keeps waiting, as vLLM's scheduler does).
 * A running request produces its first token after
 * ttft + prompt * prefill (+ adapter load) and then one per --itl-ms, each
 * from a loop timer, and is answered as its tokens appear. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "sim/sim_int.h"

/* ---- queues ------------------------------------------------------------------- */

static void q_push(struct sim_queue *q, struct sim_req *r)
{
	r->next = NULL;
	r->prev = q->tail;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	q->len++;
}

static void q_remove(struct sim_queue *q, struct sim_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		q->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		q->tail = r->prev;
	r->next = r->prev = NULL;
	q->len--;
}

static long blocks_for(const struct sim *s, long tokens)
{
	return (tokens + s->cfg.block_size - 1) / s->cfg.block_size;
}

void ig_sim_req_free(struct sim_req *r)
{
	free(r->id);
	free(r->model);
	free(r->adapter);
	ig_buf_free(&r->text);
	free(r);
}

/* ---- LoRA --------------------------------------------------------------------- */

static bool adapter_running(const struct sim *s, const char *name)
{
	for (const struct sim_req *r = s->running.head; r; r = r->next)
		if (r->adapter && strcmp(r->adapter, name) == 0)
			return true;
	return false;
}

static long active_adapters(const struct sim *s)
{
	long n = 0;
	for (const struct sim_req *r = s->running.head; r; r = r->next) {
		if (!r->adapter)
			continue;
		const struct sim_req *p = s->running.head;
		while (p != r && !(p->adapter && strcmp(p->adapter, r->adapter) == 0))
			p = p->next;
		n += p == r;
	}
	return n;
}

/* Makes the adapter resident in a GPU slot. Returns true when it had to be
 * loaded (the request pays --lora-load-ms). The slot reused is a free one,
 * else the least recently used one whose adapter is not running; the
 * caller has checked that such a slot exists. */
static bool make_resident(struct sim *s, const char *name)
{
	struct sim_slot *victim = NULL;
	for (long i = 0; i < s->cfg.max_loras; i++) {
		struct sim_slot *sl = &s->slots[i];
		if (sl->name && strcmp(sl->name, name) == 0) {
			sl->last_used = s->loop.now_ns;
			return false;
		}
		if (!sl->name) {
			if (!victim || victim->name)
				victim = sl;
		} else if (!adapter_running(s, sl->name) &&
			   (!victim || (victim->name && sl->last_used < victim->last_used))) {
			victim = sl;
		}
	}
	if (victim) {
		free(victim->name);
		victim->name = strdup(name);
		victim->last_used = s->loop.now_ns;
	}
	return true;
}

/* Comma-joined distinct adapters of a queue, in order of first appearance. */
static void adapters_of(const struct sim_queue *q, struct ig_buf *out)
{
	for (const struct sim_req *r = q->head; r; r = r->next) {
		if (!r->adapter)
			continue;
		const struct sim_req *p = q->head;
		while (p != r && !(p->adapter && strcmp(p->adapter, r->adapter) == 0))
			p = p->next;
		if (p != r)
			continue;
		if (out->len)
			ig_buf_append_cstr(out, ",");
		ig_buf_append_cstr(out, r->adapter);
	}
}

void ig_sim_lora_update(struct sim *s)
{
	struct ig_buf run = {0}, wait = {0};
	const struct ig_sim_fixed *f = &s->cfg.fixed;
	if (f->lora_running)
		ig_buf_append_cstr(&run, f->lora_running);
	else
		adapters_of(&s->running, &run);
	if (f->lora_waiting)
		ig_buf_append_cstr(&wait, f->lora_waiting);
	else
		adapters_of(&s->waiting, &wait);
	const char *rs = ig_buf_cstr(&run), *ws = ig_buf_cstr(&wait);
	const struct ig_sim_lora_series *cur =
	    s->stats.nlora ? &s->stats.lora[s->stats.nlora - 1] : NULL;
	if (rs && ws && (!cur || strcmp(cur->running, rs) || strcmp(cur->waiting, ws)))
		ig_sim_lora_note(&s->stats, rs, ws, ig_wall_seconds());
	ig_buf_free(&run);
	ig_buf_free(&wait);
}

/* ---- output ------------------------------------------------------------------- */

static void resp_of(const struct sim_req *r, struct ig_sim_resp *out, struct ig_str text)
{
	*out = (struct ig_sim_resp){
	    .kind = r->kind,
	    .id = ig_str_from(r->id),
	    .created = r->created,
	    .model = ig_str_from(r->model),
	    .text = text,
	    .finish = r->generated >= r->target ? r->finish : NULL,
	    .prompt_tokens = r->prompt_tokens,
	    .completion_tokens = r->generated,
	};
}

/* Writes one token's SSE event(s). Returns ig_http_write's result. */
static int stream_token(struct sim_req *r, const char *word)
{
	struct ig_buf b = {0};
	struct ig_sim_resp resp;
	resp_of(r, &resp, ig_str_from(word));
	if (r->kind == IG_SIM_CHAT && r->generated == 1)
		ig_sim_render_role_chunk(&b, &resp);
	ig_sim_render_chunk(&b, &resp);
	if (resp.finish) {
		if (r->include_usage)
			ig_sim_render_usage_chunk(&b, &resp);
		ig_buf_append_cstr(&b, "data: [DONE]\n\n");
	}
	int rc = ig_http_write(r->ex, b.ptr, b.len);
	ig_buf_free(&b);
	return rc;
}

static void respond_whole(struct sim_req *r)
{
	struct ig_buf b = {0};
	struct ig_sim_resp resp;
	resp_of(r, &resp, ig_buf_str(&r->text));
	ig_sim_render_full(&b, &resp);
	ig_http_respond(r->ex, 200, "application/json", b.ptr, b.len, NULL, 0);
	ig_buf_free(&b);
}

/* ---- scheduling ----------------------------------------------------------------- */

static void schedule(struct sim *s);
static void on_token(struct ig_loop *loop, struct ig_timer *t);

/* Takes r out of the engine's accounting, with the reason it ended. */
static void retire(struct sim_req *r, enum ig_sim_finish why)
{
	struct sim *s = r->sim;
	ig_timer_stop(&s->loop, &r->timer);
	if (r->state == REQ_RUNNING) {
		q_remove(&s->running, r);
		s->blocks_used -= r->blocks;
	} else {
		q_remove(&s->waiting, r);
	}
	s->stats.success[why] += 1;
	s->stats.success_seen[why] = true;
}

static void admit(struct sim *s, struct sim_req *r)
{
	q_remove(&s->waiting, r);
	q_push(&s->running, r);
	r->state = REQ_RUNNING;
	r->blocks = blocks_for(s, r->prompt_tokens);
	s->blocks_used += r->blocks;
	double ms = s->cfg.ttft_ms + (double)r->prompt_tokens * s->cfg.prefill_us_per_token / 1000;
	if (r->adapter && make_resident(s, r->adapter))
		ms += s->cfg.lora_load_ms;
	ig_timer_start_ns(&s->loop, &r->timer, (uint64_t)(ms * 1e6), on_token, r);
}

static void schedule(struct sim *s)
{
	long total = s->cfg.num_gpu_blocks;
	struct sim_req *next;
	for (struct sim_req *r = s->waiting.head; r; r = next) {
		next = r->next;
		if (s->running.len >= s->cfg.max_num_seqs)
			break;
		if (s->blocks_used + blocks_for(s, r->prompt_tokens + 1) > total && s->running.len)
			break;
		if (r->adapter && !adapter_running(s, r->adapter) &&
		    active_adapters(s) >= s->cfg.max_loras)
			continue;
		admit(s, r);
	}
	ig_sim_lora_update(s);
}

static void finish(struct sim_req *r)
{
	struct sim *s = r->sim;
	double e2e = (double)(s->loop.now_ns - r->arrival_ns) / 1e9;
	size_t n;
	const double *b = ig_sim_e2e_buckets(s->cfg.version, &n);
	ig_sim_hist_observe(&s->stats.e2e, b, n, e2e);
	retire(r, strcmp(r->finish, "stop") == 0 ? IG_SIM_FIN_STOP : IG_SIM_FIN_LENGTH);
	if (r->stream)
		ig_http_end(r->ex);
	else
		respond_whole(r);
	ig_sim_req_free(r);
	schedule(s);
}

/* The client went away, or the connection broke under us. */
static void drop(struct sim_req *r)
{
	struct sim *s = r->sim;
	retire(r, IG_SIM_FIN_ABORT);
	ig_sim_req_free(r);
	schedule(s);
}

static void account_token(struct sim *s, struct sim_req *r)
{
	r->generated++;
	s->stats.generation_tokens += 1;
	if (r->generated == 1) {
		size_t n;
		const double *b = ig_sim_ttft_buckets(s->cfg.version, &n);
		double ttft = (double)(s->loop.now_ns - r->arrival_ns) / 1e9;
		ig_sim_hist_observe(&s->stats.ttft, b, n, ttft);
		s->stats.prompt_tokens += (double)r->prompt_tokens;
	}
	/* The cache holds prompt and output; it grows a block at a time. */
	long blocks = blocks_for(s, r->prompt_tokens + r->generated);
	s->blocks_used += blocks - r->blocks;
	r->blocks = blocks;
}

static void on_token(struct ig_loop *loop, struct ig_timer *t)
{
	struct sim_req *r = t->data;
	struct sim *s = r->sim;
	const char *word = ig_sim_next_word(&r->rng);
	account_token(s, r);
	if (r->stream) {
		int rc = stream_token(r, word);
		if (rc < 0) {
			ig_http_abort(r->ex);
			drop(r);
			return;
		}
		r->paused = rc == 1;
	} else {
		ig_buf_append_cstr(&r->text, word);
	}
	if (r->generated >= r->target) {
		finish(r);
		return;
	}
	if (!r->paused)
		ig_timer_start_ns(loop, &r->timer, (uint64_t)(s->cfg.itl_ms * 1e6), on_token, r);
}

static void on_writable(struct ig_http_exchange *ex)
{
	struct sim_req *r = ex->user;
	if (!r->paused)
		return;
	r->paused = false;
	ig_timer_start_ns(&r->sim->loop, &r->timer, (uint64_t)(r->sim->cfg.itl_ms * 1e6), on_token,
			  r);
}

static void on_abort(struct ig_http_exchange *ex)
{
	drop(ex->user);
}

static int start_stream(struct sim_req *r)
{
	static const struct ig_http_header h[] = {
	    {IG_STR("Content-Type"), IG_STR("text/event-stream; charset=utf-8")},
	};
	return ig_http_start_response(r->ex, 200, h, 1, -1);
}

void ig_sim_engine_submit(struct sim *s, struct sim_req *r)
{
	r->sim = s;
	r->state = REQ_WAITING;
	r->arrival_ns = s->loop.now_ns;
	r->ex->user = r;
	r->ex->on_abort = on_abort;
	r->ex->on_writable = on_writable;
	/* Headers go out at once, as Starlette's StreamingResponse does; the
	 * events follow as tokens are produced. */
	if (r->stream && start_stream(r) < 0) {
		ig_http_abort(r->ex);
		ig_sim_req_free(r);
		return;
	}
	q_push(&s->waiting, r);
	schedule(s);
}

void ig_sim_engine_gauges(const struct sim *s, struct ig_sim_gauges *g)
{
	const struct ig_sim_fixed *f = &s->cfg.fixed;
	g->running = f->has_running ? f->running : s->running.len;
	g->waiting = f->has_waiting ? f->waiting : s->waiting.len;
	if (f->has_kv) {
		g->kv_usage = f->kv;
	} else {
		double u = (double)s->blocks_used / (double)s->cfg.num_gpu_blocks;
		g->kv_usage = u > 1 ? 1 : u;
	}
}

void ig_sim_engine_free(struct sim *s)
{
	if (s->slots)
		for (long i = 0; i < s->cfg.max_loras; i++)
			free(s->slots[i].name);
	free(s->slots);
	s->slots = NULL;
	ig_sim_stats_free(&s->stats);
}
