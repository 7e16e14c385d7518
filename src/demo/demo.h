/* `infergate demo` and `infergate run`: a directory of manifests on one
 * machine, model-server Deployments replaced by simulators. */
#ifndef IG_DEMO_DEMO_H
#define IG_DEMO_DEMO_H

int ig_demo_main(int argc, char **argv);
int ig_run_main(int argc, char **argv);

#endif
