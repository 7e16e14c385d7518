"""The gateway's life under traffic: what holds the process's descriptors,
when the configuration is reloaded, and how it stops (the drain, HTTP/2's
two GOAWAYs, --shutdown-delay)."""
import http.client
import json
import os
import resource
import signal
import socket
import struct
import time
import types

import hpack

from conftest import free_port, unique_loopback, wait_http, wait_port
from test_abuse import GatewayPopen, ok_small
from test_gateway import (GATEWAY, POD, POOL, ROUTE, SAN_ERRORS, Cluster, admin_status, call,
                          model_yaml, reload_metrics, seed_body, write)


def fd_limit(n):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def exits_clean(c):
    """The gateway exits 0 with a log free of sanitizer reports."""
    rc = c.gw.wait(timeout=15)
    log = c.log()
    for e in SAN_ERRORS:
        assert e not in log, log
    assert rc == 0, log
    return log


# ---- the admin listener's share of descriptors ----

def test_admin_connections_are_capped(procs, tmp_path):
    """Clients that open connections to the admin port and never finish a
    request hold at most 128 of them (the oldest give way), so the data
    plane keeps its descriptors, and probes still get through."""
    c = Cluster(GatewayPopen(procs, preexec_fn=fd_limit(256)), tmp_path)
    held = []
    try:
        for _ in range(300):
            s = socket.create_connection((c.admin_host, c.admin_port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        # Accepted after all of them (the backlog is first in, first out).
        status, _, body = call(c.admin, "/healthz", timeout=5)
        assert (status, body) == (200, b"ok\n")
        assert ok_small(c, timeout=5)[0] == 200
        fds = len(os.listdir("/proc/%d/fd" % c.gw.pid))
        assert fds < 200, fds
    finally:
        for s in held:
            s.close()
    assert call(c.admin, "/healthz", timeout=5)[0] == 200
    assert "connections, the most it takes" in c.log()
    c.stop()


# ---- out of descriptors toward the model servers ----

def test_upstream_connect_out_of_fds_is_503(procs, tmp_path):
    """A request on a connection taken before the descriptors ran out
    cannot reach any model server: that is the gateway's failure, not the
    pods', so it is answered 503 at once, without trying the others."""
    c = Cluster(GatewayPopen(procs, preexec_fn=fd_limit(128)), tmp_path, nsims=2)
    held = []
    try:
        while "pausing new connections" not in c.log() and len(held) < 300:
            held.append(socket.create_connection((c.host, c.port), timeout=5))
            if len(held) > 100:
                time.sleep(0.01)
        body = json.dumps(seed_body()).encode()
        held[0].sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\n"
                        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body))
        f = held[0].makefile("rb")
        status = f.readline()
        headers = {}
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        err = json.loads(f.read(int(headers["content-length"])))["error"]
    finally:
        for s in held:
            s.close()
    assert status.startswith(b"HTTP/1.1 503 "), (status, err)
    assert "out of file descriptors" in err["message"], err
    log = c.log()
    assert "trying another endpoint" not in log, log
    assert log.count("answering 503") == 1, log
    c.stop()


# ---- the file watcher ----

def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_watch_out_of_fds_is_no_change(procs, tmp_path):
    """Out of descriptors the manifests' directory cannot be read: the poll
    is skipped (and logged), not taken for a change and a failed reload."""
    c = Cluster(GatewayPopen(procs, preexec_fn=fd_limit(128)), tmp_path, nsims=0,
                gw_args=("--watch-interval", "20"))
    held = []
    try:
        # Until the workers cannot accept: every descriptor is taken.
        while "pausing new connections" not in c.log() and len(held) < 300:
            held.append(socket.create_connection((c.host, c.port), timeout=5))
            if len(held) > 100:
                time.sleep(0.01)
        wait_until(lambda: "skipping the check" in c.log() or "reloading" in c.log())
    finally:
        for s in held:
            s.close()
    wait_until(lambda: call(c.admin, "/healthz", timeout=2)[0] == 200)
    m = reload_metrics(c)
    assert m['infergate_config_reloads_total{result="failure"}'] == 0, c.log()
    assert m["infergate_config_last_reload_successful"] == 1
    assert "reloading configuration" not in c.log()
    c.stop()


def test_watch_waits_for_a_file_to_settle(procs, tmp_path):
    """A file rewritten in place by a slow writer is reloaded once it stopped
    changing for a poll, not half-written on the way."""
    c = Cluster(procs, tmp_path, nsims=0, gw_args=("--watch-interval", "250"))
    text = model_yaml((("tweet-summary-0", 100),))
    half = text.index("\n", len(text) // 2) + 1
    with open(c.path("model.yaml"), "w") as f:
        f.write(text[:half])
        for _ in range(60):  # a writer that takes its time
            f.write("#\n")
            f.flush()
            time.sleep(0.01)
        f.write(text[half:])
    wait_until(lambda: "reloading configuration (files changed)" in c.log())
    wait_until(lambda: reload_metrics(c)['infergate_config_reloads_total{result="success"}'] == 1)
    m = reload_metrics(c)
    assert m['infergate_config_reloads_total{result="failure"}'] == 0, c.log()
    assert c.log().count("reloading configuration") == 1, c.log()
    c.stop()


# ---- a reload refused for want of resources ----

REDIRECTS = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: redirects
spec:
  parentRefs:
  - name: inference-gateway
  rules:
{rules}"""

REDIRECT_RULE = """  - matches:
    - path: {{type: PathPrefix, value: {path}}}
    filters:
    - type: RequestRedirect
      requestRedirect: {{hostname: moved.example, statusCode: 302}}
"""


def redirects(*paths):
    return REDIRECTS.format(rules="".join(REDIRECT_RULE.format(path=p) for p in paths))


def file_gateway(procs, tmp_path, route_text, **popen_kw):
    """A gateway started with each manifest named by -f (no directory, so
    the watcher looks at the files with stat alone, which takes no
    descriptor), polling every 20 ms."""
    g = types.SimpleNamespace(host=unique_loopback(), admin_host=unique_loopback())
    g.port, g.admin_port = free_port(g.host), free_port(g.admin_host)
    g.admin = "http://%s:%d" % (g.admin_host, g.admin_port)
    g.route = os.path.join(str(tmp_path), "route.yaml")
    gw_yaml = os.path.join(str(tmp_path), "gateway.yaml")
    write(gw_yaml, GATEWAY.format(port=g.port))
    write(g.route, route_text)
    g.gw = procs.start("gateway", "-f", gw_yaml, "-f", g.route, "--bind", g.host,
                       "--admin", "%s:%d" % (g.admin_host, g.admin_port), "--workers", "1",
                       "--watch-interval", "20", name="gateway", **popen_kw)
    g.log = lambda: procs.output(g.gw)
    wait_port(g.host, g.port, proc=g.gw)
    wait_http(g.admin + "/healthz", proc=g.gw)
    return g


def status_of(g, path):
    conn = http.client.HTTPConnection(g.host, g.port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_reload_out_of_fds_is_tried_again(procs, tmp_path):
    """A changed manifest that cannot be opened because the process is out
    of descriptors is no error of the configuration: the reload is refused
    (the file and the errno said), then tried again with back-off, as
    Envoy retries an update and controllers requeue, and the change is
    served once descriptors are back, without the files changing again."""
    g = file_gateway(procs, tmp_path, redirects("/before"), preexec_fn=fd_limit(128))
    assert status_of(g, "/after") == 404
    held = []
    try:
        while "pausing new connections" not in g.log() and len(held) < 300:
            held.append(socket.create_connection((g.host, g.port), timeout=5))
            if len(held) > 100:
                time.sleep(0.01)
        write(g.route, redirects("/before", "/after"))
        wait_until(lambda: "trying again in 1000 ms" in g.log())
    finally:
        for s in held:
            s.close()
    log = g.log()
    assert "route.yaml: cannot read: Too many open files" in log, log
    assert "reload: cannot load the configuration: Too many open files" in log, log
    # The retry, at most a second later (and more if that one failed too).
    wait_until(lambda: status_of(g, "/after") == 302)
    m = reload_metrics(g)
    assert m['infergate_config_reloads_total{result="failure"}'] >= 1, g.log()
    assert m['infergate_config_reloads_total{result="success"}'] == 1, g.log()
    assert m["infergate_config_last_reload_successful"] == 1
    rl = admin_status(g)["reload"]
    assert rl["last"]["result"] == "success" and rl["last"]["reason"] == "retry", rl
    assert rl["retry_time"] is None, rl
    assert g.log().count("reloading configuration (files changed)") == 1, g.log()
    g.gw.send_signal(signal.SIGTERM)
    exits_clean(g)


def listeners_on(host, port):
    """How many sockets listen on host:port (one per worker: SO_REUSEPORT)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, st = fields[1], fields[3]
            ip, p = local.split(":")
            addr = socket.inet_ntoa(struct.pack("<I", int(ip, 16)))
            n += st == "0A" and addr == host and int(p, 16) == port
    return n


def test_worker_tries_a_listener_again_when_out_of_fds(procs, tmp_path):
    """A reload passes the control thread's test bind of a new port, then
    each worker opens its own socket for it: a worker out of descriptors at
    that moment (here the second of two, with one descriptor left) tries
    again with back-off instead of leaving the port to the others for good,
    since no reload will come for a configuration already taken."""
    host = unique_loopback()
    port, port2 = free_port(host), free_port(host)
    gw_yaml = os.path.join(str(tmp_path), "gateway.yaml")
    write(gw_yaml, GATEWAY.format(port=port))
    limit = 128
    gw = procs.start("gateway", "-f", gw_yaml, "--bind", host, "--workers", "2",
                     "--watch-interval", "20", name="gateway", preexec_fn=fd_limit(limit))
    log = lambda: procs.output(gw)
    wait_port(host, port, proc=gw)
    fds = lambda: len(os.listdir("/proc/%d/fd" % gw.pid))
    # What it holds alone: wait_port's probe connection closed, and the
    # count the same over a few polls.
    seen = []
    while len(seen) < 5 or len(set(seen[-5:])) > 1:
        seen.append(fds())
        time.sleep(0.02)
    base = seen[-1]
    held = []
    try:
        # Connections one at a time, each accepted before the next, until
        # the gateway has exactly one descriptor left.
        while base + len(held) < limit - 1:
            held.append(socket.create_connection((host, port), timeout=5))
            wait_until(lambda: fds() == base + len(held))
        assert fds() == limit - 1
        write(gw_yaml, GATEWAY.format(port=port) +
              "  - name: second\n    protocol: HTTP\n    port: %d\n" % port2)
        wait_until(lambda: "trying its listeners again in 1000 ms" in log())
        assert "listen %s:%d: Too many open files" % (host, port2) in log(), log()
        assert listeners_on(host, port2) == 1
    finally:
        for c in held:
            c.close()
    wait_until(lambda: listeners_on(host, port2) == 2)
    wait_until(lambda: "listeners open again" in log())
    gw.send_signal(signal.SIGTERM)
    rc = gw.wait(timeout=15)
    assert rc == 0, log()
    for e in SAN_ERRORS:
        assert e not in log(), log()


def test_reload_with_errors_is_not_tried_again(procs, tmp_path):
    """A manifest with an error of its own stays refused until it changes:
    no retry is due, and the log says it once."""
    g = file_gateway(procs, tmp_path, redirects("/before"))
    write(g.route, redirects("/before") + "    bogusField: 1\n")
    wait_until(lambda: admin_status(g)["reload"]["failures"] == 1)
    rl = admin_status(g)["reload"]
    assert rl["last"]["result"] == "failure" and rl["retry_time"] is None, rl
    assert any("bogusField" in e for e in rl["last"]["errors"]), rl
    log = g.log()
    assert log.count("configuration has errors") == 1, log
    assert "trying again" not in log, log
    assert status_of(g, "/before") == 302
    g.gw.send_signal(signal.SIGTERM)
    exits_clean(g)


# ---- how it stops ----

def wait_log(c, text, timeout=10.0):
    wait_until(lambda: text in c.log(), timeout)


def start_stream(c, max_tokens):
    """A streamed completion whose first event has come: (connection, response)."""
    body = {"model": "tweet-summary", "prompt": "hi", "max_tokens": max_tokens, "stream": True}
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read1(65536).startswith(b"data: ")
    return conn, resp


def test_sighup_while_draining_is_ignored(procs, tmp_path):
    """A reload during a drain would open the listeners of the new
    configuration while the old ones close: SIGHUP is ignored, and said so."""
    c = Cluster(procs, tmp_path, sim_args=("--itl-ms", "50"),
                gw_args=("--watch-interval", "600000"))
    conn, resp = start_stream(c, 20)
    c.gw.send_signal(signal.SIGTERM)
    wait_log(c, "draining")
    c.gw.send_signal(signal.SIGHUP)
    wait_log(c, "SIGHUP ignored")
    assert resp.read().endswith(b"data: [DONE]\n\n")
    conn.close()
    exits_clean(c)
    assert "reloading configuration" not in c.log()


def test_shutdown_delay(procs, tmp_path):
    """--shutdown-delay: at SIGTERM /readyz says 503 at once, while the
    listener still takes new connections and serves them (with
    Connection: close) for the delay; then the drain, then the exit."""
    c = Cluster(procs, tmp_path, gw_args=("--shutdown-delay", "2s", "--drain-timeout", "1s"))
    t0 = time.monotonic()
    c.gw.send_signal(signal.SIGTERM)
    wait_log(c, "shutting down")
    status, _, body = call(c.admin, "/readyz")
    assert (status, body) == (503, b"draining\n")
    conn = http.client.HTTPConnection(c.host, c.port, timeout=10)
    conn.request("POST", "/v1/completions", json.dumps(seed_body()),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["model"] == "tweet-summary-1"
    assert resp.getheader("Connection") == "close"
    conn.close()
    exits_clean(c)
    assert time.monotonic() - t0 >= 2.0
    log = c.log()
    assert log.index("shutting down") < log.index("draining: listeners closed"), log


# ---- HTTP/2's graceful shutdown (RFC 9113 §6.8) ----

class RawH2:
    """An HTTP/2 client that writes its frames itself, so that it can open
    a stream after a GOAWAY and choose when to answer a PING."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf = b""
        self.goaways, self.pings, self.streams = [], [], {}
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, 0, b""))

    @staticmethod
    def frame(kind, flags, sid, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
            struct.pack(">I", sid) + payload

    def get(self, sid, path="/v1/models"):
        block = self.enc.encode([(":method", "GET"), (":path", path), (":scheme", "http"),
                                 (":authority", "gw")])
        self.streams[sid] = {"status": None, "ended": False}
        self.sock.sendall(self.frame(1, 0x5, sid, block))  # END_STREAM | END_HEADERS

    def pump(self, until):
        while not until():
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.buf += data
            while len(self.buf) >= 9 and len(self.buf) >= 9 + int.from_bytes(self.buf[:3], "big"):
                n, kind, flags = int.from_bytes(self.buf[:3], "big"), self.buf[3], self.buf[4]
                sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
                p, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
                st = self.streams.get(sid)
                if kind == 4 and not flags & 1:
                    self.sock.sendall(self.frame(4, 1, 0, b""))  # SETTINGS ACK
                elif kind == 6 and not flags & 1:
                    self.pings.append(p)
                elif kind == 7:
                    self.goaways.append(int.from_bytes(p[:4], "big") & 0x7fffffff)
                elif kind == 1 and st is not None:
                    st["status"] = dict(self.dec.decode(p))[":status"]
                if kind in (0, 1) and st is not None and flags & 1:
                    st["ended"] = True


def test_http2_drain_notice_then_goaway(procs, tmp_path):
    """At SIGTERM an HTTP/2 client first gets GOAWAY with the last stream
    id 2^31-1 and a PING; a stream it opens before answering the PING is
    still served, and the GOAWAY after the PING's answer names it."""
    c = Cluster(procs, tmp_path, nsims=0)
    h = RawH2(c.host, c.port)
    h.get(1)
    h.pump(lambda: h.streams[1]["ended"])
    assert h.streams[1]["status"] == "200"
    c.gw.send_signal(signal.SIGTERM)
    h.pump(lambda: h.goaways and h.pings)
    assert h.goaways == [2**31 - 1]
    h.get(3)  # in transit as the notice came
    h.sock.sendall(h.frame(6, 1, 0, h.pings[0]))  # PING ACK
    h.pump(lambda: h.streams[3]["ended"] and len(h.goaways) == 2)
    assert h.streams[3]["status"] == "200"
    assert h.goaways == [2**31 - 1, 3]
    h.sock.close()
    exits_clean(c)


def test_second_gateway_on_the_same_port_refused(procs, tmp_path):
    """A second gateway given the listeners of one already running exits 1
    with "address in use", as nginx does: the workers' SO_REUSEPORT
    sockets had let it start and take a share of the first one's
    connections (5 of 6 requests went to the newcomer)."""
    from test_upstream_faults import Fakes, FakeCluster, completion
    fakes = Fakes()
    try:
        pod, = fakes.pods(1)
        c = FakeCluster(procs, tmp_path, [pod])
        second = procs.start("gateway", "-f", c.dir, "--bind", c.host, "--workers", "2",
                             name="gateway-2")
        assert second.wait(timeout=10) == 1
        out = procs.output(second)
        assert "cannot listen on %s:%d" % (c.host, c.port) in out and "in use" in out, out
        assert completion(c)[0] == 200
        c.stop()
    finally:
        fakes.stop_all()


SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
/* pthread_create failing its FAIL_NTH-th call (EAGAIN), as when a
 * process limit is reached. */
int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg)
{
	static int calls;
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	const char *n = getenv("FAIL_NTH");
	if (!real)
		real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))
		    dlsym(RTLD_NEXT, "pthread_create");
	if (n && ++calls == atoi(n))
		return EAGAIN;
	return real(t, a, f, arg);
}
"""


def test_worker_that_fails_to_start_is_freed(tmp_path):
    """A worker whose thread cannot be made (pthread_create refused, the
    second call of two workers') ends the start with status 1 and says
    which; what its init had made (its loop, upstream pool, metrics
    cache: 190 KB) is freed, where the ASan build reported a leak."""
    import subprocess
    from conftest import IG_BIN
    src = tmp_path / "shim.c"
    src.write_text(SHIM_C)
    shim = tmp_path / "shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(src), "-ldl"], check=True)
    with open(IG_BIN, "rb") as f:
        asan = b"__asan_init" in f.read()
    preload = str(shim)
    if asan:  # the sanitizer's runtime must come first
        lib = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
        preload = lib + ":" + preload
    d = tmp_path / "m"
    d.mkdir()
    host = unique_loopback()
    (d / "all.yaml").write_text("---\n".join([
        GATEWAY.format(port=free_port(host)), ROUTE.format(target_port=8000, prefix="/",
                                                           timeouts=""),
        POOL.format(target_port=8000), POD.format(i=0, ip="127.0.0.1")]))
    env = dict(os.environ, LD_PRELOAD=preload, FAIL_NTH="2")
    r = subprocess.run([IG_BIN, "gateway", "-f", str(d), "--bind", host, "--workers", "2"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "cannot start worker 1" in r.stderr, r.stderr
    for s in SAN_ERRORS:
        assert s not in r.stderr, r.stderr[-3000:]
