/* Fuzzes manifest loading: arbitrary bytes through libyaml, the kind
 * decoders and the cross-object checks; everything is freed again so
 * that leaks show up too. */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_config *cfg = NULL;
	struct ig_diags diags = {0};
	if (ig_config_load_text("fuzz.yaml", (const char *)data, size, &cfg, &diags) == 0) {
		for (size_t i = 0; i < cfg->npools; i++)
			for (size_t j = 0; j < cfg->npods; j++)
				(void)ig_pool_selects(&cfg->pools[i], &cfg->pods[j]);
		ig_config_free(cfg);
	}
	ig_diags_free(&diags);
	return 0;
}
