#include <stdio.h>

#include "sim/sim.h"

int ig_sim_main(int argc, char **argv)
{
	fprintf(stderr, "infergate sim: not built yet\n");
	return 2;
}
