"""Markdown tables of scripts/bench/extproc.sh from its runs.jsonl: the
median run of each cell (by decisions/s for the picker alone, by p50 for
the end-to-end runs)."""
import json
import sys
from collections import defaultdict


def median_run(runs, key):
    runs = sorted(runs, key=lambda r: r[key])
    return runs[len(runs) // 2]


def size(nbytes):
    return "%d KB" % round(nbytes / 1024) if nbytes < 1 << 20 else "%.1f MB" % (nbytes / 2**20)


def main(path):
    cells = defaultdict(list)
    for line in open(path):
        r = json.loads(line)
        cells[r["name"].rsplit("-", 1)[0]].append(r)

    print("Table 1: `infergate epp` alone, driven by build/bench/extproc_bench (one HTTP/2")
    print("connection, K streams in flight). Latency: first message sent → the body answer with")
    print("end_of_stream. Picker CPU: the epp's run time over the measured window.")
    print()
    print("| transport | body | K | decisions/s | p50 µs | p90 µs | p99 µs | errors "
          "| picker CPU µs/decision | picker core busy | bench core busy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in sorted((n for n in cells if n.startswith("xp-")),
                       key=lambda n: (n.split("-")[1] == "tls", int(n.split("-")[2]),
                                      int(n.split("-c")[-1]))):
        runs = cells[name]
        r = median_run(runs, "decisions_per_s")
        errors = sum(x["errors"] for x in runs)
        print("| %s | %s | %d | %.0f | %.0f | %.0f | %.0f | %d | %.1f | %.0f %% | %.0f %% |" % (
            "TLS" if r["tls"] else "h2c", size(r["body_bytes"]), r["concurrency"],
            r["decisions_per_s"], r["p50_us"], r["p90_us"], r["p99_us"], errors,
            r.get("picker_cpu_us_per_decision", 0), 100 * r.get("picker_busy", 0),
            100 * r["bench_busy"]))
    print()
    print("Errors: summed over all runs of the cell (warm-up included).")
    print()

    print("Table 2: end to end through `infergate gateway` (1 worker) with its built-in picker,")
    print("and through the same gateway following `infergate epp` over ext_proc (h2c);")
    print("`infergate bench`, non-streamed completions, max_tokens 1. Direct: one simulator,")
    print("no gateway. Latency in ms. epp CPU: the epp's run time per request during the")
    print("ext_proc runs (during the built-in runs it only scrapes).")
    print()
    print("| prompt | in flight | direct p50 / p90 | built-in p50 / p90 | ext_proc p50 / p90 "
          "| added by ext_proc p50 / p90 | req/s built-in / ext_proc | epp CPU µs/req "
          "built-in / ext_proc | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted({n.split("-", 2)[2] for n in cells if n.startswith("e2e-")},
                  key=lambda k: (int(k.split("-c")[0]), int(k.split("-c")[1])))
    for k in keys:
        d, b, x = (median_run(cells["e2e-%s-%s" % (p, k)], "p50_ms")
                   for p in ("direct", "builtin", "extproc"))
        failed = sum(r["failed"] for p in ("direct", "builtin", "extproc")
                     for r in cells["e2e-%s-%s" % (p, k)])
        words = int(k.split("-c")[0])
        print("| %s | %d | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f | %+.3f / %+.3f "
              "| %.0f / %.0f | %.1f / %.1f | %d |" % (
                  "~" + size(words * 5.1 + 80), d["concurrency"], d["p50_ms"], d["p90_ms"],
                  b["p50_ms"], b["p90_ms"], x["p50_ms"], x["p90_ms"],
                  x["p50_ms"] - b["p50_ms"], x["p90_ms"] - b["p90_ms"], b["rps"], x["rps"],
                  b["epp_us_per_req"], x["epp_us_per_req"], failed))


if __name__ == "__main__":
    main(sys.argv[1])
