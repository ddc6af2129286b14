"""The OTLP receiver with real emitters, the real broker, the real processors and chdb.

The only stand-in is the LLM endpoint (tests/otlp_helpers.py: a local chat-completions server with
cached and reasoning tokens and one tool call). The ``openai`` client is instrumented by the real
``opentelemetry-instrumentation-openai-v2`` (OTel GenAI semconv) or ``openinference-instrumentation-openai``
and exports through the real OTLP/HTTP and OTLP/gRPC exporters of the OpenTelemetry SDK.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WaitTimeout, uid, wait_until
from tests.otlp_helpers import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    RESPONSE_MODEL,
    TOOL,
    fake_openai,
    run_agent,
    tracer_provider,
)
from tests.proc_kafka import CommittedReader, WorkerProcess, setup, wait_for
from tests.store_helpers import chdb_store  # noqa: F401 - fixture
from tripwire.producers import CostCalculator, TokenUsage, TracerConfig
from tripwire.producers.otlp import OtlpReceiver, OtlpSettings, Servers, serve, trace_run_id
from tripwire.schemas import ModelCall, RunFinished, RunStarted, ToolCall

pytestmark = pytest.mark.integration

# gpt-4o-mini list prices (USD per million tokens): input 0.15, cached input 0.075, output 0.60
GENAI_COST = (PROMPT_TOKENS * 0.15 + COMPLETION_TOKENS * 0.60) / 1e6  # openai-v2 reports no cache/reasoning
OPENINFERENCE_COST = (
    (PROMPT_TOKENS - CACHED_TOKENS) * 0.15 + CACHED_TOKENS * 0.075 + COMPLETION_TOKENS * 0.60
) / 1e6  # reasoning tokens are priced as output


@dataclass
class Env:
    bootstrap: str
    prefix: str
    tmp: Path
    receiver: OtlpReceiver
    servers: Servers
    events_topic: str
    config: Any
    topics: Any
    tracer_config: TracerConfig

    def restart(self) -> None:
        """Stop the receiver (its in-memory dedup is gone) and start a new one on new ports."""
        self.servers.stop()
        self.receiver.close(5)
        self.receiver = OtlpReceiver(OtlpSettings(host="127.0.0.1", http_port=0, grpc_port=0), self.tracer_config)
        self.servers = serve(self.receiver)

    @property
    def http_url(self) -> str:
        assert self.servers.http is not None
        return f"http://127.0.0.1:{self.servers.http.port}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        assert self.servers.grpc is not None
        return f"127.0.0.1:{self.servers.grpc.port}"  # type: ignore[attr-defined]


@pytest.fixture
def env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Env]:
    prefix = uid("otlp")
    config, topics = setup(kafka_bootstrap, prefix, tmp_path, partitions=2, inactivity_timeout_s=30)
    tcfg = TracerConfig(
        tenant="acme",
        kafka={"bootstrap": kafka_bootstrap, "topic": topics.events},
        delivery={"spool_dir": tmp_path / "spool", "handle_signals": False},
    )
    receiver = OtlpReceiver(OtlpSettings(host="127.0.0.1", http_port=0, grpc_port=0), tcfg)
    servers = serve(receiver)
    e = Env(kafka_bootstrap, prefix, tmp_path, receiver, servers, topics.events, config, topics, tcfg)
    try:
        yield e
    finally:
        e.servers.stop()
        e.receiver.close(5)


@pytest.fixture
def openai_v2() -> Iterator[Any]:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    inst = OpenAIInstrumentor()
    yield inst
    inst.uninstrument()


def _export_run(exporter: Any, instrumentor: Any, loops: int, semconv: bool = True) -> None:
    import openai

    tp = tracer_provider(exporter)
    instrumentor.instrument(tracer_provider=tp)
    with fake_openai() as fo:
        client = openai.OpenAI(base_url=fo.base_url, api_key="sk-test", max_retries=0)
        run_agent(client, tp.get_tracer("app"), loops=loops, semconv=semconv)
        assert tp.force_flush(10_000)
    tp.shutdown()


def _read_events(env: Env, count: int) -> list[Any]:
    reader = CommittedReader(env.bootstrap, env.events_topic, committed=False)
    try:
        wait_until(lambda: len(reader.poll()) >= count, timeout=30, message=f"{count} events on the topic")
        reader.poll()
        return list(reader.records)
    finally:
        reader.close()


def _check_run(events: list[Any], loops: int, agent: str = "refund-assistant") -> tuple[RunStarted, list[Any]]:
    """One run: RunStarted, 2 model calls and 1 tool call per loop, RunFinished; seqs 0..last exactly."""
    kinds = [type(e) for e in events]
    assert kinds.count(RunStarted) == 1 and kinds.count(RunFinished) == 1
    assert kinds.count(ModelCall) == 2 * loops and kinds.count(ToolCall) == loops
    started = next(e for e in events if isinstance(e, RunStarted))
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert {e.trace_id for e in events} == {started.trace_id}
    assert {e.run_id for e in events} == {trace_run_id(started.trace_id)}
    assert len({e.event_id for e in events}) == len(events)
    assert sorted(e.seq for e in events) == list(range(finished.last_seq + 1))
    assert started.seq == 0 and finished.last_seq == len(events) - 1
    assert (started.agent_id, started.agent_version, started.conversation_id) == (agent, "3.0.1", "conv-42")
    assert started.parent_run_id is None and started.parent_span_id is None
    assert finished.outcome.value == "success"
    assert {e.tenant for e in events} == {"acme"} and {e.environment for e in events} == {"test"}
    children = [e for e in events if isinstance(e, ModelCall | ToolCall)]
    assert {e.parent_span_id for e in children} == {started.span_id}
    tools = [e for e in events if isinstance(e, ToolCall)]
    assert {t.tool_name for t in tools} == {TOOL}
    assert len({t.args_hash for t in tools}) == 1 and tools[0].args == '{"order_id":"A-1001"}'
    return started, children


def test_openai_v2_http_events_summary_and_runaway_alert(env: Env, openai_v2: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    loops = 5  # the same tool with the same args 5 times: the default runaway_loop limit
    _export_run(OTLPSpanExporter(endpoint=env.http_url), openai_v2, loops)
    events = _read_events(env, 3 * loops + 2)
    assert len(events) == 3 * loops + 2
    started, _ = _check_run(events, loops)
    calls = [e for e in events if isinstance(e, ModelCall)]
    expected = CostCalculator().compute("openai", RESPONSE_MODEL, TokenUsage(PROMPT_TOKENS, 0, 0, COMPLETION_TOKENS, 0))
    for c in calls:
        assert (c.provider, c.request_model, c.response_model) == ("openai", "gpt-4o-mini", RESPONSE_MODEL)
        assert (c.input_tokens, c.output_tokens, c.cache_read_tokens, c.reasoning_tokens) == (
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
            0,
            0,
        )
        assert c.cost_usd == expected.cost_usd and c.cost_source.value == "price_table"
        assert c.cost_usd == pytest.approx(GENAI_COST, abs=1e-12)
        assert c.status.value == "ok" and c.prompt is None  # store_prompts is off
    assert sorted(c.finish_reason for c in calls) == ["stop"] * loops + ["tool_calls"] * loops

    # the real processors: a RunSummary and a runaway-loop alert
    worker = WorkerProcess(env.config, env.tmp / "worker.log").start()
    runs = CommittedReader(env.bootstrap, env.topics.runs)
    alerts = CommittedReader(env.bootstrap, env.topics.alerts)
    try:
        run_id = started.run_id
        got = wait_for(
            runs,
            lambda rs: [r for r in rs if r.run_id == run_id and r.outcome == "success"],
            90,
            "the run's summary",
            worker,
        )
        summary = next(r for r in got if r.run_id == run_id and r.outcome == "success")
        assert (summary.agent_id, summary.agent_version, summary.tenant) == ("refund-assistant", "3.0.1", "acme")
        assert (summary.model_calls, summary.tool_calls, summary.errors) == (2 * loops, loops, 0)
        assert summary.input_tokens == 2 * loops * PROMPT_TOKENS
        assert summary.cost_usd == pytest.approx(2 * loops * GENAI_COST, abs=1e-9)
        assert summary.missing_seqs == [] and summary.events_seen == 3 * loops + 2
        found = wait_for(
            alerts,
            lambda rs: [a for a in rs if a.kind == "runaway_loop" and a.run_id == run_id],
            60,
            "a runaway_loop alert",
            worker,
        )
        alert = next(a for a in found if a.kind == "runaway_loop")
        assert (alert.tool_name, alert.observed, alert.threshold) == (TOOL, float(loops), float(loops))
    finally:
        runs.close()
        alerts.close()
        worker.stop()


class _Recording:
    """A SpanExporter that forwards to a real OTLP exporter and keeps what it exported (to replay it)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.batches, self.lock = inner, [], threading.Lock()

    def export(self, spans: Any) -> Any:
        with self.lock:
            self.batches.append(list(spans))
        return self.inner.export(spans)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_openai_v2_grpc_replayed_export_is_stored_once(env: Env, openai_v2: Any, chdb_store: Any) -> None:  # noqa: F811
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from tripwire.schemas import topic_names
    from tripwire.sinks import SinkSettings
    from tripwire.sinks.kafka_sink import KafkaSink

    loops = 2
    grpc_exporter = OTLPSpanExporter(endpoint=env.grpc_endpoint, insecure=True)
    rec = _Recording(grpc_exporter)
    _export_run(rec, openai_v2, loops)
    n = 3 * loops + 2
    events = _read_events(env, n)
    _check_run(events, loops)
    # the exporter retries / a batch is replayed: the same spans again, through the real exporter
    for batch in rec.batches:
        assert grpc_exporter.export(batch) == SpanExportResult.SUCCESS
    assert env.receiver.counters.as_dict()["duplicates"] == n
    assert len(_read_events(env, n)) == n
    # ... and again after a receiver restart: the new receiver produces them again (same event ids)
    env.restart()
    again = OTLPSpanExporter(endpoint=env.grpc_endpoint, insecure=True)
    spans = [s for batch in rec.batches for s in batch]
    for one in reversed(spans):  # one span a request, in reverse: a fresh counter would number them anew
        assert again.export([one]) == SpanExportResult.SUCCESS
    again.shutdown()
    replayed = _read_events(env, 2 * n)
    assert len(replayed) == 2 * n
    assert sorted(e.event_id for e in replayed) == sorted(2 * [e.event_id for e in events])
    # ... with the seqs they had (the run counters and memo kept beside the spool): the processors,
    # which deduplicate a run's events by (run_id, seq), drop the replay instead of counting it again
    first_seq = {e.event_id: (e.run_id, e.seq) for e in events}
    assert {e.event_id: (e.run_id, e.seq) for e in replayed} == first_seq

    sink = KafkaSink(
        chdb_store,
        SinkSettings(bootstrap=env.bootstrap, group_id=uid("g"), batch_seconds=0.2, poll_timeout_s=0.05),
        topics=topic_names(env.prefix),
    )
    done = threading.Event()
    t = threading.Thread(target=sink.run, kwargs={"until": lambda: done.is_set()}, daemon=True)
    t.start()
    try:
        run_id = events[0].run_id

        stats = sink.sink.stats

        def stored_or_dropped() -> bool:
            return stats.rows_inserted + stats.deduplicated >= 2 * n and stats.commits > 0

        try:
            wait_until(stored_or_dropped, timeout=60, message=f"{2 * n} events stored or dropped as duplicates")
        except WaitTimeout:
            dead = chdb_store.query("SELECT source_topic, reason FROM dead_letters").rows
            raise AssertionError(f"sink stats {stats}, dead letters {dead}") from None
        assert (stats.rows_inserted, stats.deduplicated) == (n, n)
        for table, count in (("model_calls", 2 * loops), ("tool_calls", loops), ("run_events", 2)):
            got = chdb_store.query(
                f"SELECT count(), uniqExact(event_id) FROM {table} WHERE run_id = {{r:String}}", {"r": run_id}
            ).rows[0]
            assert tuple(got) == (count, count), table
    finally:
        done.set()
        t.join(30)


def test_openinference_http_tokens_cost_and_parents(env: Env) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    inst = OpenAIInstrumentor()
    try:
        _export_run(OTLPSpanExporter(endpoint=env.http_url), inst, loops=2, semconv=False)
    finally:
        inst.uninstrument()
    events = _read_events(env, 8)
    assert len(events) == 8
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.agent_id == "refund-assistant" and started.conversation_id == "conv-42"
    calls = [e for e in events if isinstance(e, ModelCall)]
    tools = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 4 and len(tools) == 2
    assert {t.tool_name for t in tools} == {TOOL} and all(t.tool_call_id.startswith("call_") for t in tools)
    for c in calls:
        assert (c.input_tokens, c.cache_read_tokens, c.output_tokens, c.reasoning_tokens) == (
            PROMPT_TOKENS - CACHED_TOKENS,
            CACHED_TOKENS,
            COMPLETION_TOKENS - REASONING_TOKENS,
            REASONING_TOKENS,
        )
        assert c.response_model == RESPONSE_MODEL and c.provider == "openai"
        assert c.cost_usd == pytest.approx(OPENINFERENCE_COST, abs=1e-12)
    assert {e.run_id for e in events} == {started.run_id}
    assert {e.parent_span_id for e in calls + tools} == {started.span_id}
    assert sorted(e.seq for e in events) == list(range(8))


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "otlp" / "traceloop_openai.pb"


def test_traceloop_recorded_trace_over_http(env: Env) -> None:
    """A trace recorded from the real traceloop-sdk 0.62.4 (tests/fixtures/otlp/record_traceloop.py),
    posted as its OTLP/HTTP exporter would."""
    import httpx

    r = httpx.post(env.http_url, content=FIXTURE.read_bytes(), headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200
    events = _read_events(env, 8)
    assert len(events) == 8
    started = next(e for e in events if isinstance(e, RunStarted))
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert (started.agent_id, started.agent_version, started.run_id) == (
        "refund-assistant", "2.1.0", trace_run_id(started.trace_id))  # fmt: skip
    assert finished.outcome.value == "success" and finished.last_seq == 7
    calls = [e for e in events if isinstance(e, ModelCall)]
    tools = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 4 and len(tools) == 2
    for c in calls:
        assert (c.input_tokens, c.cache_read_tokens, c.output_tokens, c.reasoning_tokens) == (
            PROMPT_TOKENS - CACHED_TOKENS,
            CACHED_TOKENS,
            COMPLETION_TOKENS - REASONING_TOKENS,
            REASONING_TOKENS,
        )
        assert c.cost_usd == pytest.approx(OPENINFERENCE_COST, abs=1e-12)
        assert (c.request_model, c.response_model, c.agent_id) == ("gpt-4o-mini", RESPONSE_MODEL, "refund-assistant")
    assert sorted(c.finish_reason for c in calls) == ["stop", "stop", "tool_call", "tool_call"]
    assert {t.tool_name for t in tools} == {TOOL} and {t.args for t in tools} == {'{"order_id":"A-1001"}'}
    assert {t.tool_call_id for t in tools} == {t.span_id for t in tools}  # traceloop sends no call id
    assert {e.run_id for e in events} == {started.run_id}
    assert {e.parent_span_id for e in calls + tools} == {started.span_id}
    assert sorted(e.seq for e in events) == list(range(8))
