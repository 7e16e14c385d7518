"""`infergate bench` against answers a real server may give but the
simulator never does: streams without output, reasoning and tool-call
deltas, streams cut short, usage that disagrees with bench's count. A
FakePod answers each request with the bytes a test sets, so every case is
exact and fast; the assertions are on counts and kinds, never on times."""
import csv
import json
import signal
import subprocess

import pytest

from conftest import IG_BIN, free_port, unique_loopback
from fakepod import FakePod


def bench(*args, timeout=30):
    return subprocess.run([IG_BIN, "bench", "--no-progress"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def event(obj):
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def stream(*events, done=True):
    """A whole chunked SSE answer: the events, `data: [DONE]` unless not
    `done`, and the chunked terminator."""
    body = b"".join(event(e) for e in events) + (event(b"[DONE]") if done else b"")
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))


def whole(obj):
    body = json.dumps(obj).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def cmpl(text):
    return {"id": "c", "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": None}]}


def chat(delta):
    return {"id": "c", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def usage(prompt, completion):
    return {"id": "c", "choices": [], "usage": {"prompt_tokens": prompt,
                                                "completion_tokens": completion,
                                                "total_tokens": prompt + completion}}


ROLE = chat({"role": "assistant", "content": ""})


@pytest.fixture
def pod():
    host = unique_loopback()
    p = FakePod(host, free_port(host), mode="json")
    yield p
    p.stop()


def run(pod, tmp_path, *args):
    """Two requests one after another; the stage's JSON and the per-request
    rows."""
    out, per = tmp_path / "b.json", tmp_path / "req.csv"
    r = bench("--url", "http://" + pod.address, "--concurrency", 1, "--requests", 2,
              "--input-len", 4, "--output-len", 3, "--json", out, "--per-request", per,
              "--max-error-rate", 1, *args)
    assert r.returncode == 0, r.stderr
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    return st, list(csv.DictReader(open(per)))


@pytest.mark.parametrize("answer,api", [
    (stream(usage(3, 0)), "completions"),              # only usage, then [DONE]
    (stream(ROLE, usage(3, 0)), "chat"),               # only the role chunk
    (stream(cmpl("")), "completions"),                 # an empty text
    (whole({"id": "c", "object": "text_completion"}), "completions"),  # no choices
    (whole({"choices": [{"index": 0, "text": ""}]}), "completions"),
], ids=["usage-only", "role-only", "empty-text", "whole-no-choices", "whole-empty-text"])
def test_answers_without_output_fail_as_empty(pod, tmp_path, answer, api):
    pod.set("raw", data=answer, keep=True)
    st, rows = run(pod, tmp_path, "--api", api)
    assert st["ok"] == 0 and st["failed"] == 2 and st["errors"] == {"empty": 2}, st
    assert st["latency_ms"]["ttft"]["n"] == 0 and st["latency_ms"]["tpot"]["n"] == 0
    assert [q["error"] for q in rows] == ["empty", "empty"]


def test_reasoning_and_tool_calls_are_output(pod, tmp_path):
    # Ten reasoning deltas, then three of content: 13 chunks, 12 gaps.
    pod.set("raw", keep=True, data=stream(
        ROLE, *[chat({"reasoning_content": " think"})] * 10,
        *[chat({"content": " w"})] * 3, usage(3, 13)))
    st, rows = run(pod, tmp_path, "--api", "chat")
    assert st["ok"] == 2, st
    assert [q["chunks"] for q in rows] == ["13", "13"]
    assert st["latency_ms"]["itl"]["n"] == 2 * 12
    # An answer that is a tool call only: its argument deltas are its tokens.
    call = chat({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]})
    pod.set("raw", keep=True, data=stream(chat({"role": "assistant", "content": None}),
                                          *[call] * 5, usage(3, 5)))
    st, rows = run(pod, tmp_path, "--api", "chat")
    assert st["ok"] == 2, st
    assert [q["chunks"] for q in rows] == ["5", "5"]
    assert st["latency_ms"]["itl"]["n"] == 2 * 4
    assert st["latency_ms"]["tpot"]["n"] == 2


def test_stream_media_type_in_any_case(pod, tmp_path):
    """Content-Type: Text/Event-Stream is a stream like text/event-stream
    (RFC 9110 §8.3.1): its chunks are the tokens, not a body to parse."""
    answer = stream(cmpl(" w"), cmpl(" x"), usage(3, 2)).replace(
        b"text/event-stream", b"Text/Event-Stream; charset=utf-8")
    pod.set("raw", keep=True, data=answer)
    st, rows = run(pod, tmp_path)
    assert st["ok"] == 2, st
    assert [q["chunks"] for q in rows] == ["2", "2"]


def test_input_tokens_come_from_usage(pod, tmp_path):
    # A chat template adds tokens the bench's word count does not know of.
    pod.set("raw", keep=True, data=stream(ROLE, chat({"content": " w"}), usage(17, 1)))
    st, rows = run(pod, tmp_path, "--api", "chat")
    assert [q["input_tokens"] for q in rows] == ["17", "17"]
    assert st["input_tokens"] == 34, st
    pod.set("raw", keep=True, data=whole(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
         "usage": {"prompt_tokens": 21, "completion_tokens": 1, "total_tokens": 22}}))
    st, rows = run(pod, tmp_path, "--api", "chat", "--no-stream")
    assert st["input_tokens"] == 42, st
    # Without usage: the prompt's words.
    pod.set("raw", keep=True, data=stream(cmpl(" w"), cmpl(" x")))
    st, rows = run(pod, tmp_path)
    assert [q["input_tokens"] for q in rows] == ["4", "4"] and st["output_tokens"] == 4


def test_header_replaces_host_and_content_type(pod, tmp_path):
    pod.set("raw", keep=True, data=stream(cmpl(" w")))
    r = bench("--url", "http://" + pod.address, "--requests", 1, "--rate", 1,
              "--header", "Host: api.example", "--header", "content-type: application/json; x=1",
              "--header", "X-Extra: 1")
    assert r.returncode == 0, r.stderr
    q = pod.completions()[-1]
    for name in ("host", "content-type", "accept", "content-length", "x-extra"):
        assert q.fields.count(name) == 1, (name, q.fields)
    assert q.headers["host"] == "api.example"
    assert q.headers["content-type"] == "application/json; x=1"
    # Without them, bench's own.
    r = bench("--url", "http://" + pod.address, "--requests", 1, "--rate", 1)
    q = pod.completions()[-1]
    assert q.headers["host"] == pod.address and q.fields.count("host") == 1
    assert q.headers["content-type"] == "application/json"


@pytest.mark.parametrize("header", ["Content-Length: 5", "transfer-encoding: chunked",
                                    "Host : x", "a b: c"])
def test_header_that_would_break_the_request_is_refused(header):
    r = bench("--url", "http://127.0.0.1:1", "--header", header)
    assert r.returncode == 2 and "--header" in r.stderr, r.stderr


def test_max_inflight_queue_is_reported(pod, tmp_path):
    """Arrivals every 10 ms against a pod that takes 50 ms, one request at
    a time: the later arrivals wait for the slot, and that wait is
    reported apart from the latencies, each arrival keeping its schedule."""
    pod.set("json", delay_ms=50)
    out, per = tmp_path / "b.json", tmp_path / "req.csv"
    r = bench("--url", "http://" + pod.address, "--rate", 100, "--requests", 6,
              "--max-inflight", 1, "--no-stream", "--json", out, "--per-request", per)
    assert r.returncode == 0, r.stderr
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    assert st["sent"] == 6 and st["not_sent"] == 0 and st["delayed"] >= 1, st
    assert st["latency_ms"]["client_queue"]["n"] == 6
    assert st["latency_ms"]["client_queue"]["max"] > 0
    rows = list(csv.DictReader(open(per)))
    assert [float(q["scheduled_ms"]) for q in rows] == [0, 10, 20, 30, 40, 50]
    for q in rows:
        assert q["request_id"].startswith("bench-")
        assert abs(float(q["start_ms"]) - float(q["scheduled_ms"]) - float(q["queue_ms"])) < 1e-3
    assert "queue" in r.stdout and "waited for a --max-inflight slot" in r.stdout


def test_stage_sends_nothing_after_its_end(pod, tmp_path):
    """Ten arrivals in 100 ms, two slots, a pod that never answers and a
    500 ms timeout: the two requests sent time out after the stage's end,
    and the eight arrivals still waiting then are not sent."""
    pod.set("hold")
    out = tmp_path / "b.json"
    r = bench("--url", "http://" + pod.address, "--rate", 100, "--duration", "100ms",
              "--max-inflight", 2, "--timeout", "500ms", "--json", out, "--max-error-rate", 1)
    assert r.returncode == 0, r.stderr
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    assert st["sent"] == 2 and st["not_sent"] == 8 and st["errors"] == {"timeout": 2}, st
    assert len(pod.completions()) == 2


@pytest.mark.parametrize("load", [("--rate", 1, "--requests", 1),
                                  ("--concurrency", 2, "--requests", 2)])
def test_requests_bound_ends_the_window_at_once(pod, tmp_path, load):
    """With --requests, the stage lasts until its last answer: not until
    the next arrival or progress tick (that made `--rate 1 --requests 1`
    a 0.1 s stage and its req/s ten times too low)."""
    pod.set("raw", keep=True, data=stream(cmpl(" w"), cmpl(" x")))
    out, per = tmp_path / "b.json", tmp_path / "req.csv"
    r = bench("--url", "http://" + pod.address, *load, "--json", out, "--per-request", per)
    assert r.returncode == 0, r.stderr
    st = json.loads(out.read_text())["targets"][0]["stages"][0]
    last = max(float(q["start_ms"]) + float(q["e2e_ms"]) for q in csv.DictReader(open(per)))
    assert st["duration_s"] * 1000 == pytest.approx(last, rel=1e-3), (st, last)


def test_ctrl_c_reports_and_exits_130(pod, tmp_path):
    pod.set("raw", keep=True, data=stream(cmpl(" w"), cmpl(" x")))
    out = tmp_path / "b.json"
    p = subprocess.Popen([IG_BIN, "bench", "--no-progress", "--url", "http://" + pod.address,
                          "--rate", "100", "--duration", "30s", "--json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert len(pod.wait_requests(3, timeout=10)) >= 3
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (p.returncode, stderr)
    rep = json.loads(out.read_text())
    assert rep["interrupted"] is True
    st = rep["targets"][0]["stages"][0]
    assert st["sent"] >= 3 and st["ok"] == st["sent"], st
    assert "TTFT" in stdout and "interrupted" in stderr


def test_stream_without_done_is_truncated(pod, tmp_path):
    # Two tokens, then the chunked terminator: a clean end, but no [DONE].
    pod.set("raw", keep=True, data=stream(cmpl(" a"), cmpl(" b"), done=False))
    st, rows = run(pod, tmp_path)
    assert st["ok"] == 0 and st["errors"] == {"truncated": 2}, st
    # Without a length, the end of the response is the connection's close.
    body = event(cmpl(" a")) + event(cmpl(" b"))
    pod.set("raw", close=True, data=b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Connection: close\r\n\r\n" + body)
    st, rows = run(pod, tmp_path)
    assert st["ok"] == 0 and st["errors"] == {"truncated": 2}, st
    pod.set("raw", close=True, data=b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Connection: close\r\n\r\n" + body + event(b"[DONE]"))
    st, rows = run(pod, tmp_path)
    assert st["ok"] == 2, st


def test_reports_carry_counts_and_settings(pod, tmp_path):
    pod.set("raw", keep=True, data=stream(cmpl(" w"), cmpl(" x"), usage(9, 2)))
    out, table = tmp_path / "b.json", tmp_path / "b.csv"
    r = bench("--url", "http://" + pod.address, "--rate", 50, "--requests", 3, "--seed", 7,
              "--input-len", "3-5", "--output-len", 2, "--models", "a:3,b:1",
              "--json", out, "--csv", table)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["settings"] == {
        "seed": 7, "workload": "random", "output_len": "2", "input_len": "3-5", "model": None,
        "models": {"a": 3, "b": 1}, "objectives": {}, "ignore_eos": True, "warmup": 0,
        "timeout_s": 60, "max_inflight": 1000,
        "stages": [{"rate": 50, "duration_s": None, "requests": 3}]}
    st = rep["targets"][0]["stages"][0]
    [row] = list(csv.DictReader(open(table)))
    # The summary CSV has the JSON's numbers, n, min and max included.
    assert int(row["input_tokens"]) == st["input_tokens"] == 27
    assert int(row["output_tokens"]) == st["output_tokens"] == 6
    assert row["itl_dropped"] == "0" and row["not_sent"] == "0"
    for name in ("ttft", "tpot", "itl", "e2e", "client_queue"):
        d = st["latency_ms"][name]
        assert int(row[name + "_n"]) == d["n"], name
        for k in ("min", "max", "p50"):
            assert float(row["%s_%s_ms" % (name, k)]) == pytest.approx(d[k], rel=1e-5)


def test_agentic_concurrency_above_sessions_is_said(pod, tmp_path):
    pod.set("raw", keep=True, data=stream(cmpl(" w")))
    r = bench("--url", "http://" + pod.address, "--workload", "agentic", "--sessions", 2,
              "--concurrency", 3, "--requests", 3, "--system-prompt-len", 5, "--turn-len", 2,
              "--output-len", 1)
    assert r.returncode == 0, r.stderr
    assert "--concurrency 3 is above --sessions 2" in r.stderr
    r = bench("--url", "http://" + pod.address, "--workload", "agentic", "--sessions", 3,
              "--concurrency", 3, "--requests", 3, "--system-prompt-len", 5, "--turn-len", 2,
              "--output-len", 1)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
