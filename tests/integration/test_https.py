"""HTTPS listeners (Gateway API, issue 9): the gateway terminates TLS with
the kubernetes.io/tls Secrets its listeners name. The server name of the
handshake picks the certificate and the listener, with the listener
hostname rules; a Host that another listener of the port owns gets 421;
new Secrets are swapped in on reload without dropping open connections;
a port where HTTP and HTTPS listeners clash, or an HTTPS listener without
a usable certificate, is not served. Certificates are made for each test
with the openssl command; backends are fake pods."""
import http.client
import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, unique_loopback
from test_gateway_api import Setup, pod, service
from test_gateway import write


def make_cert(dirname, name, cn):
    """A self-signed ECDSA P-256 certificate for the DNS name cn: (crt, key)
    as PEM text."""
    crt = os.path.join(dirname, name + ".crt")
    key = os.path.join(dirname, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=" + cn, "-addext",
                    "subjectAltName=DNS:" + cn],
                   check=True, capture_output=True)
    with open(crt) as f:
        c = f.read()
    with open(key) as f:
        k = f.read()
    return c, k


def secret(name, crt, key):
    ind = lambda s: "".join("    " + line + "\n" for line in s.strip().splitlines())
    return """apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: default
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s  tls.key: |
%s""" % (name, ind(crt), ind(key))


def gateway_doc(s):
    return """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: infergate
  listeners:
  - name: https-a
    protocol: HTTPS
    port: %d
    hostname: a.example.com
    tls:
      certificateRefs:
      - name: tls-a
  - name: https-b
    protocol: HTTPS
    port: %d
    hostname: b.example.com
    tls:
      certificateRefs:
      - name: tls-b
  - name: plain
    protocol: HTTP
    port: %d
  - name: clash
    protocol: HTTPS
    port: %d
    tls:
      certificateRefs:
      - name: tls-a
  - name: no-cert
    protocol: HTTPS
    port: %d
    tls:
      certificateRefs:
      - name: missing
""" % (s.port, s.port, s.clash_port, s.clash_port, s.nocert_port)


def route_doc(name, section, svc):
    return """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: %s
  namespace: default
spec:
  parentRefs:
  - name: gw
    sectionName: %s
  rules:
  - backendRefs:
    - name: %s
      port: 80
""" % (name, section, svc)


class HTTPS(Setup):
    def __init__(self, procs, tmp_path, **kw):
        self.certdir = os.path.join(str(tmp_path), "certs")
        os.makedirs(self.certdir, exist_ok=True)
        self.certs = {h: make_cert(self.certdir, h, h + ".example.com") for h in ("a", "b")}
        host = unique_loopback()
        self.clash_port = free_port(host)
        self.nocert_port = free_port(host)
        super().__init__(procs, tmp_path, self.docs, **kw)

    def docs(self, s):
        return [gateway_doc(s),
                secret("tls-a", *self.certs["a"]),
                secret("tls-b", *self.certs["b"]),
                service("svc-a", 80, s.pod_port, app="a"),
                service("svc-b", 80, s.pod_port, app="b"),
                pod("pod-a", "a", s.pods[0].host),
                pod("pod-b", "b", s.pods[1].host),
                route_doc("ra", "https-a", "svc-a"),
                route_doc("rb", "https-b", "svc-b")]

    def context(self, *names):
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cadata="".join(self.certs[n][0] for n in names))
        return ctx

    def conn(self, sni, ctx=None):
        return SNIConnection(self.host, self.port, ctx or self.context("a", "b"), sni)

    def rewrite(self):
        write(os.path.join(self.dir, "all.yaml"), "---\n".join(self.docs(self)))


class SNIConnection(http.client.HTTPConnection):
    """HTTP/1.1 over TLS to an address, with any server name in the
    handshake (and the certificate checked against it)."""

    def __init__(self, host, port, ctx, sni):
        super().__init__(host, port, timeout=10)
        self.ctx, self.sni = ctx, sni

    def connect(self):
        super().connect()
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=self.sni)

    def call(self, host, path="/v1/models"):
        self.request("GET", path, headers={"Host": host})
        r = self.getresponse()
        return r.status, r.read()


def pod_of(s, before):
    got = s.received()[before:]
    assert len(got) == 1, got
    return got[0].pod.rsplit(":", 1)[0]


def test_sni_picks_certificate_listener_and_backend(procs, tmp_path):
    s = HTTPS(procs, tmp_path)
    for name, idx in (("a", 0), ("b", 1)):
        c = s.conn(name + ".example.com")
        n = len(s.received())
        status, _ = c.call(name + ".example.com", "/x")
        assert status == 200
        # The certificate is the listener's: the client verified it
        # against this name only.
        peer = c.sock.getpeercert()
        assert ("DNS", name + ".example.com") in peer["subjectAltName"]
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert pod_of(s, n) == s.pods[idx].host
        # Keep-alive over TLS: a second request on the same connection.
        status, _ = c.call(name + ".example.com", "/y")
        assert status == 200
        assert s.received()[-1].nth == 2
        c.close()
    # curl, trusting a's certificate only, with the name resolved to the
    # gateway's address.
    ca = os.path.join(s.certdir, "a.crt")
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
                          "--cacert", ca, "--resolve", "a.example.com:%d:%s" % (s.port, s.host),
                          "https://a.example.com:%d/z" % s.port],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout == "200 0", out
    s.stop()


def test_misdirected_and_unknown_names(procs, tmp_path):
    s = HTTPS(procs, tmp_path)
    n = len(s.received())
    c = s.conn("a.example.com")
    # Host of the other listener on this port: 421, and the connection
    # can go on with the right Host.
    status, body = c.call("b.example.com", "/x")
    assert status == 421, body
    assert b"TLS server name" in body
    status, _ = c.call("a.example.com:%d" % s.port, "/x")
    assert status == 200
    # A Host no listener has: 404.
    status, _ = c.call("c.example.com", "/x")
    assert status == 404
    c.close()
    assert len(s.received()) == n + 1
    # A server name without a certificate, or none at all: the handshake
    # fails (no listener without hostname, so no default certificate).
    for sni in ("c.example.com", None):
        ctx = s.context("a", "b")
        ctx.check_hostname = False
        with pytest.raises(ssl.SSLError):
            SNIConnection(s.host, s.port, ctx, sni).call("a.example.com")
    # Plain HTTP to the TLS port: a 400 in clear text.
    raw = socket.create_connection((s.host, s.port), timeout=5)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
    assert raw.recv(100).startswith(b"HTTP/1.1 400")
    raw.close()
    # The clashing port (HTTP and HTTPS listeners) and the listener without
    # a usable certificate are not opened.
    for port in (s.clash_port, s.nocert_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((s.host, port), timeout=2).close()
    log = s.procs.output(s.gw)
    assert "ProtocolConflict" in log and "InvalidCertificateRef" in log, log
    s.stop()


def test_certificate_reload_keeps_connections(procs, tmp_path):
    s = HTTPS(procs, tmp_path, gw_args=("--watch-interval", "100"))
    old = s.conn("a.example.com")
    assert old.call("a.example.com", "/1")[0] == 200
    serial = old.sock.getpeercert()["serialNumber"]
    new_crt = make_cert(s.certdir, "a2", "a.example.com")
    old_crt = s.certs["a"]
    s.certs["a"] = new_crt
    s.rewrite()
    # New handshakes get the new certificate once the reload is in.
    deadline = time.monotonic() + 5
    while True:
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cadata=new_crt[0] + old_crt[0])
        c = s.conn("a.example.com", ctx)
        assert c.call("a.example.com", "/2")[0] == 200
        got = c.sock.getpeercert()["serialNumber"]
        c.close()
        if got != serial or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got != serial
    # The connection opened before the reload still works.
    assert old.call("a.example.com", "/3")[0] == 200
    old.close()
    # A Secret OpenSSL refuses (key of another certificate) keeps the
    # current one, with an error in the log.
    s.certs["a"] = (new_crt[0], s.certs["b"][1])
    s.rewrite()
    deadline = time.monotonic() + 5
    while "keeping the previous ones" not in s.procs.output(s.gw):
        assert time.monotonic() < deadline, s.procs.output(s.gw)
        time.sleep(0.1)
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=new_crt[0])
    c = s.conn("a.example.com", ctx)
    assert c.call("a.example.com", "/4")[0] == 200
    c.close()
    s.stop()


def test_websocket_over_tls(procs, tmp_path):
    """wss://: the tunnel runs over the client's TLS connection (records in
    both directions, a message larger than the buffers) to a plain backend."""
    from fakepod import ws_frame
    from test_websocket import KEY, Client
    s = HTTPS(procs, tmp_path)
    s.pods[0].set("websocket")
    raw = socket.create_connection((s.host, s.port), timeout=10)
    tls = s.context("a").wrap_socket(raw, server_hostname="a.example.com")
    tls.sendall(("GET /v1/realtime HTTP/1.1\r\nHost: a.example.com\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n" % KEY).encode())
    c = Client(tls)
    assert c.status == 101, c.headers
    big = os.urandom(1 << 20)
    c.send(2, big)
    assert c.recv() == (2, big)
    c.send(8, b"\x03\xe8")
    assert c.recv() == (8, b"\x03\xe8")
    assert c.at_eof()
    tls.close()
    s.stop()
