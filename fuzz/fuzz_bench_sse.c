/* Fuzzes what `infergate bench` reads from a model server: the
 * text/event-stream splitter fed in two cuts, each payload through the
 * chunk reader, and the whole input as a non-streamed response. */
#include <stddef.h>
#include <stdint.h>

#include "bench/bench.h"

static int on_data(void *ud, const char *data, size_t len)
{
	struct ig_bench_chunk ch;
	(void)ud;
	(void)ig_bench_chunk_parse(data, len, &ch);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t cut = size ? data[0] % (size + 1) : 0;
	struct ig_bench_sse s;
	ig_bench_sse_init(&s, 4096);
	if (ig_bench_sse_feed(&s, p, cut, on_data, NULL) == 0)
		(void)ig_bench_sse_feed(&s, p + cut, size - cut, on_data, NULL);
	ig_bench_sse_free(&s);
	struct ig_bench_chunk ch;
	(void)ig_bench_response_parse(p, size, &ch);
	return 0;
}
