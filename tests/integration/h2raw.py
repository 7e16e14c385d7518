"""A raw HTTP/2 client for gRPC servers, frame by frame (hyperframe and
hpack), for what no well-behaved client does: windows of 0, sockets never
read, messages left half sent, streams opened at a GOAWAY."""
import select
import socket
import struct
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def grpc_msg(payload, compressed=0, length=None):
    """A gRPC length-prefixed message; length overrides the prefix's."""
    n = len(payload) if length is None else length
    return bytes([compressed]) + struct.pack(">I", n) + payload


class Conn:
    """One connection: frames out, frames in; the server's windows are
    followed so that DATA never overflows them."""

    def __init__(self, addr, settings=None, rcvbuf=None):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(addr)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.closed = False
        self.frames = []  # every frame read, with its decoded headers
        self.cwin = 65535
        self.init_win = 65535
        self.swin = {}
        self.pong = True  # PINGs are answered as they are read
        st = SettingsFrame(0)
        st.settings = dict(settings or {})
        self.s.sendall(PREFACE + st.serialize())

    def send(self, *frames):
        self.s.sendall(b"".join(f.serialize() for f in frames))

    def headers(self, sid, path, extra=(), end_stream=False):
        hs = [(":method", "POST"), (":scheme", "http"), (":path", path),
              (":authority", "epp"), ("content-type", "application/grpc"),
              ("te", "trailers")] + list(extra)
        f = HeadersFrame(sid)
        f.data = self.enc.encode(hs)
        f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        self.send(f)

    def read(self, timeout, until=None):
        """Reads frames for up to timeout seconds (or until until(frames)
        of this call holds); returns them."""
        out = []
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            r, _, _ = select.select([self.s], [], [], max(0, deadline - time.monotonic()))
            if not r:
                break
            try:
                d = self.s.recv(1 << 20)
            except OSError:
                d = b""
            if not d:
                self.closed = True
                break
            self.buf += d
            while len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                hs = None
                if isinstance(f, (HeadersFrame, ContinuationFrame)):
                    hs = [(k.decode() if isinstance(k, bytes) else k,
                           v.decode() if isinstance(v, bytes) else v)
                          for k, v in self.dec.decode(f.data)]
                self._absorb(f)
                out.append((f, hs))
            if until and until(out):
                break
        self.frames += out
        return out

    def handshake(self):
        self.read(5, until=lambda out: any(
            isinstance(f, SettingsFrame) and "ACK" not in f.flags for f, _ in out))

    def _absorb(self, f):
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            if SettingsFrame.INITIAL_WINDOW_SIZE in f.settings:
                d = f.settings[SettingsFrame.INITIAL_WINDOW_SIZE] - self.init_win
                self.init_win = f.settings[SettingsFrame.INITIAL_WINDOW_SIZE]
                for k in self.swin:
                    self.swin[k] += d
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            self.send(ack)
        elif isinstance(f, PingFrame) and "ACK" not in f.flags and self.pong:
            self.ack_ping(f)
        elif isinstance(f, WindowUpdateFrame):
            if f.stream_id == 0:
                self.cwin += f.window_increment
            else:
                self.swin[f.stream_id] = (self.swin.get(f.stream_id, self.init_win) +
                                          f.window_increment)

    def ack_ping(self, f):
        pong = PingFrame(0)
        pong.flags.add("ACK")
        pong.opaque_data = f.opaque_data
        self.send(pong)

    def data(self, sid, payload, end_stream=False, timeout=1.0, reading=True):
        """Sends payload in DATA frames within the server's windows; False
        when they stay shut for timeout seconds (or the connection closed).
        reading=False: frames are not read while waiting (a client that
        never reads its socket only sees the windows it had)."""
        off = 0
        deadline = time.monotonic() + timeout
        while True:
            w = min(self.cwin, self.swin.setdefault(sid, self.init_win), 16384,
                    len(payload) - off)
            if w <= 0 and off < len(payload):
                if time.monotonic() > deadline or self.closed or not reading:
                    return False
                self.read(0.1, until=lambda out: any(
                    isinstance(f, WindowUpdateFrame) for f, _ in out))
                continue
            last = off + w >= len(payload)
            f = DataFrame(sid)
            f.data = payload[off:off + w]
            if end_stream and last:
                f.flags.add("END_STREAM")
            try:
                self.send(f)
            except OSError:
                self.closed = True
                return False
            self.cwin -= w
            self.swin[sid] -= w
            off += w
            if last:
                return True

    def resets(self):
        return {f.stream_id: f.error_code for f, _ in self.frames
                if isinstance(f, RstStreamFrame)}

    def goaways(self):
        return [f.last_stream_id for f, _ in self.frames if isinstance(f, GoAwayFrame)]

    def trailers(self, sid):
        """The stream's last header block, as a dict."""
        blocks = [hs for f, hs in self.frames if hs is not None and f.stream_id == sid]
        return dict(blocks[-1]) if blocks else None

    def close(self):
        self.s.close()
