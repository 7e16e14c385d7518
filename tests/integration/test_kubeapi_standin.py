"""The stand-in API server of kubeapi.py keeps the watch contract the
gateway's tests rely on: every change after the watch's resourceVersion
arrives, in order, even while bookmarks are sent. (A bookmark once claimed
events that came in during its wait, so they were never sent and the kube
tests failed about one run in three.)"""
import json
import os
import ssl
import threading
import time
import http.client

from conftest import unique_loopback
from kubeapi import KubeAPI


def test_watch_loses_no_event_between_bookmarks(tmp_path):
    api = KubeAPI(unique_loopback(), 0, str(tmp_path / "pki"), bookmark_interval=0.02).start()
    try:
        pods = api.resource("", "v1", "pods")
        rv0 = api.store.rv
        ctx = ssl.create_default_context(cafile=os.path.join(str(tmp_path / "pki"), "ca.crt"))
        conn = http.client.HTTPSConnection(api.host, api.port, context=ctx, timeout=10)
        conn.request("GET", "/api/v1/namespaces/default/pods?watch=1&allowWatchBookmarks=true"
                     "&resourceVersion=%d&timeoutSeconds=3" % rv0,
                     headers={"Authorization": "Bearer test-token"})
        resp = conn.getresponse()
        assert resp.status == 200
        n = 200

        def writer():
            for i in range(n):
                api.create(pods, "default", {"metadata": {"name": "p%d" % i}})
                time.sleep(0.001 * (i % 5))
        t = threading.Thread(target=writer)
        t.start()
        seen, bookmarks = [], 0
        deadline = time.time() + 10
        while len(seen) < n and time.time() < deadline:
            line = resp.readline()
            if not line:
                break
            ev = json.loads(line)
            if ev["type"] == "BOOKMARK":
                bookmarks += 1
            else:
                assert ev["type"] == "ADDED"
                seen.append(ev["object"]["metadata"]["name"])
        t.join()
        conn.close()
        assert seen == ["p%d" % i for i in range(n)]
        assert bookmarks > 0
    finally:
        api.stop()
