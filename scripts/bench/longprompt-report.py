"""The table of `make bench-longprompt` (scripts/bench/longprompt.sh): one
row per cell (servers, path, api, load), from the run with the median
requests/s, and the range of requests/s and gateway CPU over the runs.

    python3 longprompt-report.py RUNS.jsonl"""
import json
import sys


def figures(r):
    st = json.load(open(r["report"]))["targets"][0]["stages"][0]
    n = st["sent"]
    f = {"n": n, "failed": st["failed"], "rps": st["requests_per_s"],
         "tokens": st["input_tokens"] / st["ok"] if st["ok"] else None,
         "ttft": st["latency_ms"]["ttft"], "kb": r["kb"], "idle": r["idle_us_per_s"],
         "bench": r["bench_ms"] * 1e3 / n if n else None,
         "srv": r["srv_ticks"] * 1e6 / r["tick"] / n if n else None,
         "hit": r["prefix_hit"] * 100 if r["prefix_hit"] is not None else None}
    if r["path"] == "gateway" and n:
        f["user"] = r["gw_user"] * 1e6 / r["tick"] / n
        f["sys"] = r["gw_sys"] * 1e6 / r["tick"] / n
        f["busy"] = (r["gw_user"] + r["gw_sys"]) / r["tick"] / st["duration_s"] * 100
        f["faults"] = r["gw_minflt"] / n if "gw_minflt" in r else None
    return f


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def main():
    cells = {}
    for line in open(sys.argv[1]):
        r = json.loads(line)
        load = "c%s" % r["conc"] if r["load"] == "closed" else "%s/s" % r["rate"]
        cells.setdefault((r["up"], r["path"], r["api"], load), []).append(figures(r))
    print("| servers | path | api | load | requests | failed | req/s | req/s range | prompt tokens "
          "| request KB | gateway CPU % | gw µs/req user | gw µs/req sys | gw µs/req total "
          "| gw µs/req range | req/s per gw core | gw faults/req | gw idle µs/s | bench µs/req "
          "| servers µs/req | prefix hit % | TTFT p50 ms | TTFT p99 ms |")
    print("|---|---|---|---|" + "---:|" * 19)
    for (up, path, api, load), runs in cells.items():
        runs.sort(key=lambda f: f["rps"])
        m = runs[(len(runs) - 1) // 2]
        gw = "user" in m
        total = m["user"] + m["sys"] if gw else None
        totals = [f["user"] + f["sys"] for f in runs if "user" in f]
        row = [up, path, api, load, m["n"], m["failed"], fmt(m["rps"]),
               "%.0f-%.0f" % (runs[0]["rps"], runs[-1]["rps"]), fmt(m["tokens"]),
               fmt(m["kb"]), fmt(m.get("busy")), fmt(m.get("user")), fmt(m.get("sys")),
               fmt(total), "%.0f-%.0f" % (min(totals), max(totals)) if totals else "-",
               fmt(1e6 / total if total else None), fmt(m.get("faults")), fmt(m["idle"]),
               fmt(m["bench"]),
               fmt(m["srv"]), fmt(m["hit"]), fmt(m["ttft"]["p50"], "%.1f"), fmt(m["ttft"]["p99"], "%.1f")]
        print("| " + " | ".join(str(x) for x in row) + " |")
    print()
    print("load: cN, a closed loop with N requests in flight; R/s, R requests/s (open loop, "
          "at most 256 in flight). Each row is the run with the median req/s of its cell; the ranges span all runs. "
          "gw: the gateway process (/proc/PID/stat utime and stime over the measured run, "
          "divided by the requests sent); req/s per gw core = 10^6 / gw µs/req total; gw faults: "
          "its minor page faults (memory touched afresh) per request; gw idle: "
          "its CPU with no request running (scrapes), included in the per-request figures. "
          "bench and servers µs/req: CPU of the load generator and of the model servers (all "
          "on CPU 0) per request sent; prefix hit %: prompt tokens the simulators found in their "
          "prefix caches. TTFT as `infergate bench` reports it (first content "
          "chunk).")


main()
