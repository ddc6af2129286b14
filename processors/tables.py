"""The faust Tables holding operator state: one per stage, keyed like its input topic.

Values are ``partition (2 bytes, big-endian) + [applied position] + stage state bytes``: the
partition lets a tick on partition p visit exactly the keys that partition owns, whatever
partitioner placed them. The applied position (``0xFF``, the offset as 8 bytes and the index in a
batched record as 4, signed big-endian) is the last input record whose effect the state holds: the
runtime skips a record at or below it, so an input replayed after its effect was committed without
its offset is never applied twice (see ``agents.Runtime._apply``). A value without it (written
before it existed, or by a tick only) starts with the state itself (``0x00``: format v4, ``{``: JSON).

The runtime writes a table's local RocksDB store itself (:func:`store_write`), once the Kafka
transaction carrying the same values to the changelog has committed, in one RocksDB write batch
together with the changelog offset they reflect (faust's persisted offset, where its recovery
resumes reading). So the local store never holds a write whose transaction was aborted, and after
a kill it is the changelog up to its persisted offset: a restart replays only the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


_APPLIED = 0xFF
_APPLIED_LEN = 1 + 8 + 4


def pack(partition: int, state: bytes, applied: tuple[int, int] | None = None) -> bytes:
    """A table value: ``state`` of a key of ``partition``, holding the inputs up to ``applied``
    (``(offset, index)``, index -1 for a whole record) when given."""
    head = partition.to_bytes(2, "big")
    if applied is not None:
        head += bytes((_APPLIED,)) + applied[0].to_bytes(8, "big", signed=True)
        head += applied[1].to_bytes(4, "big", signed=True)
    return head + state


def unpack(value: bytes) -> tuple[int, bytes]:
    """``(partition, state bytes)`` of a table value."""
    return int.from_bytes(value[:2], "big"), value[state_start(value) :]


def state_start(value: bytes) -> int:
    """Where the state bytes begin in a table value (after the partition and any applied position)."""
    return 2 + _APPLIED_LEN if len(value) > 2 and value[2] == _APPLIED else 2


def applied_of(value: bytes) -> tuple[int, int] | None:
    """The ``(offset, index)`` of the last input a table value's state holds, if it says."""
    if len(value) < 2 + _APPLIED_LEN or value[2] != _APPLIED:
        return None
    offset = int.from_bytes(value[3:11], "big", signed=True)
    return offset, int.from_bytes(value[11:15], "big", signed=True)


OFFSET_KEY = b"__faust\0offset__"
"""The key under which faust's RocksDB store keeps a partition's persisted changelog offset
(``faust.stores.rocksdb.Store.offset_key``; the start-up self-check compares them)."""


def store_write(table: Any, partition: int, items: Iterable[tuple[bytes, bytes | None]], offset: int | None) -> None:
    """Write ``items`` (key, value or None for a delete) into the table's local RocksDB store for
    ``partition``, and the changelog ``offset`` they reflect, in ONE atomic write batch.

    Only ever called for values whose changelog records are committed (see the module doc)."""
    import rocksdict

    store = table.data
    index = store._key_index
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in items:
        if value is None:
            batch.delete(key)
            index.pop(key, None)
        else:
            batch.put(key, value)
            index[key] = partition
    if offset is not None:
        batch.put(OFFSET_KEY, str(offset).encode())
    store._db_for_partition(partition).write(batch)


def partition_items(table: Any, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) pairs of the table's local store for ``partition``."""
    for key, value in store_db(table, partition).items():
        if key != OFFSET_KEY:
            yield key, value


def store_db(table: Any, partition: int) -> Any:
    """The RocksDB database of ``partition`` (opened if needed)."""
    return table.data._db_for_partition(partition)
