"""`infergate bench` end to end against `infergate sim` with known latencies:
the measured TTFT, ITL and end-to-end times must match what the simulator
was told to take, counts must be exact, and failures must be reported,
not crash the tool."""
import csv
import json
import re
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import IG_BIN, free_port, unique_loopback, wait_http, wait_port
from fakepod import FakePod


def start_sim(procs, *args):
    host = unique_loopback()
    port = free_port(host)
    p = procs.start("sim", "--host", host, "--port", port, *args, name="sim")
    base = "http://%s:%d" % (host, port)
    wait_http(base + "/health", proc=p)
    return base


def bench(*args, timeout=30):
    return subprocess.run([IG_BIN, "bench", "--no-progress"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


SIM_ARGS = ("--ttft-ms", "50", "--itl-ms", "10", "--max-num-seqs", "1000",
            "--prefill-us-per-token", "0")


def test_latencies_match_the_simulator(procs, tmp_path):
    base = start_sim(procs, *SIM_ARGS)
    out = tmp_path / "b.json"
    # Arrivals 333 ms apart and answers of about 250 ms: requests do not
    # overlap, so the simulator's batching (a prefill step delays the
    # decode of others) cannot move the figures away from its flags.
    r = bench("--url", base, "--rate", 3, "--requests", 12, "--input-len", 16,
              "--output-len", 20, "--stream", "--json", out, "--slo", "ttft=1s")
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["percentile_method"] == "linear"
    st = rep["targets"][0]["stages"][0]
    assert st["sent"] == 12 and st["ok"] == 12 and st["failed"] == 0
    assert st["errors"] == {}
    assert st["output_tokens"] == 12 * 20 and st["input_tokens"] == 12 * 16
    lat = st["latency_ms"]
    assert 50 <= lat["ttft"]["p50"] <= 90, lat["ttft"]
    assert 8 <= lat["itl"]["p50"] <= 20, lat["itl"]
    assert lat["itl"]["n"] == 12 * 19
    expect = lat["ttft"]["p50"] + 19 * lat["itl"]["p50"]
    assert abs(lat["e2e"]["p50"] - expect) <= 0.15 * expect, (lat["e2e"], expect)
    assert 240 <= lat["e2e"]["p50"] <= 400
    assert st["good"] == 12 and st["goodput_fraction"] == 1
    assert "TTFT" in r.stdout and "E2E" in r.stdout


def test_concurrency_chat_shared_prefix_and_files(procs, tmp_path):
    base = start_sim(procs, *SIM_ARGS)
    files = {k: tmp_path / ("b." + k) for k in ("csv", "svg")}
    per = tmp_path / "req.csv"
    r = bench("--url", base, "--concurrency", 4, "--requests", 24, "--api", "chat",
              "--workload", "shared-prefix", "--groups", 2, "--prompts-per-group", 3,
              "--system-prompt-len", 30, "--question-len", 5, "--output-len", 5,
              "--objectives", "critical:1", "--csv", files["csv"], "--svg", files["svg"],
              "--per-request", per)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(files["csv"])))
    assert len(rows) == 1 and rows[0]["sent"] == "24" and rows[0]["ok"] == "24"
    reqs = list(csv.DictReader(open(per)))
    assert len(reqs) == 24
    assert all(q["status"] == "200" and q["output_tokens"] == "5" for q in reqs)
    # 35 words, and the chat template's tokens: the server's usage counts
    # what it tokenized.
    ins = {int(q["input_tokens"]) for q in reqs}
    assert len(ins) == 1 and ins.pop() > 35, reqs
    assert sum(int(q["input_tokens"]) for q in reqs) == sim_counter(base, "prompt_tokens_total")
    svg = files["svg"].read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


def test_whole_answers_have_no_tpot(procs, tmp_path):
    """--no-stream: a whole answer shows no token's time but the last (its
    TTFT is its E2E), so TPOT is absent, not ~0: null in JSON, empty in
    CSV, "-" in the table, and a TPOT bound does not apply."""
    base = start_sim(procs, *SIM_ARGS)
    out, per, table = tmp_path / "b.json", tmp_path / "req.csv", tmp_path / "b.csv"
    r = bench("--url", base, "--concurrency", 2, "--requests", 4, "--output-len", 5,
              "--no-stream", "--json", out, "--csv", table, "--per-request", per,
              "--slo", "tpot=1ms")
    assert r.returncode == 0, r.stderr
    reqs = list(csv.DictReader(open(per)))
    assert len(reqs) == 4 and all(q["output_tokens"] == "5" for q in reqs)
    assert all(q["tpot_ms"] == "" and q["ttft_ms"] != "" for q in reqs), reqs
    assert list(csv.DictReader(open(table)))[0]["tpot_p50_ms"] == ""
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    assert st["latency_ms"]["tpot"]["n"] == 0 and st["latency_ms"]["tpot"]["p50"] is None
    assert st["latency_ms"]["ttft"]["n"] == 4
    assert st["good"] == 4
    row = [line.split() for line in r.stdout.splitlines() if line.split()[:1] == ["TPOT"]]
    assert row and row[0][1:] == ["0"] + ["-"] * 6, r.stdout


def test_stages_and_two_targets(procs, tmp_path):
    a = start_sim(procs, *SIM_ARGS)
    b = start_sim(procs, "--ttft-ms", "20", "--itl-ms", "5", "--prefill-us-per-token", "0")
    out = tmp_path / "b.json"
    r = bench("--target", "a=" + a, "--target", "b=" + b, "--load", "poisson",
              "--stages", "10:0.5s,20:0.5s", "--output-len", 4, "--input-len", 8,
              "--json", out)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert [t["name"] for t in rep["targets"]] == ["a", "b"]
    for t in rep["targets"]:
        assert [s["offered"] for s in t["stages"]] == [10, 20]
        assert all(s["failed"] == 0 and s["sent"] > 0 for s in t["stages"])
    ta = rep["targets"][0]["stages"][0]["latency_ms"]["ttft"]["p50"]
    tb = rep["targets"][1]["stages"][0]["latency_ms"]["ttft"]["p50"]
    assert tb < ta
    assert "comparison" in r.stdout and "b/a" in r.stdout


def sim_counter(base, name):
    page = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    m = re.search(r"^vllm:%s\{[^}]*\} (\S+)$" % name, page, re.M)
    assert m, name
    return float(m.group(1))


def test_agentic_sessions_against_the_simulator(procs, tmp_path):
    # A KV cache big enough for every live conversation: each turn finds
    # the previous prompt of its session cached.
    base = start_sim(procs, "--ttft-ms", "0", "--itl-ms", "0", "--prefill-us-per-token", "0",
                     "--max-model-len", "20000", "--num-gpu-blocks", "20000")
    per = tmp_path / "req.csv"
    out = tmp_path / "b.json"
    r = bench("--url", base, "--workload", "agentic", "--sessions", 4, "--turns", 5,
              "--system-prompt-len", 2000, "--turn-len", 300, "--output-len", 8,
              "--concurrency", 2, "--requests", 40, "--seed", 3, "--per-request", per,
              "--json", out)
    assert r.returncode == 0, r.stderr
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    assert st["ok"] == 40 and st["output_tokens"] == 40 * 8
    sizes = sorted(int(q["input_tokens"]) for q in csv.DictReader(open(per)))
    # Turn t (0-4) carries 2000 + 300 (t + 1) + 8 t tokens; the four slots
    # start 0, 1, 2 and 3 turns in, so the 40 requests cover every turn
    # equally.
    assert sizes == sorted([2000 + 300 * (t + 1) + 8 * t for t in range(5)] * 8)
    # The simulator tokenized exactly what the bench counted ...
    assert sim_counter(base, "prompt_tokens_total") == st["input_tokens"] == sum(sizes)
    # ... and found most of each prompt in its prefix cache: the system
    # prompt is shared and every turn extends its session's previous one.
    hits = sim_counter(base, "prefix_cache_hits_total")
    queries = sim_counter(base, "prefix_cache_queries_total")
    assert hits / queries > 0.8, (hits, queries)


def test_agentic_requests_carry_session_and_conversation(tmp_path):
    host = unique_loopback()
    pod = FakePod(host, free_port(host), mode="json")
    try:
        r = bench("--url", "http://" + pod.address, "--workload", "agentic", "--api", "chat",
                  "--sessions", 3, "--turns", 2, "--system-prompt-len", 6, "--turn-len", 4,
                  "--output-len", 2, "--concurrency", 1, "--requests", 9, "--model", "m")
        assert r.returncode == 0, r.stderr
        reqs = pod.completions()
        assert len(reqs) == 9
        ids = [q.headers.get("x-session-id") for q in reqs]
        assert all(i and re.fullmatch(r"[0-9a-f]{16}", i) for i in ids), ids
        # Sessions take turns: three live at once; the slots of the first
        # requests start 0, 0 and 1 turns in, and a session ends after two.
        assert ids[0] != ids[1] and ids[3] == ids[0] and ids[4] == ids[1]
        assert ids[5] != ids[2] and ids[6] != ids[0] and len(set(ids)) == 6
        conv = {}
        for q, sid in zip(reqs, ids):
            body = json.loads(q.body)
            assert body["model"] == "m" and body["max_tokens"] == 2
            msgs = body["messages"]
            roles = [m["role"] for m in msgs]
            assert roles[0] == "system" and roles[-1] == "user"
            assert roles[1:] in (["user"], ["user", "assistant", "user"])
            if sid in conv:  # the second turn extends the first
                assert msgs[:len(conv[sid])] == conv[sid]
                assert len(msgs) == len(conv[sid]) + 2
            conv[sid] = msgs
        # --no-session-header leaves it out; --session-header renames it.
        r = bench("--url", "http://" + pod.address, "--workload", "agentic",
                  "--session-header", "x-conv", "--requests", 2, "--rate", 50,
                  "--system-prompt-len", 5, "--turn-len", 2, "--output-len", 1)
        assert r.returncode == 0, r.stderr
        r = bench("--url", "http://" + pod.address, "--workload", "agentic",
                  "--no-session-header", "--requests", 2, "--rate", 50,
                  "--system-prompt-len", 5, "--turn-len", 2, "--output-len", 1)
        assert r.returncode == 0, r.stderr
        last = pod.completions()[9:]
        assert [bool(q.headers.get("x-conv")) for q in last] == [True, True, False, False]
        assert not any(q.headers.get("x-session-id") for q in last)
    finally:
        pod.stop()


GATEWAY_DOCS = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: infergate
  listeners: [{{name: llm, protocol: HTTP, port: {gwport}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{group: inference.networking.x-k8s.io, kind: InferencePool, name: p}}]}}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {{name: p}}
spec:
  targetPortNumber: {simport}
  selector: {{app: sim}}
  extensionRef: {{name: epp}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {{name: m}}
spec:
  modelName: m
  poolRef: {{name: p}}
"""

RANDOM_PICKER = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: random-picker
"""

SAN_ERRORS = ("ERROR: AddressSanitizer", "runtime error", "ERROR: LeakSanitizer")


NO_TIME = ("--ttft-ms", "0", "--itl-ms", "0", "--prefill-us-per-token", "0")


def sims_behind_gateway(procs, tmp_path, n, picker=None, gw_args=(), sim_args=NO_TIME):
    """n simulators sharing one port on loopback addresses of their own and
    a one-worker gateway over them (its default picker unless picker is
    an EndpointPickerConfig); returns (gateway URL, simulator URLs,
    the gateway process)."""
    hosts = [unique_loopback() for _ in range(n)]
    simport = free_port(hosts[0])
    # A KV cache big enough for every live conversation, and no simulated
    # time: what a turn finds cached depends only on where it is routed.
    sims = [procs.start("sim", "--host", h, "--port", simport, "--served-model-name", "m",
                        *sim_args, "--max-model-len", "20000", "--num-gpu-blocks", "20000",
                        name="sim")
            for h in hosts]
    bases = ["http://%s:%d" % (h, simport) for h in hosts]
    for b, p in zip(bases, sims):
        wait_http(b + "/health", proc=p)
    gwhost = unique_loopback()
    gwport = free_port(gwhost)
    docs = GATEWAY_DOCS.format(gwport=gwport, simport=simport)
    for i, h in enumerate(hosts):
        docs += ("---\napiVersion: v1\nkind: Pod\nmetadata: {name: sim-%d, labels: {app: sim}}\n"
                 "status: {podIP: %s}\n" % (i, h))
    (tmp_path / "gw.yaml").write_text(docs)
    admin = "%s:%d" % (gwhost, free_port(gwhost))
    args = ["gateway", "-f", tmp_path / "gw.yaml", "--bind", gwhost, "--admin", admin,
            "--workers", "1", *gw_args]
    if picker:
        (tmp_path / "picker.yaml").write_text(picker)
        args += ["--picker-config", tmp_path / "picker.yaml"]
    gw = procs.start(*args, name="gateway")
    wait_port(gwhost, gwport, proc=gw)
    # Every simulator in rotation: its first scrape answered.
    deadline = time.time() + 10
    while True:
        pools = json.loads(urllib.request.urlopen("http://%s/pools" % admin, timeout=5).read())
        eps = [e for p in pools["pools"] for e in p["endpoints"]]
        if len(eps) == n and all(e["metrics_age_ms"] is not None for e in eps):
            break
        assert time.time() < deadline, pools
        time.sleep(0.02)
    return "http://%s:%d" % (gwhost, gwport), bases, gw


def stop_clean(procs, p):
    """SIGTERM: p drains and exits 0, and its log has no sanitizer report."""
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=15)
    log = procs.output(p)
    for s in SAN_ERRORS:
        assert s not in log, log
    assert rc == 0, log


# Six conversations of four turns over three simulators: a 300-word system
# prompt shared by all, 600 new words a turn, answers of 4 tokens.
AGENTIC = ("--model", "m", "--workload", "agentic", "--sessions", 6, "--turns", 4,
           "--system-prompt-len", 300, "--turn-len", 600, "--output-len", 4, "--stream",
           "--concurrency", 3, "--requests", 48, "--seed", 3)


@pytest.mark.parametrize("picker", ["infergate", "gie", "random"])
def test_agentic_sessions_through_the_gateway(procs, tmp_path, picker):
    if picker == "random":
        url, sims, gw = sims_behind_gateway(procs, tmp_path, 3, RANDOM_PICKER)
    else:
        url, sims, gw = sims_behind_gateway(procs, tmp_path, 3, gw_args=("--picker", picker))
    per = tmp_path / "req.csv"
    out = tmp_path / "b.json"
    args = AGENTIC + ("--per-request", per, "--json", out)
    if picker == "random":
        args += ("--no-session-header",)
    r = bench("--url", url, *args)
    assert r.returncode == 0, r.stderr
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    assert st["sent"] == st["ok"] == 48 and st["failed"] == 0, st
    assert st["output_tokens"] == 48 * 4
    # Turn t (0-3) carries 300 + 600 (t + 1) + 4 t tokens; the six slots
    # start 0, 0, 1, 2, 2 and 3 turns in and run 8 turns each, so every
    # turn is sent 12 times.
    sizes = sorted(int(q["input_tokens"]) for q in csv.DictReader(open(per)))
    assert sizes == sorted([300 + 600 * (t + 1) + 4 * t for t in range(4)] * 12)
    # The gateway handed every request, whole, to exactly one simulator:
    # they tokenized what the bench counted, no more, no less.
    prompt = [sim_counter(b, "prompt_tokens_total") for b in sims]
    assert sum(prompt) == st["input_tokens"] == sum(sizes), prompt
    served = [b for b, n in zip(sims, prompt) if n > 0]
    assert len(served) >= 2, prompt  # sessions spread over the pool
    hits = sum(sim_counter(b, "prefix_cache_hits_total") for b in sims)
    queries = sum(sim_counter(b, "prefix_cache_queries_total") for b in sims)
    assert queries == sum(sizes)
    # Routing on (the session id in x-session-id; infergate's default
    # picker or GIE's default profile), each turn goes where its session's
    # previous prompt is cached: about 60 % of the prompt tokens hit. A
    # random pick without the session id finds the previous turn a third of
    # the time: 32-39 %.
    if picker == "random":
        assert hits / queries < 0.5, (hits, queries)
    else:
        assert hits / queries > 0.55, (hits, queries)
    stop_clean(procs, gw)
    for p in procs.procs:
        if p is not gw:
            stop_clean(procs, p)


def test_access_log_per_stage(procs, tmp_path):
    """--access-log: bench joins the gateway's log on its own x-request-id
    and reports, per bench stage, where the time went."""
    log = tmp_path / "access.log"
    # Lines of an earlier run: bench reads only what is written after it starts.
    log.write_text('{"request_id":"bench-00000000-0","queue_ms":1}\n')
    url, sims, gw = sims_behind_gateway(
        procs, tmp_path, 2, gw_args=("--access-log", log),
        sim_args=("--ttft-ms", "30", "--itl-ms", "5", "--prefill-us-per-token", "0"))
    # Another client's request in the log during the run.
    urllib.request.urlopen(urllib.request.Request(
        url + "/v1/completions", data=b'{"model":"m","prompt":"a b","max_tokens":2}',
        headers={"content-type": "application/json", "x-request-id": "other"}), timeout=10)
    out, csvf = tmp_path / "b.json", tmp_path / "b.csv"
    r = bench("--url", url, "--model", "m", "--load", "constant", "--stages", "20:1s,40:1s",
              "--requests", 10, "--output-len", 8, "--input-len", 10, "--warmup", 2,
              "--access-log", log, "--json", out, "--csv", csvf)
    assert r.returncode == 0, r.stderr
    assert "per-stage (gateway access log): matched 10, unmatched 0" in r.stdout, r.stdout
    lines = [json.loads(x) for x in log.read_text().splitlines()[1:]]
    ours = [x for x in lines if x["request_id"].startswith("bench-")]
    assert len(ours) == 2 + 2 * 10 and len({x["request_id"] for x in ours}) == len(ours)
    stages = json.loads(out.read_text())["targets"][0]["stages"]
    sim_eps = {b[len("http://"):] for b in sims}
    for st in stages:
        ps = st["per_stage"]
        assert ps["matched"] == st["sent"] == 10 and ps["unmatched"] == 0, ps
        assert ps["retried"] == 0 and ps["reasons"] == {}, ps
        assert sum(ps["endpoints"].values()) == 10 and set(ps["endpoints"]) <= sim_eps, ps
        lat = ps["latency_ms"]
        for k in ("queue", "gateway_ttft", "client_minus_gateway_ttft", "gateway_e2e",
                  "client_minus_gateway_e2e"):
            assert lat[k]["n"] == 10, (k, lat[k])
        assert lat["queue"]["min"] >= 0
        # The gateway's view sits inside the client's: its TTFT (to the
        # first token it relayed) comes before the client's, its duration
        # within the client's E2E, up to the gateway's own clock reading
        # after its last write, which a busy machine may delay past the
        # client's read (CI saw -1.3 ms): the bound is for that noise, not
        # a 30 ms stream's worth.
        assert lat["client_minus_gateway_ttft"]["min"] >= 0, lat
        assert lat["gateway_ttft"]["p99"] <= st["latency_ms"]["ttft"]["max"]
        assert lat["client_minus_gateway_e2e"]["min"] >= -20, lat
        assert 0 < lat["gateway_e2e"]["p50"] <= st["latency_ms"]["e2e"]["max"]
        assert lat["gateway_e2e"]["p50"] >= 30 + 7 * 5 - 5, lat
    rows = list(csv.DictReader(open(csvf)))
    assert [x["gw_matched"] for x in rows] == ["10", "10"]
    assert all(float(x["queue_p50_ms"]) >= 0 for x in rows)
    stop_clean(procs, gw)
    for p in procs.procs:
        if p is not gw:
            stop_clean(procs, p)


def test_access_log_errors(procs, tmp_path):
    base = start_sim(procs, *SIM_ARGS)
    # A log that does not exist: said, after the report, and exit 1.
    r = bench("--url", base, "--requests", 2, "--rate", 50, "--access-log",
              tmp_path / "none.log")
    assert r.returncode == 1 and "none.log" in r.stderr, r.stderr
    assert "TTFT" in r.stdout
    # A text-format log (written while bench runs): a clear error.
    log = tmp_path / "text.log"
    log.write_text("")

    def write_later():
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write('time=2025-01-01T00:00:00.000Z request_id=x status=200\n')
    t = threading.Thread(target=write_later)
    t.start()
    r = bench("--url", base, "--requests", 5, "--rate", 10, "--access-log", log)
    t.join()
    assert r.returncode == 1 and "--access-log-format json" in r.stderr, r.stderr
    # bench's own x-request-id cannot be joined when --header replaces it.
    r = bench("--url", base, "--access-log", log, "--header", "X-Request-Id: mine")
    assert r.returncode == 2 and "x-request-id" in r.stderr


def test_dead_port_reports_connection_errors(tmp_path):
    port = free_port()
    out = tmp_path / "b.json"
    r = bench("--url", "http://127.0.0.1:%d" % port, "--concurrency", 2, "--requests", 10,
              "--json", out)
    # Documented: exit 1 when more than --max-error-rate (default 0) failed.
    assert r.returncode == 1, (r.returncode, r.stderr)
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    assert st["sent"] == 10 and st["failed"] == 10 and st["errors"] == {"connect": 10}
    assert "connect=10" in r.stdout
    r = bench("--url", "http://127.0.0.1:%d" % port, "--requests", 3, "--rate", 100,
              "--max-error-rate", 1)
    assert r.returncode == 0, r.stderr


def test_usage_errors_and_help():
    r = bench("--url", "http://127.0.0.1:1", "--bogus")
    assert r.returncode == 2 and "--bogus" in r.stderr
    r = bench("--rate", "abc", "--url", "http://127.0.0.1:1")
    assert r.returncode == 2
    r = bench("--rate", 1)
    assert r.returncode == 2 and "target" in r.stderr
    r = bench("--url", "http://127.0.0.1:1", "--workload", "agentic", "--session-header", "a b")
    assert r.returncode == 2 and "session-header" in r.stderr
    r = bench("--url", "http://127.0.0.1:1", "--workload", "agentic", "--turn-len", "0")
    assert r.returncode == 2 and "turn-len" in r.stderr
    r = bench("--help")
    assert r.returncode == 0
    for flag in ("--rate", "--poisson", "--concurrency", "--stages", "--rates", "--workload",
                 "--models", "--objectives", "--slo", "--json", "--csv", "--svg", "--target",
                 "--per-request", "--stream", "--api", "--sessions", "--turns", "--turn-len",
                 "--session-header", "--access-log"):
        assert flag in r.stdout, flag
