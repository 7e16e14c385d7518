"""The gateway following a pool's external endpoint picker over ext_proc
(issue 11, point 3): the pool's extensionRef / endpointPickerRef names a
Service of the manifests, and the gateway asks the picker there for every
request, as Envoy would. Pickers: `infergate epp` itself (each tests the
other), and a small grpcio test picker that honours the
test-epp-endpoint-selection header and reports the served endpoint in
x-conformance-test-served-endpoint, as GIE's conformance picker does; and
the same test picker made to hang, refuse, or answer 429, for the failure
modes (FailOpen / FailClose)."""
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from concurrent import futures

import pytest

grpc = pytest.importorskip("grpc")
h2 = pytest.importorskip("h2")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

import xproto  # noqa: E402
from conftest import free_port, unique_loopback, wait_http, wait_port  # noqa: E402
from fakepod import FakePod  # noqa: E402
from test_gateway import (GATEWAY, LORA, POD, SAN_ERRORS, call, model_yaml,  # noqa: E402
                          post_json, raw_exchange, seed_body, write)

pb = xproto.ext_proc_pb2

ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: llm-route
spec:
  parentRefs:
  - name: inference-gateway
  rules:
  - backendRefs:
    - group: inference.networking.x-k8s.io
      kind: InferencePool
      name: qwen-pool
"""

POOL = """apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: qwen-pool
spec:
  targetPortNumber: {target_port}
  selector:
    app: qwen-pool
  extensionRef:
    name: picker
    portNumber: {picker_port}
    failureMode: {failure_mode}
"""

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: picker
spec:
  clusterIP: {ip}
  selector:
    app: picker
  ports:
  - name: grpc
    port: {port}
{app_protocol}"""

SERVED = "x-conformance-test-served-endpoint"


# Added to the prompt by the "grow" picker: more than the room the gateway
# makes for the picker's body beyond the client's (4 KiB).
GROW = " and more" * 1200


def grown(body):
    b = json.loads(body)
    b["prompt"] += GROW
    return json.dumps(b).encode()


def long_prompt_body(model="tweet-summary", words=12000):
    """A completions body of about 80 KB: more than one 64 KiB chunk to the
    picker, more than one 62000-byte chunk back."""
    prompt = " ".join("w%d" % (i * 7919 % 100000) for i in range(words))
    return {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0}


class FakePicker:
    """A minimal ext_proc picker (grpcio): it picks the endpoints named in
    test-epp-endpoint-selection (else the first of `endpoints`), sends the
    body back unchanged, on the response headers sets SERVED from the
    served-endpoint metadata, and echoes the response body chunk by chunk
    (FULL_DUPLEX_STREAMED, as GIE's picker does for an event stream). mode
    "hang" never answers, "close" ends the stream at once, "shed" answers
    429 with headers of its own, "grow" sends back the body with GROW added
    to its prompt, in chunks of 3000 bytes, "rename" gathers the response
    body and sends it back whole with its model renamed (as GIE turns a
    rewritten model back), "resp-imm" answers the response headers with an
    immediate 403. "body-empty", "body-plain" and "body-clear" answer the
    request body with an empty BodyResponse, a plain body mutation and
    clear_body (the last two spurious in FULL_DUPLEX_STREAMED);
    "body-mixed" sends a streamed_response piece before the empty answer,
    "body-extra" the empty answer twice before the headers answer.
    `pick`, when set, is
    the header's value in place of the selection; `mutation` (a list of
    (name, raw_value, value)) and `remove` are more of the headers
    answer's header mutation."""

    def __init__(self, host, port, endpoints, mode="select", tls=None):
        self.host, self.port, self.endpoints, self.mode = host, port, endpoints, mode
        self.seen = []  # request headers of each stream, as dicts
        self.served = []
        self.resp_headers = []  # response header names of each stream
        self.resp_bodies = []   # the response body each stream saw
        self.pick, self.mutation, self.remove = None, [], []
        self.stop_evt = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        handler = grpc.method_handlers_generic_handler(
            "envoy.service.ext_proc.v3.ExternalProcessor",
            {"Process": grpc.stream_stream_rpc_method_handler(
                self.process, request_deserializer=pb.ProcessingRequest.FromString,
                response_serializer=lambda m: m.SerializeToString())})
        self.server.add_generic_rpc_handlers((handler,))
        addr = "%s:%d" % (host, port)
        if tls:
            self.server.add_secure_port(addr, grpc.ssl_server_credentials([tls]))
        else:
            self.server.add_insecure_port(addr)
        self.server.start()

    def stop(self):
        self.stop_evt.set()
        self.server.stop(0)

    def answer_headers(self, hdrs):
        sel = hdrs.get("test-epp-endpoint-selection")
        pick = []
        for item in (sel.split(",") if sel else [self.endpoints[0]]):
            item = item.strip()
            pick += [e for e in self.endpoints if e == item or e.split(":")[0] == item]
        r = pb.ProcessingResponse()
        common = r.request_headers.response
        h = common.header_mutation.set_headers.add()
        h.header.key = "x-gateway-destination-endpoint"
        h.header.raw_value = (",".join(pick) if self.pick is None else self.pick).encode()
        h = common.header_mutation.set_headers.add()
        h.header.key = "x-picked-by"
        h.header.raw_value = b"test-picker"
        for key, raw, value in self.mutation:
            h = common.header_mutation.set_headers.add()
            h.header.key = key
            h.header.raw_value = raw
            h.header.value = value
        common.header_mutation.remove_headers.extend(self.remove)
        common.clear_route_cache = True
        return r

    def process(self, requests, context):
        hdrs, body = {}, b""
        for req in requests:
            kind = req.WhichOneof("request")
            if self.mode == "hang":
                self.stop_evt.wait(30)
                return
            if self.mode == "close":
                return
            if kind == "request_headers":
                for h in req.request_headers.headers.headers:
                    hdrs[h.key] = (h.raw_value or h.value.encode()).decode()
                self.seen.append(dict(hdrs))
                if self.mode == "shed":
                    r = pb.ProcessingResponse()
                    r.immediate_response.status.code = 429
                    r.immediate_response.body = b"shed by the test picker"
                    for k, v in (("x-shed-by", b"test-picker"),
                                 ("content-type", b"application/json"),
                                 ("content-length", b"999")):
                        h = r.immediate_response.headers.set_headers.add()
                        h.header.key = k
                        h.header.raw_value = v
                    yield r
                    return
                if req.request_headers.end_of_stream:
                    yield self.answer_headers(hdrs)
            elif kind == "request_body":
                body += req.request_body.body
                if req.request_body.end_of_stream and self.mode == "grow":
                    yield self.answer_headers(hdrs)
                    out = grown(body)
                    for i in range(0, len(out), 3000):
                        r = pb.ProcessingResponse()
                        sr = r.request_body.response.body_mutation.streamed_response
                        sr.body = out[i:i + 3000]
                        sr.end_of_stream = i + 3000 >= len(out)
                        yield r
                elif req.request_body.end_of_stream and self.mode.startswith("body-"):
                    if self.mode != "body-extra":
                        yield self.answer_headers(hdrs)
                    r = pb.ProcessingResponse()
                    if self.mode in ("body-empty", "body-mixed", "body-extra"):
                        r.request_body.SetInParent()
                    elif self.mode == "body-plain":
                        r.request_body.response.body_mutation.body = body
                    else:
                        r.request_body.response.body_mutation.clear_body = True
                    if self.mode == "body-mixed":
                        # One "unchanged" answer with the whole body streamed
                        # back, before it: two ways at once.
                        m = pb.ProcessingResponse()
                        sr = m.request_body.response.body_mutation.streamed_response
                        sr.body = body
                        yield m
                    yield r
                    if self.mode == "body-extra":
                        # A second "unchanged" answer for the one message,
                        # before the headers answer.
                        yield r
                        yield self.answer_headers(hdrs)
                elif req.request_body.end_of_stream:
                    yield self.answer_headers(hdrs)
                    r = pb.ProcessingResponse()
                    sr = r.request_body.response.body_mutation.streamed_response
                    sr.body = body
                    sr.end_of_stream = True
                    yield r
            elif kind == "response_headers":
                lb = req.metadata_context.filter_metadata["envoy.lb"]
                served = lb.fields["x-gateway-destination-endpoint-served"].string_value
                self.served.append(served)
                self.resp_headers.append([h.key for h in req.response_headers.headers.headers])
                self.resp_bodies.append(b"")
                if self.mode == "resp-imm":
                    r = pb.ProcessingResponse()
                    r.immediate_response.status.code = 403
                    r.immediate_response.body = b"refused by the test picker"
                    h = r.immediate_response.headers.set_headers.add()
                    h.header.key = "x-refused-by"
                    h.header.raw_value = b"test-picker"
                    yield r
                    return
                r = pb.ProcessingResponse()
                # A name set twice in one mutation (GIE's test picker sets
                # its header, then copies back the pod's headers, which may
                # hold it too): each set overwrites, the last one goes.
                h = r.response_headers.response.header_mutation.set_headers.add()
                h.header.key = SERVED
                h.header.raw_value = b"overwritten"
                h = r.response_headers.response.header_mutation.set_headers.add()
                h.header.key = SERVED
                h.header.raw_value = served.encode()
                # GIE v1.5 copies the response's headers back: the framing
                # ones must not reach the client.
                h = r.response_headers.response.header_mutation.set_headers.add()
                h.header.key = "content-length"
                h.header.raw_value = b"1"
                yield r
            elif kind == "response_body":
                self.resp_bodies[-1] += req.response_body.body
                eos = req.response_body.end_of_stream
                if self.mode == "rename" and not eos:
                    continue
                out = req.response_body.body
                if self.mode == "rename":
                    out = self.resp_bodies[-1].replace(b'"tweet-summary-1"', b'"renamed"')
                r = pb.ProcessingResponse()
                sr = r.response_body.response.body_mutation.streamed_response
                sr.body = out
                sr.end_of_stream = eos
                yield r


class LwPicker:
    """A picker that answers as GIE v1.6's conformance picker (lwepp,
    pkg/lwepp/handlers) does. Candidates: the endpoints whose IP
    test-epp-endpoint-selection names (comma-separated, `ip` or
    `ip:port`), else those the subset hint names (a list or a
    comma-separated string), else all; the pick goes round robin over
    them. A request with a body gets its headers answer only once the body
    has ended; every request body message, before that answer or after
    it, gets a BodyResponse with no body mutation, and so does every
    response body message. The response headers answer sets SERVED from
    the served-endpoint metadata (or lwepp's words for what is missing),
    x-went-into-resp-headers, and every response header again.
    `bare` leaves the CommonResponse out of the body answers."""

    def __init__(self, host, port, endpoints, bare=False):
        self.endpoints, self.bare = endpoints, bare
        self.rr = 0
        self.lock = threading.Lock()
        self.body_answers = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        handler = grpc.method_handlers_generic_handler(
            "envoy.service.ext_proc.v3.ExternalProcessor",
            {"Process": grpc.stream_stream_rpc_method_handler(
                self.process, request_deserializer=pb.ProcessingRequest.FromString,
                response_serializer=lambda m: m.SerializeToString())})
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("%s:%d" % (host, port))
        self.server.start()

    def stop(self):
        self.server.stop(0)

    def candidates(self, hdrs, req):
        names = []
        sel = hdrs.get("test-epp-endpoint-selection", "")
        if sel:
            names = sel.split(",")
        else:
            st = req.metadata_context.filter_metadata.get("envoy.lb.subset_hint")
            if st is not None and "x-gateway-destination-endpoint-subset" in st.fields:
                v = st.fields["x-gateway-destination-endpoint-subset"]
                items = ([v.string_value] if v.WhichOneof("kind") == "string_value"
                         else [x.string_value for x in v.list_value.values])
                names = [n for i in items for n in i.split(",")]
                if not names:
                    return []
        if not names:
            return list(self.endpoints)
        ips = {n.strip().rsplit(":", 1)[0] if n.count(":") == 1 else n.strip()
               for n in names}
        return [e for e in self.endpoints if e.rsplit(":", 1)[0] in ips]

    def headers_answer(self, cands):
        with self.lock:
            self.rr += 1
            ep = cands[self.rr % len(cands)]
        r = pb.ProcessingResponse()
        common = r.request_headers.response
        common.clear_route_cache = True
        h = common.header_mutation.set_headers.add()
        h.header.key = "x-gateway-destination-endpoint"
        h.header.raw_value = ep.encode()
        st = r.dynamic_metadata.fields["envoy.lb"].struct_value
        st.fields["x-gateway-destination-endpoint"].string_value = ep
        return r

    def body_answer(self, response):
        r = pb.ProcessingResponse()
        part = r.response_body if response else r.request_body
        if self.bare:
            part.SetInParent()
        else:
            part.response.SetInParent()
        with self.lock:
            self.body_answers += 1
        return r

    def process(self, requests, context):
        hdrs, cands = {}, []
        for req in requests:
            kind = req.WhichOneof("request")
            if kind == "request_headers":
                for h in req.request_headers.headers.headers:
                    hdrs[h.key] = (h.raw_value or h.value.encode()).decode()
                cands = self.candidates(hdrs, req)
                if req.request_headers.end_of_stream:
                    yield self.headers_answer(cands)
            elif kind == "request_body":
                if req.request_body.end_of_stream:
                    yield self.headers_answer(cands)
                yield self.body_answer(False)
            elif kind == "response_headers":
                lb = req.metadata_context.filter_metadata.get("envoy.lb")
                if lb is None:
                    served = "fail: missing envoy lb metadata"
                elif "x-gateway-destination-endpoint-served" not in lb.fields:
                    served = "fail: missing destination endpoint served metadata"
                else:
                    served = lb.fields["x-gateway-destination-endpoint-served"].string_value
                r = pb.ProcessingResponse()
                m = r.response_headers.response.header_mutation
                for k, v in [(SERVED, served.encode()), ("x-went-into-resp-headers", b"true")] + \
                        [(h.key, h.raw_value) for h in req.response_headers.headers.headers]:
                    h = m.set_headers.add()
                    h.header.key = k
                    h.header.raw_value = v
                yield r
            elif kind == "response_body":
                yield self.body_answer(True)


class RawPicker:
    """A picker that misbehaves at the HTTP/2 level (Debian's python3-h2):
    each Process stream gets `answer(conn, stream_id)`'s frames and nothing
    more; the picker never resets a stream after its own END_STREAM, which
    PROTOCOL-HTTP2 asks of servers ("should") but no client may count on."""

    def __init__(self, host, port, answer):
        self.answer = answer
        self.streams = 0
        self.stop_evt = threading.Event()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(16)
        self.ls.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop_evt.is_set():
            try:
                c, _ = self.ls.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()
        self.ls.close()

    def _serve(self, sock):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        conn.initiate_connection()
        sock.settimeout(0.1)
        with sock:
            while not self.stop_evt.is_set():
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        self.streams += 1
                        self.answer(conn, ev.stream_id)
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)

    def stop(self):
        self.stop_evt.set()


def trailers_only(code):
    """A Trailers-Only answer: one HEADERS frame with END_STREAM."""
    def answer(conn, sid):
        conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc"),
                                (b"grpc-status", str(code).encode()),
                                (b"grpc-message", b"picker says no")], end_stream=True)
    return answer


def ok_without_answer(conn, sid):
    """Headers, then trailers with grpc-status 0: the stream over, no answer."""
    conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    conn.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)


class HoleProxy:
    """A TCP proxy in front of a picker; blackhole() makes the connections
    it carries then drop what they get either way, as a peer gone without
    a word does (a stopped pod, a lost node, a dropped NAT entry), while
    new connections go through."""

    def __init__(self, host, port, target):
        self.target = target
        self.holes = set()
        self.pairs = []
        self.stop_evt = threading.Event()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(16)
        self.ls.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop_evt.is_set():
            try:
                c, _ = self.ls.accept()
                u = socket.create_connection(self.target)
            except OSError:
                continue
            self.pairs.append((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()
        self.ls.close()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if a not in self.holes:
                    b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def blackhole(self):
        self.holes.update(x for pair in self.pairs for x in pair)

    def stop(self):
        self.stop_evt.set()
        for pair in self.pairs:
            for x in pair:
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                x.close()


class Setup:
    """Sims, the gateway's manifests with the pool's picker Service, and
    the gateway; the picker is started by the test."""

    def __init__(self, procs, tmp_path, failure_mode="FailClose", h2c=True, gw_args=(),
                 fake_pods=False, route=ROUTE, npods=2):
        self.procs = procs
        self.dir = os.path.join(str(tmp_path), "manifests")
        os.makedirs(self.dir, exist_ok=True)
        self.sim_hosts = [unique_loopback() for _ in range(npods)]
        self.target_port = free_port(self.sim_hosts[0])
        self.sims, self.pods = [], []
        if fake_pods:  # FakePods record what they get; the test stops them
            self.pods = [FakePod(h, self.target_port) for h in self.sim_hosts]
        else:
            self.sims = [procs.start("sim", "--host", h, "--port", self.target_port,
                                     "--enable-lora", "--max-loras", "4", "--lora-modules",
                                     *LORA, name="sim") for h in self.sim_hosts]
        for h, p in zip(self.sim_hosts, self.sims):
            wait_http("http://%s:%d/health" % (h, self.target_port), proc=p)
        self.picker_host = unique_loopback()
        self.picker_port = free_port(self.picker_host)
        self.host = unique_loopback()
        self.port = free_port(self.host)
        self.admin = "%s:%d" % (self.host, free_port(self.host))
        write(os.path.join(self.dir, "gateway.yaml"), GATEWAY.format(port=self.port))
        write(os.path.join(self.dir, "route.yaml"), route)
        write(os.path.join(self.dir, "pool.yaml"), POOL.format(
            target_port=self.target_port, picker_port=self.picker_port,
            failure_mode=failure_mode))
        write(os.path.join(self.dir, "service.yaml"), SERVICE.format(
            ip=self.picker_host, port=self.picker_port,
            app_protocol="    appProtocol: kubernetes.io/h2c\n" if h2c else ""))
        write(os.path.join(self.dir, "model.yaml"), model_yaml())
        write(os.path.join(self.dir, "pods.yaml"), "---\n".join(
            POD.format(i=i, ip=h) for i, h in enumerate(self.sim_hosts)))
        self.gw = procs.start("gateway", "-f", self.dir, "--bind", self.host, "--admin",
                              self.admin, "--workers", "2", *gw_args, name="gateway")
        wait_port(self.host, self.port, proc=self.gw)

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    def endpoint(self, i):
        return "%s:%d" % (self.sim_hosts[i], self.target_port)

    @property
    def endpoints(self):
        return [self.endpoint(i) for i in range(len(self.sim_hosts))]

    def completions_seen(self):
        """Completions the sims ran, from their request_success_total."""
        total = 0
        for h in self.sim_hosts:
            _, _, data = call("http://%s:%d" % (h, self.target_port), "/metrics")
            for line in data.decode().splitlines():
                if line.startswith("vllm:request_success_total"):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def start_epp(self, secure=False, metrics_port=0, extra=()):
        args = ["epp", "-poolName", "qwen-pool", "-f", self.dir, "-grpcPort", self.picker_port,
                "-grpcHealthPort", "0", "-metricsPort", metrics_port, "--bind",
                self.picker_host, "--workers", "1", *extra]
        if not secure:
            args.append("-secureServing=false")
        self.epp = self.procs.start(*args, name="epp")
        wait_port(self.picker_host, self.picker_port, proc=self.epp)
        return self.epp

    def stop(self):
        self.gw.send_signal(signal.SIGTERM)
        rc = self.gw.wait(timeout=15)
        log = self.procs.output(self.gw)
        for s in SAN_ERRORS:
            assert s not in log, log
        assert rc == 0, log
        return log


def test_gateway_follows_infergate_epp(procs, tmp_path):
    """The gateway asks `infergate epp` (h2c): the picker rewrites the
    model and picks a pool endpoint, which serves the request."""
    s = Setup(procs, tmp_path)
    s.start_epp()
    for _ in range(4):
        status, headers, r = post_json(s.base, "/v1/completions", seed_body())
        assert status == 200, r
        assert r["model"] == "tweet-summary-1"
        assert headers["x-gateway-destination-endpoint-served"] in s.endpoints
    log = s.stop()
    assert "its endpoint picker is Service picker" in log


def test_infergate_epp_as_the_conformance_picker(procs, tmp_path):
    """`infergate epp` with GIE v1.5's conformance configuration
    (header-based-testing-filter, destination-endpoint-served-verifier)
    behind the gateway, as GIE's GatewayDestinationEndpointServed test
    runs it: each request lands on the pod test-epp-endpoint-selection
    names, and the client reads that pod's ip:port in
    x-conformance-test-served-endpoint."""
    from test_epp import CONFORMANCE_PICKER
    s = Setup(procs, tmp_path)
    s.start_epp(extra=("--config-text", CONFORMANCE_PICKER))
    for i in (0, 1, 0, 1):
        status, headers, r = post_json(s.base, "/v1/completions", seed_body(),
                                       headers={"test-epp-endpoint-selection": s.sim_hosts[i]})
        assert status == 200, r
        assert headers.get_all(SERVED) == [s.endpoint(i)], headers
    s.stop()


def test_gateway_follows_infergate_epp_long_body(procs, tmp_path):
    """An 80 KB prompt crosses to the picker and back in several chunks
    each way and reaches the pod whole: it counts the same prompt tokens
    as the same body sent to the pod directly."""
    s = Setup(procs, tmp_path)
    s.start_epp()
    body = long_prompt_body()
    status, _, direct = post_json("http://%s:%d" % (s.sim_hosts[0], s.target_port),
                                  "/v1/completions", dict(body, model="tweet-summary-1"))
    assert status == 200, direct
    assert len(json.dumps(body)) > 65536
    for _ in range(3):
        status, _, r = post_json(s.base, "/v1/completions", body)
        assert status == 200, r
        assert r["model"] == "tweet-summary-1"
        assert r["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]
    s.stop()


def test_picker_body_longer_than_the_clients(procs, tmp_path):
    """A picker may send back a longer body than it got, in many chunks:
    the pod gets exactly that body (the gateway's room for it overflows
    into a buffer), for a short and an 80 KB one alike."""
    s = Setup(procs, tmp_path)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints, mode="grow")
    sim = "http://%s:%d" % (s.sim_hosts[0], s.target_port)
    try:
        for body in (seed_body("tweet-summary-1"), long_prompt_body("tweet-summary-1")):
            status, _, direct = post_json(sim, "/v1/completions",
                                          json.loads(grown(json.dumps(body).encode())))
            assert status == 200, direct
            status, _, r = post_json(s.base, "/v1/completions", body)
            assert status == 200, r
            assert r["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]
            assert r["usage"]["prompt_tokens"] > len(GROW.split())
    finally:
        p.stop()
    s.stop()


def test_gateway_follows_infergate_epp_over_tls(procs, tmp_path):
    """Without appProtocol h2c the gateway speaks TLS to the picker, and
    does not verify its self-signed certificate by default."""
    s = Setup(procs, tmp_path, h2c=False)
    s.start_epp(secure=True)
    status, headers, r = post_json(s.base, "/v1/completions", seed_body())
    assert status == 200, r
    assert r["model"] == "tweet-summary-1"
    s.stop()


def test_gateway_follows_the_test_picker(procs, tmp_path):
    """GIE's conformance shape: the picker picks what the request's
    test-epp-endpoint-selection header names; every request lands there,
    the picker's request headers reach the pod, and the picker sees the
    served endpoint and sets its response header."""
    s = Setup(procs, tmp_path)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    try:
        for sel, allowed in ((s.sim_hosts[1], {s.endpoint(1)}),
                             (s.endpoint(0), {s.endpoint(0)}),
                             ("%s,%s" % (s.sim_hosts[0], s.sim_hosts[1]), set(s.endpoints))):
            for _ in range(5):
                status, headers, r = post_json(s.base, "/v1/completions",
                                               seed_body("tweet-summary-1"),
                                               headers={"test-epp-endpoint-selection": sel})
                assert status == 200, r
                served = headers["x-gateway-destination-endpoint-served"]
                assert served in allowed, (sel, served)
                assert headers.get_all(SERVED) == [served]
        # The picker saw the client's headers, pseudo-headers included.
        h = p.seen[0]
        assert h[":method"] == "POST" and h[":path"] == "/v1/completions"
        assert h[":authority"].startswith(s.host)
        assert h["test-epp-endpoint-selection"] == s.sim_hosts[1]
        # The body went through the picker unchanged (no rewrite there).
        assert r["model"] == "tweet-summary-1"
    finally:
        p.stop()
    s.stop()


# GIE v1.6's conformance request (gateway_following_epp_routing.go).
CONFORMANCE_BODY = {"model": "conformance-fake-model",
                    "prompt": "Write as if you were a critic: San Francisco"}
SELECT = "test-epp-endpoint-selection"


@pytest.mark.parametrize("failure_mode", ["FailClose", "FailOpen"])
def test_gateway_follows_lwepp(procs, tmp_path, failure_mode):
    """GIE v1.6's conformance picker answers every body message with a
    BodyResponse that changes nothing, the request's headers only after
    its body (lwepp): the gateway takes those as "unchanged" (it holds the
    body) and follows the pick, in either failure mode (it answered 500,
    or ignored the picker under FailOpen). As GIE's conformance runs it:
    GatewayDestinationEndpointServed (each pod named alone serves, and the
    picker reports the served endpoint the gateway gave it) and
    GatewayFollowingEPPRouting (1, 2 and 3 pods named: 100 requests, 10 at
    a time, all on the pods named, and each of them reached)."""
    s = Setup(procs, tmp_path, failure_mode=failure_mode, fake_pods=True, npods=3)
    p = LwPicker(s.picker_host, s.picker_port, s.endpoints)
    try:
        for i in range(3):
            status, headers, data = call(s.base, "/primary-gateway-test", CONFORMANCE_BODY,
                                         headers={SELECT: s.sim_hosts[i]})
            assert status == 200, data
            assert headers["x-pod"] == s.endpoint(i)
            assert headers.get_all(SERVED) == [s.endpoint(i)], dict(headers)
        got = s.pods[2].completions()[-1]
        assert json.loads(got.body) == CONFORMANCE_BODY
        for named in ([2], [0, 1], [0, 1, 2]):
            allowed = {s.endpoint(i) for i in named}
            value = ",".join(s.sim_hosts[i] for i in named)
            with futures.ThreadPoolExecutor(10) as ex:
                results = list(ex.map(lambda _: call(s.base, "/primary-gateway-test",
                                                     CONFORMANCE_BODY,
                                                     headers={SELECT: value}),
                                      range(100)))
            seen = set()
            for status, headers, data in results:
                assert status == 200, data
                assert headers["x-pod"] in allowed, (value, headers["x-pod"])
                assert headers.get_all(SERVED) == [headers["x-pod"]]
                seen.add(headers["x-pod"])
            assert seen == allowed
        assert p.body_answers >= 2 * 303
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    log = s.stop()
    assert "endpoint picker of pool" not in log, log


@pytest.mark.parametrize("bare", [False, True])
def test_lwepp_long_body_and_event_stream(procs, tmp_path, bare):
    """Unchanged body answers for a body of several messages (answered
    before the headers answer, as lwepp does) and for a response that
    comes in many pieces: the pod gets the client's body byte for byte,
    and the client the pod's event stream whole; with a CommonResponse
    in the answers and without (an empty BodyResponse)."""
    s = Setup(procs, tmp_path, fake_pods=True)
    p = LwPicker(s.picker_host, s.picker_port, s.endpoints, bare=bare)
    try:
        body = json.dumps(long_prompt_body("tweet-summary-1")).encode()
        assert len(body) > 65536
        status, _, data = call(s.base, "/v1/completions", raw=body,
                               headers={SELECT: s.sim_hosts[1]})
        assert status == 200, data
        got = s.pods[1].completions()
        assert len(got) == 1 and got[0].body == body
        for pod in s.pods:
            pod.set("sse", events=30, interval_ms=2)
        status, headers, data = call(s.base, "/v1/completions",
                                     dict(seed_body("tweet-summary-1"), stream=True),
                                     headers={SELECT: s.sim_hosts[0]})
        assert status == 200, data
        assert headers.get_all(SERVED) == [s.endpoint(0)]
        events = [ln for ln in data.decode().splitlines() if ln.startswith("data: ")]
        assert len(events) == 31 and events[-1] == "data: [DONE]", events
        assert all(json.loads(e[6:])["choices"][0]["text"] == " t%d" % i
                   for i, e in enumerate(events[:-1]))
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    log = s.stop()
    assert "endpoint picker of pool" not in log, log


def test_picker_sheds(procs, tmp_path):
    """An immediate_response is the client's answer, with its status, body
    and header changes (its content type too), as Envoy's local reply;
    the framing's own headers are not the picker's to set."""
    s = Setup(procs, tmp_path)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints, mode="shed")
    try:
        status, headers, data = call(s.base, "/v1/completions", seed_body())
        assert status == 429
        assert data == b"shed by the test picker"
        assert headers["x-shed-by"] == "test-picker"
        assert headers["content-type"] == "application/json"
        assert headers["content-length"] == str(len(data))
        assert s.completions_seen() == 0
    finally:
        p.stop()
    s.stop()


@pytest.mark.parametrize("failure_mode", ["FailClose", "FailOpen"])
def test_picker_unreachable(procs, tmp_path, failure_mode):
    """No picker listens: FailClose answers 503 and nothing reaches a pod;
    FailOpen serves with the built-in picker."""
    s = Setup(procs, tmp_path, failure_mode=failure_mode)
    status, headers, data = call(s.base, "/v1/completions", seed_body())
    if failure_mode == "FailClose":
        assert status == 503, data
        assert s.completions_seen() == 0
    else:
        assert status == 200, data
        assert json.loads(data)["model"] == "tweet-summary-1"
    s.stop()


def test_picker_failures_do_not_flood_the_log(procs, tmp_path):
    """A picker that is down fails every request: the gateway says so once
    per worker and reason every few seconds, with the count it left out,
    not a line per request (Envoy's ext_proc filter logs none at its
    default level)."""
    s = Setup(procs, tmp_path, gw_args=("--workers", "1"))
    for _ in range(200):
        status, _, data = call(s.base, "/v1/completions", seed_body())
        assert status == 503, data
    time.sleep(5.5)
    for _ in range(5):
        status, _, data = call(s.base, "/v1/completions", seed_body())
        assert status == 503, data
    log = s.stop()
    lines = [l for l in log.splitlines() if "endpoint picker of pool" in l]
    assert 2 <= len(lines) <= 8, lines
    assert any("more like it not logged" in l for l in lines), lines


@pytest.mark.parametrize("failure_mode", ["FailClose", "FailOpen"])
def test_picker_killed(procs, tmp_path, failure_mode):
    """The picker serves, then dies: later requests follow the failure
    mode."""
    s = Setup(procs, tmp_path, failure_mode=failure_mode)
    epp = s.start_epp()
    status, _, r = post_json(s.base, "/v1/completions", seed_body())
    assert status == 200, r
    epp.send_signal(signal.SIGKILL)
    epp.wait(timeout=10)
    before = s.completions_seen()
    for _ in range(3):
        status, _, data = call(s.base, "/v1/completions", seed_body())
        if failure_mode == "FailClose":
            assert status == 503, data
        else:
            assert status == 200, data
    if failure_mode == "FailClose":
        assert s.completions_seen() == before
    s.stop()


@pytest.mark.parametrize("failure_mode", ["FailClose", "FailOpen"])
def test_picker_hangs(procs, tmp_path, failure_mode):
    """A picker that never answers: after --epp-timeout, 504 (FailClose)
    or the built-in picker (FailOpen)."""
    s = Setup(procs, tmp_path, failure_mode=failure_mode, gw_args=("--epp-timeout", "300ms"))
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints, mode="hang")
    try:
        t0 = time.time()
        status, _, data = call(s.base, "/v1/completions", seed_body())
        assert time.time() - t0 < 5
        assert status == (504 if failure_mode == "FailClose" else 200), data
    finally:
        p.stop()
    s.stop()


def test_picker_ends_stream_without_answer(procs, tmp_path):
    s = Setup(procs, tmp_path)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints, mode="close")
    try:
        status, _, data = call(s.base, "/v1/completions", seed_body())
        assert status == 500, data
        assert s.completions_seen() == 0
    finally:
        p.stop()
    s.stop()


@pytest.mark.parametrize("failure_mode", ["FailClose", "FailOpen"])
def test_picker_ends_its_side_and_keeps_the_stream(procs, tmp_path, failure_mode):
    """A picker that ends its side of the stream (Trailers-Only, or
    trailers with grpc-status 0 before any answer) without resetting ours
    has ended the call, as for any gRPC client: its status counts at once,
    not after --epp-timeout. UNAVAILABLE is 503, DEADLINE_EXCEEDED 504,
    another status or OK without an answer 500 (FailClose, nothing reaches
    a pod); FailOpen serves with the built-in picker."""
    s = Setup(procs, tmp_path, failure_mode=failure_mode, gw_args=("--epp-timeout", "5s"))
    cases = [(trailers_only(14), 503), (trailers_only(4), 504), (trailers_only(13), 500),
             (trailers_only(7), 500), (ok_without_answer, 500)]
    for answer, want in cases:
        p = RawPicker(s.picker_host, s.picker_port, answer)
        try:
            t0 = time.time()
            status, _, data = call(s.base, "/v1/completions", seed_body(), timeout=30)
            took = time.time() - t0
        finally:
            p.stop()
        assert p.streams == 1
        assert took < 2, (want, took)
        if failure_mode == "FailClose":
            assert status == want, data
        else:
            assert status == 200, data
            assert json.loads(data)["model"] == "tweet-summary-1"
        time.sleep(0.2)  # the next picker takes the port
    if failure_mode == "FailClose":
        assert s.completions_seen() == 0
    s.stop()


def test_draining_picker_new_requests_take_a_new_connection(procs, tmp_path):
    """A picker that drains (SIGTERM: GOAWAY, its streams in flight
    finish) hands new streams to a new connection, as Envoy's connection
    pool does: the picker started in its place answers them at once,
    while an event stream on the old connection goes on to its end. They
    used to wait behind the old connection's longest stream: 504 after
    --epp-timeout."""
    s = Setup(procs, tmp_path, gw_args=("--workers", "1", "--epp-timeout", "4s"))
    old = s.start_epp(extra=("--drain-timeout", "30s"))
    status, _, data = call(s.base, "/v1/completions", seed_body())
    assert status == 200, data
    out = {}

    def long_stream():
        body = dict(seed_body(), stream=True, max_tokens=2500)
        out["r"] = call(s.base, "/v1/completions", body, timeout=30)

    t = threading.Thread(target=long_stream)
    t.start()
    time.sleep(1)
    old.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    s.start_epp()
    for _ in range(3):
        t0 = time.time()
        status, _, data = call(s.base, "/v1/completions", seed_body(), timeout=30)
        assert status == 200, data
        assert time.time() - t0 < 2
    t.join(timeout=30)
    status, _, data = out["r"]
    assert status == 200
    assert data.rstrip().endswith(b"data: [DONE]"), data[-200:]
    assert old.wait(timeout=10) == 0
    s.stop()


def test_silent_picker_connection_is_probed_and_replaced(procs, tmp_path):
    """A picker connection that goes silent without closing (its peer gone
    without a word) would time every request out until the kernel gives
    up on it, many minutes later. A call that timed out with nothing heard
    since it began sends a PING; unanswered within a second the connection
    is closed, and the next request connects again and is served."""
    s = Setup(procs, tmp_path, gw_args=("--workers", "1", "--epp-timeout", "500ms"))
    front_host, front_port = s.picker_host, s.picker_port
    s.picker_host = unique_loopback()
    s.picker_port = free_port(s.picker_host)
    s.start_epp()
    proxy = HoleProxy(front_host, front_port, (s.picker_host, s.picker_port))
    try:
        status, _, data = call(s.base, "/v1/completions", seed_body())
        assert status == 200, data
        proxy.blackhole()
        status, _, data = call(s.base, "/v1/completions", seed_body())
        assert status == 504, data
        t0 = time.time()
        while True:
            status, _, data = call(s.base, "/v1/completions", seed_body())
            if status == 200:
                break
            assert status in (503, 504), data
            assert time.time() - t0 < 5, "the silent connection was kept"
        assert len(proxy.pairs) == 2
    finally:
        proxy.stop()
    assert "no answer to a PING" in s.stop()


def test_picker_verified_tls(procs, tmp_path):
    """--epp-tls-verify with --epp-ca-file: a picker whose certificate
    the CA signed is followed; without the CA the handshake fails and
    FailClose answers 503."""
    d = str(tmp_path)
    host = unique_loopback()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", os.path.join(d, "k.pem"), "-out", os.path.join(d, "c.pem"),
                    "-subj", "/CN=%s" % host, "-addext", "subjectAltName=IP:%s" % host],
                   check=True, capture_output=True)
    key = open(os.path.join(d, "k.pem"), "rb").read()
    cert = open(os.path.join(d, "c.pem"), "rb").read()
    for ca, want in ((os.path.join(d, "c.pem"), 200), ("/dev/null", 503)):
        sub = os.path.join(d, "run-%d" % want)
        os.makedirs(sub)
        s = Setup(procs, sub, h2c=False,
                  gw_args=("--epp-tls-verify", "--epp-ca-file", ca))
        p = FakePicker(host, s.picker_port, s.endpoints, tls=(key, cert))
        # The Service must point at the picker's certified address.
        write(os.path.join(s.dir, "service.yaml"), SERVICE.format(
            ip=host, port=s.picker_port, app_protocol=""))
        s.gw.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        try:
            status, _, data = call(s.base, "/v1/completions", seed_body("tweet-summary-1"))
            assert status == want, data
        finally:
            p.stop()
        s.stop()


# ---- the response path through the picker (FULL_DUPLEX_STREAMED) ----

def test_response_header_names_are_lower_case(procs, tmp_path):
    """ext_proc header names are lower case (spec/extproc.md §3.1), the
    response's as the request's: a picker looks up content-type (GIE's
    streaming check) by that name."""
    s = Setup(procs, tmp_path)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    try:
        status, _, r = post_json(s.base, "/v1/completions", seed_body("tweet-summary-1"))
        assert status == 200, r
        names = p.resp_headers[0]
        assert ":status" in names and "content-type" in names, names
        assert all(n == n.lower() for n in names), names
    finally:
        p.stop()
    s.stop()


def test_picker_answers_the_response_body(procs, tmp_path):
    """The response body goes to the picker (FULL_DUPLEX_STREAMED, as GIE's
    Envoy configuration sends it) and the client gets what the picker sends
    back: here the whole JSON, gathered and changed, as GIE turns a
    rewritten model back; without Content-Length, which Envoy drops in this
    mode (§4.4), whatever the picker's header changes say. An event stream
    is echoed piece by piece and reaches the client whole."""
    s = Setup(procs, tmp_path)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints, mode="rename")
    try:
        status, headers, r = post_json(s.base, "/v1/completions", seed_body("tweet-summary-1"))
        assert status == 200, r
        assert r["model"] == "renamed"
        assert r["usage"]["completion_tokens"] == 100
        assert headers.get("content-length") is None, dict(headers)
        assert headers[SERVED] == headers["x-gateway-destination-endpoint-served"]
        seen = json.loads(p.resp_bodies[0])
        assert seen["model"] == "tweet-summary-1" and seen["usage"]["completion_tokens"] == 100
    finally:
        p.stop()
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    try:
        status, _, data = call(s.base, "/v1/completions",
                               dict(seed_body("tweet-summary-1"), stream=True, max_tokens=20))
        assert status == 200, data
        events = [ln for ln in data.decode().splitlines() if ln.startswith("data: ")]
        assert events[-1] == "data: [DONE]" and len(events) >= 21, events
        assert p.resp_bodies[0] == data
    finally:
        p.stop()
    s.stop()


def test_infergate_epp_reads_the_usage(procs, tmp_path):
    """Followed by the gateway, `infergate epp` now sees the response body:
    the request's output tokens are in its metrics."""
    s = Setup(procs, tmp_path)
    metrics = free_port(s.picker_host)
    s.start_epp(metrics_port=metrics)
    wait_http("http://%s:%d/healthz" % (s.picker_host, metrics), proc=s.epp)
    status, _, r = post_json(s.base, "/v1/completions", seed_body())
    assert status == 200, r
    assert r["model"] == "tweet-summary-1"
    deadline = time.time() + 5
    while True:
        _, _, data = call("http://%s:%d" % (s.picker_host, metrics), "/metrics")
        out = [ln for ln in data.decode().splitlines()
               if ln.startswith("inference_model_output_tokens_sum{")
               and 'model_name="tweet-summary"' in ln]
        if out and float(out[0].rsplit(" ", 1)[1]) == 100:
            break
        assert time.time() < deadline, out
        time.sleep(0.05)
    s.stop()


def test_picker_immediate_response_on_the_response(procs, tmp_path):
    """An immediate_response answering the response headers replaces the
    response, which has not gone to the client yet (§4.6): its status,
    body and headers, at once, not after --epp-timeout."""
    s = Setup(procs, tmp_path)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints, mode="resp-imm")
    try:
        t0 = time.time()
        status, headers, data = call(s.base, "/v1/completions", seed_body("tweet-summary-1"))
        assert time.time() - t0 < 5
        assert status == 403, data
        assert data == b"refused by the test picker"
        assert headers["x-refused-by"] == "test-picker"
        assert headers.get("x-gateway-destination-endpoint-served") is None
    finally:
        p.stop()
    s.stop()


@pytest.mark.parametrize("failure_mode", ["FailClose", "FailOpen"])
def test_spurious_request_body_answer(procs, tmp_path, failure_mode):
    """In FULL_DUPLEX_STREAMED a request-body answer may not replace or
    clear the body outside streamed_response (spec/extproc.md §5.3): a
    plain body mutation or clear_body is refused at once: 500 (FailClose)
    or the built-in picker (FailOpen), not a wait for --epp-timeout (a
    minute here: the client would give up first). So are answers that mix
    streamed pieces with "unchanged" ones, and more unchanged answers than
    body messages. An empty BodyResponse alone is "unchanged" (lwepp's
    answer, test_gateway_follows_lwepp)."""
    s = Setup(procs, tmp_path, failure_mode=failure_mode, gw_args=("--epp-timeout", "60s"))
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    try:
        for mode in ("body-plain", "body-clear", "body-mixed", "body-extra"):
            p.mode = mode
            status, _, data = call(s.base, "/v1/completions", seed_body(), timeout=30)
            if failure_mode == "FailClose":
                assert status == 500, (mode, data)
            else:
                assert status == 200, (mode, data)
                assert json.loads(data)["model"] == "tweet-summary-1"
        if failure_mode == "FailClose":
            assert s.completions_seen() == 0
        p.mode = "body-empty"
        status, _, data = call(s.base, "/v1/completions", seed_body("tweet-summary-1"))
        assert status == 200, data
        assert json.loads(data)["model"] == "tweet-summary-1"
    finally:
        p.stop()
    log = s.stop()
    assert "a request body answer without streamed_response" in log
    assert "request body answers both streamed and unchanged" in log
    assert "more request body answers than request body messages" in log


@pytest.mark.parametrize("failure_mode", ["FailClose", "FailOpen"])
def test_pick_names_no_usable_endpoint(procs, tmp_path, failure_mode):
    """A pick that names no endpoint of the pool (another address, one
    that does not parse, an empty one) is the picker failing: FailOpen
    serves the request with the built-in picker, FailClose answers 503
    and nothing reaches a pod."""
    s = Setup(procs, tmp_path, failure_mode=failure_mode)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    try:
        for pick in ("10.255.255.1:8000", "not an endpoint", ""):
            p.pick = pick
            status, headers, data = call(s.base, "/v1/completions", seed_body())
            if failure_mode == "FailClose":
                assert status == 503, (pick, data)
            else:
                assert status == 200, (pick, data)
                assert json.loads(data)["model"] == "tweet-summary-1"
        if failure_mode == "FailClose":
            assert s.completions_seen() == 0
    finally:
        p.stop()
    s.stop()


PREFIX_REWRITE_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: llm-route
spec:
  parentRefs:
  - name: inference-gateway
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /v1
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /api
    backendRefs:
    - group: inference.networking.x-k8s.io
      kind: InferencePool
      name: qwen-pool
"""


@pytest.mark.parametrize("picked,pod_path", [
    ("/x", "/x"),                          # shorter than the matched prefix
    ("/generate/abc", "/generate/abc"),    # outside it
    ("/v1x/abc", "/v1x/abc"),              # the prefix's bytes, not its segment
    ("/v1/other?q=1", "/api/other?q=1"),   # inside it: rewritten
])
def test_picker_path_and_a_prefix_rewrite(procs, tmp_path, picked, pod_path):
    """The route's ReplacePrefixMatch replaces the prefix it matched; a
    :path the picker set afterwards may not start with it, and then goes to
    the pod as the picker wrote it (it crashed the gateway when shorter
    than the prefix, and lost bytes when outside it)."""
    s = Setup(procs, tmp_path, fake_pods=True, route=PREFIX_REWRITE_ROUTE)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    p.mutation = [(":path", picked.encode(), "")]
    try:
        status, _, data = call(s.base, "/v1/completions", seed_body("tweet-summary-1"))
        assert status == 200, data
        got = [r for pod in s.pods for r in pod.completions()]
        assert [r.path for r in got] == [pod_path], got
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    s.stop()


def test_picker_header_mutations_follow_envoys_rules(procs, tmp_path):
    """Envoy's default HeaderMutationRules: the picker may set :path (the
    pod gets it), not x-envoy-*, host, :authority, :method or :scheme, and
    may remove neither x-envoy-* headers nor host; a mutation with only
    `value` is taken (lenient: Envoy reads raw_value)."""
    s = Setup(procs, tmp_path, fake_pods=True)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    p.mutation = [(":path", b"/v1/completions?from=picker", ""),
                  ("x-envoy-foo", b"picker", ""), ("host", b"picker.example", ""),
                  (":authority", b"picker.example", ""), (":method", b"PUT", ""),
                  (":scheme", b"https", ""), ("x-from-picker", b"", "lenient")]
    p.remove = ["x-envoy-keep", "host", "x-drop-me"]
    try:
        status, _, data = call(s.base, "/v1/completions?from=client", seed_body("tweet-summary-1"),
                               headers={"x-envoy-keep": "client", "x-drop-me": "1"})
        assert status == 200, data
        got = [r for pod in s.pods for r in pod.completions()]
        assert len(got) == 1, got
        r = got[0]
        assert (r.method, r.path) == ("POST", "/v1/completions?from=picker")
        assert r.headers["host"] == "%s:%d" % (s.host, s.port)
        assert "x-envoy-foo" not in r.headers
        assert r.headers["x-envoy-keep"] == "client"
        assert "x-drop-me" not in r.headers
        assert r.headers["x-from-picker"] == "lenient"
        assert r.headers["x-picked-by"] == "test-picker"
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    s.stop()


def test_pick_header_set_twice_the_last_wins(procs, tmp_path):
    """A headers answer that sets x-gateway-destination-endpoint twice:
    each set without append overwrites in Envoy, so the last value is both
    the header the pod gets and the endpoint the request goes to (the
    gateway routed on the first and forwarded the last)."""
    s = Setup(procs, tmp_path, fake_pods=True)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    p.pick = s.endpoint(0)
    p.mutation = [("x-gateway-destination-endpoint", s.endpoint(1).encode(), "")]
    try:
        for _ in range(3):
            status, headers, data = call(s.base, "/v1/completions",
                                         seed_body("tweet-summary-1"))
            assert status == 200, data
            assert headers["x-pod"] == s.endpoint(1)
        assert s.pods[0].completions() == []
        got = s.pods[1].completions()
        assert len(got) == 3
        assert got[0].fields.count("x-gateway-destination-endpoint") == 1
        assert got[0].headers["x-gateway-destination-endpoint"] == s.endpoint(1)
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    s.stop()


@pytest.mark.parametrize("ratio", ["0", "1"])
def test_picker_traceparent_gives_way_to_the_gateways(procs, tmp_path, ratio):
    """A picker that traces sets a traceparent, sampled or not (W3C Trace
    Context: the context is propagated either way); a gateway that traces
    too sends its own, as Envoy's tracer injects its context after the
    ext_proc filter's mutations: the pod gets one traceparent, never two
    (which W3C Trace Context would have it read as none)."""
    from test_tracing import PARENT_ID, TRACE_ID, Collector
    col = Collector()
    s = Setup(procs, tmp_path, fake_pods=True,
              gw_args=("--otlp-endpoint", col.url, "--trace-sample-ratio", ratio))
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    picker_tp = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)
    p.mutation = [("traceparent", picker_tp.encode(), "")]
    try:
        status, _, data = call(s.base, "/v1/completions", seed_body("tweet-summary-1"))
        assert status == 200, data
        got = [r for pod in s.pods for r in pod.completions()]
        assert len(got) == 1, got
        assert got[0].fields.count("traceparent") == 1, got[0].fields
        tp = got[0].headers["traceparent"]
        assert tp.endswith("-01" if ratio == "1" else "-00") and TRACE_ID not in tp, tp
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    s.stop()
    col.stop()


def test_picker_sees_the_headers_envoy_gives_it(procs, tmp_path):
    """Envoy's connection manager edits a request's headers before any
    filter runs, so an ext_proc picker gets them edited: hop-by-hop fields
    and those the client's Connection names gone, an x-request-id made when
    the client sent none (the same the pod gets, so the picker's logs and
    the pod's name one request), X-Forwarded-For with the client's address
    appended and X-Forwarded-Proto the connection's scheme. The gateway
    gave the picker the client's headers as they came."""
    s = Setup(procs, tmp_path, fake_pods=True)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    try:
        body = json.dumps(seed_body("tweet-summary-1")).encode()
        data = raw_exchange(s.host, s.port, (
            "POST /v1/completions HTTP/1.1\r\nHost: gw\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n"
            "Connection: close, x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
            "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n"
            % len(body)).encode() + body)
        assert data.startswith(b"HTTP/1.1 200 "), data
        status, _, data = call(s.base, "/v1/completions", seed_body("tweet-summary-1"),
                               headers={"X-Request-Id": "client-id-1"})
        assert status == 200, data
        got = [r for pod in s.pods for r in pod.completions()]
        assert len(got) == 2, got
        first, second = p.seen
        for name in ("connection", "keep-alive", "x-secret"):
            assert name not in first, first
        peer = first["x-forwarded-for"].split(", ")
        assert peer[0] == "10.0.0.1" and len(peer) == 2 and peer[1].startswith("127."), first
        assert first["x-forwarded-proto"] == "http", first
        ids = {r.headers["x-request-id"] for r in got}
        assert first["x-request-id"] in ids and len(first["x-request-id"]) == 36, (first, ids)
        assert second["x-request-id"] == "client-id-1"
        assert second["x-forwarded-for"] == peer[1]
        assert "client-id-1" in ids
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    s.stop()


def test_picker_sets_the_request_id(procs, tmp_path):
    """A picker that sets x-request-id (GIE's does when the request has
    none) replaces the gateway's, as an ext_proc mutation replaces the id
    Envoy made: the pod gets one x-request-id, the picker's (it got two)."""
    s = Setup(procs, tmp_path, fake_pods=True)
    p = FakePicker(s.picker_host, s.picker_port, s.endpoints)
    p.mutation = [("x-request-id", b"picker-id", "")]
    try:
        status, _, data = call(s.base, "/v1/completions", seed_body("tweet-summary-1"))
        assert status == 200, data
        [r] = [r for pod in s.pods for r in pod.completions()]
        assert r.fields.count("x-request-id") == 1, r.fields
        assert r.headers["x-request-id"] == "picker-id"
    finally:
        p.stop()
        for pod in s.pods:
            pod.stop()
    s.stop()
