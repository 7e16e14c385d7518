"""How `infergate check` reads manifests, as kubectl apply -f reads them:
from pipes and FIFOs, List documents expanded, documents of the groups
infergate reads named when their kind is not one it knows."""
import os
import subprocess

from conftest import IG_BIN

POD = ("apiVersion: v1\n"
       "kind: Pod\n"
       "metadata:\n"
       "  name: p\n"
       "  labels: {app: a}\n"
       "status:\n"
       "  podIP: 127.70.0.1\n")


def check(*paths, stdin=None):
    args = [IG_BIN, "check"]
    for p in paths:
        args += ["-f", str(p)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, input=stdin)
    return r.returncode, r.stdout, r.stderr


def test_stdin_is_read_to_eof():
    rc, out, err = check("/dev/stdin", stdin=POD)
    assert (rc, err) == (0, "")
    assert out == "1 object ok: 1 Pod\n"


def test_fifo_is_read_to_eof(tmp_path):
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    p = subprocess.Popen([IG_BIN, "check", "-f", str(fifo)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    with open(fifo, "w") as f:
        f.write(POD)
    out, err = p.communicate(timeout=30)
    assert (p.returncode, err) == (0, "")
    assert out == "1 object ok: 1 Pod\n"


def test_skipped_documents_are_named(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(POD + "---\n"
                 "apiVersion: gateway.networking.k8s.io/v1\n"
                 "kind: HttpRoute\n"
                 "metadata: {name: r}\n"
                 "---\n"
                 "apiVersion: rbac.authorization.k8s.io/v1\n"
                 "kind: Role\n"
                 "metadata: {name: r}\n"
                 "---\n"
                 "apiVersion: rbac.authorization.k8s.io/v1\n"
                 "kind: Role\n"
                 "metadata: {name: s}\n")
    rc, out, err = check(f)
    assert rc == 0
    assert out == "1 object ok: 1 Pod (3 other documents skipped: 1 HttpRoute, 2 Role)\n"
    assert err == (f"{f}:10: warning: kind: no matches for kind \"HttpRoute\" in version "
                   "gateway.networking.k8s.io/v1: infergate does not read it, the document "
                   "is skipped\n")
