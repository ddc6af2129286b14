"""The kill switch's one CommandPublisher against the real broker: what it publishes reads back signed and
verified (by ``read_topic`` and by the listener an SDK runs), on a compacted topic it created, keyed by scope;
a command the broker refuses, or a broker that is not there, fails within the publisher's timeout with a
CommandPublishError."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import create_topics, uid
from tripwire.killswitch import (
    CommandPublisher,
    CommandPublishError,
    CommandSigner,
    CommandVerifier,
    KillSwitchConfig,
    KillSwitchListener,
    KillSwitchState,
    SignatureError,
    new_command,
    read_topic,
)
from tripwire.schemas import KillSwitchCommand, decode
from tripwire.schemas.enums import KillSwitchAction, Risk

pytestmark = pytest.mark.integration

SIGNER = CommandSigner(Ed25519PrivateKey.generate())
TIMEOUT_S = 3.0
SLACK_S = 2.0  # client start-up and the last flush slice; far below what a hang would take


def _topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=15)
    return {name: entry.value for name, entry in entries.items()}


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A private port bound but never listening: every connection to it is refused (and no one else gets it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_a_published_command_reads_back_signed_on_the_compacted_topic_it_created(kafka_bootstrap: str) -> None:
    config = KillSwitchConfig(bootstrap=kafka_bootstrap, topic=uid("t_kspub"), heartbeat_s=0.2)
    scope = "agent:refund-assistant/tool:stripe.issue_refund"
    unsigned = new_command(scope=scope, action="force_approval", min_risk="medium", reason="publisher test",
                           issued_by="user:oncall", ttl=timedelta(minutes=30), alert_id="alert-7")
    publisher = CommandPublisher(config, SIGNER, timeout_s=15)
    assert unsigned.signature is None
    signed = publisher.publish(unsigned)

    assert signed.model_dump(exclude={"key_id", "signature"}) == unsigned.model_dump(exclude={"key_id", "signature"})
    assert (signed.key_id, len(signed.signature or b"")) == (SIGNER.key_id, 64)
    assert _topic_config(kafka_bootstrap, config.topic)["cleanup.policy"] == "compact"
    [record] = read_topic(config)
    assert record.key() == scope.encode()
    read_back = decode(record.value())
    assert isinstance(read_back, KillSwitchCommand)
    assert read_back == signed
    CommandVerifier([SIGNER.public_key()]).verify(read_back)
    with pytest.raises(SignatureError):  # signed by the publisher's key, not by any other
        CommandVerifier([Ed25519PrivateKey.generate().public_key()]).verify(read_back)

    # Two more at once (one deadline): a resume of the first scope and a freeze elsewhere, each keyed by its scope.
    resume = new_command(scope=scope, action="resume", reason="all clear", issued_by="user:oncall")
    freeze = new_command(scope="tool:shell.exec", action="freeze_tool", reason="loop", issued_by="policy:loops")
    published = publisher.publish_all([resume, freeze])
    assert [c.command_id for c in published] == [resume.command_id, freeze.command_id]
    records = read_topic(config)
    assert [(m.key(), decode(m.value())) for m in records] == [
        (scope.encode(), signed), (scope.encode(), published[0]), (b"tool:shell.exec", published[1])]

    # What an SDK's listener makes of the topic: the resume superseded the approval, the freeze is in force.
    state = KillSwitchState(CommandVerifier([SIGNER.public_key()]))
    listener = KillSwitchListener(config, state, name="test-publisher").start()
    try:
        assert listener.wait_ready(15)
        assert state.accepted == 3 and sum(state.rejected.values()) == 0
        switches = state.switches()
        assert (switches[scope].action, switches[scope].command_id) == (KillSwitchAction.RESUME, resume.command_id)
        frozen = switches["tool:shell.exec"]
        assert (frozen.action, frozen.command_id, frozen.issued_by) == (
            KillSwitchAction.FREEZE_TOOL, freeze.command_id, "policy:loops")
        assert [s.scope for s in state.in_force()] == ["tool:shell.exec"]
    finally:
        listener.close()
    assert published[0].min_risk is None and signed.min_risk is Risk.MEDIUM


def test_a_command_the_broker_refuses_raises_the_typed_error_naming_it(kafka_bootstrap: str) -> None:
    # The topic takes records of at most 100 bytes; a signed command is several hundred: the broker refuses it.
    topic = uid("t_kspub_small")
    create_topics(kafka_bootstrap, {topic: 1}, config={"cleanup.policy": "compact", "max.message.bytes": "100"})
    config = KillSwitchConfig(bootstrap=kafka_bootstrap, topic=topic)
    command = new_command(scope="global", action="freeze_tool", reason="x", issued_by="test")
    publisher = CommandPublisher(config, SIGNER, timeout_s=TIMEOUT_S)
    t0 = time.monotonic()
    with pytest.raises(CommandPublishError, match="refused") as e:
        publisher.publish(command)
    assert time.monotonic() - t0 < TIMEOUT_S + SLACK_S
    assert (e.value.command_id, e.value.scope) == (command.command_id, "global")
    assert command.command_id in str(e.value) and topic in str(e.value) and "MSG_SIZE_TOO_LARGE" in str(e.value)
    assert read_topic(config) == []  # nothing landed


def test_an_unreachable_broker_fails_within_the_timeout(refused_port: int) -> None:
    config = KillSwitchConfig(bootstrap=f"127.0.0.1:{refused_port}", topic=uid("t_kspub_down"))
    publisher = CommandPublisher(config, SIGNER, timeout_s=TIMEOUT_S)
    command = new_command(scope="agent:bot", action="disable_autonomy", reason="x", issued_by="test")
    t0 = time.monotonic()
    with pytest.raises(CommandPublishError, match=f"127.0.0.1:{refused_port}"):
        publisher.publish(command)
    assert time.monotonic() - t0 < TIMEOUT_S + SLACK_S


def test_without_a_key_there_is_no_publisher(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tripwire.core.errors import ConfigError
    from tripwire.killswitch import KillSwitchKeyError

    with pytest.raises(ConfigError, match="no signing key configured"):
        CommandPublisher(KillSwitchConfig(private_key_path=None))
    with pytest.raises(KillSwitchKeyError, match="cannot read"):
        CommandPublisher(KillSwitchConfig(private_key_path=tmp_path / "missing.pem"))


def test_a_broker_gone_after_the_first_publish_fails_at_the_timeout_and_the_failed_command_never_lands(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port

    broker = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=tmp_path / "k"))
    broker.start()
    try:
        config = KillSwitchConfig(bootstrap=broker.bootstrap, topic=uid("t_kspub_gone"))
        publisher = CommandPublisher(config, SIGNER, timeout_s=TIMEOUT_S)  # one long-lived producer, as the policy
        first = publisher.publish(new_command(scope="agent:a", action="freeze_tool", reason="1", issued_by="t"))
        broker.kill()
        lost = new_command(scope="agent:b", action="freeze_tool", reason="2", issued_by="t")
        t0 = time.monotonic()
        # the publisher reads the scope's newest command first, then waits for the ack: either fails at the deadline
        with pytest.raises(CommandPublishError, match=r"not acknowledged|cannot read the kill-switch topic") as e:
            publisher.publish(lost)
        elapsed = time.monotonic() - t0
        assert elapsed < TIMEOUT_S + SLACK_S  # never later than the deadline
        if "not acknowledged" in str(e.value):  # waited for an ack: it gave up at the deadline, not before
            assert elapsed >= TIMEOUT_S - 0.5
        assert e.value.command_id == lost.command_id
        broker.start()
        third = new_command(scope="agent:c", action="freeze_tool", reason="3", issued_by="t")
        deadline = time.monotonic() + 60
        while True:  # the same publisher delivers again once the broker is back
            try:
                publisher.publish(third)
                break
            except CommandPublishError:
                assert time.monotonic() < deadline, "no publish after the broker came back"
        ids = [decode(m.value()).command_id for m in read_topic(config, timeout=30)]  # type: ignore[union-attr]
        assert ids[0] == first.command_id and lost.command_id not in ids and set(ids[1:]) == {third.command_id}
        assert publisher.close(timeout=5) == 0
    finally:
        broker.stop()
