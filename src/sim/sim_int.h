/* Internals shared by the simulator's HTTP side (sim_main.c) and its
 * batch model (engine.c). Not for other modules. */
#ifndef IG_SIM_SIM_INT_H
#define IG_SIM_SIM_INT_H

#include "core/buf.h"
#include "core/rand.h"
#include "event/loop.h"
#include "http/server.h"
#include "sim/model.h"
#include "sim/sim.h"

struct sim {
	struct ig_sim_config cfg;
	struct ig_loop loop;
	struct ig_http_server *server;
	struct ig_sim_stats stats;
	struct ig_sim_model model;
	struct ig_timer step_timer; /* armed while an engine step runs */
	/* The outputs of the step being ended and the prompts whose first
	 * token they carry (vllm:iteration_tokens_total). */
	long step_outputs, step_firsts;
	uint64_t t0_ns;		    /* loop time that simulated time 0 maps to */
	struct ig_rng rng;	    /* sampling, seeded by --seed when given */
	struct ig_sim_vocab *vocab; /* /tokenize's texts, made on first use */
	/* --enable-server-load-tracking: requests submitted and not yet
	 * freed, what GET /load reports (vLLM's server_load_metrics). */
	long server_load;
	size_t max_body_bytes; /* the HTTP server's ceiling on a request body */
};

struct sim_req {
	struct ig_sim_seq seq; /* the engine's view; first, see req_of() */
	struct sim *sim;
	struct ig_http_exchange *ex;
	enum ig_sim_kind kind;
	bool stream, include_usage, continuous_usage;
	char *id; /* "cmpl-...", "chatcmpl-...", "resp_...", "msg_...", "embd-..." */
	int64_t created;
	char *model;	    /* the name answered with */
	char *role;	    /* chat: the answer's role; NULL: "assistant" */
	char *adapter;	    /* NULL for the base model */
	uint64_t *hashes;   /* prompt block hashes, seq.hashes points here */
	const char *finish; /* reason given when the target is reached */
	struct ig_rng rng;
	uint64_t arrival_ns; /* simulated */
	/* When its first and its latest token came out (simulated). */
	uint64_t first_token_ns, last_token_ns;
	struct ig_buf text; /* the answer so far (unless streamed chat or completion) */
	long max_tokens;    /* the answer's limit */
	/* Responses: the next event's sequence number, the output message's
	 * id and the request's echoed fields (compact copies in echo_store). */
	long seq_no;
	char *item_id;
	struct ig_sim_echo echo;
	struct ig_buf echo_store;
	/* Embeddings: a copy of `input`, the vector length and encoding. */
	char *input;
	size_t input_len;
	long dims;
	bool base64;
	/* Stop strings (completions, chat): nstop NUL-terminated strings one
	 * after the other in stop, the longest stop_max bytes long. A stream
	 * holds back the last stop_max - 1 bytes of text (a stop string may
	 * start there) and has sent text[0, sent); the answer ended on
	 * stop_hit when it is set. */
	char *stop;
	size_t nstop, stop_max, sent;
	bool include_stop;
	long min_tokens; /* stop strings count from this many tokens on */
	struct ig_str stop_hit;
	/* stop_token_ids (nstop_ids of them), and the one that ended the
	 * answer when stop_by_token. */
	int64_t *stop_ids;
	size_t nstop_ids;
	bool stop_by_token;
	int64_t stop_token;
	/* Completions with `echo`: the prompt's text, sent before the answer's
	 * (with the first token, when streamed). */
	char *echo_text;
	size_t echo_len;
	char *prompt_lp; /* prompt_logprobs as JSON text; NULL: null */
	size_t prompt_lp_len;
	/* return_token_ids (return_ids): the prompt's ids as a JSON list
	 * (NULL: null; a completions stream with echo has them too), the
	 * ids generated so far (uint32_t each; a stream keeps the last one
	 * alone), and a completion's echo left out of the text, as vLLM
	 * leaves it then. */
	char *prompt_ids;
	size_t prompt_ids_len;
	bool return_ids, echo_hidden;
	struct ig_buf gen_ids;
	bool echo_only; /* max_tokens 0: the step's token is not shown */
	/* The answer's last token (its target) is the end of sequence: it
	 * counts but has no text. */
	bool eos;
	/* Structured outputs: the answer written beforehand (script), handed
	 * out one token (a span of it) a step. */
	struct ig_buf script;
	struct ig_str *pieces;
	long npieces, next_piece;
	/* Chat tool calls: the answer (script) is the arguments of a call to
	 * tool_name, whose id is tool_id. */
	enum ig_sim_tool_mode tool_mode;
	char *tool_name, *tool_id;
	/* logprobs (lp_top >= 0): the answer's words so far (indices of the
	 * generator's, for a body sent whole), the text before the current
	 * token, and the seed of the values. */
	int lp_top;
	uint8_t *lp_words;
	size_t lp_n, lp_cap, lp_textlen;
	uint64_t lp_seed;
	/* n > 1: one engine request per choice, as vLLM fans them out. The
	 * first choice leads: it owns the exchange and lists every choice
	 * (itself first) in choices, live of them still in the engine; each
	 * choice knows its index and its lead. n = 1: lead is NULL. */
	struct sim_req *lead;
	struct sim_req **choices;
	int nchoices, live, index;
	/* The request's `n` and how many prompts it has, for
	 * request_params_n (once per prompt, as vLLM's parent requests). */
	long n_param, nprompts;
	/* best_of above n (0.8): a sequence that runs but is not answered;
	 * whole_stream: a stream that goes out as one event with the whole
	 * body, then [DONE]. */
	bool hidden, whole_stream;
	/* A chat stream's opening (every choice's role chunk) went out: set
	 * on the lead, or on the request itself for n = 1. */
	bool opened;
	long prompt_sum; /* the lead's: prompt tokens of every prompt, once */
	bool done;	 /* out of the engine (released) */
};

/* Simulated time now: loop time since start, times --time-scale. */
uint64_t ig_sim_now(const struct sim *s);
/* Starts the engine (after cfg is final). */
int ig_sim_engine_init(struct sim *s);
/* Queues a parsed request; the engine owns it from here on, answers it and
 * frees it. */
void ig_sim_engine_submit(struct sim *s, struct sim_req *r);
void ig_sim_req_free(struct sim_req *r);
void ig_sim_engine_gauges(const struct sim *s, struct ig_sim_gauges *g);
/* Re-reads the LoRA state (with overrides) into the info series. */
void ig_sim_lora_update(struct sim *s);
/* Frees the engine's own memory (requests are gone by then). */
void ig_sim_engine_free(struct sim *s);

#endif
