"""The receiver's refusals over real HTTP and gRPC servers: each gets its documented status, and the
receiver keeps serving afterwards. Events go to an in-process QueueTransport (no broker needed)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tripwire.producers import QueueTransport, TracerConfig
from tripwire.producers.otlp import OtlpReceiver, OtlpSettings, serve
from tripwire.schemas import ModelCall, decode

pytestmark = pytest.mark.integration

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
TOKEN = "tok-acme-0123456789abcdef"


def _kv(k: str, v: Any) -> KeyValue:
    if isinstance(v, int):
        return KeyValue(key=k, value=AnyValue(int_value=v))
    return KeyValue(key=k, value=AnyValue(string_value=v))


def chat_span(span_id: int, trace: bytes = TRACE, **attrs: Any) -> Span:
    a = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
         "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10, **attrs}  # fmt: skip
    return Span(
        trace_id=trace,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=(1).to_bytes(8, "big"),
        name="chat gpt-4o-mini",
        start_time_unix_nano=1_764_000_000_000_000_000,
        end_time_unix_nano=1_764_000_000_500_000_000,
        attributes=[_kv(k, v) for k, v in a.items()],
    )


def request(*spans: Span, tenant: str | None = None) -> ExportTraceServiceRequest:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    rs.resource.attributes.append(_kv("service.name", "svc"))
    if tenant is not None:
        rs.resource.attributes.append(_kv("tripwire.tenant", tenant))
    return ExportTraceServiceRequest(resource_spans=[rs])


class Rig:
    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.got: list[tuple[bytes, bytes]] = []
        delivery = settings.pop("delivery", {"spool_enabled": False})
        self.gate: threading.Event | None = settings.pop("gate", None)  # the transport waits for it (a stuck broker)
        cfg = TracerConfig(tenant="dflt", delivery={"transport": "queue", "handle_signals": False, **delivery})
        s = OtlpSettings(host="127.0.0.1", http_port=0, grpc_port=0, max_request_bytes=64 * 1024, **settings)
        self.receiver = OtlpReceiver(s, cfg, transport=QueueTransport(self._send))
        self.servers = serve(self.receiver)
        assert self.servers.http is not None
        self.url = f"http://127.0.0.1:{self.servers.http.port}/v1/traces"
        self.grpc_target = f"127.0.0.1:{self.servers.grpc.port}"  # type: ignore[union-attr]

    def _send(self, key: bytes, value: bytes) -> None:
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the transport's gate"
        self.got.append((key, value))

    def post(self, body: bytes, ctype: str = "application/x-protobuf", **headers: str) -> httpx.Response:
        return httpx.post(self.url, content=body, headers={"Content-Type": ctype, **headers}, timeout=10)

    def events(self) -> list[Any]:
        assert self.receiver.flush(5)
        return [decode(v) for _, v in self.got]

    def close(self) -> None:
        self.servers.stop()
        self.receiver.close(2)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def _ok(r: httpx.Response) -> ExportTraceServiceResponse:
    assert r.status_code == 200, r.text
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(r.content)
    return resp


def test_malformed_bodies_get_their_status_and_the_receiver_keeps_serving(rig: Rig) -> None:
    r = rig.post(b"\xff\xff\xff\xff not protobuf")
    assert r.status_code == 400 and "not a valid ExportTraceServiceRequest" in r.json()["message"]
    r = rig.post(request(chat_span(2)).SerializeToString(), ctype="text/plain")
    assert r.status_code == 415 and "unsupported Content-Type" in r.json()["message"]
    r = rig.post(b"{not json", ctype="application/json")
    assert r.status_code == 400
    r = rig.post(b"\x1f\x8b garbage", **{"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["message"]
    r = rig.post(gzip.compress(b"\x00" * (65 * 1024)), **{"Content-Encoding": "gzip"})  # a small gzip bomb
    assert r.status_code == 413
    r = rig.post(b"x" * (64 * 1024 + 1))
    assert r.status_code == 413 and "exceeds max_request_bytes" in r.json()["message"]
    assert httpx.post(rig.url.replace("/v1/traces", "/v1/logs"), content=b"", timeout=5).status_code == 404
    assert rig.receiver.counters.as_dict()["refused_requests"] == 6
    # still serving: a valid request, gzip-compressed, is accepted
    resp = _ok(rig.post(gzip.compress(request(chat_span(2)).SerializeToString()), **{"Content-Encoding": "gzip"}))
    assert resp.partial_success.rejected_spans == 0
    (ev,) = rig.events()
    assert isinstance(ev, ModelCall) and ev.input_tokens == 100 and ev.tenant == "dflt"
    assert httpx.get(rig.url.replace("/v1/traces", "/health"), timeout=5).json()["status"] == "ok"


def test_json_body_and_partial_success(rig: Rig) -> None:
    bad = chat_span(3, trace=b"\x00" * 16)  # an all-zero trace id is invalid
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": TRACE.hex(), "spanId": "00000000000000aa", "parentSpanId": "0000000000000001",
                "name": "chat", "startTimeUnixNano": "1764000000000000000", "endTimeUnixNano": "1764000000200000000",
                "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                               {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                               {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}}],
            }]}],
        }]
    }  # fmt: skip
    r = rig.post(json.dumps(body).encode(), ctype="application/json")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    (ev,) = rig.events()
    assert (ev.trace_id, ev.span_id, ev.input_tokens) == (TRACE.hex(), "00000000000000aa", 7)
    resp = _ok(rig.post(request(bad, chat_span(4)).SerializeToString()))
    assert resp.partial_success.rejected_spans == 1
    assert "invalid trace_id or span_id" in resp.partial_success.error_message
    assert len(rig.events()) == 2


def test_bearer_tokens_bind_the_tenant(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - {{token: {TOKEN}, tenant: acme, name: acme-prod}}\n")
    rig = Rig(tmp_path, tokens_file=tokens)
    try:
        body = request(chat_span(2), tenant="someone-else").SerializeToString()
        assert rig.post(body).status_code == 401
        assert rig.post(body, Authorization="Bearer wrong-token-000000000").status_code == 401
        _ok(rig.post(body, Authorization=f"Bearer {TOKEN}"))
        (ev,) = rig.events()
        assert ev.tenant == "acme"  # the token's tenant wins over the resource attribute
        assert ev.credential_fingerprint is not None and ev.credential_fingerprint.startswith("token:")
        stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(rig.grpc_target))
        with pytest.raises(grpc.RpcError) as e:
            stub.Export(request(chat_span(5)), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(request(chat_span(5)), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=5)
        assert len(rig.events()) == 2
    finally:
        rig.close()


def test_backpressure_answers_retryable_status(tmp_path: Path) -> None:
    # no spool and a hand-off queue of one record: a request of three events cannot be accepted now
    rig = Rig(tmp_path, delivery={"spool_enabled": False, "queue_max": 1}, retry_after_s=7)
    try:
        body = request(chat_span(2), chat_span(3), chat_span(4)).SerializeToString()
        r = rig.post(body)
        assert r.status_code == 429 and r.headers["Retry-After"] == "7" and r.json()["code"] == 8
        stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(rig.grpc_target))
        with pytest.raises(grpc.RpcError) as e:
            stub.Export(request(chat_span(2), chat_span(3)), timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _retry_delay(e.value) == (7, 7)
        with pytest.raises(grpc.RpcError) as e:  # above max_request_bytes: grpcio refuses it
            stub.Export(request(chat_span(9, **{"gen_ai.input.messages": "x" * 70_000})), timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert rig.events() == []
        _ok(rig.post(request(chat_span(2)).SerializeToString()))  # one event fits: accepted
        assert len(rig.events()) == 1
        assert rig.receiver.counters.as_dict()["backpressure"] == 2
        assert rig.receiver.counters.as_dict()["throttled"] == 2
    finally:
        rig.close()


def _retry_delay(err: Any) -> tuple[int, int]:
    """The RetryInfo delay (seconds) in ``grpc-status-details-bin`` and in ``google.rpc.retryinfo-bin``."""
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status

    md = dict(err.trailing_metadata())
    status = Status.FromString(md["grpc-status-details-bin"])
    (detail,) = status.details
    info = RetryInfo()
    assert detail.Unpack(info)
    return info.retry_delay.seconds, RetryInfo.FromString(md["google.rpc.retryinfo-bin"]).retry_delay.seconds


def test_receiver_encoding_is_the_contract_codec(rig: Rig) -> None:
    """The receiver encodes with the SDK's compiled encoder: bytes identical to ``tripwire.schemas.encode``."""
    from tripwire.producers.otlp import Identity, raw_spans
    from tripwire.schemas import encode

    root = Span(
        trace_id=TRACE,
        span_id=(1).to_bytes(8, "big"),
        name="invoke_agent",
        start_time_unix_nano=1,
        end_time_unix_nano=2_000_000_000,
        attributes=[_kv("gen_ai.operation.name", "invoke_agent")],
    )
    tool = chat_span(3, **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"})
    spans, _, _ = raw_spans(request(chat_span(2), tool, root))
    events, rejected, _ = rig.receiver.mapper.map_spans(spans, Identity())
    assert rejected == 0 and len(events) == 4
    assert all(rig.receiver._encode(e) == encode(e) for e in events)


def _sdk_chat_spans(n: int) -> list[Any]:
    """``n`` finished chat spans from the OpenTelemetry SDK (children of a remote agent span)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    parent = trace.SpanContext(int.from_bytes(TRACE, "big"), 1, is_remote=True, trace_flags=trace.TraceFlags(1))
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
             "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}  # fmt: skip
    for _ in range(n):
        with tp.get_tracer("t").start_as_current_span("chat gpt-4o-mini", context=ctx, attributes=attrs):
            pass
    spans = list(mem.get_finished_spans())
    tp.shutdown()
    return spans


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_real_exporters_retry_a_throttled_export_until_it_is_accepted(tmp_path: Path, protocol: str) -> None:
    """A stuck producer: the hand-off queue (4 records, no spool) fills up, a request is answered 429 /
    RESOURCE_EXHAUSTED with a 1 s Retry-After / RetryInfo; the real exporter waits and retries, the
    producer recovers meanwhile, and the retry is accepted."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    gate = threading.Event()
    rig = Rig(tmp_path, delivery={"spool_enabled": False, "queue_max": 4}, retry_after_s=1, ack_timeout_s=0.2,
              gate=gate)  # fmt: skip
    try:
        statuses = []
        for i in range(12):  # until the queue is full: one more event is refused
            statuses.append(rig.post(request(chat_span(100 + i)).SerializeToString()).status_code)
            if statuses[-1] == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {503}, statuses  # 503: taken, not yet handed over
        throttled = rig.receiver.counters.as_dict()["throttled"]
        if protocol == "http":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter: Any = OTLPSpanExporter(endpoint=rig.url, timeout=20)
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            exporter = GrpcExporter(endpoint=rig.grpc_target, insecure=True, timeout=20)

        def open_gate_once_refused() -> None:  # the producer recovers after the exporter was throttled
            deadline = time.monotonic() + 20
            while rig.receiver.counters.as_dict()["throttled"] == throttled and time.monotonic() < deadline:
                time.sleep(0.01)
            gate.set()

        opener = threading.Thread(target=open_gate_once_refused, daemon=True)
        opener.start()
        spans = _sdk_chat_spans(2)
        assert len(spans) == 2
        t0 = time.monotonic()
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        waited = time.monotonic() - t0
        opener.join(5)
        exporter.shutdown()
        c = rig.receiver.counters.as_dict()
        assert c["throttled"] == throttled + 1  # refused once, then accepted
        assert waited >= 0.8  # it waited for the Retry-After / RetryInfo delay (1 s)
        got = {e.span_id for e in rig.events() if isinstance(e, ModelCall)}
        assert {format(s.context.span_id, "016x") for s in spans} <= got
    finally:
        gate.set()
        rig.close()
