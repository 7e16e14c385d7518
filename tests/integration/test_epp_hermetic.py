"""GIE v0.2.0's hermetic picker cases, run through both of infergate's
front ends with `--picker v0.2` (GIE v0.2.0's decision tree): `infergate
epp` as an Envoy ext_proc service (grpcio playing Envoy in
FULL_DUPLEX_STREAMED mode) and `infergate gateway` over HTTP. Each case
must pick the same pod, or shed with 429, in both.

Source of the cases (facts only; no code taken): repository
kubernetes-sigs/gateway-api-inference-extension, tag v0.2.0 (commit
5362a9eb14c1d0c9f22518a285fb6eaeb2d9a4bb), file
test/integration/epp/hermetic_test.go (at that tag the file lives under
test/integration/epp/; it was test/integration/hermetic_test.go before),
TestKubeInferenceModelRequest and the request-flow cases of
TestFullDuplexStreamed_KubeInferenceModelRequest: each case's pod metrics
(waiting queue size, KV-cache usage, active LoRA adapters), the model
requested, and the pod expected or the 429. The InferenceModels are those
of test/testdata/inferencepool-with-model-hermetic.yaml at the same tag:
my-model -> my-model-12345 (Critical), sql-lora -> sql-lora-1fdg2
(Critical), sql-lora-sheddable -> sql-lora-1fdg3 (no criticality, which
v0.2.0 treats as not critical), direct-model (Critical, no target models:
the name is passed through).

How the facts map onto model servers with controlled metrics (FakePod):
- upstream's pods 0, 1, 2 (192.168.1.1-3:8000) are three FakePods on
  distinct loopback addresses sharing the pool's targetPortNumber;
- the metrics are served on each FakePod's /metrics page and scraped by
  infergate; every case waits until the picker's admin /pools shows every
  pod's figures before the first request;
- upstream's ActiveModels is what v0.2.0 builds from vllm:lora_requests_info
  (running and waiting adapters together, pkg/epp/backend/vllm/metrics.go
  at the tag): here they are running_lora_adapters. One extra case (not
  upstream) puts the requested adapter in waiting_lora_adapters instead,
  which v0.2.0 counts the same;
- upstream's fake metrics leave MaxActiveModels at 0, so no pod ever has
  room for another adapter; max_lora="0" on every page reproduces that.
  With it every case has a single survivor, so the expected sets hold one
  pod each; each case is still asked several times and the answers
  checked for membership.
The response-flow cases of the same file test the response path, not the
picker, and are not reproduced here."""
import http.client
import json
import os
import signal
import time
import uuid

import pytest

from conftest import free_port, unique_loopback, wait_http, wait_port
from fakepod import FakePod
from test_gateway import SAN_ERRORS, call, write

REPEATS = 3
SERVED = "x-gateway-destination-endpoint-served"
POOL = "qwen-pool"


class Case:
    def __init__(self, name, model, target, pods, want, split=False):
        self.name = name
        self.model = model    # the model the request names
        self.target = target  # what the picker must rewrite it to
        self.pods = pods      # FakePod metrics of pods 0, 1, 2
        self.want = want      # the pods (indexes) it may pick; None: shed with 429
        self.split = split    # the body sent in two pieces, cut inside the model name


def pod(waiting, kv, loras=(), waiting_loras=()):
    return dict(waiting=waiting, kv=kv, running_loras=loras, waiting_loras=waiting_loras,
                max_lora=0)


# The metrics of the last three upstream request cases.
SHEDDABLE_ONE_HAS_ROOM = [pod(4, 0.2, ("foo", "bar", "sql-lora-1fdg3")),
                          pod(0, 0.85, ("foo", "sql-lora-1fdg3")),
                          pod(10, 0.9, ("foo", "sql-lora-1fdg3"))]

CASES = [
    Case("select lower queue and kv cache, no active lora", "my-model", "my-model-12345",
         [pod(3, 0.2), pod(0, 0.1), pod(10, 0.2)], {1}),
    Case("select active lora, low queue", "sql-lora", "sql-lora-1fdg2",
         [pod(0, 0.2, ("foo", "bar")), pod(0, 0.1, ("foo", "sql-lora-1fdg2")),
          pod(10, 0.2, ("foo", "bar"))], {1}),
    # Not upstream: the same with the adapter waiting rather than running.
    Case("select waiting lora, low queue", "sql-lora", "sql-lora-1fdg2",
         [pod(0, 0.2, ("foo", "bar")), pod(0, 0.1, ("foo",), ("sql-lora-1fdg2",)),
          pod(10, 0.2, ("foo", "bar"))], {1}),
    Case("select no lora despite active model, avoid excessive queue size", "sql-lora",
         "sql-lora-1fdg2",
         [pod(10, 0.2, ("foo", "bar")), pod(200, 0.1, ("foo", "sql-lora-1fdg2")),
          pod(6, 0.2, ("foo",))], {2}),
    Case("noncritical and all models past threshold, shed request", "sql-lora-sheddable",
         "sql-lora-1fdg3",
         [pod(6, 0.2, ("foo", "bar", "sql-lora-1fdg3")), pod(0, 0.85, ("foo", "sql-lora-1fdg3")),
          pod(10, 0.9, ("foo", "sql-lora-1fdg3"))], None),
    Case("noncritical, but one server has capacity, do not shed", "sql-lora-sheddable",
         "sql-lora-1fdg3", SHEDDABLE_ONE_HAS_ROOM, {0}),
    Case("body sent over multiple requests, noncritical, but one server has capacity, "
         "do not shed", "sql-lora-sheddable", "sql-lora-1fdg3", SHEDDABLE_ONE_HAS_ROOM, {0},
         split=True),
    Case("inferencemodel's modelName is not translated, passthrough", "direct-model",
         "direct-model", SHEDDABLE_ONE_HAS_ROOM, {1}, split=True),
]


# ---- manifests ----

def pool_doc(port):
    return """apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: {pool}
spec:
  targetPortNumber: {port}
  selector:
    app: {pool}
  extensionRef:
    name: {pool}-endpoint-picker
""".format(pool=POOL, port=port)


def pod_doc(i, ip):
    return """apiVersion: v1
kind: Pod
metadata:
  name: pod-{i}
  labels:
    app: {pool}
status:
  podIP: {ip}
""".format(i=i, pool=POOL, ip=ip)


def model_doc(obj, name, criticality, target):
    out = ["apiVersion: inference.networking.x-k8s.io/v1alpha2", "kind: InferenceModel",
           "metadata:", "  name: %s" % obj, "spec:", "  modelName: %s" % name]
    if criticality:
        out.append("  criticality: %s" % criticality)
    out += ["  poolRef:", "    name: %s" % POOL]
    if target:
        out += ["  targetModels:", "  - name: %s" % target, "    weight: 100"]
    return "\n".join(out) + "\n"


MODELS = "---\n".join([
    model_doc("inferencemodel-sample", "sql-lora", "Critical", "sql-lora-1fdg2"),
    model_doc("inferencemodel-sheddable", "sql-lora-sheddable", None, "sql-lora-1fdg3"),
    model_doc("inferencemodel-generic", "my-model", "Critical", "my-model-12345"),
    model_doc("inferencemodel-direct-model-name", "direct-model", "Critical", None),
])

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
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: llm-route
spec:
  parentRefs:
  - name: inference-gateway
    sectionName: llm-gw
  rules:
  - backendRefs:
    - group: inference.networking.x-k8s.io
      kind: InferencePool
      name: {pool}
      port: {target_port}
    matches:
    - path:
        type: PathPrefix
        value: /
"""


def request_body(model, prompt):
    """The request as upstream's helper writes it: compact, keys sorted."""
    return json.dumps({"max_tokens": 100, "model": model, "prompt": prompt, "temperature": 0},
                      separators=(",", ":"), sort_keys=True).encode()


def body_parts(case, body):
    """The body as the client sends it: whole, or (split) cut after the
    first six characters of the model name, as upstream's streamed case
    cuts it."""
    if not case.split:
        return [body]
    cut = body.index(b'"model":"') + len(b'"model":"') + 6
    return [body[:cut], body[cut:]]


# ---- the pods and the two front ends ----

class Pods:
    """Three FakePods with the case's metrics and the manifests naming them."""

    def __init__(self, case, tmp_path):
        self.dir = os.path.join(str(tmp_path), "manifests")
        os.makedirs(self.dir, exist_ok=True)
        self.hosts = [unique_loopback() for _ in case.pods]
        self.port = free_port(self.hosts[0])
        self.pods = []
        for h, m in zip(self.hosts, case.pods):
            self.pods.append(FakePod(h, self.port, **m))
        write(os.path.join(self.dir, "pool.yaml"), pool_doc(self.port))
        write(os.path.join(self.dir, "pods.yaml"), "---\n".join(
            pod_doc(i, h) for i, h in enumerate(self.hosts)))
        write(os.path.join(self.dir, "models.yaml"), MODELS)

    def endpoint(self, i):
        return "%s:%d" % (self.hosts[i], self.port)

    def completions(self):
        return [r for p in self.pods for r in p.completions()]

    def stop(self):
        for p in self.pods:
            p.stop()


def wait_scraped(admin, pods):
    """Polls the admin /pools until every pod of the pool has been scraped
    and shows the figures its FakePod serves."""
    want = {p.address: p for p in pods.pods}
    deadline = time.time() + 10
    while True:
        status, _, data = call(admin, "/pools")
        eps = []
        if status == 200:
            eps = [ep for pool in json.loads(data)["pools"] if pool["name"] == POOL
                   for ep in pool["endpoints"]]
        if len(eps) == len(want) and all(
                e["metrics_age_ms"] is not None and e["address"] in want and
                e["waiting"] == want[e["address"]].waiting and
                abs(e["kv_cache_usage"] - want[e["address"]].kv) < 1e-6 and
                e["max_lora"] == want[e["address"]].max_lora and
                e["running_adapters"] == want[e["address"]].running_loras and
                e["waiting_adapters"] == want[e["address"]].waiting_loras for e in eps):
            return eps
        assert time.time() < deadline, (status, data)
        time.sleep(0.05)


def stop_clean(procs, proc):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=15)
    log = procs.output(proc)
    for s in SAN_ERRORS:
        assert s not in log, log
    assert rc == 0, log


class GatewayFront:
    """`infergate gateway --picker v0.2` with a listener and a route to
    the pool; a case's request is an HTTP POST."""

    def __init__(self, procs, pods):
        self.procs, self.pods = procs, pods
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin_host = unique_loopback()
        self.admin_port = free_port(self.admin_host)
        write(os.path.join(pods.dir, "gateway.yaml"),
              GATEWAY.format(port=self.port, pool=POOL, target_port=pods.port))
        self.proc = procs.start("gateway", "-f", pods.dir, "--bind", self.host,
                                "--admin", "%s:%d" % (self.admin_host, self.admin_port),
                                "--workers", "1", "--picker", "v0.2",
                                "--scrape-interval", "50ms", name="gateway")
        wait_port(self.host, self.port, proc=self.proc)
        self.admin = "http://%s:%d" % (self.admin_host, self.admin_port)
        wait_http(self.admin + "/healthz", proc=self.proc)

    def ask(self, parts):
        """Returns ("pick", endpoint, model the pod received) or
        ("status", code, error body)."""
        test_id = uuid.uuid4().hex
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.putrequest("POST", "/v1/completions")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(sum(len(p) for p in parts)))
            conn.putheader("x-test-id", test_id)
            conn.endheaders()
            for i, part in enumerate(parts):
                if i:
                    time.sleep(0.05)  # the rest arrives separately
                conn.send(part)
            r = conn.getresponse()
            data = r.read()
            served = r.getheader(SERVED)
        finally:
            conn.close()
        if r.status != 200:
            return "status", r.status, data
        got = [(p.address, q) for p in self.pods.pods for q in p.completions(test_id)]
        assert len(got) == 1, (served, got)
        assert got[0][0] == served, (served, got)
        return "pick", served, json.loads(got[0][1].body)["model"]

    def stop(self):
        stop_clean(self.procs, self.proc)


class EppFront:
    """`infergate epp --picker v0.2` as `test_epp.Picker` starts it, with
    FakePods for model servers; a case's request is one ext_proc stream in
    FULL_DUPLEX_STREAMED mode, answered by the headers response (the pick)
    or an immediate response."""

    def __init__(self, procs, pods):
        pytest.importorskip("grpc")
        import grpc
        from test_epp import Stream, body_msg, full_duplex, headers_msg, lb_endpoint, set_headers
        self.h = dict(Stream=Stream, body_msg=body_msg, full_duplex=full_duplex,
                      headers_msg=headers_msg, lb_endpoint=lb_endpoint, set_headers=set_headers)
        self.procs, self.pods = procs, pods
        self.host = unique_loopback()
        self.grpc_port = free_port(self.host)
        self.health_port = free_port(self.host)
        self.metrics_port = free_port(self.host)
        self.proc = procs.start("epp", "-poolName", POOL, "-f", pods.dir,
                                "-grpcPort", self.grpc_port, "-grpcHealthPort", self.health_port,
                                "-metricsPort", self.metrics_port, "--bind", self.host,
                                "-secureServing=false", "--picker", "v0.2", "--workers", "1",
                                "-refreshMetricsInterval", "50ms", name="epp")
        wait_port(self.host, self.grpc_port, proc=self.proc)
        self.admin = "http://%s:%d" % (self.host, self.metrics_port)
        wait_http(self.admin + "/healthz", proc=self.proc)
        self.channel = grpc.insecure_channel("%s:%d" % (self.host, self.grpc_port))

    def stream(self, parts):
        """Headers and every body piece without waiting, as Envoy does in
        FULL_DUPLEX_STREAMED; returns (first answer, body sent back, stream)."""
        if len(parts) == 1:
            return self.h["full_duplex"](self.channel, parts[0])
        s = self.h["Stream"](self.channel)
        s.send(self.h["headers_msg"](extra=[("hi", "mom")]))
        for i, part in enumerate(parts):
            s.send(self.h["body_msg"](part, i == len(parts) - 1))
        first = s.next()
        if first.WhichOneof("response") == "immediate_response":
            return first, None, s
        assert first.WhichOneof("response") == "request_headers", first
        out = b""
        while True:
            r = s.next()
            assert r.WhichOneof("response") == "request_body", r
            sr = r.request_body.response.body_mutation.streamed_response
            out += sr.body
            if sr.end_of_stream:
                return first, out, s

    def ask(self, parts):
        first, out, s = self.stream(parts)
        if first.WhichOneof("response") == "immediate_response":
            ir = first.immediate_response
            assert s.rest() == []
            return "status", ir.status.code, ir.body
        assert first.WhichOneof("response") == "request_headers", first
        common = first.request_headers.response
        hs = {k.lower(): v for k, v in self.h["set_headers"](common).items()}
        ep = hs["x-gateway-destination-endpoint"]
        assert self.h["lb_endpoint"](first) == ep
        assert common.clear_route_cache
        if "content-length" in hs:
            assert hs["content-length"] == str(len(out)), hs
        s.rest()
        # The picker only names the pod: nothing reached a model server.
        assert self.pods.completions() == []
        return "pick", ep, json.loads(out)["model"]

    def stop(self):
        self.channel.close()
        stop_clean(self.procs, self.proc)


FRONTS = {"epp": EppFront, "gateway": GatewayFront}


@pytest.fixture
def pods_for(tmp_path):
    made = []

    def make(case):
        made.append(Pods(case, tmp_path))
        return made[-1]
    yield make
    for p in made:
        p.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("front", sorted(FRONTS))
def test_hermetic_case(procs, pods_for, front, case):
    pods = pods_for(case)
    fe = FRONTS[front](procs, pods)
    wait_scraped(fe.admin, pods)
    body = request_body(case.model, "test-%s" % front)
    for _ in range(REPEATS):
        kind, what, detail = fe.ask(body_parts(case, body))
        if case.want is None:
            assert (kind, what) == ("status", 429), (kind, what, detail)
            err = json.loads(detail)["error"]
            assert "limited backend resources" in err["message"], detail
            continue
        assert kind == "pick", (kind, what, detail)
        assert what in {pods.endpoint(i) for i in case.want}, (what, case.want, pods.hosts)
        assert detail == case.target
    if case.want is None:
        assert pods.completions() == []
    fe.stop()
