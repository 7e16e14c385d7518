/* `infergate check`: load manifests the way `gateway` would and report
 * every problem, so that a config can be validated before it is served. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/flags.h"
#include "gateway/attach.h"
#include "gateway/snapshot.h"

static const char usage_text[] =
    "usage: infergate check -f PATH [-f PATH...]\n\n"
    "Validates Kubernetes manifests (files, or directories of *.yaml, *.yml and\n"
    "*.json read recursively) and prints every error and warning as\n"
    "FILE:LINE: FIELD: MESSAGE. Warnings include what the gateway would not serve\n"
    "as written: unresolved references, routes their parent Gateway does not\n"
    "accept (Accepted=False and the Gateway API's reason), listeners in conflict.\n"
    "Exit status: 0 valid (warnings or not), 1 errors, 2 usage.\n\n";

static int no_positional(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	return ig_flags_error(fl, "unexpected argument '%s' (use -f PATH)", v);
}

static void summary(const struct ig_config *c)
{
	size_t grpc = 0;
	for (size_t i = 0; i < c->nroutes; i++)
		grpc += c->routes[i].grpc;
	const struct {
		size_t n;
		const char *kind;
	} counts[] = {
	    {c->ngateways, "Gateway"},
	    {c->nlistener_sets, "ListenerSet"},
	    {c->nroutes - grpc, "HTTPRoute"},
	    {grpc, "GRPCRoute"},
	    {c->ngrants, "ReferenceGrant"},
	    {c->ntls_policies, "BackendTLSPolicy"},
	    {c->npools, "InferencePool"},
	    {c->nmodels, "InferenceModel"},
	    {c->nobjectives, "InferenceObjective"},
	    {c->nrewrites, "InferenceModelRewrite"},
	    {c->nimports, "InferencePoolImport"},
	    {c->nnamespaces, "Namespace"},
	    {c->nservices, "Service"},
	    {c->nslices, "EndpointSlice"},
	    {c->nendpoints, "Endpoints"},
	    {c->nsecrets, "Secret"},
	    {c->nconfigmaps, "ConfigMap"},
	    {c->npods, "Pod"},
	    {c->ndeployments, "Deployment"},
	};
	size_t total = 0;
	const char *sep = ": ";
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
		total += counts[i].n;
	printf("%zu object%s ok", total, total == 1 ? "" : "s");
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		if (!counts[i].n)
			continue;
		printf("%s%zu %s", sep, counts[i].n, counts[i].kind);
		sep = ", ";
	}
	if (c->nskipped) {
		size_t named = 0;
		printf(" (%zu other document%s skipped", c->nskipped, c->nskipped == 1 ? "" : "s");
		for (size_t i = 0; i < c->nskipped_kinds; i++) {
			printf("%s%zu %s", i ? ", " : ": ", c->skipped_kinds[i].n,
			       c->skipped_kinds[i].kind);
			named += c->skipped_kinds[i].n;
		}
		if (named < c->nskipped)
			printf(", %zu of other kinds", c->nskipped - named);
		printf(")");
	}
	printf("\n");
}

/* A pool whose endpoint picker Service is not in the files: the gateway
 * serves it with the built-in picker (and says so once in its log), while
 * under --kube a v1 pool's requests get 503 (ResolvedRefs=False,
 * InvalidExtensionRef). */
static void pool_diags(const struct ig_config *cfg, struct ig_diags *d)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct ig_pool *p = &cfg->pools[i];
		if (!p->epp_name || strcmp(p->epp_kind, "Service") != 0 ||
		    ig_config_find_service(cfg, p->meta.ns, p->epp_name))
			continue;
		ig_diags_add(
		    d, true, p->meta.file, p->epp_line ? p->epp_line : p->meta.line,
		    p->v1 ? "spec.endpointPickerRef.name" : "spec.extensionRef.name",
		    "InferencePool \"%s/%s\": its endpoint picker Service \"%s\" is not in "
		    "the files; in file mode the built-in picker serves the pool%s",
		    p->meta.ns, p->meta.name, p->epp_name,
		    p->v1 ? " (under --kube its requests would get 503)" : "");
	}
}

static size_t count_errors(const struct ig_diags *d)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++)
		n += !d->items[i].warning;
	return n;
}

int ig_check_main(int argc, char **argv)
{
	struct ig_flag_list paths = {0};
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("options:"),
	    IG_FLAG_LIST("filename", 'f', &paths, "PATH",
			 "a manifest file or directory (repeatable)"),
	    IG_FLAG_END,
	};
	struct ig_flags fl = {.prog = "infergate check",
			      .usage = usage_text,
			      .table = table,
			      .positional = no_positional};
	int rc = ig_flags_parse(&fl, argc, argv);
	if (rc != IG_OK) {
		rc = ig_flags_report(&fl, rc);
		goto out;
	}
	if (paths.n == 0) {
		rc = ig_flags_report(&fl, ig_flags_error(&fl, "no manifests given (use -f PATH)"));
		ig_flags_usage(&fl, stderr);
		goto out;
	}
	struct ig_config *cfg = NULL;
	struct ig_diags diags = {0};
	int r = ig_config_load(paths.v, paths.n, &cfg, &diags);
	if (r == 0) {
		/* The endpoint picker's configuration, as the gateway would load it. */
		struct ig_picker_config *picker = NULL;
		uint64_t hash;
		if (ig_gw_load_picker(cfg, NULL, NULL, false, &picker, &hash, &diags) < 0)
			r = -1;
		ig_picker_config_free(picker);
		/* What the gateway would not attach, as it would log it. */
		if (r == 0) {
			ig_attach_diags(cfg, &diags);
			pool_diags(cfg, &diags);
		}
		if (r < 0) {
			ig_config_free(cfg);
			cfg = NULL;
		}
	}
	ig_diags_print(&diags, stderr);
	if (r == 0) {
		summary(cfg);
		ig_config_free(cfg);
		rc = 0;
	} else {
		size_t n = count_errors(&diags);
		printf("%zu error%s\n", n, n == 1 ? "" : "s");
		rc = 1;
	}
	ig_diags_free(&diags);
out:
	ig_flag_list_free(&paths);
	return rc;
}
