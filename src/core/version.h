/* What infergate knows of its own build: `infergate --version` prints the
 * version, and the gateway's inference_extension_info{commit,build_ref}
 * (GIE v1.5's build information gauge) names both. */
#ifndef IG_CORE_VERSION_H
#define IG_CORE_VERSION_H

#define IG_VERSION "0.1.0"

/* GIE's image build stamps the commit in (Dockerfile -ldflags); the
 * infergate build does not, so the commit is empty unless the build
 * defines it: make CFLAGS='-O2 -g -DIG_COMMIT=\"<sha>\"'. */
#ifndef IG_COMMIT
#define IG_COMMIT ""
#endif

#endif
