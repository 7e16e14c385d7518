"""A stand-in for the Kubernetes API server, for the tests of `infergate
gateway --kube` (no real kube-apiserver can be installed on these
machines). Python stdlib only, loopback only. Faithful enough that the real
`kubectl` creates, applies, gets, patches and deletes objects through it:

- HTTPS with a certificate made at start by the openssl CLI (a CA, a server
  certificate for the loopback address, a client certificate for tests that
  authenticate with one), bearer tokens (401 otherwise);
- discovery (/version, /api, /apis, /api/v1, /apis/GROUP/VERSION), the
  Gateway API and GIE kinds served as if their CRDs were installed, and any
  of them switched off to play a missing CRD (404);
- list and watch with resourceVersion (one global counter, as etcd's),
  label and field selectors, bookmarks, 410 Gone for a version older than
  the history kept (`compact()`), watches that the server ends;
- create / update / patch (merge, JSON, strategic-merge for the cases the
  tests use) / delete, the status subresource (the main resource ignores
  status and the subresource ignores everything else), metadata.generation
  bumped when the spec changes, optimistic concurrency (409 Conflict on a
  stale resourceVersion).

Use it in-process (`KubeAPI(...).start()`), or run it:
`python3 kubeapi.py --host 127.0.0.1 --port 6443 --dir /tmp/kube` writes
ca.crt and a kubeconfig there and serves until interrupted."""
import argparse
import base64
import copy
import datetime
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GW = "gateway.networking.k8s.io"
GIE = "inference.networking.k8s.io"
XGIE = "inference.networking.x-k8s.io"
LLMD = "llm-d.ai"

# (group, version, plural, kind, namespaced, status subresource, short names)
RESOURCES = [
    ("", "v1", "namespaces", "Namespace", False, True, ["ns"]),
    ("", "v1", "pods", "Pod", True, True, ["po"]),
    ("", "v1", "services", "Service", True, True, ["svc"]),
    ("", "v1", "endpoints", "Endpoints", True, False, ["ep"]),
    ("", "v1", "secrets", "Secret", True, False, []),
    ("", "v1", "configmaps", "ConfigMap", True, False, ["cm"]),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, False, ["sa"]),
    ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, False, []),
    ("coordination.k8s.io", "v1", "leases", "Lease", True, False, []),
    ("apps", "v1", "deployments", "Deployment", True, True, ["deploy"]),
    (GW, "v1", "gatewayclasses", "GatewayClass", False, True, ["gc"]),
    (GW, "v1", "gateways", "Gateway", True, True, ["gtw"]),
    (GW, "v1", "httproutes", "HTTPRoute", True, True, []),
    (GW, "v1", "grpcroutes", "GRPCRoute", True, True, []),
    (GW, "v1", "listenersets", "ListenerSet", True, True, ["lset"]),
    ("gateway.networking.x-k8s.io", "v1alpha1", "xlistenersets", "XListenerSet", True, True, []),
    (GW, "v1beta1", "referencegrants", "ReferenceGrant", True, False, ["refgrant"]),
    (GW, "v1", "backendtlspolicies", "BackendTLSPolicy", True, True, ["btlspolicy"]),
    (GIE, "v1", "inferencepools", "InferencePool", True, True, ["infpool"]),
    (XGIE, "v1alpha2", "inferencepools", "InferencePool", True, True, []),
    (XGIE, "v1alpha2", "inferencemodels", "InferenceModel", True, True, []),
    (XGIE, "v1alpha2", "inferenceobjectives", "InferenceObjective", True, True, []),
    (XGIE, "v1alpha2", "inferencemodelrewrites", "InferenceModelRewrite", True, True, []),
    (LLMD, "v1alpha2", "inferenceobjectives", "InferenceObjective", True, True, []),
    (LLMD, "v1alpha2", "inferencemodelrewrites", "InferenceModelRewrite", True, True, []),
]

# Strategic merge patch: lists of objects merged by these keys (the
# fields of the built-in kinds the tests touch); other lists are replaced.
SMP_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
            "volumeMounts": "mountPath", "conditions": "type", "ports": None,
            "imagePullSecrets": "name", "podIPs": "ip"}


class Resource:
    def __init__(self, group, version, plural, kind, namespaced, status, short):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.has_status, self.short = namespaced, status, short

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    def discovery(self):
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        out = [{"name": self.plural, "singularName": self.kind.lower(),
                "namespaced": self.namespaced, "kind": self.kind, "verbs": verbs,
                "shortNames": self.short}]
        if self.has_status:
            out.append({"name": self.plural + "/status", "singularName": "",
                        "namespaced": self.namespaced, "kind": self.kind,
                        "verbs": ["get", "patch", "update"]})
        return out


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


class ApiError(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge(target, patch, field=None):
    """Enough of Kubernetes' strategic merge patch for kubectl apply and
    patch on built-in kinds: maps merge, directives ($patch, $retainKeys,
    $setElementOrder, $deleteFromPrimitiveList) are honoured or dropped,
    lists of objects with a known merge key merge by that key."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        out = copy.deepcopy(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            if k.startswith("$"):
                continue
            if k.startswith("$setElementOrder/") or k.startswith("$deleteFromPrimitiveList/"):
                continue
            if v is None:
                out.pop(k, None)
            else:
                out[k] = strategic_merge(out.get(k), v, k)
        return out
    if isinstance(patch, list):
        key = SMP_KEYS.get(field)
        if field == "ports" and patch and isinstance(patch[0], dict):
            key = "containerPort" if "containerPort" in patch[0] else "port"
        if key and isinstance(target, list) and all(isinstance(x, dict) for x in patch):
            out = copy.deepcopy(target)
            for item in patch:
                idx = next((i for i, x in enumerate(out)
                            if isinstance(x, dict) and x.get(key) == item.get(key)), None)
                if item.get("$patch") == "delete":
                    if idx is not None:
                        out.pop(idx)
                elif idx is None:
                    out.append(strategic_merge(None, item))
                else:
                    out[idx] = strategic_merge(out[idx], item)
            return out
        return copy.deepcopy(patch)
    return copy.deepcopy(patch)


def json_pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc, ops):
    """RFC 6902 add, remove, replace, test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = json_pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(idx, op["value"])
            elif kind == "remove":
                parent.pop(idx)
            elif kind == "replace":
                parent[idx] = op["value"]
            elif kind == "test" and parent[idx] != op["value"]:
                raise ApiError(422, "Invalid", "test operation failed")
        else:
            if kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", "replace of a missing path %s" % op["path"])
                parent[last] = op["value"]
            elif kind == "remove":
                if last not in parent:
                    raise ApiError(422, "Invalid", "remove of a missing path %s" % op["path"])
                del parent[last]
            elif kind == "test" and parent.get(last) != op["value"]:
                raise ApiError(422, "Invalid", "test operation failed")
    return doc


def parse_label_selector(text):
    reqs = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        if "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append(("ne", k.strip(), v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            reqs.append(("eq", k.strip(), v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            reqs.append(("eq", k.strip(), v.strip()))
        elif part.startswith("!"):
            reqs.append(("absent", part[1:].strip(), None))
        else:
            reqs.append(("present", part, None))
    return reqs


def labels_match(reqs, labels):
    for op, k, v in reqs:
        if op == "eq" and labels.get(k) != v:
            return False
        if op == "ne" and labels.get(k) == v:
            return False
        if op == "present" and k not in labels:
            return False
        if op == "absent" and k in labels:
            return False
    return True


def field_value(obj, path):
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    return "" if cur is None else str(cur)


def fields_match(reqs, obj):
    for op, k, v in reqs:
        got = field_value(obj, k)
        if op == "eq" and got != v:
            return False
        if op == "ne" and got == v:
            return False
    return True


class Store:
    """Objects by (group, plural, namespace, name), the event history and
    the resourceVersion counter, under one lock with a condition watchers
    wait on."""

    def __init__(self):
        self.lock = threading.Condition()
        self.objects = {}
        self.rv = 1000
        self.events = []  # (rv, group, plural, type, object)
        self.min_rv = 0   # watches from before this get 410 Gone
        self.epoch = 0    # bumped by compact() to end watches with 410

    def next_rv(self):
        self.rv += 1
        return self.rv

    def record(self, res, typ, obj):
        self.events.append((int(obj["metadata"]["resourceVersion"]), res.group, res.plural,
                            typ, copy.deepcopy(obj)))
        if len(self.events) > 5000:
            drop = self.events[:1000]
            self.events = self.events[1000:]
            self.min_rv = max(self.min_rv, drop[-1][0])
        self.lock.notify_all()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-standin"
    # The head and the body go out in two writes: without TCP_NODELAY the
    # body waited for the client's delayed ACK, 40 ms a response.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    @property
    def api(self):
        return self.server.api

    # ---- plumbing ----

    def send_json(self, code, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.api.note(self, code)

    def send_error_status(self, code, reason, message):
        self.send_json(code, status_obj(code, reason, message))

    def read_body(self):
        data = self.raw_body
        if not data:
            return None
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            # kubectl's typed commands (create namespace, ...) speak
            # protobuf; this stand-in only JSON: use kubectl apply -f.
            raise ApiError(415, "UnsupportedMediaType",
                           "the stand-in API server reads JSON only (use kubectl apply -f)")
        try:
            return json.loads(data)
        except ValueError:
            raise ApiError(400, "BadRequest", "the body is not JSON")

    def authenticate(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:].strip() in self.api.tokens:
            return self.api.tokens[auth[7:].strip()]
        if auth.startswith("Bearer ") and auth[7:].strip() in self.api.forbidden_tokens:
            return None
        try:
            cert = self.connection.getpeercert()
        except Exception:
            cert = None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        return False

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query,
                                                                keep_blank_values=True).items()}
        path = url.path.rstrip("/") or "/"
        # The body is read whatever the verb (DELETE carries DeleteOptions),
        # so that a kept-alive connection stays in step.
        n = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(n) if n else b""
        if self.api.stopping:
            # Going down: no answer at all, as from a crashed server.
            self.close_connection = True
            return
        user = self.user = self.authenticate()
        if user is False:
            return self.send_error_status(401, "Unauthorized", "Unauthorized")
        if self.api.delay:
            time.sleep(self.api.delay)
        if path in ("/healthz", "/readyz", "/livez"):
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(body)
            return self.api.note(self, 200)
        if user is None:
            return self.send_error_status(
                403, "Forbidden", 'User "limited" cannot %s resource "%s"' % (
                    self.command.lower(), path))
        try:
            self.route(path)
        except ApiError as e:
            self.send_error_status(e.code, e.reason, e.message)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = dispatch

    # ---- routing ----

    def route(self, path):
        parts = path.strip("/").split("/")
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                                        "platform": "linux/amd64"})
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": self.api.hostport}]})
        if path == "/apis":
            return self.send_json(200, self.api.group_list())
        if path == "/openapi/v2":
            # Older kubectl (Debian's 1.20) asks for the OpenAPI v2 document
            # in protobuf before it applies. An empty Document message (zero
            # bytes) says "no schemas": kubectl then validates nothing and
            # patches built-in kinds from its own types, CRDs as JSON merge.
            self.send_response(200)
            self.send_header("Content-Type",
                             "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.api.note(self, 200)
            return None
        if path == "/openapi/v3":
            return self.send_json(200, self.api.openapi_root())
        if path.startswith("/openapi/v3/"):
            return self.send_json(200, self.api.openapi_gv(path[len("/openapi/v3/"):]))
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not self.api.version_served(group, version):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            return self.send_json(200, self.api.resource_list(group, version))
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and \
                self.api.resource(group, version, rest[2]) is not None:
            ns, rest = rest[1], rest[2:]
        res = self.api.resource(group, version, rest[0])
        if res is None or (ns is not None and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        refuse = self.api.refuse
        if refuse:
            code, after = refuse
            return self.send_json(code, status_obj(code, "TooManyRequests" if code == 429
                                                   else "InternalError", "busy"),
                                  [("Retry-After", after)] if after else [])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub not in (None, "status") or (sub == "status" and not res.has_status) or \
                len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        m = self.command
        if name is None:
            if m == "GET" and self.query.get("watch") in ("1", "true"):
                return self.watch(res, ns)
            if m == "GET":
                return self.list(res, ns)
            if m == "POST":
                return self.send_json(201, self.api.create(res, ns, self.read_body()))
            raise ApiError(405, "MethodNotAllowed", "method not allowed")
        if m == "GET":
            return self.send_json(200, self.api.get(res, ns, name, sub))
        if m == "PUT":
            out = self.api.update(res, ns, name, sub, self.read_body())
            # Applied at once, answered late (a slow link back), for tests
            # of a client that gives up on a write the server has taken.
            lag = self.api.put_lag.get(res.plural, 0)
            if lag:
                time.sleep(lag)
            return self.send_json(200, out)
        if m == "PATCH":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            return self.send_json(200, self.api.patch(res, ns, name, sub, ctype,
                                                      self.raw_body))
        if m == "DELETE":
            return self.send_json(200, self.api.delete(res, ns, name))
        raise ApiError(405, "MethodNotAllowed", "method not allowed")

    def wants_table(self):
        return "as=Table" in (self.headers.get("Accept") or "")

    def list(self, res, ns):
        items, rv, cont = self.api.list(res, ns, self.query)
        if self.wants_table():
            return self.send_json(200, self.api.table(res, items, rv))
        md = {"resourceVersion": str(rv)}
        if cont:
            md["continue"] = cont
        self.send_json(200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                             "metadata": md, "items": items})

    # ---- watch ----

    def write_chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, res, ns):
        api, store = self.api, self.api.store
        q = self.query
        try:
            timeout = float(q.get("timeoutSeconds") or 1800)
        except ValueError:
            timeout = 1800
        if api.watch_timeout is not None:
            timeout = min(timeout, api.watch_timeout)
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        lsel = parse_label_selector(q.get("labelSelector", ""))
        fsel = parse_label_selector(q.get("fieldSelector", ""))
        rv_text = q.get("resourceVersion", "")
        if res.plural in api.forbid_watch:
            raise ApiError(403, "Forbidden", 'User "infergate" cannot watch resource "%s"'
                           % res.plural)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        api.note(self, 200)
        code = api.watch_errors.get(res.plural)
        if code:
            self.write_chunk({"type": "ERROR", "object": status_obj(
                code, "Expired" if code == 410 else "InternalError", "watch refused")})
            return self.end_chunks()
        conn = self.connection
        with api.conn_lock:
            api.watchers.add(conn)
        deadline = time.time() + timeout
        next_bookmark = time.time() + api.bookmark_interval

        def visible(r_group, r_plural, obj):
            if r_group != res.group or r_plural != res.plural:
                return False
            if ns is not None and obj["metadata"].get("namespace") != ns:
                return False
            return labels_match(lsel, obj["metadata"].get("labels") or {}) and \
                fields_match(fsel, obj)

        try:
            with store.lock:
                epoch = store.epoch
                end_epoch = api.end_epoch
                if rv_text in ("", "0"):
                    # "Any": the current state as ADDED events, then changes.
                    last = store.rv
                    initial = [o for k, o in store.objects.items()
                               if visible(k[0], k[1], o)]
                else:
                    try:
                        last = int(rv_text)
                    except ValueError:
                        raise ApiError(400, "BadRequest", "invalid resourceVersion")
                    initial = None
                    if last < store.min_rv:
                        pending = [("ERROR", status_obj(
                            410, "Expired", "too old resource version: %d (%d)" % (
                                last, store.min_rv)))]
                        last = None
            if last is None:
                for typ, obj in pending:
                    self.write_chunk({"type": typ, "object": obj})
                return self.end_chunks()
            for obj in initial or []:
                self.write_chunk({"type": "ADDED", "object": obj})
            while not api.stopping:
                out = []
                with store.lock:
                    if store.epoch != epoch:
                        out.append(("ERROR", status_obj(410, "Expired",
                                                        "too old resource version")))
                    else:
                        for ev in store.events:
                            if ev[0] > last:
                                last = ev[0]
                                if visible(ev[1], ev[2], ev[4]):
                                    out.append((ev[3], ev[4]))
                        # Every event up to here has been looked at; a
                        # bookmark may say so. Events that come during
                        # the wait below are read on the next turn, so
                        # the bookmark must not claim them.
                        cur_rv = store.rv
                        if not out:
                            wait = min(deadline, next_bookmark if bookmarks else deadline)
                            store.lock.wait(max(0.01, min(0.25, wait - time.time())))
                for typ, obj in out:
                    self.write_chunk({"type": typ, "object": obj})
                if out and out[-1][0] == "ERROR":
                    break
                if bookmarks and time.time() >= next_bookmark:
                    last = max(last, cur_rv)
                    self.write_chunk({"type": "BOOKMARK", "object": {
                        "kind": res.kind, "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(last),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}}})
                    api.bookmarks_sent += 1
                    next_bookmark = time.time() + api.bookmark_interval
                if time.time() >= deadline or api.end_epoch != end_epoch:
                    break
            if not api.stopping:
                self.end_chunks()
        except ApiError as e:
            self.write_chunk({"type": "ERROR", "object": status_obj(e.code, e.reason,
                                                                    e.message)})
            self.end_chunks()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError, ValueError):
            self.close_connection = True
        finally:
            with api.conn_lock:
                api.watchers.discard(conn)

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        try:
            request = self.api.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            request.close()
            return
        with self.api.conn_lock:
            self.api.conns.add(request)
        try:
            super().finish_request(request, client_address)
        except (ssl.SSLError, OSError, ValueError):
            pass
        finally:
            with self.api.conn_lock:
                self.api.conns.discard(request)

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


_made = {}  # host -> the directory where make_certs(..., reuse=True) made them


def make_certs(directory, host, reuse=False):
    """A CA, a server certificate for host, and a client certificate
    (CN=admin) for tests that authenticate with one; EC P-256. With reuse,
    those made for the same host earlier in this process are copied (five
    openssl runs cost about 0.4 s, and every KubeAPI needs them)."""
    os.makedirs(directory, exist_ok=True)
    names = ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")
    src = _made.get(host) if reuse else None
    if src and all(os.path.exists(os.path.join(src, n)) for n in names):
        for n in names:
            shutil.copyfile(os.path.join(src, n), os.path.join(directory, n))
        return
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=kubeapi-standin-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    for name, subj, ext in (
            ("server", "/CN=kubeapi", "subjectAltName=IP:%s,DNS:localhost\n"
             "extendedKeyUsage=serverAuth\n" % host),
            ("client", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(directory, name + ".ext"), "w") as f:
            f.write(ext)
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj,
                cwd=directory)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile",
                name + ".ext", cwd=directory)
    if reuse:
        _made[host] = directory


def kubeconfig_text(server, ca_file=None, token=None, cert=None, key=None, namespace=None,
                    ca_data=None, cert_data=None, key_data=None):
    cluster = {"server": server}
    if ca_file:
        cluster["certificate-authority"] = ca_file
    if ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    user = {}
    if token:
        user["token"] = token
    if cert:
        user["client-certificate"] = cert
        user["client-key"] = key
    if cert_data:
        user["client-certificate-data"] = base64.b64encode(cert_data).decode()
        user["client-key-data"] = base64.b64encode(key_data).decode()
    ctx = {"cluster": "standin", "user": "tester"}
    if namespace:
        ctx["namespace"] = namespace
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "standin",
           "clusters": [{"name": "standin", "cluster": cluster}],
           "users": [{"name": "tester", "user": user}],
           "contexts": [{"name": "standin", "context": ctx}]}
    return json.dumps(cfg, indent=1)  # JSON is YAML


class KubeAPI:
    def __init__(self, host="127.0.0.1", port=0, directory=None, token="test-token",
                 disabled=(), bookmark_interval=1.0, watch_timeout=None):
        self.host = host
        self.port = port
        self.dir = directory
        self.tokens = {token: "tester"}
        self.forbidden_tokens = set()
        self.disabled = set(disabled)  # plurals (or "group/plural") not served
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.store = Store()
        self.requests = []  # (method, path, status, user agent, user, time.monotonic())
        self.req_lock = threading.Lock()
        self.conn_lock = threading.Lock()
        self.conns = set()
        self.watchers = set()
        self.bookmarks_sent = 0
        self.end_epoch = 0
        self.status_conflicts = 0
        self.put_lag = {}  # plural -> seconds a PUT's answer waits after it is applied
        # plural -> code: a watch of it answers at once with one ERROR event
        # of that code (410: a server that keeps answering Gone).
        self.watch_errors = {}
        # (code, Retry-After or None): every request for a resource is
        # answered so (429 Too Many Requests, 5xx), as an overloaded server.
        self.refuse = None
        # "group/plural" -> fields its CRD version lacks in status.parents[]
        # entries: pruned on write, as a structural schema prunes them
        # (GIE v1.0's InferencePool has no controllerName).
        self.status_prune = {}
        self.page_size = 0  # 0: pages as large as the client's limit
        # Every continue token answered 410 Expired, as once etcd has
        # compacted past the list's revision.
        self.expire_continue = False
        # RBAC that allows some verbs and not others: plurals whose watch
        # answers 403 (list allowed), and plurals whose status writes do.
        self.forbid_watch = set()
        self.forbid_status = set()
        self.delay = 0
        self.stopping = False
        self.httpd = None
        self.thread = None
        make_certs(self.dir, host, reuse=True)
        self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_ctx.load_cert_chain(os.path.join(self.dir, "server.crt"),
                                     os.path.join(self.dir, "server.key"))
        self.ssl_ctx.verify_mode = ssl.CERT_OPTIONAL
        self.ssl_ctx.load_verify_locations(os.path.join(self.dir, "ca.crt"))
        self.resources = [Resource(*r) for r in RESOURCES]
        for n in ("default", "kube-system", "kube-public"):
            self.create(self.resource("", "v1", "namespaces"), None,
                        {"metadata": {"name": n}})

    # ---- life ----

    def start(self):
        self.stopping = False
        self.httpd = Server((self.host, self.port), Handler)
        self.httpd.api = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stops listening and cuts every connection, watches included, as
        a crashed API server would; the objects stay (they live in etcd)."""
        if not self.httpd:
            return
        self.stopping = True
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.conn_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.store.lock:
            self.store.lock.notify_all()
        self.httpd = None

    @property
    def hostport(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def url(self):
        return "https://%s" % self.hostport

    def kubeconfig(self, path, token="test-token", **kw):
        kw.setdefault("ca_file", os.path.join(self.dir, "ca.crt"))
        if kw.get("ca_data"):
            kw["ca_file"] = None
        with open(path, "w") as f:
            f.write(kubeconfig_text(self.url, token=token, **kw))
        return path

    def note(self, handler, code):
        with self.req_lock:
            self.requests.append((handler.command, handler.path, code,
                                  handler.headers.get("User-Agent", ""),
                                  getattr(handler, "user", None), time.monotonic()))

    def requests_by(self, agent="infergate"):
        with self.req_lock:
            return [r for r in self.requests if r[3].startswith(agent)]

    def compact(self):
        """Forgets the history: watches in progress end with 410 Gone and
        any watch from an older resourceVersion gets 410 too."""
        with self.store.lock:
            self.store.min_rv = self.store.rv + 1
            self.store.events = []
            self.store.epoch += 1
            self.store.lock.notify_all()

    def end_watches(self):
        """Ends every watch cleanly, as the server's watch timeout does."""
        with self.store.lock:
            self.end_epoch += 1
            self.store.lock.notify_all()

    # ---- discovery ----

    def served(self, res):
        return res.plural not in self.disabled and \
            "%s/%s" % (res.group, res.plural) not in self.disabled

    def resource(self, group, version, plural):
        for r in self.resources:
            if (r.group, r.version, r.plural) == (group, version, plural) and self.served(r):
                return r
        return None

    def version_served(self, group, version):
        return any(r.group == group and r.version == version and self.served(r)
                   for r in self.resources)

    def group_list(self):
        groups = {}
        for r in self.resources:
            if r.group and self.served(r):
                groups.setdefault(r.group, [])
                if r.version not in groups[r.group]:
                    groups[r.group].append(r.version)
        out = []
        for g, versions in groups.items():
            vs = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in versions]
            out.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}

    def resource_list(self, group, version):
        res = []
        for r in self.resources:
            if r.group == group and r.version == version and self.served(r):
                res += r.discovery()
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": "%s/%s" % (group, version) if group else version,
                "resources": res}

    # OpenAPI v3: only what kubectl reads to learn that the server
    # validates fields itself (a fieldValidation parameter on PATCH), so
    # that it sends fieldValidation=Strict instead of validating with
    # schemas of its own.
    def openapi_root(self):
        paths = {}
        for r in self.resources:
            if self.served(r):
                gv = "apis/%s/%s" % (r.group, r.version) if r.group else "api/v1"
                paths[gv] = {"serverRelativeURL": "/openapi/v3/%s?hash=standin" % gv}
        return {"paths": paths}

    def openapi_gv(self, gv):
        parts = gv.split("/")
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        paths = {}
        for r in self.resources:
            if (r.group, r.version) != (group, version) or not self.served(r):
                continue
            prefix = "/%s" % gv + ("/namespaces/{namespace}" if r.namespaced else "")
            gvk = {"group": r.group, "version": r.version, "kind": r.kind}
            op = {"x-kubernetes-group-version-kind": gvk, "responses": {},
                  "parameters": [{"name": "fieldValidation", "in": "query",
                                  "schema": {"type": "string"}},
                                 {"name": "dryRun", "in": "query",
                                  "schema": {"type": "string"}}]}
            paths["%s/%s/{name}" % (prefix, r.plural)] = {"patch": op}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
                "paths": paths, "components": {"schemas": {}}}

    def table(self, res, items, rv):
        rows = [{"cells": [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")],
                 "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                            "metadata": o["metadata"]}} for o in items]
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(rv)},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name", "description": "",
                     "priority": 0},
                    {"name": "Created At", "type": "date", "format": "", "description": "",
                     "priority": 0}],
                "rows": rows}

    # ---- objects ----

    def key(self, res, ns, name):
        return (res.group, res.plural, ns if res.namespaced else "", name)

    def not_found(self, res, name):
        return ApiError(404, "NotFound", '%s "%s" not found' % (
            "%s.%s" % (res.plural, res.group) if res.group else res.plural, name))

    def list(self, res, ns, query):
        lsel = parse_label_selector(query.get("labelSelector", ""))
        fsel = parse_label_selector(query.get("fieldSelector", ""))
        with self.store.lock:
            items = [copy.deepcopy(o) for k, o in sorted(self.store.objects.items())
                     if k[0] == res.group and k[1] == res.plural and
                     (ns is None or k[2] == ns) and
                     labels_match(lsel, o["metadata"].get("labels") or {}) and
                     fields_match(fsel, o)]
            rv = self.store.rv
            # Pages: at most `limit` items (and at most page_size, as a
            # server may return fewer than asked); the continue token says
            # where the next page starts and at which version the list was
            # begun (410 once the history is compacted past it).
            start = 0
            if query.get("continue"):
                try:
                    tok = json.loads(base64.b64decode(query["continue"]))
                    rv, start = int(tok["rv"]), int(tok["off"])
                except (ValueError, KeyError, TypeError):
                    raise ApiError(400, "BadRequest", "invalid continue token")
                if rv < self.store.min_rv or self.expire_continue:
                    raise ApiError(410, "Expired", "the continue token has expired")
            size = len(items)
            if query.get("limit"):
                size = int(query["limit"])
            if self.page_size and query.get("limit"):
                # (a list without a limit is never split in pages)
                size = min(size, self.page_size)
            page = items[start:start + size]
            cont = None
            if start + size < len(items):
                cont = base64.b64encode(json.dumps(
                    {"rv": rv, "off": start + size}).encode()).decode()
            return page, rv, cont

    def get(self, res, ns, name, sub=None):
        with self.store.lock:
            o = self.store.objects.get(self.key(res, ns, name))
            if o is None:
                raise self.not_found(res, name)
            return copy.deepcopy(o)

    def check_ns(self, res, ns):
        if res.namespaced and self.store.objects.get(("", "namespaces", "", ns)) is None:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns)

    def create(self, res, ns, body):
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        md = body.setdefault("metadata", {})
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(
                random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        name = md.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if res.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise ApiError(400, "BadRequest",
                               "the namespace of the object does not match the request")
            ns = ns or md.get("namespace") or "default"
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        body["apiVersion"] = res.api_version
        body["kind"] = res.kind
        with self.store.lock:
            if res.plural != "namespaces" and self.httpd is not None:
                self.check_ns(res, ns)
            k = self.key(res, ns, name)
            if k in self.store.objects:
                raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (
                    res.plural, name))
            if res.has_status:
                body.pop("status", None)
                if res.kind == "Pod":
                    body["status"] = {"phase": "Pending"}
                if res.kind == "Namespace":
                    body["status"] = {"phase": "Active"}
            if res.kind == "Namespace":
                md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            md["generation"] = 1
            md["resourceVersion"] = str(self.store.next_rv())
            md.pop("deletionTimestamp", None)
            self.store.objects[k] = body
            self.store.record(res, "ADDED", body)
            return copy.deepcopy(body)

    def write(self, res, ns, name, sub, new, old):
        """Stores `new` as the next version of `old` with the subresource
        rules, metadata.generation and the concurrency check."""
        want_rv = (new.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           'Operation cannot be fulfilled on %s "%s": the object has been '
                           'modified; please apply your changes to the latest version and '
                           'try again' % (res.plural, name))
        if sub == "status":
            out = copy.deepcopy(old)
            if "status" in new:
                out["status"] = copy.deepcopy(new["status"])
                # A field named "parentRef.group" is pruned inside the
                # parentRef (an ObjectReference has no group).
                for f in self.status_prune.get("%s/%s" % (res.group, res.plural), ()):
                    st = out["status"] or {}
                    for e in (st.get("parents") or []) + (st.get("parent") or []):
                        head, _, sub_f = f.partition(".")
                        if sub_f:
                            (e.get(head) or {}).pop(sub_f, None)
                        else:
                            e.pop(f, None)
            else:
                out.pop("status", None)
        else:
            out = copy.deepcopy(new)
            out["apiVersion"], out["kind"] = res.api_version, res.kind
            md = out.setdefault("metadata", {})
            for f in ("uid", "creationTimestamp", "name", "namespace", "generation"):
                if f in old["metadata"]:
                    md[f] = old["metadata"][f]
                else:
                    md.pop(f, None)
            if res.has_status:
                if "status" in old:
                    out["status"] = old["status"]
                else:
                    out.pop("status", None)
            spec_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
            spec_new = {k: v for k, v in out.items() if k not in ("metadata", "status")}
            if spec_old != spec_new:
                md["generation"] = old["metadata"].get("generation", 1) + 1
        if out == old:
            return copy.deepcopy(old)  # no change: no new version, no event
        out["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.objects[self.key(res, ns, name)] = out
        self.store.record(res, "MODIFIED", out)
        return copy.deepcopy(out)

    def update(self, res, ns, name, sub, body):
        if sub == "status" and res.plural in self.forbid_status:
            raise ApiError(403, "Forbidden", 'User "infergate" cannot update resource '
                           '"%s/status" named "%s"' % (res.plural, name))
        if sub == "status" and self.status_conflicts > 0:
            # Another writer got there first (for tests of conflict retry).
            self.status_conflicts -= 1
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the '
                           'object has been modified' % (res.plural, name))
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        if (body.get("metadata") or {}).get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match")
        with self.store.lock:
            old = self.store.objects.get(self.key(res, ns, name))
            if old is None:
                raise self.not_found(res, name)
            return self.write(res, ns, name, sub, body, old)

    def patch(self, res, ns, name, sub, ctype, raw):
        try:
            p = json.loads(raw or b"null")
        except ValueError:
            raise ApiError(400, "BadRequest", "the patch is not JSON")
        with self.store.lock:
            old = self.store.objects.get(self.key(res, ns, name))
            if old is None:
                raise self.not_found(res, name)
            if ctype == "application/merge-patch+json":
                new = merge_patch(old, p)
            elif ctype == "application/json-patch+json":
                new = json_patch(old, p)
            elif ctype == "application/strategic-merge-patch+json":
                if res.group not in ("", "discovery.k8s.io", "coordination.k8s.io"):
                    raise ApiError(415, "UnsupportedMediaType",
                                   "strategic merge patch is not supported for %s" % res.kind)
                new = strategic_merge(old, p)
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format")
            if isinstance(p, dict) and (p.get("metadata") or {}).get("resourceVersion"):
                pass  # write() checks it
            else:
                new.setdefault("metadata", {})["resourceVersion"] = \
                    old["metadata"]["resourceVersion"]
            return self.write(res, ns, name, sub, new, old)

    def delete(self, res, ns, name):
        with self.store.lock:
            k = self.key(res, ns, name)
            old = self.store.objects.pop(k, None)
            if old is None:
                raise self.not_found(res, name)
            out = copy.deepcopy(old)
            out["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.record(res, "DELETED", out)
            return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--dir", required=True, help="where ca.crt and the kubeconfig go")
    ap.add_argument("--token", default="test-token")
    args = ap.parse_args()
    api = KubeAPI(args.host, args.port, args.dir, token=args.token).start()
    path = api.kubeconfig(os.path.join(args.dir, "kubeconfig"), token=args.token)
    print("serving %s; kubeconfig: %s" % (api.url, path), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
