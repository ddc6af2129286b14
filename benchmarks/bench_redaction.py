"""Redaction benchmarks.

1. ``sdk_tool_call_cpu_1kb_clean`` / ``_1kb_pii``: CPU time on the agent's thread per traced tool call
   whose args are ~1 KB of realistic JSON (a support/logistics query: ids, a UUID, a git SHA, a base64
   cursor, prose), without and with PII/credentials in it, against the OpenTelemetry SDK recording a
   span with the same attributes (the args JSON as one attribute) through ``BatchSpanProcessor`` into
   a null exporter. ``time.thread_time()``, alternating rounds, medians. Goal: <= 0.5x. The args are
   hashed and redacted in the delivery worker (``tripwire.producers._args``), so
   ``sdk_tool_call_process_cpu_1kb_*`` also reports the whole process's CPU per call (agent thread +
   worker: redaction, encoding, durable log) against OpenTelemetry's whole-process CPU per span.
2. ``redaction_clean_mbps``: ``Redactor.redact_text`` throughput on clean text (1 MB of the same kind
   of prose and JSON), against one precompiled ``re`` alternation of the same patterns (every
   detector's pattern, one ``finditer`` pass, no validation): the naive way to run the same rules.
"""

from __future__ import annotations

import functools
import json
import random
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._harness import Result

CALLS = 5_000
ROUNDS = 5
_PROSE = (
    "The customer asked twice about the refund for order ORD-2025-000123; escalate if the carrier has "
    "not confirmed delivery within 48 hours. Use the standard template and keep the tone friendly."
)
ARGS_CLEAN: dict[str, Any] = {
    "customer_id": "cus_9s6XKzkNRiz8i3",
    "query": "Find all orders placed last week that were shipped to the warehouse in Rotterdam and flag "
    "those with a delayed status for manual review by the logistics team.",
    "filters": {"status": ["shipped", "delayed"], "region": "eu-west", "since": "2025-01-05T00:00:00Z", "limit": 50},
    "notes": _PROSE,
    "trace": {
        "request_id": "d5a7e0c2-93b1-4f6e-8a2d-7c4b19e0f3a6",
        "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
    },
    "page": {"cursor": "b2Zmc2V0PTUwJmxpbWl0PTUw", "size": 50},
    "tags": ["priority", "eu", "logistics", "refund-followup"],
    "description": "Weekly reconciliation of shipments against carrier manifests; include partial "
    "deliveries and returns, exclude test accounts and internal transfers.",
}
ARGS_PII: dict[str, Any] = {
    **ARGS_CLEAN,
    "notes": _PROSE + " Reply to jane.doe@example.org or +44 20 7946 0958.",
    "payment": {"card": "4111 1111 1111 1111", "iban": "DE89370400440532013000"},
    "webhook": "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
}


def _otel(args_json: str) -> tuple[Any, Any]:
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
        "gen_ai.tool.name": "orders.search",
        "gen_ai.tool.call.id": str(uuid.uuid4()),
        "tripwire.risk": "low",
        "tripwire.args": args_json,
        "tripwire.args_hash": "9f" * 32,
        "tripwire.status": "ok",
        "tripwire.side_effect": False,
        "tripwire.run_id": str(uuid.uuid4()),
    }

    def loop(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span("execute_tool orders.search", attributes=attrs):
                pass

    return loop, provider


def _tripwire(spool: Path, args: dict[str, Any]) -> tuple[Any, Any]:
    from tripwire.producers import Tracer, TracerConfig

    tracer = Tracer.in_process(
        lambda k, v: None,
        TracerConfig(agent={"name": "bench-agent"}, delivery={"spool_dir": spool, "handle_signals": False}),
    )
    run = tracer.run(workflow="bench")
    run.start()

    def loop(n: int) -> None:
        for _ in range(n):
            with run.tool_call("orders.search", args=args):
                pass

    def close() -> None:
        run.finish()
        tracer.close()

    return loop, close, lambda: tracer.flush(120)


def _thread_us(fn: Any, n: int, flush: Any) -> tuple[float, float]:
    """(agent-thread CPU, whole-process CPU) per call in microseconds; ``flush`` drains the worker."""
    c0, p0 = time.thread_time(), time.process_time()
    fn(n)
    thread = (time.thread_time() - c0) / n * 1e6
    flush()
    return thread, (time.process_time() - p0) / n * 1e6


def bench_tool_call(tmp: Path) -> list[Result]:
    out = []
    for label, args in (("clean", ARGS_CLEAN), ("pii", ARGS_PII)):
        size = len(json.dumps(args))
        otel_loop, provider = _otel(json.dumps(args, sort_keys=True, separators=(",", ":")))
        tw_loop, tw_close, tw_flush = _tripwire(tmp / f"spool-{label}", args)
        otel_loop(500)
        tw_loop(500)
        tw_flush()
        otel_flush = functools.partial(provider.force_flush, 60_000)
        o, t = [], []
        for _ in range(ROUNDS):
            o.append(_thread_us(otel_loop, CALLS, otel_flush))
            t.append(_thread_us(tw_loop, CALLS, tw_flush))
        provider.shutdown()
        tw_close()
        om, tm = statistics.median(x[0] for x in o), statistics.median(x[0] for x in t)
        op, tp = statistics.median(x[1] for x in o), statistics.median(x[1] for x in t)
        extra = {"args_bytes": size, "rounds": ROUNDS, "calls_per_round": CALLS}
        out.append(Result(f"otel_span_1kb_attrs_{label}_cpu", om, "us/span", ratio=1.0, baseline=om, extra=extra))
        out.append(
            Result(
                f"sdk_tool_call_cpu_1kb_{label}",
                tm,
                "us/call",
                ratio=tm / om,
                baseline=om,
                goal="<= 0.5x OpenTelemetry",
                extra={**extra, "rounds_us": [round(x[0], 2) for x in t]},
            )
        )
        out.append(Result(f"otel_span_process_cpu_1kb_{label}", op, "us/span", ratio=1.0, baseline=op))
        out.append(
            Result(
                f"sdk_tool_call_process_cpu_1kb_{label}",
                tp,
                "us/call",
                ratio=tp / op,
                baseline=op,
                extra={**extra, "note": "agent thread + worker (args hash and redaction, encode, durable log)"},
            )
        )
    return out


def clean_text(size: int = 1 << 20) -> str:
    rng = random.Random(3)
    parts, n = [], 0
    while n < size:
        request = str(uuid.UUID(int=rng.getrandbits(128)))
        args = dict(ARGS_CLEAN, customer_id=f"cus_{rng.randrange(10**12):012d}", request=request)
        piece = rng.choice([_PROSE, json.dumps(args), "Shipment 4471 left Rotterdam on 2025-01-05 at 14:05."])
        parts.append(piece)
        n += len(piece) + 1
    return "\n".join(parts)[:size]


def naive_alternation() -> re.Pattern[str]:
    """Every detector's pattern in one alternation (inline ``(?i)`` flags scoped to their branch)."""
    from tripwire.redaction import ALL_DETECTORS

    def scoped(p: str) -> str:
        return f"(?i:{p[4:]})" if p.startswith("(?i)") else f"(?:{p})"

    return re.compile("|".join(scoped(d.pattern.pattern) for d in ALL_DETECTORS))


def bench_throughput() -> list[Result]:
    from tripwire.redaction import Redactor

    text = clean_text()
    mb = len(text.encode()) / 1e6
    red = Redactor()
    alt = naive_alternation()
    assert red.redact_text(text) == text, "the benchmark text must be clean"

    def ours() -> float:
        t0 = time.perf_counter()
        red.redact_text(text)
        return mb / (time.perf_counter() - t0)

    def naive() -> float:
        t0 = time.perf_counter()
        for _ in alt.finditer(text):
            pass
        return mb / (time.perf_counter() - t0)

    a, b = [], []
    for _ in range(3):
        a.append(ours())
        b.append(naive())
    o, n = statistics.median(a), statistics.median(b)
    return [
        Result("re_alternation_clean_mbps", n, "MB/s", ratio=1.0, baseline=n, extra={"mb": round(mb, 2)}),
        Result(
            "redaction_clean_mbps",
            o,
            "MB/s",
            ratio=o / n,
            baseline=n,
            goal="higher than one precompiled alternation",
            extra={"mb": round(mb, 2), "detectors": len(red.detectors)},
        ),
    ]


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as d:
        return [*bench_tool_call(Path(d)), *bench_throughput()]


if __name__ == "__main__":
    from benchmarks._harness import report

    report(run())
