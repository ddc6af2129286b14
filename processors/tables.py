"""The faust Tables holding operator state: one per stage, keyed like its input topic.

Values are ``partition (2 bytes, big-endian) + stage state bytes``: the partition lets a tick on
partition p visit exactly the keys that partition owns, whatever partitioner placed them.
"""

from __future__ import annotations

from typing import Any

from tripwire.processors.config import ProcessorConfig

STAGE_TABLES = ("runs", "agents", "credentials")


def create_tables(app: Any, config: ProcessorConfig) -> dict[str, Any]:
    import faust

    schema: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    tables = {}
    for name in STAGE_TABLES:
        table_name = f"state-{name}"
        # Our own changelog topic: faust would derive json serializers from the bytes key/value types,
        # and recovery decodes with the changelog topic's serializers.
        changelog = app.topic(
            f"{app.conf.id}-{table_name}-changelog",
            schema=schema,
            partitions=config.partitions,
            compacting=True,
            deleting=False,
            acks=False,
            internal=True,
        )
        table = app.Table(
            table_name,
            schema=schema,
            partitions=config.partitions,
            changelog_topic=changelog,
            help=f"operator state of the {name} stage",
        )
        table.key_serializer = table.value_serializer = "raw"  # the store and changelog writes
        tables[name] = table
    return tables


def pack(partition: int, state: bytes) -> bytes:
    return partition.to_bytes(2, "big") + state


def unpack(value: bytes) -> tuple[int, bytes]:
    return int.from_bytes(value[:2], "big"), value[2:]


def store_put(table: Any, partition: int, key: bytes, value: bytes) -> None:
    """Write ``key`` into the table's local RocksDB store for ``partition``.

    ``table[key] = value`` picks the partition from the stream event being processed; the runtime
    writes its states at offset commits, outside any event, so it names the partition itself (as
    faust's own changelog recovery does)."""
    store = table.data
    store._db_for_partition(partition).put(key, value)
    store._key_index[key] = partition
