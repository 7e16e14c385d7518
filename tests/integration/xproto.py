"""Python classes for infergate's ext_proc and health messages (proto/), for
integration tests that play Envoy against `infergate epp` or play a picker
for the gateway, with grpcio.

On first import (so once per pytest session) this module runs grpc_tools'
protoc on every file under proto/ into a temporary directory (removed when
the process exits), puts that directory on sys.path and exposes:

  ext_proc_pb2         envoy.service.ext_proc.v3: ProcessingRequest,
                       ProcessingResponse, HttpHeaders, HttpBody, CommonResponse,
                       HeaderMutation, BodyMutation, ImmediateResponse, ...
  ext_proc_grpc        ExternalProcessorStub, ExternalProcessorServicer,
                       add_ExternalProcessorServicer_to_server
  base_pb2             envoy.config.core.v3: HeaderMap, HeaderValue,
                       HeaderValueOption, Metadata
  http_status_pb2      envoy.type.v3: HttpStatus (code: the HTTP status)
  processing_mode_pb2  envoy.extensions.filters.http.ext_proc.v3.ProcessingMode
                       (ProcessingMode.FULL_DUPLEX_STREAMED, ...)
  health_pb2           grpc.health.v1: HealthCheckRequest, HealthCheckResponse
                       (HealthCheckResponse.SERVING, ...)
  health_grpc          HealthStub, HealthServicer, add_HealthServicer_to_server
  struct_pb2           google.protobuf.struct_pb2 (Struct, Value, ListValue)

and the helpers PROCESS_PATH, HEALTH_CHECK_PATH, process_call(channel),
health_check(channel, service), header_map(pairs), subset_hint(endpoints).

How the classes are made: Debian's python3-grpc-tools (1.14) bundles an old
protoc whose Python output is the older descriptor-building style; the
protobuf runtime (3.21, "4.21.12") still loads it, and
tests/integration/test_xproto.py checks the bytes it writes against
spec/extproc.md §10. The google/protobuf imports resolve to grpc_tools' copy
of the well-known protos (grpc_tools/_proto), whose classes the runtime
already has registered. The health file is renamed on the Python side only:
generated as the module grpc.health.v1.health_pb2 it would sit inside
grpcio's own `grpc` package, so its two modules are loaded as top-level
_xproto_health_pb2 and _xproto_health_pb2_grpc instead (message and service
names, and so the wire and the :path, are unchanged).
"""
import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_DIR = os.path.join(ROOT, "proto")

PROCESS_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check"


def _generate():
    import grpc_tools

    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    out = tempfile.mkdtemp(prefix="xproto-")
    atexit.register(shutil.rmtree, out, True)
    protos = sorted(
        os.path.relpath(os.path.join(d, f), PROTO_DIR)
        for d, _, files in os.walk(PROTO_DIR) for f in files if f.endswith(".proto"))
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I" + PROTO_DIR, "-I" + wkt,
           "--python_out=" + out, "--grpc_python_out=" + out] + protos
    r = subprocess.run(cmd, cwd=PROTO_DIR, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise ImportError("xproto: grpc_tools.protoc failed: %s" % r.stderr.strip())
    # grpc/health/v1 -> top-level modules, away from grpcio's package.
    hdir = os.path.join(out, "grpc", "health", "v1")
    shutil.move(os.path.join(hdir, "health_pb2.py"), os.path.join(out, "_xproto_health_pb2.py"))
    with open(os.path.join(hdir, "health_pb2_grpc.py")) as f:
        text = f.read()
    text = text.replace("from grpc.health.v1 import health_pb2 as",
                        "import _xproto_health_pb2 as")
    with open(os.path.join(out, "_xproto_health_pb2_grpc.py"), "w") as f:
        f.write(text)
    shutil.rmtree(os.path.join(out, "grpc"))
    return out


GEN_DIR = _generate()
sys.path.insert(0, GEN_DIR)

ext_proc_pb2 = importlib.import_module("envoy.service.ext_proc.v3.external_processor_pb2")
ext_proc_grpc = importlib.import_module("envoy.service.ext_proc.v3.external_processor_pb2_grpc")
base_pb2 = importlib.import_module("envoy.config.core.v3.base_pb2")
http_status_pb2 = importlib.import_module("envoy.type.v3.http_status_pb2")
processing_mode_pb2 = importlib.import_module(
    "envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2")
health_pb2 = importlib.import_module("_xproto_health_pb2")
health_grpc = importlib.import_module("_xproto_health_pb2_grpc")
from google.protobuf import struct_pb2  # noqa: E402  (after the path is set)


def process_call(channel):
    """The Process method as a grpcio stream-stream callable: call it with an
    iterator of ProcessingRequest, iterate the ProcessingResponse it returns.
    No stub needed; the :path is the one Envoy uses."""
    return channel.stream_stream(
        PROCESS_PATH,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=ext_proc_pb2.ProcessingResponse.FromString)


def health_check(channel, service="", timeout=5.0):
    """grpc.health.v1.Health/Check; returns the HealthCheckResponse."""
    call = channel.unary_unary(
        HEALTH_CHECK_PATH,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    return call(health_pb2.HealthCheckRequest(service=service), timeout=timeout)


def header_map(pairs):
    """A HeaderMap from (name, value) pairs, values in raw_value as Envoy
    sends them (str values are UTF-8 encoded)."""
    m = base_pb2.HeaderMap()
    for k, v in pairs:
        m.headers.add(key=k, raw_value=v.encode() if isinstance(v, str) else v)
    return m


def subset_hint(endpoints):
    """metadata_context with GIE's subset hint: filter_metadata
    ["envoy.lb.subset_hint"]["x-gateway-destination-endpoint-subset"] =
    the list of endpoints ("ip:port" strings)."""
    md = base_pb2.Metadata()
    st = md.filter_metadata["envoy.lb.subset_hint"]
    st.fields["x-gateway-destination-endpoint-subset"].list_value.extend(list(endpoints))
    return md
