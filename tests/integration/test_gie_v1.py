"""What today's GIE and Gateway API users write (issue 9), end to end on
real binaries: InferencePool v1 passthrough, body-based routing,
objectives by header, requests without a body, the Anthropic error shape."""
import http.client
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import IG_BIN, free_port, unique_loopback, wait_http, wait_port
from tcppod import TcpPod
from test_gateway import SAN_ERRORS, assert_openai_error, call, write

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

REWRITE = """apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata:
  name: rw
spec:
  poolRef:
    group: inference.networking.k8s.io
    name: pool-0
  rules:
  - matches:
    - model: {{type: Exact, value: {model}}}
    targets:
    - modelRewrite: {target}
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


def test_v1_pool_refuses_requests_its_api_cannot_serve(procs, tmp_path):
    """GIE v1.5's request parser: a completion without a prompt, a chat
    without messages, Responses or embeddings without input get 400 from
    the gateway, before any endpoint is picked, and so does a Conversations
    request without items (llm-d Router's parser); token-id prompts and
    paths of no known API pass."""
    m = "meta-llama/Llama-3.1-8B-Instruct"
    c = V1(procs, tmp_path, [m])
    bad = [("/v1/completions", {"model": m, "max_tokens": 1}, "prompt"),
           ("/v1/completions", {"model": m, "prompt": ""}, "prompt"),
           ("/v1/completions", {"model": m, "prompt": [ ]}, "prompt"),
           ("/v1/chat/completions", {"model": m}, "messages"),
           ("/v1/chat/completions", {"model": m, "messages": []}, "messages"),
           ("/v1/chat/completions", {"model": m, "messages": "hi"}, "messages"),
           ("/v1/responses", {"model": m}, "input"),
           ("/v1/responses", {"model": m, "input": None}, "input"),
           ("/v1/embeddings", {"model": m}, "input"),
           ("/v1/conversations", {"model": m}, "items"),
           ("/v1/conversations", {"model": m, "items": []}, "items"),
           ("/v1/conversations", {"model": m, "items": "hi"}, "items"),
           # llm-d decodes items as [{type, role: string, content}].
           ("/v1/conversations", {"model": m, "items": ["hi"]}, "items"),
           ("/v1/conversations", {"model": m, "items": [[]]}, "items"),
           ("/v1/conversations", {"model": m, "items": [{"type": 5}]}, "items"),
           ("/v1/conversations", {"model": m, "items": [{"Role": ["user"]}]}, "items"),
           ("/v1/conversations", {"model": m, "items": [{"role": "user"}],
                                  "cache_salt": 7}, "items")]
    for path, body, field in bad:
        st, hdrs, data = call(c.base, path, body)
        err = assert_openai_error(st, data, 400)
        assert field in err["message"], (path, body, err)
        assert "x-gateway-destination-endpoint-served" not in hdrs, (path, body)
    for path, body in (("/v1/completions", {"model": m, "prompt": [1, 2, 3], "max_tokens": 1}),
                       ("/v1/chat/completions",
                        {"model": m, "messages": [{"role": "user", "content": "hi"}],
                         "max_tokens": 1}),
                       ("/tokenize", {"model": m, "messages": [{"role": "user",
                                                               "content": "hi"}]})):
        st, hdrs, data = call(c.base, path, body)
        assert st == 200, (path, data)
        assert hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(0)
    # Items: the request goes to a pod (the simulator, like vLLM, has no
    # Conversations API and answers 404 itself).
    for items in ([{"type": "message", "role": "user", "content": "hi"}],
                  [None, {"role": None, "content": [{"type": "input_text"}], "other": 1}]):
        st, hdrs, data = call(c.base, "/v1/conversations", {"model": m, "items": items})
        assert hdrs.get("x-gateway-destination-endpoint-served") == c.endpoint(0), (st, data)
    c.stop()


def test_passthrough_parser_sends_the_body_as_it_came(procs, tmp_path):
    """llm-d Router's passthrough-parser: the picker reads nothing of the
    body, so no API check refuses it, no rewrite changes its model, and a
    body that is not JSON goes to a pod (which answers for itself)."""
    m = "meta-llama/Llama-3.1-8B-Instruct"
    cfg = os.path.join(str(tmp_path), "picker.yaml")
    write(cfg, "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
               "kind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n"
               "- type: passthrough-parser\nparser:\n  pluginRef: passthrough-parser\n")
    c = V1(procs, tmp_path, [m], extra_docs=[REWRITE.format(model="alias", target=m)],
           gw_args=("--picker-config", cfg))
    for path, raw in (("/v1/completions", b"not json at all"),
                      ("/v1/chat/completions", b'{"model": "alias"}'),
                      ("/v1/completions", b'{"model": 7, "prompt": "x"}')):
        st, hdrs, data = call(c.base, path, raw=raw)
        # The simulator's own answer (the gateway's refusal names no
        # endpoint it served).
        assert hdrs.get("x-gateway-destination-endpoint-served") == c.endpoint(0), (
            path, raw, st, data)
        assert b"must have" not in data, data
    # The rewrite alias -> m does not apply: the simulator, which serves
    # m only, is asked for "alias" itself and refuses it.
    st, _, data = call(c.base, "/v1/completions",
                       raw=json.dumps({"model": m, "prompt": "hi", "max_tokens": 1}).encode())
    assert st == 200 and json.loads(data)["model"] == m, data
    st, _, data = call(c.base, "/v1/completions",
                       raw=json.dumps({"model": "alias", "prompt": "hi",
                                       "max_tokens": 1}).encode())
    assert st == 404 and b"alias" in data, (st, data)
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
    # No rule matches another model: 404 from the gateway; nor a body
    # without a model (GIE's body-based router sets no header then).
    for body in (completion("model-c"), {"prompt": "no model"}):
        st, _, data = call(c.base, "/v1/completions", body)
        assert st == 404 and "no route" in json.loads(data)["error"]["message"]
    # An empty model is none either: the router leaves the headers as
    # they came (GIE v1.4-v1.5), so the client's own header routes it.
    st, hdrs, _ = call(c.base, "/v1/completions", completion(""),
                       headers={"X-Gateway-Model-Name": "model-b"})
    assert hdrs.get("x-gateway-destination-endpoint-served") == c.endpoint(1), (st, hdrs)
    # A body that is not JSON has no model to route by: 400, as GIE's
    # body-based router refuses it ("failed to parse request body").
    for raw in (b"not json", b'["model-a"]', b'{"model": "model-a"'):
        st, _, data = call(c.base, "/v1/completions", raw=raw)
        err = assert_openai_error(st, data, 400)
        assert "failed to parse request body" in err["message"], err
    # An empty chunked body is no body to the router: the 404 again.
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", body=iter([]), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    assert r.status == 404 and b"no route" in data, (r.status, data)
    c.stop()


BBR_CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels:
    inference.networking.k8s.io/bbr-managed: "{managed}"
data:
  baseModel: {base}
  adapters: |
{adapters}
"""


def base_route(rules):
    """An HTTPRoute whose rules match X-Gateway-Base-Model-Name, as GIE's
    inferencepool chart writes them with experimentalHttpRoute.baseModel."""
    out = ["apiVersion: gateway.networking.k8s.io/v1", "kind: HTTPRoute", "metadata:",
           "  name: route", "spec:", "  parentRefs:", "  - name: gw", "  rules:"]
    for base, pool in rules:
        out += ["  - backendRefs:", "    - group: inference.networking.k8s.io",
                "      kind: InferencePool", "      name: %s" % pool, "    matches:",
                "    - path: {type: PathPrefix, value: /}", "      headers:",
                "      - type: Exact", "        name: X-Gateway-Base-Model-Name",
                "        value: %s" % base]
    return "\n".join(out) + "\n"


def test_body_based_routing_by_base_model(procs, tmp_path):
    """GIE v1.3-v1.5's body-based router also sets X-Gateway-Base-Model-Name:
    the model itself when a ConfigMap labelled
    inference.networking.k8s.io/bbr-managed names it as baseModel, the base
    of a LoRA adapter its `adapters` list; routes match it to send a base
    model and all its adapters to one pool (GIE's multi-pool guide)."""
    docs = [BBR_CONFIGMAP.format(name="qwen", managed="true", base="Qwen/Qwen3-32B",
                                 adapters="    - food-review-1\n    - ' cad-fabricator '"),
            # A second ConfigMap for the same base model: more adapters.
            BBR_CONFIGMAP.format(name="qwen-more", managed="true", base="Qwen/Qwen3-32B",
                                 adapters="    - movie-critique"),
            BBR_CONFIGMAP.format(name="deepseek", managed="true", base="deepseek/r1",
                                 adapters="    - ski-resorts"),
            # Not labelled "true": not read.
            BBR_CONFIGMAP.format(name="not-managed", managed="false", base="Qwen/Qwen3-32B",
                                 adapters="    - not-routed")]
    c = V1(procs, tmp_path, ["Qwen/Qwen3-32B", "deepseek/r1"],
           rules=None, extra_docs=docs,
           sim_args=("--enable-lora", "--max-loras", "4", "--lora-modules",
                     "food-review-1=/a", "cad-fabricator=/b", "movie-critique=/c",
                     "ski-resorts=/d"))
    # V1 wrote a catch-all route to pool-0; replace it with the base-model
    # routes and let the gateway reload the directory.
    path = os.path.join(c.dir, "all.yaml")
    text = open(path).read()
    old = route([(None, "pool-0")])
    assert old in text
    write(path, text.replace(old, base_route([("Qwen/Qwen3-32B", "pool-0"),
                                               ("deepseek/r1", "pool-1")])))
    c.gw.send_signal(1)
    deadline = time.time() + 10
    while True:
        st, hdrs, data = call(c.base, "/v1/completions", completion("ski-resorts"))
        if st == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    for _ in range(2):
        for model, i in (("Qwen/Qwen3-32B", 0), ("food-review-1", 0), ("cad-fabricator", 0),
                         ("movie-critique", 0), ("deepseek/r1", 1), ("ski-resorts", 1)):
            st, hdrs, data = call(c.base, "/v1/completions", completion(model))
            assert st == 200, (model, data)
            assert hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(i), model
            assert json.loads(data)["model"] == model
    # A model no ConfigMap knows (nor one of an unlabelled ConfigMap) has
    # no base model: no route matches. A client's own header does not
    # route it: the router's value replaces it, or removes it.
    for model, hdrs in (("other", {}), ("not-routed", {}),
                        ("other", {"X-Gateway-Base-Model-Name": "Qwen/Qwen3-32B"})):
        st, _, data = call(c.base, "/v1/completions", completion(model), headers=hdrs)
        assert st == 404 and "no route" in json.loads(data)["error"]["message"], (model, data)
    st, hdrs, data = call(c.base, "/v1/completions", completion("ski-resorts"),
                          headers={"x-gateway-base-model-name": "Qwen/Qwen3-32B"})
    assert st == 200 and hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(1)
    c.stop()


def test_base_model_configmap_warnings(tmp_path):
    """A labelled ConfigMap GIE's router would refuse (no baseModel, adapters
    that are no YAML list) is named by `check` as a warning: it is a valid
    ConfigMap, only body-based routing ignores it."""
    path = os.path.join(str(tmp_path), "cm.yaml")
    write(path, "---\n".join([
        BBR_CONFIGMAP.format(name="ok", managed="true", base="base-a", adapters="    - x"),
        BBR_CONFIGMAP.format(name="nobase", managed="true", base="' '", adapters="    - y"),
        BBR_CONFIGMAP.format(name="badlist", managed="true", base="base-b",
                             adapters="    just-a-string")]))
    out = subprocess.run([IG_BIN, "check", "-f", path], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "data.baseModel" in text and "missing or empty" in text, text
    assert "data.adapters" in text and "YAML list" in text, text
    assert text.count("body-based routing ignores") == 2, text


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


def test_models_list_of_v1_pools(procs, tmp_path):
    """A v1 pool has no InferenceModels for the gateway to list: GET
    /v1/models has no body, so a route that takes it sends it to a pod,
    which lists its own models; routes that match only the body's model
    (X-Gateway-Model-Name) do not match it, and the gateway answers 404."""
    c = V1(procs, tmp_path, ["m"])
    st, hdrs, data = call(c.base, "/v1/models", method="GET")
    assert st == 200 and [m["id"] for m in json.loads(data)["data"]] == ["m"], data
    assert hdrs["x-gateway-destination-endpoint-served"] == c.endpoint(0)
    c.stop()
    c = V1(procs, os.path.join(str(tmp_path), "bbr"), ["m"], rules=[("m", "pool-0")])
    st, _, data = call(c.base, "/v1/models", method="GET")
    assert st == 404 and "no route" in json.loads(data)["error"]["message"], data
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


def sample(text, family, **labels):
    """The value of the series of `family` with exactly these labels."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if not line.startswith(family + "{"):
            continue
        lbl, val = line[len(family) + 1:].rsplit("} ", 1)
        got = ",".join(sorted(lbl.split('",'))).replace('"', "")
        if got == want.replace('"', ""):
            return float(val)
    return None


def test_metrics_with_gie_semantics(procs, tmp_path):
    """request_total counts requests parsed, admitted and scheduled;
    refused ones go to request_error_total with GIE's code names; streamed
    responses feed TTFT and TPOT histograms at the gateway; the priority
    label is on the objective's request_total, not on its errors."""
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
    # GIE v1.5's requestErrCounter has no priority label.
    assert sample(text, "inference_objective_request_error_total", model_name="",
                  target_model_name="", error_code="BadRequest") == 1
    assert sample(text, "inference_model_request_error_total", model_name="",
                  target_model_name="", error_code="BadRequest") == 1
    c.stop()


def test_metrics_llm_d_names(procs, tmp_path):
    """llm-d Router's names for the same figures (its docs/metrics.md,
    llm_d_epp_*), beside GIE's: the request families carry the flow's
    fairness_id (x-gateway-inference-fairness-id, or llm-d's
    x-llm-d-inference-fairness-id; default-flow without either) and the
    priority, TTFT a streaming label; the scheduler, plugin, pool and
    build families follow."""
    docs = [OBJECTIVE.format(name="premium", priority=5, pool="pool-0")]
    c = V1(procs, tmp_path, ["m"], extra_docs=docs,
           sim_args=("--itl-ms", "5", "--ttft-ms", "20"))
    for h in ({"x-llm-d-inference-fairness-id": "tenant-a",
               "x-gateway-inference-objective": "premium"},
              {"x-gateway-inference-fairness-id": "tenant-b"}, {}):
        st, _, data = call(c.base, "/v1/completions",
                           dict(completion("m"), stream=True, max_tokens=8,
                                stream_options={"include_usage": True}), headers=h)
        assert st == 200, data
    st, _, _ = call(c.base, "/v1/completions", raw=b"{broken",
                    headers={"x-gateway-inference-fairness-id": "tenant-b"})
    assert st == 400
    text = metrics(c)
    for fid, prio in (("tenant-a", "5"), ("tenant-b", "0"), ("default-flow", "0")):
        lbl = dict(model_name="m", target_model_name="m", fairness_id=fid, priority=prio)
        assert sample(text, "llm_d_epp_request_total", **lbl) == 1, (lbl, text)
        assert sample(text, "llm_d_epp_request_running", **lbl) == 0, lbl
        for fam in ("llm_d_epp_request_duration_seconds", "llm_d_epp_request_size_bytes",
                    "llm_d_epp_response_size_bytes", "llm_d_epp_request_input_tokens",
                    "llm_d_epp_request_output_tokens", "llm_d_epp_request_ntpot_seconds",
                    "llm_d_epp_request_streaming_tpot_seconds"):
            assert sample(text, fam + "_count", **lbl) == 1, (fam, lbl)
        assert sample(text, "llm_d_epp_request_ttft_seconds_count", streaming="true",
                      **lbl) == 1, lbl
    assert sample(text, "llm_d_epp_request_output_tokens_sum", model_name="m",
                  target_model_name="m", fairness_id="tenant-a", priority="5") == 8
    # A body that is no JSON is refused before its flow is known.
    assert sample(text, "llm_d_epp_request_error_total", model_name="", target_model_name="",
                  fairness_id="", priority="0", error_code="BadRequest") == 1
    assert plain(text, "llm_d_epp_scheduler_e2e_duration_seconds_count") == 3
    assert sample(text, "llm_d_epp_scheduler_attempts_total", status="success",
                  target_model_name="m", endpoint_name="pod-0", namespace="default",
                  port=str(c.sim_port)) == 3
    assert sample(text, "llm_d_epp_plugin_duration_seconds_count", extension_point="Picker",
                  plugin_type="max-score-picker", plugin_name="max-score-picker") == 3, text
    assert sample(text, "llm_d_epp_ready_endpoints", name="pool-0", namespace="default") == 1
    assert sample(text, "llm_d_epp_average_queue_size", name="pool-0",
                  namespace="default") is not None
    assert sample(text, "llm_d_epp_std_dev_kv_cache_utilization", name="pool-0",
                  namespace="default") == 0  # one endpoint: no spread
    assert sample(text, "llm_d_epp_per_endpoint_queue_size", name="pool-0",
                  namespace="default", model_server_endpoint="pod-0-rank-0") is not None
    version = subprocess.run([IG_BIN, "--version"], capture_output=True,
                             text=True, check=True).stdout.split()[-1]
    assert sample(text, "llm_d_epp_info", commit="", build_ref=version) == 1
    # GIE's names are still there.
    assert sample(text, "inference_objective_request_total", model_name="m",
                  target_model_name="m", priority="5") == 1
    c.stop()


def test_metrics_running_cached_tokens_and_ntpot(procs, tmp_path):
    """GIE v1.5's objective families: running_requests{model_name} counts a
    request from its dispatch until its response ends (summed over the
    workers); prompt_cached_tokens takes the usage's
    prompt_tokens_details.cached_tokens (none when the usage has none);
    normalized_time_per_output_token_seconds is the request's duration over
    its output tokens, and nothing for a response without usage."""
    c = V1(procs, tmp_path, ["m"],
           sim_args=("--enable-prompt-tokens-details", "--itl-ms", "20", "--ttft-ms", "20"))
    prompt = " ".join("word%d" % i for i in range(100))
    cached = []
    for _ in range(2):
        st, _, data = call(c.base, "/v1/completions", completion("m", prompt))
        assert st == 200, data
        details = json.loads(data)["usage"]["prompt_tokens_details"]
        cached.append(details and details["cached_tokens"])
    assert cached[0] is None and cached[1] > 0, cached
    # A stream held open: running while it lasts, back to 0 once it ended.
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions",
                 json.dumps(dict(completion("m", "a held stream"), stream=True,
                                 max_tokens=40)),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    r.read(10)
    running = sample(metrics(c), "inference_objective_running_requests", model_name="m")
    r.read()
    conn.close()
    assert running == 1
    text = metrics(c)
    assert sample(text, "inference_objective_running_requests", model_name="m") == 0
    assert sample(text, "inference_objective_prompt_cached_tokens_count", model_name="m",
                  target_model_name="m") == 1
    assert sample(text, "inference_objective_prompt_cached_tokens_sum", model_name="m",
                  target_model_name="m") == cached[1]
    assert sample(text, "inference_objective_prompt_cached_tokens_bucket", model_name="m",
                  target_model_name="m", le="128") == 1
    # Two responses with 5 output tokens; the stream had no usage.
    ntpot = "inference_objective_normalized_time_per_output_token_seconds"
    assert sample(text, ntpot + "_count", model_name="m", target_model_name="m") == 2
    total = sample(text, ntpot + "_sum", model_name="m", target_model_name="m")
    dur = sample(text, "inference_objective_request_duration_seconds_sum", model_name="m",
                 target_model_name="m")
    # 20 ms to the first token, 20 ms each after: about 20 ms a token.
    assert 2 * 0.015 < total < dur / 5, (total, dur)
    assert sample(text, ntpot + "_bucket", model_name="m", target_model_name="m",
                  le="0.001") == 0
    assert sample(text, ntpot + "_bucket", model_name="m", target_model_name="m",
                  le="10") == 2
    c.stop()


def test_metrics_sizes_and_streams_the_client_left(procs, tmp_path):
    """GIE v1.5's inference_objective_request_sizes / response_sizes (and
    v0.2's inference_model_* ones): a request's size is recorded with its
    count, also when the model server then fails it (server.go records it
    once the body is handled); latency and response size at the end of a
    response whatever its status, the model server's error answer too
    (handlers/response.go HandleResponseBody), NTPOT when it had output
    tokens: a stream the client closed early records none of them."""
    c = V1(procs, tmp_path, ["m"], sim_args=("--itl-ms", "20", "--ttft-ms", "5"))
    ok = json.dumps(completion("m")).encode()
    st, _, data = call(c.base, "/v1/completions", raw=ok)
    assert st == 200, data
    whole = len(data)
    failed = json.dumps(dict(completion("m"), prompt="fails")).encode()
    st, _, error = call(c.base, "/v1/completions", raw=failed,
                        headers={"x-sim-force-status": "500"})
    assert st == 500
    # A stream of 200 tokens (4 s) the client leaves after its first event.
    left = json.dumps(dict(completion("m"), stream=True, max_tokens=200)).encode()
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", left, {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    assert r.read1(65536).startswith(b"data: ")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    mt = dict(model_name="m", target_model_name="m")
    # The worker records one family after the other while /metrics is
    # rendered from another thread: a render may fall between two of them
    # (CI saw inference_objective's count at 3 and inference_model's at 2
    # in one page), so the wait is for every count asserted below.
    text = wait_metric(c, lambda t: sample(t, "inference_objective_request_total",
                                           priority="0", **mt) == 3 and
                       sample(t, "inference_objective_running_requests", model_name="m") == 0
                       and all(sample(t, fam + "_request_sizes_count", **mt) == 3
                               for fam in ("inference_objective", "inference_model")))
    text = metrics(c)  # read again: the page above may hold a count before its sum
    for fam in ("inference_objective", "inference_model"):
        assert sample(text, fam + "_request_sizes_count", **mt) == 3, (fam, text)
        assert sample(text, fam + "_request_sizes_sum", **mt) == \
            len(ok) + len(failed) + len(left), fam
        assert sample(text, fam + "_request_sizes_bucket", le="32768", **mt) == 3, fam
        # The whole answer and the model server's error answer; the
        # stream never ended.
        assert sample(text, fam + "_response_sizes_count", **mt) == 2, fam
        assert sample(text, fam + "_response_sizes_sum", **mt) == whole + len(error), fam
        assert sample(text, fam + "_request_duration_seconds_count", **mt) == 2, fam
        assert sample(text, fam + "_request_error_total", error_code="ModelServerError",
                      **mt) == 1, fam
    assert "# TYPE inference_objective_request_sizes histogram" in text
    assert "# TYPE inference_objective_response_sizes histogram" in text
    assert sample(text, "inference_objective_normalized_time_per_output_token_seconds_count",
                  **mt) == 1
    # The stream's first token was seen: its TTFT stays.
    assert sample(text, "inference_objective_request_ttft_seconds_count", **mt) == 1
    c.stop()


TESTING_PREFIX_PICKER = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: header-based-testing-filter
- type: prefix-cache-scorer
  parameters: {autoTune: false, blockSizeTokens: 16}
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: header-based-testing-filter
  - pluginRef: prefix-cache-scorer
"""


def plain(text, name):
    """The value of an unlabelled series."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ", 1)[1])
    return None


def test_metrics_scheduler_attempts_and_prefix_hit_bytes(procs, tmp_path):
    """scheduler_attempts_total counts each run of the picker: success
    with the picked pod's name, namespace and port, failure with those
    empty (GIE v1.5 RecordSchedulerAttempt); e2e latency counts both.
    prefix_indexer_hit_bytes takes the bytes of the prompt's prefix the
    picked endpoint holds (blocks of 16 tokens x 4 characters; the bytes
    after the last full block, hashed as one more block, count as many as
    there are)."""
    c = V1(procs, tmp_path, ["m"], extra_docs=[TESTING_PREFIX_PICKER])
    prompt = "x" * 800  # 12 whole blocks of 64 characters and a 32-byte tail
    for _ in range(3):
        st, _, data = call(c.base, "/v1/completions", completion("m", prompt),
                           headers={"test-epp-endpoint-selection": c.hosts[0]})
        assert st == 200, data
    # The testing filter keeps no endpoint: the picker fails, with GIE
    # v1.5's words (the director wrapping the profile handler's error).
    st, _, data = call(c.base, "/v1/completions", completion("m", prompt),
                       headers={"test-epp-endpoint-selection": "10.255.255.1"})
    assert st == 429, data
    assert json.loads(data)["error"]["message"] == (
        "failed to find target endpoint: failed to run scheduler profile 'default'"), data
    text = metrics(c)
    attempts = "inference_extension_scheduler_attempts_total"
    assert sample(text, attempts, status="success", target_model_name="m", pod_name="pod-0",
                  namespace="default", port=str(c.sim_port)) == 3, text
    assert sample(text, attempts, status="failure", target_model_name="m", pod_name="",
                  namespace="", port="") == 1, text
    assert plain(text, "inference_extension_scheduler_e2e_duration_seconds_count") == 4
    # Without the header (or with a blank one) GIE v1.5's testing filter
    # keeps no endpoint either.
    for h in ({}, {"test-epp-endpoint-selection": " "}):
        st, _, data = call(c.base, "/v1/completions", completion("m", prompt), headers=h)
        assert st == 429, data
    hit = "inference_extension_prefix_indexer_hit_bytes"
    assert plain(text, hit + "_count") == 3, text
    assert plain(text, hit + "_sum") == 2 * 800, text
    assert sample(text, hit + "_bucket", le="0") == 1
    assert sample(text, hit + "_bucket", le="512") == 1
    assert sample(text, hit + "_bucket", le="1024") == 3
    assert sample(text, hit + "_bucket", le="65536") == 3
    # The build: no commit recorded, the version as the build ref.
    version = subprocess.run([IG_BIN, "--version"], capture_output=True,
                             text=True, check=True).stdout.split()[-1]
    assert sample(text, "inference_extension_info", commit="", build_ref=version) == 1
    assert "# TYPE inference_extension_info gauge" in text
    c.stop()


NAMED_PLUGINS_PICKER = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- name: only-hinted
  type: header-based-testing-filter
- name: prefix
  type: prefix-cache-scorer
  parameters: {autoTune: false, blockSizeTokens: 16}
- type: queue-scorer
- name: best
  type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: only-hinted
  - pluginRef: prefix
    weight: 2
  - pluginRef: queue-scorer
  - pluginRef: best
"""


def test_metrics_plugin_durations(procs, tmp_path):
    """inference_extension_plugin_duration_seconds (GIE's
    PluginProcessingLatencies): one observation per plugin a schedule ran,
    labelled with its extension point, type and configured name, in GIE's
    buckets (0.1 ms to 100 ms). A schedule whose filter left nothing ran
    the filter alone."""
    c = V1(procs, tmp_path, ["m"], extra_docs=[NAMED_PLUGINS_PICKER])
    for _ in range(3):
        st, _, data = call(c.base, "/v1/completions", completion("m", "x" * 800),
                           headers={"test-epp-endpoint-selection": c.hosts[0]})
        assert st == 200, data
    st, _, data = call(c.base, "/v1/completions", completion("m", "x"),
                       headers={"test-epp-endpoint-selection": "10.255.255.1"})
    assert st == 429, data
    text = metrics(c)
    fam = "inference_extension_plugin_duration_seconds"
    assert "# TYPE %s histogram" % fam in text
    want = [("Filter", "header-based-testing-filter", "only-hinted", 4),
            ("Scorer", "prefix-cache-scorer", "prefix", 3),
            ("Scorer", "queue-scorer", "queue-scorer", 3),
            ("Picker", "max-score-picker", "best", 3)]
    for point, ptype, name, n in want:
        lbl = dict(extension_point=point, plugin_type=ptype, plugin_name=name)
        assert sample(text, fam + "_count", **lbl) == n, (lbl, text)
        assert sample(text, fam + "_bucket", le="0.1", **lbl) == n, lbl
        assert sample(text, fam + "_bucket", le="+Inf", **lbl) == n, lbl
        assert 0 < sample(text, fam + "_sum", **lbl) < 0.1 * n, lbl
    assert len([line for line in text.splitlines()
                if line.startswith(fam + "_count{")]) == len(want), text
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
                  target_model_name="m", error_code="ResourceExhausted") >= 1
    assert sample(text, "inference_model_request_error_total", model_name="m",
                  target_model_name="m", error_code="InferencePoolResourceExhausted") >= 1
    # Refused requests are not in request_total.
    assert sample(text, "inference_objective_request_total", model_name="m",
                  target_model_name="m", priority="-1") in (None, 0)
    c.stop()


def wait_metric(c, pred, timeout=5.0):
    """The /metrics text once pred(text) holds."""
    deadline = time.time() + timeout
    while True:
        text = metrics(c)
        if pred(text):
            return text
        assert time.time() < deadline, text
        time.sleep(0.02)


def test_metrics_flow_control(procs, tmp_path):
    """GIE v1.5's flow-control families on infergate's worker queue: the
    pool's saturation while flow control is on; queue_size and queue_bytes
    of a request while it waits, back to 0 when it leaves; the time in
    flow control by outcome (Dispatched after a wait or at once,
    RejectedCapacity, EvictedTTL); the enqueue step's time by outcome, for
    every request flow control saw (GIE enqueues each: one admitted at once
    is NotYetFinalized too); the dispatch cycles, one for a request
    admitted at once."""
    c = V1(procs, tmp_path, ["m"], sim_args=("--fixed-waiting", "10"),
           gw_args=("--flow-control", "--queue-timeout", "1000", "--queue-capacity", "1",
                    "--workers", "1"))
    sim = "http://%s:%d" % (c.hosts[0], c.sim_port)
    sat = "inference_extension_flow_control_pool_saturation"
    # waiting 10 over the detector's threshold of 5.
    wait_metric(c, lambda t: sample(t, sat, inference_pool="pool-0", namespace="default") == 2.0)
    body = completion("m")
    size = len(json.dumps(body).encode())
    flow = dict(fairness_id="tenant-a", priority="0", inference_pool="pool-0",
                namespace="default", model_name="m", target_model_name="m")
    hdrs = {"x-gateway-inference-fairness-id": "tenant-a"}
    out = []
    t = threading.Thread(target=lambda: out.append(call(c.base, "/v1/completions", body,
                                                        headers=hdrs)))
    t.start()
    qsize = "inference_extension_flow_control_queue_size"
    qbytes = "inference_extension_flow_control_queue_bytes"
    # The worker sets the two gauges one after the other: a scrape may
    # fall between them (ASan's pace made CI see it).
    wait_metric(c, lambda t: sample(t, qsize, **flow) == 1 and sample(t, qbytes, **flow) == size)
    # The queue holds one request: the next is refused, with llm-d
    # Router's reason header.
    st, rh, data = call(c.base, "/v1/completions", body, headers=hdrs)
    assert st == 429, data
    assert rh.get("x-llm-d-request-dropped-reason") == "rejected-saturated", rh
    time.sleep(0.2)  # the queued request waits at least this long
    st, _, data = call(sim, "/sim/state", {"waiting": 0})
    assert st == 200, data
    t.join()
    assert out[0][0] == 200, out
    cycles = "inference_extension_flow_control_dispatch_cycle_duration_seconds_count"
    # The queue is empty: its worker runs no more cycles of its own.
    before = plain(metrics(c), cycles)
    assert before >= 1
    # Unsaturated: admitted at once.
    st, rh, data = call(c.base, "/v1/completions", body, headers=hdrs)
    assert st == 200, data
    assert "x-llm-d-request-dropped-reason" not in rh
    text = metrics(c)
    assert plain(text, cycles) == before + 1
    assert sample(text, qsize, **flow) == 0
    assert sample(text, qbytes, **flow) == 0
    # The saturation is the last scrape's: one taken while the request
    # ran still counts its KV block (a CI run under ASan saw 1/7500).
    wait_metric(c, lambda t: sample(t, sat, inference_pool="pool-0", namespace="default") == 0)
    dur = "inference_extension_flow_control_request_queue_duration_seconds"
    assert sample(text, dur + "_count", outcome="Dispatched", **flow) == 2
    assert sample(text, dur + "_bucket", outcome="Dispatched", le="0.0001", **flow) == 1
    assert 0.2 <= sample(text, dur + "_sum", outcome="Dispatched", **flow) < 2
    assert sample(text, dur + "_count", outcome="RejectedCapacity", **flow) == 1
    enq = "inference_extension_flow_control_request_enqueue_duration_seconds"
    # The queued request and the one admitted at once.
    assert sample(text, enq + "_count", fairness_id="tenant-a", priority="0",
                  outcome="NotYetFinalized") == 2
    assert sample(text, enq + "_count", fairness_id="tenant-a", priority="0",
                  outcome="RejectedCapacity") == 1
    # Saturated again: a client that leaves while its request waits, then
    # a request that waits longer than the queue timeout.
    st, _, data = call(sim, "/sim/state", {"waiting": 10})
    assert st == 200, data
    wait_metric(c, lambda t: sample(t, sat, inference_pool="pool-0", namespace="default") == 2.0)
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", json.dumps(body),
                 dict(hdrs, **{"Content-Type": "application/json"}))
    wait_metric(c, lambda t: sample(t, qsize, **flow) == 1)
    conn.close()
    text = wait_metric(c, lambda t: sample(t, qsize, **flow) == 0)
    assert sample(text, dur + "_count", outcome="EvictedContextCancelled", **flow) == 1
    st, rh, data = call(c.base, "/v1/completions", body, headers=hdrs)
    assert st == 503, data
    assert rh.get("x-llm-d-request-dropped-reason") == "rejected-ttl-expired", rh
    text = metrics(c)
    assert sample(text, dur + "_count", outcome="EvictedTTL", **flow) == 1
    assert 0.9 < sample(text, dur + "_sum", outcome="EvictedTTL", **flow) < 3
    assert sample(text, qsize, **flow) == 0
    assert sample(text, qbytes, **flow) == 0
    assert sample(text, enq + "_count", fairness_id="tenant-a", priority="0",
                  outcome="NotYetFinalized") == 4
    # llm-d Router's names for the same, and its count of each request
    # at its terminal outcome.
    ld = "llm_d_epp_flow_control_"
    assert sample(text, ld + "request_queue_duration_seconds_count", outcome="EvictedTTL",
                  **flow) == 1
    assert sample(text, ld + "queue_size", **flow) == 0
    assert sample(text, ld + "request_enqueue_duration_seconds_count", fairness_id="tenant-a",
                  priority="0", outcome="NotYetFinalized") == 4
    assert plain(text, ld + "dispatch_cycle_duration_seconds_count") == plain(text, cycles)
    pool = dict(priority="0", inference_pool="pool-0", namespace="default")
    for outcome, n in (("Dispatched", 2), ("RejectedCapacity", 1), ("EvictedTTL", 1),
                       ("EvictedContextCancelled", 1)):
        assert sample(text, ld + "requests_total", outcome=outcome, **pool) == n, outcome
    assert sample(text, ld + "pool_saturation", inference_pool="pool-0", namespace="default",
                  stage="effective") == 2.0
    c.stop()


def test_metrics_no_flow_control_families_without_it(procs, tmp_path):
    """Without flow control no request passes through it: no pool
    saturation, no queue series."""
    c = V1(procs, tmp_path, ["m"])
    st, _, data = call(c.base, "/v1/completions", completion("m"))
    assert st == 200, data
    text = metrics(c)
    assert "inference_extension_flow_control_pool_saturation" not in text
    assert "inference_extension_flow_control_queue_size{" not in text
    assert "inference_extension_flow_control_request_queue_duration_seconds_count{" not in text
    assert "llm_d_epp_flow_control_pool_saturation" not in text
    assert "llm_d_epp_flow_control_requests_total{" not in text
    c.stop()


POOL_FAMILIES = ("inference_pool_ready_pods", "inference_pool_average_queue_size",
                 "inference_pool_average_kv_cache_utilization",
                 "inference_pool_average_running_requests", "inference_pool_per_pod_queue_size",
                 "inference_pool_per_pod_kv_cache_utilization",
                 "inference_extension_flow_control_pool_saturation")


def series_lines(text, families):
    return [line for line in text.splitlines()
            if any(line.startswith(f + "{") for f in families)]


def test_pool_families_follow_the_configuration(procs, tmp_path):
    """The pool families are the current configuration's: once a reload
    removed a pool, none of its series is served (GIE's EPP serves one
    pool; its gauges would not outlive it either)."""
    c = V1(procs, tmp_path, ["a", "b"], rules=[("a", "pool-0"), ("b", "pool-1")],
           gw_args=("--flow-control",))
    st, _, data = call("http://%s:%d" % (c.hosts[1], c.sim_port), "/sim/state",
                       {"waiting": 6, "kv_usage": 0.7})
    assert st == 200, data
    text = wait_metric(c, lambda t: sample(t, "inference_pool_average_queue_size",
                                           name="pool-1", namespace="default") == 6)
    assert all(any('name="pool-1"' in l for l in series_lines(text, [f]))
               for f in POOL_FAMILIES[:-1]), text
    assert sample(text, "inference_extension_flow_control_pool_saturation",
                  inference_pool="pool-1", namespace="default") is not None, text
    docs = [GATEWAY.format(port=c.port), route([(None, "pool-0")]),
            POOL_V1.format(name="pool-0", port=c.sim_port),
            POD.format(name="pod-0", app="pool-0", ip=c.hosts[0])]
    write(os.path.join(c.dir, "all.yaml"), "---\n".join(docs))
    text = wait_metric(c, lambda t: 'result="success"} 1' in t)
    pool_1 = [l for l in series_lines(text, POOL_FAMILIES) if '"pool-1"' in l]
    assert pool_1 == [], pool_1
    assert sample(text, "inference_pool_ready_pods", name="pool-0", namespace="default") == 1
    c.stop()


def test_pools_of_one_name_in_two_namespaces(procs, tmp_path):
    """Two InferencePools named alike in two namespaces are two pools: the
    pool families carry the pool's namespace, so every series is written
    once, with its own pool's figures."""
    hosts = [unique_loopback(), unique_loopback()]
    port = free_port(hosts[0])
    sims = [procs.start("sim", "--host", h, "--port", port, "--served-model-name", "m",
                        name="sim") for h in hosts]
    for h, p in zip(hosts, sims):
        wait_http("http://%s:%d/health" % (h, port), proc=p)
    st, _, data = call("http://%s:%d" % (hosts[1], port), "/sim/state",
                       {"waiting": 7, "kv_usage": 0.6})
    assert st == 200, data
    host, admin_host = unique_loopback(), unique_loopback()
    gport, aport = free_port(host), free_port(admin_host)
    docs = [GATEWAY.format(port=gport)]
    for ns, h in zip(("team-a", "team-b"), hosts):
        docs.append(POOL_V1.format(name="pool", port=port).replace(
            "  name: pool\n", "  name: pool\n  namespace: %s\n" % ns))
        docs.append(POD.format(name="vllm-0", app="pool", ip=h).replace(
            "  name: vllm-0\n", "  name: vllm-0\n  namespace: %s\n" % ns))
    docs.append(route([(None, "pool")]).replace(
        "  name: route\n", "  name: route\n  namespace: team-a\n").replace(
        "  - name: gw", "  - name: gw\n    namespace: default"))
    d = os.path.join(str(tmp_path), "m")
    os.makedirs(d)
    write(os.path.join(d, "all.yaml"), "---\n".join(docs))
    gw = procs.start("gateway", "-f", d, "--bind", host, "--admin", "%s:%d" % (admin_host, aport),
                     "--flow-control", name="gateway")
    wait_http("http://%s:%d/healthz" % (admin_host, aport), proc=gw)
    admin = "http://%s:%d" % (admin_host, aport)
    queue = "inference_pool_per_pod_queue_size"
    deadline = time.time() + 5
    while True:
        text = call(admin, "/metrics")[2].decode()
        # Both pods scraped (under ASan team-a's first scrape can come
        # after team-b's page is read).
        if sample(text, queue, name="pool", namespace="team-b",
                  model_server_pod="vllm-0-rank-0") == 7 and all(
                sample(text, "inference_pool_ready_pods", name="pool", namespace=ns) == 1
                for ns in ("team-a", "team-b")):
            break
        assert time.time() < deadline, text
        time.sleep(0.05)
    lines = series_lines(text, POOL_FAMILIES)
    keys = [l.rsplit(" ", 1)[0] for l in lines]
    assert len(keys) == len(set(keys)), lines
    assert sample(text, queue, name="pool", namespace="team-a",
                  model_server_pod="vllm-0-rank-0") == 0, text
    for ns, want in (("team-a", 0), ("team-b", 7)):
        assert sample(text, "inference_pool_ready_pods", name="pool", namespace=ns) == 1, text
        assert sample(text, "inference_pool_average_queue_size", name="pool",
                      namespace=ns) == want, text
    sat = "inference_extension_flow_control_pool_saturation"
    assert sample(text, sat, inference_pool="pool", namespace="team-a") == 0, text
    assert sample(text, sat, inference_pool="pool", namespace="team-b") == 7 / 5, text


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


# ---- the model's name as asked, in the response ----

def sse_models(text):
    return [json.loads(line[6:])["model"] for line in text.split("\n")
            if line.startswith("data: {")]


def test_response_names_the_model_asked_for(procs, tmp_path):
    """GIE v1.5 (and llm-d Router) turn the response's "model" back into the
    name the client asked for when a rewrite (the header or an
    InferenceModelRewrite) changed it: a whole response, with its length
    made right, and every event of a stream. Without a rewrite nothing
    changes."""
    m = "meta-llama/Llama-3.1-8B-Instruct"
    c = V1(procs, tmp_path, [m], extra_docs=[REWRITE.format(model="alias", target=m)])
    # A rule that matches the model wins over the header (GIE v1.5's
    # director applies the rule after the header).
    for asked, hdrs in (("alias", {}), ("alias", {"x-gateway-model-name-rewrite": "no-such"}),
                        ("a", {"x-gateway-model-name-rewrite": m}),
                        ("a-much-longer-name-than-the-target-model-has-x", {
                            "x-gateway-model-name-rewrite": m})):
        st, h, data = call(c.base, "/v1/completions", dict(completion(asked)), headers=hdrs)
        assert st == 200, data
        assert json.loads(data)["model"] == asked  # parses: the length is right
        body = dict(completion(asked), stream=True,
                    stream_options={"include_usage": True})
        st, h, data = call(c.base, "/v1/completions", body, headers=hdrs)
        assert st == 200, data
        models = sse_models(data.decode())
        assert len(models) >= 6 and set(models) == {asked}, data
    st, _, data = call(c.base, "/v1/completions", completion(m))
    assert st == 200 and json.loads(data)["model"] == m
    c.stop()


def test_metrics_rewrite_decisions(procs, tmp_path):
    """model_rewrite_decisions_total counts each time an
    InferenceModelRewrite rule chose the target, with the rewrite
    object's name; the rewrite header and models no rule matches are no
    decisions."""
    m = "meta-llama/Llama-3.1-8B-Instruct"
    c = V1(procs, tmp_path, [m], extra_docs=[REWRITE.format(model="alias", target=m)])
    for _ in range(3):
        st, _, data = call(c.base, "/v1/completions", completion("alias"))
        assert st == 200, data
    st, _, data = call(c.base, "/v1/completions", completion("a"),
                       headers={"x-gateway-model-name-rewrite": m})
    assert st == 200, data
    st, _, data = call(c.base, "/v1/completions", completion(m))
    assert st == 200, data
    text = metrics(c)
    name = "inference_extension_model_rewrite_decisions_total"
    assert sample(text, name, model_rewrite_name="rw", model_name="alias",
                  target_model=m) == 3, text
    assert len([ln for ln in text.splitlines() if ln.startswith(name + "{")]) == 1, text
    c.stop()


class BytewisePod(TcpPod):
    """A pod that writes each answer a few bytes at a time (TCP_NODELAY,
    a pause between writes), so a "model" member reaches the gateway cut
    in every place; /metrics gets an empty vLLM page."""

    def __init__(self, host, port, body, sse=False, step=3):
        self.body, self.sse, self.step = body, sse, step
        super().__init__(host, port)

    def serve(self, c, n):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    got = c.recv(65536)
                    if not got:
                        return
                    buf += got
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(buf) < length:
                    buf += c.recv(65536)
                buf = buf[length:]
                if head.startswith(b"GET /metrics"):
                    page = b"vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n"
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" %
                              (len(page), page))
                    continue
                ctype = b"text/event-stream" if self.sse else b"application/json"
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                          % (ctype, len(self.body)))
                for i in range(0, len(self.body), self.step):
                    c.sendall(self.body[i:i + self.step])
                    time.sleep(0.002)
        except OSError:
            return
        finally:
            c.close()


def test_response_model_cut_between_pieces(procs, tmp_path):
    """A "model" member the pod's writes cut anywhere is still turned back;
    members of other names or values, and a key cut at the very end of a
    piece that turns out to be something else, pass unchanged."""
    target = "t-model"
    one = (b'{"id":"x","model":"t-model","choices":[],"note":"model","x":{"model": "t-model"},'
           b'"other":{"model":"t-model-2"},"models":"t-model","end":"\\"model\\":"}')
    events = b"".join(b'data: {"i":%d,"model":"t-model"}\n\n' % i for i in range(5)) + \
        b"data: [DONE]\n\n"
    for body, sse, step in ((one, False, 1), (one, False, 4), (events, True, 3),
                            (events, True, 7)):
        host = unique_loopback()
        port = free_port(host)
        pod = BytewisePod(host, port, body, sse=sse, step=step)
        d = os.path.join(str(tmp_path), "cut-%d-%d" % (step, sse))
        os.makedirs(d)
        gw_host = unique_loopback()
        gw_port = free_port(gw_host)
        write(os.path.join(d, "all.yaml"), "---\n".join([
            GATEWAY.format(port=gw_port), route([(None, "pool-0")]),
            POOL_V1.format(name="pool-0", port=port),
            POD.format(name="pod-0", app="pool-0", ip=host)]))
        gw = procs.start("gateway", "-f", d, "--bind", gw_host, "--workers", "1",
                         name="gateway")
        try:
            wait_port(gw_host, gw_port, proc=gw)
            st, _, data = call("http://%s:%d" % (gw_host, gw_port), "/v1/completions",
                               {"model": "asked", "prompt": "hi"},
                               headers={"x-gateway-model-name-rewrite": target})
            assert st == 200, data
            want = body.replace(b'"model":"t-model"', b'"model":"asked"') \
                       .replace(b'"model": "t-model"', b'"model": "asked"')
            assert data == want, (step, data)
        finally:
            gw.send_signal(15)
            gw.wait(timeout=15)
            pod.stop()
