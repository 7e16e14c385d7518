/* The simulator's engine loop: it runs the batch model of model.c in real
 * time. One loop timer stands for the engine step in flight; when it fires
 * the step ends, the tokens it produced go out to their clients (one SSE
 * event per request per step, as vLLM streams), and the next step is
 * planned at once if there is work. Simulated durations are divided by
 * --time-scale before they become timers. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "sim/sim_int.h"

static struct sim_req *req_of(struct ig_sim_seq *q)
{
	/* seq is the first member of sim_req. */
	return (struct sim_req *)q;
}

uint64_t ig_sim_now(const struct sim *s)
{
	uint64_t real = s->loop.now_ns - s->t0_ns;
	return (uint64_t)((double)real * s->cfg.time_scale);
}

void ig_sim_req_free(struct sim_req *r)
{
	/* A request counts once in the load, by its first choice. */
	if (r->sim && r->sim->cfg.server_load_tracking && r->index == 0)
		r->sim->server_load--;
	free(r->choices);
	free(r->id);
	free(r->model);
	free(r->role);
	free(r->adapter);
	free(r->hashes);
	free(r->seq.blocks);
	ig_buf_free(&r->text);
	free(r->item_id);
	ig_buf_free(&r->echo_store);
	free(r->input);
	free(r->stop);
	free(r->stop_ids);
	free(r->echo_text);
	free(r->prompt_lp);
	free(r->prompt_ids);
	ig_buf_free(&r->gen_ids);
	free(r->lp_words);
	ig_buf_free(&r->script);
	free(r->pieces);
	free(r->tool_name);
	free(r->tool_id);
	free(r);
}

/* ---- LoRA --------------------------------------------------------------------- */

void ig_sim_lora_update(struct sim *s)
{
	struct ig_buf run = {0}, wait = {0};
	const struct ig_sim_fixed *f = &s->cfg.fixed;
	if (f->lora_running)
		ig_buf_append_cstr(&run, f->lora_running);
	else
		ig_sim_model_adapters(&s->model.running, &run);
	if (f->lora_waiting)
		ig_buf_append_cstr(&wait, f->lora_waiting);
	else
		ig_sim_model_adapters(&s->model.waiting, &wait);
	const char *rs = ig_buf_cstr(&run), *ws = ig_buf_cstr(&wait);
	const struct ig_sim_lora_series *cur =
	    s->stats.nlora ? &s->stats.lora[s->stats.nlora - 1] : NULL;
	if (rs && ws && (!cur || strcmp(cur->running, rs) || strcmp(cur->waiting, ws)))
		ig_sim_lora_note(&s->stats, rs, ws, ig_wall_seconds());
	ig_buf_free(&run);
	ig_buf_free(&wait);
}

/* ---- output ------------------------------------------------------------------- */

/* The choices of the request r leads: its choices, or r alone (n = 1). */
static int nchoices_of(const struct sim_req *lead)
{
	return lead->lead ? lead->nchoices : 1;
}

static struct sim_req *choice_of(const struct sim_req *lead, int i)
{
	return lead->lead ? lead->choices[i] : (struct sim_req *)lead;
}

/* The generated tokens of the whole request: every choice's. */
static long generated_of(const struct sim_req *r)
{
	const struct sim_req *lead = r->lead ? r->lead : r;
	long n = 0;
	for (int i = 0; i < nchoices_of(lead); i++)
		if (!choice_of(lead, i)->hidden)
			n += choice_of(lead, i)->seq.generated;
	return n;
}

/* A choice's whole text as the client gets it: the echoed prompt, then
 * the answer (without echo, the answer alone). */
static int answer_text(const struct sim_req *c, struct ig_str answer, struct ig_buf *out)
{
	if (c->echo_text && !c->echo_hidden && ig_buf_append(out, c->echo_text, c->echo_len) < 0)
		return -1;
	return ig_buf_append(out, answer.ptr, answer.len);
}

static void resp_of(const struct sim_req *r, struct ig_sim_resp *out, struct ig_str text)
{
	*out = (struct ig_sim_resp){
	    .index = r->index,
	    .more_choices = r->lead && r->lead->live > 1,
	    .kind = r->kind,
	    .id = ig_str_from(r->id),
	    .created = r->created,
	    .model = ig_str_from(r->model),
	    .text = text,
	    .finish = r->seq.generated >= r->seq.target ? r->finish : NULL,
	    .stop_reason = r->stop_hit,
	    .stop_by_token = r->stop_by_token,
	    .stop_token = r->stop_token,
	    .logprobs = r->lp_top >= 0,
	    .lp_top = r->lp_top > 0 ? (unsigned)r->lp_top : 0,
	    .lp_words = r->lp_words,
	    .lp_n = r->lp_n,
	    .lp_off0 = r->echo_len,
	    .lp_prompt =
		r->echo_text ? (struct ig_str){r->echo_text, r->echo_len} : (struct ig_str){0},
	    .lp_seed = r->lp_seed,
	    .prompt_lp = {r->prompt_lp, r->prompt_lp_len},
	    .prompt_tokens = r->lead ? r->lead->prompt_sum : r->seq.prompt_tokens,
	    .completion_tokens = r->kind == IG_SIM_EMBEDDINGS ? 0 : generated_of(r),
	    .own_prompt_tokens = r->seq.prompt_tokens,
	    .own_completion_tokens = r->seq.generated,
	    .first = r->seq.generated == 1,
	    .include_usage = r->include_usage,
	    .continuous_usage = r->continuous_usage,
	    .cached_details = r->sim && r->sim->cfg.prompt_tokens_details,
	    .full_text = ig_buf_str(&r->text),
	    .item_id = r->item_id ? ig_str_from(r->item_id) : (struct ig_str){0},
	    .cached_tokens = r->seq.cached_tokens,
	    .max_output_tokens = r->max_tokens,
	    .echo = &r->echo,
	    .input = {r->input, r->input_len},
	    .dims = r->dims,
	    .base64 = r->base64,
	    .embed_seed = r->adapter ? ig_sim_token_id(r->adapter) : 0,
	    .role = r->role ? ig_str_from(r->role) : (struct ig_str){0},
	    .tool_mode = r->tool_mode,
	    .tool_name = r->tool_name ? ig_str_from(r->tool_name) : (struct ig_str){0},
	    .tool_id = r->tool_id ? ig_str_from(r->tool_id) : (struct ig_str){0},
	    .newer_keys = r->sim && r->sim->cfg.version != IG_SIM_V_0_8,
	    .prompt_ids = {r->prompt_ids, r->prompt_ids_len},
	};
}

/* The generated ids r recorded (return_token_ids) as a JSON list, into
 * out; nothing when it records none. */
static int gen_ids_json(const struct sim_req *r, struct ig_buf *out)
{
	uint32_t id;
	if (!r->return_ids)
		return 0;
	int rc = ig_buf_append_cstr(out, "[");
	for (size_t at = 0; at + sizeof id <= r->gen_ids.len; at += sizeof id) {
		memcpy(&id, r->gen_ids.ptr + at, sizeof id);
		rc |= ig_buf_printf(out, "%s%u", at ? "," : "", id);
	}
	return rc | ig_buf_append_cstr(out, "]");
}

/* A chat stream's opening, before the first content of any choice: the
 * role chunk of every choice, in index order, then with `echo` each
 * choice's echoed text as a chunk of its own, as vLLM's first iteration
 * sends them. */
static int chat_opening(struct sim_req *r, struct ig_buf *b)
{
	struct sim_req *lead = r->lead ? r->lead : r;
	struct ig_sim_resp resp;
	if (lead->opened)
		return 0;
	lead->opened = true;
	for (int i = 0; i < nchoices_of(lead); i++) {
		const struct sim_req *c = choice_of(lead, i);
		resp_of(c, &resp, (struct ig_str){0});
		if (!c->hidden && ig_sim_render_role_chunk(b, &resp) < 0)
			return -1;
	}
	for (int i = 0; i < nchoices_of(lead); i++) {
		const struct sim_req *c = choice_of(lead, i);
		if (c->hidden || !c->echo_text)
			continue;
		resp_of(c, &resp, (struct ig_str){c->echo_text, c->echo_len});
		resp.finish = NULL;
		resp.logprobs = false;
		resp.completion_tokens = 0;
		resp.own_completion_tokens = 0;
		/* vLLM's echo chunk sets no token_ids (exclude_unset drops it). */
		resp.newer_keys = false;
		if (ig_sim_render_chunk(b, &resp) < 0)
			return -1;
	}
	return 0;
}

/* Writes one token's SSE event(s) carrying `text`. Returns
 * ig_http_write's result. */
static int stream_token(struct sim_req *r, struct ig_str text)
{
	struct ig_buf b = {0}, echoed = {0};
	struct ig_sim_resp resp;
	if (r->kind == IG_SIM_CHAT && chat_opening(r, &b) < 0) {
		ig_buf_free(&b);
		return -1;
	}
	/* echo: the prompt goes out with a completion's first token, as vLLM
	 * sends it (chat's went out in the opening). */
	if (r->echo_text && r->seq.generated == 1 && r->kind == IG_SIM_COMPLETION) {
		if (answer_text(r, text, &echoed) < 0) {
			ig_buf_free(&echoed);
			return -1;
		}
		text = ig_buf_str(&echoed);
	}
	resp_of(r, &resp, text);
	if (r->seq.generated != 1) { /* the prompt's logprobs go with the echo */
		resp.lp_prompt = (struct ig_str){0};
		resp.prompt_ids = (struct ig_str){0};
	}
	struct ig_buf ids = {0};
	if (gen_ids_json(r, &ids) < 0) {
		ig_buf_free(&b);
		ig_buf_free(&echoed);
		ig_buf_free(&ids);
		return -1;
	}
	resp.token_ids = ig_buf_str(&ids);
	resp.lp_pos0 = r->seq.generated - 1;
	resp.lp_off0 = r->echo_len + r->lp_textlen;
	resp.role_sent = true;
	int rc = ig_sim_render_token(&b, &resp, &r->seq_no);
	if (rc == 0)
		rc = ig_http_write(r->ex, b.ptr, b.len);
	ig_buf_free(&b);
	ig_buf_free(&echoed);
	ig_buf_free(&ids);
	return rc;
}

/* The head of every stream the simulator answers. */
static const struct ig_http_header sse_head[] = {
    {IG_STR("Content-Type"), IG_STR("text/event-stream; charset=utf-8")},
};

/* vLLM 0.8's answer to a stream it could not stream (best_of other than
 * n): the whole body in one event, then [DONE], as a stream. */
static void respond_whole_stream(struct sim_req *r, const struct ig_buf *body)
{
	struct ig_buf b = {0};
	int rc = ig_buf_printf(&b, "data: %.*s\n\ndata: [DONE]\n\n", (int)body->len, body->ptr);
	if (rc < 0 || ig_http_start_response(r->ex, 200, sse_head, 1, -1) < 0 ||
	    ig_http_write(r->ex, b.ptr, b.len) < 0)
		ig_http_abort(r->ex);
	else
		ig_http_end(r->ex);
	ig_buf_free(&b);
}

/* The body of a finished request: r's head and usage, and every choice's
 * answer (one for n = 1; hidden sequences left out). */
static void respond_whole(struct sim *s, struct sim_req *r)
{
	const struct sim_req *lead = r->lead ? r->lead : r;
	int nc = nchoices_of(lead), shown = 0;
	struct ig_buf b = {0};
	/* Per choice its text, then its token ids. */
	struct ig_buf *texts = calloc((size_t)nc * 2, sizeof *texts);
	struct ig_sim_resp *all = calloc((size_t)nc, sizeof *all);
	struct ig_sim_resp resp;
	int rc = texts && all ? 0 : -1;
	for (int i = 0; rc == 0 && i < nc; i++) {
		const struct sim_req *c = choice_of(lead, i);
		if (c->hidden)
			continue;
		rc = answer_text(c, ig_buf_str(&c->text), &texts[2 * shown]);
		rc |= gen_ids_json(c, &texts[2 * shown + 1]);
		resp_of(c, &all[shown], ig_buf_str(&texts[2 * shown]));
		all[shown].token_ids = ig_buf_str(&texts[2 * shown + 1]);
		shown++;
	}
	if (rc == 0) {
		resp = all[0];
		resp.choices = all;
		resp.nchoices = (size_t)shown;
	}
	if (rc < 0 || ig_sim_render_full(&b, &resp) < 0) {
		ig_buf_reset(&b);
		ig_sim_render_api_error(&b, s->cfg.version, r->kind, 500, "InternalServerError",
					NULL, "out of memory");
		ig_http_respond(r->ex, 500, "application/json", b.ptr, b.len, NULL, 0);
	} else if (lead->whole_stream) {
		respond_whole_stream(r, &b);
	} else {
		ig_http_respond(r->ex, 200, "application/json", b.ptr, b.len, NULL, 0);
	}
	for (int i = 0; texts && i < 2 * nc; i++)
		ig_buf_free(&texts[i]);
	free(texts);
	free(all);
	ig_buf_free(&b);
}

static void count_finish(struct sim *s, enum ig_sim_finish why)
{
	s->stats.success[why] += 1;
	s->stats.success_seen[why] = true;
}

/* ---- logprobs ------------------------------------------------------------------- */

/* Notes the new token for logprobs: a stream reports it alone (with its
 * text offset), a whole answer all of them. */
static int lp_note(struct sim_req *r, unsigned word)
{
	if (r->stream) {
		r->lp_textlen += r->lp_n ? strlen(ig_sim_word(r->lp_words[0])) : 0;
		r->lp_n = 0;
	}
	if (r->lp_n == r->lp_cap) {
		size_t cap = r->lp_cap ? 2 * r->lp_cap : 16;
		uint8_t *w = realloc(r->lp_words, cap);
		if (!w)
			return -1;
		r->lp_words = w;
		r->lp_cap = cap;
	}
	r->lp_words[r->lp_n++] = (uint8_t)word;
	return 0;
}

/* ---- stop strings ---------------------------------------------------------------- */

/* After a token of `added` bytes joined r->text: ends the answer at the
 * first stop string in the text (cut before it, or after it with
 * include_stop_str_in_output; finish "stop", stop_reason the string, the
 * engine told this token is the last) and returns the text a stream sends
 * now: what it had held back up to the end, or to what may still be the
 * start of a stop string. */
static struct ig_str stop_check(struct sim_req *r, size_t added)
{
	size_t len = r->text.len, from = len - added;
	/* A match ends in the new bytes: it starts at most stop_max - 1
	 * bytes before them. */
	from = from >= r->stop_max - 1 ? from - (r->stop_max - 1) : 0;
	const char *best = NULL, *hit = NULL;
	size_t k = 0;
	/* vLLM looks for stop strings once min_tokens are out. */
	for (const char *st = r->stop; k < r->nstop && r->seq.generated >= r->min_tokens;
	     st += strlen(st) + 1, k++) {
		const char *at = memmem(r->text.ptr + from, len - from, st, strlen(st));
		if (at && (!best || at < best)) {
			best = at;
			hit = st;
		}
	}
	size_t end;
	if (best) {
		end = (size_t)(best - r->text.ptr) + (r->include_stop ? strlen(hit) : 0);
		r->stop_hit = ig_str_from(hit);
		r->finish = "stop";
		r->seq.target = r->seq.generated;
		r->text.len = end;
	} else if (r->seq.generated >= r->seq.target) {
		end = len;
	} else {
		end = len >= r->stop_max - 1 ? len - (r->stop_max - 1) : 0;
	}
	if (end < r->sent)
		end = r->sent;
	struct ig_str out = {r->text.ptr + r->sent, end - r->sent};
	r->sent = end;
	return out;
}

/* stop_token_ids, checked as vLLM's engine checks each new token (after
 * min_tokens, before the length cap): a token whose id is listed ends the
 * answer ("stop", stop_reason the id) and, as vLLM's detokenizer skips
 * it, adds no text unless include_stop_str_in_output. A token's id is the
 * one /tokenize gives its text (a structured answer's piece: its first
 * toy token's); the end-of-sequence token has none. Returns the text the
 * token adds. */
static struct ig_str stop_token_check(struct sim_req *r, struct ig_str word)
{
	uint64_t h;
	if (!r->nstop_ids || r->seq.generated < r->min_tokens || ig_sim_tokenize(word, &h, 1) == 0)
		return word;
	int64_t id = (int64_t)ig_sim_vocab_id(h);
	for (size_t i = 0; i < r->nstop_ids; i++) {
		if (r->stop_ids[i] != id)
			continue;
		r->stop_by_token = true;
		r->stop_token = id;
		r->finish = "stop";
		r->seq.target = r->seq.generated;
		return r->include_stop ? word : (struct ig_str){"", 0};
	}
	return word;
}

/* ---- token ids ------------------------------------------------------------------- */

/* Records the id of the token `word` (return_token_ids): the id /tokenize
 * gives its text (a structured answer's piece: its first toy token's),
 * and for a token without text (the end of sequence, or the one step of
 * an echo without generation) the id of the chat template's end marker,
 * the token that ends a turn. The text is remembered for /detokenize,
 * which then gives the answer back from its ids. A stream keeps the
 * step's id alone. */
static int note_token_id(struct sim_req *r, struct ig_str word)
{
	uint64_t h;
	if (ig_sim_tokenize(word, &h, 1) == 0)
		h = ig_sim_token_id("<|im_end|>");
	uint32_t id = ig_sim_vocab_id(h);
	if (word.len) {
		if (!r->sim->vocab)
			r->sim->vocab = ig_sim_vocab_new();
		ig_sim_vocab_note(r->sim->vocab, id, word);
	}
	if (r->stream)
		r->gen_ids.len = 0;
	return ig_buf_append(&r->gen_ids, &id, sizeof id);
}

/* ---- model callbacks ------------------------------------------------------------ */

static double seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* A duration into one of the latency histograms whose buckets are e2e's. */
static void observe_phase(struct sim *s, struct ig_sim_hist *h, uint64_t ns)
{
	size_t n;
	const double *b = ig_sim_e2e_buckets(s->cfg.version, &n);
	ig_sim_hist_observe(h, b, n, seconds(ns));
}

/* A count into one of the token histograms (1-2-5 buckets). */
static void observe_tokens(struct sim *s, struct ig_sim_hist *h, long v)
{
	double b[IG_SIM_MAX_BUCKETS];
	size_t n = ig_sim_token_buckets(s->cfg.max_model_len, b);
	ig_sim_hist_observe(h, b, n, (double)v);
}

/* A token's times: the first's TTFT, every later one's distance from the
 * one before (vLLM's time per output token, inter-token latency). */
static void observe_token(struct sim *s, struct sim_req *r, const struct ig_sim_seq *q)
{
	uint64_t now = ig_sim_now(s);
	size_t n;
	s->step_outputs++;
	if (q->generated == 1) {
		s->step_firsts++;
		const double *b = ig_sim_ttft_buckets(s->cfg.version, &n);
		ig_sim_hist_observe(&s->stats.ttft, b, n, seconds(now - r->arrival_ns));
		s->stats.prompt_tokens += (double)q->prompt_tokens;
		r->first_token_ns = now;
	} else {
		const double *b = ig_sim_tpot_buckets(s->cfg.version, &n);
		ig_sim_hist_observe(&s->stats.tpot, b, n, seconds(now - r->last_token_ns));
	}
	r->last_token_ns = now;
}

/* A finished request's phases and counts: queued from arrival to its
 * first admission, then prefill to the first token, decode to the last,
 * both together its inference time. */
static void observe_finished(struct sim *s, const struct sim_req *r, const struct ig_sim_seq *q)
{
	uint64_t now = ig_sim_now(s);
	struct ig_sim_stats *st = &s->stats;
	observe_phase(s, &st->e2e, now - r->arrival_ns);
	observe_phase(s, &st->queue, q->scheduled_at - r->arrival_ns);
	observe_phase(s, &st->prefill, r->first_token_ns - q->scheduled_at);
	observe_phase(s, &st->decode, now - r->first_token_ns);
	observe_phase(s, &st->inference, now - q->scheduled_at);
	observe_tokens(s, &st->req_prompt, q->prompt_tokens);
	if (r->kind == IG_SIM_EMBEDDINGS)
		return;
	observe_tokens(s, &st->req_gen, q->generated);
	/* vLLM's FinishedRequestStats.mean_time_per_output_token: the
	 * decode time over the tokens after the first, 0 for one token. */
	size_t n;
	const double *b = ig_sim_tpot_buckets(s->cfg.version, &n);
	ig_sim_hist_observe(
	    &st->req_tpot, b, n,
	    q->generated > 1 ? seconds(now - r->first_token_ns) / (double)(q->generated - 1) : 0);
	observe_tokens(s, &st->req_max_tokens, r->max_tokens);
}

/* Once per request (all its choices done): the most tokens a choice
 * generated. */
static void observe_request(struct sim *s, const struct sim_req *r)
{
	const struct sim_req *lead = r->lead ? r->lead : r;
	long most = 0;
	if (r->kind == IG_SIM_EMBEDDINGS)
		return;
	for (int i = 0; i < nchoices_of(lead); i++)
		if (choice_of(lead, i)->seq.generated > most)
			most = choice_of(lead, i)->seq.generated;
	observe_tokens(s, &s->stats.req_max_gen, most);
	/* vLLM observes each prompt's parent request's n as it finishes. */
	size_t nb;
	const double *b = ig_sim_n_buckets(&nb);
	for (long k = 0; k < lead->nprompts; k++)
		ig_sim_hist_observe(&s->stats.req_n, b, nb, (double)lead->n_param);
}

static int on_token(void *ctx, struct ig_sim_seq *q)
{
	struct sim *s = ctx;
	struct sim_req *r = req_of(q);
	observe_token(s, r, q);
	/* An embedding's one engine output is the vector, not a token. */
	if (r->kind == IG_SIM_EMBEDDINGS)
		return 0;
	/* A structured answer was written beforehand: its next token. */
	struct ig_str word;
	if (r->echo_only || (r->eos && q->generated == q->target)) {
		word = (struct ig_str){"", 0};
	} else if (r->pieces) {
		word = r->pieces[r->next_piece < r->npieces ? r->next_piece++ : r->npieces - 1];
	} else {
		unsigned w = ig_sim_next_word_index(&r->rng);
		word = ig_str_from(ig_sim_word(w));
		if (r->lp_top >= 0 && lp_note(r, w) < 0) {
			ig_http_abort(r->ex);
			return -1;
		}
	}
	s->stats.generation_tokens += 1;
	if (r->return_ids && note_token_id(r, word) < 0) {
		ig_http_abort(r->ex);
		return -1;
	}
	word = stop_token_check(r, word);
	/* The Responses API repeats the whole text when its stream ends; stop
	 * strings are looked for in the whole text. */
	if ((!r->stream || r->kind == IG_SIM_RESPONSES || r->nstop) &&
	    ig_buf_append(&r->text, word.ptr, word.len) < 0) {
		ig_http_abort(r->ex);
		return -1;
	}
	struct ig_str out = word;
	if (r->nstop)
		out = stop_check(r, word.len);
	if (!r->stream)
		return 0;
	int rc = stream_token(r, out);
	if (rc < 0) {
		ig_http_abort(r->ex);
		return -1;
	}
	/* Above the high-water mark the request sits out steps until the
	 * client has read (on_writable). */
	q->paused = rc == 1;
	return 0;
}

/* Takes every choice of r's request still in the engine out of it (each
 * counted as aborted) and frees them all. */
static void drop_request(struct sim *s, struct sim_req *r)
{
	/* r may be freed in the loop: only lead is read after it starts. */
	struct sim_req *lead = r->lead ? r->lead : r;
	for (int i = nchoices_of(lead) - 1; i >= 0; i--) {
		struct sim_req *c = choice_of(lead, i);
		if (!c->done) {
			ig_sim_model_abort(&s->model, &c->seq);
			count_finish(s, IG_SIM_FIN_ABORT);
		}
		if (c != lead)
			ig_sim_req_free(c);
	}
	ig_sim_req_free(lead);
}

static void on_release(void *ctx, struct ig_sim_seq *q, bool gone)
{
	struct sim *s = ctx;
	struct sim_req *r = req_of(q);
	r->done = true;
	if (gone) {
		count_finish(s, IG_SIM_FIN_ABORT);
		drop_request(s, r);
		return;
	}
	observe_finished(s, r, q);
	count_finish(s, strcmp(r->finish, "stop") == 0 ? IG_SIM_FIN_STOP : IG_SIM_FIN_LENGTH);
	/* n > 1: the answer goes out when the last choice is done. */
	if (r->lead && --r->lead->live > 0)
		return;
	observe_request(s, r);
	if (r->stream)
		ig_http_end(r->ex);
	else
		respond_whole(s, r);
	drop_request(s, r);
}

/* ---- the step timer ------------------------------------------------------------- */

static void on_step(struct ig_loop *loop, struct ig_timer *t);

/* Starts the next step unless one runs or there is nothing to do. */
static void kick(struct sim *s)
{
	uint64_t dur;
	if (!ig_timer_armed(&s->step_timer) && ig_sim_model_begin(&s->model, ig_sim_now(s), &dur))
		ig_timer_start_ns(&s->loop, &s->step_timer, ig_sim_real_ns(dur, s->cfg.time_scale),
				  on_step, s);
	ig_sim_lora_update(s);
}

/* vllm:iteration_tokens_total, once the step's tokens went out. V0
 * (llm_engine.py _get_stats) observes every step: the tokens it computed
 * plus one for each prefill it finished, whose first token is no decode.
 * V1 (loggers.py) observes the prompt and generated tokens of the step's
 * outputs (the prompt whole, on the output with its first token), and
 * nothing for a step without outputs, a prefill chunk before the last
 * (async_llm.py makes no IterationStats then). */
static void on_step(struct ig_loop *loop, struct ig_timer *t)
{
	struct sim *s = t->data;
	size_t n;
	const double *b = ig_sim_iter_buckets(s->cfg.version, &n);
	(void)loop;
	long computed = s->model.step_total;
	double tokens = s->stats.prompt_tokens + s->stats.generation_tokens;
	s->step_outputs = s->step_firsts = 0;
	ig_sim_model_end(&s->model);
	if (s->cfg.version == IG_SIM_V_0_8)
		ig_sim_hist_observe(&s->stats.iter, b, n, (double)(computed + s->step_firsts));
	else if (s->step_outputs)
		ig_sim_hist_observe(&s->stats.iter, b, n,
				    s->stats.prompt_tokens + s->stats.generation_tokens - tokens);
	kick(s);
}

static void on_writable(struct ig_http_exchange *ex)
{
	struct sim_req *r = ex->user;
	bool resume = false;
	for (int i = 0; i < nchoices_of(r); i++) {
		struct sim_req *c = choice_of(r, i);
		resume |= c->seq.paused;
		c->seq.paused = false;
	}
	if (resume)
		kick(r->sim);
}

/* The client went away, or the server is shutting down. */
static void on_abort(struct ig_http_exchange *ex)
{
	struct sim_req *r = ex->user;
	struct sim *s = r->sim;
	drop_request(s, r);
	kick(s);
}

/* Headers, and for the Responses API its first two events, which vLLM
 * sends before the engine has produced anything. */
static int start_stream(struct sim_req *r)
{
	struct ig_buf b = {0};
	struct ig_sim_resp resp;
	int rc = ig_http_start_response(r->ex, 200, sse_head, 1, -1);
	resp_of(r, &resp, (struct ig_str){0});
	if (rc == 0 && ig_sim_render_stream_open(&b, &resp, &r->seq_no) < 0)
		rc = -1;
	if (rc == 0 && b.len && ig_http_write(r->ex, b.ptr, b.len) < 0)
		rc = -1;
	ig_buf_free(&b);
	return rc;
}

void ig_sim_engine_submit(struct sim *s, struct sim_req *r)
{
	r->sim = s; /* from here the request counts in the server's load */
	if (s->cfg.server_load_tracking)
		s->server_load++;
	r->arrival_ns = ig_sim_now(s);
	r->ex->user = r;
	r->ex->on_abort = on_abort;
	r->ex->on_writable = on_writable;
	/* Headers go out at once, as Starlette's StreamingResponse does; the
	 * events follow as steps produce tokens. */
	if (r->stream && start_stream(r) < 0) {
		ig_http_abort(r->ex);
		for (int i = nchoices_of(r) - 1; i > 0; i--)
			ig_sim_req_free(choice_of(r, i));
		ig_sim_req_free(r);
		return;
	}
	r->live = nchoices_of(r);
	for (int i = 0; i < r->live; i++) {
		struct sim_req *c = choice_of(r, i);
		c->sim = s;
		c->arrival_ns = r->arrival_ns;
		ig_sim_model_add(&s->model, &c->seq);
	}
	kick(s);
}

void ig_sim_engine_gauges(const struct sim *s, struct ig_sim_gauges *g)
{
	const struct ig_sim_fixed *f = &s->cfg.fixed;
	g->running = f->has_running ? f->running : s->model.running.len;
	g->waiting = f->has_waiting ? f->waiting : s->model.waiting.len;
	if (f->has_kv) {
		g->kv_usage = f->kv;
	} else {
		double u = (double)ig_sim_model_used_blocks(&s->model) / (double)s->model.nblk;
		g->kv_usage = u > 1 ? 1 : u;
	}
}

int ig_sim_engine_init(struct sim *s)
{
	static const struct ig_sim_model_ops ops = {on_token, on_release};
	s->t0_ns = s->loop.now_ns;
	return ig_sim_model_init(&s->model, &s->cfg, &ops, s);
}

void ig_sim_engine_free(struct sim *s)
{
	ig_timer_stop(&s->loop, &s->step_timer);
	ig_sim_model_free(&s->model);
	ig_sim_stats_free(&s->stats);
}
