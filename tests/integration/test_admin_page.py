"""The admin listener's live page (issue 12, point 3): GET / is one
self-contained HTML page that polls /api/status. Plain HTTP checks what
the page and its JSON hold; headless Chromium (Debian's `chromium`, skipped
when it is not installed) checks that the page, once its script ran, shows
every endpoint of the pool and numbers that move with traffic, and that a
screenshot of it is a real render."""
import json
import os
import re
import shutil
import struct
import subprocess
import threading
import zlib

import pytest

from test_gateway import ROUTE, Cluster, call, post_json, sighup_until, write

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/deps.sh installs it)")


def small_body(model="tweet-summary"):
    return {"model": model, "prompt": "Say hi", "max_tokens": 5, "temperature": 0}


def send(c, n, model="tweet-summary"):
    for _ in range(n):
        status, _, r = post_json(c.base, "/v1/completions", small_body(model))
        assert status == 200, r


def status_json(c):
    status, headers, data = call(c.admin, "/api/status")
    assert status == 200, data
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(data)


# ---- plain HTTP ----

def test_page_is_self_contained(procs, tmp_path):
    c = Cluster(procs, tmp_path, nsims=1)
    for path in ("/", "/?refresh=200"):
        status, headers, data = call(c.admin, path)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        page = data.decode()
        assert page.lstrip().lower().startswith("<!doctype html>")
        # It polls its own listener, by a relative URL...
        assert 'fetch("api/status"' in page
        # ...and references nothing elsewhere: no absolute URL at all, and
        # no src/href attribute (the page has no external script, style
        # sheet, font or image).
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page, re.I), page
        assert not re.search(r"\b(src|href)\s*=", page, re.I)
        # The browser is told so as well.
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    status, _, data = call(c.admin, "/nope")
    assert status == 404 and b"/api/status" in data
    c.stop()


def test_status_json_counts_requests_and_decisions(procs, tmp_path):
    c = Cluster(procs, tmp_path, nsims=2)
    c.wait_scraped()
    s = status_json(c)
    assert s["requests"]["total"] == 0 and s["decisions"] == []
    assert s["requests"]["p50_ms"] is None
    assert s["workers"] == 2
    pools = s["config"]["pools"]
    assert [p["name"] for p in pools] == ["qwen-pool"]
    assert sorted(e["address"] for e in pools[0]["endpoints"]) == sorted(
        c.endpoint(i) for i in range(2))
    assert "hit_ratio" in pools[0]["prefix_index"]

    send(c, 7)
    status, _, _ = post_json(c.base, "/v1/completions", small_body("no-such-model"))
    assert status == 404
    s = status_json(c)
    r = s["requests"]
    assert r["total"] == 8 and r["ok"] == 7 and r["client_errors"] == 1, r
    assert sum(r["latency_counts"]) == 7
    assert len(r["latency_counts"]) == len(r["latency_bounds_ms"])
    assert r["latency_bounds_ms"][-1] is None
    assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"], r

    d = s["decisions"]
    assert len(d) == 8
    # Newest first: the failed request was the last one.
    assert d[0]["status"] == 404 and d[0]["model"] == "no-such-model"
    assert d[0]["endpoint"] == ""
    ages = [x["age_ms"] for x in d]
    assert ages == sorted(ages)
    eps = {c.endpoint(i) for i in range(2)}
    for x in d[1:]:
        assert x["status"] == 200 and x["model"] == "tweet-summary", x
        assert x["target"] == "tweet-summary-1" and x["pool"] == "qwen-pool", x
        assert x["endpoint"] in eps, x
        assert x["duration_ms"] > 0 and x["worker"] in (0, 1)
    # The endpoints' own counts agree with the decisions.
    served = {e["address"]: e["requests_total"] for e in s["config"]["pools"][0]["endpoints"]}
    for a in eps:
        assert served[a] == sum(1 for x in d[1:] if x["endpoint"] == a)
    c.stop()


def test_decisions_keep_the_newest(procs, tmp_path):
    """Each worker keeps its last 32 picks; the page gets the newest 50."""
    c = Cluster(procs, tmp_path, nsims=1, gw_args=("--workers", "1"))
    send(c, 40)
    status, _, _ = post_json(c.base, "/v1/completions", small_body("marker"))
    assert status == 404
    s = status_json(c)
    assert s["requests"]["total"] == 41
    d = s["decisions"]
    assert len(d) == 32
    assert d[0]["model"] == "marker"
    assert all(x["model"] == "tweet-summary" and x["status"] == 200 for x in d[1:])
    c.stop()


def stray_route(c):
    """A second HTTPRoute whose sectionName no listener has: Accepted=False,
    NoMatchingParent on its one parent."""
    write(c.path("stray.yaml"), ROUTE.format(target_port=c.target_port, prefix="/x",
                                             timeouts="").replace(
        "name: llm-route", "name: stray").replace("sectionName: llm-gw", "sectionName: nope"))


# A manifest that refuses the reload; its file name has markup, which the
# page must show as text.
BAD_FILE = "bad<img>.yaml"
BAD_MANIFEST = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: Not_A_Name
spec:
  parentRefs: [{name: inference-gateway}]
"""


def test_status_json_has_what_the_page_shows(procs, tmp_path):
    """The members the page renders besides pools: reload (counts, the
    last reload), gateways (the Gateway's own Accepted and Programmed, as
    --kube writes them into its status.conditions, and each listener's)
    and routes (file, line, parents and their conditions)."""
    c = Cluster(procs, tmp_path, nsims=0, gw_args=("--watch-interval", "600000"))
    s = status_json(c)
    rl = s["reload"]
    assert rl["successes"] == 0 and rl["failures"] == 0 and rl["last"] is None
    assert rl["last_success_time"].endswith("Z")
    (gw,) = s["gateways"]
    assert (gw["namespace"], gw["name"]) == ("default", "inference-gateway")
    conds = {x["type"]: x for x in gw["conditions"]}
    assert set(conds) == {"Accepted", "Programmed"}, gw["conditions"]
    assert conds["Accepted"]["status"] == "True" and conds["Accepted"]["reason"] == "Accepted"
    assert conds["Programmed"]["status"] == "True"
    assert conds["Programmed"]["reason"] == "Programmed"
    (listener,) = gw["listeners"]
    assert listener["name"] == "llm-gw" and listener["protocol"] == "HTTP"
    assert listener["port"] == c.port and listener["attached_routes"] == 1
    assert [x["type"] for x in listener["conditions"]] == [
        "Accepted", "Programmed", "ResolvedRefs", "Conflicted"]
    (route,) = s["routes"]
    assert (route["kind"], route["namespace"], route["name"]) == (
        "HTTPRoute", "default", "llm-route")
    assert route["file"].endswith("route.yaml") and route["line"] == 1
    (parent,) = route["parents"]
    assert parent["parentRef"]["name"] == "inference-gateway"
    assert parent["parentRef"]["sectionName"] == "llm-gw"
    assert [x["type"] for x in parent["conditions"]] == ["Accepted", "ResolvedRefs"]

    write(c.path(BAD_FILE), BAD_MANIFEST)
    s = sighup_until(c, lambda r: r["failures"] == 1)
    last = s["reload"]["last"]
    assert last["result"] == "failure" and last["time"].endswith("Z")
    assert any("bad<img>.yaml:4: metadata.name: " in e for e in last["errors"]), last
    c.stop()


# ---- headless Chromium ----

def chromium(tmp_path, url, *args, budget=5000):
    """Runs headless Chromium on url with a profile of its own; returns
    its stdout (the DOM, with --dump-dom)."""
    profile = tmp_path / ("chromium-profile-%d" % len(os.listdir(tmp_path)))
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
           "--no-first-run", "--disable-extensions", "--user-data-dir=%s" % profile,
           "--virtual-time-budget=%d" % budget, *args, url]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return p.stdout.decode()


def text_of(dom, elem_id):
    m = re.search(r'id="%s"[^>]*>(.*?)</div>' % re.escape(elem_id), dom, re.S)
    assert m, "no #%s in the DOM:\n%s" % (elem_id, dom[:3000])
    return re.sub(r"<[^>]+>", " ", m.group(1)).strip()


def served_cells(dom):
    """Endpoint address -> its 'served' cell, from the page's tables."""
    rows = re.findall(r'<tr data-endpoint="([^"]+)">(.*?)</tr>', dom, re.S)
    out = {}
    for addr, row in rows:
        m = re.search(r'<td class="n served">(\d+)</td>', row)
        assert m, row
        out[addr] = int(m.group(1))
    return out


@needs_chromium
def test_chromium_version():
    p = subprocess.run([CHROMIUM, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0 and b"Chromium" in p.stdout, p.stdout + p.stderr


@needs_chromium
def test_page_in_chromium_shows_endpoints_and_traffic(procs, tmp_path):
    c = Cluster(procs, tmp_path, nsims=2)
    c.wait_scraped()
    url = c.admin + "/?refresh=200"
    dom = chromium(tmp_path, url, "--dump-dom")
    served = served_cells(dom)
    assert sorted(served) == sorted(c.endpoint(i) for i in range(2)), dom[:3000]
    assert served == {c.endpoint(0): 0, c.endpoint(1): 0}
    assert text_of(dom, "requests-total") == "0"
    assert 'class="live"' in dom  # the poll succeeded

    send(c, 6)
    dom = chromium(tmp_path, url, "--dump-dom")
    assert text_of(dom, "requests-total") == "6"
    assert sum(served_cells(dom).values()) == 6
    assert "qwen-pool" in dom and "tweet-summary-1" in dom  # the decisions table
    assert re.search(r'<td class="n s2">200</td>', dom)
    c.stop()


@needs_chromium
def test_page_refreshes_while_traffic_flows(procs, tmp_path):
    """One page load, many polls (?refresh=100) while clients send
    requests: the peak of the page's request rate, each computed from two
    successive polls, is above zero, and its total moved past what it was
    at load."""
    c = Cluster(procs, tmp_path, nsims=1)
    stop = threading.Event()
    sent = [0]

    def traffic():
        while not stop.is_set():
            send(c, 1)
            sent[0] += 1

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        while sent[0] < 3:
            stop.wait(0.02)
        before = status_json(c)["requests"]["total"]
        dom = chromium(tmp_path, c.admin + "/?refresh=100", "--dump-dom", budget=5000)
    finally:
        stop.set()
        for t in threads:
            t.join()
    peak = re.search(r'id="rate-peak">([^<]*)<', dom).group(1)
    assert peak != "\u2013" and float(peak) > 0, peak
    assert int(text_of(dom, "requests-total")) > before
    c.stop()


def png_pixels(data):
    """Width, height and the set of distinct RGB(A) pixels of an 8-bit
    truecolour PNG, decoded with zlib and the five PNG row filters."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        assert zlib.crc32(kind + chunk) == crc, "bad CRC in %s" % kind
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    assert len(raw) == h * (stride + 1)
    prev = bytearray(stride)
    colours = set()
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                cc = prev[i - bpp] if i >= bpp else 0
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else cc
                line[i] = (line[i] + pred) & 255
        else:
            assert f == 0, "bad filter %d" % f
        colours.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp * 7))
        prev = line
    return w, h, colours


@needs_chromium
def test_page_screenshot_is_a_real_render(procs, tmp_path):
    c = Cluster(procs, tmp_path, nsims=2)
    c.wait_scraped()
    send(c, 4)
    shot = tmp_path / "admin.png"
    chromium(tmp_path, c.admin + "/?refresh=200", "--screenshot=%s" % shot,
             "--window-size=1200,900", "--hide-scrollbars")
    w, h, colours = png_pixels(shot.read_bytes())
    assert (w, h) == (1200, 900)
    # A blank or failed render is one or two colours; the page has a dark
    # header, cards, tables, KV bars and coloured statuses (text is
    # antialiased, which adds many more).
    assert len(colours) > 20, len(colours)
    c.stop()


@needs_chromium
def test_page_in_chromium_shows_configuration_and_failed_reload(procs, tmp_path):
    """After a refused reload the page says so in a banner, with the error,
    and that the previous configuration keeps serving; the Gateway's
    listener and each route have their rows, a route that its parent does
    not accept with the reason."""
    c = Cluster(procs, tmp_path, nsims=0, gw_args=("--watch-interval", "600000"))
    stray_route(c)
    sighup_until(c, lambda r: r["successes"] == 1)
    write(c.path(BAD_FILE), BAD_MANIFEST)
    sighup_until(c, lambda r: r["failures"] == 1)
    dom = chromium(tmp_path, c.admin + "/?refresh=200", "--dump-dom", budget=2000)

    assert "(reloads: 1 ok, 1 failed)" in dom, dom[:3000]
    banner = re.search(r'<div id="reload-failed"[^>]*style="display: block;"[^>]*>(.*?)</div>',
                       dom, re.S)
    assert banner, dom[:3000]
    text = banner.group(1)
    assert "was refused" in text and "keeps serving" in text, text
    assert "bad&lt;img&gt;.yaml:4: metadata.name: must be a lowercase" in text, text
    assert "<img" not in dom  # server data is text, never markup

    row = re.search(r'<tr data-listener="default/inference-gateway/llm-gw">(.*?)</tr>', dom, re.S)
    assert row, dom[:5000]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert "default/inference-gateway" in cells[0]
    assert 'data-gateway-state="default/inference-gateway">OK<' in cells[0], cells[0]
    assert cells[1:] == ["llm-gw", "HTTP", str(c.port), "1", "OK"], cells

    good = re.search(r'<tr data-route="HTTPRoute default/llm-route">(.*?)</tr>', dom, re.S)
    assert good, dom[:5000]
    assert "route.yaml:1" in good.group(1)
    assert re.search(r'data-parent="default/inference-gateway/llm-gw">.*?'
                     r'class="ok">Accepted, ResolvedRefs<', good.group(1)), good.group(1)
    stray = re.search(r'<tr data-route="HTTPRoute default/stray">(.*?)</tr>', dom, re.S)
    assert stray, dom[:5000]
    assert re.search(r'data-parent="default/inference-gateway/nope">.*?class="bad">'
                     r'Accepted=False NoMatchingParent: ', stray.group(1)), stray.group(1)

    # The pool's own status per parent Gateway, as /api/status's pools.
    pool = re.search(r'<div class="state" data-pool-status="default/qwen-pool">(.*?)</div></div>',
                     dom, re.S)
    assert pool, dom[:5000]
    assert re.search(r'default/inference-gateway: </span><span class="ok">Accepted, ResolvedRefs<',
                     pool.group(1)), pool.group(1)
    c.stop()
