"""Compaction cannot undo a kill switch, and a command from the future cannot block a reset (issue 21,
findings 1 and 2), on the real broker with the log cleaner forced to run (tiny segments, low dirty ratio).

Anyone who can write to the topic, without any signing key, appends an older signed ``resume`` of the scope, a
tombstone and a re-keyed copy of another scope's command after the newer signed ``freeze``. With the
defences (``min.compaction.lag.ms`` longer than the control plane's re-publication interval, plus the
re-publication after any such record), the freeze survives compaction for a freshly started SDK and for
``tripwire killswitch status``. The control test shows the same attack does undo the switch without them,
so the compaction forced here is real."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.helpers import create_topics, uid, wait_until
from tripwire.killswitch import (
    CommandPublisher,
    CommandSigner,
    CommandVerifier,
    KillSwitchConfig,
    KillSwitchListener,
    KillSwitchState,
    Republisher,
    new_command,
    read_topic,
    topic_config,
)
from tripwire.producers.guard import ALLOW, ToolRequest
from tripwire.producers.killswitch import KillSwitchGuard, ToolFrozen
from tripwire.schemas import KillSwitchCommand, encode
from tripwire.schemas.enums import Risk

pytestmark = pytest.mark.integration

SIGNER = CommandSigner(Ed25519PrivateKey.generate())
SCOPE = "agent:refund-assistant/tool:stripe.issue_refund"
FAST_CLEANER = {"segment.ms": "200", "min.cleanable.dirty.ratio": "0.001", "delete.retention.ms": "100"}


def request() -> ToolRequest:
    return ToolRequest(tenant="acme", agent_id="refund-assistant", agent_version="1.0", workflow="w",
                       environment="test", principal=None, credential_fingerprint=None, run_id="r1",
                       trace_id="a" * 32, tool_name="stripe.issue_refund", tool_call_id=uid("call"),
                       risk=Risk.LOW, side_effect=True, idempotency_key=None, args=None)  # fmt: skip


def frozen(guard: KillSwitchGuard) -> bool:
    try:
        return guard.check(request()) is not ALLOW
    except ToolFrozen:
        return True


def frozen_for_a_new_sdk(config: KillSwitchConfig) -> bool:
    with KillSwitchGuard(config, verifier=CommandVerifier([SIGNER.public_key()])) as guard:
        return frozen(guard)


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes | None]]) -> None:
    """What an attacker with write access to the topic, and no key, can do."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(15) == 0


def compacted_config(bootstrap: str, *, lag_s: float, republish_s: float) -> KillSwitchConfig:
    config = KillSwitchConfig(bootstrap=bootstrap, topic=uid("t_ks_compact"), heartbeat_s=0.2, ready_timeout_s=10,
                              min_compaction_lag_s=lag_s, republish_interval_s=republish_s)  # fmt: skip
    # the shipped topic config, plus what makes the log cleaner run within seconds
    create_topics(bootstrap, {config.topic: 1}, {**topic_config(config), **FAST_CLEANER})
    return config


def attack(bootstrap: str, config: KillSwitchConfig) -> tuple[KillSwitchCommand, int]:
    """The control plane issues resume then freeze; the attacker appends the older resume, a tombstone and a
    re-keyed copy. Returns the freeze and the offset of its original record."""
    now = datetime.now(UTC)
    old_resume = SIGNER.sign(new_command(scope=SCOPE, action="resume", reason="ok", issued_by="oncall",
                                         now=now - timedelta(seconds=60)))  # fmt: skip
    other = SIGNER.sign(new_command(scope="agent:other", action="disable_autonomy", reason="x", issued_by="oncall",
                                    now=now - timedelta(seconds=50)))  # fmt: skip
    freeze = SIGNER.sign(new_command(scope=SCOPE, action="freeze_tool", reason="runaway", issued_by="policy",
                                     now=now - timedelta(seconds=30)))  # fmt: skip
    produce(bootstrap, config.topic, [(SCOPE, encode(old_resume)), ("agent:other", encode(other)),
                                      (SCOPE, encode(freeze))])  # fmt: skip
    offset = next(m.offset() for m in read_topic(config) if m.value() == encode(freeze))
    produce(bootstrap, config.topic, [(SCOPE, encode(old_resume)), (SCOPE, None), (SCOPE, encode(other))])
    return freeze, offset


def roll_and_wait_for_compaction(bootstrap: str, config: KillSwitchConfig, offset: int) -> list[Any]:
    """Keep appending (segments roll only on appends) until the cleaner has removed the record at ``offset``."""
    def compacted() -> list[Any] | None:
        produce(bootstrap, config.topic, [("filler", b"\x00")])  # an unsigned filler record on its own key
        records = read_topic(config)
        return None if any(m.offset() == offset for m in records) else records

    return wait_until(compacted, timeout=120, interval=0.5, message=f"the log cleaner to remove offset {offset}")


def status_json(config: KillSwitchConfig, tmp_path: Path) -> list[dict[str, Any]]:
    from tripwire.cli import app

    pem = tmp_path / "public.pem"
    pem.write_bytes(SIGNER.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    result = CliRunner().invoke(app, ["killswitch", "status", "--json", "--public-key", str(pem),
                                      "--bootstrap", config.bootstrap, "--topic", config.topic])  # fmt: skip
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def test_replays_tombstones_and_rekeyed_copies_cannot_undo_a_switch_through_compaction(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = compacted_config(kafka_bootstrap, lag_s=3.0, republish_s=0.5)
    # the control plane, as the policy worker runs it: a listener that answers records on a held key, and the
    # periodic re-publication of every scope's newest command
    publisher = CommandPublisher(config, SIGNER)
    state = KillSwitchState(CommandVerifier([SIGNER.public_key()]))
    listener = KillSwitchListener(config, state, name="test-control-plane", on_replay=publisher.republish).start()
    republisher = Republisher(listener, publisher, config.republish_interval_s).start()
    try:
        assert listener.wait_ready(15)
        freeze, offset = attack(kafka_bootstrap, config)
        wait_until(lambda: state.switches().get(SCOPE) and state.switches()[SCOPE].command_id == freeze.command_id,
                   timeout=15, message="the control plane holds the freeze")  # fmt: skip
        records = roll_and_wait_for_compaction(kafka_bootstrap, config, offset)
        assert all(m.offset() != offset for m in records)  # the original freeze record is gone...
    finally:
        republisher.stop()
        listener.close()
        publisher.close()
    # ...yet a freshly started SDK and `tripwire killswitch status` see the freeze, not the older resume
    assert frozen_for_a_new_sdk(config)
    shown = status_json(config, tmp_path)
    assert [(s["scope"], s["action"], s["command_id"]) for s in shown] == [
        ("agent:other", "disable_autonomy", shown[0]["command_id"]),
        (SCOPE, "freeze_tool", freeze.command_id),
    ]
    assert republisher.rounds >= 1 and publisher.republished >= republisher.rounds


def test_without_the_defences_compaction_undoes_the_switch(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The control: no compaction lag and no control plane re-publishing. The forced compaction really runs, and
    the attack then works; this is what the test above defends against."""
    config = compacted_config(kafka_bootstrap, lag_s=0.001, republish_s=0.0005)
    _freeze, offset = attack(kafka_bootstrap, config)
    roll_and_wait_for_compaction(kafka_bootstrap, config, offset)
    assert not frozen_for_a_new_sdk(config)
    assert all(s["scope"] != SCOPE for s in status_json(config, tmp_path))


def test_a_command_from_the_future_never_blocks_a_reset(kafka_bootstrap: str) -> None:
    """A signed freeze dated 20 s ahead (a control plane whose clock runs fast, inside the 30 s allowance) is
    obeyed; an on-call reset issued now through the publisher is dated after it and lifts it at once, for a
    running SDK and for a new one. One dated 60 s ahead is refused as from the future."""
    config = KillSwitchConfig(bootstrap=kafka_bootstrap, topic=uid("t_ks_future"), heartbeat_s=0.2, ready_timeout_s=10)
    create_topics(kafka_bootstrap, {config.topic: 1}, topic_config(config))
    now = datetime.now(UTC)
    ahead = SIGNER.sign(new_command(scope=SCOPE, action="freeze_tool", reason="skewed clock", issued_by="policy",
                                    now=now + timedelta(seconds=20)))  # fmt: skip
    too_far = SIGNER.sign(new_command(scope="agent:other", action="disable_autonomy", reason="x", issued_by="p",
                                      now=now + timedelta(seconds=60)))  # fmt: skip
    produce(kafka_bootstrap, config.topic, [(SCOPE, encode(ahead)), ("agent:other", encode(too_far))])
    verifier = CommandVerifier([SIGNER.public_key()])
    with KillSwitchGuard(config, verifier=verifier) as running:
        assert frozen(running)
        assert running.state.rejected["future"] == 1 and "agent:other" not in running.state.switches()
        reset = CommandPublisher(config, SIGNER).publish(
            new_command(scope=SCOPE, action="resume", reason="false alarm", issued_by="oncall"))
        assert reset.issued_at > ahead.issued_at  # dated after the command the scope holds
        t0 = time.monotonic()
        wait_until(lambda: not frozen(running), timeout=10, interval=0.02, message="the running SDK obeys the reset")
        assert time.monotonic() - t0 < 1.0
    assert not frozen_for_a_new_sdk(config)
