"""Budgets (race-free reserve/commit) and the guard/approver hooks."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.unit._sdk_fixtures import make_tracer
from tripwire.producers import (
    ALLOW,
    ApprovalDenied,
    ApprovalResult,
    BudgetExceeded,
    GuardDecision,
    ToolBlocked,
    ToolRequest,
)
from tripwire.producers.budget import BudgetLimits, RunBudget
from tripwire.schemas import ApprovalDecision, ModelCall, RunFinished, ToolCall

pytestmark = pytest.mark.unit


def test_ten_threads_against_budget_of_three_let_exactly_three_through(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, agent={"max_tool_calls": 3})
    ran, refused = [], []
    barrier = threading.Barrier(10)
    inside = threading.Barrier(3, timeout=10)  # the three that got through are in the body together

    with tracer.run() as run:

        def call(i: int) -> None:
            barrier.wait(timeout=10)
            try:
                with run.tool_call("refund", args={"i": i}, risk="high"):
                    ran.append(i)
                    inside.wait()
            except BudgetExceeded:
                refused.append(i)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    tracer.close()
    assert (len(ran), len(refused)) == (3, 7)
    tools = got.of(ToolCall)
    assert sorted(t.status for t in tools) == ["blocked"] * 7 + ["ok"] * 3
    assert all(
        t.blocked_reason == "budget max_tool_calls exhausted: used 3 of 3" for t in tools if t.status == "blocked"
    )
    assert all(t.error_type == "BudgetExceeded" for t in tools if t.status == "blocked")


def test_ten_asyncio_tasks_against_budget_of_three(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, agent={"max_tool_calls": 3})
    results: list[str] = []

    async def main() -> None:
        async with tracer.run() as run:
            release = asyncio.Event()

            async def call(i: int) -> None:
                try:
                    async with run.tool_call("refund", args={"i": i}):
                        await release.wait()  # all in flight at once
                        results.append("ran")
                except BudgetExceeded:
                    results.append("refused")

            tasks = [asyncio.create_task(call(i)) for i in range(10)]
            await asyncio.sleep(0.01)
            release.set()
            await asyncio.gather(*tasks)

    asyncio.run(main())
    tracer.close()
    assert sorted(results) == ["ran"] * 3 + ["refused"] * 7
    assert sorted(t.status for t in got.of(ToolCall)) == ["blocked"] * 7 + ["ok"] * 3


def test_budget_blocks_before_the_tool_runs_and_run_is_aborted(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, agent={"max_steps": 1, "max_cost_usd": 0.0001})
    body_ran = False
    with pytest.raises(BudgetExceeded) as info, tracer.run() as run:
        with run.model_call(provider="openai", model="gpt-4.1") as c:
            c.record_usage(input_tokens=1000, output_tokens=0)  # $0.002 > the $0.0001 cap
        with run.tool_call("t"):
            body_ran = True
    assert not body_ran
    assert info.value.budget == "max_cost_usd"
    tracer.close()
    assert got.of(ToolCall)[0].status == "blocked"
    assert got.of(RunFinished)[0].outcome == "aborted"


def test_step_and_token_caps() -> None:
    b = RunBudget(BudgetLimits(max_steps=2, max_prompt_tokens=100, max_completion_tokens=10))
    b.reserve_step()
    b.commit_usage(60, 5, 0.01)
    b.reserve_step()
    with pytest.raises(BudgetExceeded, match="max_steps"):
        b.reserve_step()
    b2 = RunBudget(BudgetLimits(max_prompt_tokens=100))
    b2.reserve_step()
    b2.commit_usage(100, 0, None)
    with pytest.raises(BudgetExceeded, match="max_prompt_tokens"):
        b2.reserve_step()
    b3 = RunBudget(BudgetLimits(max_completion_tokens=10))
    b3.commit_usage(0, 10, None)
    with pytest.raises(BudgetExceeded, match="max_completion_tokens"):
        b3.reserve_step()


def test_model_call_over_step_budget_emits_blocked_model_call(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, agent={"max_steps": 1})
    with tracer.run() as run:
        with run.model_call(provider="openai", model="gpt-4.1-mini"):
            pass
        with pytest.raises(BudgetExceeded), run.model_call(provider="openai", model="gpt-4.1-mini"):
            pass
    tracer.close()
    assert [m.status for m in got.of(ModelCall)] == ["ok", "blocked"]


class FreezeGuard:
    def __init__(self) -> None:
        self.done_calls: list[tuple[str, str]] = []
        self.seen: list[ToolRequest] = []

    def check(self, request: ToolRequest) -> GuardDecision:
        self.seen.append(request)
        if request.tool_name == "frozen":
            raise ToolBlocked("tool frozen by kill switch ks-1")
        if request.risk == "high":
            return GuardDecision(require_approval=True, reason="force_approval min_risk=high")
        return ALLOW

    def done(self, request: ToolRequest, status: str) -> None:
        self.done_calls.append((request.tool_name, status))


def test_guard_blocks_and_requires_approval(tmp_path: Path) -> None:
    guard = FreezeGuard()
    answers = iter([ApprovalResult(True, approver="oncall@example.com", reason="ok"), False])
    tracer, got = make_tracer(tmp_path, guard=guard, approver=lambda req: next(answers), agent={"max_tool_calls": 10})
    ran = []
    with tracer.run() as run:
        with pytest.raises(ToolBlocked, match="frozen by kill switch"), run.tool_call("frozen"):
            ran.append("frozen")
        with run.tool_call("refund", args={"email": "x@y.io"}, risk="high"):
            ran.append("refund-1")
        with pytest.raises(ApprovalDenied), run.tool_call("refund", risk="high"):
            ran.append("refund-2")
        with run.tool_call("lookup"):
            ran.append("lookup")
        assert run.budget.tool_calls == 2  # refused calls gave their reservation back
    tracer.close()
    assert ran == ["refund-1", "lookup"]
    tools = got.of(ToolCall)
    assert [(t.tool_name, t.status) for t in tools] == [
        ("frozen", "blocked"),
        ("refund", "ok"),
        ("refund", "denied"),
        ("lookup", "ok"),
    ]
    assert tools[0].blocked_reason == "tool frozen by kill switch ks-1"
    approvals = got.of(ApprovalDecision)
    assert [(a.decision, a.approver, a.risk) for a in approvals] == [
        ("approved", "oncall@example.com", "high"),
        ("denied", None, "high"),
    ]
    assert tools[1].approval_ref == approvals[0].event_id and tools[2].approval_ref == approvals[1].event_id
    assert guard.done_calls == [("frozen", "blocked"), ("refund", "ok"), ("refund", "denied"), ("lookup", "ok")]
    assert guard.seen[1].args == {"email": "[REDACTED:EMAIL]"}  # the guard sees redacted args


def test_async_approver_and_no_approver_fails_closed(tmp_path: Path) -> None:
    async def approver(req) -> ApprovalResult:
        await asyncio.sleep(0)
        return ApprovalResult(approved=True, approver="bot")

    tracer, got = make_tracer(tmp_path, guard=FreezeGuard(), approver=approver)

    async def main() -> None:
        async with tracer.run() as run, run.tool_call("refund", risk="high"):
            pass

    asyncio.run(main())
    with tracer.run() as run, run.tool_call("refund", risk="high"):  # sync `with`, no loop: runs the coroutine
        pass
    tracer.close()
    assert [a.decision for a in got.of(ApprovalDecision)] == ["approved", "approved"]

    tracer2, got2 = make_tracer(tmp_path / "2", guard=FreezeGuard())
    with tracer2.run() as run, pytest.raises(ApprovalDenied, match="no approver"), run.tool_call("refund", risk="high"):
        pass
    tracer2.close()
    assert [t.status for t in got2.of(ToolCall)] == ["denied"]


class BrokenGuard:
    def check(self, request: ToolRequest) -> GuardDecision:
        raise RuntimeError("state unavailable")

    def done(self, request: ToolRequest, status: str) -> None:
        raise RuntimeError("also broken")


def test_broken_guard_fails_closed_for_high_risk_only(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, guard=BrokenGuard())
    with tracer.run() as run:
        with run.tool_call("low"):
            pass
        with pytest.raises(ToolBlocked, match="guard_error"), run.tool_call("high", risk="high"):
            pass
    tracer.close()
    assert [(t.tool_name, t.status) for t in got.of(ToolCall)] == [("low", "ok"), ("high", "blocked")]


class Pause(Exception):
    """A framework's pause for a human (e.g. LangGraph's GraphInterrupt), marked for the SDK."""

    tripwire_suspend = True


def test_an_approver_that_suspends_records_nothing_and_gives_the_reservation_back(tmp_path: Path) -> None:
    guard = FreezeGuard()
    answers: list[object] = [Pause(), ApprovalResult(True, approver="alice")]

    def approver(req) -> ApprovalResult:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a  # type: ignore[return-value]

    tracer, got = make_tracer(tmp_path, guard=guard, approver=approver, agent={"max_tool_calls": 1})
    ran = []
    with tracer.run() as run:
        with pytest.raises(Pause), run.tool_call("refund", risk="high"):
            ran.append("first")
        assert run.budget.tool_calls == 0
        with run.tool_call("refund", risk="high"):  # the framework's retry once the human answered
            ran.append("retry")
    tracer.close()
    assert ran == ["retry"]
    assert [(t.tool_name, t.status) for t in got.of(ToolCall)] == [("refund", "ok")]
    assert [(a.decision, a.approver) for a in got.of(ApprovalDecision)] == [("approved", "alice")]
    assert guard.done_calls == [("refund", "suspended"), ("refund", "ok")]
