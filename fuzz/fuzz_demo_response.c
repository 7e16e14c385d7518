/* libFuzzer target for the response parser of the demo's blocking HTTP
 * client (ig_demo_response_parse). The client parses the whole response
 * again after every read, so the input is parsed the same way: at growing
 * prefixes as if they had just arrived, then whole, with and without the
 * peer's close.
 *
 * Input: one control byte, then the bytes the server sent.
 *   bits 0-1  the request's method: GET, HEAD, POST, DELETE
 *   bits 2-4  prefixes are parsed every (len >> this) bytes (at least 1)
 *
 * Checked: results are -1, 0 or 1; after the close nothing is "need more";
 * a decoded body is never longer than what was received and a HEAD answer
 * has none; a response complete at some prefix stays complete, with the
 * same status and body, once more bytes follow it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "demo/fetch.h"

static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE"};

/* One parse of the first len bytes, checked on its own. */
static int parse(const char *buf, size_t len, bool eof, const char *method,
		 struct ig_demo_response *res)
{
	int rc = ig_demo_response_parse(buf, len, eof, method, res);
	if (rc < -1 || rc > 1 || (eof && rc == 0))
		abort();
	if (rc == 1) {
		if (res->status < 100 || res->status > 999 || res->body.len > len ||
		    !memchr(res->reason, '\0', sizeof res->reason))
			abort();
		if (strcmp(method, "HEAD") == 0 && res->body.len)
			abort();
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_demo_response first = {0}, res = {0};
	int first_rc = 0;

	if (size == 0)
		return 0;
	const char *method = methods[data[0] & 3];
	unsigned shift = (data[0] >> 2) & 7;
	size_t len = size - 1;
	/* An exact-size copy, so that reading past the input shows under ASan. */
	char *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	memcpy(buf, data + 1, len);

	size_t step = len >> shift ? len >> shift : 1;
	for (size_t n = step; n < len; n += step) {
		int rc = parse(buf, n, false, method, &first);
		if (rc == 1) {
			first_rc = 1;
			break;
		}
		if (rc < 0)
			break; /* where the client gives up */
	}
	for (int eof = 0; eof < 2; eof++) {
		int rc = parse(buf, len, eof, method, &res);
		if (first_rc == 1 &&
		    (rc != 1 || res.status != first.status || res.body.len != first.body.len ||
		     (res.body.len && memcmp(res.body.ptr, first.body.ptr, res.body.len))))
			abort();
	}
	ig_demo_response_free(&first);
	ig_demo_response_free(&res);
	free(buf);
	return 0;
}
