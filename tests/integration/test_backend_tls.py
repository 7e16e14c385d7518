"""BackendTLSPolicy end to end: the gateway reaches the pods of the Services
a policy targets over TLS, with the policy's CA (a ConfigMap's ca.crt, or
the system's roots), its hostname as the server name, and its identity
rules (the hostname, or subjectAltNames); every failure is a 5xx and
nothing goes out in clear text. The backends here are small HTTPS servers
of Python's ssl module that record the server name of each handshake;
certificates are made for each test with the openssl command."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port, unique_loopback, wait_port
from test_gateway import SAN_ERRORS, write
from test_gateway_api import gateway, pod
from test_https import secret

URI = "spiffe://cluster.test/ns/default/sa/backend"


def make_cert(dirname, name, cn, uri=None):
    """A self-signed ECDSA P-256 certificate for DNS name cn (and a URI
    name): (crt, key) paths."""
    crt = os.path.join(dirname, name + ".crt")
    key = os.path.join(dirname, name + ".key")
    san = "subjectAltName=DNS:" + cn + (",URI:" + uri if uri else "")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=" + cn, "-addext", san,
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True)
    return crt, key


class TLSPod:
    """An HTTPS/1.1 server (keep-alive) answering every request with JSON
    naming the handshake's server name, the path and the Host; it counts
    connections and requests, and keeps the size of each body it read
    (`sizes`)."""

    def __init__(self, host, port, crt, key, client_ca=None):
        """client_ca: the pod requires client certificates that CA signed
        and records each request's client CN in `peers`."""
        self.requests = []
        self.sizes = []
        self.peers = []
        self.resumed = []  # per request: its connection resumed a session
        self.handshakes = []
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        pod_ = self

        def on_sni(sslobj, name, _ctx):
            with pod_.lock:
                pod_.handshakes.append(name)
            sslobj.sni_seen = name

        ctx.sni_callback = on_sni

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_GET(self):
                n = int(self.headers.get("Content-Length") or 0)
                got = 0
                while got < n:
                    piece = self.rfile.read(min(n - got, 1 << 20))
                    if not piece:
                        break
                    got += len(piece)
                with pod_.lock:
                    pod_.sizes.append(got)
                sni = getattr(self.connection, "sni_seen", None)
                peer = self.connection.getpeercert() or {}
                cn = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
                with pod_.lock:
                    pod_.requests.append((sni, self.path))
                    pod_.peers.append(cn[0] if cn else None)
                    pod_.resumed.append(self.connection.session_reused)
                body = json.dumps({"sni": sni, "path": self.path,
                                   "host": self.headers.get("Host")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def configmap(name, crt_path):
    with open(crt_path) as f:
        pem = f.read()
    ind = "".join("    " + line + "\n" for line in pem.strip().splitlines())
    return """apiVersion: v1
kind: ConfigMap
metadata:
  name: %s
  namespace: default
data:
  ca.crt: |
%s""" % (name, ind)


def tls_service(name, port, target_port, app, app_protocol="HTTPS"):
    return """apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  selector:
    app: %s
  ports:
  - name: btls
    port: %d
    targetPort: %d
    appProtocol: %s
""" % (name, app, port, target_port, app_protocol)


def policy(name, svc, validation):
    return """apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: %s
  namespace: default
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: %s
  validation:
%s""" % (name, svc, "".join("    " + line + "\n" for line in validation.strip().splitlines()))


CASES = ["ok", "mismatch", "wrongca", "missingcm", "nocacrt", "san", "system", "nopolicy"]


def route_doc():
    rules = "".join("""  - matches:
    - path: {type: Exact, value: /%s}
    backendRefs:
    - name: svc-%s
      port: 443
""" % (c, c) for c in CASES)
    # A copy of each request to /mirror goes to another TLS Service.
    rules += """  - matches:
    - path: {type: Exact, value: /mirror}
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: svc-san, port: 443}}
    backendRefs:
    - name: svc-ok
      port: 443
"""
    return """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: default
spec:
  parentRefs:
  - name: gw
  rules:
%s""" % rules


class Setup:
    def __init__(self, procs, tmp_path, gw_args=()):
        self.procs = procs
        d = os.path.join(str(tmp_path), "certs")
        os.makedirs(d, exist_ok=True)
        crt, key = make_cert(d, "abc", "abc.example.com", URI)
        other_crt, _ = make_cert(d, "other", "abc.example.com")
        self.pod_host = unique_loopback()
        self.pod_port = free_port(self.pod_host)
        self.pod = TLSPod(self.pod_host, self.pod_port, crt, key)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        docs = [gateway(self.port), pod("tls-pod", "tls", self.pod_host),
                configmap("ca", crt), configmap("other-ca", other_crt),
                """apiVersion: v1
kind: ConfigMap
metadata:
  name: no-ca-crt
  namespace: default
data: {}
""", route_doc()]
        for c in CASES:
            docs.append(tls_service("svc-" + c, 443, self.pod_port, "tls"))
        ca = lambda cm: "caCertificateRefs:\n- {group: \"\", kind: ConfigMap, name: %s}" % cm
        docs += [
            policy("ok", "svc-ok", ca("ca") + "\nhostname: abc.example.com"),
            policy("mismatch", "svc-mismatch", ca("ca") + "\nhostname: mismatch.example.com"),
            policy("wrongca", "svc-wrongca", ca("other-ca") + "\nhostname: abc.example.com"),
            policy("missingcm", "svc-missingcm", ca("absent") + "\nhostname: abc.example.com"),
            policy("nocacrt", "svc-nocacrt", ca("no-ca-crt") + "\nhostname: abc.example.com"),
            policy("san", "svc-san", ca("ca") + "\nhostname: elsewhere.example.net\n"
                   "subjectAltNames:\n- {type: URI, uri: \"%s\"}" % URI),
            policy("system", "svc-system",
                   "wellKnownCACertificates: System\nhostname: abc.example.com"),
        ]
        self.dir = os.path.join(str(tmp_path), "m")
        os.makedirs(self.dir, exist_ok=True)
        write(os.path.join(self.dir, "all.yaml"), "---\n".join(docs))
        self.gw = procs.start("gateway", "-f", self.dir, "--bind", self.host, "--workers", "2",
                              *gw_args, name="gateway")
        wait_port(self.host, self.port, proc=self.gw)

    def get(self, path, conn=None):
        c = conn or http.client.HTTPConnection(self.host, self.port, timeout=10)
        c.request("GET", path, headers={"Host": "gw.example.com"})
        r = c.getresponse()
        data = r.read()
        if not conn:
            c.close()
        return r.status, data

    def log(self):
        return self.procs.output(self.gw)

    def stop(self):
        self.pod.stop()
        self.gw.send_signal(15)
        rc = self.gw.wait(timeout=15)
        log = self.log()
        for s in SAN_ERRORS:
            assert s not in log, log
        assert rc == 0, log


def test_backend_tls_policy(procs, tmp_path):
    s = Setup(procs, tmp_path)
    # The policy's CA and hostname: TLS with the hostname as server name,
    # the client's Host kept, and kept-alive connections reused.
    conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
    for i in range(6):
        st, data = s.get("/ok", conn)
        assert st == 200, data
        got = json.loads(data)
        assert got == {"sni": "abc.example.com", "path": "/ok", "host": "gw.example.com"}, got
    conn.close()
    # Two workers, each may open its own: the rest were reused.
    assert len(s.pod.handshakes) <= 2, s.pod.handshakes
    # subjectAltNames: the hostname is only the server name; the URI in
    # the certificate is what authenticates it.
    st, data = s.get("/san")
    assert st == 200, data
    assert json.loads(data)["sni"] == "elsewhere.example.net"
    # A mirrored copy reaches its Service over TLS as its own policy says.
    st, data = s.get("/mirror")
    assert st == 200, data
    assert json.loads(data)["sni"] == "abc.example.com"
    deadline = time.monotonic() + 5
    while ("elsewhere.example.net", "/mirror") not in s.pod.requests and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    assert ("elsewhere.example.net", "/mirror") in s.pod.requests, s.pod.requests
    assert ("abc.example.com", "/mirror") in s.pod.requests, s.pod.requests
    before = len(s.pod.requests)
    # The certificate does not match the hostname; another CA signed it;
    # the system's roots do not know it: the handshake fails, the client
    # gets a 5xx, and no request reaches the pod.
    for path in ("/mismatch", "/wrongca", "/system"):
        st, data = s.get(path)
        assert st in (502, 503), (path, st, data)
    # A policy whose CA reference does not resolve, and a TLS port with no
    # policy: the backend is refused (500), never reached in clear text.
    for path in ("/missingcm", "/nocacrt", "/nopolicy"):
        st, data = s.get(path)
        assert st == 500, (path, st, data)
    assert len(s.pod.requests) == before, s.pod.requests[before:]
    log = s.log()
    assert "hostname mismatch" in log, log
    assert "certificate verify failed" in log, log
    assert 'ConfigMap "default/absent" not found' in log, log
    s.stop()


def test_backend_tls_upload_streams(procs, tmp_path):
    """A 24 MiB upload, past --max-body-bytes, goes on to a Service reached
    over TLS as it comes, its Content-Length kept: the pod reads all of it
    and answers."""
    s = Setup(procs, tmp_path)
    size = 24 << 20
    conn = http.client.HTTPConnection(s.host, s.port, timeout=30)
    conn.putrequest("POST", "/ok", skip_host=True)
    conn.putheader("Host", "gw.example.com")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    piece = b"t" * (1 << 20)
    for _ in range(size >> 20):
        conn.send(piece)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    assert r.status == 200, data
    assert json.loads(data)["sni"] == "abc.example.com"
    assert s.pod.sizes[-1] == size
    s.stop()


def test_backend_tls_reload_keeps_connections(procs, tmp_path):
    """A reload that leaves the policy as it was keeps its TLS context, so
    kept-alive connections to the pods stay in use."""
    s = Setup(procs, tmp_path)
    conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
    for _ in range(4):
        assert s.get("/ok", conn)[0] == 200
    shakes = len(s.pod.handshakes)
    path = os.path.join(s.dir, "extra.yaml")
    write(path, pod("unrelated", "other", unique_loopback()))
    os.kill(s.gw.pid, 1)  # SIGHUP: reload
    deadline = time.monotonic() + 5
    while "reloading configuration" not in s.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "reloading configuration" in s.log()
    time.sleep(0.3)  # published
    for _ in range(20):
        assert s.get("/ok", conn)[0] == 200
    assert len(s.pod.handshakes) == shakes, s.pod.handshakes
    conn.close()
    s.stop()


def test_backend_tls_sessions_resumed(procs, tmp_path):
    """Connections made again after the pool's idle timeout resume the TLS
    session the pod gave before (no key exchange, no certificate check),
    whichever of the two workers makes them: the session belongs to the
    policy's context."""
    s = Setup(procs, tmp_path, gw_args=("--upstream-idle-timeout", "50ms"))
    for _ in range(4):
        st, data = s.get("/ok")
        assert st == 200, data
        time.sleep(0.25)  # the parked connection expires
    assert len(s.pod.handshakes) == 4, s.pod.handshakes
    assert s.pod.resumed == [False, True, True, True], s.pod.resumed
    s.stop()


def test_gateway_client_certificate(procs, tmp_path):
    """Gateway spec.tls.backend.clientCertificateRef: a pod that requires
    client certificates serves the requests that came through the Gateway
    that has one (it sees the certificate's CN); the same Service port
    reached through a Gateway without one fails the handshake (502), with
    no request reaching the pod; an unusable Secret is refused on the
    Gateway (InvalidClientCertificateRef)."""
    d = os.path.join(str(tmp_path), "certs")
    os.makedirs(d, exist_ok=True)
    crt, key = make_cert(d, "pod", "pod.example.com")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl"] + list(a), cwd=d, check=True,
                                    capture_output=True)
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=client-ca", "-addext", "basicConstraints=critical,CA:TRUE")
    run("req", *ec, "-keyout", "gw.key", "-out", "gw.csr", "-subj", "/CN=the-gateway")
    run("x509", "-req", "-in", "gw.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "gw.crt", "-days", "2")
    pod_host = unique_loopback()
    pod_port = free_port(pod_host)
    tpod = TLSPod(pod_host, pod_port, crt, key, client_ca=os.path.join(d, "ca.crt"))
    host = unique_loopback()
    port, port2 = free_port(host), free_port(host)
    gws = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: infergate
  listeners:
  - {name: http, protocol: HTTP, port: %d}
  tls:
    backend:
      clientCertificateRef: {name: gw-client}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: plain
  namespace: default
spec:
  gatewayClassName: infergate
  listeners:
  - {name: http, protocol: HTTP, port: %d}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: default
spec:
  parentRefs: [{name: gw}, {name: plain}]
  rules:
  - backendRefs: [{name: svc, port: 443}]
""" % (port, port2)
    docs = [gws, pod("tls-pod", "tls", pod_host), configmap("ca", crt),
            secret("gw-client", open(os.path.join(d, "gw.crt")).read(),
                   open(os.path.join(d, "gw.key")).read()),
            tls_service("svc", 443, pod_port, "tls"),
            policy("p", "svc", "caCertificateRefs:\n- {group: \"\", kind: ConfigMap, name: ca}"
                   "\nhostname: pod.example.com")]
    mdir = os.path.join(str(tmp_path), "m")
    os.makedirs(mdir, exist_ok=True)
    write(os.path.join(mdir, "all.yaml"), "---\n".join(docs))
    gw = procs.start("gateway", "-f", mdir, "--bind", host, "--workers", "2", name="gateway")
    wait_port(host, port, proc=gw)
    wait_port(host, port2, proc=gw)

    def get(p):
        c = http.client.HTTPConnection(host, p, timeout=10)
        c.request("GET", "/v1/models")
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data
    for _ in range(3):
        st, data = get(port)
        assert st == 200, data
    assert tpod.peers == ["the-gateway"] * 3, tpod.peers
    # TLS 1.3 refuses a missing client certificate after the client's
    # Finished: the refusal lands before the request went (no backend
    # could be reached, 502) or after (closed without answering, 503),
    # as the two processes' timing falls.
    st, data = get(port2)
    assert st in (502, 503), data
    assert len(tpod.peers) == 3, tpod.peers
    out = subprocess.run([os.environ["IG_BIN"], "check", "-f", mdir], capture_output=True,
                         text=True)
    assert out.returncode == 0, out
    # The Secret replaced by one that is not kubernetes.io/tls.
    write(os.path.join(mdir, "all.yaml"), "---\n".join(docs).replace(
        "type: kubernetes.io/tls", "type: Opaque"))
    out = subprocess.run([os.environ["IG_BIN"], "check", "-f", mdir], capture_output=True,
                         text=True)
    assert "spec.tls.backend.clientCertificateRef" in out.stderr + out.stdout, out
    assert "(InvalidClientCertificateRef)" in out.stderr + out.stdout, out
    tpod.stop()
