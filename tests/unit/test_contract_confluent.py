"""Confluent Schema Registry framing via confluent-kafka's own client, serializer and
deserializer, against its ``mock://`` registry; and the config that selects the framing."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import ValidationError

from tests.helpers import uid
from tripwire.core.errors import ConfigError
from tripwire.schemas import (
    AvroCodec,
    ConfluentCodec,
    DecodeError,
    EncodeError,
    ModelCall,
    SchemaConfig,
    SchemaRegistryUnavailableError,
    make_codec,
    to_record,
    topic_names,
)
from tripwire.schemas.catalog import SHIPPED_ROOT, SchemaCatalog
from tripwire.schemas.codec import DEFAULT_MODELS
from tripwire.schemas.samples import sample_records, sample_run

pytestmark = pytest.mark.unit

ALL = [*sample_run(41, steps=5), *sample_records()]
FIXTURE_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "contract_schemas"
EVENTS_V1 = (SHIPPED_ROOT / "v1" / "events.avsc").read_text()
EVENTS_V2 = (FIXTURE_ROOT / "v2" / "events.avsc").read_text()


class ModelCallV2(ModelCall):
    server_address: str | None = None


@pytest.fixture
def codec():
    return ConfluentCodec(f"mock://{uid('sr')}")


@pytest.mark.parametrize("record", ALL, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("validate", [True, False])
def test_round_trip(codec, record, validate):
    data = codec.encode(record, validate=validate)
    assert data[0] == 0  # Confluent magic byte, then a 4-byte big-endian schema id
    back = codec.decode(data, validate=validate)
    assert type(back) is type(record)
    assert back == record
    assert to_record(back) == to_record(record)


def test_subjects_follow_topic_name_strategy_and_events_share_one_schema(codec):
    ids = {codec.encode(e)[1:5] for e in sample_run(0, steps=4)}
    assert len(ids) == 1
    for r in sample_records():
        codec.encode(r)
    assert sorted(codec.client.get_subjects()) == sorted(f"{t}-value" for t in topic_names().all())
    registered = codec.client.get_latest_version("tripwire.events.v1-value")
    assert registered.schema_id == struct.unpack(">I", next(iter(ids)))[0]
    assert json.loads(registered.schema.schema_str) == json.loads(EVENTS_V1)  # docs and pii kept


def test_topic_prefix_prefixes_subjects():
    c = ConfluentCodec(f"mock://{uid('sr')}", topic_prefix="t_ab12")
    c.encode(ALL[1])
    assert c.client.get_subjects() == ["t_ab12.tripwire.events.v1-value"]


def test_body_is_the_same_avro_as_single_object(codec):
    for r in ALL:
        assert codec.encode(r)[5:] == AvroCodec().encode(r)[10:]


def test_plain_confluent_deserializer_reads_our_bytes(codec):
    e = ALL[1]
    plain = AvroDeserializer(codec.client, EVENTS_V1, return_record_name=True)
    name, value = plain(codec.encode(e), SerializationContext("tripwire.events.v1", MessageField.VALUE))
    assert name == "tripwire.events.ModelCall"
    assert value == to_record(e)


def test_we_read_plain_confluent_serializer_bytes():
    client = SchemaRegistryClient.new_client({"url": f"mock://{uid('sr')}"})
    ser = AvroSerializer(client, EVENTS_V1)
    ctx = SerializationContext("tripwire.events.v1", MessageField.VALUE)
    for e in sample_run(3, steps=4):
        data = ser({k: (str(v) if isinstance(v, str) else v) for k, v in to_record(e).items()}, ctx)
        assert ConfluentCodec(client=client).decode(data) == e


def test_old_reader_reads_new_data_through_the_registry():
    client = SchemaRegistryClient.new_client({"url": f"mock://{uid('sr')}"})
    ser = AvroSerializer(client, EVENTS_V2)  # a v2 producer the reader has never shipped
    e = ALL[1]
    rec = {**to_record(e), "server_address": "api.openai.com"}
    data = ser(("tripwire.events.ModelCall", rec), SerializationContext("tripwire.events.v1", MessageField.VALUE))
    back = ConfluentCodec(client=client).decode(data)
    assert back == e


def test_new_reader_reads_old_data_through_the_registry(codec):
    v2_models = tuple(ModelCallV2 if m is ModelCall else m for m in DEFAULT_MODELS)
    new = ConfluentCodec(client=codec.client, catalog=SchemaCatalog([SHIPPED_ROOT, FIXTURE_ROOT]), models=v2_models)
    e = ALL[1]
    back = new.decode(codec.encode(e))
    assert type(back) is ModelCallV2
    assert back.server_address is None
    assert to_record(back) == {**to_record(e), "server_address": None}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad_marker"),
        (b"\xc3\x01" + b"\x00" * 20, "bad_marker"),
        (b"\x00\x00\x00", "truncated"),
        (b"\x00\x00\x00\x00\x01", "truncated"),
        (b"\x00" + struct.pack(">I", 987654) + b"\x00", "unknown_schema_id"),
    ],
)
def test_bad_input(codec, data, reason):
    with pytest.raises(DecodeError) as e:
        codec.decode(data)
    assert e.value.reason == reason


def test_bad_bodies(codec):
    good = codec.encode(ALL[1])
    reasons = set()
    for n in range(5 + 1, len(good)):
        with pytest.raises(DecodeError) as e:
            codec.decode(good[:n])
        reasons.add(e.value.reason)
    assert reasons == {"truncated"}
    with pytest.raises(DecodeError) as e:
        codec.decode(good + b"\x00")
    assert e.value.reason == "trailing_bytes"
    with pytest.raises(DecodeError) as e:
        codec.decode(good[:5] + b"\x0a" + good[6:])  # union branch 5 of 5
    assert e.value.reason == "bad_union_branch"


def test_schema_valid_model_invalid(codec):
    client = codec.client
    ser = AvroSerializer(client, EVENTS_V1)
    rec = {**to_record(ALL[1]), "trace_id": "Z" * 32}
    data = ser(("tripwire.events.ModelCall", rec), SerializationContext("tripwire.events.v1", MessageField.VALUE))
    with pytest.raises(DecodeError, match="trace_id") as e:
        codec.decode(data)
    assert e.value.reason == "invalid"


def test_encode_rejects_invalid_models(codec):
    with pytest.raises(EncodeError, match="input_tokens"):
        codec.encode(ALL[1].model_copy(update={"input_tokens": -1}))


def test_unreachable_registry_is_retryable_not_a_decode_error():
    c = ConfluentCodec("http://127.0.0.1:9", max_retries=0, timeout_s=2)
    with pytest.raises(SchemaRegistryUnavailableError):
        c.encode(ALL[1])
    with pytest.raises(SchemaRegistryUnavailableError):
        c.decode(b"\x00\x00\x00\x00\x01\x00")


# -- config ------------------------------------------------------------------------------------


def test_config_defaults_to_single_object(monkeypatch):
    for k in ("FRAMING", "REGISTRY_URL", "REGISTRY_BASIC_AUTH", "TOPIC_PREFIX"):
        monkeypatch.delenv(f"TRIPWIRE_SCHEMA_{k}", raising=False)
    cfg = SchemaConfig()
    assert cfg.framing == "single_object"
    assert isinstance(make_codec(cfg), AvroCodec)


def test_config_from_env_selects_confluent(monkeypatch):
    url = f"mock://{uid('sr')}"
    monkeypatch.setenv("TRIPWIRE_SCHEMA_FRAMING", "confluent")
    monkeypatch.setenv("TRIPWIRE_SCHEMA_REGISTRY_URL", url)
    monkeypatch.setenv("TRIPWIRE_SCHEMA_REGISTRY_BASIC_AUTH", "user:s3cret")
    monkeypatch.setenv("TRIPWIRE_SCHEMA_TOPIC_PREFIX", "t_x")
    cfg = SchemaConfig()
    assert (cfg.framing, cfg.registry_url, cfg.topic_prefix) == ("confluent", url, "t_x")
    assert "s3cret" not in repr(cfg)
    codec = make_codec(cfg)
    assert isinstance(codec, ConfluentCodec)
    assert codec.decode(codec.encode(ALL[1])) == ALL[1]
    assert codec.client.get_subjects() == ["t_x.tripwire.events.v1-value"]
    with pytest.raises(ValidationError):
        cfg.framing = "single_object"  # frozen


@pytest.mark.parametrize(
    "kwargs",
    [
        {"framing": "confluent"},
        {"framing": "confluent", "registry_url": "ftp://x"},
        {"framing": "protobuf"},
        {"registry_url": "http://x", "registry_basic_auth": "nocolon"},
    ],
)
def test_config_rejects(kwargs):
    with pytest.raises((ConfigError, ValidationError)):
        SchemaConfig(**kwargs)
