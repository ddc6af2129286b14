"""The SDK's kill-switch state machine: verification, replay, expiry, scope precedence, throttles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tripwire.killswitch import (
    CLEAR,
    CallIdentity,
    CommandSigner,
    CommandVerifier,
    KillSwitchState,
    Rejection,
    Throttle,
    Throttles,
    new_command,
)
from tripwire.schemas.enums import KillSwitchAction, Risk

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SIGNER = CommandSigner(Ed25519PrivateKey.generate())
CALL = CallIdentity("acme", "refund-assistant", "1.2", "stripe.issue_refund", "fp9")


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def make_state(clock: Clock) -> KillSwitchState:
    return KillSwitchState(CommandVerifier([SIGNER.public_key()]), clock=clock, monotonic=clock.monotonic)


def cmd(scope: str, action: str, at: datetime, ttl: float | None = None, **kw: object):
    return SIGNER.sign(new_command(scope=scope, action=action, reason="why", issued_by="oncall", now=at,
                                   ttl=timedelta(seconds=ttl) if ttl else None, **kw))  # type: ignore[arg-type]


def test_no_switch_means_clear() -> None:
    assert make_state(Clock()).evaluate(CALL, Risk.HIGH) is CLEAR


@pytest.mark.parametrize("scope", ["global", "tenant:acme", "agent:refund-assistant", "agent:refund-assistant@1.2",
                                   "tool:stripe.issue_refund", "agent:refund-assistant/tool:stripe.issue_refund",
                                   "credential:fp9"])
def test_a_freeze_on_any_matching_scope_freezes_the_call(scope: str) -> None:
    clock = Clock()
    state = make_state(clock)
    assert state.apply(cmd(scope, "freeze_tool", T0), key=scope).accepted
    verdict = state.evaluate(CALL, Risk.LOW)
    assert verdict.frozen is not None and verdict.frozen.scope == scope


@pytest.mark.parametrize("scope", ["tenant:other", "agent:other", "agent:refund-assistant@1.3", "tool:search",
                                   "agent:other/tool:stripe.issue_refund", "credential:fp1"])
def test_switches_on_other_scopes_do_not_apply(scope: str) -> None:
    state = make_state(Clock())
    assert state.apply(cmd(scope, "freeze_tool", T0)).accepted
    assert state.evaluate(CALL, Risk.HIGH) is CLEAR


def test_force_approval_applies_from_min_risk_up_and_disable_autonomy_to_all() -> None:
    state = make_state(Clock())
    state.apply(cmd("agent:refund-assistant", "force_approval", T0, min_risk="medium"))
    assert state.evaluate(CALL, Risk.LOW) is CLEAR
    assert state.evaluate(CALL, Risk.MEDIUM).approval is not None
    assert not state.evaluate(CALL, Risk.HIGH).autonomy_disabled
    state.apply(cmd("tenant:acme", "disable_autonomy", T0))
    low = state.evaluate(CALL, Risk.LOW)
    assert low.autonomy_disabled and low.approval is not None and low.approval.scope == "tenant:acme"


def test_resume_clears_only_its_scope() -> None:
    state = make_state(Clock())
    state.apply(cmd("agent:refund-assistant", "freeze_tool", T0))
    state.apply(cmd("global", "throttle", T0, throttle_per_minute=5))
    assert state.apply(cmd("agent:refund-assistant", "resume", T0 + timedelta(seconds=1))).accepted
    verdict = state.evaluate(CALL, Risk.LOW)
    assert verdict.frozen is None and [t.scope for t in verdict.throttles] == ["global"]


def test_unsigned_forged_and_unknown_key_commands_are_ignored_and_counted() -> None:
    state = make_state(Clock())
    attacker = CommandSigner(Ed25519PrivateKey.generate())
    unsigned = new_command(scope="global", action="freeze_tool", reason="x", issued_by="mallory", now=T0)
    forged = attacker.sign(unsigned).model_copy(update={"key_id": SIGNER.key_id})
    results = [state.apply(unsigned), state.apply(attacker.sign(unsigned)), state.apply(forged)]
    assert [r.rejection for r in results] == [Rejection.UNSIGNED, Rejection.UNKNOWN_KEY, Rejection.BAD_SIGNATURE]
    assert state.evaluate(CALL, Risk.LOW) is CLEAR
    assert dict(state.rejected) == {"unsigned": 1, "unknown_key": 1, "bad_signature": 1}
    assert state.accepted == 0


def test_replays_and_older_commands_are_ignored() -> None:
    state = make_state(Clock())
    freeze = cmd("agent:refund-assistant", "freeze_tool", T0)
    resume = cmd("agent:refund-assistant", "resume", T0 + timedelta(seconds=10))
    assert state.apply(freeze).accepted and state.apply(resume).accepted
    assert state.apply(freeze).rejection is Rejection.REPLAY  # an older command's signed bytes again
    assert state.apply(resume).rejection is Rejection.DUPLICATE  # the held command again: a re-publication
    older = cmd("agent:refund-assistant", "freeze_tool", T0 + timedelta(seconds=5))
    assert state.apply(older).rejection is Rejection.REPLAY
    same_time = cmd("agent:refund-assistant", "freeze_tool", T0 + timedelta(seconds=10))
    assert state.apply(same_time).rejection is Rejection.REPLAY
    assert state.evaluate(CALL, Risk.LOW) is CLEAR
    assert state.rejected["replay"] == 3 and state.rejected["duplicate"] == 1 and state.accepted == 2


def test_expired_command_is_ignored_but_supersedes_older_ones() -> None:
    clock = Clock()
    clock.advance(3600)
    state = make_state(clock)
    # An uncompacted log: an old freeze without ttl, then a newer freeze whose ttl has passed.
    assert state.apply(cmd("agent:refund-assistant", "freeze_tool", T0)).accepted
    result = state.apply(cmd("agent:refund-assistant", "freeze_tool", T0 + timedelta(seconds=60), ttl=60))
    assert result.rejection is Rejection.EXPIRED
    assert state.evaluate(CALL, Risk.LOW) is CLEAR


def test_ttl_lapses_by_itself() -> None:
    clock = Clock()
    state = make_state(clock)
    state.apply(cmd("agent:refund-assistant", "freeze_tool", T0, ttl=30))
    assert state.evaluate(CALL, Risk.LOW).frozen is not None
    clock.advance(29.999)
    assert state.evaluate(CALL, Risk.LOW).frozen is not None
    clock.advance(0.001)
    assert state.evaluate(CALL, Risk.LOW) is CLEAR
    assert state.in_force() == []


def test_future_key_mismatch_and_malformed_commands_are_rejected() -> None:
    state = make_state(Clock())
    future = cmd("global", "freeze_tool", T0 + timedelta(hours=1))
    assert state.apply(future).rejection is Rejection.FUTURE
    assert state.apply(cmd("global", "freeze_tool", T0), key="agent:x").rejection is Rejection.KEY_MISMATCH
    bad_scope = new_command(scope="global", action="freeze_tool", reason="", issued_by="x", now=T0)
    bad_scope = SIGNER.sign(bad_scope.model_copy(update={"scope": "bogus scope"}))
    assert state.apply(bad_scope).rejection is Rejection.MALFORMED
    assert state.switches() == {}


def test_staleness_follows_contact() -> None:
    clock = Clock()
    state = make_state(clock)
    assert state.staleness() is None
    state.mark_contact()
    clock.advance(2.5)
    assert state.staleness() == 2.5


def test_throttle_allows_n_per_sliding_minute() -> None:
    clock = Clock()
    t = Throttle(3, clock.monotonic)
    assert [t.try_acquire() for _ in range(3)] == [None, None, None]
    assert t.try_acquire() == 60.0
    clock.advance(59.0)
    assert t.try_acquire() == pytest.approx(1.0)
    clock.advance(1.0)  # all three calls were at the same instant: all three slots free up together
    assert [t.try_acquire() for _ in range(3)] == [None, None, None]
    assert t.try_acquire() == 60.0


def test_throttles_release_other_slots_when_one_is_full_and_reset_on_a_new_command() -> None:
    clock = Clock()
    state = make_state(clock)
    state.apply(cmd("global", "throttle", T0, throttle_per_minute=5))
    state.apply(cmd("agent:refund-assistant", "throttle", T0, throttle_per_minute=2))
    throttles = Throttles(clock.monotonic)
    verdict = state.evaluate(CALL, Risk.LOW)
    assert [len(throttles.acquire(verdict.throttles)) for _ in range(2)] == [2, 2]
    full = throttles.acquire(verdict.throttles)
    assert isinstance(full, tuple) and full[0].scope == "agent:refund-assistant"
    # global gave its slot back: 2 used of 5, so a call of another agent gets 3 more.
    other = state.evaluate(CallIdentity("acme", "other", None, "x"), Risk.LOW)
    assert [isinstance(throttles.acquire(other.throttles), list) for _ in range(4)] == [True, True, True, False]
    state.apply(cmd("agent:refund-assistant", "throttle", T0 + timedelta(seconds=1), throttle_per_minute=2))
    fresh = state.evaluate(CallIdentity("acme", "refund-assistant", None, "y"), Risk.LOW)
    assert [s.scope for s in fresh.throttles] == ["global", "agent:refund-assistant"]
    blocked = throttles.acquire(fresh.throttles)
    assert isinstance(blocked, tuple) and blocked[0].scope == "global"  # global is full (5 of 5)
    # A call that did not run gives its slots back.
    state.apply(cmd("global", "resume", T0 + timedelta(seconds=2)))
    only_agent = state.evaluate(CallIdentity("acme", "refund-assistant", None, "y"), Risk.LOW)
    taken = throttles.acquire(only_agent.throttles)
    assert isinstance(taken, list) and len(taken) == 1
    assert isinstance(throttles.acquire(only_agent.throttles), list)
    assert isinstance(throttles.acquire(only_agent.throttles), tuple)  # 2 of 2 used
    Throttles.release(taken)
    assert isinstance(throttles.acquire(only_agent.throttles), list)


def test_action_enum_of_held_switch() -> None:
    state = make_state(Clock())
    state.apply(cmd("global", "disable_autonomy", T0))
    assert state.switches()["global"].action is KillSwitchAction.DISABLE_AUTONOMY
