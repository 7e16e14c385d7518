"""`infergate sim` end to end: the real binary on a loopback address, driven
with plain HTTP clients, checked against vLLM's wire format and load
behaviour (see /work/shared/spec/vllm-api.md)."""
import http.client
import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import IG_BIN, free_port, unique_loopback, wait_http

SEED_PROMPT = "Write as if you were a critic: San Francisco"
LORA = ['{"name": "tweet-summary-%d", "path": "SriSanth2345/Qwen-1.5B-Tweet-Generations", '
        '"base_model_name": "Qwen/Qwen2.5-1.5B"}' % i for i in (0, 1)]


def start_sim(procs, *args):
    host = unique_loopback()
    port = free_port(host)
    p = procs.start("sim", "--host", host, "--port", port, *args, name="sim")
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
    assert status == 400 and r["error"]["type"] == "BadRequestError"
    status, r = post_json(base, "/v1/completions", {"prompt": 5})
    assert status == 400
    status, r = post_json(base, "/v1/completions",
                          {"prompt": "a", "stream_options": {"include_usage": True}})
    assert status == 400
    assert r["error"]["message"] == "Stream options can only be defined when `stream=True`."
    status, r = post_json(base, "/v1/completions", {"prompt": "a b c", "max_tokens": 98})
    assert status == 400
    assert r["error"]["message"].startswith(
        "This model's maximum context length is 100 tokens. However, you requested 101 "
        "tokens (3 in the messages, 98 in the completion).")
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
    assert u["completion_tokens"] == len(content) == len(text.split())
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
                        "--lora-modules", *LORA, "short=/adapters/short")
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
        kv_seen = max(kv_seen, gauge(text, "gpu_cache_usage_perc"))
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
    assert gauge(text, "gpu_cache_usage_perc") == 0.75
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
    assert re.search(r'time_to_first_token_seconds_bucket\{le="0.25",[^}]*\} 0.0', text)
    assert re.search(r'time_to_first_token_seconds_bucket\{le="0.5",[^}]*\} 1.0', text)


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
    assert re.search(r'request_success_total\{finished_reason="abort",[^}]*\} 1.0', text)
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
    assert gauge(text, "gpu_prefix_cache_hits_total") == 0
    assert gauge(text, "gpu_prefix_cache_hit_rate") == -1
    assert 'enable_prefix_caching="False"' in text


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
    assert re.search(r'time_to_first_token_seconds_bucket\{le="0.75",[^}]*\} 0.0', text)
    assert re.search(r'time_to_first_token_seconds_bucket\{le="2.5",[^}]*\} 1.0', text)
