"""Who may write the kill-switch topic (issue 21): a private SASL/SCRAM broker with Kafka's
StandardAuthorizer and ``allow.everyone.if.no.acl.found=false``, and the ACLs of
``tripwire.core.kafka_acls``. The agents' principal cannot produce to the kill-switch topic
(TOPIC_AUTHORIZATION_FAILED) yet still reads what the control plane wrote there and writes the
events topic; the control plane's produce succeeds; with no ACL, nobody but the super user can do
anything."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from tests.helpers import uid
from tripwire.core.kafka_acls import KafkaAclError, create_acls, killswitch_acls
from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port

pytestmark = pytest.mark.integration

USERS = {"admin": "admin-Scram-512", "control": "control-Scram-512", "agent": "agent-Scram-512",
         "stranger": "stranger-Scram-512"}
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaDevBroker]:
    b = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), sasl_port=free_port(),
                                      scram_users=USERS, authorizer=True, super_users=["admin"],
                                      run_dir=tmp_path_factory.mktemp("kacl")))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def conf(broker: KafkaDevBroker, user: str, **more: Any) -> dict[str, Any]:
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": USERS[user], **more}


def produce(broker: KafkaDevBroker, user: str, topic: str, value: bytes) -> KafkaError | None:
    """Produce one record as ``user``; the delivery error (None: delivered), within a deadline."""
    p = Producer(conf(broker, user, **{"enable.idempotence": True, "acks": "all", "message.timeout.ms": 15000}))
    outcome: list[KafkaError | None] = []
    p.produce(topic, value, key=b"agent:a", on_delivery=lambda err, _msg: outcome.append(err))
    deadline = time.monotonic() + TIMEOUT_S
    while not outcome and time.monotonic() < deadline:
        p.poll(0.2)
    p.flush(5)
    assert outcome, f"no delivery report for {user} within {TIMEOUT_S}s"
    return outcome[0]


def read_all(broker: KafkaDevBroker, user: str, topic: str, expect: int) -> list[bytes]:
    """The values of ``topic`` as ``user``, assigned from the beginning like the SDK's listener."""
    c = Consumer(conf(broker, user, **{"group.id": f"tripwire-killswitch-{uid('g')}", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        values: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(values) < expect and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            values.append(msg.value())
        return values
    finally:
        c.close()


@pytest.fixture(scope="module")
def topics(broker: KafkaDevBroker) -> dict[str, str]:
    names = {"killswitch": uid("tripwire.killswitch.v1"), "events": uid("tripwire.events.v1")}
    admin = AdminClient(conf(broker, "admin"))
    for fut in admin.create_topics([NewTopic(n, 1, 1) for n in names.values()]).values():
        fut.result(timeout=TIMEOUT_S)
    bindings = killswitch_acls(killswitch_topic=names["killswitch"], events_topic=names["events"],
                               control_plane="control", agents="agent")
    assert create_acls(admin, bindings, timeout=TIMEOUT_S) == 9
    return names


def test_the_agents_cannot_write_the_kill_switch_topic_but_read_it(broker: KafkaDevBroker,
                                                                   topics: dict[str, str]) -> None:
    ks, events = topics["killswitch"], topics["events"]
    assert produce(broker, "control", ks, b"signed disable") is None
    err = produce(broker, "agent", ks, b"forged resume")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert read_all(broker, "agent", ks, expect=2) == [b"signed disable"]  # the forged record never landed
    assert produce(broker, "agent", events, b"a model call") is None
    assert read_all(broker, "admin", events, expect=1) == [b"a model call"]


def test_a_principal_without_acls_gets_nothing(broker: KafkaDevBroker, topics: dict[str, str]) -> None:
    err = produce(broker, "stranger", topics["killswitch"], b"tombstone")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    with pytest.raises(KafkaException) as ei:
        read_all(broker, "stranger", topics["killswitch"], expect=1)
    # refused at its first request: the group lookup (the consumer's FindCoordinator) or the fetch
    assert ei.value.args[0].code() in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)


def test_only_a_super_user_may_create_acls(broker: KafkaDevBroker, topics: dict[str, str]) -> None:
    bindings = killswitch_acls(killswitch_topic=topics["killswitch"], events_topic=topics["events"],
                               control_plane="agent", agents="stranger")  # an agent granting itself the topic
    with pytest.raises(KafkaAclError, match="refused the ACL"):
        create_acls(AdminClient(conf(broker, "agent")), bindings, timeout=TIMEOUT_S)
    err = produce(broker, "agent", topics["killswitch"], b"forged resume")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_the_topics_acls_command_creates_the_same_acls(broker: KafkaDevBroker, tmp_path: Path) -> None:
    from tripwire.cli import app

    prefix = uid("acl")
    admin = AdminClient(conf(broker, "admin"))
    ks, events = f"{prefix}.tripwire.killswitch.v1", f"{prefix}.tripwire.events.v1"
    for fut in admin.create_topics([NewTopic(n, 1, 1) for n in (ks, events)]).values():
        fut.result(timeout=TIMEOUT_S)
    env = {"TRIPWIRE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "TRIPWIRE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "TRIPWIRE_KAFKA_SASL_USERNAME": "admin", "TRIPWIRE_KAFKA_SASL_PASSWORD": USERS["admin"]}
    r = CliRunner().invoke(app, ["topics", "acls", "--bootstrap", broker.sasl_bootstrap, "--topic-prefix", prefix,
                                 "--control-plane", "control", "--agents", "agent"], env=env)
    assert r.exit_code == 0, r.output
    assert f"9 ACLs: User:control writes {ks}; User:agent reads it and writes {events}" in r.output
    err = produce(broker, "agent", ks, b"forged resume")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce(broker, "control", ks, b"signed") is None
    assert read_all(broker, "agent", ks, expect=1) == [b"signed"]
