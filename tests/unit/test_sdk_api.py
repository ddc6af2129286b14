"""The tracing API: events, nesting, errors, no-op mode, decorator, bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.unit._sdk_fixtures import make_tracer
from tripwire.producers import InvalidArgumentError, Tracer, TracerConfig
from tripwire.schemas import ModelCall, RunFinished, RunStarted, ToolCall

pytestmark = pytest.mark.unit


def test_run_emits_ordered_events_with_identity_and_trace(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, tenant="acme", environment="prod", agent_version="1.4.2")
    with tracer.run(workflow="refunds", principal="svc-refunds", conversation_id="c-1") as run:
        with run.model_call(provider="openai", model="gpt-4.1-mini") as call:
            call.record_usage(input_tokens=412, output_tokens=95, cache_read_tokens=400, finish_reason="stop")
        with run.tool_call(
            "stripe.issue_refund", args={"charge": "ch_1", "amount": 4999}, risk="high", idempotency_key="idem-1"
        ) as tc:
            pass
    assert tracer.flush(5)
    tracer.close()
    ev = got.events
    assert [type(e) for e in ev] == [RunStarted, ModelCall, ToolCall, RunFinished]
    assert [e.seq for e in ev] == [0, 1, 2, 3]
    assert all(k == run.run_id.encode() for k, _ in got.raw)
    started, mc, tool, fin = ev
    assert {(e.tenant, e.agent_id, e.agent_version, e.workflow, e.environment, e.principal) for e in ev} == {
        ("acme", "refund-assistant", "1.4.2", "refunds", "prod", "svc-refunds")
    }
    assert len({e.trace_id for e in ev}) == 1
    assert started.conversation_id == "c-1" and started.parent_run_id is None and started.parent_span_id is None
    assert mc.parent_span_id == started.span_id and tool.parent_span_id == started.span_id
    assert fin.span_id == started.span_id and fin.outcome == "success" and fin.last_seq == 3
    assert (mc.input_tokens, mc.cache_read_tokens, mc.output_tokens, mc.finish_reason) == (412, 400, 95, "stop")
    assert mc.status == "ok" and mc.cost_source == "price_table"
    assert tool.tool_call_id == tc.tool_call_id and tool.risk == "high" and tool.side_effect is True
    assert tool.idempotency_key == "idem-1" and tool.status == "ok"
    assert tool.args == '{"amount":4999,"charge":"ch_1"}'
    assert fin.ts_end >= fin.ts_start and tool.ts_end >= tool.ts_start


def test_exception_records_error_and_reraises_the_same_object(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path)
    boom = KeyError("no such charge")
    with pytest.raises(KeyError) as info, tracer.run(workflow="w") as run, run.tool_call("t", args={"a": 1}):
        raise boom
    assert info.value is boom
    with pytest.raises(TimeoutError), tracer.run() as run2, run2.model_call(provider="openai", model="gpt-4.1"):
        raise TimeoutError
    tracer.flush(5)
    tracer.close()
    tools, models, fins = got.of(ToolCall), got.of(ModelCall), got.of(RunFinished)
    assert (tools[0].status, tools[0].error_type) == ("error", "KeyError")
    assert (models[0].status, models[0].error_type) == ("timeout", "TimeoutError")
    assert [(f.outcome, f.error_type) for f in fins] == [("failure", "KeyError"), ("failure", "TimeoutError")]


def test_nested_spans_and_sub_agent_runs_through_contextvars(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path)

    async def main() -> None:
        async with tracer.run(workflow="parent") as parent, parent.tool_call("delegate", args={"q": "x"}) as tc:
            async with tracer.run(agent_id="sub-agent", workflow="child") as child:
                async with child.model_call(provider="openai", model="gpt-4.1-mini") as mc:
                    mc.record_usage(input_tokens=1, output_tokens=1)
                assert Tracer.current_run() is child
            assert Tracer.current_run() is parent
            assert child.parent_run_id == parent.run_id and child.trace_id == parent.trace_id
            assert child.parent_span_id == tc.span_id

    asyncio.run(main())
    tracer.close()
    ev = got.events
    child_start = next(e for e in ev if isinstance(e, RunStarted) and e.agent_id == "sub-agent")
    parent_start = next(e for e in ev if isinstance(e, RunStarted) and e.agent_id == "refund-assistant")
    tool = got.of(ToolCall)[0]
    assert child_start.parent_run_id == parent_start.run_id
    assert child_start.parent_span_id == tool.span_id
    assert child_start.trace_id == parent_start.trace_id
    mc = got.of(ModelCall)[0]
    assert mc.run_id == child_start.run_id and mc.parent_span_id == child_start.span_id


def test_decorator_sync_and_async(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path)

    @tracer.tool(risk="medium")
    def lookup(order_id: str, verbose: bool = False) -> str:
        return order_id.upper()

    @tracer.tool(risk="high", name="refund")
    async def refund(amount: int) -> int:
        await asyncio.sleep(0)
        return amount * 2

    with tracer.run(workflow="w"):
        assert lookup("ord_1") == "ORD_1"
        assert asyncio.run(refund(5)) == 10
    assert lookup("ord_2", verbose=True) == "ORD_2"  # outside a run: a one-call run of its own
    tracer.close()
    tools = got.of(ToolCall)
    assert [(t.tool_name, t.risk, t.args) for t in tools] == [
        ("test_decorator_sync_and_async.<locals>.lookup", "medium", '{"order_id":"ord_1","verbose":false}'),
        ("refund", "high", '{"amount":5}'),
        ("test_decorator_sync_and_async.<locals>.lookup", "medium", '{"order_id":"ord_2","verbose":true}'),
    ]
    assert len({t.run_id for t in tools}) == 2
    assert len(got.of(RunStarted)) == 2


def test_bad_input_raises_value_error_subclass_at_the_call_site(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path)
    with pytest.raises(InvalidArgumentError, match="agent_id"):
        tracer.run(agent_id="")
    with tracer.run() as run:
        with pytest.raises(InvalidArgumentError, match="input_tokens"), run.model_call(provider="o", model="m") as c:
            c.record_usage(input_tokens=-1)
        with pytest.raises(InvalidArgumentError, match="JSON-serializable"):
            run.tool_call("t", args={"when": object()})
        with pytest.raises(InvalidArgumentError, match="risk"):
            run.tool_call("t", risk="extreme")
        with pytest.raises(ValueError, match="cost_usd"), run.model_call(provider="o", model="m") as c:
            c.record_usage(cost_usd=float("nan"))
    with pytest.raises(InvalidArgumentError, match="max_tool_calls"):
        tracer.run(max_tool_calls=-2)
    tracer.close()
    # refused before anything was emitted for them; the model calls that did open were recorded as errors
    assert [e.status for e in got.of(ModelCall)] == ["error", "error"]
    assert got.of(ToolCall) == []


def test_noop_mode_when_disabled(tmp_path: Path) -> None:
    tracer = Tracer(TracerConfig(enabled=False, delivery={"spool_dir": tmp_path / "never"}))
    assert not tracer.enabled

    @tracer.tool(risk="high")
    def f(x: int) -> int:
        return x + 1

    with tracer.run(agent_id="a") as run:
        with run.model_call(provider="openai", model="m") as c:
            c.record_usage(input_tokens=1)
        with run.tool_call("t", args={"x": 1}):
            pass
        assert f(1) == 2
    assert tracer.flush(0) and tracer.close()
    assert tracer.counters().emitted == 0
    assert not (tmp_path / "never").exists()


def test_prompts_kept_only_when_store_prompts_is_on(tmp_path: Path) -> None:
    for store, expected in (("30_days", "Hi [REDACTED:EMAIL]"), (False, None)):
        tracer, got = make_tracer(tmp_path / str(store), logging={"store_prompts": store})
        with tracer.run() as run, run.model_call(provider="openai", model="gpt-4.1-mini") as c:
            c.record_prompt(prompt="Hi a@b.io", completion="ok")
        tracer.close()
        mc = got.of(ModelCall)[0]
        assert mc.prompt == expected
        assert mc.completion == ("ok" if store else None)


def test_args_not_logged_when_log_tool_args_is_none(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, logging={"log_tool_args": "none"})
    with tracer.run() as run, run.tool_call("t", args={"b": 2, "a": 1}):
        pass
    tracer.close()
    t = got.of(ToolCall)[0]
    import hashlib

    assert t.args is None
    assert t.args_hash == hashlib.sha256(b'{"a":1,"b":2}').hexdigest()


def test_set_outcome_and_budget_abort(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path)
    with tracer.run() as run:
        run.set_outcome("escalated")
    tracer.close()
    assert got.of(RunFinished)[0].outcome == "escalated"


@pytest.mark.parametrize("on_agent_thread", [True, False])
def test_both_encoding_places_give_the_same_events(tmp_path: Path, on_agent_thread: bool) -> None:
    tracer, got = make_tracer(tmp_path, delivery={"encode_on_agent_thread": on_agent_thread})
    with tracer.run(workflow="w", principal="p") as run, run.tool_call("t", args={"x": "café ✓"}):
        pass
    tracer.close()
    assert [type(e).__name__ for e in got.events] == ["RunStarted", "ToolCall", "RunFinished"]
    assert got.of(ToolCall)[0].args == '{"x":"café ✓"}'


def test_an_event_the_worker_cannot_encode_is_counted_not_raised(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path)
    with tracer.run() as run:
        run.emit(ToolCall, {"tool_name": object()})  # a broken record: the worker must survive it
        with run.tool_call("after"):
            pass
    assert tracer.flush(5)
    c = tracer.counters()
    tracer.close()
    assert [type(e).__name__ for e in got.events] == ["RunStarted", "ToolCall", "RunFinished"]
    assert (c.emitted, c.delivered, c.dropped) == (4, 3, 1)


def test_several_tracers_share_one_spool_root(tmp_path: Path) -> None:
    a, got_a = make_tracer(tmp_path)
    b, got_b = make_tracer(tmp_path)  # same spool root: each takes its own slot
    for t in (a, b):
        with t.run() as run, run.tool_call("x"):
            pass
    assert a.close() and b.close()
    assert (len(got_a.raw), len(got_b.raw)) == (3, 3)
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["slot-0", "slot-1"]


def test_log_records_carry_the_trace_context(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    tracer, _ = make_tracer(tmp_path, logging={"trace_id": True})
    log = logging.getLogger("agent.code")
    with caplog.at_level(logging.INFO, logger="agent.code"):
        log.info("before")
        with tracer.run() as run, run.tool_call("t") as tc:
            log.info("inside")
    tracer.close()
    before, inside = caplog.records
    assert (before.trace_id, before.run_id) == ("", "")
    assert (inside.trace_id, inside.span_id, inside.run_id) == (run.trace_id, tc.span_id, run.run_id)
