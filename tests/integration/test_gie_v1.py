"""What today's GIE and Gateway API users write (issue 9), end to end on
real binaries: InferencePool v1 passthrough, body-based routing,
objectives by header, requests without a body, the Anthropic error shape."""
import http.client
import json
import os
import socket
import time

import pytest

from conftest import free_port, unique_loopback, wait_http, wait_port
from test_gateway import SAN_ERRORS, call, write

GATEWAY = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: infergate
  listeners:
  - name: http
    protocol: HTTP
    port: {port}
"""

POOL_V1 = """apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
  targetPorts:
  - number: {port}
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {app}
status:
  podIP: {ip}
"""

OBJECTIVE = """apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata:
  name: {name}
spec:
  priority: {priority}
  poolRef:
    name: {pool}
"""


def route(rules):
    """An HTTPRoute on listener http; rules: (header match value or None, pool)."""
    out = ["apiVersion: gateway.networking.k8s.io/v1", "kind: HTTPRoute", "metadata:",
           "  name: route", "spec:", "  parentRefs:", "  - name: gw", "  rules:"]
    for model, pool in rules:
        out.append("  - backendRefs:")
        out += ["    - group: inference.networking.k8s.io", "      kind: InferencePool",
                "      name: %s" % pool]
        if model:
            out += ["    matches:", "    - headers:", "      - name: X-Gateway-Model-Name",
                    "        value: %s" % model]
    return "\n".join(out) + "\n"


class V1:
    """Sims served by v1 InferencePools named pool-<i>, each with its own
    --served-model-name, and the gateway."""

    def __init__(self, procs, tmp_path, models, rules=None, extra_docs=(), sim_args=(),
                 gw_args=()):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "v1")
        os.makedirs(self.dir, exist_ok=True)
        self.hosts = [unique_loopback() for _ in models]
        self.sim_port = free_port(self.hosts[0])
        self.sims = [procs.start("sim", "--host", h, "--port", self.sim_port,
                                 "--served-model-name", m, *sim_args, name="sim")
                     for h, m in zip(self.hosts, models)]
        for h, p in zip(self.hosts, self.sims):
            wait_http("http://%s:%d/health" % (h, self.sim_port), proc=p)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin_host = unique_loopback()
        self.admin_port = free_port(self.admin_host)
        docs = [GATEWAY.format(port=self.port),
                route(rules or [(None, "pool-0")])]
        for i, h in enumerate(self.hosts):
            docs.append(POOL_V1.format(name="pool-%d" % i, port=self.sim_port))
            docs.append(POD.format(name="pod-%d" % i, app="pool-%d" % i, ip=h))
        docs += list(extra_docs)
        write(os.path.join(self.dir, "all.yaml"), "---\n".join(docs))
        self.gw = procs.start("gateway", "-f", self.dir, "--bind", self.host, "--admin",
                              "%s:%d" % (self.admin_host, self.admin_port), "--workers", "2",
                              *gw_args, name="gateway")
        wait_port(self.host, self.port, proc=self.gw)
        wait_http("http://%s:%d/healthz" % (self.admin_host, self.admin_port), proc=self.gw)

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    def endpoint(self, i):
        return "%s:%d" % (self.hosts[i], self.sim_port)

    def stop(self):
        self.gw.send_signal(15)
        rc = self.gw.wait(timeout=15)
        log = self.procs.output(self.gw)
        for s in SAN_ERRORS:
            assert s not in log, log
        assert rc == 0, log


def completion(model, prompt="Write as if you were a critic: San Francisco"):
    return {"model": model, "prompt": prompt, "max_tokens": 5}


def test_v1_pool_passes_the_model_through(procs, tmp_path):
    """A v1 pool without InferenceModels sends the body's model through
    unchanged (GIE v1.0 removed InferenceModel): the simulator answers with
    the model it was asked for, and GET /v1/models reaches a model server."""
    c = V1(procs, tmp_path, ["meta-llama/Llama-3.1-8B-Instruct"])
    st, hdrs, data = call(c.base, "/v1/completions",
                          completion("meta-llama/Llama-3.1-8B-Instruct"))
    assert st == 200, data
    assert json.loads(data)["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(0)
    # A model the server does not have: the server's own 404 comes back.
    st, _, data = call(c.base, "/v1/completions", completion("no-such-model"))
    assert st == 404, data
    st, hdrs, data = call(c.base, "/v1/models", method="GET")
    assert st == 200, data
    assert [m["id"] for m in json.loads(data)["data"]] == ["meta-llama/Llama-3.1-8B-Instruct"]
    assert hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(0)
    c.stop()


def test_body_based_routing(procs, tmp_path):
    """The body's model is set as X-Gateway-Model-Name before HTTPRoute
    matching, so one HTTPRoute sends model A to pool A and B to pool B."""
    c = V1(procs, tmp_path, ["model-a", "model-b"],
           rules=[("model-a", "pool-0"), ("model-b", "pool-1")])
    for _ in range(3):
        for i, m in enumerate(["model-a", "model-b"]):
            st, hdrs, data = call(c.base, "/v1/completions", completion(m))
            assert st == 200, data
            assert hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(i)
            assert json.loads(data)["model"] == m
    # A client's own header is replaced by the body's model.
    st, hdrs, _ = call(c.base, "/v1/completions", completion("model-b"),
                       headers={"X-Gateway-Model-Name": "model-a"})
    assert st == 200 and hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(1)
    # No rule matches another model: 404 from the gateway.
    st, _, data = call(c.base, "/v1/completions", completion("model-c"))
    assert st == 404 and "no route" in json.loads(data)["error"]["message"]
    c.stop()


def test_request_without_body_goes_to_an_endpoint(procs, tmp_path):
    """GIE v1.5: a pool route's request with no body goes to a random
    endpoint (the model server answers it)."""
    c = V1(procs, tmp_path, ["m", "m"], rules=[(None, "pool-0")])
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", body=b"", headers={"Content-Length": "0"})
    r = conn.getresponse()
    body = r.read()
    # The simulator refuses the empty request itself (415: no JSON
    # content-type, as vLLM), which shows the request reached it.
    assert r.status == 415 and b"Unsupported Media Type" in body, body
    assert r.getheader("x-gateway-destination-endpoint-served") == c.endpoint(0)
    conn.close()
    c.stop()


def test_objective_by_llm_d_header(procs, tmp_path):
    """llm-d Router reads x-llm-d-inference-objective as well: a negative
    priority objective makes a request sheddable when the pool saturates;
    an objective of another pool does not apply."""
    docs = [OBJECTIVE.format(name="batch", priority=-1, pool="pool-0"),
            OBJECTIVE.format(name="other-pool", priority=-1, pool="pool-9")]
    c = V1(procs, tmp_path, ["m"], extra_docs=docs,
           sim_args=("--fixed-waiting", "50", "--fixed-kv-usage", "0.95"))
    deadline = time.time() + 5
    while True:
        st, _, data = call(c.base, "/v1/completions", completion("m"),
                           headers={"x-llm-d-inference-objective": "batch"})
        if st == 429 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert st == 429, data
    st, _, data = call(c.base, "/v1/completions", completion("m"),
                       headers={"x-gateway-inference-objective": "batch"})
    assert st == 429, data
    for h in ({}, {"x-llm-d-inference-objective": "other-pool"}):
        st, _, data = call(c.base, "/v1/completions", completion("m"), headers=h)
        assert st == 200, data
    c.stop()


def test_anthropic_errors_have_anthropic_shape(procs, tmp_path):
    """Errors the gateway itself answers on /v1/messages use Anthropic's
    error object, which Anthropic SDKs parse."""
    c = V1(procs, tmp_path, ["m"], rules=[("m", "pool-0")])
    st, _, data = call(c.base, "/v1/messages", raw=b"{not json")
    err = json.loads(data)
    assert st == 404 or st == 400, data
    st, _, data = call(c.base, "/v1/messages",
                       {"model": "unknown", "max_tokens": 5,
                        "messages": [{"role": "user", "content": "hi"}]})
    assert st == 404, data
    err = json.loads(data)
    assert err["type"] == "error" and err["error"]["type"] == "not_found_error", err
    assert err["error"]["message"]
    c.stop()


def metrics(c):
    st, _, data = call("http://%s:%d" % (c.admin_host, c.admin_port), "/metrics")
    assert st == 200
    return data.decode()


def sample(text, name, **labels):
    """The value of the series of family `name` with exactly these labels."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        lbl, val = line[len(name) + 1:].rsplit("} ", 1)
        got = ",".join(sorted(lbl.split('",'))).replace('"', "")
        if got == want.replace('"', ""):
            return float(val)
    return None


def test_metrics_with_gie_semantics(procs, tmp_path):
    """request_total counts requests parsed, admitted and scheduled;
    refused ones go to request_error_total with GIE's code names; streamed
    responses feed TTFT and TPOT histograms at the gateway; the priority
    label is on the objective counters."""
    docs = [OBJECTIVE.format(name="batch", priority=-1, pool="pool-0"),
            OBJECTIVE.format(name="premium", priority=5, pool="pool-0")]
    c = V1(procs, tmp_path, ["m"], extra_docs=docs,
           sim_args=("--itl-ms", "5", "--ttft-ms", "20"))
    st, _, data = call(c.base, "/v1/completions",
                       dict(completion("m"), stream=True, max_tokens=8),
                       headers={"x-gateway-inference-objective": "premium"})
    assert st == 200, data
    st, _, _ = call(c.base, "/v1/completions", raw=b"{broken")
    assert st == 400
    text = metrics(c)
    assert sample(text, "inference_objective_request_total", model_name="m",
                  target_model_name="m", priority="5") == 1
    assert sample(text, "inference_objective_request_ttft_seconds_count", model_name="m",
                  target_model_name="m") == 1
    assert sample(text, "inference_objective_request_tpot_seconds_count", model_name="m",
                  target_model_name="m") == 1
    ttft = sample(text, "inference_objective_request_ttft_seconds_sum", model_name="m",
                  target_model_name="m")
    assert 0.015 < ttft < 2, ttft
    assert sample(text, "inference_objective_request_error_total", model_name="",
                  target_model_name="", priority="0", error_code="BadRequest") == 1
    assert sample(text, "inference_model_request_error_total", model_name="",
                  target_model_name="", error_code="BadRequest") == 1
    c.stop()


def test_metrics_shed_is_resource_exhausted(procs, tmp_path):
    docs = [OBJECTIVE.format(name="batch", priority=-1, pool="pool-0")]
    c = V1(procs, tmp_path, ["m"], extra_docs=docs,
           sim_args=("--fixed-waiting", "50", "--fixed-kv-usage", "0.95"))
    deadline = time.time() + 5
    while True:
        st, _, _ = call(c.base, "/v1/completions", completion("m"),
                        headers={"x-gateway-inference-objective": "batch"})
        if st == 429 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert st == 429
    text = metrics(c)
    assert sample(text, "inference_objective_request_error_total", model_name="m",
                  target_model_name="m", priority="-1", error_code="ResourceExhausted") >= 1
    assert sample(text, "inference_model_request_error_total", model_name="m",
                  target_model_name="m", error_code="InferencePoolResourceExhausted") >= 1
    # Refused requests are not in request_total.
    assert sample(text, "inference_objective_request_total", model_name="m",
                  target_model_name="m", priority="-1") in (None, 0)
    c.stop()


def stream_body(c, path, body):
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_agent_apis_through_the_gateway(procs, tmp_path, stream):
    """The Responses API, embeddings and Anthropic's Messages API go
    through the gateway (routed by the body's model, hashed for the prefix
    index) and their usage lands in the token histograms, whether it comes
    as prompt/completion tokens or input/output tokens, at the top of the
    answer or nested in an event (response.completed, message_start)."""
    c = V1(procs, tmp_path, ["m"], rules=[("m", "pool-0")])
    reqs = [("/v1/responses", {"model": "m", "input": "Write as if you were a critic",
                               "instructions": "Be brief.", "max_output_tokens": 6}),
            ("/v1/messages", {"model": "m", "max_tokens": 6, "system": "Be brief.",
                              "messages": [{"role": "user", "content": "Hi there"}]})]
    if not stream:
        reqs.append(("/v1/embeddings", {"model": "m", "input": ["a cat", "a dog"]}))
    out_total = in_total = 0.0
    for path, body in reqs:
        if stream:
            body = dict(body, stream=True)
        st, data = stream_body(c, path, body)
        assert st == 200, (path, data)
        if not stream:
            usage = json.loads(data)["usage"]
            in_total += usage.get("input_tokens", usage.get("prompt_tokens", 0))
            out_total += usage.get("output_tokens", usage.get("completion_tokens", 0))
        else:
            assert b"event: " in data, data[:200]
    deadline = time.time() + 3
    while True:
        text = metrics(c)
        got_in = sample(text, "inference_objective_input_tokens_sum", model_name="m",
                        target_model_name="m")
        got_out = sample(text, "inference_objective_output_tokens_sum", model_name="m",
                         target_model_name="m")
        if (got_out or 0) >= 12 or time.time() > deadline:
            break
        time.sleep(0.05)
    # Two generations of 6 tokens each, and inputs counted.
    assert got_out == 12, text
    assert got_in and got_in > 0
    if not stream:
        assert got_in == in_total and got_out == out_total
    c.stop()
