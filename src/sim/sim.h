/* `infergate sim`: a vLLM-compatible model-server simulator. */
#ifndef IG_SIM_SIM_H
#define IG_SIM_SIM_H

int ig_sim_main(int argc, char **argv);

#endif
