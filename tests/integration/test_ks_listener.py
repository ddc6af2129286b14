"""The SDK's kill-switch listener and guard against the real broker: forged/unsigned/expired/replayed
commands are ignored, resume and TTL work, a restarted SDK recovers state before its first call, and with
a private broker stopped high-risk calls fail closed after the staleness limit while low-risk calls run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import uid, wait_until
from tripwire.killswitch import CommandSigner, CommandVerifier, KillSwitchConfig, ensure_topic, new_command
from tripwire.producers.guard import ALLOW, ToolRequest
from tripwire.producers.killswitch import KillSwitchGuard, KillSwitchStale, ToolFrozen
from tripwire.schemas import KillSwitchCommand, encode
from tripwire.schemas.enums import Risk

pytestmark = pytest.mark.integration

SIGNER = CommandSigner(Ed25519PrivateKey.generate())


def request(tool: str = "stripe.issue_refund", risk: str = "high", agent: str = "refund-assistant") -> ToolRequest:
    return ToolRequest(tenant="acme", agent_id=agent, agent_version="1.0", workflow="w", environment="test",
                       principal=None, credential_fingerprint=None, run_id="r1", trace_id="a" * 32, tool_name=tool,
                       tool_call_id=uid("call"), risk=Risk(risk), side_effect=True, idempotency_key=None, args=None)


def frozen(guard: KillSwitchGuard, **kw: str) -> bool:
    try:
        return guard.check(request(**kw)) is not ALLOW
    except ToolFrozen:
        return True


def publish(bootstrap: str, topic: str, *commands: KillSwitchCommand | tuple[str, bytes | None]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for c in commands:
        if isinstance(c, tuple):
            producer.produce(topic, key=c[0].encode(), value=c[1])
        else:
            producer.produce(topic, key=c.scope.encode(), value=encode(c))
    assert producer.flush(15) == 0


def command(scope: str, action: str, *, at: datetime | None = None, ttl: float | None = None) -> KillSwitchCommand:
    return new_command(scope=scope, action=action, reason="integration", issued_by="test", now=at,
                       ttl=timedelta(seconds=ttl) if ttl else None)


@pytest.fixture
def ks_config(kafka_bootstrap: str) -> KillSwitchConfig:
    config = KillSwitchConfig(bootstrap=kafka_bootstrap, topic=uid("t_ks"), heartbeat_s=0.2, ready_timeout_s=10)
    assert ensure_topic(config) is True
    return config


def guard_for(config: KillSwitchConfig) -> KillSwitchGuard:
    return KillSwitchGuard(config, verifier=CommandVerifier([SIGNER.public_key()]))


def test_bad_commands_are_ignored_and_counted_and_good_ones_apply(kafka_bootstrap: str, ks_config) -> None:
    attacker = CommandSigner(Ed25519PrivateKey.generate())
    scope = "agent:refund-assistant/tool:stripe.issue_refund"
    now = datetime.now(UTC)
    freeze = SIGNER.sign(command(scope, "freeze_tool", at=now - timedelta(seconds=30)))
    resume = SIGNER.sign(command(scope, "resume", at=now - timedelta(seconds=20)))
    with guard_for(ks_config) as guard:
        assert guard.check(request()) is ALLOW
        publish(kafka_bootstrap, ks_config.topic,
                command(scope, "freeze_tool"),  # unsigned
                attacker.sign(command(scope, "freeze_tool")),  # signed by an untrusted key
                attacker.sign(command(scope, "freeze_tool")).model_copy(update={"key_id": SIGNER.key_id}),  # forged
                SIGNER.sign(command(scope, "freeze_tool", at=now - timedelta(hours=2), ttl=60)),  # expired
                ("agent:refund-assistant", b"\x00garbage"),  # not a command
                freeze, resume,
                (scope, None),  # a tombstone: unsigned, so it cannot clear (or set) anything
                freeze)  # a replay of an older signed command
        wait_until(lambda: guard.listener.records == 9, timeout=15, message="9 records read")
        assert guard.rejected == {"unsigned": 1, "unknown_key": 1, "bad_signature": 1, "expired": 1,
                                  "malformed": 1, "tombstone": 1, "replay": 1}
        assert guard.state.accepted == 2
        assert guard.check(request()) is ALLOW  # resumed; neither the forgeries nor the replay froze it
        publish(kafka_bootstrap, ks_config.topic, SIGNER.sign(command(scope, "freeze_tool")))
        wait_until(lambda: frozen(guard), timeout=5, message="the signed freeze applied")
        assert not frozen(guard, tool="search")  # other tools of the agent still run
        publish(kafka_bootstrap, ks_config.topic, SIGNER.sign(command(scope, "resume")))
        wait_until(lambda: not frozen(guard), timeout=5, message="resume applied")


def test_ttl_expires_by_itself(kafka_bootstrap: str, ks_config) -> None:
    with guard_for(ks_config) as guard:
        publish(kafka_bootstrap, ks_config.topic, SIGNER.sign(command("agent:refund-assistant", "freeze_tool", ttl=2)))
        wait_until(lambda: frozen(guard), timeout=5, message="freeze applied")
        t0 = time.monotonic()
        wait_until(lambda: not frozen(guard), timeout=10, message="ttl lapsed")
        assert time.monotonic() - t0 < 3.0
        assert guard.listener.records == 1  # nothing else was published: it lapsed on its own


def test_a_restarted_sdk_recovers_state_before_its_first_call(kafka_bootstrap: str, ks_config) -> None:
    publish(kafka_bootstrap, ks_config.topic,
            SIGNER.sign(command("agent:refund-assistant/tool:stripe.issue_refund", "freeze_tool")),
            SIGNER.sign(command("tool:search", "freeze_tool")),
            SIGNER.sign(command("tool:search", "resume")),
            SIGNER.sign(command("tenant:acme", "disable_autonomy")))
    for _ in range(2):  # two successive "processes" (fresh guards): each knows everything on its first call
        with guard_for(ks_config) as guard:
            with pytest.raises(ToolFrozen):
                guard.check(request())
            assert guard.state.ready.is_set()
            assert guard.check(request(tool="search", risk="low")).require_approval  # tenant-wide, search resumed
            assert sorted(guard.state.switches()) == [
                "agent:refund-assistant/tool:stripe.issue_refund", "tenant:acme", "tool:search"]


def test_missing_topic_is_an_empty_current_state(kafka_bootstrap: str) -> None:
    config = KillSwitchConfig(bootstrap=kafka_bootstrap, topic=uid("t_ks_absent"), heartbeat_s=0.2)
    with guard_for(config) as guard:
        assert guard.check(request(risk="high")) is ALLOW
        ensure_topic(config)
        publish(kafka_bootstrap, config.topic, SIGNER.sign(command("agent:refund-assistant", "freeze_tool")))
        wait_until(lambda: frozen(guard), timeout=10, message="a topic created later is picked up")


def test_fail_closed_when_the_broker_is_gone(tmp_path: Path) -> None:
    from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port

    broker = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=tmp_path / "k"))
    broker.start()
    try:
        config = KillSwitchConfig(bootstrap=broker.bootstrap, topic=uid("t_ks"), heartbeat_s=0.2, staleness_s=2.0)
        ensure_topic(config)
        publish(broker.bootstrap, config.topic, SIGNER.sign(command("tool:other", "freeze_tool")))
        with guard_for(config) as guard:
            assert guard.check(request(risk="high")) is ALLOW
            broker.kill()
            killed_at = time.monotonic()

            def high_blocked() -> bool:
                try:
                    guard.check(request(risk="high"))
                    return False
                except KillSwitchStale:
                    return True

            wait_until(high_blocked, timeout=15, message="high-risk calls fail closed")
            assert time.monotonic() - killed_at >= 2.0 - 0.25  # not before the staleness limit (one heartbeat slack)
            assert guard.check(request(risk="low")) is ALLOW
            with pytest.raises(KillSwitchStale):
                guard.check(request(risk="medium"))
            with pytest.raises(ToolFrozen):  # the last known state still holds for low-risk calls
                guard.check(request(tool="other", risk="low"))
            assert guard.stale_blocked >= 2
            broker.start()
            wait_until(lambda: not high_blocked(), timeout=30, message="high-risk calls run again once back")
    finally:
        broker.stop()


def test_the_control_plane_puts_the_command_in_force_back_after_a_replay(kafka_bootstrap: str, ks_config) -> None:
    from tripwire.killswitch import CommandPublisher, KillSwitchListener, KillSwitchState, read_topic

    scope = "agent:refund-assistant/tool:stripe.issue_refund"
    now = datetime.now(UTC)
    old_resume = SIGNER.sign(command(scope, "resume", at=now - timedelta(seconds=60)))
    freeze = SIGNER.sign(command(scope, "freeze_tool", at=now - timedelta(seconds=30)))
    publish(kafka_bootstrap, ks_config.topic, old_resume, freeze)
    publisher = CommandPublisher(ks_config, SIGNER)
    state = KillSwitchState(CommandVerifier([SIGNER.public_key()]))
    listener = KillSwitchListener(ks_config, state, name="test-control-plane", on_replay=publisher.republish).start()
    try:
        assert listener.wait_ready(15)
        publish(kafka_bootstrap, ks_config.topic, old_resume)  # an attacker replays the older signed resume
        wait_until(lambda: listener.records == 4, timeout=15, message="the replay and the re-publication read")
        # the replay is counted; the re-published copy of the held command is a (routine) duplicate
        assert publisher.republished == 1 and state.rejected["replay"] == 1 and state.rejected["duplicate"] == 1
        records = [m for m in read_topic(ks_config) if m.key() == scope.encode()]
        assert [m.value() for m in records] == [encode(old_resume), encode(freeze), encode(old_resume), encode(freeze)]
        # After compaction only the last record of the key remains: the freeze, not the replayed resume.
        with guard_for(ks_config) as guard:
            assert frozen(guard)
    finally:
        listener.close()
