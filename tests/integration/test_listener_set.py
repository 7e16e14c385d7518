"""ListenerSets (Gateway API v1.5, GEP-1713) end to end from manifest
files: more listeners for a Gateway that admits them, routes attached
through the Gateway reaching only its own listeners and routes attached
through a ListenerSet only the set's, a listener that conflicts with an
earlier one giving way to it, and a ListenerSet the Gateway does not admit
serving nothing. The routing table follows the conformance test
ListenerSetHTTPRouting; backends are fake pods, one per Service, so each
answer says which Service served it."""
import http.client

from conftest import free_port
from test_gateway_api import Setup, pod, service


def gateway(name, port, allowed_from=None, listeners=()):
    allowed = ("  allowedListeners:\n    namespaces:\n      from: %s\n" % allowed_from
               if allowed_from else "")
    items = "".join("  - {name: %s, port: %d, protocol: HTTP, hostname: %s,"
                    " allowedRoutes: {namespaces: {from: All}}}\n" % (n, port, h)
                    for n, h in listeners)
    return ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
            "metadata: {name: %s, namespace: default}\nspec:\n  gatewayClassName: infergate\n"
            "%s  listeners:\n%s" % (name, allowed, items))


def listener_set(name, ns, parent, port, listeners):
    items = "".join("  - {name: %s, port: %d, protocol: HTTP, hostname: %s%s}\n" % (
        n, port, h, ", allowedRoutes: {namespaces: {from: %s}}" % f if f else "")
        for n, h, f in listeners)
    return ("apiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\n"
            "metadata: {name: %s, namespace: %s}\nspec:\n"
            "  parentRef: {name: %s, namespace: default}\n  listeners:\n%s"
            % (name, ns, parent, items))


def route(name, ns, parents, path, backend):
    refs = "".join("  - {%s}\n" % p for p in parents)
    return ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            "metadata: {name: %s, namespace: %s}\nspec:\n  parentRefs:\n%s"
            "  rules:\n  - matches: [{path: {type: PathPrefix, value: %s}}]\n"
            "    backendRefs: [{name: %s, port: 80}]\n" % (name, ns, refs, path, backend))


GW = "name: gw, namespace: default"
LS1 = "kind: ListenerSet, name: ls-1, namespace: default"
LS2 = "kind: ListenerSet, name: ls-2, namespace: team"


def test_listener_set_routing(procs, tmp_path):
    def docs(s):
        v1, v2, v3 = s.pods
        s.closed_port = closed_port = free_port(s.host)
        return [
            gateway("gw", s.port, "All", [("gateway-listener-1", "gl-1.com"),
                                          ("gateway-listener-2", "gl-2.com")]),
            gateway("closed", closed_port, None, [("only", "closed.com")]),
            # ls-1: two listeners of its own, and one that gives way to the
            # Gateway's listener for the same hostname.
            listener_set("ls-1", "default", "gw", s.port, [
                ("ls-1-a", "ls-1-a.com", "All"), ("ls-1-b", "ls-1-b.com", "All"),
                ("dup", "gl-1.com", "All")]),
            # ls-2 lives in another namespace; allowedRoutes defaults to its own.
            listener_set("ls-2", "team", "gw", s.port, [("ls-2-a", "ls-2-a.com", None)]),
            listener_set("knocks", "default", "closed", closed_port,
                         [("k", "knocks.com", "All")]),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
            service("v1", 80, s.pod_port), service("v2", 80, s.pod_port),
            service("v3", 80, s.pod_port), service("v2", 80, s.pod_port, ns="team"),
            pod("p1", "v1", v1.host), pod("p2", "v2", v2.host), pod("p3", "v3", v3.host),
            pod("p2", "v2", v2.host, ns="team"),
            route("all", "default", [GW, LS1, LS2], "/route", "v1"),
            route("gateway-route", "default", [GW], "/gateway-route", "v2"),
            route("gateway-section", "default", [GW + ", sectionName: gateway-listener-1"],
                  "/gateway-section", "v3"),
            route("ls-1-route", "default", [LS1], "/ls-1-route", "v2"),
            route("ls-1-section", "default", [LS1 + ", sectionName: ls-1-a"],
                  "/ls-1-section", "v3"),
            route("ls-2-route", "team", [LS2], "/ls-2-route", "v2"),
            # A Gateway parentRef naming a ListenerSet's listener matches nothing.
            route("wrong-parent", "default", [GW + ", sectionName: ls-1-a"], "/wrong", "v1"),
            route("knocking", "default",
                  ["kind: ListenerSet, name: knocks, namespace: default"], "/knock", "v1"),
        ]

    s = Setup(procs, tmp_path, docs, npods=3)
    by_addr = {p.address: name for p, name in zip(s.pods, ("v1", "v2", "v3"))}

    def served(host, path):
        st, hdrs, data = s.get(path, headers={"Host": host})
        if st == 404:
            return 404
        assert st == 200, (host, path, st, data)
        return by_addr[hdrs["x-pod"]]

    gw_hosts = ("gl-1.com", "gl-2.com")
    ls1_hosts = ("ls-1-a.com", "ls-1-b.com")
    for h in gw_hosts + ls1_hosts:
        assert served(h, "/route") == "v1", h
    # ls-2's listener admits routes of its own namespace only (Same, the
    # default, is the ListenerSet's namespace, not the Gateway's).
    assert served("ls-2-a.com", "/route") == 404
    for h in gw_hosts:
        assert served(h, "/gateway-route") == "v2", h
    for h in ls1_hosts + ("ls-2-a.com",):
        assert served(h, "/gateway-route") == 404, h
    assert served("gl-1.com", "/gateway-section") == "v3"
    for h in ("gl-2.com",) + ls1_hosts:
        assert served(h, "/gateway-section") == 404, h
    for h in ls1_hosts:
        assert served(h, "/ls-1-route") == "v2", h
    for h in gw_hosts + ("ls-2-a.com",):
        assert served(h, "/ls-1-route") == 404, h
    assert served("ls-1-a.com", "/ls-1-section") == "v3"
    assert served("ls-1-b.com", "/ls-1-section") == 404
    assert served("ls-2-a.com", "/ls-2-route") == "v2"
    for h in gw_hosts + ls1_hosts:
        assert served(h, "/ls-2-route") == 404, h
    for h in gw_hosts + ls1_hosts:
        assert served(h, "/wrong") == 404, h
    # ls-1's "dup" listener gave way: gl-1.com is the Gateway's listener's,
    # which takes no route attached to ls-1 only.
    assert served("gl-1.com", "/ls-1-route") == 404
    # The closed Gateway admits no ListenerSet: knocks.com is nobody's.
    conn = http.client.HTTPConnection(s.host, s.closed_port, timeout=5)
    conn.request("GET", "/knock", headers={"Host": "knocks.com"})
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 404
    log = s.procs.output(s.gw)
    assert 'does not admit ListenerSets from namespace default' in log, log
    s.stop()
