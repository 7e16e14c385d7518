/* Fuzzes the grpc.health.v1 decoders. A request that decodes is written
 * again and must give the same service name; so must a cut copy (the
 * buffer size is honoured). A response that decodes is written again and
 * must give the same status. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extproc/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char svc[512], again[512], cut[8];
	struct ig_buf b = {0};
	int st;

	if (ig_health_request_decode(data, size, svc, sizeof svc) == 0) {
		size_t n = strlen(svc);

		if (ig_health_request_decode(data, size, NULL, 0) != 0)
			abort();
		if (ig_health_request_decode(data, size, cut, sizeof cut) != 0 ||
		    strncmp(cut, svc, sizeof cut - 1) != 0 || strlen(cut) > sizeof cut - 1)
			abort();
		if (n < sizeof svc - 1) {
			if (ig_health_encode_request(&b, svc) != 0 ||
			    ig_health_request_decode((const uint8_t *)b.ptr, b.len, again,
						     sizeof again) != 0 ||
			    strcmp(svc, again) != 0)
				abort();
		}
		ig_buf_free(&b);
	}
	st = ig_health_response_decode(data, size);
	if (st >= 0) {
		if (ig_health_encode_response(&b, (enum ig_health_status)st) != 0 ||
		    ig_health_response_decode((const uint8_t *)b.ptr, b.len) != st)
			abort();
		ig_buf_free(&b);
	}
	return 0;
}
