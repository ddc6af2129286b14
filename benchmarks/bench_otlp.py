"""OTLP receiver benchmarks (``python -m benchmarks otlp``; needs the ``[otlp]`` extra and a broker).

1. ``otlp_ingest_rate``: spans/s one receiver process ingests over OTLP/HTTP (protobuf, batches of 512
   spans: 32 agent traces of 1 ``invoke_agent`` + 10 ``chat`` + 5 ``execute_tool`` spans), from the first
   POST until the broker acknowledged every event (``flush``), one client on a keep-alive connection.
   Baselines, same bodies, same process: ``ExportTraceServiceRequest.ParseFromString`` alone (upb parses
   lazily into C structures: no Python object per span), and that parse plus reading every span's ids,
   times and attributes into Python values (what any consumer of the spans must do). Goal >= 0.3x.
2. ``otlp_export_to_topic_latency``: export -> event on the topic at 1,000 spans/s (a 50-span request
   every 50 ms), p50/p95 over every event, read by a consumer in the same process. Goal p95 < 200 ms.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, bootstrap, interleaved, percentile

BATCH = 512
REQUESTS = int(os.environ.get("TRIPWIRE_BENCH_OTLP_REQUESTS", "40"))
LATENCY_SECONDS = float(os.environ.get("TRIPWIRE_BENCH_OTLP_SECONDS", "10"))


def _kv(k: str, v: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(v, int):
        return KeyValue(key=k, value=AnyValue(int_value=v))
    return KeyValue(key=k, value=AnyValue(string_value=v))


_CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
         "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 1200,
         "gen_ai.usage.output_tokens": 300, "gen_ai.usage.cache_read.input_tokens": 1000,
         "server.address": "api.openai.com"}  # fmt: skip
_TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
         "gen_ai.tool.call.arguments": '{"order_id": "A-1001", "note": "call +1 415 555 0100"}'}  # fmt: skip


def body(traces: int, t0_ns: int) -> bytes:
    """One request: ``traces`` agent traces of 16 spans each, fresh random ids."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    spans = []
    for _ in range(traces):
        trace = uuid.uuid4().bytes
        root = os.urandom(8)
        t = t0_ns
        for i in range(15):
            attrs = {**_CHAT} if i % 3 != 2 else {**_TOOL, "gen_ai.tool.call.id": f"call_{i}"}
            spans.append(Span(trace_id=trace, span_id=os.urandom(8), parent_span_id=root, name=f"op {i}",
                              start_time_unix_nano=t, end_time_unix_nano=t + 1_000_000,
                              attributes=[_kv(k, v) for k, v in attrs.items()]))  # fmt: skip
            t += 1_000_000
        agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "refund-assistant"}
        spans.append(Span(trace_id=trace, span_id=root, name="invoke_agent", start_time_unix_nano=t0_ns,
                          end_time_unix_nano=t + 1, attributes=[_kv(k, v) for k, v in agent.items()]))  # fmt: skip
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    rs.resource.attributes.append(_kv("service.name", "bench"))
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()  # type: ignore[no-any-return]


def _topic(servers: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench_otlp_{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": servers})
    for f in admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)]).values():
        f.result(30)
    return topic


def _receiver(servers: str, topic: str, spool: Path) -> Any:
    from tripwire.producers import TracerConfig
    from tripwire.producers.otlp import OtlpReceiver, OtlpSettings, serve

    cfg = TracerConfig(kafka={"bootstrap": servers, "topic": topic},
                       delivery={"spool_dir": spool, "handle_signals": False})  # fmt: skip
    receiver = OtlpReceiver(OtlpSettings(host="127.0.0.1", http_port=0, grpc_enabled=False), cfg)
    return receiver, serve(receiver)


def run() -> list[Result]:
    import httpx
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tripwire.producers.otlp import raw_spans

    servers = bootstrap()
    now = time.time_ns()
    # fresh trace ids for every candidate round (a replayed span is skipped by the receiver)
    rounds = 5
    bodies = [[body(BATCH // 16, now) for _ in range(REQUESTS)] for _ in range(rounds + 1)]
    n_spans = REQUESTS * BATCH
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        receiver, srv = _receiver(servers, _topic(servers), Path(tmp) / "spool")
        url = f"http://127.0.0.1:{srv.http.port}/v1/traces"
        client = httpx.Client(headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        used = iter(range(rounds + 1))
        try:
            def ingest() -> int:
                batch = bodies[next(used)]
                for b in batch:
                    r = client.post(url, content=b)
                    assert r.status_code == 200, r.text
                assert receiver.flush(60), "the broker did not acknowledge every event"
                return n_spans

            def parse() -> int:
                for b in bodies[0]:
                    ExportTraceServiceRequest().ParseFromString(b)
                return n_spans

            def parse_read() -> int:
                for b in bodies[0]:
                    req = ExportTraceServiceRequest()
                    req.ParseFromString(b)
                    raw_spans(req)
                return n_spans

            ingest()  # warm-up (connections, price table, topic metadata)
            base, cand = interleaved(parse, ingest, rounds=2)
            base2, cand2 = interleaved(parse_read, ingest, rounds=2)
            cand = max(cand, cand2)
            results.append(Result("otlp_ingest_rate", cand, "spans/s", ratio=cand / base, baseline=base,
                                  goal=">= 0.3x raw opentelemetry-proto decode",
                                  extra={"batch": BATCH, "requests": REQUESTS}))  # fmt: skip
            results.append(Result("otlp_ingest_rate_vs_decode_and_read", cand, "spans/s", ratio=cand / base2,
                                  baseline=base2, extra={"batch": BATCH}))  # fmt: skip
        finally:
            client.close()
            srv.stop()
            receiver.close(10)
        results.append(_latency(servers, Path(tmp) / "spool2"))
    return results


def _latency(servers: str, spool: Path) -> Result:
    import httpx
    from confluent_kafka import Consumer

    from tripwire.schemas import decode

    topic = _topic(servers)
    receiver, srv = _receiver(servers, topic, spool)
    url = f"http://127.0.0.1:{srv.http.port}/v1/traces"
    sent: dict[str, float] = {}
    lat: list[float] = []
    stop = threading.Event()
    c = Consumer({"bootstrap.servers": servers, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 5})  # fmt: skip
    c.subscribe([topic])

    def consume() -> None:
        while not stop.is_set():
            for m in c.consume(1000, timeout=0.05):
                if m.error() is None:
                    t = time.perf_counter()
                    ev = decode(m.value(), validate=False)
                    t0 = sent.get(ev.trace_id)  # type: ignore[attr-defined]
                    if t0 is not None:
                        lat.append((t - t0) * 1000)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        client = httpx.Client(headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        # wait until the consumer reads: a first request's events arrive
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        warm = ExportTraceServiceRequest()
        warm.ParseFromString(body(1, time.time_ns()))
        sent.update({sp.trace_id.hex(): time.perf_counter() for sp in warm.resource_spans[0].scope_spans[0].spans})
        client.post(url, content=warm.SerializeToString())
        deadline = time.monotonic() + 60
        while not lat and time.monotonic() < deadline:
            time.sleep(0.05)
        sent.clear()
        lat.clear()
        pending = [body(3, time.time_ns()) for _ in range(int(LATENCY_SECONDS * 20))]  # 48 spans per 50 ms
        tick = time.perf_counter()
        expected = 0
        for b in pending:
            req = ExportTraceServiceRequest()
            req.ParseFromString(b)
            t0 = time.perf_counter()
            for sp in req.resource_spans[0].scope_spans[0].spans:
                sent[sp.trace_id.hex()] = t0
            r = client.post(url, content=b)
            assert r.status_code == 200
            expected += 3 * 17  # 15 child events + RunStarted + RunFinished per trace
            tick += 0.05
            time.sleep(max(0.0, tick - time.perf_counter()))
        deadline = time.monotonic() + 30
        while len(lat) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        client.close()
    finally:
        stop.set()
        reader.join(5)
        c.close()
        srv.stop()
        receiver.close(10)
    return Result("otlp_export_to_topic_latency_p95", percentile(lat, 95), "ms", goal="p95 < 200 ms at 1,000 spans/s",
                  extra={"p50_ms": round(percentile(lat, 50), 2), "events": len(lat), "expected": expected,
                         "spans_per_s": 960})  # fmt: skip


__all__ = ["body", "run"]
