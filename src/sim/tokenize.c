/* vLLM's tokenizer endpoints, /tokenize and /detokenize, over the
 * simulator's toy tokenizer: ids folded into a vocabulary of Qwen2.5's
 * size, and a table of the texts of ids listed lately, so that what
 * /tokenize listed with its texts (return_token_strs) /detokenize gives
 * back. An id the table does not hold decodes as one of the generator's
 * words: a real vocabulary maps every id to some text, and this one has
 * no other texts to give. */
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "sim/sim.h"

#define VOCAB_SLOTS 65536u
/* Longer texts are not remembered (one toy token can be a long word). */
#define VOCAB_TEXT_MAX 256u

struct vocab_slot {
	uint32_t id; /* valid when text is set */
	uint32_t len;
	char *text;
};

struct ig_sim_vocab {
	struct vocab_slot slots[VOCAB_SLOTS];
};

struct ig_sim_vocab *ig_sim_vocab_new(void)
{
	return calloc(1, sizeof(struct ig_sim_vocab));
}

void ig_sim_vocab_free(struct ig_sim_vocab *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < VOCAB_SLOTS; i++)
		free(v->slots[i].text);
	free(v);
}

static void remember(struct ig_sim_vocab *v, uint32_t id, const char *text, uint32_t len)
{
	struct vocab_slot *s = &v->slots[id % VOCAB_SLOTS];
	if (len > VOCAB_TEXT_MAX ||
	    (s->text && s->id == id && s->len == len && memcmp(s->text, text, len) == 0))
		return;
	char *t = malloc(len + 1);
	if (!t)
		return;
	memcpy(t, text, len);
	t[len] = '\0';
	free(s->text);
	*s = (struct vocab_slot){id, len, t};
}

void ig_sim_vocab_note(struct ig_sim_vocab *v, uint32_t id, struct ig_str text)
{
	if (v && text.len <= VOCAB_TEXT_MAX)
		remember(v, id, text.ptr, (uint32_t)text.len);
}

int ig_sim_tokenize_answer(const struct ig_sim_config *c, struct ig_sim_vocab *v,
			   const struct ig_sim_request *r, const struct ig_buf *texts, bool strs,
			   struct ig_buf *out)
{
	const uint64_t *ids = (const uint64_t *)(const void *)r->ids.ptr;
	size_t n = ig_sim_request_nids(r);
	ig_buf_printf(out, "{\"count\":%zu,\"max_model_len\":%ld,\"tokens\":[", n,
		      c->max_model_len);
	for (size_t i = 0; i < n; i++)
		ig_buf_printf(out, i ? ",%u" : "%u", ig_sim_vocab_id(ids[i]));
	ig_buf_append_cstr(out, strs ? "],\"token_strs\":[" : "],\"token_strs\":null}");
	size_t at = 0;
	struct ig_str t;
	for (size_t i = 0; i < n && ig_sim_text_next(texts, &at, &t); i++) {
		if (strs) {
			if (i)
				ig_buf_append_cstr(out, ",");
			ig_json_write_string(out, t.ptr, t.len);
		}
		if (v)
			remember(v, ig_sim_vocab_id(ids[i]), t.ptr, (uint32_t)t.len);
	}
	if (strs)
		ig_buf_append_cstr(out, "]}");
	return ig_buf_cstr(out) ? 0 : -1;
}

int ig_sim_detokenize_answer(const struct ig_sim_vocab *v, const struct ig_sim_request *r,
			     struct ig_buf *out)
{
	const uint64_t *ids = (const uint64_t *)(const void *)r->ids.ptr;
	size_t n = ig_sim_request_nids(r);
	struct ig_buf text = {0};
	ig_buf_init(&text, (size_t)1 << 30);
	for (size_t i = 0; i < n; i++) {
		uint32_t id = (uint32_t)ids[i];
		const struct vocab_slot *s = v ? &v->slots[id % VOCAB_SLOTS] : NULL;
		if (s && s->text && s->id == id)
			ig_buf_append(&text, s->text, s->len);
		else
			ig_buf_append_cstr(&text, ig_sim_word(id));
	}
	ig_buf_append_cstr(out, "{\"prompt\":");
	ig_json_write_string(out, text.ptr ? text.ptr : "", text.len);
	ig_buf_append_cstr(out, "}");
	bool ok = ig_buf_cstr(&text) != NULL || n == 0;
	ig_buf_free(&text);
	return ok && ig_buf_cstr(out) ? 0 : -1;
}
