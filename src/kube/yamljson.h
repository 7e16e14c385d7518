/* The first YAML document of a text as a jansson value, for the few YAML
 * files the Kubernetes client reads itself (kubeconfig). Plain scalars
 * true/false become booleans, null/~/empty null, everything else strings. */
#ifndef IG_KUBE_YAMLJSON_H
#define IG_KUBE_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

/* NULL with a message in err when the text is not YAML. */
json_t *ig_yaml_to_json(const char *text, size_t len, char *err, size_t errlen);

#endif
