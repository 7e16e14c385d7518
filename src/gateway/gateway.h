/* `infergate gateway`: the data plane. */
#ifndef IG_GATEWAY_GATEWAY_H
#define IG_GATEWAY_GATEWAY_H

int ig_gateway_main(int argc, char **argv);

/* Runs a gateway with these options until SIGTERM/SIGINT and its drain:
 * 0, or 1 when it could not start. `infergate epp` runs through here
 * with its front end (runtime.h, struct ig_gw_frontend). */
struct ig_gw_options;
int ig_gateway_run(const struct ig_gw_options *o);

#endif
