/* `infergate gateway`: the data plane. */
#ifndef IG_GATEWAY_GATEWAY_H
#define IG_GATEWAY_GATEWAY_H

int ig_gateway_main(int argc, char **argv);

#endif
