/* ig_json_parse_members() done while the document arrives: a request body
 * is validated piece by piece as the server reads it, so that when its
 * last byte comes, the work left is the last piece's. A 1 MB prompt no
 * longer waits for a 1 MB scan between its arrival and its dispatch.
 *
 * The text is one buffer that only grows at its end (a request body being
 * read into place): each ig_json_stream_feed() gets the buffer as it is now
 * and goes on from where the previous call stopped. The buffer may move
 * between calls (it is addressed by offsets); the bytes already fed must
 * not change. A token cut by the end of what has arrived (an escape, a
 * UTF-8 sequence, a literal) is left for the next call, which reads it
 * whole; strings, numbers and whitespace of any length are consumed as
 * they come, so the total work is linear in the document.
 *
 * Accepts exactly the documents ig_json_parse() accepts and reports the
 * same root and members as ig_json_parse_members() (test_json_stream holds
 * it to that, and fuzz_json_stream with any cut of any input). */
#ifndef IG_JSON_STREAM_H
#define IG_JSON_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "json/json.h"

/* A member of the root object, by offsets into the text. */
struct ig_json_stream_member {
	size_t start, len; /* len 0: not found */
	enum ig_json_type type;
};

#define IG_JSON_STREAM_MAX_KEYS 16

struct ig_json_stream {
	const char *const *keys; /* the members wanted (NUL-terminated names) */
	size_t nkeys;
	size_t pos;	     /* bytes consumed */
	int failed;	     /* the document is invalid: nothing more is read */
	uint8_t mode;	     /* what may come next (stream.c) */
	uint8_t tok;	     /* the token being read: none, string, number */
	uint8_t num;	     /* the number's state */
	uint8_t key;	     /* the string being read is a key */
	unsigned depth;	     /* open containers */
	uint64_t kinds[2];   /* bit d: the container at depth d + 1 is an object */
	size_t root_start;   /* offset of the root value */
	size_t root_end;     /* where it ended (valid once mode says so) */
	uint8_t root_type;   /* enum ig_json_type of the root */
	size_t key_start;    /* the root-level key being read or last read */
	size_t key_end;	     /* (raw span, quotes included) */
	size_t val_start;    /* the root-level member value being read */
	struct ig_json_stream_member found[IG_JSON_STREAM_MAX_KEYS];
};

/* Starts a document whose root members keys[0, nkeys) are wanted
 * (nkeys <= IG_JSON_STREAM_MAX_KEYS; the array must outlive the stream). */
void ig_json_stream_init(struct ig_json_stream *s, const char *const *keys, size_t nkeys);

/* Reads what arrived: text[s->pos, len). Returns 0, or -1 once the text
 * can no longer be a valid document (then and ever after). */
int ig_json_stream_feed(struct ig_json_stream *s, const char *text, size_t len);

/* The document is text[0, len), all of it fed or not: finishes it and
 * fills root and out[0, nkeys) as ig_json_parse_members() does. Returns 0,
 * or -1 when it is not a valid document (out all IG_JSON_INVALID). */
int ig_json_stream_finish(struct ig_json_stream *s, const char *text, size_t len,
			  struct ig_json_value *out, struct ig_json_value *root);

#endif
