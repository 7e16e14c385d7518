"""deploy/grafana/infergate-dashboard.json against what the gateway really
exports (issue 12): a real gateway with simulators serves a few requests
(a streamed one for TTFT/TPOT, an unknown model for the error series), and
every PromQL expression of the dashboard (panel targets and template
variables) is taken apart by a small tokenizer: each metric it names must be
a series name in the admin listener's /metrics, each label it matches on or
groups by must be a label of those series, rate()/increase() must be applied
to counters or histogram parts, and histogram_quantile() to _bucket series
grouped by le."""
import copy
import json
import os
import re

from test_gateway import Cluster, call, post_json, seed_body

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana",
                         "infergate-dashboard.json")

AGGREGATIONS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk",
                "quantile", "count_values", "group"}
FUNCTIONS = {"abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
             "clamp_max", "clamp_min", "count_over_time", "delta", "deriv", "exp", "floor",
             "histogram_quantile", "idelta", "increase", "irate", "label_replace", "label_join",
             "last_over_time", "ln", "log2", "log10", "max_over_time", "min_over_time",
             "predict_linear", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn",
             "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time",
             "timestamp", "vector", "label_values"}
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {"bool", "offset", "and", "or", "unless", "inf", "nan"}
MATCH_OPS = {"=", "!=", "=~", "!~"}

TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},])
)""", re.X)


def tokenize(expr):
    out, i = [], 0
    expr = expr.rstrip()
    while i < len(expr):
        m = TOKEN.match(expr, i)
        assert m and m.end() > i, "cannot read PromQL at %r" % expr[i:]
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        i = m.end()
    return out


def closing(toks, i):
    """Index of the ')' matching the '(' at toks[i]."""
    assert toks[i] == ("op", "("), toks[i:]
    depth = 0
    for j in range(i, len(toks)):
        if toks[j] == ("op", "("):
            depth += 1
        elif toks[j] == ("op", ")"):
            depth -= 1
            if depth == 0:
                return j
    raise AssertionError("unbalanced parentheses")


def label_list(toks, i):
    """The label names of a '(a, b)' list at toks[i], and the index after it."""
    end = closing(toks, i)
    names = [v for k, v in toks[i + 1:end] if k == "ident"]
    return names, end + 1


def analyse(expr):
    """What an expression refers to: a list of metric uses (name, matcher
    label names, innermost function) and of groupings (label names, metric
    names the grouping applies to). Raises on unknown functions."""
    toks = tokenize(expr)
    metrics, groupings = [], []
    stack = []  # per open '(': the function it calls, or None
    i = 0
    while i < len(toks):
        kind, v = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else (None, None)
        if kind == "op" and v == "(":
            stack.append(None)
        elif kind == "op" and v == ")":
            stack.pop()
        elif kind == "ident" and v in GROUPING:
            # on()/ignoring()/group_*() of a binary operation: the labels
            # must be on the whole expression's metrics; by() and without()
            # are handled with their aggregation below.
            if nxt == ("op", "("):
                labels, after = label_list(toks, i + 1)
                groupings.append((labels, None))
                i = after
                continue
        elif kind == "ident" and v in KEYWORDS:
            pass
        elif kind == "ident" and v in AGGREGATIONS:
            j = i + 1
            labels = []
            if toks[j][0] == "ident" and toks[j][1] in ("by", "without"):
                labels, j = label_list(toks, j + 1)
            end = closing(toks, j)
            inner = analyse(" ".join(t for _, t in toks[j + 1:end]))
            if end + 1 < len(toks) and toks[end + 1][1] in ("by", "without"):
                more, after = label_list(toks, end + 2)
                labels += more
            else:
                after = end + 1
            for name, matchers, fn in inner[0]:
                metrics.append((name, matchers, fn or v))
            groupings += inner[1]
            if labels:
                groupings.append((labels, [m for m, _, _ in inner[0]]))
            i = after
            continue
        elif kind == "ident" and nxt == ("op", "("):
            assert v in FUNCTIONS, "unknown function %s() in %s" % (v, expr)
            stack.append(v)
            i += 2
            continue
        elif kind == "ident":
            matchers = []
            if nxt == ("op", "{"):
                j = i + 2
                while toks[j] != ("op", "}"):
                    if toks[j][0] == "ident" and toks[j + 1][1] in MATCH_OPS:
                        matchers.append(toks[j][1])
                    j += 1
                i = j
            fn = next((f for f in reversed(stack) if f), None)
            metrics.append((v, matchers, fn))
        i += 1
    return metrics, groupings


def parse_exposition(text):
    """{series name: set of label names} and {family name: type}."""
    series, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? \S+$", line)
        assert m, line
        labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="(?:[^"\\]|\\.)*"', m.group(2) or ""))
        series.setdefault(m.group(1), set()).update(labels)
    return series, types


def series_type(name, types):
    if name in types:
        return types[name]
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
            return "histogram" + suffix
    return None


def expressions(dash):
    """(where, PromQL) of every panel target and template variable query."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append(("panel %r %s" % (p.get("title"), t.get("refId")), t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append(("variable $%s" % v["name"], q))
    return out


def check(dash, series, types):
    """Every mistake of the dashboard against this exposition."""
    problems = []
    for where, expr in expressions(dash):
        try:
            metrics, groupings = analyse(expr)
        except AssertionError as e:
            problems.append("%s: %s" % (where, e))
            continue
        if expr.startswith("label_values("):
            # label_values(metric, label): the label must be on the metric.
            metric, label = [a.strip() for a in expr[len("label_values("):-1].split(",")]
            metrics = [(metric, [label], None)]
        if not metrics:
            problems.append("%s: names no metric: %s" % (where, expr))
        names = [m for m, _, _ in metrics]
        for name, matchers, fn in metrics:
            if name not in series:
                problems.append("%s: %s is not exported" % (where, name))
                continue
            for label in matchers:
                if label not in series[name]:
                    problems.append("%s: %s has no label %s" % (where, name, label))
            kind = series_type(name, types)
            if fn in COUNTER_FUNCTIONS and kind not in ("counter", "histogram_bucket",
                                                        "histogram_sum", "histogram_count"):
                problems.append("%s: %s() of %s, a %s" % (where, fn, name, kind))
            if fn not in COUNTER_FUNCTIONS and kind and kind.startswith("histogram_"):
                problems.append("%s: %s used without rate()" % (where, name))
        for labels, applies_to in groupings:
            for name in applies_to if applies_to is not None else names:
                for label in labels:
                    if name in series and label not in series[name]:
                        problems.append("%s: grouping by %s, not a label of %s"
                                        % (where, label, name))
        if "histogram_quantile" in expr:
            for name, _, _ in metrics:
                if not name.endswith("_bucket"):
                    problems.append("%s: histogram_quantile of %s" % (where, name))
            if not any("le" in labels for labels, _ in groupings):
                problems.append("%s: histogram_quantile without grouping by le" % where)
    return problems


def scrape(tmp_path, procs):
    c = Cluster(procs, tmp_path, nsims=2)
    status, _, r = post_json(c.base, "/v1/completions", seed_body())
    assert status == 200, r
    body = dict(seed_body(), stream=True, max_tokens=5)
    status, _, data = call(c.base, "/v1/completions", body)
    assert status == 200 and b"data: [DONE]" in data, data
    status, _, r = post_json(c.base, "/v1/completions", seed_body("no-such-model"))
    assert status == 404, r
    c.wait_scraped()
    status, _, data = call(c.admin, "/metrics")
    assert status == 200
    c.stop()
    return parse_exposition(data.decode())


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def test_dashboard_shape():
    dash = load_dashboard()
    assert dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = set()
    for p in dash["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for want in ("request rate", "errors by code", "ttft", "tpot", "queue depth per endpoint",
                 "kv cache use per endpoint", "prefix cache hit ratio", "shed"):
        assert want in titles, want


def test_tokenizer():
    metrics, groupings = analyse(
        'histogram_quantile(0.9, sum by (le, model_name) (rate(a_bucket{x=~"$m", y!="b c"}'
        '[$__rate_interval]))) / on (z) max(b) without (w) + sum(rate(c_total[5m])) by (k)')
    assert metrics == [("a_bucket", ["x", "y"], "rate"), ("b", [], "max"),
                       ("c_total", [], "rate")]
    assert groupings == [(["le", "model_name"], ["a_bucket"]), (["z"], None), (["w"], ["b"]),
                         (["k"], ["c_total"])]


def test_dashboard_matches_exported_metrics(procs, tmp_path):
    series, types = scrape(tmp_path, procs)
    dash = load_dashboard()
    assert check(dash, series, types) == []
    # Every metric the issue names is on some panel.
    used = {m for _, e in expressions(dash) for m, _, _ in analyse(e)[0]}
    for want in ("inference_objective_request_total", "inference_objective_request_error_total",
                 "inference_objective_request_ttft_seconds_bucket",
                 "inference_objective_request_tpot_seconds_bucket",
                 "inference_pool_per_pod_queue_size",
                 "inference_pool_per_pod_kv_cache_utilization",
                 "inference_extension_prefix_indexer_hit_ratio_sum"):
        assert want in used, want

    # The check finds what it is for: each mistake below is reported.
    def broken(edit):
        d = copy.deepcopy(dash)
        t = d["panels"][1]["targets"][0]
        t["expr"] = edit(t["expr"])
        return check(d, series, types)

    assert broken(lambda e: e.replace("request_total", "requests_total"))
    assert broken(lambda e: e.replace("by (model_name,", "by (pod,"))
    assert broken(lambda e: e.replace('model_name=~', 'model=~'))
    assert broken(lambda e: e.replace("rate(", "rat("))
    assert broken(lambda e: "rate(inference_pool_ready_pods[5m])")
    assert broken(lambda e: "histogram_quantile(0.5, sum by (model_name) "
                            "(rate(inference_objective_request_ttft_seconds_bucket[5m])))")
    assert broken(lambda e: "inference_objective_request_ttft_seconds_sum")
