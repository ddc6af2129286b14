"""The one consume/commit loop of tripwire's Kafka consumers (the ClickHouse sink, the notifier).

A component writes a :class:`ConsumerHandler` (what to do with a message, which offsets are durable) and
hands it to a :class:`ConsumerLoop`, which owns everything else, in one order:

1. **poll** a batch (``poll`` then ``consume(timeout=0)`` for what librdkafka already fetched, or one
   ``consume`` that waits to fill the batch for bulk readers), raise a refused login at once
   (:class:`~tripwire.core.kafka_security.KafkaAuthError` through :class:`AuthWatch`), log consumer errors
   rate-limited;
2. **offer** the messages to the handler in log order; a handler that cannot take one raises
   :class:`Backpressure`: the loop keeps it and the rest, pauses every assigned partition (the consumer
   keeps polling, so the group membership and the rebalance callbacks stay alive) and offers it again
   after ``retry_after``;
3. **step** the handler (its timers: deliveries, batching deadlines), which says when it next needs the
   loop (that caps the poll timeout);
4. **commit** only what :meth:`ConsumerHandler.committable` returns, i.e. offsets whose messages are
   durable (stored, delivered or dead-lettered); a handler may raise :class:`Backpressure` there too
   (its store refused a flush): nothing is committed and the partitions pause;
5. **resume** when nothing waits and the handler is no longer backlogged.

On revocation the handler settles what it can and the loop commits those offsets synchronously before
the partitions go; what was not durable is replayed by the next owner. When the assignment is *lost* (the
group session timed out, e.g. while the broker was down) no commit is tried, since none can succeed: the
next owner replays from the last commit (the sink drops what it stored by its replay marks, the notifier
what it delivered by its done watermark). On stop the handler drains
within a bound, the loop commits the final offsets synchronously, and closes the consumer. A commit that
fails is handed back (:meth:`ConsumerHandler.commit_failed`): offsets are retried, never skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from tripwire.core.errors import TripwireError
from tripwire.core.kafka_security import AuthWatch, KafkaSecurity
from tripwire.core.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)
_errors = RateLimitedLog(log, interval_s=30.0)

TopicPartition = tuple[str, int]
Offsets = dict[TopicPartition, int]


class Backpressure(TripwireError):
    """The handler cannot take (or store) more now; the loop pauses and offers again after ``retry_after``."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"backpressure; retry in {retry_after:.2f}s")
        self.retry_after = retry_after


class Message(NamedTuple):
    """One record of a topic, as every consumer of tripwire sees it (a named tuple: built for every
    record consumed, at a third of a frozen dataclass's cost)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


class ConsumerHandler(Protocol):
    """What a component tells the :class:`ConsumerLoop`. Every method runs on the loop's thread."""

    def take(self, msg: Message) -> None:
        """Handle one message (in log order per partition); raise :class:`Backpressure` to get it again later."""

    def step(self, now: float) -> float | None:
        """Timed work after each poll; return the seconds until the handler next needs the loop (None: none)."""

    def committable(self, *, final: bool) -> Offsets:
        """Offsets (next to read) of every partition whose messages up to there are durable, to commit now
        (empty: nothing to commit yet). ``final``: the loop is stopping. May raise :class:`Backpressure`."""

    def backlogged(self) -> bool:
        """True while the handler wants no new messages (the loop keeps the partitions paused)."""

    def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        """Partitions this consumer now owns."""

    def partitions_revoked(self, partitions: list[TopicPartition]) -> Offsets:
        """Partitions about to go: settle what can be settled, forget them, return the offsets to commit."""

    def drain(self, timeout_s: float) -> None:
        """The loop is stopping: finish in-flight work within ``timeout_s``."""

    def commit_failed(self, offsets: Offsets) -> None:
        """A commit of ``offsets`` failed; offer them again with the next commit."""

    def close(self) -> None:
        """Release the handler's resources (before the consumer closes, which revokes every partition)."""


@dataclass(frozen=True, slots=True)
class LoopSettings:
    batch_size: int = 500
    """Messages taken from the client per poll."""
    poll_timeout_s: float = 0.2
    """Longest wait for messages when the handler has nothing due earlier."""
    fill_batch: bool = False
    """Wait up to the poll timeout for a full batch (bulk readers such as the sink) instead of returning
    with what has arrived (latency-sensitive readers such as the notifier)."""
    async_commits: bool = False
    """Commit asynchronously while running (failures come back through ``commit_failed``); revocation
    and stop always commit synchronously."""
    drain_timeout_s: float = 30.0
    """Bound of the drain and final commit on stop."""


class ConsumerLoop:
    """Run a :class:`ConsumerHandler` on a confluent-kafka consumer with manual commits."""

    def __init__(
        self,
        conf: dict[str, Any],
        topics: list[str],
        handler: ConsumerHandler,
        *,
        security: KafkaSecurity,
        settings: LoopSettings | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.settings = s = settings or LoopSettings()
        self.topics = list(topics)
        self.handler = handler
        bootstrap = str(conf.get("bootstrap.servers", ""))
        self.auth = AuthWatch(security, bootstrap)
        full: dict[str, Any] = {
            **security.confluent_conf(),
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **conf,
            "enable.auto.commit": False,  # the loop commits what the handler says is durable, nothing else
        }
        full.setdefault("error_cb", self.auth)
        if s.async_commits:
            full["on_commit"] = self._on_commit
        self.consumer = Consumer(full)
        self.commits = 0
        self.paused = False
        self._stash: deque[Message] = deque()  # polled, not yet taken by the handler
        self._retry_at = 0.0
        self._due: float | None = None  # when the handler next needs the loop (monotonic)
        self._stop = threading.Event()

    # -- public --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to return (any thread)."""
        self._stop.set()

    def run(self, *, max_seconds: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Consume until :meth:`stop`, ``until()`` is true or ``max_seconds`` passed; then drain, commit, close."""
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if until is not None and until():
                    break
                self.step()
            self._finish()
        finally:
            try:
                self.handler.close()
            finally:
                self.consumer.close()  # revokes every partition: the handler's last offsets commit there

    def step(self) -> None:
        """One turn of the loop (public so a test can drive it)."""
        now = time.monotonic()
        timeout = self.settings.poll_timeout_s
        if self._due is not None:
            timeout = min(timeout, self._due - now)
        if self._stash and now < self._retry_at:
            timeout = min(timeout, self._retry_at - now)
        self._poll(max(0.0, timeout))
        self._offer()
        now = time.monotonic()
        due = self.handler.step(now)
        self._due = None if due is None else now + due
        self._commit_durable()
        self._flow()

    # -- the turn ------------------------------------------------------------------------------------
    def _poll(self, timeout: float) -> None:
        s = self.settings
        if self.paused or self._stash:  # serve callbacks and membership; paused partitions return nothing
            msgs = self.consumer.consume(num_messages=1, timeout=timeout)
        elif s.fill_batch:
            msgs = self.consumer.consume(num_messages=s.batch_size, timeout=timeout)
        else:
            first = self.consumer.poll(timeout)
            msgs = [] if first is None else [first, *self.consumer.consume(num_messages=s.batch_size - 1, timeout=0)]
        self.auth.check()
        for m in msgs:
            err = m.error()
            if err is not None:
                _errors.warning(f"consumer-{err.code()}", "consumer error topics=%s error=%s", self.topics, err)
                continue
            ts_type, ts = m.timestamp()
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None and partition is not None and offset is not None  # set on every record
            self._stash.append(Message(topic, partition, offset, m.key(), m.value(), ts if ts_type else None))

    def _offer(self) -> None:
        stash = self._stash
        if not stash or time.monotonic() < self._retry_at:
            return
        while stash:
            try:
                self.handler.take(stash[0])
            except Backpressure as e:
                self._hold(e)
                return
            stash.popleft()

    def _commit_durable(self) -> None:
        try:
            offsets = self.handler.committable(final=False)
        except Backpressure as e:
            self._hold(e)
            return
        self._commit(offsets, sync=not self.settings.async_commits)

    def _flow(self) -> None:
        if self.paused:
            if not self._stash and time.monotonic() >= self._retry_at and not self.handler.backlogged():
                self.consumer.resume(self.consumer.assignment())
                self.paused = False
                log.info("resumed partitions topics=%s", self.topics)
        elif self.handler.backlogged():
            self._pause("handler backlogged")

    def _hold(self, e: Backpressure) -> None:
        self._retry_at = time.monotonic() + e.retry_after
        self._pause(str(e))

    def _pause(self, why: str) -> None:
        if not self.paused:
            self.consumer.pause(self.consumer.assignment())
            self.paused = True
            log.warning("paused partitions topics=%s reason=%s", self.topics, why)

    # -- commits -------------------------------------------------------------------------------------
    def _commit(self, offsets: Offsets, *, sync: bool) -> None:
        if not offsets:
            return
        from confluent_kafka import KafkaException
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        tps = [KafkaTopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        try:
            if sync:
                self.consumer.commit(offsets=tps, asynchronous=False)
            else:
                self.consumer.commit(offsets=tps, asynchronous=True)
            self.commits += 1
        except KafkaException as e:  # e.g. during a rebalance: offered again, replayed at worst, never skipped
            log.warning("commit failed topics=%s error=%s", self.topics, e)
            self.handler.commit_failed(offsets)

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        if err is None and not any(p.error for p in partitions):
            return
        log.warning("async commit failed, retrying with the next commit: %s", err)
        self.handler.commit_failed({(p.topic, p.partition): p.offset for p in partitions})

    def _finish(self) -> None:
        """Drain the handler and commit its final offsets synchronously, within the drain bound."""
        end = time.monotonic() + self.settings.drain_timeout_s
        self.handler.drain(max(0.0, end - time.monotonic()))
        while True:
            try:
                self._commit(self.handler.committable(final=True), sync=True)
                return
            except Backpressure as e:
                if time.monotonic() + e.retry_after > end:
                    log.error("stopping with undurable messages topics=%s: they stay uncommitted and are "
                              "replayed on restart", self.topics)  # fmt: skip
                    return
                time.sleep(e.retry_after)  # stopping: nothing else to do meanwhile

    # -- rebalance -----------------------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.handler.partitions_assigned([(p.topic, p.partition) for p in partitions])
        if self.paused:
            consumer.pause(partitions)
        log.info("partitions assigned topics=%s n=%d", self.topics, len(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        gone = [(p.topic, p.partition) for p in partitions]
        try:
            self._commit(self.handler.partitions_revoked(gone), sync=True)
        except Backpressure as e:
            log.warning("partitions revoked with undurable messages; their next owner replays them: %s", e)
        self._drop_stash(gone)
        log.info("partitions revoked topics=%s n=%d", self.topics, len(partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """The group moved on without this consumer (its session timed out, e.g. the broker was down):
        a commit cannot succeed any more, so none is tried. The handler settles and forgets the partitions
        as on a revocation; the next owner (maybe this consumer again) replays from the last commit."""
        gone = [(p.topic, p.partition) for p in partitions]
        try:
            offsets = self.handler.partitions_revoked(gone)
        except Backpressure as e:
            offsets = {}
            log.warning("partitions lost with undurable messages: %s", e)
        self._drop_stash(gone)
        log.warning("partitions lost (group session timed out) topics=%s n=%d uncommitted=%d", self.topics,
                    len(partitions), len(offsets))  # fmt: skip

    def _drop_stash(self, gone: list[TopicPartition]) -> None:
        lost = set(gone)
        self._stash = deque(m for m in self._stash if (m.topic, m.partition) not in lost)


__all__ = ["Backpressure", "ConsumerHandler", "ConsumerLoop", "LoopSettings", "Message", "Offsets", "TopicPartition"]
