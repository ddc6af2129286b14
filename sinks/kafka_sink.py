"""The Kafka runtime of the batching sink: a handler of the shared consumer loop
(:class:`tripwire.core.consumer.ConsumerLoop`) that feeds ``BatchingSink`` and commits after ClickHouse.

- offsets are committed synchronously, and only the ones ``BatchingSink.flush()`` returns, i.e. after
  ClickHouse accepted every row up to them;
- on ``SinkBackpressureError`` (a :class:`~tripwire.core.consumer.Backpressure`) the loop pauses every
  assigned partition and keeps polling (group membership, rebalance callbacks) until ``retry_after``
  passed, then the same batch is flushed again; partitions resume after a successful flush;
- on revocation it flushes and commits what it can; what it could not store is forgotten
  uncommitted, and the partition's next owner replays it (its high-water marks drop
  duplicates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tripwire.core.consumer import ConsumerLoop, LoopSettings, Offsets, TopicPartition
from tripwire.schemas import Topics, topic_names
from tripwire.schemas.config import SchemaConfig
from tripwire.sinks.batching import BatchingSink, Message
from tripwire.sinks.config import SinkSettings
from tripwire.sinks.exceptions import SinkBackpressureError
from tripwire.sinks.store import Store

log = logging.getLogger(__name__)


def framing_decoder(schema: SchemaConfig, validate: bool) -> Callable[[bytes], Any] | None:
    """The sink's decoder under ``TRIPWIRE_SCHEMA_FRAMING`` (None: the default single-object decoder).

    With ``confluent`` the registry must answer at start (:class:`ConfigError` otherwise). Records still
    in single-object encoding (the kill-switch commands, anything written before the switch) keep decoding:
    the first bytes tell the framings apart (see :class:`MixedFramingCodec`)."""
    if schema.framing != "confluent":
        return None
    from functools import partial

    from tripwire.schemas.config import make_reader_codec

    return partial(make_reader_codec(schema).decode, validate=validate)


class KafkaSink:
    """Consume the six tripwire topics into ClickHouse with a ``BatchingSink``."""

    def __init__(
        self,
        store: Store,
        settings: SinkSettings | None = None,
        *,
        topics: Topics | None = None,
        consumer_config: dict[str, object] | None = None,
        sink_factory: Callable[..., BatchingSink] = BatchingSink,
        schema: SchemaConfig | None = None,
    ) -> None:
        self.settings = settings or SinkSettings()
        self.topics = topics or topic_names(self.settings.topic_prefix)
        s = self.settings
        decoder = framing_decoder(schema or SchemaConfig(topic_prefix=s.topic_prefix), s.validate_events)
        self.sink = sink_factory(
            store,
            self.topics,
            batch_rows=s.batch_rows,
            batch_bytes=s.batch_bytes,
            batch_seconds=s.batch_seconds,
            retry_initial_s=s.retry_initial_s,
            retry_max_s=s.retry_max_s,
            validate=s.validate_events,
            **({"decoder": decoder} if decoder is not None else {}),
        )
        conf: dict[str, Any] = {
            "bootstrap.servers": s.bootstrap,
            "group.id": s.group_id,
            "session.timeout.ms": int(s.session_timeout_s * 1000),
            **({"group.instance.id": s.instance_id} if s.instance_id else {}),
            "partition.assignment.strategy": "cooperative-sticky",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,  # a sink reads in bulk: few, large fetches
            **(consumer_config or {}),
        }
        # a bulk reader: wait for full batches; refused credentials stop the sink with a KafkaAuthError
        loop = LoopSettings(batch_size=10_000, poll_timeout_s=s.poll_timeout_s, fill_batch=True)
        self.loop = ConsumerLoop(conf, list(self.topics.all()), _SinkHandler(self.sink), security=s, settings=loop)

    @property
    def commits(self) -> int:
        return self.loop.commits

    def run(self, *, max_seconds: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Consume until ``stop()``, ``until()`` is true, or ``max_seconds`` passed; flushes on exit."""
        self.loop.run(max_seconds=max_seconds, until=until)

    def stop(self) -> None:
        self.loop.stop()


class _SinkHandler:
    """The sink as a :class:`~tripwire.core.consumer.ConsumerHandler`: durable = flushed to ClickHouse."""

    def __init__(self, sink: BatchingSink) -> None:
        self.sink = sink

    def take(self, msg: Message) -> None:
        self.sink.add(msg)  # SinkBackpressureError: the loop offers it again after retry_after

    def step(self, now: float) -> float | None:
        return None

    def committable(self, *, final: bool) -> Offsets:
        if final or self.sink.should_flush():
            return self.sink.flush()  # raises SinkBackpressureError: nothing committed, partitions paused
        return {}

    def backlogged(self) -> bool:
        return self.sink.pending_batches > 0  # a refused batch waits for its retry

    def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        self.sink.forget(partitions)  # reload the replay marks lazily

    def partitions_revoked(self, partitions: list[TopicPartition]) -> Offsets:
        try:
            return self.sink.flush()
        except SinkBackpressureError as e:
            log.warning("flush on revoke failed; partitions are replayed by their next owner: %s", e)
            return {}
        finally:
            self.sink.forget(partitions)

    def drain(self, timeout_s: float) -> None:
        pass  # the final committable() flushes, retried within the loop's drain bound

    def commit_failed(self, offsets: Offsets) -> None:
        pass  # the next flush commits higher offsets; a replay below them is dropped by the replay marks

    def close(self) -> None:
        pass
