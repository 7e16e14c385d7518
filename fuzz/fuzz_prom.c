/* Fuzzes the Prometheus text parser, label lookup on every sample, and the
 * vLLM extraction that sits on top of both. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "pool/metrics.h"
#include "pool/prom.h"

static const char *const names[] = {"model_name", "le", "running_lora_adapters", "max_lora", "x"};

static int on_sample(void *ctx, const struct ig_prom_sample *s)
{
	struct ig_buf *b = ctx;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		ig_buf_reset(b);
		/* The parser validated the labels, so a lookup must never call
		 * them malformed. */
		if (ig_prom_label(s->labels, names[i], b) == -1 && b->len < b->max)
			abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy lets ASan catch any read past the end. */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	struct ig_buf b;
	ig_buf_init(&b, 1 << 16);
	size_t line = 0;
	ig_prom_parse(text, size, on_sample, &b, &line);
	ig_buf_free(&b);
	struct ig_endpoint_metrics m = {0};
	ig_vllm_metrics_extract(text, size, IG_LORA_NEWEST, &m);
	if (m.active.n > IG_MAX_ADAPTERS)
		abort();
	ig_vllm_metrics_extract(text, size, IG_LORA_NAMING_ADAPTERS, &m);
	if (m.active.n > IG_MAX_ADAPTERS)
		abort();
	free(text);
	return 0;
}
