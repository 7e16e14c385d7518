"""`infergate demo` and `infergate run` end to end: the real binary
orchestrating real simulators and the real gateway on loopback addresses
of their own, so that parallel runs and the seed's fixed port 8081 on
127.0.0.1 do not collide. Every test also checks that no child process
outlives the orchestrator."""
import json
import os
import shutil
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import IG_BIN, unique_loopback

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEED_DIR = os.path.join(REPO, "examples", "kgateway")
V1_DIR = os.path.join(REPO, "examples", "gie-v1")
SEED_BODY = {"model": "tweet-summary", "prompt": "Write as if you were a critic: San Francisco",
             "max_tokens": 100, "temperature": 0}


def addresses():
    """A bind address for the Gateway listeners and a /24 for the sims,
    both unique to this test."""
    bind = unique_loopback()
    a, _, c = [int(x) for x in bind.split(".")[1:]]
    sim_base = "127.%d.%d.0" % (a, 250 + c % 5)
    return bind, sim_base


def sim_prefix(sim_base):
    return sim_base.rsplit(".", 1)[0] + "."


def leftovers(bind, sim_base):
    """Processes still running with our gateway's bind address or one of
    our sims' addresses on their command line."""
    pats = ["--bind %s( |$)" % re.escape(bind), "--host %s" % re.escape(sim_prefix(sim_base))]
    found = []
    for pat in pats:
        r = subprocess.run(["pgrep", "-a", "-f", "--", pat], capture_output=True, text=True)
        found += [line for line in r.stdout.splitlines() if "pgrep" not in line]
    return found


def assert_no_children(bind, sim_base):
    deadline = time.time() + 5
    while leftovers(bind, sim_base) and time.time() < deadline:
        time.sleep(0.1)
    assert leftovers(bind, sim_base) == []


def demo(*args, cwd=REPO, timeout=90):
    return subprocess.run([IG_BIN, "demo"] + [str(a) for a in args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def bad_sim_manifests(tmp_path):
    """The seed manifests with a Deployment whose args the simulator
    rejects, so that starting fails in a known way."""
    d = tmp_path / "manifests"
    d.mkdir()
    for name in os.listdir(SEED_DIR):
        text = open(os.path.join(SEED_DIR, name)).read()
        if name == "cpu-deployment.yaml":
            text = text.replace('- "--enable-lora"', '- "--max-num-seqs"\n          - "lots"')
            assert "lots" in text
        (d / name).write_text(text)
    return d


@pytest.mark.parametrize("cmd", ["demo", "run"])
def test_help(cmd):
    r = subprocess.run([IG_BIN, cmd, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: infergate %s" % cmd)
    assert "--replicas N" in r.stdout and "--bind ADDR" in r.stdout


@pytest.mark.parametrize("cmd", ["demo", "run"])
def test_unknown_flag(cmd):
    r = subprocess.run([IG_BIN, cmd, "-f", SEED_DIR, "--frobnicate"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2
    assert "--frobnicate" in r.stderr


def test_bad_flag_values():
    for args in (["--replicas", "0"], ["--replicas", "x"], ["--bind", "localhost"],
                 ["--bind"], ["--sim-base", "10.0.0.0"]):
        r = demo(*args, timeout=10)
        assert r.returncode == 2, args
        assert args[0] in r.stderr, args


def test_run_bad_admin():
    for admin in ("127.0.0.1:0", "127.0.0.1", "localhost:9000", "127.0.0.1:70000"):
        r = subprocess.run([IG_BIN, "run", "-f", SEED_DIR, "--admin", admin],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, admin
        assert "--admin" in r.stderr and admin in r.stderr


def test_run_needs_a_directory():
    r = subprocess.run([IG_BIN, "run"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "-f DIR" in r.stderr


def test_demo_missing_directory(tmp_path):
    missing = str(tmp_path / "no-such-dir")
    r = demo("-f", missing, timeout=10)
    assert r.returncode != 0
    assert missing in r.stderr and "No such file or directory" in r.stderr
    # Without -f, outside the repository: say how to fix it.
    r = demo(cwd=str(tmp_path), timeout=10)
    assert r.returncode != 0
    assert "examples/kgateway" in r.stderr and "repository root" in r.stderr


def test_demo_invalid_manifests(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\n"
        "metadata: {name: p}\nspec: {selector: {app: x}}\n")
    r = demo("-f", tmp_path, timeout=10)
    assert r.returncode == 1
    assert "bad.yaml:" in r.stderr


def test_demo_sim_that_fails_to_start(tmp_path):
    bind, sim_base = addresses()
    r = demo("-f", bad_sim_manifests(tmp_path), "--bind", bind, "--sim-base", sim_base,
             "--keep-logs", timeout=30)
    assert r.returncode == 1
    assert "sim qwen-pool-0 exited with code 2 while starting" in r.stderr
    # The sim's own complaint, from the tail of its log.
    assert "--max-num-seqs" in r.stderr and "'lots'" in r.stderr
    m = re.search(r"logs kept in (/tmp/infergate-demo-\S+)", r.stdout)
    assert m, r.stdout
    logs = m.group(1)
    try:
        assert sorted(os.listdir(logs)) == ["sim-qwen-pool-0.log"]
    finally:
        for f in os.listdir(logs):
            os.unlink(os.path.join(logs, f))
        os.rmdir(logs)
    assert_no_children(bind, sim_base)


def test_demo_removes_its_temporary_directory(tmp_path):
    bind, sim_base = addresses()
    r = demo("-f", bad_sim_manifests(tmp_path), "--bind", bind, "--sim-base", sim_base,
             timeout=30)
    assert r.returncode == 1
    # The log tail names the log file; its directory is gone afterwards.
    m = re.search(r"\((/tmp/infergate-demo-[^/]+)/sim-qwen-pool-0.log\)", r.stderr)
    assert m, r.stderr
    assert not os.path.exists(m.group(1))
    assert "logs kept" not in r.stdout


def test_demo_seed_scenario():
    bind, sim_base = addresses()
    r = demo("--bind", bind, "--sim-base", sim_base)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    first = sim_prefix(sim_base) + "1"
    assert ("sim qwen-pool-0: %s:8000 (Qwen/Qwen2.5-1.5B-Instruct, adapters tweet-summary-0, "
            "tweet-summary-1)" % first) in out
    assert ("gateway inference-gateway: listener http on %s:8080, listener llm-gw on %s:8081"
            % (bind, bind)) in out
    assert ("curl http://%s:8081/v1/completions -H 'Content-Type: application/json' -d '%s'"
            % (bind, json.dumps(SEED_BODY))) in out
    assert "HTTP/1.1 200 OK" in out
    assert '"model": "tweet-summary-1"' in out
    assert '"completion_tokens": 100' in out
    assert '"finish_reason": "length"' in out
    assert re.search(r"check: status 200, model \"tweet-summary-1\", completion_tokens 100, "
                     r"finish_reason \"length\": ok", out), out
    # The pretty-printed JSON parses back to the same response.
    body = out[out.index("HTTP/1.1 200 OK") + len("HTTP/1.1 200 OK\n"):out.index("\ncheck:")]
    assert json.loads(body)["usage"]["completion_tokens"] == 100
    assert body.startswith("{\n  \"")
    assert_no_children(bind, sim_base)


def test_demo_gie_v1_over_http_and_https():
    """examples/gie-v1: the seed model through the InferenceModelRewrite,
    over the HTTP listener and the HTTPS one (certificate made by the demo),
    then the other pool's model through body-based routing. No warning
    about the Secret the demo makes: the manifests' own load said it was
    missing and that the listener could not be served, then served it."""
    bind, sim_base = addresses()
    r = demo("-f", V1_DIR, "--bind", bind, "--sim-base", sim_base)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in r.stderr, r.stderr
    out = r.stdout
    ca = re.search(r"made 1 self-signed certificate for HTTPS listeners: (\S+/ca\.crt)", out)
    assert ca, out
    assert "listener llm-gw-https on %s:8443 (HTTPS)" % bind in out
    assert ("curl --cacert '%s' https://%s:8443/v1/completions" % (ca.group(1), bind)) in out
    checks = re.findall('check: status 200, model "([^"]+)", completion_tokens 100, '
                        'finish_reason "length": ok', out)
    # The InferenceModelRewrite sends tweet-summary to the adapter
    # tweet-summary-1; the answer names the model asked for (GIE v1.5).
    assert checks == ["tweet-summary", "tweet-summary",
                      "meta-llama/Llama-3.1-8B-Instruct"], out
    assert not os.path.exists(ca.group(1))  # the temporary directory is gone
    assert_no_children(bind, sim_base)


def test_demo_keeps_the_warnings_its_secrets_do_not_answer(tmp_path):
    """The warnings the made Secret answers are left out, not the others:
    a document of a kind infergate does not read is still named."""
    d = tmp_path / "manifests"
    shutil.copytree(V1_DIR, str(d))
    (d / "extra.yaml").write_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HttpRoute\n"
        "metadata: {name: typo}\nspec: {}\n")
    bind, sim_base = addresses()
    r = demo("-f", str(d), "--bind", bind, "--sim-base", sim_base)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "extra.yaml:2: warning:" in r.stderr and "HttpRoute" in r.stderr, r.stderr
    assert "cannot be served" not in r.stderr and "not found in the" not in r.stderr, r.stderr
    assert_no_children(bind, sim_base)


def test_run_gie_v1_https_with_curl(tmp_path):
    """`run` prints a curl --cacert line for the HTTPS listener; curl
    verifies the made certificate against the gateway's address."""
    p, out, bind, sim_base, text = start_run(tmp_path, manifests=V1_DIR)
    try:
        ca = re.search(r"curl --cacert '(\S+)' https://%s:8443/" % re.escape(bind), text)
        assert ca, text
        r = subprocess.run(["curl", "-sS", "--cacert", ca.group(1),
                            "https://%s:8443/v1/completions" % bind,
                            "-H", "Content-Type: application/json",
                            "-d", json.dumps(SEED_BODY)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["model"] == "tweet-summary"
        # Without trusting it, curl refuses the certificate.
        r = subprocess.run(["curl", "-sS", "https://%s:8443/v1/models" % bind],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 60, (r.returncode, r.stderr)
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == 0, read_all(out)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_no_children(bind, sim_base)


def test_demo_replicas_override():
    bind, sim_base = addresses()
    r = demo("--bind", bind, "--sim-base", sim_base, "--replicas", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    for i in range(3):
        assert "sim qwen-pool-%d: %s%d:8000" % (i, sim_prefix(sim_base), i + 1) in r.stdout
    assert '"model": "tweet-summary-1"' in r.stdout
    assert_no_children(bind, sim_base)


def start_run(tmp_path, *extra, manifests=SEED_DIR):
    """Starts `run` on the seed manifests and waits until it serves."""
    bind, sim_base = addresses()
    out = open(str(tmp_path / "run.out"), "w+")
    p = subprocess.Popen([IG_BIN, "run", "-f", manifests, "--bind", bind, "--sim-base",
                          sim_base] + list(extra), cwd=REPO, stdout=out,
                         stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 40
    while time.time() < deadline:
        out.seek(0)
        text = out.read()
        if "Ctrl-C to stop" in text:
            return p, out, bind, sim_base, text
        if p.poll() is not None:
            break
        time.sleep(0.1)
    p.kill()
    p.wait()
    out.seek(0)
    pytest.fail("run did not come up:\n" + out.read())


def read_all(out):
    out.seek(0)
    return out.read()


def test_run_serves_until_sigint(tmp_path):
    p, out, bind, sim_base, text = start_run(tmp_path)
    try:
        assert ("curl http://%s:8081/v1/completions -H 'Content-Type: application/json'" % bind
                ) in text
        req = urllib.request.Request("http://%s:8081/v1/completions" % bind,
                                     data=json.dumps(SEED_BODY).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            got = json.loads(resp.read())
        assert got["model"] == "tweet-summary-1"
        assert got["usage"]["completion_tokens"] == 100
        assert leftovers(bind, sim_base) != []
        logs = re.search(r"logs in (/tmp/infergate-run-\S+)", text).group(1)
        assert os.path.isdir(logs)
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == 0, read_all(out)
        assert not os.path.exists(logs)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_no_children(bind, sim_base)


def test_run_stops_when_a_child_dies(tmp_path):
    p, out, bind, sim_base, _ = start_run(tmp_path, "--replicas", "2")
    try:
        r = subprocess.run(["pgrep", "-f", "--", "--host %s2 " % re.escape(sim_prefix(sim_base))],
                           capture_output=True, text=True)
        pids = r.stdout.split()
        assert len(pids) == 1
        os.kill(int(pids[0]), signal.SIGKILL)
        assert p.wait(timeout=30) == 1
        assert "sim qwen-pool-1 exited unexpectedly with code 137" in read_all(out)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_no_children(bind, sim_base)


def test_children_die_with_the_orchestrator(tmp_path):
    p, out, bind, sim_base, text = start_run(tmp_path)
    logs = re.search(r"logs in (/tmp/infergate-run-\S+)", text).group(1)
    assert leftovers(bind, sim_base) != []
    # No chance to clean up: PDEATHSIG must take the children down.
    p.kill()
    p.wait()
    assert_no_children(bind, sim_base)
    for f in os.listdir(logs):
        os.unlink(os.path.join(logs, f))
    os.rmdir(logs)
