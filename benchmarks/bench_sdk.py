"""Agent SDK benchmarks.

1. ``sdk_tool_call_cpu``: CPU time on the agent's thread per traced tool call (enter, exit, canonical
   JSON of a small args dict, record build, enqueue; the args' hash and redaction and the Avro encoding
   run in the delivery worker by default: ``tripwire.producers._args``), against the OpenTelemetry SDK
   recording an equivalent span with 10 attributes through ``BatchSpanProcessor`` into a null exporter,
   in the same process. Both are measured with
   ``time.thread_time()`` (CPU of the calling thread only, so background workers and the other tenants
   of the machine do not count), in alternating rounds; medians are reported. Target: ratio <= 0.5.
   ``sdk_tool_call_cpu`` runs with the durable hand-off on (the default: the worker writes and fsyncs
   each batch to the spool before handing it over); ``sdk_tool_call_cpu_memory`` with ``handoff: memory``.
   ``sdk_tool_call_cpu_encode_on_agent_thread`` is the same with ``encode_on_agent_thread: true``, and
   ``sdk_tool_call_process_cpu`` is the whole process's CPU per call (agent thread + worker encoding and
   handing to a null in-process sink) against OpenTelemetry's whole-process CPU per span.
2. ``sdk_delivery_rate``: events/s the SDK's delivery pipeline (hand-off queue, worker, durable log:
   one write and one fsync per batch, a settle mark per ack; idempotent producer) gets acknowledged by
   the broker, against raw confluent-kafka produce of the same bytes and keys with the same producer
   settings (``bench_kafka_baseline``), run in the same process. Target: ratio >= 0.5.
   ``sdk_delivery_rate_memory`` is the same with ``handoff: memory``.
3. ``sdk_end_to_end_rate``: traced tool calls/s from the agent API to broker acknowledgement.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, bootstrap, report

CALLS = 20_000
ROUNDS = 7
DELIVERY_EVENTS = 100_000
ARGS = {
    "charge_id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
    "amount": 4999,
    "currency": "usd",
    "reason": "requested_by_customer",
}


def _cpu_per_call(fn: Any, n: int, flush: Any = None) -> tuple[float, float]:
    """(agent-thread CPU, whole-process CPU) per call, in microseconds; ``flush`` drains the workers."""
    c0, p0 = time.thread_time(), time.process_time()
    fn(n)
    thread = (time.thread_time() - c0) / n * 1e6
    if flush is not None:
        flush()
    return thread, (time.process_time() - p0) / n * 1e6


def _otel() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NullExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    tracer = provider.get_tracer("bench")
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "stripe.issue_refund",
        "gen_ai.tool.call.id": str(uuid.uuid4()),
        "tripwire.risk": "high",
        "tripwire.args": '{"amount":4999,"charge_id":"ch_3MmlLrLkdIwHu7ix0snN0B15","currency":"usd"}',
        "tripwire.args_hash": "9f" * 32,
        "tripwire.status": "ok",
        "tripwire.idempotency_key": "idem-1",
        "tripwire.side_effect": True,
        "tripwire.run_id": str(uuid.uuid4()),
    }

    def loop(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span("execute_tool stripe.issue_refund", attributes=attrs):
                pass

    return loop, provider


def _tripwire(spool: Path, on_agent_thread: bool = False, handoff: str = "durable") -> tuple[Any, Any, Any]:
    from tripwire.producers import Tracer, TracerConfig

    tracer = Tracer.in_process(
        lambda k, v: None,
        TracerConfig(
            agent={"name": "bench-agent"},
            delivery={
                "spool_dir": spool,
                "encode_on_agent_thread": on_agent_thread,
                "handoff": handoff,
                "handle_signals": False,
            },
        ),
    )
    run = tracer.run(workflow="bench")
    run.start()

    def loop(n: int) -> None:
        for _ in range(n):
            with run.tool_call("stripe.issue_refund", args=ARGS, risk="high", idempotency_key="idem-1"):
                pass

    def close() -> None:
        run.finish()
        tracer.close()

    return loop, close, lambda: tracer.flush(60)


def bench_emit_cost(tmp: Path) -> list[Result]:
    otel_loop, provider = _otel()
    tw_loop, tw_close, tw_flush = _tripwire(tmp / "spool-emit")
    ag_loop, ag_close, ag_flush = _tripwire(tmp / "spool-emit-agent", on_agent_thread=True)
    mem_loop, mem_close, mem_flush = _tripwire(tmp / "spool-emit-memory", handoff="memory")

    def otel_flush() -> None:
        provider.force_flush(60_000)

    for loop in (otel_loop, tw_loop, ag_loop, mem_loop):
        loop(2000)
    otel, ours, agent, memory = [], [], [], []
    for _ in range(ROUNDS):
        otel.append(_cpu_per_call(otel_loop, CALLS, otel_flush))
        ours.append(_cpu_per_call(tw_loop, CALLS, tw_flush))
        agent.append(_cpu_per_call(ag_loop, CALLS, ag_flush))
        memory.append(_cpu_per_call(mem_loop, CALLS, mem_flush))
    provider.shutdown()
    tw_close()
    ag_close()
    mem_close()

    def med(rounds: list[tuple[float, float]], i: int) -> float:
        return statistics.median([r[i] for r in rounds])

    o, t, a, m = med(otel, 0), med(ours, 0), med(agent, 0), med(memory, 0)
    op, tp = med(otel, 1), med(ours, 1)
    extra = {"rounds": ROUNDS, "calls_per_round": CALLS}
    return [
        Result("otel_span_10_attrs_cpu", o, "us/span", ratio=1.0, baseline=o),
        Result(
            "sdk_tool_call_cpu",
            t,
            "us/call",
            ratio=t / o,
            baseline=o,
            goal="<= 0.5x OpenTelemetry",
            extra={**extra, "handoff": "durable", "fsync": "batch", "rounds_us": [round(x[0], 2) for x in ours]},
        ),
        Result(
            "sdk_tool_call_cpu_memory",
            m,
            "us/call",
            ratio=m / o,
            baseline=o,
            extra={**extra, "handoff": "memory", "rounds_us": [round(x[0], 2) for x in memory]},
        ),
        Result(
            "sdk_tool_call_cpu_encode_on_agent_thread",
            a,
            "us/call",
            ratio=a / o,
            baseline=o,
            extra={**extra, "rounds_us": [round(x[0], 2) for x in agent]},
        ),
        Result("otel_span_process_cpu", op, "us/span", ratio=1.0, baseline=op),
        Result(
            "sdk_tool_call_process_cpu",
            tp,
            "us/call",
            ratio=tp / op,
            baseline=op,
            extra={
                **extra,
                "note": "agent thread + worker (args hash and redaction, encode, durable log, hand-off to a null sink)",
            },
        ),
    ]


def _payloads(tmp: Path, n: int) -> list[tuple[bytes, bytes]]:
    """The exact bytes and keys the SDK emits for ``n`` tool-call events (100 runs)."""
    from tripwire.producers import Tracer, TracerConfig

    got: list[tuple[bytes, bytes]] = []
    tracer = Tracer.in_process(
        lambda k, v: got.append((k, v)),
        TracerConfig(agent={"name": "bench-agent"}, delivery={"spool_dir": tmp / "spool-capture"}),
    )
    runs = [tracer.run(workflow="bench") for _ in range(100)]
    for r in runs:
        r.start()
    for i in range(n - 200):
        with runs[i % 100].tool_call("stripe.issue_refund", args=ARGS, risk="high"):
            pass
    for r in runs:
        r.finish()
    tracer.flush(60)
    tracer.close()
    return got


def _create_topic(servers: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench_sdk_{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": servers})
    for f in admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)]).values():
        f.result(30)
    return topic


def _sdk_settings(servers: str, topic: str, spool: Path, handoff: str = "durable") -> Any:
    from tripwire.producers import TracerConfig

    # the raw baseline's producer settings (idempotent, acks=all, lz4, linger 5 ms, 256 KiB batches)
    return TracerConfig(
        agent={"name": "bench-agent"},
        kafka={"bootstrap": servers, "topic": topic, "linger_ms": 5, "batch_size": 256 * 1024},
        delivery={"spool_dir": spool, "handoff": handoff, "handle_signals": False},
    )


def _delivery_rate(servers: str, payloads: list[tuple[bytes, bytes]], spool: Path, handoff: str) -> tuple[float, Any]:
    """Events/s from ``Delivery.emit`` to the broker's acks (after a warm-up), and the counters."""
    from tripwire.producers.delivery import Delivery
    from tripwire.producers.spool import Spool
    from tripwire.producers.transport import KafkaTransport

    cfg = _sdk_settings(servers, _create_topic(servers), spool, handoff)
    spool_ = Spool(
        cfg.delivery.spool_dir, max_bytes=cfg.delivery.spool_max_bytes, segment_bytes=cfg.delivery.segment_bytes
    )
    delivery = Delivery(KafkaTransport(cfg.kafka), cfg.delivery, spool_)
    for k, v in payloads[:10_000]:
        delivery.emit(k, v)
    delivery.flush(60)
    before = delivery.counters()
    t0 = time.perf_counter()
    for k, v in payloads:
        delivery.emit(k, v)
    if not delivery.flush(120):
        raise RuntimeError(f"SDK delivery ({handoff}) did not finish within 120 s")
    rate = len(payloads) / (time.perf_counter() - t0)
    c = delivery.counters()
    delivery.close(10)
    if c.delivered - before.delivered != len(payloads) or c.dropped:
        raise RuntimeError(f"delivered {c.delivered - before.delivered}/{len(payloads)}, dropped {c.dropped}")
    if handoff == "durable" and c.logged - before.logged != len(payloads):
        raise RuntimeError(f"only {c.logged - before.logged}/{len(payloads)} records went through the durable log")
    return rate, c


def bench_delivery(tmp: Path) -> list[Result]:
    from benchmarks.bench_kafka_baseline import produce_raw
    from tripwire.producers import Tracer

    servers = bootstrap()
    payloads = _payloads(tmp, DELIVERY_EVENTS)
    raw_topic = _create_topic(servers)
    produce_raw(servers, raw_topic, payloads[:10_000])  # warm-up
    raw_rate = produce_raw(servers, raw_topic, payloads)

    sdk_rate, counters = _delivery_rate(servers, payloads, tmp / "spool-deliver", "durable")
    mem_rate, _ = _delivery_rate(servers, payloads, tmp / "spool-deliver-memory", "memory")

    tracer = Tracer(_sdk_settings(servers, _create_topic(servers), tmp / "spool-e2e"))
    runs = [tracer.run(workflow="bench") for _ in range(100)]
    for r in runs:
        r.start()
    n = DELIVERY_EVENTS
    t0 = time.perf_counter()
    for i in range(n):
        with runs[i % 100].tool_call("stripe.issue_refund", args=ARGS, risk="high"):
            pass
    if not tracer.flush(120):
        raise RuntimeError("SDK end-to-end did not finish within 120 s")
    e2e_rate = n / (time.perf_counter() - t0)
    for r in runs:
        r.finish()
    tracer.close(10)
    return [
        Result("kafka_raw_produce_same_bytes", raw_rate, "msg/s", ratio=1.0, baseline=raw_rate),
        Result(
            "sdk_delivery_rate",
            sdk_rate,
            "events/s",
            ratio=sdk_rate / raw_rate,
            baseline=raw_rate,
            goal=">= 0.5x raw confluent-kafka",
            extra={
                "events": len(payloads),
                "avg_bytes": sum(len(v) for _, v in payloads) / len(payloads),
                "handoff": "durable",
                "fsync": "batch",
                "spooled": counters.spooled,
            },
        ),
        Result(
            "sdk_delivery_rate_memory",
            mem_rate,
            "events/s",
            ratio=mem_rate / raw_rate,
            baseline=raw_rate,
            extra={"events": len(payloads), "handoff": "memory"},
        ),
        Result(
            "sdk_end_to_end_rate",
            e2e_rate,
            "events/s",
            ratio=e2e_rate / raw_rate,
            baseline=raw_rate,
            extra={"events": n, "note": "traced tool calls on one agent thread, to broker ack"},
        ),
    ]


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench_sdk_") as d:
        tmp = Path(d)
        return bench_emit_cost(tmp) + bench_delivery(tmp)


if __name__ == "__main__":
    report(run())
