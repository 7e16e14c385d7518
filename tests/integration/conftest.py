"""Shared fixtures for the integration tests: the binary under test, free
loopback addresses and ports, processes that are always stopped, and a
process's resident memory."""
import itertools
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

IG_BIN = os.environ.get("IG_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "infergate")

_addr_counter = itertools.count(1)


def rss_kib(pid):
    """A process's resident memory (VmRSS), in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


_ports_given = set()


def free_port(host="127.0.0.1"):
    """A TCP port that is free on host right now and that this run has not
    handed out before: the kernel may give the same ephemeral port to two
    calls in a row, and a process would then find its second port taken."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no fresh port on %s" % host)


def _exited(proc):
    """The error for a process that exited while we waited for it, with the
    end of its log (a port in use, a bad flag) so that a failure says why."""
    tail = ""
    log = getattr(proc, "log", None)
    if log is not None:
        try:
            log.flush()
            log.seek(0)
            tail = log.read()[-2000:]
        except (OSError, ValueError):
            pass
    return RuntimeError("process exited with %s; its log ends:\n%s" % (proc.returncode, tail))


def unique_loopback():
    """A distinct 127.x.y.z address per call within this test run, spread by
    the process id so that parallel runs do not collide."""
    n = next(_addr_counter)
    base = (os.getpid() % 200) + 20
    return "127.%d.%d.%d" % (base, (n // 250) % 250, n % 250 + 2)


def wait_http(url, timeout=10.0, proc=None):
    """Polls url until it answers (any status) or timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise _exited(proc)
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except urllib.error.HTTPError:
            return True
        except Exception:
            time.sleep(0.05)
    raise TimeoutError("no answer from %s" % url)


def wait_port(host, port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise _exited(proc)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listens on %s:%d" % (host, port))


class Procs:
    """Starts infergate processes and stops every one at teardown."""

    def __init__(self, tmp_path):
        self.procs = []
        self.tmp_path = tmp_path

    def start(self, *args, name="proc", **popen_kw):
        """popen_kw go to subprocess.Popen (say, a preexec_fn that lowers
        a resource limit of the child)."""
        log = open(os.path.join(self.tmp_path, "%s-%d.log" % (name, len(self.procs))), "w+")
        p = subprocess.Popen([IG_BIN] + [str(a) for a in args], stdout=log,
                             stderr=subprocess.STDOUT, **popen_kw)
        p.log = log
        self.procs.append(p)
        return p

    def output(self, p):
        p.log.flush()
        p.log.seek(0)
        return p.log.read()

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.log.close()


@pytest.fixture
def procs(tmp_path):
    ps = Procs(str(tmp_path))
    yield ps
    ps.stop_all()


@pytest.fixture
def ig_bin():
    return IG_BIN
