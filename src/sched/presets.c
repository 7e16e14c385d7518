/* Named picker configurations: EndpointPickerConfig documents built in,
 * parsed by the same parser as a file (so they mean exactly what their
 * text says). */
#include <string.h>

#include "sched/picker.h"

#define HEADER                                                                                     \
	"apiVersion: inference.networking.x-k8s.io/v1alpha1\n"                                     \
	"kind: EndpointPickerConfig\n"

static const struct {
	const char *name;
	const char *text;
} presets[] = {
    /* infergate's own default: prefix affinity bounded by load (no pod
     * takes more than its share while others have room: the bound's
     * weight, 10, is above the others' sum, 8), LoRA slots as strong as a
     * whole prefix match (an adapter sent to a pod whose slots others
     * fill waits there until one of them drains: docs/BENCHMARKS.md,
     * routing; GIE's formula, but not for requests for the base model),
     * the queue with the requests dispatched since the last scrape, KV
     * use. */
    {"infergate", HEADER "plugins:\n"
			 "- type: load-bound-scorer\n"
			 "- type: prefix-cache-scorer\n"
			 "- type: lora-slot-scorer\n"
			 "- type: queue-scorer\n"
			 "- type: kv-cache-utilization-scorer\n"
			 "- type: max-score-picker\n"
			 "schedulingProfiles:\n"
			 "- name: default\n"
			 "  plugins:\n"
			 "  - pluginRef: load-bound-scorer\n"
			 "    weight: 10\n"
			 "  - pluginRef: prefix-cache-scorer\n"
			 "    weight: 3\n"
			 "  - pluginRef: lora-slot-scorer\n"
			 "    weight: 3\n"
			 "  - pluginRef: queue-scorer\n"
			 "    weight: 1\n"
			 "  - pluginRef: kv-cache-utilization-scorer\n"
			 "    weight: 1\n"
			 "  - pluginRef: max-score-picker\n"},
    /* GIE's default profile (no configuration given to its EPP). */
    {"gie", HEADER "plugins:\n"
		   "- type: queue-scorer\n"
		   "- type: kv-cache-utilization-scorer\n"
		   "- type: prefix-cache-scorer\n"
		   "- type: max-score-picker\n"
		   "schedulingProfiles:\n"
		   "- name: default\n"
		   "  plugins:\n"
		   "  - pluginRef: queue-scorer\n"
		   "    weight: 2\n"
		   "  - pluginRef: kv-cache-utilization-scorer\n"
		   "    weight: 2\n"
		   "  - pluginRef: prefix-cache-scorer\n"
		   "    weight: 3\n"
		   "  - pluginRef: max-score-picker\n"},
    /* llm-d's estimate-prefix sample (deploy/config/
     * epp-estimate-prefix-cache-config.yaml, which weighs the two 1:1) as
     * its inference-scheduling guide weighs them: prefix affinity, sticky
     * until the waiting queue builds up. Not llm-d's default without a
     * configuration (config/loader/defaults.go), which is "gie". */
    {"llm-d", HEADER "plugins:\n"
		     "- type: prefix-cache-scorer\n"
		     "- type: load-aware-scorer\n"
		     "- type: max-score-picker\n"
		     "schedulingProfiles:\n"
		     "- name: default\n"
		     "  plugins:\n"
		     "  - pluginRef: prefix-cache-scorer\n"
		     "    weight: 2\n"
		     "  - pluginRef: load-aware-scorer\n"
		     "    weight: 1\n"
		     "  - pluginRef: max-score-picker\n"},
    /* GIE v0.2.0's decision tree. */
    {"v0.2", HEADER "plugins:\n"
		    "- type: decision-tree-filter\n"
		    "- type: random-picker\n"
		    "schedulingProfiles:\n"
		    "- name: default\n"
		    "  plugins:\n"
		    "  - pluginRef: decision-tree-filter\n"
		    "  - pluginRef: random-picker\n"},
};

const char *ig_picker_preset(const char *name)
{
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (strcmp(presets[i].name, name) == 0)
			return presets[i].text;
	return NULL;
}

const char *ig_picker_preset_name(size_t i)
{
	return i < sizeof presets / sizeof presets[0] ? presets[i].name : NULL;
}
