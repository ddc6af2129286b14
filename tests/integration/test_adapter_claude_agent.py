"""The Claude Agent SDK adapter with the real SDK and its bundled Claude Code CLI, and the real broker. The CLI
runs locally; the only stand-in is the model endpoint it calls (``ANTHROPIC_BASE_URL`` -> the Anthropic messages
API of tests/integration/_model_server.py). The tool is an in-process SDK MCP tool."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("claude_agent_sdk")

from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, create_sdk_mcp_server, query, tool

from tests.integration._adapter_helpers import AGENT, ARGS, Rig, by_run, hand_instrumented, make_rig, shape
from tests.integration._model_server import ModelServer
from tripwire.producers import ApprovalRequest, ApprovalResult
from tripwire.producers.adapters.claude_agent import TripwireHooks
from tripwire.schemas import ApprovalDecision, ToolCall

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODEL = "claude-haiku-4-5"
TOOL = "mcp__refunds__issue_refund"


def run_agent(rig: Rig, server: ModelServer, home: Path, on_call: Any = None) -> ResultMessage:
    @tool("issue_refund", "Refund an order.", {"order_id": str, "amount_cents": int})
    async def issue_refund(args: dict[str, Any]) -> dict[str, Any]:
        if on_call is not None:
            on_call()
        return {"content": [{"type": "text", "text": f"refunded {args['amount_cents']} on {args['order_id']}"}]}

    tw = TripwireHooks(rig.tracer, risk={TOOL: "high"})
    home.mkdir(parents=True, exist_ok=True)
    options = ClaudeAgentOptions(
        model=MODEL, hooks=tw.hooks(), mcp_servers={"refunds": create_sdk_mcp_server("refunds", tools=[issue_refund])},
        allowed_tools=[TOOL], max_turns=10, cwd=str(home), include_partial_messages=True,
        env={"ANTHROPIC_BASE_URL": server.base_url.removesuffix("/v1"), "ANTHROPIC_API_KEY": "test-key",
             "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude"),
             "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"})

    async def main() -> ResultMessage:
        result = None
        async for message in query(prompt="refund A-1001", options=options):
            tw.observe(message)
            if isinstance(message, ResultMessage):
                result = message
        assert result is not None
        return result

    return asyncio.run(main())


def told(server: ModelServer) -> list[str]:
    """The tool results the model was sent in its last request."""
    out = []
    for m in server.requests[-1]["messages"]:
        for b in m["content"] if isinstance(m.get("content"), list) else []:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                c = b["content"]
                out.append(c if isinstance(c, str) else "".join(x.get("text", "") for x in c))
    return out


@pytest.fixture
def rig(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(kafka_bootstrap, tmp_path, max_tool_calls=10)
    yield r
    r.close()


def test_two_step_agent_matches_the_hand_instrumented_run(rig: Rig, tmp_path: Path) -> None:
    with ModelServer(TOOL, ARGS) as server:
        result = run_agent(rig, server, tmp_path / "home")
    assert (result.is_error, result.result) == (False, "done: refund issued")
    hand_instrumented(rig.tracer, provider="anthropic", model=MODEL, tool=TOOL)
    runs = list(by_run(rig.events(expected=10)).values())
    assert len(runs) == 2
    adapter, reference = shape(runs[0]), shape(runs[1])
    assert adapter == reference
    assert [s[0] for s in adapter] == ["RunStarted", "ModelCall", "ToolCall", "ModelCall", "RunFinished"]
    assert adapter[1][2:9] == ("anthropic", MODEL, 120, 20, pytest.approx(120 * 1e-6 + 20 * 5e-6), "price_table",
                               "ok")
    assert adapter[2][2:6] == (TOOL, "high", adapter[2][4], "ok") and adapter[4][3] == "success"


def test_a_trip_mid_run_blocks_the_next_tool_call_and_a_forged_one_does_nothing(rig: Rig, tmp_path: Path) -> None:
    scope = f"agent:{AGENT}/tool:{TOOL}"
    calls: list[int] = []

    def on_call() -> None:  # while the agent is inside its first tool call, on-call trips the switch
        calls.append(1)
        if len(calls) == 1:
            rig.trip(scope=scope)

    with ModelServer(TOOL, ARGS, tool_rounds=3) as server:  # a forged trip during each of three tool calls
        run_agent(rig, server, tmp_path / "h1", on_call=lambda: rig.trip(scope=scope, forged=True))
    assert rig.guard.rejected == {"unknown_key": 3} and rig.guard.state.accepted == 0
    with ModelServer(TOOL, ARGS, tool_rounds=2) as server:
        result = run_agent(rig, server, tmp_path / "h2", on_call=on_call)
        outputs = told(server)
    assert calls == [1] and result.result == "done: refund issued"  # the agent carried on
    assert (f"tool call blocked by tripwire (ToolFrozen): kill switch: {TOOL} is frozen by freeze_tool on {scope}"
            in outputs[-1])
    forged_run, tripped_run = by_run(rig.events(expected=9 + 7)).values()
    assert [t.status for t in forged_run if isinstance(t, ToolCall)] == ["ok"] * 3
    tools = [t for t in tripped_run if isinstance(t, ToolCall)]
    assert [(t.status, t.error_type) for t in tools] == [("ok", None), ("blocked", "ToolFrozen")]
    assert "refund storm" in tools[1].blocked_reason and tools[1].tool_call_id == "toolu_1"


def test_a_tool_call_budget_of_two_stops_the_third_call(kafka_bootstrap: str, tmp_path: Path) -> None:
    rig = make_rig(kafka_bootstrap, tmp_path, max_tool_calls=2)
    ran: list[int] = []
    try:
        with ModelServer(TOOL, ARGS, tool_rounds=3) as server:
            run_agent(rig, server, tmp_path / "home", on_call=lambda: ran.append(1))
            outputs = told(server)
        events = rig.events(expected=9)
    finally:
        rig.close()
    assert len(ran) == 2
    tools = [t for t in events if isinstance(t, ToolCall)]
    assert [(t.status, t.error_type, t.blocked_reason) for t in tools] == [
        ("ok", None, None), ("ok", None, None),
        ("blocked", "BudgetExceeded", "budget max_tool_calls exhausted: used 2 of 2")]
    assert "tool call blocked by tripwire (BudgetExceeded): budget max_tool_calls exhausted: used 2 of 2" in outputs[-1]


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
    result: list[ResultMessage] = []
    try:
        rig.trip("disable_autonomy", scope=f"agent:{AGENT}", reason="cost spike")
        with ModelServer(TOOL, ARGS) as server:
            agent = threading.Thread(
                target=lambda: result.append(run_agent(rig, server, tmp_path / "home", lambda: ran.append(1))))
            agent.start()
            req = asked.get(timeout=60)
            assert ran == [] and req.request.tool_name == TOOL and req.request.args == ARGS
            assert req.reason == f"kill switch: disable_autonomy on agent:{AGENT} (cost spike)"
            answers.put(ApprovalResult(True, approver="alice", reason="checked"))
            agent.join(timeout=120)
        assert ran == [1] and result[0].result == "done: refund issued"
        events = rig.events(expected=6)
    finally:
        rig.close()
    assert [s[0] for s in shape(events)] == ["RunStarted", "ModelCall", "ApprovalDecision", "ToolCall", "ModelCall",
                                             "RunFinished"]
    [decision] = [e for e in events if isinstance(e, ApprovalDecision)]
    [call] = [e for e in events if isinstance(e, ToolCall)]
    assert (decision.decision, decision.approver, decision.reason) == ("approved", "alice", "checked")
    assert (call.status, call.approval_ref) == ("ok", decision.event_id)
