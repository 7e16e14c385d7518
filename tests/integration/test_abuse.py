"""`infergate gateway` under overload, abuse and lifecycle events: slow
request heads, running out of file descriptors, thousands of idle
keep-alive clients, a model server killed with requests in flight, reloads
and SIGTERM under load. The gateway's own cost is read from /proc: CPU as
utime+stime of /proc/PID/stat, memory as VmRSS of /proc/PID/status. Each
test ends with the clean-shutdown check of Cluster.stop() (SIGTERM, exit 0,
no sanitizer report in the log)."""
import http.client
import json
import os
import resource
import select
import signal
import socket
import threading
import time

import pytest

from conftest import IG_BIN, rss_kib
from test_gateway import SAN_ERRORS, Cluster, model_yaml, post_json, write

# The sanitized build spends about three times the CPU of the normal one.
ASAN = "build-asan" in IG_BIN
CPU_SLACK = 3.0 if ASAN else 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

SMALL = {"model": "tweet-summary", "prompt": "hi", "max_tokens": 1}


# ---- what the gateway costs ----

def cpu_seconds(pid, user_only=False):
    """utime + stime (or utime alone) of a process, in seconds, all its
    threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5), counted after the ")" that ends field 2.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime if user_only else utime + stime) / CLK_TCK


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def log_since(c, offset):
    """The gateway's log from byte offset on, read through a file
    description of our own (seeking the one the gateway writes through
    would move where its next line lands)."""
    with open(c.gw.log.name, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def log_size(c):
    return os.path.getsize(c.gw.log.name)


class GatewayPopen:
    """Procs for Cluster that passes extra Popen arguments (a preexec_fn, an
    environment) to the gateway's process only."""

    def __init__(self, procs, **popen_kw):
        self._procs = procs
        self._kw = popen_kw

    def start(self, *args, name="proc"):
        if name == "gateway":
            return self._procs.start(*args, name=name, **self._kw)
        return self._procs.start(*args, name=name)

    def output(self, p):
        return self._procs.output(p)


def ok_small(c, timeout=10):
    """A small completion through the gateway: (status, seconds taken)."""
    t = time.monotonic()
    status, _, r = post_json(c.base, "/v1/completions", SMALL, timeout=timeout)
    return status, time.monotonic() - t


def recv_response(s, timeout=10.0):
    """One response with a Content-Length from a blocking socket: (head,
    body). Raises on a close before the end."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            raise ConnectionError("closed inside the head: %r" % buf)
        buf += b
    head, body = buf.split(b"\r\n\r\n", 1)
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    assert length is not None, head
    while len(body) < length:
        b = s.recv(65536)
        if not b:
            raise ConnectionError("closed inside the body")
        body += b
    assert len(body) == length, (head, len(body))
    return head, body


def readable(socks):
    """The sockets with something to read (data or a close) right now."""
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN)
    ready = {fd for fd, _ in p.poll(0)}
    return [s for s in socks if s.fileno() in ready]


def read_all(s, timeout=5.0):
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return out


# ---- 1. slowloris ----

def slow_head(size):
    """A valid GET whose head is about size bytes: a few long header values
    (few enough to stay under the header count limit)."""
    head = b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n"
    i = 0
    while len(head) < size - 4:
        n = min(4000, size - 4 - len(head) - 14)
        head += b"X-Pad-%02d: %s\r\n" % (i, b"a" * max(n, 1))
        i += 1
    return head + b"\r\n"


def trickle(socks, data, seconds, rate=None, probe=None, probe_every=4.0):
    """Sends data one byte at a time round-robin over non-blocking sockets,
    at `rate` bytes a second in all (else as fast as this thread goes),
    until it is all sent or `seconds` passed. probe() runs every
    probe_every seconds. Returns the bytes sent on each socket."""
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    fds = [s.fileno() for s in socks]
    w = os.write
    t0 = time.monotonic()
    next_probe = t0 + probe_every
    pos = 0
    while pos < len(data):
        b = data[pos:pos + 1]
        for fd in fds:
            try:
                w(fd, b)
            except BlockingIOError:
                raise AssertionError("the gateway stopped reading a head at byte %d" % pos)
        pos += 1
        now = time.monotonic()
        if now - t0 > seconds:
            break
        if probe and now >= next_probe:
            probe()
            next_probe = time.monotonic() + probe_every
        if rate:
            ahead = t0 + pos * len(fds) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return pos


# Slowloris at a pace the kernel side allows: on this kind of machine the
# TCP receive path alone (the ACK sent for each segment read, epoll) costs
# the receiver 5-10 us per one-byte segment, whatever the gateway does with
# the byte, so an unpaced trickle (~100k segments/s from one Python thread)
# costs any gateway more than the budget. The heads are therefore sent as a
# long prefix in one write followed by a tail trickled byte by byte at
# SLOW_RATE: every trickled byte lands on a ~28 KB head, which a gateway
# that rescans the head from its start pays for in full each time.
SLOW_CONNS = 200
SLOW_HEAD = 30000
SLOW_TAIL = 250
SLOW_SECONDS = 7.5
SLOW_RATE = SLOW_CONNS * SLOW_TAIL / SLOW_SECONDS


def test_slowloris_heads_cost_linear_cpu(procs, tmp_path):
    """200 clients send ~30 KB heads whose last 250 bytes come one at a time.
    The head is scanned as bytes arrive, not rescanned from its start on
    each one, so the gateway's CPU stays proportional to the bytes
    received; other clients keep being served meanwhile, and the heads,
    once complete, are answered."""
    c = Cluster(procs, tmp_path, gw_args=("--header-timeout", "120000"))
    assert ok_small(c)[0] == 200
    head = slow_head(SLOW_HEAD)
    prefix, tail = head[:-SLOW_TAIL], head[-SLOW_TAIL:]
    socks = [socket.create_connection((c.host, c.port), timeout=5)
             for _ in range(SLOW_CONNS)]
    probes = []

    def probe():
        probes.append(ok_small(c))

    pid = c.gw.pid
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    utime0 = cpu_seconds(pid, user_only=True)
    for s in socks:
        s.sendall(prefix)
    sent = trickle(socks, tail, SLOW_SECONDS * 2, SLOW_RATE, probe)
    cpu, took = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    utime = cpu_seconds(pid, user_only=True) - utime0
    print("\nslowloris: %d connections, %d-byte heads, the last %d bytes of each one at a "
          "time (%d in all) in %.1f s; gateway CPU %.2f s (user %.2f s), %.1f us per "
          "trickled byte; probes (status, s): %s"
          % (len(socks), len(head), sent, sent * len(socks), took, cpu, utime,
             cpu / (sent * len(socks)) * 1e6, [(st, round(t, 3)) for st, t in probes]))
    assert sent == len(tail), "only %d bytes of the tails went out" % sent
    assert probes and all(st == 200 for st, _ in probes), probes
    for s in socks:
        s.setblocking(True)
        h, body = recv_response(s)
        assert h.startswith(b"HTTP/1.1 200 "), h
        assert json.loads(body)["data"]
        s.close()
    # In all (mostly the kernel's receive path, see SLOW_RATE), and in the
    # gateway's own code, which a rescan from the head's start dominates.
    what = "gateway CPU %.2f s (user %.2f s) for %d one-byte sends" % (
        cpu, utime, sent * len(socks))
    # The budget, 3 s of CPU over 20 s, over this shorter run at
    # the same pace: 1.5 s, of which the gateway's own code 0.5.
    assert cpu < 1.5 * CPU_SLACK, what
    assert utime < 0.5 * CPU_SLACK, what
    assert ok_small(c)[0] == 200
    c.stop()


def test_slowloris_head_over_limit(procs, tmp_path):
    """A head trickled byte by byte past --max-header-bytes gets 431."""
    c = Cluster(procs, tmp_path, gw_args=("--header-timeout", "120000",
                                          "--max-header-bytes", "4096"))
    head = b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Pad: " + b"a" * 8000
    socks = [socket.create_connection((c.host, c.port), timeout=5) for _ in range(20)]
    sent = trickle(socks, head[:4096 + 16], 30.0)  # as fast as it goes
    assert sent == 4096 + 16
    for s in socks:
        s.setblocking(True)
        out = read_all(s)
        s.close()
        assert out.startswith(b"HTTP/1.1 431 "), out[:200]
        err = json.loads(out.split(b"\r\n\r\n", 1)[1])["error"]
        assert err["message"] and err["type"]
    assert ok_small(c)[0] == 200
    c.stop()


# ---- 1b. what the front end answers by itself ----

def answer_to(c, data):
    """(status line, lower-cased head, body) of the gateway's answer to the
    raw bytes of a request sent alone on a connection."""
    s = socket.create_connection((c.host, c.port), timeout=5)
    s.sendall(data)
    head, body = recv_response(s)
    s.close()
    line, _, fields = head.partition(b"\r\n")
    return line, fields.lower(), body


def test_requests_the_gateway_answers_itself(procs, tmp_path):
    """Request lines and framings the gateway answers without a pod, as
    RFC 9110/9112 have it: OPTIONS * is about the server (200, Allow, never
    routed), "*" with another method 400; HTTP/1.2 is served as HTTP/1.1,
    HTTP/2.0 or 3.0 in an HTTP/1 request line 505; a target over the head
    limit 414 (431 stays for fields, trailers' too); a fragment 400; a
    transfer coding other than chunked 501."""
    c = Cluster(procs, tmp_path, gw_args=("--max-header-bytes", "4096"))
    body = json.dumps(SMALL).encode()
    post = (b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\n")
    line, head, out = answer_to(c, b"OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert line == b"HTTP/1.1 200 OK", (line, head)
    assert b"\r\nallow: get, head, post," in b"\r\n" + head and out == b"", head
    assert b"x-gateway-destination-endpoint-served" not in head, head
    cases = (
        (b"GET * HTTP/1.1\r\nHost: gw\r\n\r\n", b"400"),
        (b"GET /v1/models HTTP/2.0\r\nHost: gw\r\n\r\n", b"505"),
        (b"GET /v1/models HTTP/3.0\r\nHost: gw\r\n\r\n", b"505"),
        (b"GET /v1/models HTTP/1.2\r\nHost: gw\r\nConnection: close\r\n\r\n", b"200"),
        (b"GET /v1/models#top HTTP/1.1\r\nHost: gw\r\n\r\n", b"400"),
        (b"GET /v1/models?x=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n", b"414"),
        (b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n",
         b"431"),
        (post + b"Transfer-Encoding: gzip, chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
         % (len(body), body), b"501"),
        (post + b"Transfer-Encoding: gzip\r\n\r\n" + body, b"501"),
        (post + b"Transfer-Encoding: xchunked\r\n\r\n" + body, b"400"),
        # Trailers count against the head's limits too (each line under
        # the 4 KiB line ceiling, 8 KiB in all).
        (post + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n%s\r\n"
         % (len(body), body, b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 1000) for i in range(8))),
         b"431"),
    )
    for req, want in cases:
        line, head, out = answer_to(c, req)
        assert line.startswith(b"HTTP/1.1 " + want + b" "), (req[:80], line, out)
        if want != b"200":
            assert json.loads(out)["error"]["message"], out
    assert ok_small(c)[0] == 200
    c.stop()


# ---- 2. out of file descriptors ----

def test_emfile_backs_off(procs, tmp_path):
    """With its descriptors used up, the gateway stops accepting for a
    while (a log line per back-off interval) instead of spinning on a
    listener that stays readable, and accepts again once some are free."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    c = Cluster(GatewayPopen(procs, preexec_fn=limit), tmp_path)
    pid = c.gw.pid
    assert ok_small(c)[0] == 200
    clients = [socket.create_connection((c.host, c.port), timeout=5) for _ in range(300)]
    try:
        # Up to the limit they are accepted; the rest wait in the backlog.
        deadline = time.monotonic() + 5
        while open_fds(pid) < 250 and time.monotonic() < deadline:
            time.sleep(0.05)
        fds = open_fds(pid)
        assert fds >= 250, "the gateway holds only %d descriptors" % fds
        time.sleep(0.3)
        off, cpu0 = log_size(c), cpu_seconds(pid)
        time.sleep(5.0)
        cpu = cpu_seconds(pid) - cpu0
        lines = [ln for ln in log_since(c, off).splitlines() if "accept" in ln.lower()]
        print("\nEMFILE: %d descriptors open, gateway CPU %.2f s in 5 s, %d log lines about "
              "accept (first: %r)" % (fds, cpu, len(lines), lines[:1]))
        assert cpu < 0.5 * CPU_SLACK, "gateway CPU %.2f s in 5 s at EMFILE" % cpu
        # A line per back-off interval and worker (the Cluster runs two).
        assert len(lines) < 2 * 20, "%d accept log lines in 5 s" % len(lines)
    finally:
        for s in clients:
            s.close()
    # Accepting resumes: a new client is served within 2 s.
    t0 = time.monotonic()
    status = None
    while time.monotonic() - t0 < 2.0:
        try:
            status, _ = ok_small(c, timeout=max(0.1, 2.0 - (time.monotonic() - t0)))
        except OSError as e:
            status = repr(e)
            time.sleep(0.05)
            continue
        if status == 200:
            break
    took = time.monotonic() - t0
    print("EMFILE: first request after the clients left: %s in %.2f s" % (status, took))
    assert status == 200 and took < 2.0, (status, took)
    c.stop()


# ---- 3. idle keep-alive clients ----

MODELS_GET = b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n"


def completion_bytes(body=SMALL):
    data = json.dumps(body).encode()
    return (b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(data), data))


def open_idle(c, n, batch=500, every=10):
    """n keep-alive connections that each made one request and then stay
    idle: one in `every` a small completion (proxied to the sim), the
    others GET /v1/models (answered by the gateway itself)."""
    out = []
    completion = completion_bytes()
    while len(out) < n:
        socks = [socket.create_connection((c.host, c.port), timeout=10)
                 for _ in range(min(batch, n - len(out)))]
        for i, s in enumerate(socks):
            s.sendall(completion if i % every == 0 else MODELS_GET)
        for s in socks:
            head, body = recv_response(s)
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert b"connection: close" not in head.lower(), head
        out += socks
    return out


def test_idle_keepalive_clients_memory(procs, tmp_path):
    """Idle keep-alive clients hold no buffers in the gateway: 5,000 of them
    add less than 4 KiB each to its RSS (the contract's figure for 10,000)."""
    n = 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 1000
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    # Under ASan, freed memory waits in a quarantine and is not reused: the
    # warm-up's connections would not be recycled. Without it the sanitized
    # build's RSS is comparable (leak checking is unaffected).
    env = dict(os.environ, ASAN_OPTIONS=":".join(
        o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if o))
    socks = []
    try:
        c = Cluster(GatewayPopen(procs, env=env), tmp_path)  # inherits the raised limit
        pid = c.gw.pid
        assert ok_small(c)[0] == 200
        # Warm up both workers' allocators with the same kind of traffic.
        for s in open_idle(c, 500):
            s.close()
        time.sleep(0.5)
        rss0 = rss_kib(pid)
        t = time.monotonic()
        socks = open_idle(c, n)
        setup = time.monotonic() - t
        time.sleep(0.5)
        rss1 = rss_kib(pid)
        grown = rss1 - rss0
        print("\nidle keep-alive: %d connections opened in %.1f s; gateway RSS %d -> %d KiB, "
              "+%d KiB, %.2f KiB per connection" % (n, setup, rss0, rss1, grown, grown / n))
        # They are still open: nothing was answered or closed while idle.
        assert not readable(socks)
        assert grown < 4 * n, "%.2f KiB per idle connection" % (grown / n)
        for s in socks:
            s.close()
        socks = []
        time.sleep(0.5)
        assert ok_small(c)[0] == 200
        head, _ = recv_response_of(c, MODELS_GET)
        assert head.startswith(b"HTTP/1.1 200 ")
        c.stop()
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(ASAN, reason="the sanitizers' allocator keeps freed memory its own way")
def test_burst_of_bodies_memory_given_back(procs, tmp_path):
    """A burst of clients that each send 2 MiB of a body and leave costs the
    gateway that memory while they are there, not afterwards: the freed
    bodies past what it keeps for reuse (64 MiB an arena) go back to the
    system within seconds. One worker; 96 clients, 192 MiB."""
    n, part = 96, 2 << 20
    c = Cluster(procs, tmp_path, gw_args=("--workers", "1"))
    pid = c.gw.pid
    assert ok_small(c)[0] == 200
    rss0 = rss_kib(pid)
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (8 << 20))
    piece = head + b'{"model":"tweet-summary","prompt":"' + b"x" * part
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection((c.host, c.port), timeout=10)
            s.sendall(piece)
            socks.append(s)
        deadline = time.monotonic() + 10
        while rss_kib(pid) - rss0 < n * part // 1024 * 3 // 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        held = rss_kib(pid) - rss0
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 6
    left = rss_kib(pid) - rss0
    while left > 96 << 10 and time.monotonic() < deadline:
        time.sleep(0.2)
        left = rss_kib(pid) - rss0
    print("\nburst of %d partial 2 MiB bodies: gateway RSS +%d KiB while held, +%d KiB after"
          % (n, held, left))
    assert held >= n * part // 1024 * 3 // 4, held  # the bodies were read
    assert left <= 96 << 10, "%d KiB still held after the clients left" % left
    assert ok_small(c)[0] == 200
    c.stop()


def recv_response_of(c, request):
    with socket.create_connection((c.host, c.port), timeout=5) as s:
        s.sendall(request)
        return recv_response(s)


# ---- 4. a model server killed under load ----

class StreamTracker:
    """Which streams are where, from the client side: streams sent whose
    response head has not come yet, and per endpoint the streams whose head
    named it and which have not ended."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending = 0
        self.on = {}

    def sent(self):
        with self.lock:
            self.pending += 1

    def head(self, ep):
        with self.lock:
            self.pending -= 1
            self.on[ep] = self.on.get(ep, 0) + 1

    def ended(self, ep, got_head):
        with self.lock:
            if got_head:
                self.on[ep] -= 1
            else:
                self.pending -= 1

    def at_most_on(self, ep):
        """Streams that may be held by ep right now (an upper bound)."""
        with self.lock:
            return self.pending + self.on.get(ep, 0)


def one_request(c, stream, max_tokens, timeout, tracker=None):
    """Returns a dict: status, endpoint, outcome ('complete', 'cut' or an
    error), start and end times."""
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    track = tracker if stream else None
    r = {"stream": stream, "start": time.monotonic(), "status": None, "ep": None}
    conn = http.client.HTTPConnection(c.host, c.port, timeout=timeout)
    if track:
        track.sent()
    got_head = False
    try:
        conn.request("POST", "/v1/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        r["status"] = resp.status
        r["ep"] = resp.getheader("x-gateway-destination-endpoint-served")
        if track:
            track.head(r["ep"])
            got_head = True
        try:
            data = resp.read()
        except http.client.IncompleteRead:
            r["outcome"] = "cut"
        else:
            r["outcome"] = check_complete(data, stream, max_tokens, resp.status)
    except Exception as e:  # noqa: BLE001 - a failed request is the finding here
        r["outcome"] = repr(e)
    finally:
        conn.close()
        r["end"] = time.monotonic()
        if track:
            track.ended(r["ep"], got_head)
    return r


def check_complete(data, stream, max_tokens, status):
    if status != 200:
        return "status %d: %r" % (status, data[:200])
    if not stream:
        n = json.loads(data)["usage"]["completion_tokens"]
        return "complete" if n == max_tokens else "%d tokens" % n
    events = [e for e in data.split(b"\n\n") if e]
    if not events or events[-1] != b"data: [DONE]":
        return "no [DONE]: %r" % data[-200:]
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    if len(chunks) != max_tokens or chunks[-1]["choices"][0]["finish_reason"] != "length":
        return "%d chunks" % len(chunks)
    return "complete"


def endpoint_counts(c, addr):
    ep = [e for p in c.pools()["pools"] for e in p["endpoints"] if e["address"] == addr][0]
    return ep["in_flight"], ep["requests_total"]


def test_pod_killed_under_load(procs, tmp_path):
    """SIGKILL one of three sims while it holds non-streamed requests (no
    response byte before the whole answer) and streams (their head comes at
    once): every non-streamed request gets its 200 from another sim, streams
    either complete or end cut, nothing hangs, and nothing is served by the
    dead sim afterwards."""
    c = Cluster(procs, tmp_path, nsims=3, sim_args=("--ttft-ms", "300", "--itl-ms", "20"))
    c.wait_scraped()
    killed = c.endpoint(0)
    results = []
    lock = threading.Lock()
    stop = threading.Event()
    tracker = StreamTracker()

    def client(stream):
        while not stop.is_set():
            r = one_request(c, stream, max_tokens=10, timeout=15, tracker=tracker)
            with lock:
                results.append(r)

    ts = [threading.Thread(target=client, args=(k % 2 == 1,)) for k in range(8)]
    for t in ts:
        t.start()
    try:
        time.sleep(1.2)
        # Kill it while the gateway has a non-streamed request out to it: its
        # in-flight count exceeds the streams that can be there.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            held, sent_before = endpoint_counts(c, killed)
            if held - tracker.at_most_on(killed) >= 1:
                break
            time.sleep(0.005)
        c.sims[0].kill()
        killed_at = time.monotonic()
        c.sims[0].wait()
        time.sleep(2.5)
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in ts), "a client hangs"
    bad = [r for r in results if r["status"] != 200 or
           r["outcome"] not in (("complete", "cut") if r["stream"] else ("complete",))]
    took = max(r["end"] - r["start"] for r in results)
    at_kill = [r for r in results if r["start"] < killed_at < r["end"]]
    # Requests the gateway had sent to the dead sim that it did not answer:
    # each was served by another one (or failed, which `bad` shows).
    moved = sent_before - sum(1 for r in results if r["ep"] == killed)
    print("\npod killed: %d requests, %d on the dead sim at the kill, %d of them moved to "
          "another sim; in flight at the kill (stream, outcome, from the dead sim): %s; "
          "longest %.2f s" % (len(results), held, moved,
                              sorted((r["stream"], r["outcome"], r["ep"] == killed)
                                     for r in at_kill), took))
    assert killed in {r["ep"] for r in results if r["end"] < killed_at}
    assert not bad, bad[:5]
    assert moved >= 1, "the dead sim held no request that had no response byte yet"
    # Nothing hangs: every request ended within its own cost plus a retry.
    assert took < 6.0, took
    after = [r for r in results if r["start"] > killed_at]
    assert len(after) >= 12
    assert killed not in {r["ep"] for r in after}
    c.stop()


# ---- 5. reloads under load ----

def test_reloads_under_load(procs, tmp_path):
    """Five manifest changes and a SIGHUP while ~400 requests a second run:
    every request gets its 200, and each change takes effect."""
    # Two sims with short steps: the request rate is not bound by latency.
    c = Cluster(procs, tmp_path, nsims=2, sim_args=("--ttft-ms", "1", "--itl-ms", "1"),
                gw_args=("--watch-interval", "100"))
    results = []  # (time, status or error, model)
    lock = threading.Lock()
    stop = threading.Event()
    nthreads, per_thread_rate = 4, 100.0

    request = completion_bytes()

    def client():
        # Plain sockets with a prepared request: http.client costs this
        # thread more than the gateway spends on the request.
        s = None
        next_t = time.monotonic()
        while not stop.is_set():
            next_t += 1.0 / per_thread_rate
            try:
                if s is None:
                    s = socket.create_connection((c.host, c.port), timeout=10)
                s.sendall(request)
                head, data = recv_response(s)
                status = int(head.split(b" ", 2)[1])
                out = (time.monotonic(), status,
                       json.loads(data)["model"] if status == 200 else data[:200])
            except Exception as e:  # noqa: BLE001
                out = (time.monotonic(), repr(e), None)
                if s is not None:
                    s.close()
                s = None
            with lock:
                results.append(out)
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()
        if s is not None:
            s.close()

    ts = [threading.Thread(target=client) for _ in range(nthreads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    switched = []
    try:
        time.sleep(0.5)
        for k in range(5):
            target = "tweet-summary-%d" % ((k + 1) % 2)
            write(c.path("model.yaml"), model_yaml(((target, 100),)))
            changed = time.monotonic()
            deadline = changed + 3.0
            while time.monotonic() < deadline:
                with lock:
                    seen = [r[2] for r in results if r[0] > changed + 0.3]
                if seen and seen[-1] == target:
                    break
                time.sleep(0.05)
            switched.append(seen[-1] if seen else None)
            time.sleep(0.3)
        off = log_size(c)
        c.gw.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and "SIGHUP" not in log_since(c, off):
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in ts:
            t.join()
    took = time.monotonic() - t0
    failed = [r for r in results if r[1] != 200]
    print("\nreloads under load: %d requests in %.1f s (%.0f/s), %d failed"
          % (len(results), took, len(results) / took, len(failed)))
    assert switched == ["tweet-summary-%d" % ((k + 1) % 2) for k in range(5)], switched
    assert "SIGHUP" in log_since(c, off)
    assert not failed, failed[:5]
    assert len(results) / took > 100, "too few requests to call it load"
    c.stop()


# ---- 6. SIGTERM under load ----

def test_sigterm_under_load(procs, tmp_path):
    """SIGTERM with streams and plain requests in flight: every one of them
    completes (streams with all their chunks and `data: [DONE]`), new
    connections are refused from the start of the drain, exit code 0."""
    c = Cluster(procs, tmp_path, nsims=2, sim_args=("--itl-ms", "50",))
    nstream, nplain, ntok = 8, 4, 20
    results = [None] * (nstream + nplain)

    def run(i):
        results[i] = one_request(c, stream=i < nstream, max_tokens=ntok, timeout=15)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(nstream + nplain)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + 3.0
    inflight = 0
    while time.monotonic() < deadline:
        inflight = sum(e["in_flight"] for p in c.pools()["pools"] for e in p["endpoints"])
        if inflight == nstream + nplain:
            break
        time.sleep(0.01)
    assert inflight == nstream + nplain, inflight
    c.gw.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    # Refused from shortly after the signal on, for as long as the drain runs.
    refused_at = None
    probes = 0
    while c.gw.poll() is None and time.monotonic() - signalled < 10:
        try:
            socket.create_connection((c.host, c.port), timeout=0.5).close()
            assert refused_at is None, "accepted a connection after refusing one"
        except ConnectionRefusedError:
            refused_at = refused_at or time.monotonic()
            probes += 1
        except ConnectionResetError:
            # Queued on a listener that was closing: reset when it closed.
            assert refused_at is None, "accepted a connection after refusing one"
        assert refused_at or time.monotonic() - signalled < 1.0, "still accepting after 1 s"
        time.sleep(0.05)
    for t in ts:
        t.join(timeout=15)
    rc = c.gw.wait(timeout=10)
    log = c.log()
    print("\nSIGTERM under load: refused after %.3f s (%d probes), exit %d after %.2f s"
          % ((refused_at or 0) - signalled, probes, rc, time.monotonic() - signalled))
    assert refused_at is not None and probes >= 3
    assert all(r["status"] == 200 and r["outcome"] == "complete" for r in results), results
    assert all(r["end"] > signalled for r in results)
    for s in SAN_ERRORS:
        assert s not in log, log
    assert rc == 0, log
