"""An h2c model server for the integration tests: HTTP/2 over cleartext
TCP with prior knowledge (Debian's python3-h2), the way GIE's conformance
echo backend serves its h2c port. Like Go's h2c handler it also answers
HTTP/1.1 on the same port (a connection that does not start with the
HTTP/2 preface), which is how the gateway's metrics scraper reaches it:
`GET /metrics` gets the small vLLM page of fakepod.py.

Every other request is answered according to the pod's mode (`set()`):

  echo    a JSON completion whose body also says how the request came:
          `protocol` ("HTTP/2" or "HTTP/1.1"), `method`, `path`,
          `authority` (HTTP/2) or `host` (HTTP/1.1), `headers` (names as
          received, in order) and `request` (the parsed JSON body). A body
          with "stream": true gets an SSE stream instead: `events` events
          (data: {"choices":[{"text":"event-<i>"}]}) `interval_ms` apart,
          each in its own DATA frame, then data: [DONE]. The monotonic time
          each event was sent is appended to `sse_sent`.
  reset   the stream is reset (RST_STREAM `code`, INTERNAL_ERROR by
          default; REFUSED_STREAM says "not processed") before any answer

Every request is recorded in `requests` as a dict: protocol, conn (the
connection's number), stream (HTTP/2 stream id, None for HTTP/1.1),
method, path, headers, body."""
import json
import socket
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events

from fakepod import METRICS_PAGE

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
POLL = 0.05
MODES = ("echo", "reset")


class H2Pod:
    def __init__(self, host, port, mode="echo", **params):
        self.host, self.port = host, port
        self.requests = []
        self.sse_sent = []
        self.set(mode, **params)
        self._cond = threading.Condition()
        self._stopping = False
        self._ids = 0
        self._threads = []
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, port))
        self._lsock.listen(64)
        self._lsock.settimeout(POLL)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="h2pod-accept-%s" % host)
        self._acceptor.start()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def set(self, mode, **params):
        assert mode in MODES, mode
        self.mode, self.params = mode, dict(params)

    def stop(self):
        self._stopping = True
        self._acceptor.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    def completions(self):
        with self._cond:
            return [r for r in self.requests if r["path"] != "/metrics"]

    def scrapes(self):
        with self._cond:
            return [r for r in self.requests if r["path"] == "/metrics"]

    def wait_requests(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if r["path"] != "/metrics"]
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0:
                    return got
                self._cond.wait(left)

    def _record(self, req):
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    # ---- connections ----

    def _accept_loop(self):
        try:
            while not self._stopping:
                try:
                    s, _ = self._lsock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                self._ids += 1
                s.settimeout(POLL)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = threading.Thread(target=self._serve, args=(s, self._ids), daemon=True,
                                     name="h2pod-conn-%d" % self._ids)
                self._threads.append(t)
                t.start()
        finally:
            self._lsock.close()

    def _recv(self, sock):
        """Bytes; b"" when the peer closed, reset, or the pod stops."""
        while not self._stopping:
            try:
                return sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return b""
        return b""

    def _send(self, sock, data):
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False

    def _serve(self, sock, cid):
        try:
            buf = b""
            while len(buf) < len(PREFACE) and PREFACE.startswith(buf):
                data = self._recv(sock)
                if not data:
                    return
                buf += data
            if buf.startswith(PREFACE):
                self._serve_h2(sock, cid, buf)
            else:
                self._serve_h1(sock, cid, buf)
        finally:
            sock.close()

    # ---- HTTP/2 ----

    def _serve_h2(self, sock, cid, buf):
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        streams = {}
        data = buf
        while True:
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = {"headers": list(ev.headers), "body": b""}
                elif isinstance(ev, h2.events.DataReceived):
                    streams[ev.stream_id]["body"] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    st = streams.pop(ev.stream_id)
                    if not self._answer_h2(sock, conn, cid, ev.stream_id, st):
                        return
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self._send(sock, conn.data_to_send())
                    return
            if not self._send(sock, conn.data_to_send()):
                return
            data = self._recv(sock)
            if not data:
                return

    def _answer_h2(self, sock, conn, cid, sid, st):
        pseudo = {k: v for k, v in st["headers"] if k.startswith(":")}
        req = {"protocol": "HTTP/2", "conn": cid, "stream": sid, "method": pseudo.get(":method"),
               "path": pseudo.get(":path"), "authority": pseudo.get(":authority"),
               "scheme": pseudo.get(":scheme"),
               "headers": [(k, v) for k, v in st["headers"] if not k.startswith(":")],
               "body": st["body"]}
        self._record(req)
        if self.mode == "reset":
            conn.reset_stream(sid, error_code=self.params.get("code",
                                                              h2.errors.ErrorCodes.INTERNAL_ERROR))
            return self._send(sock, conn.data_to_send())
        body = _json(req["body"])
        if isinstance(body, dict) and body.get("stream"):
            return self._sse_h2(sock, conn, sid, body)
        out = json.dumps(_completion(req, body)).encode()
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json"),
                                ("content-length", str(len(out)))])
        conn.send_data(sid, out, end_stream=True)
        return self._send(sock, conn.data_to_send())

    def _sse_h2(self, sock, conn, sid, body):
        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
        if not self._send(sock, conn.data_to_send()):
            return False
        events = self.params.get("events", 4)
        for i in range(events):
            time.sleep(self.params.get("interval_ms", 200) / 1000.0)
            ev = {"id": "cmpl-h2", "object": "text_completion", "model": body.get("model"),
                  "choices": [{"index": 0, "text": "event-%d" % i,
                               "finish_reason": "length" if i == events - 1 else None}]}
            with self._cond:
                self.sse_sent.append(time.monotonic())
            conn.send_data(sid, ("data: " + json.dumps(ev) + "\n\n").encode())
            if not self._send(sock, conn.data_to_send()):
                return False
        conn.send_data(sid, b"data: [DONE]\n\n", end_stream=True)
        return self._send(sock, conn.data_to_send())

    # ---- HTTP/1.1 (the scraper, or a pool that says http) ----

    def _serve_h1(self, sock, cid, buf):
        while True:
            while b"\r\n\r\n" not in buf:
                data = self._recv(sock)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append((k.strip(), v.strip()))
            length = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
            while len(buf) < length:
                data = self._recv(sock)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            path = target.partition("?")[0] if target.startswith("/metrics") else target
            req = {"protocol": "HTTP/1.1", "conn": cid, "stream": None, "method": method,
                   "path": path, "host": dict((k.lower(), v) for k, v in headers).get("host"),
                   "headers": headers, "body": body}
            self._record(req)
            if path == "/metrics":
                out = METRICS_PAGE.format(running=0, waiting=0, kv=0.1, running_loras="",
                                          waiting_loras="", max_lora=4).encode()
                ctype = b"text/plain; version=0.0.4"
            else:
                out = json.dumps(_completion(req, _json(body))).encode()
                ctype = b"application/json"
            if not self._send(sock, b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype +
                              b"\r\nContent-Length: %d\r\n\r\n" % len(out) + out):
                return


def _json(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


def _completion(req, body):
    model = body.get("model") if isinstance(body, dict) else None
    out = {"id": "cmpl-h2pod", "object": "text_completion", "model": model,
           "choices": [{"index": 0, "text": " hi", "finish_reason": "length"}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
           "protocol": req["protocol"], "method": req["method"], "path": req["path"],
           "headers": req["headers"], "request": body}
    if "authority" in req:
        out["authority"] = req["authority"]
    if "host" in req:
        out["host"] = req["host"]
    return out
