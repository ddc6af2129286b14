"""Confluent Schema Registry framing (magic byte 0 + 4-byte schema id + Avro body), using
confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer`` directly.

Subjects follow the registry's default TopicNameStrategy: ``<topic>-value``, where the topic is the
contract topic of the record (events -> ``tripwire.events.v1``, run summaries -> ``tripwire.runs.v1``,
...; with ``topic_prefix`` as in :func:`topic_names`). The registered schema is the shipped
``.avsc`` text, so its docs and ``pii`` annotations travel with it.

Errors: bad bytes raise :class:`DecodeError` (the DLQ case); an unreachable or failing registry
raises :class:`SchemaRegistryUnavailableError`, which is retryable and must not send data to the DLQ.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterable
from typing import Any

from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import BaseModel, SecretStr, ValidationError

from tripwire.core.errors import MissingExtraError
from tripwire.schemas.catalog import SchemaCatalog, default_catalog
from tripwire.schemas.codec import DEFAULT_MODELS, AvroCodec, _classify_body, model_avro_name
from tripwire.schemas.conformance import records_in
from tripwire.schemas.errors import DecodeError, EncodeError, SchemaRegistryUnavailableError, describe_validation
from tripwire.schemas.topics import topic_names

try:
    from confluent_kafka.schema_registry import SchemaRegistryClient, dual_schema_id_deserializer
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError
except ImportError as e:  # authlib, cachetools, ... come with the schemaregistry extra
    raise MissingExtraError("confluent-kafka[schemaregistry]", "registry") from e

log = logging.getLogger(__name__)

_SCHEMA_TOPIC = {
    "events": "events",
    "run_summary": "runs",
    "window_stats": "metrics",
    "alert": "alerts",
    "kill_switch_command": "killswitch",
    "dead_letter": "dlq",
}


class ConfluentCodec:
    """Same ``encode``/``decode`` as :class:`AvroCodec`, in the Confluent wire format."""

    def __init__(
        self,
        registry_url: str | None = None,
        *,
        client: SchemaRegistryClient | None = None,
        basic_auth: SecretStr | None = None,
        auto_register: bool = True,
        topic_prefix: str = "",
        timeout_s: float = 10.0,
        max_retries: int = 3,
        catalog: SchemaCatalog | None = None,
        models: Iterable[type[BaseModel]] = DEFAULT_MODELS,
    ) -> None:
        if client is None:
            if not registry_url:
                raise ValueError("ConfluentCodec needs a registry_url or a client")
            conf: dict[str, Any] = {"url": registry_url, "timeout": timeout_s, "max.retries": max_retries}
            if basic_auth is not None:
                conf["basic.auth.user.info"] = basic_auth.get_secret_value()
            client = SchemaRegistryClient.new_client(conf)
        self.client = client
        self.catalog = catalog or default_catalog()
        self._topics = topic_names(topic_prefix)
        self._auto_register = auto_register
        models = tuple(models)
        self._avro = AvroCodec(self.catalog, models)  # shares model building (validation, enum members)
        self._models = {model_avro_name(m): m for m in models}
        self._schema_model = {
            m.SCHEMA_NAME: m  # type: ignore[attr-defined]
            for m in models
            if not isinstance(self.catalog.current(m.SCHEMA_NAME).schema, list)  # type: ignore[attr-defined]
        }
        self._payload = threading.local()  # the body stream of the current decode, to detect trailing bytes
        self._serializers: dict[str, tuple[AvroSerializer, SerializationContext, bool]] = {}
        self._deserializers: dict[str, AvroDeserializer] = {}
        self._id_to_name: dict[tuple[int, Any], str] = {}
        self._lock = threading.Lock()  # guards the lazily built (de)serializer maps

    # -- encode ------------------------------------------------------------------------------

    def topic_for(self, schema_name: str) -> str:
        return getattr(self._topics, _SCHEMA_TOPIC[schema_name])

    def _serializer(self, schema_name: str) -> tuple[AvroSerializer, SerializationContext, bool]:
        s = self._serializers.get(schema_name)
        if s is None:
            with self._lock:
                sv = self.catalog.current(schema_name)
                ser = AvroSerializer(
                    self.client,
                    sv.path.read_text(encoding="utf-8"),
                    conf={"auto.register.schemas": self._auto_register, "use.latest.version": False},
                )
                ctx = SerializationContext(self.topic_for(schema_name), MessageField.VALUE)
                s = self._serializers[schema_name] = (ser, ctx, isinstance(sv.schema, list))
        return s

    def encode(self, record: BaseModel, validate: bool = True) -> bytes:
        schema_name = getattr(type(record), "SCHEMA_NAME", "")
        if schema_name not in _SCHEMA_TOPIC or self._models.get(model_avro_name(type(record))) is not type(record):
            raise EncodeError(f"{type(record).__name__} is not a contract model this codec knows")
        if validate:
            try:
                record = type(record).__pydantic_validator__.validate_python(record.__dict__)
            except ValidationError as e:
                raise EncodeError(
                    "invalid " + describe_validation(type(record).__name__, e.errors(include_input=False))
                ) from e
        ser, ctx, is_union = self._serializer(schema_name)
        value = (model_avro_name(type(record)), record.__dict__) if is_union else record.__dict__
        try:
            data = ser(value, ctx)
        except SchemaRegistryError as e:
            if e.http_status_code in (409, 422):  # incompatible or invalid schema: not retryable
                raise EncodeError(f"registry rejected the {schema_name} schema: {e}") from e
            raise SchemaRegistryUnavailableError(f"schema registry failed: {e}") from e
        except (SerializationError, ValueError, TypeError, KeyError, OverflowError) as e:
            raise EncodeError(f"cannot write {type(record).__name__}: {type(e).__name__}: {e}") from e
        except Exception as e:  # transport errors of the HTTP client
            raise SchemaRegistryUnavailableError(f"schema registry failed: {type(e).__name__}: {e}") from e
        if data is None:  # only for a None record, which cannot reach here
            raise EncodeError("the serializer returned nothing")
        return data

    # -- decode ------------------------------------------------------------------------------

    def _writer_name(self, key: tuple[int, Any]) -> str:
        """Which contract schema (events, alert, ...) a registry schema id holds."""
        name = self._id_to_name.get(key)
        if name is not None:
            return name
        try:
            schema = self.client.get_schema(key[1]) if key[0] == 0 else self.client.get_schema_by_guid(key[1])
        except SchemaRegistryError as e:
            if e.http_status_code == 404:
                raise DecodeError("unknown_schema_id", f"the registry has no schema {key[1]}") from e
            raise SchemaRegistryUnavailableError(f"schema registry failed: {e}") from e
        except Exception as e:
            raise SchemaRegistryUnavailableError(f"schema registry failed: {type(e).__name__}: {e}") from e
        try:
            writer = json.loads(schema.schema_str or "")
            fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(writer), "CRC-64-AVRO"))
        except Exception as e:
            raise DecodeError("unknown_schema", f"registry schema {key[1]} is not valid Avro: {e}") from e
        known = self.catalog.by_fingerprint(fp)
        if known is not None:
            name = known.name
        else:  # a version we do not ship: match it by its record names
            names = set(records_in(writer))
            name = next(
                (n for n in self.catalog.names() if names and names <= set(records_in(self.catalog.current(n).schema))),
                "",
            )
            if not name:
                raise DecodeError("unknown_schema", f"registry schema {key[1]} holds no contract record")
        self._id_to_name[key] = name
        return name

    def _deserializer(self, schema_name: str) -> AvroDeserializer:
        d = self._deserializers.get(schema_name)
        if d is None:
            with self._lock:
                sv = self.catalog.current(schema_name)
                d = self._deserializers[schema_name] = AvroDeserializer(
                    self.client,
                    sv.path.read_text(encoding="utf-8"),
                    return_record_name=True,
                    conf={"schema.id.deserializer": self._keep_payload},
                )
        return d

    def _keep_payload(self, data: bytes, ctx: SerializationContext | None, schema_id: Any) -> io.BytesIO:
        payload = dual_schema_id_deserializer(data, ctx, schema_id)
        self._payload.stream = payload
        return payload

    def decode(self, data: bytes, validate: bool = True) -> BaseModel:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("not_bytes", f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < 1 or data[0] not in (0, 1):
            raise DecodeError(
                "bad_marker", f"expected the Confluent magic byte 0 (or 1), got {data[:1].hex() or 'nothing'}"
            )
        header = 5 if data[0] == 0 else 17
        if len(data) <= header:
            raise DecodeError(
                "truncated", f"{len(data)} bytes cannot hold the {header}-byte Confluent header and a body"
            )
        key: tuple[int, Any] = (0, int.from_bytes(data[1:5], "big")) if data[0] == 0 else (1, _guid(data[1:17]))
        name = self._writer_name(key)
        deserializer = self._deserializer(name)
        try:
            value: Any = deserializer(data, None)
        except Exception as e:
            raise _classify_body(e, self._writer_json(key), name, data, header) from e
        stream = self._payload.stream
        end = len(stream.getbuffer())
        if stream.tell() != end:
            raise DecodeError("trailing_bytes", f"{end - stream.tell()} bytes after the record")
        model = self._schema_model.get(name)
        if model is None:
            rec_name, value = value
            model = self._models.get(rec_name)
            if model is None:
                raise DecodeError("unknown_record", f"no model for Avro record {rec_name}")
        return self._avro.build(model, value, validate)

    def _writer_json(self, key: tuple[int, Any]) -> Any:
        try:
            s = self.client.get_schema(key[1]) if key[0] == 0 else self.client.get_schema_by_guid(key[1])
            return json.loads(s.schema_str or "")
        except Exception:
            return None


def _guid(raw: bytes) -> str:
    import uuid

    return str(uuid.UUID(bytes=raw))
