"""The kill-switch policy operator: seed defaults, severity, dedup per incident, signing, YAML errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tripwire.killswitch import CommandSigner, CommandVerifier
from tripwire.processors.errors import PolicyError
from tripwire.processors.killswitch_policy import KillSwitchPolicy, load_killswitch_policy
from tripwire.schemas import Alert
from tripwire.schemas.enums import KillSwitchAction, Risk

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def alert(kind: str, severity: str = "critical", incident: str = "inc-1", **kw: object) -> Alert:
    fields: dict = dict(
        alert_id=f"al-{kind}-{incident}", incident_id=incident, kind=kind, severity=severity,
        scope="agent:refund-assistant", tenant="acme", agent_id="refund-assistant", agent_version="1.2",
        tool_name="stripe.issue_refund", credential_fingerprint="fp9", observed=1.0, threshold=0.5,
        summary=f"{kind} fired", status="firing", created_at=T0, updated_at=T0,
    )
    fields.update(kw)
    return Alert(**fields)


@pytest.mark.parametrize(
    ("kind", "action", "scope", "ttl_s", "min_risk"),
    [
        ("tool_error_rate", KillSwitchAction.FORCE_APPROVAL, "agent:refund-assistant", 1800, Risk.LOW),
        ("cost_spike", KillSwitchAction.DISABLE_AUTONOMY, "agent:refund-assistant", 1800, None),
        ("unapproved_high_risk", KillSwitchAction.FREEZE_TOOL, "agent:refund-assistant/tool:stripe.issue_refund",
         3600, None),
        ("shared_credential", KillSwitchAction.DISABLE_AUTONOMY, "credential:fp9", 3600, None),
        ("runaway_loop", KillSwitchAction.FREEZE_TOOL, "agent:refund-assistant/tool:stripe.issue_refund", 900, None),
    ],
)
def test_seed_defaults(kind: str, action: KillSwitchAction, scope: str, ttl_s: int, min_risk: Risk | None) -> None:
    policy = KillSwitchPolicy()
    [command] = policy.process(alert(kind), now=T0)
    assert command.action is action and command.scope == scope and command.min_risk == min_risk
    assert command.issued_at == T0 and command.expires_at == T0 + timedelta(seconds=ttl_s)
    assert command.alert_id == f"al-{kind}-inc-1" and command.issued_by.startswith("policy:")
    assert command.signature is None  # no signer given


def test_unmapped_kinds_low_severity_and_resolved_alerts_trip_nothing() -> None:
    policy = KillSwitchPolicy()
    assert policy.process(alert("latency_slo"), now=T0) == []
    assert policy.process(alert("cost_spike", severity="info"), now=T0) == []
    assert policy.process(alert("cost_spike", status="resolved"), now=T0) == []
    assert policy.tripped == 0


def test_same_incident_does_not_retrip_while_its_switch_is_in_force() -> None:
    policy = KillSwitchPolicy()
    first = policy.process(alert("runaway_loop", incident="loop-1"), now=T0)
    assert len(first) == 1
    again = alert("runaway_loop", incident="loop-1", alert_id="al-2", count=7)
    assert policy.process(again, now=T0 + timedelta(minutes=14)) == []
    other = policy.process(alert("runaway_loop", incident="loop-2"), now=T0 + timedelta(minutes=1))
    assert len(other) == 1
    after_ttl = policy.process(again, now=T0 + timedelta(minutes=15))
    assert len(after_ttl) == 1 and after_ttl[0].alert_id == "al-2"
    assert (policy.tripped, policy.deduplicated) == (3, 1)


def test_alert_missing_a_scope_field_trips_nothing_and_is_counted() -> None:
    policy = KillSwitchPolicy()
    assert policy.process(alert("shared_credential", credential_fingerprint=None), now=T0) == []
    assert policy.unscoped == 1


def test_signed_commands_verify() -> None:
    signer = CommandSigner(Ed25519PrivateKey.generate())
    [command] = KillSwitchPolicy(signer=signer).process(alert("cost_spike"), now=T0)
    CommandVerifier([signer.public_key()]).verify(command)


def test_state_round_trips_through_plain_dicts() -> None:
    policy = KillSwitchPolicy()
    policy.process(alert("cost_spike", incident="i1"), now=T0)
    restored = KillSwitchPolicy()
    restored.load_state(policy.to_state())
    assert restored.trips() == policy.trips()
    assert restored.process(alert("cost_spike", incident="i1"), now=T0 + timedelta(minutes=1)) == []
    per_incident = KillSwitchPolicy()
    per_incident.restore_trip("i1", policy.trip_state("i1"))
    assert per_incident.process(alert("cost_spike", incident="i1"), now=T0 + timedelta(minutes=1)) == []
    per_incident.restore_trip("i1", None)
    assert len(per_incident.process(alert("cost_spike", incident="i1"), now=T0 + timedelta(minutes=1))) == 1


def test_user_policy_file_and_its_errors(tmp_path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("rules:\n  - {name: t, kind: latency_slo, action: throttle, scope: agent_version, per_minute: 10,"
                    " ttl: 5m}\n")
    [command] = KillSwitchPolicy(load_killswitch_policy(good)).process(alert("latency_slo"), now=T0)
    assert (command.action, command.scope, command.throttle_per_minute) == (
        KillSwitchAction.THROTTLE, "agent:refund-assistant@1.2", 10)
    cases = {
        "rules: [{name: t, kind: k, action: throttle, scope: agent}]": "per_minute",
        "rules: [{name: t, kind: k, action: resume, scope: agent}]": "cannot resume",
        "rules: [{name: t, kind: k, action: freeze_tool, scope: planet}]": "rules.0.scope",
        "rules: [{name: t, kind: k, action: freeze_tool, scope: agent, ttl: soon}]": "invalid duration",
        "rules: [{name: t, kind: k, action: freeze_tool, scope: agent}, {name: t, kind: j, action: freeze_tool,"
        " scope: agent}]": "unique",
        "rules: [": "not valid YAML",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(PolicyError, match=message):
            load_killswitch_policy(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        load_killswitch_policy(tmp_path / "missing.yaml")


def _held(action: str, *, ttl_s: float | None = None, **kw: object):  # type: ignore[no-untyped-def]
    from tripwire.killswitch import ActiveSwitch, new_command

    command = new_command(scope="agent:refund-assistant/tool:stripe.issue_refund", action=action, reason="human",
                          issued_by="user:alice", now=T0 - timedelta(minutes=1),
                          ttl=timedelta(seconds=ttl_s) if ttl_s else None, **kw)  # type: ignore[arg-type]
    return ActiveSwitch.of(command)


def test_a_stronger_or_longer_switch_already_on_the_scope_is_not_weakened() -> None:
    held: dict = {}
    policy = KillSwitchPolicy(current=held.get)
    loop = alert("runaway_loop", incident="i1")  # freeze_tool agent_tool for 15 minutes
    scope = "agent:refund-assistant/tool:stripe.issue_refund"
    held[scope] = _held("freeze_tool")  # a human's freeze with no end
    assert policy.process(loop, now=T0) == [] and policy.covered == 1
    held[scope] = _held("freeze_tool", ttl_s=3600)  # ends after the policy's would
    assert policy.process(loop, now=T0) == []
    held[scope] = _held("freeze_tool", ttl_s=300)  # ends sooner: the policy's 15 minutes win
    assert len(policy.process(loop, now=T0)) == 1
    policy = KillSwitchPolicy(current=held.get)
    held[scope] = _held("disable_autonomy")  # weaker than a freeze
    assert len(policy.process(loop, now=T0)) == 1
    policy = KillSwitchPolicy(current=held.get)
    held[scope] = _held("resume")
    assert len(policy.process(loop, now=T0)) == 1


def test_covers_orders_actions_risks_and_rates() -> None:
    from tripwire.processors.killswitch_policy import PolicyRule, covers

    approval = PolicyRule(name="a", kind="k", action="force_approval", scope="agent", min_risk="medium")
    throttle = PolicyRule(name="t", kind="k", action="throttle", scope="agent", per_minute=10)
    assert covers(_held("force_approval", min_risk="low"), approval, T0)
    assert not covers(_held("force_approval", min_risk="high"), approval, T0)
    assert covers(_held("throttle", throttle_per_minute=5), throttle, T0)
    assert not covers(_held("throttle", throttle_per_minute=20), throttle, T0)
    assert covers(_held("freeze_tool"), throttle, T0)
    assert not covers(_held("throttle", throttle_per_minute=1), approval, T0)
    assert not covers(_held("freeze_tool", ttl_s=30), approval, T0)  # lapsed before T0


def test_new_incident_of_the_same_cause_extends_the_trip_in_place() -> None:
    """Issue 19: one incident, one trip. A new incident of the same rule on a scope still tripped
    re-issues the same command (same id, newer issued_at, later expiry, the count in the reason)."""
    signer = CommandSigner(Ed25519PrivateKey.generate())
    policy = KillSwitchPolicy(signer=signer)
    [first] = policy.process(alert("runaway_loop", incident="loop-1"), now=T0)
    [second] = policy.process(alert("runaway_loop", incident="loop-2"), now=T0 + timedelta(minutes=5))
    assert second.command_id == first.command_id and second.scope == first.scope
    assert second.issued_at == T0 + timedelta(minutes=5)
    assert second.expires_at == T0 + timedelta(minutes=20)
    assert second.reason.startswith("[2 incidents] runaway_loop")
    assert second.nonce != first.nonce
    CommandVerifier([signer.public_key()]).verify(second)
    assert (policy.tripped, policy.extended) == (2, 1)
    # after the extended trip's ttl, the next incident is a new trip with a new id
    [third] = policy.process(alert("runaway_loop", incident="loop-3"), now=T0 + timedelta(minutes=21))
    assert third.command_id != first.command_id and not third.reason.startswith("[")
    assert (policy.tripped, policy.extended) == (3, 1)


def test_extension_is_accepted_by_the_agents_state() -> None:
    from tripwire.killswitch import KillSwitchState

    signer = CommandSigner(Ed25519PrivateKey.generate())
    state = KillSwitchState(CommandVerifier([signer.public_key()]))
    policy = KillSwitchPolicy(signer=signer)
    [first] = policy.process(alert("cost_spike", incident="c-1"), now=T0)
    later = T0 + timedelta(minutes=5)
    [second] = policy.process(alert("cost_spike", incident="c-2"), now=later)
    assert second.command_id == first.command_id
    assert state.apply(first, key=first.scope, now=T0).accepted
    res = state.apply(second, key=second.scope, now=later)
    assert res.accepted
    held = state.switches()[second.scope]
    assert (held.command_id, held.expires_at) == (first.command_id, later + timedelta(minutes=30))


def test_another_rule_on_a_held_scope_trips_only_when_stronger() -> None:
    policy = KillSwitchPolicy()
    # cost_spike: disable_autonomy on agent:refund-assistant; tool_error_rate (force_approval) is weaker
    assert len(policy.process(alert("cost_spike", incident="c-1"), now=T0)) == 1
    assert policy.process(alert("tool_error_rate", incident="e-1"), now=T0 + timedelta(seconds=5)) == []
    assert policy.covered == 1
    weaker_first = KillSwitchPolicy()
    [fa] = weaker_first.process(alert("tool_error_rate", incident="e-1"), now=T0)
    [da] = weaker_first.process(alert("cost_spike", incident="c-1"), now=T0 + timedelta(seconds=5))
    assert da.command_id != fa.command_id and da.action is KillSwitchAction.DISABLE_AUTONOMY


def test_a_burst_of_incidents_is_absorbed_into_the_trip() -> None:
    """Within 5% of the TTL after the last issue, a new same-cause incident signs nothing; the next
    re-issue carries the count of every incident the trip covers."""
    policy = KillSwitchPolicy()  # runaway-loop: ttl 15m, so 45 s absorb
    [first] = policy.process(alert("runaway_loop", incident="r-1"), now=T0)
    for i in range(2, 6):
        assert policy.process(alert("runaway_loop", incident=f"r-{i}"), now=T0 + timedelta(seconds=8 * i)) == []
    assert (policy.tripped, policy.absorbed) == (1, 4)
    [again] = policy.process(alert("runaway_loop", incident="r-6"), now=T0 + timedelta(seconds=60))
    assert again.command_id == first.command_id and again.reason.startswith("[6 incidents]")
    assert again.expires_at == T0 + timedelta(seconds=60 + 900)
