/* infergate: one binary, several jobs. main() only picks the job. */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "config/config.h"
#include "core/version.h"
#include "demo/demo.h"
#include "epp/epp.h"
#include "gateway/gateway.h"
#include "sim/sim.h"

struct job {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *help;
};

static const struct job jobs[] = {
	{"gateway", ig_gateway_main, "the data plane: Gateway listeners, HTTPRoutes, InferencePools"},
	{"epp", ig_epp_main, "the endpoint picker alone, as an Envoy ext_proc gRPC service"},
	{"check", ig_check_main, "validate manifests and print every error"},
	{"sim", ig_sim_main, "a vLLM-compatible model-server simulator"},
	{"demo", ig_demo_main, "run the seed scenario on this machine and print the answer"},
	{"run", ig_run_main, "run a directory of manifests with simulators until Ctrl-C"},
	{"bench", ig_bench_main, "an LLM load generator: TTFT, ITL, latency percentiles, throughput"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: infergate COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++)
		fprintf(f, "  %-9s %s\n", jobs[i].name, jobs[i].help);
	fprintf(f, "\n`infergate COMMAND --help` describes each command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("infergate %s\n", IG_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++)
		if (strcmp(argv[1], jobs[i].name) == 0)
			return jobs[i].main(argc - 1, argv + 1);
	fprintf(stderr, "infergate: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
