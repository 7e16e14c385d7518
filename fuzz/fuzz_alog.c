/* libFuzzer target for bench's reader of the gateway's access log (a file
 * anyone may have written into): any line is parsed within bounds, and
 * what a JSON line yields is NUL-terminated within its buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[64];
	struct ig_bench_gw_rec rec;
	memset(&rec, 0x5a, sizeof rec);
	memset(id, 0x5a, sizeof id);
	int rc = ig_bench_alog_parse((const char *)data, size, id, sizeof id, &rec);
	if (rc < -1 || rc > 1)
		abort();
	if (rc == 0 && (!memchr(id, 0, sizeof id) || !memchr(rec.endpoint, 0, sizeof rec.endpoint) ||
			!memchr(rec.reason, 0, sizeof rec.reason)))
		abort();
	return 0;
}
