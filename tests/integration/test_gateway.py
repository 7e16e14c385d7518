"""`infergate gateway` end to end: simulators as model servers on distinct
loopback addresses, the gateway in front of them configured by manifests
written per test, and plain HTTP clients (stdlib only) checking what the
issue asks of the gateway: routing and model resolution, OpenAI errors,
streaming, retries, reload, drain, keep-alive, timeouts and the admin
listener."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import IG_BIN, free_port, unique_loopback, wait_http, wait_port

SEED_PROMPT = "Write as if you were a critic: San Francisco"
LORA = ['{"name": "tweet-summary-%d", "path": "SriSanth2345/Qwen-1.5B-Tweet-Generations", '
        '"base_model_name": "Qwen/Qwen2.5-1.5B"}' % i for i in (0, 1)]
SAN_ERRORS = ("ERROR: AddressSanitizer", "runtime error", "ERROR: LeakSanitizer")

# ---- manifests ----

GATEWAY = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: inference-gateway
spec:
  gatewayClassName: infergate
  listeners:
  - name: llm-gw
    protocol: HTTP
    port: {port}
"""

ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: llm-route
spec:
  parentRefs:
  - group: gateway.networking.k8s.io
    kind: Gateway
    name: inference-gateway
    sectionName: llm-gw
  rules:
  - backendRefs:
    - group: inference.networking.x-k8s.io
      kind: InferencePool
      name: qwen-pool
      port: {target_port}
      weight: 1
    matches:
    - path:
        type: PathPrefix
        value: {prefix}
{timeouts}"""

POOL = """apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: qwen-pool
spec:
  targetPortNumber: {target_port}
  selector:
    app: qwen-pool
  extensionRef:
    name: qwen-pool-endpoint-picker
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: qwen-pool-{i}
  labels:
    app: qwen-pool
status:
  podIP: {ip}
"""


def model_yaml(targets=(("tweet-summary-1", 100),), criticality="Critical",
               name="tweet-summary", obj="inferencemodel-sample"):
    lines = ["apiVersion: inference.networking.x-k8s.io/v1alpha2", "kind: InferenceModel",
             "metadata:", "  name: %s" % obj, "spec:", "  modelName: %s" % name]
    if criticality:
        lines.append("  criticality: %s" % criticality)
    lines += ["  poolRef:", "    name: qwen-pool", "  targetModels:"]
    for t, w in targets:
        lines += ["  - name: %s" % t, "    weight: %s" % w]
    return "\n".join(lines) + "\n"


def write(path, text):
    """Replaces a file in one step, as editors and kubectl-like tools do."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---- clients ----

def call(base, path, body=None, method=None, headers=None, raw=None, timeout=10):
    """Returns (status, headers, body bytes)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers=dict({"Content-Type": "application/json"},
                                              **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def post_json(base, path, body, **kw):
    status, headers, data = call(base, path, body, **kw)
    return status, headers, json.loads(data) if data else None


def assert_openai_error(status, data, want_status):
    assert status == want_status, (status, data)
    err = json.loads(data) if isinstance(data, (bytes, str)) else data
    assert set(err) == {"error"}, err
    assert isinstance(err["error"]["message"], str) and err["error"]["message"]
    assert isinstance(err["error"]["type"], str) and err["error"]["type"]
    assert "code" in err["error"]
    return err["error"]


def raw_exchange(host, port, data, timeout=5):
    """Sends bytes on a fresh socket and returns everything read until the
    server closes (or timeout)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except socket.timeout:
            pass
        return out


def sse_chunks(resp):
    """(arrival time, payload) of each `data:` event."""
    buf = b""
    out = []
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            assert event.startswith(b"data: "), event
            out.append((time.monotonic(), event[6:].decode()))
    assert buf == b""
    return out


# ---- the cluster under test ----

class Cluster:
    """Sims on distinct loopback addresses at the pool's target port, the
    manifests in a directory of their own, and the gateway serving them."""

    def __init__(self, procs, tmp_path, nsims=1, sim_args=(), targets=None,
                 criticality="Critical", prefix="/", timeouts="", gw_args=(), per_sim_args=None):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "manifests")
        os.makedirs(self.dir, exist_ok=True)
        self.sim_hosts = [unique_loopback() for _ in range(nsims)]
        self.target_port = free_port(self.sim_hosts[0]) if nsims else free_port()
        self.sims = []
        for i, h in enumerate(self.sim_hosts):
            extra = list(per_sim_args[i]) if per_sim_args else []
            p = procs.start("sim", "--host", h, "--port", self.target_port, "--enable-lora",
                            "--max-loras", "4", "--lora-modules", *LORA, *sim_args, *extra,
                            name="sim")
            self.sims.append(p)
        for h, p in zip(self.sim_hosts, self.sims):
            wait_http("http://%s:%d/health" % (h, self.target_port), proc=p)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin_host = unique_loopback()
        self.admin_port = free_port(self.admin_host)
        write(self.path("gateway.yaml"), GATEWAY.format(port=self.port))
        write(self.path("route.yaml"), ROUTE.format(target_port=self.target_port, prefix=prefix,
                                                    timeouts=timeouts))
        write(self.path("pool.yaml"), POOL.format(target_port=self.target_port))
        write(self.path("model.yaml"), model_yaml(targets or (("tweet-summary-1", 100),),
                                                  criticality))
        write(self.path("pods.yaml"), "---\n".join(
            POD.format(i=i, ip=h) for i, h in enumerate(self.sim_hosts)))
        self.gw = procs.start("gateway", "-f", self.dir, "--bind", self.host,
                              "--admin", "%s:%d" % (self.admin_host, self.admin_port),
                              "--workers", "2", *gw_args, name="gateway")
        wait_port(self.host, self.port, proc=self.gw)
        wait_http(self.admin + "/healthz", proc=self.gw)

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def admin(self):
        return "http://%s:%d" % (self.admin_host, self.admin_port)

    def sim_base(self, i):
        return "http://%s:%d" % (self.sim_hosts[i], self.target_port)

    def endpoint(self, i):
        return "%s:%d" % (self.sim_hosts[i], self.target_port)

    def pools(self):
        status, _, data = call(self.admin, "/pools")
        assert status == 200
        return json.loads(data)

    def wait_pools(self, pred, timeout=5.0):
        """Waits until pred(list of endpoint dicts of qwen-pool) holds."""
        deadline = time.time() + timeout
        while True:
            eps = [ep for pool in self.pools()["pools"] if pool["name"] == "qwen-pool"
                   for ep in pool["endpoints"]]
            if pred(eps):
                return eps
            if time.time() > deadline:
                raise AssertionError("pools never matched: %s" % eps)
            time.sleep(0.05)

    def wait_scraped(self):
        return self.wait_pools(lambda eps: eps and all(
            e["metrics_age_ms"] is not None for e in eps))

    def log(self):
        return self.procs.output(self.gw)

    def stop(self):
        """SIGTERM: the gateway drains, exits 0 and its log is clean (under
        the sanitizers this includes the leak check at exit)."""
        self.gw.send_signal(signal.SIGTERM)
        rc = self.gw.wait(timeout=15)
        log = self.log()
        for s in SAN_ERRORS:
            assert s not in log, log
        assert rc == 0, log
        return log


def seed_body(model="tweet-summary"):
    return {"model": model, "prompt": SEED_PROMPT, "max_tokens": 100, "temperature": 0}


# ---- 1. the seed request ----

def test_seed_request(procs, tmp_path):
    c = Cluster(procs, tmp_path)
    status, headers, r = post_json(c.base, "/v1/completions", seed_body())
    assert status == 200, r
    assert r["model"] == "tweet-summary-1"
    assert r["usage"]["completion_tokens"] == 100
    assert r["choices"][0]["finish_reason"] == "length"
    assert headers["x-gateway-destination-endpoint-served"] == c.endpoint(0)
    assert headers["Content-Type"].startswith("application/json")
    c.stop()


def test_served_endpoint_header_can_be_turned_off(procs, tmp_path):
    """--no-served-endpoint-header: the client is not told which pod of
    the InferencePool answered."""
    c = Cluster(procs, tmp_path, gw_args=("--no-served-endpoint-header",))
    status, headers, r = post_json(c.base, "/v1/completions", seed_body())
    assert status == 200, r
    assert r["model"] == "tweet-summary-1"
    assert "x-gateway-destination-endpoint-served" not in headers
    c.stop()


# ---- 2. traffic split ----

def parallel(n, threads, fn):
    """Runs fn(i) for i in range(n) on a few threads; returns the results."""
    results = [None] * n
    counter = iter(range(n))
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            results[i] = fn(i)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def served_models(c, n):
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 1}

    def one(_):
        status, _, r = post_json(c.base, "/v1/completions", body)
        assert status == 200, r
        return r["model"]

    return parallel(n, 8, one)


@pytest.mark.parametrize("w0,w1", [(50, 50), (1, 3)])
def test_traffic_split(procs, tmp_path, w0, w1):
    c = Cluster(procs, tmp_path, targets=(("tweet-summary-0", w0), ("tweet-summary-1", w1)))
    models = served_models(c, 400)
    assert set(models) == {"tweet-summary-0", "tweet-summary-1"}
    share0 = models.count("tweet-summary-0") / len(models)
    assert abs(share0 - w0 / (w0 + w1)) < 0.08, share0
    c.stop()


# ---- 3. errors ----

def test_request_errors(procs, tmp_path):
    c = Cluster(procs, tmp_path, prefix="/v1",
                gw_args=("--max-body-bytes", "4096", "--max-header-bytes", "2048"))
    path = "/v1/completions"
    status, _, data = call(c.base, path, raw=b"{not json")
    assert_openai_error(status, data, 400)
    status, _, data = call(c.base, path, raw=b"[1,2]")
    assert_openai_error(status, data, 400)
    status, _, data = call(c.base, path, {"prompt": "hi"})
    assert_openai_error(status, data, 400)
    status, _, data = call(c.base, path, {"model": 5, "prompt": "hi"})
    assert_openai_error(status, data, 400)
    status, _, data = call(c.base, path, {"model": "tweet-summary-1", "prompt": "hi"})
    err = assert_openai_error(status, data, 404)
    assert "tweet-summary-1" in err["message"]
    # No route: the HTTPRoute only matches /v1.
    status, _, data = call(c.base, "/other", seed_body())
    assert_openai_error(status, data, 404)
    # A body over the limit, by Content-Length and chunked.
    big = json.dumps({"model": "tweet-summary", "prompt": "x" * 5000}).encode()
    status, _, data = call(c.base, path, raw=big)
    assert_openai_error(status, data, 413)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 1000]), big[i:i + 1000])
                       for i in range(0, len(big), 1000)) + b"0\r\n\r\n"
    reply = raw_exchange(c.host, c.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunked)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert_openai_error(413, reply.split(b"\r\n\r\n", 1)[1], 413)
    # Headers over the limit.
    status, _, data = call(c.base, path, seed_body(), headers={"X-Big": "y" * 3000})
    assert_openai_error(status, data, 431)
    # A small chunked body within limits is served.
    small = json.dumps({"model": "tweet-summary", "prompt": "hi", "max_tokens": 2}).encode()
    reply = raw_exchange(c.host, c.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                         b"Connection: close\r\n\r\n"
                         + b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert b'"tweet-summary-1"' in reply
    # After all that, the gateway still serves.
    status, _, r = post_json(c.base, path, seed_body())
    assert status == 200 and r["model"] == "tweet-summary-1"
    c.stop()


def test_requests_without_a_body_go_to_any_pod(procs, tmp_path):
    """GIE from v0.3.0 on, with InferenceModels too: a request whose head
    ends it (no Content-Length, or 0, and not chunked) goes to a random
    ready pod with no model resolved: health checks, CORS preflights,
    GETs of the API. A request with a body still needs its `model`;
    GET /v1/models keeps the gateway's own list."""
    log = os.path.join(str(tmp_path), "access.log")
    c = Cluster(procs, tmp_path, nsims=2, gw_args=("--access-log", log))
    pods = {c.endpoint(0), c.endpoint(1)}
    served = "x-gateway-destination-endpoint-served"
    status, hdrs, data = call(c.base, "/health", method="GET",
                              headers={"X-Request-Id": "bodyless-health"})
    assert status == 200 and hdrs[served] in pods, (status, data)
    # The simulator answers a preflight as vLLM's CORS middleware does.
    status, hdrs, _ = call(c.base, "/v1/completions", method="OPTIONS",
                           headers={"Origin": "https://app.example",
                                    "Access-Control-Request-Method": "POST"})
    assert status == 200 and hdrs[served] in pods
    assert hdrs["Access-Control-Allow-Origin"] == "*"
    status, hdrs, _ = call(c.base, "/v1/models/tweet-summary", method="GET")
    assert status == 404 and hdrs[served] in pods  # the pod's own answer
    # Content-Length: 0 is no body either: the pod refuses it itself.
    status, hdrs, data = call(c.base, "/v1/completions", raw=b"", method="POST")
    assert status == 400 and hdrs[served] in pods and b"JSON decode error" in data, data
    # An empty chunked body is a body, and no JSON object.
    reply = raw_exchange(c.host, c.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:300]
    assert b"not a JSON object" in reply and served.encode() not in reply.lower()
    status, _, data = call(c.base, "/v1/completions", {"prompt": "hi"})
    assert_openai_error(status, data, 400)
    status, hdrs, r = post_json(c.base, "/v1/models", None, method="GET")
    assert status == 200 and [m["id"] for m in r["data"]] == ["tweet-summary"]
    assert served not in hdrs
    # No model, no inference request: nothing in request_total, and the
    # access log names none.
    text = call(c.admin, "/metrics")[2].decode()
    assert not re.search(r'^inference_model_request_total\{model_name=""', text, re.M), text
    deadline = time.time() + 5
    line = None
    while line is None and time.time() < deadline:
        with open(log) as f:
            line = next((json.loads(ln) for ln in f if "bodyless-health" in ln), None)
        time.sleep(0.05)
    assert line and line["status"] == 200 and line["endpoint"] in pods, line
    assert line["model"] == "" and line["target_model"] == "" and line["pool"] == "qwen-pool"
    c.stop()


def read_to_close(s):
    """Everything s receives until the peer closes."""
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b


def send_in_pieces(host, port, head, pieces, pause=0.03, timeout=10):
    """Sends the head, then each piece after a pause (so that the gateway
    reads them one by one), and returns the whole answer (Connection:
    close)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(head)
        for piece in pieces:
            time.sleep(pause)
            s.sendall(piece)
        return read_to_close(s)


def test_body_in_pieces(procs, tmp_path):
    """A body is validated while it arrives (json/stream.h): what comes
    in pieces, however they are cut, gets the answer it would get whole."""
    c = Cluster(procs, tmp_path, prefix="/v1")
    body = json.dumps({"model": "tweet-summary", "prompt": "caf\u00e9 " * 8000,
                       "max_tokens": 3}).encode()
    # Cuts inside the key "model", inside an escape, and all over the prompt.
    at = [3, 5, body.index(b"\\u00e9") + 3] + list(range(1000, len(body), 17000))
    pieces = [body[a:b] for a, b in zip([0] + at, at + [len(body)])]
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\n")
    reply = send_in_pieces(c.host, c.port, head + b"Content-Length: %d\r\n\r\n" % len(body),
                           pieces)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    r = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert r["model"] == "tweet-summary-1"
    assert r["usage"]["prompt_tokens"] > 8000
    # The same chunked, a chunk per piece.
    chunks = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
    reply = send_in_pieces(c.host, c.port, head + b"Transfer-Encoding: chunked\r\n\r\n", chunks)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["model"] == "tweet-summary-1"
    # Invalid early (the rest still arrives) and invalid in the last byte.
    for bad in (b"{\"model\": tweet" + body[15:], body[:-1] + b"]"):
        pieces = [bad[i:i + 50000] for i in range(0, len(bad), 50000)]
        reply = send_in_pieces(c.host, c.port,
                               head + b"Content-Length: %d\r\n\r\n" % len(bad), pieces)
        assert reply.startswith(b"HTTP/1.1 400 "), reply[:300]
        assert_openai_error(400, reply.split(b"\r\n\r\n", 1)[1], 400)
    # A body cut right after its root value: nothing is left waiting.
    small = b'{"model":"tweet-summary","prompt":"hi","max_tokens":1,"n":1}'
    reply = send_in_pieces(c.host, c.port, head + b"Content-Length: %d\r\n\r\n" % len(small),
                           [small[:-4], small[-4:-1], small[-1:]])
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    c.stop()


DECISION_TREE_PICKER = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: decision-tree-filter
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decision-tree-filter
  - pluginRef: random-picker
"""


def wait_saturated(c, saturation):
    if saturation[0] == "--fixed-waiting":
        c.wait_pools(lambda eps: all(e["waiting"] == 10 for e in eps))
    else:
        c.wait_pools(lambda eps: all(e["kv_cache_usage"] >= 0.89 for e in eps))


def status_after_reload(c, criticality, want, sighup=False):
    """Rewrites the InferenceModel and polls until the answer is `want`."""
    write(c.path("model.yaml"), model_yaml(criticality=criticality))
    if sighup:
        os.kill(c.gw.pid, signal.SIGHUP)
    deadline = time.time() + 5
    while True:
        status, _, data = call(c.base, "/v1/completions", seed_body())
        if status == want or time.time() > deadline:
            return status, data
        time.sleep(0.1)


@pytest.mark.parametrize("saturation", [("--fixed-waiting", "10"), ("--fixed-kv-usage", "0.9")])
def test_shed_when_saturated_decision_tree(procs, tmp_path, saturation):
    """GIE v0.2.0's profile: anything not Critical is sheddable."""
    picker = tmp_path / "picker.yaml"
    picker.write_text(DECISION_TREE_PICKER)
    c = Cluster(procs, tmp_path, nsims=2, sim_args=saturation, criticality=None,
                gw_args=("--picker-config", str(picker)))
    wait_saturated(c, saturation)
    status, _, data = call(c.base, "/v1/completions", seed_body())
    err = assert_openai_error(status, data, 429)
    assert "limited backend resources" in err["message"]
    # The same model made Critical is served (reload through the watcher).
    status, data = status_after_reload(c, "Critical", 200)
    assert status == 200, data
    # Sheddable and explicit: refused again.
    status, data = status_after_reload(c, "Sheddable", 429, sighup=True)
    assert_openai_error(status, data, 429)
    c.stop()


@pytest.mark.parametrize("saturation", [("--fixed-waiting", "10"), ("--fixed-kv-usage", "0.9")])
def test_shed_when_saturated_default_profile(procs, tmp_path, saturation):
    """The default profile with v1alpha2 InferenceModels: anything not
    Critical is refused when the pool is saturated (Sheddable, Standard
    and unset alike, as GIE's saturation detector did while it had
    InferenceModels); Critical is served."""
    c = Cluster(procs, tmp_path, nsims=2, sim_args=saturation, criticality="Sheddable")
    wait_saturated(c, saturation)
    status, _, data = call(c.base, "/v1/completions", seed_body())
    err = assert_openai_error(status, data, 429)
    assert "sheddable" in err["message"]
    status, data = status_after_reload(c, "Critical", 200)
    assert status == 200, data
    status, data = status_after_reload(c, "Standard", 429, sighup=True)
    assert_openai_error(status, data, 429)
    status, data = status_after_reload(c, "Critical", 200)
    assert status == 200, data
    status, data = status_after_reload(c, None, 429)
    assert_openai_error(status, data, 429)
    c.stop()


def test_decision_tree_thresholds_are_inclusive(procs, tmp_path):
    """GIE v0.2.0's tree takes a non-critical request while every queue is
    at most 5 and KV use at most 80 %: a Sheddable request is served at a
    queue of exactly 5 (the pool's saturation detector, which would call
    that saturated, does not refuse it first), and shed above it."""
    picker = tmp_path / "picker.yaml"
    picker.write_text(DECISION_TREE_PICKER)
    c = Cluster(procs, tmp_path, nsims=2, sim_args=("--fixed-waiting", "5"),
                criticality="Sheddable", gw_args=("--picker-config", str(picker)))
    c.wait_pools(lambda eps: all(e["waiting"] == 5 for e in eps))
    for _ in range(3):
        status, _, data = call(c.base, "/v1/completions", seed_body())
        assert status == 200, data
    c.stop()


# ---- 4. streaming ----

def stream(host, port, path, body):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    t0 = time.monotonic()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type").startswith("text/event-stream")
    headers = resp.getheaders()
    events = sse_chunks(resp)
    conn.close()
    return t0, headers, events


def normalise(events):
    out = []
    for _, e in events:
        if e == "[DONE]":
            out.append(e)
            continue
        d = json.loads(e)
        d["id"], d["created"] = "ID", 0
        out.append(d)
    return out


def test_streaming_identical_to_direct(procs, tmp_path):
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "50"))
    body = {"messages": [{"role": "user", "content": "Say something about the sea"}],
            "stream": True, "stream_options": {"include_usage": True}, "temperature": 0,
            "max_tokens": 20}
    direct = dict(body, model="tweet-summary-1")
    _, _, want = stream(c.sim_hosts[0], c.target_port, "/v1/chat/completions", direct)
    t0, headers, got = stream(c.host, c.port, "/v1/chat/completions",
                              dict(body, model="tweet-summary"))
    hdrs = {k.lower(): v for k, v in headers}
    assert hdrs.get("transfer-encoding") == "chunked"
    assert "content-length" not in hdrs
    assert hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(0)
    assert normalise(got) == normalise(want)
    assert got[-1][1] == "[DONE]"
    assert json.loads(got[-2][1])["usage"]["completion_tokens"] == 20
    # Relayed as it arrives: 20 tokens at 50 ms take about a second, and the
    # first chunk comes long before the last.
    first, last = got[0][0], got[-1][0]
    assert first - t0 < 0.4, first - t0
    assert last - first > 0.6, last - first
    c.stop()


# ---- 5. a model server dies under load ----

def test_sim_killed_under_load(procs, tmp_path):
    # Equal, fixed metrics on every sim make the picker choose uniformly, so
    # the dead sim keeps being picked (its last metrics stay) and every such
    # pick must be retried elsewhere.
    c = Cluster(procs, tmp_path, nsims=3, gw_args=("--max-attempts", "3"),
                sim_args=("--fixed-waiting", "0", "--fixed-kv-usage", "0.1",
                          "--fixed-lora-running", "tweet-summary-1"))
    c.wait_pools(lambda eps: all(e["running_adapters"] == ["tweet-summary-1"] for e in eps))
    killed = c.endpoint(0)
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 5}
    stop = time.monotonic() + 3.0
    kill_at = time.monotonic() + 1.0
    results = []  # (start, end, status, endpoint)
    lock = threading.Lock()

    def client():
        while time.monotonic() < stop:
            t = time.monotonic()
            try:
                status, headers, _ = call(c.base, "/v1/completions", body, timeout=5)
                ep = headers.get("x-gateway-destination-endpoint-served")
            except Exception as e:  # noqa: BLE001 - a failed request is data here
                status, ep = repr(e), None
            with lock:
                results.append((t, time.monotonic(), status, ep))

    ts = [threading.Thread(target=client) for _ in range(4)]
    for t in ts:
        t.start()
    time.sleep(max(0, kill_at - time.monotonic()))
    c.sims[0].kill()
    killed_at = time.monotonic()
    c.sims[0].wait()
    for t in ts:
        t.join()
    before = [r for r in results if r[1] < killed_at]
    assert before and all(r[2] == 200 for r in before)
    assert killed in {r[3] for r in before}, "the killed sim had no traffic before"
    errors = [r for r in results if r[2] != 200]
    # Only requests in flight when the sim died may fail: at most one per
    # client thread, and each one started before the kill.
    assert len(errors) <= 4, errors
    assert all(r[0] < killed_at for r in errors), errors
    after = [r for r in results if r[0] > killed_at]
    assert len(after) > 50
    assert all(r[2] == 200 for r in after)
    assert killed not in {r[3] for r in after}
    print("requests %d, errors %d" % (len(results), len(errors)))
    assert "trying another endpoint" in c.log()
    c.stop()


# ---- 6. reload ----

def loop_client(c, stop_evt, out, body=None):
    body = body or {"model": "tweet-summary", "prompt": "hi", "max_tokens": 2}
    while not stop_evt.is_set():
        try:
            status, _, r = post_json(c.base, "/v1/completions", body)
            out.append((time.monotonic(), status, r.get("model") if status == 200 else r))
        except Exception as e:  # noqa: BLE001
            out.append((time.monotonic(), repr(e), None))


def test_reload_on_file_change(procs, tmp_path):
    c = Cluster(procs, tmp_path, gw_args=("--watch-interval", "200"))
    stop_evt = threading.Event()
    out = []
    t = threading.Thread(target=loop_client, args=(c, stop_evt, out))
    t.start()
    try:
        time.sleep(0.3)
        write(c.path("model.yaml"), model_yaml((("tweet-summary-0", 100),)))
        changed = time.monotonic()
        deadline = changed + 2.0
        while time.monotonic() < deadline and not (out and out[-1][2] == "tweet-summary-0"):
            time.sleep(0.05)
        assert out[-1][2] == "tweet-summary-0", out[-3:]
        switched = time.monotonic()
        # An invalid edit is refused with the file and line; the old
        # config keeps serving.
        write(c.path("model.yaml"), model_yaml((("tweet-summary-1", -5),)))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and "must be between" not in c.log():
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop_evt.set()
        t.join()
    log = c.log()
    assert re.search(r"model\.yaml:\d+: spec\.targetModels\[0\]\.weight", log), log
    assert "keeping the previous" in log
    assert all(r[1] == 200 for r in out), [r for r in out if r[1] != 200][:5]
    assert {r[2] for r in out if r[0] > switched + 0.05} == {"tweet-summary-0"}
    assert {r[2] for r in out if r[0] < changed} == {"tweet-summary-1"}
    c.stop()


def test_reload_on_sighup(procs, tmp_path):
    c = Cluster(procs, tmp_path, gw_args=("--watch-interval", "600000"))
    status, _, r = post_json(c.base, "/v1/completions", seed_body())
    assert r["model"] == "tweet-summary-1"
    write(c.path("model.yaml"), model_yaml((("tweet-summary-0", 100),)))
    time.sleep(0.3)
    status, _, r = post_json(c.base, "/v1/completions", seed_body())
    assert r["model"] == "tweet-summary-1"  # nothing watches within 10 minutes
    c.gw.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 2.0
    while True:
        status, _, r = post_json(c.base, "/v1/completions", seed_body())
        assert status == 200
        if r["model"] == "tweet-summary-0" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r["model"] == "tweet-summary-0"
    assert "reloading configuration (SIGHUP)" in c.log()
    c.stop()


def admin_status(c):
    status, _, data = call(c.admin, "/api/status")
    assert status == 200
    return json.loads(data)


def reload_metrics(c):
    status, _, data = call(c.admin, "/metrics")
    assert status == 200
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^(infergate_config_[a-z_]+(?:\{[^}]*\})?) (\S+)$", data.decode(), re.M)}


def sighup_until(c, pred):
    """SIGHUP, then /api/status until pred(its "reload") holds."""
    c.gw.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:
        s = admin_status(c)
        if pred(s["reload"]) or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


def test_reload_failure_is_reported(procs, tmp_path):
    """A refused reload leaves the previous configuration serving (/readyz
    stays 200) and says so where operators look: nginx-ingress's
    config_last_reload_successful and a reload counter by result on
    /metrics, the last reload's result, time and errors on /api/status."""
    c = Cluster(procs, tmp_path, nsims=0, gw_args=("--watch-interval", "600000"))
    m = reload_metrics(c)
    assert m['infergate_config_reloads_total{result="success"}'] == 0
    assert m['infergate_config_reloads_total{result="failure"}'] == 0
    assert m["infergate_config_last_reload_successful"] == 1
    started = m["infergate_config_last_reload_success_timestamp_seconds"]
    assert started > 1.6e9
    s = admin_status(c)
    assert s["reload"]["last"] is None and s["reload"]["last_success_time"]

    write(c.path("model.yaml"), model_yaml((("tweet-summary-1", -5),)))
    s = sighup_until(c, lambda r: r["failures"] == 1)
    last = s["reload"]["last"]
    assert last["result"] == "failure" and last["reason"] == "SIGHUP", last
    assert any(re.match(r".*model\.yaml:\d+: spec\.targetModels\[0\]\.weight: ", e)
               for e in last["errors"]), last
    assert s["reload"]["successes"] == 0
    m = reload_metrics(c)
    assert m['infergate_config_reloads_total{result="failure"}'] == 1
    assert m["infergate_config_last_reload_successful"] == 0
    assert m["infergate_config_last_reload_success_timestamp_seconds"] == started
    status, _, _ = call(c.admin, "/readyz")
    assert status == 200  # the previous configuration still serves

    write(c.path("model.yaml"), model_yaml())
    s = sighup_until(c, lambda r: r["successes"] == 1)
    assert s["reload"]["last"]["result"] == "success"
    assert s["reload"]["last"]["errors"] == []
    m = reload_metrics(c)
    assert m['infergate_config_reloads_total{result="success"}'] == 1
    assert m['infergate_config_reloads_total{result="failure"}'] == 1
    assert m["infergate_config_last_reload_successful"] == 1
    assert m["infergate_config_last_reload_success_timestamp_seconds"] >= started
    c.stop()


def test_routes_that_do_not_attach_are_reported(procs, tmp_path):
    """A route its Gateway does not accept is a warning in the log at load
    and reload, and /api/status gives every route's parents the conditions
    --kube would write (Gateway API §4.9), and each listener its own."""
    c = Cluster(procs, tmp_path, nsims=0, gw_args=("--watch-interval", "600000"))
    write(c.path("stray.yaml"), ROUTE.format(target_port=c.target_port, prefix="/x",
                                             timeouts="").replace(
        "name: llm-route", "name: stray").replace("sectionName: llm-gw", "sectionName: nope"))
    s = sighup_until(c, lambda r: r["successes"] == 1)
    assert re.search(r"stray\.yaml:\d+: warning: spec\.parentRefs\[0\]: HTTPRoute "
                     r"\"default/stray\" not accepted by Gateway \"default/inference-gateway\" "
                     r"sectionName \"nope\" \(Accepted=False, NoMatchingParent\)", c.log()), c.log()
    routes = {r["name"]: r for r in s["routes"]}
    conds = {x["type"]: x for x in routes["stray"]["parents"][0]["conditions"]}
    assert conds["Accepted"]["status"] == "False"
    assert conds["Accepted"]["reason"] == "NoMatchingParent"
    assert routes["stray"]["parents"][0]["parentRef"]["sectionName"] == "nope"
    assert routes["stray"]["file"].endswith("stray.yaml") and routes["stray"]["line"] == 1
    conds = {x["type"]: x for x in routes["llm-route"]["parents"][0]["conditions"]}
    assert conds["Accepted"]["status"] == "True" and conds["ResolvedRefs"]["status"] == "True"
    (gw,) = s["gateways"]
    (listener,) = gw["listeners"]
    assert listener["name"] == "llm-gw" and listener["attached_routes"] == 1
    conds = {x["type"]: x for x in listener["conditions"]}
    assert conds["Programmed"]["status"] == "True" and conds["Conflicted"]["status"] == "False"
    c.stop()


V1_POOLS = """apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: v1-pool
spec:
  selector: {matchLabels: {app: v1}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: no-such-picker, port: {number: 9002}}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: lonely-pool
spec:
  selector: {matchLabels: {app: lonely}}
  targetPorts: [{number: 8000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: v1-route
spec:
  parentRefs: [{name: inference-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1x}}]
    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: v1-pool}]
"""


def test_pool_status_is_reported(procs, tmp_path):
    """/api/status gives every InferencePool the parents[] that --kube
    writes as its status (GIE's InferencePoolStatus): one entry per Gateway
    an accepted route reaches it through, Accepted, and ResolvedRefs False
    (InvalidExtensionRef) for a v1 pool whose picker Service is missing,
    which in file mode the built-in picker serves."""
    c = Cluster(procs, tmp_path, nsims=0, gw_args=("--watch-interval", "600000"))
    write(c.path("v1.yaml"), V1_POOLS)
    s = sighup_until(c, lambda r: r["successes"] == 1)
    pools = {p["name"]: p for p in s["pools"]}
    assert set(pools) == {"qwen-pool", "v1-pool", "lonely-pool"}, s["pools"]
    gw_ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway",
              "namespace": "default", "name": "inference-gateway"}
    (qwen,) = pools["qwen-pool"]["parents"]
    assert qwen["parentRef"] == gw_ref
    conds = {x["type"]: x for x in qwen["conditions"]}
    assert conds["Accepted"]["status"] == "True" and conds["Accepted"]["reason"] == "Accepted"
    assert conds["ResolvedRefs"]["status"] == "True"
    (v1,) = pools["v1-pool"]["parents"]
    assert v1["parentRef"] == gw_ref
    conds = {x["type"]: x for x in v1["conditions"]}
    assert conds["Accepted"]["status"] == "True"
    assert (conds["ResolvedRefs"]["status"], conds["ResolvedRefs"]["reason"]) == \
        ("False", "InvalidExtensionRef")
    assert pools["v1-pool"]["group"] == "inference.networking.k8s.io"
    assert pools["v1-pool"]["file"].endswith("v1.yaml") and pools["v1-pool"]["line"] == 1
    assert pools["lonely-pool"]["parents"] == []
    c.stop()


# ---- 7. drain on SIGTERM ----

def test_sigterm_drains(procs, tmp_path):
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "100"))
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 20, "stream": True}
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    first = resp.read1(65536)
    assert first.startswith(b"data: ")
    c.gw.send_signal(signal.SIGTERM)
    # Draining: alive (/healthz, liveness), not ready (/readyz).
    deadline = time.monotonic() + 5
    while call(c.admin, "/readyz")[0] != 503:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    status, _, data = call(c.admin, "/healthz")
    assert (status, data) == (200, b"ok\n")
    # New connections are refused once the workers closed their listeners.
    deadline = time.monotonic() + 1.0
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            socket.create_connection((c.host, c.port), timeout=0.5).close()
            time.sleep(0.02)
        except ConnectionRefusedError:
            refused = True
        except ConnectionResetError:
            # Accepted by the kernel into a listener that was closing:
            # reset when it closed. The next try finds no listener.
            time.sleep(0.02)
    assert refused
    assert c.gw.poll() is None, "exited while a stream was in flight"
    rest = first
    while True:
        b = resp.read1(65536)
        if not b:
            break
        rest += b
    events = [e for e in rest.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    texts = [json.loads(e[6:])["choices"][0] for e in events[:-1]]
    assert len(texts) == 20 and texts[-1]["finish_reason"] == "length"
    conn.close()
    rc = c.gw.wait(timeout=5)
    log = c.log()
    assert rc == 0, log
    assert "draining" in log
    for s in SAN_ERRORS:
        assert s not in log, log


def test_drain_grace_period(procs, tmp_path):
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "200"),
                gw_args=("--drain-timeout", "300"))
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 50, "stream": True}
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    resp.read1(65536)
    t = time.monotonic()
    c.gw.send_signal(signal.SIGTERM)
    rc = c.gw.wait(timeout=5)
    assert rc == 0 and time.monotonic() - t < 2.0
    assert "grace period over" in c.log()
    conn.close()


# ---- 8. connections ----

def read_response(f):
    """One response from a file-like socket reader: (status line, headers, body)."""
    line = f.readline()
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers["content-length"])) if "content-length" in headers else f.read()
    return line, headers, body


def completion_request(max_tokens, version="1.1", extra=""):
    body = json.dumps({"model": "tweet-summary", "prompt": "hi", "max_tokens": max_tokens})
    return ("POST /v1/completions HTTP/%s\r\nHost: gw\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n%s\r\n%s" % (version, len(body), extra, body)).encode()


def test_request_target_forms(procs, tmp_path):
    """RFC 9112 §3.2, as nginx and Envoy: an absolute-form target (what a
    client configured with the gateway as its HTTP proxy sends) is served as
    its path; an HTTP/1.1 request without a Host, or with two, is a 400 in
    the OpenAI error shape; HTTP/1.0 needs none."""
    c = Cluster(procs, tmp_path)
    body = json.dumps({"model": "tweet-summary", "prompt": "hi", "max_tokens": 3})

    def request(target, host_lines, version="1.1"):
        return ("POST %s HTTP/%s\r\n%sContent-Type: application/json\r\n"
                "Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                % (target, version, host_lines, len(body), body)).encode()

    for target, hosts, version in (
            ("http://%s:%d/v1/completions" % (c.host, c.port), "Host: elsewhere\r\n", "1.1"),
            ("HTTP://gw/v1/completions?x=1", "", "1.1"),
            ("/v1/completions", "", "1.0")):
        head, out = raw_exchange(c.host, c.port, request(target, hosts, version)).split(
            b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 "), (target, head)
        assert json.loads(out)["usage"]["completion_tokens"] == 3
    for hosts, why in (("", "without a Host header"),
                       ("Host: gw\r\nHost: gw\r\n", "more than one Host header")):
        head, out = raw_exchange(c.host, c.port, request("/v1/completions", hosts)).split(
            b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert why in json.loads(out)["error"]["message"]
    head, out = raw_exchange(c.host, c.port, request("gw:80", "Host: gw\r\n")).split(
        b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400 "), head
    c.stop()


def test_keepalive_pipelining_and_timeouts(procs, tmp_path):
    c = Cluster(procs, tmp_path, gw_args=("--idle-timeout", "400", "--header-timeout", "400",
                                          "--body-timeout", "400"))
    # Several requests on one connection.
    conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
    for n in (1, 2, 3):
        conn.request("POST", "/v1/completions",
                     json.dumps({"model": "tweet-summary", "prompt": "hi", "max_tokens": n}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        r = json.loads(resp.read())
        assert resp.status == 200 and r["usage"]["completion_tokens"] == n
        sock = conn.sock
        assert sock is not None
    conn.close()
    # HTTP/1.0: answered and closed.
    reply = raw_exchange(c.host, c.port, completion_request(4, "1.0"))
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") or head.startswith(b"HTTP/1.0 200 "), head
    assert json.loads(body)["usage"]["completion_tokens"] == 4
    # Pipelined: three requests in one write, answered in order.
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(completion_request(1) + completion_request(2) +
                  completion_request(3, extra="Connection: close\r\n"))
        f = s.makefile("rb")
        for n in (1, 2, 3):
            line, headers, body = read_response(f)
            assert line.startswith(b"HTTP/1.1 200 "), line
            assert json.loads(body)["usage"]["completion_tokens"] == n
        assert f.read() == b""
    # An idle keep-alive connection is closed after --idle-timeout.
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(completion_request(1))
        f = s.makefile("rb")
        line, _, _ = read_response(f)
        assert line.startswith(b"HTTP/1.1 200 ")
        t = time.monotonic()
        assert f.read(1) == b""
        assert 0.2 < time.monotonic() - t < 2.0
    # Half a head: 408 or a close after --header-timeout.
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-")
        t = time.monotonic()
        out = read_to_close(s)
        assert 0.2 < time.monotonic() - t < 2.0
        assert out == b"" or out.startswith(b"HTTP/1.1 408 "), out
        if out:
            assert_openai_error(408, out.split(b"\r\n\r\n", 1)[1], 408)
    # A body that stops half way: 408 after --body-timeout of silence.
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n"
                  b'{"model": "tweet-')
        t = time.monotonic()
        out = s.makefile("rb").read()
        assert 0.2 < time.monotonic() - t < 2.0
        assert out.startswith(b"HTTP/1.1 408 "), out
        assert_openai_error(408, out.split(b"\r\n\r\n", 1)[1], 408)
    c.stop()


# ---- 9. HTTPRoute timeouts ----

@pytest.mark.parametrize("field", ["request", "backendRequest"])
def test_route_timeout(procs, tmp_path, field):
    c = Cluster(procs, tmp_path, sim_args=("--ttft-ms", "3000"),
                timeouts="    timeouts:\n      %s: 500ms\n" % field)
    t = time.monotonic()
    status, _, data = call(c.base, "/v1/completions", seed_body())
    took = time.monotonic() - t
    assert_openai_error(status, data, 504)
    assert 0.4 < took < 1.2, took
    c.stop()


# ---- 10. admin listener and command line ----

def test_admin(procs, tmp_path):
    c = Cluster(procs, tmp_path, nsims=2)
    status, _, data = call(c.admin, "/healthz")
    assert status == 200
    status, _, r = post_json(c.base, "/v1/completions", seed_body())
    assert status == 200
    status, headers, data = call(c.admin, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = data.decode()
    assert re.search(r'^inference_model_request_total\{model_name="tweet-summary",'
                     r'target_model_name="tweet-summary-1"\} 1$', text, re.M), text
    assert re.search(r'^inference_pool_ready_pods\{name="qwen-pool",namespace="default"\} 2$',
                     text, re.M), text
    # /pools shows what the scraper read from each sim.
    st, _, _ = call(c.sim_base(1), "/sim/state",
                    {"waiting": 3, "kv_usage": 0.25, "lora_running": ["tweet-summary-0"]})
    assert st == 200
    eps = c.wait_pools(lambda eps: any(e["waiting"] == 3 for e in eps))
    assert {e["address"] for e in eps} == {c.endpoint(0), c.endpoint(1)}
    e1 = next(e for e in eps if e["address"] == c.endpoint(1))
    assert e1["kv_cache_usage"] == 0.25
    assert e1["running_adapters"] == ["tweet-summary-0"]
    assert e1["max_lora"] == 4
    assert e1["metrics_age_ms"] < 1000
    e0 = next(e for e in eps if e["address"] == c.endpoint(0))
    assert e0["waiting"] == 0
    assert call(c.admin, "/nope")[0] == 404
    c.stop()


def test_command_line():
    r = subprocess.run([IG_BIN, "gateway", "--bogus-flag", "-f", "x"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "--bogus-flag" in r.stderr
    r = subprocess.run([IG_BIN, "gateway", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--max-body-bytes" in r.stdout
    r = subprocess.run([IG_BIN, "gateway", "--workers", "zero", "-f", "x"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "--workers" in r.stderr


# ---- clients that read slowly or go away ----

def test_drain_flushes_slow_readers(procs, tmp_path):
    """Large answers to clients that read slowly: the gateway holds back the
    upstream while a client's socket is full, and a drain waits until the
    last byte of each response is out, not just until its upstream ended.
    The answers finish upstream before SIGTERM while nothing is read, so
    each one sits in kernel buffers plus, if it is larger than they are,
    the gateway's own output buffer; sizes a few hundred KiB apart make it
    likely that one of them ends in the gateway's buffer."""
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "0", "--ttft-ms", "0",
                                           "--max-model-len", "2000000",
                                           "--num-gpu-blocks", "400000",
                                           "--decode-us-per-seq", "0"))
    sizes = [850000, 900000, 950000, 1000000, 1050000]
    socks = []
    for ntok in sizes:
        body = json.dumps({"model": "tweet-summary", "prompt": "hi", "max_tokens": ntok})
        s = socket.create_connection((c.host, c.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: gw\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(body), body)).encode())
        socks.append(s)
    time.sleep(1.5)
    c.gw.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    data = [b""] * len(socks)
    open_ = set(range(len(socks)))
    while open_:
        for i in list(open_):
            b = socks[i].recv(65536)
            if not b:
                open_.discard(i)
                socks[i].close()
            data[i] += b
        time.sleep(0.01)  # slower than the gateway can write
    for d, ntok in zip(data, sizes):
        head, payload = d.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        assert len(payload) == length, (ntok, length - len(payload))
        assert json.loads(payload)["usage"]["completion_tokens"] == ntok
    rc = c.gw.wait(timeout=10)
    assert rc == 0
    for e in SAN_ERRORS:
        assert e not in c.log()


def test_clients_that_go_away(procs, tmp_path):
    """Clients closing before the answer or in the middle of a stream cost
    the gateway nothing: it keeps serving (and stays clean under ASan)."""
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "20", "--ttft-ms", "200"))
    stream_body = json.dumps({"model": "tweet-summary", "prompt": "hi", "max_tokens": 30,
                              "stream": True})
    req = ("POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\n\r\n%s" % (len(stream_body), stream_body)).encode()
    for wait_first in (False, True, False, True):
        s = socket.create_connection((c.host, c.port), timeout=5)
        s.sendall(req)
        if wait_first:
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        s.close()
    # Half a body, then gone.
    s = socket.create_connection((c.host, c.port), timeout=5)
    s.sendall(req[:-10])
    s.close()
    time.sleep(0.5)
    eps = c.wait_pools(lambda eps: eps[0]["in_flight"] == 0, timeout=3)
    assert eps[0]["requests_total"] == 4
    status, _, r = post_json(c.base, "/v1/completions", seed_body())
    assert status == 200 and r["usage"]["completion_tokens"] == 100
    c.stop()


def test_upstream_dies_mid_stream(procs, tmp_path):
    """After the first byte there is no retry: the client sees the chunked
    stream end without its last chunk, i.e. an incomplete response."""
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "100",))
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 20, "stream": True}
    conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read1(65536).startswith(b"data: ")
    c.sims[0].kill()
    with pytest.raises(http.client.IncompleteRead):
        while resp.read1(65536):
            pass
    conn.close()
    # With its only endpoint gone, a new request cannot be served: 502.
    status, _, data = call(c.base, "/v1/completions", seed_body())
    assert_openai_error(status, data, 502)
    c.stop()


def test_request_timeout_mid_stream(procs, tmp_path):
    """timeouts.request covers the whole exchange: a stream still running
    when it fires is cut (no last chunk), not answered 504."""
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "100",),
                timeouts="    timeouts:\n      request: 500ms\n")
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 20, "stream": True}
    conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
    t = time.monotonic()
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        while resp.read1(65536):
            pass
    assert 0.4 < time.monotonic() - t < 1.5
    conn.close()
    status, _, r = post_json(c.base, "/v1/completions",
                             {"model": "tweet-summary", "prompt": "hi", "max_tokens": 2})
    assert status == 200
    c.stop()


CORS_ROUTES = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cors-{n}
spec:
  parentRefs:
  - name: inference-gateway
    sectionName: llm-gw
  rules:
  - matches:
    - headers:
      - name: x-route
        value: cors-{n}
    filters:
    - type: CORS
      cors:
{cors}
    backendRefs:
    - group: inference.networking.x-k8s.io
      kind: InferencePool
      name: qwen-pool
      port: {target_port}
"""


def cors_exchange(c, method, headers, body=None):
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request(method, "/v1/completions", body=body,
                 headers=dict(headers, **({"Content-Type": "application/json"} if body else {})))
    resp = conn.getresponse()
    data = resp.read()
    hdrs = {}
    for k, v in resp.getheaders():
        hdrs.setdefault(k.lower(), []).append(v)
    conn.close()
    return resp.status, hdrs, data


def test_cors_filter(procs, tmp_path):
    """Gateway API's CORS filter (standard since v1.5; the cases of its
    HTTPRouteCORS conformance test): a preflight from an allowed origin
    (exact, "*." wildcard at any depth, default port) is answered by the
    gateway with the configured methods, headers, exposed headers, max age
    and credentials; from another origin it is a 403 without them; an
    allowed request's answer names its origin (once: the model server's own
    CORS headers are dropped) and so does the gateway's own error; "*"
    methods echo the asked one."""
    c = Cluster(procs, tmp_path)
    routes = [
        ("1", "        allowOrigins: [\"https://www.foo.com\", \"https://*.bar.com\"]\n"
              "        allowMethods: [GET, OPTIONS]\n"
              "        allowHeaders: [x-header-1, x-header-2]\n"
              "        exposeHeaders: [x-header-3, x-header-4]\n"
              "        allowCredentials: true\n"
              "        maxAge: 3600"),
        ("2", "        allowOrigins: [\"https://www.foo.com\"]\n"
              "        allowMethods: [\"*\"]"),
        ("3", "        allowOrigins: [\"*\"]\n"
              "        allowMethods: [PUT]"),
    ]
    write(c.path("cors.yaml"), "---\n".join(
        CORS_ROUTES.format(n=n, cors=cors, target_port=c.target_port) for n, cors in routes))
    pre = {"x-route": "cors-1", "Origin": "https://xpto.www.bar.com",
           "Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "x-header-1, x-header-2"}
    # Until the reload has the filters, a preflight goes on to a pod (it
    # has no body) and the simulator answers it: wait for the filter's.
    deadline = time.time() + 10
    while (cors_exchange(c, "OPTIONS", pre)[1].get("access-control-allow-methods") !=
           ["GET, OPTIONS"] and time.time() < deadline):
        time.sleep(0.1)
    status, h, body = cors_exchange(c, "OPTIONS", pre)
    assert status == 200 and body == b"", (status, h, body)
    assert h["access-control-allow-origin"] == ["https://xpto.www.bar.com"]
    assert h["access-control-allow-methods"] == ["GET, OPTIONS"]
    assert h["access-control-allow-headers"] == ["x-header-1, x-header-2"]
    assert h["access-control-expose-headers"] == ["x-header-3, x-header-4"]
    assert h["access-control-max-age"] == ["3600"]
    assert h["access-control-allow-credentials"] == ["true"]
    status, h, _ = cors_exchange(c, "OPTIONS", dict(pre, Origin="https://www.foo.com:443"))
    assert status == 200 and h["access-control-allow-origin"] == ["https://www.foo.com:443"]
    for origin in ("https://foobar.com", "http://www.foo.com", "https://bar.com"):
        status, h, _ = cors_exchange(c, "OPTIONS", dict(pre, Origin=origin))
        assert status == 403 and not any(k.startswith("access-control-") for k in h), (origin, h)
    body = json.dumps({"model": "tweet-summary", "prompt": "hi", "max_tokens": 2})
    # The simulator answers an Origin with its own "*" (vLLM's middleware):
    # the filter's grant replaces it.
    status, h, data = cors_exchange(c, "POST", {"x-route": "cors-1",
                                                "Origin": "https://www.foo.com"}, body)
    assert status == 200 and json.loads(data)["usage"]["completion_tokens"] == 2
    assert h["access-control-allow-origin"] == ["https://www.foo.com"], h
    assert h["access-control-allow-credentials"] == ["true"]
    assert h["access-control-expose-headers"] == ["x-header-3, x-header-4"]
    status, h, _ = cors_exchange(c, "POST", {"x-route": "cors-1",
                                             "Origin": "https://foobar.com"}, body)
    assert status == 200 and "access-control-allow-origin" not in h, h
    status, h, _ = cors_exchange(c, "POST", {"x-route": "cors-1", "Origin": "https://www.foo.com"},
                                 json.dumps({"model": "nope", "prompt": "hi"}))
    assert status == 404 and h["access-control-allow-origin"] == ["https://www.foo.com"]
    status, h, _ = cors_exchange(c, "OPTIONS", {"x-route": "cors-2", "Origin": "https://www.foo.com",
                                                "Access-Control-Request-Method": "POST"})
    assert status == 200 and h["access-control-allow-methods"] == ["POST"]
    assert "access-control-allow-credentials" not in h
    status, h, _ = cors_exchange(c, "OPTIONS", {"x-route": "cors-3", "Origin": "https://foobar.com:12345",
                                                "Access-Control-Request-Method": "PUT"})
    assert status == 200 and h["access-control-allow-origin"] == ["https://foobar.com:12345"]
    assert h["access-control-allow-methods"] == ["PUT"] and h["access-control-max-age"] == ["5"]
    c.stop()
