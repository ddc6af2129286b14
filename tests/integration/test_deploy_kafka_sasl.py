"""Every Kafka client of tripwire against a real broker that requires SASL/SCRAM-SHA-512.

A private dev broker (one per module) has a SASL_PLAINTEXT listener whose only user, ``alice``, is created
when its KRaft storage is formatted. With alice's password, the processors' topic admin, a faust producer
and aiokafka clients built from ``ProcessorConfig``, the SDK's producer and the ClickHouse sink all work;
with a wrong password each fails fast with an error that names the refused authentication (and never
the password): no client hangs. The same broker has an SSL listener with a certificate of its own
throwaway CA: clients that trust that CA (``TRIPWIRE_KAFKA_SSL_CAFILE``, host name checked) work, clients
that trust another CA fail fast.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.helpers import uid, wait_until
from tests.store_helpers import chdb_store, table_count  # noqa: F401 - fixture
from tripwire.core.kafka_security import KafkaAuthError, KafkaSecurity
from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port
from tripwire.killswitch import CommandSigner
from tripwire.processors.admin import ensure_topics
from tripwire.processors.config import ProcessorConfig
from tripwire.processors.topics import ensure_runtime_topics
from tripwire.producers import Tracer, TracerConfig
from tripwire.sinks import SinkSettings
from tripwire.sinks.kafka_sink import KafkaSink

pytestmark = pytest.mark.integration

PASSWORD = "alice-Scram-512"
WRONG = "not-alices-password"
GOOD: dict[str, Any] = {
    "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "alice",
    "sasl_password": PASSWORD,
}
BAD: dict[str, Any] = {**GOOD, "sasl_password": WRONG}
FAIL_FAST_S = 8.0  # a refused login is reported within about a second; generous for a loaded CI machine
SIGNER = CommandSigner(Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaDevBroker]:
    b = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), sasl_port=free_port(),
                                      ssl_port=free_port(), scram_users={"alice": PASSWORD},
                                      run_dir=tmp_path_factory.mktemp("ksasl")))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _partitions(plain_bootstrap: str, names: list[str]) -> dict[str, int]:
    meta = AdminClient({"bootstrap.servers": plain_bootstrap}).list_topics(timeout=10).topics
    return {n: len(meta[n].partitions) for n in names if n in meta}


def _tracer(bootstrap: str, topic: str, spool: Path, security: dict[str, Any]) -> Tracer:
    return Tracer(TracerConfig(tenant="acme", agent={"name": "sasl-agent"},
                               kafka={"bootstrap": bootstrap, "topic": topic, **security},
                               delivery={"spool_dir": spool}))


def _one_run(tracer: Tracer) -> None:
    with tracer.run(workflow="sasl") as run, run.tool_call("lookup", args={"q": 1}):
        pass


def test_the_right_credentials_work_for_every_client(broker: KafkaDevBroker, chdb_store: Any,  # noqa: F811
                                                     tmp_path: Path) -> None:
    prefix = uid("sasl")
    config = ProcessorConfig(bootstrap=broker.sasl_bootstrap, topic_prefix=prefix, partitions=2,
                             data_dir=tmp_path / "proc", **GOOD)

    # processors: the topic admin (confluent-kafka AdminClient) over SCRAM
    topics = ensure_runtime_topics(config)
    names = list(topics.partition_counts(2))
    wait_until(lambda: _partitions(broker.bootstrap, names) == dict.fromkeys(names, 2),
               timeout=15,  # metadata reaches the plaintext listener
               message="the topic in the broker's metadata")

    # the kill switch's clients (listener, CLI, dashboard, policy worker share kafka_properties()) over SCRAM
    from tripwire.killswitch import CommandPublisher, KillSwitchConfig, ensure_topic, new_command, read_topic
    from tripwire.schemas import decode

    ks = KillSwitchConfig(bootstrap=broker.sasl_bootstrap, topic=f"{prefix}.killswitch", partitions=1, **GOOD)
    assert ensure_topic(ks, timeout=20)
    wait_until(lambda: _partitions(broker.bootstrap, [ks.topic]) == {ks.topic: 1},
               timeout=15,  # metadata reaches the plaintext listener
               message="the topic in the broker's metadata")
    assert read_topic(ks, timeout=20) == []
    signed = CommandPublisher(ks, SIGNER, timeout_s=20).publish(
        new_command(scope="global", action="freeze_tool", reason="sasl", issued_by="test"))
    assert [(m.key(), decode(m.value())) for m in read_topic(ks, timeout=20)] == [(b"global", signed)]

    # the SDK's producer over SCRAM: every event of one run is acknowledged
    tracer = _tracer(broker.sasl_bootstrap, topics.events, tmp_path / "spool", GOOD)
    _one_run(tracer)
    assert tracer.flush(timeout=20)
    assert tracer.close(timeout=5)
    counters = tracer.counters()
    assert (counters.emitted, counters.delivered, counters.spooled, counters.dropped) == (3, 3, 0, 0)

    # the sink's consumer over SCRAM: the three events land in ClickHouse
    sink = KafkaSink(chdb_store, SinkSettings(bootstrap=broker.sasl_bootstrap, group_id=uid("sink"),
                                              topic_prefix=prefix, batch_seconds=0.2, **GOOD))
    done = threading.Event()
    t = threading.Thread(target=sink.run, kwargs={"until": done.is_set}, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while (table_count(chdb_store, "run_events"), table_count(chdb_store, "tool_calls")) != (2, 1):
        assert time.monotonic() < deadline, "the sink did not store the run over SASL"
        assert t.is_alive(), "the sink stopped"
        time.sleep(0.1)  # polling ClickHouse with a deadline
    done.set()
    t.join(timeout=30)
    assert not t.is_alive()
    assert sink.sink.stats.dead_lettered == 0

    # faust (the processors' App, credentials from ProcessorConfig) and aiokafka over SCRAM
    from tripwire.processors.app import create_app

    async def faust_and_aiokafka() -> list[tuple[bytes, bytes]]:
        from aiokafka import AIOKafkaConsumer

        producer = create_app(config).producer
        await asyncio.wait_for(producer.start(), 30)
        try:
            for i in range(3):
                await producer.send_and_wait(topics.metrics, f"k{i}".encode(), f"v{i}".encode(), partition=0,
                                             timestamp=None, headers=None)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topics.metrics, bootstrap_servers=config.bootstrap, group_id=uid("aio"),
                                    auto_offset_reset="earliest", **config.aiokafka_kwargs())
        await asyncio.wait_for(consumer.start(), 30)
        got: list[tuple[bytes, bytes]] = []
        try:
            end = time.monotonic() + 30
            while len(got) < 3 and time.monotonic() < end:
                batch = await consumer.getmany(timeout_ms=500)
                got += [(m.key, m.value) for msgs in batch.values() for m in msgs]
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(faust_and_aiokafka()) == [(b"k0", b"v0"), (b"k1", b"v1"), (b"k2", b"v2")]


def test_a_wrong_password_fails_fast_with_a_clear_error(broker: KafkaDevBroker, chdb_store: Any,  # noqa: F811
                                                        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    prefix = uid("saslbad")

    # topic admin (what `tripwire process` and `tripwire topics` run first)
    t0 = time.monotonic()
    with pytest.raises(KafkaAuthError) as e:
        ensure_topics(broker.sasl_bootstrap, {f"{prefix}.t": 1}, security=KafkaSecurity(**BAD), timeout=30)
    assert time.monotonic() - t0 < FAIL_FAST_S
    text = str(e.value)
    assert "SASL authentication error" in text and "user=alice mechanism=SCRAM-SHA-512" in text
    assert WRONG not in text

    # the sink stops with the same error instead of polling forever
    sink = KafkaSink(chdb_store, SinkSettings(bootstrap=broker.sasl_bootstrap, group_id=uid("sink"),
                                              topic_prefix=prefix, **BAD))
    t0 = time.monotonic()
    with pytest.raises(KafkaAuthError, match="SASL authentication error"):
        sink.run(max_seconds=30)
    assert time.monotonic() - t0 < FAIL_FAST_S

    # the kill switch's publisher (CLI, dashboard, policy worker) raises its typed error, without the password
    from tripwire.killswitch import CommandPublisher, CommandPublishError, KillSwitchConfig, new_command

    ks = KillSwitchConfig(bootstrap=broker.sasl_bootstrap, topic=f"{prefix}.killswitch", **BAD)
    t0 = time.monotonic()
    with pytest.raises(CommandPublishError) as ks_error:
        CommandPublisher(ks, SIGNER, timeout_s=30).publish(
            new_command(scope="global", action="freeze_tool", reason="sasl", issued_by="test"))
    assert time.monotonic() - t0 < FAIL_FAST_S
    assert "SASL authentication error" in str(ks_error.value) and WRONG not in str(ks_error.value)

    # the SDK never raises into the agent: the refused login is logged, the events wait in the spool
    tracer = _tracer(broker.sasl_bootstrap, f"{prefix}.events", tmp_path / "spool", BAD)
    _one_run(tracer)
    assert not tracer.flush(timeout=2)
    assert not tracer.close(timeout=2)
    counters = tracer.counters()
    assert (counters.emitted, counters.delivered, counters.spooled, counters.dropped) == (3, 0, 3, 0)
    assert any("SASL authentication error" in r.getMessage() for r in caplog.records)

    # aiokafka (what faust runs) refuses to start
    config = ProcessorConfig(bootstrap=broker.sasl_bootstrap, topic_prefix=prefix, data_dir=tmp_path / "p", **BAD)

    async def start_aiokafka() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap, **config.aiokafka_kwargs())
        try:
            await asyncio.wait_for(producer.start(), FAIL_FAST_S)
        finally:
            await producer.stop()

    from aiokafka.errors import KafkaConnectionError

    t0 = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        asyncio.run(start_aiokafka())
    assert time.monotonic() - t0 < FAIL_FAST_S
    assert any("SaslAuthenticationFailed" in r.getMessage() for r in caplog.records)

    # `tripwire topics describe` with the credentials in the environment: exit 1 and the reason
    from tripwire.cli import app

    env = {f"TRIPWIRE_KAFKA_{k.upper()}": v for k, v in BAD.items()}
    result = CliRunner().invoke(app, ["topics", "describe", "--bootstrap", broker.sasl_bootstrap,
                                      "--topic-prefix", prefix, "--timeout", "30"], env=env)
    assert result.exit_code == 1, result.output
    assert "refused the connection" in result.output and WRONG not in result.output
    for r in caplog.records:
        assert WRONG not in r.getMessage() and PASSWORD not in r.getMessage()


def test_the_notifier_delivers_over_scram_and_stops_on_a_wrong_password(broker: KafkaDevBroker) -> None:
    from tests.helpers import create_topics, wait_until
    from tests.notify_helpers import Receiver, committed, make_alert, produce
    from tripwire.notify import Notifier, NotifyConfig, routes_from_dict
    from tripwire.schemas import encode, topic_names

    prefix = uid("saslnotify")
    topics = topic_names(prefix)
    create_topics(broker.bootstrap, {topics.alerts: 1, topics.killswitch: 1, topics.dlq: 1})
    alert = make_alert()
    produce(broker.bootstrap, topics.alerts, [(alert.incident_id.encode(), encode(alert))])
    rx = Receiver(lambda i, h, b: 200)
    group = uid("g")
    base = {"bootstrap": broker.sasl_bootstrap, "topic_prefix": prefix, "group_id": group,
            "commit_interval_s": 0.05, "shutdown_timeout_s": 5.0}
    routes = [{"name": "hook", "channel": "webhook", "url": rx.url}]
    try:
        config = NotifyConfig(**base, **GOOD)
        notifier = Notifier(routes_from_dict({"routes": routes}, config), config)
        t = threading.Thread(target=notifier.run, daemon=True)
        t.start()
        try:
            wait_until(lambda: committed(broker.bootstrap, group, topics.alerts) == 1, 30,
                       message="the alert delivered and committed over SASL")
        finally:
            notifier.stop()
            t.join(20)
        assert not t.is_alive()
        assert len(rx.ok()) == 1

        bad = NotifyConfig(**{**base, "group_id": uid("g")}, **BAD)
        t0 = time.monotonic()
        with pytest.raises(KafkaAuthError, match="SASL authentication error"):
            Notifier(routes_from_dict({"routes": routes}, bad), bad).run(max_seconds=30)
        assert time.monotonic() - t0 < FAIL_FAST_S + 5  # + the bounded producer flush on the way out
    finally:
        rx.close()


def test_tls_clients_trust_the_brokers_ca_and_refuse_another(broker: KafkaDevBroker, tmp_path: Path) -> None:
    from tripwire.devenv._tls import ensure_dev_tls
    from tripwire.processors.app import create_app

    prefix = uid("tls")
    good = {"security_protocol": "SSL", "ssl_cafile": broker.ssl_cafile}
    config = ProcessorConfig(bootstrap=broker.ssl_bootstrap, topic_prefix=prefix, partitions=2,
                             data_dir=tmp_path / "proc", **good)
    topics = ensure_runtime_topics(config)  # confluent-kafka over TLS, host name checked
    wait_until(lambda: _partitions(broker.bootstrap, [topics.events]) == {topics.events: 2},
               timeout=15,  # metadata reaches the plaintext listener
               message="the topic in the broker's metadata")

    tracer = _tracer(broker.ssl_bootstrap, topics.events, tmp_path / "spool", good)
    _one_run(tracer)
    assert tracer.flush(timeout=20) and tracer.close(timeout=5)
    assert tracer.counters().delivered == 3

    async def faust_over_tls() -> int:
        producer = create_app(config).producer  # faust SSLCredentials -> aiokafka ssl_context
        await asyncio.wait_for(producer.start(), 30)
        try:
            md = await producer.send_and_wait(topics.metrics, b"k", b"v", partition=1, timestamp=None, headers=None)
        finally:
            await producer.stop()
        return int(md.partition)

    assert asyncio.run(faust_over_tls()) == 1

    other = ensure_dev_tls(tmp_path / "other-ca").ca  # a CA that did not sign the broker's certificate
    t0 = time.monotonic()
    with pytest.raises(KafkaAuthError, match="certificate verify failed"):
        ensure_topics(broker.ssl_bootstrap, {f"{prefix}.x": 1}, timeout=30,
                      security=KafkaSecurity(security_protocol="SSL", ssl_cafile=other))
    assert time.monotonic() - t0 < FAIL_FAST_S

    async def aiokafka_with_another_ca() -> None:
        from aiokafka import AIOKafkaProducer

        bad = KafkaSecurity(security_protocol="SSL", ssl_cafile=other)
        producer = AIOKafkaProducer(bootstrap_servers=broker.ssl_bootstrap, **bad.aiokafka_kwargs())
        try:
            await asyncio.wait_for(producer.start(), FAIL_FAST_S)
        finally:
            await producer.stop()

    from aiokafka.errors import KafkaConnectionError

    with pytest.raises(KafkaConnectionError):
        asyncio.run(aiokafka_with_another_ca())
