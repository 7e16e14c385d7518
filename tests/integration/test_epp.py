"""`infergate epp` end to end, with grpcio playing Envoy (spec/extproc.md
§5, §9): simulators as the pool's model servers, the picker configured by
manifests, and ext_proc streams in FULL_DUPLEX_STREAMED and BUFFERED body
modes, over plain text and TLS; health on both ports; errors as
immediate responses."""
import base64
import json
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import ssl
import threading
import time

import pytest
from hyperframe.frame import (DataFrame, PingFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

grpc = pytest.importorskip("grpc")

import h2raw  # noqa: E402
import xproto  # noqa: E402
from conftest import free_port, rss_kib, unique_loopback, wait_http, wait_port  # noqa: E402
from fakepod import FakePod  # noqa: E402
from test_gateway import LORA, POD, POOL, SAN_ERRORS, call, model_yaml, write  # noqa: E402
from test_picker_gateway import QUEUE_ONLY_PICKER  # noqa: E402

PROCESS = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
HEALTH = "/grpc.health.v1.Health/Check"
EXTPROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
FULL_DUPLEX, BUFFERED = 4, 2

pb = xproto.ext_proc_pb2
core = xproto.base_pb2
hpb = xproto.health_pb2


class Picker:
    """Simulators, the manifests, and `infergate epp` serving them."""

    def __init__(self, procs, tmp_path, nsims=2, secure=False, extra=(), standalone=False,
                 host=None, docs=(), **popen_kw):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "manifests")
        os.makedirs(self.dir, exist_ok=True)
        self.sim_hosts = [unique_loopback() for _ in range(nsims)]
        self.target_port = free_port(self.sim_hosts[0])
        self.sims = [procs.start("sim", "--host", h, "--port", self.target_port,
                                 "--enable-lora", "--max-loras", "4", "--lora-modules", *LORA,
                                 name="sim") for h in self.sim_hosts]
        for h, p in zip(self.sim_hosts, self.sims):
            wait_http("http://%s:%d/health" % (h, self.target_port), proc=p)
        if standalone:  # llm-d's standalone picker: the flags stand for the pool
            extra = ("--endpoint-selector", "app=qwen-pool",
                     "--endpoint-target-ports", str(self.target_port)) + tuple(extra)
        else:
            write(os.path.join(self.dir, "pool.yaml"),
                  POOL.format(target_port=self.target_port))
        write(os.path.join(self.dir, "model.yaml"), model_yaml())
        for i, doc in enumerate(docs):
            write(os.path.join(self.dir, "extra-%d.yaml" % i), doc)
        write(os.path.join(self.dir, "pods.yaml"), "---\n".join(
            POD.format(i=i, ip=h) for i, h in enumerate(self.sim_hosts)))
        self.host = host or unique_loopback()
        self.grpc_port = free_port(self.host)
        self.health_port = free_port(self.host)
        self.metrics_port = free_port(self.host)
        # GIE's single-dash spellings, as a v0.2 Deployment writes them.
        args = ["epp", "-poolName", "qwen-pool", "-poolNamespace", "default",
                "-grpcPort", str(self.grpc_port), "-grpcHealthPort", str(self.health_port),
                "-metricsPort", str(self.metrics_port), "--bind", self.host,
                "-f", self.dir, "--workers", "2", "-refreshMetricsInterval", "50ms"]
        if not secure:
            args.append("-secureServing=false")
        self.proc = procs.start(*args, *extra, name="epp", **popen_kw)
        wait_port(self.host, self.grpc_port, proc=self.proc)
        wait_http("http://%s:%d/healthz" % (self.host, self.metrics_port), proc=self.proc)
        self.secure = secure
        self.channel = self.open_channel()

    def open_channel(self):
        target = "%s:%d" % (self.host, self.grpc_port)
        if not self.secure:
            return grpc.insecure_channel(target)
        pem = ssl.get_server_certificate((self.host, self.grpc_port)).encode()
        creds = grpc.ssl_channel_credentials(root_certificates=pem)
        return grpc.secure_channel(target, creds,
                                   options=[("grpc.ssl_target_name_override", "localhost")])

    def endpoint(self, i):
        return "%s:%d" % (self.sim_hosts[i], self.target_port)

    @property
    def endpoints(self):
        return {self.endpoint(i) for i in range(len(self.sim_hosts))}

    def log(self):
        return self.procs.output(self.proc)

    def wait_scraped(self):
        deadline = time.time() + 5
        while True:
            status, _, data = call("http://%s:%d" % (self.host, self.metrics_port), "/pools")
            eps = [ep for pool in json.loads(data)["pools"] for ep in pool["endpoints"]]
            if status == 200 and len(eps) == len(self.sim_hosts) and all(
                    e["metrics_age_ms"] is not None for e in eps):
                return
            assert time.time() < deadline, data
            time.sleep(0.05)

    def stop(self):
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=15)
        log = self.log()
        for s in SAN_ERRORS:
            assert s not in log, log
        assert rc == 0, log


class Stream:
    """One Process stream: messages are sent from a queue, answers read in
    order."""

    def __init__(self, channel, timeout=10):
        self.q = queue.Queue()
        call = channel.stream_stream(PROCESS, request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=pb.ProcessingResponse.FromString)
        self.responses = call(iter(self.q.get, None), timeout=timeout)

    def send(self, msg):
        self.q.put(msg)

    def close(self):
        self.q.put(None)

    def next(self):
        return next(self.responses)

    def rest(self):
        """Half-closes and reads what is left; the stream must end OK."""
        self.close()
        out = list(self.responses)
        assert self.responses.code() == grpc.StatusCode.OK
        return out


def headers_msg(path="/v1/completions", extra=(), eos=False, mode=FULL_DUPLEX, subset=None):
    hs = [(":method", "POST"), (":path", path), (":authority", "gw"), (":scheme", "http"),
          ("content-type", "application/json")] + list(extra)
    m = pb.ProcessingRequest()
    for k, v in hs:
        h = m.request_headers.headers.headers.add()
        h.key = k
        h.raw_value = v.encode()
    m.request_headers.end_of_stream = eos
    m.protocol_config.request_body_mode = mode
    m.protocol_config.response_body_mode = mode
    if subset is not None:
        st = m.metadata_context.filter_metadata["envoy.lb.subset_hint"]
        lv = st.fields["x-gateway-destination-endpoint-subset"].list_value
        lv.SetInParent()  # an empty list too
        for s in subset:
            lv.values.add().string_value = s
    return m


def body_msg(data, eos):
    m = pb.ProcessingRequest()
    m.request_body.body = data
    m.request_body.end_of_stream = eos
    return m


def seed_bytes(model="tweet-summary", prompt="Write as if you were a critic: San Francisco"):
    return json.dumps({"model": model, "prompt": prompt, "max_tokens": 100,
                       "temperature": 0}).encode()


def set_headers(common):
    return {h.header.key: (h.header.raw_value or h.header.value.encode()).decode()
            for h in common.header_mutation.set_headers}


def lb_endpoint(resp):
    st = resp.dynamic_metadata.fields["envoy.lb"].struct_value
    return st.fields["x-gateway-destination-endpoint"].string_value


def full_duplex(channel, body, chunks=3, extra=(), subset=None):
    """Envoy in FULL_DUPLEX_STREAMED: headers and every chunk without
    waiting; returns (headers answer, body bytes sent back, stream)."""
    s = Stream(channel)
    s.send(headers_msg(extra=extra, subset=subset))
    step = max(1, len(body) // chunks)
    parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
    for i, part in enumerate(parts):
        s.send(body_msg(part, i == len(parts) - 1))
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


def respond(s, status=200, body=b'{"usage":{"prompt_tokens":9,"completion_tokens":5}}',
            mode=FULL_DUPLEX):
    """The response path as Envoy sends it; returns the echoed body."""
    m = pb.ProcessingRequest()
    for k, v in ((":status", str(status)), ("content-type", "application/json")):
        h = m.response_headers.headers.headers.add()
        h.key = k
        h.raw_value = v.encode()
    s.send(m)
    r = s.next()
    assert r.WhichOneof("response") == "response_headers", r
    m = pb.ProcessingRequest()
    m.response_body.body = body
    m.response_body.end_of_stream = True
    s.send(m)
    r = s.next()
    assert r.WhichOneof("response") == "response_body", r
    if mode == FULL_DUPLEX:
        sr = r.response_body.response.body_mutation.streamed_response
        assert sr.end_of_stream
        return sr.body
    return None


@pytest.fixture
def picker(procs, tmp_path):
    p = Picker(procs, tmp_path)
    yield p
    p.channel.close()


def test_full_duplex_picks_and_rewrites(picker):
    """The seed request: the headers answer names one endpoint of the pool
    (header and envoy.lb metadata alike), the body comes back with the
    InferenceModel's target model, then the response path is echoed."""
    body = seed_bytes()
    first, out, s = full_duplex(picker.channel, body)
    common = first.request_headers.response
    hs = set_headers(common)
    ep = hs["x-gateway-destination-endpoint"]
    assert ep in picker.endpoints, hs
    assert lb_endpoint(first) == ep
    assert common.clear_route_cache
    sent = json.loads(out)
    assert sent["model"] == "tweet-summary-1"
    assert sent["prompt"] == json.loads(body)["prompt"]
    echoed = respond(s)
    assert json.loads(echoed)["usage"]["completion_tokens"] == 5
    s.rest()
    # The request and the usage the response path carried are in the
    # picker's metrics, under GIE's names.
    deadline = time.time() + 5
    while True:
        _, _, data = call("http://%s:%d" % (picker.host, picker.metrics_port), "/metrics")
        text = data.decode()
        lines = [l for l in text.splitlines() if l.startswith("inference_model_request_total{")
                 and 'model_name="tweet-summary"' in l and "tweet-summary-1" in l]
        if lines and lines[0].endswith(" 1"):
            break
        assert time.time() < deadline, text
        time.sleep(0.05)
    out = [l for l in text.splitlines() if l.startswith("inference_model_output_tokens_sum{")
           and 'model_name="tweet-summary"' in l]
    assert out and float(out[0].rsplit(" ", 1)[1]) == 5, out
    picker.stop()


def picker_metrics(p):
    _, _, data = call("http://%s:%d" % (p.host, p.metrics_port), "/metrics")
    return data.decode()


def series(text, name, **labels):
    """The value of the series of `name` with exactly these labels, any order."""
    want = sorted('%s="%s"' % kv for kv in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{"):
            lbl, val = line[len(name) + 1:].rsplit("} ", 1)
            if sorted(lbl.replace('",', '"\n').split("\n")) == want:
                return float(val)
    return None


def test_model_server_error_is_timed(picker):
    """GIE's response path times a response at the end of its stream
    whatever its status (v1.5 handlers/response.go HandleResponseBody): a
    model server's 500 counts a ModelServerError and records the latency
    and the response's size, as an answer does."""
    error = b'{"error":{"message":"boom","type":"InternalServerError","code":500}}'
    first, out, s = full_duplex(picker.channel, seed_bytes())
    assert respond(s, status=500, body=error) == error
    s.rest()
    mt = dict(model_name="tweet-summary", target_model_name="tweet-summary-1")
    deadline = time.time() + 5
    while True:
        text = picker_metrics(picker)
        if series(text, "inference_objective_request_error_total",
                  error_code="ModelServerError", **mt) == 1:
            break
        assert time.time() < deadline, text
        time.sleep(0.05)
    for fam in ("inference_objective", "inference_model"):
        assert series(text, fam + "_request_duration_seconds_count", **mt) == 1, (fam, text)
        assert series(text, fam + "_response_sizes_count", **mt) == 1, (fam, text)
        assert series(text, fam + "_response_sizes_sum", **mt) == len(error), (fam, text)
    picker.stop()


def test_full_duplex_large_body_rechunked(picker):
    """A 400 KB prompt in many chunks comes back whole, in chunks of at
    most 62000 bytes, the last with end_of_stream."""
    body = seed_bytes(prompt="x" * 400000)
    s = Stream(picker.channel)
    s.send(headers_msg())
    for i in range(0, len(body), 16384):
        s.send(body_msg(body[i:i + 16384], i + 16384 >= len(body)))
    first = s.next()
    assert first.WhichOneof("response") == "request_headers"
    out, sizes = b"", []
    while True:
        sr = s.next().request_body.response.body_mutation.streamed_response
        out += sr.body
        sizes.append(len(sr.body))
        if sr.end_of_stream:
            break
    assert max(sizes) <= 62000 and len(sizes) >= 7
    assert json.loads(out)["model"] == "tweet-summary-1"
    assert len(json.loads(out)["prompt"]) == 400000
    s.rest()
    picker.stop()


def test_rewritten_model_across_a_chunk_boundary(picker):
    """A 400 KB body whose model comes last, placed so that the boundary
    between the sixth and seventh chunk sent back falls inside the new
    model name: the body comes back byte for byte as the client's with
    only the model replaced (the picker sends it in parts, never spliced),
    in FULL_DUPLEX chunks and as BUFFERED's one body alike."""
    head, mid = b'{"max_tokens": 5, "prompt": "', b'", "model": '
    at = 6 * 62000 - 5  # where the new model's JSON string starts
    body = head + b"x" * (at - len(head) - len(mid)) + mid + b'"tweet-summary"}'
    want = body.replace(b'"tweet-summary"', b'"tweet-summary-1"')
    assert want.index(b'"tweet-summary-1"') == at

    s = Stream(picker.channel)
    s.send(headers_msg())
    for i in range(0, len(body), 65536):
        s.send(body_msg(body[i:i + 65536], i + 65536 >= len(body)))
    first = s.next()
    assert set_headers(first.request_headers.response)["content-length"] == str(len(want))
    chunks = []
    while not chunks or not sr.end_of_stream:
        sr = s.next().request_body.response.body_mutation.streamed_response
        chunks.append(sr.body)
    assert [len(c) for c in chunks[:-1]] == [62000] * 6, [len(c) for c in chunks]
    assert b"".join(chunks) == want
    s.rest()

    # BUFFERED: Envoy sends the body whole, in one message (§5.1).
    s = Stream(picker.channel)
    s.send(headers_msg(mode=BUFFERED))
    assert s.next().WhichOneof("response") == "request_headers"
    s.send(body_msg(body, True))
    common = s.next().request_body.response
    assert common.body_mutation.body == want
    assert set_headers(common)["content-length"] == str(len(want))
    s.rest()
    picker.stop()


def test_buffered_mode(picker):
    """BUFFERED (GIE v0.2 with Envoy): the headers get an empty answer, the
    body the pick with content-length and the rewritten body."""
    s = Stream(picker.channel)
    s.send(headers_msg(mode=BUFFERED))
    r = s.next()
    assert r.WhichOneof("response") == "request_headers"
    assert not r.request_headers.response.header_mutation.set_headers
    body = seed_bytes()
    s.send(body_msg(body, True))
    r = s.next()
    assert r.WhichOneof("response") == "request_body", r
    common = r.request_body.response
    hs = set_headers(common)
    assert hs["x-gateway-destination-endpoint"] in picker.endpoints
    new = common.body_mutation.body
    assert json.loads(new)["model"] == "tweet-summary-1"
    assert hs["content-length"] == str(len(new))
    assert lb_endpoint(r) == hs["x-gateway-destination-endpoint"]
    s.rest()
    picker.stop()


def test_no_body_picks_at_header_time(picker):
    s = Stream(picker.channel)
    s.send(headers_msg(path="/v1/models", eos=True))
    r = s.next()
    assert r.WhichOneof("response") in ("request_headers", "immediate_response"), r
    s.rest()
    picker.stop()


def test_errors_are_immediate_responses(picker):
    """Unknown model 404, body that is not JSON 400, a subset hint naming
    no endpoint of the pool 503: each an immediate_response with an OpenAI
    error body; nothing else follows on the stream."""
    for body, want in ((seed_bytes(model="no-such-model"), 404), (b"{not json", 400)):
        first, out, s = full_duplex(picker.channel, body)
        assert first.WhichOneof("response") == "immediate_response", first
        ir = first.immediate_response
        assert ir.status.code == want
        assert json.loads(ir.body)["error"]["code"] == want
        assert s.rest() == []
    first, _, s = full_duplex(picker.channel, seed_bytes(), subset=["10.255.255.1:8000"])
    assert first.immediate_response.status.code == 503, first
    s.rest()
    picker.stop()


def test_subset_hint_restricts_the_pick(picker):
    want = picker.endpoint(1)
    for _ in range(8):
        first, _, s = full_duplex(picker.channel, seed_bytes(),
                                  subset=[picker.sim_hosts[1]])
        assert set_headers(first.request_headers.response)[
            "x-gateway-destination-endpoint"] == want
        s.rest()
    picker.stop()


def test_subset_hint_as_a_string(picker):
    """The hint may be one comma-separated string (a proxy's
    header-to-metadata rule writes the client's header so), and a list's
    members may be such strings too, as GIE v1.6's lwepp reads them (PR
    #2935): each names the endpoints it lists; one naming none of the
    pool's is a 503, as such a list is."""
    def pick(value):
        s = Stream(picker.channel)
        m = headers_msg()
        v = m.metadata_context.filter_metadata["envoy.lb.subset_hint"].fields[
            "x-gateway-destination-endpoint-subset"]
        if isinstance(value, str):
            v.string_value = value
        else:
            v.list_value.extend(value)
        s.send(m)
        s.send(body_msg(seed_bytes(), True))
        first = s.next()
        s.close()
        if kind(first) == "immediate_response":
            return first.immediate_response.status.code
        assert kind(first) == "request_headers", first
        return set_headers(first.request_headers.response)[DEST]

    h0, h1 = picker.sim_hosts
    for value in (h1, " %s , 10.255.255.1:8000" % picker.endpoint(1),
                  ["10.255.255.1, %s" % h1]):
        assert {pick(value) for _ in range(6)} == {picker.endpoint(1)}, value
    both = {pick("%s,%s" % (h0, h1)) for _ in range(40)}
    assert both == picker.endpoints, both
    assert pick("10.255.255.1:8000") == 503
    assert pick(" , ") == 503
    picker.stop()


def test_subset_hint_ignored_when_disabled(procs, tmp_path):
    """--disable-endpoint-subset-filter (GIE v1.5 server/options.go,
    requestcontrol/candidates.go Locate): the hint is not read, so one
    naming no endpoint of the pool still gets a pick, as does an empty one."""
    p = Picker(procs, tmp_path, nsims=1, extra=("--disable-endpoint-subset-filter",))
    for subset in (["10.255.255.1:8000"], []):
        first, _, s = full_duplex(p.channel, seed_bytes(), subset=subset)
        assert first.WhichOneof("response") == "request_headers", first
        assert set_headers(first.request_headers.response)[
            "x-gateway-destination-endpoint"] == p.endpoint(0)
        s.close()
    p.stop()


def test_sheddable_request_without_candidates_is_shed(procs, tmp_path):
    """GIE v1.5's director admits a request before it looks for candidates
    (HandleRequest: Admit, then Locate), and the legacy admission measures
    the saturation of the candidates the subset hint leaves, which is 1.0
    for none: a sheddable request whose hint names no endpoint of the
    pool, or for a pool with no pods, is shed (429); a critical one gets
    503 there. With candidates that have room, the sheddable one is
    picked."""
    p = Picker(procs, tmp_path, docs=[model_yaml(criticality="Sheddable", name="batch",
                                                 obj="inferencemodel-batch")])
    p.wait_scraped()

    def status(model, subset):
        first, _, s = full_duplex(p.channel, seed_bytes(model=model), subset=subset)
        s.rest()
        if kind(first) == "immediate_response":
            return first.immediate_response.status.code
        return set_headers(first.request_headers.response)[DEST]

    assert status("batch", [p.sim_hosts[0]]) == p.endpoint(0)
    assert status("batch", ["10.255.255.1:8000"]) == 429
    assert status("batch", []) == 429
    assert status("tweet-summary", ["10.255.255.1:8000"]) == 503
    write(os.path.join(p.dir, "pods.yaml"), "")
    deadline = time.time() + 10
    while True:
        _, _, data = call("http://%s:%d" % (p.host, p.metrics_port), "/pools")
        if not [e for pool in json.loads(data)["pools"] for e in pool["endpoints"]]:
            break
        assert time.time() < deadline, data
        time.sleep(0.1)
    assert status("batch", None) == 429
    assert status("tweet-summary", None) == 503
    p.stop()


def health_statuses(host, port, names):
    ch = grpc.insecure_channel("%s:%d" % (host, port))
    check = ch.unary_unary(HEALTH, request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=hpb.HealthCheckResponse.FromString)
    try:
        return [check(hpb.HealthCheckRequest(service=svc), timeout=5).status for svc in names]
    finally:
        ch.close()


def test_health_on_both_ports(picker):
    """Every service name is answered, on both ports: GIE v0.2's Deployment
    probes `inference-extension` on 9003 and its server answers SERVING for
    any name once the pool is synced (GIE v1.5 without leader election
    too); an unknown name must not fail the probe with NOT_FOUND."""
    names = ("", EXTPROC_SERVICE, "liveness", "readiness", "inference-extension",
             "no.such.Service")
    for port in (picker.health_port, picker.grpc_port):
        assert health_statuses(picker.host, port, names) == [1] * len(names)
    picker.stop()


def test_health_list_on_both_ports(picker):
    """grpc.health.v1.Health/List: the health port lists what GIE v1.5's
    health server lists without leader election (cmd/epp/runner/
    health.go), the ext_proc service; the ext_proc port what grpc-go's
    stock health service there lists, "" and the ext_proc service. Each
    SERVING once the pool is known, as Check answers."""
    for port, want in ((picker.health_port, {EXTPROC_SERVICE: 1}),
                       (picker.grpc_port, {"": 1, EXTPROC_SERVICE: 1})):
        ch = grpc.insecure_channel("%s:%d" % (picker.host, port))
        try:
            lst = ch.unary_unary("/grpc.health.v1.Health/List",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=hpb.HealthListResponse.FromString)
            got = lst(hpb.HealthListRequest(), timeout=5)
        finally:
            ch.close()
        assert {k: v.status for k, v in got.statuses.items()} == want, (port, got)
    picker.stop()


class Watch:
    """One grpc.health.v1.Health/Watch call; its messages read by a thread
    into a queue, None once the call ended (its status in .code)."""

    def __init__(self, host, port, service):
        self.channel = grpc.insecure_channel("%s:%d" % (host, port))
        call = self.channel.unary_stream(
            "/grpc.health.v1.Health/Watch", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=hpb.HealthCheckResponse.FromString)
        self.call = call(hpb.HealthCheckRequest(service=service), timeout=60)
        self.q = queue.Queue()
        self.code = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for m in self.call:
                self.q.put(m.status)
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code = e.code()
        self.q.put(None)

    def next(self, timeout=10):
        return self.q.get(timeout=timeout)

    def quiet(self, secs):
        """Nothing more for secs seconds."""
        try:
            return self.q.get(timeout=secs) is None and False
        except queue.Empty:
            return True

    def close(self):
        self.call.cancel()
        self.channel.close()


def test_health_watch_follows_readiness(picker):
    """Watch, as grpc-go's health server answers it (GIE's and llm-d's
    pickers register that one): the status Check would give, at once, then
    each change, on both ports; the call stays open meanwhile. The pool's
    manifest taken away makes the picker not ready (NOT_SERVING), put back
    ready again; "liveness" stays SERVING. At SIGTERM the ext_proc port's
    calls get NOT_SERVING and end (OK), so the drain does not wait for
    them: the picker is gone long before its 30 s drain timeout."""
    watches = [Watch(picker.host, port, svc)
               for port in (picker.health_port, picker.grpc_port)
               for svc in ("", EXTPROC_SERVICE, "liveness")]
    assert [w.next() for w in watches] == [1] * 6
    assert all(w.quiet(0.5) for w in watches)
    pool = os.path.join(picker.dir, "pool.yaml")
    text = open(pool).read()
    os.remove(pool)
    for w in watches:
        if w not in (watches[2], watches[5]):
            assert w.next(timeout=10) == 2
    write(pool, text)
    for w in watches:
        if w not in (watches[2], watches[5]):
            assert w.next(timeout=10) == 1
    assert watches[2].quiet(0.1) and watches[5].quiet(0.1)
    # Canceled by the client: the picker lets the call go.
    watches[0].close()
    t0 = time.monotonic()
    picker.proc.send_signal(signal.SIGTERM)
    for w in watches[3:]:
        got = []
        while True:
            m = w.next(timeout=10)
            if m is None:
                break
            got.append(m)
        assert got == [2] and w.code == grpc.StatusCode.OK, (got, w.code)
    picker.stop()
    assert time.monotonic() - t0 < 10
    for w in watches:
        w.close()


def test_unknown_method_unimplemented(picker):
    call = picker.channel.unary_unary("/no.Such/Method")
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    picker.stop()


def test_emfile_backs_off(procs, tmp_path):
    """Out of descriptors, the picker's gRPC port stops accepting for a
    back-off (one log line per interval at most) instead of spinning on a
    listener that stays readable, and accepts again once some are free:
    the gateway's test_abuse.py::test_emfile_backs_off, on `infergate epp`."""
    from test_abuse import CPU_SLACK, cpu_seconds, open_fds
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    p = Picker(procs, tmp_path, preexec_fn=limit)
    pid = p.proc.pid
    clients = [socket.create_connection((p.host, p.grpc_port), timeout=5) for _ in range(300)]
    try:
        deadline = time.monotonic() + 5
        while open_fds(pid) < 250 and time.monotonic() < deadline:
            time.sleep(0.05)
        fds = open_fds(pid)
        assert fds >= 250, "the picker holds only %d descriptors" % fds
        time.sleep(0.3)
        off, cpu0 = len(p.log()), cpu_seconds(pid)
        time.sleep(3.0)
        cpu = cpu_seconds(pid) - cpu0
        lines = [ln for ln in p.log()[off:].splitlines() if "accept" in ln.lower()]
        print("\nEMFILE: %d descriptors, picker CPU %.2f s in 3 s, %d accept lines (first: %r)"
              % (fds, cpu, len(lines), lines[:1]))
        assert cpu < 0.3 * CPU_SLACK, "picker CPU %.2f s in 3 s at EMFILE" % cpu
        # At most a line per five seconds and worker (two workers).
        assert len(lines) <= 2 * 2, lines
        assert any("pausing new connections" in ln for ln in p.log().splitlines()), p.log()
    finally:
        for s in clients:
            s.close()
    # Accepting resumes: a health check on the gRPC port within 2 s.
    t0 = time.monotonic()
    status = None
    while time.monotonic() - t0 < 2.0 and status != 1:
        ch = grpc.insecure_channel("%s:%d" % (p.host, p.grpc_port))
        check = ch.unary_unary(HEALTH, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=hpb.HealthCheckResponse.FromString)
        try:
            status = check(hpb.HealthCheckRequest(service=""), timeout=1).status
        except grpc.RpcError as e:
            status = e.code()
            time.sleep(0.05)
        ch.close()
    took = time.monotonic() - t0
    print("EMFILE: first health check after the clients left: %s in %.2f s" % (status, took))
    assert status == 1 and took < 2.0, (status, took)
    p.stop()


def test_tls_by_default(procs, tmp_path):
    """Without -secureServing=false the gRPC port speaks TLS (ALPN h2) with
    a self-signed certificate; the health port stays plain text."""
    p = Picker(procs, tmp_path, secure=True)
    first, out, s = full_duplex(p.channel, seed_bytes())
    assert set_headers(first.request_headers.response)[
        "x-gateway-destination-endpoint"] in p.endpoints
    s.rest()
    ch = grpc.insecure_channel("%s:%d" % (p.host, p.health_port))
    check = ch.unary_unary(HEALTH, request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=hpb.HealthCheckResponse.FromString)
    assert check(hpb.HealthCheckRequest(service=""), timeout=5).status == 1
    ch.close()
    p.stop()


def test_many_concurrent_streams_spread(picker):
    """Requests in parallel on one connection: all answered, both
    endpoints used (the picker counts what it dispatched)."""
    picker.wait_scraped()
    seen, errors = [], []

    def one():
        try:
            first, out, s = full_duplex(picker.channel, seed_bytes())
            seen.append(set_headers(first.request_headers.response)[
                "x-gateway-destination-endpoint"])
            time.sleep(0.2)  # held: in flight on its endpoint meanwhile
            respond(s)
            s.rest()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=one) for _ in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(seen) == 12 and set(seen) == picker.endpoints
    picker.stop()


def test_flags_errors(procs, tmp_path):
    p = procs.start("epp", "-f", str(tmp_path), name="epp")
    assert p.wait(timeout=10) == 2
    assert "-poolName" in procs.output(p)
    # Values infergate cannot honour are refused by name, never ignored.
    for extra, words in ((["--pool-group", "example.com"], "is not an InferencePool group"),
                         (["--total-queued-requests-metric", "sglang:num_queue_reqs"],
                          "vllm:num_requests_waiting"),
                         (["--model-server-metrics-scheme", "https"], "http only"),
                         (["--model-server-metrics-path", "/stats"], "/metrics"),
                         (["--zap-log-level", "loud"], "invalid value"),
                         (["--config-text", "x", "--config-file", "y"], "not both"),
                         (["--no-such-flag"], "unknown flag")):
        p = procs.start("epp", "--pool-name", "qwen-pool", "-f", str(tmp_path), *extra,
                        name="epp")
        assert p.wait(timeout=10) == 2, extra
        out = procs.output(p)
        assert words in out, (extra, out)




def test_grpc_port_in_use_fails_start(procs, tmp_path):
    """A picker that cannot listen on its gRPC port exits 1 and says why, as
    on the health and metrics ports: it must not run on, answering health
    checks, while nothing serves ext_proc (the port was held by another
    process and the picker kept running)."""
    host = unique_loopback()
    held = socket.socket()
    held.bind((host, 0))
    held.listen()
    port = held.getsockname()[1]
    try:
        d = tmp_path / "m"
        d.mkdir()
        write(str(d / "pool.yaml"), POOL.format(target_port=8000))
        p = procs.start("epp", "-poolName", "qwen-pool", "-f", str(d), "--bind", host,
                        "-grpcPort", port, "-grpcHealthPort", free_port(host),
                        "-metricsPort", free_port(host), "-secureServing=false", name="epp")
        assert p.wait(timeout=10) == 1
        out = procs.output(p)
        assert "%s:%d" % (host, port) in out and "in use" in out, out
        assert "not starting" in out, out
    finally:
        held.close()


GATEWAY_YAML = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  gatewayClassName: infergate
  listeners:
  - name: http
    protocol: HTTP
    port: {port}
"""


def test_gateways_in_the_manifests_open_no_port(procs, tmp_path):
    """The picker reads the pool from a directory that may also hold the
    Gateways (the seed's does): their listeners are the proxy's, so the
    picker opens none, at start or on a reload."""
    d = os.path.join(str(tmp_path), "manifests")
    os.makedirs(d)
    host = unique_loopback()  # the picker's, where the Gateways' ports would be
    first, second = free_port(host), free_port(host)
    write(os.path.join(d, "gw.yaml"), GATEWAY_YAML.format(name="gw", port=first))
    p = Picker(procs, tmp_path, host=host)

    def refused(port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=1).close()

    refused(first)
    write(os.path.join(d, "gw2.yaml"), GATEWAY_YAML.format(name="gw2", port=second))
    deadline = time.time() + 10
    while "reloading configuration" not in p.log() and time.time() < deadline:
        time.sleep(0.05)
    assert "reloading configuration" in p.log(), p.log()
    time.sleep(0.3)
    refused(first)
    refused(second)
    assert "listener" not in p.log(), p.log()
    p.stop()


def test_chart_flags(procs, tmp_path):
    """The arguments GIE's v1 chart and llm-d's charts give their picker
    (pflag spellings, --zap-* logging, --config-text, --pool-group, the
    hint key and namespace, booleans written --x=false) start `infergate
    epp`, and the ones that change the answer change it."""
    p = Picker(procs, tmp_path, extra=(
        "--pool-group", "inference.networking.x-k8s.io", "--zap-encoder", "json",
        "--zap-log-level=debug", "--zap-time-encoding", "rfc3339", "--zap-devel=false",
        "--config-text=" + QUEUE_ONLY_PICKER, "--tracing=false", "--enable-pprof=false",
        "--metrics-endpoint-auth=false", "--health-checking=true",
        "--refresh-prometheus-metrics-interval", "5s", "--metrics-staleness-threshold", "2s",
        "--total-queued-requests-metric", "vllm:num_requests_waiting",
        "--kv-cache-usage-percentage-metric", "vllm:gpu_cache_usage_perc",
        "--lora-info-metric", "vllm:lora_requests_info", "--grpc-max-recv-msg-size", "8388608",
        "--destination-endpoint-hint-key", "x-picked",
        "-DestinationEndpointHintMetadataNamespace", "picker.ns"))
    first, out, s = full_duplex(p.channel, seed_bytes())
    hs = set_headers(first.request_headers.response)
    assert hs["x-picked"] in p.endpoints and "x-gateway-destination-endpoint" not in hs, hs
    md = first.dynamic_metadata.fields
    assert "envoy.lb" not in md
    assert md["picker.ns"].struct_value.fields["x-picked"].string_value == hs["x-picked"]
    assert json.loads(out)["model"] == "tweet-summary-1"
    respond(s)
    s.rest()
    # Every log line is one JSON object with zap's keys.
    lines = [ln for ln in p.log().splitlines() if ln.strip()]
    assert lines
    for ln in lines:
        rec = json.loads(ln)
        assert rec["level"] in ("debug", "info", "warn", "error") and rec["msg"], ln
        assert isinstance(rec["ts"], str) and rec["ts"].endswith("Z"), ln
    assert any("epp: ext_proc on" in json.loads(ln)["msg"] for ln in lines), lines
    p.stop()


def test_pool_group_selects_the_pool(procs, tmp_path):
    """--pool-group names the pool's API group: the v1alpha2 pool of these
    manifests is not the one asked for, so nothing is picked (503) and the
    picker is not ready, as GIE's picker waits for its pool."""
    p = Picker(procs, tmp_path, extra=("--pool-group", "inference.networking.k8s.io",
                                       "--destination-endpoint-hint-metadata-namespace", ""))
    first, out, s = full_duplex(p.channel, seed_bytes())
    assert first.WhichOneof("response") == "immediate_response", first
    assert first.immediate_response.status.code == 503
    s.rest()
    # Not ready under any name, but alive.
    for port in (p.health_port, p.grpc_port):
        assert health_statuses(p.host, port, ("", "inference-extension", "readiness",
                                              "liveness")) == [2, 2, 2, 1]
    p.stop()


def self_signed(directory, cn):
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, ".new")
    os.makedirs(tmp, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:localhost", "-keyout",
                    os.path.join(tmp, "tls.key"), "-out", os.path.join(tmp, "tls.crt")],
                   check=True, capture_output=True)
    # As a Secret volume is renewed: each file replaced whole.
    for name in ("tls.key", "tls.crt"):
        os.replace(os.path.join(tmp, name), os.path.join(directory, name))


def served_cn(p):
    pem = ssl.get_server_certificate((p.host, p.grpc_port))
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem.encode(),
                         capture_output=True, check=True).stdout.decode()
    return out.strip().rsplit("=", 1)[1].strip()


def test_cert_reload(procs, tmp_path):
    """--cert-path with --enable-cert-reload: the picker serves the files'
    certificate, and a renewed pair (a Secret volume updated in place)
    within a couple of seconds, without a restart; streams keep working."""
    certs = os.path.join(str(tmp_path), "certs")
    self_signed(certs, "first")
    p = Picker(procs, tmp_path, secure=True, extra=("--cert-path", certs, "--enable-cert-reload"))
    assert served_cn(p) == "first"
    self_signed(certs, "second")
    deadline = time.time() + 5
    while served_cn(p) != "second":
        assert time.time() < deadline, p.log()
        time.sleep(0.2)
    assert "certificate reloaded" in p.log()
    p.channel.close()
    p.channel = p.open_channel()
    first, _, s = full_duplex(p.channel, seed_bytes())
    assert set_headers(first.request_headers.response)[
        "x-gateway-destination-endpoint"] in p.endpoints
    s.rest()
    p.stop()


def test_tracing_from_otel_env(procs, tmp_path):
    """--tracing (GIE's default) with OpenTelemetry's standard variables:
    a stream whose headers carry a sampled traceparent gives a SERVER span
    in that trace (Envoy's span its parent), a "route and schedule" child
    and an "upstream" child for the model server's exchange, whose id is
    the parent in the traceparent the picker hands Envoy for the pod."""
    from test_tracing import PARENT_ID, TRACE_ID, Collector, attrs
    col = Collector(service="picker-under-test")
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=col.url,
               OTEL_SERVICE_NAME="picker-under-test")
    p = Picker(procs, tmp_path, env=env)
    # GIE's defaults: parentbased_traceidratio, 10% of the traces started here.
    assert "sample ratio 0.1\n" in p.log()
    tp = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)
    first, out, s = full_duplex(p.channel, seed_bytes(), extra=(("traceparent", tp),))
    hs = set_headers(first.request_headers.response)
    ep = hs["x-gateway-destination-endpoint"]
    respond(s)
    s.rest()
    spans = {x["kind"]: x for x in col.wait_spans(3)}
    server = spans[2]
    assert server["name"] == "POST"  # HTTP semantic conventions: no route template
    assert server["traceId"] == TRACE_ID and server["parentSpanId"] == PARENT_ID
    assert server["kind"] == 2
    assert attrs(server)["gen_ai.request.model"] == "tweet-summary"
    assert attrs(server)["gen_ai.response.model"] == "tweet-summary-1"
    sched = spans[1]
    assert sched["name"] == "route and schedule"
    assert sched["parentSpanId"] == server["spanId"]
    assert attrs(sched)["infergate.endpoint"] == ep
    up = spans[3]
    assert up["parentSpanId"] == server["spanId"] and up["name"] == "POST"
    assert hs["traceparent"] == "00-%s-%s-01" % (TRACE_ID, up["spanId"])
    p.stop()
    col.stop()
    # --tracing=false: none, whatever the variables say.
    col = Collector(service="picker-under-test")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = col.url
    p = Picker(procs, tmp_path, env=env, extra=("--tracing=false",))
    first, out, s = full_duplex(p.channel, seed_bytes(), extra=(("traceparent", tp),))
    assert "traceparent" not in set_headers(first.request_headers.response)
    respond(s)
    s.rest()
    time.sleep(1.5)
    assert col.spans() == []
    p.stop()
    col.stop()


def test_traces_endpoint_variable_is_the_full_url(procs, tmp_path):
    """OTLP exporter spec, "Endpoint URLs for OTLP/HTTP": the signal's own
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as-is (only the base
    OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces). OTEL_RESOURCE_ATTRIBUTES
    adds to the resource (GIE's chart: the pod's namespace, name and node);
    OTEL_SERVICE_NAME wins over its service.name."""
    from test_tracing import PARENT_ID, TRACE_ID, Collector
    col = Collector(service="picker-under-test", path="/otlp/spans")
    env = dict(os.environ, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=col.url + "/otlp/spans",
               OTEL_EXPORTER_OTLP_ENDPOINT="http://127.94.0.1:9",
               OTEL_SERVICE_NAME="picker-under-test", OTEL_TRACES_SAMPLER_ARG="0.5",
               OTEL_RESOURCE_ATTRIBUTES="k8s.pod.name=epp-0,service.name=not-this,"
                                        "k8s.namespace.name=infer%20ence")
    p = Picker(procs, tmp_path, env=env)
    # The argument counts without OTEL_TRACES_SAMPLER (GIE's default sampler).
    assert "sample ratio 0.5\n" in p.log()
    tp = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)
    first, out, s = full_duplex(p.channel, seed_bytes(), extra=(("traceparent", tp),))
    respond(s)
    s.rest()
    assert len(col.wait_spans(3)) == 3
    assert col.resources()[0] == {"service.name": "picker-under-test", "k8s.pod.name": "epp-0",
                                  "k8s.namespace.name": "infer ence"}
    p.stop()
    col.stop()


def test_invalid_traceparent_is_dropped_with_its_tracestate(procs, tmp_path):
    """W3C Trace Context: an invalid traceparent starts a new trace and its
    tracestate is deleted. The picker sets its own traceparent (unsampled
    with always_off) and removes tracestate, as the gateway does."""
    from test_tracing import Collector
    col = Collector(service="picker-under-test")
    bad = (("traceparent", "00-%s-00f067aa0ba902b7-01" % ("0" * 32)), ("tracestate", "a=b"))
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=col.url, OTEL_TRACES_SAMPLER="always_on")
    p = Picker(procs, tmp_path, env=env)
    first, out, s = full_duplex(p.channel, seed_bytes(), extra=bad)
    answer = first.request_headers.response
    tp = set_headers(answer)["traceparent"]
    assert tp.startswith("00-") and tp[3:35] != "0" * 32, tp
    assert list(answer.header_mutation.remove_headers) == ["tracestate"]
    respond(s)
    s.rest()
    p.stop()
    env["OTEL_TRACES_SAMPLER"] = "always_off"
    p = Picker(procs, tmp_path, env=env)
    first, out, s = full_duplex(p.channel, seed_bytes(), extra=bad)
    answer = first.request_headers.response
    tp = set_headers(answer)["traceparent"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", tp) and tp[3:35] != "0" * 32, tp
    assert list(answer.header_mutation.remove_headers) == ["tracestate"]
    respond(s)
    s.rest()
    p.stop()
    col.stop()


def test_unsampled_request_still_gets_a_traceparent(procs, tmp_path):
    """W3C Trace Context: a participant propagates the trace context
    whether or not it samples. Not sampled, the picker hands Envoy a
    traceparent of the OTel SDK's non-recording span, as the gateway sends
    its pod one (test_tracing.py's test_sample_ratio_zero_and_unsampled_parent):
    a valid context with a span id of its own and the sampled flag off,
    so that the pod's parent-based sampler drops the request too; a
    client's unsampled traceparent keeps its trace, and its tracestate
    goes on as sent."""
    from test_tracing import PARENT_ID, TRACE_ID, Collector
    col = Collector(service="picker-under-test")
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=col.url,
               OTEL_TRACES_SAMPLER="parentbased_always_off")
    p = Picker(procs, tmp_path, env=env)
    ids = set()
    for _ in range(3):
        first, out, s = full_duplex(p.channel, seed_bytes())
        answer = first.request_headers.response
        tp = set_headers(answer)["traceparent"]
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", tp), tp
        assert list(answer.header_mutation.remove_headers) == []
        ids.add(tp)
        respond(s)
        s.rest()
    assert len(ids) == 3
    tp = "00-%s-%s-00" % (TRACE_ID, PARENT_ID)
    first, out, s = full_duplex(p.channel, seed_bytes(),
                                extra=(("traceparent", tp), ("tracestate", "congo=t61rcWkgMzE")))
    answer = first.request_headers.response
    got = set_headers(answer)
    assert re.fullmatch(r"00-%s-[0-9a-f]{16}-00" % TRACE_ID, got["traceparent"]), got
    assert PARENT_ID not in got["traceparent"]
    assert "tracestate" not in got
    assert list(answer.header_mutation.remove_headers) == []
    respond(s)
    s.rest()
    p.stop()
    col.stop()


def test_standalone_endpoint_selector(procs, tmp_path):
    """llm-d's standalone picker: no InferencePool among the manifests;
    --endpoint-selector and --endpoint-target-ports name the pods and
    ports, and the picker serves them under --pool-name. The pool it
    stands for is a v1 one, so the v1alpha2 InferenceModel (whose poolRef
    names the x-k8s group) does not apply: the model passes unchanged."""
    p = Picker(procs, tmp_path, standalone=True)
    assert not os.path.exists(os.path.join(p.dir, "pool.yaml"))
    seen = set()
    for _ in range(6):
        first, out, s = full_duplex(p.channel, seed_bytes())
        ep = set_headers(first.request_headers.response)["x-gateway-destination-endpoint"]
        assert ep in p.endpoints
        assert json.loads(out)["model"] == "tweet-summary"
        seen.add(ep)
        respond(s)
        s.rest()
    p.wait_scraped()
    p.stop()


def respond_in_pieces(s, pieces, mode=FULL_DUPLEX, ctype="application/json"):
    """The response path with the body in pieces; returns the answers to
    the body messages."""
    m = pb.ProcessingRequest()
    for k, v in ((":status", "200"), ("content-type", ctype)):
        h = m.response_headers.headers.headers.add()
        h.key = k
        h.raw_value = v.encode()
    s.send(m)
    assert s.next().WhichOneof("response") == "response_headers"
    out = []
    for i, piece in enumerate(pieces):
        m = pb.ProcessingRequest()
        m.response_body.body = piece
        m.response_body.end_of_stream = i == len(pieces) - 1
        s.send(m)
        r = s.next()
        assert r.WhichOneof("response") == "response_body", r
        out.append(r.response_body.response)
    return out


def test_standalone_rewrite_is_turned_back_in_the_response(procs, tmp_path):
    """GIE v1.5: after x-gateway-model-name-rewrite changed the model, the
    response's "model" members name the model asked for again, in
    FULL_DUPLEX_STREAMED pieces (a member cut between two pieces too) and
    as BUFFERED's one body, whose new length is set in the same answer."""
    p = Picker(procs, tmp_path, standalone=True)
    rw = (("x-gateway-model-name-rewrite", "tweet-summary-1"),)
    reply = b'{"id":"c","model":"tweet-summary-1","choices":[],"usage":{"completion_tokens":1}}'
    want = reply.replace(b"tweet-summary-1", b"tweet-summary")
    for cut in (5, 17, 30):
        first, out, s = full_duplex(p.channel, seed_bytes(), extra=rw)
        assert json.loads(out)["model"] == "tweet-summary-1"
        answers = respond_in_pieces(s, [reply[:cut], reply[cut:]])
        got = b"".join(a.body_mutation.streamed_response.body for a in answers)
        assert got == want, (cut, got)
        assert answers[-1].body_mutation.streamed_response.end_of_stream
        s.rest()
    s = Stream(p.channel)
    s.send(headers_msg(mode=BUFFERED, extra=rw))
    assert s.next().WhichOneof("response") == "request_headers"
    s.send(body_msg(seed_bytes(), True))
    assert s.next().WhichOneof("response") == "request_body"
    common = respond_in_pieces(s, [reply], mode=BUFFERED)[0]
    assert common.body_mutation.body == want
    assert set_headers(common)["content-length"] == str(len(want))
    s.rest()
    # Without a rewrite the response goes on as it came.
    first, out, s = full_duplex(p.channel, seed_bytes())
    answers = respond_in_pieces(s, [reply])
    assert answers[0].body_mutation.streamed_response.body == reply
    s.rest()
    p.stop()


def test_standalone_flag_errors(procs, tmp_path):
    for extra, words in ((["--endpoint-selector", "app=x"], "together"),
                         (["--endpoint-selector", "app x", "--endpoint-target-ports", "80"],
                          "key=value"),
                         (["--endpoint-selector", "app=x", "--endpoint-target-ports", "80,80"],
                          "distinct ports"),
                         (["--endpoint-selector", "app=x", "--endpoint-target-ports", "0"],
                          "distinct ports")):
        p = procs.start("epp", "-f", str(tmp_path), *extra, name="epp")
        assert p.wait(timeout=10) == 2, extra
        assert words in procs.output(p), (extra, procs.output(p))


def test_empty_hint_namespace_puts_the_key_on_top(procs, tmp_path):
    """GIE's DestinationEndpointHintMetadataNamespace set empty: the pick
    is a top-level key of dynamic_metadata, with no namespace struct."""
    p = Picker(procs, tmp_path, extra=("-DestinationEndpointHintMetadataNamespace=",
                                       "-zap-log-level", "error"))
    first, out, s = full_duplex(p.channel, seed_bytes())
    ep = set_headers(first.request_headers.response)["x-gateway-destination-endpoint"]
    md = first.dynamic_metadata.fields
    assert "envoy.lb" not in md
    assert md["x-gateway-destination-endpoint"].string_value == ep
    respond(s)
    s.rest()
    # -zap-log-level error: the start's info lines are not written.
    assert "epp: ext_proc on" not in p.log(), p.log()
    p.stop()


def test_body_over_the_limit(procs, tmp_path):
    """A body over --max-body-bytes: one immediate 413, whatever chunks
    follow, and the stream ends cleanly."""
    p = Picker(procs, tmp_path, extra=("--max-body-bytes", "10000"))
    s = Stream(p.channel)
    s.send(headers_msg())
    for i in range(4):
        s.send(body_msg(b"x" * 8000, i == 3))
    first = s.next()
    assert first.WhichOneof("response") == "immediate_response", first
    assert first.immediate_response.status.code == 413
    assert s.rest() == []
    # The picker still serves.
    first, out, s = full_duplex(p.channel, seed_bytes())
    assert first.WhichOneof("response") == "request_headers"
    s.rest()
    p.stop()


# ---- one answer per message, in order (spec/extproc.md §5) ----

BUFFERED_PARTIAL = 3
DEST = "x-gateway-destination-endpoint"


def kind(r):
    return r.WhichOneof("response")


def trailers_msg():
    m = pb.ProcessingRequest()
    h = m.request_trailers.trailers.headers.add()
    h.key = "x-trailer"
    h.raw_value = b"1"
    return m


def test_buffered_body_before_trailers(picker):
    """BUFFERED with request trailers (§5.1): the body comes whole with
    end_of_stream false, and Envoy sends the trailers only once the body is
    answered: the body's answer carries the pick, the trailers get theirs
    after it."""
    s = Stream(picker.channel, timeout=4)
    s.send(headers_msg(mode=BUFFERED))
    assert kind(s.next()) == "request_headers"
    s.send(body_msg(seed_bytes(), False))
    r = s.next()
    assert kind(r) == "request_body", r
    common = r.request_body.response
    assert set_headers(common)[DEST] in picker.endpoints
    assert json.loads(common.body_mutation.body)["model"] == "tweet-summary-1"
    s.send(trailers_msg())
    assert kind(s.next()) == "request_trailers"
    assert s.rest() == []
    picker.stop()


def test_buffered_partial_whole_body(picker):
    """BUFFERED_PARTIAL with a body that fits Envoy's buffer: the headers
    get "continue", the body one request_body answer with the pick and the
    rewritten body (no content-length: Envoy drops it in this mode, §4.4),
    never a second headers answer."""
    s = Stream(picker.channel, timeout=4)
    s.send(headers_msg(mode=BUFFERED_PARTIAL))
    assert kind(s.next()) == "request_headers"
    s.send(body_msg(seed_bytes(), True))
    r = s.next()
    assert kind(r) == "request_body", r
    common = r.request_body.response
    hs = set_headers(common)
    assert hs[DEST] in picker.endpoints and "content-length" not in hs, hs
    assert json.loads(common.body_mutation.body)["model"] == "tweet-summary-1"
    assert lb_endpoint(r) == hs[DEST]
    assert s.rest() == []
    picker.stop()


def test_full_duplex_body_ending_with_trailers(picker):
    """FULL_DUPLEX_STREAMED with request trailers: the last chunk had no
    end_of_stream, so none of the chunks sent back has it (§5.3); the
    trailers' answer comes after the body."""
    body = seed_bytes()
    s = Stream(picker.channel, timeout=4)
    s.send(headers_msg())
    s.send(body_msg(body[:20], False))
    s.send(body_msg(body[20:], False))
    s.send(trailers_msg())
    assert kind(s.next()) == "request_headers"
    out = b""
    while True:
        r = s.next()
        if kind(r) == "request_trailers":
            break
        assert kind(r) == "request_body", r
        sr = r.request_body.response.body_mutation.streamed_response
        assert not sr.end_of_stream
        out += sr.body
    assert json.loads(out)["model"] == "tweet-summary-1"
    assert s.rest() == []
    picker.stop()


@pytest.mark.parametrize("mode", [None, BUFFERED, BUFFERED_PARTIAL, FULL_DUPLEX])
def test_bodyless_request_is_picked_at_header_time(procs, tmp_path, mode):
    """A request whose headers end the stream is picked at header time and
    its headers answered with the pick, whatever the body mode, without
    protocol_config too (§5.1); no body answer follows for the body that
    never came (§5.3)."""
    p = Picker(procs, tmp_path, standalone=True)  # v1: no body, any endpoint
    s = Stream(p.channel, timeout=4)
    m = headers_msg(path="/v1/models", eos=True, mode=mode or 0)
    if mode is None:
        m.ClearField("protocol_config")
    s.send(m)
    r = s.next()
    assert kind(r) == "request_headers", r
    assert set_headers(r.request_headers.response)[DEST] in p.endpoints
    assert s.rest() == []
    p.stop()


@pytest.mark.parametrize("mode", [FULL_DUPLEX, BUFFERED])
def test_empty_body_is_a_bad_request(procs, tmp_path, mode):
    """A body message that holds nothing (request_body{"", end_of_stream})
    is a body, and not JSON: GIE v1.5 parses every body that came
    (handlers/server.go at end_of_stream, then the openai parser's
    json.Unmarshal), whatever the path and the method, and answers 400
    where the picker went to a random pod. Headers with end_of_stream are
    still no body (a random pod, test_bodyless_request_is_picked_at_header_time)."""
    p = Picker(procs, tmp_path)
    for path, method in (("/v1/completions", "POST"), ("/v1/chat/completions", "POST"),
                         ("/v1/models", "POST"), ("/anything", "PUT")):
        s = Stream(p.channel, timeout=4)
        m = headers_msg(path=path, mode=mode)
        m.request_headers.headers.headers[0].raw_value = method.encode()
        s.send(m)
        if mode == BUFFERED:
            assert kind(s.next()) == "request_headers"
        s.send(body_msg(b"", True))
        r = s.next()
        assert kind(r) == "immediate_response", (path, r)
        assert r.immediate_response.status.code == 400, (path, r)
        assert json.loads(r.immediate_response.body)["error"]["code"] == 400
        assert s.rest() == []
    p.stop()


def test_bodyless_request_ignores_the_subset_hint(procs, tmp_path):
    """GIE v1.5 picks a request without a body as its headers come
    (HandleRequestHeaders: GetRandomEndpoint over every pod of the pool),
    before admission and without reading the subset hint: one naming no
    endpoint of the pool, or an empty one, still gets a pick. With no pods
    GIE answers Internal (500, "no pods available in datastore"), and so
    does the picker, for a sheddable request too (no admission: one with a
    body is shed there, test_sheddable_request_without_candidates_is_shed)."""
    objective = """apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata:
  name: batch
spec:
  priority: -1
  poolRef:
    group: inference.networking.x-k8s.io
    name: qwen-pool
"""
    p = Picker(procs, tmp_path, docs=[objective])
    sheddable = [("x-gateway-inference-objective", "batch")]

    def pick(subset, extra=()):
        s = Stream(p.channel, timeout=4)
        s.send(headers_msg(path="/v1/models", eos=True, subset=subset, extra=extra))
        r = s.next()
        assert s.rest() == []
        if kind(r) == "immediate_response":
            ir = r.immediate_response
            return ir.status.code, json.loads(ir.body)["error"]["message"]
        assert kind(r) == "request_headers", r
        return set_headers(r.request_headers.response)[DEST]

    for subset in (["10.255.255.1:8000"], [], [p.sim_hosts[0]]):
        assert {pick(subset) for _ in range(30)} == p.endpoints, subset
    write(os.path.join(p.dir, "pods.yaml"), "")
    deadline = time.time() + 10
    while True:
        _, _, data = call("http://%s:%d" % (p.host, p.metrics_port), "/pools")
        if not [e for pool in json.loads(data)["pools"] for e in pool["endpoints"]]:
            break
        assert time.time() < deadline, data
        time.sleep(0.1)
    first, _, s = full_duplex(p.channel, seed_bytes(), extra=sheddable)
    s.rest()
    assert first.immediate_response.status.code == 429, first
    for extra in ((), sheddable):
        assert pick(None, extra) == (500, "no pods available in datastore")
    p.stop()


def test_buffered_partial_part_of_a_body(procs, tmp_path):
    """BUFFERED_PARTIAL's part of a body over Envoy's buffer (end_of_stream
    false, no whole JSON document): its one answer carries a pick made from
    the headers alone (a part names no model), and the body is left as it
    is; the rest of the body never comes to the picker."""
    p = Picker(procs, tmp_path, standalone=True)
    s = Stream(p.channel, timeout=4)
    s.send(headers_msg(mode=BUFFERED_PARTIAL))
    assert kind(s.next()) == "request_headers"
    s.send(body_msg(seed_bytes()[:30], False))
    r = s.next()
    assert kind(r) == "request_body", r
    assert set_headers(r.request_body.response)[DEST] in p.endpoints
    assert not r.request_body.response.HasField("body_mutation")
    assert s.rest() == []
    p.stop()


def test_buffered_body_over_the_grpc_message_limit(procs, tmp_path):
    """A BUFFERED body is one gRPC message: one over the picker's message
    limit (--max-body-bytes + 64 KiB) is a 413 like a body over the limit
    in pieces, not a gRPC error (which Envoy turns into a 500); its bytes
    are dropped as they come, and the picker goes on serving."""
    p = Picker(procs, tmp_path, extra=("--max-body-bytes", "10000"))
    s = Stream(p.channel, timeout=4)
    s.send(headers_msg(mode=BUFFERED))
    assert kind(s.next()) == "request_headers"
    s.send(body_msg(b"x" * 200000, True))
    r = s.next()
    assert kind(r) == "immediate_response", r
    assert r.immediate_response.status.code == 413
    assert s.rest() == []
    first, out, s = full_duplex(p.channel, seed_bytes())
    assert kind(first) == "request_headers"
    s.rest()
    p.stop()


def pool_counts(p):
    _, _, data = call("http://%s:%d" % (p.host, p.metrics_port), "/pools")
    return {e["address"]: (e["in_flight"], e["requests_total"])
            for pool in json.loads(data)["pools"] for e in pool["endpoints"]}


def test_served_endpoint_takes_the_request(procs, tmp_path):
    """The proxy fell back to the second endpoint of the list and reports
    it in x-gateway-destination-endpoint-served (gie-reference §7): the
    request's in-flight count and total move there, as the gateway's own
    retry moves them, and end there."""
    p = Picker(procs, tmp_path, extra=("--endpoints", "2"))
    p.wait_scraped()
    first, out, s = full_duplex(p.channel, seed_bytes())
    eps = set_headers(first.request_headers.response)[DEST].split(",")
    assert len(eps) == 2, eps
    before = pool_counts(p)
    assert before[eps[0]][0] == 1 and before[eps[1]][0] == 0, before
    m = pb.ProcessingRequest()
    for k, v in ((":status", "200"), ("content-type", "application/json")):
        h = m.response_headers.headers.headers.add()
        h.key = k
        h.raw_value = v.encode()
    lb = m.metadata_context.filter_metadata["envoy.lb"]
    lb.fields["x-gateway-destination-endpoint-served"].string_value = eps[1]
    s.send(m)
    assert kind(s.next()) == "response_headers"
    mid = pool_counts(p)
    assert mid[eps[0]][0] == 0 and mid[eps[1]][0] == 1, mid
    assert mid[eps[1]][1] == before[eps[1]][1] + 1, (before, mid)
    # The total moved: the pick no longer counts a request it never got.
    assert mid[eps[0]][1] == before[eps[0]][1] - 1, (before, mid)
    m = pb.ProcessingRequest()
    m.response_body.body = b'{"usage":{"prompt_tokens":9,"completion_tokens":5}}'
    m.response_body.end_of_stream = True
    s.send(m)
    assert kind(s.next()) == "response_body"
    s.rest()
    deadline = time.time() + 5
    while any(v[0] for v in pool_counts(p).values()):
        assert time.time() < deadline, pool_counts(p)
        time.sleep(0.05)
    p.stop()


TWO_PICKED = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: max-score-picker
  parameters: {maxNumOfEndpoints: 2}
"""


@pytest.mark.parametrize("flags,want", [((), 2), (("--endpoints", "1"), 1)])
def test_endpoints_the_picker_picked(procs, tmp_path, flags, want):
    """GIE v1.5's director names every endpoint the primary profile picked
    (maxNumOfEndpoints of them), comma-joined, in the header and envoy.lb
    metadata; --endpoints, when given, caps that list."""
    p = Picker(procs, tmp_path, extra=("--config-text", TWO_PICKED) + flags)
    first, _, s = full_duplex(p.channel, seed_bytes())
    eps = set_headers(first.request_headers.response)[DEST]
    assert lb_endpoint(first) == eps
    assert len(eps.split(",")) == want and set(eps.split(",")) <= p.endpoints, eps
    s.close()
    p.stop()


FLOW_TTL = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
flowControl:
  defaultRequestTTL: 300ms
"""


def test_flow_control_from_deprecated_env(procs, tmp_path):
    """ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER=true turns the flowControl
    gate on, with GIE v1.5's deprecation notice: a request to a saturated
    pool waits in the queue and gets 503 at the TTL instead of a pick."""
    env = dict(os.environ, ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER="true")
    p = Picker(procs, tmp_path, nsims=1, extra=("--config-text", FLOW_TTL), env=env)
    call("http://%s:%d" % (p.sim_hosts[0], p.target_port), "/sim/state", {"waiting": 10})
    deadline = time.time() + 5
    while True:
        _, _, data = call("http://%s:%d" % (p.host, p.metrics_port), "/pools")
        if [e["waiting"] for pool in json.loads(data)["pools"] for e in pool["endpoints"]] == [10]:
            break
        assert time.time() < deadline, data
        time.sleep(0.05)
    first, _, s = full_duplex(p.channel, seed_bytes())
    assert first.WhichOneof("response") == "immediate_response", first
    assert first.immediate_response.status.code == 503, first
    # llm-d Router's reason for the eviction goes with it.
    assert {h.header.key: (h.header.raw_value or h.header.value.encode()).decode()
            for h in first.immediate_response.headers.set_headers} == {
        "content-type": "application/json",
        "x-llm-d-request-dropped-reason": "rejected-ttl-expired"}, first
    s.close()
    p.stop()
    assert "Flow Control layer using environment variables is deprecated" in p.log()


def without_protocol_config(m):
    m.ClearField("protocol_config")
    return m


def test_no_protocol_config_is_full_duplex(picker):
    """Envoy sends protocol_config only since 1.34 (envoyproxy/envoy#38755);
    GIE v1.5's charts run Envoy 1.33 with FULL_DUPLEX_STREAMED and GIE's
    picker assumes that mode: a stream without it (headers, then two body
    chunks without waiting) gets the pick in the headers answer and the
    body back as streamed_response chunks, and its response body is
    echoed as FULL_DUPLEX_STREAMED's."""
    s = Stream(picker.channel, timeout=5)
    s.send(without_protocol_config(headers_msg()))
    body = seed_bytes()
    s.send(body_msg(body[:20], False))
    s.send(body_msg(body[20:], True))
    first = s.next()
    assert kind(first) == "request_headers", first
    assert set_headers(first.request_headers.response)[DEST] in picker.endpoints
    out = b""
    while True:
        r = s.next()
        assert kind(r) == "request_body", r
        assert r.request_body.response.body_mutation.HasField("streamed_response"), r
        sr = r.request_body.response.body_mutation.streamed_response
        out += sr.body
        if sr.end_of_stream:
            break
    assert json.loads(out)["model"] == "tweet-summary-1"
    assert json.loads(respond(s))["usage"]["completion_tokens"] == 5
    assert s.rest() == []
    picker.stop()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_default_body_mode_buffered(procs, tmp_path, how):
    """--default-body-mode buffered, or GIE v0.3's USE_STREAMING=false
    without the flag: a stream without protocol_config is BUFFERED (GIE
    v0.2/v0.3 with an Envoy before 1.34), so its headers get a plain
    continue and the body the pick; protocol_config still wins."""
    extra, env = (), None
    if how == "flag":
        extra = ("--default-body-mode", "buffered")
        env = dict(os.environ, USE_STREAMING="true")  # the flag wins
    else:
        env = dict(os.environ, USE_STREAMING="false")
    p = Picker(procs, tmp_path, nsims=1, standalone=True, extra=extra, env=env)
    s = Stream(p.channel, timeout=5)
    s.send(without_protocol_config(headers_msg()))
    r = s.next()
    assert kind(r) == "request_headers" and not r.request_headers.response.HasField(
        "header_mutation"), r
    s.send(body_msg(seed_bytes(), True))
    r = s.next()
    assert kind(r) == "request_body", r
    assert set_headers(r.request_body.response)[DEST] == p.endpoint(0)
    assert s.rest() == []
    first, _, s = full_duplex(p.channel, seed_bytes())  # announced: FULL_DUPLEX
    assert set_headers(first.request_headers.response)[DEST] == p.endpoint(0)
    s.close()
    p.stop()


def test_use_streaming_not_a_boolean(procs, tmp_path):
    env = dict(os.environ, USE_STREAMING="maybe")
    p = procs.start("epp", "--pool-name", "p", "-f", str(tmp_path), env=env, name="epp")
    assert p.wait(timeout=10) == 2
    assert "USE_STREAMING=maybe: not a boolean" in procs.output(p)


def test_metrics_endpoint_auth_needs_a_token(procs, tmp_path):
    """llm-d's picker protects /metrics by default (--metrics-endpoint-auth,
    a TokenReview of the bearer token). infergate checks no Kubernetes
    tokens: asking for the protection without --admin-token is refused
    rather than leaving the port open unsaid; with a token it is that
    token that guards the port."""
    p = procs.start("epp", "--pool-name", "p", "-f", str(tmp_path), "--metrics-endpoint-auth",
                    name="epp")
    assert p.wait(timeout=10) == 2
    assert "--metrics-endpoint-auth: infergate epp checks no Kubernetes tokens" in \
        procs.output(p)
    pk = Picker(procs, tmp_path, nsims=1,
                extra=("--metrics-endpoint-auth=true", "--admin-token", "sesame"))
    base = "http://%s:%d" % (pk.host, pk.metrics_port)
    assert call(base, "/metrics")[0] == 401
    status, _, data = call(base, "/metrics", headers={"Authorization": "Bearer sesame"})
    assert status == 200 and b"inference_pool" in data, data[:200]
    pk.stop()


# GIE v1.5's conformance picker configuration (conformance/resources/
# base.yaml, ConfigMap plugins-config).
CONFORMANCE_PICKER = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: header-based-testing-filter
- type: destination-endpoint-served-verifier
schedulingProfiles:
- name: conformance-profile
  plugins:
  - pluginRef: header-based-testing-filter
"""

SERVED_TEST = "x-conformance-test-served-endpoint"
# GIE's and llm-d Router's picker set it in every response headers answer.
WENT = {"x-went-into-resp-headers": "true"}


def response_headers_answer(s, lb=None):
    """Sends the response headers with envoy.lb metadata `lb` (a dict; None:
    no envoy.lb namespace) and returns the answer's header changes."""
    m = pb.ProcessingRequest()
    for k, v in ((":status", "200"), ("content-type", "application/json")):
        h = m.response_headers.headers.headers.add()
        h.key = k
        h.raw_value = v.encode()
    if lb is not None:
        st = m.metadata_context.filter_metadata["envoy.lb"]
        st.SetInParent()
        for k, v in lb.items():
            st.fields[k].string_value = v
    s.send(m)
    r = s.next()
    assert kind(r) == "response_headers", r
    return set_headers(r.response_headers.response)


def test_request_id_generated_when_absent(procs, tmp_path):
    """GIE's and llm-d Router's picker give a request without x-request-id
    (or with an empty one) one of their own (a UUID) in the headers answer;
    one the proxy sent is left as it is."""
    import re
    p = Picker(procs, tmp_path, nsims=1)
    first, _, s = full_duplex(p.channel, seed_bytes())
    rid = set_headers(first.request_headers.response).get("x-request-id", "")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        rid), rid
    s.close()
    first, _, s = full_duplex(p.channel, seed_bytes(), extra=[("x-request-id", "abc-1")])
    assert "x-request-id" not in set_headers(first.request_headers.response)
    s.close()
    # An empty one is none.
    first, _, s = full_duplex(p.channel, seed_bytes(), extra=[("x-request-id", "")])
    assert len(set_headers(first.request_headers.response).get("x-request-id", "")) == 36
    s.close()
    p.stop()


def test_served_endpoint_verifier(procs, tmp_path):
    """destination-endpoint-served-verifier (GIE v1.5's conformance plugin,
    which GIE's InferencePoolAppProtocol and GatewayDestinationEndpointServed
    tests rely on): the picker starts with GIE's conformance configuration,
    and its response headers answer sets x-conformance-test-served-endpoint
    to the endpoint the proxy reports in envoy.lb metadata, or to GIE's words
    for what is missing. Without the plugin the answer sets only the
    x-went-into-resp-headers that GIE's picker always sets."""
    p = Picker(procs, tmp_path, extra=("--config-text", CONFORMANCE_PICKER))
    ep = p.endpoint(1)
    cases = ((ep, {"x-gateway-destination-endpoint-served": ep}),
             ("fail: missing envoy lb metadata", None),
             ("fail: missing destination endpoint served metadata", {"other": "x"}))
    for want, lb in cases:
        first, _, s = full_duplex(p.channel, seed_bytes(),
                                  extra=[("test-epp-endpoint-selection", ep.split(":")[0])])
        assert set_headers(first.request_headers.response)[DEST] == ep
        assert response_headers_answer(s, lb) == dict(WENT, **{SERVED_TEST: want})
        s.close()
    p.stop()
    plain = Picker(procs, tmp_path / "plain", nsims=1)
    _, _, s = full_duplex(plain.channel, seed_bytes())
    assert response_headers_answer(
        s, {"x-gateway-destination-endpoint-served": plain.endpoint(0)}) == WENT
    s.close()
    plain.stop()


SESSION_PICKER = """apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: session-affinity-scorer
"""


def test_session_affinity_token(procs, tmp_path):
    """llm-d's session-affinity-scorer in the picker: x-session-token (the
    base64 of namespace/pod-rank-N) picks its pod, and the response headers
    answer sets it for the endpoint that served, the one the proxy reports
    when it fell back."""
    p = Picker(procs, tmp_path, extra=("--config-text", SESSION_PICKER))

    def token(i):
        return base64.b64encode(b"default/qwen-pool-%d-rank-0" % i).decode()

    for i in (1, 0, 1):
        first, _, s = full_duplex(p.channel, seed_bytes(), extra=[("x-session-token", token(i))])
        assert set_headers(first.request_headers.response)[DEST] == p.endpoint(i)
        lb = {"x-gateway-destination-endpoint-served": p.endpoint(1 - i)}
        assert response_headers_answer(s, lb) == dict(WENT, **{"x-session-token": token(1 - i)})
        s.close()
    p.stop()


OTHER_POOL = """apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: other-pool
spec:
  selector:
    matchLabels:
      app: other-pool
  targetPorts:
  - number: {port}
  endpointPickerRef:
    name: other-picker
    port:
      number: 9002
---
apiVersion: v1
kind: Pod
metadata:
  name: other-pool-0
  labels:
    app: other-pool
status:
  podIP: {ip}
"""


def test_only_its_own_pool(procs, tmp_path):
    """GIE's picker tracks the pool its --pool-name names, nothing else:
    with another InferencePool in the same manifests, /pools shows only
    qwen-pool, and the other pool's pod is never scraped while the
    picker's own pods are scraped and picked."""
    host = unique_loopback()
    other = FakePod(host, free_port(host))
    try:
        d = os.path.join(str(tmp_path), "manifests")
        os.makedirs(d)
        write(os.path.join(d, "other.yaml"), OTHER_POOL.format(port=other.port, ip=host))
        p = Picker(procs, tmp_path)
        p.wait_scraped()
        _, _, data = call("http://%s:%d" % (p.host, p.metrics_port), "/pools")
        assert [pool["name"] for pool in json.loads(data)["pools"]] == ["qwen-pool"], data
        first, _, s = full_duplex(p.channel, seed_bytes())
        assert set_headers(first.request_headers.response)[DEST] in p.endpoints
        s.close()
        _, _, metrics = call("http://%s:%d" % (p.host, p.metrics_port), "/metrics")
        assert b"qwen-pool" in metrics and b"other-pool" not in metrics
        p.stop()
        assert other.metrics_count() == 0
    finally:
        other.stop()


def test_second_picker_on_the_same_port_refused(procs, tmp_path):
    """A second picker on the gRPC port of one already running exits 1
    with "address in use", as with any other process on the port: the
    workers' SO_REUSEPORT sockets had let it start and take a share of
    the first one's connections."""
    host = unique_loopback()
    port = free_port(host)
    d = tmp_path / "m"
    d.mkdir()
    write(str(d / "pool.yaml"), POOL.format(target_port=8000))

    def start(name):
        return procs.start("epp", "-poolName", "qwen-pool", "-f", str(d), "--bind", host,
                           "-grpcPort", port, "-grpcHealthPort", free_port(host),
                           "-metricsPort", free_port(host), "-secureServing=false", name=name)
    first = start("epp-1")
    wait_port(host, port, proc=first)
    second = start("epp-2")
    assert second.wait(timeout=10) == 1
    out = procs.output(second)
    assert "%s:%d" % (host, port) in out and "in use" in out, out
    assert first.poll() is None


def test_pool_not_in_the_files_is_not_ready(procs, tmp_path):
    """A --pool-name the files do not have (a typo) is said at start and
    /readyz answers 503 with the reason, as the health service answers
    NOT_SERVING (the picker had looked ready: 200, no word); the pool
    written later makes it ready."""
    host = unique_loopback()
    d = tmp_path / "m"
    d.mkdir()
    write(str(d / "pool.yaml"), POOL.format(target_port=8000))
    metrics = free_port(host)
    p = procs.start("epp", "-poolName", "qwen-pool-typo", "-f", str(d), "--bind", host,
                    "-grpcPort", free_port(host), "-grpcHealthPort", free_port(host),
                    "-metricsPort", metrics, "-secureServing=false", name="epp")
    base = "http://%s:%d" % (host, metrics)
    wait_http(base + "/healthz", proc=p)
    status, _, body = call(base, "/readyz")
    assert status == 503 and b"the pool is not in the configuration" in body, (status, body)
    assert "pool default/qwen-pool-typo is not in the configuration" in procs.output(p)
    write(str(d / "pool2.yaml"), POOL.format(target_port=8000).replace(
        "name: qwen-pool", "name: qwen-pool-typo"))
    deadline = time.monotonic() + 10
    while call(base, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, procs.output(p)
        time.sleep(0.1)


def test_draining_picker_refuses_new_connections(picker):
    """At SIGTERM the picker stops listening on its ext_proc port while a
    stream it serves drains: a new connection is refused at once (Envoy
    goes to another picker) rather than completed into a backlog nobody
    accepts, to be reset when the drain ends; the open stream still gets
    its answers."""
    s = Stream(picker.channel, timeout=30)
    s.send(headers_msg())
    s.send(body_msg(seed_bytes(), True))
    assert s.next().WhichOneof("response") == "request_headers"
    picker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    refused = False
    while time.monotonic() < deadline and not refused:
        c = socket.socket()
        try:
            c.settimeout(1)
            c.connect((picker.host, picker.grpc_port))
        except ConnectionRefusedError:
            refused = True
        except ConnectionResetError:
            pass  # queued just before the socket closed: the next try is refused
        finally:
            c.close()
        time.sleep(0.05)
    assert refused, "the ext_proc port still accepts connections while draining"
    assert picker.proc.poll() is None  # the stream keeps it draining
    assert s.next().WhichOneof("response") == "request_body"
    s.rest()
    picker.stop()


# ---- hostile peers, frame by frame (h2raw) ----

def response_headers_msg():
    m = pb.ProcessingRequest()
    for k, v in ((":status", "200"), ("content-type", "application/json")):
        h = m.response_headers.headers.headers.add()
        h.key = k
        h.raw_value = v.encode()
    return m


def response_body_msg(data, eos=False):
    m = pb.ProcessingRequest()
    m.response_body.body = data
    m.response_body.end_of_stream = eos
    return m


def no_quarantine():
    """The picker's environment for RSS measures: under ASan, freed memory
    waits in a quarantine (256 MiB) and is not reused; without it the
    sanitized build's RSS is comparable (leak checking is unaffected)."""
    return dict(os.environ, ASAN_OPTIONS=":".join(
        o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if o))


def open_echoing(c, sid):
    """A Process stream on the response path in FULL_DUPLEX, where every
    response_body chunk is answered with itself."""
    c.headers(sid, PROCESS)
    assert c.data(sid, h2raw.grpc_msg(headers_msg().SerializeToString()) +
                  h2raw.grpc_msg(response_headers_msg().SerializeToString()))


def test_client_that_does_not_read_is_held_by_flow_control(procs, tmp_path):
    """A client that sets its windows to 0 (reads nothing) and sends
    response bodies the picker echoes gets its own windows held shut once a
    few MiB of answers wait: 100 streams pushing 16 MiB each no longer
    make the picker queue 1.7 GB (they did: 1,711 MB RSS in 4 s)."""
    p = Picker(procs, tmp_path, env=no_quarantine())
    addr = (p.host, p.grpc_port)
    rss0 = rss_kib(p.proc.pid)
    c = h2raw.Conn(addr, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    c.handshake()
    sids = range(1, 200, 2)
    for sid in sids:
        open_echoing(c, sid)
    chunk = h2raw.grpc_msg(response_body_msg(b"a" * ((1 << 20) - 64)).SerializeToString())
    sent, t0 = 0, time.monotonic()
    for _ in range(16):
        if not all(c.data(sid, chunk) for sid in sids):
            break
        sent += len(sids)
    grown = (rss_kib(p.proc.pid) - rss0) // 1024
    assert sent < 100, "%d MiB went in %.1f s: no back-pressure" % (sent, time.monotonic() - t0)
    assert grown < 200, "the picker grew %d MB for a client that reads nothing" % grown
    c.close()
    p.stop()


def test_client_send_timeout(procs, tmp_path):
    """Answers that a client takes none of for --client-send-timeout go: a
    stream held by a window of 0 is reset (CANCEL), a connection whose
    socket is never read is closed."""
    p = Picker(procs, tmp_path, extra=("--client-send-timeout", "1s"))
    addr = (p.host, p.grpc_port)
    c = h2raw.Conn(addr, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    c.handshake()
    open_echoing(c, 1)
    assert c.data(1, h2raw.grpc_msg(response_body_msg(b"x" * 1000).SerializeToString()))
    t0 = time.monotonic()
    c.read(6, until=lambda out: any(isinstance(f, RstStreamFrame) for f, _ in out))
    assert c.resets().get(1) == 8, c.frames  # CANCEL
    assert 0.9 < time.monotonic() - t0 < 4
    # This one's socket is not read once the picker has a 12 MiB body to
    # answer with (FULL_DUPLEX streams it back): more than the kernel's
    # socket buffers take, so that answers wait in the picker.
    big = 1 << 30
    d = h2raw.Conn(addr, settings={SettingsFrame.INITIAL_WINDOW_SIZE: big - 1}, rcvbuf=4096)
    d.handshake()
    wu = WindowUpdateFrame(0)
    wu.window_increment = big
    d.send(wu)
    d.headers(1, PROCESS)
    body = b'{"model":"tweet-summary","prompt":"' + b"a" * (12 << 20) + b'"}'
    assert d.data(1, h2raw.grpc_msg(headers_msg().SerializeToString()))
    for off in range(0, len(body) - 62000, 62000):
        assert d.data(1, h2raw.grpc_msg(body_msg(body[off:off + 62000], False).SerializeToString()))
    last = body[off + 62000:]
    assert d.data(1, h2raw.grpc_msg(body_msg(last, True).SerializeToString()), reading=False)
    time.sleep(3)
    d.read(10)
    assert d.closed, "a connection whose socket nobody reads stays open"
    assert "took no bytes for 1000 ms" in p.log()
    c.close()
    d.close()
    p.stop()


def test_partly_sent_messages_have_a_process_budget(procs, tmp_path):
    """Streams that send most of a large message and go silent are held
    within --max-partial-message-bytes (the rest end RESOURCE_EXHAUSTED),
    not per connection only: 40 connections of 2 such streams held
    1,226 MB."""
    p = Picker(procs, tmp_path, extra=("--max-partial-message-bytes", str(64 << 20)),
               env=no_quarantine())
    addr = (p.host, p.grpc_port)
    rss0 = rss_kib(p.proc.pid)
    part = b"\0" * (1 << 20)
    conns = []
    for _ in range(40):
        c = h2raw.Conn(addr)
        c.handshake()
        conns.append(c)
        for sid in (1, 3):
            c.headers(sid, PROCESS)
            assert c.data(sid, h2raw.grpc_msg(b"", length=16 << 20))
            for _ in range(15):
                c.read(0.001)
                if c.trailers(sid) or not c.data(sid, part):
                    break  # refused: the rest would be dropped
    grown = (rss_kib(p.proc.pid) - rss0) // 1024
    refused = 0
    for c in conns:
        c.read(0.2)
        refused += sum(1 for sid in (1, 3)
                       if (c.trailers(sid) or {}).get("grpc-status") == "8")
    assert grown < 200, "the picker holds %d MB of partly sent messages" % grown
    assert refused >= 60, refused
    for c in conns:
        c.close()
    p.stop()


def test_silent_streams_end(procs, tmp_path):
    """A stream silent inside a message ends after --message-timeout, one
    silent between messages after --stream-idle-timeout (Envoy's
    stream_idle_timeout), both CANCELLED; before, both lived on."""
    p = Picker(procs, tmp_path, extra=("--message-timeout", "1s", "--stream-idle-timeout", "2s"))
    c = h2raw.Conn((p.host, p.grpc_port))
    c.handshake()
    c.headers(1, PROCESS)  # silent
    c.headers(3, PROCESS)
    assert c.data(3, h2raw.grpc_msg(b"", length=1000) + b"\0" * 500)  # half a message
    t0 = time.monotonic()
    ends = {}
    while time.monotonic() - t0 < 6 and len(ends) < 2:
        for f, _ in c.read(0.2):
            if f.stream_id in (1, 3) and "END_STREAM" in f.flags:
                ends[f.stream_id] = time.monotonic() - t0
    assert c.trailers(3).get("grpc-status") == "1", c.trailers(3)
    assert "incomplete" in c.trailers(3).get("grpc-message", "")
    assert c.trailers(1).get("grpc-status") == "1", c.trailers(1)
    assert "idle" in c.trailers(1).get("grpc-message", "")
    assert 0.9 < ends[3] < 3.5 and 1.9 < ends[1] < 4.5, ends
    c.close()
    p.stop()


def test_drain_serves_a_stream_opened_at_the_goaway(procs, tmp_path):
    """At SIGTERM the picker first sends GOAWAY with the last stream id
    2^31-1 and a PING; a stream the client opens before it answers the
    PING is still served, and the final GOAWAY names it (a single GOAWAY
    naming the last stream taken dropped it)."""
    p = Picker(procs, tmp_path)
    c = h2raw.Conn((p.host, p.grpc_port))
    c.pong = False
    c.handshake()
    c.headers(1, PROCESS)  # keeps the picker draining
    assert c.data(1, h2raw.grpc_msg(headers_msg(eos=True).SerializeToString()))
    c.read(2, until=lambda out: any(f.stream_id == 1 and isinstance(f, DataFrame)
                                    for f, _ in out))
    p.proc.send_signal(signal.SIGTERM)
    fr = c.read(3, until=lambda out: any(isinstance(f, PingFrame) for f, _ in out))
    assert c.goaways() == [2 ** 31 - 1], c.frames
    # The client opens a stream before it has read the notice.
    c.headers(3, PROCESS)
    assert c.data(3, h2raw.grpc_msg(headers_msg(eos=True).SerializeToString()))
    c.ack_ping(next(f for f, _ in fr if isinstance(f, PingFrame)))
    c.read(3, until=lambda out: any(f.stream_id == 3 and isinstance(f, DataFrame)
                                    for f, _ in out))
    assert c.goaways() == [2 ** 31 - 1, 3], c.frames
    assert 3 not in c.resets(), c.frames
    assert any(f.stream_id == 3 and isinstance(f, DataFrame) for f, _ in c.frames)
    c.close()
    assert p.proc.wait(timeout=15) == 0, p.log()
