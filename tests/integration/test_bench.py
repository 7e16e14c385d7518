"""`infergate bench` end to end against `infergate sim` with known latencies:
the measured TTFT, ITL and end-to-end times must match what the simulator
was told to take, counts must be exact, and failures must be reported,
not crash the tool."""
import csv
import json
import re
import subprocess
import urllib.request

from conftest import IG_BIN, free_port, unique_loopback, wait_http
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
    assert all(q["input_tokens"] == "35" for q in reqs)
    svg = files["svg"].read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


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
                 "--session-header"):
        assert flag in r.stdout, flag
