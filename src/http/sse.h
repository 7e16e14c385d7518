/* The text/event-stream framing of streamed model-server answers: splits
 * the byte stream, cut anywhere, into the payloads of its `data` lines.
 * Shared by the gateway (usage accounting) and `infergate bench`.
 *
 * What is recognised (the WHATWG EventSource parsing rules, minus what an
 * OpenAI-style stream never uses):
 *   - lines end with LF or CRLF; a CR elsewhere stays in the line;
 *   - `data:` followed by the payload, with one space after the colon
 *     removed when present (`data: x` and `data:x` both give "x"), and a
 *     bare `data` line gives an empty payload;
 *   - comments (`:` lines), other fields (`event:`, `id:`, `retry:`,
 *     anything else) and blank lines are ignored;
 *   - a UTF-8 byte order mark before the first line is dropped.
 * Each data line is reported on its own: payloads of consecutive data lines
 * are not joined into one event (vLLM and OpenAI put each event's JSON on
 * one line). A last line without its line end is never reported. */
#ifndef IG_HTTP_SSE_H
#define IG_HTTP_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

/* The line ceiling a zero max_line stands for. */
#define IG_SSE_DEFAULT_MAX_LINE (256u * 1024)

/* ig_sse_init() flags. */
enum {
	/* An over-long line fails the feed (-ENOBUFS) instead of being
	 * skipped: for a client that treats it as a protocol error. */
	IG_SSE_STRICT = 1u << 0,
};

/* A zeroed struct is a splitter with the default ceiling and no flags. */
struct ig_sse {
	struct ig_buf line; /* the start of a line cut by the end of a piece */
	size_t max_line;    /* longest line kept, line end excluded; 0: default */
	unsigned flags;
	bool skipping;	  /* inside an over-long line: dropping up to its end */
	bool started;	  /* past the first line (where a BOM may be) */
	uint64_t dropped; /* over-long lines so far */
};

/* Receives one payload (not NUL-terminated; valid during the call only).
 * Returns 0 to go on; anything else stops the feed, which returns it. */
typedef int (*ig_sse_cb)(void *ud, const char *data, size_t len);

void ig_sse_init(struct ig_sse *s, size_t max_line, unsigned flags);

/* Splits the next piece of the stream and calls cb for each data line it
 * completes. Complete lines are handed over from p itself; only a line cut
 * by the end of the piece is copied, up to max_line (+1 for a CR) bytes.
 * A line longer than max_line is dropped whole and counted in s->dropped,
 * whatever the cuts, and the lines after it are read as usual; it counts
 * as soon as more than max_line + 1 bytes of it have come, before its end
 * does. Returns 0,
 * cb's non-zero value (the rest of the piece is not read, and the stream
 * cannot be resumed), -ENOBUFS for an over-long line with IG_SSE_STRICT,
 * or -ENOMEM. */
int ig_sse_feed(struct ig_sse *s, const char *p, size_t len, ig_sse_cb cb, void *ud);

void ig_sse_free(struct ig_sse *s);

/* Whether a Content-Type value is text/event-stream, parameters aside; a
 * media type compares without regard to case (RFC 9110 §8.3.1). */
bool ig_sse_media_type(struct ig_str content_type);

#endif
