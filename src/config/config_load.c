/* Loading manifests: files and directories are parsed with libyaml's
 * document API and every document is handed to the decoder of its kind
 * (load_gateway.c, load_inference.c, load_core.c), which fills the structs
 * of config.h with Kubernetes defaults applied and every CRD rule we know
 * checked. Once every file is read, load_refs.c checks what spans objects.
 * Problems become diags with file:line and a field path; the load carries
 * on so that one run reports all of them.
 *
 * Memory: a config and everything it points to live in one box (load.h):
 * the struct itself, a chunked arena for strings and sub-arrays, and one
 * realloc'd array per kind (so that Pods can be added later). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/load.h"

#define MAX_FILE_BYTES (16u << 20)
#define MAX_DIR_DEPTH 16
/* libyaml's scanner slows down quadratically with nesting depth and its
 * loader looks anchors up linearly; manifests need neither much. */
#define MAX_NESTING 64
#define MAX_ANCHORS 1000u

/* ---- documents -------------------------------------------------------------------- */

/* EndpointPickerConfig belongs to the picker (sched/), which parses it
 * itself: keep the document's text, padded so its lines stay the file's. */
static void decode_picker_config(struct session *s, yaml_node_t *root, const char *api)
{
	/* An item of a List is its mapping's text, indented as it was. */
	const yaml_mark_t *from = s->item ? &root->start_mark : &s->doc->start_mark;
	const yaml_mark_t *to = s->item ? &root->end_mark : &s->doc->end_mark;
	size_t start = from->index, end = to->index;
	if (!s->text || start > end || end > s->text_len)
		return;
	size_t lines = from->line, cols = s->item ? from->column : 0, pad = lines + cols;
	struct ig_raw_doc d = {0};
	d.file = ld_strdup(s, s->file);
	d.line = ig_yaml_line(root);
	d.len = pad + (end - start);
	d.text = ld_alloc(s, d.len + 1);
	memset(d.text, '\n', lines);
	memset(d.text + lines, ' ', cols);
	memcpy(d.text + pad, s->text + start, end - start);
	d.text[d.len] = '\0';
	*LD_APPEND(s, K_PICKER, picker_docs) = d;
}

#define GW_API(v) "gateway.networking.k8s.io/" v
#define X_API(v) "inference.networking.x-k8s.io/" v

/* The kinds read, under the apiVersions that carry them. */
static const struct kind_desc {
	const char *kind;
	const char *api[3];
	void (*decode)(struct session *s, yaml_node_t *root, const char *api);
} kinds[] = {
    {"Gateway", {GW_API("v1"), GW_API("v1beta1")}, ld_gateway},
    {"ListenerSet", {GW_API("v1")}, ld_listener_set},
    {"XListenerSet", {"gateway.networking.x-k8s.io/v1alpha1"}, ld_listener_set},
    {"HTTPRoute", {GW_API("v1"), GW_API("v1beta1")}, ld_httproute},
    {"GRPCRoute", {GW_API("v1"), GW_API("v1alpha2")}, ld_grpcroute},
    {"ReferenceGrant", {GW_API("v1beta1"), GW_API("v1")}, ld_reference_grant},
    {"BackendTLSPolicy", {GW_API("v1"), GW_API("v1alpha3")}, ld_backend_tls_policy},
    {"InferencePool", {X_API("v1alpha2"), "inference.networking.k8s.io/v1"}, ld_pool},
    {"InferenceModel", {X_API("v1alpha2")}, ld_model},
    {"InferenceObjective", {X_API("v1alpha2"), "llm-d.ai/v1alpha2"}, ld_objective},
    {"InferenceModelRewrite", {X_API("v1alpha2"), "llm-d.ai/v1alpha2"}, ld_model_rewrite},
    {"InferencePoolImport", {X_API("v1alpha1")}, ld_pool_import},
    {"Pod", {"v1"}, ld_pod},
    {"Service", {"v1"}, ld_service},
    {"Endpoints", {"v1"}, ld_endpoints},
    {"Secret", {"v1"}, ld_secret},
    {"ConfigMap", {"v1"}, ld_configmap},
    {"Namespace", {"v1"}, ld_namespace},
    {"EndpointSlice", {"discovery.k8s.io/v1"}, ld_endpoint_slice},
    {"Deployment", {"apps/v1"}, ld_deployment},
    {"EndpointPickerConfig",
     {X_API("v1alpha1"), "config.apix.gateway-api-inference-extension.sigs.k8s.io/v1alpha1",
      "llm-d.ai/v1alpha1"},
     decode_picker_config},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* The API groups whose kinds infergate reads. A document of one of them
 * with a kind it does not know is a typo (HttpRoute) or a kind it does not
 * implement (TLSRoute): skipped with a warning, as kubectl would refuse it
 * ("no matches for kind"), rather than silently. */
static const char *const our_groups[] = {
    "gateway.networking.k8s.io",
    "gateway.networking.x-k8s.io",
    "inference.networking.k8s.io",
    "inference.networking.x-k8s.io",
    "llm-d.ai",
    "config.apix.gateway-api-inference-extension.sigs.k8s.io",
    NULL,
};

/* "group/version" -> length of "group" ("" for core "v1"). */
static size_t group_len(const char *api)
{
	const char *slash = strchr(api, '/');
	return slash ? (size_t)(slash - api) : 0;
}

/* Counts a skipped document by its kind. */
static void skipped(struct session *s, const char *kind)
{
	struct ig_config *c = &s->box->cfg;
	c->nskipped++;
	for (size_t i = 0; i < c->nskipped_kinds; i++) {
		if (!strcmp(c->skipped_kinds[i].kind, kind)) {
			c->skipped_kinds[i].n++;
			return;
		}
	}
	if (c->nskipped_kinds < IG_SKIPPED_KINDS)
		c->skipped_kinds[c->nskipped_kinds++] =
		    (struct ig_skipped_kind){ld_strdup(s, kind), 1};
}

/* A kind we read, written with another version of a group that carries
 * it (GIE v0.1's InferencePool v1alpha1, apps/v1beta1): skipped as other
 * kinds are, but with a warning, since the document was meant for us. */
static void unknown_version(struct session *s, const struct kind_desc *k, const char *api, int line)
{
	size_t gl = group_len(api);
	char list[200] = "";
	bool same_group = false;
	for (size_t j = 0; j < 3 && k->api[j]; j++) {
		same_group |= group_len(k->api[j]) == gl && !strncmp(k->api[j], api, gl);
		size_t l = strlen(list);
		snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", k->api[j]);
	}
	if (same_group)
		ld_warn(s, line, NULL, "apiVersion",
			"%s is not supported for kind %s (supported: %s): the document is skipped",
			api, k->kind, list);
	skipped(s, k->kind);
}

/* A kind none of the decoders reads: a warning when its group is one of
 * ours (GatewayClass aside: in files every Gateway is served, whatever its
 * class), a skipped document either way. */
static void unknown_kind(struct session *s, const char *api, const char *kind, int line)
{
	size_t gl = group_len(api);
	bool ours = false;
	for (const char *const *g = our_groups; *g && !ours; g++)
		ours = strlen(*g) == gl && !strncmp(*g, api, gl);
	bool gateway_class = !strcmp(kind, "GatewayClass") && !strncmp(api, GW_API(""), gl + 1);
	if (ours && !gateway_class)
		ld_warn(s, line, NULL, "kind",
			"no matches for kind \"%s\" in version %s: infergate does not read it, the "
			"document is skipped",
			kind, api);
	skipped(s, kind);
}

static bool is_list_kind(const char *kind)
{
	size_t len = strlen(kind);
	return len >= 4 && !strcmp(kind + len - 4, "List");
}

static void decode_document(struct session *s, yaml_node_t *root);

/* A List (v1 List, or a kind's own list such as InferencePoolList), as
 * kubectl apply reads it: every item is decoded as a document of its own,
 * with its own apiVersion and kind. */
static void decode_list(struct session *s, yaml_node_t *root, const char *kind, int kline)
{
	static const char *const fields[] = {"items", NULL};
	char path[LD_PATH];
	int line;
	if (s->item) {
		ld_err(s, kline, NULL, "kind", "a %s may not be an item of a List", kind);
		return;
	}
	ld_top_fields(s, root, fields);
	yaml_node_t *items = ld_seq(s, root, "", "items", false, &line);
	for (size_t i = 0; items && i < ld_seq_len(items); i++) {
		yaml_node_t *it = ld_seq_item(s, items, i);
		if (!it || ig_yaml_is_null(it))
			continue;
		if (it->type != YAML_MAPPING_NODE) {
			ld_item(path, "", "items", i);
			ld_err(s, ig_yaml_line(it), path, NULL,
			       "must be a Kubernetes object (a mapping with apiVersion and kind)");
			continue;
		}
		s->item = true;
		decode_document(s, it);
		s->item = false;
	}
}

static void decode_document(struct session *s, yaml_node_t *root)
{
	int aline, kline;
	if (ig_yaml_is_null(root))
		return; /* an empty document, e.g. between two "---" */
	if (root->type != YAML_MAPPING_NODE) {
		ld_err(
		    s, ig_yaml_line(root), NULL, NULL,
		    "a document must be a Kubernetes object (a mapping with apiVersion and kind)");
		return;
	}
	char *api = ld_str(s, root, "", "apiVersion", true, &aline);
	char *kind = ld_str(s, root, "", "kind", true, &kline);
	if (!api || !kind)
		return;
	for (size_t i = 0; i < NKINDS; i++) {
		const struct kind_desc *k = &kinds[i];
		if (strcmp(kind, k->kind) != 0)
			continue;
		for (size_t j = 0; j < 3 && k->api[j]; j++) {
			if (!strcmp(api, k->api[j])) {
				k->decode(s, root, api);
				return;
			}
		}
		unknown_version(s, k, api, aline);
		return;
	}
	if (is_list_kind(kind)) {
		decode_list(s, root, kind, kline);
		return;
	}
	unknown_kind(s, api, kind, kline);
}

static void syntax_error(struct session *s, const yaml_parser_t *p)
{
	const char *what = p->error == YAML_MEMORY_ERROR ? "out of memory"
			   : p->problem			 ? p->problem
							 : "unreadable YAML";
	int line = (int)p->problem_mark.line + 1;
	if (p->error == YAML_MEMORY_ERROR)
		ig_diags_resource(s->diags, ENOMEM);
	/* The reader (invalid UTF-8, control characters such as NUL) says
	 * where in bytes, not with a mark: count the lines up to there. */
	if (p->error == YAML_READER_ERROR && s->text) {
		size_t end = p->problem_offset < s->text_len ? p->problem_offset : s->text_len;
		line = 1;
		for (const char *c = s->text; (c = memchr(c, '\n', end - (size_t)(c - s->text)));
		     c++)
			line++;
	}
	if (p->context)
		ld_err(s, line, NULL, NULL, "YAML syntax error: %s %s", p->context, what);
	else
		ld_err(s, line, NULL, NULL, "YAML syntax error: %s", what);
}

/* Decodes one document under the out-of-memory/budget guard. */
static void guarded_decode(struct session *s, yaml_document_t *doc, yaml_node_t *root)
{
	s->doc = doc;
	s->visits = 0;
	s->item = false;
	/* Linear in the document's own nodes (a List of many objects) and
	 * bounded for a few nodes named many times by aliases. */
	s->max_visits = LD_MAX_VISITS + 32 * (size_t)(doc->nodes.top - doc->nodes.start);
	switch (setjmp(s->jmp)) {
	case 0:
		decode_document(s, root);
		break;
	case JMP_OOM:
		ld_err(s, ig_yaml_line(root), NULL, NULL, "out of memory");
		ig_diags_resource(s->diags, ENOMEM);
		break;
	default:
		ld_err(
		    s, ig_yaml_line(root), NULL, NULL,
		    "document is too large or uses too many aliases (more than %zu nodes visited)",
		    s->max_visits);
		break;
	}
	s->doc = NULL;
}

/* A first pass over the events that refuses what would make the document
 * loader slow: deep nesting and many anchors. Syntax errors are left for
 * the real load to report. Returns 0, or -1 after reporting. */
static int prescan(struct session *s, const char *text, size_t len)
{
	char msg[128];
	int line;
	int rc = ig_yaml_prescan(text, len, MAX_NESTING, MAX_ANCHORS, &line, msg, sizeof msg);
	if (rc == 0)
		return 0;
	ld_err(s, line, NULL, NULL, "%s", msg);
	ig_diags_resource(s->diags, rc);
	return -1;
}

static void load_yaml(struct session *s, const char *name, const char *text, size_t len)
{
	yaml_parser_t parser;
	s->file = name;
	s->text = text;
	s->text_len = len;
	if (len > MAX_FILE_BYTES) {
		ld_err(s, 0, NULL, NULL, "file is larger than %u MiB", MAX_FILE_BYTES >> 20);
		return;
	}
	if (prescan(s, text, len) < 0)
		return;
	if (!yaml_parser_initialize(&parser)) {
		ld_err(s, 0, NULL, NULL, "out of memory");
		ig_diags_resource(s->diags, ENOMEM);
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		yaml_document_t doc;
		if (!yaml_parser_load(&parser, &doc)) {
			syntax_error(s, &parser);
			break;
		}
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		char msg[128];
		int line, rc = 0;
		if (root)
			rc = ig_yaml_expand_merges(&doc, LD_MAX_VISITS, &line, msg, sizeof msg);
		if (rc < 0) {
			ld_err(s, line, NULL, NULL, "%s", msg);
			ig_diags_resource(s->diags, rc);
		} else if (root) {
			guarded_decode(s, &doc, root);
		}
		yaml_document_delete(&doc);
		if (!root)
			break;
	}
	yaml_parser_delete(&parser);
}

/* The line of the first Go template action that Helm would render
 * ({{ .Values.x }}, {{- if ... }}, {{ include ... }}, a {{/ * comment),
 * or 0.
 * A value that merely looks like a template without being one of Helm's
 * actions ({{ bos_token }} in a chat template) does not count. */
static int helm_action_line(const char *text, size_t len)
{
	static const char *const words[] = {"if",	"else",	   "end",      "range",
					    "with",	"define",  "template", "block",
					    "include",	"tpl",	   "toYaml",   "toJson",
					    "required", "default", "quote",    "squote",
					    "printf",	"nindent", "indent",   "trim",
					    "lookup",	"fail",	   "not",      "and",
					    "or",	"eq",	   "ne",       "index",
					    "dict",	"list",	   "hasKey",   "semverCompare",
					    NULL};
	int line = 1;
	for (size_t i = 0; i + 2 < len; i++) {
		if (text[i] == '\n') {
			line++;
			continue;
		}
		if (text[i] != '{' || text[i + 1] != '{')
			continue;
		size_t j = i + 2;
		if (j < len && text[j] == '-')
			j++;
		while (j < len && (text[j] == ' ' || text[j] == '\t'))
			j++;
		if (j >= len)
			break;
		if (text[j] == '.' || text[j] == '$' || text[j] == '(' ||
		    (text[j] == '/' && j + 1 < len && text[j + 1] == '*'))
			return line;
		size_t k = j;
		while (k < len &&
		       ((text[k] >= 'a' && text[k] <= 'z') || (text[k] >= 'A' && text[k] <= 'Z')))
			k++;
		for (const char *const *w = words; *w; w++)
			if (strlen(*w) == k - j && memcmp(text + j, *w, k - j) == 0 &&
			    (k == len || !(text[k] == '_' || (text[k] >= '0' && text[k] <= '9'))))
				return line;
	}
	return 0;
}

/* Loads one file's text. A Helm chart's template is no manifest until
 * `helm template` renders it, and what its {{ }} make of the YAML (flow
 * mappings, syntax errors, missing kinds) says nothing useful: a file
 * that fails to load and holds one of Helm's actions gets one error, at
 * the first action, in place of its own diags. A file that loads is left
 * alone, {{ }} or not (a ConfigMap may carry another program's
 * templates). */
static void load_text(struct session *s, const char *name, const char *text, size_t len)
{
	size_t n0 = s->diags->n, errors0 = s->nerrors, omitted0 = s->nomitted;
	load_yaml(s, name, text, len);
	int line;
	if (s->nerrors == errors0 || len > MAX_FILE_BYTES || !(line = helm_action_line(text, len)))
		return;
	for (size_t i = n0; i < s->diags->n; i++) {
		free(s->diags->items[i].file);
		free(s->diags->items[i].path);
		free(s->diags->items[i].msg);
	}
	s->diags->n = n0;
	s->nerrors = errors0;
	s->nomitted = omitted0;
	s->file = name;
	ld_err(s, line, NULL, NULL,
	       "a Helm template ({{ }} actions), not a manifest: render it first (helm template "
	       "RELEASE CHART -f values.yaml > manifests.yaml) and give the output");
}

/* Reads the whole file, up to MAX_FILE_BYTES and one byte more (to tell a
 * file at the ceiling from a larger one). st_size sizes the first buffer
 * only: /dev/stdin, a pipe, a FIFO or process substitution report 0 and
 * are read until EOF, as kubectl apply -f reads them. Returns the length,
 * or -1 with errno set. */
static ssize_t read_all(FILE *f, size_t hint, char **out)
{
	size_t cap = hint < MAX_FILE_BYTES ? hint + 1 : MAX_FILE_BYTES + 1;
	size_t len = 0;
	char *buf = NULL;
	if (cap < 4096)
		cap = 4096;
	for (;;) {
		if (!buf || len == cap) {
			size_t ncap = buf ? cap * 2 : cap;
			if (ncap > MAX_FILE_BYTES + 1)
				ncap = MAX_FILE_BYTES + 1;
			char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				errno = ENOMEM;
				return -1;
			}
			buf = nb;
			cap = ncap;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (len > MAX_FILE_BYTES || (got == 0 && (feof(f) || ferror(f))))
			break;
	}
	if (ferror(f)) {
		int e = errno ? errno : EIO;
		free(buf);
		errno = e;
		return -1;
	}
	buf[len] = '\0';
	*out = buf;
	return (ssize_t)len;
}

/* A file or directory that could not be read (s->file names it): an
 * error, and a failure for want of resources when err is one (out of
 * descriptors or memory), which a reload tries again. */
static void cannot_read(struct session *s, const char *what, int err)
{
	ld_err(s, 0, NULL, NULL, "%s: %s", what, strerror(err));
	ig_diags_resource(s->diags, err);
}

static void load_file(struct session *s, const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	s->file = path;
	if (!f || fstat(fileno(f), &st) < 0) {
		cannot_read(s, "cannot read", errno);
		if (f)
			fclose(f);
		return;
	}
	if (st.st_size > (off_t)MAX_FILE_BYTES) {
		ld_err(s, 0, NULL, NULL, "file is larger than %u MiB", MAX_FILE_BYTES >> 20);
		fclose(f);
		return;
	}
	char *text = NULL;
	errno = 0;
	ssize_t len = read_all(f, (size_t)st.st_size, &text);
	if (len < 0) {
		cannot_read(s, "cannot read", errno);
	} else {
		/* Names in the diags must outlive this function: keep a copy. */
		char *name = ld_arena_strdup(s->box, path);
		load_text(s, name ? name : "?", text, (size_t)len);
	}
	free(text);
	fclose(f);
}

static bool manifest_name(const char *n)
{
	size_t len = strlen(n);
	static const char *const exts[] = {".yaml", ".yml", ".json", NULL};
	for (const char *const *e = exts; *e; e++) {
		size_t l = strlen(*e);
		if (len > l && !strcmp(n + len - l, *e))
			return true;
	}
	return false;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_path(struct session *s, const char *path, int depth, bool top);

/* Directory entries in name order; hidden ones (ConfigMap volumes keep
 * "..data" links there) are left out. */
static void load_dir(struct session *s, const char *path, int depth)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	bool oom = false;
	if (!d) {
		s->file = path;
		cannot_read(s, "cannot read directory", errno);
		return;
	}
	while (!oom && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char **slot = ld_push((void **)&names, &n, &cap, sizeof(char *));
		if (!slot || !(*slot = strdup(e->d_name))) {
			if (slot)
				n--;
			oom = true;
		}
	}
	closedir(d);
	if (n) /* an empty directory has no array, and qsort's may not be NULL */
		qsort(names, n, sizeof(char *), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char *full;
		if (!oom && asprintf(&full, "%s/%s", path, names[i]) >= 0) {
			load_path(s, full, depth + 1, false);
			free(full);
		} else {
			oom = true;
		}
		free(names[i]);
	}
	free(names);
	/* A directory read in part is no configuration to serve. */
	if (oom) {
		s->file = path;
		cannot_read(s, "cannot read directory", ENOMEM);
	}
}

static void load_path(struct session *s, const char *path, int depth, bool top)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		s->file = path;
		cannot_read(s, "cannot read", errno);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		if (depth >= MAX_DIR_DEPTH) {
			s->file = path;
			ld_err(s, 0, NULL, NULL, "directories nested too deeply");
			return;
		}
		load_dir(s, path, depth);
	} else if (top || (S_ISREG(st.st_mode) && manifest_name(path))) {
		load_file(s, path);
	}
}

/* ---- public ------------------------------------------------------------------------ */

static int session_start(struct session *s, struct ig_diags *diags)
{
	memset(s, 0, sizeof(*s));
	s->diags = diags;
	s->box = calloc(1, sizeof(*s->box));
	if (s->box)
		return 0;
	ig_diags_add(diags, false, "infergate", 0, NULL, "out of memory");
	ig_diags_resource(diags, ENOMEM);
	return -1;
}

static int session_finish(struct session *s, struct ig_config **out)
{
	/* The cross-object pass allocates from the arena too (a
	 * BackendTLSPolicy's CA bundle and messages): running out of memory
	 * there fails the load, as in a document. */
	if (setjmp(s->jmp) == 0) {
		ld_link(s);
	} else {
		s->file = "infergate";
		ld_err(s, 0, NULL, NULL, "out of memory");
		ig_diags_resource(s->diags, ENOMEM);
	}
	free(s->refs);
	if (s->nomitted)
		ld_note(s->diags, "%zu more problems not shown", s->nomitted);
	if (s->nerrors > 0) {
		ig_config_free(&s->box->cfg);
		return -1;
	}
	(void)ig_config_build_index(&s->box->cfg); /* without it lookups scan */
	*out = &s->box->cfg;
	return 0;
}

int ig_config_load_extra(const char *const *paths, size_t npaths, const char *extra_name,
			 const char *extra, struct ig_config **out, struct ig_diags *diags)
{
	struct session s;
	if (session_start(&s, diags) < 0)
		return -1;
	for (size_t i = 0; i < npaths; i++)
		load_path(&s, paths[i], 0, true);
	if (extra) {
		char *n = ld_arena_strdup(s.box, extra_name ? extra_name : "<text>");
		load_text(&s, n ? n : "?", extra, strlen(extra));
	}
	return session_finish(&s, out);
}

int ig_config_load(const char *const *paths, size_t npaths, struct ig_config **out,
		   struct ig_diags *diags)
{
	return ig_config_load_extra(paths, npaths, NULL, NULL, out, diags);
}

int ig_config_load_text(const char *name, const char *text, size_t len, struct ig_config **out,
			struct ig_diags *diags)
{
	struct session s;
	if (session_start(&s, diags) < 0)
		return -1;
	char *n = ld_arena_strdup(s.box, name ? name : "<text>");
	load_text(&s, n ? n : "?", text, len);
	return session_finish(&s, out);
}

int ig_config_load_texts(const struct ig_config_text *texts, size_t n, struct ig_config **out,
			 struct ig_diags *diags)
{
	struct session s;
	if (session_start(&s, diags) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char *name = ld_arena_strdup(s.box, texts[i].name ? texts[i].name : "<text>");
		load_text(&s, name ? name : "?", texts[i].text, texts[i].len);
	}
	return session_finish(&s, out);
}

void ig_config_free(struct ig_config *cfg)
{
	struct box *b = (struct box *)cfg;
	if (!b)
		return;
	/* Private keys must not linger in freed memory. */
	for (size_t i = 0; i < cfg->nsecrets; i++)
		for (size_t k = 0; k < cfg->secrets[i].nitems; k++)
			if (cfg->secrets[i].items[k].bytes)
				explicit_bzero(cfg->secrets[i].items[k].bytes,
					       cfg->secrets[i].items[k].len);
	free(cfg->gateways);
	free(cfg->listener_sets);
	free(cfg->routes);
	free(cfg->grants);
	free(cfg->tls_policies);
	free(cfg->pools);
	free(cfg->models);
	free(cfg->objectives);
	free(cfg->rewrites);
	free(cfg->imports);
	free(cfg->pods);
	free(cfg->deployments);
	free(cfg->namespaces);
	free(cfg->services);
	free(cfg->slices);
	free(cfg->endpoints);
	free(cfg->secrets);
	free(cfg->configmaps);
	free(cfg->picker_docs);
	ig_config_index_free(cfg->index);
	for (struct chunk *c = b->arena, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(b);
}

int ig_config_add_pod(struct ig_config *cfg, const char *ns, const char *name, const char *ip,
		      const struct ig_kv *labels, size_t nlabels)
{
	struct box *b = (struct box *)cfg;
	struct ig_pod p = {.ready = true};
	p.meta.api_version = ld_arena_strdup(b, "v1");
	p.meta.kind = ld_arena_strdup(b, "Pod");
	p.meta.ns = ld_arena_strdup(b, ns ? ns : "default");
	p.meta.name = ld_arena_strdup(b, name);
	p.meta.file = ld_arena_strdup(b, "(added at run time)");
	p.meta.seq = b->next_seq++;
	p.ip = ld_arena_strdup(b, ip);
	p.meta.labels = ld_arena_alloc(b, (nlabels + 1) * sizeof(struct ig_kv));
	if (!p.meta.api_version || !p.meta.kind || !p.meta.ns || (name && !p.meta.name) ||
	    !p.meta.file || (ip && !p.ip) || !p.meta.labels)
		return -ENOMEM;
	for (size_t i = 0; i < nlabels; i++) {
		struct ig_kv *kv = &p.meta.labels[i];
		kv->key = ld_arena_strdup(b, labels[i].key);
		kv->value = ld_arena_strdup(b, labels[i].value ? labels[i].value : "");
		if (!kv->key || !kv->value)
			return -ENOMEM;
	}
	p.meta.nlabels = nlabels;
	struct ig_pod *q = ld_push((void **)&cfg->pods, &cfg->npods, &b->cap[K_POD], sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = p;
	return 0;
}
