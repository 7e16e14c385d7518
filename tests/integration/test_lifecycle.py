"""The gateway's life under traffic: what holds the process's descriptors,
when the configuration is reloaded, and how it stops (the drain, HTTP/2's
two GOAWAYs, --shutdown-delay)."""
import os
import resource
import socket

from test_abuse import GatewayPopen, ok_small
from test_gateway import Cluster, call


def fd_limit(n):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


# ---- the admin listener's share of descriptors ----

def test_admin_connections_are_capped(procs, tmp_path):
    """Clients that open connections to the admin port and never finish a
    request hold at most 128 of them (the oldest give way), so the data
    plane keeps its descriptors, and probes still get through."""
    c = Cluster(GatewayPopen(procs, preexec_fn=fd_limit(256)), tmp_path)
    held = []
    try:
        for _ in range(300):
            s = socket.create_connection((c.admin_host, c.admin_port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        # Accepted after all of them (the backlog is first in, first out).
        status, _, body = call(c.admin, "/healthz", timeout=5)
        assert (status, body) == (200, b"ok\n")
        assert ok_small(c, timeout=5)[0] == 200
        fds = len(os.listdir("/proc/%d/fd" % c.gw.pid))
        assert fds < 200, fds
    finally:
        for s in held:
            s.close()
    assert call(c.admin, "/healthz", timeout=5)[0] == 200
    assert "connections, the most it takes" in c.log()
    c.stop()
