"""The LangChain/LangGraph adapter with the real frameworks (langchain-core, langgraph, langchain-openai's
ChatOpenAI) and the real broker; the only stand-in is the model endpoint (tests/integration/_model_server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langchain_openai")

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command

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
from tripwire.producers.adapters.langchain import (
    TripwireCallbackHandler,
    interrupt_approver,
    tool_blocked_message,
)
from tripwire.schemas import ApprovalDecision, ToolCall

pytestmark = pytest.mark.integration


def build_graph(server: ModelServer, on_call: Any = None, checkpointer: Any = None) -> Any:
    @tool(TOOL)
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Refund an order."""
        if on_call is not None:
            on_call()
        return f"refunded {amount_cents} on {order_id}"

    model = ChatOpenAI(model=MODEL, base_url=server.base_url, api_key="test-key", max_retries=0).bind_tools(
        [issue_refund])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode([issue_refund], handle_tool_errors=tool_blocked_message))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition)
    g.add_edge("tools", "agent")
    return g.compile(checkpointer=checkpointer)


def handler(rig: Rig) -> TripwireCallbackHandler:
    return TripwireCallbackHandler(rig.tracer, risk={TOOL: "high"})


@pytest.fixture
def rig(kafka_bootstrap: str, tmp_path: Path):
    r = make_rig(kafka_bootstrap, tmp_path, max_tool_calls=10)
    yield r
    r.close()


def test_two_step_agent_matches_the_hand_instrumented_run(rig: Rig) -> None:
    with ModelServer(TOOL, ARGS) as server:
        out = build_graph(server).invoke({"messages": [HumanMessage("refund A-1001")]},
                                         config={"callbacks": [handler(rig)]})
    assert out["messages"][-1].content == "done: refund issued"
    hand_instrumented(rig.tracer)
    runs = list(by_run(rig.events(expected=10)).values())
    assert len(runs) == 2
    adapter, reference = shape(runs[0]), shape(runs[1])
    assert adapter == reference
    assert [s[0] for s in adapter] == ["RunStarted", "ModelCall", "ToolCall", "ModelCall", "RunFinished"]
    assert adapter[1][4:9] == (120, 20, pytest.approx(120 * 0.4e-6 + 20 * 1.6e-6), "price_table", "ok")
    assert adapter[2][2:6] == (TOOL, "high", adapter[2][4], "ok") and adapter[4][3] == "success"


def test_a_trip_mid_run_blocks_the_next_tool_call_and_a_forged_one_does_nothing(rig: Rig) -> None:
    calls: list[int] = []

    def on_call() -> None:  # while the agent is inside its first tool call, on-call trips the switch
        calls.append(1)
        if len(calls) == 1:
            rig.trip()

    with ModelServer(TOOL, ARGS, tool_rounds=3) as server:  # a forged trip during each of three tool calls
        forged = build_graph(server, on_call=lambda: rig.trip(forged=True))
        forged.invoke({"messages": [HumanMessage("refund")]}, config={"callbacks": [handler(rig)]})
    assert rig.guard.rejected == {"unknown_key": 3} and rig.guard.state.accepted == 0
    with ModelServer(TOOL, ARGS, tool_rounds=2) as server:
        out = build_graph(server, on_call=on_call).invoke({"messages": [HumanMessage("refund")]},
                                                           config={"callbacks": [handler(rig)]})
        told = [m for m in server.requests[-1]["messages"] if m["role"] == "tool"]
    assert calls == [1]
    assert out["messages"][-1].content == "done: refund issued"  # the agent carried on, nothing crashed
    assert told[-1]["content"].startswith("tool call blocked by tripwire (ToolFrozen): kill switch: issue_refund is "
                                          f"frozen by freeze_tool on agent:{AGENT}/tool:{TOOL}")
    forged_run, tripped_run = by_run(rig.events(expected=9 + 7)).values()
    assert [t.status for t in forged_run if isinstance(t, ToolCall)] == ["ok"] * 3  # forgeries changed nothing
    tools = [t for t in tripped_run if isinstance(t, ToolCall)]
    assert [(t.status, t.error_type) for t in tools] == [("ok", None), ("blocked", "ToolFrozen")]
    assert "refund storm" in tools[1].blocked_reason and tools[1].tool_name == TOOL
    assert shape(tripped_run)[-1][3] == "success"


def test_a_tool_call_budget_of_two_stops_the_third_call(kafka_bootstrap: str, tmp_path: Path) -> None:
    rig = make_rig(kafka_bootstrap, tmp_path, max_tool_calls=2)
    ran: list[int] = []
    try:
        with ModelServer(TOOL, ARGS, tool_rounds=3) as server:
            build_graph(server, on_call=lambda: ran.append(1)).invoke(
                {"messages": [HumanMessage("refund")]}, config={"callbacks": [handler(rig)]})
            told = [m for m in server.requests[-1]["messages"] if m["role"] == "tool"]
        events = rig.events(expected=9)
    finally:
        rig.close()
    assert len(ran) == 2
    tools = [t for t in events if isinstance(t, ToolCall)]
    assert [(t.status, t.error_type, t.blocked_reason) for t in tools] == [
        ("ok", None, None), ("ok", None, None),
        ("blocked", "BudgetExceeded", "budget max_tool_calls exhausted: used 2 of 2")]
    assert told[-1]["content"] == ("tool call blocked by tripwire (BudgetExceeded): "
                                   "budget max_tool_calls exhausted: used 2 of 2")


def test_an_approval_required_tool_waits_for_the_approver_and_records_the_decision(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rig = make_rig(kafka_bootstrap, tmp_path, approver=interrupt_approver(), max_tool_calls=10)
    ran: list[int] = []
    try:
        rig.trip("disable_autonomy", scope=f"agent:{AGENT}", reason="cost spike")
        h = handler(rig)
        config: Any = {"callbacks": [h], "configurable": {"thread_id": "t1"}}
        with ModelServer(TOOL, ARGS) as server:
            graph = build_graph(server, on_call=lambda: ran.append(1), checkpointer=InMemorySaver())
            paused = graph.invoke({"messages": [HumanMessage("refund")]}, config=config)
            [pending] = paused["__interrupt__"]
            assert ran == [] and pending.value["tool"] == TOOL and pending.value["args"] == ARGS
            assert pending.value["reason"] == f"kill switch: disable_autonomy on agent:{AGENT} (cost spike)"
            assert rig.tracer.flush(10) and h.run is not None and h.run.budget.tool_calls == 0
            out = graph.invoke(Command(resume={"approved": True, "approver": "alice", "reason": "checked"}),
                               config=config)
        assert ran == [1] and out["messages"][-1].content == "done: refund issued"
        assert isinstance(out["messages"][-2], ToolMessage) and out["messages"][-2].status == "success"
        events = rig.events(expected=6)
    finally:
        rig.close()
    assert [s[0] for s in shape(events)] == ["RunStarted", "ModelCall", "ApprovalDecision", "ToolCall", "ModelCall",
                                             "RunFinished"]  # one run across the pause
    [decision] = [e for e in events if isinstance(e, ApprovalDecision)]
    [call] = [e for e in events if isinstance(e, ToolCall)]
    assert (decision.decision, decision.approver, decision.reason) == ("approved", "alice", "checked")
    assert (call.status, call.approval_ref) == ("ok", decision.event_id)
