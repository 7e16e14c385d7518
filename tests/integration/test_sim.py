"""`infergate sim` end to end: the real binary on a loopback address, driven
with plain HTTP clients, checked against vLLM's wire format and load
behaviour (see /work/shared/spec/vllm-api.md)."""
import base64
import email.utils
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import IG_BIN, free_port, unique_loopback, wait_http

SEED_PROMPT = "Write as if you were a critic: San Francisco"
LORA = ['{"name": "tweet-summary-%d", "path": "SriSanth2345/Qwen-1.5B-Tweet-Generations", '
        '"base_model_name": "Qwen/Qwen2.5-1.5B"}' % i for i in (0, 1)]


def start_sim(procs, *args, env=None):
    """env: variables set for the sim on top of ours."""
    host = unique_loopback()
    port = free_port(host)
    kw = {"env": dict(os.environ, **env)} if env else {}
    p = procs.start("sim", "--host", host, "--port", port, *args, name="sim", **kw)
    base = "http://%s:%d" % (host, port)
    wait_http(base + "/health", proc=p)
    return p, base


def call(base, path, body=None, method=None, headers=None, raw=None):
    """Returns (status, headers, body bytes)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers=dict({"Content-Type": "application/json"},
                                              **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def post_json(base, path, body, **kw):
    status, _, data = call(base, path, body, **kw)
    return status, json.loads(data) if data else None


def metrics(base):
    status, headers, data = call(base, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    return data.decode()


def gauge(text, name):
    m = re.search(r"^vllm:%s\{[^}]*\} (\S+)$" % name, text, re.M)
    assert m, "no %s in\n%s" % (name, text)
    return float(m.group(1))


def current_lora(text):
    """The lora_requests_info series with the largest value, as GIE picks it."""
    best = None
    for m in re.finditer(r'^vllm:lora_requests_info\{max_lora="(\d+)",running_lora_adapters="'
                         r'([^"]*)",waiting_lora_adapters="([^"]*)"\} (\S+)$', text, re.M):
        if best is None or float(m.group(4)) > best[3]:
            best = (int(m.group(1)), m.group(2), m.group(3), float(m.group(4)))
    assert best, text
    return best


def sse_events(resp):
    """Yields (arrival time, payload) for each `data:` event of a response."""
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            assert event.startswith(b"data: "), event
            yield time.monotonic(), event[6:].decode()
    assert buf == b""


def stream(base, path, body):
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    t0 = time.monotonic()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    events = list(sse_events(resp))
    conn.close()
    return t0, events


def test_seed_request(procs):
    p, base = start_sim(procs, "--model", "Qwen/Qwen2.5-1.5B-Instruct", "--enable-lora",
                        "--max-loras", "4", "--lora-modules", *LORA, "--dtype", "bfloat16",
                        "--enforce-eager")
    body = {"model": "tweet-summary-1", "prompt": SEED_PROMPT, "max_tokens": 100,
            "temperature": 0}
    status, r = post_json(base, "/v1/completions", body)
    assert status == 200
    assert r["model"] == "tweet-summary-1"
    assert r["object"] == "text_completion"
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", r["id"])
    assert r["usage"] == {"prompt_tokens": 10, "completion_tokens": 100, "total_tokens": 110,
                          "prompt_tokens_details": None}
    choice = r["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["text"].split()) == 100 and choice["text"].startswith(" ")
    # temperature 0: the same text again; an X-Request-Id becomes the id.
    status, r2 = post_json(base, "/v1/completions", body, headers={"X-Request-Id": "abc-1"})
    assert r2["choices"][0]["text"] == choice["text"]
    assert r2["id"] == "cmpl-abc-1"
    # An omitted model is the first served name; max_tokens defaults to 16.
    status, r3 = post_json(base, "/v1/completions", {"prompt": "hi"})
    assert status == 200 and r3["model"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert r3["usage"]["completion_tokens"] == 16
    text = metrics(base)
    assert gauge(text, "prompt_tokens_total") == 21
    assert gauge(text, "generation_tokens_total") == 216
    assert 'finished_reason="length"' in text
    assert "sim: serving Qwen/Qwen2.5-1.5B-Instruct on " in procs.output(p)
    assert "--dtype" in procs.output(p)


def test_errors(procs):
    _, base = start_sim(procs, "--max-model-len", "100")
    status, r = post_json(base, "/v1/completions", {"model": "x", "prompt": "a"})
    assert status == 404
    assert r == {"error": {"message": "The model `x` does not exist.", "type": "NotFoundError",
                           "param": "model", "code": 404}}
    status, _, _ = call(base, "/v1/completions", raw=b"{not json")
    assert status == 400
    status, r = post_json(base, "/v1/chat/completions", {"model": "Qwen/Qwen2.5-1.5B-Instruct"})
    assert status == 400 and r["error"]["type"] == "Bad Request"
    status, r = post_json(base, "/v1/completions", {"prompt": 5})
    assert status == 400
    status, r = post_json(base, "/v1/completions",
                          {"prompt": "a", "stream_options": {"include_usage": True}})
    assert status == 400
    assert r["error"]["message"] == "Stream options can only be defined when `stream=True`."
    status, r = post_json(base, "/v1/completions", {"prompt": "a b c", "max_tokens": 98})
    assert status == 400
    assert r["error"]["message"].startswith(
        "This model's maximum context length is 100 tokens. However, you requested 98 "
        "output tokens and your prompt contains at least 3 input tokens")
    assert call(base, "/nope")[0] == 404
    assert call(base, "/v1/completions", method="GET")[0] == 405
    assert call(base, "/health")[2] == b""
    assert json.loads(call(base, "/version")[2])["version"]


def test_errors_v08_shape(procs):
    _, base = start_sim(procs, "--vllm-version", "0.8")
    status, r = post_json(base, "/v1/completions", {"model": "x", "prompt": "a"})
    assert status == 404
    assert r == {"object": "error", "message": "The model `x` does not exist.",
                 "type": "NotFoundError", "param": None, "code": 404}
    text = metrics(base)
    assert "vllm:gpu_cache_usage_perc{" in text and "kv_cache_usage_perc" not in text
    assert current_lora(text)[:3] == (0, "", "")


def test_streaming_chat(procs):
    _, base = start_sim(procs)
    body = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Say hi"}],
            "stream": True, "stream_options": {"include_usage": True}, "temperature": 0}
    _, events = stream(base, "/v1/chat/completions", body)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(e) for _, e in events[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage = chunks[-1]
    assert usage["choices"] == [] and "usage" in usage
    content = chunks[1:-1]
    assert all(c["choices"][0]["finish_reason"] is None for c in content[:-1])
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    u = usage["usage"]
    # The last chunk is the end-of-sequence token's: no text, counted.
    assert u["completion_tokens"] == len(content) == len(text.split()) + 1
    assert content[-1]["choices"][0]["delta"] == {"content": ""}
    # "Be brief." is 3 tokens and "Say hi" 2, plus 4 per message and 3 for
    # the prompt that opens the reply.
    assert u["prompt_tokens"] == 3 + 2 + 2 * 4 + 3
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert 8 <= u["completion_tokens"] <= 64
    # Without include_usage there is no usage chunk; max_tokens cuts with "length".
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 3}
    _, events = stream(base, "/v1/chat/completions", body)
    chunks = [json.loads(e) for _, e in events[:-1]]
    assert len(chunks) == 4 and chunks[-1]["choices"][0]["finish_reason"] == "length"
    # Non-streamed chat answers with the same kind of text in one message.
    status, r = post_json(base, "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
    assert status == 200 and r["object"] == "chat.completion"
    assert r["choices"][0]["message"]["role"] == "assistant"
    assert r["usage"]["completion_tokens"] == len(r["choices"][0]["message"]["content"].split())


def test_models_and_lora_admin(procs):
    _, base = start_sim(procs, "--served-model-name", "base-a", "base-b", "--enable-lora",
                        "--lora-modules", *LORA, "short=/adapters/short",
                        env={"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true"})
    status, _, data = call(base, "/v1/models")
    cards = json.loads(data)
    assert cards["object"] == "list"
    ids = [c["id"] for c in cards["data"]]
    assert ids == ["base-a", "base-b", "tweet-summary-0", "tweet-summary-1", "short"]
    by_id = {c["id"]: c for c in cards["data"]}
    assert by_id["base-a"]["root"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert by_id["base-a"]["max_model_len"] == 32768
    assert by_id["tweet-summary-1"]["parent"] == "base-a"
    assert by_id["tweet-summary-1"]["root"] == "SriSanth2345/Qwen-1.5B-Tweet-Generations"
    assert by_id["short"]["max_model_len"] is None
    status, _, data = call(base, "/v1/load_lora_adapter",
                           {"lora_name": "new", "lora_path": "/p"})
    assert status == 200 and data == b"Success: LoRA adapter 'new' added successfully."
    assert call(base, "/v1/load_lora_adapter", {"lora_name": "new", "lora_path": "/p"})[0] == 400
    assert post_json(base, "/v1/completions", {"model": "new", "prompt": "a"})[0] == 200
    status, _, data = call(base, "/v1/unload_lora_adapter", {"lora_name": "new"})
    assert status == 200
    assert call(base, "/v1/unload_lora_adapter", {"lora_name": "new"})[0] == 404
    assert post_json(base, "/v1/completions", {"model": "new", "prompt": "a"})[0] == 404
    assert post_json(base, "/v1/completions",
                     {"model": "Qwen/Qwen2.5-1.5B-Instruct", "prompt": "a"})[0] == 404


def run_concurrently(base, bodies):
    results = [None] * len(bodies)

    def one(i):
        results[i] = post_json(base, "/v1/completions", bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    return threads, results


def test_queueing_shows_in_metrics(procs):
    _, base = start_sim(procs, "--max-num-seqs", "2", "--itl-ms", "40", "--ttft-ms", "1")
    threads, results = run_concurrently(base, [{"prompt": "p %d" % i, "max_tokens": 10}
                                               for i in range(6)])
    seen_waiting = 0
    max_running = 0
    kv_seen = 0.0
    deadline = time.time() + 5
    while any(t.is_alive() for t in threads) and time.time() < deadline:
        text = metrics(base)
        seen_waiting = max(seen_waiting, gauge(text, "num_requests_waiting"))
        max_running = max(max_running, gauge(text, "num_requests_running"))
        kv_seen = max(kv_seen, gauge(text, "kv_cache_usage_perc"))
        time.sleep(0.03)
    for t in threads:
        t.join()
    assert seen_waiting > 0
    assert 1 <= max_running <= 2
    # Two requests of a block each out of 9362 blocks.
    assert 0 < kv_seen <= 2 / 9362 + 1e-9
    assert all(r[0] == 200 for r in results)
    text = metrics(base)
    assert gauge(text, "num_requests_running") == 0
    assert gauge(text, "num_requests_waiting") == 0
    assert gauge(text, "kv_cache_usage_perc") == 0


def test_max_loras_bound(procs):
    _, base = start_sim(procs, "--enable-lora", "--max-loras", "1", "--lora-modules", "a=/a",
                        "b=/b", "--itl-ms", "40", "--ttft-ms", "1")
    assert current_lora(metrics(base))[:3] == (1, "", "")
    threads, results = run_concurrently(
        base, [{"model": m, "prompt": "x", "max_tokens": 8} for m in ("a", "a", "b")])
    states = set()
    deadline = time.time() + 5
    while any(t.is_alive() for t in threads) and time.time() < deadline:
        _, running, waiting, _ = current_lora(metrics(base))
        states.add((running, waiting))
        # Never more than --max-loras adapters in the running batch.
        assert "," not in running
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert all(r[0] == 200 and r[1]["model"] in ("a", "b") for r in results)
    assert any(w for _, w in states), states
    assert ("a", "b") in states or ("b", "a") in states, states
    assert current_lora(metrics(base))[1:3] == ("", "")


def test_state_overrides(procs):
    _, base = start_sim(procs, "--enable-lora", "--max-loras", "2", "--fixed-waiting", "3")
    text = metrics(base)
    assert gauge(text, "num_requests_waiting") == 3
    assert gauge(text, "num_requests_running") == 0
    status, _ = post_json(base, "/sim/state", {"running": 5, "kv_usage": 0.75,
                                               "lora_running": ["x", "y"], "lora_waiting": "z"})
    assert status == 200
    text = metrics(base)
    assert gauge(text, "num_requests_running") == 5
    assert gauge(text, "num_requests_waiting") == 3
    assert gauge(text, "kv_cache_usage_perc") == 0.75
    assert current_lora(text)[:3] == (2, "x,y", "z")
    assert post_json(base, "/sim/state", {"waiting": None})[0] == 200
    assert gauge(metrics(base), "num_requests_waiting") == 0
    assert post_json(base, "/sim/state", {"bogus": 1})[0] == 400
    assert gauge(metrics(base), "num_requests_running") == 5
    assert call(base, "/sim/state", method="DELETE")[0] == 200
    text = metrics(base)
    assert gauge(text, "num_requests_running") == 0
    assert gauge(text, "kv_cache_usage_perc") == 0
    assert current_lora(text)[1:3] == ("", "")


def test_ttft_follows_flag(procs):
    _, base = start_sim(procs, "--ttft-ms", "300", "--itl-ms", "5")
    t0, events = stream(base, "/v1/completions",
                        {"prompt": SEED_PROMPT, "max_tokens": 5, "stream": True})
    first = events[0][0] - t0
    assert first >= 0.3
    assert first < 2.0
    chunks = [json.loads(e) for _, e in events[:-1]]
    assert len(chunks) == 5 and events[-1][1] == "[DONE]"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = metrics(base)
    assert re.search(r'time_to_first_token_seconds_bucket\{[^}]*le="0.25",[^}]*\} 0.0', text)
    assert re.search(r'time_to_first_token_seconds_bucket\{[^}]*le="0.5",[^}]*\} 1.0', text)


def test_cli_errors_and_sigterm(procs):
    r = subprocess.run([IG_BIN, "sim", "--no-such-flag", "1"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "--no-such-flag" in r.stderr
    r = subprocess.run([IG_BIN, "sim", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--max-num-seqs" in r.stdout
    p, base = start_sim(procs)
    # A client that goes away mid-stream frees its slot.
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("POST", "/v1/completions",
                 json.dumps({"prompt": "x", "max_tokens": 5000, "stream": True}),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read1(100)
    assert gauge(metrics(base), "num_requests_running") == 1
    conn.close()
    deadline = time.time() + 3
    while gauge(metrics(base), "num_requests_running") and time.time() < deadline:
        time.sleep(0.05)
    text = metrics(base)
    assert gauge(text, "num_requests_running") == 0
    assert re.search(r'request_success_total\{[^}]*finished_reason="abort",[^}]*\} 1.0', text)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=5) == 0


LONG_PROMPT = " ".join("w%d" % i for i in range(1000))  # 1000 tokens


def first_chunk_time(base, prompt):
    t0, events = stream(base, "/v1/completions",
                        {"prompt": prompt, "max_tokens": 2, "stream": True})
    assert events[-1][1] == "[DONE]"
    return events[0][0] - t0


def test_prefix_cache_shortens_ttft(procs):
    # 1000 prompt tokens at 0.3 ms each: ~0.3 s cold, ~8 tokens to compute warm.
    _, base = start_sim(procs, "--prefill-us-per-token", "300", "--ttft-ms", "5")
    cold = first_chunk_time(base, LONG_PROMPT)
    warm = first_chunk_time(base, LONG_PROMPT)
    assert cold >= 0.3
    assert warm < cold / 3, (cold, warm)
    text = metrics(base)
    assert gauge(text, "prefix_cache_hits_total") == 992  # 62 full blocks of 16
    assert gauge(text, "prefix_cache_queries_total") == 2000
    assert 'enable_prefix_caching="True"' in text
    # Another prompt shares nothing and pays in full again.
    assert first_chunk_time(base, "x " + LONG_PROMPT) >= 0.3
    assert gauge(metrics(base), "prefix_cache_hits_total") == 992


def test_prefix_cache_off(procs):
    _, base = start_sim(procs, "--prefill-us-per-token", "200", "--ttft-ms", "5",
                        "--no-enable-prefix-caching", "--vllm-version", "0.8")
    first_chunk_time(base, LONG_PROMPT)
    assert first_chunk_time(base, LONG_PROMPT) >= 0.2
    text = metrics(base)
    assert gauge(text, "gpu_prefix_cache_hit_rate") == -1
    assert 'enable_prefix_caching="False"' in text


def test_prefix_cache_off_by_default_in_0_8(procs):
    """The seed's V0 engine (vLLM 0.8 on CPU) ran without prefix caching:
    its cache_config_info says enable_prefix_caching="False" and its hit
    rate gauge is -1 (vllm-api.md §5.1, §5.2). --vllm-version 0.8 starts
    that way, the seed's CPU profile with it, unless --enable-prefix-caching
    is given."""
    body = {"prompt": " ".join("w%d" % i for i in range(40)), "max_tokens": 1}
    _, old = start_sim(procs, "--vllm-version", "0.8", "--profile", "qwen2.5-1.5b-cpu",
                       "--time-scale", "1000", "--enable-prompt-tokens-details")
    for _ in range(2):
        status, r = post_json(old, "/v1/completions", body)
        assert status == 200 and r["usage"]["prompt_tokens_details"] is None
    text = metrics(old)
    assert gauge(text, "gpu_prefix_cache_hit_rate") == -1
    assert 'enable_prefix_caching="False"' in text
    _, on = start_sim(procs, "--vllm-version", "0.8", "--enable-prefix-caching",
                      "--enable-prompt-tokens-details")
    post_json(on, "/v1/completions", body)
    status, r = post_json(on, "/v1/completions", body)
    assert r["usage"]["prompt_tokens_details"] == {"cached_tokens": 32}
    text = metrics(on)
    assert 'enable_prefix_caching="True"' in text
    assert gauge(text, "gpu_prefix_cache_hit_rate") > 0


def test_preemption_when_cache_runs_out(procs):
    # 8 blocks of 4 tokens; four requests that each grow to 6 blocks.
    _, base = start_sim(procs, "--num-gpu-blocks", "8", "--block-size", "4", "--itl-ms", "3",
                        "--ttft-ms", "1")
    threads, results = run_concurrently(base, [{"prompt": "a b c %d" % i, "max_tokens": 20}
                                               for i in range(4)])
    for t in threads:
        t.join()
    assert all(r[0] == 200 and r[1]["usage"]["completion_tokens"] == 20 for r in results)
    text = metrics(base)
    assert gauge(text, "num_preemptions_total") > 0
    assert gauge(text, "kv_cache_usage_perc") == 0
    # A request that could never fit in the cache is refused.
    status, r = post_json(base, "/v1/completions", {"prompt": "a", "max_tokens": 40})
    assert status == 400 and "KV cache" in r["error"]["message"]


def test_failure_injection(procs):
    _, base = start_sim(procs, "--failure-injection-rate", "50", "--failure-types",
                        "rate_limit", "server_error", "--ttft-ms", "0", "--itl-ms", "0")
    statuses = [call(base, "/v1/completions", {"prompt": "x", "max_tokens": 1})[0]
                for _ in range(200)]
    failed = [s for s in statuses if s != 200]
    assert 60 <= len(failed) <= 140, len(failed)
    assert set(failed) == {429, 500}
    # Only generation requests fail on purpose.
    assert all(call(base, "/v1/models")[0] == 200 for _ in range(20))


def test_force_status_header(procs):
    _, base = start_sim(procs)
    h = {"x-sim-force-status": "503"}
    status, r = post_json(base, "/v1/completions", {"prompt": "x"}, headers=h)
    assert status == 503
    assert r["error"]["code"] == 503 and r["error"]["type"] == "ServiceUnavailableError"
    status, r = post_json(base, "/v1/chat/completions", {}, headers={"x-sim-force-status": "429"})
    assert status == 429 and r["error"]["type"] == "RateLimitError"
    status, _ = post_json(base, "/v1/completions", {"prompt": "x"},
                          headers={"X-Return-Error": "401"})
    assert status == 401
    # Not a status: ignored.
    assert post_json(base, "/v1/completions", {"prompt": "x"},
                     headers={"x-sim-force-status": "abc"})[0] == 200


def test_profile_and_time_scale(procs):
    p, base = start_sim(procs, "--profile", "llama3.1-8b-h100")
    t0, events = stream(base, "/v1/completions",
                        {"prompt": SEED_PROMPT, "max_tokens": 20, "stream": True})
    assert len(events) == 21
    # 20 ms prefill step + 19 decode steps of 7 ms: about 0.15 s.
    assert 0.13 <= events[-1][0] - t0 < 1.5
    assert "sim: profile llama3.1-8b-h100" in procs.output(p)
    assert 'num_gpu_blocks="27000"' in metrics(base)
    r = subprocess.run([IG_BIN, "sim", "--profile", "nope"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "--profile" in r.stderr
    # Ten times faster: a 1 s simulated prefill takes ~0.1 s, and the
    # histogram reports simulated time.
    _, base = start_sim(procs, "--ttft-ms", "1000", "--time-scale", "10")
    first = first_chunk_time(base, "hello")
    assert 0.09 <= first < 0.6
    text = metrics(base)
    assert re.search(r'time_to_first_token_seconds_bucket\{[^}]*le="0.75",[^}]*\} 0.0', text)
    assert re.search(r'time_to_first_token_seconds_bucket\{[^}]*le="2.5",[^}]*\} 1.0', text)


# ---- the Responses API, embeddings, Anthropic's Messages ----------------------------

def named_events(base, path, body, headers=None):
    """POSTs body and returns the (event name, parsed data) pairs of an SSE
    stream whose every event is named (`event: NAME\\ndata: JSON\\n\\n`)."""
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, json.dumps(body),
                 dict({"Content-Type": "application/json"}, **(headers or {})))
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    raw = resp.read().decode()
    conn.close()
    assert raw.endswith("\n\n")
    out = []
    for frame in raw[:-2].split("\n\n"):
        lines = frame.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and \
            lines[1].startswith("data: "), frame
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        out.append((name, data))
    return out


def words(text):
    return len(text.split())


def test_responses_api(procs):
    _, base = start_sim(procs, "--enable-lora", "--lora-modules", "a1=/p")
    status, r = post_json(base, "/v1/responses",
                          {"model": "a1", "input": "Say hi", "instructions": "Be brief.",
                           "max_output_tokens": 5, "metadata": {"k": "v"}, "temperature": 0})
    assert status == 200
    assert re.fullmatch(r"resp_[0-9a-f]{32}", r["id"])
    assert r["object"] == "response" and r["model"] == "a1"
    # Cut by max_output_tokens: vLLM calls that incomplete.
    assert r["status"] == "incomplete"
    assert r["incomplete_details"] == {"reason": "max_output_tokens"}
    assert r["instructions"] == "Be brief." and r["metadata"] == {"k": "v"}
    assert r["max_output_tokens"] == 5 and r["temperature"] == 0.0
    [msg] = r["output"]
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["status"] == "completed" and msg["id"].startswith("msg_")
    [part] = msg["content"]
    assert part["type"] == "output_text" and part["annotations"] == []
    assert words(part["text"]) == 5
    u = r["usage"]
    # "Be brief." 3 tokens, "Say hi" 2, 4 per turn, 3 to open the reply.
    assert u["input_tokens"] == 3 + 2 + 2 * 4 + 3
    assert u["output_tokens"] == 5
    assert u["total_tokens"] == u["input_tokens"] + 5
    # temperature 0: the same text again.
    _, r2 = post_json(base, "/v1/responses",
                      {"model": "a1", "input": "Say hi", "instructions": "Be brief.",
                       "max_output_tokens": 5, "temperature": 0})
    assert r2["output"][0]["content"][0]["text"] == part["text"]
    assert r2["id"] != r["id"]
    # Without a limit the answer ends on its own: completed.
    status, r = post_json(base, "/v1/responses",
                          {"input": [{"role": "user", "content": [
                              {"type": "input_text", "text": "hello"}]}]})
    assert status == 200 and r["status"] == "completed"
    assert r["incomplete_details"] is None
    assert 8 <= r["usage"]["output_tokens"] <= 64
    assert words(r["output"][0]["content"][0]["text"]) == r["usage"]["output_tokens"]
    assert r["model"] == "Qwen/Qwen2.5-1.5B-Instruct"


def test_responses_stream(procs):
    _, base = start_sim(procs)
    body = {"input": "Say hi", "stream": True, "max_output_tokens": 4,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}
    events = named_events(base, "/v1/responses", body)
    names = [n for n, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added"] + ["response.output_text.delta"] * 4 + \
        ["response.output_text.done", "response.content_part.done",
         "response.output_item.done", "response.completed"]
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    created = events[0][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["usage"] is None
    assert created["tools"] == body["tools"]
    rid, item = created["id"], events[2][1]["item"]["id"]
    deltas = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    assert all(d.get("item_id", item) == item for _, d in events[2:-1])
    assert events[8][1]["text"] == deltas
    final = events[-1][1]["response"]
    assert final["id"] == rid and final["status"] == "incomplete"
    assert final["output"][0]["content"][0]["text"] == deltas
    assert final["usage"]["output_tokens"] == 4 == words(deltas)
    assert final["usage"]["input_tokens"] > 2 + 4 + 3  # the tool definition counts


def test_messages_api(procs):
    _, base = start_sim(procs, "--served-model-name", "claude-sim", "--enable-lora",
                        "--lora-modules", "a1=/p")
    body = {"model": "claude-sim", "max_tokens": 1000, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Say hi"}]}
    status, r = post_json(base, "/v1/messages", body, headers={"anthropic-version": "2023-06-01"})
    assert status == 200
    assert re.fullmatch(r"msg_[0-9a-f]{32}", r["id"])
    assert r["type"] == "message" and r["role"] == "assistant" and r["model"] == "claude-sim"
    assert r["stop_reason"] == "end_turn" and r["stop_sequence"] is None
    [block] = r["content"]
    assert block["type"] == "text"
    assert r["usage"] == {"input_tokens": 3 + 2 + 2 * 4 + 3,
                          "output_tokens": words(block["text"])}
    status, r = post_json(base, "/v1/messages",
                          dict(body, max_tokens=3, model="a1",
                               messages=[{"role": "user",
                                          "content": [{"type": "text", "text": "Say hi"}]}]),
                          headers={"X-Request-Id": "req-7"})
    assert status == 200 and r["stop_reason"] == "max_tokens" and r["model"] == "a1"
    assert r["id"] == "msg_req-7"
    assert r["usage"]["output_tokens"] == 3 == words(r["content"][0]["text"])


def test_messages_stream(procs):
    _, base = start_sim(procs)
    body = {"model": "Qwen/Qwen2.5-1.5B-Instruct", "max_tokens": 1000, "stream": True,
            "messages": [{"role": "user", "content": "Say hi"}]}
    events = named_events(base, "/v1/messages", body)
    names = [n for n, _ in events]
    n = names.count("content_block_delta")
    assert 8 <= n <= 64
    assert names == ["message_start", "content_block_start", "ping"] + \
        ["content_block_delta"] * n + ["content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"] == {"input_tokens": 2 + 4 + 3, "output_tokens": 0}
    assert events[1][1] == {"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}
    text = "".join(d["delta"]["text"] for name, d in events if name == "content_block_delta")
    assert all(d["delta"]["type"] == "text_delta" and d["index"] == 0
               for name, d in events if name == "content_block_delta")
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == n == words(text)
    events = named_events(base, "/v1/messages", dict(body, max_tokens=2))
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert [n for n, _ in events].count("content_block_delta") == 2


def anthropic_error(base, body, status, err_type, raw=None, headers=None):
    got, hdrs, data = call(base, "/v1/messages", body, raw=raw, headers=headers)
    assert got == status, data
    assert hdrs["Content-Type"] == "application/json"
    r = json.loads(data)
    assert set(r) == {"type", "error"} and r["type"] == "error"
    assert r["error"]["type"] == err_type and r["error"]["message"]
    return r["error"]["message"]


def test_messages_errors(procs):
    _, base = start_sim(procs, "--max-model-len", "100")
    msgs = [{"role": "user", "content": "hi"}]
    assert "max_tokens" in anthropic_error(
        base, {"model": "Qwen/Qwen2.5-1.5B-Instruct", "messages": msgs}, 400,
        "invalid_request_error")
    assert "model" in anthropic_error(base, {"max_tokens": 5, "messages": msgs}, 400,
                                      "invalid_request_error")
    assert anthropic_error(base, {"model": "claude-x", "max_tokens": 5, "messages": msgs}, 404,
                           "not_found_error") == "The model `claude-x` does not exist."
    anthropic_error(base, None, 400, "invalid_request_error", raw=b"{not json")
    anthropic_error(base, {"model": "Qwen/Qwen2.5-1.5B-Instruct", "max_tokens": 500,
                           "messages": msgs}, 400, "invalid_request_error")
    anthropic_error(base, {}, 429, "rate_limit_error", headers={"x-sim-force-status": "429"})
    anthropic_error(base, {}, 529, "overloaded_error", headers={"x-sim-force-status": "529"})
    anthropic_error(base, {}, 500, "api_error", headers={"x-sim-force-status": "500"})
    # A 401 is vLLM's authentication middleware's, whatever the API.
    assert post_json(base, "/v1/messages", {}, headers={"X-Return-Error": "401"}) == \
        (401, {"error": "Unauthorized"})
    # The OpenAI paths keep vLLM's shape.
    status, r = post_json(base, "/v1/responses", {"input": "x"},
                          headers={"x-sim-force-status": "503"})
    assert status == 503 and r["error"]["type"] == "ServiceUnavailableError"
    status, r = post_json(base, "/v1/responses", {"input": "x", "model": "nope"})
    assert status == 404 and r["error"]["param"] == "model"
    assert call(base, "/v1/messages", method="GET")[0] == 405


def embed(base, body, **kw):
    status, r = post_json(base, "/v1/embeddings", body, **kw)
    assert status == 200, r
    return r


def test_embeddings(procs):
    _, base = start_sim(procs, "--enable-lora", "--lora-modules", "a1=/p", "--embedding-dim",
                        "32")
    r = embed(base, {"input": ["the city by the bay", "the city by the water", "quantum"]})
    assert r["object"] == "list" and re.fullmatch(r"embd-[0-9a-f]{32}", r["id"])
    assert r["model"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert [d["index"] for d in r["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 32 for d in r["data"])
    assert r["usage"] == {"prompt_tokens": 11, "total_tokens": 11, "completion_tokens": 0,
                          "prompt_tokens_details": None}
    a, b, c = (d["embedding"] for d in r["data"])

    def cos(x, y):
        return sum(p * q for p, q in zip(x, y))
    assert abs(cos(a, a) - 1) < 1e-5
    assert cos(a, b) > cos(a, c) + 0.3
    # The same input gives the same vector; base64 is the same float32s.
    again = embed(base, {"input": "the city by the bay"})["data"][0]["embedding"]
    assert again == a
    r = embed(base, {"input": "the city by the bay", "encoding_format": "base64"})
    raw = base64.b64decode(r["data"][0]["embedding"])
    assert list(struct.unpack("<32f", raw)) == [struct.unpack("<f", struct.pack("<f", x))[0]
                                                 for x in a]
    # dimensions shortens; an adapter embeds differently; ids are accepted.
    assert len(embed(base, {"input": "x", "dimensions": 8})["data"][0]["embedding"]) == 8
    other = embed(base, {"input": "the city by the bay", "model": "a1"})
    assert other["model"] == "a1" and other["data"][0]["embedding"] != a
    assert embed(base, {"input": [[1, 2, 3]]})["usage"]["prompt_tokens"] == 3
    assert embed(base, {"input": "x"}, headers={"X-Request-Id": "e1"})["id"] == "embd-e1"
    for bad in ({"input": ""}, {"input": []}, {"input": "x", "dimensions": 33},
                {"input": "x", "encoding_format": "hex"}, {}):
        status, r = post_json(base, "/v1/embeddings", bad)
        assert status == 400 and r["error"]["type"] in ("BadRequestError", "Bad Request"), \
            (bad, r)
    status, r = post_json(base, "/v1/embeddings", {"input": "x", "model": "nope"})
    assert status == 404
    status, _ = post_json(base, "/v1/embeddings", {"input": "x"},
                          headers={"x-sim-force-status": "429"})
    assert status == 429


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / (sum(x * x for x in a) * sum(y * y for y in b)) ** .5


def test_embeddings_chat_form(procs):
    """vLLM's EmbeddingChatRequest: /v1/embeddings takes `messages` instead
    of `input`, laid out by the chat template as chat counts them but
    without the opening of a reply (add_generation_prompt defaults to
    false; the latest release takes it and continue_final_message, 0.8's
    serving code ignores both), one vector for the conversation. A body
    with neither is the union's 400 at body.input; with both, the input
    form wins unless a field only the chat form has is set; both template
    switches true is the chat model's validator 400."""
    _, base = start_sim(procs, "--max-model-len", "40")
    _, old = start_sim(procs, "--vllm-version", "0.8")
    msgs = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": "the city by the bay"}]
    r = embed(base, {"messages": msgs})
    assert [d["index"] for d in r["data"]] == [0] and len(r["data"][0]["embedding"]) == 64
    assert r["object"] == "list" and re.fullmatch(r"embd-[0-9a-f]{32}", r["id"])
    n = r["usage"]["prompt_tokens"]
    _, t = post_json(base, "/tokenize", {"messages": msgs, "add_generation_prompt": False})
    assert n == t["count"] == 2 + 5 + 2 * 4
    _, c = post_json(base, "/v1/chat/completions", {"messages": msgs, "max_tokens": 1})
    assert c["usage"]["prompt_tokens"] == n + 3
    assert r["usage"] == {"prompt_tokens": n, "total_tokens": n, "completion_tokens": 0,
                          "prompt_tokens_details": None}
    # The same conversation, the same vector; near the text's input form.
    vec = r["data"][0]["embedding"]
    assert embed(base, {"messages": msgs})["data"][0]["embedding"] == vec
    text = embed(base, {"input": "the city by the bay"})["data"][0]["embedding"]
    other = embed(base, {"input": "quantum entanglement of photons"})["data"][0]["embedding"]
    assert cosine(vec, text) > 0.4 and abs(cosine(vec, other)) < 0.4
    # The template switches, as the latest release passes them on.
    assert embed(base, {"messages": msgs, "add_generation_prompt": True}
                 )["usage"]["prompt_tokens"] == n + 3
    assert embed(base, {"messages": msgs, "continue_final_message": True}
                 )["usage"]["prompt_tokens"] == n - 1
    assert embed(old, {"messages": msgs, "add_generation_prompt": True}
                 )["usage"]["prompt_tokens"] == n
    assert embed(base, {"messages": msgs, "chat_template_kwargs": {"enable_thinking": False},
                        "add_special_tokens": True, "encoding_format": "base64",
                        "dimensions": 4, "truncate_prompt_tokens": 3})["usage"][
        "prompt_tokens"] == 3
    for server in (base, old):
        status, e = post_json(server, "/v1/embeddings",
                              {"messages": msgs, "add_generation_prompt": True,
                               "continue_final_message": True})
        assert status == 400 and "Cannot set both" in json.dumps(e), e
    # Neither form; both forms.
    status, e = post_json(base, "/v1/embeddings", {"model": "Qwen/Qwen2.5-1.5B-Instruct"})
    assert status == 400 and e["error"]["type"] == "Bad Request", e
    assert e["error"]["param"] == "body.input"
    status, e = post_json(old, "/v1/embeddings", {})
    assert status == 400 and e["object"] == "error", e
    both = {"input": "a b", "messages": msgs}
    assert embed(base, both)["usage"]["prompt_tokens"] == 2
    assert embed(base, dict(both, chat_template_kwargs={}))["usage"]["prompt_tokens"] == n
    assert embed(base, dict(both, input=None))["usage"]["prompt_tokens"] == n
    # The chat model's field checks, media on a text-only model, the context.
    bad = [({"messages": "hi"}, "body.messages"), ({"messages": []}, "body.messages"),
           ({"messages": msgs, "chat_template_kwargs": 3}, "body.chat_template_kwargs"),
           ({"messages": msgs, "add_special_tokens": "maybe"}, "body.add_special_tokens"),
           ({"messages": msgs, "chat_template": 1}, "body.chat_template")]
    for body, param in bad:
        status, e = post_json(base, "/v1/embeddings", body)
        assert status == 400 and e["error"]["param"] == param, (body, e)
    image = [{"role": "user", "content": [{"type": "image_url",
                                           "image_url": {"url": "http://x/y.png"}}]}]
    status, e = post_json(base, "/v1/embeddings", {"messages": image})
    assert status == 400 and "not a multimodal model" in e["error"]["message"], e
    long = [{"role": "user", "content": "word " * 40}]
    status, e = post_json(base, "/v1/embeddings", {"messages": long})
    assert status == 400 and "in the input for embedding generation" in e["error"]["message"]
    assert embed(base, {"messages": long, "truncate_prompt_tokens": -1}
                 )["usage"]["prompt_tokens"] == 40
    text = metrics(base)
    assert 'vllm:request_success_total{engine="0",finished_reason="stop"' in text


def test_new_apis_share_engine_and_metrics(procs):
    # 1000-token prompts at 0.3 ms each: a cold prefill takes 0.3 s, a warm
    # one almost nothing, whichever API sends it.
    _, base = start_sim(procs, "--prefill-us-per-token", "300", "--ttft-ms", "5")
    t0 = time.monotonic()
    _, r = post_json(base, "/v1/responses", {"input": LONG_PROMPT, "max_output_tokens": 1})
    cold = time.monotonic() - t0
    assert r["usage"]["input_tokens_details"]["cached_tokens"] == 0
    t0 = time.monotonic()
    _, r2 = post_json(base, "/v1/responses", {"input": LONG_PROMPT, "max_output_tokens": 1})
    warm = time.monotonic() - t0
    assert cold >= 0.3 and warm < cold / 3, (cold, warm)
    # Every full block of the prompt but the last token's was cached.
    cached = r2["usage"]["input_tokens_details"]["cached_tokens"]
    assert cached == (r2["usage"]["input_tokens"] - 1) // 16 * 16
    text = metrics(base)
    assert gauge(text, "prefix_cache_hits_total") == cached
    m = post_json(base, "/v1/messages",
                  {"model": "Qwen/Qwen2.5-1.5B-Instruct", "max_tokens": 3,
                   "messages": [{"role": "user", "content": "hi"}]})[1]
    e = embed(base, {"input": ["a b", "c"]})
    text = metrics(base)
    prompts = 2 * r["usage"]["input_tokens"] + m["usage"]["input_tokens"] + \
        e["usage"]["prompt_tokens"]
    assert gauge(text, "prompt_tokens_total") == prompts
    # The embedding generates no tokens.
    assert gauge(text, "generation_tokens_total") == 1 + 1 + 3
    assert re.search(r'request_success_total\{[^}]*finished_reason="length",[^}]*\} 3.0', text)
    assert re.search(r'request_success_total\{[^}]*finished_reason="stop",[^}]*\} 1.0', text)
    assert re.search(r'e2e_request_latency_seconds_count\{[^}]*\} 4.0', text)


def test_new_apis_wait_in_the_queue(procs):
    # One sequence at a time: a second request waits, and shows in the gauges.
    _, base = start_sim(procs, "--max-num-seqs", "1", "--itl-ms", "30", "--ttft-ms", "1")
    results = []
    body = {"model": "Qwen/Qwen2.5-1.5B-Instruct", "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}]}
    threads = [threading.Thread(target=lambda: results.append(
        post_json(base, "/v1/messages", body))) for _ in range(2)]
    threads.append(threading.Thread(target=lambda: results.append(
        post_json(base, "/v1/responses", {"input": "x", "max_output_tokens": 10}))))
    for t in threads:
        t.start()
    seen_waiting = 0
    deadline = time.time() + 5
    while any(t.is_alive() for t in threads) and time.time() < deadline:
        text = metrics(base)
        seen_waiting = max(seen_waiting, gauge(text, "num_requests_waiting"))
        assert gauge(text, "num_requests_running") <= 1
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert seen_waiting >= 1
    assert [s for s, _ in results] == [200, 200, 200]


def test_tokenize_and_detokenize(procs):
    """vLLM's tokenizer endpoints: /tokenize counts a prompt (or chat
    messages) as the generation APIs count it, /detokenize gives back the
    text of the ids /tokenize listed; errors as vLLM answers them."""
    _, base = start_sim(procs, "--max-model-len", "100", "--enable-lora", "--lora-modules",
                        "ad=/adapters/ad")
    status, r = post_json(base, "/tokenize", {"prompt": SEED_PROMPT})
    assert status == 200
    assert r["count"] == 10 and len(r["tokens"]) == 10 and r["max_model_len"] == 100
    assert all(isinstance(t, int) and 0 <= t < 151936 for t in r["tokens"])
    assert r["token_strs"] is None
    # The same count as a completion's usage, for the adapter too.
    status, c = post_json(base, "/v1/completions",
                          {"model": "ad", "prompt": SEED_PROMPT, "max_tokens": 1})
    assert status == 200 and c["usage"]["prompt_tokens"] == r["count"]
    status, r2 = post_json(base, "/tokenize", {"model": "ad", "prompt": SEED_PROMPT,
                                               "return_token_strs": True})
    assert status == 200 and r2["tokens"] == r["tokens"]
    assert "".join(r2["token_strs"]) == SEED_PROMPT
    status, d = post_json(base, "/detokenize", {"model": "ad", "tokens": r["tokens"]})
    assert status == 200 and d == {"prompt": SEED_PROMPT}
    # Chat messages: the count a chat completion reports.
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there!"}]
    status, t = post_json(base, "/tokenize", {"messages": msgs})
    status2, chat = post_json(base, "/v1/chat/completions", {"messages": msgs, "max_tokens": 1})
    assert status == 200 and status2 == 200
    assert t["count"] == chat["usage"]["prompt_tokens"]
    status, t2 = post_json(base, "/tokenize", {"messages": msgs, "add_generation_prompt": False})
    assert status == 200 and t2["count"] < t["count"]
    assert t2["tokens"] == t["tokens"][:t2["count"]]
    # Errors.
    status, e = post_json(base, "/tokenize", {"model": "nope", "prompt": "x"})
    assert status == 404 and e["error"]["message"] == "The model `nope` does not exist."
    status, e = post_json(base, "/tokenize", {"messages": msgs, "continue_final_message": True})
    assert status == 400 and "continue_final_message" in e["error"]["message"]
    status, e = post_json(base, "/tokenize", {})
    assert status == 400
    status, e = post_json(base, "/detokenize", {"tokens": [151936]})
    assert status == 400 and e["error"]["param"] == "tokens"
    status, _, _ = call(base, "/tokenize", method="GET")
    assert status == 405


def test_server_load_and_metrics_paths(procs):
    """GET /load is vLLM's server_load_metrics: 0 without
    --enable-server-load-tracking, else the requests in progress (a
    streamed one until its stream ends). /metrics answers under any path
    that starts with it, as vLLM's pattern mount does."""
    _, plain = start_sim(procs)
    status, r = post_json(plain, "/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert status == 200
    status, _, body = call(plain, "/load")
    assert status == 200 and json.loads(body) == {"server_load": 0}
    for path in ("/metrics/", "/metrics/x"):
        status, headers, body = call(plain, path)
        assert status == 200 and b"vllm:num_requests_running" in body
    p, base = start_sim(procs, "--enable-server-load-tracking", "--ttft-ms", "400")
    assert "ignoring vLLM flag --enable-server-load-tracking" not in procs.output(p)
    bodies = [{"prompt": "a", "max_tokens": 3}, {"prompt": "b", "max_tokens": 3, "stream": True}]
    threads = [threading.Thread(target=call, args=(base, "/v1/completions", b)) for b in bodies]
    for t in threads:
        t.start()
    deadline = time.time() + 5
    seen = 0
    while time.time() < deadline and seen < 2:
        seen = json.loads(call(base, "/load")[2])["server_load"]
        time.sleep(0.02)
    assert seen == 2
    for t in threads:
        t.join()
    assert json.loads(call(base, "/load")[2]) == {"server_load": 0}


def data_events(base, path, body):
    """The JSON payloads of a stream's data events, [DONE] left out."""
    _, events = stream(base, path, body)
    return [json.loads(p) for _, p in events if p != "[DONE]"]


def test_stop_strings(procs):
    """vLLM's `stop`: the answer ends before the first stop string (after
    it with include_stop_str_in_output), finish_reason "stop" and
    stop_reason the string; a stream sends the same text, holding back what
    may be the start of a stop string. Anthropic's stop_sequences the same
    way, stop_reason "stop_sequence"."""
    _, base = start_sim(procs)
    body = {"prompt": "tell me", "max_tokens": 30, "temperature": 0}
    status, r = post_json(base, "/v1/completions", body)
    full = r["choices"][0]["text"]
    words = full.split()
    stop = words[len(words) // 2] + " " + words[len(words) // 2 + 1][:2]
    cut = full.index(stop)
    status, r = post_json(base, "/v1/completions", dict(body, stop=["never!", stop]))
    c = r["choices"][0]
    assert status == 200 and c["text"] == full[:cut]
    assert c["finish_reason"] == "stop" and c["stop_reason"] == stop
    assert r["usage"]["completion_tokens"] < 30
    status, r = post_json(base, "/v1/completions",
                          dict(body, stop=stop, include_stop_str_in_output=True))
    assert r["choices"][0]["text"] == full[:cut + len(stop)]
    events = data_events(base, "/v1/completions", dict(body, stop=[stop], stream=True,
                                                       stream_options={"include_usage": True}))
    chunks = [e for e in events if e.get("choices")]
    assert "".join(e["choices"][0]["text"] for e in chunks) == full[:cut]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["stop_reason"] == stop
    assert all(e["choices"][0]["finish_reason"] is None for e in chunks[:-1])
    # A stop string that never comes: the whole answer, stop_reason null.
    status, r = post_json(base, "/v1/completions", dict(body, stop="never!"))
    assert r["choices"][0]["text"] == full and r["choices"][0]["stop_reason"] is None
    # Chat, whole and streamed.
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 30, "temperature": 0}
    status, r = post_json(base, "/v1/chat/completions", chat)
    text = r["choices"][0]["message"]["content"]
    stop = text.split()[2]
    cut = text.index(stop)
    status, r = post_json(base, "/v1/chat/completions", dict(chat, stop=stop))
    assert r["choices"][0]["message"]["content"] == text[:cut]
    assert r["choices"][0]["stop_reason"] == stop
    events = data_events(base, "/v1/chat/completions", dict(chat, stop=[stop], stream=True))
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events
                   if e.get("choices")) == text[:cut]
    # Anthropic Messages.
    msg = dict(chat, model="Qwen/Qwen2.5-1.5B-Instruct", stop_sequences=[stop])
    status, r = post_json(base, "/v1/messages", msg)
    assert status == 200 and r["content"][0]["text"] == text[:cut]
    assert r["stop_reason"] == "stop_sequence" and r["stop_sequence"] == stop
    # Refusals.
    for bad in ([""], 5, [1]):
        status, e = post_json(base, "/v1/completions", dict(body, stop=bad))
        assert status == 400 and e["error"]["param"] in ("stop", "body.stop")


def test_stop_token_ids(procs):
    """vLLM's stop_token_ids: a generated token whose id is listed ends the
    answer with finish_reason "stop" and stop_reason that id (an integer);
    it counts in completion_tokens, and its text is left out unless
    include_stop_str_in_output, as vLLM's detokenizer skips it. The id is
    the one the sim's own /tokenize gives the word."""
    _, base = start_sim(procs)
    body = {"prompt": "tell me", "max_tokens": 20, "seed": 7, "temperature": 1}
    status, r = post_json(base, "/v1/completions", body)
    full = r["choices"][0]["text"]
    words = re.findall(r" \w+", full)
    # The first word that did not come earlier, so that it stops there.
    k = next(i for i in range(2, len(words)) if words[i] not in words[:i])
    status, t = post_json(base, "/tokenize", {"prompt": words[k]})
    assert status == 200 and t["count"] == 1
    tid = t["tokens"][0]
    status, r = post_json(base, "/v1/completions", dict(body, stop_token_ids=[1, tid]))
    c = r["choices"][0]
    assert status == 200 and c["text"] == "".join(words[:k])
    assert c["finish_reason"] == "stop" and c["stop_reason"] == tid
    assert r["usage"]["completion_tokens"] == k + 1
    status, r = post_json(base, "/v1/completions",
                          dict(body, stop_token_ids=[tid], include_stop_str_in_output=True))
    assert r["choices"][0]["text"] == "".join(words[:k + 1])
    events = data_events(base, "/v1/completions", dict(body, stop_token_ids=[tid], stream=True))
    assert "".join(e["choices"][0]["text"] for e in events) == "".join(words[:k])
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"][0]["stop_reason"] == tid
    # min_tokens keeps it from counting before then.
    status, r = post_json(base, "/v1/completions",
                          dict(body, stop_token_ids=[tid], min_tokens=k + 2))
    assert r["usage"]["completion_tokens"] >= k + 2
    assert r["choices"][0]["text"].startswith("".join(words[:k + 1]))
    # Chat: the same field, the same ending.
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "seed": 3,
            "temperature": 1, "ignore_eos": True}
    status, r = post_json(base, "/v1/chat/completions", chat)
    cw = re.findall(r" \w+", r["choices"][0]["message"]["content"])
    tid = post_json(base, "/tokenize", {"prompt": cw[0]})[1]["tokens"][0]
    status, r = post_json(base, "/v1/chat/completions", dict(chat, stop_token_ids=[tid]))
    c = r["choices"][0]
    assert c["message"]["content"] == "" and c["stop_reason"] == tid
    assert c["finish_reason"] == "stop" and r["usage"]["completion_tokens"] == 1
    for bad in ("5", [1, "x"], [1.5], {"a": 1}):
        status, e = post_json(base, "/v1/completions", dict(body, stop_token_ids=bad))
        assert status == 400 and e["error"]["param"] == "body.stop_token_ids", bad


def test_completion_echo(procs):
    """vLLM's `echo`: the completion's text starts with the prompt; a
    stream sends the prompt with the first token. usage is unchanged."""
    _, base = start_sim(procs)
    body = {"prompt": "Say hi", "max_tokens": 4, "temperature": 0}
    status, plain = post_json(base, "/v1/completions", body)
    status, r = post_json(base, "/v1/completions", dict(body, echo=True))
    assert status == 200
    assert r["choices"][0]["text"] == "Say hi" + plain["choices"][0]["text"]
    assert r["usage"] == plain["usage"]
    events = data_events(base, "/v1/completions", dict(body, echo=True, stream=True))
    texts = [e["choices"][0]["text"] for e in events if e.get("choices")]
    assert texts[0].startswith("Say hi") and len(texts[0]) > len("Say hi")
    assert "".join(texts) == r["choices"][0]["text"]
    status, e = post_json(base, "/v1/completions", dict(body, echo="maybe"))
    assert status == 400 and e["error"]["param"] == "body.echo"


def test_min_tokens(procs):
    """vLLM's min_tokens: a chat answer that would end on its own earlier
    runs on to it; stop strings count only from there; out of range is a
    400 with vLLM's message."""
    _, base = start_sim(procs)
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 200,
            "temperature": 0}
    status, r = post_json(base, "/v1/chat/completions", chat)
    natural = r["usage"]["completion_tokens"]
    assert r["choices"][0]["finish_reason"] == "stop" and natural < 100
    status, r = post_json(base, "/v1/chat/completions", dict(chat, min_tokens=natural + 20))
    # min_tokens words, then the end of sequence.
    assert status == 200 and r["usage"]["completion_tokens"] == natural + 20 + 1
    assert r["choices"][0]["finish_reason"] == "stop"
    body = {"prompt": "tell me", "max_tokens": 30, "temperature": 0}
    status, r = post_json(base, "/v1/completions", body)
    first = r["choices"][0]["text"].split()[0]
    status, r = post_json(base, "/v1/completions", dict(body, stop=first))
    assert r["choices"][0]["stop_reason"] == first
    status, r = post_json(base, "/v1/completions", dict(body, stop=first, min_tokens=30))
    assert r["usage"]["completion_tokens"] == 30
    status, e = post_json(base, "/v1/completions", dict(body, min_tokens=31))
    assert status == 400
    assert e["error"]["message"] == "min_tokens must be less than or equal to max_tokens=30, got 31."
    status, e = post_json(base, "/v1/completions", dict(body, min_tokens=-1))
    assert status == 400 and "greater than or equal to 0" in e["error"]["message"]


def test_logprobs(procs):
    """vLLM's logprobs: completions' {text_offset, token_logprobs, tokens,
    top_logprobs} and chat's {content: [{token, logprob, bytes,
    top_logprobs}]}, one entry per generated token, whole or per chunk; the
    sampled token is the likeliest; over --max-logprobs is vLLM's 400."""
    _, base = start_sim(procs, "--max-logprobs", "5")
    body = {"prompt": "tell me", "max_tokens": 6, "temperature": 0, "logprobs": 3}
    status, r = post_json(base, "/v1/completions", body)
    c = r["choices"][0]
    lp = c["logprobs"]
    assert status == 200 and len(lp["tokens"]) == 6 == r["usage"]["completion_tokens"]
    assert "".join(lp["tokens"]) == c["text"]
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i]) for i in range(6)]
    for tok, val, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert val <= 0 and len(top) == 3 and top[tok] == val and max(top.values()) == val
    events = data_events(base, "/v1/completions", dict(body, stream=True))
    streamed = [e["choices"][0]["logprobs"] for e in events if e.get("choices")]
    assert [t for s in streamed for t in s["tokens"]] == lp["tokens"]
    assert [o for s in streamed for o in s["text_offset"]] == lp["text_offset"]
    assert [v for s in streamed for v in s["token_logprobs"]] == lp["token_logprobs"]
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0,
            "logprobs": True, "top_logprobs": 2}
    status, r = post_json(base, "/v1/chat/completions", chat)
    content = r["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == r["choices"][0]["message"]["content"]
    for e in content:
        assert bytes(e["bytes"]).decode() == e["token"] and len(e["top_logprobs"]) == 2
        assert e["top_logprobs"][0]["token"] == e["token"]
        assert e["top_logprobs"][1]["logprob"] < e["logprob"]
    status, r = post_json(base, "/v1/chat/completions", dict(chat, logprobs=False,
                                                             top_logprobs=None))
    assert r["choices"][0]["logprobs"] is None
    status, e = post_json(base, "/v1/completions", dict(body, logprobs=6))
    assert status == 400
    assert e["error"]["message"] == \
        "Requested sample logprobs of 6, which is greater than max allowed: 5"
    status, e = post_json(base, "/v1/chat/completions", dict(chat, logprobs=False))
    assert status == 400 and "`logprobs` must be set to true" in e["error"]["message"]


def test_usage_options(procs):
    """vLLM's usage switches: --enable-prompt-tokens-details reports the
    prefix-cache hit as prompt_tokens_details.cached_tokens (null without
    one); --enable-force-include-usage ends every stream with usage;
    stream_options.continuous_usage_stats puts the usage so far on every
    chunk."""
    _, base = start_sim(procs, "--enable-prompt-tokens-details", "--enable-force-include-usage")
    prompt = " ".join("word%d" % i for i in range(100))
    body = {"prompt": prompt, "max_tokens": 2}
    status, r = post_json(base, "/v1/completions", body)
    assert r["usage"]["prompt_tokens_details"] is None
    status, r = post_json(base, "/v1/completions", body)
    assert r["usage"]["prompt_tokens_details"] == {"cached_tokens": 96}  # 6 whole blocks
    events = data_events(base, "/v1/completions", dict(body, stream=True))
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 2
    assert events[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 96}
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True,
            "stream_options": {"continuous_usage_stats": True}}
    events = data_events(base, "/v1/chat/completions", chat)
    running = [e["usage"]["completion_tokens"] for e in events if e["choices"]]
    assert running == [0, 1, 2, 3]
    _, plain = start_sim(procs)
    events = data_events(plain, "/v1/completions", dict(body, stream=True))
    assert all(e["choices"] and e["usage"] is None for e in events)
    status, r = post_json(plain, "/v1/completions", body)
    status, r = post_json(plain, "/v1/completions", body)
    assert r["usage"]["prompt_tokens_details"] is None


def test_n_choices(procs):
    """vLLM's n: n choices (one engine request each, as vLLM V1 fans them
    out), indexed 0..n-1, the usage of them all; a stream interleaves the
    choices' chunks and ends once, after the last; greedy sampling gives n
    equal answers; a client that leaves mid-stream takes every choice out
    of the engine."""
    _, base = start_sim(procs, "--enable-server-load-tracking", "--ttft-ms", "50",
                        "--itl-ms", "20")
    body = {"prompt": "tell me", "max_tokens": 5, "n": 3, "seed": 1}
    status, r = post_json(base, "/v1/completions", body)
    assert status == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2]
    texts = [c["text"] for c in r["choices"]]
    assert len(set(texts)) == 3 and all(len(t.split()) == 5 for t in texts)
    assert r["usage"]["completion_tokens"] == 15 and r["usage"]["prompt_tokens"] == 2
    events = data_events(base, "/v1/completions",
                         dict(body, stream=True, stream_options={"include_usage": True}))
    chunks = [e for e in events if e["choices"]]
    for i in range(3):
        mine = [e["choices"][0] for e in chunks if e["choices"][0]["index"] == i]
        assert "".join(c["text"] for c in mine) == texts[i]
        assert [c["finish_reason"] for c in mine] == [None] * 4 + ["length"]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 15
    status, r = post_json(base, "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                           "n": 2, "temperature": 0})
    assert status == 200 and len(r["choices"]) == 2
    assert r["choices"][0]["message"] == r["choices"][1]["message"]
    # A client gone mid-stream: nothing left running, the server still answers.
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/completions",
                 json.dumps({"prompt": "x", "max_tokens": 200, "n": 4, "stream": True}),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read1(100)
    assert json.loads(call(base, "/load")[2]) == {"server_load": 1}
    conn.close()
    deadline = time.time() + 5
    while time.time() < deadline and json.loads(call(base, "/load")[2])["server_load"]:
        time.sleep(0.05)
    assert json.loads(call(base, "/load")[2]) == {"server_load": 0}
    assert gauge(metrics(base), "num_requests_running") == 0
    status, e = post_json(base, "/v1/completions", dict(body, n=0))
    assert status == 400 and e["error"]["message"] == "n must be at least 1, got 0."


def test_prompt_list(procs):
    """vLLM's batched completions: a `prompt` listing several prompts (or
    token-id lists) gives n choices for each, choice j of prompt k at index
    k * n + j, with the usage of all the prompts; every prompt is checked
    against the context."""
    _, base = start_sim(procs, "--max-model-len", "50")
    body = {"prompt": ["hello there", "one two three"], "max_tokens": 2, "n": 2,
            "temperature": 0}
    status, r = post_json(base, "/v1/completions", body)
    assert status == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
    t = [c["text"] for c in r["choices"]]
    assert t[0] == t[1] and t[2] == t[3] and t[0] != t[2]
    assert r["usage"] == {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13,
                          "prompt_tokens_details": None}
    # The same prompts one at a time give the same answers.
    status, one = post_json(base, "/v1/completions", dict(body, prompt="one two three", n=1))
    assert one["choices"][0]["text"] == t[2]
    status, r = post_json(base, "/v1/completions", {"prompt": [[1, 2, 3], [4]], "max_tokens": 1})
    assert status == 200 and len(r["choices"]) == 2 and r["usage"]["prompt_tokens"] == 4
    status, e = post_json(base, "/v1/completions",
                          {"prompt": ["short", "x " * 60], "max_tokens": 2})
    assert status == 400 and "maximum context length is 50" in e["error"]["message"]
    status, e = post_json(base, "/v1/completions", {"prompt": []})
    assert status == 400 and e["error"]["param"] == "body.prompt"


def test_request_id_headers(procs):
    """--enable-request-id-headers: every answer (streams, errors, /health)
    carries X-Request-Id, the request's own or a new 32-hex one; without
    the flag none does."""
    _, base = start_sim(procs, "--enable-request-id-headers")
    status, headers, _ = call(base, "/v1/completions", {"prompt": "x", "max_tokens": 1},
                              headers={"X-Request-Id": "req-7"})
    assert status == 200 and headers["X-Request-Id"] == "req-7"
    status, headers, _ = call(base, "/v1/completions",
                              {"prompt": "x", "max_tokens": 1, "stream": True})
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-Id"])
    status, headers, _ = call(base, "/v1/completions", {"model": "nope", "prompt": "x"},
                              headers={"X-Request-Id": "req-8"})
    assert status == 404 and headers["X-Request-Id"] == "req-8"
    status, headers, _ = call(base, "/health", headers={"X-Request-Id": "req-9"})
    assert status == 200 and headers["X-Request-Id"] == "req-9"
    _, plain = start_sim(procs)
    status, headers, _ = call(plain, "/health", headers={"X-Request-Id": "req-9"})
    assert status == 200 and headers["X-Request-Id"] is None


def test_body_request_id_names_the_answer(procs):
    """vLLM's _base_request_id: the X-Request-Id header, else the body's
    request_id, else a random one (vllm-api.md §1.2). Chat has taken the
    body's request_id since before 0.8; completions since v0.9 (0.8 does
    not know the field and ignores it)."""
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "request_id": "body-1"}
    comp = {"prompt": "hi", "max_tokens": 2, "request_id": "body-2"}
    _, base = start_sim(procs)
    assert post_json(base, "/v1/chat/completions", chat)[1]["id"] == "chatcmpl-body-1"
    assert post_json(base, "/v1/completions", comp)[1]["id"] == "cmpl-body-2"
    status, _, data = call(base, "/v1/completions", dict(comp, stream=True))
    assert status == 200 and b'"id":"cmpl-body-2"' in data
    r = post_json(base, "/v1/completions", comp, headers={"X-Request-Id": "hdr"})[1]
    assert r["id"] == "cmpl-hdr"
    status, e = post_json(base, "/v1/completions", dict(comp, request_id=5))
    assert status == 400 and e["error"]["param"] == "body.request_id"
    _, old = start_sim(procs, "--vllm-version", "0.8")
    assert post_json(old, "/v1/chat/completions", chat)[1]["id"] == "chatcmpl-body-1"
    r = post_json(old, "/v1/completions", comp)[1]
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", r["id"])


def test_sampling_ranges(procs):
    """vLLM's SamplingParams ranges on every generating API: a value outside
    is a 400 with vLLM's message (the value printed as Python prints the
    float pydantic made of it); the edges are accepted."""
    _, base = start_sim(procs)
    apis = (("/v1/completions", {"prompt": "x", "max_tokens": 1}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                      "max_tokens": 1}),
            ("/v1/responses", {"input": "x", "max_output_tokens": 1}))
    bad = ((("temperature", -1), "temperature must be non-negative, got -1.0.", "temperature"),
           (("top_p", 1.5), "top_p must be in (0, 1], got 1.5.", "top_p"),
           (("top_p", 0), "top_p must be in (0, 1], got 0.0.", "top_p"),
           (("min_p", 2), "min_p must be in [0, 1], got 2.0.", None),
           (("presence_penalty", -2.25), "presence_penalty must be in [-2, 2], got -2.25.", None),
           (("frequency_penalty", 3), "frequency_penalty must be in [-2, 2], got 3.0.", None),
           (("repetition_penalty", -1), "repetition_penalty must be greater than zero, got -1.0.",
            None),
           (("top_k", -5), "top_k must be 0 (disable), or at least 1, got -5.", None))
    for path, body in apis:
        for (key, value), msg, param in bad:
            status, e = post_json(base, path, dict(body, **{key: value}))
            assert status == 400, (path, key, e)
            assert e["error"]["message"] == msg and e["error"]["param"] == param, (path, e)
        edges = dict(body, temperature=0, top_p=1, min_p=1, top_k=0, presence_penalty=2,
                     frequency_penalty=-2, repetition_penalty=0.01)
        status, r = post_json(base, path, edges)
        assert status == 200, (path, r)


SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "author": {"$ref": "#/$defs/Person"},
        "sentiment": {"enum": ["positive", "negative"]},
    },
    "required": ["title", "rating"],
    "$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string"}}}},
}


def check_review(doc):
    assert set(doc) == {"title", "rating", "tags", "author", "sentiment"}, doc
    assert isinstance(doc["title"], str) and len(doc["title"]) <= 40
    assert doc["rating"] in range(1, 6) and 1 <= len(doc["tags"]) <= 3
    assert isinstance(doc["author"]["name"], str)
    assert doc["sentiment"] in ("positive", "negative")


def test_structured_outputs(procs):
    """vLLM's structured outputs: response_format json_schema / json_object,
    guided_json, guided_choice, structured_outputs and the Responses API's
    text.format give answers that parse and fit (streamed too), ending on
    "stop" with the tokens they took, or cut at max_tokens ("length");
    what the simulator cannot write is refused by name."""
    _, base = start_sim(procs)
    chat = {"messages": [{"role": "user", "content": "review it"}]}
    rf = {"type": "json_schema", "json_schema": {"name": "review", "schema": SCHEMA}}
    status, r = post_json(base, "/v1/chat/completions", dict(chat, response_format=rf, n=2))
    assert status == 200, r
    for c in r["choices"]:
        check_review(json.loads(c["message"]["content"]))
        assert c["finish_reason"] == "stop"
    status, r = post_json(base, "/v1/completions",
                          {"prompt": "x", "max_tokens": 200, "guided_json": json.dumps(SCHEMA)})
    check_review(json.loads(r["choices"][0]["text"]))
    # Streamed, the pieces join into the same kind of document.
    _, events = stream(base, "/v1/chat/completions",
                       dict(chat, stream=True, structured_outputs={"json": SCHEMA},
                            stream_options={"include_usage": True}))
    payloads = [json.loads(p) for _, p in events if p != "[DONE]"]
    text = "".join(p["choices"][0]["delta"].get("content", "")
                   for p in payloads if p["choices"])
    check_review(json.loads(text))
    # Every token with text, then the end of sequence.
    assert payloads[-1]["usage"]["completion_tokens"] == 1 + len(
        [p for p in payloads if p["choices"] and p["choices"][0]["delta"].get("content")])
    # json_object: some object.
    status, r = post_json(base, "/v1/chat/completions",
                          dict(chat, response_format={"type": "json_object"}))
    assert isinstance(json.loads(r["choices"][0]["message"]["content"]), dict)
    # A choice, one token here and the end of sequence; completions too.
    seen = set()
    for seed in range(12):
        status, r = post_json(base, "/v1/completions",
                              {"prompt": "x", "seed": seed, "guided_choice": ["yes", "no"]})
        assert r["choices"][0]["finish_reason"] == "stop" and r["usage"]["completion_tokens"] == 2
        seen.add(r["choices"][0]["text"])
    assert seen == {"yes", "no"}
    # Cut short by max_tokens: the tokens asked for, finish "length".
    status, r = post_json(base, "/v1/chat/completions",
                          dict(chat, response_format=rf, max_tokens=6))
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 6
    # The Responses API's text.format.
    status, r = post_json(base, "/v1/responses",
                          {"input": "x", "text": {"format": {"type": "json_schema", "name": "r",
                                                             "schema": SCHEMA}}})
    assert status == 200, r
    check_review(json.loads(r["output"][0]["content"][0]["text"]))
    for extra, words in (({"guided_regex": "a+"}, "does not generate"),
                         ({"response_format": {"type": "yaml"}}, "response_format.type"),
                         ({"guided_choice": ["a"], "response_format": {"type": "json_object"}},
                          "only use one kind"),
                         ({"guided_json": "{not json"}, "JSON schema")):
        status, e = post_json(base, "/v1/chat/completions", dict(chat, **extra))
        assert status == 400 and words in e["error"]["message"], (extra, e)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["C", "F"]}}, "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "now"}}


def test_tool_calls(procs):
    """vLLM's tool calling on chat: a named tool_choice calls that tool
    (finish "stop"), "required" one of the tools, "auto" (the default when
    tools are given; needs --enable-auto-tool-choice and --tool-call-parser)
    calls one when the user spoke last and answers in words after the
    tool's result ("tool_calls" for both calls). Arguments are a JSON object
    fitting the tool's parameters; streamed, the first delta names the call
    and the rest carry its arguments."""
    _, plain = start_sim(procs)
    user = [{"role": "user", "content": "weather in Paris?"}]
    status, e = post_json(plain, "/v1/chat/completions", {"messages": user, "tools": [WEATHER]})
    assert status == 400 and e["error"]["message"] == (
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set')
    _, base = start_sim(procs, "--enable-auto-tool-choice", "--tool-call-parser", "hermes")

    def call(body):
        status, r = post_json(base, "/v1/chat/completions", body)
        assert status == 200, r
        return r["choices"][0], r["usage"]

    named = {"type": "function", "function": {"name": "get_weather"}}
    for choice, finish, content in ((named, "stop", ""), ("required", "tool_calls", ""),
                                    (None, "tool_calls", None)):
        body = {"messages": user, "tools": [WEATHER, CLOCK]}
        if choice:
            body["tool_choice"] = choice
        c, usage = call(body)
        assert c["finish_reason"] == finish and c["message"]["content"] == content, c
        (tc,) = c["message"]["tool_calls"]
        assert tc["type"] == "function" and tc["id"].startswith("chatcmpl-tool-")
        args = json.loads(tc["function"]["arguments"])
        if tc["function"]["name"] == "get_weather":
            assert isinstance(args["city"], str) and args["unit"] in ("C", "F"), args
        else:
            assert tc["function"]["name"] == "now" and args == {}
        assert usage["completion_tokens"] >= 1
    # After the tool's answer, words.
    c, _ = call({"messages": user + [
        {"role": "assistant", "tool_calls": [{"id": "x", "type": "function", "function": {
            "name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "x", "content": "sunny"}], "tools": [WEATHER]})
    assert c["message"]["tool_calls"] == [] and c["message"]["content"]
    # Streamed.
    _, events = stream(base, "/v1/chat/completions",
                       {"messages": user, "tools": [WEATHER], "tool_choice": named,
                        "stream": True})
    deltas = [json.loads(p)["choices"][0] for _, p in events if p != "[DONE]"]
    calls = [d["delta"]["tool_calls"][0] for d in deltas if "tool_calls" in d["delta"]]
    assert calls[0]["id"].startswith("chatcmpl-tool-") and calls[0]["index"] == 0
    assert calls[0]["function"]["name"] == "get_weather"
    assert all("id" not in t and "name" not in t["function"] for t in calls[1:])
    assert isinstance(json.loads("".join(t["function"]["arguments"] for t in calls))["city"], str)
    assert deltas[-1]["finish_reason"] == "stop"
    for body, words in (({"tool_choice": "required"}, "`tools` must be set"),
                        ({"tools": [WEATHER], "tool_choice": {"type": "function",
                                                              "function": {"name": "x"}}},
                         "Tool 'x' has not been passed")):
        status, e = post_json(base, "/v1/chat/completions", dict(body, messages=user))
        assert status == 400 and words in e["error"]["message"], e


def test_responses_function_calls(procs):
    """The Responses API's tool calls: flat function tools, a function_call
    output item (arguments fitting the parameters, call_id and fc_ id);
    streamed as output_item.added, function_call_arguments.delta/.done and
    output_item.done; after a function_call_output, words. Without the
    parser flags, "auto" answers in words (no 400 there)."""
    tool = dict(WEATHER["function"], type="function")
    _, plain = start_sim(procs)
    status, r = post_json(plain, "/v1/responses", {"input": "weather?", "tools": [tool]})
    assert status == 200 and r["output"][0]["type"] == "message", r
    _, base = start_sim(procs, "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
    for choice in (None, "required", {"type": "function", "name": "get_weather"}):
        body = {"input": "weather in Paris?", "tools": [tool]}
        if choice:
            body["tool_choice"] = choice
        status, r = post_json(base, "/v1/responses", body)
        assert status == 200 and r["status"] == "completed", r
        (item,) = r["output"]
        assert item["type"] == "function_call" and item["name"] == "get_weather"
        assert item["id"].startswith("fc_") and item["call_id"].startswith("call_")
        assert item["status"] == "completed"
        assert isinstance(json.loads(item["arguments"])["city"], str)
    status, r = post_json(base, "/v1/responses", {"tools": [tool], "input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]})
    assert r["output"][0]["type"] == "message" and r["output"][0]["content"][0]["text"]
    evs = [data for _, data in named_events(base, "/v1/responses",
                                            {"input": "weather?", "tools": [tool],
                                             "stream": True})]
    types = [e["type"] for e in evs]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-3:] == ["response.function_call_arguments.done", "response.output_item.done",
                          "response.completed"], types
    added = evs[2]["item"]
    assert added["type"] == "function_call" and added["status"] == "in_progress"
    deltas = [e["delta"] for e in evs if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == evs[-3]["arguments"] == evs[-2]["item"]["arguments"]
    assert json.loads(evs[-3]["arguments"])["city"]
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))


def test_messages_tool_use(procs):
    """Anthropic's Messages: tools with input_schema; tool_choice any / tool
    / auto (the default, with the parser flags) answer one tool_use block
    (toolu_ id, input an object fitting the schema) and stop_reason
    "tool_use"; a user turn of tool_result blocks gets text; streamed, the
    block starts as tool_use with input {} and grows by input_json_delta."""
    _, base = start_sim(procs, "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
    tool = {"name": "get_weather", "description": "w",
            "input_schema": WEATHER["function"]["parameters"]}
    ask = {"model": "Qwen/Qwen2.5-1.5B-Instruct", "max_tokens": 200, "tools": [tool],
           "messages": [{"role": "user", "content": "weather in Paris?"}]}
    for choice in (None, {"type": "any"}, {"type": "tool", "name": "get_weather"}):
        status, r = post_json(base, "/v1/messages",
                              dict(ask, tool_choice=choice) if choice else ask)
        assert status == 200 and r["stop_reason"] == "tool_use", r
        (block,) = r["content"]
        assert block["type"] == "tool_use" and block["name"] == "get_weather"
        assert block["id"].startswith("toolu_") and isinstance(block["input"]["city"], str)
    answered = dict(ask, messages=ask["messages"] + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "sunny"}]}])
    status, r = post_json(base, "/v1/messages", answered)
    assert r["content"][0]["type"] == "text" and r["stop_reason"] == "end_turn", r
    evs = [data for _, data in named_events(base, "/v1/messages", dict(ask, stream=True))]
    start = [e for e in evs if e["type"] == "content_block_start"][0]["content_block"]
    assert start["type"] == "tool_use" and start["input"] == {} and start["name"] == "get_weather"
    parts = [e["delta"]["partial_json"] for e in evs if e["type"] == "content_block_delta"]
    assert isinstance(json.loads("".join(parts))["city"], str)
    assert [e for e in evs if e["type"] == "message_delta"][0]["delta"]["stop_reason"] == "tool_use"


def test_echo_logprobs_score_the_prompt(procs):
    """What lm-eval-harness's loglikelihood asks of a completions server:
    echo with logprobs lists the prompt's tokens first (the first without a
    logprob, each with its own text in top_logprobs), then the answer's;
    max_tokens 0 with echo answers the prompt alone (vLLM's echo without
    generation: one step, shown as nothing), whole or streamed."""
    _, base = start_sim(procs)
    prompt = "the quiet city, at night"
    status, r = post_json(base, "/v1/completions",
                          {"prompt": prompt, "max_tokens": 3, "echo": True, "logprobs": 2})
    assert status == 200, r
    c = r["choices"][0]
    lp, n = c["logprobs"], r["usage"]["prompt_tokens"]
    assert n == 6 and len(lp["tokens"]) == n + 3 == len(lp["token_logprobs"])
    assert "".join(lp["tokens"]) == c["text"] and c["text"].startswith(prompt)
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i])
                                 for i in range(len(lp["tokens"]))]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    for i in range(1, len(lp["tokens"])):
        top = lp["top_logprobs"][i]
        assert len(top) == 2 and top[lp["tokens"][i]] == lp["token_logprobs"][i] < 0, (i, top)
    for streamed in (False, True):
        body = {"prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": 1,
                "stream": streamed}
        if streamed:
            _, events = stream(base, "/v1/completions", body)
            chunks = [json.loads(p)["choices"][0] for _, p in events if p != "[DONE]"]
            text = "".join(ch["text"] for ch in chunks)
            tokens = [t for ch in chunks for t in ch["logprobs"]["tokens"]]
        else:
            status, r = post_json(base, "/v1/completions", body)
            assert status == 200, r
            text, tokens = r["choices"][0]["text"], r["choices"][0]["logprobs"]["tokens"]
            assert r["choices"][0]["finish_reason"] == "length"
        assert text == prompt and "".join(tokens) == prompt and len(tokens) == 6
    status, e = post_json(base, "/v1/completions", {"prompt": prompt, "max_tokens": 0})
    assert status == 400, e


def test_prompt_logprobs(procs):
    """vLLM's prompt_logprobs: per prompt token (the first None) a map of
    token ids to {logprob, rank, decoded_token} holding the prompt's own
    token and the N most likely ones; on each completion choice, at the top
    of a chat answer; the same prompt gets the same figures; refused with
    stream, below -1 and above --max-logprobs."""
    _, base = start_sim(procs)
    prompt = "the quiet city, at night"
    bodies = []
    for _ in range(2):
        status, r = post_json(base, "/v1/completions",
                              {"prompt": prompt, "max_tokens": 2, "prompt_logprobs": 3, "n": 2})
        assert status == 200, r
        bodies.append(r)
    plp = bodies[0]["choices"][0]["prompt_logprobs"]
    assert plp == bodies[0]["choices"][1]["prompt_logprobs"] == \
        bodies[1]["choices"][0]["prompt_logprobs"]
    assert len(plp) == bodies[0]["usage"]["prompt_tokens"] == 6 and plp[0] is None
    assert "".join(next(iter(e.values()))["decoded_token"] for e in plp[1:]) == \
        " quiet city, at night"
    for entry in plp[1:]:
        ranks = sorted(v["rank"] for v in entry.values())
        assert ranks[:3] == [1, 2, 3] and len(entry) in (3, 4), entry
        assert all(0 <= int(k) < 151936 for k in entry)
        by_rank = sorted(entry.values(), key=lambda v: v["rank"])
        assert all(a["logprob"] > b["logprob"] for a, b in zip(by_rank, by_rank[1:]))
    status, r = post_json(base, "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
                           "prompt_logprobs": 0})
    assert status == 200, r
    assert len(r["prompt_logprobs"]) == r["usage"]["prompt_tokens"]
    assert all(len(e) == 1 for e in r["prompt_logprobs"][1:])
    status, r = post_json(base, "/v1/completions", {"prompt": prompt, "max_tokens": 1})
    assert r["choices"][0]["prompt_logprobs"] is None
    for extra, msg in (({"stream": True, "prompt_logprobs": 1},
                        "`prompt_logprobs` are not available when `stream=True`."),
                       ({"prompt_logprobs": -2},
                        "`prompt_logprobs` must be a positive value or -1."),
                       ({"prompt_logprobs": 21},
                        "Requested prompt logprobs of 21, which is greater than max allowed: "
                        "20")):
        status, e = post_json(base, "/v1/completions",
                              dict({"prompt": prompt, "max_tokens": 1}, **extra))
        assert status == 400 and e["error"]["message"] == msg, e


def test_logit_bias_and_truncation(procs):
    """logit_bias keys must be integers within the vocabulary (vLLM lists
    the ones outside); truncate_prompt_tokens keeps the prompt's last N
    tokens (-1: the context), up to max_model_len."""
    _, base = start_sim(procs)
    for path, body in (("/v1/completions", {"prompt": "a b c d e f", "max_tokens": 1}),
                       ("/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "a b c d e f"}],
                         "max_tokens": 1})):
        status, r = post_json(base, path, dict(body, logit_bias={"12": 100, "7": -100.5}))
        assert status == 200, r
        status, e = post_json(base, path, dict(body, logit_bias={"12": 1, "x": 1}))
        assert status == 400 and e["error"]["message"] == (
            "Found token_id `x` in logit_bias but token_id must be an integer or string "
            "representing an integer"), e
        status, e = post_json(base, path, dict(body, logit_bias={"1": 1, "151936": 1, "-1": 1}))
        assert status == 400 and e["error"]["message"] == (
            "token_id(s) [151936, -1] in logit_bias contain out-of-vocab token ids. "
            "Vocabulary size: 151936"), e
        status, full = post_json(base, path, body)
        status, r = post_json(base, path, dict(body, truncate_prompt_tokens=3))
        assert status == 200 and r["usage"]["prompt_tokens"] == 3 < full["usage"]["prompt_tokens"]
        status, r = post_json(base, path, dict(body, truncate_prompt_tokens=-1))
        assert r["usage"]["prompt_tokens"] == full["usage"]["prompt_tokens"]
        status, e = post_json(base, path, dict(body, truncate_prompt_tokens=10 ** 6))
        assert status == 400 and "is greater than max_model_len" in e["error"]["message"], e
        status, e = post_json(base, path, dict(body, truncate_prompt_tokens=-2))
        assert status == 400, e
    status, r = post_json(base, "/v1/embeddings", {"input": ["a b c d e f", "g"],
                                                     "truncate_prompt_tokens": 2})
    assert status == 200 and r["usage"]["prompt_tokens"] == 3, r


def raw_call(base, method, path, headers):
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def post_big(base, path, size, chunked=False):
    """POSTs a JSON body of `size` bytes (a prompt of one-letter words), by
    Content-Length or chunked; returns (status, headers, parsed body)."""
    host, port = base[len("http://"):].split(":")
    head, tail = b'{"prompt": "', b'"}'
    fill = size - len(head) - len(tail)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    if chunked:
        def pieces():
            yield head
            left = fill
            while left:
                k = min(left, 1 << 20)
                yield (b"x " * k)[:k]
                left -= k
            yield tail
        conn.request("POST", path, pieces(), {"Content-Type": "application/json"},
                     encode_chunked=True)
    else:
        conn.request("POST", path, head + (b"x " * fill)[:fill] + tail,
                     {"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())
    conn.close()
    return out


def test_body_too_large(procs):
    """vLLM (uvicorn, Starlette) sets no limit on a request body; the
    simulator holds one whole and refuses past 16 MiB with 413, answered as
    vLLM answers an HTTPException: the error envelope typed with the
    status's phrase in the latest mode, FastAPI's {"detail"} in 0.8, and
    Anthropic's request_too_large on /v1/messages. Under the limit the
    request goes on to the usual checks."""
    limit = 16 * 1024 * 1024
    _, base = start_sim(procs, "--enable-request-id-headers")
    _, old = start_sim(procs, "--vllm-version", "0.8")
    for chunked in (False, True):
        status, h, e = post_big(base, "/v1/completions", limit + 1, chunked)
        assert status == 413, (chunked, e)
        assert list(e) == ["error"] and list(e["error"]) == ["message", "type", "param", "code"]
        assert e["error"]["type"] == "Request Entity Too Large"
        assert e["error"]["code"] == 413 and e["error"]["param"] is None
        assert str(limit) in e["error"]["message"]
        assert h["content-type"] == "application/json" and h["server"] == "uvicorn"
        assert "date" in h and re.fullmatch(r"[0-9a-f]{32}", h["x-request-id"])
    status, _, e = post_big(old, "/v1/chat/completions", limit + 10)
    assert status == 413 and list(e) == ["detail"] and str(limit) in e["detail"], e
    status, _, e = post_big(base, "/v1/messages", limit + 10)
    assert status == 413 and e["type"] == "error", e
    assert e["error"]["type"] == "request_too_large"
    # At the limit the body is read and checked as any other: a prompt
    # longer than the context.
    status, _, e = post_big(base, "/v1/completions", limit)
    assert status == 400 and e["error"]["param"] == "input_tokens", e


def test_cors(procs):
    """vLLM's CORS middleware (Starlette's): by default every origin may
    read the answers (Access-Control-Allow-Origin: *) and a preflight is
    200 "OK" mirroring the asked headers; with --allowed-origins,
    --allowed-methods, --allowed-headers and --allow-credentials, allowed
    origins are named back with Vary: Origin, others get no grant, and a
    preflight they fail is 400 naming what failed."""
    _, base = start_sim(procs)
    pre = {"Origin": "http://a.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type, x-custom"}
    status, h, body = raw_call(base, "OPTIONS", "/v1/chat/completions", pre)
    assert status == 200 and body == b"OK", (status, body)
    assert h["access-control-allow-origin"] == "*" and h["access-control-max-age"] == "600"
    assert h["access-control-allow-headers"] == "content-type, x-custom"
    assert "POST" in h["access-control-allow-methods"] and "vary" not in h
    status, h, _ = raw_call(base, "GET", "/v1/models", {"Origin": "http://a.example"})
    assert status == 200 and h["access-control-allow-origin"] == "*"
    status, h, _ = raw_call(base, "GET", "/v1/models", {})
    assert "access-control-allow-origin" not in h
    # A plain OPTIONS (no preflight) is the route's 405, as before.
    status, _, _ = raw_call(base, "OPTIONS", "/v1/chat/completions", {})
    assert status == 405
    _, strict = start_sim(procs, "--allowed-origins", '["http://ok.example"]', "--allowed-methods",
                          '["POST"]', "--allowed-headers", '["X-Custom"]', "--allow-credentials")
    status, h, body = raw_call(strict, "OPTIONS", "/v1/chat/completions",
                               dict(pre, Origin="http://ok.example"))
    assert status == 200 and h["access-control-allow-origin"] == "http://ok.example"
    assert h["vary"] == "Origin" and h["access-control-allow-credentials"] == "true"
    assert h["access-control-allow-methods"] == "POST"
    assert h["access-control-allow-headers"] == (
        "Accept, Accept-Language, Content-Language, Content-Type, X-Custom")
    status, h, body = raw_call(strict, "OPTIONS", "/v1/chat/completions",
                               {"Origin": "http://bad.example",
                                "Access-Control-Request-Method": "PUT",
                                "Access-Control-Request-Headers": "x-other"})
    assert status == 400 and body == b"Disallowed CORS origin, method, headers", body
    assert "access-control-allow-origin" not in h
    status, h, _ = raw_call(strict, "GET", "/v1/models", {"Origin": "http://ok.example"})
    assert h["access-control-allow-origin"] == "http://ok.example" and h["vary"] == "Origin"
    status, h, _ = raw_call(strict, "GET", "/v1/models", {"Origin": "http://bad.example"})
    assert status == 200 and "access-control-allow-origin" not in h
    p = procs.start("sim", "--allowed-origins", "http://x", name="sim")
    assert p.wait(timeout=10) == 2 and "JSON list" in procs.output(p)


def floats_in(raw, key):
    """The numbers that follow "key": in a JSON text, as written."""
    return re.findall(r'"%s":(-?[0-9][0-9.eE+-]*)' % key, raw)


def test_logprobs_print_as_python(procs):
    """vLLM's bodies are written by Python, so a logprob prints as repr()
    prints it: the shortest text that reads back (-0.717, not -0.717000),
    in the whole body as in a stream, for completions, chat and
    prompt_logprobs alike."""
    _, base = start_sim(procs)
    body = {"prompt": "tell me a story", "max_tokens": 8, "temperature": 0, "logprobs": 2,
            "prompt_logprobs": 1}
    status, _, raw = call(base, "/v1/completions", body)
    raw = raw.decode()
    lp = json.loads(raw)["choices"][0]["logprobs"]
    assert status == 200 and lp["token_logprobs"]
    seen = re.findall(r'"token_logprobs":\[([^\]]*)\]', raw)[0].split(",")
    seen += re.findall(r'"top_logprobs":\[\{"[^"]*":(-?[0-9.]+)', raw)
    seen += floats_in(raw, "logprob")  # prompt_logprobs entries
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "temperature": 0, "logprobs": True, "top_logprobs": 2}
    status, _, craw = call(base, "/v1/chat/completions", chat)
    seen += floats_in(craw.decode(), "logprob")
    _, events = stream(base, "/v1/completions", dict(body, stream=True, prompt_logprobs=None))
    for _, e in events[:-1]:
        seen += re.findall(r'"token_logprobs":\[([^\]]*)\]', e)
    assert len(seen) > 20
    for s in seen:
        if s != "null":
            assert s == repr(float(s)), s


RUNTIME_LORA = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def test_content_type_must_be_json(procs):
    """vLLM's JSON routes (the OpenAI ones, /tokenize, /detokenize, the LoRA
    admin ones) answer 415 to a body whose content-type is not
    application/json (parameters and case aside), before anything else:
    FastAPI's {"detail": ...} in 0.8, the error envelope with the status
    phrase as its type in newer releases."""
    routes = ["/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/embeddings",
              "/tokenize", "/detokenize", "/v1/load_lora_adapter", "/v1/unload_lora_adapter"]
    detail = "Unsupported Media Type: Only 'application/json' is allowed"
    for version in ("0.8", "latest"):
        _, base = start_sim(procs, "--vllm-version", version, "--enable-lora", env=RUNTIME_LORA)
        for path in routes:
            for ctype in ("text/plain", "application/x-www-form-urlencoded", "", None):
                h = {"Content-Type": ctype} if ctype is not None else {}
                data = b'{"prompt": "x"}'
                host, port = base[len("http://"):].split(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.putrequest("POST", path)
                for k, v in dict(h, **{"Content-Length": str(len(data))}).items():
                    conn.putheader(k, v)
                conn.endheaders(data)
                resp = conn.getresponse()
                status, body = resp.status, json.loads(resp.read())
                conn.close()
                assert status == 415, (version, path, ctype, status)
                if version == "0.8":
                    assert body == {"detail": detail}
                else:
                    assert body == {"error": {"message": detail, "type": "Unsupported Media Type",
                                              "param": None, "code": 415}}
        # Parameters and case do not matter.
        for ctype in ("application/json; charset=utf-8", "Application/JSON"):
            status, _, _ = call(base, "/v1/completions", {"prompt": "x", "max_tokens": 1},
                                headers={"Content-Type": ctype})
            assert status == 200, ctype
        # Other routes do not look at it.
        assert call(base, "/v1/models", headers={"Content-Type": "text/plain"})[0] == 200


def test_runtime_lora_needs_env_and_enable_lora(procs):
    """vLLM mounts /v1/load_lora_adapter and /v1/unload_lora_adapter only
    when VLLM_ALLOW_RUNTIME_LORA_UPDATING is 1 or true (any case, blanks
    around); otherwise they are unknown paths (404). With them but without
    --enable-lora the engine cannot load an adapter: 0.8 answers 400, newer
    releases 500 (vllm-api.md §6)."""
    load = {"lora_name": "new", "lora_path": "/p"}
    for env in (None, {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "0"},
                {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "yes"}):
        _, base = start_sim(procs, "--enable-lora", env=env)
        for path, body in (("/v1/load_lora_adapter", load),
                           ("/v1/unload_lora_adapter", {"lora_name": "new"})):
            status, _, data = call(base, path, body)
            assert status == 404 and json.loads(data) == {"detail": "Not Found"}, (env, path)
    _, base = start_sim(procs, "--enable-lora", env={"VLLM_ALLOW_RUNTIME_LORA_UPDATING": " TRUE "})
    assert call(base, "/v1/load_lora_adapter", load)[0] == 200
    for version, status_want, msg in (
            ("0.8", 400, "LoRA is not enabled"),
            ("latest", 500, "LoRA is not enabled. Use --enable-lora to enable LoRA.")):
        _, base = start_sim(procs, "--vllm-version", version, env={
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"})
        status, e = post_json(base, "/v1/load_lora_adapter", load)
        assert status == status_want, (version, status, e)
        assert (e["message"] if version == "0.8" else e["error"]["message"]) == msg
        # The request's own checks come first.
        status, e = post_json(base, "/v1/load_lora_adapter", {"lora_name": "new"})
        assert status == 400, e
        ids = [c["id"] for c in json.loads(call(base, "/v1/models")[2])["data"]]
        assert ids == ["Qwen/Qwen2.5-1.5B-Instruct"]
        assert post_json(base, "/v1/unload_lora_adapter", {"lora_name": "new"})[0] == 404


def test_api_key(procs):
    """--api-key: every /v1 path (known or not) needs Authorization: Bearer
    KEY, else 401 {"error": "Unauthorized"} before anything else; /health,
    /metrics, /version, /tokenize and CORS preflights are never guarded
    (vllm-api.md §4.2). The simulated 401 (x-sim-force-status) answers the
    same body."""
    for version in ("0.8", "latest"):
        _, base = start_sim(procs, "--api-key", "sekrit", "--vllm-version", version)
        unauthorized = (401, {"error": "Unauthorized"})
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekrit"}):
            assert post_json(base, "/v1/completions", {"prompt": "x"},
                             headers=headers) == unauthorized
            assert post_json(base, "/v1/models", None, headers=headers) == unauthorized
            assert post_json(base, "/v1/nope", None, headers=headers) == unauthorized
            # Before the content-type check, too.
            assert post_json(base, "/v1/completions", {"prompt": "x"},
                             headers=dict(headers, **{"Content-Type": "text/plain"})) == \
                unauthorized
        ok = {"Authorization": "Bearer sekrit"}
        status, r = post_json(base, "/v1/completions", {"prompt": "x", "max_tokens": 1},
                              headers=ok)
        assert status == 200 and r["usage"]["completion_tokens"] == 1
        assert call(base, "/v1/models", headers=ok)[0] == 200
        assert call(base, "/v1/nope", headers=ok)[0] == 404
        for path in ("/health", "/metrics", "/version"):
            assert call(base, path)[0] == 200, path
        assert post_json(base, "/tokenize", {"prompt": "a b"})[0] == 200
        status, _, _ = raw_call(base, "OPTIONS", "/v1/chat/completions",
                                {"Origin": "http://a.example",
                                 "Access-Control-Request-Method": "POST"})
        assert status == 200
        # The scheme is case-insensitive in newer releases only.
        status = call(base, "/v1/models", headers={"Authorization": "bearer sekrit"})[0]
        assert status == (401 if version == "0.8" else 200)
        assert post_json(base, "/v1/completions", {"prompt": "x"},
                         headers=dict(ok, **{"x-sim-force-status": "401"})) == unauthorized
    _, base = start_sim(procs)
    assert post_json(base, "/v1/completions", {"prompt": "x"},
                     headers={"x-sim-force-status": "401"}) == (401, {"error": "Unauthorized"})
    assert call(base, "/v1/models")[0] == 200
    # An empty key guards nothing (vLLM tests the key for truth).
    _, base = start_sim(procs, "--api-key", "")
    assert call(base, "/v1/models")[0] == 200


def test_validation_errors_latest(procs):
    """What vLLM's request models refuse (a body that is not JSON, a missing
    or mistyped field, a model validator) is a 400 that newer releases type
    with the HTTP phrase, "Bad Request", and whose param is FastAPI's
    location of the fault: "body.<field>", or "body" for a check of the
    whole request (vllm-api.md §4.1, §4.2). What the serving code refuses
    (a range, the context, the model) keeps its own type; 0.8 writes
    BadRequestError and no param for all of them."""
    _, base = start_sim(procs)
    cases = [
        ("/v1/completions", {"prompt": "x", "stream": "sometimes"}, "body.stream"),
        ("/v1/completions", {}, "body.prompt"),
        ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, "body.max_tokens"),
        ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, "body"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                  "top_logprobs": 2}, "body"),
        ("/v1/chat/completions", {"messages": "x"}, "body.messages"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "hex"}, "body.encoding_format"),
        ("/tokenize", {"prompt": 5}, "body.prompt"),
        ("/detokenize", {"tokens": "x"}, "body.tokens"),
    ]
    for path, body, param in cases:
        status, e = post_json(base, path, body)
        assert status == 400 and e["error"]["type"] == "Bad Request", (path, body, e)
        assert e["error"]["param"] == param and e["error"]["code"] == 400, (path, body, e)
    status, _, data = call(base, "/v1/completions", raw=b"{not json")
    e = json.loads(data)["error"]
    assert status == 400 and (e["type"], e["param"]) == ("Bad Request", "body")
    # The serving code's refusals are not validation errors.
    status, e = post_json(base, "/v1/completions", {"prompt": "x", "temperature": -1})
    assert status == 400 and e["error"]["type"] == "BadRequestError"
    status, e = post_json(base, "/v1/completions", {"prompt": "x", "max_tokens": 0})
    assert status == 400 and e["error"]["type"] == "BadRequestError"
    assert e["error"]["message"] == "max_tokens must be at least 1, got 0."
    _, old = start_sim(procs, "--vllm-version", "0.8")
    for path, body, _ in cases:
        status, e = post_json(old, path, body)
        assert status == 400 and e["type"] == "BadRequestError" and e["param"] is None, e


def test_context_length_wording(procs):
    """The context-length refusal in each release's words: 0.8's "you
    requested N tokens (P in the messages, M in the completion)" and "...
    in the messages, Please reduce ...", the latest release's "you
    requested M output tokens and your prompt contains at least P input
    tokens ..." with param input_tokens (vllm-api.md §4.2)."""
    long_chat = {"messages": [{"role": "user", "content": "w " * 120}]}
    _, base = start_sim(procs, "--max-model-len", "100")
    status, e = post_json(base, "/v1/chat/completions", long_chat)
    assert status == 400 and e["error"] == {
        "message": "This model's maximum context length is 100 tokens. However, you requested "
                   "0 output tokens and your prompt contains at least 127 input tokens, for a "
                   "total of at least 127 tokens. Please reduce the length of the input prompt "
                   "or the number of requested output tokens. (parameter=input_tokens, "
                   "value=127)",
        "type": "BadRequestError", "param": "input_tokens", "code": 400}
    status, e = post_json(base, "/v1/completions", {"prompt": "a b c", "max_tokens": 98})
    assert status == 400 and e["error"]["param"] == "input_tokens"
    assert e["error"]["message"] == (
        "This model's maximum context length is 100 tokens. However, you requested 98 output "
        "tokens and your prompt contains at least 3 input tokens, for a total of at least 101 "
        "tokens. Please reduce the length of the input prompt or the number of requested "
        "output tokens. (parameter=input_tokens, value=3)")
    _, old = start_sim(procs, "--max-model-len", "100", "--vllm-version", "0.8")
    status, e = post_json(old, "/v1/chat/completions", long_chat)
    assert status == 400 and e["message"] == (
        "This model's maximum context length is 100 tokens. However, you requested 127 tokens "
        "in the messages, Please reduce the length of the messages.")
    status, e = post_json(old, "/v1/completions", {"prompt": "a b c", "max_tokens": 98})
    assert status == 400 and e["message"] == (
        "This model's maximum context length is 100 tokens. However, you requested 101 tokens "
        "(3 in the messages, 98 in the completion). Please reduce the length of the messages "
        "or completion.")


def test_completion_max_tokens_null_fills_the_context(procs):
    """A completion's max_tokens defaults to 16 when absent, but an explicit
    null leaves the answer the rest of the context, as vLLM's
    CompletionRequest (max_tokens: Optional[int] = 16) hands None to
    get_max_tokens; chat's null means the same."""
    _, base = start_sim(procs, "--max-model-len", "100")
    status, r = post_json(base, "/v1/completions", {"prompt": "hi", "max_tokens": None})
    assert status == 200, r
    u = r["usage"]
    assert u["completion_tokens"] == 100 - u["prompt_tokens"]
    assert r["choices"][0]["finish_reason"] == "length"
    status, r = post_json(base, "/v1/completions", {"prompt": "hi"})
    assert status == 200 and r["usage"]["completion_tokens"] == 16
    status, r = post_json(base, "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "hi"}], "max_tokens": None,
                           "max_completion_tokens": None, "ignore_eos": True})
    assert status == 200 and r["usage"]["total_tokens"] == 100
    # A prompt that fills the context leaves no room, in 0.8's words too.
    _, old = start_sim(procs, "--max-model-len", "3", "--vllm-version", "0.8")
    status, e = post_json(old, "/v1/completions", {"prompt": "a b c", "max_tokens": None})
    assert status == 400 and e["message"] == (
        "This model's maximum context length is 3 tokens. However, you requested 3 tokens "
        "in the messages, Please reduce the length of the messages.")


def test_empty_prompt_and_unknown_token_ids(procs):
    """vLLM's engine refuses an empty prompt ("The decoder prompt cannot be
    empty") and a prompt of token ids with one outside the vocabulary
    ("Token id N is out of vocabulary"), each a 400, whatever the release."""
    for version in ("0.8", "latest"):
        _, base = start_sim(procs, "--vllm-version", version)

        def msg(body):
            status, e = post_json(base, "/v1/completions", dict(body, max_tokens=2))
            assert status == 400, (body, e)
            return e["message"] if version == "0.8" else e["error"]["message"]

        assert msg({"prompt": ""}) == "The decoder prompt cannot be empty"
        assert msg({"prompt": ["a b", ""]}) == "The decoder prompt cannot be empty"
        assert msg({"prompt": [999999]}) == "Token id 999999 is out of vocabulary"
        assert msg({"prompt": [5, -1]}) == "Token id -1 is out of vocabulary"
        assert msg({"prompt": [[1], [151936, 3]]}) == "Token id 151936 is out of vocabulary"
        status, r = post_json(base, "/v1/completions", {"prompt": [0, 151935], "max_tokens": 1})
        assert status == 200 and r["usage"]["prompt_tokens"] == 2
        status, e = post_json(base, "/v1/embeddings", {"input": [7, 200000]})
        assert status == 400


def test_best_of(procs):
    """vLLM's best_of: at least n (0.8's SamplingParams), and the V1 engine
    of newer releases refuses any but 1. In 0.8 best_of sequences run and
    the best n are answered, so a stream whose n is not best_of cannot be
    streamed token by token: the whole answer goes out in one data event,
    then [DONE] (vllm-api.md §1.3)."""
    _, old = start_sim(procs, "--vllm-version", "0.8")
    body = {"prompt": "tell me", "max_tokens": 4, "seed": 3}
    status, e = post_json(old, "/v1/completions", dict(body, n=2, best_of=1))
    assert status == 400 and e["message"] == \
        "best_of must be greater than or equal to n, got n=2 and best_of=1."
    status, e = post_json(old, "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "x"}], "n": 3, "best_of": 2})
    assert status == 400 and e["message"].startswith("best_of must be greater than or equal")
    status, e = post_json(old, "/v1/completions", dict(body, best_of=0))
    assert status == 400 and e["message"] == "best_of must be at least 1, got 0"
    before = gauge(metrics(old), "generation_tokens_total")
    status, r = post_json(old, "/v1/completions", dict(body, best_of=3))
    assert status == 200 and len(r["choices"]) == 1 and r["choices"][0]["index"] == 0
    assert r["usage"]["completion_tokens"] == 4
    # Every sequence ran in the engine.
    assert gauge(metrics(old), "generation_tokens_total") - before == 12
    host, port = old[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/completions", json.dumps(dict(body, best_of=2, stream=True)),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert resp.getheader("Content-Length") is None
    raw = resp.read().decode()
    conn.close()
    events = raw.split("\n\n")
    assert events[1:] == ["data: [DONE]", ""], raw
    whole = json.loads(events[0][len("data: "):])
    assert whole["object"] == "text_completion" and len(whole["choices"]) == 1
    assert len(whole["choices"][0]["text"].split()) == 4
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 4
    # A chat the same way: its hidden sequences never reach the stream.
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/chat/completions",
                 json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 4,
                             "seed": 3, "best_of": 2, "stream": True}),
                 {"Content-Type": "application/json"})
    raw = conn.getresponse().read().decode()
    conn.close()
    events = raw.split("\n\n")
    assert events[1:] == ["data: [DONE]", ""], raw
    whole = json.loads(events[0][len("data: "):])
    assert whole["object"] == "chat.completion" and len(whole["choices"]) == 1, whole
    assert whole["choices"][0]["index"] == 0
    # n == best_of streams as usual.
    events = data_events(old, "/v1/completions", dict(body, n=2, best_of=2, stream=True))
    assert len(events) == 8
    _, new = start_sim(procs)
    status, e = post_json(new, "/v1/completions", dict(body, best_of=2))
    assert status == 400 and e["error"]["message"] == "vLLM V1 does not yet support best_of."
    status, e = post_json(new, "/v1/completions", dict(body, n=2, best_of=1))
    assert status == 400 and e["error"]["message"].startswith("best_of must be greater")
    assert post_json(new, "/v1/completions", dict(body, best_of=1))[0] == 200
    assert post_json(new, "/v1/completions", dict(body, best_of=None))[0] == 200


def test_beam_search_stream_goes_out_whole_in_0_8(procs):
    """vLLM 0.8's completions do not stream beam search (its answer exists
    once every beam is done): a stream with use_beam_search gets the whole
    body in one data event, then [DONE] (vllm-api.md §1.3)."""
    _, old = start_sim(procs, "--vllm-version", "0.8")
    body = {"prompt": "tell me", "max_tokens": 4, "use_beam_search": True, "stream": True}
    raw = call(old, "/v1/completions", body)[2].decode()
    events = raw.split("\n\n")
    assert events[1:] == ["data: [DONE]", ""], raw
    whole = json.loads(events[0][len("data: "):])
    assert whole["object"] == "text_completion" and len(whole["choices"]) == 1
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 4
    status, e = post_json(old, "/v1/completions", dict(body, use_beam_search="perhaps"))
    assert status == 400


def test_chat_template_switches_and_media(procs):
    """Chat's add_generation_prompt and continue_final_message: both true is
    vLLM's 400 (as on /tokenize); without the generation prompt the prompt
    has no opening of the reply, and continuing the final message leaves it
    open (the token counts follow). A non-text content part (image_url,
    input_audio, ...) on a text-only model is a 400 (vllm-api.md §2)."""
    msgs = [{"role": "user", "content": "hi there"},
            {"role": "assistant", "content": "Once upon"}]
    for version in ("0.8", "latest"):
        _, base = start_sim(procs, "--vllm-version", version)

        def err(body):
            status, e = post_json(base, "/v1/chat/completions", body)
            assert status == 400, (body, e)
            return e if version == "0.8" else e["error"]

        e = err({"messages": msgs, "continue_final_message": True})
        assert e["message"] == ("Cannot set both `continue_final_message` and "
                                "`add_generation_prompt` to True.")
        base_len = 2 + 2 + 2 * 4  # two turns of two words
        for extra, want in (({}, base_len + 3),
                            ({"add_generation_prompt": False}, base_len),
                            ({"add_generation_prompt": False, "continue_final_message": True},
                             base_len - 1)):
            status, r = post_json(base, "/v1/chat/completions",
                                  dict(extra, messages=msgs, max_tokens=1))
            assert status == 200 and r["usage"]["prompt_tokens"] == want, (extra, r)
            status, t = post_json(base, "/tokenize", dict(extra, messages=msgs))
            assert status == 200 and t["count"] == want, (extra, t)
        for part, modality in (({"type": "image_url", "image_url": {"url": "http://x/a.png"}},
                                "image"),
                               ({"type": "input_audio", "input_audio": {"data": "AAAA",
                                                                        "format": "wav"}},
                                "audio"),
                               ({"type": "video_url", "video_url": {"url": "http://x/v.mp4"}},
                                "video")):
            e = err({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"}, part]}]})
            if version == "0.8":
                assert e["message"] == "Unknown %s model type: qwen2" % modality
                assert e["type"] == "BadRequestError"
            else:
                assert e["message"] == \
                    "Qwen/Qwen2.5-1.5B-Instruct is not a multimodal model None"
        # Text parts alone are fine.
        status, _ = post_json(base, "/v1/chat/completions", {"messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 1})
        assert status == 200


def test_chat_stream_roles_first(procs):
    """A chat stream of n choices opens with every choice's role chunk, in
    index order, before any content, as vLLM's first iteration sends them."""
    _, base = start_sim(procs)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "n": 3,
            "stream": True, "seed": 1}
    events = data_events(base, "/v1/chat/completions", body)
    deltas = [(e["choices"][0]["index"], e["choices"][0]["delta"]) for e in events]
    assert deltas[:3] == [(i, {"role": "assistant", "content": ""}) for i in range(3)], deltas
    assert all("role" not in d for _, d in deltas[3:])
    assert len(deltas) == 3 + 3 * 3


def test_chat_echo(procs):
    """Chat's echo: when the last message has the role of the answer (the
    assistant's, or with add_generation_prompt false the last message's
    own), its text comes first, as vLLM prepends it: in the message's
    content, or streamed as one chunk per choice right after the role
    chunks. continue_final_message thus answers the whole assistant turn."""
    _, base = start_sim(procs)
    msgs = [{"role": "user", "content": "tell me a story"},
            {"role": "assistant", "content": "Once upon"}]
    body = {"messages": msgs, "max_tokens": 5, "temperature": 0,
            "add_generation_prompt": False, "continue_final_message": True}
    status, plain = post_json(base, "/v1/chat/completions", body)
    answer = plain["choices"][0]["message"]["content"]
    status, r = post_json(base, "/v1/chat/completions", dict(body, echo=True))
    assert status == 200
    assert r["choices"][0]["message"] == dict(plain["choices"][0]["message"],
                                              content="Once upon" + answer)
    assert r["usage"] == plain["usage"]
    events = data_events(base, "/v1/chat/completions", dict(body, echo=True, stream=True, n=2))
    deltas = [(e["choices"][0]["index"], e["choices"][0]["delta"]) for e in events]
    assert deltas[:4] == [(0, {"role": "assistant", "content": ""}),
                          (1, {"role": "assistant", "content": ""}),
                          (0, {"content": "Once upon"}), (1, {"content": "Once upon"})], deltas
    assert all(e["choices"][0]["logprobs"] is None for e in events[2:4])
    assert "".join(d.get("content", "") for i, d in deltas if i == 0) == "Once upon" + answer
    # The last message is not the answer's role: nothing to echo.
    status, r = post_json(base, "/v1/chat/completions",
                          {"messages": msgs[:1], "max_tokens": 3, "echo": True,
                           "temperature": 0})
    assert not r["choices"][0]["message"]["content"].startswith("tell")
    # Without the generation prompt the answer has the last message's role.
    status, r = post_json(base, "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": [
                              {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
                           "max_tokens": 3, "echo": True, "add_generation_prompt": False})
    m = r["choices"][0]["message"]
    assert m["role"] == "user" and m["content"].startswith("a\nb"), m


def test_eos_ends_with_an_empty_chunk(procs):
    """An answer that ends on its own ends on the end-of-sequence token: it
    counts in completion_tokens but has no text, so a stream's last chunk
    carries empty content (text) and finish_reason "stop" (vllm-api.md
    §1.3, §2). So does a structured answer, whose grammar allows only the
    EOS once the value is whole; when max_tokens leaves no room for it the
    answer ends on "length"."""
    _, base = start_sim(procs)
    chat = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    status, r = post_json(base, "/v1/chat/completions", chat)
    words = len(r["choices"][0]["message"]["content"].split())
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"]["completion_tokens"] == words + 1
    events = data_events(base, "/v1/chat/completions", dict(chat, stream=True))
    last = events[-1]["choices"][0]
    assert last["delta"] == {"content": ""} and last["finish_reason"] == "stop", events[-1]
    assert last["stop_reason"] is None
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == \
        r["choices"][0]["message"]["content"]
    # max_tokens exactly the words: no room for the EOS, "length".
    status, r2 = post_json(base, "/v1/chat/completions", dict(chat, max_tokens=words))
    assert r2["choices"][0]["finish_reason"] == "length"
    assert r2["usage"]["completion_tokens"] == words
    assert r2["choices"][0]["message"]["content"] == r["choices"][0]["message"]["content"]
    # A completion with a structured answer: the same.
    comp = {"prompt": "pick", "guided_choice": ["alpha", "beta"], "temperature": 0,
            "max_tokens": 10}
    status, r = post_json(base, "/v1/completions", comp)
    text = r["choices"][0]["text"]
    assert text in ("alpha", "beta") and r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"]["completion_tokens"] == 2
    events = data_events(base, "/v1/completions", dict(comp, stream=True))
    assert [e["choices"][0]["text"] for e in events] == [text, ""]
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    status, r = post_json(base, "/v1/completions", dict(comp, max_tokens=1))
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 1


def samples(text):
    """(name, labels as a list of (key, value) in order, value) per sample."""
    out = []
    for m in re.finditer(r'^(vllm:[a-z_:]+)(?:\{([^}]*)\})? (\S+)$', text, re.M):
        labels = re.findall(r'([a-z_]+)="([^"]*)"', m.group(2) or "")
        out.append((m.group(1), labels, m.group(3)))
    return out


def test_metrics_labels_per_version(procs):
    """/metrics as each release writes it (vllm-api.md §5): the latest (V1)
    labels every model series engine="0" (labels in alphabetical order),
    no longer writes gpu_cache_usage_perc (v0.11) and puts engine on
    cache_config_info, whose num_cpu_blocks is None; 0.8 (the seed's V0 on
    CPU) has no engine label, no V1 prefix-cache counters, and V0's
    deprecated swap and CPU-cache gauges."""
    _, base = start_sim(procs, "--enable-lora")
    post_json(base, "/v1/completions", {"prompt": "x", "max_tokens": 2})
    text = metrics(base)
    names = {n for n, _, _ in samples(text)}
    assert "vllm:gpu_cache_usage_perc" not in names and "vllm:kv_cache_usage_perc" in names
    for name, labels, _ in samples(text):
        keys = [k for k, _ in labels]
        assert keys == sorted(keys), (name, labels)
        if name in ("vllm:lora_requests_info",):
            assert "engine" not in keys and "model_name" not in keys
        else:
            assert ("engine", "0") in labels, (name, labels)
        if name != "vllm:cache_config_info" and name != "vllm:lora_requests_info":
            assert ("model_name", "Qwen/Qwen2.5-1.5B-Instruct") in labels, (name, labels)
    cc = dict(next(l for n, l, _ in samples(text) if n == "vllm:cache_config_info"))
    assert cc["num_cpu_blocks"] == "None" and cc["num_gpu_blocks"] == "9362"
    assert cc["block_size"] == "16" and cc["enable_prefix_caching"] == "True"
    assert "model_name" not in cc
    _, old = start_sim(procs, "--vllm-version", "0.8", "--no-enable-prefix-caching")
    post_json(old, "/v1/completions", {"prompt": "x", "max_tokens": 2})
    text = metrics(old)
    names = {n for n, _, _ in samples(text)}
    assert not any(("engine", "0") in l for _, l, _ in samples(text))
    assert "vllm:gpu_prefix_cache_queries_total" not in names
    assert "vllm:gpu_prefix_cache_hits_total" not in names
    assert "vllm:prefix_cache_queries_total" not in names
    assert gauge(text, "gpu_prefix_cache_hit_rate") == -1
    assert gauge(text, "num_requests_swapped") == 0
    assert gauge(text, "cpu_cache_usage_perc") == 0
    assert gauge(text, "cpu_prefix_cache_hit_rate") == -1
    cc = dict(next(l for n, l, _ in samples(text) if n == "vllm:cache_config_info"))
    assert cc["num_cpu_blocks"] == "0" and cc["enable_prefix_caching"] == "False"
    assert "engine" not in cc


def hist(text, name):
    """A histogram's buckets (le -> cumulative count), count and sum."""
    buckets = {}
    for labels, v in re.findall(r'^vllm:%s_bucket\{([^}]*)\} (\S+)$' % name, text, re.M):
        buckets[re.search(r'le="([^"]*)"', labels).group(1)] = float(v)
    count = re.search(r'^vllm:%s_count\{[^}]*\} (\S+)$' % name, text, re.M)
    total = re.search(r'^vllm:%s_sum\{[^}]*\} (\S+)$' % name, text, re.M)
    assert buckets and count and total, "no histogram %s" % name
    return buckets, float(count.group(1)), float(total.group(1))


A = ["0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75",
     "1.0", "2.5", "5.0", "7.5", "10.0"]
B = ["0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5", "0.75", "1.0",
     "2.5"]
C = ["0.3", "0.5", "0.8", "1.0", "1.5", "2.0", "2.5", "5.0", "10.0", "15.0", "20.0", "30.0",
     "40.0", "50.0", "60.0"]


def test_metrics_histograms(procs):
    """The histograms vLLM writes (vllm-api.md §5.2), with each release's
    buckets, fed by the engine: seconds between tokens, a request's time
    queued, in prefill, in decode and running, its prompt, generated and
    max_tokens counts (1-2-5 buckets up to max_model_len) and the tokens of
    every engine step."""
    for version in ("0.8", "latest"):
        _, base = start_sim(procs, "--vllm-version", version, "--max-num-seqs", "1",
                            "--ttft-ms", "100", "--itl-ms", "20", "--max-model-len", "1000")
        threads, results = run_concurrently(base, [{"prompt": "one two three", "max_tokens": 5},
                                                   {"prompt": "four five", "max_tokens": 5}])
        for t in threads:
            t.join()
        assert all(r[0] == 200 for r in results)
        text = metrics(base)
        latest = version == "latest"
        b_bounds = B + (["5.0", "7.5", "10.0", "20.0", "40.0", "80.0"] if latest else [])
        c_bounds = C + (["120.0", "240.0", "480.0", "960.0", "1920.0", "7680.0"] if latest
                        else [])
        # The time between tokens: 0.8's name, or the latest's (the old
        # one, deprecated in 0.11, is hidden since: vllm-api.md §5.2).
        name = "inter_token_latency_seconds" if latest else "time_per_output_token_seconds"
        other = "time_per_output_token_seconds" if latest else "inter_token_latency_seconds"
        assert "vllm:%s_bucket" % other not in text
        buckets, count, total = hist(text, name)
        assert list(buckets) == b_bounds + ["+Inf"], (name, list(buckets))
        # Four gaps of one decode step (20 ms) per request.
        assert count == 8 and 0.15 < total < 0.5, (name, count, total)
        # The latest's mean per request: its four gaps over four tokens.
        per_request = "request_time_per_output_token_seconds"
        assert ("vllm:%s_bucket" % per_request in text) == latest
        if latest:
            buckets, count, mean_total = hist(text, per_request)
            assert list(buckets) == b_bounds + ["+Inf"], list(buckets)
            assert count == 2 and mean_total == pytest.approx(total / 4, rel=0.05), \
                (count, mean_total, total)
        assert list(hist(text, "time_to_first_token_seconds")[0]) == A + (
            ["20.0", "40.0", "80.0", "160.0", "640.0", "2560.0"] if latest else []) + ["+Inf"]
        for name in ("e2e_request_latency_seconds", "request_queue_time_seconds",
                     "request_inference_time_seconds", "request_prefill_time_seconds",
                     "request_decode_time_seconds"):
            buckets, count, _ = hist(text, name)
            assert list(buckets) == c_bounds + ["+Inf"] and count == 2, name
        # The second request waited for the first (one at a time).
        assert hist(text, "request_queue_time_seconds")[2] > 0.15
        assert 0.15 < hist(text, "request_prefill_time_seconds")[2] < 0.6
        assert 0.12 < hist(text, "request_decode_time_seconds")[2] < 0.5
        inference = hist(text, "request_inference_time_seconds")[2]
        assert inference == pytest.approx(hist(text, "request_prefill_time_seconds")[2] +
                                          hist(text, "request_decode_time_seconds")[2])
        tokens = ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "+Inf"]
        for name, want in (("request_prompt_tokens", 5), ("request_generation_tokens", 10),
                           ("request_params_max_tokens", 10),
                           ("request_max_num_generation_tokens", 10)):
            buckets, count, total = hist(text, name)
            assert list(buckets) == [t if t == "+Inf" else t + ".0" for t in tokens], name
            assert count == 2 and total == want, (name, count, total)
        buckets, count, total = hist(text, "iteration_tokens_total")
        last = ["4096.0", "8192.0", "16384.0"] if latest else ["4096.0", "8096.0"]
        assert list(buckets)[-len(last) - 1:] == last + ["+Inf"], list(buckets)
        # One prefill step and four decode steps per request; the
        # prefill step counts its prompt and the token it produced.
        assert count == 10 and total == 5 + 10, (count, total)


def test_iteration_tokens_count_every_token_of_a_step(procs):
    """vllm:iteration_tokens_total observes a step's prompt and generated
    tokens: vLLM V1 (loggers.py) num_prompt_tokens + num_generation_tokens
    of the step's outputs, the prompt counted whole on the step that
    produced its first token, and no observation for a step without
    outputs (a prefill chunk before the last); V0 (0.8, llm_engine.py
    _get_stats) the step's batched tokens plus the token of each prefill
    that finished."""
    for version, chunked in (("latest", False), ("latest", True), ("0.8", False),
                             ("0.8", True)):
        args = ("--vllm-version", version, "--max-model-len", "1000")
        if chunked:
            args += ("--max-num-batched-tokens", "2", "--enable-chunked-prefill")
        _, base = start_sim(procs, *args)
        st, body = post_json(base, "/v1/completions",
                             {"prompt": "one two three four", "max_tokens": 5})
        assert st == 200, body
        assert body["usage"]["prompt_tokens"] == 4, body
        assert body["usage"]["completion_tokens"] == 5, body
        _, count, total = hist(metrics(base), "iteration_tokens_total")
        # Two chunks of the prompt, the second with the first token; four
        # decode steps. V1 observes no step without an output.
        steps = 6 if chunked and version == "0.8" else 5
        assert (count, total) == (steps, 9), (version, chunked, count, total)


def test_request_params_n_histogram(procs):
    """vllm:request_params_n, "Histogram of the n request parameter." (V0's
    metrics.py, V1's loggers.py): buckets 1, 2, 5, 10, 20, the labels of the
    other request histograms, one observation per prompt as its request
    finishes."""
    for version in ("0.8", "latest"):
        _, base = start_sim(procs, "--vllm-version", version)
        assert post_json(base, "/v1/completions", {"prompt": "a", "max_tokens": 1})[0] == 200
        assert post_json(base, "/v1/completions",
                         {"prompt": ["a", "b"], "n": 3, "max_tokens": 1})[0] == 200
        assert post_json(base, "/v1/chat/completions",
                         {"messages": [{"role": "user", "content": "hi"}], "n": 7,
                          "max_tokens": 1})[0] == 200
        text = metrics(base)
        assert "# HELP vllm:request_params_n Histogram of the n request parameter.\n" in text
        assert "# TYPE vllm:request_params_n histogram\n" in text
        buckets, count, total = hist(text, "request_params_n")
        assert buckets == {"1.0": 1, "2.0": 1, "5.0": 3, "10.0": 4, "20.0": 4, "+Inf": 4}
        assert count == 4 and total == 1 + 3 + 3 + 7
        labels = '{engine="0",model_name="Qwen/Qwen2.5-1.5B-Instruct"}' if version == "latest" \
            else '{model_name="Qwen/Qwen2.5-1.5B-Instruct"}'
        assert "vllm:request_params_n_count%s 4.0\n" % labels in text


def test_every_response_has_uvicorns_date_and_server(procs):
    """vLLM's uvicorn puts `date` (RFC 9110 IMF-fixdate) and `server:
    uvicorn` on every response (vllm-api.md §1): answers, streams, errors,
    the 401 of --api-key, metrics."""
    _, base = start_sim(procs, "--api-key", "k")
    auth = {"Authorization": "Bearer k"}
    answers = [call(base, "/health"),
               call(base, "/v1/completions", {"prompt": "hi", "max_tokens": 2}, headers=auth),
               call(base, "/v1/completions", {"prompt": "hi", "max_tokens": 2, "stream": True},
                    headers=auth),
               call(base, "/v1/completions", {"prompt": "hi", "max_tokens": 2}),
               call(base, "/v1/completions", {"model": "nope", "prompt": "hi"}, headers=auth),
               call(base, "/no/such/path", headers=auth),
               call(base, "/metrics")]
    assert [a[0] for a in answers] == [200, 200, 200, 401, 404, 404, 200]
    before = time.time()
    for status, headers, _ in answers:
        assert headers.get_all("server") == ["uvicorn"], (status, headers)
        dates = headers.get_all("date")
        assert dates and len(dates) == 1, (status, headers)
        assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|"
                            r"Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT", dates[0]), dates
        sent = email.utils.parsedate_to_datetime(dates[0]).timestamp()
        assert before - 60 < sent < before + 60, dates


def test_responses_max_output_tokens_clamped(procs):
    """vLLM's ResponsesRequest.to_sampling_params takes min(max_output_tokens,
    max_model_len - prompt): a limit past the context is cut to what is
    left, no error (the answer reports the limit it ran under). A prompt
    that fills the context is refused by serving_responses.py's
    _validate_generator_input, typed invalid_request_error."""
    _, base = start_sim(procs, "--max-model-len", "100")
    status, r = post_json(base, "/v1/responses", {"input": "hi", "max_output_tokens": 40000})
    assert status == 200, r
    left = 100 - r["usage"]["input_tokens"]
    assert r["max_output_tokens"] == left
    assert r["usage"]["output_tokens"] <= left
    status, e = post_json(base, "/v1/responses",
                          {"input": "w " * 120, "max_output_tokens": 5})
    assert status == 400 and e["error"] == {
        "message": "The engine prompt length 127 exceeds the max_model_len 100. Please "
                   "reduce prompt.",
        "type": "invalid_request_error", "param": "input", "code": 400}


def test_answers_name_the_first_served_model(procs):
    """vLLM's OpenAIServingModels.model_name() answers the first served name
    for the base model, whichever of its --served-model-name aliases was
    asked (vllm-api.md §1.2); an adapter is answered with its own name."""
    _, base = start_sim(procs, "--served-model-name", "a", "b", "--enable-lora",
                        "--lora-modules", "l1=/p")
    chat = {"model": "b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    comp = {"model": "b", "prompt": "hi", "max_tokens": 2}
    for path, body in (("/v1/completions", comp), ("/v1/chat/completions", chat),
                       ("/v1/responses", {"model": "b", "input": "hi",
                                          "max_output_tokens": 2}),
                       ("/v1/embeddings", {"model": "b", "input": "hi"})):
        status, r = post_json(base, path, body)
        assert status == 200 and r["model"] == "a", (path, r)
    for path, body in (("/v1/completions", comp), ("/v1/chat/completions", chat)):
        chunks = data_events(base, path, dict(body, stream=True))
        assert {c["model"] for c in chunks} == {"a"}, path
    events = named_events(base, "/v1/responses",
                          {"model": "b", "input": "hi", "max_output_tokens": 2, "stream": True})
    assert events[-1][1]["response"]["model"] == "a"
    status, r = post_json(base, "/v1/completions", dict(comp, model="l1"))
    assert status == 200 and r["model"] == "l1"


def test_empty_stream_options_without_stream(procs):
    """vLLM's check is `if data.get("stream_options") and not
    data.get("stream")`: an empty object is falsy and passes, a non-empty
    one without stream is the validation 400."""
    _, base = start_sim(procs)
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    comp = {"prompt": "hi", "max_tokens": 2}
    for path, body in (("/v1/completions", comp), ("/v1/chat/completions", chat)):
        status, r = post_json(base, path, dict(body, stream_options={}))
        assert status == 200 and r["usage"]["completion_tokens"] == 2, (path, r)
        status, e = post_json(base, path, dict(body, stream_options={"include_usage": False}))
        assert status == 400 and e["error"]["message"] == (
            "Stream options can only be defined when `stream=True`.")


def test_continuous_usage_counts_each_choice(procs):
    """With continuous_usage_stats, vLLM's per-chunk usage counts that
    choice's own tokens (previous_num_tokens[i]) and, on completions, that
    prompt's tokens (num_prompt_tokens[prompt_idx]); the final usage chunk
    sums them all. Completions chunks are dumped with exclude_unset=False,
    so their usage lists prompt_tokens_details as null; chat's leave it
    out."""
    _, base = start_sim(procs, "--enable-prompt-tokens-details")
    opts = {"include_usage": True, "continuous_usage_stats": True}
    body = {"prompt": ["a b", "c d e"], "max_tokens": 2, "n": 2, "stream": True,
            "stream_options": opts}
    events = data_events(base, "/v1/completions", body)
    per = {}
    for ev in events[:-1]:
        [c] = ev["choices"]
        per.setdefault(c["index"], []).append(ev["usage"]["completion_tokens"])
        want_prompt = 2 if c["index"] < 2 else 3
        assert ev["usage"] == {"prompt_tokens": want_prompt,
                               "completion_tokens": per[c["index"]][-1],
                               "total_tokens": want_prompt + per[c["index"]][-1],
                               "prompt_tokens_details": None}, ev
    assert per == {i: [1, 2] for i in range(4)}
    assert events[-1]["usage"]["completion_tokens"] == 8
    assert events[-1]["usage"]["prompt_tokens"] == 5
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "n": 2,
            "stream": True, "stream_options": opts, "ignore_eos": True}
    events = data_events(base, "/v1/chat/completions", chat)
    per = {}
    for ev in events[:-1]:
        [c] = ev["choices"]
        per.setdefault(c["index"], []).append(ev["usage"]["completion_tokens"])
        assert "prompt_tokens_details" not in ev["usage"]
    assert per == {0: [0, 1, 2], 1: [0, 1, 2]}
    assert events[-1]["usage"]["completion_tokens"] == 4


def test_json_schema_needs_a_name(procs):
    """vLLM's JsonSchemaResponseFormat (and the OpenAI Responses type behind
    text.format) requires `name`: pydantic's "Field required", a
    validation 400."""
    _, base = start_sim(procs)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    comp = {"prompt": "hi", "max_tokens": 5}
    for path, body in (("/v1/completions", comp), ("/v1/chat/completions", chat)):
        for js in ({"schema": schema}, {"name": 3, "schema": schema}):
            fmt = {"type": "json_schema", "json_schema": js}
            status, e = post_json(base, path, dict(body, response_format=fmt))
            assert status == 400, (path, e)
            assert e["error"]["type"] == "Bad Request"
            assert e["error"]["param"] == "body.response_format.json_schema.name"
        fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
        status, r = post_json(base, path, dict(body, response_format=fmt))
        assert status == 200, r
    status, e = post_json(base, "/v1/responses",
                          {"input": "hi", "text": {"format": {"type": "json_schema",
                                                              "schema": schema}}})
    assert status == 400 and e["error"]["param"] == "body.text.format.name", e


def test_responses_without_a_store(procs):
    """vLLM without VLLM_ENABLE_RESPONSES_API_STORE keeps no responses:
    previous_response_id is its 404 "Response with id '<id>' not found."
    and background mode (store defaults to true) the 400 of
    serving_responses.py's _validate_create_responses_input; background with
    store false is the request model's validator 400. All after the model
    check."""
    _, base = start_sim(procs)
    status, e = post_json(base, "/v1/responses",
                          {"input": "hi", "previous_response_id": "resp_abc"})
    assert status == 404 and e["error"] == {
        "message": "Response with id 'resp_abc' not found.",
        "type": "invalid_request_error", "param": "response_id", "code": 404}
    status, e = post_json(base, "/v1/responses", {"input": "hi", "background": True})
    assert status == 400 and e["error"] == {
        "message": "This vLLM engine does not support `store=True` and therefore does not "
                   "support the background mode. To enable these features, set the "
                   "environment variable `VLLM_ENABLE_RESPONSES_API_STORE=1` when launching "
                   "the vLLM server.",
        "type": "invalid_request_error", "param": "background", "code": 400}
    status, e = post_json(base, "/v1/responses",
                          {"input": "hi", "background": True, "store": False})
    assert status == 400 and e["error"]["type"] == "Bad Request"
    assert e["error"]["message"] == "background can only be used when `store` is true"
    status, e = post_json(base, "/v1/responses",
                          {"input": "hi", "background": True, "model": "nope"})
    assert status == 404 and e["error"]["type"] == "NotFoundError"
    status, r = post_json(base, "/v1/responses",
                          {"input": "hi", "background": False, "store": False,
                           "previous_response_id": None, "max_output_tokens": 2})
    assert status == 200, r


def test_engine_parameter_checks(procs):
    """Checks vLLM makes that the request models do not: the engine's
    allowed_token_ids checks and get_logits_processors' refusal without
    --logits-processor-pattern are ValueErrors the serving code answers
    as BadRequestError 400s; cache_salt is the request model's validator
    (latest release only: 0.8 has no such field)."""
    _, base = start_sim(procs)
    _, old = start_sim(procs, "--vllm-version", "0.8")
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    comp = {"prompt": "hi", "max_tokens": 2}
    for path, body in (("/v1/completions", comp), ("/v1/chat/completions", chat)):
        for extra, msg in (({"allowed_token_ids": [5, 151936]},
                            "allowed_token_ids contains out-of-vocab token id!"),
                           ({"allowed_token_ids": [-1]},
                            "allowed_token_ids contains out-of-vocab token id!"),
                           ({"allowed_token_ids": []}, "allowed_token_ids is not None and empty!"),
                           ({"logits_processors": ["m.P"]},
                            "The `logits_processors` argument is not supported by this server. "
                            "See --logits-processor-pattern engine argument for more "
                            "information.")):
            status, e = post_json(base, path, dict(body, **extra))
            assert status == 400 and e["error"] == {
                "message": msg, "type": "BadRequestError", "param": None, "code": 400}, e
        status, e = post_json(old, path, dict(body, logits_processors=["m.P"]))
        assert status == 400 and "engine argugment" in e["message"], e
        for salt in ("", 3):
            status, e = post_json(base, path, dict(body, cache_salt=salt))
            assert status == 400 and e["error"] == {
                "message": "Parameter 'cache_salt' must be a non-empty string if provided.",
                "type": "Bad Request", "param": "body", "code": 400}, e
        for extra in ({"allowed_token_ids": [0, 151935]}, {"logits_processors": []},
                      {"cache_salt": "s"}, {"cache_salt": None}):
            status, r = post_json(base, path, dict(body, **extra))
            assert status == 200, (extra, r)
        status, r = post_json(old, path, dict(body, cache_salt=""))
        assert status == 200, r


def test_chat_tool_usage_checks(procs):
    """ChatCompletionRequest.check_tool_usage: "required" with an empty
    tools list is rewritten to "none" (200, words); "auto" with an empty
    list passes the validator and meets the auto-tool-choice flags check
    like any "auto"; a tool whose type is not "function" fails
    ChatCompletionToolsParam's Literal (a validation 400)."""
    _, base = start_sim(procs)
    _, auto = start_sim(procs, "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    status, r = post_json(base, "/v1/chat/completions",
                          dict(chat, tools=[], tool_choice="required"))
    assert status == 200 and r["choices"][0]["message"].get("tool_calls") in (None, []), r
    assert r["choices"][0]["finish_reason"] == "length"
    status, e = post_json(base, "/v1/chat/completions", dict(chat, tools=[], tool_choice="auto"))
    assert status == 400 and e["error"]["message"] == (
        "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be "
        "set"), e
    status, r = post_json(auto, "/v1/chat/completions", dict(chat, tools=[], tool_choice="auto"))
    assert status == 200 and r["choices"][0]["finish_reason"] == "length", r
    tool = {"type": "retrieval", "function": {"name": "f", "parameters": {"type": "object"}}}
    status, e = post_json(base, "/v1/chat/completions",
                          dict(chat, tools=[tool], tool_choice="required"))
    assert status == 400 and e["error"]["type"] == "Bad Request", e
    assert e["error"]["param"] == "body.tools"
    named = {"type": "function", "function": {"name": "f"}}
    status, e = post_json(base, "/v1/chat/completions", dict(chat, tools=[], tool_choice=named))
    assert status == 400 and e["error"]["message"] == "Tool 'f' has not been passed in `tools`."


def test_newer_response_keys(procs):
    """vLLM v0.10+'s response models (protocol.py): completions and chat bodies
    carry service_tier, system_fingerprint and kv_transfer_params (null), their
    choices token_ids (and prompt_token_ids), chat's message the OpenAI
    ChatMessage's null fields beside tool_calls: [] and chat's body
    prompt_token_ids; a completions chunk (dumped with exclude_unset=False)
    lists prompt_token_ids and token_ids; a chat chunk (exclude_unset) lists
    what the serving code sets: prompt_token_ids on the role chunk, token_ids
    on each content chunk. 0.8 keeps its keys."""
    _, base = start_sim(procs)
    _, old = start_sim(procs, "--vllm-version", "0.8")
    cbody = {"prompt": "hello there", "max_tokens": 3}
    status, r = post_json(base, "/v1/completions", cbody)
    assert status == 200
    assert list(r) == ["id", "object", "created", "model", "choices", "service_tier",
                       "system_fingerprint", "usage", "kv_transfer_params"]
    assert r["service_tier"] is None and r["system_fingerprint"] is None
    assert r["kv_transfer_params"] is None
    assert list(r["choices"][0]) == ["index", "text", "logprobs", "finish_reason", "stop_reason",
                                     "token_ids", "prompt_logprobs", "prompt_token_ids"]
    assert r["choices"][0]["token_ids"] is None and r["choices"][0]["prompt_token_ids"] is None
    hbody = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    status, r = post_json(base, "/v1/chat/completions", hbody)
    assert list(r) == ["id", "object", "created", "model", "choices", "service_tier",
                       "system_fingerprint", "usage", "prompt_logprobs", "prompt_token_ids",
                       "kv_transfer_params"]
    assert list(r["choices"][0]) == ["index", "message", "logprobs", "finish_reason",
                                     "stop_reason", "token_ids"]
    msg = r["choices"][0]["message"]
    assert list(msg) == ["role", "content", "refusal", "annotations", "audio", "function_call",
                         "tool_calls", "reasoning"]
    assert msg["tool_calls"] == [] and msg["refusal"] is None and msg["function_call"] is None
    _, events = stream(base, "/v1/completions", dict(cbody, stream=True))
    chunks = [json.loads(e) for _, e in events[:-1]]
    assert list(chunks[0]["choices"][0]) == ["index", "text", "logprobs", "finish_reason",
                                             "stop_reason", "prompt_token_ids", "token_ids"]
    assert list(chunks[0]) == ["id", "object", "created", "model", "choices", "usage"]
    _, events = stream(base, "/v1/chat/completions", dict(hbody, stream=True))
    chunks = [json.loads(e) for _, e in events[:-1]]
    assert list(chunks[0]) == ["id", "object", "created", "model", "choices", "prompt_token_ids"]
    assert chunks[0]["prompt_token_ids"] is None
    assert list(chunks[1]["choices"][0]) == ["index", "delta", "logprobs", "finish_reason",
                                             "token_ids"]
    assert list(chunks[-1]["choices"][0]) == ["index", "delta", "logprobs", "finish_reason",
                                              "stop_reason", "token_ids"]
    # 0.8: none of them.
    status, r = post_json(old, "/v1/completions", cbody)
    assert list(r) == ["id", "object", "created", "model", "choices", "usage"]
    assert "token_ids" not in r["choices"][0]
    status, r = post_json(old, "/v1/chat/completions", hbody)
    assert list(r) == ["id", "object", "created", "model", "choices", "usage", "prompt_logprobs"]
    assert list(r["choices"][0]["message"]) == ["role", "content", "reasoning_content",
                                                "tool_calls"]


def test_return_token_ids(procs):
    """vLLM's return_token_ids (completions and chat, v0.10.2 on): a body's
    choices carry the generated token ids and the prompt's (a completion's
    per choice, chat's on the body); a stream puts the step's ids on each
    chunk and the prompt's on each choice's first (a completion's) or role
    chunk (chat's). The ids are the simulator's tokenizer's: the prompt's
    are /tokenize's, the answer's /detokenize into its text, the end of
    sequence is the template's end marker. An echo with them leaves the
    prompt out of the text, as vLLM does; 0.8 has no such field."""
    _, base = start_sim(procs)
    _, old = start_sim(procs, "--vllm-version", "0.8")
    prompt = "the city by the bay"
    _, tok = post_json(base, "/tokenize", {"prompt": prompt})

    def detok(ids):
        status, r = post_json(base, "/detokenize", {"tokens": ids})
        assert status == 200, r
        return r["prompt"]

    body = {"prompt": prompt, "max_tokens": 6, "return_token_ids": True, "temperature": 0}
    status, r = post_json(base, "/v1/completions", body)
    assert status == 200
    c = r["choices"][0]
    assert c["prompt_token_ids"] == tok["tokens"]
    assert len(c["token_ids"]) == r["usage"]["completion_tokens"] == 6
    assert detok(c["token_ids"]) == c["text"]
    chunks = data_events(base, "/v1/completions", dict(body, stream=True))
    assert chunks[0]["choices"][0]["prompt_token_ids"] == tok["tokens"]
    assert all(k["choices"][0]["prompt_token_ids"] is None for k in chunks[1:])
    assert [i for k in chunks for i in k["choices"][0]["token_ids"]] == c["token_ids"]
    # Several prompts and choices: each choice its own prompt's ids.
    status, r = post_json(base, "/v1/completions", dict(body, prompt=[prompt, "a b"], n=2))
    assert [ch["prompt_token_ids"] for ch in r["choices"]] == [tok["tokens"]] * 2 + \
        [post_json(base, "/tokenize", {"prompt": "a b"})[1]["tokens"]] * 2
    # With echo the text is the answer alone.
    status, r = post_json(base, "/v1/completions", dict(body, echo=True))
    assert r["choices"][0]["text"] == c["text"]
    status, r = post_json(base, "/v1/completions", dict(body, echo=True, return_token_ids=False))
    assert r["choices"][0]["text"] == prompt + c["text"]
    assert r["choices"][0]["token_ids"] is None
    # vLLM's echoing stream sends the prompt's ids with the echo anyway.
    chunks = data_events(base, "/v1/completions",
                         dict(body, echo=True, return_token_ids=False, stream=True))
    assert chunks[0]["choices"][0]["text"].startswith(prompt)
    assert chunks[0]["choices"][0]["prompt_token_ids"] == tok["tokens"]
    assert chunks[0]["choices"][0]["token_ids"] is None
    # Chat: the templated prompt's ids, the answer ending on the end marker.
    msgs = [{"role": "user", "content": prompt}]
    _, ctok = post_json(base, "/tokenize", {"messages": msgs})
    chat = {"messages": msgs, "return_token_ids": True, "temperature": 0}
    status, r = post_json(base, "/v1/chat/completions", chat)
    assert status == 200 and r["choices"][0]["finish_reason"] == "stop"
    assert r["prompt_token_ids"] == ctok["tokens"]
    ids = r["choices"][0]["token_ids"]
    assert len(ids) == r["usage"]["completion_tokens"]
    assert ids[-1] == ctok["tokens"][len(tok["tokens"]) + 3]  # <|im_end|>
    assert detok(ids[:-1]) == r["choices"][0]["message"]["content"]
    chunks = data_events(base, "/v1/chat/completions", dict(chat, stream=True))
    assert chunks[0]["prompt_token_ids"] == ctok["tokens"]
    assert [i for k in chunks[1:] for i in k["choices"][0]["token_ids"]] == ids
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    status, e = post_json(base, "/v1/chat/completions", dict(chat, return_token_ids="maybe"))
    assert status == 400 and e["error"]["param"] == "body.return_token_ids", e
    # 0.8: an unknown field, ignored.
    status, r = post_json(old, "/v1/completions", body)
    assert status == 200 and "token_ids" not in r["choices"][0]


def test_reasoning_key(procs):
    """The message's reasoning: vLLM 0.8 to v0.11.0 name it reasoning_content,
    v0.11.1 writes reasoning beside it (vllm-project/vllm#27752) and the
    latest release reasoning alone (#33402). The simulator's words hold no
    reasoning, so it is null, and a stream's deltas (dumped with
    exclude_unset) carry neither key."""
    _, base = start_sim(procs, "--reasoning-parser", "qwen3")
    _, old = start_sim(procs, "--vllm-version", "0.8")
    body = {"messages": [{"role": "user", "content": "think"}], "max_tokens": 5}
    status, r = post_json(base, "/v1/chat/completions", body)
    assert status == 200
    msg = r["choices"][0]["message"]
    assert "reasoning" in msg and msg["reasoning"] is None
    assert "reasoning_content" not in msg
    assert list(msg)[-2:] == ["tool_calls", "reasoning"]
    _, events = stream(base, "/v1/chat/completions", dict(body, stream=True))
    for _, e in events[:-1]:
        for c in json.loads(e)["choices"]:
            assert "reasoning" not in c["delta"] and "reasoning_content" not in c["delta"]
    status, r = post_json(old, "/v1/chat/completions", body)
    msg = r["choices"][0]["message"]
    assert msg["reasoning_content"] is None and "reasoning" not in msg


def test_head_and_metrics_methods(procs):
    """FastAPI's APIRoute (unlike Starlette's Route) does not add HEAD to a GET
    route, so vLLM answers HEAD on /health, /v1/models and /version with 405,
    Allow: GET and FastAPI's body; /metrics is prometheus_client's ASGI app
    under a Starlette Mount, which matches and answers any method."""
    _, base = start_sim(procs)
    for path in ("/health", "/v1/models", "/version"):
        status, headers, body = raw_call(base, "HEAD", path, {})
        assert status == 405, path
        assert headers["allow"] == "GET"
        assert headers["content-length"] == str(len(b'{"detail":"Method Not Allowed"}'))
        assert body == b""
        assert call(base, path)[0] == 200
    status, headers, body = call(base, "/metrics", method="POST", raw=b"")
    assert status == 200 and b"vllm:num_requests_running" in body
    assert headers["Content-Type"].startswith("text/plain")
    status, _, body = call(base, "/metrics/", method="PUT", raw=b"x")
    assert status == 200 and b"vllm:num_requests_waiting" in body


def test_lax_types_as_pydantic(procs):
    """vLLM's request models are validated by pydantic in its lax mode:
    a string of digits or a boolean for an integer, a numeric string or a
    boolean for a number, 0/1 or one of twelve words (any case) for a
    boolean are converted, other strings still refused (pydantic's
    conversion table)."""
    _, base = start_sim(procs)
    ok = [{"max_tokens": "3"}, {"max_tokens": True, "n": "1"}, {"temperature": "0.5"},
          {"temperature": True}, {"top_p": "1"}, {"stream": "false"}, {"stream": 0},
          {"echo": "No"}, {"logprobs": True, "max_tokens": 2}, {"ignore_eos": "t"},
          {"ignore_eos": 1.0}, {"seed": "-7"}]
    for extra in ok:
        status, r = post_json(base, "/v1/completions", dict({"prompt": "hi", "max_tokens": 2},
                                                           **extra))
        assert status == 200, (extra, r)
    status, r = post_json(base, "/v1/completions", {"prompt": "hi", "max_tokens": "3"})
    assert r["usage"]["completion_tokens"] <= 3
    bad = [({"max_tokens": "3.5"}, "body.max_tokens"), ({"max_tokens": "x"}, "body.max_tokens"),
           ({"temperature": "warm"}, "body.temperature"), ({"stream": 2}, "body.stream"),
           ({"stream": "maybe"}, "body.stream"), ({"temperature": "inf"}, "body.temperature")]
    for extra, param in bad:
        status, e = post_json(base, "/v1/completions", dict({"prompt": "hi"}, **extra))
        assert status == 400 and e["error"]["param"] == param, (extra, e)
