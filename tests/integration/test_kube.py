"""`infergate gateway --kube` end to end (issue 10): the API server is the
stand-in of kubeapi.py (TLS, tokens, list/watch), objects are created with
the real `kubectl` as a user would, Pods point at `infergate sim` processes
on loopback addresses, and requests go through the gateway."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import IG_BIN, free_port, rss_kib, unique_loopback, wait_http, wait_port
from kubeapi import KubeAPI
from test_gateway import LORA, SAN_ERRORS, call, post_json, seed_body
from test_lifecycle import fd_limit

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")

SEED = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "kgateway")
# A change must take effect within 2 s; the checks allow a little more for
# a loaded test machine and the sanitizer build.
FOLLOW_S = 2.5

GATEWAY_CLASS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: %s
spec:
  controllerName: %s
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels:
    app: qwen-pool
spec:
  containers:
  - name: vllm
    image: vllm
"""


# One address for every test's API server (each gets a port of its own), so
# that its certificates are made once (kubeapi.make_certs' reuse).
API_HOST = unique_loopback()


class Kube:
    """The stand-in API server, kubectl pointed at it, simulators, and the
    gateway in --kube mode."""

    def __init__(self, procs, tmp_path, nsims=2, api_kw=None):
        self.procs = procs
        self.tmp = str(tmp_path)
        self.api = KubeAPI(API_HOST, 0, os.path.join(self.tmp, "pki"),
                           bookmark_interval=0.5, **(api_kw or {})).start()
        self.kubeconfig = self.api.kubeconfig(os.path.join(self.tmp, "kubeconfig"))
        self.sim_hosts = [unique_loopback() for _ in range(nsims)]
        self.target_port = free_port(self.sim_hosts[0])
        self.sims = [procs.start("sim", "--host", h, "--port", self.target_port,
                                 "--enable-lora", "--max-loras", "4", "--lora-modules", *LORA,
                                 name="sim") for h in self.sim_hosts]
        for h, p in zip(self.sim_hosts, self.sims):
            wait_http("http://%s:%d/health" % (h, self.target_port), proc=p)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.other_port = free_port(self.host)
        self.admin_host = unique_loopback()
        self.admin_port = free_port(self.admin_host)
        self.gw = None

    # ---- kubectl ----

    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "--cache-dir",
                            os.path.join(self.tmp, "kcache")] + list(args),
                           input=stdin, capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    def apply(self, text):
        return self.kubectl("apply", "-f", "-", stdin=text)

    def seed_manifests(self):
        """The seed's Gateway, HTTPRoute, InferencePool and InferenceModel,
        with this test's ports instead of 8080, 8081 and 8000."""
        docs = []
        for name in ("gateway.yaml", "route.yaml", "inference-pool.yaml",
                     "inference-model.yaml"):
            with open(os.path.join(SEED, name)) as f:
                text = f.read()
            text = text.replace("port: 8080", "port: %d" % self.other_port)
            text = text.replace("port: 8081", "port: %d" % self.port)
            text = text.replace("8000", str(self.target_port))
            docs.append(text)
        return "---\n".join(docs)

    def apply_seed(self, controller="infergate.dev/gateway-controller"):
        self.apply(GATEWAY_CLASS % ("kgateway", controller))
        self.apply(self.seed_manifests())

    def add_pod(self, name, ip, ready=True):
        self.apply(POD % name)
        self.set_pod(name, ip, ready)

    def set_pod(self, name, ip, ready):
        status = {"status": {"podIP": ip, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"}]}}
        self.patch_status("", "v1", "pods", name, status)

    def patch_status(self, group, version, plural, name, patch):
        """A merge patch of the status subresource, written as the kubelet
        or another controller would (straight to the API: `kubectl patch
        --subresource` only exists from kubectl 1.24, and Debian's is
        1.20)."""
        self.api.patch(self.api.resource(group, version, plural), "default", name, "status",
                       "application/merge-patch+json", json.dumps(patch).encode())

    # ---- gateway ----

    def start_gateway(self, *extra, kubeconfig=None, wait=True, env=None):
        self.gw = self.procs.start("gateway", "--kube", "--kubeconfig",
                                   kubeconfig or self.kubeconfig, "--bind", self.host,
                                   "--admin", "%s:%d" % (self.admin_host, self.admin_port),
                                   "--workers", "2", *extra, name="gateway",
                                   **({"env": env} if env else {}))
        wait_http(self.admin + "/healthz", proc=self.gw)
        if wait:
            self.wait_listening()
        return self.gw

    def wait_listening(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.gw.poll() is None, self.log()
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the gateway never listened:\n" + self.log())

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def admin(self):
        return "http://%s:%d" % (self.admin_host, self.admin_port)

    def endpoint(self, i):
        return "%s:%d" % (self.sim_hosts[i], self.target_port)

    def endpoints(self):
        status, _, data = call(self.admin, "/pools")
        assert status == 200
        return sorted(ep["address"] for pool in json.loads(data)["pools"]
                      if pool["name"] == "qwen-pool" for ep in pool["endpoints"])

    def wait_endpoints(self, want, timeout=FOLLOW_S):
        want = sorted(want)
        deadline = time.time() + timeout
        while True:
            got = self.endpoints()
            if got == want:
                return
            if time.time() > deadline:
                raise AssertionError("endpoints %s, want %s\n%s" % (got, want, self.log()))
            time.sleep(0.05)

    def log(self):
        return self.procs.output(self.gw) if self.gw else ""

    def infergate_requests(self, kind=None, watch=None):
        out = []
        for method, path, status, *_ in self.api.requests_by("infergate"):
            if kind and ("/%s?" % kind) not in path:
                continue
            is_watch = "watch=1" in path
            if watch is not None and is_watch != watch:
                continue
            out.append((method, path, status))
        return out

    def stop(self):
        if self.gw:
            self.gw.send_signal(signal.SIGTERM)
            rc = self.gw.wait(timeout=15)
            log = self.log()
            for s in SAN_ERRORS:
                assert s not in log, log
            assert rc == 0, log
        self.api.stop()


@pytest.fixture
def kube(procs, tmp_path):
    k = Kube(procs, tmp_path)
    yield k
    k.api.stop()


def served_by(k, model="tweet-summary"):
    status, headers, r = post_json(k.base, "/v1/completions", seed_body(model))
    return status, headers.get("x-gateway-destination-endpoint-served"), r


def test_seed_through_kubectl(kube):
    """The seed's manifests applied with kubectl, one Ready pod: the seed
    request is served by it, with the InferenceModel's target model."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    status, ep, r = served_by(k)
    assert status == 200, r
    assert ep == k.endpoint(0)
    assert r["model"] == "tweet-summary-1"
    assert r["usage"]["completion_tokens"] == 100
    # The listener of the other port is served too; nothing routes there.
    status, _, _ = call("http://%s:%d" % (k.host, k.other_port), "/v1/completions",
                        seed_body())
    assert status == 404
    log = k.log()
    assert "every kind read from %s" % k.api.hostport in log
    k.stop()


def test_pods_and_models_followed(kube):
    """Pods added, made unready, deleted; InferenceModel weights changed:
    each followed within 2 s, without restarting anything."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])

    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)])

    k.set_pod("qwen-pool-0", k.sim_hosts[0], ready=False)
    k.wait_endpoints([k.endpoint(1)])
    for _ in range(4):
        status, ep, r = served_by(k)
        assert status == 200 and ep == k.endpoint(1), r

    # A pod with no conditions yet (just created) is not Ready.
    k.apply(POD % "qwen-pool-2")
    k.patch_status("", "v1", "pods", "qwen-pool-2", {"status": {"podIP": k.sim_hosts[0]}})
    time.sleep(1)
    assert k.endpoints() == [k.endpoint(1)]

    k.kubectl("delete", "pod", "qwen-pool-1")
    k.wait_endpoints([])
    status, _, _ = call(k.base, "/v1/completions", seed_body())
    assert status == 503

    k.set_pod("qwen-pool-0", k.sim_hosts[0], ready=True)
    k.wait_endpoints([k.endpoint(0)])
    model = json.loads(k.kubectl("get", "inferencemodels.inference.networking.x-k8s.io",
                                 "inferencemodel-sample", "-o", "json"))
    model["spec"]["targetModels"] = [{"name": "tweet-summary-0", "weight": 100}]
    k.apply(json.dumps(model))
    deadline = time.time() + FOLLOW_S
    while True:
        status, ep, r = served_by(k)
        assert status == 200, r
        if r["model"] == "tweet-summary-0":
            break
        assert time.time() < deadline, "the new weights were never followed"
        time.sleep(0.05)
    k.stop()


def test_watch_expiry_relists_and_clean_end_rewatches(kube):
    """A watch the server ends cleanly is opened again from the last
    resourceVersion (moved on by bookmarks) without a list; when the server
    has forgotten that version (410 Gone) the kind is listed again."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    lists = len(k.infergate_requests("services", watch=False))
    first = k.infergate_requests("services", watch=True)
    assert lists == 1 and len(first) == 1, k.infergate_requests()
    rv0 = int(re.search(r"resourceVersion=(\d+)", first[0][1]).group(1))
    # Changes to other kinds move the global version; bookmarks bring the
    # services watch along.
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    time.sleep(1.5)
    assert k.api.bookmarks_sent > 0
    k.api.end_watches()
    deadline = time.time() + 5
    while len(k.infergate_requests("services", watch=True)) < 2:
        assert time.time() < deadline, k.infergate_requests("services")
        time.sleep(0.05)
    again = k.infergate_requests("services", watch=True)[1]
    rv1 = int(re.search(r"resourceVersion=(\d+)", again[1]).group(1))
    assert rv1 > rv0, (rv0, rv1)
    assert len(k.infergate_requests("services", watch=False)) == 1
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)])

    k.api.compact()
    deadline = time.time() + 5
    while len(k.infergate_requests("services", watch=False)) < 2:
        assert time.time() < deadline, k.infergate_requests("services")
        time.sleep(0.05)
    assert "too old (410 Gone): listing again" in k.log()
    # Changes after the relist are followed.
    k.kubectl("delete", "pod", "qwen-pool-1")
    k.wait_endpoints([k.endpoint(0)])
    k.stop()


def wait_until(pred, what, timeout=5.0, log=""):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, "%s never happened\n%s" % (what, log() if log else "")
        time.sleep(0.05)


LISTENERS = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: kgateway
  listeners:
%s"""


def listeners(*ports):
    return LISTENERS % "".join("  - {name: l%d, protocol: HTTP, port: %d}\n" % (p, p)
                               for p in ports)


def test_listener_out_of_fds_is_tried_again(procs, tmp_path):
    """A new listener that cannot be bound because the process is out of
    descriptors refuses the reload of the changed API objects (the listener
    and the errno said), and the reload is tried again with back-off,
    as controllers requeue: the port is served once descriptors are back,
    without another change of the objects."""
    k = Kube(procs, tmp_path, nsims=1)
    k.apply(GATEWAY_CLASS % ("kgateway", "infergate.dev/gateway-controller"))
    k.apply(listeners(k.port))
    k.gw = procs.start("gateway", "--kube", "--kubeconfig", k.kubeconfig, "--bind", k.host,
                       "--admin", "%s:%d" % (k.admin_host, k.admin_port), "--workers", "1",
                       name="gateway", preexec_fn=fd_limit(128))
    wait_http(k.admin + "/healthz", proc=k.gw)
    k.wait_listening()
    held = []
    try:
        while "pausing new connections" not in k.log() and len(held) < 300:
            held.append(socket.create_connection((k.host, k.port), timeout=5))
            if len(held) > 100:
                time.sleep(0.01)
        k.apply(listeners(k.port, k.other_port))
        wait_until(lambda: "trying again in" in k.log(), "a retry", log=k.log)
    finally:
        for s in held:
            s.close()
    assert "cannot listen on %s:%d: Too many open files" % (k.host, k.other_port) in k.log()

    def other_port_listens():
        try:
            socket.create_connection((k.host, k.other_port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(other_port_listens, "the new listener", timeout=10, log=k.log)
    rl = json.loads(call(k.admin, "/api/status")[2])["reload"]
    assert rl["last"]["result"] == "success" and rl["retry_time"] is None, rl
    k.stop()


def test_synced_kind_refused_for_a_while_keeps_its_objects(kube):
    """A kind that was read answers 404 (an API server restarting before it
    serves its CRDs): its objects stay, as client-go's reflector keeps its
    store on a failed list, so routes and pools keep serving; it is said
    once and listed again with the back-off until it is served."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    k.api.disabled.update({"httproutes", "inference.networking.x-k8s.io/inferencepools"})
    k.api.end_watches()
    wait_until(lambda: any(c == 404 for _, _, c in k.infergate_requests("httproutes")) and
               any(c == 404 for _, _, c in k.infergate_requests("inferencepools")),
               "404 on both kinds", log=k.log)
    # A kind emptied here would reload within 100 ms without the route.
    time.sleep(0.3)
    status, ep, r = served_by(k)
    assert status == 200 and ep == k.endpoint(0), r
    assert k.endpoints() == [k.endpoint(0)]
    k.api.disabled.clear()
    wait_until(lambda: k.log().count("is served again") == 2, "both kinds back", log=k.log)
    log = k.log()
    assert log.count("was read but is now refused") == 2, log
    assert "is not served by the API server" not in log, log
    status, ep, r = served_by(k)
    assert status == 200 and ep == k.endpoint(0), r
    k.stop()


def test_watch_errors_relist_with_backoff(kube):
    """A watch that ends with an ERROR event means a new list, whatever the
    code, as client-go's reflector does; and the lists come after the
    reflector's back-off (800 ms, doubling), so a server that keeps
    answering 410 Gone is not asked again at once, a thousand times a
    second."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    lists = {kind: len(k.infergate_requests(kind, watch=False))
             for kind in ("services", "endpointslices")}
    k.api.watch_errors.update({"services": 410, "endpointslices": 500})
    k.api.end_watches()
    time.sleep(1.5)
    k.api.watch_errors.clear()
    for kind, before in lists.items():
        n = len(k.infergate_requests(kind, watch=False)) - before
        # 0.6-0.8 s, then 1.2-1.6 s later: one or two lists in 1.5 s.
        assert 1 <= n <= 3, (kind, n, k.infergate_requests(kind))
    assert "watch of endpointslices: error 500: watch refused; listing again" in k.log()
    status, ep, r = served_by(k)
    assert status == 200 and ep == k.endpoint(0), r
    k.stop()


def test_retry_after_is_honoured(kube):
    """An API server that answers 429 with Retry-After is asked again only
    after that many seconds (client-go's rest client waits it), not at the
    back-off's first 100 ms steps; once it answers, the gateway goes on."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    n0 = len(k.api.requests_by("infergate"))
    k.api.refuse = (429, "1")
    k.api.end_watches()
    time.sleep(0.8)
    k.api.refuse = None
    refused = [(r[1].split("?")[0], r[5]) for r in k.api.requests_by("infergate")[n0:]
               if r[2] == 429 and r[0] == "GET"]
    assert refused, k.infergate_requests()[n0:]
    # A kind is listed or watched again only after the second it was told
    # (times as the API server saw them, so a busy test process does not
    # matter). Status writes are left out: a new change to write is a new
    # request, as a controller's next reconcile is.
    last = {}
    for path, t in refused:
        assert path not in last or t - last[path] >= 0.9, (path, t - last[path])
        last[path] = t
    n1 = len(k.infergate_requests())
    wait_until(lambda: any(c == 200 and "watch=1" in p
                           for _, p, c in k.infergate_requests()[n1:]),
               "a watch after the refusals", log=k.log)
    status, ep, r = served_by(k)
    assert status == 200 and ep == k.endpoint(0), r
    k.stop()


def test_api_server_restart(kube):
    """The API server goes away: traffic goes on with the last
    configuration, one error line names the server, and once it is back the
    gateway reconnects and follows later changes."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    k.api.stop()
    for _ in range(5):
        status, ep, r = served_by(k)
        assert status == 200 and ep == k.endpoint(0), r
        time.sleep(0.2)
    log = k.log()
    errors = [l for l in log.splitlines() if "error kube: %s" % k.api.hostport in l]
    assert len(errors) == 1, log
    assert "serving the last configuration read" in errors[0]
    k.api.start()
    deadline = time.time() + 5
    while "answers again" not in k.log():
        assert time.time() < deadline, k.log()
        time.sleep(0.05)
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)], timeout=FOLLOW_S + 2)
    status, _, r = served_by(k)
    assert status == 200, r
    k.stop()


def test_wrong_token_then_right(kube):
    """A token the server refuses: one clear error line with host:port and
    401, no listener until the configuration is read; the gateway retries
    and starts serving once the server accepts the token."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    bad = k.api.kubeconfig(os.path.join(k.tmp, "bad-kubeconfig"), token="wrong")
    k.start_gateway(kubeconfig=bad, wait=False)
    time.sleep(1.5)
    log = k.log()
    lines = [l for l in log.splitlines() if "HTTP 401" in l]
    assert len(lines) == 1, log
    assert "%s: HTTP 401 Unauthorized" % k.api.hostport in lines[0]
    assert k.gw.poll() is None
    with pytest.raises(OSError):
        socket.create_connection((k.host, k.port), timeout=0.5).close()
    # Alive, not ready.
    assert call(k.admin, "/healthz")[0] == 200
    status, _, body = call(k.admin, "/readyz")
    assert (status, body) == (503, b"not configured yet\n")
    n = len(k.infergate_requests())
    time.sleep(1)
    assert len(k.infergate_requests()) > n  # still trying
    k.api.tokens["wrong"] = "late"
    k.wait_listening(timeout=5)
    assert call(k.admin, "/readyz")[0] == 200
    status, ep, r = served_by(k)
    assert status == 200 and ep == k.endpoint(0), r
    k.stop()


def test_unreachable_at_start(kube):
    """Nothing listens at the server's address at start: one error line
    with host:port and the connection error, then it connects when the
    server comes."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.api.stop()
    k.start_gateway(wait=False)
    time.sleep(1.5)
    log = k.log()
    lines = [l for l in log.splitlines() if "error kube:" in l]
    assert len(lines) == 1, log
    assert k.api.hostport in lines[0] and "refused" in lines[0].lower(), lines
    assert "serving nothing until the configuration is read" in lines[0]
    k.api.start()
    k.wait_listening(timeout=5)
    status, _, r = served_by(k)
    assert status == 200, r
    k.stop()


def test_missing_crd_and_malformed_object(procs, tmp_path):
    """A kind the server does not serve (its CRD not installed) is logged
    once and the rest works; an object the loader refuses is named in the
    log and left out, the others served."""
    k = Kube(procs, tmp_path, nsims=1,
             api_kw={"disabled": ["inference.networking.k8s.io/inferencepools"]})
    try:
        k.apply_seed()
        k.add_pod("qwen-pool-0", k.sim_hosts[0])
        k.apply("""apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: broken
spec:
  modelName: other
  criticality: Urgent
  poolRef:
    name: qwen-pool
""")
        k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: broken-route
spec:
  parentRefs:
  - name: inference-gateway
  rules:
  - backendRefs:
    - group: inference.networking.x-k8s.io
      kind: InferencePool
      name: qwen-pool
    timeouts:
      request: forever
""")
        k.start_gateway()
        k.wait_endpoints([k.endpoint(0)])
        status, _, r = served_by(k)
        assert status == 200, r
        status, _, _ = call(k.base, "/v1/completions", seed_body("other"))
        assert status == 404
        # The broken route says why in its status.
        parents = wait_for(lambda: (get(k, "httproute", "broken-route").get("status") or {})
                           .get("parents"), "broken-route status")
        acc = {c["type"]: c for c in parents[0]["conditions"]}["Accepted"]
        assert acc["status"] == "False" and acc["reason"] == "UnsupportedValue", acc
        assert "spec.rules[0].timeouts.request" in acc["message"], acc
        assert parents[0]["parentRef"]["name"] == "inference-gateway"
        log = k.log()
        assert log.count("InferencePool (inference.networking.k8s.io/v1) is not served") == 1
        assert re.search(r"kube:InferenceModel/default/broken:\d+: spec\.criticality: ", log), log
        assert "kube:InferenceModel/default/broken: warning: left out" in log
        k.stop()
    finally:
        k.api.stop()


def test_only_our_gateway_class(kube):
    """Gateways of another controller's class are not served."""
    k = kube
    k.apply_seed(controller="example.com/other-controller")
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway(wait=False)
    deadline = time.time() + 5
    while "every kind read" not in k.log():
        assert time.time() < deadline, k.log()
        time.sleep(0.05)
    time.sleep(0.5)
    with pytest.raises(OSError):
        socket.create_connection((k.host, k.port), timeout=0.5).close()
    # The Gateway moves to a class of ours (controllerName is immutable).
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    k.kubectl("patch", "gateway", "inference-gateway", "--type=merge",
              "-p", '{"spec":{"gatewayClassName":"infergate"}}')
    k.wait_listening(timeout=FOLLOW_S)
    k.wait_endpoints([k.endpoint(0)])
    k.stop()


def conditions(obj, path=()):
    st = obj.get("status") or {}
    for p in path:
        st = st[p]
    return {c["type"]: c for c in st.get("conditions", [])}


def get(k, kind, name):
    return json.loads(k.kubectl("get", kind, name, "-o", "json"))


def wait_for(pred, what, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("never happened: " + what)
        time.sleep(0.1)


def status_writes(k):
    return [r for r in k.infergate_requests() if r[0] == "PUT" and r[1].endswith("/status")]


POOL_KIND = "inferencepools.inference.networking.x-k8s.io"


def test_status_written_back(kube):
    """GatewayClass, Gateway (listeners, attached routes, addresses),
    HTTPRoute parents and InferencePool parents get their conditions with
    observedGeneration; a route to a missing pool turns ResolvedRefs False /
    BackendNotFound (and requests 500) within 5 s; lastTransitionTime stays
    when a condition keeps its status; nothing is written when nothing
    changed; a conflict (409) is retried."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    other = {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                           "namespace": "default", "name": "elsewhere"},
             "controllerName": "example.com/other", "conditions": []}
    k.patch_status("gateway.networking.k8s.io", "v1", "httproutes", "llm-route",
                   {"status": {"parents": [other]}})
    k.api.status_conflicts = 1
    k.start_gateway()
    ctl = "infergate.dev/gateway-controller"

    gc = wait_for(lambda: conditions(get(k, "gatewayclass", "kgateway")).get("Accepted"),
                  "GatewayClass Accepted")
    assert gc["status"] == "True" and gc["reason"] == "Accepted"
    sv = conditions(get(k, "gatewayclass", "kgateway"))["SupportedVersion"]
    assert sv["status"] == "True" and sv["reason"] == "SupportedVersion"
    # status.supportedFeatures (standard since Gateway API v1.4): sorted
    # names, the core of the HTTP profile among them, WebSocket backends and
    # BackendTLSPolicy too.
    names = [f["name"] for f in get(k, "gatewayclass", "kgateway")["status"]["supportedFeatures"]]
    assert names == sorted(names) and len(names) == len(set(names)) <= 64
    assert {"Gateway", "HTTPRoute", "ReferenceGrant", "HTTPRouteCORS"} <= set(names)
    assert {"GRPCRoute", "GRPCRouteNamedRouteRule", "GRPCRouteRequestHeaderModifier"} <= set(names)
    assert "HTTPRouteBackendProtocolWebSocket" in names
    assert {"BackendTLSPolicy", "BackendTLSPolicySANValidation"} <= set(names)
    assert {"GatewayFrontendClientCertificateValidation", "GatewayBackendClientCertificate",
            "GatewayHTTPSListenerDetectMisdirectedRequests", "ListenerSet",
            "HTTPRouteBackendRequestRedirect", "HTTPRouteBackendURLRewrite", "HTTPRouteRetry",
            "HTTPRouteRetryConnectionError", "HTTPRouteRetryBackendTimeout",
            "GatewayStaticAddresses", "GatewayAddressEmpty",
            "HTTPRouteDestinationPortMatching"} <= set(names)

    def gw_ready():
        gw = get(k, "gateway", "inference-gateway")
        c = conditions(gw)
        return gw if c.get("Programmed", {}).get("status") == "True" else None
    gw = wait_for(gw_ready, "Gateway Programmed")
    c = conditions(gw)
    assert c["Accepted"]["status"] == "True"
    assert c["Accepted"]["observedGeneration"] == gw["metadata"]["generation"]
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": k.host}]
    ls = {l["name"]: l for l in gw["status"]["listeners"]}
    assert ls["llm-gw"]["attachedRoutes"] == 1 and ls["http"]["attachedRoutes"] == 0
    assert ls["llm-gw"]["supportedKinds"] == [{"group": "gateway.networking.k8s.io",
                                               "kind": "HTTPRoute"},
                                              {"group": "gateway.networking.k8s.io",
                                               "kind": "GRPCRoute"}]
    lc = {x["type"]: x for x in ls["llm-gw"]["conditions"]}
    assert {t: lc[t]["status"] for t in lc} == {"Accepted": "True", "Programmed": "True",
                                                "ResolvedRefs": "True", "Conflicted": "False"}
    assert re.fullmatch(r"[A-Z][A-Za-z]*", lc["Accepted"]["reason"])

    route = wait_for(lambda: [p for p in get(k, "httproute", "llm-route")["status"]["parents"]
                              if p["controllerName"] == ctl], "HTTPRoute parents")
    assert len(route) == 1
    # Another controller's entry stays.
    assert other in get(k, "httproute", "llm-route")["status"]["parents"]
    assert route[0]["parentRef"]["name"] == "inference-gateway"
    assert route[0]["parentRef"]["sectionName"] == "llm-gw"
    rc = {x["type"]: x for x in route[0]["conditions"]}
    assert rc["Accepted"]["status"] == "True" and rc["ResolvedRefs"]["status"] == "True"
    accepted_time = rc["Accepted"]["lastTransitionTime"]

    pool = wait_for(lambda: (get(k, POOL_KIND, "qwen-pool").get("status") or {}).get("parent"),
                    "InferencePool parent")
    assert pool[0]["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                    "namespace": "default", "name": "inference-gateway"}
    assert {x["type"]: x["status"] for x in pool[0]["conditions"]} == {
        "Accepted": "True", "ResolvedRefs": "True"}

    # Settled: a change that alters no status writes nothing.
    time.sleep(1.2)
    n = len(status_writes(k))
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)])
    time.sleep(1)
    assert len(status_writes(k)) == n, status_writes(k)[n:]

    # A backendRef to a pool that does not exist.
    time.sleep(1.1)  # so that a new lastTransitionTime would differ
    k.kubectl("patch", "httproute", "llm-route", "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/rules/0/backendRefs/0/name", "value": "no-pool"}]))
    t0 = time.time()

    def unresolved():
        r = get(k, "httproute", "llm-route")
        ours = [p for p in r["status"]["parents"] if p["controllerName"] == ctl]
        c = {x["type"]: x for x in ours[0]["conditions"]}
        return (r, c) if c["ResolvedRefs"]["status"] == "False" else None
    r, rc = wait_for(unresolved, "ResolvedRefs False")
    assert time.time() - t0 < 5
    assert rc["ResolvedRefs"]["reason"] == "BackendNotFound"
    assert rc["ResolvedRefs"]["observedGeneration"] == r["metadata"]["generation"] == 2
    assert rc["Accepted"]["lastTransitionTime"] == accepted_time
    status, _, _ = call(k.base, "/v1/completions", seed_body())
    assert status == 500
    # The pool is reached through no route now: our entry is gone.
    wait_for(lambda: not (get(k, POOL_KIND, "qwen-pool").get("status") or {}).get("parent"),
             "InferencePool parent removed")
    assert k.api.status_conflicts == 0
    # The route leaves our Gateway: our entry leaves its status, the other
    # controller's stays.
    k.kubectl("patch", "httproute", "llm-route", "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/parentRefs/0/name", "value": "nowhere"}]))
    wait_for(lambda: not [p for p in get(k, "httproute", "llm-route")["status"]["parents"]
                          if p["controllerName"] == ctl], "our parents entry removed")
    assert get(k, "httproute", "llm-route")["status"]["parents"] == [other]
    k.stop()


def test_leader_election_timings_checked():
    """Timings that cannot work together (client-go's rules) are refused."""
    for args, want in (
            (["--leader-elect-lease-duration", "2s", "--leader-elect-renew-deadline", "3s"],
             "must be shorter than --leader-elect-lease-duration"),
            (["--leader-elect-renew-deadline", "1s", "--leader-elect-retry-period", "1s"],
             "longer than 1.2 times --leader-elect-retry-period"),
            (["--leader-elect-lease-duration", "500ms"], "at least 1s")):
        r = subprocess.run([IG_BIN, "gateway", "--kube", "--leader-elect", *args],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and want in r.stderr, (args, r.stderr)


def test_leader_election_two_replicas(procs, tmp_path):
    """Two replicas with --leader-elect: one holds the Lease and writes
    status, both route traffic; when the holder dies the other takes the
    Lease and writes status from then on. With a 3 s Lease (the default is
    10 s), a 2 s renew deadline and a 500 ms retry period, the takeover
    comes within 3 s of the holder's last renewal plus a retry."""
    timings = ("--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
               "--leader-elect-retry-period", "500ms")
    k = Kube(procs, tmp_path, nsims=1)
    try:
        k.api.tokens["token-a"] = "replica-a"
        k.api.tokens["token-b"] = "replica-b"
        k.apply_seed()
        k.add_pod("qwen-pool-0", k.sim_hosts[0])
        kc = {u: k.api.kubeconfig(os.path.join(k.tmp, "kc-" + u), token="token-" + u)
              for u in "ab"}
        a = k.start_gateway("--leader-elect", *timings, kubeconfig=kc["a"])
        host_b = unique_loopback()
        admin_b = "%s:%d" % (host_b, free_port(host_b))
        b = procs.start("gateway", "--kube", "--kubeconfig", kc["b"], "--bind", host_b,
                        "--admin", admin_b, "--workers", "1", "--leader-elect", *timings,
                        name="gateway-b")
        wait_http("http://%s/healthz" % admin_b, proc=b)
        k.wait_endpoints([k.endpoint(0)])
        # Both route.
        for base in (k.base, "http://%s:%d" % (host_b, k.port)):
            deadline = time.time() + 10
            while True:
                try:
                    status, _, r = post_json(base, "/v1/completions", seed_body())
                    break
                except OSError:
                    assert time.time() < deadline
                    time.sleep(0.1)
            assert status == 200, r
        ident = {}
        for u, p in (("a", a), ("b", b)):
            m = wait_for(lambda: re.search(r"leader election: identity (\S+),",
                                           procs.output(p)), "identity of " + u)
            ident[u] = m.group(1)
        assert ident["a"] != ident["b"]
        lease_name = "infergate-infergate.dev-gateway-controller"
        holder = wait_for(lambda: get(k, "lease", lease_name)["spec"].get("holderIdentity"),
                          "a holder")
        leader = "a" if holder == ident["a"] else "b"
        other = "b" if leader == "a" else "a"
        assert holder == ident[leader]
        procs_of = {"a": a, "b": b}
        wait_for(lambda: "holds the Lease" in procs.output(procs_of[leader]), "leader log")
        assert "holds the Lease" not in procs.output(procs_of[other])
        route = wait_for(lambda: (get(k, "httproute", "llm-route").get("status") or {})
                         .get("parents"), "route status")
        assert route

        def writes_by(user):
            return [r for r in k.api.requests if r[0] == "PUT" and
                    r[1].endswith("/status") and r[4] == "replica-" + user]
        assert writes_by(leader) and not writes_by(other)

        assert get(k, "lease", lease_name)["spec"]["leaseDurationSeconds"] == 3
        # The holder dies; the survivor takes over once the Lease ran out.
        procs_of[leader].send_signal(signal.SIGKILL)
        t0 = time.time()
        wait_for(lambda: get(k, "lease", lease_name)["spec"].get("holderIdentity") ==
                 ident[other], "failover", timeout=20)
        took = time.time() - t0
        assert took < 6, took
        lease = get(k, "lease", lease_name)
        assert lease["spec"]["leaseTransitions"] >= 1
        k.kubectl("patch", "httproute", "llm-route", "--type=json", "-p", json.dumps(
            [{"op": "replace", "path": "/spec/rules/0/backendRefs/0/name", "value": "gone"}]))

        def survivor_wrote():
            r = get(k, "httproute", "llm-route")
            c = {x["type"]: x for x in r["status"]["parents"][0]["conditions"]}
            return c["ResolvedRefs"]["reason"] == "BackendNotFound"
        wait_for(survivor_wrote, "status from the survivor")
        assert writes_by(other)
        status, _, _ = call("http://%s:%d" % (host_b if other == "b" else k.host, k.port),
                            "/v1/completions", seed_body())
        assert status == 500
        # A holder that exits gives the Lease up, so that no one waits for
        # it to run out.
        survivor = procs_of[other]
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=15) == 0
        log = procs.output(survivor)
        for s in SAN_ERRORS:
            assert s not in log, log
        assert "Lease default/%s released" % lease_name in log, log[-3000:]
        assert get(k, "lease", lease_name)["spec"]["holderIdentity"] == ""
    finally:
        k.api.stop()


def test_lease_released_after_a_renewal_in_flight(procs, tmp_path):
    """SIGTERM while a renewal of the Lease is on its way: the API server
    has applied it, its answer has not come back, and the release written
    over the Lease as last seen meets a conflict (409). The holder reads
    the Lease again, finds it still its own, and gives it up."""
    k = Kube(procs, tmp_path, nsims=1)
    try:
        k.apply_seed()
        gw = k.start_gateway("--leader-elect", "--leader-elect-lease-duration", "3s",
                             "--leader-elect-renew-deadline", "2s",
                             "--leader-elect-retry-period", "300ms", wait=False)
        lease_name = "infergate-infergate.dev-gateway-controller"
        leases = k.api.resource("coordination.k8s.io", "v1", "leases")
        wait_for(lambda: "holds the Lease" in procs.output(gw), "leadership")
        k.api.put_lag["leases"] = 0.5
        rv = k.api.get(leases, "default", lease_name)["metadata"]["resourceVersion"]
        wait_for(lambda: k.api.get(leases, "default", lease_name)["metadata"]
                 ["resourceVersion"] != rv, "a renewal applied")
        gw.send_signal(signal.SIGTERM)  # its answer is still 0.5 s away
        assert gw.wait(timeout=15) == 0
        log = procs.output(gw)
        assert "Lease default/%s released" % lease_name in log, log[-3000:]
        assert k.api.get(leases, "default", lease_name)["spec"]["holderIdentity"] == ""
    finally:
        k.api.stop()


def test_client_certificate_and_inline_data(kube):
    """A kubeconfig with no token but a client certificate, everything
    inline (certificate-authority-data, client-certificate-data,
    client-key-data): the server knows the client by its certificate."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])

    def read(name):
        with open(os.path.join(k.api.dir, name), "rb") as f:
            return f.read()
    kc = k.api.kubeconfig(os.path.join(k.tmp, "cert-kubeconfig"), token=None,
                          ca_data=read("ca.crt"), cert_data=read("client.crt"),
                          key_data=read("client.key"))
    k.start_gateway(kubeconfig=kc)
    k.wait_endpoints([k.endpoint(0)])
    status, _, r = served_by(k)
    assert status == 200, r
    users = {r[4] for r in k.api.requests_by("infergate")}
    assert users == {"admin"}, users
    k.stop()


def kubeconfig_with(k, name, **cluster):
    """The stand-in's kubeconfig with more fields in its cluster."""
    path = k.api.kubeconfig(os.path.join(k.tmp, name))
    with open(path) as f:
        cfg = json.load(f)
    cfg["clusters"][0]["cluster"].update(cluster)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def test_tls_server_name(kube):
    """A cluster's tls-server-name is the name the server's certificate is
    checked against, in place of the server URL's host (kubectl's and
    client-go's ServerName): a name the certificate has works, one it
    lacks is refused although the URL's address is in the certificate;
    the requests still name the server's address as Host."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    bad = kubeconfig_with(k, "wrong-name", **{"tls-server-name": "wrong.example"})
    k.start_gateway(kubeconfig=bad, wait=False)
    time.sleep(1.5)
    assert not k.infergate_requests(), k.infergate_requests()
    lines = [l for l in k.log().splitlines() if "error kube:" in l]
    assert len(lines) == 1 and k.api.hostport in lines[0], k.log()
    k.gw.send_signal(signal.SIGTERM)
    k.gw.wait(timeout=15)
    good = kubeconfig_with(k, "right-name", **{"tls-server-name": "localhost"})
    k.start_gateway(kubeconfig=good)
    k.wait_endpoints([k.endpoint(0)])
    status, _, r = served_by(k)
    assert status == 200, r
    k.stop()


def test_proxy_url(kube, procs):
    """A cluster's proxy-url: every request goes through that HTTP proxy
    (CONNECT to the server), as client-go sends them."""
    import threading
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    phost = unique_loopback()
    lsock = socket.socket()
    lsock.bind((phost, 0))
    lsock.listen(16)
    seen = []

    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    break
                head += d
            line = head.split(b"\r\n")[0].decode()
            seen.append(line)
            target = line.split()[1]
            host, port = target.rsplit(":", 1)
            up = socket.create_connection((host, int(port)))
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            threading.Thread(target=pump, args=(c, up), daemon=True).start()
            threading.Thread(target=pump, args=(up, c), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        kc = kubeconfig_with(k, "proxied",
                             **{"proxy-url": "http://%s:%d" % lsock.getsockname()})
        k.start_gateway(kubeconfig=kc)
        k.wait_endpoints([k.endpoint(0)])
        assert seen and all(l == "CONNECT %s HTTP/1.1" % k.api.hostport for l in seen), seen
        k.stop()
    finally:
        lsock.close()


def test_untrusted_server_certificate(kube, tmp_path):
    """TLS is verified: a CA that did not sign the server's certificate
    gives one error line naming the server, and nothing is served."""
    from kubeapi import make_certs
    k = kube
    k.apply_seed()
    other = os.path.join(str(tmp_path), "other-ca")
    make_certs(other, k.api.host)
    kc = k.api.kubeconfig(os.path.join(k.tmp, "bad-ca"), ca_file=os.path.join(other, "ca.crt"))
    k.start_gateway(kubeconfig=kc, wait=False)
    time.sleep(1.5)
    lines = [l for l in k.log().splitlines() if "error kube:" in l]
    assert len(lines) == 1, k.log()
    assert k.api.hostport in lines[0] and "certificate" in lines[0].lower(), lines
    assert not k.infergate_requests()  # no request got through
    with pytest.raises(OSError):
        socket.create_connection((k.host, k.port), timeout=0.5).close()
    k.stop()


def test_in_cluster_service_account_token_rotation(kube, tmp_path):
    """Without a kubeconfig anywhere, in a pod: KUBERNETES_SERVICE_HOST/PORT
    and the service account's token, CA and namespace. The kubelet rotates
    the token: the new one is used without a restart."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    sa = os.path.join(str(tmp_path), "sa")
    os.makedirs(sa)
    shutil.copy(os.path.join(k.api.dir, "ca.crt"), os.path.join(sa, "ca.crt"))

    def write_token(t):
        tmp = os.path.join(sa, ".token")
        with open(tmp, "w") as f:
            f.write(t + "\n")
        os.replace(tmp, os.path.join(sa, "token"))
    write_token("sa-token-1")
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write("default")
    k.api.tokens = {"test-token": "tester", "sa-token-1": "sa-1"}
    home = os.path.join(str(tmp_path), "home")
    os.makedirs(home)
    env = dict(os.environ, KUBERNETES_SERVICE_HOST=k.api.host,
               KUBERNETES_SERVICE_PORT=str(k.api.port), INFERGATE_SERVICEACCOUNT_DIR=sa,
               HOME=home)
    env.pop("KUBECONFIG", None)
    k.gw = k.procs.start("gateway", "--kube", "--bind", k.host, "--admin",
                         "%s:%d" % (k.admin_host, k.admin_port), "--workers", "1",
                         name="gateway", env=env)
    wait_http(k.admin + "/healthz", proc=k.gw)
    k.wait_listening()
    assert "(in-cluster service account)" in k.log()
    # As with projected tokens, the new token is valid before the file
    # changes and the old one for a while after.
    k.api.tokens["sa-token-2"] = "sa-2"
    write_token("sa-token-2")
    time.sleep(0.3)
    k.api.tokens = {"test-token": "tester", "sa-token-2": "sa-2"}
    k.api.end_watches()
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)], timeout=FOLLOW_S + 2)
    assert any(r[4] == "sa-2" for r in k.api.requests_by("infergate"))
    assert "HTTP 401" not in k.log()
    k.stop()


def test_namespace_flag(kube):
    """--namespace NS: only that namespace is watched (namespaced paths) and
    Gateways elsewhere are not served."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n")
    team_port = free_port(k.host)
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: team-gw
  namespace: team
spec:
  gatewayClassName: kgateway
  listeners:
  - name: http
    protocol: HTTP
    port: %d
""" % team_port)
    k.start_gateway("--namespace", "default")
    k.wait_endpoints([k.endpoint(0)])
    with pytest.raises(OSError):
        socket.create_connection((k.host, team_port), timeout=0.5).close()
    paths = [p for _, p, _ in k.infergate_requests()]
    assert any(p.startswith("/api/v1/namespaces/default/pods?") for p in paths), paths
    assert not any(p.startswith("/api/v1/pods") for p in paths), paths
    k.stop()


def test_pods_nothing_selects_are_not_loaded(kube):
    """Only Pods a pool or Service selects become configuration: a Pod of
    another app (whose label value the loader would refuse) is not
    loaded at all."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    time.sleep(0.5)
    reloads = k.log().count("reloading configuration")
    k.apply(POD.replace("app: qwen-pool", "app: other\n    tier: '-not a label value-'")
            % "unrelated")
    time.sleep(1.5)
    # The Pod arrived (a reload ran) but loaded nothing new.
    assert k.log().count("reloading configuration") == reloads + 1
    assert "kube:Pod/default/unrelated" not in k.log()
    assert k.endpoints() == [k.endpoint(0)]
    k.stop()


def test_https_listener_and_service_backend(kube, tmp_path):
    """A TLS Secret created with kubectl serves an HTTPS listener (only
    Secrets of type kubernetes.io/tls are watched), and an HTTPRoute to a
    core Service reaches the addresses of its EndpointSlice."""
    import base64
    import http.client
    import ssl
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    d = str(tmp_path)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "tls.key", "-out",
                    "tls.crt", "-days", "1", "-subj", "/CN=llm.example.com",
                    "-addext", "subjectAltName=DNS:llm.example.com"],
                   cwd=d, check=True, capture_output=True)

    def b64(name):
        with open(os.path.join(d, name), "rb") as f:
            return base64.b64encode(f.read()).decode()
    k.apply(json.dumps({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "llm-cert", "namespace": "default"},
                        "type": "kubernetes.io/tls",
                        "data": {"tls.crt": b64("tls.crt"), "tls.key": b64("tls.key")}}))
    gateway = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: infergate
  listeners:
  - name: https
    protocol: HTTPS
    port: %d
    hostname: llm.example.com
    tls:
      certificateRefs:
      - name: llm-cert
""" % k.port
    k.apply(gateway + """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: to-service
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - name: vllm
      port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: vllm
spec:
  ports:
  - name: http
    port: 80
    targetPort: %d
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: vllm-1
  labels:
    kubernetes.io/service-name: vllm
addressType: IPv4
ports:
- name: http
  port: %d
endpoints:
- addresses: [%s]
  conditions: {ready: true}
""" % (k.target_port, k.target_port, k.sim_hosts[1]))
    k.start_gateway()
    assert any("fieldSelector=type%3Dkubernetes.io%2Ftls" in p
               for _, p, _ in k.infergate_requests("secrets")), k.infergate_requests("secrets")
    ctx = ssl.create_default_context(cafile=os.path.join(d, "tls.crt"))
    body = json.dumps({"model": "Qwen/Qwen2.5-1.5B-Instruct", "prompt": "hi",
                       "max_tokens": 3})

    def post():
        conn = http.client.HTTPSConnection(k.host, k.port, context=ctx, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection((k.host, k.port), timeout=10),
                                    server_hostname="llm.example.com")
        conn.request("POST", "/v1/completions", body=body,
                     headers={"Host": "llm.example.com", "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data
    st, data = post()
    assert st == 200, data
    assert json.loads(data)["usage"]["completion_tokens"] == 3
    # A BackendTLSPolicy for the Service whose CA is a ConfigMap that does
    # not exist yet: the policy is not accepted (NoValidCACertificate,
    # InvalidCACertificateRef), and the backend is refused (500) rather
    # than reached in clear text.
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: vllm-tls
spec:
  targetRefs:
  - {group: "", kind: Service, name: vllm}
  validation:
    caCertificateRefs:
    - {group: "", kind: ConfigMap, name: vllm-ca}
    hostname: vllm.example.com
""")

    def policy_conditions(accepted):
        def check():
            p = get(k, "backendtlspolicy", "vllm-tls")
            ours = [a for a in p.get("status", {}).get("ancestors", [])
                    if a["controllerName"] == "infergate.dev/gateway-controller"]
            c = {x["type"]: x for x in ours[0]["conditions"]} if ours else {}
            if c.get("Accepted", {}).get("status") != accepted:
                return None
            assert ours[0]["ancestorRef"]["name"] == "gw", ours
            return c
        return check
    pc = wait_for(policy_conditions("False"), "BackendTLSPolicy not Accepted")
    assert pc["Accepted"]["reason"] == "NoValidCACertificate", pc
    assert pc["ResolvedRefs"]["status"] == "False", pc
    assert pc["ResolvedRefs"]["reason"] == "InvalidCACertificateRef", pc

    def refused():
        r = get(k, "httproute", "to-service")
        ours = [p for p in r.get("status", {}).get("parents", [])
                if p["controllerName"] == "infergate.dev/gateway-controller"]
        c = {x["type"]: x for x in ours[0]["conditions"]} if ours else {}
        return c if c.get("ResolvedRefs", {}).get("status") == "False" else None
    rc = wait_for(refused, "ResolvedRefs False")
    assert rc["ResolvedRefs"]["reason"] == "UnsupportedProtocol", rc
    st, data = post()
    assert st == 500, data
    # The ConfigMap arrives (it is watched): the policy is accepted, and
    # the gateway now speaks TLS to the pod, which speaks clear text: the
    # handshake fails and the client gets a 5xx, not a clear-text answer.
    with open(os.path.join(d, "tls.crt")) as f:
        k.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "vllm-ca"}, "data": {"ca.crt": f.read()}}))
    pc = wait_for(policy_conditions("True"), "BackendTLSPolicy Accepted")
    assert pc["ResolvedRefs"]["status"] == "True", pc
    st, data = post()
    assert st in (502, 503), data
    # A change the loader refuses (a wildcard hostname; this API server
    # checks no CRD schema): the policy is left out of the configuration,
    # but its targets stay refused (500) instead of going back to clear
    # text (200 from this pod).
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: vllm-tls
spec:
  targetRefs:
  - {group: "", kind: Service, name: vllm}
  validation:
    caCertificateRefs:
    - {group: "", kind: ConfigMap, name: vllm-ca}
    hostname: "*.example.com"
""")
    pc = wait_for(policy_conditions("False"), "BackendTLSPolicy left out")
    assert pc["Accepted"]["reason"] == "Invalid", pc
    st, data = post()
    assert st == 500, data
    # Client certificate validation (spec.tls.frontend) whose CA ConfigMap
    # does not exist: the HTTPS listener is not accepted
    # (NoValidCACertificate), its ResolvedRefs names the reference, and it
    # is no longer programmed (GatewayFrontendClientCertificateValidation).
    k.apply(gateway + """  tls:
    frontend:
      default:
        validation:
          caCertificateRefs:
          - {group: "", kind: ConfigMap, name: client-ca}
    backend:
      clientCertificateRef: {name: no-such-secret}
""")

    def listener_refused():
        g = get(k, "gateway", "gw")
        ls = g.get("status", {}).get("listeners", [])
        c = {x["type"]: x for x in ls[0]["conditions"]} if ls else {}
        return c if c.get("Accepted", {}).get("status") == "False" else None
    lc = wait_for(listener_refused, "listener not Accepted")
    assert lc["Accepted"]["reason"] == "NoValidCACertificate", lc
    assert lc["ResolvedRefs"]["status"] == "False", lc
    assert lc["ResolvedRefs"]["reason"] == "InvalidCACertificateRef", lc
    assert "client-ca" in lc["ResolvedRefs"]["message"], lc
    assert lc["Programmed"]["status"] == "False", lc
    # The Gateway's own client certificate (spec.tls.backend) names no
    # Secret: the Gateway's ResolvedRefs says so.
    gc = {x["type"]: x for x in get(k, "gateway", "gw")["status"]["conditions"]}
    assert gc["ResolvedRefs"]["status"] == "False", gc
    assert gc["ResolvedRefs"]["reason"] == "InvalidClientCertificateRef", gc
    k.stop()


TLS_GATEWAY = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: infergate
  listeners:
  - name: https
    protocol: HTTPS
    port: %(port)d
    hostname: llm.example.com
    tls:
      certificateRefs:
      - name: srv
%(listener)s  tls:
    frontend:
%(frontend)s%(backend)s"""


def test_gateway_tls_references_read(kube, tmp_path):
    """The Secrets and ConfigMaps a Gateway names beside its listeners'
    certificates are read as in file mode: the CA ConfigMaps of client
    certificate validation (spec.tls.frontend default and perPort, a
    listener's tls.frontendValidation) and the Secret of the certificate it
    presents to backends (spec.tls.backend, and spec.backendTLS of Gateway
    API v1.2-v1.3). A client with a certificate the CA signed is served
    through a backend that requires the Gateway's own client certificate;
    InsecureFrontendValidationMode comes and goes with
    AllowInsecureFallback (Gateway API v1.5.0 on)."""
    import base64
    import http.client
    import ssl
    from test_backend_tls import TLSPod, make_cert
    from test_client_certs import make_pki
    k = kube
    d = str(tmp_path)
    make_pki(d)
    pod_crt, pod_key = make_cert(d, "pod", "pod.example.com")
    tpod = TLSPod(k.sim_hosts[1], free_port(k.sim_hosts[1]), pod_crt, pod_key,
                  client_ca=os.path.join(d, "ca.crt"))

    def read(name):
        with open(os.path.join(d, name)) as f:
            return f.read()

    def tls_secret(name, crt, key):
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": name},
                "data": {"tls.crt": base64.b64encode(read(crt).encode()).decode(),
                         "tls.key": base64.b64encode(read(key).encode()).decode()}}

    def ca_configmap(name, crt):
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {"ca.crt": read(crt)}}
    # The Gateway presents the client certificate the CA signed to the pod.
    k.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        tls_secret("srv", "srv.crt", "srv.key"),
        tls_secret("gw-client", "client.crt", "client.key"),
        tls_secret("gw-client-old", "client.crt", "client.key"),
        ca_configmap("client-ca", "ca.crt"), ca_configmap("client-ca-port", "ca.crt"),
        ca_configmap("client-ca-listener", "ca.crt"), ca_configmap("pod-ca", "pod.crt")]}))
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    valid_only = """      default:
        validation:
          caCertificateRefs:
          - {group: "", kind: ConfigMap, name: client-ca}
"""
    backend = """    backend:
      clientCertificateRef: {name: gw-client}
"""
    k.apply((TLS_GATEWAY % {"port": k.port, "listener": "", "frontend": valid_only,
                            "backend": backend}) + """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: to-pod
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - name: svc
      port: 443
---
apiVersion: v1
kind: Service
metadata:
  name: svc
spec:
  ports:
  - {name: btls, port: 443, targetPort: %d, appProtocol: HTTPS}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-1
  labels:
    kubernetes.io/service-name: svc
addressType: IPv4
ports:
- {name: btls, port: %d}
endpoints:
- addresses: [%s]
  conditions: {ready: true}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: p
spec:
  targetRefs:
  - {group: "", kind: Service, name: svc}
  validation:
    caCertificateRefs:
    - {group: "", kind: ConfigMap, name: pod-ca}
    hostname: pod.example.com
""" % (tpod.httpd.server_address[1], tpod.httpd.server_address[1], k.sim_hosts[1]))
    k.start_gateway()

    def call(cert):
        """The status of GET /v1/models with the client certificate
        `cert` (or none), or the name of the ssl error's class."""
        ctx = ssl.create_default_context(cafile=os.path.join(d, "srv.crt"))
        if cert:
            ctx.load_cert_chain(os.path.join(d, cert + ".crt"), os.path.join(d, cert + ".key"))
        conn = http.client.HTTPConnection(k.host, k.port, timeout=10)
        try:
            conn.sock = ctx.wrap_socket(socket.create_connection((k.host, k.port), timeout=10),
                                        server_hostname="llm.example.com")
            conn.request("GET", "/v1/models", headers={"Host": "llm.example.com"})
            r = conn.getresponse()
            r.read()
            return r.status
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            return type(e).__name__
        finally:
            conn.close()

    def gateway_conditions(pred):
        def check():
            c = conditions(get(k, "gateway", "gw"))
            return c if c and pred(c) else None
        return check
    assert call("client") == 200, k.log()
    assert tpod.peers == ["client"], tpod.peers
    assert call(None) != 200
    gc = wait_for(gateway_conditions(lambda c: "ResolvedRefs" in c), "Gateway status")
    assert gc["ResolvedRefs"]["status"] == "True", gc
    assert (gc["Accepted"]["status"], gc["Accepted"]["reason"]) == ("True", "Accepted"), gc
    assert "InsecureFrontendValidationMode" not in gc, gc
    # The port's own validation, AllowInsecureFallback, and the client
    # certificate where Gateway API v1.2-v1.3 put it.
    k.apply(TLS_GATEWAY % {"port": k.port, "listener": "", "frontend": valid_only + """\
      perPort:
      - port: %d
        tls:
          validation:
            mode: AllowInsecureFallback
            caCertificateRefs:
            - {group: "", kind: ConfigMap, name: client-ca-port}
""" % k.port, "backend": """  backendTLS:
    clientCertificateRef: {name: gw-client-old}
"""})
    gc = wait_for(gateway_conditions(lambda c: "InsecureFrontendValidationMode" in c),
                  "InsecureFrontendValidationMode")
    insecure = gc["InsecureFrontendValidationMode"]
    assert (insecure["status"], insecure["reason"]) == ("True", "ConfigurationChanged"), gc
    assert gc["ResolvedRefs"]["status"] == "True", gc
    assert call(None) == 200
    assert call("client") == 200
    assert tpod.peers == ["client"] * 3, tpod.peers
    assert conditions(get(k, "gateway", "gw"), ("listeners", 0))["Accepted"]["status"] == "True"
    # The listener's own validation (Gateway API v1.1-v1.3), AllowValidOnly
    # again: the condition is removed.
    k.apply(TLS_GATEWAY % {"port": k.port, "listener": """\
      frontendValidation:
        caCertificateRefs:
        - {group: "", kind: ConfigMap, name: client-ca-listener}
""", "frontend": valid_only, "backend": backend})
    wait_for(gateway_conditions(lambda c: "InsecureFrontendValidationMode" not in c),
             "InsecureFrontendValidationMode removed")
    assert call(None) != 200
    assert call("client") == 200
    assert conditions(get(k, "gateway", "gw"), ("listeners", 0))["Accepted"]["status"] == "True"
    tpod.stop()
    k.stop()


def test_configmaps_kept_slim(kube):
    """Every ConfigMap of the cluster is watched (a BackendTLSPolicy may name
    any of them), but the gateway keeps only their ca.crt, and of every
    object neither managedFields nor kubectl's last-applied copy: 12
    ConfigMaps of 1 MiB (twice that with kubectl's annotation) add less
    than 12 MiB to its RSS, where keeping them added 26 (53 for 24)."""
    k = kube
    k.apply_seed()
    # Under ASan freed memory waits in a quarantine: the RSS would count
    # every event's parse.
    env = dict(os.environ, ASAN_OPTIONS=":".join(
        o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if o))
    k.start_gateway(env=env)
    time.sleep(0.5)
    before = rss_kib(k.gw.pid)
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    big = "x" * (1 << 20)
    for i in range(0, 12, 6):
        k.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [{
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big-%d" % n},
            "data": {"big": big, "ca.crt": pem}} for n in range(i, i + 6)]}))
    assert k.infergate_requests("configmaps", watch=True)
    time.sleep(1.0)  # the watch events are read as they come
    grown = rss_kib(k.gw.pid) - before
    assert k.gw.poll() is None, k.log()
    print("\nConfigMaps: RSS grew by %d KiB" % grown)
    assert grown < 12 * 1024, grown
    k.stop()


def test_lists_read_page_by_page(kube):
    """A server that answers lists in pages: the gateway follows the
    continue tokens (with the same field selector on every page) and sees
    every object."""
    k = kube
    k.api.page_size = 1
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    for name, typ in (("a-tls", "kubernetes.io/tls"), ("b-opaque", "Opaque"),
                      ("c-tls", "kubernetes.io/tls")):
        k.apply(json.dumps({"apiVersion": "v1", "kind": "Secret", "type": typ,
                            "metadata": {"name": name}, "stringData": {"x": "y"}}))
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)])
    pods = k.infergate_requests("pods", watch=False)
    assert len(pods) >= 2 and any("continue=" in p for _, p, _ in pods), pods
    secrets = k.infergate_requests("secrets")
    assert any("continue=" in p for _, p, _ in secrets), secrets
    assert all("fieldSelector=type%3Dkubernetes.io%2Ftls" in p for _, p, _ in secrets), secrets
    k.stop()


def test_route_hostname_and_listener_conflict_statuses(kube):
    """An HTTPRoute whose hostnames meet no listener's is not Accepted
    (NoMatchingListenerHostname); one whose parentRef names no listener
    (NoMatchingParent); HTTP and HTTPS listeners of two Gateways on one
    port are Conflicted (ProtocolConflict) and not Programmed."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    shared = free_port(k.host)
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: named
spec:
  gatewayClassName: infergate
  listeners:
  - name: web
    protocol: HTTP
    port: %d
    hostname: llm.example.com
  - name: clash
    protocol: HTTP
    port: %d
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: other
spec:
  gatewayClassName: infergate
  listeners:
  - name: tls
    protocol: HTTPS
    port: %d
    tls:
      certificateRefs:
      - name: missing-cert
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: elsewhere
spec:
  parentRefs:
  - name: named
    sectionName: web
  hostnames: ["chat.other.org"]
  rules:
  - backendRefs:
    - name: svc
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: no-section
spec:
  parentRefs:
  - name: named
    sectionName: nope
  rules:
  - backendRefs:
    - name: svc
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: wrong-port
spec:
  parentRefs:
  - name: named
    port: 81
  rules:
  - backendRefs:
    - name: svc
      port: 80
""" % (k.port, shared, shared))
    k.start_gateway()

    def accepted(route):
        st = get(k, "httproute", route).get("status") or {}
        for p in st.get("parents", []):
            return {c["type"]: c for c in p["conditions"]}["Accepted"]
    a = wait_for(lambda: accepted("elsewhere"), "elsewhere status")
    assert (a["status"], a["reason"]) == ("False", "NoMatchingListenerHostname"), a
    a = wait_for(lambda: accepted("no-section"), "no-section status")
    assert (a["status"], a["reason"]) == ("False", "NoMatchingParent"), a
    # A parentRef port no listener has (HTTPRouteDestinationPortMatching).
    a = wait_for(lambda: accepted("wrong-port"), "wrong-port status")
    assert (a["status"], a["reason"]) == ("False", "NoMatchingParent"), a

    def listener(gw, name):
        st = get(k, "gateway", gw).get("status") or {}
        for l in st.get("listeners", []):
            if l["name"] == name:
                return {c["type"]: c for c in l["conditions"]}
    for gw, name in (("named", "clash"), ("other", "tls")):
        c = wait_for(lambda: listener(gw, name), "%s/%s status" % (gw, name))
        assert (c["Conflicted"]["status"], c["Conflicted"]["reason"]) == \
            ("True", "ProtocolConflict"), c
        assert c["Programmed"]["status"] == "False"
    c = listener("named", "web")
    assert c["Conflicted"]["status"] == "False" and c["Programmed"]["status"] == "True"
    # attachedRoutes counts the routes Accepted on the listener (Gateway API
    # v1.5.0 on): neither the route of a listener name nor that of a port
    # the Gateway lacks, nor the one whose hostnames miss.
    st = get(k, "gateway", "named")["status"]
    assert {l["name"]: l["attachedRoutes"] for l in st["listeners"]} == {"web": 0, "clash": 0}, st
    k.stop()


def test_same_hostname_on_two_gateways_conflicts(kube):
    """Two Gateways on one port with a listener each for the same protocol
    and hostname (Gateway API §3.2): both listeners are Conflicted
    (HostnameConflict) and not Programmed -- neither wins --, each Gateway
    says ListenersNotValid and stays Accepted for its other listeners,
    which are still served; listeners told apart by hostname are not in
    conflict."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: first}
spec:
  gatewayClassName: infergate
  listeners:
  - {name: shared, protocol: HTTP, port: %d, hostname: shared.example}
  - {name: own, protocol: HTTP, port: %d, hostname: first.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: second}
spec:
  gatewayClassName: infergate
  listeners:
  - {name: shared, protocol: HTTP, port: %d, hostname: shared.example}
  - {name: own, protocol: HTTP, port: %d, hostname: second.example}
""" % ((k.port,) * 4))
    k.start_gateway()

    def listeners(gw):
        st = get(k, "gateway", gw).get("status") or {}
        ls = {l["name"]: {c["type"]: c for c in l["conditions"]}
              for l in st.get("listeners", [])}
        return ls if len(ls) == 2 else None
    for gw in ("first", "second"):
        ls = wait_for(lambda: listeners(gw), "%s listeners" % gw)
        c = ls["shared"]
        assert (c["Conflicted"]["status"], c["Conflicted"]["reason"]) == \
            ("True", "HostnameConflict"), (gw, c)
        assert c["Programmed"]["status"] == "False", (gw, c)
        c = ls["own"]
        assert (c["Conflicted"]["status"], c["Conflicted"]["reason"]) == \
            ("False", "NoConflicts"), (gw, c)
        assert c["Programmed"]["status"] == "True", (gw, c)
        g = conditions(get(k, "gateway", gw))
        assert (g["Accepted"]["status"], g["Accepted"]["reason"]) == \
            ("True", "ListenersNotValid"), (gw, g)
        assert g["Programmed"]["status"] == "True", (gw, g)
    assert "HostnameConflict" in k.log()
    k.stop()


def test_gateway_addresses_and_parameters(kube):
    """spec.addresses (GatewayStaticAddresses, GatewayAddressEmpty), as
    Gateway API's conformance test walks them: an address type infergate
    does not serve makes the Gateway not Accepted (UnsupportedAddress); an
    IP its listeners do not receive (here, not the --bind address) leaves it
    Accepted but not Programmed (AddressNotUsable) and not served; with only
    the usable one it is served and status.addresses lists it. An address
    without a value gets the gateway's own. A Gateway whose
    infrastructure.parametersRef names parameters (which infergate takes
    none of) is not accepted (InvalidParameters); so is a GatewayClass of
    ours that does, and its Gateways are not served."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    empty_port = free_port(k.host)
    params_port = free_port(k.host)
    class_port = free_port(k.host)

    def gateway(addresses):
        return """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: static}
spec:
  gatewayClassName: infergate
  addresses:
%s
  listeners:
  - {name: http, port: %d, protocol: HTTP}
""" % ("\n".join("  - " + a for a in addresses), k.port)
    invalid = '{type: test/fake-invalid-type, value: "fake address teehee!"}'
    unusable = "{value: 192.0.2.10}"
    usable = "{type: IPAddress, value: %s}" % k.host
    k.apply(gateway([invalid, unusable, usable]) + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: empty}
spec:
  gatewayClassName: infergate
  addresses:
  - type: IPAddress
  listeners:
  - {name: http, port: %d, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: params}
spec:
  gatewayClassName: infergate
  infrastructure:
    labels: {team: llm}
    parametersRef: {group: example.com, kind: GatewayParameters, name: p}
  listeners:
  - {name: http, port: %d, protocol: HTTP}
""" % (empty_port, params_port))
    # A GatewayClass of ours that names parameters: not accepted, nor are
    # its Gateways served.
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: with-params}
spec:
  controllerName: infergate.dev/gateway-controller
  parametersRef: {group: example.com, kind: ClassParameters, name: p}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: class-params}
spec:
  gatewayClassName: with-params
  listeners:
  - {name: http, port: %d, protocol: HTTP}
""" % class_port)
    k.start_gateway(wait=False)

    def latest(name, ctype, status):
        def check():
            gw = get(k, "gateway", name)
            c = conditions(gw).get(ctype)
            if not c or c["status"] != status or \
                    c.get("observedGeneration") != gw["metadata"].get("generation"):
                return None
            return gw
        return check

    gw = wait_for(latest("static", "Accepted", "False"), "static not Accepted")
    c = conditions(gw)
    assert c["Accepted"]["reason"] == "UnsupportedAddress", c
    assert "test/fake-invalid-type" in c["Accepted"]["message"], c
    assert not gw["status"].get("addresses"), gw["status"]
    with pytest.raises(OSError):
        socket.create_connection((k.host, k.port), timeout=0.5).close()

    k.apply(gateway([unusable, usable]))
    gw = wait_for(latest("static", "Accepted", "True"), "static Accepted")
    c = conditions(gw)
    assert (c["Programmed"]["status"], c["Programmed"]["reason"]) == \
        ("False", "AddressNotUsable"), c
    assert "192.0.2.10" in c["Programmed"]["message"], c
    with pytest.raises(OSError):
        socket.create_connection((k.host, k.port), timeout=0.5).close()

    k.apply(gateway([usable]))
    gw = wait_for(latest("static", "Programmed", "True"), "static Programmed")
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": k.host}], gw["status"]
    l = {x["type"]: x for x in gw["status"]["listeners"][0]["conditions"]}
    assert l["Accepted"]["status"] == "True" and l["ResolvedRefs"]["status"] == "True", l
    k.wait_listening()

    gw = wait_for(latest("empty", "Programmed", "True"), "empty Programmed")
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": k.host}], gw["status"]
    socket.create_connection((k.host, empty_port), timeout=2).close()

    # Parameters infergate does not take: not accepted, not served.
    gw = wait_for(latest("params", "Accepted", "False"), "params not Accepted")
    assert conditions(gw)["Accepted"]["reason"] == "InvalidParameters", gw["status"]
    with pytest.raises(OSError):
        socket.create_connection((k.host, params_port), timeout=0.5).close()
    gc = wait_for(lambda: conditions(get(k, "gatewayclass", "with-params")).get("Accepted"),
                  "with-params status")
    assert (gc["status"], gc["reason"]) == ("False", "InvalidParameters"), gc
    assert "ClassParameters" in gc["message"], gc
    with pytest.raises(OSError):
        socket.create_connection((k.host, class_port), timeout=0.5).close()
    k.stop()


def test_grpcroute_statuses(kube):
    """GRPCRoute (Gateway API v1) read from the API server and its status
    written back: Accepted with its Service backend resolved (no
    appProtocol: h2c, as a GRPCRoute says); not allowed by a listener whose
    allowedRoutes.kinds names HTTPRoute alone (whose supportedKinds then
    leave GRPCRoute out); and an HTTPRoute on its hostname refused
    (HostnameConflict), the GRPCRoute being first by name at equal age or
    older."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    web_port = free_port(k.host)
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners:
  - {name: http, port: %d, protocol: HTTP}
  - name: web
    port: %d
    protocol: HTTP
    allowedRoutes: {kinds: [{kind: HTTPRoute}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: a-grpc}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: test.Echo}}]
    backendRefs: [{name: echo, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: b-grpc}
spec:
  parentRefs: [{name: gw, sectionName: web}]
  rules:
  - backendRefs: [{name: echo, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: z-http}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [grpc.example.com]
  rules:
  - backendRefs: [{name: echo, port: 9000}]
""" % (k.port, web_port))
    k.start_gateway(wait=False)

    def parent_conds(kind, name):
        def check():
            ps = get(k, kind, name).get("status", {}).get("parents", [])
            return {c["type"]: c for c in ps[0]["conditions"]} if ps else None
        return check

    a = wait_for(parent_conds("grpcroute", "a-grpc"), "a-grpc status")
    assert a["Accepted"]["status"] == "True", a
    assert (a["ResolvedRefs"]["status"], a["ResolvedRefs"]["reason"]) == \
        ("True", "ResolvedRefs"), a
    b = wait_for(parent_conds("grpcroute", "b-grpc"), "b-grpc status")
    assert (b["Accepted"]["status"], b["Accepted"]["reason"]) == \
        ("False", "NotAllowedByListeners"), b
    z = wait_for(parent_conds("httproute", "z-http"), "z-http status")
    assert (z["Accepted"]["status"], z["Accepted"]["reason"]) == \
        ("False", "HostnameConflict"), z
    gw = wait_for(lambda: (lambda g: g if g.get("status", {}).get("listeners") else None)(
        get(k, "gateway", "gw")), "gw listeners")
    ls = {l["name"]: l for l in gw["status"]["listeners"]}
    assert ls["http"]["attachedRoutes"] == 1, ls["http"]
    assert [x["kind"] for x in ls["http"]["supportedKinds"]] == ["HTTPRoute", "GRPCRoute"]
    assert [x["kind"] for x in ls["web"]["supportedKinds"]] == ["HTTPRoute"]
    assert ls["web"]["attachedRoutes"] == 0, ls["web"]
    k.stop()


def test_extension_ref_filter_status_and_500(kube):
    """An HTTPRoute with an ExtensionRef filter (infergate has no filter
    extensions) is Accepted, not left out for another route to catch its
    traffic: ResolvedRefs False with InvalidKind (the Gateway API's reason
    for a reference to an unsupported group/kind), and the requests the
    filter would process are answered 500 (spec: never skip the filter)."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners:
  - {name: http, port: %d, protocol: HTTP}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  selector: {app: qwen-pool}
  ports: [{port: 80, targetPort: %d}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ext}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    filters:
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Auth, name: checker}
    backendRefs: [{name: svc, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catch-all}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: svc, port: 80}]
""" % (k.port, k.target_port))
    k.add_pod("p0", k.sim_hosts[0])
    k.start_gateway()

    def parent_conds():
        ps = get(k, "httproute", "ext").get("status", {}).get("parents", [])
        return {c["type"]: c for c in ps[0]["conditions"]} if ps else None
    c = wait_for(parent_conds, "ext status")
    assert (c["Accepted"]["status"], c["Accepted"]["reason"]) == ("True", "Accepted"), c
    assert (c["ResolvedRefs"]["status"], c["ResolvedRefs"]["reason"]) == \
        ("False", "InvalidKind"), c
    assert "ExtensionRef" in c["ResolvedRefs"]["message"], c
    status, _, data = call(k.base, "/v1/completions", seed_body())
    assert status == 500, data
    assert "ExtensionRef" in json.loads(data)["error"]["message"], data
    # The catch-all route still serves what it matches.
    status, _, _ = call(k.base, "/health")
    assert status == 200
    gw = get(k, "gateway", "gw")
    assert gw["status"]["listeners"][0]["attachedRoutes"] == 2, gw["status"]
    k.stop()


def test_listener_set_statuses(kube):
    """ListenerSets (Gateway API v1.5) and an XListenerSet (v1.3-v1.4) of a
    Gateway of ours: the Gateway counts the attached ones
    (attachedListenerSets, and the v1.4 condition for XListenerSets);
    each set says whether it is Accepted and Programmed (NotAllowed from
    another namespace than allowedListeners admits, ListenersNotValid when
    every listener gives way), each listener what a Gateway's has, with
    HostnameConflict or ProtocolConflict where an earlier listener wins;
    routes get a parents entry for the ListenerSet they name; a listener
    of a set serves requests."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    p = k.port

    def lset(kind, name, ns, listeners):
        api = ("gateway.networking.x-k8s.io/v1alpha1" if kind == "XListenerSet"
               else "gateway.networking.k8s.io/v1")
        return ("apiVersion: %s\nkind: %s\nmetadata: {name: %s, namespace: %s}\nspec:\n"
                "  parentRef: {name: gw, namespace: default}\n  listeners:\n%s"
                % (api, kind, name, ns, listeners))
    k.apply("---\n".join([
        """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  allowedListeners: {namespaces: {from: Same}}
  listeners:
  - {name: main, port: %d, protocol: HTTP, hostname: main.com}
  - {name: taken, port: %d, protocol: HTTP, hostname: taken.com}
""" % (p, p),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
        lset("ListenerSet", "ok", "default",
             "  - {name: own, port: %d, protocol: HTTP, hostname: own.com}\n"
             "  - {name: taken, port: %d, protocol: HTTP, hostname: taken.com}\n"
             "  - {name: raw, port: %d, protocol: TCP}\n" % (p, p, p)),
        lset("ListenerSet", "lonely", "default",
             "  - {name: taken, port: %d, protocol: HTTP, hostname: taken.com}\n" % p),
        lset("ListenerSet", "foreign", "other",
             "  - {name: f, port: %d, protocol: HTTP, hostname: f.com}\n" % p),
        lset("XListenerSet", "x", "default",
             "  - {name: xl, port: %d, protocol: HTTP, hostname: x.com}\n" % p),
        """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-set}
spec:
  parentRefs:
  - {kind: ListenerSet, name: ok}
  - {name: gw, sectionName: own}
  rules:
  - backendRefs: [{name: svc, port: 80}]
""",
        """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-foreign}
spec:
  parentRefs:
  - {kind: ListenerSet, name: foreign, namespace: other}
  rules:
  - backendRefs: [{name: svc, port: 80}]
""",
        """apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  ports: [{port: 80, targetPort: %d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-1
  labels: {kubernetes.io/service-name: svc}
addressType: IPv4
ports: [{port: %d}]
endpoints: [{addresses: ["%s"]}]
""" % (k.target_port, k.target_port, k.sim_hosts[0])]))
    k.start_gateway()

    def getns(kind, name, ns="default"):
        return json.loads(k.kubectl("get", kind, name, "-n", ns, "-o", "json"))

    def listeners_of(obj):
        return {l["name"]: l for l in (obj.get("status") or {}).get("listeners", [])}

    ok = wait_for(lambda: (lambda o: o if listeners_of(o) else None)(
        getns("listenersets.gateway.networking.k8s.io", "ok")), "ok status")
    c = conditions(ok)
    assert c["Accepted"]["status"] == "True", c
    assert (c["Programmed"]["status"], c["Programmed"]["reason"]) == ("True", "Programmed"), c
    ls = listeners_of(ok)
    own = {x["type"]: x for x in ls["own"]["conditions"]}
    assert all(own[t]["status"] == "True" for t in ("Accepted", "Programmed", "ResolvedRefs"))
    assert own["Conflicted"]["status"] == "False"
    assert ls["own"]["attachedRoutes"] == 1
    assert ls["own"]["supportedKinds"] == [{"group": "gateway.networking.k8s.io",
                                            "kind": "HTTPRoute"},
                                           {"group": "gateway.networking.k8s.io",
                                            "kind": "GRPCRoute"}]
    for name, why in (("taken", "HostnameConflict"), ("raw", "ProtocolConflict")):
        lc = {x["type"]: x for x in ls[name]["conditions"]}
        assert (lc["Accepted"]["status"], lc["Accepted"]["reason"]) == ("False", why), lc
        assert (lc["Programmed"]["status"], lc["Programmed"]["reason"]) == ("False", why), lc
        assert (lc["Conflicted"]["status"], lc["Conflicted"]["reason"]) == ("True", why), lc
    for name, why in (("lonely", "ListenersNotValid"), ("foreign", "NotAllowed")):
        obj = wait_for(lambda: (lambda o: o if conditions(o).get("Accepted", {}).get(
            "reason") == why else None)(getns("listenersets.gateway.networking.k8s.io", name,
                                             "other" if name == "foreign" else "default")),
            "%s status" % name)
        c = conditions(obj)
        assert (c["Accepted"]["status"], c["Programmed"]["status"]) == ("False", "False"), c
        assert c["Programmed"]["reason"] == why, c
    x = getns("xlistenersets.gateway.networking.x-k8s.io", "x")
    assert conditions(x)["Accepted"]["status"] == "True"
    assert listeners_of(x)["xl"]["port"] == p  # v1alpha1's ListenerEntryStatus has it
    gw = get(k, "gateway", "gw")
    assert gw["status"]["attachedListenerSets"] == 2  # ok and x
    gc = conditions(gw)
    assert (gc["AttachedListenerSets"]["status"], gc["AttachedListenerSets"]["reason"]) == \
        ("True", "ListenerSetsAttached")
    assert set(listeners_of(gw)) == {"main", "taken"}  # its own listeners only
    # Route parents: the ListenerSet accepts; the Gateway has no listener
    # "own" of its own; a ListenerSet that is not attached takes nothing.
    # Statuses are written one object after another: the route's may come
    # after the Gateway's.
    route = wait_for(lambda: (lambda o: o if len((o.get("status") or {}).get("parents", [])) == 2
                              else None)(get(k, "httproute", "via-set")), "via-set status")
    parents = {p["parentRef"]["kind"]: {c["type"]: c for c in p["conditions"]}
               for p in route["status"]["parents"]}
    assert parents["ListenerSet"]["Accepted"]["status"] == "True", parents
    assert parents["Gateway"]["Accepted"]["reason"] == "NoMatchingParent", parents
    foreign = get(k, "httproute", "via-foreign")["status"]["parents"]
    assert [p["parentRef"]["namespace"] for p in foreign] == ["other"]
    assert {c["type"]: c for c in foreign[0]["conditions"]}["Accepted"]["status"] == "False"
    # Served: own.com through the ListenerSet's route; main.com is not its.
    status, _, _ = call("http://%s:%d" % (k.host, p), "/v1/models", None, method="GET",
                        headers={"Host": "own.com"})
    assert status == 200
    status, _, _ = call("http://%s:%d" % (k.host, p), "/v1/models", None, method="GET",
                        headers={"Host": "main.com"})
    assert status == 404
    k.stop()


# A Gateway gw, an HTTPRoute r to the v1 InferencePool v1-pool (its rule's
# matches in %(matches)s) and the pool of the qwen-pool Pods on %(target)d.
V1_GATEWAY = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: infergate
  listeners:
  - name: http
    protocol: HTTP
    port: %(port)d
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: v1-pool
%(matches)s---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: v1-pool
spec:
  selector:
    matchLabels:
      app: qwen-pool
  targetPorts:
  - number: %(target)d
"""


def test_gie_v1_pool(kube):
    """A GIE v1 InferencePool (inference.networking.k8s.io/v1: matchLabels,
    targetPorts, no endpointPickerRef): its Pods are endpoints, the model
    passes through, and its status has parents[] for our Gateway."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    k.apply(V1_GATEWAY % {"port": k.port, "target": k.target_port, "matches": ""})
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    k.start_gateway()
    eps = []
    deadline = time.time() + 5
    while time.time() < deadline and len(eps) != 2:
        status, _, data = call(k.admin, "/pools")
        eps = sorted(e["address"] for p in json.loads(data)["pools"]
                     if p["name"] == "v1-pool" for e in p["endpoints"])
        time.sleep(0.05)
    assert eps == sorted([k.endpoint(0), k.endpoint(1)]), eps
    status, _, r = post_json(k.base, "/v1/completions", seed_body("tweet-summary-0"))
    assert status == 200 and r["model"] == "tweet-summary-0", r
    parents = wait_for(lambda: (get(k, "inferencepools.inference.networking.k8s.io",
                                    "v1-pool").get("status") or {}).get("parents"),
                       "v1 pool parents")
    assert parents[0]["parentRef"]["name"] == "gw"
    assert {c["type"]: c["status"] for c in parents[0]["conditions"]} == {
        "Accepted": "True", "ResolvedRefs": "True"}
    k.stop()


def completion_until(k, model, want):
    """The seed completion for model, sent until it gets status want or
    FOLLOW_S has passed; the last answer."""
    deadline = time.time() + FOLLOW_S
    while True:
        status, headers, r = post_json(k.base, "/v1/completions", seed_body(model))
        if status == want or time.time() > deadline:
            return status, headers, r
        time.sleep(0.05)


def test_base_model_configmaps_followed(kube):
    """Body-based routing's ConfigMaps (label inference.networking.k8s.io/
    bbr-managed: "true") are read from the cluster, with their baseModel
    and adapters (other ConfigMaps keep only ca.crt): a route matching
    X-Gateway-Base-Model-Name takes an adapter once a ConfigMap lists it,
    and no longer once the ConfigMap is deleted."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    k.apply(V1_GATEWAY % {"port": k.port, "target": k.target_port, "matches": """    matches:
    - headers:
      - name: X-Gateway-Base-Model-Name
        value: Qwen/Qwen2.5-1.5B
"""})
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    status, _, r = post_json(k.base, "/v1/completions", seed_body("tweet-summary-1"))
    assert status == 404, r
    k.apply("""apiVersion: v1
kind: ConfigMap
metadata:
  name: qwen-adapters
  labels:
    inference.networking.k8s.io/bbr-managed: "true"
data:
  baseModel: Qwen/Qwen2.5-1.5B
  adapters: |
    - tweet-summary-1
  other: %s
""" % ("x" * 4096))
    status, headers, r = completion_until(k, "tweet-summary-1", 200)
    assert status == 200 and r["model"] == "tweet-summary-1", (r, k.log())
    assert headers.get("x-gateway-destination-endpoint-served") == k.endpoint(0)
    status, _, r = post_json(k.base, "/v1/completions", seed_body("tweet-summary-0"))
    assert status == 404, r
    k.kubectl("delete", "configmap", "qwen-adapters")
    status, _, r = completion_until(k, "tweet-summary-1", 404)
    assert status == 404, r
    k.stop()


V1_POOL_AND_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: inference-gateway
  rules:
  - backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: v1-pool
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: v1-pool
spec:
  selector:
    matchLabels:
      app: qwen-pool
  targetPorts:
  - number: %d
"""


def test_pool_parents_controller_put_back_and_forgotten(kube):
    """InferencePool v1 parents entries carry our controllerName (GIE v1.1
    on; v1alpha2 has no such field); a status someone else changed is put
    back at once, not at the next reload, without a write loop even when
    the server prunes controllerName (a GIE v1.0 CRD); and once the Gateway
    is deleted the pools lose our entries."""
    k = kube
    k.apply_seed()
    k.apply(V1_POOL_AND_ROUTE % k.target_port)
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    v1 = lambda: (get(k, "inferencepools.inference.networking.k8s.io", "v1-pool")
                  .get("status") or {}).get("parents")
    old = lambda: (get(k, "inferencepools.inference.networking.x-k8s.io", "qwen-pool")
                   .get("status") or {}).get("parent")
    parents = wait_for(v1, "v1 pool parents")
    assert parents[0]["controllerName"] == "infergate.dev/gateway-controller", parents
    assert "controllerName" not in wait_for(old, "v1alpha2 pool parent")[0]

    k.api.status_prune["inference.networking.k8s.io/inferencepools"] = ["controllerName"]
    k.patch_status("inference.networking.k8s.io", "v1", "inferencepools", "v1-pool",
                   {"status": {"parents": []}})
    parents = wait_for(v1, "v1 pool parents put back")
    assert parents[0]["parentRef"]["name"] == "inference-gateway"
    assert "controllerName" not in parents[0]
    puts = lambda: [p for m, p, _ in k.infergate_requests() if m == "PUT" and "v1-pool" in p]
    n = len(puts())
    time.sleep(0.5)
    assert len(puts()) == n, puts()

    k.kubectl("delete", "gateway", "inference-gateway")
    wait_for(lambda: v1() == [], "v1 pool parents gone")
    wait_for(lambda: old() == [], "v1alpha2 pool parent gone")
    k.stop()


def test_late_status_reply_keeps_newer_object(kube):
    """A status write answered late, after the watch brought a newer
    object (the user changed the spec meanwhile), does not put the older
    object back in the cache: the status then follows the newer generation
    without endless conflicts, and a later reload serves the newer spec."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    route = k.api.resource("gateway.networking.k8s.io", "v1", "httproutes")
    name = "llm-route"

    def set_hosts(h):
        r = k.api.get(route, "default", name)
        r["spec"]["hostnames"] = h
        k.api.update(route, "default", name, None, r)

    def observed():
        st = k.api.get(route, "default", name).get("status") or {}
        return [c["observedGeneration"] for p in st.get("parents", []) for c in p["conditions"]]

    k.api.put_lag["httproutes"] = 0.6
    set_hosts(["a.example"])
    gen = k.api.get(route, "default", name)["metadata"]["generation"]
    # The write for this generation is applied, its answer still on its way.
    wait_until(lambda: set(observed()) == {gen}, "a status write", log=k.log)
    set_hosts(["b.example"])
    gen += 1
    wait_until(lambda: observed() and set(observed()) == {gen}, "status at generation %d" % gen,
               log=k.log)
    k.api.put_lag.clear()
    # An unrelated change reloads: the newer spec is what is served.
    k.apply("apiVersion: v1\nkind: Service\nmetadata:\n  name: unrelated\nspec:\n"
            "  ports:\n  - port: 80\n")

    def code(host):
        return call(k.base, "/v1/completions", seed_body("tweet-summary"),
                    headers={"Host": host})[0]
    wait_until(lambda: code("b.example") == 200 and code("a.example") == 404,
               "b.example served", log=k.log)
    # A write may meet the newer object before the watch brings it (one
    # 409); never again and again against the older copy.
    assert [c for m, _, c in k.infergate_requests() if m == "PUT"].count(409) <= 1
    k.stop()


def test_unusual_characters_survive(kube):
    """Strings from the API reach the configuration unchanged, including
    characters YAML would refuse or read as line breaks (DEL, NEL, U+2028)
    and characters outside the BMP."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    odd = "odd\u007f\u0085\u2028\U0001F600-model"
    model = json.loads(k.kubectl("get", "inferencemodels.inference.networking.x-k8s.io",
                                 "inferencemodel-sample", "-o", "json"))
    model["spec"]["modelName"] = odd
    k.apply(json.dumps(model))
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    body = json.dumps({"model": odd, "prompt": "hi", "max_tokens": 2},
                      ensure_ascii=False).encode()
    status, _, data = call(k.base, "/v1/completions", raw=body)
    assert status == 200, (data, k.log())
    assert json.loads(data)["model"] == "tweet-summary-1"
    assert "error" not in k.log().lower(), k.log()
    k.stop()


def test_token_revoked_while_running(kube):
    """The token stops being accepted while the gateway runs: one error
    line with 401, traffic goes on with the last configuration, and once
    the token is accepted again changes are followed."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    k.api.tokens["kubectl-token"] = "admin"
    saved = k.api.tokens.pop("test-token")
    # kubectl keeps working with a token of its own.
    k.kubeconfig = k.api.kubeconfig(os.path.join(k.tmp, "kc-admin"), token="kubectl-token")
    k.api.end_watches()
    wait_for(lambda: "%s: HTTP 401 Unauthorized" % k.api.hostport in k.log(), "401 logged")
    for _ in range(3):
        status, ep, r = served_by(k)
        assert status == 200 and ep == k.endpoint(0), r
    time.sleep(1)
    assert k.log().count("HTTP 401 Unauthorized") == 1, k.log()
    k.api.tokens["test-token"] = saved
    wait_for(lambda: "answers again" in k.log(), "reconnected")
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)], timeout=FOLLOW_S + 2)
    k.stop()


def picks_follow_pods(k, epp, target):
    """The picker at target picks qwen-pool-0 (the one pod), then both
    once qwen-pool-1 is added."""
    grpc = pytest.importorskip("grpc")
    from test_epp import full_duplex, seed_bytes, set_headers
    ch = grpc.insecure_channel(target)

    def pick():
        first, _, s = full_duplex(ch, seed_bytes())
        s.rest()
        if first.WhichOneof("response") != "request_headers":
            return None
        return set_headers(first.request_headers.response)["x-gateway-destination-endpoint"]
    deadline = time.time() + 10
    while pick() != k.endpoint(0):
        assert time.time() < deadline, k.procs.output(epp)
        time.sleep(0.1)
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    seen = set()
    deadline = time.time() + 10
    while len(seen) < 2:
        seen.add(pick())
        assert time.time() < deadline, (seen, k.procs.output(epp))
    assert seen == {k.endpoint(0), k.endpoint(1)}
    ch.close()


def test_epp_kube(kube):
    """`infergate epp --kube`: the pool, its pods and models from the API;
    the picker reads only its pool's kinds in its pool's namespace (what a
    namespaced read-only Role allows), writes nothing, and follows a pod
    that becomes Ready."""
    pytest.importorskip("grpc")
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    host = unique_loopback()
    port, health, metrics = free_port(host), free_port(host), free_port(host)
    epp = k.procs.start("epp", "--kube", "--kubeconfig", k.kubeconfig, "--pool-name",
                        "qwen-pool", "--grpc-port", port, "--grpc-health-port", health,
                        "--metrics-port", metrics, "--bind", host, "--secure-serving=false",
                        "--workers", "1", name="epp")
    wait_http("http://%s:%d/healthz" % (host, metrics), proc=epp)
    picks_follow_pods(k, epp, "%s:%d" % (host, port))
    reqs = k.api.requests_by("infergate")
    allowed = ("inferencepools", "inferencemodels", "inferenceobjectives",
               "inferencemodelrewrites", "pods")
    for method, path, status, *_ in reqs:
        assert method == "GET", (method, path)
        assert "/namespaces/default/" in path, path
        assert path.split("?")[0].rsplit("/", 1)[1] in allowed, path
    epp.send_signal(signal.SIGTERM)
    assert epp.wait(timeout=15) == 0
    log = k.procs.output(epp)
    for s in SAN_ERRORS:
        assert s not in log, log
    assert "cannot list" not in log, log
    k.api.stop()


def test_epp_kube_standalone(kube):
    """`infergate epp --kube --endpoint-selector ... --endpoint-target-ports
    ...` (llm-d's standalone picker): no InferencePool of that name in the
    cluster; the pods with those labels in the namespace are the
    endpoints, followed as they come."""
    pytest.importorskip("grpc")
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    target_port = k.endpoint(0).rsplit(":", 1)[1]
    host = unique_loopback()
    port, metrics = free_port(host), free_port(host)
    epp = k.procs.start("epp", "--kube", "--kubeconfig", k.kubeconfig, "--pool-name",
                        "by-labels", "--endpoint-selector", "app=qwen-pool",
                        "--endpoint-target-ports", target_port, "--grpc-port", port,
                        "--grpc-health-port", "0", "--metrics-port", metrics, "--bind", host,
                        "--secure-serving=false", "--workers", "1", name="epp")
    wait_http("http://%s:%d/healthz" % (host, metrics), proc=epp)
    picks_follow_pods(k, epp, "%s:%d" % (host, port))
    epp.send_signal(signal.SIGTERM)
    assert epp.wait(timeout=15) == 0
    log = k.procs.output(epp)
    for s in SAN_ERRORS:
        assert s not in log, log
    k.api.stop()


def test_epp_leader_election(kube):
    """Two `infergate epp --kube --ha-enable-leader-election` replicas: only
    the one holding the Lease epp-<ns>-<pool> is ready (gRPC health), as
    GIE's picker; when it leaves (SIGTERM gives the Lease up) the other
    becomes ready."""
    grpc = pytest.importorskip("grpc")
    import xproto
    hpb = xproto.health_pb2
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    reps = {}
    for u in "ab":
        host = unique_loopback()
        port, health, metrics = free_port(host), free_port(host), free_port(host)
        p = k.procs.start("epp", "--kube", "--kubeconfig", k.kubeconfig, "--pool-name",
                          "qwen-pool", "--grpc-port", port, "--grpc-health-port", health,
                          "--metrics-port", metrics, "--bind", host, "--secure-serving=false",
                          "--workers", "1", "--ha-enable-leader-election", name="epp-" + u)
        wait_http("http://%s:%d/healthz" % (host, metrics), proc=p)
        reps[u] = (p, "%s:%d" % (host, health))

    def ready(u):
        ch = grpc.insecure_channel(reps[u][1])
        check = ch.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=hpb.HealthCheckResponse.FromString)
        try:
            return check(hpb.HealthCheckRequest(service="readiness"), timeout=2).status == 1
        finally:
            ch.close()
    def holder():  # None until a replica has made the Lease
        out = k.kubectl("get", "lease", "epp-default-qwen-pool", "-o", "json", check=False)
        return out and json.loads(out)["spec"].get("holderIdentity")
    holder = wait_for(holder, "a holder", timeout=15)
    leader = wait_for(lambda: [u for u in "ab" if ready(u)], "a ready replica", timeout=10)
    assert len(leader) == 1, leader
    leader = leader[0]
    other = "b" if leader == "a" else "a"
    time.sleep(0.5)
    assert ready(leader) and not ready(other)
    assert holder in k.procs.output(reps[leader][0])
    reps[leader][0].send_signal(signal.SIGTERM)
    assert reps[leader][0].wait(timeout=15) == 0
    wait_for(lambda: ready(other), "the other replica ready", timeout=15)
    for u in "ab":
        p = reps[u][0]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=15) == 0
        log = k.procs.output(p)
        for s in SAN_ERRORS:
            assert s not in log, log
    k.api.stop()


def test_gateway_follows_epp_service(kube):
    """A v1 pool whose endpointPickerRef names a missing Service (GIE's
    InferencePoolInvalidEPPService): ResolvedRefs False / InvalidExtensionRef
    and 503; once the Service exists (clusterIP = a running `infergate
    epp`, appProtocol kubernetes.io/h2c) the gateway follows that picker."""
    pytest.importorskip("grpc")
    k = kube
    host = unique_loopback()
    epp_port = free_port(host)
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    pool = """apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: v1-pool
spec:
  selector:
    matchLabels:
      app: qwen-pool
  targetPorts:
  - number: %d
  endpointPickerRef:
    name: v1-pool-epp
    port:
      number: %d
""" % (k.target_port, epp_port)
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: infergate
  listeners:
  - name: http
    protocol: HTTP
    port: %d
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: v1-pool
---
""" % k.port + pool)
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()

    def pool_refs():
        parents = (get(k, "inferencepools.inference.networking.k8s.io",
                       "v1-pool").get("status") or {}).get("parents") or []
        conds = {c["type"]: c for p in parents for c in p["conditions"]}
        return conds.get("ResolvedRefs")
    refs = wait_for(lambda: (pool_refs() or {}).get("status") == "False" and pool_refs(),
                    "ResolvedRefs False")
    assert refs["reason"] == "InvalidExtensionRef"
    status, _, _ = call(k.base, "/v1/completions", seed_body("tweet-summary-0"))
    assert status == 503
    # The picker: infergate epp reading the pool from files.
    d = os.path.join(k.tmp, "epp")
    os.makedirs(d)
    with open(os.path.join(d, "pool.yaml"), "w") as f:
        f.write(pool + """---
apiVersion: v1
kind: Pod
metadata:
  name: qwen-pool-0
  labels:
    app: qwen-pool
status:
  podIP: %s
""" % k.sim_hosts[0])
    epp = k.procs.start("epp", "-poolName", "v1-pool", "-f", d, "-grpcPort", epp_port,
                        "-grpcHealthPort", "0", "-metricsPort", "0", "--bind", host,
                        "-secureServing=false", "--workers", "1", name="epp")
    wait_port(host, epp_port, proc=epp)
    k.apply("""apiVersion: v1
kind: Service
metadata:
  name: v1-pool-epp
spec:
  clusterIP: %s
  selector:
    app: epp
  ports:
  - port: %d
    appProtocol: kubernetes.io/h2c
""" % (host, epp_port))
    wait_for(lambda: (pool_refs() or {}).get("status") == "True", "ResolvedRefs True")
    deadline = time.time() + 5
    while True:
        status, headers, r = post_json(k.base, "/v1/completions", seed_body("tweet-summary-0"))
        if status == 200:
            break
        assert time.time() < deadline, (status, r)
        time.sleep(0.1)
    assert headers["x-gateway-destination-endpoint-served"] == k.endpoint(0)
    assert "its endpoint picker is Service v1-pool-epp" in k.log()
    k.stop()


def test_watch_refused_list_allowed_backs_off(kube):
    """A role that allows list but not watch (a ClusterRole missing one
    verb): the kind keeps what its lists read, a list and a watch are
    tried again with a growing back-off, not several times a second, it
    is said once, and a list that finds the same objects reloads nothing
    (client-go's reflector backs off from 800 ms to 30 s)."""
    k = kube
    k.api.forbid_watch.add("services")
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    time.sleep(4)
    lists = k.infergate_requests("services", watch=False)
    watches = k.infergate_requests("services", watch=True)
    # 100 ms doubling: about six of each in 5 s (the unpaced loop made
    # over fifty).
    assert 2 <= len(lists) <= 9, lists
    assert all(code == 403 for _, _, code in watches), watches
    log = k.log()
    assert log.count("was read but is now refused") == 1, log
    assert "served again" not in log, log
    assert log.count("reloading configuration") == 1, log
    status, ep, r = served_by(k)
    assert status == 200 and ep == k.endpoint(0), r
    k.stop()


def test_expired_continue_token_lists_whole(kube):
    """A server whose continue tokens expire (etcd compacted past the
    list's revision) on every page: the gateway lists the kind once more
    without pages, as client-go's pager does, instead of starting the
    paged list over as fast as the server answers."""
    k = kube
    k.api.page_size = 1
    k.api.expire_continue = True
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.add_pod("qwen-pool-1", k.sim_hosts[1])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0), k.endpoint(1)])
    time.sleep(1)
    pods = [(m, p, c) for m, p, c, *_ in k.api.requests_by("infergate")
            if p.split("?")[0] == "/api/v1/pods" and "watch=1" not in p]
    assert len(pods) <= 4, pods
    assert pods[-1][2] == 200 and "limit=" not in pods[-1][1], pods
    assert "outlived its continue token" in k.log()
    k.stop()


def test_status_write_refused_backs_off_and_says_it_once(kube):
    """A role without the status subresource's update verb: each object's
    write is tried again later and later (2 s doubling), not every 2 s
    forever, and the refusal is logged once for all objects, not once per
    attempt."""
    k = kube
    k.api.forbid_status.update({"gateways", "httproutes"})
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    start = time.time()
    wait_for(lambda: [r for r in status_writes(k) if "/gateways/" in r[1]], "a Gateway write")
    time.sleep(max(0, 9 - (time.time() - start)))
    for kind in ("gateways", "httproutes"):
        puts = [r for r in status_writes(k) if "/%s/" % kind in r[1]]
        # At 0, 2 and 6 s (a flat 2 s made five or six).
        assert 1 <= len(puts) <= 4, (kind, puts)
        assert all(code == 403 for _, _, code in puts), puts
    log = k.log()
    assert log.count("writing the status of") == 1, log
    # The pool's status, which the role allows, is written.
    wait_for(lambda: (get(k, POOL_KIND, "qwen-pool").get("status") or {}).get("parent"),
             "pool status")
    k.stop()


def test_status_changed_by_another_writer_is_put_back_less_often(kube):
    """Another writer that keeps changing a Gateway's status (a second
    gateway with the same controller name and no --leader-elect): the
    first change is put back at once, the next ones after a pause that
    doubles, so the two do not trade writes as fast as the API server
    takes them; it is said once."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    gw = lambda: get(k, "gateways", "inference-gateway").get("status") or {}
    ours = wait_for(lambda: gw().get("addresses"), "Gateway addresses")
    rival = [{"type": "IPAddress", "value": "127.0.86.99"}]
    puts = lambda: [r for r in status_writes(k) if "/gateways/" in r[1]]
    before = len(puts())
    end = time.time() + 6
    while time.time() < end:
        if gw().get("addresses") != rival:
            k.patch_status("gateway.networking.k8s.io", "v1", "gateways",
                           "inference-gateway", {"status": {"addresses": rival}})
        time.sleep(0.05)
    n = len(puts()) - before
    # At once, at once, then 1, 2 s apart: about four in 6 s (unpaced:
    # one for each of the rival's writes, over fifty).
    assert 2 <= n <= 7, puts()
    log = k.log()
    assert log.count("keeps being changed by another writer") == 1, log
    # Once the rival stops, ours is back within the pause.
    wait_for(lambda: gw().get("addresses") == ours, "our addresses back", timeout=10)
    k.stop()


def test_v1alpha2_pool_default_status_entry_removed(kube):
    """GIE's v1alpha2 CRD gives a new InferencePool a placeholder status
    entry (parentRef kind Status, name default, Accepted Unknown); the
    controller that sets Accepted removes it, as GIE's API asks."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.patch_status("inference.networking.x-k8s.io", "v1alpha2", "inferencepools",
                   "qwen-pool", {"status": {"parent": [{
                       "parentRef": {"kind": "Status", "name": "default"},
                       "conditions": [{"type": "Accepted", "status": "Unknown",
                                       "reason": "Pending", "message": "Waiting for controller",
                                       "lastTransitionTime": "1970-01-01T00:00:00Z"}]}]}})
    k.start_gateway()
    parent = lambda: (get(k, POOL_KIND, "qwen-pool").get("status") or {}).get("parent") or []
    wait_for(lambda: any(p["parentRef"].get("kind") == "Gateway" for p in parent()),
             "our parent entry")
    got = parent()
    assert [p["parentRef"]["name"] for p in got] == ["inference-gateway"], got
    k.stop()


def test_pruned_parent_ref_group_keeps_transition_times(kube):
    """A GIE v1alpha2 CRD that types the pool's parentRef as an
    ObjectReference (no group) prunes the group we write: the entry is
    still ours, its lastTransitionTime stays while its status does not
    change, and pod changes write nothing."""
    k = kube
    k.api.status_prune["inference.networking.x-k8s.io/inferencepools"] = ["parentRef.group"]
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()
    k.wait_endpoints([k.endpoint(0)])
    accepted = lambda: {c["type"]: c for c in (
        (get(k, POOL_KIND, "qwen-pool").get("status") or {}).get("parent") or [{}])[0]
        .get("conditions", [])}.get("Accepted")
    first = wait_for(accepted, "pool Accepted")
    assert "group" not in get(k, POOL_KIND, "qwen-pool")["status"]["parent"][0]["parentRef"]
    pool_puts = lambda: [r for r in status_writes(k) if "/inferencepools/" in r[1]]
    n = len(pool_puts())
    for i in range(3):
        time.sleep(1.1)  # the times have a resolution of a second
        k.set_pod("qwen-pool-0", k.sim_hosts[0], ready=(i % 2 == 1))
        k.wait_endpoints([] if i % 2 == 0 else [k.endpoint(0)])
    time.sleep(0.5)
    assert accepted()["lastTransitionTime"] == first["lastTransitionTime"]
    assert len(pool_puts()) == n, pool_puts()
    k.stop()


def test_own_status_write_reloads_nothing(kube):
    """Objects made with `kubectl apply` carry kubectl's last-applied
    annotation; the answer to our status write is kept as the informer
    keeps objects (without it), so the watch's echo of our own write is a
    status-only change and reloads nothing."""
    k = kube
    k.apply_seed()
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    md = get(k, "httproutes", "llm-route")["metadata"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in md.get("annotations", {})
    k.start_gateway()
    wait_for(lambda: (get(k, "httproutes", "llm-route").get("status") or {}).get("parents"),
             "route status")
    wait_for(lambda: get(k, POOL_KIND, "qwen-pool").get("status"), "pool status")
    time.sleep(1)
    assert k.log().count("reloading configuration") == 1, k.log()
    k.stop()


def test_fail_open_pool_without_its_picker_service(kube):
    """A v1 pool with failureMode FailOpen whose picker Service does not
    exist, then exists without an address: the pool's status still says
    ResolvedRefs False (InvalidExtensionRef), but its requests are served
    by the built-in picker, as when the picker is unreachable, not failed
    with 503 (GIE's InferencePoolInvalidEPPService runs a FailClose pool,
    test_gateway_follows_epp_service)."""
    k = kube
    k.apply(GATEWAY_CLASS % ("infergate", "infergate.dev/gateway-controller"))
    k.apply("""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: infergate
  listeners:
  - name: http
    protocol: HTTP
    port: %d
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: v1-pool
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: v1-pool
spec:
  selector:
    matchLabels:
      app: qwen-pool
  targetPorts:
  - number: %d
  endpointPickerRef:
    name: v1-pool-epp
    port:
      number: 9002
    failureMode: FailOpen
""" % (k.port, k.target_port))
    k.add_pod("qwen-pool-0", k.sim_hosts[0])
    k.start_gateway()

    def pool_refs():
        parents = (get(k, "inferencepools.inference.networking.k8s.io",
                       "v1-pool").get("status") or {}).get("parents") or []
        conds = {c["type"]: c for p in parents for c in p["conditions"]}
        return conds.get("ResolvedRefs")

    def served():
        deadline = time.time() + 5
        while True:
            status, headers, r = post_json(k.base, "/v1/completions",
                                           seed_body("tweet-summary-0"))
            if status == 200 or time.time() > deadline:
                return status, headers, r
            time.sleep(0.1)

    for service in (None, """apiVersion: v1
kind: Service
metadata:
  name: v1-pool-epp
spec:
  clusterIP: None
  selector:
    app: no-such-picker
  ports:
  - port: 9002
"""):
        if service:
            k.apply(service)
            wait_for(lambda: "has no address" in k.log(), "the Service without an address")
        refs = wait_for(lambda: (pool_refs() or {}).get("status") == "False" and pool_refs(),
                        "ResolvedRefs False")
        assert refs["reason"] == "InvalidExtensionRef"
        status, headers, r = served()
        assert status == 200, r
        assert headers["x-gateway-destination-endpoint-served"] == k.endpoint(0)
    assert "FailOpen: the built-in picker serves the pool" in k.log()
    k.stop()
