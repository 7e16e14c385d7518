/* Fuzzes EndpointPickerConfig loading: arbitrary bytes through libyaml,
 * the decoder and the defaults; an accepted config also builds a
 * scheduler and runs one schedule (through its profile handler), and
 * everything is freed so that leaks show up. */
#include <stddef.h>
#include <stdint.h>

#include "sched/picker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_picker_config *c = NULL;
	struct ig_diags d = {0};
	if (ig_picker_config_parse("fuzz.yaml", (const char *)data, size, &c, &d) == 0) {
		struct ig_scheduler *s = ig_scheduler_new(c);
		if (s) {
			struct ig_endpoint_load m[2] = {{.waiting = 1, .kv_usage = 0.5}, {0}};
			struct ig_endpoint_metrics full = {.max_active = 2};
			ig_adapter_set_add(&full.active, IG_STR("m"));
			ig_adapter_set_add(&full.running_adapters, IG_STR("m"));
			struct ig_sched_endpoint eps[2] = {
				{.m = &m[0], .full = &full, .addr = IG_STR("10.0.0.1:8000"), .key = 1},
				{.m = &m[1], .addr = IG_STR("10.0.0.2:8000"), .key = 2}};
			/* The first bytes stand for the profile handler's header. */
			struct ig_sched_req req = {.model = IG_STR("m"),
						   .prefix_input = {(const char *)data, size},
						   .profile = {(const char *)data, size < 6 ? size : 6}};
			size_t ranked[2];
			struct ig_sched_result res = {.ranked = ranked};
			struct ig_rng rng;
			ig_rng_seed(&rng, size);
			if (ig_schedule(s, &req, eps, 2, &rng, &res) == 0)
				ig_schedule_commit(s, &res, eps[ranked[0]].key);
			(void)ig_scheduler_saturation(s, eps, 2);
			ig_scheduler_free(s);
		}
		ig_picker_config_free(c);
	}
	ig_diags_free(&d);
	return 0;
}
