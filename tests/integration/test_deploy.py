"""The install manifests (issue 10, point 6): `kubectl kustomize deploy/`
builds, every object is of a kind we expect and well formed, the
Deployment runs the gateway non-root on a read-only root with probes on
/healthz, and the RBAC rules grant exactly what src/kube/ calls: the
list/watch kinds of its table, the status subresources it writes, the
Lease verbs; and a real run against the stand-in API server makes no call
the rules do not grant.

The picker's manifests too: `kubectl kustomize deploy/epp` builds an
`infergate epp` install whose Role only reads, whose container runs the
picker for a named pool with its three ports and gRPC probes, non-root on a
read-only root; examples/kgateway-epp/ parses, keeps the seed's manifests as
they are, and its Service is the one the InferencePool's extensionRef
resolves to, in front of the picker of that pool; the Envoy and Envoy
Gateway configurations of its README point at that Service."""
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
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")

KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
         "RoleBinding", "GatewayClass", "Deployment", "Service"}
NS = "infergate-system"


def build(sub=""):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy", sub)],
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
    plural = {"Gateway": "gateways", "HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes",
              "GatewayClass": "gatewayclasses",
              "InferencePool": "inferencepools", "BackendTLSPolicy": "backendtlspolicies",
              "ListenerSet": "listenersets", "XListenerSet": "xlistenersets"}
    groups = {"Gateway": ["gateway.networking.k8s.io"],
              "HTTPRoute": ["gateway.networking.k8s.io"],
              "GRPCRoute": ["gateway.networking.k8s.io"],
              "GatewayClass": ["gateway.networking.k8s.io"],
              "BackendTLSPolicy": ["gateway.networking.k8s.io"],
              "InferencePool": ["inference.networking.k8s.io", "inference.networking.x-k8s.io"],
              "ListenerSet": ["gateway.networking.k8s.io"],
              "XListenerSet": ["gateway.networking.x-k8s.io"]}
    kinds = set(re.findall(r'ig_kube_status_set\([^";]*"(\w+)"', gw))
    # A ListenerSet's status is written under its own kind (ListenerSet or
    # XListenerSet), which the call takes from the object.
    if re.search(r"ig_kube_status_set\(c->G->kube, ls->meta\.kind, ls->group", gw):
        kinds |= {"ListenerSet", "XListenerSet"}
    # A route's status is written under its own kind (HTTPRoute or
    # GRPCRoute), from the object too.
    if re.search(r"ig_kube_status_set\(c->G->kube, r->meta\.kind, GW_GROUP", gw):
        kinds |= {"HTTPRoute", "GRPCRoute"}
    kinds |= set(re.findall(r'find_kind\("(\w+)"', st))
    kinds |= set(re.findall(r'forget_routes\(k, "(\w+)"\)', st))
    kinds |= {"Gateway", "HTTPRoute"} if "left_out_statuses" in st else set()
    assert kinds == {"Gateway", "HTTPRoute", "GRPCRoute", "InferencePool", "GatewayClass",
                     "BackendTLSPolicy", "ListenerSet", "XListenerSet"}, kinds
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


@needs_kubectl
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
    # SIGKILL must not come before the shutdown delay and the drain end.
    def seconds(flag):
        v = args[args.index(flag) + 1]
        assert v.endswith("s") and not v.endswith("ms"), v
        return int(v[:-1])
    assert pod["terminationGracePeriodSeconds"] >= \
        seconds("--shutdown-delay") + seconds("--drain-timeout") + 5
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


@needs_kubectl
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


@needs_kubectl
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


# ---- infergate epp: deploy/epp and examples/kgateway-epp -------------------------------

EPP_KINDS = {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"}
EXTPROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
# What a picker must be able to read to follow its pool: the pool under both
# GIE APIs, the per-model objects that name it, and the Pods it picks from.
PICKER_READS = {("inference.networking.k8s.io", "inferencepools"),
                ("inference.networking.x-k8s.io", "inferencepools"),
                ("inference.networking.x-k8s.io", "inferencemodels"),
                ("inference.networking.x-k8s.io", "inferenceobjectives"),
                ("", "pods")}
# Both spellings `infergate epp` accepts, and the defaults.
EPP_FLAGS = {"pool": ("-poolName", "--pool-name"),
             "ns": ("-poolNamespace", "--pool-namespace"),
             "grpc": ("-grpcPort", "--grpc-port"),
             "health": ("-grpcHealthPort", "--grpc-health-port"),
             "metrics": ("-metricsPort", "--metrics-port")}
EPP_DEFAULTS = {"ns": "default", "grpc": "9002", "health": "9003", "metrics": "9090"}


def epp_flag(args, key):
    """The value of one of the picker's flags (either spelling, `-f v` or
    `-f=v`), else its default."""
    for i, a in enumerate(args):
        for spelling in EPP_FLAGS[key]:
            if a == spelling:
                return args[i + 1]
            if a.startswith(spelling + "="):
                return a.split("=", 1)[1]
    return EPP_DEFAULTS.get(key)


def port_of(container, port):
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    return named[port]


def check_picker(objs, ns):
    """The picker's Deployment, ServiceAccount, Role and Service among objs
    (in namespace ns; None when the manifests leave it to kubectl) are
    consistent and minimal. Returns (deployment, container, service,
    pool name)."""
    deps = [d for d in by_kind(objs, "Deployment")
            if d["spec"]["template"]["spec"]["containers"][0].get("args", [""])[0] == "epp"]
    assert len(deps) == 1, [d["metadata"]["name"] for d in by_kind(objs, "Deployment")]
    (dep,) = deps
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for o in objs:
        assert o["apiVersion"] and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?",
                                                o["metadata"]["name"])
        if o["kind"] in EPP_KINDS:
            assert o["metadata"].get("namespace") == ns, o["metadata"]

    # The container: the picker of a named pool, its ports, its probes.
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    with open(os.path.join(ROOT, "deploy", "deployment.yaml")) as f:
        gateway_image = yaml.safe_load(f)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert c["image"] == gateway_image
    args = c["args"]
    assert args[0] == "epp" and "--kube" in args
    pool = epp_flag(args, "pool")
    assert pool and not pool.startswith("-"), args
    pool_ns = epp_flag(args, "ns")
    env = {e["name"]: e for e in c.get("env", [])}
    m = re.fullmatch(r"\$\((\w+)\)", pool_ns)
    if m:  # from the pod's own namespace
        assert env[m.group(1)]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    else:
        assert pool_ns == (ns or "default")
    want = {k: int(epp_flag(args, k)) for k in ("grpc", "health", "metrics")}
    assert want == {"grpc": 9002, "health": 9003, "metrics": 9090}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 9002, "grpc-health": 9003, "metrics": 9090}
    ready, live = c["readinessProbe"]["grpc"], c["livenessProbe"]["grpc"]
    assert port_of(c, ready["port"]) == want["health"]
    assert ready["service"] == EXTPROC_SERVICE
    assert port_of(c, live["port"]) == want["health"]
    # Liveness asks for the service that is SERVING while the process
    # runs, so a slow first read of the pool does not restart the picker.
    assert live.get("service") == "liveness"

    # Non-root on a read-only root, nothing extra.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"] and c["resources"]["limits"]

    # Its identity reads, in its namespace only, what a picker reads.
    (sa,) = by_kind(objs, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")
    (role,) = by_kind(objs, "Role")
    (rb,) = by_kind(objs, "RoleBinding")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": role["metadata"]["name"]}
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                               "namespace": ns or "default"}]
    rules = granted(role["rules"])
    assert {v for _, _, v in rules} == {"get", "list", "watch"}
    resources = {(g, r) for g, r, _ in rules}
    assert PICKER_READS <= resources
    for g, r in resources:
        assert {(g, r, v) for v in ("get", "list", "watch")} <= rules
        assert "/" not in r and r not in ("secrets", "configmaps", "services")
        assert g in ("", "inference.networking.k8s.io", "inference.networking.x-k8s.io",
                     "llm-d.ai"), g

    # The Service reaches the picker's ext_proc port over HTTP/2.
    (svc,) = by_kind(objs, "Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    grpc = [p for p in svc["spec"]["ports"] if p["port"] == want["grpc"]]
    assert len(grpc) == 1
    assert port_of(c, grpc[0]["targetPort"]) == want["grpc"]
    assert grpc[0]["appProtocol"] == "http2"
    return dep, c, svc, pool


@needs_kubectl
def test_epp_kustomize_builds_a_read_only_picker():
    objs = build("epp")
    assert {o["kind"] for o in objs} == EPP_KINDS
    (ns,) = {o["metadata"]["namespace"] for o in objs}
    check_picker(objs, ns)


EXAMPLE = os.path.join(ROOT, "examples", "kgateway-epp")
SEED = os.path.join(ROOT, "examples", "kgateway")


def example_objects():
    objs = []
    names = sorted(f for f in os.listdir(EXAMPLE) if f.endswith((".yaml", ".yml")))
    assert names
    for name in names:
        with open(os.path.join(EXAMPLE, name)) as f:
            for d in yaml.safe_load_all(f):
                if d is None:
                    continue
                assert d.get("apiVersion") and d.get("kind") and d["metadata"]["name"], name
                objs.append(d)
    return objs


def test_kgateway_epp_example_serves_the_pools_extension_ref():
    # The seed's manifests are there unchanged.
    for name in os.listdir(SEED):
        with open(os.path.join(SEED, name), "rb") as a, \
                open(os.path.join(EXAMPLE, name), "rb") as b:
            assert a.read() == b.read(), name
    objs = example_objects()
    assert EPP_KINDS <= {o["kind"] for o in objs}
    dep, c, svc, pool = check_picker(objs, None)

    # The pool the picker is for names the picker's Service: extensionRef
    # (v1alpha2, port 9002 when absent) or endpointPickerRef (v1).
    pools = [p for p in by_kind(objs, "InferencePool") if p["metadata"]["name"] == pool]
    assert len(pools) == 1, pool
    spec = pools[0]["spec"]
    ref = spec.get("extensionRef") or spec["endpointPickerRef"]
    assert ref.get("group", "") == "" and ref.get("kind", "Service") == "Service"
    port = ref.get("portNumber") or ref.get("port", {}).get("number") or 9002
    assert ref["name"] == svc["metadata"]["name"]
    assert port in [p["port"] for p in svc["spec"]["ports"]]
    # The pool picks the model servers, not the picker.
    selector = spec["selector"].get("matchLabels", spec["selector"])
    picked = [d["metadata"]["name"] for d in by_kind(objs, "Deployment")
              if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert picked and dep["metadata"]["name"] not in picked


def readme_yaml():
    with open(os.path.join(EXAMPLE, "README.md")) as f:
        blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    return [yaml.safe_load(b) for b in blocks]


def test_kgateway_epp_readme_envoy_configs_point_at_the_picker():
    objs = example_objects()
    (svc,) = by_kind(objs, "Service")
    svc_name, svc_port = svc["metadata"]["name"], 9002
    docs = readme_yaml()
    (boot,) = [d for d in docs if "static_resources" in d]
    clusters = {cl["name"]: cl for cl in boot["static_resources"]["clusters"]}
    (listener,) = boot["static_resources"]["listeners"]
    (hcm,) = listener["filter_chains"][0]["filters"]
    filters = hcm["typed_config"]["http_filters"]
    assert filters[-1]["name"] == "envoy.filters.http.router"
    (ext,) = [f["typed_config"] for f in filters if f["name"] == "envoy.filters.http.ext_proc"]
    assert ext["@type"].endswith("ext_proc.v3.ExternalProcessor")

    # The route goes to an ORIGINAL_DST cluster that follows the picker's header.
    (route,) = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    dst = clusters[route["route"]["cluster"]]
    assert dst["type"] == "ORIGINAL_DST" and dst["lb_policy"] == "CLUSTER_PROVIDED"
    assert dst["original_dst_lb_config"] == {"use_http_header": True,
                                             "http_header_name": "x-gateway-destination-endpoint"}

    # The filter streams both bodies (trailers SEND, as FULL_DUPLEX needs),
    # keeps envoy.lb metadata, and fails closed.
    mode = ext["processing_mode"]
    for d in ("request", "response"):
        assert mode[d + "_body_mode"] == "FULL_DUPLEX_STREAMED"
        assert mode[d + "_trailer_mode"] == "SEND"
        assert mode[d + "_header_mode"] == "SEND"
    assert "envoy.lb" in ext["metadata_options"]["receiving_namespaces"]["untyped"]
    assert ext["failure_mode_allow"] is False
    assert re.fullmatch(r"\d+s", ext["message_timeout"])

    # Its gRPC cluster is the picker's Service, HTTP/2, TLS, health-checked
    # on the ext_proc service name.
    epp = clusters[ext["grpc_service"]["envoy_grpc"]["cluster_name"]]
    opts = epp["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in opts["explicit_http_config"]
    assert epp["transport_socket"]["typed_config"]["@type"].endswith("UpstreamTlsContext")
    (ep,) = epp["load_assignment"]["endpoints"][0]["lb_endpoints"]
    addr = ep["endpoint"]["address"]["socket_address"]
    assert addr["address"].startswith(svc_name + ".default.svc")
    assert addr["port_value"] == svc_port
    assert epp["health_checks"][0]["grpc_health_check"]["service_name"] == EXTPROC_SERVICE

    # The Envoy Gateway sketch names the same Service and port.
    (eep,) = [d for d in docs if d.get("kind") == "EnvoyExtensionPolicy"]
    (proc,) = eep["spec"]["extProc"]
    assert proc["backendRefs"] == [{"group": "", "kind": "Service", "name": svc_name,
                                    "port": svc_port}]
    assert proc["processingMode"]["request"]["body"] == "FullDuplexStreamed"
    assert proc["failOpen"] is False
    assert eep["spec"]["targetRefs"][0]["name"] == by_kind(objs, "HTTPRoute")[0]["metadata"]["name"]


def test_kgateway_epp_example_passes_infergate_check(ig_bin):
    if not os.access(ig_bin, os.X_OK):
        pytest.skip("needs the infergate binary (IG_BIN)")
    r = subprocess.run([ig_bin, "check", "-f", EXAMPLE], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 InferencePool" in r.stdout and "1 Service" in r.stdout, r.stdout
