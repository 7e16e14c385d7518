"""The install manifests (issue 10, point 6): `kubectl kustomize deploy/`
builds, every object is of a kind we expect and well formed, the
Deployment runs the gateway non-root on a read-only root with probes on
/healthz, and the RBAC rules grant exactly what src/kube/ calls: the
list/watch kinds of its table, the status subresources it writes, the
Lease verbs; and a real run against the stand-in API server makes no call
the rules do not grant."""
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest

yaml = pytest.importorskip("yaml")

from test_kube import Kube  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")

KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
         "RoleBinding", "GatewayClass", "Deployment", "Service"}
NS = "infergate-system"


def build():
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy")],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def code_reads():
    """(group, resource, verb) the informers use: the kinds table of
    src/kube/kube.c, listed and watched."""
    with open(os.path.join(ROOT, "src", "kube", "kube.c")) as f:
        text = f.read()
    macros = dict(re.findall(r'#define (\w+) "([^"]*)"', text))
    table = text[text.index("ig_kube_kinds[] = {"):text.index("};", text.index(
        "ig_kube_kinds[] = {"))]
    out = set()
    for group, plural in re.findall(r'\{\s*(\w+|"[^"]*"),\s*"\w+",\s*"(\w+)"', table):
        g = group.strip('"') if group.startswith('"') else macros[group]
        out |= {(g, plural, "list"), (g, plural, "watch")}
    assert len(out) >= 2 * 14, out
    return out


def code_writes():
    """The status subresources src/gateway/kube_status.c and
    src/kube/status.c write (PUT), and the Lease calls of src/kube/lease.c."""
    with open(os.path.join(ROOT, "src", "gateway", "kube_status.c")) as f:
        gw = f.read()
    with open(os.path.join(ROOT, "src", "kube", "status.c")) as f:
        st = f.read()
    with open(os.path.join(ROOT, "src", "kube", "lease.c")) as f:
        lease = f.read()
    plural = {"Gateway": "gateways", "HTTPRoute": "httproutes", "GatewayClass": "gatewayclasses",
              "InferencePool": "inferencepools"}
    groups = {"Gateway": ["gateway.networking.k8s.io"],
              "HTTPRoute": ["gateway.networking.k8s.io"],
              "GatewayClass": ["gateway.networking.k8s.io"],
              "InferencePool": ["inference.networking.k8s.io", "inference.networking.x-k8s.io"]}
    kinds = set(re.findall(r'ig_kube_status_set\([^"]*"(\w+)"', gw))
    kinds |= set(re.findall(r'find_kind\("(\w+)"', st))
    kinds |= {"Gateway", "HTTPRoute"} if "left_out_statuses" in st else set()
    assert kinds == {"Gateway", "HTTPRoute", "InferencePool", "GatewayClass"}, kinds
    out = {(g, plural[k] + "/status", "update") for k in kinds for g in groups[k]}
    assert '"PUT"' in st
    # lease.c reads the Lease with a plain request (GET), creates it (POST)
    # and renews or takes it (PUT).
    verbs = set()
    if re.search(r"\.on_done = read_done", lease):
        verbs.add("get")
    if '"POST"' in lease:
        verbs.add("create")
    if '"PUT"' in lease:
        verbs.add("update")
    return out, {("coordination.k8s.io", "leases", v) for v in verbs}


def granted(rules):
    out = set()
    for r in rules:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for v in r["verbs"]:
                    out.add((g, res, v))
    return out


def test_kustomize_builds_what_we_expect():
    objs = build()
    assert {o["kind"] for o in objs} == KINDS
    for o in objs:
        assert o["apiVersion"] and o["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", o["metadata"]["name"])
        if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "GatewayClass"):
            assert o["metadata"]["namespace"] == NS, o["metadata"]
    (gc,) = by_kind(objs, "GatewayClass")
    with open(os.path.join(ROOT, "src", "kube", "kube.h")) as f:
        default = re.search(r'IG_KUBE_DEFAULT_CONTROLLER "([^"]+)"', f.read()).group(1)
    assert gc["spec"]["controllerName"] == default

    (sa,) = by_kind(objs, "ServiceAccount")
    (dep,) = by_kind(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["requests"] and c["resources"]["limits"]
    args = c["args"]
    assert args[0] == "gateway" and "--kube" in args and "--leader-elect" in args
    admin_port = int(args[args.index("--admin") + 1].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        h = c[probe]["httpGet"]
        assert h["path"] == path
        assert ports.get(h["port"], h["port"]) == admin_port
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    (svc,) = by_kind(objs, "Service")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()

    # Bindings name the service account and roles that exist.
    for b in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding"):
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                  "namespace": NS}]
        kind = b["roleRef"]["kind"]
        assert any(r["metadata"]["name"] == b["roleRef"]["name"] for r in by_kind(objs, kind))


def test_rbac_is_exactly_what_the_code_calls():
    objs = build()
    (cr,) = by_kind(objs, "ClusterRole")
    (role,) = by_kind(objs, "Role")
    writes, lease = code_writes()
    assert granted(cr["rules"]) == code_reads() | writes
    assert granted(role["rules"]) == lease


def request_to_rule(method, path):
    """(group, resource[/sub], verb, namespace) of an API request."""
    url = urllib.parse.urlsplit(path)
    q = urllib.parse.parse_qs(url.query)
    parts = url.path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    res = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
    if method == "GET":
        verb = "watch" if q.get("watch") else ("list" if len(rest) == 1 else "get")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return group, res, verb, ns


def test_a_run_stays_within_the_rules(procs, tmp_path, monkeypatch):
    """The gateway with --kube --leader-elect, as the Deployment runs it,
    against the stand-in: every call it makes is granted (leases in the
    pod's namespace by the Role, the rest by the ClusterRole)."""
    objs = build()
    (cr,) = by_kind(objs, "ClusterRole")
    (role,) = by_kind(objs, "Role")
    cluster, ns_rules = granted(cr["rules"]), granted(role["rules"])
    monkeypatch.setenv("POD_NAMESPACE", NS)
    k = Kube(procs, tmp_path, nsims=1)
    try:
        k.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n" % NS)
        k.apply_seed()
        k.add_pod("qwen-pool-0", k.sim_hosts[0])
        k.start_gateway("--leader-elect")
        k.wait_endpoints([k.endpoint(0)])
        deadline = time.time() + 10
        while not any(r[0] == "PUT" and "/status" in r[1] for r in k.infergate_requests()):
            assert time.time() < deadline, k.log()
            time.sleep(0.1)
        seen = set()
        for method, path, _ in k.infergate_requests():
            group, res, verb, ns = request_to_rule(method, path)
            seen.add((group, res, verb))
            if res == "leases":
                assert ns == NS, path
                assert (group, res, verb) in ns_rules, path
            else:
                assert (group, res, verb) in cluster, path
        assert ("coordination.k8s.io", "leases", "create") in seen
        assert ("gateway.networking.k8s.io", "gateways/status", "update") in seen
        k.stop()
    finally:
        k.api.stop()
