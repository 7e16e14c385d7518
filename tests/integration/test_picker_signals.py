"""What the picker reads of its endpoints, checked from outside against fake
pods (fakepod.py): the metric names of each pod's engine (llm-d's
`llm-d.ai/engine-type` label), a page without the figures it is read for,
the tokens of requests in flight, and the flags that llm-d's and GIE's
pickers take for these signals."""
import threading
from collections import Counter

from conftest import IG_BIN, free_port, unique_loopback, wait_http, wait_port  # noqa: F401
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


def test_page_without_load_figures_is_no_idle_pod(procs, tmp_path, fakes):
    """A pod whose page has none of the families its engine is read for
    (an SGLang server without the label, read with vLLM's names) never has
    fresh metrics and leaves rotation as a failed scrape would, with one
    warning; an engine-type value naming no engine reads vLLM's names."""
    vllm, unlabelled, odd = fakes.pods(3)
    unlabelled.metrics_text = SGLANG_PAGE.format(waiting=40, running=12, kv=0.9)
    c = FakeCluster(procs, tmp_path, [vllm, unlabelled, odd],
                    gw_args=("--scrape-interval", "50"),
                    pod_labels=[{}, {}, {"llm-d.ai/engine-type": "mystery-engine"}])
    c.scraped(vllm, odd)
    c.wait_pools(lambda eps: "out of rotation" in c.log())
    eps = endpoints(c)
    assert eps[unlabelled.address]["metrics_age_ms"] is None
    assert eps[odd.address]["engine"] == "vllm"
    log = c.log()
    assert log.count("has none of the vllm families") == 1, log
    assert log.count('"mystery-engine" is no engine') == 1, log
    assert unlabelled.address not in served_by(c)
    c.stop()
