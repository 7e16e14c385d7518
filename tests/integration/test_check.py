"""`infergate check` on today's GIE and Gateway API manifests (issue 9):
the samples load clean, and what infergate cannot honour is refused with
file:line and the field's path, never accepted and dropped."""
import os
import subprocess

from conftest import IG_BIN

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SAMPLES = os.path.join(ROOT, "tests", "manifests", "gie-v1")


def check(*paths):
    args = [IG_BIN, "check"]
    for p in paths:
        args += ["-f", str(p)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def test_samples_are_valid():
    rc, out, err = check(SAMPLES)
    assert rc == 0, err
    # The one warning: qwen-pool's picker Service is not among the samples.
    assert err == (
        f"{SAMPLES}/pools.yaml:16: warning: spec.endpointPickerRef.name: InferencePool "
        "\"llm/qwen-pool\": its endpoint picker Service \"qwen-epp\" is not in the files; in "
        "file mode the built-in picker serves the pool (under --kube its requests would get "
        "503)\n")
    assert out == (
        "17 objects ok: 1 Gateway, 1 HTTPRoute, 1 ReferenceGrant, 2 InferencePool, "
        "2 InferenceObjective, 2 InferenceModelRewrite, 3 Namespace, 1 Service, "
        "1 EndpointSlice, 1 Secret, 2 Pod\n")


def test_seed_still_valid():
    rc, out, err = check(os.path.join(ROOT, "examples", "kgateway"))
    assert rc == 0, err
    assert out.startswith("5 objects ok")


def test_unsupported_fields_are_errors(tmp_path):
    route = tmp_path / "route.yaml"
    route.write_text(
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        "metadata:\n"
        "  name: r\n"
        "spec:\n"
        "  rules:\n"
        "  - filters:\n"
        "    - type: RequestHeaderModifier\n"
        "      requestHeaderModifier:\n"
        "        sett:\n"                      # line 10: a typo, not dropped
        "        - {name: x-a, value: b}\n"
        "    - type: ExternalAuth\n"           # line 12
        "      externalAuth: {protocol: HTTP}\n"
        "    backendRefs:\n"
        "    - name: svc\n"
        "      port: 80\n"
        "      weigth: 2\n")                   # line 17
    rc, out, err = check(route)
    assert rc == 1
    lines = err.splitlines()
    assert f"{route}:10: spec.rules[0].filters[0].requestHeaderModifier.sett: unknown field" in lines
    assert (f"{route}:12: spec.rules[0].filters[1].type: not supported by infergate: "
            "the ExternalAuth filter is not implemented") in lines
    assert f"{route}:17: spec.rules[0].backendRefs[0].weigth: unknown field" in lines
    assert out.strip() == "3 errors"


def test_references_are_warnings(tmp_path):
    """A reference that does not resolve loads with a warning (the object
    may come with a reload); the Gateway API answers 500 for it."""
    route = tmp_path / "route.yaml"
    route.write_text(
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        "metadata: {name: r, namespace: apps}\n"
        "spec:\n"
        "  rules:\n"
        "  - backendRefs:\n"
        "    - {name: svc, namespace: backends, port: 80}\n")
    rc, out, err = check(route)
    assert rc == 0
    assert err == (
        f"{route}:7: warning: spec.rules[0].backendRefs[0].namespace: reference to Service "
        "\"backends/svc\" from namespace apps needs a ReferenceGrant in namespace backends "
        "(RefNotPermitted)\n")
    assert out == "1 object ok: 1 HTTPRoute\n"


def test_missing_picker_service_is_a_warning(tmp_path):
    """A pool's endpointPickerRef (v1) or extensionRef (v1alpha2) naming a
    Service that is not in the files: the gateway serves the pool with the
    built-in picker, and check says so at the ref's name."""
    pools = tmp_path / "pools.yaml"
    pools.write_text(
        "apiVersion: inference.networking.k8s.io/v1\n"
        "kind: InferencePool\n"
        "metadata: {name: v1-pool}\n"
        "spec:\n"
        "  selector: {matchLabels: {app: a}}\n"
        "  targetPorts: [{number: 8000}]\n"
        "  endpointPickerRef:\n"
        "    name: no-such-picker\n"             # line 8
        "    port: {number: 9002}\n"
        "---\n"
        "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
        "kind: InferencePool\n"
        "metadata: {name: old-pool}\n"
        "spec:\n"
        "  selector: {app: a}\n"
        "  targetPortNumber: 8000\n"
        "  extensionRef: {name: gone}\n"         # line 17
        "---\n"
        "apiVersion: inference.networking.k8s.io/v1\n"
        "kind: InferencePool\n"
        "metadata: {name: served}\n"
        "spec:\n"
        "  selector: {matchLabels: {app: a}}\n"
        "  targetPorts: [{number: 8000}]\n"
        "  endpointPickerRef: {name: picker, port: {number: 9002}}\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata: {name: picker}\n"
        "spec:\n"
        "  ports: [{port: 9002}]\n")
    rc, out, err = check(pools)
    assert rc == 0, err
    assert err == (
        f"{pools}:8: warning: spec.endpointPickerRef.name: InferencePool \"default/v1-pool\": "
        "its endpoint picker Service \"no-such-picker\" is not in the files; in file mode the "
        "built-in picker serves the pool (under --kube its requests would get 503)\n"
        f"{pools}:17: warning: spec.extensionRef.name: InferencePool \"default/old-pool\": "
        "its endpoint picker Service \"gone\" is not in the files; in file mode the built-in "
        "picker serves the pool\n")
    assert out == "4 objects ok: 3 InferencePool, 1 Service\n"


def test_extension_ref_filter_is_a_warning(tmp_path):
    """An ExtensionRef filter cannot be resolved (infergate has no filter
    extensions), but the route is valid: a warning says its requests are
    answered 500, and the configuration loads."""
    route = tmp_path / "route.yaml"
    route.write_text(
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        "metadata: {name: r}\n"
        "spec:\n"
        "  rules:\n"
        "  - filters:\n"
        "    - type: ExtensionRef\n"
        "      extensionRef: {group: example.com, kind: Auth, name: a}\n"   # line 8
        "    backendRefs:\n"
        "    - name: svc\n"
        "      port: 80\n"
        "      filters:\n"
        "      - type: ExtensionRef\n"
        "        extensionRef: {group: '', kind: ConfigMap, name: b}\n")   # line 14
    rc, out, err = check(route)
    assert rc == 0, err
    assert err.splitlines() == [
        f"{route}:8: warning: spec.rules[0].filters[0].extensionRef: Auth \"a\" (group "
        "\"example.com\") cannot be resolved: infergate has no filter extensions, so requests "
        "this filter would process are answered 500 (ResolvedRefs=False, InvalidKind)",
        f"{route}:14: warning: spec.rules[0].backendRefs[0].filters[0].extensionRef: ConfigMap "
        "\"b\" (group \"\") cannot be resolved: infergate has no filter extensions, so requests "
        "this filter would process are answered 500 (ResolvedRefs=False, InvalidKind)",
        f"{route}:10: warning: spec.rules[0].backendRefs[0]: Service \"default/svc\" not found "
        "in the configuration",
    ], err
    assert out == "1 object ok: 1 HTTPRoute\n"


ATTACH = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners:
  - {name: http, protocol: HTTP, port: 80, hostname: a.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}], selector: {app: x}}
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: other}
spec: {ports: [{port: 80}], selector: {app: x}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r1, namespace: other}
spec:
  parentRefs: [{name: gw, namespace: default}]
  rules: [{backendRefs: [{name: s, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r2}
spec:
  parentRefs: [{name: gw}]
  hostnames: [b.example.com]
  rules: [{backendRefs: [{name: s, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r3}
spec:
  parentRefs: [{name: gw, sectionName: nope}]
  rules: [{backendRefs: [{name: s, port: 80}]}]
"""


def test_routes_that_do_not_attach_are_warnings(tmp_path):
    """A route its parent does not accept serves nothing: check says which
    parentRef, why (the Gateway API's reason, as --kube writes it in the
    route's status.parents) and where, and the manifests stay valid."""
    m = tmp_path / "m.yaml"
    m.write_text(ATTACH)
    rc, out, err = check(m)
    assert rc == 0, err
    assert err.splitlines() == [
        f"{m}:23: warning: spec.parentRefs[0]: HTTPRoute \"other/r1\" not accepted by Gateway "
        "\"default/gw\" (Accepted=False, NotAllowedByListeners): No listener of the Gateway "
        "allows this route; the route serves nothing there",
        f"{m}:30: warning: spec.parentRefs[0]: HTTPRoute \"default/r2\" not accepted by Gateway "
        "\"default/gw\" (Accepted=False, NoMatchingListenerHostname): No hostname of the route "
        "matches a listener's hostname; the route serves nothing there",
        f"{m}:38: warning: spec.parentRefs[0]: HTTPRoute \"default/r3\" not accepted by Gateway "
        "\"default/gw\" sectionName \"nope\" (Accepted=False, NoMatchingParent): No listener of "
        "the Gateway matches sectionName/port; the route serves nothing there",
    ], err
    assert out == "6 objects ok: 1 Gateway, 3 HTTPRoute, 2 Service\n"


def test_listener_conflicts_are_warnings(tmp_path):
    """HTTP and HTTPS on one port across Gateways (neither is served) and a
    ListenerSet's listener that gives way to the Gateway's are reported as
    the Gateway API's Conflicted=True."""
    m = tmp_path / "m.yaml"
    m.write_text(
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: Gateway\n"
        "metadata: {name: gw1}\n"
        "spec:\n"
        "  gatewayClassName: infergate\n"
        "  allowedListeners: {namespaces: {from: Same}}\n"
        "  listeners:\n"
        "  - {name: http, protocol: HTTP, port: 80}\n"              # line 8
        "---\n"
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: Gateway\n"
        "metadata: {name: gw2}\n"
        "spec:\n"
        "  gatewayClassName: infergate\n"
        "  listeners:\n"
        "  - {name: h, protocol: HTTPS, port: 80, tls: {certificateRefs: [{name: s}]}}\n"  # 16
        "---\n"
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: ListenerSet\n"
        "metadata: {name: ls}\n"
        "spec:\n"
        "  parentRef: {name: gw1}\n"
        "  listeners:\n"
        "  - {name: a, protocol: HTTP, port: 80}\n"                 # line 24
        "  - {name: b, protocol: HTTP, port: 82}\n")
    rc, out, err = check(m)
    assert rc == 0, err
    lines = err.splitlines()
    assert (f"{m}:8: warning: spec.listeners[0]: listener \"http\" of Gateway \"default/gw1\" "
            "(Conflicted=True, ProtocolConflict): Another listener on this port speaks another "
            "protocol; it is not served") in lines, err
    assert (f"{m}:16: warning: spec.listeners[0]: listener \"h\" of Gateway \"default/gw2\" "
            "(Conflicted=True, ProtocolConflict): Another listener on this port speaks another "
            "protocol; it is not served") in lines, err
    assert (f"{m}:24: warning: spec.listeners[0]: listener \"a\" of ListenerSet \"default/ls\" "
            "(Conflicted=True, HostnameConflict): An earlier listener has the same port, "
            "protocol and hostname; it is not served") in lines, err


def test_helm_templates_get_one_clear_error(tmp_path):
    """A chart's template (the shape of GIE's config/charts/inferencepool
    templates) is no manifest until `helm template` renders it: one error at
    its first action says so, instead of the YAML errors its {{ }} cause,
    and the directory beside it still loads."""
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "pool.yaml").write_text(
        "# an InferencePool for the release\n"
        "{{ include \"gie.validations\" $ }}\n"         # line 2
        "apiVersion: inference.networking.k8s.io/v1\n"
        "kind: InferencePool\n"
        "metadata:\n"
        "  name: {{ .Release.Name }}\n"
        "spec:\n"
        "  targetPorts:\n"
        "  {{- range .Values.ports }}\n"
        "  - number: {{ . }}\n"
        "  {{- end }}\n")
    (chart / "route.yaml").write_text(
        "{{- if .Values.route.enabled }}\n"            # line 1
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        "metadata:\n"
        "  name: {{ .Release.Name }}\n"
        "{{- end }}\n")
    rc, out, err = check(chart / "pool.yaml", chart / "route.yaml")
    assert rc == 1
    msg = ("a Helm template ({{ }} actions), not a manifest: render it first (helm "
           "template RELEASE CHART -f values.yaml > manifests.yaml) and give the output")
    assert err == (f"{chart}/pool.yaml:2: {msg}\n"
                   f"{chart}/route.yaml:1: {msg}\n"), err
    # A manifest that loads keeps {{ }} of its own (a chat template in a
    # ConfigMap): nothing to say about Helm.
    cm = tmp_path / "cm.yaml"
    cm.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chat\n"
        "data:\n  template: |\n    {{ bos_token }}{% for m in messages %}{{ m.content }}"
        "{% endfor %}\n    {{- if .x }}\n")
    rc, out, err = check(cm)
    assert rc == 0, err
    assert err == ""
    assert out.startswith("1 object ok")
