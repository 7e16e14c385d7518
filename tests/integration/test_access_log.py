"""The gateway's access log (--access-log, --access-log-format): one line
per request with the facts of the request, written off the request path.
A simulator serves the pool; the tests read the lines the gateway wrote
and compare them with what the client sent and got, then check that the
log never holds a request up: a rotated file (SIGUSR1), a full disk
(/dev/full) and a standard output nobody reads."""
import fcntl
import http.client
import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timezone

from conftest import IG_BIN
from test_gateway import Cluster, call, seed_body

KEYS = {"time", "request_id", "client", "method", "path", "protocol", "status", "model", "target_model",
        "pool", "endpoint", "queue_ms", "ttft_ms", "duration_ms", "prompt_tokens",
        "completion_tokens", "bytes_in", "bytes_out", "attempts", "reason"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
F_SETPIPE_SZ = 1031


def read_lines(path):
    try:
        with open(path) as f:
            return [line for line in f.read().split("\n") if line]
    except FileNotFoundError:
        return []


def wait_lines(path, n, timeout=5.0):
    """The file's first n lines, once it has them (flushed every 100 ms)."""
    deadline = time.time() + timeout
    while True:
        lines = read_lines(path)
        if len(lines) >= n:
            return lines
        if time.time() > deadline:
            raise AssertionError("%s has %d lines, want %d: %s" % (path, len(lines), n, lines))
        time.sleep(0.05)


def post_from(c, path, body, headers=None):
    """POST on a connection of our own: returns (status, json body, the
    client's "ip:port" as the gateway saw it, body bytes sent, got)."""
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    data = json.dumps(body).encode()
    conn.request("POST", path, body=data,
                 headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    ip, port = conn.sock.getsockname()[:2]
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    return r.status, json.loads(raw), "%s:%d" % (ip, port), len(data), len(raw)


def metric(c, name):
    status, _, data = call(c.admin, "/metrics")
    assert status == 200
    m = re.search(r"^%s (\S+)$" % name, data.decode(), re.M)
    return float(m.group(1)) if m else None


def check_served(line, c, client, sent, got, resp, t0, t1):
    assert set(line) == KEYS, line
    when = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert line["time"].endswith("Z") and when.tzinfo == timezone.utc
    assert t0 - 1 <= when.timestamp() <= t1 + 1, (line["time"], t0, t1)
    assert line["client"] == client
    assert line["method"] == "POST" and line["path"] == "/v1/completions"
    assert line["status"] == 200 and isinstance(line["status"], int)
    assert line["model"] == "tweet-summary"
    assert line["target_model"] == "tweet-summary-1" == resp["model"]
    assert line["pool"] == "qwen-pool"
    assert line["endpoint"] == c.endpoint(0)
    assert line["prompt_tokens"] == resp["usage"]["prompt_tokens"] > 0
    assert line["completion_tokens"] == resp["usage"]["completion_tokens"] == 100
    assert line["bytes_in"] == sent and line["bytes_out"] == got
    assert line["queue_ms"] == 0
    # The gateway's clock stops after its last write, so a worker that
    # loses its CPU right after the write ends later than the client's
    # (seen: 0.3 ms on a busy 2-core machine); 50 ms still catches a
    # duration that is wrong.
    assert 0 < line["ttft_ms"] <= line["duration_ms"] <= (t1 - t0) * 1000 + 50
    assert line["attempts"] == 1
    assert line["reason"] == ""


def test_json_lines(procs, tmp_path):
    log = os.path.join(str(tmp_path), "access.log")
    c = Cluster(procs, tmp_path, gw_args=("--access-log", log))
    # The client's request id is the one logged and the one the pod got
    # (the simulator, like vLLM, makes its response id from it).
    t0 = time.time()
    status, resp, client, sent, got = post_from(c, "/v1/completions", seed_body(),
                                                {"X-Request-Id": "client-id-42"})
    t1 = time.time()
    assert status == 200, resp
    line = json.loads(wait_lines(log, 1)[0])
    check_served(line, c, client, sent, got, resp, t0, t1)
    assert line["request_id"] == "client-id-42"
    assert resp["id"] == "cmpl-client-id-42"

    # Without one the gateway makes one, sends it, and logs it.
    t0 = time.time()
    status, resp, client, sent, got = post_from(c, "/v1/completions", seed_body())
    t1 = time.time()
    assert status == 200, resp
    line = json.loads(wait_lines(log, 2)[1])
    check_served(line, c, client, sent, got, resp, t0, t1)
    assert UUID.match(line["request_id"]), line
    assert resp["id"] == "cmpl-" + line["request_id"]
    # An empty one is none: the gateway's replaces it.
    status, resp, client, sent, got = post_from(c, "/v1/completions", seed_body(),
                                                {"X-Request-Id": ""})
    assert status == 200, resp
    line = json.loads(wait_lines(log, 3)[2])
    assert UUID.match(line["request_id"]), line
    assert resp["id"] == "cmpl-" + line["request_id"]

    # An unknown model: the gateway's 404 says why, in the log too.
    status, _, data = call(c.base, "/v1/completions", seed_body("no-such-model"))
    assert status == 404
    line = json.loads(wait_lines(log, 4)[3])
    assert set(line) == KEYS
    assert line["status"] == 404 and line["model"] == "no-such-model"
    assert line["reason"] and line["reason"] == json.loads(data)["error"]["message"]
    assert line["endpoint"] == "" and line["target_model"] == ""
    assert line["ttft_ms"] is None and line["completion_tokens"] == 0
    # It ended before a head went upstream: still an id, as Envoy gives
    # every request whose head it decoded one (it had none: "").
    assert UUID.match(line["request_id"]), line
    # The same with the client's id, and for a path no route matches.
    status, _, _ = call(c.base, "/v1/completions", seed_body("no-such-model"),
                        headers={"X-Request-Id": "client-id-43"})
    assert status == 404
    assert json.loads(wait_lines(log, 5)[4])["request_id"] == "client-id-43"
    status, _, _ = call(c.base, "/nowhere", seed_body(), headers={"Host": "no-route.example"})
    line = json.loads(wait_lines(log, 6)[5])
    assert line["status"] == status and status in (404, 503), line
    assert UUID.match(line["request_id"]), line

    assert metric(c, "infergate_access_log_dropped_total") == 0
    c.stop()
    assert len(read_lines(log)) == 6


def parse_logfmt(line):
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        out[m.group(1)] = json.loads(v) if v.startswith('"') else v
    return out


def test_text_format_on_stdout(procs, tmp_path):
    """--access-log - writes to standard output (here a file, shared with
    stderr's messages); text is logfmt with the same keys."""
    c = Cluster(procs, tmp_path, gw_args=("--access-log", "-", "--access-log-format", "text"))
    t0 = time.time()
    status, resp, client, sent, got = post_from(c, "/v1/completions", seed_body(),
                                                {"X-Request-Id": "a b\"c"})
    t1 = time.time()
    assert status == 200
    status, _, data = call(c.base, "/v1/completions", seed_body("no-such-model"))
    assert status == 404
    deadline = time.time() + 5
    while True:
        lines = [ln for ln in c.log().split("\n") if ln.startswith("time=")]
        if len(lines) >= 2 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 2, c.log()
    # Workers' lines are written in no particular order between them.
    ok, bad = sorted((parse_logfmt(ln) for ln in lines), key=lambda d: d["status"])
    assert set(ok) == KEYS, lines
    for k in ("status", "prompt_tokens", "completion_tokens", "bytes_in", "bytes_out",
              "attempts"):
        ok[k] = int(ok[k])
    for k in ("queue_ms", "ttft_ms", "duration_ms"):
        ok[k] = float(ok[k])
    ok["reason"] = ok["reason"] or ""
    check_served(ok, c, client, sent, got, resp, t0, t1)
    assert ok["request_id"] == "a b\"c"
    assert bad["status"] == "404" and bad["ttft_ms"] == "-"
    assert bad["reason"] == json.loads(data)["error"]["message"]
    c.stop()


def test_reopen_on_sigusr1(procs, tmp_path):
    log = os.path.join(str(tmp_path), "access.log")
    c = Cluster(procs, tmp_path, gw_args=("--access-log", log))
    assert call(c.base, "/v1/completions", seed_body())[0] == 200
    wait_lines(log, 1)
    os.rename(log, log + ".1")
    # Until told, the gateway writes on to the renamed file.
    assert call(c.base, "/v1/completions", seed_body("no-such-model"))[0] == 404
    wait_lines(log + ".1", 2)
    c.gw.send_signal(signal.SIGUSR1)
    deadline = time.time() + 5
    while not os.path.exists(log):
        assert time.time() < deadline, "SIGUSR1 did not reopen the log"
        time.sleep(0.02)
    assert call(c.base, "/v1/completions", seed_body(), headers={"X-Request-Id": "after"})[0] == 200
    new = wait_lines(log, 1)
    assert json.loads(new[0])["request_id"] == "after"
    time.sleep(0.3)
    assert len(read_lines(log + ".1")) == 2
    c.stop()
    assert len(read_lines(log)) == 1
    assert "access log %s reopened" % log in c.log()


def test_full_disk_drops_and_counts(procs, tmp_path):
    c = Cluster(procs, tmp_path, sim_args=("--time-scale", "100"),
                gw_args=("--access-log", "/dev/full"))
    n = 30
    for _ in range(n):
        assert call(c.base, "/v1/completions", seed_body(), timeout=5)[0] == 200
    deadline = time.time() + 5
    while metric(c, "infergate_access_log_dropped_total") < n:
        assert time.time() < deadline, metric(c, "infergate_access_log_dropped_total")
        time.sleep(0.05)
    assert metric(c, "infergate_access_log_dropped_total") == n
    log = c.stop()
    assert "access log /dev/full: No space left on device" in log


class StdoutPipeProcs:
    """Procs whose gateway writes its standard output into a pipe that is
    never read (a small one: 4 KiB fill in a few lines)."""

    def __init__(self, procs, tmp_path):
        self.procs = procs
        self.tmp_path = tmp_path
        self.read_end = None

    def start(self, *args, name="proc", **kw):
        if name != "gateway":
            return self.procs.start(*args, name=name, **kw)
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
        log = open(os.path.join(self.tmp_path, "gateway-stderr.log"), "w+")
        p = subprocess.Popen([IG_BIN] + [str(a) for a in args], stdout=w, stderr=log)
        os.close(w)
        self.read_end = r
        p.log = log
        self.procs.procs.append(p)
        return p

    def output(self, p):
        return self.procs.output(p)


def test_stdout_nobody_reads(procs, tmp_path):
    pp = StdoutPipeProcs(procs, str(tmp_path))
    c = Cluster(pp, tmp_path, sim_args=("--time-scale", "100"),
                gw_args=("--access-log", "-"))
    try:
        conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
        body = json.dumps(dict(seed_body(), max_tokens=5)).encode()
        slowest = 0
        for i in range(300):
            t = time.monotonic()
            conn.request("POST", "/v1/completions", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            slowest = max(slowest, time.monotonic() - t)
        conn.close()
        # The pipe is full (4 KiB, lines of ~400 bytes) yet no request waited.
        assert slowest < 1.0, slowest
        # The pipe holds the start of the stream (a write it took in part
        # ends mid-line); as it is read, the rest follows, every line
        # whole and none lost (all fit the gateway's pending buffer).
        fcntl.fcntl(pp.read_end, fcntl.F_SETFL, os.O_NONBLOCK)
        got = os.read(pp.read_end, 65536)
        assert 0 < len(got) <= 4096 and got.count(b"\n") < 300
        deadline = time.time() + 15
        while got.count(b"\n") < 300 and time.time() < deadline:
            try:
                got += os.read(pp.read_end, 65536)
            except BlockingIOError:
                time.sleep(0.02)
        assert got.endswith(b"\n"), got[-200:]
        lines = got.decode().split("\n")[:-1]
        assert len(lines) == 300
        for ln in lines:
            assert set(json.loads(ln)) == KEYS
        assert metric(c, "infergate_access_log_dropped_total") == 0
        # Stopping does not hang on the pipe either; the rest is dropped.
        os.set_blocking(pp.read_end, True)
        log = c.stop()
        assert "Traceback" not in log
    finally:
        os.close(pp.read_end)


def test_ttft_is_the_first_token_of_a_stream(procs, tmp_path):
    """For a streamed response ttft_ms is the time to the first token's
    event, not to the response head (vLLM, like the simulator, sends the
    head at once, and for the Responses API its response.created and
    response.in_progress events too, before the engine has produced
    anything); for a whole response it is the time to the head."""
    log = os.path.join(str(tmp_path), "access.log")
    c = Cluster(procs, tmp_path, sim_args=("--ttft-ms", "400", "--itl-ms", "1"),
                gw_args=("--access-log", log))
    def stream(path, body):
        conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Type").startswith("text/event-stream")
        data = r.read()
        conn.close()
        assert b"data: " in data
    bodies = [
        ("/v1/completions", dict(seed_body(), stream=True, max_tokens=5)),
        ("/v1/chat/completions", {"model": "tweet-summary", "stream": True, "max_tokens": 5,
                                  "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/responses", {"model": "tweet-summary", "stream": True, "max_output_tokens": 5,
                           "input": "hi"}),
    ]
    for i, (path, body) in enumerate(bodies):
        stream(path, body)
        line = json.loads(wait_lines(log, i + 1)[i])
        assert line["status"] == 200 and line["path"] == path, line
        assert 400 <= line["ttft_ms"] <= line["duration_ms"], line
    # A whole (not streamed) response: the head comes with everything.
    status, resp, _, _, _ = post_from(c, "/v1/completions", dict(seed_body(), max_tokens=5))
    assert status == 200, resp
    line = json.loads(wait_lines(log, 4)[3])
    assert 400 <= line["ttft_ms"] <= line["duration_ms"], line
    # The TTFT histogram saw the same: every stream's first token came
    # after 0.4 s (the whole response has no events, so no TTFT).
    status, _, data = call(c.admin, "/metrics")
    text = data.decode()
    below = re.findall(r'^inference_objective_request_ttft_seconds_bucket\{[^}]*le="0\.4"\} (\S+)$',
                       text, re.M)
    total = re.findall(r'^inference_objective_request_ttft_seconds_count\{[^}]*\} (\S+)$', text, re.M)
    assert sum(float(v) for v in total) == 3, text
    assert sum(float(v) for v in below) == 0, below
    c.stop()


def raw_exchange(c, data, wait_close=True):
    """Sends raw bytes on a connection of our own; returns (the answer's
    status, the client's "ip:port"). The server closes after a refusal."""
    import socket
    s = socket.create_connection((c.host, c.port), timeout=10)
    ip, port = s.getsockname()[:2]
    s.sendall(data)
    got = b""
    while wait_close:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", got)
    assert m, got
    return int(m.group(1)), "%s:%d" % (ip, port)


def test_refused_by_the_http_server(procs, tmp_path):
    """Requests the HTTP server answers itself, before routing (a request
    line that does not parse, a head or a Content-Length over the limits,
    a head that stalls), get their line too, as nginx and Envoy log them:
    the status, the client, what was known of the request (empty fields
    for the rest) and the answer's message as reason."""
    log = os.path.join(str(tmp_path), "access.log")
    c = Cluster(procs, tmp_path, nsims=0,
                gw_args=("--access-log", log, "--max-header-bytes", "2048",
                         "--max-body-bytes", "1000", "--header-timeout", "300ms"))
    want = []
    # 400: no method can start like this (a TLS ClientHello, say).
    status, client = raw_exchange(c, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    want.append((400, client, "", "", "", "", "malformed HTTP request", 0))
    # 413: the head parsed, so its method, path, version and id are known.
    status2, client2 = raw_exchange(
        c, b"POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: big-1\r\n"
           b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{}")
    want.append((413, client2, "POST", "/v1/completions", "HTTP/1.1", "big-1",
                 "request body too large", 0))
    # 431: a header over the limit.
    status3, client3 = raw_exchange(
        c, b"GET /v1/models HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
    want.append((431, client3, "", "", "", "", "request header fields too large", 0))
    # 408: a head that never ends.
    status4, client4 = raw_exchange(c, b"GET /v1/models HTTP/1.1\r\nHost: a\r\n")
    want.append((408, client4, "", "", "", "", "request timed out", 0))
    assert [status, status2, status3, status4] == [400, 413, 431, 408]
    lines = [json.loads(ln) for ln in wait_lines(log, 4)]
    by_status = {ln["status"]: ln for ln in lines}
    for st, client, method, path, proto, rid, reason, bytes_in in want:
        line = by_status[st]
        assert set(line) == KEYS, line
        assert line["client"] == client, line
        assert (line["method"], line["path"], line["protocol"]) == (method, path, proto), line
        assert line["request_id"] == rid and line["reason"] == reason, line
        assert line["bytes_in"] == bytes_in and line["bytes_out"] == 0, line
        assert line["model"] == line["pool"] == line["endpoint"] == "", line
        assert line["attempts"] == 0 and line["ttft_ms"] is None, line
    # Over HTTP/2 too (a stream's head over the limit): its pseudo-headers
    # came first, so its method and path are known.
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                        "%{http_code}", "-H", "x-big: " + "a" * 3000,
                        "http://%s:%d/v1/models?q" % (c.host, c.port)],
                       capture_output=True, timeout=10)
    assert r.stdout == b"431", r
    line = json.loads(wait_lines(log, 5)[4])
    assert line["status"] == 431 and line["protocol"] == "HTTP/2", line
    assert line["method"] == "GET" and line["path"] == "/v1/models", line
    assert line["reason"] == "request header fields too large", line
    assert metric(c, "infergate_access_log_dropped_total") == 0
    c.stop()
    assert len(read_lines(log)) == 5
