/* Inside the manifest loader: what the per-kind decoders (load_*.c) share.
 * Not for use outside src/config/.
 *
 * A decoder gets a document's root mapping and reads it with the ld_*
 * accessors, which report problems as "file:line: path: message" and carry
 * on, so one run reports every problem. Allocation failures and the visit
 * budget longjmp out of the document (see load_util.c). */
#ifndef IG_CONFIG_LOAD_H
#define IG_CONFIG_LOAD_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config/config.h"
#include "config/yaml_node.h"

#define LD_PATH 256
/* Aliases let a small document name the same subtree many times; a budget
 * of node visits per document (this, plus a few per node of the document)
 * keeps decoding linear in the budget. */
#define LD_MAX_VISITS 1000000u

/* One realloc'd array per kind, so that Pods can be added later. */
enum {
	K_GATEWAY,
	K_ROUTE,
	K_GRANT,
	K_POOL,
	K_MODEL,
	K_OBJECTIVE,
	K_REWRITE,
	K_IMPORT,
	K_POD,
	K_DEPLOYMENT,
	K_NAMESPACE,
	K_SERVICE,
	K_SLICE,
	K_ENDPOINTS,
	K_SECRET,
	K_PICKER,
	K_TLS_POLICY,
	K_CONFIGMAP,
	K_LISTENER_SET,
	K_COUNT
};

struct chunk {
	struct chunk *next;
	size_t used;
	size_t cap;
	max_align_t data[];
};

/* A config and everything it points to: the struct itself, a chunked
 * arena for strings and sub-arrays, the per-kind array capacities. */
struct box {
	struct ig_config cfg; /* first, so a config pointer is a box pointer */
	struct chunk *arena;
	size_t cap[K_COUNT];
	size_t next_seq;
};

/* A reference between objects, checked once everything is loaded. */
struct ref {
	const char *kind; /* of the target: "Gateway", "InferencePool" */
	const char *ns;
	const char *name;
	const char *file;
	int line;
	const char *path;
};

struct session {
	struct box *box;
	struct ig_diags *diags;
	size_t nerrors;
	size_t nomitted;
	struct ref *refs;
	size_t nrefs, caprefs;
	/* The document being decoded. */
	const char *file;
	const char *text; /* the whole file */
	size_t text_len;
	yaml_document_t *doc;
	size_t visits, max_visits;
	bool item;   /* decoding an item of a List */
	jmp_buf jmp; /* longjmp target for out-of-memory and the visit budget */
};

enum { JMP_OOM = 1, JMP_BUDGET = 2 };

/* ---- memory ---- */

void *ld_arena_alloc(struct box *b, size_t n);
char *ld_arena_strdup(struct box *b, const char *s);
void *ld_alloc(struct session *s, size_t n); /* zeroed */
char *ld_strndup(struct session *s, const char *p, size_t len);
char *ld_strdup(struct session *s, const char *p);
/* Grows one of the per-kind arrays by one element and returns it (NULL
 * when out of memory). */
void *ld_push(void **arr, size_t *n, size_t *cap, size_t size);
/* The same for a kind of the session's config, longjmp on failure. */
void *ld_new_object(struct session *s, int kind, void **arr, size_t *n, size_t size);
#define LD_APPEND(s, k, field)                                                                     \
	((__typeof__((s)->box->cfg.field))ld_new_object((s), (k), (void **)&(s)->box->cfg.field,   \
							&(s)->box->cfg.n##field,                   \
							sizeof(*(s)->box->cfg.field)))

/* ---- diags ---- */

void ld_join(char *out, const char *parent, const char *key);
void ld_item(char *out, const char *parent, const char *key, size_t i);
__attribute__((format(printf, 5, 6))) void ld_err(struct session *s, int line, const char *parent,
						  const char *key, const char *fmt, ...);
__attribute__((format(printf, 5, 6))) void ld_warn(struct session *s, int line, const char *parent,
						   const char *key, const char *fmt, ...);
void ld_note(struct ig_diags *d, const char *fmt, ...);

/* ---- YAML access ---- */

yaml_node_t *ld_node(struct session *s, int idx);
/* The value of `key` in a mapping, NULL when absent or null. *line gets the
 * key's line, or the mapping's when the key is absent. */
yaml_node_t *ld_get(struct session *s, yaml_node_t *map, const char *key, int *line);
size_t ld_seq_len(const yaml_node_t *n);
size_t ld_map_len(const yaml_node_t *n);
yaml_node_t *ld_seq_item(struct session *s, yaml_node_t *seq, size_t i);
yaml_node_t *ld_map(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		    bool req, int *line);
yaml_node_t *ld_seq(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		    bool req, int *line);
char *ld_scalar(struct session *s, yaml_node_t *n);
/* A plain scalar of up to 12 digits with an optional sign. */
bool ld_scalar_int(const yaml_node_t *v, long long *out);
char *ld_str(struct session *s, yaml_node_t *map, const char *parent, const char *key, bool req,
	     int *line);
bool ld_int(struct session *s, yaml_node_t *map, const char *parent, const char *key, bool req,
	    int *line, long long *out);
bool ld_int_range(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		  bool req, long long lo, long long hi, int *out);
/* A boolean (true/false, as YAML 1.2's core schema has them). */
bool ld_bool(struct session *s, yaml_node_t *map, const char *parent, const char *key, int *line,
	     bool *out);
/* An optional Gateway API Duration; *set says whether it was there and valid. */
uint64_t ld_duration(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		     bool *set);
/* Each item of a sequence must be a mapping; NULL (after an error) if not. */
yaml_node_t *ld_seq_map(struct session *s, yaml_node_t *seq, size_t i, const char *path);
/* A list of strings (NULL-terminated array, *n items). */
char **ld_strings(struct session *s, yaml_node_t *map, const char *parent, const char *key,
		  size_t *n, int *line);

/* ---- strict fields ---- */

/* A field that exists in the API but that infergate does not implement:
 * loading refuses it, saying why. */
struct ld_unsupported {
	const char *name;
	const char *why;
};

/* Every key of the mapping must be a string naming one of `known` (a
 * NULL-terminated list) or of `unsupported` (may be NULL); anything else
 * is an error naming the field ("unknown field"), and so is an unsupported
 * one ("not supported by infergate: why"). A key given twice is an error
 * too (only the first would be read). */
void ld_fields(struct session *s, yaml_node_t *map, const char *path, const char *const *known,
	       const struct ld_unsupported *unsupported);
/* The top-level keys of a kind: apiVersion, kind, metadata, status and
 * `extra` (NULL-terminated, may be NULL). */
void ld_top_fields(struct session *s, yaml_node_t *root, const char *const *extra);

/* ---- checks ---- */

void ld_check_items(struct session *s, yaml_node_t *seq, int line, const char *parent,
		    const char *key, size_t min, size_t max);
void ld_check_len(struct session *s, const char *v, int line, const char *parent, const char *key,
		  size_t min, size_t max);
bool ld_one_of(const char *v, const char *const *set);
void ld_check_enum(struct session *s, const char *v, int line, const char *parent, const char *key,
		   const char *const *set);
bool ld_dns_label(const char *p, size_t len, size_t max);
bool ld_dns_subdomain(const char *p, size_t len);
bool ld_label_key_ok(const char *k);
bool ld_label_value_ok(const char *v);
bool ld_hostname_ok(const char *h); /* Hostname: optional "*." */
bool ld_header_name_ok(const char *h);
void ld_check_group(struct session *s, const char *v, int line, const char *parent,
		    const char *key);
void ld_check_kind(struct session *s, const char *v, int line, const char *parent, const char *key);
void ld_check_object_name(struct session *s, const char *v, int line, const char *parent,
			  const char *key);
void ld_check_namespace(struct session *s, const char *v, int line, const char *parent,
			const char *key);

/* ---- metadata ---- */

struct ig_kv *ld_labels(struct session *s, yaml_node_t *map, int line, const char *parent,
			const char *key, size_t *n);
/* metadata.{name, namespace, labels, creationTimestamp}, the rest of
 * ObjectMeta accepted; cluster-scoped kinds get ns "". */
void ld_meta(struct session *s, yaml_node_t *root, const char *api, const char *kind,
	     struct ig_meta *m, bool cluster_scoped);
/* A metav1.LabelSelector mapping. */
void ld_label_selector(struct session *s, yaml_node_t *map, const char *path,
		       struct ig_label_selector *out);
/* Records a reference to check once everything is loaded. */
void ld_ref(struct session *s, const char *kind, const char *ns, const char *name, int line,
	    const char *path);

/* ---- the decoders, by kind ---- */

void ld_gateway(struct session *s, yaml_node_t *root, const char *api);
void ld_httproute(struct session *s, yaml_node_t *root, const char *api);
void ld_grpcroute(struct session *s, yaml_node_t *root, const char *api);
void ld_reference_grant(struct session *s, yaml_node_t *root, const char *api);
void ld_listener_set(struct session *s, yaml_node_t *root, const char *api);
void ld_backend_tls_policy(struct session *s, yaml_node_t *root, const char *api);
void ld_pool(struct session *s, yaml_node_t *root, const char *api);
void ld_model(struct session *s, yaml_node_t *root, const char *api);
void ld_objective(struct session *s, yaml_node_t *root, const char *api);
void ld_model_rewrite(struct session *s, yaml_node_t *root, const char *api);
void ld_pool_import(struct session *s, yaml_node_t *root, const char *api);
void ld_pod(struct session *s, yaml_node_t *root, const char *api);
void ld_deployment(struct session *s, yaml_node_t *root, const char *api);
void ld_namespace(struct session *s, yaml_node_t *root, const char *api);
void ld_service(struct session *s, yaml_node_t *root, const char *api);
void ld_endpoint_slice(struct session *s, yaml_node_t *root, const char *api);
void ld_endpoints(struct session *s, yaml_node_t *root, const char *api);
void ld_secret(struct session *s, yaml_node_t *root, const char *api);
void ld_configmap(struct session *s, yaml_node_t *root, const char *api);

/* Cross-object checks and resolution, once every file is read. */
void ld_link(struct session *s);
/* Whether meta a was created before b: explicit timestamps first (earlier
 * wins), then objects without one, in load order. */
bool ld_older(const struct ig_meta *a, const struct ig_meta *b);
/* Two listener hostnames are the same: both absent, or equal. */
bool ld_same_hostname(const char *a, const char *b);

#endif
