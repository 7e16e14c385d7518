/* `infergate epp`: the endpoint picker alone, as an Envoy ext_proc gRPC
 * service, a drop-in for GIE's and llm-d's pickers behind kgateway, Envoy
 * Gateway or Istio.
 *
 * It is the gateway's runtime (configuration from files or the API,
 * scraping, snapshots, the per-worker request stages of gateway/) with a
 * different front door: each worker serves ext_proc streams on its own
 * SO_REUSEPORT socket, turns each stream into a request of the gateway's
 * pipeline (model resolution, admission, the picker, accounting) and
 * answers with the picker's choice instead of relaying. So the gateway and
 * the picker route identically by construction. */
#ifndef IG_EPP_EPP_H
#define IG_EPP_EPP_H

#include <stdbool.h>
#include <stdint.h>

struct ig_gw_frontend;

/* The body modes assumed when Envoy's first message carries no
 * protocol_config (Envoy before 1.34 never sends one): FULL_DUPLEX_STREAMED
 * both ways, as GIE v0.4+ and llm-d's pickers assume; BUFFERED requests
 * with no response body (GIE v0.2, v0.3 with USE_STREAMING=false); or
 * STREAMED both ways. */
enum ig_epp_body_default {
	IG_EPP_BODY_FULL_DUPLEX = 0,
	IG_EPP_BODY_BUFFERED,
	IG_EPP_BODY_STREAMED,
};

struct ig_epp_options {
	const char *pool_name;
	const char *pool_ns;
	const char *pool_group; /* IG_POOL_GROUP_V1 or _ALPHA; NULL: either, v1 first */
	int grpc_port;		/* ext_proc (and health) */
	int health_port;	/* grpc.health.v1, plain text; 0: none */
	bool secure;		/* TLS on the ext_proc port */
	const char *cert_path;	/* DIR with tls.crt and tls.key; NULL: self-signed */
	bool cert_reload;	/* read them again when they change (a renewed Secret) */
	/* --ha-enable-leader-election (with --kube): ready only while this
	 * replica holds the pool's Lease, as GIE's picker. */
	bool leader_election;
	const char *bind;
	uint64_t max_body_bytes;
	uint64_t max_msg_bytes; /* gRPC messages; 0: max_body_bytes + 64 KiB */
	/* The pick's header and envoy.lb metadata key, and that metadata's
	 * namespace (GIE's destinationEndpointHintKey and
	 * DestinationEndpointHintMetadataNamespace); NULL: the defaults. */
	const char *dest_key;
	const char *dest_ns;
	/* Endpoints named in x-gateway-destination-endpoint, the pick and its
	 * fallbacks; 0: as many as the picker's maxNumOfEndpoints, else 1. */
	uint64_t endpoints;
	/* --disable-endpoint-subset-filter (GIE v1.5): the proxy's subset
	 * hint is not read; every endpoint of the pool is a candidate. */
	bool disable_subset;
	/* --default-body-mode (else USE_STREAMING): what a stream without
	 * protocol_config is taken to be; protocol_config wins. */
	enum ig_epp_body_default body_default;
	/* --client-send-timeout: a stream whose answers the proxy takes none
	 * of for this long is reset, a connection whose socket takes nothing
	 * that long closed; 0: the gRPC server's default (60 s). */
	uint64_t send_timeout_ms;
	/* --stream-idle-timeout, --message-timeout and
	 * --max-partial-message-bytes; 0: the gRPC server's defaults. */
	uint64_t stream_idle_timeout_ms;
	uint64_t message_timeout_ms;
	uint64_t max_partial_bytes;
};

int ig_epp_main(int argc, char **argv);

/* The front end for ig_gateway_run (serve.c); NULL when out of memory or
 * the certificate cannot be loaded (logged). */
const struct ig_gw_frontend *ig_epp_frontend(const struct ig_epp_options *o);
void ig_epp_frontend_free(const struct ig_gw_frontend *fe);

#endif
