"""OpenTelemetry traces (issue 12, point 2): the gateway exports each
request's spans over OTLP/HTTP (JSON) to a collector: a small receiver on
loopback here. A SERVER span, an INTERNAL child for routing and
scheduling and a CLIENT child for the upstream exchange; the pod receives
one traceparent whose parent is the CLIENT span; a client's traceparent is
continued; GenAI attributes; a collector that refuses or never answers does
not slow requests."""
import json
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, unique_loopback
from test_gateway import call, post_json, seed_body
from test_upstream_faults import FakeCluster, fakes  # noqa: F401

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
# The semantic conventions followed (GIE v1.5's picker's too).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"


class Collector:
    """An OTLP/HTTP receiver: POST /v1/traces (JSON) is recorded; mode
    "ok" answers 200, "refuse" 503, "hang" never answers, "hold" answers
    the first POST once release() is called and the others at once.
    `script`: answers for the next POSTs, before the mode's, each
    (status, Retry-After or None, body or None)."""

    def __init__(self, mode="ok", service="infergate", path="/v1/traces"):
        self.mode = mode
        self.path = path
        self.service = service
        self.posts = []
        self.script = []
        self.lock = threading.Lock()
        self.stop_evt = threading.Event()
        self.release_evt = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.posts.append((self.path, self.headers.get("Content-Type"), body))
                    answer = outer.script.pop(0) if outer.script else None
                if answer:
                    code, retry_after, out = answer
                    out = out or b"{}"
                    self.send_response(code)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                if outer.mode == "hang":
                    outer.stop_evt.wait(20)
                    return
                if outer.mode == "hold" and len(outer.posts) == 1:
                    outer.release_evt.wait(20)
                code = 200 if outer.mode in ("ok", "hold") else 503
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.httpd = ThreadingHTTPServer((self.host, self.port), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def spans(self, posts=None):
        out = []
        with self.lock:
            posts = list(self.posts) if posts is None else posts
        for path, ctype, body in posts:
            assert path == self.path and ctype == "application/json"
            doc = json.loads(body)
            for rs in doc["resourceSpans"]:
                res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                assert res["service.name"] == {"stringValue": self.service}
                assert rs["schemaUrl"] == SCHEMA_URL
                for ss in rs["scopeSpans"]:
                    assert ss["schemaUrl"] == SCHEMA_URL
                    assert ss["scope"]["name"] == "infergate" and ss["scope"]["version"]
                    out += ss["spans"]
        return out

    def resources(self):
        """Each export's resource attributes, as {key: string value}."""
        with self.lock:
            posts = list(self.posts)
        return [{a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
                for _, _, body in posts for rs in json.loads(body)["resourceSpans"]]

    def wait_spans(self, n, timeout=5):
        deadline = time.time() + timeout
        while True:
            s = self.spans()
            if len(s) >= n:
                return s
            assert time.time() < deadline, s
            time.sleep(0.05)

    def release(self):
        self.release_evt.set()

    def stop(self):
        self.stop_evt.set()
        self.release_evt.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def attrs(span):
    out = {}
    for a in span["attributes"]:
        v = a["value"]
        out[a["key"]] = int(v["intValue"]) if "intValue" in v else v.get("stringValue")
    return out


def by_kind(spans):
    kinds = {1: "internal", 2: "server", 3: "client"}
    return {kinds[s["kind"]]: s for s in spans}


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.stop()


def test_spans_of_a_request_continue_the_clients_trace(procs, tmp_path, fakes, collector):
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods,
                    gw_args=("--otlp-endpoint", collector.url))
    tp = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)
    status, headers, r = post_json(c.base, "/v1/completions", seed_body(),
                                   headers={"traceparent": tp, "x-test-id": "t1"})
    assert status == 200, r
    spans = by_kind(collector.wait_spans(3))
    server, internal, client = spans["server"], spans["internal"], spans["client"]
    for s in (server, internal, client):
        assert s["traceId"] == TRACE_ID
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"])
    assert server["parentSpanId"] == PARENT_ID
    assert internal["parentSpanId"] == server["spanId"]
    assert client["parentSpanId"] == server["spanId"]
    assert len({server["spanId"], internal["spanId"], client["spanId"]}) == 3
    a = attrs(server)
    assert a["gen_ai.request.model"] == "tweet-summary"
    assert a["gen_ai.response.model"] == "tweet-summary-1"
    assert a["http.response.status_code"] == 200
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    # HTTP semantic conventions: spans named by the method (no route
    # template exists for a path match), the server's and the client's
    # attributes apart.
    assert server["name"] == "POST" and client["name"] == "POST"
    assert a["http.request.method"] == "POST" and a["url.scheme"] == "http"
    assert a["url.path"] == "/v1/completions" and "url.query" not in a
    assert (a["server.address"], a["server.port"]) == (c.host, c.port)
    assert a["network.protocol.version"] == "1.1"
    assert a["user_agent.original"]
    assert re.fullmatch(r"127\.\d+\.\d+\.\d+", a["client.address"]), a
    assert 0 < a["client.port"] < 65536
    assert "error.type" not in a and server["status"].get("code", 0) == 0
    assert a["gen_ai.operation.name"] == "text_completion"
    assert a["gen_ai.provider.name"] == "vllm"
    ca = attrs(client)
    assert ca["server.address"] == pods[0].host and ca["server.port"] == pods[0].port
    assert ca["url.full"] == "http://%s/v1/completions" % pods[0].address
    assert ca["http.request.method"] == "POST" and ca["http.response.status_code"] == 200
    assert ca["network.protocol.version"] == "1.1"
    assert "http.request.resend_count" not in ca and "error.type" not in ca
    assert attrs(internal)["infergate.endpoint"] == headers[
        "x-gateway-destination-endpoint-served"]
    # Spans nest in time: the schedule ends before the upstream exchange.
    assert int(internal["endTimeUnixNano"]) <= int(client["startTimeUnixNano"])
    # The pod got one traceparent, the same trace, parented by the CLIENT span.
    got = pods[0].completions("t1")[0].headers
    assert got["traceparent"] == "00-%s-%s-01" % (TRACE_ID, client["spanId"])
    c.stop()


def test_root_trace_without_traceparent_and_sampling(procs, tmp_path, fakes, collector):
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url))
    status, _, _ = post_json(c.base, "/v1/completions", seed_body(), headers={"x-test-id": "r"})
    assert status == 200
    spans = by_kind(collector.wait_spans(3))
    assert "parentSpanId" not in spans["server"]
    tp = pods[0].completions("r")[0].headers["traceparent"]
    assert re.fullmatch(r"00-%s-%s-01" % (spans["server"]["traceId"], spans["client"]["spanId"]),
                        tp)
    # An error the gateway answers itself: SERVER and INTERNAL only.
    status, _, _ = call(c.base, "/v1/completions", seed_body("no-such-model"))
    assert status == 404
    spans = collector.wait_spans(5)
    last = [s for s in spans if s["traceId"] != spans[0]["traceId"]]
    assert sorted(s["kind"] for s in last) == [1, 2]
    c.stop()


def test_sample_ratio_zero_and_unsampled_parent(procs, tmp_path, fakes, collector):
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url,
                                                   "--trace-sample-ratio", "0"))
    # Not sampled: the OTel SDK's non-recording span, a valid context of
    # its own with the sampled flag off, so that the pod's parent-based
    # sampler drops the request too.
    ids = set()
    for i in range(3):
        assert post_json(c.base, "/v1/completions", seed_body(),
                         headers={"x-test-id": "n%d" % i})[0] == 200
        tp = pods[0].completions("n%d" % i)[0].headers["traceparent"]
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", tp), tp
        ids.add(tp)
    assert len(ids) == 3
    # A client's unsampled traceparent: the same trace, our span's id.
    tp = "00-%s-%s-00" % (TRACE_ID, PARENT_ID)
    assert post_json(c.base, "/v1/completions", seed_body(),
                     headers={"traceparent": tp, "tracestate": "congo=t61rcWkgMzE",
                              "x-test-id": "u"})[0] == 200
    got = pods[0].completions("u")[0].headers
    assert re.fullmatch(r"00-%s-[0-9a-f]{16}-00" % TRACE_ID, got["traceparent"])
    assert PARENT_ID not in got["traceparent"]
    assert got["tracestate"] == "congo=t61rcWkgMzE"
    # A sampled one is continued even at ratio 0 (parent-based).
    tp = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)
    assert post_json(c.base, "/v1/completions", seed_body(), headers={"traceparent": tp})[0] == 200
    spans = collector.wait_spans(3)
    time.sleep(1.5)
    assert len(collector.spans()) == 3
    c.stop()


BAD_PARENTS = ["hello", "00-%s-%s-01" % ("0" * 32, PARENT_ID),
               "00-%s-%s-01" % (TRACE_ID.upper(), PARENT_ID),
               "ff-%s-%s-01" % (TRACE_ID, PARENT_ID)]


@pytest.mark.parametrize("ratio", ["1", "0"])
def test_invalid_traceparent_is_dropped_with_its_tracestate(procs, tmp_path, fakes, collector,
                                                            ratio):
    """W3C Trace Context's processing model: a traceparent that does not
    parse is no parent; a new trace starts and the tracestate, which
    belonged to it, is deleted. The pod gets our traceparent (unsampled at
    ratio 0) and no tracestate."""
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url,
                                                   "--trace-sample-ratio", ratio))
    for i, bad in enumerate(BAD_PARENTS):
        tid = "bad%d" % i
        assert post_json(c.base, "/v1/completions", seed_body(),
                         headers={"traceparent": bad, "tracestate": "congo=t61rcWkgMzE",
                                  "x-test-id": tid})[0] == 200
        got = pods[0].completions(tid)[0].headers
        assert "tracestate" not in got, (bad, dict(got))
        flags = "00" if ratio == "0" else "01"
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-" + flags, got["traceparent"]), bad
        assert TRACE_ID not in got["traceparent"].lower()
    # A valid one keeps its tracestate.
    tp = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)
    assert post_json(c.base, "/v1/completions", seed_body(),
                     headers={"traceparent": tp, "tracestate": "congo=t61rcWkgMzE",
                              "x-test-id": "good"})[0] == 200
    assert pods[0].completions("good")[0].headers["tracestate"] == "congo=t61rcWkgMzE"
    c.stop()


def test_without_a_tracer_trace_context_goes_on_untouched(procs, tmp_path, fakes):
    """No --otlp-endpoint: the gateway does not trace and, as an Envoy
    without a tracing provider, passes traceparent and tracestate on as
    sent, invalid ones included."""
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods)
    assert post_json(c.base, "/v1/completions", seed_body(),
                     headers={"traceparent": "hello", "tracestate": "a=b",
                              "x-test-id": "off"})[0] == 200
    got = pods[0].completions("off")[0].headers
    assert (got["traceparent"], got["tracestate"]) == ("hello", "a=b")
    c.stop()


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_a_bad_collector_never_slows_requests(procs, tmp_path, fakes, mode, monkeypatch):
    """Requests go on at full speed whatever the collector does; a hung
    export is given up after OTEL_EXPORTER_OTLP_TIMEOUT (1 s here), so
    the gateway stops within about that."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
    col = Collector(mode)
    try:
        pods = fakes.pods(1)
        c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", col.url))
        t0 = time.time()
        for _ in range(30):
            assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
        assert time.time() - t0 < 10
        # The collector was tried, and what failed is counted.
        deadline = time.time() + 8
        while True:
            _, _, m = call(c.admin, "/metrics")
            dropped = re.search(r"^infergate_trace_spans_dropped_total (\d+)", m.decode(), re.M)
            if col.posts and dropped and int(dropped.group(1)) > 0:
                break
            if mode == "hang" and col.posts:
                break  # the export is still waiting for its timeout
            assert time.time() < deadline, m.decode()[-800:]
            time.sleep(0.1)
        t0 = time.time()
        c.stop()
        assert time.time() - t0 < 3.5
    finally:
        col.stop()


def test_shutdown_exports_what_waited_behind_the_export_in_flight(procs, tmp_path, fakes):
    """The OTel SDK's Shutdown: spans batched while an export was in flight
    still go once it ends, within the shutdown's deadline."""
    col = Collector("hold")
    try:
        pods = fakes.pods(1)
        c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", col.url))
        assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
        deadline = time.time() + 5
        while not col.posts:  # the first export is in flight, held
            assert time.time() < deadline
            time.sleep(0.02)
        assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
        c.gw.send_signal(signal.SIGTERM)
        deadline = time.time() + 5
        while "draining" not in c.log():
            assert time.time() < deadline
            time.sleep(0.02)
        time.sleep(0.3)  # into the tracer's shutdown, most likely
        col.release()
        assert c.gw.wait(timeout=15) == 0
        assert len(col.spans()) == 6, c.log()
        assert "not exported" not in c.log()
    finally:
        col.stop()


def test_a_client_span_per_attempt(procs, tmp_path, fakes, collector):
    """HTTP semantic conventions: each attempt is a CLIENT span of its own
    (http.request.resend_count on the resends), one that got no answer an
    error with error.type; the pod's traceparent names its attempt's
    span. A 502 has no gen_ai.response.model: no model answered."""
    dead, good = fakes.pods(2)
    dead.stop()  # refuses connections
    # The dead pod is never scraped (its figures stay zero): a queue on the
    # good one puts the dead one first, and the resend goes to the good one.
    good.waiting = 50
    c = FakeCluster(procs, tmp_path, [dead, good], gw_args=(
        "--otlp-endpoint", collector.url, "--unhealthy-after", "60000"))
    c.scraped(good)
    status, headers, _ = post_json(
        c.base, "/v1/completions", seed_body(),
        headers={"x-test-id": "a2",
                 "test-epp-endpoint-selection": "%s,%s" % (dead.address, good.address)})
    assert status == 200
    spans = collector.wait_spans(4)
    clients = sorted((s for s in spans if s["kind"] == 3), key=lambda s: s["startTimeUnixNano"])
    assert len(clients) == 2, spans
    first, second = attrs(clients[0]), attrs(clients[1])
    assert first["server.address"] == dead.host
    assert first["error.type"] == "connection_refused" and clients[0]["status"]["code"] == 2
    assert "http.response.status_code" not in first and "http.request.resend_count" not in first
    assert second["server.address"] == good.host
    assert second["http.request.resend_count"] == 1
    assert second["http.response.status_code"] == 200 and "error.type" not in second
    assert clients[1]["status"].get("code", 0) == 0
    assert clients[0]["spanId"] != clients[1]["spanId"]
    tp = good.completions("a2")[0].headers["traceparent"]
    assert tp == "00-%s-%s-01" % (clients[1]["traceId"], clients[1]["spanId"])
    # No model server answered: a 502, no response model, error.type.
    good.stop()
    status, _, _ = call(c.base, "/v1/completions?trace=1", seed_body())
    assert status == 502
    spans = collector.wait_spans(7)
    server = [s for s in spans if s["kind"] == 2 and attrs(s).get("url.query") == "trace=1"]
    assert len(server) == 1, spans
    a = attrs(server[0])
    assert a["error.type"] == "502" and server[0]["status"]["code"] == 2
    assert a["url.path"] == "/v1/completions"
    assert a["gen_ai.request.model"] == "tweet-summary" and "gen_ai.response.model" not in a
    c.stop()


def trace_metrics(c):
    _, _, m = call(c.admin, "/metrics")
    return {k: int(v) for k, v in re.findall(r"^infergate_trace_(\w+)_total (\d+)$", m.decode(),
                                             re.M)}


def wait_metrics(c, pred, timeout=8):
    deadline = time.time() + timeout
    while True:
        m = trace_metrics(c)
        if pred(m):
            return m
        assert time.time() < deadline, m
        time.sleep(0.05)


def test_exports_retried_on_throttling_and_unavailability(procs, tmp_path, fakes, collector):
    """OTLP/HTTP "Failures" and "Throttling": 429, 502, 503 and 504 are
    tried again with the same request, after the Retry-After asked for
    (delay-seconds or an HTTP-date) or, without one, a back-off of 1 s
    then 2 s; two retries at most. Requests never wait for any of it."""
    past = "Sun, 06 Nov 1994 08:49:37 GMT"
    collector.script = [(503, "0", None), (502, past, None)]
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url))
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    m = wait_metrics(c, lambda m: m["spans_exported"] >= 3)
    assert m == {"spans_exported": 3, "spans_dropped": 0,
                 "exports_failed": 0}, m
    bodies = [p[2] for p in collector.posts]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    # Three failures: given up after the second retry, its spans dropped.
    collector.script = [(429, "0", None), (503, "0", None), (504, "0", None)]
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    m = wait_metrics(c, lambda m: m["exports_failed"] >= 1)
    assert m == {"spans_exported": 3, "spans_dropped": 3,
                 "exports_failed": 1}, m
    assert len(collector.posts) == 6 and len(set(p[2] for p in collector.posts[3:])) == 1
    # 400 and the other 4xx are not retried.
    collector.script = [(400, "0", None)]
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    m = wait_metrics(c, lambda m: m["exports_failed"] >= 2)
    assert m["spans_dropped"] == 6 and len(collector.posts) == 7, m
    # Without Retry-After, the back-off's first step (1 s); meanwhile
    # requests go on as fast as ever.
    collector.script = [(504, None, None)]
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    deadline = time.time() + 5
    while len(collector.posts) < 8:
        assert time.time() < deadline
        time.sleep(0.02)
    t0 = time.time()
    for _ in range(10):
        assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    m = wait_metrics(c, lambda m: m["spans_exported"] >= 6)
    assert collector.posts[8][2] == collector.posts[7][2]
    assert m["spans_exported"] == 6 and m["spans_dropped"] == 6, m
    assert time.time() - t0 > 0.5  # the retry waited (1 s from the failure)
    c.stop()


def test_partial_success_counts_rejected_spans(procs, tmp_path, fakes, collector):
    """A 200 whose partialSuccess rejects spans (rejectedSpans an int64:
    a string in OTLP/JSON, a number from some servers): they count as
    dropped and errorMessage is logged, once a minute at most."""
    ps = b'{"partialSuccess":{"rejectedSpans":"2","errorMessage":"attribute limit exceeded"}}'
    collector.script = [(200, None, ps),
                        (200, None, b'{"partialSuccess":{"rejectedSpans":1}}')]
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url))
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    m = wait_metrics(c, lambda m: m["spans_exported"] + m["spans_dropped"] >= 3)
    assert m == {"spans_exported": 1, "spans_dropped": 2,
                 "exports_failed": 0}, m
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    m = wait_metrics(c, lambda m: m["spans_exported"] + m["spans_dropped"] >= 6)
    assert m == {"spans_exported": 3, "spans_dropped": 3,
                 "exports_failed": 0}, m
    log = c.stop()
    assert log.count("rejected 2 of 3 spans: attribute limit exceeded") == 1, log
    assert "rejected 1 of 3" not in log


def test_shutdown_waits_for_a_retry_only_within_its_deadline(procs, tmp_path, fakes, collector):
    """A retry due within the shutdown's deadline is made; one asked for
    later is not waited for: its spans are dropped and said."""
    collector.script = [(503, "1", None)]
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url))
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    deadline = time.time() + 5
    while not collector.posts:
        assert time.time() < deadline
        time.sleep(0.02)
    c.gw.send_signal(signal.SIGTERM)
    assert c.gw.wait(timeout=15) == 0
    assert len(collector.posts) == 2 and len(collector.spans(collector.posts[1:])) == 3
    assert "not exported" not in c.log()

    collector.posts.clear()
    collector.script = [(429, "120", None)]
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url),
                    name="gw2")
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    deadline = time.time() + 5
    while not collector.posts:
        assert time.time() < deadline
        time.sleep(0.02)
    t0 = time.time()
    c.gw.send_signal(signal.SIGTERM)
    assert c.gw.wait(timeout=15) == 0
    assert time.time() - t0 < 10
    assert len(collector.posts) == 1
    assert "3 spans were not exported at shutdown" in c.log(), c.log()

    # An export the collector refuses during the flush: its spans are
    # dropped and said, as the ones the deadline leaves.
    collector.posts.clear()
    collector.script = [(400, None, b"{}")] * 3
    c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", collector.url),
                    name="gw3")
    assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
    before = len(collector.posts)  # 1 when the export tick came first
    c.gw.send_signal(signal.SIGTERM)
    assert c.gw.wait(timeout=15) == 0
    assert len(collector.posts) == 1
    if not before:
        assert "3 spans were not exported at shutdown" in c.log(), c.log()


def test_resource_attributes_from_the_environment(procs, tmp_path, fakes, monkeypatch):
    """The OTel SDK's OTEL_RESOURCE_ATTRIBUTES (GIE's chart sets the pod's
    namespace, name and node this way): comma-separated key=value pairs,
    values percent-decoded, an invalid pair left out with a warning, the
    last of a repeated key kept; its service.name counts only without
    --otlp-service-name (or OTEL_SERVICE_NAME)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       " k8s.namespace.name = ns1 ,k8s.pod.name=gw-0,service.name=from-attrs,"
                       "no-equals,k8s.node.name=node%2C1%3Dx%20y,bad=%zz,k8s.pod.name=gw-1,")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    want = {"k8s.namespace.name": "ns1", "k8s.pod.name": "gw-1",
            "k8s.node.name": "node,1=x y"}
    pods = fakes.pods(1)
    for args, svc in (((), "from-attrs"), (("--otlp-service-name", "flagged"), "flagged")):
        col = Collector(service=svc)
        try:
            c = FakeCluster(procs, tmp_path, pods, gw_args=("--otlp-endpoint", col.url, *args),
                            name="gw-" + svc)
            assert post_json(c.base, "/v1/completions", seed_body())[0] == 200
            col.wait_spans(3)
            res = col.resources()[0]
            assert res == dict(want, **{"service.name": svc}), res
            assert list(res)[0] == "service.name"
            log = c.stop()
            assert 'OTEL_RESOURCE_ATTRIBUTES: "no-equals"' in log, log
            assert 'OTEL_RESOURCE_ATTRIBUTES: "bad=%zz"' in log, log
        finally:
            col.stop()


@pytest.mark.parametrize("cmd", ["gateway", "epp"])
@pytest.mark.parametrize("endpoint", ["127.0.0.1:4318", "https://127.0.0.1:4318", "http://"])
def test_a_refused_otlp_endpoint_ends_the_start_cleanly(tmp_path, cmd, endpoint):
    """An OTLP endpoint the tracer refuses (no scheme, https, no host)
    stops the start with its error and exit status 1, for the gateway's
    --otlp-endpoint and the picker's OTEL_EXPORTER_OTLP_ENDPOINT alike. The
    clean-up stopped worker loops that were never made: a segfault (139)."""
    import os
    import subprocess
    from conftest import IG_BIN
    from test_gateway import GATEWAY, POD, POOL, ROUTE
    d = tmp_path / "m"
    d.mkdir()
    host = unique_loopback()
    (d / "all.yaml").write_text("---\n".join([
        GATEWAY.format(port=free_port(host)),
        ROUTE.format(target_port=8000, prefix="/", timeouts=""),
        POOL.format(target_port=8000), POD.format(i=0, ip="127.0.0.1")]))
    env = dict(os.environ)
    if cmd == "gateway":
        args = [IG_BIN, "gateway", "-f", str(d), "--bind", host, "--otlp-endpoint", endpoint]
    else:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        args = [IG_BIN, "epp", "--pool-name", "qwen-pool", "-f", str(d), "--bind", host,
                "--grpc-port", str(free_port(host)), "--grpc-health-port", "0",
                "--metrics-port", "0"]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "error tracing: %s:" % endpoint in r.stderr, r.stderr
    for s in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
        assert s not in r.stderr, r.stderr
