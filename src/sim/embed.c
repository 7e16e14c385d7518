/* Embeddings without a model: deterministic vectors drawn from the input's
 * tokens. Each token id seeds a pseudo-random pattern over the vector's
 * components and an input's vector is the normalized sum of its tokens'
 * patterns, so the same input always gives the same vector, inputs that
 * share words have a positive cosine similarity, and an adapter (another
 * seed) answers with other vectors. */
#include <math.h>
#include <stdlib.h>
#include <xxhash.h>

#include "sim/sim.h"

int ig_sim_embed_next(struct ig_json_value input, size_t *pos, struct ig_json_value *one)
{
	struct ig_json_value first;
	size_t p0 = 0;
	/* A string or a list of ids is one input; otherwise every element is. */
	bool single = input.type == IG_JSON_STRING ||
		      (input.type == IG_JSON_ARRAY && ig_json_array_next(input, &p0, &first) == 1 &&
		       first.type == IG_JSON_NUMBER);
	if (single) {
		if (*pos)
			return 0;
		*pos = 1;
		*one = input;
		return 1;
	}
	if (input.type != IG_JSON_ARRAY)
		return 0;
	return ig_json_array_next(input, pos, one);
}

/* splitmix64: a well-mixed 64-bit value from a counter. */
static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Adds the pattern of one token id to acc: a value in [-1, 1) per
 * component. */
static void add_token(double *acc, size_t dims, uint64_t id, uint64_t seed)
{
	uint64_t h = XXH3_64bits_withSeed(&id, sizeof id, seed);
	for (size_t d = 0; d < dims; d++)
		acc[d] += (double)(mix(h + d) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* The token ids of one input: a string through the simulator's tokenizer,
 * or the ids as given. Returns a malloc'd array (NULL with *n 0 for none),
 * or NULL with *n set when out of memory. */
static uint64_t *input_ids(struct ig_json_value one, size_t *n)
{
	struct ig_buf text = {0};
	uint64_t *ids = NULL;
	*n = 0;
	if (one.type == IG_JSON_STRING) {
		if (ig_json_string(one, &text) < 0)
			goto out;
		*n = ig_sim_tokenize(ig_buf_str(&text), NULL, 0);
		ids = *n ? malloc(*n * sizeof *ids) : NULL;
		if (ids)
			ig_sim_tokenize(ig_buf_str(&text), ids, *n);
	} else if (one.type == IG_JSON_ARRAY) {
		struct ig_json_value e;
		size_t pos = 0, cap = 0;
		while (ig_json_array_next(one, &pos, &e) == 1) {
			int64_t id = 0;
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				uint64_t *grown = realloc(ids, cap * sizeof *ids);
				if (!grown) {
					free(ids);
					ids = NULL;
					goto out;
				}
				ids = grown;
			}
			ig_json_int64(e, &id);
			ids[(*n)++] = (uint64_t)id;
		}
	}
out:
	ig_buf_free(&text);
	return ids;
}

int ig_sim_embedding(struct ig_json_value one, uint64_t seed, float *vec, size_t dims)
{
	size_t n;
	uint64_t *ids = input_ids(one, &n);
	double *acc = calloc(dims ? dims : 1, sizeof *acc);
	if ((n && !ids) || !acc) {
		free(ids);
		free(acc);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		add_token(acc, dims, ids[i], seed);
	double norm = 0;
	for (size_t d = 0; d < dims; d++)
		norm += acc[d] * acc[d];
	norm = sqrt(norm);
	/* No tokens (or a sum of exactly zero): the first axis, still unit. */
	for (size_t d = 0; d < dims; d++)
		vec[d] = norm > 0 ? (float)(acc[d] / norm) : (d == 0 ? 1.0f : 0.0f);
	free(ids);
	free(acc);
	return 0;
}

int ig_sim_base64(struct ig_buf *out, const void *data, size_t n)
{
	if (ig_buf_reserve(out, IG_BASE64_LEN(n)) < 0)
		return -1;
	out->len += ig_base64_encode(data, n, out->ptr + out->len);
	return 0;
}
