#include <stdio.h>

#include "gateway/gateway.h"

int ig_gateway_main(int argc, char **argv)
{
	fprintf(stderr, "infergate gateway: not built yet\n");
	return 2;
}
