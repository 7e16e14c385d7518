/* Token usage out of an OpenAI-style response without parsing the
 * response: the gateway keeps only the last few KiB of a non-streamed body
 * (and sees streamed ones one `data:` payload at a time), and the
 * top-level "usage" member comes at the end. */
#ifndef IG_JSON_USAGE_H
#define IG_JSON_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each count is a non-negative integer, or -1 when the usage object does
 * not carry it (or carries something else: a string, a fraction, a
 * negative number). */
struct ig_usage {
	int64_t prompt_tokens;	   /* prompt_tokens, or input_tokens (Responses, Anthropic) */
	int64_t completion_tokens; /* completion_tokens, or output_tokens */
	/* prompt_tokens_details (input_tokens_details, or GIE v1.5's spelling
	 * prompt_token_details).cached_tokens */
	int64_t cached_tokens;
};

/* Finds the "usage" member of the root object of a JSON document that
 * ends at text + len (trailing whitespace allowed) and reads its counts.
 * text may be only the last bytes of the document, cut anywhere: the scan
 * runs backwards from the root's closing brace, stepping over strings
 * (told apart from escaped quotes by the backslashes before each quote)
 * and nested containers, so "usage" inside a string, or as a key of a
 * nested object, never matches. Keys compare after unescaping, and the
 * last "usage" of the root wins, as in ig_json_get(). Only the usage
 * object itself is validated (strictly, as ig_json_parse() would); the
 * rest of the document is not.
 *
 * Returns 0 and fills *out when the root's last "usage" member is an
 * object; -1 (with every count -1) when the document does not end with
 * an object, when that object has no "usage" within text, when it is null
 * or not an object, or when it is malformed. */
int ig_json_find_usage(const char *text, size_t len, struct ig_usage *out);

/* Whether text ends with the member "usage": null and its object's closing
 * brace (whitespace allowed between and after), as every chunk of a vLLM
 * completions stream but the last does. Told from the last bytes alone:
 * when text is a valid object, its root's last "usage" is then null, so
 * ig_json_find_usage() finds no counts in it. */
bool ig_json_ends_with_null_usage(const char *text, size_t len);

#endif
