"""A misbehaving h2c model server, frame by frame (hyperframe and hpack),
for the faults python3-h2 will not commit: GOAWAY below a stream in
flight, windows of 0, SETTINGS never acknowledged, malformed response
heads, frames after END_STREAM, HTTP/1.1 on the h2c port.

A `script(conn, sid, headers, body)` answers each request; it gets the
connection (`Conn`: headers(), data(), rst(), goaway(), raw(), close())
and returns False to stop serving that connection. `settings` is the
pod's first SETTINGS; `ack_settings=False` never acknowledges the
gateway's. HTTP/1.1 (the metrics scraper) gets fakepod's page unless
`h1_reply` says otherwise (bytes sent to every HTTP/1.1 or h2 connection
before anything is read: a server that speaks HTTP/1.1 only).

Requests are recorded in `requests` (conn, stream, headers, body)."""
import socket
import threading
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from fakepod import METRICS_PAGE

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Conn:
    def __init__(self, sock, cid):
        self.s, self.cid = sock, cid
        self.enc = hpack.Encoder()
        self.lock = threading.Lock()
        self.closed = False

    def raw(self, data):
        with self.lock:
            try:
                self.s.sendall(data)
            except OSError:
                self.closed = True

    def send(self, *frames):
        self.raw(b"".join(f.serialize() for f in frames))

    def headers(self, sid, fields, end_stream=False, end_headers=True):
        f = HeadersFrame(sid)
        f.data = self.enc.encode(fields)
        if end_headers:
            f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        self.send(f)

    def data(self, sid, payload, end_stream=False):
        frames = []
        for off in range(0, max(len(payload), 1), 16384):
            f = DataFrame(sid)
            f.data = payload[off:off + 16384]
            frames.append(f)
        if end_stream:
            frames[-1].flags.add("END_STREAM")
        self.send(*frames)

    def rst(self, sid, code):
        f = RstStreamFrame(sid)
        f.error_code = code
        self.send(f)

    def goaway(self, last, code=0):
        f = GoAwayFrame(0)
        f.last_stream_id = last
        f.error_code = code
        self.send(f)

    def close(self):
        self.closed = True
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def ok_answer(conn, sid, headers, body):
    out = b'{"id":"cmpl-bad","object":"text_completion","choices":[{"text":"ok"}]}'
    conn.headers(sid, [(":status", "200"), ("content-type", "application/json"),
                       ("content-length", str(len(out)))])
    conn.data(sid, out, end_stream=True)
    return True


class BadPod:
    def __init__(self, host, port, script=ok_answer, settings=None, ack_settings=True,
                 h1_reply=None, on_connect=None):
        self.host, self.port = host, port
        self.script, self.settings, self.ack_settings = script, settings or {}, ack_settings
        self.h1_reply, self.on_connect = h1_reply, on_connect
        self.requests = []
        self.conns = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = []
        self._lsock = socket.socket()
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, port))
        self._lsock.listen(128)
        self._lsock.settimeout(0.05)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._acceptor = t

    def stop(self):
        self._stopping = True
        self._acceptor.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    def completions(self):
        with self._cond:
            return [r for r in self.requests if r.get("path") != "/metrics"]

    def wait_requests(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.completions()) < n and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return self.completions()

    def _accept_loop(self):
        try:
            while not self._stopping:
                try:
                    s, _ = self._lsock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                self.conns += 1
                s.settimeout(0.05)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = threading.Thread(target=self._serve, args=(s, self.conns), daemon=True)
                self._threads.append(t)
                t.start()
        finally:
            self._lsock.close()

    def _recv(self, sock):
        while not self._stopping:
            try:
                return sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return b""
        return b""

    def _serve(self, sock, cid):
        try:
            if self.h1_reply is not None:
                self._recv(sock)
                sock.sendall(self.h1_reply)
                return
            buf = b""
            while len(buf) < len(PREFACE) and PREFACE.startswith(buf):
                d = self._recv(sock)
                if not d:
                    return
                buf += d
            if buf.startswith(PREFACE):
                self._serve_h2(sock, cid, buf[len(PREFACE):])
            else:
                self._serve_h1(sock, buf)
        except OSError:
            pass
        finally:
            sock.close()

    def _serve_h1(self, sock, buf):
        while b"\r\n\r\n" not in buf:
            d = self._recv(sock)
            if not d:
                return
            buf += d
        out = METRICS_PAGE.format(running=0, waiting=0, kv=0.1, running_loras="",
                                  waiting_loras="", max_lora=4).encode()
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(out) + out)

    def _serve_h2(self, sock, cid, buf):
        conn = Conn(sock, cid)
        st = SettingsFrame(0)
        st.settings = dict(self.settings)
        conn.send(st)
        if self.on_connect and self.on_connect(conn) is False:
            return
        dec = hpack.Decoder()
        streams = {}
        block = {}
        while not conn.closed:
            while len(buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + length:
                    break
                f.parse_body(memoryview(buf[9:9 + length]))
                buf = buf[9 + length:]
                if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                    if self.ack_settings:
                        ack = SettingsFrame(0)
                        ack.flags.add("ACK")
                        conn.send(ack)
                elif isinstance(f, PingFrame) and "ACK" not in f.flags:
                    pong = PingFrame(0)
                    pong.flags.add("ACK")
                    pong.opaque_data = f.opaque_data
                    conn.send(pong)
                elif isinstance(f, (HeadersFrame, ContinuationFrame)):
                    block.setdefault(f.stream_id, b"")
                    block[f.stream_id] += f.data
                    if "END_HEADERS" in f.flags:
                        hs = [(k if isinstance(k, str) else k.decode(),
                               v if isinstance(v, str) else v.decode())
                              for k, v in dec.decode(block.pop(f.stream_id))]
                        streams[f.stream_id] = {"headers": hs, "body": b""}
                    if "END_STREAM" in f.flags and not self._end(conn, f.stream_id, streams):
                        return
                elif isinstance(f, DataFrame):
                    if f.stream_id in streams:
                        streams[f.stream_id]["body"] += f.data
                    if f.flow_controlled_length:
                        wu = WindowUpdateFrame(0)
                        wu.window_increment = f.flow_controlled_length
                        wu2 = WindowUpdateFrame(f.stream_id)
                        wu2.window_increment = f.flow_controlled_length
                        conn.send(wu, wu2)
                    if "END_STREAM" in f.flags and not self._end(conn, f.stream_id, streams):
                        return
            d = self._recv(sock)
            if not d:
                return
            buf += d

    def _end(self, conn, sid, streams):
        st = streams.pop(sid, None)
        if st is None:
            return True
        pseudo = dict(h for h in st["headers"] if h[0].startswith(":"))
        req = {"conn": conn.cid, "stream": sid, "path": pseudo.get(":path"),
               "headers": st["headers"], "body": st["body"]}
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()
        return self.script(conn, sid, st["headers"], st["body"]) is not False
