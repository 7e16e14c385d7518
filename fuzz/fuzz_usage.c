/* Fuzzes ig_json_find_usage(), which reads a peer's response backwards
 * from its end, perhaps from a window that starts anywhere in it.
 *   1. The input itself and tail windows of it, each an exact-size copy so
 *      that ASan sees a read before the window: when the input is a valid
 *      document the answer for the whole equals a full parse and lookups,
 *      and a window finds either nothing or the same.
 *   2. The input as text inside a made-up response, as the content before
 *      the usage and in members after it (a nested usage included): the
 *      decoys must not matter, from the whole response or from a window
 *      that starts before the usage key.
 *   3. ig_json_ends_with_null_usage() on a valid object: never where a
 *      full parse finds the root's usage counts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "json/usage.h"

/* Of two names for one count (Chat's prompt_tokens, the Responses API's
 * input_tokens), the member that comes later wins, as a later duplicate does:
 * ig_json_get() gives the last of each, and the raw positions order them. */
static bool later(struct ig_json_value obj, const char *a, const char *b, struct ig_json_value *out)
{
	struct ig_json_value va, vb;
	bool ha = ig_json_get(obj, a, &va) == 0, hb = ig_json_get(obj, b, &vb) == 0;

	if (ha && (!hb || va.raw.ptr > vb.raw.ptr))
		*out = va;
	else if (hb)
		*out = vb;
	return ha || hb;
}

static int64_t count_of(struct ig_json_value v)
{
	int64_t n;

	return ig_json_int64(v, &n) < 0 || n < 0 ? -1 : n;
}

static int by_parse(const char *s, size_t len, struct ig_usage *u)
{
	struct ig_json_value root, usage, det, v;

	*u = (struct ig_usage){-1, -1, -1};
	if (ig_json_parse(s, len, &root) < 0 || ig_json_get(root, "usage", &usage) < 0 ||
	    usage.type != IG_JSON_OBJECT)
		return -1;
	if (later(usage, "prompt_tokens", "input_tokens", &v))
		u->prompt_tokens = count_of(v);
	if (later(usage, "completion_tokens", "output_tokens", &v))
		u->completion_tokens = count_of(v);
	/* Cached tokens under any of three names (GIE v1.5 reads
	 * prompt_token_details), the last member of them deciding. */
	struct ig_json_value d2;
	bool hd = later(usage, "prompt_tokens_details", "input_tokens_details", &det);
	if (ig_json_get(usage, "prompt_token_details", &d2) == 0 &&
	    (!hd || d2.raw.ptr > det.raw.ptr)) {
		det = d2;
		hd = true;
	}
	if (hd && ig_json_get(det, "cached_tokens", &v) == 0)
		u->cached_tokens = count_of(v);
	return 0;
}

static int find(const char *s, size_t len, struct ig_usage *u)
{
	char *copy = malloc(len ? len : 1);

	memcpy(copy, s, len);

	int rc = ig_json_find_usage(copy, len, u);

	free(copy);
	if (rc < 0 &&
	    (u->prompt_tokens != -1 || u->completion_tokens != -1 || u->cached_tokens != -1))
		abort();
	return rc;
}

static bool same(const struct ig_usage *a, const struct ig_usage *b)
{
	return a->prompt_tokens == b->prompt_tokens &&
	       a->completion_tokens == b->completion_tokens && a->cached_tokens == b->cached_tokens;
}

/* Up to 64 window starts: all of them for short inputs. */
static void windows(const char *s, size_t len, int want, const struct ig_usage *ref)
{
	size_t step = len / 64 + 1;

	for (size_t start = 1; start <= len; start += step) {
		struct ig_usage u;
		if (find(s + start, len - start, &u) == 0 && (want != 0 || !same(&u, ref)))
			abort();
	}
}

static void wrapped(const char *data, size_t size)
{
	struct ig_buf str, doc;
	struct ig_usage u;
	int64_t p = (int64_t)size, c = (int64_t)size * 7 + 1;

	ig_buf_init(&str, 0);
	ig_buf_init(&doc, 0);
	if (ig_json_write_string(&str, data, size) < 0)
		abort();
	ig_buf_append_cstr(&doc, "{\"choices\":[{\"text\":");
	ig_buf_append(&doc, str.ptr, str.len);
	ig_buf_printf(&doc,
		      "}],\n\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
		      "\"prompt_tokens_details\":{\"cached_tokens\":%lld}},",
		      (long long)p, (long long)c, (long long)(p / 2));
	size_t key = (size_t)((const char *)memmem(doc.ptr, doc.len, "\n\"usage\"", 8) - doc.ptr);
	ig_buf_append_cstr(&doc, "\"x\":");
	ig_buf_append(&doc, str.ptr, str.len);
	ig_buf_append_cstr(&doc, ",\"y\":[");
	ig_buf_append(&doc, str.ptr, str.len);
	ig_buf_append_cstr(&doc, ",{\"usage\":");
	ig_buf_append(&doc, str.ptr, str.len);
	ig_buf_append_cstr(&doc, "}]} \n");

	struct ig_usage want = {p, c, p / 2};
	if (find(doc.ptr, doc.len, &u) != 0 || !same(&u, &want))
		abort();
	/* A window that starts at the newline before the key. */
	if (find(doc.ptr + key, doc.len - key, &u) != 0 || !same(&u, &want))
		abort();
	ig_buf_free(&str);
	ig_buf_free(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct ig_usage ref, u;
	int want = by_parse(s, size, &ref);
	int rc = find(s, size, &u);
	struct ig_json_value root;

	if (ig_json_parse(s, size, &root) == 0) {
		if (rc != want || !same(&u, &ref))
			abort();
		/* A root ending with "usage": null has no usage counts. */
		if (root.type == IG_JSON_OBJECT && ig_json_ends_with_null_usage(s, size) &&
		    want == 0)
			abort();
		windows(s, size, want, &ref);
	}
	wrapped(s, size);
	return 0;
}
