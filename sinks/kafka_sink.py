"""The Kafka runtime of the batching sink: poll, feed ``BatchingSink``, commit after ClickHouse.

- manual commits (``enable.auto.commit=false``): offsets are committed synchronously, and only
  the ones ``BatchingSink.flush()`` returns, i.e. after ClickHouse accepted every row up to them;
- on ``SinkBackpressureError`` every assigned partition is paused and the consumer keeps
  polling (group membership, rebalance callbacks) until ``retry_after`` passed, then the same
  batch is flushed again; partitions resume after a successful flush;
- on revocation it flushes and commits what it can; what it could not store is forgotten
  uncommitted, and the partition's next owner replays it (its high-water marks drop
  duplicates).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tripwire.core.kafka_security import AuthWatch
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
        from confluent_kafka import Consumer

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
        conf: dict[str, object] = {
            "bootstrap.servers": s.bootstrap,
            **s.confluent_conf(),
            "group.id": s.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,  # a sink reads in bulk: few, large fetches
        }
        conf.update(consumer_config or {})
        self._auth = AuthWatch(s, s.bootstrap)  # refused credentials stop the sink with a KafkaAuthError
        conf.setdefault("error_cb", self._auth)
        self._consumer = Consumer(conf)
        self._stop = threading.Event()
        self._paused = False
        self._stash: deque[Message] = deque()  # polled, not yet taken by the sink
        self.commits = 0

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer: object, partitions: list) -> None:
        self.sink.forget((p.topic, p.partition) for p in partitions)  # reload marks lazily
        if self._paused:
            self._consumer.pause(partitions)
        log.info("partitions assigned n=%d", len(partitions))

    def _on_revoke(self, consumer: object, partitions: list) -> None:
        try:
            self._commit(self.sink.flush())
        except SinkBackpressureError as e:
            log.warning("flush on revoke failed; partitions are replayed by their next owner: %s", e)
        gone = {(p.topic, p.partition) for p in partitions}
        self.sink.forget(gone)
        self._stash = deque(m for m in self._stash if (m.topic, m.partition) not in gone)
        log.info("partitions revoked n=%d", len(partitions))

    # -- loop --------------------------------------------------------------------------------
    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        from confluent_kafka import TopicPartition

        tps = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        self._consumer.commit(offsets=tps, asynchronous=False)
        self.commits += 1

    def _poll(self, n: int, timeout: float) -> None:
        for m in self._consumer.consume(num_messages=n, timeout=timeout):
            err = m.error()
            if err is not None:
                log.warning("consumer error: %s", err)
                continue
            ts_type, ts = m.timestamp()
            self._stash.append(
                Message(m.topic(), m.partition(), m.offset(), m.key(), m.value(), ts if ts_type else None)
            )

    def _take(self) -> None:
        """Hand polled messages to the sink in order; on backpressure keep the rest and pause."""
        stash = self._stash
        while stash:
            try:
                self.sink.add(stash[0])
            except SinkBackpressureError as e:
                self._pause(e)
                return
            stash.popleft()

    def _pause(self, e: SinkBackpressureError) -> None:
        if not self._paused:
            self._consumer.pause(self._consumer.assignment())
            self._paused = True
            log.warning("paused partitions retry_after=%.2f table=%s", e.retry_after, e.table)

    def _flush(self) -> None:
        try:
            offsets = self.sink.flush()
        except SinkBackpressureError as e:
            self._pause(e)
            return
        self._commit(offsets)
        if self._paused and not self._stash:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
            log.info("resumed partitions")

    def run(self, *, max_seconds: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Consume until ``stop()``, ``until()`` is true, or ``max_seconds`` passed; flushes on exit."""
        self._consumer.subscribe(list(self.topics.all()), on_assign=self._on_assign, on_revoke=self._on_revoke)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        poll_s = self.settings.poll_timeout_s
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if until is not None and until():
                    break
                if self._stash and self.sink.retry_in() > 0:  # paused: keep the group alive, take nothing new
                    self._poll(1, min(poll_s, self.sink.retry_in()))
                    continue
                if not self._stash:
                    self._poll(10_000, poll_s)
                    self._auth.check()
                self._take()
                if self.sink.should_flush():
                    self._flush()
            self._drain()
        finally:
            self._consumer.close()

    def _drain(self, timeout_s: float = 30.0) -> None:
        end = time.monotonic() + timeout_s
        while True:
            try:
                self._commit(self.sink.flush())
                return
            except SinkBackpressureError as e:
                if time.monotonic() + e.retry_after > end:
                    log.error("shutdown with unstored rows; they stay uncommitted and are replayed on restart")
                    return
                time.sleep(e.retry_after)  # shutting down: nothing else to do meanwhile

    def stop(self) -> None:
        self._stop.set()
