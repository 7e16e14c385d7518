"""InferencePool appProtocol (GIE's conformance test InferencePoolAppProtocol):
a v1 pool with `appProtocol: kubernetes.io/h2c` is reached over HTTP/2
cleartext with prior knowledge; `http` or no appProtocol over HTTP/1.1. The
h2c pods are h2pod.H2Pod (python3-h2), which say in their answer how each
request came; the metrics scraper stays on HTTP/1.1 (docs/ARCHITECTURE.md)."""
import json
import os
import socket
import time

import h2.errors
import pytest

from conftest import free_port, unique_loopback, wait_http, wait_port
from h2pod import H2Pod
from test_gateway import SAN_ERRORS, call, write
from test_gie_v1 import GATEWAY, POD

POOL = """apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
  targetPorts:
  - number: {port}
{app_protocol}"""

REWRITE = """apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata:
  name: tweet-summary
spec:
  poolRef:
    group: inference.networking.k8s.io
    kind: InferencePool
    name: pool-h2c
  rules:
  - matches:
    - model:
        type: Exact
        value: tweet-summary
    targets:
    - modelRewrite: tweet-summary-1
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
    - headers:
      - name: X-Gateway-Model-Name
        value: tweet-summary
    backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: pool-h2c
  - matches:
    - headers:
      - name: X-Gateway-Model-Name
        value: model-http
    backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: pool-http
  - matches:
    - headers:
      - name: X-Gateway-Model-Name
        value: model-plain
    backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: pool-plain
"""

SEED = {"model": "tweet-summary", "prompt": "Write as if you were a critic: San Francisco",
        "max_tokens": 100, "temperature": 0}


class Setup:
    """pool-h2c: `n_h2c` H2Pods, appProtocol kubernetes.io/h2c; pool-http:
    one H2Pod with appProtocol http (with `shared`, the first h2c pod);
    pool-plain: a simulator (HTTP/1.1 only), no appProtocol."""

    def __init__(self, procs, tmp_path, n_h2c=1, workers=1, extra_docs=(), shared=False,
                 **pod_params):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "h2c")
        os.makedirs(self.dir, exist_ok=True)
        self.h2c_hosts = [unique_loopback() for _ in range(n_h2c)]
        self.http_host = unique_loopback()
        self.plain_host = unique_loopback()
        self.pod_port = free_port(self.h2c_hosts[0])
        self.pods = [H2Pod(h, self.pod_port, **pod_params) for h in self.h2c_hosts]
        self.http_pod = H2Pod(self.http_host, self.pod_port)
        self.sim = procs.start("sim", "--host", self.plain_host, "--port", self.pod_port,
                               "--served-model-name", "model-plain", name="sim")
        wait_http("http://%s:%d/health" % (self.plain_host, self.pod_port), proc=self.sim)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin = "%s:%d" % (unique_loopback(), free_port())
        docs = [GATEWAY.format(port=self.port), ROUTE, REWRITE,
                POOL.format(name="pool-h2c", port=self.pod_port,
                            app_protocol="  appProtocol: kubernetes.io/h2c\n"),
                POOL.format(name="pool-http", port=self.pod_port,
                            app_protocol="  appProtocol: http\n"),
                POOL.format(name="pool-plain", port=self.pod_port, app_protocol="")]
        for i, h in enumerate(self.h2c_hosts):
            docs.append(POD.format(name="h2c-%d" % i, app="pool-h2c", ip=h))
        # shared: pool-http names the first h2c pod's address too.
        docs.append(POD.format(name="http-0", app="pool-http",
                               ip=self.h2c_hosts[0] if shared else self.http_host))
        docs.append(POD.format(name="plain-0", app="pool-plain", ip=self.plain_host))
        docs += [d.format(pod_port=self.pod_port) for d in extra_docs]
        write(os.path.join(self.dir, "all.yaml"), "---\n".join(docs))
        self.gw = procs.start("gateway", "-f", self.dir, "--bind", self.host, "--admin",
                              self.admin, "--workers", str(workers), name="gateway")
        wait_port(self.host, self.port, proc=self.gw)
        wait_http("http://%s/healthz" % self.admin, proc=self.gw)

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    def h2c_addr(self, i):
        return "%s:%d" % (self.h2c_hosts[i], self.pod_port)

    def stop(self):
        self.gw.send_signal(15)
        rc = self.gw.wait(timeout=15)
        log = self.procs.output(self.gw)
        for p in self.pods + [self.http_pod]:
            p.stop()
        for s in SAN_ERRORS:
            assert s not in log, log
        assert rc == 0, log
        return log


@pytest.fixture
def stop_pods():
    """Pods of a test that failed before Setup.stop() are stopped here."""
    made = []
    yield made
    for s in made:
        for p in s.pods + [s.http_pod]:
            p.stop()


def test_h2c_pool_speaks_http2(procs, tmp_path, stop_pods):
    s = Setup(procs, tmp_path)
    stop_pods.append(s)
    st, hdrs, data = call(s.base, "/v1/completions", SEED)
    assert st == 200, data
    echo = json.loads(data)
    assert echo["protocol"] == "HTTP/2", echo
    assert echo["method"] == "POST" and echo["path"] == "/v1/completions", echo
    # The rewritten model reached the pod; the client sees the name it
    # asked for (GIE v1.5 turns the response's "model" members back, the
    # pod's echo of the request included).
    assert json.loads(s.pods[0].completions()[0]["body"])["model"] == "tweet-summary-1"
    assert echo["request"]["model"] == "tweet-summary", echo
    assert echo["model"] == "tweet-summary"
    # The client's Host goes on as :authority, for a pool as for a
    # Service (GIE's conformance tests check the pod sees it).
    assert echo["authority"] == "%s:%d" % (s.host, s.port), echo
    assert hdrs["x-gateway-destination-endpoint-served"] == s.h2c_addr(0)
    names = [k for k, _ in echo["headers"]]
    assert all(k == k.lower() for k in names), names
    for hop in ("host", "connection", "keep-alive", "transfer-encoding", "upgrade", "te"):
        assert hop not in names, names
    fields = dict(echo["headers"])
    assert int(fields["content-length"]) == len(s.pods[0].completions()[0]["body"])
    assert fields["content-type"] == "application/json"
    assert "x-request-id" in fields

    # More requests share one kept-alive h2c connection, a stream each.
    for _ in range(3):
        st, _, data = call(s.base, "/v1/completions", SEED)
        assert st == 200, data
    done = s.pods[0].completions()
    assert len(done) == 4
    assert all(r["protocol"] == "HTTP/2" for r in done)
    assert len({r["conn"] for r in done}) == 1, done
    assert [r["stream"] for r in done] == [1, 3, 5, 7]

    # appProtocol http reaches the same kind of pod over HTTP/1.1, and a
    # pool without appProtocol a simulator, which speaks nothing else.
    st, hdrs, data = call(s.base, "/v1/completions", dict(SEED, model="model-http"))
    assert st == 200, data
    assert json.loads(data)["protocol"] == "HTTP/1.1"
    assert s.http_pod.completions()[0]["protocol"] == "HTTP/1.1"
    st, hdrs, data = call(s.base, "/v1/completions", dict(SEED, model="model-plain"))
    assert st == 200, data
    assert json.loads(data)["model"] == "model-plain"

    # The scraper reads /metrics over HTTP/1.1, as GIE's does.
    deadline = time.time() + 5
    while not s.pods[0].scrapes() and time.time() < deadline:
        time.sleep(0.05)
    scrapes = s.pods[0].scrapes()
    assert scrapes and all(r["protocol"] == "HTTP/1.1" for r in scrapes)
    s.stop()


def read_stream(host, port, body, markers, timeout=10):
    """POSTs body on a raw socket and returns (bytes, {marker: monotonic
    time it was first seen})."""
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    buf, seen = b"", {}
    while True:
        chunk = sock.recv(65536)
        now = time.monotonic()
        if not chunk:
            break
        buf += chunk
        for m in markers:
            if m not in seen and m in buf:
                seen[m] = now
    sock.close()
    return buf, seen


def test_h2c_sse_streams_chunk_by_chunk(procs, tmp_path, stop_pods):
    s = Setup(procs, tmp_path, events=4, interval_ms=250)
    stop_pods.append(s)
    markers = [b"event-%d" % i for i in range(4)] + [b"[DONE]"]
    buf, seen = read_stream(s.host, s.port, dict(SEED, stream=True), markers)
    head = buf.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200"), buf
    assert "text/event-stream" in head and "chunked" in head.lower(), head
    assert all(m in seen for m in markers), buf
    sent = s.pods[0].sse_sent
    assert len(sent) == 4
    # Each event reached the client before the pod sent the next one.
    for i in range(3):
        assert seen[markers[i]] < sent[i + 1], (i, seen, sent)
    assert s.pods[0].completions()[0]["protocol"] == "HTTP/2"
    s.stop()


def test_h2c_reset_before_answer(procs, tmp_path, stop_pods):
    """RST_STREAM before any answer: the pod may have run the request, so it
    goes to no other pod (503, Envoy's answer to a reset before the
    response); REFUSED_STREAM says it did not, so the next
    endpoint gets it."""
    s = Setup(procs, tmp_path, n_h2c=2, mode="reset")
    stop_pods.append(s)
    st, _, data = call(s.base, "/v1/completions", SEED)
    assert st == 503, data
    assert "without answering" in json.loads(data)["error"]["message"], data
    time.sleep(0.2)
    got = [len(p.completions()) for p in s.pods]
    assert sorted(got) == [0, 1], got

    for p in s.pods:
        p.set("reset", code=h2.errors.ErrorCodes.REFUSED_STREAM)
    before = [len(p.completions()) for p in s.pods]
    st, _, data = call(s.base, "/v1/completions", SEED)
    assert st == 502, data
    assert "no model server could be reached" in json.loads(data)["error"]["message"], data
    got = [len(p.completions()) - b for p, b in zip(s.pods, before)]
    assert got == [1, 1], got
    log = s.stop()
    assert "refused the request without processing it" in log, log


SERVICES = ["""apiVersion: v1
kind: Service
metadata:
  name: svc-h2c
spec:
  selector:
    app: pool-h2c
  ports:
  - port: 80
    targetPort: {pod_port}
    appProtocol: kubernetes.io/h2c
""", """apiVersion: v1
kind: Service
metadata:
  name: svc-h1
spec:
  selector:
    app: pool-http
  ports:
  - port: 80
    targetPort: {pod_port}
""", """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: svc-route
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /h2c}}
    backendRefs:
    - name: svc-h2c
      port: 80
  - matches:
    - path: {{type: PathPrefix, value: /h1}}
    backendRefs:
    - name: svc-h1
      port: 80
"""]


def test_service_backend_app_protocol_h2c(procs, tmp_path, stop_pods):
    """A Service port with appProtocol kubernetes.io/h2c (Gateway API
    GEP-1911) is reached over h2c too, with the client's Host as
    :authority; a port without it over HTTP/1.1."""
    s = Setup(procs, tmp_path, extra_docs=SERVICES)
    stop_pods.append(s)
    st, _, data = call(s.base, "/h2c/x?y=1", method="GET")
    assert st == 200, data
    echo = json.loads(data)
    assert echo["protocol"] == "HTTP/2" and echo["path"] == "/h2c/x?y=1", echo
    assert echo["authority"] == "%s:%d" % (s.host, s.port), echo
    st, _, data = call(s.base, "/h1/x", method="GET")
    assert st == 200, data
    assert json.loads(data)["protocol"] == "HTTP/1.1"
    s.stop()


def test_one_address_in_an_h2c_and_an_http_pool(procs, tmp_path, stop_pods):
    """The same ip:port in an h2c pool and an http pool: kept-alive
    connections are never handed to the other protocol's requests."""
    s = Setup(procs, tmp_path, shared=True)
    stop_pods.append(s)
    for _ in range(3):
        for model, proto in (("tweet-summary", "HTTP/2"), ("model-http", "HTTP/1.1")):
            st, hdrs, data = call(s.base, "/v1/completions", dict(SEED, model=model))
            assert st == 200, data
            assert json.loads(data)["protocol"] == proto, (model, data)
            assert hdrs["x-gateway-destination-endpoint-served"] == s.h2c_addr(0)
    done = s.pods[0].completions()
    assert [r["protocol"] for r in done] == ["HTTP/2", "HTTP/1.1"] * 3
    # One kept-alive connection of each kind.
    assert len({r["conn"] for r in done if r["protocol"] == "HTTP/2"}) == 1, done
    assert len({r["conn"] for r in done if r["protocol"] == "HTTP/1.1"}) == 1, done
    assert not s.http_pod.completions()
    s.stop()


BAD_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: pool-h2c
"""


class BadSetup:
    """pool-h2c of `n` h2badpod.BadPods (frame-by-frame h2c servers that
    misbehave as told), every request routed to it."""

    def __init__(self, procs, tmp_path, n=1, args=(), **pod_params):
        from h2badpod import BadPod
        self.procs = procs
        d = os.path.join(str(tmp_path), "bad")
        os.makedirs(d, exist_ok=True)
        hosts = [unique_loopback() for _ in range(n)]
        port = free_port(hosts[0])
        self.pods = [BadPod(h, port, **pod_params) for h in hosts]
        self.host = unique_loopback()
        self.port = free_port(self.host)
        docs = [GATEWAY.format(port=self.port), BAD_ROUTE,
                POOL.format(name="pool-h2c", port=port,
                            app_protocol="  appProtocol: kubernetes.io/h2c\n")]
        docs += [POD.format(name="bad-%d" % i, app="pool-h2c", ip=h) for i, h in enumerate(hosts)]
        write(os.path.join(d, "all.yaml"), "---\n".join(docs))
        self.gw = procs.start("gateway", "-f", d, "--bind", self.host, "--workers", "1", *args,
                              name="gateway")
        wait_port(self.host, self.port, proc=self.gw)

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    def stop(self):
        self.gw.send_signal(15)
        rc = self.gw.wait(timeout=15)
        log = self.procs.output(self.gw)
        for p in self.pods:
            p.stop()
        for s in SAN_ERRORS:
            assert s not in log, log
        assert rc == 0, log
        return log


@pytest.fixture
def stop_bad():
    made = []
    yield made
    for s in made:
        for p in s.pods:
            p.stop()


def test_h2c_pod_that_allows_no_streams_gets_new_connections(procs, tmp_path, stop_bad):
    """SETTINGS_MAX_CONCURRENT_STREAMS 0 (RFC 9113 §6.5.2: no new stream may
    open): a connection that says so is not reused, so a request never
    waits in its queue for a slot that nothing frees (it used to, until
    the read timeout: 504); each goes with the preface of a new one, as
    Envoy's pool connects anew when its connections are busy."""
    from hyperframe.frame import SettingsFrame
    s = BadSetup(procs, tmp_path, args=("--upstream-read-timeout", "2s"),
                 settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 0})
    stop_bad.append(s)
    for _ in range(3):
        t = time.monotonic()
        st, _, data = call(s.base, "/v1/completions", SEED, timeout=5)
        assert st == 200, data
        assert time.monotonic() - t < 1, time.monotonic() - t
    done = s.pods[0].completions()
    assert len(done) == 3 and len({r["conn"] for r in done}) == 3, done
    assert [r["stream"] for r in done] == [1, 1, 1], done
    s.stop()
