/* libFuzzer target for the gateway's proxy path with the fuzzer playing
 * the model server. A real gateway (listener, HTTPRoute rules, the pool's
 * picker, the relay, the upstream keep-alive pool) is built once, on this
 * thread, in front of two fake pods: listening sockets of the harness on
 * 127.0.0.1 and 127.0.0.2. Each input sends one to three requests from one
 * or two client sockets and then plays a script: what the pods write and when
 * (split at chosen points, with a loop iteration or none in between), FIN,
 * reset, stalls that let the read and route timeouts fire, a pod that
 * stops listening, a client that reads slowly, sends its next request on
 * the kept-alive connection, or leaves.
 *
 * Every input ends the same way: the pods drop their connections (new
 * ones are dropped at once), the client reads everything, then closes;
 * the gateway must by then have answered or cut every request, and must
 * settle to nothing held: no request active, no client connection, no
 * parked upstream connection, no endpoint counting a request in flight,
 * no descriptor. What the client received is decoded and checked: it
 * starts with "HTTP/1.1 ", every head parses, there are never more
 * responses than requests, the gateway's own answers (those without the
 * served-endpoint header) are OpenAI error JSON with a known status, a
 * forwarded one names one of the pods and its body is one a pod sent
 * (whole, or a prefix when cut), and an open connection has a complete
 * response for every request. What the pods receive is checked too: every
 * request parses, keeps the client's Host, is told the pod picked, its
 * model is the target, and no request reaches a second pod while the
 * first still listens (relay.c's retry rules), nor more than three times.
 *
 * Input: byte 0 flags, byte 1 the random seed (the picker is a random
 * picker: the seed decides which pod is tried first; its bit 7 sends the
 * /t requests to /r, whose rule has a retry block), one byte per
 * request, then the script.
 *   flags bits 0-1  requests: 1 + (bits % 3)
 *         bit 2     all requests pipelined up front (else the first only;
 *                   op SEND sends the next)
 *         bit 3     slow client: tiny receive buffer, reads only on op READ
 *         bit 4     at the end the pods reset their connections (else FIN)
 *         bit 5     pod 1 does not listen at first
 *         bit 6     at the end the pods stop listening too
 *         bit 7     two client connections, the requests sent on them in
 *                   turn (so two can be in flight at once)
 *   request byte    bits 0-2 kind (see make_request), bit 3 Connection:
 *                   close, bit 4 an x-request-id, bits 5-6 the
 *                   test-epp-endpoint-selection header: none, pod 0, pod 1,
 *                   both, bit 7 a WebSocket handshake (a GET with Upgrade,
 *                   no body; the kind is not used): a pod's 101 makes the
 *                   exchange a tunnel, whose bytes the client must get as
 *                   the pod sent them, and nothing after them
 *   script          ops of one byte, low nibble the op, high nibble `a`:
 *     0 WRITE   (a << 8 | next byte) + 1 script bytes to the current pod
 *               connection (the most recently accepted, or as NEXT chose)
 *     1 CANNED  fragment a of `canned`
 *     2 STEP    a + 1 loop iterations that do not wait
 *     3 SETTLE  iterations until nothing moves
 *     4 FIN     the current pod connection shuts its write side
 *     5 RESET   the current pod connection closes with SO_LINGER 0
 *     6 STALL   a + 1 ms of real time pass in the loop (timers fire)
 *     7 NEXT    another pod connection becomes current
 *     8 SEND    the client sends its next request
 *     9 READ    the clients read up to (a + 1) KiB each
 *     A CLOSE   client (a >> 1) & 1 closes (a odd: with a reset)
 *     B FILL    (a + 1) * 4 KiB of body bytes
 *     C CHUNK   a chunk of the next byte's count of script bytes
 *     D LISTEN  pod a & 1 stops or starts listening
 *     E LENGTH  "Content-Length: N" with N the next byte + a * 256
 *     F BIGCHUNK one chunk of (a + 1) * 4 KiB
 *
 * TCP over loopback rather than Unix sockets: the gateway connects to
 * pods by IP address. Connections closed by the harness first are mostly
 * reset or closed by the pod side, and the kernel reuses loopback
 * TIME_WAIT ports, so thousands of inputs a second do not run out of
 * ports. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/rand.h"
#include "event/loop.h"
#include "gateway/runtime.h"
#include "gateway/snapshot.h"
#include "gateway/worker.h"
#include "http/parse.h"
#include "json/json.h"
#include "peer.h"
#include "pool/endpoint.h"
#include "pool/upstream.h"

#define NPODS 2
#define MAX_REQS 3
#define MAX_CONNS 16
#define MAX_OPS 64
#define SETTLE_ROUNDS 64
#define CLIENT_KEEP (1024 * 1024)
#define FILL_MAX (512 * 1024)
#define STALL_MAX_MS 12
/* What may hold up the end of an input is the probing of a pod that
 * dropped a request: five probes over 300 ms (relay.c; the route's
 * request timeout is 8 ms); the connect timeout never fires on loopback
 * and the server's 2 s linger ends when the client closes. */
#define END_WAIT_MS 500
#define FD_MAX 1024 /* descriptors above are not watched */
#define POD_LOG_MAX (2 * 1024 * 1024)
#define POD_IN_MAX (64 * 1024)
#define MAX_IDS 16

/* Timeouts, small so that stalls end quickly. */
#define READ_TIMEOUT_MS 3
/* Connecting on loopback completes or is refused at once, unless the
 * machine is so busy that the handshake waits for ksoftirqd: a timeout
 * then would only tell how busy (and relay.c takes a probe that timed out
 * for a pod that is gone). */
#define CONNECT_TIMEOUT_MS 1000
#define IDLE_TIMEOUT_MS 4 /* parked connections expire within a stall */
#define KEEPALIVE_MS 6
#define SEND_TIMEOUT_MS 5
#define HIGH_WATER 2048

static const char *const canned[16] = {
    "HTTP/1.1 200 OK\r\n",
    "Content-Type: application/json\r\n",
    "Content-Type: text/event-stream\r\n",
    "Transfer-Encoding: chunked\r\n",
    "\r\n",
    "Connection: close\r\n",
    "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"hi\"}],"
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,\"total_tokens\":8}}",
    "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n",
    "data: "
    "{\"id\":\"cmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}"
    "\n\n",
    "data: [DONE]\n\n",
    "0\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.1 503 Service Unavailable\r\n",
    "HTTP/1.0 200 OK\r\n",
    "HTTP/1.1 204 No Content\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
};

/* ---- the world: one gateway and two pods, made once ------------------------ */

static struct {
	struct ig_gateway_rt G;
	struct ig_worker w;
	struct ig_snapshot *snap;
	struct ig_http_server *server;
	int gw_port, pod_port;
	int pod_fd[NPODS]; /* listening sockets, always at these numbers */
	bool pod_up[NPODS];
	char pod_ip[NPODS][16];
	char pod_addr[NPODS][32];
	struct ig_endpoint *eps[NPODS];
	struct sockaddr_in gw_sa;
} W;

/* FUZZ_UPSTREAM_TRACE=1 in the environment: each op and what the client
 * received are printed (to see what a seed or a reproducer does). */
static bool tracing;

#define trace(...)                                                                                 \
	do {                                                                                       \
		if (tracing)                                                                       \
			fprintf(stderr, __VA_ARGS__);                                              \
	} while (0)

static void die(const char *what)
{
	fprintf(stderr, "fuzz_upstream: %s\n", what);
	abort();
}

static void check(bool ok, const char *what)
{
	if (!ok)
		die(what);
}

/* A listening socket on ip:port (port 0: any), non-blocking. */
static int listen_on(const char *ip, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ip, &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int port_of(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	return ntohs(sa.sin_port);
}

/* Pod i listens again, on the same descriptor number as before so that
 * the descriptor check of an input is not fooled. */
static void pod_listen(int i, bool up)
{
	if (W.pod_up[i] == up)
		return;
	if (!up) {
		/* A placeholder keeps the number taken while nobody listens. */
		int ph = open("/dev/null", O_RDONLY | O_CLOEXEC);
		check(ph >= 0 && dup2(ph, W.pod_fd[i]) == W.pod_fd[i], "pod placeholder");
		close(ph);
		W.pod_up[i] = false;
		return;
	}
	int fd = listen_on(W.pod_ip[i], W.pod_port);
	check(fd >= 0, "a pod cannot listen again on its port");
	check(dup2(fd, W.pod_fd[i]) == W.pod_fd[i], "dup2");
	close(fd);
	int fl = fcntl(W.pod_fd[i], F_GETFL);
	fcntl(W.pod_fd[i], F_SETFL, fl | O_NONBLOCK);
	W.pod_up[i] = true;
}

static void make_pods(void)
{
	strcpy(W.pod_ip[0], "127.0.0.1");
	strcpy(W.pod_ip[1], "127.0.0.2");
	for (int tries = 0; tries < 50; tries++) {
		int a = listen_on(W.pod_ip[0], 0);
		int port = a >= 0 ? port_of(a) : -1;
		int b = port > 0 ? listen_on(W.pod_ip[1], port) : -1;
		if (a >= 0 && b >= 0) {
			W.pod_fd[0] = a, W.pod_fd[1] = b;
			W.pod_up[0] = W.pod_up[1] = true;
			W.pod_port = port;
			for (int i = 0; i < NPODS; i++)
				snprintf(W.pod_addr[i], sizeof W.pod_addr[i], "%s:%d", W.pod_ip[i],
					 port);
			return;
		}
		if (a >= 0)
			close(a);
		if (b >= 0)
			close(b);
	}
	die("no port free on both 127.0.0.1 and 127.0.0.2");
}

static int free_port(void)
{
	int fd = listen_on("127.0.0.1", 0);
	check(fd >= 0, "no free port for the gateway");
	int port = port_of(fd);
	close(fd);
	return port;
}

static const char manifests[] =
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: gw}\n"
    "spec:\n"
    "  gatewayClassName: infergate\n"
    "  listeners:\n"
    "  - {name: http, protocol: HTTP, port: %d}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: HTTPRoute\n"
    "metadata: {name: route}\n"
    "spec:\n"
    "  parentRefs:\n"
    "  - {name: gw, sectionName: http}\n"
    "  rules:\n"
    "  - matches:\n"
    "    - path: {type: PathPrefix, value: /t}\n"
    "    timeouts: {request: 8ms, backendRequest: 5ms}\n"
    "    backendRefs:\n"
    "    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}\n"
    "  - matches:\n"
    "    - path: {type: PathPrefix, value: /r}\n"
    "    retry: {codes: [500, 503], attempts: 2, backoff: 1ms}\n"
    "    timeouts: {request: 12ms, backendRequest: 3ms}\n"
    "    backendRefs:\n"
    "    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}\n"
    "  - matches:\n"
    "    - path: {type: PathPrefix, value: /v1}\n"
    "    backendRefs:\n"
    "    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}\n"
    "  - matches:\n"
    "    - path: {type: PathPrefix, value: /ws}\n"
    "    backendRefs:\n"
    "    - {name: ws, port: 80}\n"
    "---\n"
    /* WebSocket handshakes go to the same pods through a Service (a v0.2
     * pool wants a model in a body, which a handshake has not). */
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: ws}\n"
    "spec:\n"
    "  selector: {app: pod}\n"
    "  ports:\n"
    "  - {name: ws, port: 80, targetPort: %d, appProtocol: kubernetes.io/ws}\n"
    "---\n"
    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
    "kind: InferencePool\n"
    "metadata: {name: pool}\n"
    "spec:\n"
    "  targetPortNumber: %d\n"
    "  selector: {app: pod}\n"
    "  extensionRef: {name: pool-epp}\n"
    "---\n"
    "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
    "kind: InferenceModel\n"
    "metadata: {name: m}\n"
    "spec:\n"
    "  modelName: m\n"
    "  criticality: Critical\n"
    "  poolRef: {name: pool}\n"
    "  targetModels:\n"
    "  - {name: m-target, weight: 100}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata: {name: pod-0, labels: {app: pod}}\n"
    "status: {podIP: %s}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata: {name: pod-1, labels: {app: pod}}\n"
    "status: {podIP: %s}\n"
    "---\n"
    /* A random picker: with the generator seeded per input, the input
     * decides which pod comes first, whatever earlier inputs did. */
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
    "kind: EndpointPickerConfig\n"
    "plugins:\n"
    "- type: header-based-testing-filter\n"
    "- type: random-picker\n"
    "schedulingProfiles:\n"
    "- name: default\n"
    "  plugins:\n"
    "  - pluginRef: header-based-testing-filter\n"
    "  - pluginRef: random-picker\n";

static struct ig_snapshot *load_config(void)
{
	char text[sizeof manifests + 64];
	int n = snprintf(text, sizeof text, manifests, W.gw_port, W.pod_port, W.pod_port,
			 W.pod_ip[0], W.pod_ip[1]);
	struct ig_config *cfg = NULL;
	struct ig_picker_config *picker = NULL;
	uint64_t hash = 0;
	struct ig_diags diags = {0};
	if (ig_config_load_text("fuzz_upstream.yaml", text, (size_t)n, &cfg, &diags) < 0 ||
	    ig_gw_load_picker(cfg, NULL, NULL, false, &picker, &hash, &diags) < 0) {
		ig_diags_print(&diags, stderr);
		die("the manifests do not load");
	}
	ig_diags_free(&diags);
	struct ig_snapshot *s = ig_snapshot_build(W.G.endpoints, cfg, picker, hash, NULL, 1, 1);
	check(s != NULL, "ig_snapshot_build");
	return s;
}

static void make_gateway(void)
{
	struct ig_gateway_rt *G = &W.G;
	ig_gw_options_defaults(&G->opt);
	G->opt.bind = "127.0.0.1";
	G->opt.workers = 1;
	G->opt.upstream_read_timeout_ms = READ_TIMEOUT_MS;
	G->opt.upstream.connect_timeout_ms = CONNECT_TIMEOUT_MS;
	G->opt.upstream.idle_timeout_ms = IDLE_TIMEOUT_MS;
	G->opt.upstream.max_idle = 1; /* two requests at once fill it */
	G->opt.http.header_timeout_ms = 8;
	G->opt.http.body_timeout_ms = 8;
	G->opt.http.keepalive_timeout_ms = KEEPALIVE_MS;
	G->opt.http.send_timeout_ms = SEND_TIMEOUT_MS;
	G->opt.http.write_high_water = HIGH_WATER;
	check(ig_gateway_init(G) == 0, "ig_gateway_init");
	W.snap = load_config();
	G->snap = W.snap;
	check(ig_worker_init(&W.w, G, 0) == 0, "ig_worker_init");
	G->workers = &W.w;
	G->nworkers = 1;
	ig_worker_apply_snapshot(&W.w, W.snap);
	check(W.w.nslots == 1 && W.w.slots[0].server, "the gateway listener did not open");
	W.server = W.w.slots[0].server;
	check(W.snap->npools == 1 && W.snap->pools[0].neps == NPODS, "pool endpoints");
	for (int i = 0; i < NPODS; i++)
		for (size_t k = 0; k < NPODS; k++)
			if (!strcmp(W.snap->pools[0].eps[k]->addr, W.pod_addr[i]))
				W.eps[i] = W.snap->pools[0].eps[k];
	check(W.eps[0] && W.eps[1], "endpoint addresses");
	W.gw_sa =
	    (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)W.gw_port)};
	inet_pton(AF_INET, "127.0.0.1", &W.gw_sa.sin_addr);
}

/* libFuzzer's entropic schedule costs more than the target itself here:
 * it updates a frequency per coverage feature per run (a linear search of
 * its rare features for each), and one input of this target covers
 * thousands of features. Without it the same machine runs about three
 * times as many inputs. libFuzzer parses its flags after this function
 * returns, so -entropic=0 is added here; a command line that names
 * -entropic keeps its choice. */
static void prefer_no_entropic(int *argc, char ***argv)
{
	static char flag[] = "-entropic=0";
	static char *args[256];
	for (int i = 1; i < *argc; i++)
		if (!strncmp((*argv)[i], "-entropic=", 10))
			return;
	if (*argc + 2 > (int)(sizeof args / sizeof args[0]))
		return;
	memcpy(args, *argv, (size_t)*argc * sizeof *args);
	args[(*argc)++] = flag;
	args[*argc] = NULL;
	*argv = args;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	prefer_no_entropic(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* Every pod failure is logged as a warning: at thousands of inputs a
	 * second that would be all the fuzzer does. */
	ig_log_level = IG_LOG_ERROR;
	tracing = getenv("FUZZ_UPSTREAM_TRACE") != NULL;
	if (tracing)
		ig_log_level = IG_LOG_DEBUG;
	make_pods();
	W.gw_port = free_port();
	make_gateway();
	return 0;
}

/* ---- one input ------------------------------------------------------------- */

struct podconn {
	int fd;	 /* -1: closed */
	int pod; /* the pod that accepted it */
	/* What the pod sent on it, for the body check. */
	char *sent;
	size_t sent_len, sent_cap;
	bool sent_lost; /* more than POD_LOG_MAX */
	/* What the gateway sent on it, taken request by request. */
	char *in;
	size_t in_len, in_cap;
	int requests; /* complete requests received */
	/* It carried a WebSocket handshake: what follows may be the tunnel's
	 * raw bytes (if the pod switched), so it is no longer parsed. */
	bool opaque;
};

/* Which pods received a request, by its x-request-id. */
struct delivery {
	char id[40];
	int pod;
	int count;
};

/* A client connection and what it received. */
struct client {
	int fd;
	bool closed; /* by the script */
	bool eof;    /* closed or reset by the gateway */
	int nsent;
	uint8_t req[MAX_REQS]; /* the request bytes of what it sent, in order */
	char *buf;	       /* the first CLIENT_KEEP bytes received */
	size_t len, total;
};

struct run {
	const uint8_t *p, *end; /* the script */
	unsigned flags;
	/* clients: requests go to them in turn */
	struct client cl[2];
	int ncl;
	bool slow;
	int nreq, nsent;
	uint8_t req[MAX_REQS];
	/* pods */
	struct podconn pc[MAX_CONNS];
	int npc, cur;
	bool pods_gone, reset_at_end;
	size_t filled;
	int stalled_ms;
	unsigned long progress;
	bool listener_was_down;
	bool retry_route; /* the /t requests go to /r */
	struct delivery ids[MAX_IDS];
	int nids;
	/* What the pods wrote, less FILL bytes, for pod_text_unknown(). */
	char podtext[65536];
	size_t podtext_len;
	bool podtext_full;
};

static const char body_plain[] = "{\"model\":\"m\",\"prompt\":\"hello there\",\"max_tokens\":4}";
static const char body_stream[] =
    "{\"model\":\"m\",\"prompt\":\"hello there\",\"max_tokens\":4,\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true}}";
static const char body_chat[] =
    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"m\",\"stream\":true}";
static const char body_unknown[] = "{\"model\":\"no-such-model\",\"prompt\":\"x\"}";

enum { KIND_UNKNOWN_MODEL = 7 };

static bool req_is_ws(uint8_t req)
{
	return req & 128;
}

static bool req_is_head(uint8_t req)
{
	return !req_is_ws(req) && (req & 7) == 3;
}

/* The request bytes of request byte `req`. */
static size_t make_request(uint8_t req, bool retry_route, char *out, size_t cap)
{
	const char *line = "POST /v1/completions HTTP/1.1", *body = body_plain;
	bool chunked = false;
	switch (req & 7) {
	case 1:
		body = body_stream;
		break;
	case 2:
		line = "POST /v1/chat/completions HTTP/1.1";
		body = body_chat;
		break;
	case 3:
		line = "HEAD /v1/completions HTTP/1.1";
		break;
	case 4:
		line = "POST /v1/completions HTTP/1.0";
		break;
	case 5:
		line = retry_route ? "POST /r/v1/completions HTTP/1.1"
				   : "POST /t/v1/completions HTTP/1.1";
		body = body_stream;
		break;
	case 6:
		body = body_stream;
		chunked = true;
		break;
	case KIND_UNKNOWN_MODEL:
		body = body_unknown;
		break;
	}
	static const char *const select[4] = {NULL, "127.0.0.1", "127.0.0.2",
					      "127.0.0.2, 127.0.0.1"};
	char extra[160] = "";
	size_t e = 0;
	if (req & 8)
		e += (size_t)snprintf(extra + e, sizeof extra - e, "Connection: close\r\n");
	if (req & 16)
		e += (size_t)snprintf(extra + e, sizeof extra - e, "x-request-id: fuzz\r\n");
	if (select[(req >> 5) & 3])
		snprintf(extra + e, sizeof extra - e, "test-epp-endpoint-selection: %s\r\n",
			 select[(req >> 5) & 3]);
	size_t blen = strlen(body);
	int n;
	if (req_is_ws(req))
		n = snprintf(
		    out, cap,
		    "GET /ws/realtime HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\n"
		    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		    "Sec-WebSocket-Version: 13\r\n%s\r\n",
		    extra);
	else if (chunked)
		n = snprintf(out, cap,
			     "%s\r\nHost: gw\r\nContent-Type: application/json\r\n%s"
			     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
			     line, extra, blen, body);
	else
		n = snprintf(out, cap,
			     "%s\r\nHost: gw\r\nContent-Type: application/json\r\n%s"
			     "Content-Length: %zu\r\n\r\n%s",
			     line, extra, blen, body);
	return (size_t)n;
}

/* -- the client -- */

static void client_read(struct run *r, struct client *c, size_t max)
{
	char tmp[16384];
	while (c->fd >= 0 && !c->eof && max) {
		size_t want = max < sizeof tmp ? max : sizeof tmp;
		ssize_t n = recv(c->fd, tmp, want, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->eof = true;
			return;
		}
		size_t keep = c->len < CLIENT_KEEP ? CLIENT_KEEP - c->len : 0;
		if (keep > (size_t)n)
			keep = (size_t)n;
		memcpy(c->buf + c->len, tmp, keep);
		c->len += keep;
		c->total += (size_t)n;
		max -= (size_t)n;
		r->progress++;
	}
}

static void clients_read(struct run *r, size_t max)
{
	for (int i = 0; i < r->ncl; i++)
		client_read(r, &r->cl[i], max);
}

/* Sends the next request, on the client whose turn it is. */
static void client_send(struct run *r)
{
	if (r->nsent >= r->nreq)
		return;
	uint8_t req = r->req[r->nsent];
	struct client *c = &r->cl[r->nsent++ % r->ncl];
	if (c->fd < 0)
		return;
	char buf[1024];
	size_t len = make_request(req, r->retry_route, buf, sizeof buf);
	/* Counted as sent even if the gateway already closed: a response
	 * must never come for it then, which the count still bounds. */
	c->req[c->nsent++] = req;
	ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)len && !(n < 0 && (errno == EPIPE || errno == ECONNRESET)))
		die("the client could not send a small request at once");
}

static void client_close(struct client *c, bool reset)
{
	if (c->fd < 0)
		return;
	if (reset)
		peer_close_rst(c->fd);
	else
		close(c->fd);
	c->fd = -1;
}

/* -- the pods -- */

static void pod_close(struct run *r, int i, bool reset)
{
	struct podconn *c = &r->pc[i];
	if (c->fd < 0)
		return;
	if (reset)
		peer_close_rst(c->fd);
	else
		close(c->fd);
	c->fd = -1;
}

static void pod_accept(struct run *r, int i)
{
	int fd;
	while ((fd = accept4(W.pod_fd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		r->progress++;
		if (r->pods_gone || r->npc == MAX_CONNS) {
			if (r->reset_at_end || r->npc == MAX_CONNS)
				peer_close_rst(fd);
			else
				close(fd);
			continue;
		}
		r->pc[r->npc] = (struct podconn){.fd = fd, .pod = i};
		r->cur = r->npc++;
	}
}

/* Grows *buf to hold `more` bytes after *len, within max. */
static bool grow(char **buf, size_t *cap, size_t len, size_t more, size_t max)
{
	if (len + more <= *cap)
		return true;
	if (len + more > max)
		return false;
	size_t ncap = *cap ? *cap : 4096;
	while (ncap < len + more)
		ncap *= 2;
	char *n = realloc(*buf, ncap);
	check(n != NULL, "out of memory");
	*buf = n;
	*cap = ncap;
	return true;
}

static void record_delivery(struct run *r, struct ig_str id, int pod, bool retried)
{
	/* Ids the client chose are shared by its requests. */
	if (ig_str_eq_cstr(id, "fuzz") || id.len >= sizeof r->ids[0].id)
		return;
	struct delivery *d = NULL;
	for (int i = 0; i < r->nids && !d; i++)
		if (strlen(r->ids[i].id) == id.len && !memcmp(r->ids[i].id, id.ptr, id.len))
			d = &r->ids[i];
	if (!d) {
		if (r->nids == MAX_IDS)
			return;
		d = &r->ids[r->nids++];
		memcpy(d->id, id.ptr, id.len);
		d->pod = pod;
	}
	trace("request %.*s delivered to pod %d\n", (int)id.len, id.ptr, pod);
	/* Retries (relay.c): the next endpoint only when the first is
	 * proven gone (it stopped listening), and one retry on a fresh
	 * connection after a kept-alive one died: with two pods, at most
	 * three deliveries. A rule with a retry block (/r, attempts: 2) goes
	 * round the pods: 1 + 2 deliveries, and one more to the other pod
	 * when the last one's pod proves gone. */
	if (d->pod != pod && !r->listener_was_down && !retried)
		die("a request that reached one pod was sent to the other while the first "
		    "listened");
	if (++d->count > (retried ? 4 : 3))
		die("a request was delivered more often than the retry rules allow");
}

/* One request the gateway sent pod connection c, as a model server sees
 * it: the client's Host, x-gateway-destination-endpoint naming the pod,
 * the model is the InferenceModel's target, the x-request-id is there. */
static void check_pod_request(struct run *r, struct podconn *c, const struct ig_http_request *req,
			      const char *body, size_t len)
{
	bool ws = ig_str_eq_cstr(req->method, "GET");
	if (!ws && !ig_str_eq_cstr(req->method, "POST") && !ig_str_eq_cstr(req->method, "HEAD"))
		die("a pod got a request with a method no client sent");
	if (ws && (!ig_http_is_websocket_upgrade(req) || len))
		die("a pod got a GET that is not the client's WebSocket handshake");
	/* The client's Host goes on, to a pool's pod as to a Service's (the
	 * handshakes'), and a pool's pod is told it was the one picked. */
	const struct ig_http_header *h =
	    ig_http_find_header(req->headers, req->num_headers, "host");
	if (!h || !ig_str_eq_cstr(h->value, "gw"))
		die("the Host line of a pod's request is not the client's");
	h = ig_http_find_header(req->headers, req->num_headers, "x-gateway-destination-endpoint");
	if (!ws && (!h || !ig_str_eq_cstr(h->value, W.pod_addr[c->pod])))
		die("a pool's pod was not told it was the endpoint picked");
	struct ig_json_value root, model;
	if (!ws && (ig_json_parse(body, len, &root) < 0 || ig_json_get(root, "model", &model) < 0 ||
		    !ig_str_eq_cstr(model.raw, "\"m-target\"")))
		die("a pod got a body whose model is not the InferenceModel's target");
	c->opaque = ws;
	h = ig_http_find_header(req->headers, req->num_headers, "x-request-id");
	if (!h)
		die("a pod got a request without x-request-id");
	record_delivery(r, h->value, c->pod, req->path.len >= 2 && !memcmp(req->path.ptr, "/r", 2));
}

/* Takes the complete requests in what the gateway sent connection i. */
static void pod_requests(struct run *r, int i)
{
	struct podconn *c = &r->pc[i];
	while (c->in_len) {
		if (c->opaque) {
			c->in_len = 0;
			return;
		}
		struct ig_http_header hdrs[64];
		struct ig_http_request req;
		struct ig_http_framing f;
		int n = ig_http_parse_request(c->in, c->in_len, &req, hdrs, 64);
		if (n == IG_HTTP_INCOMPLETE)
			return;
		if (n < 0)
			die("a pod got a request head that does not parse");
		if (ig_http_request_framing(&req, &f) < 0 || f.kind == IG_BODY_CHUNKED)
			die("a pod got a request without a valid Content-Length");
		size_t blen = f.kind == IG_BODY_LENGTH ? (size_t)f.length : 0;
		if (c->in_len - (size_t)n < blen)
			return;
		check_pod_request(r, c, &req, c->in + n, blen);
		c->requests++;
		size_t used = (size_t)n + blen;
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
}

/* Reads what the gateway sent a pod. */
static void pod_read(struct run *r, int i)
{
	struct podconn *c = &r->pc[i];
	while (c->fd >= 0) {
		if (!grow(&c->in, &c->in_cap, c->in_len, 8192, POD_IN_MAX))
			die("a pod got more than 64 KiB of requests");
		ssize_t n = recv(c->fd, c->in + c->in_len, 8192, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		r->progress++;
		if (n <= 0) {
			/* The gateway closed it: so does a server. */
			pod_close(r, i, false);
			return;
		}
		c->in_len += (size_t)n;
		pod_requests(r, i);
	}
}

/* The harness's turn: one poll over its sockets, then accepts and reads
 * where something is ready (one system call when nothing is). */
static void harness_io(struct run *r, bool client)
{
	struct pollfd pf[NPODS + MAX_CONNS + 2];
	int who[NPODS + MAX_CONNS + 2]; /* -1 - pod listener, conn index, MAX_CONNS + client */
	nfds_t n = 0;
	for (int i = 0; i < NPODS; i++)
		if (W.pod_up[i]) {
			pf[n] = (struct pollfd){.fd = W.pod_fd[i], .events = POLLIN};
			who[n++] = -1 - i;
		}
	for (int i = 0; i < r->npc; i++)
		if (r->pc[i].fd >= 0) {
			pf[n] = (struct pollfd){.fd = r->pc[i].fd, .events = POLLIN};
			who[n++] = i;
		}
	for (int i = 0; client && i < r->ncl; i++)
		if (r->cl[i].fd >= 0 && !r->cl[i].eof) {
			pf[n] = (struct pollfd){.fd = r->cl[i].fd, .events = POLLIN};
			who[n++] = MAX_CONNS + i;
		}
	if (poll(pf, n, 0) <= 0)
		return;
	for (nfds_t k = 0; k < n; k++) {
		if (!pf[k].revents)
			continue;
		if (who[k] < 0)
			pod_accept(r, -1 - who[k]);
		else if (who[k] >= MAX_CONNS)
			client_read(r, &r->cl[who[k] - MAX_CONNS], SIZE_MAX);
		else
			pod_read(r, who[k]);
	}
}

static void pod_send(struct run *r, const void *data, size_t len);

/* Pod bytes, remembered for pod_text_unknown(). */
static void pod_write(struct run *r, const void *data, size_t len)
{
	size_t room = sizeof r->podtext - r->podtext_len;
	if (len > room)
		r->podtext_full = true;
	memcpy(r->podtext + r->podtext_len, data, len < room ? len : room);
	r->podtext_len += len < room ? len : room;
	pod_send(r, data, len);
}

/* What pod connection c sent, for the body check. */
static void log_sent(struct podconn *c, const char *p, size_t n)
{
	if (c->sent_lost || !grow(&c->sent, &c->sent_cap, c->sent_len, n, POD_LOG_MAX)) {
		c->sent_lost = true;
		return;
	}
	memcpy(c->sent + c->sent_len, p, n);
	c->sent_len += n;
}

static void pod_send(struct run *r, const void *data, size_t len)
{
	int i = r->cur; /* a connection accepted meanwhile does not take the rest */
	if (i < 0 || r->pc[i].fd < 0)
		return;
	const char *p = data;
	for (int tries = 0; len && r->pc[i].fd >= 0 && tries < 8; tries++) {
		ssize_t n = send(r->pc[i].fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			log_sent(&r->pc[i], p, (size_t)n);
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			pod_close(r, i, false);
			return;
		}
		/* Full: the gateway is not reading (its client is slow). What
		 * does not fit after a few passes is dropped. */
		ig_loop_run_once(&W.w.loop, 0);
		harness_io(r, false);
	}
}

/* -- the loop -- */

/* One loop iteration waiting at most wait_ms, then the harness's turn. */
static int iterate(struct run *r, int wait_ms)
{
	int n = ig_loop_run_once(&W.w.loop, wait_ms);
	check(n >= 0, "ig_loop_run_once failed");
	harness_io(r, !r->slow);
	return n;
}

/* Iterations until one sees no event and the harness no progress
 * (loopback delivers a write before the call returns, so nothing is on
 * its way then). */
static void settle(struct run *r)
{
	for (int i = 0; i < SETTLE_ROUNDS; i++) {
		unsigned long before = r->progress;
		if (iterate(r, 0) == 0 && r->progress == before && !W.w.loop.tasks)
			return;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Real time passes with the loop running, so that timers fire. */
static void stall(struct run *r, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	for (uint64_t t; (t = now_ms()) < end;)
		iterate(r, (int)(end - t));
	settle(r);
}

/* -- the script -- */

static int next_byte(struct run *r)
{
	return r->p < r->end ? *r->p++ : 0;
}

static void op_write(struct run *r, size_t n)
{
	size_t left = (size_t)(r->end - r->p);
	if (n > left)
		n = left;
	pod_write(r, r->p, n);
	r->p += n;
}

static void op_fill(struct run *r, size_t n, bool chunk)
{
	static char block[64 * 1024];
	if (!block[0])
		memset(block, 'x', sizeof block);
	if (r->filled + n > FILL_MAX)
		return;
	r->filled += n;
	char line[24];
	if (chunk) {
		int k = snprintf(line, sizeof line, "%zx\r\n", n);
		pod_write(r, line, (size_t)k);
	}
	pod_send(r, block, n);
	if (chunk)
		pod_write(r, "\r\n", 2);
}

static void op_next(struct run *r, int a)
{
	for (int k = 1; k <= r->npc; k++) {
		int i = (r->cur + a + k) % r->npc;
		if (r->pc[i].fd >= 0) {
			r->cur = i;
			return;
		}
	}
}

static void run_op(struct run *r, uint8_t op)
{
	static const char *const names[16] = {
	    "WRITE", "CANNED", "STEP",	"SETTLE", "FIN",   "RESET",  "STALL",  "NEXT",
	    "SEND",  "READ",   "CLOSE", "FILL",	  "CHUNK", "LISTEN", "LENGTH", "BIGCHUNK"};
	int a = op >> 4;
	char line[48];
	trace("op %s %d (pod conn %d of %d)\n", names[op & 15], a, r->cur, r->npc);
	switch (op & 15) {
	case 0: {
		size_t n = ((size_t)a << 8 | (size_t)next_byte(r)) + 1;
		op_write(r, n);
		break;
	}
	case 1:
		pod_write(r, canned[a], strlen(canned[a]));
		break;
	case 2:
		for (int i = 0; i <= a; i++)
			iterate(r, 0);
		break;
	case 3:
		settle(r);
		break;
	case 4:
		if (r->cur >= 0 && r->pc[r->cur].fd >= 0)
			shutdown(r->pc[r->cur].fd, SHUT_WR);
		break;
	case 5:
		if (r->cur >= 0)
			pod_close(r, r->cur, true);
		break;
	case 6:
		if (r->stalled_ms + a + 1 <= STALL_MAX_MS) {
			r->stalled_ms += a + 1;
			stall(r, a + 1);
		}
		break;
	case 7:
		if (r->npc)
			op_next(r, a);
		break;
	case 8:
		client_send(r);
		break;
	case 9:
		clients_read(r, (size_t)(a + 1) * 1024);
		break;
	case 10: {
		struct client *c = &r->cl[(a >> 1) % r->ncl];
		if (c->fd >= 0) {
			client_close(c, a & 1);
			c->closed = true;
		}
		break;
	}
	case 11:
		op_fill(r, (size_t)(a + 1) * 4096, false);
		break;
	case 12: {
		size_t n = (size_t)next_byte(r);
		size_t left = (size_t)(r->end - r->p);
		if (n > left)
			n = left;
		int k = snprintf(line, sizeof line, "%zx\r\n", n);
		pod_write(r, line, (size_t)k);
		op_write(r, n);
		pod_write(r, "\r\n", 2);
		break;
	}
	case 13:
		r->listener_was_down |= W.pod_up[a & 1];
		pod_listen(a & 1, !W.pod_up[a & 1]);
		break;
	case 14: {
		int k =
		    snprintf(line, sizeof line, "Content-Length: %d\r\n", a * 256 + next_byte(r));
		pod_write(r, line, (size_t)k);
		break;
	}
	case 15:
		op_fill(r, (size_t)(a + 1) * 4096, true);
		break;
	}
}

/* ---- what the client received ------------------------------------------------ */

static bool is_openai_error(const char *body, size_t len)
{
	struct ig_json_value root, err, v;
	return ig_json_parse(body, len, &root) == 0 && root.type == IG_JSON_OBJECT &&
	       ig_json_get(root, "error", &err) == 0 && err.type == IG_JSON_OBJECT &&
	       ig_json_get(err, "message", &v) == 0 && v.type == IG_JSON_STRING &&
	       ig_json_get(err, "type", &v) == 0 && v.type == IG_JSON_STRING &&
	       ig_json_get(err, "code", &v) == 0;
}

static bool gateway_status(int status)
{
	static const int known[] = {400, 404, 408, 413, 429, 431, 500, 502, 503, 504};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (status == known[i])
			return true;
	return false;
}

/* One response of the gateway's own: an OpenAI error with its length. */
static void check_own(const struct ig_http_response *res, uint8_t req, const char *body, size_t len,
		      bool complete)
{
	if (!gateway_status(res->status))
		die("the gateway answered a status of its own that it never makes");
	const struct ig_http_header *ct =
	    ig_http_find_header(res->headers, res->num_headers, "content-type");
	if (!ct || !ig_str_eq_cstr(ct->value, "application/json"))
		die("an error of the gateway is not application/json");
	if (complete && !req_is_head(req) && !is_openai_error(body, len))
		die("an error of the gateway is not OpenAI error JSON");
	if ((req & 7) == KIND_UNKNOWN_MODEL && !req_is_ws(req) && res->status != 404)
		die("an unknown model was not answered 404");
}

/* The body of a response at buf[0..len) with this framing: its length in
 * the stream (*used) and whether it is complete; decoded into `dec`. */
static bool take_body(const struct ig_http_framing *f, const char *buf, size_t len, char *dec,
		      size_t *declen, size_t *used)
{
	*declen = 0;
	switch (f->kind) {
	case IG_BODY_NONE:
		*used = 0;
		return true;
	case IG_BODY_LENGTH:
		*used = len < f->length ? len : (size_t)f->length;
		memcpy(dec, buf, *used);
		*declen = *used;
		return *used == f->length;
	case IG_BODY_UNTIL_CLOSE:
		*used = len;
		memcpy(dec, buf, len);
		*declen = len;
		return true; /* complete if the connection ended: the caller knows */
	case IG_BODY_CHUNKED: {
		struct ig_chunked_decoder d = {0};
		memcpy(dec, buf, len);
		size_t n = len;
		ssize_t rest = ig_chunked_decode(&d, dec, &n);
		if (rest == IG_HTTP_INVALID)
			die("the gateway sent a malformed chunked body");
		*declen = n;
		if (rest == IG_HTTP_INCOMPLETE) {
			*used = len;
			return false;
		}
		*used = len - (size_t)rest;
		return true;
	}
	}
	return false;
}

static bool has_ci(const char *text, size_t len, const char *word)
{
	size_t n = strlen(word);
	for (size_t i = 0; i + n <= len; i++)
		if (!strncasecmp(text + i, word, n))
			return true;
	return false;
}

/* More pod text than the harness keeps: the forwarded bodies cannot be
 * checked against it, only the status lines the client got. */
static bool pod_text_unknown(const struct run *r)
{
	return r->podtext_full;
}

/* ---- what the pods sent, as responses ---- */

/* The responses the pods sent, decoded: what a forwarded body is checked
 * against. Parsed with the same parser as the gateway's, since the point
 * is not the parser but that no byte is lost, repeated or reordered on
 * the way (reads split anywhere, pauses while the client is slow). */
struct pod_resp {
	int status;
	const char *body;
	size_t len;
};

static struct {
	struct pod_resp v[256];
	size_t n;
	char *dec;
	size_t dec_cap, dec_len;
} PR;

/* Decodes the chunked body at src: out gets the bytes before the end or
 * before an invalid encoding (what a reader could have had of it);
 * *used the encoded bytes, *ended whether the last chunk came. */
static void decode_chunked(const char *src, size_t len, char *out, size_t *outlen, size_t *used,
			   bool *ended)
{
	struct ig_chunked_decoder d = {0};
	char tmp[256];
	*outlen = 0;
	*ended = false;
	for (size_t pos = 0; pos < len;) {
		size_t piece = len - pos < sizeof tmp ? len - pos : sizeof tmp, n = piece;
		struct ig_chunked_decoder before = d;
		memcpy(tmp, src + pos, piece);
		ssize_t rest = ig_chunked_decode(&d, tmp, &n);
		if (rest == IG_HTTP_INVALID) {
			/* Again byte by byte, to keep what came before the error. */
			d = before;
			for (size_t k = 0; k < piece; k++) {
				char b = src[pos + k];
				size_t one = 1;
				ssize_t rr = ig_chunked_decode(&d, &b, &one);
				if (rr == IG_HTTP_INVALID) {
					*used = pos + k;
					return;
				}
				if (one)
					out[(*outlen)++] = b;
				if (rr >= 0) {
					*ended = true;
					*used = pos + k + 1;
					return;
				}
			}
			die("the chunked decoder failed on a piece but on none of its bytes");
		}
		memcpy(out + *outlen, tmp, n);
		*outlen += n;
		if (rest >= 0) {
			*ended = true;
			*used = pos + piece - (size_t)rest;
			return;
		}
		pos += piece;
	}
	*used = len;
}

/* The responses in what one pod connection sent, in order, as long as
 * they parse. */
static void parse_sent(const struct podconn *c)
{
	size_t pos = 0;
	while (pos < c->sent_len && PR.n < sizeof PR.v / sizeof PR.v[0]) {
		struct ig_http_header hdrs[100];
		struct ig_http_response res;
		struct ig_http_framing f;
		int n = ig_http_parse_response(c->sent + pos, c->sent_len - pos, &res, hdrs, 100);
		if (n < 0)
			return;
		pos += (size_t)n;
		if (res.status == 101) {
			/* Either the start of a tunnel (all that follows, raw, in
			 * place) or an interim response the gateway drops: both. */
			PR.v[PR.n++] = (struct pod_resp){101, c->sent + pos, c->sent_len - pos};
			if (PR.n == sizeof PR.v / sizeof PR.v[0])
				return;
		}
		if (res.status >= 100 && res.status < 200)
			continue; /* interim: dropped by the gateway */
		if (ig_http_response_framing(&res, IG_STR("POST"), &f) < 0)
			return;
		const char *b = c->sent + pos;
		size_t avail = c->sent_len - pos, used = 0, outlen = 0;
		char *out = PR.dec + PR.dec_len;
		bool whole = true;
		switch (f.kind) {
		case IG_BODY_NONE:
			break;
		case IG_BODY_LENGTH:
			used = outlen = avail < f.length ? avail : (size_t)f.length;
			whole = used == f.length;
			memcpy(out, b, used);
			break;
		case IG_BODY_UNTIL_CLOSE:
			used = outlen = avail;
			memcpy(out, b, used);
			break;
		case IG_BODY_CHUNKED:
			decode_chunked(b, avail, out, &outlen, &used, &whole);
			break;
		}
		PR.v[PR.n++] = (struct pod_resp){res.status, out, outlen};
		PR.dec_len += outlen;
		pos += used;
		if (!whole)
			return;
	}
}

/* Whether the pods' responses hold the bodies to check: not when a pod
 * answered a HEAD (its framing is not that of a POST), when a log
 * overflowed, or for the known Transfer-Encoding + Content-Length bug. */
static bool parse_pod_responses(struct run *r)
{
	size_t total = 0;
	for (int i = 0; i < r->nsent; i++)
		if (req_is_head(r->req[i]))
			return false;
	for (int i = 0; i < r->npc; i++) {
		if (r->pc[i].sent_lost)
			return false;
		total += r->pc[i].sent_len;
	}
	PR.n = 0;
	PR.dec_len = 0;
	if (!grow(&PR.dec, &PR.dec_cap, 0, total + 1, SIZE_MAX))
		return false;
	for (int i = 0; i < r->npc; i++)
		parse_sent(&r->pc[i]);
	return true;
}

/* A forwarded body is one a pod sent: all of it when the client has it
 * whole, a prefix when it was cut. */
/* Whether a pod sent a response of this status and body (whole, or one
 * the body is a prefix of when the client's copy was cut). */
static bool pod_sent(int status, const char *body, size_t len, bool whole)
{
	for (size_t i = 0; i < PR.n; i++) {
		const struct pod_resp *v = &PR.v[i];
		if (v->status == status && (whole ? v->len == len : v->len >= len) &&
		    !memcmp(v->body, body, len))
			return true;
	}
	return false;
}

static void check_forwarded(int status, const char *body, size_t len, bool whole)
{
	if (pod_sent(status, body, len, whole))
		return;
	fprintf(stderr, "fuzz_upstream: forwarded %d with %zu body bytes (%s); pods sent:\n",
		status, len, whole ? "whole" : "cut");
	for (size_t i = 0; i < PR.n; i++)
		fprintf(stderr, "  %d with %zu body bytes\n", PR.v[i].status, PR.v[i].len);
	die("a forwarded body is not what the pod sent");
}

/* A WebSocket handshake the pod accepted: the 101 names the protocol
 * (and not the pod: the handshakes go to a Service), and what follows is
 * what the pod sent after its 101, as it came (a prefix when the client's
 * copy was cut). The pods are gone by now, so the tunnel must be closed. */
static void verify_tunnel(const struct ig_http_response *res, const char *rest, size_t len,
			  bool ended, bool bodies)
{
	if (ig_http_find_header(res->headers, res->num_headers,
				"x-gateway-destination-endpoint-served"))
		die("a Service's 101 names the pod behind it");
	if (!ig_http_has_token(res->headers, res->num_headers, "upgrade", "websocket") ||
	    !ig_http_has_token(res->headers, res->num_headers, "connection", "upgrade"))
		die("a 101 without Upgrade: websocket and Connection: Upgrade");
	if (!ended)
		die("a tunnel stayed open after its pod went away");
	if (bodies)
		check_forwarded(101, rest, len, false);
}

static void verify_client(struct run *r, const struct client *c, bool bodies)
{
	trace("client: %zu bytes, %d requests sent, eof %d, closed %d:\n%.*s\n", c->total, c->nsent,
	      c->eof, c->closed, (int)(c->len < 2000 ? c->len : 2000), c->buf);
	static char dec[CLIENT_KEEP];
	static const char status_line[] = "HTTP/1.1 ";
	const char *b = c->buf;
	size_t len = c->len, pos = 0;
	/* The client's view is whole unless the script closed it, or more
	 * came than is kept. */
	bool partial = c->closed || c->total > c->len;
	bool ended = c->eof || partial;
	int k = 0;
	bool closing = false;
	if (pod_text_unknown(r)) {
		size_t cmp = len < 9 ? len : 9;
		if (memcmp(b, status_line, cmp) != 0)
			die("the client got bytes that are not an HTTP/1.1 status line");
		return;
	}
	while (pos < len) {
		size_t rem = len - pos, cmp = rem < 9 ? rem : 9;
		if (memcmp(b + pos, status_line, cmp) != 0)
			die("the client got bytes that are not an HTTP/1.1 status line");
		if (k >= c->nsent)
			die("more responses than requests");
		if (closing)
			die("a response after one that said Connection: close");
		struct ig_http_header hdrs[128];
		struct ig_http_response res;
		int n = ig_http_parse_response(b + pos, rem, &res, hdrs, 128);
		if (n == IG_HTTP_INCOMPLETE) {
			if (!ended)
				die("a response head was left unfinished on an open connection");
			return;
		}
		if (n < 0)
			die("the gateway sent a response head that does not parse");
		uint8_t req = c->req[k];
		if (res.status == 101 && req_is_ws(req)) {
			verify_tunnel(&res, b + pos + (size_t)n, rem - (size_t)n, ended, bodies);
			return; /* the rest of the connection is the tunnel's */
		}
		if (res.status < 200)
			die("an interim response reached the client");
		struct ig_http_framing f;
		if (ig_http_response_framing(
			&res, req_is_head(req) ? IG_STR("HEAD") : IG_STR("POST"), &f) < 0)
			die("the gateway sent a response with broken framing");
		size_t declen, used;
		bool complete = take_body(&f, b + pos + n, rem - (size_t)n, dec, &declen, &used);
		/* A body that ends with the connection is whole only if the
		 * connection ended by the gateway's choice, which the client
		 * cannot tell from a cut: it counts as cut here. */
		bool whole = complete && f.kind != IG_BODY_UNTIL_CLOSE;
		if (f.kind == IG_BODY_UNTIL_CLOSE && !ended)
			complete = false;
		/* A pool's pod is named in the response; a Service's (the
		 * handshakes') never is, and its answers are told from the
		 * gateway's own by what the pods sent. */
		const struct ig_http_header *served = ig_http_find_header(
		    res.headers, res.num_headers, "x-gateway-destination-endpoint-served");
		if (served && req_is_ws(req))
			die("a Service's response names the pod behind it");
		if (served && !ig_str_eq_cstr(served->value, W.pod_addr[0]) &&
		    !ig_str_eq_cstr(served->value, W.pod_addr[1]))
			die("a forwarded response names an endpoint that is no pod");
		bool forwarded = served || (req_is_ws(req) &&
					    (!bodies || pod_sent(res.status, dec, declen, whole)));
		if (!forwarded)
			check_own(&res, req, dec, declen, complete);
		else if ((req & 7) == KIND_UNKNOWN_MODEL && !req_is_ws(req))
			die("a request for an unknown model was forwarded");
		else if (bodies)
			check_forwarded(res.status, dec, declen, whole);
		if (!complete) {
			if (!ended)
				die("a response was left unfinished on an open connection");
			return; /* cut: nothing may follow */
		}
		const struct ig_http_header *conn =
		    ig_http_find_header(res.headers, res.num_headers, "connection");
		closing = !f.keep_alive || (conn && ig_str_ieq_cstr(conn->value, "close"));
		pos += (size_t)n + used;
		k++;
	}
	/* On a connection that is still open every request has its answer. */
	if (!ended && !closing && k < c->nsent)
		die("a request is still unanswered after its pod went away");
}

/* ---- the end of an input --------------------------------------------------- */

static size_t server_conns(void)
{
	size_t conns, bytes;
	ig_http_server_memory(W.server, &conns, &bytes);
	return conns;
}

static bool gateway_idle(void)
{
	return W.w.active == 0 && server_conns() == 0 && ig_upstreams_idle(W.w.upstreams) == 0 &&
	       ig_endpoint_inflight(W.eps[0]) == 0 && ig_endpoint_inflight(W.eps[1]) == 0;
}

/* Runs the loop, waiting for timers, until done(), or until END_WAIT_MS
 * per request sent and at least 50 iterations have passed (on a busy
 * machine the process may sleep through the time without running).
 * Pipelined requests are answered one after the other, each possibly
 * after its own probes of a pod that dropped it: their waits add up. */
static bool wait_until(struct run *r, bool (*done)(struct run *r))
{
	uint64_t end = now_ms() + END_WAIT_MS * (uint64_t)(r->nsent > 1 ? r->nsent : 1);
	settle(r);
	for (int i = 0; !done(r); i++) {
		uint64_t t = now_ms();
		if (t >= end && i >= 50)
			return false;
		iterate(r, t >= end ? 0 : (int)(end - t) < 2 ? (int)(end - t) : 2);
	}
	return true;
}

static bool requests_done(struct run *r)
{
	return W.w.active == 0;
}

static bool all_done(struct run *r)
{
	return gateway_idle();
}

/* Every client still open that has not seen the end of its connection
 * has a connection in the gateway: one the gateway closed has its end,
 * and everything before it, delivered. On a busy machine the kernel may
 * send what the gateway's socket still held some iterations after the
 * close (TCP small queues defer it to a softirq). */
static bool clients_caught_up(struct run *r)
{
	size_t open = 0;
	for (int i = 0; i < r->ncl; i++)
		open += r->cl[i].fd >= 0 && !r->cl[i].eof;
	return open <= server_conns();
}

static void dump_state(const char *when)
{
	fprintf(stderr,
		"fuzz_upstream: %s: active=%zu client_conns=%zu idle_upstreams=%zu "
		"inflight=%ld,%ld\n",
		when, W.w.active, server_conns(), ig_upstreams_idle(W.w.upstreams),
		ig_endpoint_inflight(W.eps[0]), ig_endpoint_inflight(W.eps[1]));
}

static void finish(struct run *r)
{
	/* The client takes everything, then the pods go away. */
	r->slow = false;
	clients_read(r, SIZE_MAX);
	settle(r);
	r->pods_gone = true;
	for (int i = 0; i < r->npc; i++)
		pod_close(r, i, r->reset_at_end);
	if (r->flags & 64) {
		for (int i = 0; i < NPODS; i++)
			pod_listen(i, false);
		r->listener_was_down = true;
	}
	if (!wait_until(r, requests_done)) {
		dump_state("requests still active after their pods went away");
		die("hang");
	}
	settle(r);
	if (!wait_until(r, clients_caught_up)) {
		dump_state("a client connection the gateway closed never ended");
		die("hang");
	}
	bool bodies = !pod_text_unknown(r) && parse_pod_responses(r);
	for (int i = 0; i < r->ncl; i++) {
		verify_client(r, &r->cl[i], bodies);
		client_close(&r->cl[i], false);
	}
	if (!wait_until(r, all_done)) {
		dump_state("the gateway holds something after the client left");
		die("leak");
	}
	for (int i = 0; i < NPODS; i++)
		pod_listen(i, true);
	harness_io(r, false); /* a connection that raced the close */
	for (int i = 0; i < r->npc; i++) {
		pod_close(r, i, true);
		free(r->pc[i].sent);
		free(r->pc[i].in);
	}
}

/* The open descriptors, from /proc/self/fd: a handful of system calls,
 * where probing each number would take one per number. */
static void fds_open(uint64_t out[FD_MAX / 64])
{
	memset(out, 0, FD_MAX / 64 * sizeof *out);
	DIR *d = opendir("/proc/self/fd");
	check(d != NULL, "cannot list /proc/self/fd");
	int self = dirfd(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd != self && fd < FD_MAX)
			out[fd / 64] |= (uint64_t)1 << (fd % 64);
	}
	closedir(d);
}

/* Descriptors opened during the input and still open are leaks. */
static void check_fds(const uint64_t before[FD_MAX / 64])
{
	uint64_t after[FD_MAX / 64];
	fds_open(after);
	bool leak = false;
	for (int fd = 0; fd < FD_MAX; fd++) {
		uint64_t bit = (uint64_t)1 << (fd % 64);
		if ((after[fd / 64] & bit) && !(before[fd / 64] & bit)) {
			char link[64], target[256] = "?";
			snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
			ssize_t n = readlink(link, target, sizeof target - 1);
			target[n > 0 ? n : 1] = '\0';
			fprintf(stderr, "fuzz_upstream: descriptor %d (%s) left open\n", fd,
				target);
			leak = true;
		}
	}
	if (leak)
		die("a descriptor leaked");
}

static int connect_client(bool slow)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	check(fd >= 0, "client socket");
	if (slow) {
		/* A small receive buffer, and small segments: the gateway's send
		 * buffer toward us is sized from the segment size (on loopback
		 * the 64 KiB one makes it over a megabyte), so a slow client
		 * pushes back after a few tens of KiB. */
		int small = 2048, mss = 536;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
		setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
	}
	/* Non-blocking, so that libFuzzer's SIGALRM cannot interrupt it. */
	int err = 0;
	if (connect(fd, (struct sockaddr *)&W.gw_sa, sizeof W.gw_sa) < 0) {
		err = errno;
		struct pollfd pf = {.fd = fd, .events = POLLOUT};
		socklen_t len = sizeof err;
		if (err == EINPROGRESS) {
			while (poll(&pf, 1, 1000) < 0 && errno == EINTR)
				;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
	}
	if (err) {
		fprintf(stderr, "fuzz_upstream: connect: %s\n", strerror(err));
		die("the client cannot connect to the gateway");
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char cbuf[2][CLIENT_KEEP];
	if (size < 2)
		return -1; /* not kept in the corpus */
	struct run r = {.cur = -1, .cl = {{.fd = -1}, {.fd = -1}}};
	r.flags = data[0];
	ig_rng_seed(ig_rng_thread(), data[1]);
	r.retry_route = data[1] & 128;
	r.nreq = 1 + (int)(r.flags & 3) % 3;
	r.slow = r.flags & 8;
	r.reset_at_end = r.flags & 16;
	const uint8_t *p = data + 2, *end = data + size;
	for (int i = 0; i < r.nreq; i++)
		r.req[i] = p < end ? *p++ : 0;
	r.p = p;
	r.end = end;

	uint64_t before[FD_MAX / 64];
	fds_open(before);
	if (!gateway_idle())
		die("an input starts with a gateway that is not idle");
	if (r.flags & 32) {
		pod_listen(1, false);
		r.listener_was_down = true;
	}

	r.ncl = r.flags & 128 ? 2 : 1;
	for (int i = 0; i < r.ncl; i++) {
		r.cl[i].fd = connect_client(r.slow);
		r.cl[i].buf = cbuf[i];
	}
	client_send(&r);
	if (r.flags & 4)
		while (r.nsent < r.nreq)
			client_send(&r);
	settle(&r);
	for (int ops = 0; ops < MAX_OPS && r.p < r.end; ops++)
		run_op(&r, (uint8_t)next_byte(&r));
	finish(&r);

	check_fds(before);
	return 0;
}
