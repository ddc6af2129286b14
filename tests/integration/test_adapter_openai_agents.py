"""The OpenAI Agents SDK adapter with the real framework (openai-agents, its default Responses API model) and
the real broker; the only stand-in is the model endpoint (tests/integration/_model_server.py)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, function_tool, set_trace_processors
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI

from tests.integration._adapter_helpers import (
    AGENT,
    ARGS,
    TOOL,
    Rig,
    by_run,
    hand_instrumented,
    make_rig,
    shape,
)
from tests.integration._model_server import MODEL, ModelServer
from tripwire.producers import ApprovalRequest, ApprovalResult
from tripwire.producers.adapters.openai_agents import TripwireProcessor
from tripwire.schemas import ApprovalDecision, ToolCall

pytestmark = pytest.mark.integration


def run_agent(rig: Rig, server: ModelServer, on_call: Any = None) -> str:
    @function_tool(name_override=TOOL)
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Refund an order."""
        if on_call is not None:
            on_call()
        return f"refunded {amount_cents} on {order_id}"

    processor = TripwireProcessor(rig.tracer, risk={TOOL: "high"})
    set_trace_processors([processor])  # the tripwire processor only: nothing is exported to OpenAI
    try:
        model = OpenAIResponsesModel(MODEL, AsyncOpenAI(base_url=server.base_url, api_key="test-key", max_retries=0))
        agent = Agent(name="refunds", instructions="Refund orders.", model=model,
                      tools=processor.guard_tools([issue_refund]))
        return str(Runner.run_sync(agent, "refund A-1001", max_turns=10).final_output)
    finally:
        set_trace_processors([])


def told(server: ModelServer) -> list[str]:
    """The tool outputs the model was sent in its last request."""
    return [i["output"] for i in server.requests[-1]["input"] if i.get("type") == "function_call_output"]


@pytest.fixture
def rig(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(kafka_bootstrap, tmp_path, max_tool_calls=10)
    yield r
    r.close()


def test_two_step_agent_matches_the_hand_instrumented_run(rig: Rig) -> None:
    with ModelServer(TOOL, ARGS) as server:
        assert run_agent(rig, server) == "done: refund issued"
    assert all("input" in r and "messages" not in r for r in server.requests)  # the Responses API (the default)
    hand_instrumented(rig.tracer)
    runs = list(by_run(rig.events(expected=10)).values())
    assert len(runs) == 2
    adapter, reference = shape(runs[0]), shape(runs[1])
    assert adapter == reference
    assert [s[0] for s in adapter] == ["RunStarted", "ModelCall", "ToolCall", "ModelCall", "RunFinished"]
    assert adapter[1][2:9] == ("openai", MODEL, 120, 20, pytest.approx(120 * 0.4e-6 + 20 * 1.6e-6), "price_table",
                               "ok")
    assert adapter[2][2:6] == (TOOL, "high", adapter[2][4], "ok") and adapter[4][3] == "success"


def test_a_trip_mid_run_blocks_the_next_tool_call_and_a_forged_one_does_nothing(rig: Rig) -> None:
    calls: list[int] = []

    def on_call() -> None:  # while the agent is inside its first tool call, on-call trips the switch
        calls.append(1)
        if len(calls) == 1:
            rig.trip()

    with ModelServer(TOOL, ARGS, tool_rounds=3) as server:  # a forged trip during each of three tool calls
        run_agent(rig, server, on_call=lambda: rig.trip(forged=True))
    assert rig.guard.rejected == {"unknown_key": 3} and rig.guard.state.accepted == 0
    with ModelServer(TOOL, ARGS, tool_rounds=2) as server:
        assert run_agent(rig, server, on_call=on_call) == "done: refund issued"  # the agent carried on
        outputs = told(server)
    assert calls == [1]
    assert outputs[-1].startswith("tool call blocked by tripwire (ToolFrozen): kill switch: issue_refund is "
                                  f"frozen by freeze_tool on agent:{AGENT}/tool:{TOOL}")
    forged_run, tripped_run = by_run(rig.events(expected=9 + 7)).values()
    assert [t.status for t in forged_run if isinstance(t, ToolCall)] == ["ok"] * 3
    tools = [t for t in tripped_run if isinstance(t, ToolCall)]
    assert [(t.status, t.error_type) for t in tools] == [("ok", None), ("blocked", "ToolFrozen")]
    assert "refund storm" in tools[1].blocked_reason and tools[1].tool_call_id == "call_1"
    assert shape(tripped_run)[-1][3] == "success"


def test_a_tool_call_budget_of_two_stops_the_third_call(kafka_bootstrap: str, tmp_path: Path) -> None:
    rig = make_rig(kafka_bootstrap, tmp_path, max_tool_calls=2)
    ran: list[int] = []
    try:
        with ModelServer(TOOL, ARGS, tool_rounds=3) as server:
            run_agent(rig, server, on_call=lambda: ran.append(1))
            outputs = told(server)
        events = rig.events(expected=9)
    finally:
        rig.close()
    assert len(ran) == 2
    tools = [t for t in events if isinstance(t, ToolCall)]
    assert [(t.status, t.error_type, t.blocked_reason) for t in tools] == [
        ("ok", None, None), ("ok", None, None),
        ("blocked", "BudgetExceeded", "budget max_tool_calls exhausted: used 2 of 2")]
    assert outputs[-1] == "tool call blocked by tripwire (BudgetExceeded): budget max_tool_calls exhausted: used 2 of 2"


def test_an_approval_required_tool_waits_for_the_approver_and_records_the_decision(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    asked: queue.Queue[ApprovalRequest] = queue.Queue()
    answers: queue.Queue[ApprovalResult] = queue.Queue()

    async def approver(req: ApprovalRequest) -> ApprovalResult:  # a human, answering from another thread
        asked.put(req)
        return await asyncio.to_thread(answers.get, True, 30)

    rig = make_rig(kafka_bootstrap, tmp_path, approver=approver, max_tool_calls=10)
    ran: list[int] = []
    result: list[str] = []
    try:
        rig.trip("disable_autonomy", scope=f"agent:{AGENT}", reason="cost spike")
        with ModelServer(TOOL, ARGS) as server:
            agent = threading.Thread(target=lambda: result.append(run_agent(rig, server, lambda: ran.append(1))))
            agent.start()
            req = asked.get(timeout=30)
            assert ran == [] and req.request.tool_name == TOOL and req.request.args == ARGS
            assert req.reason == f"kill switch: disable_autonomy on agent:{AGENT} (cost spike)"
            answers.put(ApprovalResult(True, approver="alice", reason="checked"))
            agent.join(timeout=60)
        assert ran == [1] and result == ["done: refund issued"]
        events = rig.events(expected=6)
    finally:
        rig.close()
    assert [s[0] for s in shape(events)] == ["RunStarted", "ModelCall", "ApprovalDecision", "ToolCall", "ModelCall",
                                             "RunFinished"]
    [decision] = [e for e in events if isinstance(e, ApprovalDecision)]
    [call] = [e for e in events if isinstance(e, ToolCall)]
    assert (decision.decision, decision.approver, decision.reason) == ("approved", "alice", "checked")
    assert (call.status, call.approval_ref) == ("ok", decision.event_id)
