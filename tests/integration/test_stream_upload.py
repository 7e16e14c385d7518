"""Large request bodies to a Service go on as they come (as Envoy passes
them), instead of being read whole: an upload past --max-body-bytes is
served, not answered 413, and the gateway holds a bounded part of it at a
time. The pod sees the body framed as the client framed it (its
Content-Length, else chunked); a body of 1 MiB or less is still read whole
(it can then still go to another endpoint after a failure). A pod that
answers before the body ended ends the exchange, and the connection closes
after the answer; a client that goes away mid-upload takes the pod's
connection with it; a request pipelined after a streamed body is served.
A streamed body of at most 1 MiB so far is kept until the answer starts,
so a pod that dies with it unanswered does not lose the request."""
import hashlib
import json
import os
import socket
import threading
import time

import pytest

from conftest import free_port, rss_kib, unique_loopback
from test_gateway import write
from test_gie_v1 import GATEWAY
from tcppod import TcpPod
from test_grpc_proxy import SERVICE, start_gateway, stop_gateway

ASAN = "build-asan" in os.environ.get("IG_BIN", "")

ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - name: svc-up
      port: 80
"""

# Body-based routing: a rule for the model the body names before ROUTE's
# default.
BBR_ROUTE = ROUTE.replace("  rules:\n", """  rules:
  - matches:
    - headers:
      - name: X-Gateway-Model-Name
        value: big
    backendRefs:
    - name: svc-model
      port: 80
""")

MIB = 1 << 20


def read_head(c, buf):
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), buf


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


class UploadPod(TcpPod):
    """An HTTP/1.1 pod that reads each request's body as framed
    (Content-Length or chunked), and answers with what it got: the
    framing, the byte count and the SHA-256 of the body. A request for
    /early is answered 413 as soon as its head arrived, body unread, and
    the connection closed; one for /slow has its body read 64 KiB at a
    time, 2 ms apart (about 30 MiB/s). `ended` counts connections that closed before
    their body was whole; head_conn[i] is the connection heads[i] came on.
    A request for /mute has its body read whole and is never answered; one
    for /deaf has none of its body read; either holds its connection until
    `release` is set.
    """

    def __init__(self, host, port):
        self.heads, self.head_conn, self.ended = [], [], 0
        self.release = threading.Event()
        super().__init__(host, port)

    def body(self, c, buf, head):
        """(bytes, sha256, rest of buf), or None when the peer left first."""
        slow = head.split(" ")[1] == "/slow"
        h = hashlib.sha256()
        n = 0
        if (header(head, "transfer-encoding") or "").lower() == "chunked":
            while True:
                while b"\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return None
                    buf += d
                line, buf = buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    d = c.recv(65536)
                    if not d:
                        return None
                    buf += d
                h.update(buf[:size])
                n += size
                buf = buf[size + 2:]
                if size == 0:
                    return n, h.hexdigest(), buf
        left = int(header(head, "content-length") or 0)
        while left:
            if not buf:
                if slow:
                    time.sleep(0.002)
                buf = c.recv(64 << 10 if slow else 1 << 20)
                if not buf:
                    return None
            take = buf[:left]
            h.update(take)
            n += len(take)
            left -= len(take)
            buf = buf[len(take):]
        return n, h.hexdigest(), buf

    def serve(self, c, cid):
        c.settimeout(30)
        buf = b""
        try:
            while True:
                head, buf = read_head(c, buf)
                if head is None:
                    return
                self.heads.append(head)
                self.head_conn.append(cid)
                path = head.split(" ")[1]
                if path == "/early":
                    c.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n"
                              b"Connection: close\r\n\r\nfull")
                    return
                if path == "/deaf":
                    self.release.wait(30)
                    return
                got = self.body(c, buf, head)
                if got is None:
                    self.ended += 1
                    return
                if path == "/mute":
                    self.release.wait(30)
                    return
                n, digest, buf = got
                framing = ("chunked" if header(head, "transfer-encoding")
                           else "length" if header(head, "content-length") else "none")
                out = json.dumps({"bytes": n, "sha256": digest, "framing": framing,
                                  "path": head.split(" ")[1]}).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
        except OSError:
            pass
        finally:
            c.close()


class Setup:
    """The gateway, its upload pod behind svc-up, and with `bbr` a second
    one behind svc-model that BBR_ROUTE sends the model "big" to."""

    def __init__(self, procs, tmp_path, bbr=False, extra=()):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "upload")
        os.makedirs(self.dir, exist_ok=True)
        pod_host = unique_loopback()
        pod_port = free_port(pod_host)
        self.pod = UploadPod(pod_host, pod_port)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        docs = [GATEWAY.format(port=self.port), BBR_ROUTE if bbr else ROUTE,
                SERVICE.format(name="svc-up", port=pod_port, ip=pod_host, app_protocol="")]
        self.model_pod = None
        if bbr:
            mh = unique_loopback()
            mp = free_port(mh)
            self.model_pod = UploadPod(mh, mp)
            docs.append(SERVICE.format(name="svc-model", port=mp, ip=mh, app_protocol=""))
        write(os.path.join(self.dir, "all.yaml"), "---\n".join(docs))
        self.alog = os.path.join(self.dir, "access.log")
        self.gw = start_gateway(procs, self.dir, self.host, self.port,
                                extra=("--access-log", self.alog) + tuple(extra))

    def access_log(self, n):
        """The first n lines of the access log, once written (every 100 ms)."""
        deadline = time.time() + 5
        while True:
            try:
                with open(self.alog) as f:
                    lines = [json.loads(x) for x in f.read().split("\n") if x]
            except FileNotFoundError:
                lines = []
            if len(lines) >= n or time.time() > deadline:
                return lines
            time.sleep(0.05)

    def connect(self):
        c = socket.create_connection((self.host, self.port), timeout=30)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def stop_pods(self):
        self.pod.release.set()
        self.pod.stop()
        if self.model_pod:
            self.model_pod.stop()

    def stop(self):
        self.stop_pods()
        return stop_gateway(self.procs, self.gw)


@pytest.fixture
def setup(procs, tmp_path):
    s = Setup(procs, tmp_path)
    yield s
    s.stop_pods()


def read_response(c):
    """(status, head, body) of one response framed by Content-Length."""
    head, buf = read_head(c, b"")
    assert head is not None, "connection closed before a response"
    length = int(header(head, "content-length") or 0)
    while len(buf) < length:
        d = c.recv(65536)
        assert d, "connection closed inside a response"
        buf += d
    return int(head.split(" ")[1]), head, buf[:length], buf[length:]


def pattern(i, size=MIB):
    return bytes([(i * 7 + k) % 251 for k in range(256)]) * (size // 256)


def upload_watching_rss(s, path, mib, piece):
    """Sends `mib` MiB to path with their Content-Length, piece(i) the i-th
    MiB, while sampling the gateway's RSS. (status, head, body, SHA-256 of
    what was sent, the RSS's growth at its peak in KiB)."""
    base = rss_kib(s.gw.pid)
    peak = [base]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(s.gw.pid))
            time.sleep(0.01)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    c = s.connect()
    h = hashlib.sha256()
    c.sendall(b"POST %s HTTP/1.1\r\nHost: up\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\n\r\n" % (path.encode(), mib * MIB))
    for i in range(mib):
        p = piece(i)
        h.update(p)
        c.sendall(p)
    status, head, body, _ = read_response(c)
    done.set()
    t.join()
    c.close()
    return status, head, body, h.hexdigest(), peak[0] - base


def test_upload_past_the_body_limit_streams_in_bounded_memory(setup):
    """64 MiB with a Content-Length (four times --max-body-bytes): the pod
    gets every byte with the same Content-Length, the client a 200, and
    the gateway's memory grows by far less than the body while it flows."""
    s = setup
    status, head, body, digest, grown = upload_watching_rss(s, "/upload", 64, pattern)
    assert status == 200, (head, body)
    got = json.loads(body)
    assert got == {"bytes": 64 * MIB, "sha256": digest, "framing": "length",
                   "path": "/upload"}
    assert header(s.pod.heads[-1], "content-length") == str(64 * MIB)
    # A streamed body waits in at most 1 MiB per exchange (plus a read and
    # the upstream client's 256 KiB); ASan's allocator keeps freed blocks.
    assert grown < (48 if ASAN else 16) * 1024, grown


def test_upload_to_a_slow_pod_is_held_back(setup):
    """The client sends 32 MiB as fast as it can, the pod reads at about
    30 MiB/s: what the pod has not taken waits in the client, held back by
    the gateway, not in the gateway (which would grow by most of the
    body)."""
    s = setup
    same = pattern(2)
    status, head, body, _, grown = upload_watching_rss(s, "/slow", 32, lambda i: same)
    assert status == 200, (head, body)
    assert json.loads(body)["bytes"] == 32 * MIB
    assert grown < (48 if ASAN else 12) * 1024, grown


def test_chunked_upload_goes_on_chunked(setup):
    """A body of unannounced length streams at any size: the pod reads it
    chunked and gets it whole; the chunks the client chose are not kept."""
    s = setup
    c = s.connect()
    pieces = [b"a" * 10, b"b" * 70000, b"c" * 3, pattern(5)]
    req = b"POST /chunks HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in pieces:
        req += b"%x;ext=1\r\n%s\r\n" % (len(p), p)
    req += b"0\r\nx-trailer: dropped\r\n\r\n"
    c.sendall(req)
    status, head, body, _ = read_response(c)
    c.close()
    assert status == 200, (head, body)
    whole = b"".join(pieces)
    assert json.loads(body) == {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest(),
                                "framing": "chunked", "path": "/chunks"}
    assert header(s.pod.heads[-1], "content-length") is None


def test_small_body_is_read_whole(setup):
    """1 MiB exactly: read whole, sent with its Content-Length as before."""
    s = setup
    c = s.connect()
    body = pattern(1)
    c.sendall(b"POST /small HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n%s"
              % (len(body), body))
    status, head, out, _ = read_response(c)
    c.close()
    assert status == 200, (head, out)
    assert json.loads(out)["bytes"] == MIB


def test_streamed_body_takes_a_new_connection(setup):
    """A kept-alive connection to the pod is there (a GET went on it), yet
    a 2 MiB upload takes a new one: a pod closing the idle one just as it
    is reused would lose bytes that cannot be sent again. A small body
    reuses a kept-alive connection as before."""
    s = setup
    c = s.connect()
    c.sendall(b"GET /warm HTTP/1.1\r\nHost: up\r\n\r\n")
    assert read_response(c)[0] == 200
    body = pattern(3, 2 * MIB)
    c.sendall(b"PUT /big HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n%s"
              % (len(body), body))
    status, _, out, _ = read_response(c)
    assert status == 200 and json.loads(out)["bytes"] == 2 * MIB
    c.sendall(b"POST /small HTTP/1.1\r\nHost: up\r\nContent-Length: 2\r\n\r\nok")
    assert read_response(c)[0] == 200
    c.close()
    paths = [h.split(" ")[1] for h in s.pod.heads]
    conn = dict(zip(paths, s.pod.head_conn))
    assert conn["/big"] != conn["/warm"]
    assert conn["/small"] in (conn["/warm"], conn["/big"])


def test_pipelined_request_after_a_streamed_body(setup):
    """A chunked body and, in the same write, the next request: both are
    answered, in order, on the one connection."""
    s = setup
    c = s.connect()
    c.sendall(b"POST /first HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n"
              b"POST /second HTTP/1.1\r\nHost: up\r\nContent-Length: 3\r\n\r\nabc")
    status1, _, b1, rest = read_response(c)
    assert status1 == 200 and json.loads(b1)["path"] == "/first"
    assert json.loads(b1)["bytes"] == 5
    if rest:
        c2 = rest
    else:
        c2 = b""
    head, buf = read_head(c, c2)
    assert head is not None and head.split(" ")[1] == "200", head
    length = int(header(head, "content-length"))
    while len(buf) < length:
        buf += c.recv(65536)
    assert json.loads(buf[:length])["path"] == "/second"
    c.close()


def test_answer_before_the_body_ends(setup):
    """The pod answers 413 to a 32 MiB upload after its head alone: the
    client gets the 413 while still sending, then the gateway closes the
    connection; the next connection is served."""
    s = setup
    c = s.connect()
    c.sendall(b"POST /early HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n" % (32 * MIB))
    got = b""
    sent = 0
    c.settimeout(10)
    try:
        while b"\r\n\r\n" not in got and sent < 32 * MIB:
            c.sendall(pattern(0, 256 * 1024))
            sent += 256 * 1024
            c.setblocking(False)
            try:
                got += c.recv(65536)
            except BlockingIOError:
                pass
            c.setblocking(True)
    except OSError:
        pass  # the gateway may close while we still send
    c.settimeout(10)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    c.close()
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    # Served on: a new connection, a small request.
    c = s.connect()
    c.sendall(b"POST /after HTTP/1.1\r\nHost: up\r\nContent-Length: 2\r\n\r\nok")
    status, _, body, _ = read_response(c)
    c.close()
    assert status == 200 and json.loads(body)["path"] == "/after"


def test_client_leaving_mid_upload_closes_the_pods_connection(setup):
    """Half of a 16 MiB upload, then the client goes: the pod's connection
    ends before the body did (no one waits for the rest), and the gateway
    serves on."""
    s = setup
    c = s.connect()
    c.sendall(b"POST /half HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n" % (16 * MIB))
    for i in range(8):
        c.sendall(pattern(i))
    time.sleep(0.3)
    c.close()
    deadline = time.time() + 10
    while s.pod.ended < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert s.pod.ended == 1
    c = s.connect()
    c.sendall(b"GET /after HTTP/1.1\r\nHost: up\r\n\r\n")
    status, _, body, _ = read_response(c)
    c.close()
    assert status == 200


@pytest.mark.parametrize("flag", ["--body-timeout", "--upstream-read-timeout"])
@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_client_stalling_mid_upload_is_408(procs, tmp_path, flag, framing):
    """A client that goes silent inside a streamed body is the one at
    fault, as nginx's client_body_timeout and Envoy's stream idle timeout
    before the response have it: 408 (Connection: close), the pod's
    connection closed, the access log saying the client stalled. With
    --body-timeout short, the body timeout bounds the silence (it used not
    to run on a streamed body: the pod's connection was held for the whole
    upstream read timeout); with the upstream read timeout shorter, the
    pod's silence while it waits for the body is not blamed on the pod
    (it was 504 chunked, and 502 with a Content-Length past 1 MiB)."""
    s = Setup(procs, tmp_path, extra=(flag, "300ms"))
    try:
        c = s.connect()
        if framing == "chunked":
            c.sendall(b"POST /stall HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n")
        else:
            c.sendall(b"POST /stall HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n%s"
                      % (2 * MIB, pattern(1) + pattern(2, MIB // 2)))
        c.settimeout(10)
        status, head, body, _ = read_response(c)
        assert status == 408, (head, body)
        assert header(head, "connection") == "close"
        assert json.loads(body)["error"]["type"] == "timeout"
        assert c.recv(1) == b""
        c.close()
        deadline = time.time() + 5
        while s.pod.ended < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert s.pod.ended == 1, "the pod's connection was not closed"
        line = s.access_log(1)[0]
        assert line["status"] == 408, line
        assert "client" in line["reason"] and "stalled" in line["reason"], line
    finally:
        s.stop()


def test_http2_client_stalling_mid_upload_is_408(procs, tmp_path):
    """The same over HTTP/2: a stream whose body stops coming gets 408 on
    the stream after --body-timeout; the pod's connection is closed."""
    h2conn = pytest.importorskip("h2.connection")
    import h2.config
    import h2.events
    s = Setup(procs, tmp_path, extra=("--body-timeout", "300ms"))
    try:
        sock = s.connect()
        conn = h2conn.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":path", "/stall"), (":scheme", "http"),
                              (":authority", "up")])
        conn.send_data(1, b"hello")
        sock.sendall(conn.data_to_send())
        sock.settimeout(10)
        status = None
        while status is None:
            data = sock.recv(65536)
            assert data, "connection closed before an answer"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers)[b":status"]
        assert status == b"408"
        sock.close()
        deadline = time.time() + 5
        while s.pod.ended < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert s.pod.ended == 1, "the pod's connection was not closed"
        line = s.access_log(1)[0]
        assert line["status"] == 408 and "stalled" in line["reason"], line
    finally:
        s.stop()


BAD_CHUNKED = [
    (b"5\r\nhello\r\nzz\r\n", 400),
    (b"5\nhello\r\n0\r\n\r\n", 400),
    (b"5\r\nhelloXX0\r\n\r\n", 400),
    (b"10000000000000005\r\nhello\r\n", 400),
    (b"5;a=\"b\r\nc\"\r\nhello\r\n", 400),
    (b"5;a\nb\r\nhello\r\n", 400),
    (b"0\r\n" + b"X-Trailer: 1\r\n" * 200 + b"\r\n", 431),
]


@pytest.mark.parametrize("bad,status", BAD_CHUNKED,
                         ids=["bad-size", "lf-only", "no-crlf-after-data", "size-overflow",
                              "cr-in-extension", "lf-in-extension", "trailers-over-limit"])
@pytest.mark.parametrize("later", [False, True], ids=["with-head", "after-a-chunk"])
def test_malformed_chunked_upload_is_refused(setup, bad, status, later):
    """A chunked body streamed to a Service that turns out malformed before
    any response began is answered as one read whole is (400, or 431 for
    trailers over the limits), with Connection: close, and the connection
    closes: the client learns why instead of seeing a bare close. The
    pod's connection, which got the head and maybe a chunk, is closed,
    never reused, and the access log has the status the client got."""
    s = setup
    c = s.connect()
    head = b"POST /bad HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
    if later:
        c.sendall(head + b"3\r\nabc\r\n")
        deadline = time.time() + 5
        while not s.pod.heads and time.time() < deadline:
            time.sleep(0.02)
        assert s.pod.heads, "the pod did not get the head"
        c.sendall(bad)
    else:
        c.sendall(head + bad)
    c.settimeout(10)
    got, head_text, body, _ = read_response(c)
    assert got == status, (head_text, body)
    assert header(head_text, "connection") == "close"
    want = "malformed chunked request body" if status == 400 else "trailer fields too large"
    assert want in json.loads(body)["error"]["message"], body
    assert c.recv(1) == b""
    c.close()
    if later:
        deadline = time.time() + 5
        while s.pod.ended < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert s.pod.ended == 1, "the pod's connection was not closed"
    line = s.access_log(1)[0]
    assert line["status"] == status, line
    assert want in line["reason"], line
    c = s.connect()
    c.sendall(b"POST /after HTTP/1.1\r\nHost: up\r\nContent-Length: 2\r\n\r\nok")
    after, _, out, _ = read_response(c)
    c.close()
    assert after == 200 and json.loads(out)["path"] == "/after"
    assert s.pod.heads[-1].startswith("POST /after ")


@pytest.mark.parametrize("path", ["/mute", "/deaf"])
def test_pod_silent_mid_upload_is_504(procs, tmp_path, path):
    """The pod is the silent side: it read the whole body (over 1 MiB, so
    not kept for another attempt) and never answers, or it reads none of
    it while the client keeps sending. That is the upstream read timeout,
    504, as before the response of any request; it was a 502 ("failed
    while the request was streaming"), which says the pod broke."""
    s = Setup(procs, tmp_path, extra=("--upstream-read-timeout", "300ms"))
    try:
        c = s.connect()
        size = 3 * MIB if path == "/mute" else 64 * MIB
        c.sendall(b"POST %s HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n"
                  % (path.encode(), size))

        def send():
            try:
                for i in range(size // MIB):
                    c.sendall(pattern(i))
            except OSError:
                pass  # the gateway answered and closed first
        t = threading.Thread(target=send, daemon=True)
        t.start()
        c.settimeout(10)
        status, head, body, _ = read_response(c)
        assert status == 504, (head, body)
        if path == "/deaf":  # the rest of the body is not wanted
            assert header(head, "connection") == "close"
        c.close()
        t.join(10)
        line = s.access_log(1)[0]
        assert line["status"] == 504, line
        assert "did not answer in time" in line["reason"], line
    finally:
        s.stop()


def h2_upload(sock, conn, path, body, with_length):
    """POSTs body on a new stream of the HTTP/2 connection conn (h2) over
    sock, with a content-length or not, as flow control lets it go; the
    answer's (status, body)."""
    import h2.events
    sid = conn.get_next_available_stream_id()
    hdrs = [(":method", "POST"), (":path", path), (":scheme", "http"),
            (":authority", "up")]
    if with_length:
        hdrs.append(("content-length", str(len(body))))
    conn.send_headers(sid, hdrs)
    sock.sendall(conn.data_to_send())
    off, data, status, ended = 0, b"", None, False
    while not ended:
        while off < len(body):
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room <= 0:
                break
            conn.send_data(sid, body[off:off + room])
            off += room
        if off >= len(body) and not conn.streams[sid].closed and \
                conn.streams[sid].state_machine.state.name == "OPEN":
            conn.end_stream(sid)
        sock.sendall(conn.data_to_send())
        if ended:
            break
        for ev in conn.receive_data(sock.recv(65536)):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
        sock.sendall(conn.data_to_send())
    return status, data


def test_http2_upload_to_an_http1_pod(setup):
    """Over HTTP/2 (prior knowledge): 8 MiB without content-length reaches
    the HTTP/1.1 pod chunked, 3 MiB with one keeps its Content-Length, and
    so do 24 MiB, past --max-body-bytes (it was refused 413 at its head).
    """
    h2conn = pytest.importorskip("h2.connection")
    import h2.config
    import h2.events
    s = setup
    sock = s.connect()
    conn = h2conn.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())

    def upload(path, body, with_length):
        return h2_upload(sock, conn, path, body, with_length)

    big = b"".join(pattern(i) for i in range(8))
    status, data = upload("/h2-chunked", big, False)
    assert status == b"200", data
    assert json.loads(data) == {"bytes": len(big), "sha256": hashlib.sha256(big).hexdigest(),
                                "framing": "chunked", "path": "/h2-chunked"}
    sized = big[:3 * MIB]
    status, data = upload("/h2-sized", sized, True)
    assert status == b"200", data
    assert json.loads(data)["framing"] == "length"
    assert json.loads(data)["bytes"] == len(sized)
    # Past --max-body-bytes with a content-length: streamed, not 413.
    huge = big * 3
    status, data = upload("/h2-huge", huge, True)
    assert status == b"200", data
    assert json.loads(data) == {"bytes": len(huge), "sha256": hashlib.sha256(huge).hexdigest(),
                                "framing": "length", "path": "/h2-huge"}
    sock.close()


def test_stops_cleanly(setup):
    """Nothing left behind: SIGTERM after streamed uploads ends the gateway
    cleanly (no sanitizer report)."""
    s = setup
    c = s.connect()
    c.sendall(b"POST /x HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\nabc\r\n0\r\n\r\n")
    status, _, _, _ = read_response(c)
    c.close()
    assert status == 200
    s.stop()


class DyingPod(UploadPod):
    """An UploadPod that, the first time either of a pair gets a request
    for /die, reads its whole body and then dies without answering: it
    stops listening and closes the connection. `shared` is the pair's
    [dead yet] flag."""

    def __init__(self, host, port, shared):
        self.shared = shared
        super().__init__(host, port)

    def serve(self, c, cid):
        c.settimeout(30)
        try:
            head, buf = read_head(c, b"")
            if head is None:
                return
            if head.split(" ")[1] == "/die" and not self.shared[0]:
                self.shared[0] = True
                self.heads.append(head)
                got = self.body(c, buf, head)
                self.got = got[:2] if got else None
                self.stopping = True
                self.sock.close()
                c.close()
                return
        except OSError:
            return
        # Served as UploadPod serves, from the head already read.
        super().serve(_Replay(c, head, buf), cid)


class _Replay:
    """A socket that gives back a head already read before its own bytes."""

    def __init__(self, c, head, buf):
        self.c = c
        self.pending = head.encode() + b"\r\n\r\n" + buf

    def recv(self, n):
        if self.pending:
            out, self.pending = self.pending[:n], self.pending[n:]
            return out
        return self.c.recv(n)

    def __getattr__(self, name):
        return getattr(self.c, name)


def two_dying_pods(procs, tmp_path):
    """The gateway before a Service of two DyingPods on one port."""
    d = os.path.join(str(tmp_path), "dying")
    os.makedirs(d, exist_ok=True)
    hosts = [unique_loopback(), unique_loopback()]
    port = free_port(hosts[0])
    while True:
        try:
            probe = socket.socket()
            probe.bind((hosts[1], port))
            probe.close()
            break
        except OSError:
            probe.close()
            port = free_port(hosts[0])
    shared = [False]
    pods = [DyingPod(h, port, shared) for h in hosts]
    svc = SERVICE.format(name="svc-up", port=port, ip=hosts[0], app_protocol="")
    svc += """---
apiVersion: v1
kind: Pod
metadata:
  name: svc-up-1
  labels:
    app: svc-up
status:
  podIP: %s
""" % hosts[1]
    host = unique_loopback()
    gport = free_port(host)
    write(os.path.join(d, "all.yaml"), "---\n".join([GATEWAY.format(port=gport), ROUTE, svc]))
    gw = start_gateway(procs, d, host, gport)
    return gw, pods, host, gport


def test_streamed_body_goes_to_another_pod_after_one_died(procs, tmp_path):
    """A body of unannounced length streams to a pod that reads it all and
    dies without answering: the gateway kept what it passed on (up to
    1 MiB) and sends it whole to the other pod, and the client gets that
    pod's answer, as it would for a body read whole. Before, the request
    was lost: 502."""
    gw, pods, host, port = two_dying_pods(procs, tmp_path)
    try:
        pieces = [pattern(i, 64 << 10) for i in range(5)] + [b"tail"]
        whole = b"".join(pieces)
        c = socket.create_connection((host, port), timeout=30)
        req = b"POST /die HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
        for p in pieces:
            req += b"%x\r\n%s\r\n" % (len(p), p)
        c.sendall(req + b"0\r\n\r\n")
        status, head, out, _ = read_response(c)
        c.close()
        assert status == 200, (head, out)
        got = json.loads(out)
        assert got == {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest(),
                       "framing": "chunked", "path": "/die"}
        dead = [p for p in pods if p.stopping]
        assert len(dead) == 1
        assert dead[0].got == (len(whole), hashlib.sha256(whole).hexdigest())
    finally:
        for p in pods:
            p.stop()
        stop_gateway(procs, gw)


def test_http2_streamed_body_goes_to_another_pod_after_one_died(procs, tmp_path):
    """The same over HTTP/2 without content-length (the body streams as
    it comes): the second pod gets it whole."""
    h2conn = pytest.importorskip("h2.connection")
    import h2.config
    gw, pods, host, port = two_dying_pods(procs, tmp_path)
    try:
        sock = socket.create_connection((host, port), timeout=30)
        conn = h2conn.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        body = pattern(6, 512 << 10)
        status, data = h2_upload(sock, conn, "/die", body, False)
        sock.close()
        assert status == b"200", data
        assert json.loads(data) == {"bytes": len(body),
                                    "sha256": hashlib.sha256(body).hexdigest(),
                                    "framing": "chunked", "path": "/die"}
        assert [p.got for p in pods if p.stopping] == [(len(body),
                                                        hashlib.sha256(body).hexdigest())]
    finally:
        for p in pods:
            p.stop()
        stop_gateway(procs, gw)


def test_large_streamed_body_is_not_sent_again(procs, tmp_path):
    """Past 1 MiB nothing is kept (an upload may be any size): the same
    death is answered 502, and nothing goes to the other pod."""
    gw, pods, host, port = two_dying_pods(procs, tmp_path)
    try:
        body = pattern(4, 3 * MIB)
        c = socket.create_connection((host, port), timeout=30)
        c.sendall(b"POST /die HTTP/1.1\r\nHost: up\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        status, head, out, _ = read_response(c)
        c.close()
        assert status == 502, (head, out)
        assert sum(len(p.heads) for p in pods) == 1
    finally:
        for p in pods:
            p.stop()
        stop_gateway(procs, gw)


def test_body_based_routing_reads_the_body(procs, tmp_path):
    """Where a rule matches on X-Gateway-Model-Name, which body-based
    routing sets from the JSON body's model, a body of unannounced length
    or over 1 MiB is read whole: its model picks the rule (svc-model), not
    the default rule it would match without it (svc-up)."""
    s = Setup(procs, tmp_path, bbr=True)
    try:
        body = json.dumps({"model": "big", "prompt": "p" * (2 * MIB)}).encode()
        c = s.connect()
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: up\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        status, head, out, _ = read_response(c)
        assert status == 200, (head, out)
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: up\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        status, head, out, _ = read_response(c)
        assert status == 200, (head, out)
        c.close()
        assert len(s.model_pod.heads) == 2, s.pod.heads
        assert s.pod.heads == []
        assert json.loads(out)["bytes"] == len(body)
    finally:
        s.stop()
