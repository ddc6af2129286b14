"""``TRIPWIRE_SCHEMA_FRAMING`` is honoured end to end: the SDK frames its events the way the processors and
the sink decode them, in both framings, and a Confluent framing without a registry fails at start.

The registry is confluent-kafka's ``mock://`` registry. Its clients do not share state between instances,
so the test hands every component the same client per URL (what one real registry gives them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import uid
from tests.store_helpers import chdb_store, table_count  # noqa: F401 - fixture
from tripwire.core.errors import ConfigError
from tripwire.devenv.kafka import free_port
from tripwire.producers import Tracer, TracerConfig
from tripwire.schemas import DecodeError, ModelCall, RunFinished, RunStarted, ToolCall, decode, topic_names
from tripwire.schemas.config import SchemaConfig, make_codec
from tripwire.sinks import Message, SinkSettings
from tripwire.sinks.kafka_sink import KafkaSink

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    clients: dict[str, Any] = {}
    original = SchemaRegistryClient.new_client

    def shared(conf: dict[str, Any]) -> Any:
        if conf["url"] not in clients:
            clients[conf["url"]] = original(conf)
        return clients[conf["url"]]

    monkeypatch.setattr(SchemaRegistryClient, "new_client", staticmethod(shared))
    yield clients


def _emit(prefix: str) -> list[tuple[bytes, bytes]]:
    """One run (start, tool call, model call, finish) from an SDK tracer configured by the environment."""
    captured: list[tuple[bytes, bytes]] = []
    cfg = TracerConfig(tenant="acme", agent={"name": "framing-agent"}, kafka={"topic": topic_names(prefix).events},
                       delivery={"spool_enabled": False})
    tracer = Tracer.in_process(lambda k, v: captured.append((k, v)), cfg)
    with tracer.run(workflow="framing") as run:
        with run.tool_call("lookup", args={"q": 1}):
            pass
        with run.model_call(provider="openai", model="gpt-4.1-mini") as call:
            call.record_usage(input_tokens=100, output_tokens=20)
    assert tracer.close(timeout=10)
    return captured


@pytest.mark.parametrize("framing", ["single_object", "confluent"])
def test_sdk_events_decode_in_the_processors_and_the_sink(framing: str, registry: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch, chdb_store: Any,  # noqa: F811
                                                          kafka_bootstrap: str) -> None:
    prefix = uid("fr")
    monkeypatch.setenv("TRIPWIRE_SCHEMA_FRAMING", framing)
    url = f"mock://{uid('sr')}"
    if framing == "confluent":
        monkeypatch.setenv("TRIPWIRE_SCHEMA_REGISTRY_URL", url)

    records = _emit(prefix)
    assert len(records) == 4
    if framing == "confluent":
        client = registry[url]
        schema_id = client.get_latest_version(f"{topic_names(prefix).events}-value").schema_id
        assert {v[:5] for _, v in records} == {b"\x00" + schema_id.to_bytes(4, "big")}
        with pytest.raises(DecodeError):  # what a single-object reader made of them before: dead letters
            decode(records[0][1])
    else:
        assert {v[:2] for _, v in records} == {b"\xc3\x01"}

    # the processors build their codec from the same environment (agents.py: SchemaConfig(topic_prefix=...))
    codec = make_codec(SchemaConfig(topic_prefix=prefix))
    events = [codec.decode(v) for _, v in records]
    assert [type(e) for e in events] == [RunStarted, ToolCall, ModelCall, RunFinished]
    assert len({e.run_id for e in events}) == 1
    assert (events[2].input_tokens, events[2].output_tokens) == (100, 20)

    # the sink, also from the environment: every event lands in ClickHouse, none dead-lettered
    sink = KafkaSink(chdb_store, SinkSettings(bootstrap=kafka_bootstrap, group_id=uid("g"), topic_prefix=prefix))
    try:
        events_topic = topic_names(prefix).events
        for offset, (key, value) in enumerate(records):
            sink.sink.add(Message(events_topic, 0, offset, key, value))
        sink.sink.flush()
    finally:
        sink.loop.consumer.close()
    assert sink.sink.stats.dead_lettered == 0
    counts = {t: table_count(chdb_store, t) for t in ("run_events", "tool_calls", "model_calls", "dead_letters")}
    assert counts == {"run_events": 2, "tool_calls": 1, "model_calls": 1, "dead_letters": 0}


def test_confluent_framing_without_a_registry_fails_at_start() -> None:
    dead = {"framing": "confluent", "registry_url": f"http://127.0.0.1:{free_port()}", "registry_timeout_s": 1,
            "registry_max_retries": 0}
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"the schema registry at http://127\.0\.0\.1:\d+ does not answer"):
        Tracer.in_process(lambda k, v: None, TracerConfig(schemas=dead, delivery={"spool_enabled": False}))
    with pytest.raises(ConfigError, match="does not answer"):
        KafkaSink(object(), SinkSettings(), schema=SchemaConfig(**dead))  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 10


def test_notifier_reads_confluent_alerts_and_single_object_killswitch_commands(
    registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str
) -> None:
    from tests.notify_helpers import make_alert, make_command
    from tripwire.notify import Notifier, NotifyConfig, routes_from_dict
    from tripwire.schemas import encode
    from tripwire.schemas.config import MixedFramingCodec

    prefix = uid("frn")
    monkeypatch.setenv("TRIPWIRE_SCHEMA_FRAMING", "confluent")
    monkeypatch.setenv("TRIPWIRE_SCHEMA_REGISTRY_URL", f"mock://{uid('sr')}")
    alert, command = make_alert(), make_command()
    alert_bytes = make_codec(SchemaConfig(topic_prefix=prefix)).encode(alert)  # as the processors write it
    assert alert_bytes[:1] == b"\x00"
    config = NotifyConfig(bootstrap=kafka_bootstrap, topic_prefix=prefix, group_id=uid("g"))
    notifier = Notifier(routes_from_dict({"routes": [{"name": "w", "channel": "webhook",
                                                      "url": "http://127.0.0.1:9/h"}]}, config), config)
    try:
        assert isinstance(notifier.codec, MixedFramingCodec)
        assert notifier.codec.decode(alert_bytes) == alert
        assert notifier.codec.decode(encode(command)) == command  # what `tripwire killswitch` writes
    finally:
        notifier.run(max_seconds=0)
