"""The dialect table and the span -> event mapping (pure: no servers, no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from tripwire.producers import CostCalculator, PriceOverrides
from tripwire.producers.config import RedactionSpec
from tripwire.producers.cost import PriceOverride
from tripwire.producers.otlp import Identity, MappingOptions, RawSpan, SpanMapper, read_facts, span_run_id, trace_run_id
from tripwire.redaction import Redactor
from tripwire.schemas import ModelCall, RunFinished, RunStarted, ToolCall, decode, encode

pytestmark = pytest.mark.unit

T = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_764_000_000_000_000


def test_genai_semconv_facts() -> None:
    f = read_facts({"gen_ai.operation.name": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "m",
                    "gen_ai.response.model": "m-1", "gen_ai.usage.input_tokens": 500,
                    "gen_ai.usage.output_tokens": 80, "gen_ai.usage.cache_read.input_tokens": 300,
                    "gen_ai.usage.cache_creation.input_tokens": 100, "gen_ai.usage.reasoning.output_tokens": 30,
                    "gen_ai.response.finish_reasons": ["stop"]})  # fmt: skip
    assert (f.role, f.dialect, f.operation, f.provider, f.request_model, f.response_model) == (
        "llm", "genai", "chat", "openai", "m", "m-1")  # fmt: skip
    assert (f.input_tokens, f.output_tokens, f.cache_read_tokens, f.cache_write_tokens, f.reasoning_tokens) == (
        500, 80, 300, 100, 30)  # fmt: skip
    assert f.finish_reason == "stop"
    # the newer provider attribute wins over gen_ai.system
    assert read_facts({"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "aws.bedrock",
                       "gen_ai.system": "x"}).provider == "aws.bedrock"  # fmt: skip
    assert read_facts({"gen_ai.operation.name": "create_agent"}).role == "other"
    assert read_facts({"http.method": "GET"}).role == "other"


def test_openinference_facts() -> None:
    f = read_facts({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini-2024-07-18",
                    "llm.provider": "openai", "llm.token_count.prompt": 1200, "llm.token_count.completion": 300,
                    "llm.token_count.prompt_details.cache_read": 1000,
                    "llm.token_count.completion_details.reasoning": 200, "llm.cost.total": 0.5,
                    "input.value": "hi", "output.value": "yo"})  # fmt: skip
    assert (f.role, f.dialect, f.operation, f.response_model, f.cost_usd) == (
        "llm", "openinference", "chat", "gpt-4o-mini-2024-07-18", 0.5)  # fmt: skip
    assert (f.input_tokens, f.cache_read_tokens, f.reasoning_tokens, f.prompt, f.completion) == (
        1200, 1000, 200, "hi", "yo")  # fmt: skip
    tool = read_facts({"openinference.span.kind": "TOOL", "tool.name": "t", "tool.id": "c1", "input.value": "{}",
                       "gen_ai.tool.call.arguments": '{"type":"object"}'})  # fmt: skip
    assert (tool.role, tool.tool_name, tool.tool_call_id, tool.tool_args) == ("tool", "t", "c1", "{}")
    assert read_facts({"openinference.span.kind": "CHAIN"}).role == "root_only"


def test_traceloop_facts() -> None:
    f = read_facts({"llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read_input_tokens": 1000, "gen_ai.usage.reasoning_tokens": 200,
                    "gen_ai.completion.0.finish_reason": "tool_calls"})  # fmt: skip
    assert (f.role, f.dialect, f.cache_read_tokens, f.reasoning_tokens, f.finish_reason) == (
        "llm", "traceloop", 1000, 200, "tool_calls")  # fmt: skip
    tool = read_facts({"traceloop.span.kind": "tool", "traceloop.entity.name": "lookup",
                       "traceloop.entity.input": '{"a":1}'})  # fmt: skip
    assert (tool.role, tool.tool_name, tool.tool_args, tool.tool_call_id) == ("tool", "lookup", '{"a":1}', None)
    wf = read_facts({"traceloop.span.kind": "workflow", "traceloop.entity.name": "refunds"})
    assert (wf.role, wf.operation, wf.agent_name) == ("agent", "invoke_workflow", "refunds")


def span(sid: int, parent: int | None, start: int, end: int, error: bool = False, **attrs: Any) -> RawSpan:
    return RawSpan(T, f"{sid:016x}", None if parent is None else f"{parent:016x}", f"s{sid}", T0 + start,
                   T0 + end, error, "", attrs, {"service.name": "svc", "service.version": "9"})  # fmt: skip


AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "root-agent", "gen_ai.agent.version": "1.0"}
SUB = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "sub-agent"}
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "my-model",
        "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
        "gen_ai.usage.cache_read.input_tokens": 400, "gen_ai.usage.reasoning.output_tokens": 40}  # fmt: skip
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund", "gen_ai.tool.call.id": "c1",
        "gen_ai.tool.call.arguments": '{"email": "jane@example.com", "amount": 5}'}  # fmt: skip


def mapper(**opts: Any) -> SpanMapper:
    prices = PriceOverrides([PriceOverride(model="my-model", start_date="2020-01-01", input_mtok=1.0,
                                           output_mtok=10.0, cache_read_mtok=0.5)])  # fmt: skip
    return SpanMapper(MappingOptions(**opts), Redactor.from_spec(RedactionSpec()), CostCalculator(prices))


def trace_spans() -> list[RawSpan]:
    """root agent 1 -> chat 2, tool 3, sub-agent 4 -> chat 5 (ends in that order: 2, 3, 5, 4, 1)."""
    return [span(2, 1, 10, 20, **CHAT), span(3, 1, 21, 30, **TOOL), span(5, 4, 40, 50, **CHAT),
            span(4, 1, 35, 60, **SUB), span(1, None, 0, 100, **AGENT)]  # fmt: skip


def by_run(events: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for e in events:
        out.setdefault(e.run_id, []).append(e)
    return out


def test_one_request_runs_subruns_tokens_cost_redaction() -> None:
    events, rejected, _ = mapper().map_spans(trace_spans(), Identity())
    assert rejected == 0
    for e in events:  # every event is a valid contract record
        assert decode(encode(e)) == e
    runs = by_run(events)
    root, sub = trace_run_id(T), span_run_id(T, f"{4:016x}")
    assert set(runs) == {root, sub}
    assert [(type(e).__name__, e.seq) for e in runs[root]] == [
        ("ModelCall", 1), ("ToolCall", 2), ("RunStarted", 0), ("RunFinished", 3)]  # fmt: skip
    assert [(type(e).__name__, e.seq) for e in runs[sub]] == [("ModelCall", 1), ("RunStarted", 0), ("RunFinished", 2)]
    sub_start = next(e for e in runs[sub] if isinstance(e, RunStarted))
    assert (sub_start.parent_run_id, sub_start.agent_id, sub_start.parent_span_id) == (root, "sub-agent", f"{1:016x}")
    root_start = next(e for e in runs[root] if isinstance(e, RunStarted))
    assert (root_start.parent_run_id, root_start.agent_id, root_start.agent_version) == (None, "root-agent", "1.0")
    call = next(e for e in runs[root] if isinstance(e, ModelCall))
    # disjoint counts: input excludes cache reads, output excludes reasoning
    assert (call.input_tokens, call.cache_read_tokens, call.output_tokens, call.reasoning_tokens) == (600, 400, 60, 40)
    assert call.cost_usd == pytest.approx((600 * 1.0 + 400 * 0.5 + 60 * 10.0 + 40 * 10.0) / 1e6, abs=1e-15)
    assert call.agent_id == "root-agent"  # its agent ancestor was in the same request
    tool = next(e for e in runs[root] if isinstance(e, ToolCall))
    assert tool.args == '{"amount":5,"email":"[REDACTED:EMAIL]"}' and tool.tool_call_id == "c1"
    import hashlib

    assert tool.args_hash == hashlib.sha256(b'{"amount":5,"email":"jane@example.com"}').hexdigest()


def test_out_of_order_requests_give_consistent_seqs_and_retries_the_same_ids() -> None:
    spans = trace_spans()
    m = mapper()
    batches = [[spans[2]], [spans[0], spans[1]], [spans[4]], [spans[3]]]  # sub-agent's root arrives last
    events = [e for b in batches for e in m.map_spans(b, Identity())[0]]
    runs = by_run(events)
    root = trace_run_id(T)
    # the chat of the sub-agent arrived before its agent span: counted in the trace run (documented limit)
    assert sorted(e.seq for e in runs[root]) == [0, 1, 2, 3, 4]
    fin = next(e for e in runs[root] if isinstance(e, RunFinished))
    assert fin.last_seq == 4
    sub = span_run_id(T, f"{4:016x}")
    assert [(type(e).__name__, e.seq) for e in runs[sub]] == [("RunStarted", 0), ("RunFinished", 1)]
    # a retry of any batch reproduces identical events (ids and seqs)
    again = [e for b in batches for e in m.map_spans(b, Identity())[0]]
    assert again == events


def test_failed_span_and_non_genai_root_make_a_trace_run() -> None:
    spans = [span(2, 1, 0, 5, error=True, **{**CHAT, "error.type": "RateLimitError"}),
             span(1, None, 0, 10, error=True, **{"http.method": "POST"})]  # fmt: skip
    events, _, _ = mapper(default_tenant="t0").map_spans(spans, Identity(tenant="acme", name="k"))
    assert [type(e).__name__ for e in events] == ["ModelCall", "RunStarted", "RunFinished"]
    call, started, finished = events
    assert (call.status.value, call.error_type, call.tenant) == ("error", "RateLimitError", "acme")
    assert (started.agent_id, started.agent_version) == ("svc", "9")  # from the resource
    assert (finished.outcome.value, finished.last_seq, call.seq) == ("failure", 2, 1)


def test_derived_ids_are_uuid5_of_the_namespace() -> None:
    import uuid

    from tripwire.producers.otlp.mapping import NAMESPACE, event_id, span_run_id, trace_run_id

    t, s = "0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7"
    assert trace_run_id(t) == str(uuid.uuid5(NAMESPACE, t))
    assert span_run_id(t, s) == str(uuid.uuid5(NAMESPACE, f"{t}/{s}"))
    assert event_id(t, s, "ToolCall") == str(uuid.uuid5(NAMESPACE, f"{t}:{s}:ToolCall"))
    assert event_id("é" * 40, s, "x") == str(uuid.uuid5(NAMESPACE, f"{'é' * 40}:{s}:x"))
