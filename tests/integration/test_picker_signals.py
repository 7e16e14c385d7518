"""What the picker reads of its endpoints, checked from outside against fake
pods (fakepod.py): the metric names of each pod's engine (llm-d's
`llm-d.ai/engine-type` label), a page without the figures it is read for,
the tokens of requests in flight, and the flags that llm-d's and GIE's
pickers take for these signals."""
import threading
import time
from collections import Counter

from conftest import IG_BIN, free_port, unique_loopback, wait_http, wait_port  # noqa: F401
from test_gateway import call
from test_upstream_faults import SERVED, FakeCluster, completion, fakes  # noqa: F401

SGLANG_PAGE = """# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{{model_name="qwen",engine_type="unified"}} {waiting}
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{{model_name="qwen",engine_type="unified"}} {running}
# TYPE sglang:token_usage gauge
sglang:token_usage{{model_name="qwen",engine_type="unified"}} {kv}
# TYPE sglang:cache_config_info gauge
sglang:cache_config_info{{page_size="64",num_pages="5000"}} 1.0
"""


def served_by(c, n=10):
    got = Counter()
    for _ in range(n):
        status, hdrs, data, _, _ = completion(c)
        assert status == 200, (status, data)
        got[hdrs[SERVED]] += 1
    return got


def endpoints(c):
    return {e["address"]: e for e in c.wait_pools(lambda eps: True)}


def test_sglang_pod_read_by_its_engine_label(procs, tmp_path, fakes):
    """A pod labelled llm-d.ai/engine-type: sglang is read with SGLang's
    names (llm-d's built-in sglang engine config): its busy queue keeps
    traffic on the idle vLLM pod, instead of the page looking idle."""
    vllm, sglang = fakes.pods(2)
    sglang.metrics_text = SGLANG_PAGE.format(waiting=40, running=12, kv=0.9)
    c = FakeCluster(procs, tmp_path, [vllm, sglang],
                    pod_labels=[{}, {"llm-d.ai/engine-type": "sglang"}])
    c.scraped(vllm, sglang)
    eps = endpoints(c)
    got = eps[sglang.address]
    assert (got["waiting"], got["running"], got["kv_cache_usage"]) == (40, 12, 0.9), got
    assert (got["cache_block_size"], got["cache_gpu_blocks"]) == (64, 5000)
    assert got["engine"] == "sglang" and eps[vllm.address]["engine"] == "vllm"
    # SGLang's page is asked for whole: name[] parameters name vLLM's families.
    assert all(r.query == "" for r in sglang.requests if r.path == "/metrics")
    assert served_by(c) == {vllm.address: 10}
    c.stop()


# A freshly started SGLang server: prometheus_client writes its labelled
# gauges' HELP and TYPE lines, and a sample only once the first request's
# statistics set them.
SGLANG_NEW_PAGE = """# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
# TYPE sglang:token_usage gauge
"""


def wait_scrapes(pod, n, timeout=5.0):
    """Waits until the pod was asked for /metrics n times: the scraper asks
    again only once the answer before was applied."""
    deadline = time.monotonic() + timeout
    while pod.metrics_count() < n:
        assert time.monotonic() < deadline, "only %d scrapes" % pod.metrics_count()
        time.sleep(0.01)


def test_pod_without_load_figures_gets_traffic(procs, tmp_path, fakes):
    """A pod whose page has none of its engine's load families yet (a new
    SGLang server) is not a failed scrape: as in GIE's and llm-d's metrics
    extractor it stays a candidate, scored with the zeros its metrics start
    at, and its metrics stay stale (never updated), with one warning. Next
    to a busy pod it takes the traffic, past more scrapes than
    --unhealthy-after."""
    busy, new = fakes.pods(2)
    busy.waiting, busy.running, busy.kv = 40, 12, 0.9
    new.metrics_text = SGLANG_NEW_PAGE
    c = FakeCluster(procs, tmp_path, [busy, new], gw_args=("--scrape-interval", "20"),
                    pod_labels=[{}, {"llm-d.ai/engine-type": "sglang"}])
    c.scraped(busy)
    wait_scrapes(new, 5)  # four pages applied, one past --unhealthy-after 3
    got = endpoints(c)[new.address]
    assert got["metrics_age_ms"] is None, got
    assert (got["waiting"], got["running"], got["kv_cache_usage"]) == (0, 0, 0), got
    assert served_by(c) == {new.address: 10}
    log = c.log()
    assert log.count("has none of the sglang families") == 1, log
    assert "out of rotation" not in log, log
    c.stop()


def test_page_without_load_figures_unlabelled_engine(procs, tmp_path, fakes):
    """A pod whose page has none of the families its engine is read for
    (an SGLang server without the label, read with vLLM's names) stays in
    rotation with stale metrics and one warning naming the families; an
    engine-type value naming no engine reads vLLM's names."""
    vllm, unlabelled, odd = fakes.pods(3)
    unlabelled.metrics_text = SGLANG_PAGE.format(waiting=40, running=12, kv=0.9)
    c = FakeCluster(procs, tmp_path, [vllm, unlabelled, odd],
                    gw_args=("--scrape-interval", "20"),
                    pod_labels=[{}, {}, {"llm-d.ai/engine-type": "mystery-engine"}])
    c.scraped(vllm, odd)
    wait_scrapes(unlabelled, 6)  # the first, filtered, one falls back to the whole page
    eps = endpoints(c)
    assert eps[unlabelled.address]["metrics_age_ms"] is None
    assert eps[odd.address]["engine"] == "vllm"
    log = c.log()
    assert log.count("has none of the vllm families it is read for (vllm:num_requests_waiting, "
                     "vllm:num_requests_running, vllm:kv_cache_usage_perc;") == 1, log
    assert log.count('"mystery-engine" is no engine') == 1, log
    assert "out of rotation" not in log, log
    c.stop()


TOKEN_LOAD_CONFIG = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: inflight-load-producer
- type: token-load-scorer
  parameters:
    queueThresholdTokens: 100000
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: token-load-scorer
  - pluginRef: max-score-picker
"""


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def test_token_load_counts_tokens_in_flight_past_scrapes(procs, tmp_path, fakes):
    """token-load-scorer reads the prompt tokens of the requests in flight
    (llm-d's inflight-load-producer adds them at PreRequest and takes them
    off when the response completes): a long request held by one pod keeps
    that pod's score down after several scrapes, so the next requests go
    to the other pod; once it is answered the pod scores as idle again."""
    pods = fakes.pods(2, mode="hold")
    cfg = tmp_path / "picker.yaml"
    cfg.write_text(TOKEN_LOAD_CONFIG)
    c = FakeCluster(procs, tmp_path, pods,
                    gw_args=("--scrape-interval", "20", "--picker-config", str(cfg)))
    c.scraped(*pods)
    body = {"model": "tweet-summary", "prompt": "x" * 40000, "max_tokens": 1}
    answers = []

    def send():
        try:
            answers.append(call(c.base, "/v1/completions", body, timeout=30)[0])
        except OSError as e:
            answers.append(repr(e))

    held = threading.Thread(target=send, daemon=True)
    held.start()
    wait_until(lambda: any(p.completions() for p in pods))
    busy = next(p for p in pods if p.completions())
    idle = next(p for p in pods if p is not busy)
    # Past two scrapes applied after the dispatch and more.
    seen = busy.metrics_count()
    wait_until(lambda: busy.metrics_count() >= seen + 4)
    for p in pods:
        p.set("json")
    assert served_by(c, 6) == {idle.address: 6}
    busy.kill()  # the held request ends (on the other pod), so the gateway drains at once
    held.join(10)
    assert answers, "the held request never ended"
    c.stop()


def saturation(metrics_url):
    _, _, data = call(metrics_url, "/metrics")
    for line in data.decode().splitlines():
        if line.startswith("inference_extension_flow_control_pool_saturation{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_staleness_flag_leaves_the_detector_alone(procs, tmp_path, fakes):
    """--metrics-staleness-threshold is, in llm-d's runner and GIE v1.5, the
    pool gauges' and the metrics logger's: the saturation detector keeps
    its own metricsStalenessThreshold (200ms by default), so a flag of 1ms
    does not make freshly scraped idle pods count as saturated."""
    from test_epp_hermetic import POOL, pod_doc, pool_doc, write
    pods = fakes.pods(2, kv=0.0)
    d = tmp_path / "m"
    d.mkdir()
    write(str(d / "pool.yaml"), pool_doc(pods[0].port))
    write(str(d / "pods.yaml"), "---\n".join(pod_doc(i, p.host) for i, p in enumerate(pods)))
    host = unique_loopback()
    grpc_port, health_port, metrics_port = (free_port(host) for _ in range(3))
    proc = procs.start("epp", "--pool-name", POOL, "-f", str(d), "--grpc-port", grpc_port,
                       "--grpc-health-port", health_port, "--metrics-port", metrics_port,
                       "--bind", host, "--secure-serving=false", "--flow-control",
                       "--refresh-metrics-interval", "20ms",
                       "--metrics-staleness-threshold", "1ms", name="epp")
    url = "http://%s:%d" % (host, metrics_port)
    wait_http(url + "/healthz", proc=proc)
    wait_until(lambda: all(p.metrics_count() >= 3 for p in pods))
    # Read under 1ms, most reads would find the pods stale (saturation 1).
    assert [saturation(url) for _ in range(10)] == [0.0] * 10
    proc.terminate()
    assert proc.wait(15) == 0


def test_prefix_hit_ratio_is_a_histogram(procs, tmp_path, fakes):
    """inference_extension_prefix_indexer_hit_ratio is a histogram observed
    at each pick (GIE v1.5's and llm-d's pkg/epp/metrics: buckets 0.0 to
    1.0), the picked pod's matched share of the prompt's blocks: a first
    prompt matches nothing, the same prompt again matches all of it."""
    pods = fakes.pods(1)
    c = FakeCluster(procs, tmp_path, pods)
    c.scraped(*pods)
    body = {"model": "tweet-summary", "prompt": "the same long prompt " * 40, "max_tokens": 1}
    for _ in range(2):
        assert call(c.base, "/v1/completions", body)[0] == 200
    _, _, data = call(c.admin, "/metrics")
    text = data.decode()
    assert "# TYPE inference_extension_prefix_indexer_hit_ratio histogram" in text
    rows = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("inference_extension_prefix_indexer_hit_ratio")}
    buckets = {k.split('le="')[1].rstrip('"}'): v for k, v in rows.items() if "_bucket" in k}
    assert rows["inference_extension_prefix_indexer_hit_ratio_count"] == 2, rows
    assert rows["inference_extension_prefix_indexer_hit_ratio_sum"] == 1.0, rows
    assert buckets["0.9"] == 1 and buckets["1"] == 2 and buckets["+Inf"] == 2, buckets
    c.stop()


def test_fresh_pod_keeps_its_lora_slots(procs, tmp_path, fakes):
    """Under GIE v0.2's lora_requests_info rule (this pool has
    InferenceModels) only series naming an adapter are read for the
    adapters; a vLLM that has not run one yet writes a single series naming
    none, and its max_lora is still its slots. So an adapter no pod runs
    goes to that pod, with free slots, not to one whose two slots other
    adapters fill; it had no slots at all, and the picker left such a pod
    idle."""
    full, fresh = fakes.pods(2)
    full.running_loras, full.max_lora = ("other-1", "other-2"), 2
    fresh.max_lora = 2
    c = FakeCluster(procs, tmp_path, [full, fresh])
    c.scraped(full, fresh)
    eps = endpoints(c)
    assert eps[fresh.address]["max_lora"] == 2, eps
    assert eps[fresh.address]["running_adapters"] == [], eps
    assert served_by(c, 20) == {fresh.address: 20}
    c.stop()
