"""The admin listener's protections (issue 12): with `--admin-token T`
every admin path answers 401 unless the request carries
`Authorization: Bearer T`, and the refusal names nothing it guards; without
a token it is open as before; the data-plane listeners never ask for one.
`--admin :PORT` binds loopback."""
import os
import re
import subprocess

import pytest

from conftest import IG_BIN, free_port, unique_loopback, wait_http, wait_port
from test_gateway import SAN_ERRORS, Cluster, call, post_json, seed_body

TOKEN = "s3cret-Token_0123456789"
PATHS = ("/", "/api/status", "/metrics", "/pools", "/healthz", "/readyz", "/nope")
# What a refusal must not give away: the pool, the model, the metric names,
# the endpoints and the admin paths.
SECRETS = ("qwen-pool", "tweet-summary", "inference_", "/metrics", "/pools", "127.")


def bearer(token):
    return {"Authorization": "Bearer " + token}


def assert_refused(status, headers, body):
    assert status == 401, (status, body)
    assert headers["WWW-Authenticate"].startswith("Bearer"), dict(headers)
    text = body.decode()
    for s in SECRETS:
        assert s not in text, (s, text)


def test_open_without_token(procs, tmp_path):
    c = Cluster(procs, tmp_path)
    for path in ("/metrics", "/pools", "/healthz", "/readyz"):
        status, _, _ = call(c.admin, path)
        assert status == 200, path
    # A token sent to an open listener does no harm.
    assert call(c.admin, "/metrics", headers=bearer("whatever"))[0] == 200
    c.stop()


def test_token_required_on_every_path(procs, tmp_path):
    c = Cluster(procs, tmp_path, gw_args=("--admin-token", TOKEN))
    status, _, r = post_json(c.base, "/v1/completions", seed_body())
    assert status == 200, r  # the data plane asks for nothing
    wrong = [None, bearer(TOKEN[:-1]), bearer(TOKEN + "x"), bearer(""), bearer("x" * 200),
             {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN},
             {"Authorization": "Bearer"}]
    for path in PATHS:
        for h in wrong:
            assert_refused(*call(c.admin, path, headers=h))
        # Other methods are refused the same way before anything else.
        assert_refused(*call(c.admin, path, method="POST", raw=b"{}"))
    for path, want in (("/", 200), ("/api/status", 200), ("/nope", 404), ("/healthz", 200),
                       ("/readyz", 200), ("/pools", 200), ("/metrics", 200)):
        status, _, data = call(c.admin, path, headers=bearer(TOKEN))
        assert status == want, (path, status, data)
    # The scheme is case-insensitive (RFC 9110 §11.1).
    status, _, data = call(c.admin, "/metrics", headers={"Authorization": "bearer " + TOKEN})
    assert status == 200
    assert re.search(r'^inference_model_request_total\{model_name="tweet-summary",'
                     r'target_model_name="tweet-summary-1"\} 1$', data.decode(), re.M)
    status, _, data = call(c.admin, "/pools", headers=bearer(TOKEN))
    assert b"qwen-pool" in data
    # The data plane still answers, and ignores an Authorization header.
    status, _, r = post_json(c.base, "/v1/completions", seed_body(), headers=bearer("nope"))
    assert status == 200, r
    c.stop()


def test_token_file(procs, tmp_path):
    path = os.path.join(str(tmp_path), "token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")  # as `echo` writes it; the line end is not the token's
    c = Cluster(procs, tmp_path, gw_args=("--admin-token-file", path))
    assert_refused(*call(c.admin, "/healthz"))
    assert_refused(*call(c.admin, "/healthz", headers=bearer(TOKEN[1:])))
    assert call(c.admin, "/healthz", headers=bearer(TOKEN))[0] == 200
    c.stop()


def test_bad_token_options(tmp_path):
    manifests = os.path.join(str(tmp_path), "manifests")
    os.makedirs(manifests)
    empty = os.path.join(str(tmp_path), "empty")
    open(empty, "w").close()
    cases = [
        (["--admin-token", TOKEN], "needs an admin listener"),
        (["--admin", "127.0.0.1:1", "--admin-token", TOKEN, "--admin-token-file", empty],
         "not both"),
    ]
    for args, want in cases:
        r = subprocess.run([IG_BIN, "gateway", "-f", manifests, *args],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and want in r.stderr, (args, r.stderr)
    host = unique_loopback()
    for args, want in ((["--admin-token-file", empty], "is empty"),
                       (["--admin-token-file", empty + "-missing"], "cannot open"),
                       (["--admin-token", "two words"], "without blanks")):
        r = subprocess.run([IG_BIN, "gateway", "-f", manifests, "--bind", host,
                            "--admin", "%s:%d" % (host, free_port(host)), *args],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and want in r.stderr, (args, r.stderr)


def test_admin_port_only_binds_loopback(procs, tmp_path):
    """`--admin :PORT` (and `--admin PORT`) listen on 127.0.0.1, not on
    every address: the admin listener is never exposed by accident."""
    empty = os.path.join(str(tmp_path), "manifests")
    os.makedirs(empty)
    for spelling in (":%d", "%d"):
        port = free_port("127.0.0.1")
        host = unique_loopback()
        p = procs.start("gateway", "-f", empty, "--bind", host,
                        "--admin", spelling % port, name="gateway")
        wait_port("127.0.0.1", port, proc=p)
        with open("/proc/net/tcp") as f:
            rows = [l.split() for l in f.read().splitlines()[1:]]
        listening = [r[1] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]
        # Tests running beside this one may hold the same port number on
        # other 127.x addresses; what matters is 127.0.0.1, not 0.0.0.0.
        assert "0100007F:%04X" % port in listening, listening
        assert "00000000:%04X" % port not in listening, listening
        p.terminate()
        rc = p.wait(timeout=10)
        log = procs.output(p)
        assert rc == 0 and not any(s in log for s in SAN_ERRORS), log


def test_epp_metrics_port_token(procs, tmp_path):
    c = Cluster(procs, tmp_path)
    host = unique_loopback()
    grpc_port, health_port, metrics_port = (free_port(host) for _ in range(3))
    p = procs.start("epp", "-poolName", "qwen-pool", "-f", c.dir, "--bind", host,
                    "-grpcPort", grpc_port, "-grpcHealthPort", health_port,
                    "-metricsPort", metrics_port, "-secureServing=false", "--workers", "1",
                    "--admin-token", TOKEN, name="epp")
    admin = "http://%s:%d" % (host, metrics_port)
    wait_http(admin + "/healthz", proc=p)
    for path in ("/metrics", "/healthz", "/pools"):
        assert_refused(*call(admin, path))
        assert call(admin, path, headers=bearer(TOKEN))[0] == 200, path
    p.terminate()
    rc = p.wait(timeout=15)
    log = procs.output(p)
    assert rc == 0 and not any(s in log for s in SAN_ERRORS), log
    c.stop()
