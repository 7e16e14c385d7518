"""HTTPS listeners (Gateway API, issue 9): the gateway terminates TLS with
the kubernetes.io/tls Secrets its listeners name. The server name of the
handshake picks the certificate and the listener, with the listener
hostname rules; a Host that another listener of the port owns gets 421;
new Secrets are swapped in on reload without dropping open connections;
a port where HTTP and HTTPS listeners clash, or an HTTPS listener without
a usable certificate, is not served. Certificates are made for each test
with the openssl command; backends are fake pods."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

from conftest import free_port, unique_loopback, wait_port
from fakepod import FakePod
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
    # A Secret OpenSSL refuses (key of another certificate) is that
    # listener's InvalidCertificateRef, as a missing one is: its name gets
    # no handshake, while a rotation of the other listener's certificate in
    # the same edit is swapped in.
    new_b = make_cert(s.certdir, "b2", "b.example.com")
    s.certs["a"] = (new_crt[0], s.certs["b"][1])
    s.certs["b"] = new_b
    s.rewrite()
    deadline = time.monotonic() + 5
    while True:
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cadata=new_b[0])
        try:
            c = s.conn("b.example.com", ctx)
            assert c.call("b.example.com", "/4")[0] == 200
            c.close()
            break
        except ssl.SSLError:
            assert time.monotonic() < deadline, s.procs.output(s.gw)
            time.sleep(0.1)
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=new_crt[0])
    with pytest.raises(ssl.SSLError):
        s.conn("a.example.com", ctx).call("a.example.com", "/5")
    log = s.procs.output(s.gw)
    assert "tls.key does not match the certificate (InvalidCertificateRef)" in log, log
    assert "keeping the previous ones" not in log, log
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


def openssl_pair(dirname, name, cn, *newkey):
    """A self-signed certificate for cn with the key openssl's -newkey
    arguments give (e.g. "rsa:1024"): (crt, key) as PEM text."""
    crt = os.path.join(dirname, name + ".crt")
    key = os.path.join(dirname, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", *newkey, "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:" + cn], check=True, capture_output=True)
    with open(crt) as f, open(key) as g:
        return f.read(), g.read()


JUNK = "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZSBpbnNpZGUgdGhlIG1hcmtlcnM=\n-----END CERTIFICATE-----\n"


def listener(name, port, host, certs, extra=""):
    refs = "".join("      - name: %s\n" % c for c in certs)
    return """  - name: %s
    protocol: HTTPS
    port: %d
    hostname: %s
    tls:
      certificateRefs:
%s%s""" % (name, port, host, refs, extra)


def test_refused_secret_leaves_other_listeners_served(procs, tmp_path):
    """A Secret OpenSSL refuses (a key of another certificate, RSA-1024 below
    the security level, garbage between PEM markers, a second ECDSA
    certificate on one listener) or a client CA ConfigMap with garbage
    inside its markers is that listener's InvalidCertificateRef
    (InvalidCACertificateRef): the port's other listeners are served, and
    `infergate check` says so as warnings."""
    d = os.path.join(str(tmp_path), "certs")
    os.makedirs(d)
    ec = ("ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
    good = {h: openssl_pair(d, h, h + ".example.com", *ec) for h in ("a", "k", "t", "t2", "c")}
    weak = openssl_pair(d, "w", "w.example.com", "rsa:1024")
    host = unique_loopback()
    port, admin = free_port(host), free_port(host)
    pod_host = unique_loopback()
    pod_port = free_port(pod_host)
    fake = FakePod(pod_host, pod_port, mode="json")
    ca = """      frontendValidation:
        caCertificateRefs:
        - {group: "", kind: ConfigMap, name: junk-ca}
"""
    gw = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: infergate
  listeners:
""" + "".join([listener("a", port, "a.example.com", ["tls-a"]),
               listener("mismatch", port, "k.example.com", ["tls-k"]),
               listener("weak", port, "w.example.com", ["tls-w"]),
               listener("junk", port, "j.example.com", ["tls-j"]),
               listener("two", port, "t.example.com", ["tls-t", "tls-t2"]),
               listener("badca", port, "c.example.com", ["tls-c"], ca)])
    docs = [gw, secret("tls-a", *good["a"]), secret("tls-k", good["k"][0], good["a"][1]),
            secret("tls-w", *weak), secret("tls-j", JUNK, good["a"][1]),
            secret("tls-t", *good["t"]), secret("tls-t2", *good["t2"]),
            secret("tls-c", *good["c"]),
            """apiVersion: v1
kind: ConfigMap
metadata:
  name: junk-ca
  namespace: default
data:
  ca.crt: |
""" + "".join("    " + line + "\n" for line in JUNK.splitlines()),
            service("svc", 80, pod_port, app="a"), pod("pod-a", "a", pod_host),
            route_doc("r", "a", "svc"), route_doc("rt", "two", "svc")]
    mdir = os.path.join(str(tmp_path), "m")
    os.makedirs(mdir)
    write(os.path.join(mdir, "all.yaml"), "---\n".join(docs))

    out = subprocess.run([os.environ["IG_BIN"], "check", "-f", mdir], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out
    for want in ('"default/tls-k": tls.key does not match the certificate (InvalidCertificateRef)',
                 '"default/tls-w": certificate refused: ee key too small',
                 '"default/tls-j": tls.crt: no PEM certificate',
                 '"default/tls-t2": a certificate with a key of this type is already given',
                 'ConfigMap "default/junk-ca" ca.crt: unreadable PEM'):
        assert want in out.stdout + out.stderr, out

    gwp = procs.start("gateway", "-f", mdir, "--bind", host, "--workers", "1",
                      "--admin", "%s:%d" % (host, admin), name="gateway")
    wait_port(host, port, proc=gwp)
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=good["a"][0] + good["t"][0])
    for sni in ("a.example.com", "t.example.com"):
        c = SNIConnection(host, port, ctx, sni)
        assert c.call(sni)[0] == 200
        c.close()
    # The refused listeners have no certificate in the port's set: their
    # names get no handshake (there is no listener without hostname).
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    for sni in ("k.example.com", "w.example.com", "j.example.com", "c.example.com"):
        with pytest.raises(ssl.SSLError):
            SNIConnection(host, port, loose, sni).call(sni)

    status = json.loads(urllib.request.urlopen(
        "http://%s:%d/api/status" % (host, admin), timeout=10).read())
    conds = {l["name"]: {c["type"]: c for c in l["conditions"]}
             for l in status["gateways"][0]["listeners"]}
    assert conds["a"]["ResolvedRefs"]["status"] == "True"
    assert conds["a"]["Programmed"]["status"] == "True"
    for name in ("mismatch", "weak", "junk"):
        assert conds[name]["ResolvedRefs"]["status"] == "False", conds[name]
        assert conds[name]["ResolvedRefs"]["reason"] == "InvalidCertificateRef"
        assert conds[name]["Programmed"]["status"] == "False"
    assert "does not match" in conds["mismatch"]["ResolvedRefs"]["message"]
    # The second ECDSA certificate is the invalid reference; the first
    # still serves the listener.
    assert conds["two"]["ResolvedRefs"]["reason"] == "InvalidCertificateRef"
    assert conds["two"]["Programmed"]["status"] == "True"
    assert conds["badca"]["ResolvedRefs"]["reason"] == "InvalidCACertificateRef"
    assert conds["badca"]["Accepted"]["reason"] == "NoValidCACertificate"
    assert conds["badca"]["Programmed"]["status"] == "False"
    assert "HTTPS not served" not in procs.output(gwp)
    fake.stop()
    gwp.send_signal(15)
    assert gwp.wait(timeout=15) == 0


def test_host_trailing_dot_and_no_host_over_tls(procs, tmp_path):
    """A Host with the root's trailing dot names the same host as the TLS
    server name without it (RFC 1034 §3.1): the listener and its route
    answer, not a 421. An HTTP/1.0 request without Host over TLS is the
    server name's listener's."""
    s = HTTPS(procs, tmp_path)
    n = len(s.received())
    c = s.conn("a.example.com")
    assert c.call("a.example.com.", "/dot")[0] == 200
    assert c.call("a.example.com.:%d" % s.port, "/dot-port")[0] == 200
    # Still another listener's host with the dot: misdirected.
    assert c.call("b.example.com.", "/x")[0] == 421
    c.close()
    got = s.received()[n:]
    assert [r.path for r in got] == ["/dot", "/dot-port"], got
    assert {r.pod.rsplit(":", 1)[0] for r in got} == {s.pods[0].host}
    raw = socket.create_connection((s.host, s.port), timeout=10)
    tls = s.context("b").wrap_socket(raw, server_hostname="b.example.com")
    tls.sendall(b"GET /no-host HTTP/1.0\r\n\r\n")
    got = b""
    while True:
        piece = tls.recv(4096)
        if not piece:
            break
        got += piece
    tls.close()
    assert got.startswith(b"HTTP/1.1 200") or got.startswith(b"HTTP/1.0 200"), got
    assert pod_of(s, n + 2) == s.pods[1].host
    s.stop()
