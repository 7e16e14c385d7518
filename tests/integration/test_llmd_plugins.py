"""llm-d Router's own picker plugins through the real binary: llm-d's
sample EndpointPickerConfigs (tests/manifests/llmd) load, or are refused
with the reason for the plugin type infergate does not run; decode-filter
reads the pods' llm-d.ai/role labels; session-affinity-scorer answers with
x-session-token and keeps a session that sends it back on its pod."""
import base64
import os
import subprocess

from conftest import IG_BIN
from test_picker_gateway import (Gateway, Sims, call, completion, free_port, gateway_doc,
                                 model_doc, pool_doc, route_doc)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "tests", "manifests", "llmd")
SERVED = "x-gateway-destination-endpoint-served"
TOKEN = "x-session-token"


def check(path):
    p = subprocess.run([IG_BIN, "check", "-f", path], capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout + p.stderr


def test_llmd_sample_configs():
    """llm-d's deploy/config samples that use only plugins infergate runs
    load without a word; the others are refused with the reason."""
    loads = os.path.join(SAMPLES, "loads")
    for name in sorted(os.listdir(loads)):
        rc, out = check(os.path.join(loads, name))
        assert rc == 0 and "warning" not in out and "error" not in out, (name, out)
    refused = {
        "sim-epp-no-hit-lru.yaml": ':4: plugins[0].type: plugin type '
                                   '"precise-prefix-cache-scorer" is not supported: ',
        "dp-epp-config.yaml": ':7: plugins[3].type: plugin type '
                              '"data-parallel-profile-handler" is not supported: ',
        "probabilistic-admitter-epp-config.yaml": ':4: plugins[0].type: plugin type '
                                                  '"probabilistic-admitter" is not supported: ',
    }
    assert sorted(refused) == sorted(os.listdir(os.path.join(SAMPLES, "refused")))
    for name, want in refused.items():
        rc, out = check(os.path.join(SAMPLES, "refused", name))
        assert rc == 1 and name + want in out, out
        assert "unknown plugin type" not in out, out


def pod_doc(name, ip, role=None):
    role = "    llm-d.ai/role: %s\n" % role if role else ""
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels:\n    app: pool\n%s"
            "status:\n  podIP: %s\n" % (name, role, ip))


def llmd_pool(procs, tmp_path, sims, picker, roles=None):
    port = free_port()
    roles = roles or [None] * len(sims.hosts)
    docs = [gateway_doc([("llm", port)]), route_doc("route", "llm", "pool", sims.port),
            pool_doc("pool", sims.port), model_doc("food-review", "food-review", "pool", "Critical"),
            picker]
    docs += [pod_doc("pod-%d" % i, h, roles[i]) for i, h in enumerate(sims.hosts)]
    return Gateway(procs, tmp_path, docs, port)


DECODE_PICKER = """apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: decode-filter
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: random-picker
"""


def test_decode_filter_reads_pod_roles(procs, tmp_path):
    """decode-filter keeps decode pods and pods without a role; a prefill
    pod never serves."""
    sims = Sims(procs, 3)
    g = llmd_pool(procs, tmp_path, sims, DECODE_PICKER, roles=["prefill", "decode", None])
    served = set()
    for _ in range(12):
        st, hdrs, data = call(g.base, "/v1/completions", completion())
        assert st == 200, data
        served.add(hdrs.get(SERVED))
    assert sims.endpoint(0) not in served, served
    assert served <= {sims.endpoint(1), sims.endpoint(2)}, served
    g.stop()


SESSION_PICKER = """apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: session-affinity-scorer
"""


def token_of(i):
    return base64.b64encode(b"default/pod-%d-rank-0" % i).decode()


def test_session_affinity_token(procs, tmp_path):
    """Each answer carries x-session-token, the base64 of the serving pod's
    namespace/name-rank-N; a request that sends it back goes to that pod,
    every time."""
    sims = Sims(procs, 3)
    g = llmd_pool(procs, tmp_path, sims, SESSION_PICKER.replace("random-picker",
                                                               "max-score-picker"))
    body = completion()
    st, hdrs, data = call(g.base, "/v1/completions", body)
    assert st == 200, data
    first = [sims.endpoint(i) for i in range(3)].index(hdrs.get(SERVED))
    assert hdrs.get_all(TOKEN) == [token_of(first)], hdrs
    for i in (first, (first + 1) % 3, (first + 2) % 3):
        for _ in range(3):
            st, hdrs, data = call(g.base, "/v1/completions", body, {TOKEN: token_of(i)})
            assert st == 200, data
            assert hdrs.get(SERVED) == sims.endpoint(i), (i, hdrs)
            assert hdrs.get_all(TOKEN) == [token_of(i)], hdrs
    g.stop()
