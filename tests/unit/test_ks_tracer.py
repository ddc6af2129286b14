"""The kill-switch guard inside the real Tracer (in-process transport): what the agent sees and what is emitted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tripwire.killswitch import CommandSigner, CommandVerifier, KillSwitchConfig, KillSwitchState, new_command
from tripwire.producers import ApprovalDenied, ApprovalResult, Tracer, TracerConfig
from tripwire.producers.killswitch import AutonomyDisabled, KillSwitchGuard, ToolFrozen, ToolThrottled
from tripwire.schemas import ApprovalDecision, ToolCall, decode

pytestmark = pytest.mark.unit

SIGNER = CommandSigner(Ed25519PrivateKey.generate())


@pytest.fixture
def guard() -> KillSwitchGuard:
    state = KillSwitchState(CommandVerifier([SIGNER.public_key()]))
    g = KillSwitchGuard(KillSwitchConfig(ready_timeout_s=0.05), state=state, start=False)
    state.mark_contact()
    state.ready.set()
    return g


def trip(guard: KillSwitchGuard, scope: str, action: str, **kw: object) -> None:
    at = datetime.now(UTC) - timedelta(seconds=1) + timedelta(microseconds=len(guard.state.switches()))
    assert guard.state.apply(
        SIGNER.sign(new_command(scope=scope, action=action, reason="incident", issued_by="t", now=at, **kw))
    ).accepted  # type: ignore[arg-type]


def tracer_with(guard: KillSwitchGuard, events: list, approver=None) -> Tracer:  # type: ignore[no-untyped-def]
    config = TracerConfig(tenant="acme", agent_version="1.0", delivery={"spool_enabled": False})
    return Tracer.in_process(lambda _k, v: events.append(decode(v)), config, guard=guard, approver=approver)


def tool_events(tracer: Tracer, events: list) -> list:  # type: ignore[no-untyped-def]
    assert tracer.flush(5)
    return [e for e in events if isinstance(e, ToolCall | ApprovalDecision)]


def test_frozen_tool_raises_before_running_and_emits_a_blocked_tool_call(guard: KillSwitchGuard) -> None:
    events: list = []
    tracer = tracer_with(guard, events)
    trip(guard, "agent:bot/tool:refund", "freeze_tool")
    ran = []
    with tracer.run("bot") as run:
        with pytest.raises(ToolFrozen), run.tool_call("refund", {"amount": 5}, risk="high"):
            ran.append(1)
        with run.tool_call("search", {"q": "x"}):
            ran.append(2)
    [blocked, ok] = tool_events(tracer, events)
    assert ran == [2]
    assert (blocked.tool_name, blocked.status, blocked.error_type) == ("refund", "blocked", "ToolFrozen")
    assert blocked.blocked_reason == "kill switch: refund is frozen by freeze_tool on agent:bot/tool:refund (incident)"
    assert (ok.tool_name, ok.status) == ("search", "ok")
    tracer.close(5)


def test_disable_autonomy_without_approver_blocks_with_autonomy_disabled(guard: KillSwitchGuard) -> None:
    events: list = []
    tracer = tracer_with(guard, events)
    trip(guard, "agent:bot", "disable_autonomy")
    with tracer.run("bot") as run, pytest.raises(AutonomyDisabled), run.tool_call("search", risk="low"):
        pass
    [blocked] = tool_events(tracer, events)
    assert (blocked.status, blocked.error_type) == ("blocked", "AutonomyDisabled")
    assert "no approver is configured" in (blocked.blocked_reason or "")
    tracer.close(5)


def test_approvals_are_asked_recorded_and_denials_are_denied(guard: KillSwitchGuard) -> None:
    events: list = []
    asked = []

    def approver(req):  # type: ignore[no-untyped-def]
        asked.append((req.request.tool_name, req.reason))
        return ApprovalResult(approved=req.request.tool_name == "search", approver="alice", reason="checked")

    tracer = tracer_with(guard, events, approver)
    trip(guard, "agent:bot", "force_approval", min_risk="medium")
    with tracer.run("bot") as run:
        with run.tool_call("search", risk="medium"):
            pass
        with pytest.raises(ApprovalDenied), run.tool_call("refund", risk="high"):
            pass
        with run.tool_call("lookup", risk="low"):  # below min_risk: no approval asked
            pass
    evs = tool_events(tracer, events)
    assert [(type(e).__name__, e.tool_name, getattr(e, "status", None) or e.decision) for e in evs] == [
        ("ApprovalDecision", "search", "approved"),
        ("ToolCall", "search", "ok"),
        ("ApprovalDecision", "refund", "denied"),
        ("ToolCall", "refund", "denied"),
        ("ToolCall", "lookup", "ok"),
    ]
    assert evs[0].approver == "alice" and evs[1].approval_ref == evs[0].event_id
    assert asked == [
        ("search", "kill switch: force_approval on agent:bot (incident)"),
        ("refund", "kill switch: force_approval on agent:bot (incident)"),
    ]
    tracer.close(5)


def test_async_approver_and_throttle_in_asyncio(guard: KillSwitchGuard) -> None:
    events: list = []

    async def approver(req):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return True

    tracer = tracer_with(guard, events, approver)
    trip(guard, "global", "disable_autonomy")
    trip(guard, "tool:search", "throttle", throttle_per_minute=2)

    async def agent() -> list[str]:
        out = []
        async with tracer.run("bot") as run:
            for _ in range(3):
                try:
                    async with run.tool_call("search", risk="low"):
                        out.append("ran")
                except ToolThrottled:
                    out.append("throttled")
        return out

    assert asyncio.run(agent()) == ["ran", "ran", "throttled"]
    statuses = [(type(e).__name__, getattr(e, "status", None)) for e in tool_events(tracer, events)]
    assert statuses == [("ApprovalDecision", None), ("ToolCall", "ok")] * 2 + [("ToolCall", "blocked")]
    tracer.close(5)
