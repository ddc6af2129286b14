"""How the SDK frames its events on Kafka: ``TRIPWIRE_SCHEMA_FRAMING`` (see :mod:`tripwire.schemas.config`),
the same setting the processors and the sink read.

``single_object`` (default): Avro single-object encoding, no service needed. ``confluent``: the Confluent
wire format (magic byte 0 + 4-byte schema id + the same Avro body). The events schema is registered (or,
with ``auto_register=false``, looked up) once, when the tracer starts, under the subject
``<topic>-value``; its id then goes into the header the hot-path encoder writes, so encoding costs the same
in both framings. A registry that does not answer fails the start with a :class:`ConfigError` instead of
letting every event be dead-lettered downstream.
"""

from __future__ import annotations

from tripwire.core.errors import ConfigError
from tripwire.schemas.config import SchemaConfig, check_registry, make_codec
from tripwire.schemas.wire import CONFLUENT_MAGIC


def events_framing(config: SchemaConfig, topic: str) -> bytes | None:
    """The header the events encoder writes (None: single-object encoding)."""
    if config.framing != "confluent":
        return None
    from confluent_kafka.schema_registry import Schema

    from tripwire.schemas import default_catalog
    from tripwire.schemas.events import EVENTS_SCHEMA

    codec = make_codec(config)
    check_registry(config, codec)
    schema = Schema(default_catalog().current(EVENTS_SCHEMA).path.read_text(encoding="utf-8"), "AVRO")
    subject = f"{topic}-value"
    try:
        if config.auto_register:
            schema_id = codec.client.register_schema(subject, schema)
        else:
            schema_id = codec.client.lookup_schema(subject, schema).schema_id
    except Exception as e:
        raise ConfigError(
            f"TRIPWIRE_SCHEMA_FRAMING=confluent: the schema registry at {config.registry_url} did not "
            f"{'register' if config.auto_register else 'find'} the events schema under {subject} "
            f"({type(e).__name__}: {e})"
        ) from e
    return CONFLUENT_MAGIC + int(schema_id).to_bytes(4, "big")


__all__ = ["events_framing"]
