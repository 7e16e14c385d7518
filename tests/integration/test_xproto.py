"""The Python classes of xproto.py against spec/extproc.md §10: the bytes
Python writes for the spec's messages are the spec's bytes (which the C
codec is held to in tests/unit/test_extproc_msg.c), Python reads them back
field by field, and the generated grpcio modules carry Process and Health
calls over loopback."""
import concurrent.futures
import queue

import grpc
import pytest

import xproto
from xproto import base_pb2, ext_proc_pb2, health_pb2, http_status_pb2, processing_mode_pb2

PICK_KEY = "x-gateway-destination-endpoint"
PICK = b"10.0.0.1:8000"
KEY_HEX = PICK_KEY.encode().hex()
VAL_HEX = PICK.hex()

SPEC_10_3_HEADERS = bytes.fromhex(
    "12 2d 0a 2b 0a 0f 0a 07 3a 6d 65 74 68 6f 64 1a 04 50 4f 53 54 0a 18 0a 05 3a 70 61 74 68"
    " 1a 0f 2f 76 31 2f 63 6f 6d 70 6c 65 74 69 6f 6e 73 5a 04 08 04 10 04")
SPEC_10_1 = bytes.fromhex(
    "0a 39 0a 37 12 33 0a 31 0a 2f 0a 1e" + KEY_HEX + "1a 0d" + VAL_HEX + "28 01")
SPEC_10_2_APPEND = bytes.fromhex(
    "0a 3b 0a 39 12 35 0a 33 0a 2f 0a 1e" + KEY_HEX + "1a 0d" + VAL_HEX + "18 02 28 01")
SPEC_10_2_METADATA = SPEC_10_1 + bytes.fromhex(
    "42 43 0a 41 0a 08 65 6e 76 6f 79 2e 6c 62 12 35 2a 33 0a 31 0a 1e" + KEY_HEX
    + "12 0f 1a 0d" + VAL_HEX)

FULL_DUPLEX = processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED


def pick_answer(append_action=None, metadata=False):
    opt = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=PICK_KEY, raw_value=PICK))
    if append_action is not None:
        opt.append_action = append_action
    r = ext_proc_pb2.ProcessingResponse()
    common = r.request_headers.response
    common.header_mutation.set_headers.append(opt)
    common.clear_route_cache = True
    if metadata:
        r.dynamic_metadata.fields["envoy.lb"].struct_value.fields[PICK_KEY].string_value = \
            PICK.decode()
    return r


def test_decoder_inputs_match_spec():
    m = ext_proc_pb2.ProcessingRequest()
    m.request_headers.headers.CopyFrom(
        xproto.header_map([(":method", "POST"), (":path", "/v1/completions")]))
    m.protocol_config.request_body_mode = FULL_DUPLEX
    m.protocol_config.response_body_mode = FULL_DUPLEX
    assert m.SerializeToString() == SPEC_10_3_HEADERS
    assert len(SPEC_10_3_HEADERS) == 53

    b = ext_proc_pb2.ProcessingRequest()
    b.request_body.body = b"{}"
    b.request_body.end_of_stream = True
    assert b.SerializeToString() == bytes.fromhex("22 06 0a 02 7b 7d 10 01")


def test_answers_match_spec():
    assert pick_answer().SerializeToString() == SPEC_10_1
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert overwrite == 2
    assert pick_answer(overwrite).SerializeToString() == SPEC_10_2_APPEND
    assert len(pick_answer(metadata=True).SerializeToString()) == 128
    assert pick_answer(metadata=True).SerializeToString() == SPEC_10_2_METADATA

    fd = ext_proc_pb2.ProcessingResponse()
    sr = fd.request_body.response.body_mutation.streamed_response
    sr.body = b"{}"
    sr.end_of_stream = True
    assert fd.SerializeToString() == bytes.fromhex("1a 0c 0a 0a 1a 08 1a 06 0a 02 7b 7d 10 01")

    im = ext_proc_pb2.ProcessingResponse()
    im.immediate_response.status.code = http_status_pb2.ServiceUnavailable
    im.immediate_response.body = b"no endpoints"
    assert im.SerializeToString() == bytes.fromhex(
        "3a 13 0a 03 08 f7 03 1a 0c 6e 6f 20 65 6e 64 70 6f 69 6e 74 73")

    # An empty oneof member is still written: "continue".
    for field, hexs in (("request_headers", "0a 00"), ("response_headers", "12 00"),
                        ("request_trailers", "2a 00"), ("response_trailers", "32 00")):
        r = ext_proc_pb2.ProcessingResponse()
        getattr(r, field).SetInParent()
        assert r.WhichOneof("response") == field
        assert r.SerializeToString() == bytes.fromhex(hexs)


def test_spec_bytes_read_back():
    r = ext_proc_pb2.ProcessingResponse.FromString(SPEC_10_2_METADATA)
    assert r.WhichOneof("response") == "request_headers"
    common = r.request_headers.response
    assert common.clear_route_cache
    (opt,) = common.header_mutation.set_headers
    assert opt.header.key == PICK_KEY and opt.header.raw_value == PICK and opt.header.value == ""
    lb = r.dynamic_metadata.fields["envoy.lb"].struct_value
    assert lb.fields[PICK_KEY].string_value == PICK.decode()
    assert ext_proc_pb2.ProcessingResponse.FromString(SPEC_10_2_APPEND) \
        .request_headers.response.header_mutation.set_headers[0].append_action == 2

    q = ext_proc_pb2.ProcessingRequest.FromString(SPEC_10_3_HEADERS)
    assert q.WhichOneof("request") == "request_headers"
    assert [(h.key, h.raw_value) for h in q.request_headers.headers.headers] == \
        [(":method", b"POST"), (":path", b"/v1/completions")]
    assert not q.request_headers.end_of_stream
    assert q.protocol_config.request_body_mode == FULL_DUPLEX


def test_subset_hint_and_health_bytes():
    q = ext_proc_pb2.ProcessingRequest(metadata_context=xproto.subset_hint(["10.0.0.1:8000"]))
    again = ext_proc_pb2.ProcessingRequest.FromString(q.SerializeToString())
    hint = again.metadata_context.filter_metadata["envoy.lb.subset_hint"]
    values = hint.fields["x-gateway-destination-endpoint-subset"].list_value.values
    assert [v.string_value for v in values] == ["10.0.0.1:8000"]

    svc = "envoy.service.ext_proc.v3.ExternalProcessor"
    assert health_pb2.HealthCheckRequest(service=svc).SerializeToString() == \
        bytes.fromhex("0a 2b") + svc.encode()
    serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    assert serving.SerializeToString() == bytes.fromhex("08 01")
    assert health_pb2.HealthCheckResponse.NOT_SERVING == 2


class Echo(xproto.ext_proc_grpc.ExternalProcessorServicer):
    """Answers request headers with the pick, echoes body chunks."""

    def Process(self, request_iterator, context):
        for req in request_iterator:
            kind = req.WhichOneof("request")
            if kind == "request_headers":
                yield pick_answer(base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)
            elif kind == "request_body":
                r = ext_proc_pb2.ProcessingResponse()
                sr = r.request_body.response.body_mutation.streamed_response
                sr.body = req.request_body.body
                sr.end_of_stream = req.request_body.end_of_stream
                yield r


class Health(xproto.health_grpc.HealthServicer):
    def Check(self, request, context):
        st = health_pb2.HealthCheckResponse.SERVING if request.service == "" else \
            health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        return health_pb2.HealthCheckResponse(status=st)


@pytest.fixture
def server():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    srv = grpc.server(pool)
    xproto.ext_proc_grpc.add_ExternalProcessorServicer_to_server(Echo(), srv)
    xproto.health_grpc.add_HealthServicer_to_server(Health(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield "127.0.0.1:%d" % port
    finally:
        srv.stop(0).wait(5)
        pool.shutdown(wait=True)


def test_grpc_process_and_health(server):
    with grpc.insecure_channel(server) as ch:
        q = queue.Queue()
        first = ext_proc_pb2.ProcessingRequest()
        first.request_headers.headers.CopyFrom(xproto.header_map([(":method", "POST")]))
        first.protocol_config.request_body_mode = FULL_DUPLEX
        q.put(first)
        q.put(ext_proc_pb2.ProcessingRequest(
            request_body=ext_proc_pb2.HttpBody(body=b'{"model":"m"}', end_of_stream=True)))
        q.put(None)
        answers = list(xproto.process_call(ch)(iter(q.get, None), timeout=10))
        assert [a.WhichOneof("response") for a in answers] == ["request_headers", "request_body"]
        assert answers[0].SerializeToString() == SPEC_10_2_APPEND
        sr = answers[1].request_body.response.body_mutation.streamed_response
        assert sr.body == b'{"model":"m"}' and sr.end_of_stream

        # The generated stub and the helper reach the same method.
        stub = xproto.ext_proc_grpc.ExternalProcessorStub(ch)
        got = list(stub.Process(iter([first]), timeout=10))
        assert got[0].request_headers.response.clear_route_cache

        assert xproto.health_check(ch).status == health_pb2.HealthCheckResponse.SERVING
        assert xproto.health_check(ch, "nope").status == \
            health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
