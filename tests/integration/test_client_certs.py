"""Client certificate validation on HTTPS listeners (Gateway API
spec.tls.frontend, GEP-91): the Gateway's default validation asks every
HTTPS listener's clients for a certificate that the CA of a ConfigMap
(ca.crt) signed, a perPort entry replaces it on its port, mode
AllowInsecureFallback asks without requiring, and a validation with no
usable CA leaves its listeners unserved (NoValidCACertificate) while the
Gateway's other listeners go on. Certificates are made with the openssl
command; the backends are fake pods."""
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import urllib.request

import pytest

from conftest import free_port, unique_loopback, wait_port
from test_gateway_api import Setup, pod, service
from test_backend_tls import configmap
from test_https import route_doc, secret


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a client certificate it signed, a self-signed client
    certificate (no CA of ours), and the server's certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=client-ca", "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)
    openssl("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=client",
            cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.crt", "-days", "2", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "stranger.key", "-out", "stranger.crt", "-days", "2",
            "-subj", "/CN=stranger", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "srv.key", "-out", "srv.crt", "-days", "2",
            "-subj", "/CN=llm.example.com", "-addext", "subjectAltName=DNS:llm.example.com",
            cwd=d)


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read()


def gateway_doc(s, frontend, listener_validation=""):
    """frontend: the Gateway's spec.tls.frontend (indented), or "" for
    none; listener_validation: lines added under the checked listener's
    tls (Gateway API v1.1-v1.3's frontendValidation)."""
    return """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: infergate
  listeners:
  - name: checked
    protocol: HTTPS
    port: %d
    tls:
      certificateRefs:
      - name: srv
%s  - name: open
    protocol: HTTPS
    port: %d
    tls:
      certificateRefs:
      - name: srv
  - name: plain
    protocol: HTTP
    port: %d
%s""" % (s.checked_port, listener_validation, s.open_port, s.port,
         "  tls:\n    frontend:\n" + frontend if frontend else "")


class MTLS(Setup):
    def __init__(self, procs, tmp_path, frontend, listener_validation=""):
        self.pki = os.path.join(str(tmp_path), "pki")
        os.makedirs(self.pki, exist_ok=True)
        make_pki(self.pki)
        self.frontend = frontend
        self.listener_validation = listener_validation
        host = unique_loopback()
        self.checked_port = free_port(host)
        self.open_port = free_port(host)
        self.admin = "%s:%d" % (host, free_port(host))
        # Setup starts the gateway and waits for its own port, the plain
        # HTTP listener's, which every test serves.
        super().__init__(procs, tmp_path, self.docs, npods=1, gw_args=("--admin", self.admin))
        wait_port(self.host, self.open_port, proc=self.gw)

    def gateway_conditions(self):
        """The Gateway's own conditions on /api/status, by type."""
        with urllib.request.urlopen("http://%s/api/status" % self.admin, timeout=10) as r:
            (gw,) = json.loads(r.read())["gateways"]
        return {c["type"]: c for c in gw["conditions"]}

    def docs(self, s):
        routes = [route_doc("r-" + n, n, "svc") for n in ("checked", "open", "plain")]
        return [gateway_doc(s, self.frontend % {"open": s.open_port}, self.listener_validation),
                configmap("client-ca", os.path.join(self.pki, "ca.crt")),
                secret("srv", read(self.pki, "srv.crt"), read(self.pki, "srv.key")),
                service("svc", 80, s.pod_port, app="a"),
                pod("pod-a", "a", s.pods[0].host)] + routes

    def call(self, port, cert=None, tls12=False, headers=None):
        """The status of GET /v1/models over TLS with an optional client
        certificate ("client" or "stranger"), or the ssl error's class
        name when the handshake or the first read fails."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "srv.crt"))
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            ctx.load_cert_chain(os.path.join(self.pki, cert + ".crt"),
                                os.path.join(self.pki, cert + ".key"))
        conn = http.client.HTTPConnection(self.host, port, timeout=10)
        try:
            raw = socket.create_connection((self.host, port), timeout=10)
            conn.sock = ctx.wrap_socket(raw, server_hostname="llm.example.com")
            conn.request("GET", "/v1/models",
                         headers=dict({"Host": "llm.example.com"}, **(headers or {})))
            r = conn.getresponse()
            r.read()
            return r.status
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            return type(e).__name__
        finally:
            conn.close()


HANDSHAKE_FAILED = ("SSLError", "ConnectionResetError", "BrokenPipeError")

REQUIRED = """      default:
        validation:
          caCertificateRefs:
          - {group: "", kind: ConfigMap, name: client-ca}
      perPort:
      - port: %(open)d
        tls: {}
"""


def test_client_certificate_required(procs, tmp_path):
    """AllowValidOnly (the default mode): a certificate the ConfigMap's CA
    signed gets through, over TLS 1.3 and 1.2; none, or one of another
    CA, ends the handshake; the perPort entry without validation leaves
    its port open to any client."""
    s = MTLS(procs, tmp_path, REQUIRED)
    wait_port(s.host, s.checked_port, proc=s.gw)
    assert s.call(s.checked_port, "client") == 200
    assert s.call(s.checked_port, "client", tls12=True) == 200
    # The handshake fails: no HTTP status comes back at all.
    assert s.call(s.checked_port) in HANDSHAKE_FAILED
    assert s.call(s.checked_port, tls12=True) in HANDSHAKE_FAILED
    assert s.call(s.checked_port, "stranger") in HANDSHAKE_FAILED
    assert s.call(s.open_port) == 200
    assert s.call(s.open_port, "stranger") == 200
    # A port that asks for no certificate gets none to vouch for.
    assert s.call(s.open_port, "client") == 200
    assert "x-forwarded-client-cert" not in s.received()[-1].headers
    assert s.call(s.checked_port, "client") == 200
    assert s.received()[-1].headers["x-forwarded-client-cert"].startswith("Hash=")
    # Only AllowInsecureFallback sets InsecureFrontendValidationMode.
    assert "InsecureFrontendValidationMode" not in s.gateway_conditions()
    s.stop()


def der_sha256(pem_path):
    der = subprocess.run(["openssl", "x509", "-in", pem_path, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_insecure_fallback_asks_without_requiring(procs, tmp_path):
    """AllowInsecureFallback: clients with a valid certificate, an unknown
    one or none at all are served. The backend learns who a verified
    client is from x-forwarded-client-cert (Envoy's Hash and Subject); a
    header of that name from the client never reaches it (Envoy's default,
    SANITIZE), whatever certificate came with it."""
    s = MTLS(procs, tmp_path, """      default:
        validation:
          mode: AllowInsecureFallback
          caCertificateRefs:
          - {group: "", kind: ConfigMap, name: client-ca}
""")
    wait_port(s.host, s.checked_port, proc=s.gw)
    assert s.call(s.checked_port, "client") == 200
    assert s.call(s.checked_port) == 200
    assert s.call(s.checked_port, "stranger") == 200
    # Gateway API v1.5.0 on: the Gateway says it lets such clients in.
    insecure = s.gateway_conditions()["InsecureFrontendValidationMode"]
    assert (insecure["status"], insecure["reason"]) == ("True", "ConfigurationChanged")
    spoof = {"X-Forwarded-Client-Cert": 'Hash=00;Subject="CN=admin"'}

    def forwarded(port, cert):
        assert s.call(port, cert, headers=spoof) == 200
        return s.received()[-1].headers.get("x-forwarded-client-cert")
    want = 'Hash=%s;Subject="CN=client"' % der_sha256(os.path.join(s.pki, "client.crt"))
    assert forwarded(s.checked_port, "client") == want
    assert forwarded(s.checked_port, "client") == want  # the same connection's, kept
    assert forwarded(s.checked_port, "stranger") is None
    assert forwarded(s.checked_port, None) is None
    st, _, _ = s.get("/v1/models", headers={"Host": "llm.example.com", **spoof})
    assert st == 200 and "x-forwarded-client-cert" not in s.received()[-1].headers
    s.stop()


@pytest.mark.parametrize("ref", ['{group: "", kind: ConfigMap, name: missing}',
                                 '{group: "", kind: Secret, name: client-ca}'])
def test_no_valid_ca_leaves_listeners_unserved(procs, tmp_path, ref):
    """A validation whose only CA reference does not resolve (no such
    ConfigMap, or a kind other than ConfigMap) is never served without
    its check: the HTTPS listeners it covers are not served, while the
    perPort-exempt HTTPS listener and the HTTP listener go on. `check`
    says why."""
    frontend = """      default:
        validation:
          caCertificateRefs:
          - %s
      perPort:
      - port: %%(open)d
        tls: {}
""" % ref
    s = MTLS(procs, tmp_path, frontend)
    assert s.get("/v1/models")[0] == 200
    assert s.call(s.open_port) == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((s.host, s.checked_port), timeout=5)
    out = subprocess.run([os.environ["IG_BIN"], "check", "-f", s.dir],
                         capture_output=True, text=True)
    reason = "InvalidCACertificateRef" if "missing" in ref else "InvalidCACertificateKind"
    assert reason in out.stdout + out.stderr, out
    assert "NoValidCACertificate" in out.stdout + out.stderr, out
    s.stop()


def test_listener_frontend_validation(procs, tmp_path):
    """Manifests written for Gateway API v1.1-v1.3 put the validation on
    the listener (tls.frontendValidation): it applies to that listener
    alone, as AllowValidOnly."""
    s = MTLS(procs, tmp_path, "", listener_validation="""      frontendValidation:
        caCertificateRefs:
        - {group: "", kind: ConfigMap, name: client-ca}
""")
    wait_port(s.host, s.checked_port, proc=s.gw)
    assert s.call(s.checked_port, "client") == 200
    assert s.call(s.checked_port) in HANDSHAKE_FAILED
    assert s.call(s.checked_port, "stranger") in HANDSHAKE_FAILED
    assert s.call(s.open_port) == 200
    s.stop()
