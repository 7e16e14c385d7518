"""gRPC through the gateway: an HTTPRoute to a Service whose port says
appProtocol kubernetes.io/h2c carries gRPC calls (grpcio's client and
server) with their status and trailing metadata, which travel in HTTP/2
trailers. Trailers also cross protocols: a pod's HTTP/1.1 chunked trailer
section reaches an HTTP/2 client as a trailing HEADERS frame, and an
HTTP/1.1 client that sent `TE: trailers`; `TE: trailers` is the one TE
that goes on to the pod (as Envoy does).

GRPCRoute (Gateway API v1): calls matched by service and method (exact,
service alone, method alone, regular expression) and headers, in
GRPCRoute's precedence; its Services reached over h2c without saying so;
the gateway's own errors as gRPC statuses (UNIMPLEMENTED for no route,
UNAVAILABLE for a backend it cannot use); and an HTTPRoute and a
GRPCRoute on one hostname: the older one serves it. A streamed call whose
kept-alive connection the pod closes under it is made again on a new one."""
import json
import os
import queue
import socket
import time
from concurrent import futures

import pytest

from conftest import free_port, unique_loopback, wait_http, wait_port
from tcppod import TcpPod
from test_gateway import SAN_ERRORS, write
from test_gie_v1 import GATEWAY

grpc = pytest.importorskip("grpc")
h2conn = pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.events  # noqa: E402

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: {port}
{app_protocol}---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-0
  labels:
    app: {name}
status:
  podIP: {ip}
"""

ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - path: {type: PathPrefix, value: /h1/}
    backendRefs:
    - name: svc-h1
      port: 80
  - backendRefs:
    - name: svc-grpc
      port: 80
"""


# ---- a gRPC service (grpcio, raw bytes: no generated code) ----

def start_grpc(host, port, tag="echo"):
    """test.Echo (Unary answers "<tag>:<request>", ServerStream "<tag>0".."),
    and other.Svc/Ping, which answers "<tag>:pong"."""
    def unary(req, ctx):
        ctx.set_trailing_metadata((("x-trail", "t1"),))
        if req == b"fail":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if req == b"meta":  # the request's metadata, as JSON
            return json.dumps(dict(ctx.invocation_metadata())).encode()
        return tag.encode() + b":" + req

    def server_stream(req, ctx):
        for i in range(int(req)):
            yield b"%s%d" % (tag.encode() if tag != "echo" else b"m", i)

    def client_stream(it, ctx):
        return b"+".join(it)

    def count(it, ctx):  # the bytes and messages of a client stream
        sizes = [len(m) for m in it]
        return b"%d/%d" % (sum(sizes), len(sizes))

    def chat(it, ctx):  # each message answered as it comes
        ctx.add_callback(lambda: ended.append(ctx.is_active()))
        for m in it:
            yield tag.encode() + b":" + m

    echo = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Count": grpc.stream_unary_rpc_method_handler(count),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    })
    other = grpc.method_handlers_generic_handler("other.Svc", {
        "Ping": grpc.unary_unary_rpc_method_handler(lambda req, ctx: tag.encode() + b":pong"),
    })
    ended = []  # one entry per Chat call that ended, cancelled or not
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((echo, other))
    srv.chats_ended = ended
    assert srv.add_insecure_port("%s:%d" % (host, port)) == port
    srv.start()
    return srv


def start_gateway(procs, conf_dir, host, port, admin=None, extra=()):
    """The gateway on the manifests of conf_dir, listening on host:port."""
    args = ["gateway", "-f", conf_dir, "--bind", host] + list(extra)
    if admin:
        args += ["--admin", admin]
    gw = procs.start(*args, name="gateway")
    wait_port(host, port, proc=gw)
    if admin:
        wait_http("http://%s/healthz" % admin, proc=gw)
    return gw


def stop_gateway(procs, gw):
    """SIGTERM: the gateway ends cleanly, with no sanitizer report. Its log."""
    gw.send_signal(15)
    rc = gw.wait(timeout=15)
    log = procs.output(gw)
    for s in SAN_ERRORS:
        assert s not in log, log
    assert rc == 0, log
    return log


# ---- an HTTP/1.1 pod that answers with a chunked body and trailers ----

class TrailerPod(TcpPod):
    """Answers every request `200`, chunked body "hello", then a trailer
    section (grpc-status, x-t, and a Content-Length a trailer may not
    carry). Keeps each request head it got."""

    def __init__(self, host, port):
        self.heads = []
        super().__init__(host, port)

    def serve(self, c, n):
        c.settimeout(5)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.heads.append(head.decode("latin-1"))
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(buf) < length:
                    buf += c.recv(65536)
                buf = buf[length:]
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                          b"Transfer-Encoding: chunked\r\nTrailer: grpc-status, x-t\r\n\r\n"
                          b"5\r\nhello\r\n0\r\ngrpc-status: 0\r\nx-t: v 1\r\n"
                          b"Content-Length: 5\r\n\r\n")
        except OSError:
            pass
        finally:
            c.close()


class Backends:
    """A setup's grpcio servers (`servers`), its trailer pod and the client
    channel, stopped together."""

    def stop_backends(self):
        self.channel.close()
        for srv in self.servers:
            srv.stop(0)
        self.pod.stop()


class Setup(Backends):
    def __init__(self, procs, tmp_path):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "grpc")
        os.makedirs(self.dir, exist_ok=True)
        self.grpc_host, self.h1_host = unique_loopback(), unique_loopback()
        self.grpc_port = free_port(self.grpc_host)
        self.h1_port = free_port(self.h1_host)
        self.servers = [start_grpc(self.grpc_host, self.grpc_port)]
        self.pod = TrailerPod(self.h1_host, self.h1_port)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin = "%s:%d" % (unique_loopback(), free_port())
        docs = [GATEWAY.format(port=self.port), ROUTE,
                SERVICE.format(name="svc-grpc", port=self.grpc_port, ip=self.grpc_host,
                               app_protocol="    appProtocol: kubernetes.io/h2c\n"),
                SERVICE.format(name="svc-h1", port=self.h1_port, ip=self.h1_host,
                               app_protocol="")]
        write(os.path.join(self.dir, "all.yaml"), "---\n".join(docs))
        self.gw = start_gateway(procs, self.dir, self.host, self.port, self.admin)
        self.channel = grpc.insecure_channel("%s:%d" % (self.host, self.port))

    def stop(self):
        self.stop_backends()
        return stop_gateway(self.procs, self.gw)


@pytest.fixture
def setup(procs, tmp_path):
    s = Setup(procs, tmp_path)
    yield s
    s.stop_backends()


def test_grpc_calls_keep_status_and_metadata(setup):
    s = setup
    unary_call = s.channel.unary_unary("/test.Echo/Unary")
    reply, call = unary_call.with_call(b"hi", timeout=10)
    assert reply == b"echo:hi"
    assert call.code() == grpc.StatusCode.OK
    assert ("x-trail", "t1") in [(m.key, m.value) for m in call.trailing_metadata()]

    # An error status comes in a Trailers-Only answer (one HEADERS frame
    # that ends the stream): code, message and metadata arrive intact.
    with pytest.raises(grpc.RpcError) as err:
        unary_call(b"fail", timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "no such thing"
    meta = dict((m.key, m.value) for m in err.value.trailing_metadata())
    assert meta.get("x-trail") == "t1", meta
    assert "content-length" not in meta, meta

    stream = s.channel.unary_stream("/test.Echo/ServerStream")
    assert list(stream(b"5", timeout=10)) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    upload = s.channel.stream_unary("/test.Echo/ClientStream")
    assert upload(iter([b"a", b"b", b"c"]), timeout=10) == b"a+b+c"

    # A method the server does not have: UNIMPLEMENTED, from the server.
    with pytest.raises(grpc.RpcError) as err:
        s.channel.unary_unary("/test.Echo/Nope")(b"x", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    s.stop()


def h2_request(host, port, path, headers=(), authority="x"):
    """One HTTP/2 GET over prior knowledge: (head fields, body, trailer fields)."""
    sock = socket.create_connection((host, port), timeout=10)
    conn = h2conn.H2Connection(h2.config.H2Configuration(client_side=True,
                                                         header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", authority),
                            (":path", path)] + list(headers), end_stream=True)
    sock.sendall(conn.data_to_send())
    head, body, trailers = None, b"", None
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            assert data, "the gateway closed the connection"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    head = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.TrailersReceived):
                    trailers = list(ev.headers)
                elif isinstance(ev, h2.events.StreamEnded):
                    return head, body, trailers
                elif isinstance(ev, h2.events.StreamReset):
                    raise AssertionError("stream reset: %r" % ev)
            sock.sendall(conn.data_to_send())
        raise AssertionError("no answer in 10 s")
    finally:
        sock.close()


def h1_request(host, port, path, te):
    """One HTTP/1.1 GET; the raw answer, read to the end of its chunked body."""
    sock = socket.create_connection((host, port), timeout=10)
    extra = "TE: trailers\r\nConnection: TE\r\n" if te else ""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, extra)).encode())
    data = b""
    try:
        while not data.endswith(b"\r\n\r\n") or b"\r\n0\r\n" not in data:
            d = sock.recv(65536)
            assert d, data
            data += d
    finally:
        sock.close()
    return data.decode("latin-1")


def test_http1_trailers_reach_both_protocols(setup):
    s = setup
    head, body, trailers = h2_request(s.host, s.port, "/h1/a", [("te", "trailers")])
    assert head[":status"] == "200" and body == b"hello"
    # Names as HTTP/2 wants them; a Content-Length is no trailer.
    assert trailers == [("grpc-status", "0"), ("x-t", "v 1")], trailers
    assert "trailer" not in head, head
    # The pod was asked with TE: trailers, which HTTP/1.1 names in Connection.
    first = s.pod.heads[-1].lower().split("\r\n")
    assert "te: trailers" in first and "connection: te" in first, first

    answer = h1_request(s.host, s.port, "/h1/b", te=True)
    assert answer.endswith("5\r\nhello\r\n0\r\ngrpc-status: 0\r\nx-t: v 1\r\n\r\n"), answer
    # No TE from the client: no trailers to it, and none asked of the pod.
    answer = h1_request(s.host, s.port, "/h1/c", te=False)
    assert answer.endswith("5\r\nhello\r\n0\r\n\r\n"), answer
    last = s.pod.heads[-1].lower()
    assert "te:" not in last and "connection:" not in last, last
    s.stop()


# ---- GRPCRoute ----

GRPC_ROUTES = """apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc-main
spec:
  parentRefs:
  - name: gw
  hostnames: [grpc.example.com]
  rules:
  - matches:
    - method: {service: test.Echo, method: Unary}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: "1"}]
        remove: [x-drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-resp, value: r1}]
    backendRefs:
    - {name: svc-a, port: 80}
  - matches:
    - method: {service: test.Echo, method: Unary}
      headers:
      - {name: x-pick, value: b}
    backendRefs:
    - {name: svc-b, port: 80}
  - matches:
    - method: {service: test.Echo}
    backendRefs:
    - {name: svc-b, port: 80}
  - matches:
    - method: {method: Ping}
    backendRefs:
    - {name: svc-a, port: 80}
  - matches:
    - method: {type: RegularExpression, service: "bad[.].*"}
    backendRefs:
    - {name: svc-http, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  creationTimestamp: "2020-01-01T00:00:00Z"
spec:
  parentRefs:
  - name: gw
  hostnames: [web.example.com]
  rules:
  - backendRefs:
    - {name: svc-h1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: late
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - name: gw
  hostnames: ["*.example.com"]
  rules:
  - backendRefs:
    - {name: svc-b, port: 80}
"""


class GrpcRouteSetup(Backends):
    """Two grpcio servers, A (Service svc-a, no appProtocol: a GRPCRoute's
    backend is h2c all the same) and B (svc-b, appProtocol
    kubernetes.io/h2c); svc-http, a port that says http; svc-h1, the
    trailer pod for the HTTPRoute."""

    def __init__(self, procs, tmp_path):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "grpcroute")
        os.makedirs(self.dir, exist_ok=True)
        hosts = {k: unique_loopback() for k in ("a", "b", "h1")}
        ports = {k: free_port(h) for k, h in hosts.items()}
        self.servers = [start_grpc(hosts["a"], ports["a"], "A"),
                        start_grpc(hosts["b"], ports["b"], "B")]
        self.pod = TrailerPod(hosts["h1"], ports["h1"])
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin = "%s:%d" % (unique_loopback(), free_port())
        docs = [GATEWAY.format(port=self.port), GRPC_ROUTES,
                SERVICE.format(name="svc-a", port=ports["a"], ip=hosts["a"], app_protocol=""),
                SERVICE.format(name="svc-b", port=ports["b"], ip=hosts["b"],
                               app_protocol="    appProtocol: kubernetes.io/h2c\n"),
                SERVICE.format(name="svc-http", port=ports["a"], ip=hosts["a"],
                               app_protocol="    appProtocol: http\n"),
                SERVICE.format(name="svc-h1", port=ports["h1"], ip=hosts["h1"],
                               app_protocol="")]
        write(os.path.join(self.dir, "all.yaml"), "---\n".join(docs))
        self.access_log = os.path.join(str(tmp_path), "access.log")
        self.gw = start_gateway(procs, self.dir, self.host, self.port, self.admin,
                                ("--access-log", self.access_log))
        self.channel = grpc.insecure_channel(
            "%s:%d" % (self.host, self.port),
            options=[("grpc.default_authority", "grpc.example.com")])


@pytest.fixture
def routes(procs, tmp_path):
    s = GrpcRouteSetup(procs, tmp_path)
    yield s
    s.stop_backends()


def test_grpcroute_matches_methods_and_headers(routes):
    ch = routes.channel
    unary = ch.unary_unary("/test.Echo/Unary")
    # Exact service and method; the rule with a header match as well
    # comes first (more header matches) when the header is there.
    assert unary(b"hi", timeout=10) == b"A:hi"
    assert unary(b"hi", metadata=(("x-pick", "b"),), timeout=10) == b"B:hi"
    assert unary(b"hi", metadata=(("x-pick", "c"),), timeout=10) == b"A:hi"
    # The service alone takes its other methods.
    assert list(ch.unary_stream("/test.Echo/ServerStream")(b"2", timeout=10)) == [b"B0", b"B1"]
    # The method alone, of any service.
    assert ch.unary_unary("/other.Svc/Ping")(b"", timeout=10) == b"A:pong"
    # The rule's header modifiers (GRPCRouteRequestHeaderModifier).
    reply, call = unary.with_call(b"meta", metadata=(("x-drop", "1"), ("x-keep", "2")),
                                  timeout=10)
    meta = json.loads(reply)
    assert meta.get("x-set") == "1" and meta.get("x-keep") == "2", meta
    assert "x-drop" not in meta, meta
    assert ("x-resp", "r1") in [(m.key, m.value) for m in call.initial_metadata()]
    # Trailing metadata and a pod's error status still go through.
    reply, call = unary.with_call(b"x", timeout=10)
    assert ("x-trail", "t1") in [(m.key, m.value) for m in call.trailing_metadata()]
    with pytest.raises(grpc.RpcError) as err:
        unary(b"fail", timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpcroute_errors_are_grpc_statuses(routes):
    ch = routes.channel
    # No rule matches: the gateway's 404 is UNIMPLEMENTED.
    with pytest.raises(grpc.RpcError) as err:
        ch.unary_unary("/nope.Svc/Call")(b"x", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value
    assert "no route" in err.value.details(), err.value.details()
    # A backend that cannot be used (its port speaks HTTP/1.1): UNAVAILABLE.
    with pytest.raises(grpc.RpcError) as err:
        ch.unary_unary("/bad.Svc/Call")(b"x", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    # The access log has each call's gRPC status: the gateway's, a pod's
    # in its trailers, a pod's in a Trailers-Only answer.
    assert ch.unary_unary("/test.Echo/Unary")(b"ok", timeout=10) == b"A:ok"
    with pytest.raises(grpc.RpcError):
        ch.unary_unary("/test.Echo/Unary")(b"fail", timeout=10)
    want = [("/nope.Svc/Call", 404, 12), ("/bad.Svc/Call", 500, 14),
            ("/test.Echo/Unary", 200, 0), ("/test.Echo/Unary", 200, 5)]
    deadline = time.monotonic() + 5
    while True:
        with open(routes.access_log) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        if len(lines) >= len(want) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    got = [(l["path"], l["status"], l.get("grpc_status")) for l in lines]
    assert got == want, got


def test_grpcroute_and_httproute_share_a_hostname(routes):
    # web.example.com: the older HTTPRoute serves it; the GRPCRoute that
    # also covers it (*.example.com) is refused on this listener.
    head, body, trailers = h2_request(routes.host, routes.port, "/anything",
                                      [("te", "trailers")], authority="web.example.com")
    assert head[":status"] == "200" and body == b"hello", (head, body)
    # Another name of *.example.com is not the HTTPRoute's, but the
    # GRPCRoute is refused on the whole listener: no route.
    ch = grpc.insecure_channel("%s:%d" % (routes.host, routes.port),
                               options=[("grpc.default_authority", "other.example.com")])
    try:
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary("/test.Echo/Unary")(b"x", timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value
    finally:
        ch.close()


def test_grpcroute_over_https(procs, tmp_path):
    """gRPC over TLS: an HTTPS listener takes HTTP/2 by ALPN (which
    GRPCRoute requires of it) and the call goes on to the h2c pod."""
    from test_https import make_cert, secret
    d = os.path.join(str(tmp_path), "grpctls")
    os.makedirs(d, exist_ok=True)
    crt, key = make_cert(d, "grpc", "grpc.example.com")
    pod_host = unique_loopback()
    pod_port = free_port(pod_host)
    srv = start_grpc(pod_host, pod_port, "T")
    host = unique_loopback()
    port = free_port(host)
    write(os.path.join(d, "all.yaml"), "---\n".join([
        """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners:
  - name: https
    protocol: HTTPS
    port: %d
    hostname: grpc.example.com
    tls: {certificateRefs: [{name: tls}]}
""" % port, secret("tls", crt, key),
        SERVICE.format(name="svc", port=pod_port, ip=pod_host, app_protocol=""),
        """apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: test.Echo, method: Unary}}]
    backendRefs: [{name: svc, port: 80}]
"""]))
    gw = start_gateway(procs, d, host, port)
    ch = None
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=crt.encode())
        ch = grpc.secure_channel("%s:%d" % (host, port), creds,
                                 options=[("grpc.ssl_target_name_override", "grpc.example.com")])
        assert ch.unary_unary("/test.Echo/Unary")(b"tls", timeout=10) == b"T:tls"
    finally:
        if ch:
            ch.close()
        srv.stop(0)
    stop_gateway(procs, gw)


def test_grpcroute_backend_tls(procs, tmp_path):
    """A BackendTLSPolicy on a GRPCRoute's Service (Gateway API's
    BackendTLSPolicyGRPCRoute): the gateway reaches the pod over TLS with
    the policy's CA and hostname and speaks HTTP/2 there, chosen by ALPN.
    A backend that does not choose h2 is not spoken to: the call is
    UNAVAILABLE and the log says why."""
    from test_backend_tls import TLSPod, configmap, make_cert, policy, tls_service
    d = os.path.join(str(tmp_path), "grpcbtls")
    os.makedirs(d, exist_ok=True)
    crt, key = make_cert(d, "ca", "abc.example.com")
    with open(crt, "rb") as f:
        crt_pem = f.read()
    with open(key, "rb") as f:
        key_pem = f.read()
    pod_host, h1_host = unique_loopback(), unique_loopback()
    pod_port = free_port(pod_host)
    h1_port = free_port(h1_host)
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"tls:" + req)})
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    srv.add_generic_rpc_handlers((handler,))
    assert srv.add_secure_port("%s:%d" % (pod_host, pod_port),
                               grpc.ssl_server_credentials([(key_pem, crt_pem)])) == pod_port
    srv.start()
    h1 = TLSPod(h1_host, h1_port, crt, key)  # HTTPS/1.1: no h2 by ALPN
    host = unique_loopback()
    port = free_port(host)
    ca = "caCertificateRefs:\n- {group: \"\", kind: ConfigMap, name: ca}\nhostname: abc.example.com"
    write(os.path.join(d, "all.yaml"), "---\n".join([
        GATEWAY.format(port=port), configmap("ca", crt),
        tls_service("svc-grpc", 443, pod_port, "grpc-pod"),
        tls_service("svc-h1", 443, h1_port, "h1-pod"),
        """apiVersion: v1
kind: Pod
metadata: {name: grpc-pod, labels: {app: grpc-pod}}
status: {podIP: %s}
""" % pod_host,
        """apiVersion: v1
kind: Pod
metadata: {name: h1-pod, labels: {app: h1-pod}}
status: {podIP: %s}
""" % h1_host,
        policy("p-grpc", "svc-grpc", ca), policy("p-h1", "svc-h1", ca),
        """apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: test.Echo}}]
    backendRefs: [{name: svc-grpc, port: 443}]
  - matches: [{method: {service: h1.Svc}}]
    backendRefs: [{name: svc-h1, port: 443}]
"""]))
    gw = start_gateway(procs, d, host, port)
    ch = None
    try:
        ch = grpc.insecure_channel("%s:%d" % (host, port))
        unary = ch.unary_unary("/test.Echo/Unary")
        for i in range(3):  # the kept-alive TLS connection too
            assert unary(b"%d" % i, timeout=10) == b"tls:%d" % i
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary("/h1.Svc/Call")(b"x", timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    finally:
        if ch:
            ch.close()
        srv.stop(0)
        h1.stop()
    log = stop_gateway(procs, gw)
    assert "the backend did not choose h2 by ALPN" in log, log
    assert not h1.requests, h1.requests


def fed(first):
    """A call's request stream fed from a queue (None ends it), starting
    with `first`: (queue, iterator)."""
    q = queue.Queue()
    q.put(first)

    def requests():
        while True:
            m = q.get()
            if m is None:
                return
            yield m
    return q, requests()


def ping_pong(channel, path, n=5):
    """A bidirectional call where each message is sent only after the
    answer to the one before came: it works only if the gateway passes
    messages on as they come. The answers."""
    q, requests = fed(b"0")
    got = []
    for answer in channel.stream_stream(path)(requests, timeout=10):
        got.append(answer)
        q.put(b"%d" % len(got) if len(got) < n else None)
    return got


def test_bidirectional_streams(setup, routes):
    """Bidirectional gRPC calls through an HTTPRoute and a GRPCRoute, and a
    client stream larger than the stream window (1 MiB): the body goes to
    the pod as it comes, credit back as it goes."""
    assert ping_pong(setup.channel, "/test.Echo/Chat") == [b"echo:%d" % i for i in range(5)]
    assert ping_pong(routes.channel, "/test.Echo/Chat") == [b"B:%d" % i for i in range(5)]
    big = [bytes([65 + i % 26]) * 100000 for i in range(40)]
    assert routes.channel.stream_unary("/test.Echo/Count")(iter(big), timeout=20) == \
        b"4000000/40"
    # Unary calls on the same channels still work (their bodies come whole).
    assert routes.channel.unary_unary("/test.Echo/Unary")(b"u", timeout=10) == b"A:u"
    # The streamed body is counted whole in the access log: 40 messages of
    # 100,000 bytes, each with its 5-byte prefix.
    deadline = time.monotonic() + 5
    count = None
    while count is None and time.monotonic() < deadline:
        with open(routes.access_log) as f:
            count = next((json.loads(l) for l in f if '"/test.Echo/Count"' in l), None)
        time.sleep(0.05)
    assert count and count["bytes_in"] == 40 * 100005 and count["grpc_status"] == 0, count


def test_bidirectional_stream_cancelled(routes):
    """A client that cancels a bidirectional call in the middle: the call
    ends at the pod too (the gateway resets its stream), and the gateway
    holds nothing for it."""
    q, requests = fed(b"first")
    call = routes.channel.stream_stream("/test.Echo/Chat")(requests, timeout=10)
    assert next(call) == b"B:first"
    call.cancel()
    q.put(None)
    b = routes.servers[1]
    deadline = time.monotonic() + 5
    while not b.chats_ended and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.chats_ended, "the pod's call did not end"
    # The gateway is free: the next calls go through.
    assert ping_pong(routes.channel, "/test.Echo/Chat", 2) == [b"B:0", b"B:1"]


# ---- a call on a kept-alive h2c connection the pod closes as it is reused ----

class ClosingGrpcPod(TcpPod):
    """A raw h2c gRPC pod: each call's messages are answered joined by "+".
    On its first connection, once it answered one call, the first body
    bytes of the next make it close the connection without a word, as a
    pod closing an idle connection just as the gateway reuses it (after
    the gateway sent part of the body). `calls` lists (connection, request
    bytes) of the calls answered."""

    def __init__(self, host, port):
        self.calls, self.cut = [], 0
        super().__init__(host, port)

    def serve(self, c, cid):
        conn = h2conn.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        c.sendall(conn.data_to_send())
        bodies, served = {}, 0
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        bodies[ev.stream_id] = b""
                    elif isinstance(ev, h2.events.DataReceived):
                        if cid == 1 and served:
                            self.cut += 1
                            return
                        bodies[ev.stream_id] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length,
                                                       ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        raw, msgs = bodies.pop(ev.stream_id), []
                        while raw:
                            n = int.from_bytes(raw[1:5], "big")
                            msgs.append(raw[5:5 + n])
                            raw = raw[5 + n:]
                        out = b"+".join(msgs)
                        self.calls.append((cid, out))
                        conn.send_headers(ev.stream_id, [(":status", "200"),
                                                         ("content-type", "application/grpc")])
                        conn.send_data(ev.stream_id, b"\0" + len(out).to_bytes(4, "big") + out)
                        conn.send_headers(ev.stream_id, [("grpc-status", "0")], end_stream=True)
                        served += 1
                c.sendall(conn.data_to_send())
        except OSError:
            pass
        finally:
            c.close()


def test_streamed_call_on_a_reused_connection_the_pod_closed(procs, tmp_path):
    """A client-streaming call goes on the kept-alive h2c connection of the
    call before; the pod closes that connection on its first message. The
    gateway kept what it passed on, so it makes the call again on a new
    connection and the client gets the pod's answer. Before, UNAVAILABLE:
    bytes of a streamed body had gone."""
    d = os.path.join(str(tmp_path), "closing")
    os.makedirs(d, exist_ok=True)
    pod_host = unique_loopback()
    pod_port = free_port(pod_host)
    pod = ClosingGrpcPod(pod_host, pod_port)
    host = unique_loopback()
    port = free_port(host)
    route = ROUTE.replace("svc-grpc", "svc-closing")
    write(os.path.join(d, "all.yaml"), "---\n".join([
        GATEWAY.format(port=port), route,
        SERVICE.format(name="svc-closing", port=pod_port, ip=pod_host,
                       app_protocol="    appProtocol: kubernetes.io/h2c\n")]))
    gw = start_gateway(procs, d, host, port, extra=["--workers", "1"])
    channel = grpc.insecure_channel("%s:%d" % (host, port))
    try:
        def slow(msgs):
            for m in msgs:
                time.sleep(0.05)  # the body is still coming when the head goes
                yield m
        call = channel.stream_unary("/test.Echo/ClientStream")
        assert call(slow([b"a", b"b"]), timeout=10) == b"a+b"
        assert call(slow([b"c", b"d", b"e"]), timeout=10) == b"c+d+e"
        assert pod.cut == 1
        assert [cid for cid, _ in pod.calls] == [1, 2]
        assert pod.calls[1][1] == b"c+d+e"
    finally:
        channel.close()
        pod.stop()
        stop_gateway(procs, gw)
