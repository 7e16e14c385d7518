/* `infergate sim`: a vLLM-compatible model-server simulator.
 *
 * The pure parts live behind this header so that the unit tests reach them:
 * the command line (args.c), the toy tokenizer and text generator (text.c),
 * and the rendering of responses, errors and Prometheus metrics (render.c).
 * The batch model and the HTTP side are in engine.c and sim_main.c. */
#ifndef IG_SIM_SIM_H
#define IG_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/flags.h"
#include "core/rand.h"
#include "core/str.h"
#include "json/json.h"

int ig_sim_main(int argc, char **argv);

/* ---- configuration (args.c) ---------------------------------------------- */

/* Which vLLM generation to imitate: error body shape and metric names. */
enum ig_sim_version { IG_SIM_V_LATEST = 0, IG_SIM_V_0_8 };

/* Chat tool calls: how the answer calls one of the request's tools. */
enum ig_sim_tool_mode {
	IG_SIM_TOOL_NONE,     /* it does not (tool_choice "none", no tools) */
	IG_SIM_TOOL_NAMED,    /* tool_choice {"type":"function","function":{"name":..}} */
	IG_SIM_TOOL_REQUIRED, /* tool_choice "required": one of them */
	IG_SIM_TOOL_AUTO,     /* "auto": one of them, when the user spoke last */
};

struct ig_sim_adapter {
	char *name;
	char *path;
	char *base; /* base_model_name as given, or NULL */
};

/* What /metrics reports instead of the real state, for tests. Strings are
 * comma-joined adapter names, malloc'd. */
struct ig_sim_fixed {
	bool has_waiting, has_running, has_kv;
	long waiting, running;
	double kv;
	char *lora_running; /* NULL: not overridden */
	char *lora_waiting;
};

struct ig_sim_config {
	const char *model;
	struct ig_flag_list served; /* --served-model-name values (point into argv) */
	const char *host;
	int port;
	bool enable_lora;
	/* VLLM_ALLOW_RUNTIME_LORA_UPDATING: the LoRA admin routes exist. */
	bool runtime_lora;
	long max_loras;
	struct ig_sim_adapter *adapters;
	size_t nadapters, adapters_cap;
	long max_num_seqs;
	long max_model_len;
	long max_num_batched_tokens; /* token budget of one engine step */
	/* Step costs: a step with prefill work costs ttft_ms plus
	 * prefill_us_per_token per prompt token computed; a step with decode
	 * work costs itl_ms plus decode_us_per_seq per decoding request after
	 * the first; each adapter loaded costs lora_load_ms. */
	double ttft_ms, prefill_us_per_token, itl_ms, decode_us_per_seq, lora_load_ms;
	double time_scale; /* simulated durations run this many times faster */
	long num_gpu_blocks, block_size;
	bool enable_prefix_caching;
	bool server_load_tracking; /* --enable-server-load-tracking: GET /load counts */
	bool priority_policy;	   /* --scheduling-policy priority */
	long max_logprobs;	   /* --max-logprobs */
	/* vLLM's usage and header switches: usage.prompt_tokens_details with
	 * the cached tokens, a usage chunk ending every stream, X-Request-Id on
	 * every answer. */
	bool prompt_tokens_details, force_include_usage, request_id_headers;
	/* CORS as vLLM's middleware (Starlette's) answers it: --allowed-origins,
	 * --allowed-methods, --allowed-headers (JSON lists; not given: ["*"])
	 * and --allow-credentials. */
	struct ig_sim_cors_list {
		char **v;
		size_t n;
		bool given;
	} allowed_origins, allowed_methods, allowed_headers;
	bool allow_credentials;
	/* --api-key: requests to the guarded paths need "Authorization:
	 * Bearer <key>" (NULL: nothing is guarded). */
	const char *api_key;
	/* --enable-auto-tool-choice and --tool-call-parser: tool_choice
	 * "auto" needs both, as vLLM's. */
	bool auto_tool_choice;
	const char *tool_call_parser;
	const char *profile;	/* --profile name, or NULL */
	double failure_rate;	/* percent of generation requests failed on purpose */
	unsigned failure_types; /* bit (1 << enum ig_sim_failure); 0: all */
	enum ig_sim_version version;
	long embedding_dim; /* length of the vectors /v1/embeddings answers */
	bool has_seed;
	uint64_t seed;
	struct ig_sim_fixed fixed;
};

/* Injected failures, as llm-d-inference-sim names them. */
enum ig_sim_failure {
	IG_SIM_FAIL_RATE_LIMIT,
	IG_SIM_FAIL_INVALID_API_KEY,
	IG_SIM_FAIL_CONTEXT_LENGTH,
	IG_SIM_FAIL_SERVER_ERROR,
	IG_SIM_FAIL_INVALID_REQUEST,
	IG_SIM_FAIL_MODEL_NOT_FOUND,
	IG_SIM_FAIL_N
};

struct ig_sim_failure_info {
	const char *name; /* as given to --failure-types */
	int status;
	const char *type; /* the error body's "type" */
};

const struct ig_sim_failure_info *ig_sim_failure_info(enum ig_sim_failure f);
/* The error type vLLM-style bodies use for an arbitrary status. */
const char *ig_sim_error_type(int status);

/* A latency profile: step costs and capacities measured on one setup. */
struct ig_sim_profile {
	const char *name;
	double ttft_ms, prefill_us_per_token, itl_ms, decode_us_per_seq, lora_load_ms;
	long max_num_seqs, max_num_batched_tokens, num_gpu_blocks;
};

const struct ig_sim_profile *ig_sim_find_profile(const char *name);

void ig_sim_config_init(struct ig_sim_config *c);
void ig_sim_config_free(struct ig_sim_config *c);
void ig_sim_fixed_clear(struct ig_sim_fixed *f);
/* argv[0] is the command name. Returns 0, 1 when --help was asked (usage
 * already printed), or -1 with a message in err (exit status 2). */
int ig_sim_parse_args(struct ig_sim_config *c, int argc, char **argv, char *err, size_t errlen);
/* One --lora-modules item: `name=path` or vLLM's JSON object form. */
int ig_sim_parse_lora_module(const char *s, struct ig_sim_adapter *out, char *err, size_t errlen);
/* Adapters: add copies the strings (-EEXIST if the name is taken). */
int ig_sim_add_adapter(struct ig_sim_config *c, struct ig_str name, struct ig_str path,
		       struct ig_str base);
int ig_sim_find_adapter(const struct ig_sim_config *c, struct ig_str name);
int ig_sim_remove_adapter(struct ig_sim_config *c, struct ig_str name);
/* The name metrics are labelled with: the first served name, else --model. */
const char *ig_sim_label_name(const struct ig_sim_config *c);
/* True when name is one of the base model's names (served names, or
 * --model when no served name was given). */
bool ig_sim_is_base_name(const struct ig_sim_config *c, struct ig_str name);

/* ---- tokens and text (text.c) -------------------------------------------- */

/* A deterministic stand-in for a tokenizer: each run of ASCII letters and
 * digits is one token, every other non-blank character (a UTF-8 sequence
 * counts as one character) is one token. */
size_t ig_sim_count_tokens(struct ig_str s);
/* The same tokens as ids (a hash of each token's bytes): writes the first
 * `max` of them to ids and returns the count. */
size_t ig_sim_tokenize(struct ig_str s, uint64_t *ids, size_t max);
/* The same tokens as text: token k's span runs from the end of token k-1
 * (the start of s for the first) to its own end, so it carries the blanks
 * before it and the spans put together give s back without its trailing
 * blanks. Writes the first `max` at most and returns how many it wrote. */
size_t ig_sim_token_spans(struct ig_str s, struct ig_str *spans, size_t max);
/* The id of a special token such as a chat-template marker. */
uint64_t ig_sim_token_id(const char *token);
/* Chat prompts: every message costs its content's tokens plus
 * IG_SIM_CHAT_MSG_OVERHEAD (role marker, role, separator, end marker), and
 * the prompt that opens the assistant's turn adds IG_SIM_CHAT_REPLY_OVERHEAD. */
#define IG_SIM_CHAT_MSG_OVERHEAD 4
#define IG_SIM_CHAT_REPLY_OVERHEAD 3
/* A seed for the generator from what makes a response deterministic. */
uint64_t ig_sim_text_seed(struct ig_str prompt, struct ig_str model, uint64_t seed);
/* The next generated token, a word with its leading space. */
const char *ig_sim_next_word(struct ig_rng *r);
/* The same draw as its index among the words (ig_sim_word gives it). */
unsigned ig_sim_next_word_index(struct ig_rng *r);
/* Word k (modulo their number) of those the generator writes. */
const char *ig_sim_word(uint64_t k);
#define IG_SIM_WORDS 64
/* Where a chat answer ends on its own ("stop"): 8..64 tokens. */
long ig_sim_natural_len(uint64_t text_seed);

/* ---- responses (render.c) ------------------------------------------------ */

/* The APIs the simulator answers: OpenAI's completions, chat completions,
 * Responses and embeddings, and Anthropic's Messages, each as vLLM serves
 * it. */
enum ig_sim_kind {
	IG_SIM_COMPLETION,
	IG_SIM_CHAT,
	IG_SIM_RESPONSES,
	IG_SIM_EMBEDDINGS,
	IG_SIM_MESSAGES
};

/* What a Responses object repeats of its request: compact JSON texts
 * (empty: the field was absent or null, and the default is written). */
struct ig_sim_echo {
	struct ig_str instructions, metadata, tool_choice, tools, user;
	bool has_temperature, has_top_p;
	double temperature, top_p;
};

struct ig_sim_resp {
	enum ig_sim_kind kind;
	struct ig_str id; /* with its cmpl-/chatcmpl-/resp_/msg_/embd- prefix */
	int64_t created;
	struct ig_str model;
	struct ig_str text;
	const char *finish; /* "stop", "length" or NULL while generating */
	/* The stop string that ended the answer (finish "stop"), else NULL:
	 * the choice's stop_reason; else, with stop_by_token, the id in
	 * stop_token_ids that ended it (an integer stop_reason). */
	struct ig_str stop_reason;
	bool stop_by_token;
	int64_t stop_token;
	/* Completions and chat with logprobs (else "logprobs": null), lp_top
	 * alternatives each: the tokens this body or chunk reports, as indices
	 * of the generator's words, the first being token lp_pos0 of the
	 * answer at text offset lp_off0; lp_seed makes their values. */
	bool logprobs;
	unsigned lp_top;
	/* n > 1: this choice's index; more_choices: others are still being
	 * generated, so a finishing chunk does not end the stream; choices:
	 * every choice's answer, for the body sent whole (nchoices > 1; else
	 * this one is the only). */
	int index;
	bool more_choices;
	const struct ig_sim_resp *choices;
	size_t nchoices;
	const uint8_t *lp_words;
	size_t lp_n;
	/* Completions with echo: the prompt's text, whose tokens the logprobs
	 * list first (the whole body, or a stream's first chunk). */
	struct ig_str lp_prompt;
	/* prompt_logprobs asked for: the value of that member, JSON text
	 * (empty: null). */
	struct ig_str prompt_lp;
	long lp_pos0;
	size_t lp_off0;
	uint64_t lp_seed;
	long prompt_tokens, completion_tokens;
	/* A stream chunk's usage (continuous_usage): this choice's own prompt
	 * and tokens so far, as vLLM's previous_num_tokens[i]. */
	long own_prompt_tokens, own_completion_tokens;
	/* Streams: first is set on the first token's events; include_usage
	 * asks for the OpenAI usage chunk at the end, continuous_usage for the
	 * usage so far on every chunk. cached_details: usage carries
	 * prompt_tokens_details.cached_tokens (cached_tokens, when above 0). */
	bool first, include_usage, continuous_usage, cached_details;
	/* Chat streams: the role chunk of this choice went out already (the
	 * engine sends every choice's first, before any content). */
	bool role_sent;
	/* Responses: the whole answer so far (the done events repeat it), the
	 * output message's id, the prompt tokens the prefix cache held, the
	 * answer's token limit and the request's echoed fields (NULL: all
	 * defaults). */
	struct ig_str full_text;
	struct ig_str item_id;
	long cached_tokens;
	long max_output_tokens;
	const struct ig_sim_echo *echo;
	/* Embeddings: the request's `input` JSON, the vector length, base64
	 * instead of a list of floats, and the seed the vectors hash with. */
	struct ig_str input;
	long dims;
	bool base64;
	uint64_t embed_seed;
	/* Chat: the answer's role (empty: "assistant"). */
	struct ig_str role;
	/* Chat: a call of tool_name (id tool_id) whose arguments are the text,
	 * instead of content, unless tool_mode is IG_SIM_TOOL_NONE. */
	enum ig_sim_tool_mode tool_mode;
	struct ig_str tool_name, tool_id;
	/* Completions and chat in the latest mode: the keys vLLM v0.10+'s
	 * response models add (service_tier, system_fingerprint,
	 * kv_transfer_params, token_ids, prompt_token_ids, the OpenAI
	 * ChatMessage's fields), null unless set; 0.8 has none of them. */
	bool newer_keys;
	/* With newer_keys: this choice's (or chunk's) generated token ids and
	 * the prompt's, JSON lists (empty: null), what return_token_ids asks
	 * for. */
	struct ig_str token_ids, prompt_ids;
};

/* The non-streamed body. -1 when out of memory (or, for embeddings, when
 * r->input is not what the parser accepted). */
int ig_sim_render_full(struct ig_buf *out, const struct ig_sim_resp *r);
/* One SSE event carrying r->text (and r->finish, if set): completions and
 * chat only. */
int ig_sim_render_chunk(struct ig_buf *out, const struct ig_sim_resp *r);
/* Token texts as a request records them (ig_sim_request.texts): per
 * token a uint32_t length, then the bytes. The next one from *at: 1, or 0
 * at the end (or at a record cut short). */
static inline int ig_sim_text_next(const struct ig_buf *texts, size_t *at, struct ig_str *out)
{
	uint32_t len;
	if (!texts || *at + sizeof len > texts->len)
		return 0;
	memcpy(&len, texts->ptr + *at, sizeof len);
	if (len > texts->len - *at - sizeof len)
		return 0;
	*out = (struct ig_str){texts->ptr + *at + sizeof len, len};
	*at += sizeof len + len;
	return 1;
}
/* The prompt_logprobs value for a prompt of n tokens (their ids, and
 * their texts as records) with `top` alternatives per token. */
int ig_sim_render_prompt_logprobs(struct ig_buf *b, const uint64_t *ids, size_t n,
				  const struct ig_buf *texts, unsigned top);
/* The chat stream's first event: the assistant role, no text. */
int ig_sim_render_role_chunk(struct ig_buf *out, const struct ig_sim_resp *r);
/* The usage event (choices empty). */
int ig_sim_render_usage_chunk(struct ig_buf *out, const struct ig_sim_resp *r);
/* What a stream sends before its first token, as soon as the request is
 * accepted: the Responses API's response.created and response.in_progress
 * (nothing for the other APIs). *seq counts the Responses events. */
int ig_sim_render_stream_open(struct ig_buf *out, const struct ig_sim_resp *r, long *seq);
/* Every event one new token (r->text) causes, in each API's order: the
 * opening events with the first token (r->first), the token's delta, and
 * with the last token (r->finish set) the closing events up to the end of
 * the stream. */
int ig_sim_render_token(struct ig_buf *out, const struct ig_sim_resp *r, long *seq);
/* vLLM's error body: nested {"error":{..}} (latest) or flat (0.8). param
 * may be NULL; 0.8 always writes null. */
int ig_sim_render_error(struct ig_buf *out, enum ig_sim_version v, int code, const char *type,
			const char *param, const char *msg);
/* Anthropic's error body {"type":"error","error":{"type":..,"message":..}}
 * with the type Anthropic uses for that status. */
int ig_sim_render_anthropic_error(struct ig_buf *out, int status, const char *msg);
const char *ig_sim_anthropic_error_type(int status);
/* The error body an API answers with: Anthropic's for Messages, vLLM's
 * for the others. */
int ig_sim_render_api_error(struct ig_buf *out, enum ig_sim_version v, enum ig_sim_kind kind,
			    int code, const char *type, const char *param, const char *msg);
/* Copies the echoed fields of `raw` (JSON texts as the request wrote them)
 * into store in compact form (no spacing, so that they fit on an SSE data
 * line) and points `out` at the copies. */
int ig_sim_echo_compact(const struct ig_sim_echo *raw, struct ig_buf *store,
			struct ig_sim_echo *out);

/* ---- embeddings (embed.c) ------------------------------------------------ */

/* The inputs of an embeddings request's `input`: a string, a list of token
 * ids, a list of strings or a list of lists of ids. Start with *pos = 0;
 * returns 1 with the next input, 0 at the end. */
int ig_sim_embed_next(struct ig_json_value input, size_t *pos, struct ig_json_value *one);
/* A deterministic unit vector for one input (a string or a list of ids):
 * every token adds a pseudo-random pattern drawn from its id and `seed`, so
 * inputs that share words point in similar directions. -1 out of memory. */
int ig_sim_embedding(struct ig_json_value one, uint64_t seed, float *vec, size_t dims);
/* Base64 (RFC 4648, padded) of n bytes, appended to out. */
int ig_sim_base64(struct ig_buf *out, const void *data, size_t n);

/* ---- generation requests (request.c) ----------------------------------------- */

/* A request body, checked the way vLLM checks it and reduced to what the
 * simulator needs to run it. */
/* Structured outputs: what the answer's text must be. */
enum ig_sim_structured {
	IG_SIM_FREE,   /* anything */
	IG_SIM_JSON,   /* a JSON value the schema describes (any object without one) */
	IG_SIM_CHOICE, /* one of the strings listed */
};

/* The answer's text for structured outputs of `kind`: a JSON value that
 * fits the schema `spec` (JSON text; empty: any object), or one of the
 * strings of the JSON list `spec`, drawn from rng (structured.c says what
 * of JSON Schema is followed). 0, or -1 when spec does not parse or out
 * of memory. */
int ig_sim_structured_text(enum ig_sim_structured kind, struct ig_str spec, struct ig_rng *rng,
			   struct ig_buf *out);

struct ig_sim_request {
	enum ig_sim_kind kind;
	struct ig_buf model; /* `model` as asked, decoded; empty if omitted */
	/* Completions and chat: the body's `request_id`, decoded (empty when
	 * not given), which names the answer when no X-Request-Id does. */
	struct ig_buf request_id;
	struct ig_str name;	  /* the name answered with: model, or the label name */
	bool adapter;		  /* name is a LoRA adapter, not the base model */
	struct ig_str prompt_key; /* the prompt's JSON text (points into the body) */
	/* Responses: background mode asked with the default store, and
	 * previous_response_id as a JSON string (points into the body; empty
	 * when not given). vLLM without a response store refuses both after
	 * its model check. */
	bool background;
	struct ig_str prev_response;
	/* What vLLM refuses once the prompt is checked, in the serving code's
	 * to_sampling_params or the engine's parameter checks (a 400 with this
	 * message), NULL when nothing. */
	const char *late_error;
	long prompt_tokens;
	/* Tokens the answer may have, checked against the context; 1 for
	 * embeddings, whose one engine output is the vector. */
	long max_tokens;
	bool stream, include_usage, ignore_eos;
	bool continuous_usage; /* stream_options.continuous_usage_stats (with include_usage) */
	bool has_temp, has_seed;
	double temperature;
	int64_t seed;
	int64_t priority;   /* vLLM's `priority`: lower is served first */
	int64_t min_tokens; /* no end (EOS, stop string) before this many */
	long n;		    /* completions and chat: choices to generate */
	/* best_of (0: not given): 0.8 runs this many sequences per prompt
	 * and answers the first n; a stream whose n differs then goes out
	 * whole, in one event (whole_stream). */
	long best_of;
	bool whole_stream;
	/* A completion's use_beam_search: answered as sampled text, but a
	 * stream goes out whole in 0.8 mode. */
	bool beam_search;
	/* Completions: the prompts a `prompt` list holds (1 for one prompt)
	 * and which of them this parse read (ig_sim_parse_request_at). */
	long nprompts, prompt_index;
	/* logprobs asked for: the alternatives per token (completions'
	 * `logprobs`, chat's `top_logprobs`), -1 when the answer carries none. */
	int lp_top;
	/* Completions and chat: `stop` strings, decoded, each followed by a
	 * NUL (nstop of them), and include_stop_str_in_output. */
	struct ig_buf stop;
	size_t nstop;
	bool include_stop;
	/* Completions and chat: vLLM's `stop_token_ids` (int64_t each). */
	struct ig_buf stop_ids;
	size_t nstop_ids;
	/* Completions with `echo`: the prompt's text, which the answer's text
	 * starts with (a prompt of token ids reads as their words). */
	bool echo_prompt;
	struct ig_buf echo_text;
	/* Chat without add_generation_prompt: the answer's role, the last
	 * message's (empty: the assistant's). */
	struct ig_buf role;
	/* echo with max_tokens 0: the prompt alone (vLLM runs one step and
	 * shows nothing of it). */
	bool echo_only;
	/* The prompt's token ids (uint64_t), for prefix-cache keys. Past the
	 * buffer's ceiling the rest is not recorded, so what is recorded is
	 * always a prefix of the prompt. */
	struct ig_buf ids;
	bool ids_truncated;
	/* A prompt of token ids names one outside the vocabulary: the
	 * largest such id, else the smallest negative one (oov_id). */
	bool oov;
	int64_t oov_id;
	/* /tokenize with return_token_strs: each id's text beside it, as
	 * records of a uint32_t length and the bytes (NULL: not kept). */
	struct ig_buf *texts;
	/* Completions' and chat's prompt_logprobs: the alternatives per
	 * prompt token (-1: none asked), the texts of the prompt's tokens
	 * (what `texts` points to then) and the answer's prompt_logprobs
	 * value, written once the prompt is known. */
	int prompt_lp;
	struct ig_buf prompt_texts;
	struct ig_buf prompt_lp_json;
	/* Completions and chat: vLLM's return_token_ids (the latest mode),
	 * and the prompt's ids as a JSON list when the answer lists them
	 * (empty otherwise). */
	bool return_token_ids;
	struct ig_buf prompt_ids_json;
	/* Structured outputs (response_format, guided_json, guided_choice,
	 * structured_outputs, Responses' text.format): the schema or the list
	 * of choices as JSON text, into the body or into spec_buf (a schema
	 * given as a string). */
	enum ig_sim_structured structured;
	struct ig_str spec;
	struct ig_buf spec_buf;
	/* Chat: the tools (the list as written, into the body; ntools of
	 * them), how the answer calls one, and which when it is named. */
	struct ig_str tools;
	long ntools, tool_pick;
	enum ig_sim_tool_mode tool_mode;
	/* Responses: the fields the answer repeats, as written (into the body). */
	struct ig_sim_echo echo;
	/* Embeddings: `input` (into the body; for the chat form, `messages`,
	 * the prompt's ids as a JSON list in input_buf), the number of
	 * inputs, the vector length asked for (`dimensions`, else the
	 * configured one) and encoding_format base64. */
	struct ig_str input;
	struct ig_buf input_buf;
	long ninputs;
	long dims;
	bool base64;
};

/* The most choices (`n`) a request may ask for. */
#define IG_SIM_MAX_N 128
/* The engine sequences a request runs per prompt: n, or best_of. */
static inline long ig_sim_seqs_per_prompt(const struct ig_sim_request *r)
{
	return r->best_of > r->n ? r->best_of : r->n;
}

/* Why a request was refused: what the error body says. */
struct ig_sim_error {
	int status;	   /* 400, 404, or 500 when out of memory */
	const char *type;  /* "BadRequestError", "NotFoundError", ... */
	const char *param; /* the field at fault, or NULL */
	/* A request-validation error (vLLM's pydantic layer), whose type and
	 * param the latest release writes its own way; param may point into
	 * param_buf then. */
	bool validation;
	char param_buf[96];
	char msg[512];
};

/* Parses and checks a body of the API `kind` against c: field types, the
 * answer's length, the model name (a base name or a loaded adapter) and
 * the context length. The prompt is laid out as a chat template would lay
 * it out (roles, markers, tool definitions first) for the token count and
 * the prefix-cache ids.
 * Returns 0 with out filled, or -1 with err filled. Either way out must be
 * released with ig_sim_request_free; it points into body and c, which must
 * outlive it. */
int ig_sim_parse_request(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
			 size_t len, struct ig_sim_request *out, struct ig_sim_error *err);
/* The same for prompt `index` of a completion whose `prompt` lists several
 * (out->nprompts says how many; the other fields are the body's). */
int ig_sim_parse_request_at(const struct ig_sim_config *c, enum ig_sim_kind kind, const char *body,
			    size_t len, long index, struct ig_sim_request *out,
			    struct ig_sim_error *err);
void ig_sim_request_free(struct ig_sim_request *r);
/* Tool i of a request's `tools` (the list's JSON text): the object that
 * holds its name and parameters (chat's `function`, or the Responses
 * API's tool itself). 0, or -1 when there is no such tool. */
int ig_sim_tool_at(struct ig_str tools, long i, struct ig_json_value *fn);
/* A /tokenize body (vLLM's TokenizeCompletionRequest, `prompt` a string,
 * or TokenizeChatRequest, `messages` laid out as for chat, with
 * add_generation_prompt, default true, for the opening of the reply):
 * the ids in out->ids, the model resolved, *strs set when
 * return_token_strs asks for the tokens' texts, and the texts recorded in
 * out->texts when it was set before the call. No context check:
 * vLLM's /tokenize answers max_model_len beside the count. */
int ig_sim_parse_tokenize(const struct ig_sim_config *c, const char *body, size_t len,
			  struct ig_sim_request *out, bool *strs, struct ig_sim_error *err);
/* A /detokenize body ({model, tokens: [ids]}): the ids, each checked to be
 * below IG_SIM_VOCAB, in out->ids (as uint64_t), the model resolved. */
int ig_sim_parse_detokenize(const struct ig_sim_config *c, const char *body, size_t len,
			    struct ig_sim_request *out, struct ig_sim_error *err);

/* ---- /tokenize and /detokenize (tokenize.c) ------------------------------------ */

/* The answers' token ids: the toy tokenizer's 64-bit ids folded into a
 * vocabulary the size of Qwen2.5's. */
#define IG_SIM_VOCAB 151936u
static inline uint32_t ig_sim_vocab_id(uint64_t id)
{
	return (uint32_t)(id % IG_SIM_VOCAB);
}

/* The texts of ids this simulator's /tokenize listed lately (a fixed table
 * of 65,536 entries, one per id modulo its size, the latest kept), so that
 * /detokenize gives their text back. */
struct ig_sim_vocab;
struct ig_sim_vocab *ig_sim_vocab_new(void);
void ig_sim_vocab_free(struct ig_sim_vocab *v);
/* Remembers the text of a token the simulator gave out by id (an answer's
 * token_ids), so that /detokenize gives it back. */
void ig_sim_vocab_note(struct ig_sim_vocab *v, uint32_t id, struct ig_str text);

/* The answer to a parsed /tokenize whose texts were recorded in `texts`:
 * {"count", "max_model_len", "tokens", "token_strs"}, the texts listed
 * when strs (return_token_strs), else null; the ids' texts are remembered
 * in v. Returns 0, -1 out of memory. */
int ig_sim_tokenize_answer(const struct ig_sim_config *c, struct ig_sim_vocab *v,
			   const struct ig_sim_request *r, const struct ig_buf *texts, bool strs,
			   struct ig_buf *out);
/* {"prompt"} for a parsed /detokenize: the remembered text of each id,
 * else a word of the generator's. */
int ig_sim_detokenize_answer(const struct ig_sim_vocab *v, const struct ig_sim_request *r,
			     struct ig_buf *out);
/* The number of ids recorded in r->ids. */
size_t ig_sim_request_nids(const struct ig_sim_request *r);

/* ---- metrics (render.c) -------------------------------------------------- */

#define IG_SIM_LORA_HISTORY 16
#define IG_SIM_MAX_BUCKETS 32

struct ig_sim_hist {
	uint64_t counts[IG_SIM_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	double sum;
	uint64_t count;
};

struct ig_sim_lora_series {
	char *running;
	char *waiting;
	double t; /* Unix seconds of the last time this state was reported */
};

enum ig_sim_finish { IG_SIM_FIN_STOP, IG_SIM_FIN_LENGTH, IG_SIM_FIN_ABORT, IG_SIM_FIN_N };

struct ig_sim_stats {
	double prompt_tokens, generation_tokens;
	double preemptions;
	double prefix_queries, prefix_hits; /* tokens */
	double success[IG_SIM_FIN_N];
	bool success_seen[IG_SIM_FIN_N];
	struct ig_sim_hist ttft, e2e;
	/* The other histograms vLLM writes (vllm-api.md §5.2): the time
	 * between a request's tokens; its time queued, in prefill, in decode
	 * and running (inference); its mean time per output token (the
	 * latest release's request_time_per_output_token_seconds); its
	 * prompt and generated tokens, its max_tokens and, once per request,
	 * the most tokens any of its choices generated and (per prompt) its
	 * `n`; the tokens of each engine step. */
	struct ig_sim_hist tpot, queue, prefill, decode, inference, req_tpot;
	struct ig_sim_hist req_prompt, req_gen, req_max_tokens, req_max_gen, req_n, iter;
	/* Oldest first; the newest is the current state. */
	struct ig_sim_lora_series lora[IG_SIM_LORA_HISTORY];
	size_t nlora;
	double lora_last_t;
};

/* The gauges of this instant. */
struct ig_sim_gauges {
	long running, waiting;
	double kv_usage;
};

const double *ig_sim_ttft_buckets(enum ig_sim_version v, size_t *n);
/* e2e's buckets serve the request's phases (queue, prefill, decode,
 * inference) too. */
const double *ig_sim_e2e_buckets(enum ig_sim_version v, size_t *n);
const double *ig_sim_tpot_buckets(enum ig_sim_version v, size_t *n);
const double *ig_sim_iter_buckets(enum ig_sim_version v, size_t *n);
/* request_params_n's buckets, the same in every release. */
const double *ig_sim_n_buckets(size_t *n);
/* The token-count histograms' buckets: 1, 2, 5, 10, 20, 50, ... up to
 * max_model_len, into out (IG_SIM_MAX_BUCKETS at most); returns how many. */
size_t ig_sim_token_buckets(long max_model_len, double *out);
void ig_sim_hist_observe(struct ig_sim_hist *h, const double *bounds, size_t n, double v);
/* Records that the LoRA state (comma-joined names) was seen at `now`; the
 * series' value is kept strictly increasing so the newest state is always
 * the largest, which is how routers find it. Keeps the last
 * IG_SIM_LORA_HISTORY states, like vLLM keeps every one. */
int ig_sim_lora_note(struct ig_sim_stats *s, const char *running, const char *waiting, double now);
void ig_sim_stats_free(struct ig_sim_stats *s);
int ig_sim_render_metrics(struct ig_buf *out, const struct ig_sim_config *c,
			  const struct ig_sim_stats *s, const struct ig_sim_gauges *g);
/* What prometheus_client's app (vLLM's /metrics) answers to a query with
 * name[] parameters: only the samples with one of those names, with the
 * HELP and TYPE lines of their families. A query without name[] keeps the
 * whole page. Appends to out; -1 when out of memory. */
int ig_sim_filter_metrics(struct ig_str page, struct ig_str query, struct ig_buf *out);
/* A float the way Python's prometheus_client prints it ("1.0", "0.25"). */
int ig_sim_fmt_float(char *out, size_t len, double v);
/* A float as Python's repr() (and so json.dumps) writes it: the shortest
 * text that reads back as v, "-0.717", "1.0", "1e-05". */
int ig_sim_py_float(char *out, size_t len, double v);

#endif
