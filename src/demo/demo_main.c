#include <stdio.h>

#include "demo/demo.h"

int ig_demo_main(int argc, char **argv)
{
	fprintf(stderr, "infergate demo: not built yet\n");
	return 2;
}

int ig_run_main(int argc, char **argv)
{
	fprintf(stderr, "infergate run: not built yet\n");
	return 2;
}
