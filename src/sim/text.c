/* The simulator's tokenizer and text generator. Neither resembles a real
 * model; what matters is that counts are stable and easy to predict from
 * the text, so tests and routers can check usage numbers by hand. */
#include <string.h>
#include <xxhash.h>

#include "sim/sim.h"

static bool is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Bytes 10xxxxxx continue a UTF-8 sequence started earlier. */
static bool is_continuation(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* The next token of s at or after *i: its bytes are [*start, *i) after
 * the call. False at the end (only blanks were left). */
static bool next_token(struct ig_str s, size_t *i, size_t *start)
{
	while (*i < s.len && is_blank((unsigned char)s.ptr[*i]))
		(*i)++;
	if (*i == s.len)
		return false;
	*start = *i;
	if (is_word_byte((unsigned char)s.ptr[*i])) {
		while (*i < s.len && is_word_byte((unsigned char)s.ptr[*i]))
			(*i)++;
	} else {
		(*i)++;
		while (*i < s.len && is_continuation((unsigned char)s.ptr[*i]))
			(*i)++;
	}
	return true;
}

size_t ig_sim_tokenize(struct ig_str s, uint64_t *ids, size_t max)
{
	size_t n = 0, i = 0, start;
	while (next_token(s, &i, &start)) {
		if (n < max)
			ids[n] = XXH3_64bits(s.ptr + start, i - start);
		n++;
	}
	return n;
}

size_t ig_sim_token_spans(struct ig_str s, struct ig_str *spans, size_t max)
{
	size_t n = 0, i = 0, start, end = 0;
	while (n < max && next_token(s, &i, &start)) {
		spans[n++] = (struct ig_str){s.ptr + end, i - end};
		end = i;
	}
	return n;
}

size_t ig_sim_count_tokens(struct ig_str s)
{
	return ig_sim_tokenize(s, NULL, 0);
}

uint64_t ig_sim_token_id(const char *token)
{
	/* A seed no plain token uses keeps markers apart from text. */
	return XXH3_64bits_withSeed(token, strlen(token), 0x5eca1);
}

uint64_t ig_sim_text_seed(struct ig_str prompt, struct ig_str model, uint64_t seed)
{
	uint64_t h = XXH3_64bits_withSeed(prompt.ptr ? prompt.ptr : "", prompt.len, seed);
	return XXH3_64bits_withSeed(model.ptr ? model.ptr : "", model.len, h);
}

/* Sixty-four plain words, so that a token is a word and text reads as
 * (meaningless) English. */
_Static_assert(IG_SIM_WORDS == 64, "IG_SIM_WORDS counts the words below");
static const char *const words[] = {
    " the",    " city",	  " light",  " over",	" bay",	   " fog",     " bridge", " and",
    " a",      " review", " story",  " of",	" quiet",  " streets", " hills",  " morning",
    " is",     " with",	  " every",  " new",	" critic", " writes",  " that",	  " it",
    " feels",  " like",	  " home",   " for",	" people", " who",     " walk",	  " past",
    " old",    " cafes",  " music",  " in",	" park",   " sun",     " wind",	  " water",
    " long",   " night",  " gold",   " red",	" train",  " line",    " moves",  " slowly",
    " at",     " dusk",	  " bright", " sharp",	" voices", " on",      " market", " corner",
    " coffee", " bread",  " simple", " honest", " view",   " from",    " top",	  " again",
};

unsigned ig_sim_next_word_index(struct ig_rng *r)
{
	return (unsigned)ig_rng_below(r, sizeof words / sizeof words[0]);
}

const char *ig_sim_next_word(struct ig_rng *r)
{
	return words[ig_sim_next_word_index(r)];
}

const char *ig_sim_word(uint64_t k)
{
	return words[k % (sizeof words / sizeof words[0])];
}

long ig_sim_natural_len(uint64_t text_seed)
{
	return 8 + (long)((text_seed >> 7) % 57);
}
