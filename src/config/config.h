/* The resource model: the Kubernetes objects infergate understands, loaded
 * from manifest files (multi-document YAML, files or directories), with
 * Kubernetes defaults applied and validated per the CRDs. A loaded
 * struct ig_config is immutable and owns all its memory; the gateway turns
 * it into routing tables and publishes it as a snapshot.
 *
 * What the loader guarantees for every kind below:
 * - Every field of a Gateway API or GIE object is either decoded into these
 *   structs or refused with "file:line: path: message" (unknown fields, and
 *   fields infergate does not implement); nothing is read and dropped. Core
 *   objects (Service, EndpointSlice, Endpoints, Secret, Namespace) accept
 *   every field Kubernetes defines for them, decode what routing needs and
 *   refuse unknown names. Pods and Deployments only have their metadata
 *   checked that strictly: they are kept for `demo`/`run`, not served.
 * - `status` of every object is accepted and ignored (it is output).
 * - Defaults the API server would fill in are filled in (listed per field).
 * - References between objects are resolved once everything is loaded;
 *   a reference that does not resolve is a warning (the object may come
 *   with a later reload), and its outcome is recorded as an ig_ref_status.
 *
 * Strings are NUL-terminated and never NULL unless the comment says
 * "NULL: ...". Counts go with arrays (`x` and `nx`). */
#ifndef IG_CONFIG_CONFIG_H
#define IG_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ig_kv {
	char *key;
	char *value;
};

/* What every object has. */
struct ig_meta {
	char *api_version;
	char *kind;
	char *name;
	char *ns;		  /* "default" when the manifest gives none; "" for Namespace */
	char *creation_timestamp; /* RFC 3339 text or NULL */
	/* creationTimestamp read once, as a time (ig_meta_set_created), so that
	 * sorting by age parses nothing; has_created is false without one. */
	int64_t created_s;
	uint32_t created_ns;
	bool has_created;
	struct ig_kv *labels;
	size_t nlabels;
	char *file; /* where the object was read from */
	int line;   /* 1-based line of the document's first key */
	size_t seq; /* load order: position among all loaded objects */
};

/* A metav1.LabelSelector: every matchLabels pair AND every expression
 * must hold. An empty selector (no pairs, no expressions) selects
 * everything. Operators: In / NotIn (values 1+), Exists / DoesNotExist (no
 * values), validated as the API server does. */
enum ig_selector_op { IG_SEL_IN, IG_SEL_NOT_IN, IG_SEL_EXISTS, IG_SEL_DOES_NOT_EXIST };

struct ig_selector_req {
	char *key;
	enum ig_selector_op op;
	char **values;
	size_t nvalues;
};

struct ig_label_selector {
	struct ig_kv *match_labels;
	size_t nmatch_labels;
	struct ig_selector_req *exprs;
	size_t nexprs;
};

/* How a reference between objects turned out, with the Gateway API's
 * condition reasons (ResolvedRefs=False/<reason>). Computed by the loader
 * from the objects in the same load. */
enum ig_ref_status {
	IG_REF_OK = 0,
	IG_REF_NOT_FOUND,	     /* BackendNotFound: no such object */
	IG_REF_INVALID_KIND,	     /* InvalidKind: a group/kind infergate cannot route to */
	IG_REF_NOT_PERMITTED,	     /* RefNotPermitted: cross-namespace without a ReferenceGrant */
	IG_REF_UNSUPPORTED_PROTOCOL, /* UnsupportedProtocol: the port's appProtocol */
	IG_REF_INVALID, /* InvalidCertificateRef: the Secret is not a usable TLS pair */
};

/* ---- gateway.networking.k8s.io: Gateway (v1, v1beta1) ---- */

/* FromNamespaces. None is allowedListeners' only (and its default). */
enum ig_routes_from { IG_FROM_SAME = 0, IG_FROM_ALL, IG_FROM_SELECTOR, IG_FROM_NONE };

struct ig_route_group_kind {
	char *group; /* default gateway.networking.k8s.io */
	char *kind;
};

/* listeners[].allowedRoutes; the zero value is the CRD default
 * {namespaces: {from: Same}} with the protocol's default kinds. */
struct ig_allowed_routes {
	enum ig_routes_from from;
	/* With from Selector: the namespace selector, matched against the
	 * labels of the route's Namespace (see ig_config_namespace_selected).
	 * has_selector false (Selector without a selector) admits nothing. */
	bool has_selector;
	struct ig_label_selector selector;
	/* As written; empty means the protocol's kinds (HTTPRoute for HTTP and
	 * HTTPS). Kinds other than HTTPRoute are accepted with a warning
	 * (InvalidRouteKinds) and never attach anything. */
	struct ig_route_group_kind *kinds;
	size_t nkinds;
};

/* A reference to a Secret holding a certificate (listeners[].tls.
 * certificateRefs[]): group default "", kind default Secret, namespace
 * default the Gateway's. */
struct ig_cert_ref {
	char *group;
	char *kind;
	char *ns;
	char *name;
	int line; /* of the reference in its file */
	/* Resolved by the loader: status OK means `secret` is a Secret of type
	 * kubernetes.io/tls with non-empty tls.crt and tls.key that look like
	 * PEM (a CERTIFICATE block, a PRIVATE KEY block), reachable from the
	 * Gateway (same namespace or a ReferenceGrant from Gateway to Secret).
	 * Otherwise NOT_FOUND, INVALID_KIND (not a core Secret), NOT_PERMITTED
	 * or INVALID, with a warning, and secret may be NULL. In Gateway API
	 * terms NOT_PERMITTED is the listener's ResolvedRefs=False/
	 * RefNotPermitted and every other failure InvalidCertificateRef. A
	 * listener's are also loaded by OpenSSL as its port's TLS context will
	 * load them (ig_tls_check_pairs): one it refuses is INVALID too, with
	 * why saying what was wrong. */
	enum ig_ref_status status;
	const struct ig_secret *secret;
	const char *why; /* INVALID: what is wrong with the Secret, or NULL */
};

enum ig_tls_mode { IG_TLS_TERMINATE = 0, IG_TLS_PASSTHROUGH };

/* A caCertificateRefs[] entry of client certificate validation: group
 * default "", namespace default the Gateway's; kind and name required. */
struct ig_ca_ref {
	char *group;
	char *kind;
	char *ns;
	char *name;
	int line;
};

/* Client certificate validation (spec.tls.frontend, Gateway API v1.4):
 * HTTPS listeners ask their clients for a certificate and check it
 * against the CA certificates of ConfigMaps (key ca.crt). */
struct ig_frontend_validation {
	bool set;
	bool insecure_fallback; /* mode AllowInsecureFallback; default AllowValidOnly */
	struct ig_ca_ref *refs;
	size_t nrefs;
	/* Resolved by the loader: the ca.crt texts of the valid refs joined
	 * (NUL-terminated), how many refs are valid, and for the first invalid
	 * one the listener's ResolvedRefs reason (InvalidCACertificateKind,
	 * InvalidCACertificateRef or RefNotPermitted) and why; NULL when all
	 * are valid. No valid ref: the listeners it covers are not served
	 * (Accepted=False, NoValidCACertificate). */
	char *ca_pem;
	size_t ca_len;
	size_t nvalid;
	const char *refs_reason;
	char *refs_message;
};

/* listeners[].tls. Validated: not allowed on HTTP/TCP/UDP listeners;
 * required on HTTPS listeners (infergate cannot serve HTTPS without a
 * certificate), where mode must be Terminate and certificateRefs must have
 * 1 to 64 entries, or `options` given instead (the CRD's rule): infergate
 * implements no options, so they are ignored with a warning and a listener
 * with options only is InvalidCertificateRef and not served. */
struct ig_listener_tls {
	bool set;
	enum ig_tls_mode mode; /* default Terminate */
	struct ig_cert_ref *certs;
	size_t ncerts;
	/* tls.frontendValidation: the listener's own client certificate
	 * validation, as Gateway API v1.1-v1.3 put it (v1.4 moved it to the
	 * Gateway's spec.tls.frontend); it takes precedence over the
	 * Gateway's (ig_listener_frontend). */
	struct ig_frontend_validation frontend;
};

/* Why a ListenerSet's listener gives way to one before it in its
 * Gateway's merged list (ig_gateway_listener): the same port with another
 * protocol, or the same port, protocol and hostname. */
enum ig_listener_conflict { IG_CONFLICT_NONE = 0, IG_CONFLICT_PROTOCOL, IG_CONFLICT_HOSTNAME };

struct ig_listener_set;

struct ig_listener {
	char *name;
	char *protocol; /* HTTP, HTTPS, TLS, TCP, UDP or "domain/Name" */
	int port;	/* 0 only in an XListenerSet, which left it to the implementation */
	char *hostname; /* NULL: any; for HTTPS also the SNI name it answers */
	struct ig_allowed_routes allowed;
	struct ig_listener_tls tls;
	/* True for HTTP and HTTPS: the protocols infergate serves. Other
	 * listeners load with a warning and attach no routes. */
	bool served;
	/* Set by the loader. The ListenerSet the listener belongs to (NULL:
	 * the Gateway's own spec.listeners): routes attach to it through a
	 * parentRef to that ListenerSet, and allowedRoutes "Same" means the
	 * ListenerSet's namespace. */
	const struct ig_listener_set *set;
	enum ig_listener_conflict conflict; /* a ListenerSet's listener only */
	/* Set by the loader: HOSTNAME when a listener of another Gateway has
	 * the same port, protocol and hostname (or neither has a hostname).
	 * Both claim the same requests and the Gateway API lets none of
	 * conflicted listeners win (§3.2), so neither is served. */
	enum ig_listener_conflict across;
	int line; /* of the listener in its file */
};

struct ig_frontend_port {
	int port;
	struct ig_frontend_validation v; /* v.set false: no validation on this port */
};

/* Listener checks: names unique, (port, protocol, hostname) unique, no
 * hostname on TCP/UDP, the tls rules above; spec.addresses, infrastructure,
 * allowedListeners and defaultScope are refused. */
struct ig_gateway_address {
	const char *type;  /* IPAddress (the default), Hostname, or another */
	const char *value; /* NULL: any */
	int line;
};

enum ig_gateway_address_state {
	IG_GWADDR_OK,
	IG_GWADDR_UNSUPPORTED, /* a type infergate does not serve: Accepted=False */
	IG_GWADDR_NOT_USABLE,  /* an IP this host or --bind does not have: Programmed=False */
};

struct ig_gateway {
	struct ig_meta meta;
	char *class_name;
	struct ig_listener *listeners;
	size_t nlisteners;
	/* spec.tls.frontend: default, and perPort entries that replace it on
	 * their port (ig_gateway_frontend). */
	struct ig_frontend_validation frontend;
	struct ig_frontend_port *frontend_ports;
	size_t nfrontend_ports;
	/* spec.tls.backend.clientCertificateRef: the certificate the gateway
	 * presents to backends it reaches over TLS (a BackendTLSPolicy's), for
	 * requests that came through this Gateway; resolved as certificateRefs
	 * are (ResolvedRefs=False/InvalidClientCertificateRef or
	 * RefNotPermitted on the Gateway when it does not). */
	bool has_backend_client;
	bool backend_client_v1_2; /* written as spec.backendTLS (Gateway API v1.2-v1.3) */
	struct ig_cert_ref backend_client;
	/* spec.allowedListeners.namespaces: the ListenerSets that may attach
	 * (from default None; Same, All, or Selector over the ListenerSet's
	 * Namespace labels). */
	enum ig_routes_from listeners_from;
	bool has_listeners_selector;
	struct ig_label_selector listeners_selector;
	/* spec.addresses (Gateway API GatewayStaticAddresses): where the
	 * Gateway asks to be reached; a NULL value (GatewayAddressEmpty) asks
	 * for any address of ours. Type defaults to IPAddress. */
	struct ig_gateway_address *addresses;
	size_t naddresses;
	/* spec.infrastructure.parametersRef's kind: infergate takes no
	 * parameters, so such a Gateway is not accepted (InvalidParameters)
	 * and not served. NULL without one. */
	const char *params_kind;
	/* Set after loading, from what this host and --bind allow
	 * (ig_gateway_addresses_check in gateway/addresses.c): a Gateway
	 * whose state is not IG_GWADDR_OK is not served. */
	enum ig_gateway_address_state addr_state;
	size_t addr_bad; /* the first address at fault */
	/* Set by the loader: every listener the Gateway serves, its own first,
	 * then those of its attached ListenerSets (oldest first, then by
	 * namespace/name) that conflict with no listener before them; NULL for
	 * a config the loader did not make (read through ig_gateway_listener). */
	const struct ig_listener **merged;
	size_t nmerged;
};

/* Whether the Gateway's listeners may be served: its addresses are ours
 * (addr_state) and it names no parameters. */
static inline bool ig_gateway_servable(const struct ig_gateway *gw)
{
	return gw->addr_state == IG_GWADDR_OK && !gw->params_kind;
}

/* The Gateway's merged listeners (see `merged`), i below
 * ig_gateway_nlisteners(gw). */
static inline size_t ig_gateway_nlisteners(const struct ig_gateway *gw)
{
	return gw->merged ? gw->nmerged : gw->nlisteners;
}

static inline const struct ig_listener *ig_gateway_listener(const struct ig_gateway *gw, size_t i)
{
	return gw->merged ? gw->merged[i] : &gw->listeners[i];
}

/* ---- gateway.networking.k8s.io: ListenerSet (v1, Gateway API v1.5+) and
 * gateway.networking.x-k8s.io: XListenerSet (v1alpha1, v1.3-v1.4) ----
 *
 * More listeners for a Gateway whose allowedListeners admits the
 * ListenerSet's namespace. The listeners are decoded and checked as a
 * Gateway's are (names and port/protocol/hostname unique within the set;
 * 1 to 64), their certificateRefs resolved from the ListenerSet's
 * namespace (a ReferenceGrant must name kind ListenerSet). */
enum ig_lset_state {
	IG_LSET_NO_PARENT = 0,	     /* parentRef names no Gateway of the configuration */
	IG_LSET_NOT_ALLOWED,	     /* the Gateway's allowedListeners does not admit it */
	IG_LSET_LISTENERS_NOT_VALID, /* attached, but no listener of it can be served */
	IG_LSET_ACCEPTED,	     /* attached, and at least one listener can be served */
};

struct ig_listener_set {
	struct ig_meta meta;		  /* kind ListenerSet or XListenerSet */
	const char *group;		  /* the kind's API group, as routes' parentRefs name it */
	char *parent_group, *parent_kind; /* defaults gateway.networking.k8s.io, Gateway */
	char *parent_ns;		  /* default the ListenerSet's namespace */
	char *parent_name;
	struct ig_listener *listeners;
	size_t nlisteners;
	/* Set by the loader. */
	enum ig_lset_state state;
	const struct ig_gateway *gw; /* the parent Gateway when found */
};

/* Whether a listener of a ListenerSet can be served: a protocol infergate
 * serves, a port, no conflict, and for HTTPS at least one usable
 * certificate. */
bool ig_listener_set_listener_valid(const struct ig_gateway *gw, const struct ig_listener *l);

/* The client certificate validation of gw's HTTPS listeners on port, or
 * NULL when they validate none; for one listener, its own
 * frontendValidation first. */
const struct ig_frontend_validation *ig_gateway_frontend(const struct ig_gateway *gw, int port);
const struct ig_frontend_validation *ig_listener_frontend(const struct ig_gateway *gw,
							  const struct ig_listener *li);

/* ---- gateway.networking.k8s.io: HTTPRoute (v1, v1beta1) ---- */

struct ig_parent_ref {
	char *group; /* default gateway.networking.k8s.io */
	char *kind;  /* default Gateway (other kinds: a warning, never attached) */
	char *ns;    /* default: the route's namespace */
	char *name;
	char *section_name; /* NULL: all listeners */
	int port;	    /* 0: any */
	int line;	    /* of the parentRef in its file */
	/* Whether namespace was written (not "" either): the CRD's rule on
	 * parentRefs to the same parent tells a written namespace from an
	 * absent one, even when both mean the route's. */
	bool ns_written;
};

enum ig_path_type { IG_PATH_PREFIX, IG_PATH_EXACT, IG_PATH_REGEX };
enum ig_value_match { IG_MATCH_EXACT, IG_MATCH_REGEX };

struct ig_header_match {
	enum ig_value_match type;
	char *name;
	char *value;
};

/* A GRPCRoute match is kept as the HTTP match it means (gRPC calls are
 * POSTs to /service/method): Exact service and method an Exact path,
 * service alone the PathPrefix /service, method alone or
 * RegularExpression a regular expression over the whole path. The
 * original values stay for GRPCRoute's precedence (characters of the
 * service, then of the method) and for messages. */
struct ig_grpc_method_match {
	bool set;
	bool regex;    /* type RegularExpression */
	char *service; /* NULL or "": any */
	char *method;  /* NULL or "": any */
};

struct ig_route_match {
	enum ig_path_type path_type;	  /* default PathPrefix */
	char *path;			  /* default "/" */
	struct ig_grpc_method_match grpc; /* GRPCRoute only */
	struct ig_header_match *headers;
	size_t nheaders;
	struct ig_header_match *query; /* queryParams */
	size_t nquery;
	char *method; /* NULL: any */
};

/* A header modifier filter (RequestHeaderModifier, ResponseHeaderModifier).
 * Names are HTTP tokens of 1..256 characters, values 1..4096 visible ASCII
 * characters with single spaces or tabs between words (the CRD's pattern:
 * no CR, LF or other control characters). At most 16 entries per list; a
 * name appears at most once per list (case-insensitively), as the CRD's
 * list-map keys demand. Semantics (spec §4.5): `set` replaces every value
 * of the header, `add` appends a value, `remove` deletes all values; names
 * compare case-insensitively. */
struct ig_header_modifier {
	struct ig_kv *set;
	size_t nset;
	struct ig_kv *add;
	size_t nadd;
	char **remove;
	size_t nremove;
};

enum ig_path_modifier_type { IG_PATH_MOD_NONE = 0, IG_PATH_MOD_FULL, IG_PATH_MOD_PREFIX };

/* HTTPPathModifier: ReplaceFullPath (value replaces the whole path) or
 * ReplacePrefixMatch (value replaces the matched PathPrefix, element-wise;
 * the CRD lets it appear only in a rule with exactly one match, of type
 * PathPrefix). value is 0..1024 characters without spaces or control
 * characters; "" is valid for ReplacePrefixMatch. */
struct ig_path_modifier {
	enum ig_path_modifier_type type; /* NONE: the path is left as is */
	char *value;			 /* NULL when type is NONE */
};

struct ig_url_rewrite {
	char *hostname; /* NULL: keep Host; else a precise DNS name */
	struct ig_path_modifier path;
};

struct ig_redirect {
	char *scheme;	/* NULL: the request's; else "http" or "https" */
	char *hostname; /* NULL: the request's Host without port; else a precise DNS name */
	struct ig_path_modifier path;
	int port;	 /* 0: unset (derive from scheme or the listener, see spec §4.5) */
	int status_code; /* 301, 302 (default), 303, 307 or 308 */
};

struct ig_backend_ref;

/* RequestMirror: a copy of the request goes to `backend` for
 * numerator/denominator of the requests (percent P is P/100; neither
 * percent nor fraction is 100/100; fraction's denominator defaults to 100;
 * numerator <= denominator). backend has no weight (0) and no filters. */
struct ig_mirror {
	struct ig_backend_ref *backend;
	uint32_t numerator;
	uint32_t denominator;
};

/* CORS (HTTPCORSFilter, standard since Gateway API v1.5): origins are "*"
 * or scheme://host[:port], where the host may start with "*." (any
 * subdomain, at any depth); methods and headers may be ["*"] alone. Lists
 * are NULL-terminated. max_age defaults to 5 seconds. */
struct ig_cors {
	char **origins;
	size_t norigins;
	char **methods;
	size_t nmethods;
	char **allow_headers;
	size_t nallow_headers;
	char **expose_headers;
	size_t nexpose_headers;
	bool credentials;
	int max_age;
};

/* ExtensionRef: a LocalObjectReference to an implementation's own filter
 * kind. infergate has none, so no reference resolves: the route loads
 * with a warning, its status says ResolvedRefs=False (InvalidKind), and
 * every request the filter would process -- those matching its rule, or
 * drawing its backendRef -- is answered 500, as the Gateway API demands
 * of an unresolved filter reference (never skipped). */
struct ig_extension_ref {
	char *group; /* "" is the core group */
	char *kind;
	char *name;
};

enum ig_filter_type {
	IG_FILTER_REQUEST_HEADER_MODIFIER,
	IG_FILTER_RESPONSE_HEADER_MODIFIER,
	IG_FILTER_URL_REWRITE,
	IG_FILTER_REQUEST_REDIRECT,
	IG_FILTER_REQUEST_MIRROR,
	IG_FILTER_CORS,
	IG_FILTER_EXTENSION_REF,
};

/* One HTTPRouteFilter; exactly one member of the union is meaningful, the
 * one named by type. ExternalAuth filters are refused at load; ExtensionRef
 * filters load and never resolve (struct ig_extension_ref). Filters are
 * kept in list order (the spec says they SHOULD run in that order). Per
 * list (rule or backendRef), checked: each of RequestHeaderModifier,
 * ResponseHeaderModifier, RequestRedirect, URLRewrite and CORS at most
 * once; RequestRedirect and URLRewrite not together; RequestMirror and
 * ExtensionRef may repeat. Per rule: RequestRedirect (rule level) only
 * without backendRefs. */
struct ig_filter {
	enum ig_filter_type type;
	int line; /* of the filter in its file, for the data plane's logs */
	union {
		struct ig_header_modifier headers; /* the two header modifiers */
		struct ig_url_rewrite rewrite;
		struct ig_redirect redirect;
		struct ig_mirror mirror;
		struct ig_cors cors;
		struct ig_extension_ref ext;
	} u;
};

/* The first ExtensionRef filter of a list, or NULL. */
const struct ig_filter *ig_filters_extension_ref(const struct ig_filter *fs, size_t n);

struct ig_backend_ref {
	char *group; /* "" core (Service), or inference.networking.(x-)k8s.io */
	char *kind;  /* default Service */
	char *ns;    /* default: the route's namespace */
	char *name;
	int port;   /* 0: unset (required for a Service; ignored for an InferencePool) */
	int weight; /* default 1; 0 allowed; 0 in a mirror's backend */
	int line;   /* of the reference in its file */
	/* backendRefs[].filters: run only when this backend is chosen. */
	struct ig_filter *filters;
	size_t nfilters;
	/* Resolution, done by the loader once everything is read. OK means:
	 * - core Service: `service` is the Service of that namespace/name,
	 *   not of type ExternalName, with a port numbered `port` whose
	 *   appProtocol (if any) is http or kubernetes.io/h2c
	 *   (ig_config_service_endpoints gives its endpoints);
	 * - InferencePool: `pool` is the pool of that namespace/name whose API
	 *   group is the ref's group (a v1 pool is named with
	 *   inference.networking.k8s.io, a v1alpha2 one with
	 *   inference.networking.x-k8s.io);
	 * - and, across namespaces, a ReferenceGrant in the target namespace
	 *   allows HTTPRoute -> that kind (ig_config_reference_allowed).
	 * Anything else has its reason here and a warning; per the Gateway API
	 * such a backend keeps its weight and its share of requests gets 500. */
	enum ig_ref_status status;
	const struct ig_pool *pool;	  /* NULL unless an InferencePool resolved */
	const struct ig_service *service; /* NULL unless a Service resolved */
	/* A resolved Service reached over HTTP/2: h2c when its port says
	 * kubernetes.io/h2c, or says nothing and a GRPCRoute names it (gRPC
	 * is HTTP/2: the Route type tells the protocol, as the Gateway API
	 * allows); h2 over TLS (ALPN) when a GRPCRoute names a port that a
	 * BackendTLSPolicy targets (appProtocol none or https). A
	 * GRPCRoute's port with another appProtocol is UnsupportedProtocol,
	 * and an InferencePool InvalidKind. */
	bool h2c;
	/* A resolved Service port that a usable BackendTLSPolicy targets is
	 * reached over TLS as it says (appProtocol http, HTTPS/https,
	 * kubernetes.io/ws or kubernetes.io/wss allowed; h2c refused). */
	const struct ig_backend_tls_policy *tls;
};

/* HTTPRoute rule `retry` (experimental, GEP-1731). codes are 400..599 and
 * unique; attempts >= 0 (0 allowed as in v1.2.1's CRD); backoff a
 * Duration. Zero value: no retry block. */
struct ig_retry {
	bool set;
	int *codes;
	size_t ncodes;
	bool has_attempts;
	int attempts;
	bool has_backoff;
	uint64_t backoff_ms;
};

enum ig_session_type { IG_SESSION_COOKIE = 0, IG_SESSION_HEADER };
enum ig_cookie_lifetime { IG_COOKIE_SESSION = 0, IG_COOKIE_PERMANENT };

/* HTTPRoute rule `sessionPersistence` (experimental, GEP-1619). type
 * defaults to Cookie, cookieConfig.lifetimeType to Session. Checked:
 * sessionName at most 128 characters; durations valid; Permanent needs
 * absoluteTimeout; cookieConfig only with type Cookie. idleTimeout is
 * accepted (v1.2.1-v1.5 CRDs have it). Zero value: none. */
struct ig_session_persistence {
	bool set;
	char *session_name; /* NULL: the implementation's choice */
	enum ig_session_type type;
	enum ig_cookie_lifetime lifetime;
	bool has_absolute_timeout;
	uint64_t absolute_timeout_ms;
	bool has_idle_timeout;
	uint64_t idle_timeout_ms;
};

struct ig_route_rule {
	char *name;			/* optional */
	struct ig_route_match *matches; /* never empty after defaults */
	size_t nmatches;
	struct ig_filter *filters; /* rule-level, in order */
	size_t nfilters;
	struct ig_backend_ref *backends;
	size_t nbackends;
	uint64_t timeout_request_ms; /* 0: none */
	uint64_t timeout_backend_ms; /* 0: none */
	struct ig_retry retry;
	struct ig_session_persistence session;
};

/* An HTTPRoute, or a GRPCRoute (gateway.networking.k8s.io v1, v1alpha2;
 * `grpc`, meta.kind "GRPCRoute"): the same shape, the GRPCRoute's
 * matches translated (ig_grpc_method_match), its rules without
 * timeouts or retry, its filters RequestHeaderModifier,
 * ResponseHeaderModifier and RequestMirror. */
struct ig_httproute {
	struct ig_meta meta;
	bool grpc;
	struct ig_parent_ref *parents;
	size_t nparents;
	char **hostnames;
	size_t nhostnames;
	struct ig_route_rule *rules; /* never empty after defaults */
	size_t nrules;
};

/* ---- gateway.networking.k8s.io: ReferenceGrant (v1beta1, v1) ---- */

struct ig_grant_from {
	char *group; /* required, "" for core */
	char *kind;
	char *ns;
};

struct ig_grant_to {
	char *group; /* required, "" for core */
	char *kind;
	char *name; /* NULL: every object of that kind in the namespace */
};

/* Lives in the namespace of the referenced objects. from and to have 1..16
 * entries each. See ig_config_reference_allowed. */
struct ig_reference_grant {
	struct ig_meta meta;
	struct ig_grant_from *from;
	size_t nfrom;
	struct ig_grant_to *to;
	size_t nto;
};

/* BackendTLSPolicy (standard since Gateway API v1.4; v1alpha3 read too):
 * TLS from the gateway to the pods of the Services it targets (the whole
 * Service, or the port its sectionName names), in the policy's namespace.
 * Validated as the CRD: 1 to 16 targetRefs (CEL: distinct, sectionName
 * given on every ref to a target named twice), validation.hostname a
 * PreciseHostname (required), exactly one of caCertificateRefs (1 to 8)
 * and wellKnownCACertificates (the CRD's pattern), subjectAltNames at most
 * 5 (type Hostname with hostname only, URI with uri only), options at
 * most 16. */
struct ig_tls_policy_target {
	char *group, *kind, *name;
	char *section; /* a port name; NULL: every port */
};

struct ig_tls_policy_ca_ref {
	char *group, *kind, *name;
	int line;
};

struct ig_tls_policy_san {
	bool uri;    /* type URI; else Hostname */
	char *value; /* the hostname or the URI */
};

/* What the policy's Accepted condition says (the loader decides). */
enum ig_tls_policy_state {
	IG_TLSP_ACCEPTED = 0,
	/* Another policy takes precedence for one of its targets (older by
	 * creationTimestamp, then first by namespace/name): Conflicted. */
	IG_TLSP_CONFLICTED,
	/* A wellKnownCACertificates other than "System", or options (none is
	 * supported): Invalid. */
	IG_TLSP_INVALID,
	/* Every caCertificateRef is invalid: NoValidCACertificate. */
	IG_TLSP_NO_VALID_CA,
};

struct ig_backend_tls_policy {
	struct ig_meta meta;
	struct ig_tls_policy_target *targets;
	size_t ntargets;
	struct ig_tls_policy_ca_ref *ca_refs;
	size_t nca_refs;
	char *well_known; /* wellKnownCACertificates; NULL when not given */
	char *hostname;
	struct ig_tls_policy_san *sans;
	size_t nsans;
	char **options; /* the keys of `options` */
	size_t noptions;
	/* Resolution, by the loader once everything is read:
	 * - state, with `message` saying why when not accepted;
	 * - refs_ok: every caCertificateRef names a ConfigMap ("" group,
	 *   kind ConfigMap) of the policy's namespace whose data has a
	 *   `ca.crt` holding a PEM certificate; else refs_reason is
	 *   "InvalidKind" (a ref of another kind) or "InvalidCACertificateRef"
	 *   (missing ConfigMap or key, no certificate in it), and
	 *   refs_message names the ref and says why;
	 * - ca_pem: the ca.crt texts of the valid refs, one after another
	 *   (NULL with wellKnownCACertificates System: the system's roots).
	 * A policy is used only when accepted with refs_ok
	 * (ig_tls_policy_usable); a Service port it targets is refused as a
	 * backend otherwise (fail closed: 500, never clear text). */
	enum ig_tls_policy_state state;
	char *message;
	bool refs_ok;
	const char *refs_reason;
	char *refs_message;
	char *ca_pem;
	size_t ca_len;
};

/* ---- inference.networking.(x-)k8s.io ---- */

enum ig_failure_mode { IG_FAIL_CLOSE, IG_FAIL_OPEN };
enum ig_app_protocol { IG_APP_HTTP = 0, IG_APP_H2C };

#define IG_POOL_GROUP_V1 "inference.networking.k8s.io"
#define IG_POOL_GROUP_ALPHA "inference.networking.x-k8s.io"

struct ig_pool {
	struct ig_meta meta;
	bool v1;	   /* inference.networking.k8s.io/v1 (else x-k8s v1alpha2) */
	const char *group; /* IG_POOL_GROUP_V1 or IG_POOL_GROUP_ALPHA */
	/* v1alpha2 map or v1 matchLabels (1..64 pairs). Pods are selected by
	 * equality in the pool's own namespace only, in both versions. */
	struct ig_kv *selector;
	size_t nselector;
	/* v1alpha2: one (targetPortNumber); v1: targetPorts, 1..8, unique.
	 * Each Ready pod contributes one endpoint per port (podIP:port):
	 * data-parallel ranks are separate endpoints. */
	int *target_ports;
	size_t nports;
	/* v1 appProtocol: http (default) or kubernetes.io/h2c. Always http
	 * for v1alpha2, which has no such field. */
	enum ig_app_protocol app_protocol;
	/* extensionRef (v1alpha2, required) / endpointPickerRef (v1, optional
	 * since GIE v1.6): epp_name NULL when the v1 pool has none. */
	char *epp_name;
	int epp_line;			   /* of its name */
	char *epp_group;		   /* default "" */
	char *epp_kind;			   /* default Service */
	int epp_port;			   /* 0: unset (9002 inferred for a v1alpha2 Service); v1
					    * Service refs must set port.number */
	enum ig_failure_mode failure_mode; /* default FailClose */
};

enum ig_criticality { IG_CRIT_UNSET, IG_CRIT_CRITICAL, IG_CRIT_STANDARD, IG_CRIT_SHEDDABLE };

struct ig_target_model {
	char *name;
	int32_t weight; /* valid when has_weight */
	bool has_weight;
};

struct ig_model { /* InferenceModel, x-k8s v1alpha2 (GIE v0.2 .. v0.5) */
	struct ig_meta meta;
	char *model_name;
	enum ig_criticality criticality;
	char *pool_name;  /* poolRef.name, same namespace */
	char *pool_group; /* NULL when not written (objectives, rewrites: any group) */
	struct ig_target_model *targets;
	size_t ntargets;
	/* False when another InferenceModel of the same pool already claims
	 * model_name and is older (GIE's ModelNameInUse). */
	bool accepted;
};

/* InferenceObjective: inference.networking.x-k8s.io/v1alpha2 (GIE
 * v1.0-v1.5) and llm-d.ai/v1alpha2 (llm-d Router), same schema. poolRef
 * group defaults to inference.networking.k8s.io, kind to InferencePool. */
struct ig_objective {
	struct ig_meta meta;
	int priority; /* 0 when unset */
	bool has_priority;
	char *pool_name;
	char *pool_group; /* NULL when not written (objectives, rewrites: any group) */
	char *pool_kind;
};

/* InferenceModelRewrite: inference.networking.x-k8s.io/v1alpha2 (GIE
 * v1.2-v1.5) and llm-d.ai/v1alpha2 (llm-d Router), same schema. */
struct ig_rewrite_target {
	char *model;	/* modelRewrite, required */
	int32_t weight; /* 1..1000000 when has_weight; GIE counts an unset weight as 0 */
	bool has_weight;
};

struct ig_rewrite_rule {
	/* matches[].model.value (type Exact, the only type); a request's model
	 * matches when it equals any of them. Empty: the rule matches every
	 * model (a "generic" rule). */
	char **models;
	size_t nmodels;
	/* 1+ entries when the rule has targets; a rule without targets (the
	 * CRD allows it) rewrites nothing: see ig_rewrite_choose. */
	struct ig_rewrite_target *targets;
	size_t ntargets;
};

struct ig_model_rewrite {
	struct ig_meta meta;
	char *pool_name;  /* spec.poolRef: group default inference.networking.k8s.io */
	char *pool_group; /* NULL when not written (objectives, rewrites: any group) */
	char *pool_kind;
	struct ig_rewrite_rule *rules;
	size_t nrules;
	/* Position among the load's rewrites from the oldest (0): by
	 * creationTimestamp, those without one after, in load order. */
	size_t age_rank;
};

/* InferencePoolImport (x-k8s v1alpha1, GIE v1.1+): accepted and counted,
 * never routed. It is written by a multi-cluster controller (it has only
 * metadata and status) and names a pool exported by other clusters, which
 * a single infergate cannot reach; a load with one gets a warning saying
 * so, and a backendRef to one resolves to IG_REF_INVALID_KIND. */
struct ig_pool_import {
	struct ig_meta meta;
};

/* ---- core/v1 and discovery.k8s.io/v1 ---- */

struct ig_pod {
	struct ig_meta meta;
	char *ip;      /* status.podIP, else first of status.podIPs; NULL if none */
	bool ready;    /* condition Ready=True, or no conditions at all */
	bool deleting; /* metadata.deletionTimestamp set */
};

/* apps/v1 Deployment: not routed, kept so that `demo`/`run` can replace
 * model-server Deployments with simulators. */
struct ig_container {
	char *name;
	char **command;
	size_t ncommand;
	char **args;
	size_t nargs;
	int *ports; /* containerPort values */
	size_t nports;
};

struct ig_deployment {
	struct ig_meta meta;
	int replicas; /* default 1 */
	struct ig_kv *template_labels;
	size_t ntemplate_labels;
	struct ig_container *containers;
	size_t ncontainers;
};

/* v1 Namespace. Its labels (meta.labels) include the one Kubernetes adds
 * to every namespace, kubernetes.io/metadata.name: <name>. */
struct ig_namespace {
	struct ig_meta meta;
};

struct ig_service_port {
	char *name;	    /* "" when unnamed (allowed only for a single port) */
	char *protocol;	    /* default TCP */
	char *app_protocol; /* NULL: unset */
	int port;
	int target_port;	/* number; 0 when given by name */
	char *target_port_name; /* NULL when a number (default: port) */
};

/* v1 Service. Fields Kubernetes defines but routing does not use
 * (clusterIPs, sessionAffinity, traffic policies, ...) are accepted;
 * infergate sends to endpoints directly, as Gateway API implementations do. */
struct ig_service {
	struct ig_meta meta;
	char *type;	   /* default ClusterIP; ExternalName cannot be a backend */
	bool headless;	   /* clusterIP: None */
	char *cluster_ip;  /* spec.clusterIP when an address (NULL: none, or None) */
	bool has_selector; /* a non-empty spec.selector ({} counts as none) */
	struct ig_kv *selector;
	size_t nselector;
	bool publish_not_ready; /* spec.publishNotReadyAddresses */
	struct ig_service_port *ports;
	size_t nports;
};

enum ig_address_type { IG_ADDR_IPV4, IG_ADDR_IPV6, IG_ADDR_FQDN };

/* A port of an EndpointSlice or of an Endpoints subset. */
struct ig_endpoint_port {
	char *name;	    /* "" when unnamed */
	int port;	    /* 0: unset (an EndpointSlice port without a number) */
	char *protocol;	    /* default TCP */
	char *app_protocol; /* NULL: unset */
};

/* conditions: ready absent counts as true, serving absent as ready's
 * value, terminating absent as false (the API's documented meaning). */
struct ig_slice_endpoint {
	char **addresses; /* 1..100, valid for the slice's addressType */
	size_t naddresses;
	bool ready;
	bool serving;
	bool terminating;
};

/* discovery.k8s.io/v1 EndpointSlice. Belongs to the Service named by its
 * label kubernetes.io/service-name (service_name, NULL without it) in its
 * namespace. FQDN slices load with a warning and are never used. */
struct ig_endpoint_slice {
	struct ig_meta meta;
	char *service_name;
	enum ig_address_type address_type;
	struct ig_slice_endpoint *endpoints;
	size_t nendpoints;
	struct ig_endpoint_port *ports;
	size_t nports;
};

struct ig_endpoints_subset {
	char **ready; /* addresses[].ip */
	size_t nready;
	char **not_ready; /* notReadyAddresses[].ip */
	size_t nnot_ready;
	struct ig_endpoint_port *ports;
	size_t nports;
};

/* v1 Endpoints (the older API): belongs to the Service of the same
 * namespace and name. */
struct ig_endpoints_v1 {
	struct ig_meta meta;
	struct ig_endpoints_subset *subsets;
	size_t nsubsets;
};

/* One key of a Secret: data (base64, decoded here) and stringData (plain,
 * wins over data for the same key) merged. bytes is NUL-terminated (not
 * counted in len) and wiped when the config is freed. */
struct ig_secret_item {
	char *key;
	unsigned char *bytes;
	size_t len;
};

/* v1 Secret. Checked as the API server does: keys of [-._a-zA-Z0-9], data
 * valid base64 (line breaks ignored, as Go's decoder does), 1 MiB in all;
 * type kubernetes.io/tls needs tls.crt and tls.key. */
struct ig_secret {
	struct ig_meta meta;
	char *type; /* default Opaque */
	struct ig_secret_item *items;
	size_t nitems;
};

/* v1 ConfigMap: its `data` (binaryData is ignored), read for the CA
 * certificates of BackendTLSPolicies. Keys checked as the API server
 * does ([-._a-zA-Z0-9]), 1 MiB in all. Items' bytes are the values' text,
 * NUL-terminated (len without the NUL). */
struct ig_configmap {
	struct ig_meta meta;
	struct ig_secret_item *items;
	size_t nitems;
	/* Labelled inference.networking.k8s.io/bbr-managed: "true", the map
	 * of GIE's body-based router (v1.3-v1.5): data.baseModel (trimmed)
	 * and the LoRA adapters data.adapters lists (YAML, trimmed, no empty
	 * ones). bbr_base NULL: not such a ConfigMap, or one the router would
	 * refuse (no baseModel, adapters that are not a list of strings). */
	char *bbr_base;
	char **bbr_adapters;
	size_t nbbr_adapters;
};

/* A document kept as text for another module to parse (the endpoint
 * picker's EndpointPickerConfig). The text is padded with newlines so that
 * its line numbers are the file's. */
struct ig_raw_doc {
	char *file;
	int line;
	char *text;
	size_t len;
};

struct ig_config_index;

/* Arrays are in load order. Pointers between objects (ig_backend_ref.pool,
 * ig_cert_ref.secret, ...) point into these arrays; only pods may grow
 * after the load (ig_config_add_pod), and nothing points at a pod. */
#define IG_SKIPPED_KINDS 8

struct ig_config {
	struct ig_raw_doc *picker_docs; /* kind EndpointPickerConfig */
	size_t npicker_docs;
	struct ig_gateway *gateways;
	size_t ngateways;
	struct ig_listener_set *listener_sets;
	size_t nlistener_sets;
	struct ig_httproute *routes;
	size_t nroutes;
	struct ig_reference_grant *grants;
	size_t ngrants;
	struct ig_backend_tls_policy *tls_policies;
	size_t ntls_policies;
	struct ig_pool *pools;
	size_t npools;
	struct ig_model *models;
	size_t nmodels;
	struct ig_objective *objectives;
	size_t nobjectives;
	struct ig_model_rewrite *rewrites;
	size_t nrewrites;
	struct ig_pool_import *imports;
	size_t nimports;
	struct ig_pod *pods;
	size_t npods;
	struct ig_deployment *deployments;
	size_t ndeployments;
	struct ig_namespace *namespaces;
	size_t nnamespaces;
	struct ig_service *services;
	size_t nservices;
	struct ig_endpoint_slice *slices;
	size_t nslices;
	struct ig_endpoints_v1 *endpoints;
	size_t nendpoints;
	struct ig_secret *secrets;
	size_t nsecrets;
	struct ig_configmap *configmaps;
	size_t nconfigmaps;
	size_t nskipped; /* documents of other kinds, ignored */
	/* Their kinds, in the order first met, with how many of each (the
	 * first IG_SKIPPED_KINDS kinds; nskipped counts them all). */
	struct ig_skipped_kind {
		const char *kind;
		size_t n;
	} skipped_kinds[IG_SKIPPED_KINDS];
	size_t nskipped_kinds;
	/* Hash maps for the lookups of every request (a pool's model mode,
	 * InferenceModel by pool and modelName, InferenceObjective by name
	 * and by pool, InferenceModelRewrite rule by pool and model), built
	 * once the config is loaded; NULL for a config built otherwise,
	 * which is then searched linearly. */
	struct ig_config_index *index;
};

/* One problem found while loading: "file:line: path: message". */
struct ig_diag {
	char *file;
	int line;
	char *path; /* field path, e.g. spec.targetModels[1].weight */
	char *msg;
	bool warning; /* warnings do not make the load fail */
};

struct ig_diags {
	struct ig_diag *items;
	size_t n;
	/* 0, or the errno (EMFILE, ENFILE, ENOMEM, ENOBUFS) of the first
	 * failure for want of resources: the load failed, but the same input
	 * may load once they are back, unlike one with errors of its own. */
	int resource;
};

/* Loads every path (a file, or a directory whose *.yaml / *.yml / *.json
 * files are read in name order, recursively). Returns 0 and a new config,
 * or -1 when there were errors (all of them in diags; *out untouched).
 * Warnings (e.g. an HTTPRoute naming a pool that does not exist) are added
 * to diags either way.
 *
 * Kinds read (others are counted in nskipped and skipped_kinds; a known
 * kind under an unknown version of its own group, and an unknown kind of
 * a group infergate reads (HttpRoute, TLSRoute; GatewayClass aside), are
 * skipped with a warning, as kubectl answers "no matches for kind"):
 *   gateway.networking.k8s.io/{v1,v1beta1} Gateway, HTTPRoute;
 *   gateway.networking.k8s.io/{v1beta1,v1} ReferenceGrant;
 *   gateway.networking.k8s.io/{v1,v1alpha3} BackendTLSPolicy;
 *   inference.networking.k8s.io/v1 and inference.networking.x-k8s.io/v1alpha2
 *   InferencePool; x-k8s v1alpha2 InferenceModel; {x-k8s, llm-d.ai}/v1alpha2
 *   InferenceObjective and InferenceModelRewrite; x-k8s v1alpha1
 *   InferencePoolImport; EndpointPickerConfig; v1 Pod, Service, Endpoints,
 *   Secret, ConfigMap, Namespace; discovery.k8s.io/v1 EndpointSlice; apps/v1
 *   Deployment.
 * A List (v1 List, or a kind's list such as InferencePoolList) is read as
 * kubectl apply reads it: each item as a document of its own (a List
 * inside a List is an error). */
int ig_config_load(const char *const *paths, size_t npaths, struct ig_config **out,
		   struct ig_diags *diags);
/* Builds (or rebuilds) cfg->index from the pools, models, objectives and
 * rewrites; the loaders call it, and whoever changes those arrays
 * afterwards must call it again (pods are not indexed). Returns 0, or -1
 * when out of memory (the config then has no index, and lookups scan). */
int ig_config_build_index(struct ig_config *cfg);
void ig_config_index_free(struct ig_config_index *x);
/* The files and one more manifest given as text (NULL: none), named
 * extra_name in messages. */
int ig_config_load_extra(const char *const *paths, size_t npaths, const char *extra_name,
			 const char *extra, struct ig_config **out, struct ig_diags *diags);
/* The same from text in memory, with `name` as the file name in messages. */
int ig_config_load_text(const char *name, const char *text, size_t len, struct ig_config **out,
			struct ig_diags *diags);
/* Several named texts loaded as one configuration (references resolve
 * across them), each text's name being the "file" of its diags: the
 * Kubernetes source gives every object its own text, named after it. */
struct ig_config_text {
	const char *name;
	const char *text;
	size_t len;
};
int ig_config_load_texts(const struct ig_config_text *texts, size_t n, struct ig_config **out,
			 struct ig_diags *diags);
void ig_config_free(struct ig_config *cfg);
void ig_diags_free(struct ig_diags *d);
/* Adds one diag (what the loader reports, for checks made after it). */
__attribute__((format(printf, 6, 7))) void ig_diags_add(struct ig_diags *d, bool warning,
							const char *file, int line,
							const char *path, const char *fmt, ...);
/* Notes in d->resource that err (errno or -errno) was a failure for want
 * of resources (ig_err_resource); other values are left alone. */
void ig_diags_resource(struct ig_diags *d, int err);
/* Writes every diag as "file:line: path: message" lines ("warning: " marks
 * warnings). */
void ig_diags_print(const struct ig_diags *d, void *file /* FILE* */);

/* ---- lookups (NULL when absent; linear scans, but for the GIE lookups
 * below that every request makes: see ig_config_index) ---- */

const struct ig_pool *ig_config_find_pool(const struct ig_config *cfg, const char *ns,
					  const char *name);
/* The pool of that API group (IG_POOL_GROUP_V1 or IG_POOL_GROUP_ALPHA):
 * a v1 and a v1alpha2 pool may share a name, and a reference with a group
 * names only its own. A NULL group is ig_config_find_pool. */
const struct ig_pool *ig_config_find_pool_in(const struct ig_config *cfg, const char *group,
					     const char *ns, const char *name);
const struct ig_listener_set *ig_config_find_listener_set(const struct ig_config *cfg,
							  const char *group, const char *kind,
							  const char *ns, const char *name);
const struct ig_gateway *ig_config_find_gateway(const struct ig_config *cfg, const char *ns,
						const char *name);
const struct ig_service *ig_config_find_service(const struct ig_config *cfg, const char *ns,
						const char *name);
const struct ig_secret *ig_config_find_secret(const struct ig_config *cfg, const char *ns,
					      const char *name);
const struct ig_namespace *ig_config_find_namespace(const struct ig_config *cfg, const char *name);
/* The item of a Secret with that key. */
const struct ig_secret_item *ig_secret_get(const struct ig_secret *s, const char *key);
const struct ig_configmap *ig_config_find_configmap(const struct ig_config *cfg, const char *ns,
						    const char *name);
/* Body-based routing's base model for the model a request names (white
 * space around it aside, as Go's strings.TrimSpace sees it): the base
 * model of the LoRA adapter, or the model itself when it is a base model,
 * by the ConfigMaps labelled inference.networking.k8s.io/bbr-managed;
 * NULL when it is neither. */
const char *ig_config_base_model(const struct ig_config *cfg, const char *model, size_t len);
/* The item of a ConfigMap's data with that key. */
const struct ig_secret_item *ig_configmap_get(const struct ig_configmap *cm, const char *key);
/* Whether a BackendTLSPolicy is accepted and all its references resolved. */
bool ig_tls_policy_usable(const struct ig_backend_tls_policy *p);

/* ---- GIE: what a pool does with the body's "model" ---- */

enum ig_model_mode {
	/* v0.2 semantics: the model must be the modelName of an accepted
	 * InferenceModel of the pool (ig_config_find_model), else 404; its
	 * targetModels give the model sent on. */
	IG_MODELS_INFERENCE_MODEL,
	/* GIE v1.x semantics: the model passes through unchanged, unless an
	 * InferenceModelRewrite rule matches it (ig_config_find_rewrite). */
	IG_MODELS_PASSTHROUGH,
};

/* A v1 pool always passes through (GIE v1.0 removed InferenceModel; an
 * InferenceModel naming a v1 pool gets a warning at load). A v1alpha2 pool
 * uses InferenceModels when at least one InferenceModel names it (GIE
 * v0.2), and passes through when none does (what GIE v1.0-v1.4's picker
 * did with an x-k8s pool). */
enum ig_model_mode ig_pool_model_mode(const struct ig_config *cfg, const struct ig_pool *pool);

/* The accepted InferenceModel of `pool` whose modelName equals model. */
const struct ig_model *ig_config_find_model(const struct ig_config *cfg, const struct ig_pool *pool,
					    const char *model, size_t model_len);
/* The InferenceObjective named `name` that applies to `pool`: same
 * namespace as the pool, poolRef kind InferencePool, poolRef name the
 * pool's, poolRef group the pool's API group (GIE's reconciler compares
 * both). NULL: the caller uses priority 0. */
const struct ig_objective *ig_config_find_objective_for_pool(const struct ig_config *cfg,
							     const struct ig_pool *pool,
							     const char *name, size_t name_len);
/* By namespace and name only, whatever its poolRef (kept for callers that
 * predate poolRef; prefer ig_config_find_objective_for_pool). */
const struct ig_objective *ig_config_find_objective(const struct ig_config *cfg, const char *ns,
						    const char *name, size_t name_len);
/* The InferenceModelRewrite rule for (pool, model), by GIE's precedence:
 * among rewrites of the pool (same namespace, poolRef kind/name/group the
 * pool's), a rule with an Exact match on the model beats a generic rule
 * (no matches); then the oldest rewrite (creationTimestamp, else load
 * order, as for InferenceModels); then the first rule in its list. *owner
 * (may be NULL) gets the rewrite holding the rule, for metrics. NULL: no
 * rule; the model passes through. */
const struct ig_rewrite_rule *ig_config_find_rewrite(const struct ig_config *cfg,
						     const struct ig_pool *pool, const char *model,
						     size_t model_len,
						     const struct ig_model_rewrite **owner);
/* GIE's weighted choice among a rule's targets for a uniform random number
 * r: unset weights count 0; a total of 0 picks uniformly (r % n), else the
 * target where r % total falls in the running sum. NULL for a rule without
 * targets (keep the incoming model). */
const char *ig_rewrite_choose(const struct ig_rewrite_rule *rule, uint64_t r);

/* ---- pods and selectors ---- */

/* True when the pod is in the pool's namespace, matches its selector, is
 * Ready, has an IP and is not being deleted. */
bool ig_pool_selects(const struct ig_pool *pool, const struct ig_pod *pod);
bool ig_labels_match(const struct ig_kv *selector, size_t nsel, const struct ig_kv *labels,
		     size_t nlabels);
bool ig_selector_matches(const struct ig_label_selector *sel, const struct ig_kv *labels,
			 size_t nlabels);
/* A Kubernetes label key ([prefix/]name) and label value, as the API
 * server validates them. */
bool ig_label_key_valid(const char *k);
bool ig_label_value_valid(const char *v);
/* Whether namespace `ns` is selected by sel: the labels of the Namespace
 * object of that name when the manifests have one, else only the label
 * Kubernetes gives every namespace (kubernetes.io/metadata.name: ns). */
bool ig_config_namespace_selected(const struct ig_config *cfg, const char *ns,
				  const struct ig_label_selector *sel);
/* FromNamespaces (allowedRoutes, allowedListeners): whether an object of
 * namespace ns may attach to one of namespace home. Same: ns is home; All;
 * Selector: sel selects ns (nothing without one, has_sel false); None. */
bool ig_config_namespace_admits(const struct ig_config *cfg, enum ig_routes_from from, bool has_sel,
				const struct ig_label_selector *sel, const char *ns,
				const char *home);
/* Gateway API's tie-break between two objects (routes of equal
 * specificity, ListenerSets of a Gateway): the older first, by
 * creationTimestamp compared as a time (objects without one after those
 * with one), then the first by "{namespace}/{name}" -- never by the order
 * the objects were read in. < 0: a first; 0 only for the same age and
 * name. */
int ig_meta_precedence(const struct ig_meta *a, const struct ig_meta *b);
/* By creationTimestamp alone: < 0 when a is older; objects without one
 * after those with one; 0 for the same time or neither having one. */
int ig_meta_cmp_age(const struct ig_meta *a, const struct ig_meta *b);
/* Sets creation_timestamp and its parsed time; -1 (and no time) when text
 * is not an RFC 3339 time. */
int ig_meta_set_created(struct ig_meta *m, char *text);

/* ---- Gateway API references ---- */

/* Whether an object (from_group, from_kind) in from_ns may refer to
 * (to_group, to_kind, to_name) in to_ns: always within one namespace;
 * across namespaces only when a ReferenceGrant in to_ns has a `from` entry
 * equal to (from_group, from_kind, from_ns) and a `to` entry equal to
 * (to_group, to_kind) whose name is unset or to_name. Core group is "". */
bool ig_config_reference_allowed(const struct ig_config *cfg, const char *from_group,
				 const char *from_kind, const char *from_ns, const char *to_group,
				 const char *to_kind, const char *to_ns, const char *to_name);

/* ---- Service endpoints ---- */

/* The Service port a backendRef's port names (ServicePort.port), or NULL. */
const struct ig_service_port *ig_service_find_port(const struct ig_service *svc, int port);

enum ig_endpoint_source {
	IG_EPS_NONE,	  /* nothing describes the Service's endpoints */
	IG_EPS_SLICES,	  /* EndpointSlices labelled with the Service's name */
	IG_EPS_ENDPOINTS, /* the Endpoints object of the same name */
	IG_EPS_PODS,	  /* the Service's selector over the Pods (what the
			   * EndpointSlice controller would publish) */
};

struct ig_service_addr {
	char ip[46]; /* textual IPv4 or IPv6, no brackets */
	int port;
};

/* The ready endpoints (ip, port) of Service port `port` of svc, each once,
 * in manifest order: from the EndpointSlices of the Service when there is
 * at least one (ports matched by the Service port's name, ready endpoints),
 * else from an Endpoints object of the same name (addresses, not
 * notReadyAddresses), else, for a Service with a selector, from the Pods
 * it selects in its namespace (Ready, or all with publishNotReadyAddresses;
 * not deleting; numeric targetPort only). *out is malloc'd (free it), NULL
 * with *n 0 when none. Returns 0 (with *n possibly 0: no ready endpoint,
 * answer 503), -ENOENT when the Service has no such port or is
 * ExternalName, -ENOMEM. *src (may be NULL) says where they came from. */
int ig_config_service_endpoints(const struct ig_config *cfg, const struct ig_service *svc, int port,
				struct ig_service_addr **out, size_t *n,
				enum ig_endpoint_source *src);

/* Adds a Pod (for `demo`/`run`, which create the simulators' Pods
 * themselves). Returns 0 or -ENOMEM. */
int ig_config_add_pod(struct ig_config *cfg, const char *ns, const char *name, const char *ip,
		      const struct ig_kv *labels, size_t nlabels);

/* `infergate check -f PATH...`: validates and prints every diag; exit 1 on errors. */
int ig_check_main(int argc, char **argv);

#endif
