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


def no_sanitizer_errors(cluster):
    log = cluster.log()
    for s in SAN_ERRORS:
        assert s not in log, log


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
    no_sanitizer_errors(c)


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
    no_sanitizer_errors(c)


@pytest.mark.parametrize("saturation", [("--fixed-waiting", "10"), ("--fixed-kv-usage", "0.9")])
def test_shed_when_saturated(procs, tmp_path, saturation):
    c = Cluster(procs, tmp_path, nsims=2, sim_args=saturation, criticality=None)
    if saturation[0] == "--fixed-waiting":
        c.wait_pools(lambda eps: all(e["waiting"] == 10 for e in eps))
    else:
        c.wait_pools(lambda eps: all(e["kv_cache_usage"] >= 0.89 for e in eps))
    status, _, data = call(c.base, "/v1/completions", seed_body())
    err = assert_openai_error(status, data, 429)
    assert "limited backend resources" in err["message"]
    # The same model made Critical is served (reload through the watcher).
    write(c.path("model.yaml"), model_yaml(criticality="Critical"))
    deadline = time.time() + 5
    while True:
        status, _, data = call(c.base, "/v1/completions", seed_body())
        if status == 200 or time.time() > deadline:
            break
        assert status == 429
        time.sleep(0.1)
    assert status == 200, data
    # Sheddable and explicit: refused again.
    write(c.path("model.yaml"), model_yaml(criticality="Sheddable"))
    os.kill(c.gw.pid, signal.SIGHUP)
    deadline = time.time() + 5
    while True:
        status, _, data = call(c.base, "/v1/completions", seed_body())
        if status == 429 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert_openai_error(status, data, 429)
    no_sanitizer_errors(c)
