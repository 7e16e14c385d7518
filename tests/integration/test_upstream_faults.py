"""`infergate gateway` against model servers that misbehave: fake pods
(fakepod.py) that reset parked connections, close a kept-alive connection
when the next request arrives, never answer, answer garbage, cut a stream,
send a body larger than any buffer, or die with a request in hand; and an
endpoint whose connect never completes. Each test checks the answer the
client gets and how fast, that nothing was sent to a model server twice
beyond what the retry rules allow, that the gateway keeps serving, and
that it stops cleanly (exit 0, a clean sanitizer log)."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import IG_BIN, free_port, rss_kib, unique_loopback, wait_http, wait_port
from fakepod import Blackhole, FakePod
from test_abuse import read_all
from test_gateway import (GATEWAY, POD, POOL, ROUTE, SAN_ERRORS, Cluster, assert_openai_error,
                          call, model_yaml, parallel, write)

# CPU-bound bounds get three times as long under the sanitizers.
SLOW = 3 if "build-asan" in IG_BIN else 1
SERVED = "x-gateway-destination-endpoint-served"
NEW_FLAGS = ("--upstream-connect-timeout", "--upstream-read-timeout", "--client-send-timeout",
             "--upstream-idle-timeout", "--upstream-max-idle")


class Fakes:
    """Fake pods and blackholes of one test, all stopped at teardown."""

    def __init__(self):
        self.made = []

    def pods(self, n=1, port=None, **kw):
        """n fake pods on distinct loopback addresses sharing one port (the
        pool's target port)."""
        hosts = [unique_loopback() for _ in range(n)]
        port = port or free_port(hosts[0])
        out = [FakePod(h, port, **kw) for h in hosts]
        self.made += out
        return out

    def blackhole(self, port):
        hole = Blackhole(unique_loopback(), port)
        if not hole.ok:
            pytest.skip("cannot make a connect hang on loopback here: " + hole.reason)
        self.made.append(hole)
        return hole

    def stop_all(self):
        for m in self.made:
            if isinstance(m, FakePod):
                m.stop()
            else:
                m.close()


@pytest.fixture
def fakes():
    f = Fakes()
    yield f
    f.stop_all()


class FakeCluster(Cluster):
    """test_gateway's Cluster (manifests, the gateway, stop() with its
    clean-exit checks) in front of endpoints that are not simulators."""

    def __init__(self, procs, tmp_path, endpoints, timeouts="", gw_args=(), name="gw",
                 pod_labels=None):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "manifests-" + name)
        os.makedirs(self.dir, exist_ok=True)
        self.sim_hosts = [e.host for e in endpoints]
        self.target_port = endpoints[0].port
        assert all(e.port == self.target_port for e in endpoints)
        self.sims = []
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin_host = unique_loopback()
        self.admin_port = free_port(self.admin_host)
        write(self.path("gateway.yaml"), GATEWAY.format(port=self.port))
        write(self.path("route.yaml"), ROUTE.format(target_port=self.target_port, prefix="/",
                                                    timeouts=timeouts))
        write(self.path("pool.yaml"), POOL.format(target_port=self.target_port))
        write(self.path("model.yaml"), model_yaml())
        pods = [POD.format(i=i, ip=h) for i, h in enumerate(self.sim_hosts)]
        for i, labels in enumerate(pod_labels or ()):
            extra = "".join('    "%s": "%s"\n' % kv for kv in labels.items())
            pods[i] = pods[i].replace("    app: qwen-pool\n", "    app: qwen-pool\n" + extra)
        write(self.path("pods.yaml"), "---\n".join(pods))
        self.gw = procs.start("gateway", "-f", self.dir, "--bind", self.host,
                              "--admin", "%s:%d" % (self.admin_host, self.admin_port),
                              "--workers", "2", *gw_args, name=name)
        wait_port(self.host, self.port, proc=self.gw)
        wait_http(self.admin + "/healthz", proc=self.gw)

    def scraped(self, *pods, timeout=5.0):
        """Waits until each of these endpoints has fresh metrics."""
        want = {p.address for p in pods}
        return self.wait_pools(lambda eps: want <= {
            e["address"] for e in eps
            if e["metrics_age_ms"] is not None and e["metrics_age_ms"] < 1000}, timeout)

    def alive(self):
        if self.gw.poll() is None:
            return
        log = self.log()
        found = [i for i in (log.find(s) for s in SAN_ERRORS) if i >= 0]
        at = min(found) if found else -1
        raise AssertionError("gateway exited with %s:\n%s" % (
            self.gw.returncode, log[at:at + 3000] if at >= 0 else log[-3000:]))


_ids = iter(range(1, 1 << 30))


def completion(c, test_id=None, headers=None, timeout=10):
    """A small completion through the gateway with an x-test-id of its own
    (and a prompt of its own, so prefix affinity plays no part).
    Returns (status, headers, body bytes, seconds, test id)."""
    test_id = test_id or "req-%d-%d" % (os.getpid(), next(_ids))
    body = {"model": "tweet-summary", "prompt": "prompt of %s" % test_id, "max_tokens": 1}
    t = time.monotonic()
    status, hdrs, data = call(c.base, "/v1/completions", body,
                              headers=dict({"x-test-id": test_id}, **(headers or {})),
                              timeout=timeout)
    return status, hdrs, data, time.monotonic() - t, test_id


def safe_completion(c, **kw):
    """completion()[:4], or the exception's repr as the status."""
    try:
        return completion(c, **kw)[:4]
    except Exception as e:  # noqa: BLE001 - a failed request is data here
        return repr(e), None, None, None


def assert_ok(c, n=3):
    """The gateway still serves: n completions answered 200."""
    c.alive()
    for _ in range(n):
        status, _, data, _, _ = completion(c)
        assert status == 200, (status, data)
        assert json.loads(data)["usage"]["completion_tokens"] == 1


def raw_request(test_id, stream=False):
    body = json.dumps({"model": "tweet-summary", "prompt": "prompt of %s" % test_id,
                       "max_tokens": 1, "stream": stream})
    return ("POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            "x-test-id: %s\r\nContent-Length: %d\r\n\r\n%s" % (test_id, len(body), body)).encode()


# ---- 0. what the scraper asks for ----

FAMILIES = ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
            "vllm:gpu_cache_usage_perc", "vllm:lora_requests_info")


def asked_names(r):
    return sorted(p.split("=", 1)[1] for p in r.query.split("&")
                  if p.split("=", 1)[0] == "name%5B%5D")


def test_scrape_asks_for_its_families(procs, tmp_path, fakes):
    """The scraper asks /metrics for the five families it reads, with
    prometheus_client's name[] parameters (vLLM then answers those alone),
    and for vllm:cache_config_info at the first scrape, then every 10 s, or
    every second while the pod has not given it. A pod that refuses the
    query (404) is scraped at the plain /metrics from the next scrape on,
    without leaving rotation."""
    good, strict, silent = fakes.pods(3)
    good.cache_config = (16, 9362)
    strict.metrics_query_status = 404
    c = FakeCluster(procs, tmp_path, [good, strict, silent],
                    gw_args=("--scrape-interval", "50"))
    c.scraped(good, strict, silent)
    time.sleep(1.3)
    with_cache = sorted(FAMILIES + ("vllm:cache_config_info",))
    for pod, times in ((good, 1), (silent, 2)):
        asked = [r for r in pod.requests if r.path == "/metrics"]
        assert len(asked) >= 10
        names = [asked_names(r) for r in asked]
        assert names[0] == with_cache, asked[0].query
        assert all(n in (with_cache, sorted(FAMILIES)) for n in names), names
        assert names.count(with_cache) == times, [r.query for r in asked]
    eps = {e["address"]: e for e in c.wait_pools(lambda eps: True)}
    assert (eps[good.address]["cache_block_size"], eps[good.address]["cache_gpu_blocks"]) == \
        (16, 9362)
    assert eps[silent.address]["cache_block_size"] == 0
    tried = [r for r in strict.requests if r.path == "/metrics"]
    assert tried[0].query and len(tried) >= 3
    assert all(r.query == "" for r in tried[1:]), [r.query for r in tried]
    assert "scraping the whole /metrics" in c.log()
    assert "out of rotation" not in c.log()
    served = set()
    for _ in range(20):
        status, hdrs, _, _, _ = completion(c)
        assert status == 200
        served.add(hdrs[SERVED])
    assert len(served) == 3, served
    c.stop()


def test_scrape_of_a_page_over_the_ceiling_backs_off(procs, tmp_path, fakes):
    """A pod whose /metrics page is over the scraper's 8 MiB ceiling is not
    read to its end at every interval: the scrape stops at the ceiling and
    the pod is asked again after 1 s, then 2 s (it was asked about every
    interval, 20 MB a time); a pod with a normal page is scraped as usual
    meanwhile, and the big one's warning is written once."""
    big, small = fakes.pods(2)
    big.metrics_text = "# " + "x" * (20 << 20) + "\n"
    c = FakeCluster(procs, tmp_path, [big, small], gw_args=("--scrape-interval", "50"))
    c.scraped(small)
    time.sleep(2.5)
    asked = big.metrics_count()
    assert 1 <= asked <= 3, asked
    assert small.metrics_count() >= 20
    assert c.log().count("%s: its metrics page is over 8 MiB" % big.address) == 1
    c.stop()


def test_scrape_follows_a_redirect_to_the_pod(procs, tmp_path, fakes):
    """A pod whose /metrics answers 307 to /metrics/ (vLLM's prometheus
    app mounted by Starlette, where vLLM has not routed around it) is
    scraped there, as Go's HTTP client in GIE's scraper follows redirects:
    its figures are read and it stays in rotation. Relative and absolute
    Locations are followed to the pod itself only: a redirect to another
    address is a failed scrape (that page is not this pod's load)."""
    absolute, relative, elsewhere = fakes.pods(3)
    absolute.metrics_redirect = "http://{addr}/metrics/"
    relative.metrics_redirect = "metrics/"
    elsewhere.metrics_redirect = "http://%s/metrics/" % absolute.address
    absolute.waiting, relative.waiting, elsewhere.waiting = 7, 5, 3
    c = FakeCluster(procs, tmp_path, [absolute, relative, elsewhere],
                    gw_args=("--scrape-interval", "50"))
    eps = c.wait_pools(lambda eps: all(
        e["metrics_age_ms"] is not None for e in eps if e["address"] != elsewhere.address))
    eps = {e["address"]: e for e in eps}
    assert eps[absolute.address]["waiting"] == 7, eps
    assert eps[relative.address]["waiting"] == 5, eps
    time.sleep(0.5)
    for pod in (absolute, relative):
        followed = [r for r in pod.requests if r.path == "/metrics/"]
        assert followed and all(asked_names(r) for r in followed), [r.query for r in followed]
    assert not [r for r in elsewhere.requests if r.path == "/metrics/"]
    eps = {e["address"]: e for e in c.wait_pools(lambda eps: True)}
    assert eps[elsewhere.address]["metrics_age_ms"] is None, eps
    log = c.log()
    assert "%s: 3 metrics scrapes failed" % elsewhere.address in log
    assert "%s: 3 metrics scrapes failed" % absolute.address not in log
    assert "%s: 3 metrics scrapes failed" % relative.address not in log
    c.stop()


def test_destination_endpoint_header_reaches_the_pod(procs, tmp_path, fakes):
    """The pod hears which endpoint was picked in x-gateway-destination-endpoint,
    as GIE's picker sets it on the request; a client's own copies of that
    header and of x-gateway-destination-endpoint-served never reach it."""
    pods = fakes.pods(2)
    c = FakeCluster(procs, tmp_path, pods)
    c.scraped(*pods)
    for forged in (None, pods[1].address):
        hdrs = {} if forged is None else {
            "x-gateway-destination-endpoint": forged,
            "x-gateway-destination-endpoint-served": "evil"}
        status, rh, _, _, test_id = completion(c, headers=hdrs)
        assert status == 200
        served = rh[SERVED]
        pod = next(p for p in pods if p.address == served)
        got = pod.completions(test_id)
        assert len(got) == 1
        assert got[0].headers.get("x-gateway-destination-endpoint") == served
        assert "x-gateway-destination-endpoint-served" not in got[0].headers
        # The client's Host goes on to a pool's pod too, as Envoy keeps it
        # (GIE's conformance tests compare it).
        assert got[0].headers.get("host") == c.base.split("//", 1)[1]
    c.stop()


# ---- 1. resets on parked upstream connections ----

@pytest.mark.parametrize("path", ["requests", "scraper"])
def test_reset_on_parked_connections(procs, tmp_path, fakes, path):
    """The pod resets every connection that stays idle after an answer:
    either the gateway's parked request connections (after 100 ms) or its
    kept-alive scraper connection (after 30 ms, between two scrapes).
    Round after round the gateway answers 200 and keeps scraping; it does
    not crash."""
    pod, = fakes.pods(1)
    if path == "requests":
        pod.rst_idle_ms = 100
    else:
        pod.rst_metrics_idle_ms = 30
    c = FakeCluster(procs, tmp_path, [pod], gw_args=("--scrape-interval", "150"))
    c.scraped(pod)
    for rnd in range(6):
        results = parallel(8, 4, lambda i: safe_completion(c))
        c.alive()
        assert [r[0] for r in results] == [200] * 8, (rnd, results)
        assert max(r[3] for r in results) < 2.0 * SLOW, (rnd, results)
        time.sleep(0.35)  # every parked connection is reset meanwhile
        c.alive()
    # The resets really happened, on the connections meant.
    kind = "completion" if path == "requests" else "metrics"
    resets = pod.events_of("rst_sent")
    assert sum(e.detail == kind for e in resets) >= 6, resets
    # Every request reached the pod once and was answered.
    assert len(pod.completions()) == 6 * 8
    assert all(r.outcome == "answered" for r in pod.completions())
    # The scraper reconnects after each reset: scrapes keep coming.
    n = pod.metrics_count()
    time.sleep(0.6)
    assert pod.metrics_count() >= n + 2
    c.scraped(pod)
    assert_ok(c)
    c.stop()


# ---- 2. the idle-close race on a one-pod pool ----

@pytest.mark.parametrize("how", ["fin", "rst"])
def test_idle_close_race_one_pod(procs, tmp_path, fakes, how):
    """The pod closes a kept-alive connection when the next request arrives
    on it (what a keep-alive timeout firing just then looks like). The
    gateway retries that request once on a fresh connection: every request
    gets 200 and none reaches the pod more than twice. That retry does not
    use up a fallback slot, so it happens even with --max-attempts 1."""
    pod, = fakes.pods(1, mode="close_on_reuse", how=how)
    c = FakeCluster(procs, tmp_path, [pod], gw_args=("--max-attempts", "1"))
    c.scraped(pod)
    n = 12
    for i in range(n):
        status, _, data, took, tid = completion(c, "race-%d" % i)
        assert status == 200, (i, status, data, pod.completions("race-%d" % i))
        assert took < 2.0 * SLOW, (i, took)
    drops = 0
    for i in range(n):
        arrivals = pod.completions("race-%d" % i)
        answered = [r for r in arrivals if r.outcome == "answered"]
        dropped = [r for r in arrivals if r.outcome == "dropped"]
        assert len(answered) == 1 and len(arrivals) <= 2, arrivals
        for r in dropped:
            assert r.nth > 1, arrivals  # only a reused connection was dropped
            assert answered[0].nth == 1, arrivals  # the retry went on a fresh one
        drops += len(dropped)
    # The gateway did keep connections alive and meet the race.
    assert drops >= n // 2, pod.completions()
    assert_ok(c)
    c.stop()


# ---- 3. connects that never complete ----

def test_help_lists_upstream_flags(ig_bin):
    r = subprocess.run([ig_bin, "gateway", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    missing = [f for f in NEW_FLAGS if f not in r.stdout]
    assert not missing, "not in --help: %s\n%s" % (missing, r.stdout)


def test_connect_timeout_blackholed_endpoint(procs, tmp_path, fakes):
    port = free_port()
    hole = fakes.blackhole(port)
    # A pool of that endpoint alone: 502 once the connect timeout expires.
    c1 = FakeCluster(procs, tmp_path, [hole], name="hole-only",
                     gw_args=("--upstream-connect-timeout", "500"))
    for _ in range(2):
        status, _, data, took, _ = completion(c1)
        err = assert_openai_error(status, data, 502)
        assert "no model server could be reached" in err["message"], err
        assert 0.4 < took < 2.0, took
    c1.alive()
    c1.stop()
    # With a good endpoint beside it: 200. The good pod reports load and
    # the blackholed endpoint, never scraped, counts as idle, so the picker
    # ranks the blackholed one first and the gateway must move on to the
    # good one when the connect times out. Scrapes of the blackholed one
    # fail; --unhealthy-after keeps it in rotation for the test.
    good, = fakes.pods(1, port=port, waiting=20, running=20, kv=0.9)
    c2 = FakeCluster(procs, tmp_path, [hole, good], name="hole-and-good",
                     gw_args=("--upstream-connect-timeout", "500", "--unhealthy-after", "1000"))
    c2.scraped(good)
    both = "%s,%s" % (hole.address, good.address)
    took = []
    for _ in range(3):
        status, headers, data, t, tid = completion(
            c2, headers={"test-epp-endpoint-selection": both})
        assert status == 200, (status, data)
        assert headers[SERVED] == good.address
        assert len(good.completions(tid)) == 1
        assert t < 2.0, t
        took.append(t)
    assert max(took) > 0.4, ("the blackholed endpoint was never tried first", took)
    assert_ok(c2)
    c2.stop()


# ---- 4. an upstream that never answers ----

@pytest.mark.parametrize("case", ["read-timeout", "route-timeout"])
def test_upstream_never_answers(procs, tmp_path, fakes, case):
    pod, = fakes.pods(1, mode="hold")
    if case == "read-timeout":
        c = FakeCluster(procs, tmp_path, [pod], gw_args=("--upstream-read-timeout", "1000"))
        lo, hi = 0.9, 3.0
    else:
        c = FakeCluster(procs, tmp_path, [pod], timeouts="    timeouts:\n      request: 500ms\n")
        lo, hi = 0.4, 1.5
    c.scraped(pod)
    status, _, data, took, tid = completion(c)
    err = assert_openai_error(status, data, 504)
    assert err["type"] == "timeout", err
    assert lo < took < hi, took
    answered_at = time.monotonic()
    # Sent once, and the gateway hung up on the silent pod.
    held = pod.completions(tid)
    assert len(held) == 1, held
    gone = pod.wait_event("eof", "reset", conn=held[0].conn, timeout=1.0 * SLOW)
    assert gone is not None, "the connection to the silent pod stayed open"
    assert gone.t - answered_at < 1.0 * SLOW
    pod.set("json")
    assert_ok(c)
    c.stop()


# ---- 5. garbage instead of HTTP ----

def test_garbage_response(procs, tmp_path, fakes):
    """502 at once and no retry: with two pods answering garbage, each
    request reaches exactly one of them."""
    pods = fakes.pods(2, mode="garbage")
    c = FakeCluster(procs, tmp_path, pods)
    c.scraped(*pods)
    for _ in range(4):
        status, _, data, took, tid = completion(c)
        assert_openai_error(status, data, 502)
        assert took < 1.0 * SLOW, took
        arrivals = pods[0].completions(tid) + pods[1].completions(tid)
        assert len(arrivals) == 1, arrivals
    for p in pods:
        p.set("json")
    assert_ok(c)
    c.stop()


# ---- 6. an upstream that closes mid-stream ----

def test_upstream_closes_mid_sse(procs, tmp_path, fakes):
    pod, = fakes.pods(1, mode="sse_cut", events=20, interval_ms=50, cut_after=3)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 20, "stream": True}
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    got, incomplete = b"", False
    try:
        while True:
            b = resp.read1(65536)
            if not b:
                break
            got += b
    except http.client.IncompleteRead as e:
        got += e.partial
        incomplete = True
    ended = time.monotonic()
    conn.close()
    assert incomplete, "the cut stream ended like a complete one: %r" % got[-200:]
    assert 1 <= got.count(b"data: ") <= 3, got
    cut = pod.wait_event("closed", timeout=1.0)
    assert cut is not None and ended - cut.t < 1.0, (cut, ended)
    # Sent once: nothing is retried after the first byte.
    assert len(pod.completions()) == 1
    # The next requests work: a whole stream, then a plain answer.
    pod.set("sse", events=3, interval_ms=10)
    conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    events = [e for e in resp.read().split(b"\n\n") if e]
    conn.close()
    assert len(events) == 4 and events[-1] == b"data: [DONE]", events
    pod.set("json")
    assert_ok(c)
    c.stop()


@pytest.mark.parametrize("length,partial,how", [(100, 10, "fin"), (None, 0, "rst")],
                         ids=["length-fin", "chunked-rst"])
def test_upstream_dies_after_head(procs, tmp_path, fakes, length, partial, how):
    """A pod that dies right after its response head (in the same packet):
    the client gets the head and whatever body came, then the connection
    ends short of the announced length (or without the last chunk), so it
    knows the answer is incomplete; the request is not sent again."""
    pod, = fakes.pods(1, mode="head_cut", length=length, partial=partial, how=how)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    s = socket.create_connection((c.host, c.port), timeout=5)
    s.sendall(raw_request("head-cut"))
    got = read_all(s)
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), got
    if length is None:
        assert b"transfer-encoding: chunked" in head.lower(), head
        assert not body.endswith(b"0\r\n\r\n"), body
    else:
        assert b"content-length: %d" % length in head.lower(), head
        assert len(body) == partial, body
    assert len(pod.completions("head-cut")) == 1
    pod.set("json")
    assert_ok(c)
    c.stop()


# ---- 7. a client that stops reading a huge answer ----

def read_until_closed(s, deadline_s, cap):
    """Reads until EOF or a reset; returns (bytes read, how it ended)."""
    s.settimeout(0.5)
    total = 0
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and total < cap:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return total, "reset"
        if not b:
            return total, "eof"
        total += len(b)
    return total, "open"


def test_client_stops_reading_huge_stream(procs, tmp_path, fakes):
    pod, = fakes.pods(1, mode="huge", size=1 << 30)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    rss0 = rss_kib(c.gw.pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(5)
    s.connect((c.host, c.port))
    s.sendall(raw_request("huge-1"))
    got = b""
    while len(got) < (1 << 20):
        b = s.recv(65536)
        assert b, got[:200]
        got += b
    assert got.startswith(b"HTTP/1.1 200 "), got[:200]
    # The client sits there: the gateway holds the pod back instead of
    # buffering the answer.
    peak = 0
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        peak = max(peak, rss_kib(c.gw.pid) - rss0)
        time.sleep(0.1)
    c.alive()
    assert peak < 64 * 1024, "RSS grew by %d KiB" % peak
    sent = pod.completions("huge-1")[0]
    assert sent.outcome == "huge"  # still sending: not finished
    # The client goes away: the pod's connection is closed at once.
    closed_at = time.monotonic()
    s.close()
    gone = pod.wait_event("send_error", "eof", "reset", conn=sent.conn, after=closed_at,
                          timeout=1.0 * SLOW)
    assert gone is not None, "the pod kept sending after the client left"
    assert gone.t - closed_at < 1.0 * SLOW
    pod.set("json")
    assert_ok(c)
    c.stop()


def test_client_send_timeout(procs, tmp_path, fakes):
    """A client that stays connected and never reads is closed after
    --client-send-timeout, and so is the upstream connection of its request."""
    pod, = fakes.pods(1, mode="huge", size=1 << 30)
    c = FakeCluster(procs, tmp_path, [pod], gw_args=("--client-send-timeout", "1000"))
    c.scraped(pod)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(5)
    s.connect((c.host, c.port))
    sent_at = time.monotonic()
    s.sendall(raw_request("stuck-1"))
    arrived = pod.wait_requests(1, timeout=2, test_id="stuck-1")
    assert len(arrived) == 1
    gone = pod.wait_event("send_error", "eof", "reset", conn=arrived[0].conn,
                          timeout=1.0 + 3.0 * SLOW)
    assert gone is not None, "the upstream connection stayed open"
    assert 0.9 < gone.t - sent_at < 1.0 + 2.0 * SLOW, gone.t - sent_at
    # The client's connection was closed too: what it reads now ends.
    total, how = read_until_closed(s, 5.0, 256 << 20)
    s.close()
    assert how in ("eof", "reset"), (total, how)
    assert total < (1 << 30)
    c.alive()
    pod.set("json")
    assert_ok(c)
    c.stop()


# ---- 8. a pod that drops a request on a fresh connection ----

@pytest.mark.parametrize("how", ["fin", "rst"])
def test_fresh_connection_dropped_pod_alive(procs, tmp_path, fakes, how):
    """A request written whole on a fresh connection that the pod closes
    unanswered while it still accepts connections may have started a
    generation: 503 (as Envoy answers a reset before the response), and it
    is not sent again (with two such pods, each
    request reaches exactly one of them)."""
    pods = fakes.pods(2, mode="close", how=how)
    c = FakeCluster(procs, tmp_path, pods)
    c.scraped(*pods)
    for _ in range(3):
        status, _, data, took, tid = completion(c)
        assert_openai_error(status, data, 503)
        assert took < 2.0 * SLOW, took
        arrivals = pods[0].completions(tid) + pods[1].completions(tid)
        assert len(arrivals) == 1, arrivals
        assert arrivals[0].nth == 1  # a fresh connection
    for p in pods:
        p.set("json")
    assert_ok(c)
    c.stop()


def request_held(c, pods, test_id):
    """Sends a completion from a thread to two pods in "hold" mode and
    waits until one holds it; the other then answers. Returns the thread,
    its result ({"r": safe_completion(), "t": when it ended}), the holder
    and the other pod."""
    out = {}

    def client():
        out["r"] = safe_completion(c, test_id=test_id)
        out["t"] = time.monotonic()

    t = threading.Thread(target=client)
    t.start()
    deadline = time.monotonic() + 5
    holder = None
    while holder is None and time.monotonic() < deadline:
        holder = next((p for p in pods if p.completions(test_id)), None)
        time.sleep(0.02)
    assert holder is not None, "no pod got the request"
    other = pods[1] if holder is pods[0] else pods[0]
    other.set("json")
    return t, out, holder, other


@pytest.mark.parametrize("listener_lag", [0.0, 0.06])
def test_pod_killed_with_request_held(procs, tmp_path, fakes, listener_lag):
    """The pod holding the request dies (its listener goes with it): the
    request is served by the other pod. Linux closes a killed process's
    connections before its listener, and on a busy node the listener can
    outlive them by tens of milliseconds (listener_lag): probes that still
    get in do not make the request a 502."""
    pods = fakes.pods(2, mode="hold")
    c = FakeCluster(procs, tmp_path, pods)
    c.scraped(*pods)
    t, out, holder, other = request_held(c, pods, "held-1")
    killed_at = time.monotonic()
    holder.kill(listener_lag)
    t.join(timeout=10)
    assert not t.is_alive()
    status, headers, data, _ = out["r"]
    assert status == 200, (status, data)
    assert headers[SERVED] == other.address
    assert out["t"] - killed_at < 2.0 * SLOW
    assert len(holder.completions("held-1")) == 1
    assert len(other.completions("held-1")) == 1
    assert_ok(c)
    c.stop()


def slow_down(pid):
    """Pins every thread of pid to one CPU (the first this test may use)
    under SCHED_IDLE, beside a busy loop on that CPU: the process gets a
    fraction of a CPU and sees its socket events late, while the kernel
    (and this test, on another CPU) goes on at full speed. A thread that
    has ended meanwhile is skipped. Returns the busy loop; kill it to end
    this."""
    cpu = {min(os.sched_getaffinity(0))}
    hog = subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"],
                           preexec_fn=lambda: os.sched_setaffinity(0, cpu))
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setaffinity(int(tid), cpu)
            os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
        except ProcessLookupError:
            pass
    return hog


def test_pod_killed_probe_reset(procs, tmp_path, fakes):
    """The pod holding the request dies; its listener outlives its
    connections and, closing, resets the connections in its queue, among
    them the gateway's probe, which a gateway short of CPU sees reset before
    it saw it connect. That is no sign of a live pod: the probes go on until
    one is refused, and the request is served by the other pod (a CI run
    answered it 502)."""
    pods = fakes.pods(2, mode="hold")
    c = FakeCluster(procs, tmp_path, pods)
    c.scraped(*pods)
    t, out, holder, other = request_held(c, pods, "held-1")
    hog = slow_down(c.gw.pid)
    try:
        holder.kill(0.1, reset_new=True)
        t.join(timeout=10)
    finally:
        hog.kill()
        hog.wait()
    assert not t.is_alive()
    status, headers, data, _ = out["r"]
    assert status == 200, (status, data)
    assert headers[SERVED] == other.address
    assert holder.events_of("reset-new"), "no probe reached the dying listener"
    assert len(other.completions("held-1")) == 1
    c.stop()


# ---- usage read from what pods answer ----

def metric_total(c, series):
    """The values of every series whose name starts with `series`, summed,
    from /metrics."""
    status, _, data = call(c.admin, "/metrics")
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in data.decode().splitlines()
               if line.startswith(series))


def metric_sum(c, name):
    """The _sum of a histogram family over its series."""
    return metric_total(c, name + "_sum")


def metric_count(c, name):
    """The _count of a histogram family over its series."""
    return metric_total(c, name + "_count")


def assert_tokens(c, out, inp):
    """The token histograms come to out and inp (a request is recorded
    once its answer ended)."""
    deadline = time.monotonic() + 3
    while metric_sum(c, "inference_model_output_tokens") != out and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric_sum(c, "inference_model_output_tokens") == out
    assert metric_sum(c, "inference_model_input_tokens") == inp


@pytest.mark.parametrize("space", [True, False], ids=["data-space", "data-nospace"])
def test_usage_from_streams(procs, tmp_path, fakes, space):
    """The final chunk's usage is counted whether `data:` is followed by a
    space or not (both are valid SSE), and the null usage of the other
    chunks is ignored."""
    [pod] = fakes.pods(mode="sse", events=4, interval_ms=1, space=space,
                    usage={"prompt_tokens": 17, "completion_tokens": 4, "total_tokens": 21})
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    body = json.dumps({"model": "tweet-summary", "prompt": "p", "max_tokens": 4,
                       "stream": True}).encode()
    status, _, data = call(c.base, "/v1/completions", raw=body)
    assert status == 200 and data.count(b"data:") == 5, data
    assert_tokens(c, 4, 17)
    c.stop()


@pytest.mark.parametrize("ctype", [b"Text/Event-Stream; charset=utf-8", b"TEXT/EVENT-STREAM"])
def test_usage_from_streams_any_case(procs, tmp_path, fakes, ctype):
    """A media type compares without regard to case (RFC 9110 §8.3.1): a
    stream sent as Text/Event-Stream is read for its usage like any."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype +
            b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3,
                                      "total_tokens": 10}}
    [pod] = fakes.pods(mode="raw", keep=True, data=head + sse_chunk(
        {"choices": [{"index": 0, "text": " hi", "finish_reason": None}]}, usage,
        b"[DONE]") + b"0\r\n\r\n")
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    body = json.dumps({"model": "tweet-summary", "prompt": "p", "stream": True}).encode()
    status, _, data = call(c.base, "/v1/completions", raw=body)
    assert status == 200 and data.count(b"data:") == 3, data
    assert_tokens(c, 3, 7)
    c.stop()


def test_usage_from_json_with_decoys(procs, tmp_path, fakes):
    """A non-streamed answer's usage is the top-level member, not the word
    "usage" inside the generated text; a long text (more than the few KiB
    the gateway keeps of a body) does not hide it."""
    decoy = '"usage": {"prompt_tokens": 999, "completion_tokens": 999} ' * 400
    [pod] = fakes.pods(mode="json", tokens=7, prompt_tokens=11, text=decoy)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    status, _, data, _, _ = completion(c)
    assert status == 200 and len(data) > 20000
    assert json.loads(data)["usage"]["completion_tokens"] == 7
    assert_tokens(c, 7, 11)
    c.stop()


# ---- 12. responses that cannot be passed on ----

def refused_response(c, pod, data):
    """The pod answers data: the client gets 502 at once, the request is not
    sent again, and the gateway closes the connection the answer came on
    instead of parking it for another request."""
    pod.set("raw", data=data)
    status, _, body, took, tid = completion(c)
    assert_openai_error(status, body, 502)
    assert took < 1.0 * SLOW, took
    got = pod.completions(tid)
    assert len(got) == 1, got
    assert pod.wait_event("eof", "reset", conn=got[0].conn), pod.events


def test_unknown_transfer_coding_refused(procs, tmp_path, fakes):
    """RFC 9112 §6.1: a response whose Transfer-Encoding is anything but
    chunked cannot be passed on (the body would reach the client still
    coded, without the field that says so): 502, as nginx answers "upstream
    sent unknown Transfer-Encoding"."""
    pod, = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    for te, body in ((b"gzip", b"xyz"), (b"gzip, chunked", b"3\r\nxyz\r\n0\r\n\r\n")):
        refused_response(c, pod, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: " + te + b"\r\n\r\n" + body)
    pod.set("json")
    assert_ok(c)
    c.stop()


def test_status_out_of_range_refused(procs, tmp_path, fakes):
    """RFC 9110 §15: a status code is of 100 to 599; a pod that answers 600
    or 999 gave no answer to pass on: 502, the connection closed."""
    pod, = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    for status in (b"600", b"999"):
        refused_response(c, pod, b"HTTP/1.1 " + status + b" Odd\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 2\r\n\r\n{}")
    pod.set("json")
    assert_ok(c)
    c.stop()


def test_response_head_over_limit_refused(procs, tmp_path, fakes):
    """A response head over the 64 KiB limit is refused however it arrives:
    130 KB sent at once (the gateway may read it in one go) is as much a
    502 as a head that trickles in."""
    pod, = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    fields = b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 2590) for i in range(50))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n" + fields
    assert len(head) > 130000
    refused_response(c, pod, head + b"\r\n{}")
    pod.set("json")
    assert_ok(c)
    c.stop()


def test_bad_chunk_with_the_head_refused(procs, tmp_path, fakes):
    """A malformed chunked body that comes with the response head (a bad
    size, an overflowing one) fails the answer before its head goes out:
    the client gets 502, not a connection closed without a byte. (One that
    comes after the head cuts the answer: test_upstream_dies_after_head.)"""
    pod, = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    for body in (b"zz\r\n", b"fffffffffffffffffff\r\n", b"2\r\n{}\r\nzz\r\n"):
        refused_response(c, pod, head + body)
    pod.set("json")
    assert_ok(c)
    c.stop()


@pytest.mark.parametrize("extra,close", [
    (b"", True),
    (b"Content-Length: 3\r\n", True),
    (b"Connection: keep-alive\r\n", False),
], ids=["close", "with-length", "keep-alive"])
def test_chunked_from_http10_pod_is_decoded(procs, tmp_path, fakes, extra, close):
    """RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means its
    framing is faulty, yet chunked is what the pod says it sent: the body
    is decoded (as Envoy's codec decodes it, whatever the version), the
    Content-Length beside it ignored, and the pod's connection closed after
    it, never reused. It was read until the pod closed, chunk lines and
    all, and a pod that kept the connection open left the client's
    response without an end."""
    pod, = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    body = b'{"id":"ten"}'
    pod.set("raw", close=close, data=b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n" +
            extra + b"Transfer-Encoding: chunked\r\n\r\n" +
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    s = socket.create_connection((c.host, c.port), timeout=10)
    s.sendall(raw_request("ten").replace(b"Host: gw\r\n", b"Host: gw\r\nConnection: close\r\n"))
    got = read_all(s, 3)
    s.close()
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), got
    assert b"transfer-encoding: chunked" in head.lower(), got
    assert rest == b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), got
    (r,) = pod.completions("ten")
    assert pod.wait_event("eof", "reset", "closed", conn=r.conn), pod.events
    pod.set("json")
    assert_ok(c)
    assert all(x.conn != r.conn for x in pod.completions() if x is not r)
    c.stop()


# ---- 13. fields for one connection only ----

def test_connection_nominated_fields_not_forwarded(procs, tmp_path, fakes):
    """RFC 9110 §7.6.1: a field that a Connection field names is for that
    connection alone, and an intermediary removes it: the client's
    "Connection: close, X-Foo" keeps X-Foo from the pod, and the pod's
    "Connection: X-Secret" keeps X-Secret from the client; other fields go
    through."""
    pod, = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    body = b"{}"
    pod.set("raw", keep=True, data=b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Connection: keep-alive, X-Secret\r\nX-Secret: s3cr3t\r\nX-Public: p\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    req = raw_request("conn-opts").replace(
        b"Host: gw\r\n", b"Host: gw\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\n")
    s = socket.create_connection((c.host, c.port), timeout=5)
    s.sendall(req)
    got = read_all(s)
    s.close()
    head = got.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200 "), got
    assert b"x-public: p" in head and b"x-secret" not in head, head
    (r,) = pod.completions("conn-opts")
    assert "x-foo" not in r.headers and r.headers.get("x-bar") == "2", r.headers
    pod.set("json")
    assert_ok(c)
    c.stop()


# ---- 14. who ended a request: the drain deadline, a client's FIN ----

def access_lines(path, n, timeout=5.0):
    """The access log's first n JSON lines, once written (every 100 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                lines = [json.loads(x) for x in f.read().split("\n") if x]
        except FileNotFoundError:
            lines = []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def by_client(lines, sock):
    me = "%s:%d" % sock.getsockname()[:2]
    return [x for x in lines if x["client"] == me]


def test_drain_deadline_names_the_drain(procs, tmp_path, fakes):
    """At the end of --drain-timeout the gateway ends what is still in
    flight, and says that it did: a request still waiting for its pod is
    answered 503 with Connection: close (over HTTP/2, a 503 on its stream
    after the GOAWAY), a response already streaming is cut and keeps its
    status; the access log gives the drain as the reason of both. They
    were logged as 499, "the client closed the connection", which blames
    a client that did nothing."""
    h2conn = pytest.importorskip("h2.connection")
    import h2.config
    pod, = fakes.pods(1)
    alog = os.path.join(str(tmp_path), "access.log")
    c = FakeCluster(procs, tmp_path, [pod],
                    gw_args=("--drain-timeout", "300ms", "--access-log", alog))
    c.scraped(pod)
    pod.set("hold")
    waiting = socket.create_connection((c.host, c.port), timeout=10)
    waiting.sendall(raw_request("drain-wait"))
    h2s = socket.create_connection((c.host, c.port), timeout=10)
    conn = h2conn.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    body = json.dumps({"model": "tweet-summary", "prompt": "drain over h2", "max_tokens": 1})
    conn.send_headers(1, [(":method", "POST"), (":path", "/v1/completions"),
                          (":scheme", "http"), (":authority", "gw"),
                          ("content-type", "application/json"), ("x-test-id", "drain-h2"),
                          ("content-length", str(len(body)))])
    conn.send_data(1, body.encode(), end_stream=True)
    h2s.sendall(conn.data_to_send())
    pod.wait_requests(1, test_id="drain-wait")
    pod.wait_requests(1, test_id="drain-h2")
    pod.set("raw", data=b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nf\r\ndata: {\"a\":1}\n\n\r\n")
    streaming = socket.create_connection((c.host, c.port), timeout=10)
    streaming.sendall(raw_request("drain-stream", stream=True))
    got = b""
    while b"data: " not in got:
        d = streaming.recv(65536)
        assert d, got
        got += d
    c.gw.send_signal(signal.SIGTERM)
    out = read_all(waiting, 10)
    head = out.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 503 "), out
    assert b"connection: close" in head, out
    assert b"shut down" in out, out
    got += read_all(streaming, 10)
    assert not got.endswith(b"0\r\n\r\n"), got
    # The frames by hand: the h2 package takes nothing after a GOAWAY.
    import hpack
    raw = read_all(h2s, 10)
    h2status, at = None, 0
    while at + 9 <= len(raw) and h2status is None:
        n, kind, sid = int.from_bytes(raw[at:at + 3], "big"), raw[at + 3], \
            int.from_bytes(raw[at + 5:at + 9], "big") & 0x7fffffff
        if kind == 1 and sid == 1:  # HEADERS of the request's stream
            h2status = dict(hpack.Decoder().decode(raw[at + 9:at + 9 + n]))[":status"]
        at += 9 + n
    assert h2status == "503", raw
    rc = c.gw.wait(timeout=10)
    log = c.log()
    for s in SAN_ERRORS:
        assert s not in log, log
    assert rc == 0, log
    lines = access_lines(alog, 3)
    (w,) = by_client(lines, waiting)
    assert w["status"] == 503 and "drain" in w["reason"], w
    (s,) = by_client(lines, streaming)
    assert s["status"] == 200 and "drain" in s["reason"], s
    (h,) = by_client(lines, h2s)
    assert h["status"] == 503 and "drain" in h["reason"], h
    for sock in (waiting, streaming, h2s):
        sock.close()


def test_client_half_close_is_the_client_leaving(procs, tmp_path, fakes):
    """A client that sends its whole request and then shuts its side
    (FIN) has left, as nginx (499 with proxy_ignore_client_abort off),
    Envoy's connection manager and vLLM's uvicorn (http.disconnect, which
    aborts the generation) take it: the pod's connection is closed at once,
    not when the pod answers, and the access log says 499."""
    pod, = fakes.pods(1)
    alog = os.path.join(str(tmp_path), "access.log")
    c = FakeCluster(procs, tmp_path, [pod], gw_args=("--access-log", alog))
    c.scraped(pod)
    pod.set("hold")
    s = socket.create_connection((c.host, c.port), timeout=10)
    s.sendall(raw_request("half-close"))
    (r,) = pod.wait_requests(1, test_id="half-close")
    s.shutdown(socket.SHUT_WR)
    assert pod.wait_event("eof", "reset", conn=r.conn, timeout=5) is not None, pod.events
    assert read_all(s, 5) == b""
    (line,) = by_client(access_lines(alog, 1), s)
    assert line["status"] == 499 and "client closed" in line["reason"], line
    s.close()
    pod.set("json")
    assert_ok(c, 1)
    c.stop()


def sse_chunk(*events):
    body = b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n"
                    for e in events)
    return b"%x\r\n%s\r\n" % (len(body), body)


@pytest.mark.parametrize("first,later", [
    ({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
     {"choices": [{"index": 0, "delta": {"content": "hi"}}]}),
    ({"choices": [{"index": 0, "text": "", "finish_reason": None}]},
     {"choices": [{"index": 0, "text": " hi", "finish_reason": None}]}),
    ({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None,
                                         "tool_calls": []}}]},
     {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
         "arguments": "{}"}}]}}]}),
    ({"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
     {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]}),
    # Anthropic Messages: the message, the content block and pings come
    # before the first delta.
    ([{"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                                            "content": [], "model": "m"}},
      {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
      {"type": "ping"}],
     {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
    # Responses API: created, in progress, the output item and its
    # content part come before the first text delta.
    ([{"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
      {"type": "response.in_progress", "response": {"id": "r", "status": "in_progress"}},
      {"type": "response.output_item.added", "output_index": 0,
       "item": {"type": "message", "role": "assistant", "content": []}},
      {"type": "response.content_part.added", "output_index": 0, "content_index": 0,
       "part": {"type": "output_text", "text": ""}}],
     {"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
      "delta": "hi"}),
    # A reasoning model's Responses stream: the reasoning item and its
    # (summary) part are added before the first reasoning delta.
    ([{"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
      {"type": "response.output_item.added", "output_index": 0,
       "item": {"type": "reasoning", "summary": []}},
      {"type": "response.reasoning_part.added", "output_index": 0, "content_index": 0,
       "part": {"type": "reasoning_text", "text": ""}},
      {"type": "response.reasoning_summary_part.added", "output_index": 0, "summary_index": 0,
       "part": {"type": "summary_text", "text": ""}}],
     {"type": "response.reasoning_text.delta", "output_index": 0, "content_index": 0,
      "delta": "hmm"}),
], ids=["chat-role", "completions-empty-text", "tool-call", "reasoning", "anthropic",
        "responses", "responses-reasoning"])
def test_ttft_skips_events_without_output(procs, tmp_path, fakes, first, later):
    """The access log's ttft_ms is the time to the first event with output:
    a chat stream's role chunk or an empty text, sent with the head, is
    not one. The pod sends those at once and the output 300 ms later, so
    the TTFT is at least that (a bound a slow machine cannot break)."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    firsts = first if isinstance(first, list) else [first]
    [pod] = fakes.pods(mode="raw", keep=True, data=head + sse_chunk(*firsts), delay_ms=300,
                       later=sse_chunk(later, b"[DONE]") + b"0\r\n\r\n")
    log = os.path.join(str(tmp_path), "access.log")
    c = FakeCluster(procs, tmp_path, [pod], gw_args=("--access-log", log))
    c.scraped(pod)
    body = json.dumps({"model": "tweet-summary", "prompt": "p", "max_tokens": 4,
                       "stream": True}).encode()
    status, _, data = call(c.base, "/v1/completions", raw=body)
    assert status == 200 and data.count(b"data:") == len(firsts) + 2, data
    deadline = time.monotonic() + 5
    while not (os.path.exists(log) and open(log).read().strip()):
        assert time.monotonic() < deadline, "no access-log line"
        time.sleep(0.05)
    line = json.loads(open(log).read().splitlines()[0])
    assert 300 <= line["ttft_ms"] <= line["duration_ms"], line
    c.stop()


def streamed_metrics(procs, tmp_path, fakes, now, later, delay_ms):
    """A chat stream whose pod sends the head and `now` at once and `later`
    delay_ms after: the TTFT and TPOT histograms' counts and sums."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    [pod] = fakes.pods(mode="raw", keep=True, data=head + sse_chunk(*now), delay_ms=delay_ms,
                       later=sse_chunk(*later) + b"0\r\n\r\n")
    c = FakeCluster(procs, tmp_path, [pod])
    c.scraped(pod)
    body = json.dumps({"model": "tweet-summary", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    status, _, data = call(c.base, "/v1/chat/completions", raw=body)
    assert status == 200 and data.count(b"data:") == len(now) + len(later), data
    deadline = time.monotonic() + 3
    ttft = "inference_objective_request_ttft_seconds"
    tpot = "inference_objective_request_tpot_seconds"
    while metric_count(c, "inference_objective_request_duration_seconds") < 1:
        assert time.monotonic() < deadline, "the request was not recorded"
        time.sleep(0.05)
    got = (metric_count(c, ttft), metric_sum(c, ttft), metric_count(c, tpot), metric_sum(c, tpot))
    c.stop()
    return got


def chat_chunk(delta, finish=None):
    return {"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_tpot_without_usage_counts_tokens_only(procs, tmp_path, fakes):
    """Without usage the TPOT spreads the time from the first token to the
    last over the events from the first token on, one token each in vLLM's
    streams: the role chunk and empty deltas before the first token are
    none. Ten of those, then a token, and 200 ms later the last token:
    the TPOT is the 200 ms (it was a twelfth of it, the ten counted)."""
    before = [chat_chunk({"role": "assistant", "content": ""})] + \
        [chat_chunk({"content": ""})] * 9
    got = streamed_metrics(procs, tmp_path, fakes, before + [chat_chunk({"content": "a"})],
                           [chat_chunk({"content": "b"}, "stop"), b"[DONE]"], 200)
    ttft_n, _, tpot_n, tpot_s = got
    assert ttft_n == 1 and tpot_n == 1, got
    assert 0.19 <= tpot_s < 5, got


@pytest.mark.parametrize("error", [
    {"error": {"object": "error", "message": "boom", "type": "BadRequestError", "param": None,
               "code": 400}},
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    {"type": "error", "code": "server_error", "message": "boom", "param": None,
     "sequence_number": 3},
], ids=["vllm", "anthropic", "responses"])
def test_error_after_200_is_no_first_token(procs, tmp_path, fakes, error):
    """An error reported in the stream after the 200 (vLLM's error event,
    Anthropic's and the Responses API's error events) is no token: a
    stream that produced none records no time to a first token."""
    got = streamed_metrics(procs, tmp_path, fakes, [chat_chunk({"role": "assistant"})],
                           [error, b"[DONE]"], 200)
    assert got[0] == 0 and got[2] == 0, got
