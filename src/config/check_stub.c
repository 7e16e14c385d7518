#include <stdio.h>

#include "config/config.h"

int ig_check_main(int argc, char **argv)
{
	fprintf(stderr, "infergate check: not built yet\n");
	return 2;
}
