"""A scriptable fake model server for the integration tests (stdlib only).

A FakePod listens on one loopback address and port, answers `GET /metrics`
with a small valid vLLM page (so the gateway's scraper is satisfied) and
answers every other request according to its current mode, which a test
may change at any time with `set()`:

  json            a keep-alive JSON completion with `usage` (delay_ms=0),
                  its head naming the pod in `X-Pod: host:port`;
                  `statuses` gives each answer's status in turn, "close"
                  for none (the connection closed), (ms, status) for a
                  late one
  sse             a chunked SSE stream: `events` chunks `interval_ms` apart,
                  then `data: [DONE]` and the last chunk
  sse_cut         the same, but the connection is closed after `cut_after`
                  events, without the last chunk
  close_on_reuse  answers the first completion on a connection like `json`;
                  when a second one arrives on the same connection it is
                  read whole and the connection closed unanswered (`how`:
                  "fin" for a plain close, "rst" for a reset), which is the
                  idle-close race with a keep-alive timeout made
                  deterministic
  close           reads the request whole and closes the connection
                  unanswered (`how`: "fin" or "rst")
  hold            reads the request and never answers; the connection stays
                  open until the peer closes it (an "eof" or "reset" event)
  garbage         answers bytes that are not HTTP, then holds
  head_cut        sends a 200's head announcing `length` bytes (chunked
                  when `length` is None) and the first `partial` bytes of
                  its body in one send, then closes (`how`: "fin"/"rst")
  raw             answers `data`, the bytes of a whole response as they go
                  on the wire, in one send; then, unless `keep`, holds the
                  connection until the peer closes it (an "eof" or "reset"
                  event tells that the gateway let it go), or with `close`
                  closes it (the end of a response without a length);
                  `later` bytes are sent `delay_ms` after `data`
  huge            a 200 with Content-Length `size` (default 1 GiB) whose
                  body is generated and sent as fast as the socket takes it
  websocket       a WebSocket server (RFC 6455): a handshake gets 101 with
                  its Sec-WebSocket-Accept, then text and binary messages are
                  echoed, pings answered and a close answered and closed;
                  `greeting` is sent first as a text message, and
                  `close_after` messages end it with a close frame (1000)
                  from the server; any other request gets 426

Independently of the mode, `rst_idle_ms` resets (SO_LINGER 0 close) a
completion connection that stays idle that long after an answer, and
`rst_metrics_idle_ms` does the same to the scraper's connections.
`/metrics` with a query (vLLM answers name[] parameters with the named
families only) gets the same page, or, when `metrics_query_status` is set,
an empty answer with that status, as a server that knows no query would;
such a scrape is recorded with path `/metrics` and its query in `query`.
`metrics_redirect`, when set, answers `/metrics` with a 307 whose Location
is it (`{addr}` the pod's address) with the query kept, as Starlette's
Mount redirects vLLM's /metrics to /metrics/; `/metrics/` serves the page.
`metrics_text`, when set, is the whole page instead (another engine's, or
one without any of the families). `cache_config` = (block_size, num_gpu_blocks) adds vllm:cache_config_info
to the page with those labels, as vLLM writes it. `running_loras` and
`waiting_loras` (sequences of adapter names) and `max_lora` fill the labels
of vllm:lora_requests_info, the names comma-separated as vLLM joins them;
by default no adapter and max_lora 4. Like `waiting`, `running` and `kv`
they may be changed at any time and the next scrape shows them.

Everything received is recorded: `requests` (every request, /metrics
included, with the connection it came on and its rank there) and `events`
(accepts, requests, peer EOFs, resets, failed sends, closes). Tests wait
on either with `wait_event()`. Send `x-test-id` on a request to find its
arrivals again with `completions(test_id)`.

`stop()` ends everything within a fraction of a second; `kill()` does the
same the way a dying process would: the listener is gone first (new
connections are refused), then every open connection is reset.

Blackhole is a listener whose connect never completes: its accept queue is
filled, so the kernel drops further SYNs."""
import errno
import json
import socket
import struct
import threading
import time

POLL = 0.05  # how often blocked socket calls look at the stop flags

METRICS_PAGE = """# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running {running}
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting {waiting}
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc {kv}
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{{running_lora_adapters="{running_loras}",waiting_lora_adapters="{waiting_loras}",max_lora="{max_lora}"}} 1
"""

CACHE_CONFIG = """# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{{block_size="{block}",cache_dtype="auto",calculate_kv_scales="False",\
cpu_offload_gb="0",enable_prefix_caching="True",gpu_memory_utilization="0.9",\
is_attention_free="False",num_cpu_blocks="None",num_gpu_blocks="{blocks}",\
num_gpu_blocks_override="None",prefix_caching_hash_algo="builtin",sliding_window="None",\
swap_space="4",swap_space_bytes="4294967296"}} 1.0
"""

MODES = ("json", "sse", "sse_cut", "close_on_reuse", "close", "hold", "garbage", "huge",
         "websocket", "head_cut", "raw")
GARBAGE = (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 this is not HTTP at all \x00\xff\r\n"
           b"\x00\x01\x02\x03\r\n\r\n")


class _Stop(Exception):
    """The pod is stopping or being killed: the connection thread unwinds."""


class Request:
    def __init__(self, pod, t, conn, nth, method, path, headers, body):
        self.pod = pod            # the pod's address
        self.t = t
        self.conn = conn          # connection id
        self.nth = nth            # 1 for the first request on its connection
        self.method = method
        self.path = path          # the target; /metrics scrapes without their query
        self.query = ""           # what follows "?", if anything
        self.headers = headers    # lower-cased names
        self.fields = []          # every field's name, lower-cased, repeats included
        self.body = body
        self.outcome = None       # what the pod did with it (answered, dropped, held...)

    @property
    def test_id(self):
        return self.headers.get("x-test-id")

    def __repr__(self):
        return "Request(%s conn=%d nth=%d %s %s id=%s outcome=%s)" % (
            self.pod, self.conn, self.nth, self.method, self.path, self.test_id, self.outcome)


class Event:
    def __init__(self, t, conn, kind, detail=""):
        self.t, self.conn, self.kind, self.detail = t, conn, kind, detail

    def __repr__(self):
        return "Event(%.3f conn=%s %s %s)" % (self.t, self.conn, self.kind, self.detail)


class _Conn:
    def __init__(self, sock, cid):
        self.sock = sock
        self.id = cid
        self.nreq = 0
        self.ncompletions = 0
        self.kind = None  # "metrics" or "completion": what its last request was
        self.buf = b""
        self.closed = False
        self.sent = 0


def _rst_close(sock):
    """Closes with SO_LINGER 0: the peer gets a reset, not a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FakePod:
    def __init__(self, host, port, mode="json", waiting=0, running=0, kv=0.1,
                 running_loras=(), waiting_loras=(), max_lora=4, **params):
        self.host, self.port = host, port
        self.waiting, self.running, self.kv = waiting, running, kv
        self.running_loras, self.waiting_loras = list(running_loras), list(waiting_loras)
        self.max_lora = max_lora
        self.rst_idle_ms = None
        self.rst_metrics_idle_ms = None
        self.metrics_query_status = None
        self.cache_config = None
        self.metrics_text = None
        self.metrics_redirect = None
        self.mode, self.params = "json", {}
        self.set(mode, **params)
        self.requests = []
        self.events = []
        self._cond = threading.Condition()
        self._stopping = False
        self._killing = False
        self._dying = False
        self._reset_new = False
        self._killed = threading.Event()
        self._ids = 0
        self._threads = []
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, port))
        self._lsock.listen(128)
        self._lsock.settimeout(POLL)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="fakepod-accept-%s" % host)
        self._acceptor.start()

    # ---- control ----

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def set(self, mode, **params):
        """Changes what the next completion requests get."""
        assert mode in MODES, mode
        self.mode, self.params = mode, dict(params)
        self._answered = 0

    def stop(self):
        """Closes the listener and every connection (a plain close); waits
        for the threads."""
        self._stopping = True
        self._join()

    def kill(self, listener_lag=0.0, reset_new=False):
        """Like a killed process: the listener goes first, so a new connect
        is refused, then each open connection is reset. With listener_lag,
        the other order, as Linux closes a killed process's sockets: every
        connection is reset, and the listener (which accepts no more) is
        closed that many seconds later; meanwhile the kernel still completes
        new connections' handshakes. With reset_new too, each connection
        made meanwhile is reset at once, as closing a listener resets the
        connections waiting in its queue."""
        if listener_lag:
            self._reset_new = reset_new
            self._dying = True
            for t in list(self._threads):
                t.join(timeout=5)
            time.sleep(listener_lag)
        self._killing = True
        self._killed.set()
        self._acceptor.join(timeout=5)
        self._stopping = True
        self._join()

    def _join(self):
        self._acceptor.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    # ---- what happened ----

    def completions(self, test_id=None):
        with self._cond:
            return [r for r in self.requests if r.path != "/metrics" and
                    (test_id is None or r.test_id == test_id)]

    def metrics_count(self):
        with self._cond:
            return sum(1 for r in self.requests if r.path == "/metrics")

    def events_of(self, *kinds, conn=None):
        with self._cond:
            return [e for e in self.events if e.kind in kinds and (conn is None or e.conn == conn)]

    def wait_event(self, *kinds, conn=None, timeout=5.0, after=0.0):
        """The first event of one of these kinds (on conn, if given; at or
        after monotonic time `after`), waiting up to timeout; None if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e.kind in kinds and (conn is None or e.conn == conn) and e.t >= after:
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_requests(self, n, timeout=5.0, test_id=None):
        """Waits until at least n completion requests (with that test id)
        arrived; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if r.path != "/metrics" and
                       (test_id is None or r.test_id == test_id)]
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0:
                    return got
                self._cond.wait(left)

    def _event(self, conn, kind, detail=""):
        with self._cond:
            self.events.append(Event(time.monotonic(), conn.id if conn else None, kind, detail))
            self._cond.notify_all()

    # ---- the listener ----

    def _accept_loop(self):
        try:
            while not self._stopping and not self._killing:
                if self._dying and self._reset_new:
                    try:
                        s, _ = self._lsock.accept()
                    except (socket.timeout, OSError):
                        continue
                    self._event(None, "reset-new")
                    _rst_close(s)
                    continue
                if self._dying:
                    self._killed.wait(POLL)
                    continue
                try:
                    s, _ = self._lsock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                self._ids += 1
                conn = _Conn(s, self._ids)
                s.settimeout(POLL)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._event(conn, "accept")
                t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                     name="fakepod-conn-%d" % conn.id)
                self._threads.append(t)
                t.start()
        finally:
            self._lsock.close()

    # ---- socket helpers, each used only by the connection's own thread ----

    def _check_stop(self, conn):
        if self._stopping or self._dying or self._killing and not self._acceptor.is_alive():
            raise _Stop()

    def _recv(self, conn, deadline=None):
        """Bytes, b"" at EOF (recorded), None when the deadline passed;
        a reset is recorded and turned into b""."""
        while True:
            self._check_stop(conn)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            try:
                data = conn.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError) as e:
                self._event(conn, "reset", errno.errorcode.get(e.errno, str(e.errno)))
                return b""
            if not data:
                self._event(conn, "eof")
            return data

    def _send(self, conn, data):
        """Sends all of data; False (recorded as send_error) if the peer is gone."""
        view = memoryview(data)
        while view:
            self._check_stop(conn)
            try:
                n = conn.sock.send(view)
            except socket.timeout:
                continue
            except OSError as e:
                self._event(conn, "send_error", errno.errorcode.get(e.errno, str(e.errno)))
                return False
            view = view[n:]
            conn.sent += n
        return True

    def _close(self, conn, how="fin"):
        if conn.closed:
            return
        conn.closed = True
        if how == "rst":
            _rst_close(conn.sock)
        else:
            conn.sock.close()
        self._event(conn, "closed", how)

    def _hold(self, conn):
        """Reads and drops whatever comes until the peer closes."""
        while True:
            if self._recv(conn) == b"":
                return

    # ---- one connection ----

    def _read_request(self, conn, idle_deadline):
        """The next request, or None when the connection ended (EOF, reset,
        or an idle reset sent by us)."""
        while b"\r\n\r\n" not in conn.buf:
            data = self._recv(conn, idle_deadline if not conn.buf else None)
            if data is None:
                _rst_close(conn.sock)
                conn.closed = True
                self._event(conn, "rst_sent", conn.kind)
                return None
            if not data:
                return None
            conn.buf += data
        head, conn.buf = conn.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        path, _, query = target.partition("?")
        if path not in ("/metrics", "/metrics/"):
            path = target
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(conn.buf) < length:
            data = self._recv(conn)
            if not data:
                return None
            conn.buf += data
        body, conn.buf = conn.buf[:length], conn.buf[length:]
        conn.nreq += 1
        req = Request(self.address, time.monotonic(), conn.id, conn.nreq, method, path, headers, body)
        req.query = query
        req.fields = [line.partition(":")[0].strip().lower() for line in lines[1:]]
        with self._cond:
            self.requests.append(req)
            self.events.append(Event(req.t, conn.id, "request", path))
            self._cond.notify_all()
        return req

    def _serve(self, conn):
        try:
            while True:
                idle = None
                if conn.nreq:
                    ms = self.rst_metrics_idle_ms if conn.kind == "metrics" else self.rst_idle_ms
                    if ms is not None:
                        idle = time.monotonic() + ms / 1000.0
                req = self._read_request(conn, idle)
                if req is None:
                    return
                if req.path == "/metrics" and self.metrics_redirect:
                    conn.kind = "metrics"
                    req.outcome = "redirected"
                    loc = self.metrics_redirect.format(addr=self.address)
                    if req.query:
                        loc += "?" + req.query
                    if not self._send(conn, b"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
                                      b"%s\r\nContent-Length: 0\r\n\r\n" % loc.encode()):
                        return
                    continue
                if req.path in ("/metrics", "/metrics/"):
                    conn.kind = "metrics"
                    req.outcome = "answered"
                    page = METRICS_PAGE.format(
                        running=self.running, waiting=self.waiting, kv=self.kv,
                        running_loras=",".join(self.running_loras),
                        waiting_loras=",".join(self.waiting_loras), max_lora=self.max_lora)
                    if self.cache_config:
                        page += CACHE_CONFIG.format(block=self.cache_config[0],
                                                    blocks=self.cache_config[1])
                    if self.metrics_text is not None:
                        page = self.metrics_text
                    page = page.encode()
                    status = b"200 OK"
                    if req.query and self.metrics_query_status:
                        status, page = b"%d Refused" % self.metrics_query_status, b""
                    if not self._send(conn, b"HTTP/1.1 " + status + b"\r\nContent-Type: "
                                      b"text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n"
                                      % len(page) + page):
                        return
                    continue
                conn.kind = "completion"
                conn.ncompletions += 1
                if not getattr(self, "_mode_" + self.mode)(conn, req, **self.params):
                    return
        except _Stop:
            pass
        finally:
            if not conn.closed:
                self._close(conn, "rst" if self._killing or self._dying else "fin")

    # ---- completion modes: each returns True to keep the connection ----

    @staticmethod
    def _model(req):
        try:
            return json.loads(req.body).get("model", "fake")
        except ValueError:
            return "fake"

    def _mode_json(self, conn, req, delay_ms=0, tokens=1, text=None, prompt_tokens=3,
                   statuses=None, extra=b""):
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        # statuses: the status of each completion in turn (the last repeats);
        # "close" drops the connection unanswered, (ms, status) answers late.
        status = 200
        if statuses:
            with self._cond:
                self._answered = getattr(self, "_answered", 0) + 1
                status = statuses[min(self._answered, len(statuses)) - 1]
        if status == "close":
            req.outcome = "dropped"
            self._close(conn)
            return False
        if isinstance(status, tuple):
            time.sleep(status[0] / 1000.0)
            status = status[1]
        body = json.dumps({
            "id": "cmpl-fake-%d-%d" % (conn.id, conn.nreq), "object": "text_completion",
            "created": int(time.time()), "model": self._model(req),
            "choices": [{"index": 0, "text": text if text is not None else " hi" * tokens,
                         "logprobs": None, "finish_reason": "length"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                      "total_tokens": prompt_tokens + tokens}}).encode()
        req.outcome = "answered"
        # extra: more header lines, each ending in CRLF. X-Pod echoes the
        # pod's own address, as Gateway API's echo backend names its pod,
        # so that tests tell which backend answered without the gateway.
        return self._send(conn, b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                          b"X-Pod: %s\r\n%sContent-Length: %d\r\n\r\n"
                          % (status, self.address.encode(), extra, len(body)) + body)

    def _sse_event(self, req, i, last, space=True, usage=None):
        event = {
            "id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
            "model": self._model(req),
            "choices": [{"index": 0, "text": " t%d" % i, "logprobs": None,
                         "finish_reason": "length" if last else None}]}
        if usage is not None:
            # vLLM with stream_options.include_usage: null on every chunk,
            # the counts on the last.
            event["usage"] = usage if last else None
        return (("data: " if space else "data:") + json.dumps(event) + "\n\n").encode()

    @staticmethod
    def _chunk(data):
        return b"%x\r\n%s\r\n" % (len(data), data)

    def _mode_sse(self, conn, req, events=5, interval_ms=20, cut_after=None, space=True,
                  usage=None):
        if not self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n"):
            return False
        for i in range(events):
            if cut_after is not None and i == cut_after:
                req.outcome = "cut"
                self._close(conn, "fin")
                return False
            if i:
                time.sleep(interval_ms / 1000.0)
            ev = self._sse_event(req, i, i == events - 1, space, usage)
            if not self._send(conn, self._chunk(ev)):
                return False
        req.outcome = "answered"
        return self._send(conn, self._chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    def _mode_sse_cut(self, conn, req, events=20, interval_ms=20, cut_after=3):
        return self._mode_sse(conn, req, events, interval_ms, cut_after)

    def _mode_close_on_reuse(self, conn, req, how="fin"):
        if conn.ncompletions > 1:
            req.outcome = "dropped"
            self._close(conn, how)
            return False
        return self._mode_json(conn, req)

    def _mode_close(self, conn, req, how="fin"):
        req.outcome = "dropped"
        self._close(conn, how)
        return False

    def _mode_hold(self, conn, req):
        req.outcome = "held"
        self._hold(conn)
        return False

    def _mode_garbage(self, conn, req):
        req.outcome = "garbage"
        if self._send(conn, GARBAGE):
            self._hold(conn)
        return False

    def _mode_raw(self, conn, req, data=b"", keep=False, close=False, later=b"", delay_ms=0):
        req.outcome = "raw"
        if not self._send(conn, data):
            return False
        if later:
            time.sleep(delay_ms / 1000.0)
            if not self._send(conn, later):
                return False
        if keep:
            return True
        if close:
            self._close(conn)
            return False
        self._hold(conn)
        return False

    def _mode_head_cut(self, conn, req, length=100, partial=0, how="fin"):
        req.outcome = "head_cut"
        body = b'{"id":"cmpl-cut","object":"text_completion","choices":['[:partial]
        if length is None:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
                   b"Transfer-Encoding: chunked\r\n\r\n"
            if body:
                body = b"%x\r\n%s\r\n" % (len(body), body)
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
                   b"Content-Length: %d\r\n\r\n" % length
        self._send(conn, head + body)
        self._close(conn, how)
        return False

    def _mode_huge(self, conn, req, size=1 << 30, piece=256 * 1024):
        req.outcome = "huge"
        if not self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Length: %d\r\n\r\n" % size):
            return False
        block = (b"0123456789abcdef" * (piece // 16 + 1))[:piece]
        left = size
        while left:
            n = min(left, piece)
            if not self._send(conn, block[:n]):
                return False
            left -= n
        req.outcome = "answered"
        return True


    def _mode_websocket(self, conn, req, greeting=None, close_after=None):
        key = req.headers.get("sec-websocket-key")
        if (req.headers.get("upgrade", "").lower() != "websocket" or not key or
                "upgrade" not in req.headers.get("connection", "").lower()):
            req.outcome = "refused"
            body = b'{"error":"a WebSocket handshake was expected"}'
            return self._send(conn, b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
                              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body)
        req.outcome = "upgraded"
        if not self._send(conn, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                          % ws_accept(key).encode()):
            return False
        if greeting is not None and not self._send(conn, ws_frame(1, greeting.encode())):
            return False
        echoed = 0
        while True:
            frame = self._ws_read(conn)
            if frame is None:
                return False
            op, payload = frame
            self._event(conn, "ws", "%d:%d" % (op, len(payload)))
            if op == 8:
                self._send(conn, ws_frame(8, payload[:2]))
                self._close(conn)
                return False
            if op == 9:
                reply = ws_frame(10, payload)
            elif op in (1, 2):
                reply = ws_frame(op, payload)
                echoed += 1
            else:
                continue
            if not self._send(conn, reply):
                return False
            if close_after is not None and echoed >= close_after:
                self._send(conn, ws_frame(8, struct.pack("!H", 1000)))
                self._close(conn)
                return False

    def _ws_read(self, conn):
        """One frame from the client (masked): (opcode, payload), or None
        when the connection ended."""
        def need(n):
            while len(conn.buf) < n:
                data = self._recv(conn)
                if not data:
                    return False
                conn.buf += data
            return True
        if not need(2):
            return None
        b0, b1 = conn.buf[0], conn.buf[1]
        n, at = b1 & 0x7F, 2
        if n == 126:
            if not need(4):
                return None
            n, at = struct.unpack("!H", conn.buf[2:4])[0], 4
        elif n == 127:
            if not need(10):
                return None
            n, at = struct.unpack("!Q", conn.buf[2:10])[0], 10
        mask_len = 4 if b1 & 0x80 else 0
        if not need(at + mask_len + n):
            return None
        mask = conn.buf[at:at + mask_len]
        payload = conn.buf[at + mask_len:at + mask_len + n]
        conn.buf = conn.buf[at + mask_len + n:]
        if mask:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return b0 & 0x0F, payload


def ws_accept(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    import base64
    import hashlib
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def ws_frame(op, payload, mask=None):
    """A final frame; masked (as a client must send) when mask is 4 bytes."""
    n = len(payload)
    head = bytes([0x80 | op])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


class Blackhole:
    """A listening socket that never accepts and whose accept queue is full,
    so the kernel drops new SYNs and a connect to it hangs. `ok` says
    whether that really happened here (`reason` says why not)."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.ok, self.reason = False, ""
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, port))
        self._lsock.listen(0)
        self._fillers = []
        try:
            for _ in range(16):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(0.3)
                try:
                    s.connect((host, port))
                except socket.timeout:
                    s.close()  # this one hung: the queue is full
                    break
                except OSError as e:
                    s.close()
                    self.reason = "connect to a full accept queue failed: %s" % e
                    return
                self._fillers.append(s)
            else:
                self.reason = "16 connects completed without a full accept queue"
                return
            t = time.monotonic()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                try:
                    s.connect((host, port))
                    self.reason = "a connect completed after the queue was full"
                except socket.timeout:
                    self.ok = time.monotonic() - t >= 0.9
                    if not self.ok:
                        self.reason = "the connect timed out early"
                except OSError as e:
                    self.reason = "the kernel refused instead of dropping the SYN: %s" % e
        finally:
            if not self.ok:
                self.close()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def close(self):
        for s in self._fillers:
            s.close()
        self._fillers = []
        self._lsock.close()
