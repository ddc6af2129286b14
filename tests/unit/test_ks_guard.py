"""KillSwitchGuard against the SDK's ToolGuard protocol, without a broker: actions, throttles, fail-safe."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tripwire.killswitch import CommandSigner, CommandVerifier, KillSwitchConfig, KillSwitchState, new_command
from tripwire.producers.errors import ToolBlocked
from tripwire.producers.guard import ALLOW, ToolGuard, ToolRequest
from tripwire.producers.killswitch import (
    AutonomyDisabled,
    KillSwitchGuard,
    KillSwitchStale,
    ToolFrozen,
    ToolThrottled,
)
from tripwire.schemas.enums import Risk

pytestmark = pytest.mark.unit

SIGNER = CommandSigner(Ed25519PrivateKey.generate())


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def request(
    tool: str = "stripe.issue_refund", risk: str = "high", call_id: str = "c1", agent: str = "bot"
) -> ToolRequest:
    return ToolRequest(tenant="acme", agent_id=agent, agent_version="1.0", workflow="w", environment="test",
                       principal=None, credential_fingerprint="fp1", run_id="r1", trace_id="a" * 32, tool_name=tool,
                       tool_call_id=call_id, risk=Risk(risk), side_effect=True, idempotency_key=None, args=None)


def make_guard(**config: object) -> tuple[KillSwitchGuard, Mono]:
    mono = Mono()
    state = KillSwitchState(CommandVerifier([SIGNER.public_key()]), monotonic=mono)
    cfg = KillSwitchConfig(ready_timeout_s=0.05, staleness_s=5.0, **config)  # type: ignore[arg-type]
    guard = KillSwitchGuard(cfg, state=state, start=False)
    state.mark_contact()
    state.ready.set()
    return guard, mono


def trip(guard: KillSwitchGuard, scope: str, action: str, seconds_ago: float = 1.0, **kw: object) -> None:
    at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    result = guard.state.apply(SIGNER.sign(new_command(scope=scope, action=action, reason="test", issued_by="t",
                                                       now=at, **kw)))  # type: ignore[arg-type]
    assert result.accepted, result


def test_guard_satisfies_the_sdk_protocol_and_allows_by_default() -> None:
    guard, _ = make_guard()
    assert isinstance(guard, ToolGuard)
    assert guard.check(request()) is ALLOW


def test_freeze_raises_tool_frozen_with_the_scope() -> None:
    guard, _ = make_guard()
    trip(guard, "agent:bot/tool:stripe.issue_refund", "freeze_tool")
    with pytest.raises(ToolFrozen) as e:
        guard.check(request(risk="low"))
    assert isinstance(e.value, ToolBlocked) and e.value.status == "blocked"
    assert e.value.scope == "agent:bot/tool:stripe.issue_refund" and "frozen" in e.value.reason
    assert guard.check(request(tool="search")) is ALLOW
    assert guard.check(request(agent="other")) is ALLOW


def test_disable_autonomy_requires_approval_for_every_call_and_blocks_without_approver() -> None:
    guard, _ = make_guard()
    trip(guard, "agent:bot", "disable_autonomy")
    decision = guard.check(request(risk="low"))
    assert decision.require_approval and decision.reason == "kill switch: disable_autonomy on agent:bot (test)"
    err = guard.no_approver(request(), decision)
    assert isinstance(err, AutonomyDisabled) and err.status == "blocked" and "no approver" in err.reason


def test_force_approval_only_from_min_risk() -> None:
    guard, _ = make_guard()
    trip(guard, "global", "force_approval", min_risk="high")
    assert guard.check(request(risk="medium")) is ALLOW
    assert guard.check(request(risk="high")).require_approval


def test_resume_clears_the_scope() -> None:
    guard, _ = make_guard()
    trip(guard, "tool:stripe.issue_refund", "freeze_tool", seconds_ago=2)
    trip(guard, "tool:stripe.issue_refund", "resume", seconds_ago=1)
    assert guard.check(request()) is ALLOW


def test_throttle_limits_calls_and_calls_that_did_not_run_give_their_slot_back() -> None:
    guard, _ = make_guard()
    trip(guard, "agent:bot", "throttle", throttle_per_minute=2)
    assert guard.check(request(call_id="a")) is ALLOW
    assert guard.check(request(call_id="b")) is ALLOW
    with pytest.raises(ToolThrottled) as e:
        guard.check(request(call_id="c"))
    assert 59.0 < e.value.retry_after_s <= 60.0
    guard.done(request(call_id="b"), "denied")  # b never ran
    guard.done(request(call_id="a"), "ok")
    assert guard.check(request(call_id="d")) is ALLOW
    with pytest.raises(ToolThrottled):
        guard.check(request(call_id="e"))


def test_stale_state_fails_closed_for_high_open_for_low_and_medium_follows_config() -> None:
    guard, mono = make_guard()
    mono.t += 5.0
    assert guard.check(request(risk="high")) is ALLOW  # exactly at the limit: still fresh
    mono.t += 0.01
    with pytest.raises(KillSwitchStale) as e:
        guard.check(request(risk="high"))
    assert "fails closed" in e.value.reason
    with pytest.raises(KillSwitchStale):
        guard.check(request(risk="medium"))
    assert guard.check(request(risk="low")) is ALLOW
    open_guard, mono2 = make_guard(stale_medium_risk="open")
    mono2.t += 60
    assert open_guard.check(request(risk="medium")) is ALLOW
    assert guard.stale_blocked == 2


def test_stale_low_risk_still_obeys_the_last_known_switches() -> None:
    guard, mono = make_guard()
    trip(guard, "agent:bot", "freeze_tool")
    mono.t += 60
    with pytest.raises(ToolFrozen):
        guard.check(request(risk="low"))


def test_first_call_waits_a_bounded_time_for_the_initial_state_then_fails_safe() -> None:
    state = KillSwitchState(CommandVerifier([SIGNER.public_key()]))
    guard = KillSwitchGuard(KillSwitchConfig(ready_timeout_s=0.2), state=state, start=False)
    t0 = time.monotonic()
    with pytest.raises(KillSwitchStale, match="never confirmed"):
        guard.check(request(risk="high"))
    assert 0.2 <= time.monotonic() - t0 < 2.0
    t1 = time.monotonic()
    assert guard.check(request(risk="low")) is ALLOW
    assert time.monotonic() - t1 < 0.1  # only the first call waits


def test_disabled_guard_allows_everything_and_needs_no_key() -> None:
    state = KillSwitchState(CommandVerifier([SIGNER.public_key()]))
    guard = KillSwitchGuard(KillSwitchConfig(enabled=False), state=state, start=False)
    assert guard.check(request(risk="high")) is ALLOW
    keyless = KillSwitchGuard(KillSwitchConfig(enabled=False))
    assert keyless.check(request(risk="high")) is ALLOW and not keyless.listener.alive


def test_config_reads_its_env_falls_back_to_the_kafka_bootstrap_and_needs_a_public_key(monkeypatch, tmp_path) -> None:
    from pydantic import ValidationError

    from tripwire.core.errors import ConfigError
    from tripwire.killswitch import build_verifier, generate_keypair

    monkeypatch.setenv("TRIPWIRE_KAFKA_BOOTSTRAP", "kafka-a:9092")
    assert KillSwitchConfig().bootstrap == "kafka-a:9092"
    monkeypatch.setenv("TRIPWIRE_KILLSWITCH_BOOTSTRAP", "kafka-b:9092")
    monkeypatch.setenv("TRIPWIRE_KILLSWITCH_STALENESS_S", "3.5")
    config = KillSwitchConfig()
    assert (config.bootstrap, config.staleness_s) == ("kafka-b:9092", 3.5)
    with pytest.raises(ConfigError, match="no public key configured"):
        build_verifier(config)
    with pytest.raises(ConfigError, match="no public key configured"):
        KillSwitchGuard(config, start=False)
    _, public, key_id = generate_keypair(tmp_path)
    assert build_verifier(KillSwitchConfig(public_key_path=public)).key_ids == (key_id,)
    with pytest.raises(ValidationError, match="either public_key_path or public_key"):
        KillSwitchConfig(public_key_path=public, public_key=public.read_text())
    with pytest.raises(ValidationError):
        KillSwitchConfig(staleness_s=0)
