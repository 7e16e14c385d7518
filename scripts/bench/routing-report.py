#!/usr/bin/env python3
"""Tables, ratios and a combined chart of a routing.sh run.

    routing-report.py DIR SLO_MS [SVG]

Reads DIR/seed-*/<candidate>.json (infergate bench --json; or
DIR/<candidate>.json from a single run), prints markdown on stdout: per
seed, every stage of every candidate, the saturation edge (the highest
offered load where any candidate keeps TTFT p90 within SLO_MS) and each
candidate's output tokens/s and TTFT p90 there against the better of the
two anchors (GIE's default profile and the llm-d router's); then the same
figures side by side across seeds, and how far repeated runs of one
candidate are apart. With SVG, one chart of the first seed (TTFT p90 and
output tokens/s against the offered load).
"""
import json
import os
import sys

ORDER = ["nginx-rr", "nginx-lc", "ig-random", "ig-tree", "ig-gie", "llmd", "ig-x", "ig-default"]
LABEL = {
    "nginx-rr": "nginx round robin",
    "nginx-lc": "nginx least_conn",
    "ig-random": "infergate random-picker",
    "ig-tree": "infergate decision-tree (GIE v0.2.0)",
    "ig-gie": "GIE default profile (--picker gie)",
    "llmd": "llm-d router profile (--picker llm-d)",
    "ig-x": "infergate, experimental config",
    "ig-default": "infergate default (--picker infergate)",
}
ANCHORS = ["ig-gie", "llmd"]
COLOURS = ["#1f77b4", "#d62728", "#9467bd", "#8c564b", "#ff7f0e", "#17becf", "#7f7f7f", "#2ca02c"]


def load(d):
    out = {}
    for name in ORDER:
        p = os.path.join(d, name + ".json")
        if not os.path.exists(p):
            continue
        t = json.load(open(p))["targets"][0]
        rows = {}
        for s in t["stages"]:
            lat = s["latency_ms"]
            g = lambda k, q: (lat.get(k) or {}).get(q)
            rows[s["offered"]] = {
                "ttft50": g("ttft", "p50"), "ttft90": g("ttft", "p90"),
                "e2e90": g("e2e", "p90"), "otok": s["output_tokens_per_s"],
                "ok": s["ok"], "failed": s["failed"],
            }
        out[name] = rows
    return out


def f(v, digits=0):
    return "—" if v is None else ("%.*f" % (digits, v))


def tables(data, slo):
    rates = sorted({r for rows in data.values() for r in rows})
    print("| offered req/s | candidate | TTFT p50 ms | TTFT p90 ms | E2E p90 ms | output tok/s | ok | failed |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rates:
        for name, rows in data.items():
            x = rows.get(r)
            if not x:
                continue
            ok90 = x["ttft90"] is not None and x["ttft90"] <= slo
            mark = "" if ok90 else " ✗"
            print("| %g | %s | %s | %s%s | %s | %s | %d | %d |" % (
                r, LABEL[name], f(x["ttft50"]), f(x["ttft90"]), mark, f(x["e2e90"]),
                f(x["otok"]), x["ok"], x["failed"]))
    print()
    print("✗: TTFT p90 above the %g ms bound." % slo)
    print()
    # The highest load where any candidate meets the bound.
    meet = [r for r in rates if any(
        rows.get(r) and rows[r]["ttft90"] is not None and rows[r]["ttft90"] <= slo
        for rows in data.values())]
    if not meet:
        print("No candidate meets TTFT p90 <= %g ms at any load." % slo)
        return
    top = max(meet)
    print("Highest offered load where any candidate meets TTFT p90 ≤ %g ms: **%g req/s**." % (slo, top))
    print()
    edge_table(data, top)
    return top


def edge_table(data, top):
    """Each candidate at the edge, against nginx round robin and the
    better anchor (the one with more output tokens/s there)."""
    anchors = [a for a in ANCHORS if data.get(a, {}).get(top)]
    best = max(anchors, key=lambda a: data[a][top]["otok"] or 0) if anchors else None
    base = data.get("nginx-rr", {}).get(top)
    print("| candidate (at %g req/s) | TTFT p90 ms | output tok/s | ÷ nginx RR | ÷ better anchor (%s) | anchor TTFT p90 ÷ this |"
          % (top, LABEL[best] if best else "none"))
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in data.items():
        x = rows.get(top)
        if not x or x["otok"] is None or x["ttft90"] is None:
            continue
        rr = "%.2f" % (x["otok"] / base["otok"]) if base and base["otok"] else "—"
        if best:
            b = data[best][top]
            an = "%.2f" % (x["otok"] / b["otok"])
            at = "%.1f" % (b["ttft90"] / x["ttft90"]) if b["ttft90"] else "—"
        else:
            an = at = "—"
        print("| %s | %s | %s | %s | %s | %s |" % (LABEL[name], f(x["ttft90"]), f(x["otok"]),
                                                  rr, an, at))
    print()


def across_seeds(runs, slo):
    """One line per seed: the edge and each candidate's figures there."""
    names = [n for n in ORDER if any(n in d for d in runs.values())]
    print("| seed | edge req/s | " + " | ".join(LABEL[n] + " tok/s (TTFT p90 ms)" for n in names) +
          " | infergate ÷ better anchor |")
    print("|---|---:|" + "---:|" * len(names) + "---:|")
    ratios = []
    for seed, data in sorted(runs.items()):
        rates = sorted({r for rows in data.values() for r in rows})
        meet = [r for r in rates if any(rows.get(r) and rows[r]["ttft90"] is not None
                                        and rows[r]["ttft90"] <= slo for rows in data.values())]
        if not meet:
            continue
        top = max(meet)
        cells = []
        for n in names:
            x = data.get(n, {}).get(top)
            cells.append("%s (%s)" % (f(x["otok"]), f(x["ttft90"])) if x else "—")
        anchors = [data[a][top]["otok"] for a in ANCHORS if data.get(a, {}).get(top)]
        me = data.get("ig-default", {}).get(top)
        ratio = me["otok"] / max(anchors) if me and anchors else None
        if ratio:
            ratios.append(ratio)
        print("| %s | %g | %s | %s |" % (seed, top, " | ".join(cells),
                                          "%.2f" % ratio if ratio else "—"))
    print()
    if ratios:
        print("infergate default ÷ better anchor at the edge: min %.2f, max %.2f over %d seeds."
              % (min(ratios), max(ratios), len(ratios)))
        print()


def spread(runs, slo):
    """How far apart the seeds are: for each candidate and offered load,
    max/min of TTFT p90 over the seeds."""
    names = [n for n in ORDER if any(n in d for d in runs.values())]
    rates = sorted({r for d in runs.values() for rows in d.values() for r in rows})
    if len(runs) < 2:
        return
    print("TTFT p90 across seeds, max ÷ min (1.00 = identical):")
    print()
    print("| offered req/s | " + " | ".join(LABEL[n] for n in names) + " |")
    print("|---:|" + "---:|" * len(names))
    for r in rates:
        cells = []
        for n in names:
            v = [d[n][r]["ttft90"] for d in runs.values() if d.get(n, {}).get(r)
                 and d[n][r]["ttft90"]]
            cells.append("%.2f" % (max(v) / min(v)) if len(v) > 1 else "—")
        print("| %g | %s |" % (r, " | ".join(cells)))
    print()


def svg(data, slo, path):
    w, ph, left, right, top, gap = 760, 260, 70, 250, 36, 64
    rates = sorted({r for rows in data.values() for r in rows})
    xmax = max(rates) * 1.05
    t90max = max((x["ttft90"] or 0) for rows in data.values() for x in rows.values())
    ymax1 = min(t90max, 4 * slo) * 1.05
    ymax2 = max((x["otok"] or 0) for rows in data.values() for x in rows.values()) * 1.1
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
           % (w, top + 2 * ph + gap + 50),
           '<rect width="100%" height="100%" fill="white"/>']

    def px(x):
        return left + x / xmax * (w - left - right)

    def panel(y0, ymax, title, key, clip):
        out.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (left, y0 - 10, title))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'
                   % (left, y0, w - left - right, ph))
        for i in range(6):
            v = ymax * i / 5
            y = y0 + ph - ph * i / 5
            out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (left, w - right, y, y))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%.0f</text>' % (left - 4, y + 4, v))
        for r in rates:
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (px(r), y0 + ph + 14, r))
        for i, (name, rows) in enumerate(data.items()):
            pts = []
            for r in sorted(rows):
                v = rows[r][key]
                if v is None:
                    continue
                v = min(v, ymax) if clip else v
                pts.append("%.1f,%.1f" % (px(r), y0 + ph - v / ymax * ph))
            out.append('<polyline fill="none" stroke-width="2" stroke="%s" points="%s"/>'
                       % (COLOURS[ORDER.index(name)], " ".join(pts)))
        return y0

    y0 = panel(top, ymax1, "TTFT p90 (ms, clipped at %.0f) vs offered requests/s" % ymax1, "ttft90", True)
    ys = top + ph - slo / ymax1 * ph
    out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="4,3"/>'
               % (left, w - right, ys, ys))
    out.append('<text x="%d" y="%.1f">SLO %g ms</text>' % (w - right + 4, ys + 4, slo))
    panel(top + ph + gap, ymax2, "output tokens/s vs offered requests/s", "otok", False)
    for i, name in enumerate(data):
        y = top + 20 + 18 * i
        c = COLOURS[ORDER.index(name)]
        out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>'
                   % (w - right + 10, w - right + 30, y + 60, y + 60, c))
        out.append('<text x="%d" y="%d">%s</text>' % (w - right + 34, y + 64, LABEL[name]))
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def main():
    d, slo = sys.argv[1], float(sys.argv[2])
    seeds = sorted(e for e in os.listdir(d) if e.startswith("seed-"))
    runs = {s[5:]: load(os.path.join(d, s)) for s in seeds} if seeds else {"-": load(d)}
    for seed, data in sorted(runs.items()):
        if seeds:
            print("#### Seed %s" % seed)
            print()
        tables(data, slo)
    if seeds:
        print("#### All seeds")
        print()
        across_seeds(runs, slo)
        spread(runs, slo)
    if len(sys.argv) > 3:
        svg(runs[sorted(runs)[0]], slo, sys.argv[3])


if __name__ == "__main__":
    main()
