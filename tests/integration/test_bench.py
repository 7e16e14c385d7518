"""`infergate bench` end to end against `infergate sim` with known latencies:
the measured TTFT, ITL and end-to-end times must match what the simulator
was told to take, counts must be exact, and failures must be reported,
not crash the tool."""
import csv
import json
import subprocess

from conftest import IG_BIN, free_port, unique_loopback, wait_http


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
    r = bench("--help")
    assert r.returncode == 0
    for flag in ("--rate", "--poisson", "--concurrency", "--stages", "--rates", "--workload",
                 "--models", "--objectives", "--slo", "--json", "--csv", "--svg", "--target",
                 "--per-request", "--stream", "--api"):
        assert flag in r.stdout, flag
