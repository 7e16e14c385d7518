"""WebSocket through the gateway (Gateway API's HTTPRouteBackendProtocolWebSocket,
RFC 6455 over HTTP/1.1): the handshake goes to the backend, its 101 comes
back, and the connection becomes a tunnel both ways until either side
closes; vLLM's /v1/realtime is such an endpoint."""
import json
import os
import socket
import struct
import time

from conftest import free_port, unique_loopback, wait_port
from fakepod import FakePod, ws_accept, ws_frame
from test_abuse import rss_kib
from test_gateway import GATEWAY, POD, POOL, ROUTE, SAN_ERRORS, model_yaml, write
from test_gateway_api import gateway, pod, route

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x01\x02\x03\x04"

SERVICE_WS = """apiVersion: v1
kind: Service
metadata:
  name: svc
  namespace: default
spec:
  selector:
    app: svc
  ports:
  - name: ws
    port: 80
    targetPort: %d
    appProtocol: kubernetes.io/ws
"""

RULES = """  - matches:
    - path: {type: PathPrefix, value: /v1/realtime}
    backendRefs:
    - name: svc
      port: 80
"""


def no_quarantine():
    """The environment for a gateway whose RSS a test measures: under ASan,
    freed memory waits in a quarantine and is not reused, which would
    count every freed buffer; without it the sanitized build's RSS is
    comparable (leak checking is unaffected)."""
    return dict(os.environ, ASAN_OPTIONS=":".join(
        o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if o))


class Gw:
    """The gateway in front of one WebSocket backend: a Service whose port
    says kubernetes.io/ws, or (pool=True) an InferencePool's pod."""

    def __init__(self, procs, tmp_path, args=(), pool=False, env=None, models=False, **mode):
        self.procs = procs
        host = unique_loopback()
        self.pod = FakePod(host, free_port(host), mode="websocket")
        self.pod.set("websocket", **mode)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        d = os.path.join(str(tmp_path), "m")
        os.makedirs(d, exist_ok=True)
        if pool:
            docs = [GATEWAY.format(port=self.port),
                    ROUTE.format(target_port=self.pod.port, prefix="/", timeouts=""),
                    POOL.format(target_port=self.pod.port), POD.format(i=0, ip=host)]
            if models:  # v1alpha2 InferenceModels resolve the pool's models
                docs.append(model_yaml())
        else:
            docs = [gateway(self.port), route(RULES), SERVICE_WS % self.pod.port,
                    pod("p0", "svc", host)]
        write(os.path.join(d, "all.yaml"), "---\n".join(docs))
        self.gw = procs.start("gateway", "-f", d, "--bind", self.host, "--workers", "2",
                              *args, name="gateway", env=env)
        wait_port(self.host, self.port, proc=self.gw)

    def connect(self, path="/v1/realtime?model=m", early=b"", extra=""):
        s = socket.create_connection((self.host, self.port), timeout=10)
        s.sendall(("GET %s HTTP/1.1\r\nHost: rt.example\r\nUpgrade: websocket\r\n"
                   "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s\r\n" % (path, KEY, extra)).encode() + early)
        return Client(s)

    def stop(self):
        self.pod.stop()
        self.gw.send_signal(15)
        rc = self.gw.wait(timeout=15)
        log = self.procs.output(self.gw)
        for e in SAN_ERRORS:
            assert e not in log, log
        assert rc == 0, log
        return log


class Client:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def _fill(self):
        data = self.s.recv(1 << 16)
        if not data:
            raise EOFError
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, op, payload):
        self.s.sendall(ws_frame(op, payload, MASK))

    def recv(self):
        """(opcode, payload) of the next frame from the server (unmasked)."""
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return b0 & 0x0F, self._take(n)

    def at_eof(self, timeout=5.0):
        self.s.settimeout(timeout)
        try:
            while True:
                self._fill()
        except EOFError:
            return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def test_handshake_echo_ping_and_close(procs, tmp_path):
    """The backend's 101 reaches the client with its Upgrade and
    Sec-WebSocket-Accept; messages go both ways, large ones included (the
    tunnel's backpressure), a ping gets its pong and a close handshake
    ends the connection. The backend saw the handshake's headers."""
    alog = os.path.join(str(tmp_path), "access.log")
    g = Gw(procs, tmp_path, args=("--access-log", alog), greeting='{"type":"session.created"}')
    c = g.connect()
    assert c.status == 101, c.headers
    assert c.headers["upgrade"].lower() == "websocket"
    assert "upgrade" in c.headers["connection"].lower()
    assert c.headers["sec-websocket-accept"] == ws_accept(KEY)
    assert c.recv() == (1, b'{"type":"session.created"}')
    for i in range(5):
        c.send(1, b"hello %d" % i)
        assert c.recv() == (1, b"hello %d" % i)
    big = os.urandom(3 << 20)  # more than both directions buffer
    c.send(2, big)
    assert c.recv() == (2, big)
    c.send(9, b"are you there")
    assert c.recv() == (10, b"are you there")
    c.send(8, struct.pack("!H", 1000))
    assert c.recv() == (8, struct.pack("!H", 1000))
    assert c.at_eof()
    c.close()
    req = [r for r in g.pod.requests if r.path.startswith("/v1/realtime")][0]
    assert req.method == "GET"
    assert req.headers["upgrade"] == "websocket"
    assert req.headers["connection"].lower() == "upgrade"
    assert req.headers["sec-websocket-key"] == KEY
    assert req.headers["sec-websocket-version"] == "13"
    assert req.headers["host"] == "rt.example"
    g.stop()
    # The access log counts what went through the tunnel each way.
    with open(alog) as f:
        line = json.loads(f.read().splitlines()[0])
    assert line["status"] == 101
    assert line["path"] == "/v1/realtime"
    assert line["bytes_in"] > len(big) and line["bytes_out"] > len(big)


def test_bytes_sent_with_the_handshake_reach_the_backend(procs, tmp_path):
    """A client that sends its first frame right behind the handshake (no
    wait for the 101) loses nothing."""
    g = Gw(procs, tmp_path)
    c = g.connect(early=ws_frame(1, b"eager", MASK))
    assert c.status == 101
    assert c.recv() == (1, b"eager")
    c.close()
    g.stop()


def test_backend_close_ends_the_client_connection(procs, tmp_path):
    g = Gw(procs, tmp_path, close_after=2)
    c = g.connect()
    assert c.status == 101
    c.send(1, b"a")
    assert c.recv() == (1, b"a")
    c.send(1, b"b")
    assert c.recv() == (1, b"b")
    assert c.recv() == (8, struct.pack("!H", 1000))
    assert c.at_eof()
    c.close()
    g.stop()


def test_client_leaving_closes_the_backend_connection(procs, tmp_path):
    g = Gw(procs, tmp_path)
    c = g.connect()
    assert c.status == 101
    c.send(1, b"x")
    assert c.recv() == (1, b"x")
    t = time.monotonic()
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # a reset, as a killed client's kernel sends
    assert g.pod.wait_event("eof", "reset", after=t, timeout=5) is not None
    g.stop()


def test_silent_tunnel_is_closed_after_the_upstream_read_timeout(procs, tmp_path):
    g = Gw(procs, tmp_path, args=("--upstream-read-timeout", "1s"))
    c = g.connect()
    assert c.status == 101
    c.send(1, b"x")
    assert c.recv() == (1, b"x")
    t = time.monotonic()
    # Traffic keeps it open past the timeout...
    for i in range(4):
        time.sleep(0.4)
        c.send(1, b"%d" % i)
        assert c.recv() == (1, b"%d" % i)
    # ...silence closes it.
    assert c.at_eof(timeout=5)
    assert time.monotonic() - t >= 2.5
    assert g.pod.wait_event("eof", "reset", after=t, timeout=5) is not None
    c.close()
    g.stop()


def test_refused_handshake_is_an_ordinary_response(procs, tmp_path):
    """A backend that does not switch answers as usual, and the client's
    connection serves its next request."""
    g = Gw(procs, tmp_path)
    s = socket.create_connection((g.host, g.port), timeout=10)
    s.sendall(b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\n\r\n")
    c = Client(s)
    assert c.status == 426, c.headers
    body = c._take(int(c.headers["content-length"]))
    assert b"handshake" in body
    s.sendall(b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n" % KEY.encode())
    c.buf, c.s = c.buf, s
    head = c._until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    c.send(1, b"after")
    assert c.recv() == (1, b"after")
    s.close()
    g.stop()


def test_websocket_to_an_inference_pool(procs, tmp_path):
    """A handshake routed to an InferencePool (vLLM's /v1/realtime) goes to
    the pod the picker chooses and is tunnelled the same way."""
    g = Gw(procs, tmp_path, pool=True)
    c = g.connect()
    assert c.status == 101, c.headers
    assert c.headers["sec-websocket-accept"] == ws_accept(KEY)
    assert c.headers["x-gateway-destination-endpoint-served"] == g.pod.address
    c.send(1, b'{"type":"session.update"}')
    assert c.recv() == (1, b'{"type":"session.update"}')
    c.close()
    g.stop()


def test_websocket_to_a_pool_with_inference_models(procs, tmp_path):
    """A pool whose models are InferenceModels (v1alpha2) takes the
    handshake too: it has no body to read a model from, and goes to a
    pod as any request without a body does (GIE v0.3+)."""
    g = Gw(procs, tmp_path, pool=True, models=True)
    c = g.connect("/v1/realtime?model=tweet-summary")
    assert c.status == 101, c.headers
    assert c.headers["x-gateway-destination-endpoint-served"] == g.pod.address
    assert c.headers["date"].endswith(" GMT")  # RFC 9110 §6.6.1, as Envoy adds it
    c.send(1, b"hello")
    assert c.recv() == (1, b"hello")
    c.close()
    g.stop()


def test_idle_tunnels_hold_no_buffers(procs, tmp_path):
    """A WebSocket that went quiet (a realtime session waiting for its
    user) holds no buffer on either side of the gateway: 300 idle tunnels
    add under 20 KiB each to its RSS (7.6 measured; 11.3 under ASan; 41.7
    while each side kept its read and write buffers)."""
    n = 300
    g = Gw(procs, tmp_path, env=no_quarantine())

    def open_tunnels(k):
        out = []
        for i in range(k):
            c = g.connect()
            assert c.status == 101
            c.send(2, b"x" * 20000)  # a message larger than one read
            assert c.recv() == (2, b"x" * 20000)
            out.append(c)
        return out

    for c in open_tunnels(50):  # warm the allocator up with the same traffic
        c.close()
    time.sleep(0.5)
    rss0 = rss_kib(g.gw.pid)
    tunnels = open_tunnels(n)
    time.sleep(0.5)
    grown = rss_kib(g.gw.pid) - rss0
    print("\n%d idle tunnels: +%d KiB, %.1f KiB each" % (n, grown, grown / n))
    assert grown < 20 * n, "%.1f KiB per idle tunnel" % (grown / n)
    for c in tunnels:  # all still open and working
        c.send(1, b"still")
        assert c.recv() == (1, b"still")
        c.close()
    g.stop()


def test_websocket_through_an_external_picker(procs, tmp_path):
    """A pool whose endpoint picker is an ext_proc service: the handshake's
    headers go to the picker (a GET: no body), the pod it names gets the
    handshake, and the picker sees the 101's headers before the client,
    as Envoy would show them; then the tunnel runs as with the built-in
    picker."""
    import pytest
    pytest.importorskip("grpc")
    import test_gateway_epp as ge
    pods = []
    hosts = [unique_loopback() for _ in range(2)]
    port = free_port(hosts[0])
    for h in hosts:
        pods.append(FakePod(h, port, mode="websocket"))
        pods[-1].set("websocket")
    picker_host = unique_loopback()
    picker_port = free_port(picker_host)
    picker = ge.FakePicker(picker_host, picker_port, ["%s:%d" % (h, port) for h in hosts])
    host = unique_loopback()
    gw_port = free_port(host)
    d = os.path.join(str(tmp_path), "m")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "all.yaml"), "---\n".join([
        GATEWAY.format(port=gw_port), ge.ROUTE,
        ge.POOL.format(target_port=port, picker_port=picker_port, failure_mode="FailClose"),
        ge.SERVICE.format(ip=picker_host, port=picker_port,
                          app_protocol="    appProtocol: kubernetes.io/h2c\n")] +
        [POD.format(i=i, ip=h) for i, h in enumerate(hosts)]))
    gw = procs.start("gateway", "-f", d, "--bind", host, "--workers", "2", name="gateway")
    wait_port(host, gw_port, proc=gw)
    g = type("G", (), {"host": host, "port": gw_port})()
    c = Gw.connect(g, extra="test-epp-endpoint-selection: %s\r\n" % hosts[1])
    assert c.status == 101, c.headers
    assert c.headers["sec-websocket-accept"] == ws_accept(KEY)
    assert c.headers[ge.SERVED] == "%s:%d" % (hosts[1], port)
    assert picker.seen and picker.seen[-1]["upgrade"] == "websocket"
    c.send(1, b"through the picker")
    assert c.recv() == (1, b"through the picker")
    c.send(8, b"\x03\xe8")
    assert c.recv() == (8, b"\x03\xe8")
    assert c.at_eof()
    c.close()
    assert [r for r in pods[1].requests if r.path.startswith("/v1/realtime")]
    assert not [r for r in pods[0].requests if r.path.startswith("/v1/realtime")]
    picker.stop()
    for p in pods:
        p.stop()
    gw.send_signal(15)
    assert gw.wait(timeout=15) == 0, procs.output(gw)


def test_a_backend_that_stops_reading_holds_the_client_back(procs, tmp_path):
    """Backpressure from the backend to the client: a backend that takes
    its 101 and then reads nothing makes the gateway stop reading the
    client once a few hundred KiB wait, so the client's sends block and
    the gateway's memory stays flat, and when the backend reads again
    every byte arrives, in order."""
    import threading
    host = unique_loopback()
    lsock = socket.socket()
    lsock.bind((host, 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]
    got = {"sock": None}

    def backend():
        s, _ = lsock.accept()
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                  % ws_accept(KEY).encode())
        got["sock"] = s  # and read nothing for now
    t = threading.Thread(target=backend, daemon=True)
    t.start()
    g_host = unique_loopback()
    g_port = free_port(g_host)
    d = os.path.join(str(tmp_path), "m")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "all.yaml"), "---\n".join([
        gateway(g_port), route(RULES), SERVICE_WS % port, pod("p0", "svc", host)]))
    gw = procs.start("gateway", "-f", d, "--bind", g_host, "--workers", "2", name="gateway",
                     env=no_quarantine())
    wait_port(g_host, g_port, proc=gw)
    g = type("G", (), {"host": g_host, "port": g_port})()
    c = Gw.connect(g)
    assert c.status == 101
    t.join(5)
    rss0 = rss_kib(gw.pid)
    c.s.setblocking(False)
    block = os.urandom(64 * 1024)
    twice = block + block  # the stream is block repeated, whatever each send takes
    sent = 0
    last = time.monotonic()
    while time.monotonic() - last < 1 and sent < (256 << 20):  # until 1 s without room
        off = sent % len(block)
        try:
            sent += c.s.send(twice[off:off + len(block)])
            last = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
    # The client was held back long before 256 MiB, and the gateway kept
    # little of it: the rest waits in the kernel's socket buffers.
    assert sent < (64 << 20), sent
    grown = rss_kib(gw.pid) - rss0
    print("\nclient held back after %d KiB; gateway RSS +%d KiB" % (sent >> 10, grown))
    assert grown < 8 * 1024, "%d KiB" % grown
    # The backend reads again: every byte arrives, in order.
    b = got["sock"]
    b.settimeout(10)
    c.s.setblocking(True)
    received = 0
    expect = sent
    while received < expect:
        chunk = b.recv(1 << 20)
        assert chunk, (received, expect)
        at = 0
        while at < len(chunk):  # compared a block period at a time
            off = (received + at) % len(block)
            n = min(len(chunk) - at, len(block) - off)
            assert chunk[at:at + n] == block[off:off + n], received + at
            at += n
        received += len(chunk)
    assert received == expect
    c.close()
    b.close()
    lsock.close()
    gw.send_signal(15)
    assert gw.wait(timeout=15) == 0, procs.output(gw)
