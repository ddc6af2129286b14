"""``tripwire notify``: route alerts and kill-switch trips/resets to people.

The :class:`Notifier` consumes ``tripwire.alerts.v1`` and ``tripwire.killswitch.v1`` on the shared
consumer loop (:class:`tripwire.core.consumer.ConsumerLoop`, manual commits; the notifier is its handler),
matches every record against the routes, groups bursts per (route, incident), and delivers on a small
thread pool over httpx with retries. Offsets are committed only up to the
per-partition watermark of records that were delivered or dead-lettered on every route they matched,
so a crash replays (at most) what was not yet committed: a receiver may see a delivery twice, always
with the same dedup key and ``record_id``, and never misses one. A broker outage long enough to lose the
group session (the commits fail, the assignment is revoked as lost) does not resend: the records this
notifier already delivered are recognised when they are replayed, and only committed. Records that
cannot be decoded go to the dead-letter topic with the reason; the notifier never stops on bad input.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tripwire.core.consumer import ConsumerLoop, LoopSettings, Message, Offsets, TopicPartition
from tripwire.notify.channels import (
    from_alert,
    from_command,
)
from tripwire.notify.config import NotifyConfig, RoutesError
from tripwire.notify.delivery import (
    DeliveryResult,
    RetryPolicy,
    deliver,
    redact_http_logs,
)
from tripwire.notify.metrics import NotifierMetrics
from tripwire.notify.routes import Route
from tripwire.notify.state import Batch, Grouper, OffsetTracker, Ref
from tripwire.schemas import Alert, DeadLetter, KillSwitchCommand, Topics, dead_letter, topic_names
from tripwire.schemas.records import DeadLetterStage

log = logging.getLogger(__name__)


@dataclass
class NotifyStats:
    consumed: int = 0
    unrouted: int = 0
    stale: int = 0
    """Records older than ``max_age_s``: committed, not delivered."""
    delivered: int = 0
    """Successful deliveries (one per batch; a batch may stand for several records)."""
    failed: int = 0
    dead_letters: int = 0
    decode_errors: int = 0
    commits: int = 0
    replayed_done: int = 0
    """Records replayed after a revocation whose commit was lost, already done here: committed, not resent."""


class Notifier:
    """Consume, route, deliver, dead-letter, commit. ``run()`` blocks; ``stop()`` may be called from any thread."""

    def __init__(
        self,
        routes: tuple[Route, ...] | list[Route],
        config: NotifyConfig | None = None,
        *,
        topics: Topics | None = None,
        consumer_config: dict[str, Any] | None = None,
        codec: Any = None,
        http_client: Any = None,
    ) -> None:
        from confluent_kafka import Producer

        if not routes:
            raise RoutesError("the notifier needs at least one route")
        self.config = c = config or NotifyConfig()
        self.routes = tuple(routes)
        self.topics = topics or topic_names(c.topic_prefix)
        if codec is None:  # TRIPWIRE_SCHEMA_FRAMING; kill-switch commands are single-object in either framing
            from tripwire.schemas.config import SchemaConfig, make_reader_codec

            codec = make_reader_codec(SchemaConfig(topic_prefix=c.topic_prefix))
        self.codec = codec
        conf: dict[str, Any] = {
            "bootstrap.servers": c.bootstrap,
            "group.id": c.consumer_group,
            "session.timeout.ms": int(c.session_timeout_s * 1000),
            "fetch.wait.max.ms": 100,
        }
        if c.instance_id:
            conf["group.instance.id"] = c.instance_id
        conf.update(consumer_config or {})
        subs = [self.topics.alerts] + ([self.topics.killswitch] if c.consume_killswitch else [])
        # latency first: take what has arrived; commit asynchronously (synchronously on revoke and stop);
        # refused credentials stop the notifier with a KafkaAuthError
        settings = LoopSettings(
            batch_size=500, poll_timeout_s=c.poll_timeout_s, async_commits=True, drain_timeout_s=c.shutdown_timeout_s
        )
        self.loop = ConsumerLoop(conf, subs, self, security=c, settings=settings)
        self._auth = self.loop.auth
        self._producer = Producer(
            {
                "bootstrap.servers": c.bootstrap,
                **c.confluent_conf(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "error_cb": self._auth,
            }
        )
        self._policy = RetryPolicy(c.max_attempts, c.backoff_initial_s, c.backoff_max_s, c.retry_after_max_s)
        if http_client is None:
            import httpx

            http_client = httpx.Client(
                timeout=httpx.Timeout(c.request_timeout_s),
                limits=httpx.Limits(max_connections=c.max_in_flight * 2),
                headers={"User-Agent": "tripwire-notify/1"},
                follow_redirects=False,
            )
        self._http = http_client
        redact_http_logs(
            s.get_secret_value() for r in self.routes for s in (r.url, r.hmac_key, r.routing_key) if s is not None
        )
        self._pool = ThreadPoolExecutor(max_workers=c.max_in_flight, thread_name_prefix="tripwire-notify")
        self._results: queue.SimpleQueue[tuple[Batch, DeliveryResult, float]] = queue.SimpleQueue()
        self._in_flight = 0
        self._abort = threading.Event()  # interrupts retry back-offs at shutdown
        self._tracker = OffsetTracker()
        self._grouper = Grouper(self.routes, time.monotonic())
        self._dlq_retry: list[tuple[Ref, DeadLetter]] = []
        self._backlogged = False
        self._last_commit = 0.0
        self._last_gc = 0.0
        self.stats = NotifyStats()
        self.metrics = NotifierMetrics()
        self.metrics_port: int | None = None
        if c.metrics_port is not None:
            self.metrics_port = self.metrics.serve(c.metrics_port)
            log.info("notifier metrics on port=%d", self.metrics_port)
        self.assigned: set[tuple[str, int]] = set()
        """Partitions this notifier owns now (changed on the consumer's rebalance callbacks)."""

    # -- public ------------------------------------------------------------------------------------
    def stop(self) -> None:
        self.loop.stop()

    def run(self, *, max_seconds: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Consume until ``stop()``, ``until()`` is true or ``max_seconds`` passed; then finish in-flight work."""
        log.info("notifier started routes=%d topics=%s group=%s", len(self.routes), self.loop.topics,
                 self.config.consumer_group)  # fmt: skip
        self.loop.run(max_seconds=max_seconds, until=until)
        log.info("notifier stopped %s", self.stats)

    # -- the consumer loop's handler (tripwire.core.consumer.ConsumerHandler) ----------------------
    def step(self, now: float) -> float | None:
        self._producer.poll(0)
        self._retry_dead_letters()
        self._collect()
        self._dispatch(now)
        if now - self._last_gc >= 1.0:
            self._grouper.gc(now)
            self._last_gc = now
        if self._in_flight < self.config.max_in_flight:  # when every worker is busy, waiting batches can't go
            return self._grouper.next_due_in(time.monotonic())
        return None

    def committable(self, *, final: bool) -> Offsets:
        now = time.monotonic()
        if not final and now - self._last_commit < self.config.commit_interval_s:
            return {}
        self._last_commit = now
        offsets = self._tracker.committable()
        if offsets:
            self.stats.commits += 1
        return offsets

    def commit_failed(self, offsets: Offsets) -> None:
        self._tracker.retry_commit(offsets)  # the records are replayed at worst, never skipped

    def backlogged(self) -> bool:
        """Pause at ``max_pending_records`` records not yet done; resume at half of it."""
        limit, pending = self.config.max_pending_records, self._tracker.pending
        if pending >= limit:
            self._backlogged = True
        elif pending <= limit // 2:
            self._backlogged = False
        return self._backlogged

    def drain(self, timeout_s: float) -> None:
        """On stop: send what is due now and wait for in-flight work. Waiting groups stay uncommitted."""
        self._collect()
        self._dispatch(time.monotonic())
        self._settle_in_flight(timeout_s)
        if self._tracker.pending:
            log.info("stopping with %d undelivered records; they are replayed on restart", self._tracker.pending)

    def close(self) -> None:
        self._abort.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._collect()  # outcomes that arrived while aborting still count (and commit on close)
        self._in_flight = 0  # cancelled before they started: nothing will report them
        self._producer.flush(5)
        self._http.close()

    def take(self, m: Message) -> None:
        topic, value = m.topic, m.value
        self.stats.consumed += 1
        ref = self._tracker.track(topic, m.partition, m.offset, m.key, value)
        if self._tracker.was_done(topic, m.partition, m.offset):  # delivered before a lost commit: not again
            self.stats.replayed_done += 1
            self._tracker.settle(ref)
            return
        if value is None:  # a tombstone on the compacted kill-switch topic: nothing to tell anyone
            self._tracker.settle(ref)
            return
        try:
            record = self.codec.decode(value)
        except Exception as e:  # DecodeError, or anything a broken codec raises: never stop the loop
            self.stats.decode_errors += 1
            self._dead_letter(ref, "decode", getattr(e, "reason", None) or str(e), type(e).__name__)
            self._tracker.settle(ref)
            return
        if topic == self.topics.alerts and isinstance(record, Alert):
            n = from_alert(record)
        elif topic == self.topics.killswitch and isinstance(record, KillSwitchCommand):
            n = from_command(record)
        else:
            reason = f"{type(record).__name__} is not a record the notifier routes from {topic}"
            self._dead_letter(ref, "validate", reason, "UnexpectedRecord")
            self._tracker.settle(ref)
            return
        max_age = self.config.max_age_s
        if max_age is not None and (datetime.now(UTC) - n.timestamp).total_seconds() > max_age:
            self.stats.stale += 1
            log.info("stale record skipped topic=%s offset=%d dedup_key=%s", topic, ref.offset, n.dedup_key)
            self._tracker.settle(ref)
            return
        now = time.monotonic()
        matched = 0
        for route in self.routes:
            if route.matches(n):
                self._tracker.add(ref)
                self._grouper.add(route, n, ref, now)
                matched += 1
        if not matched:
            self.stats.unrouted += 1
        self._tracker.settle(ref)

    def _dispatch(self, now: float) -> None:
        free = self.config.max_in_flight - self._in_flight
        if free <= 0:
            return
        for batch in self._grouper.due(now, limit=free):
            self._in_flight += 1
            self._pool.submit(self._deliver, batch)

    def _deliver(self, batch: Batch) -> None:
        started = time.monotonic()
        try:
            request = batch.route.request(batch.notification)
            result = deliver(self._http, request, self._policy, route=batch.route.name, stop=self._abort)
        except Exception as e:  # a bug in a channel must not wedge the loop: dead-letter with the reason
            log.exception("delivery crashed route=%s", batch.route.name)
            result = DeliveryResult(False, 0, None, f"internal error: {type(e).__name__}", type(e).__name__)
        self._results.put((batch, result, time.monotonic() - started))

    def _collect(self) -> None:
        while True:
            try:
                batch, result, seconds = self._results.get_nowait()
            except queue.Empty:
                return
            self._in_flight -= 1
            now = time.monotonic()
            self._grouper.finished(batch, now, result.ok)
            if result.aborted:
                continue  # outcome unknown: left uncommitted, replayed after restart
            self.metrics.record(batch.route.name, ok=result.ok, attempts=result.attempts, seconds=seconds,
                                records=len(batch.refs))
            if result.ok:
                self.stats.delivered += 1
                log.info(
                    "delivered route=%s dedup_key=%s action=%s grouped=%d attempts=%d",
                    batch.route.name,
                    batch.notification.dedup_key,
                    batch.notification.action,
                    batch.notification.grouped,
                    result.attempts,
                )
                n = self.config.test_crash_after_deliveries
                if n and self.stats.delivered >= n:
                    os.kill(os.getpid(), signal.SIGKILL)  # test hook: crash between delivery and commit
                for ref in batch.refs:
                    self._tracker.done(ref)
            else:
                self.stats.failed += 1
                reason = f"route {batch.route.name!r} ({batch.route.channel}): {result.reason}"
                for ref in batch.refs:
                    self._dead_letter(
                        ref,
                        "notify",
                        reason,
                        result.error_type or "DeliveryFailed",
                        part=batch.route.name,
                        counted=True,
                    )

    # -- dead letters ------------------------------------------------------------------------------
    def _dead_letter(
        self,
        ref: Ref,
        stage: DeadLetterStage,
        reason: str,
        error_type: str,
        *,
        part: str | None = None,
        counted: bool = False,
    ) -> None:
        """Produce a DeadLetter for ``ref`` (``part``: the route whose delivery failed); that outcome is
        done once the broker acknowledged it. ``counted``: the outcome is already awaited."""
        if not counted:
            self._tracker.add(ref)
        dl = dead_letter(
            ref.topic,
            ref.partition,
            ref.offset,
            ref.key,
            ref.value,
            stage=stage,
            reason=reason,
            error_type=error_type,
            part=part,
        )
        log.warning(
            "dead letter stage=%s topic=%s partition=%d offset=%d error=%s reason=%s",
            stage, ref.topic, ref.partition, ref.offset, error_type, reason[:200],
        )  # fmt: skip
        self._produce_dead_letter(ref, dl)

    def _produce_dead_letter(self, ref: Ref, dl: DeadLetter) -> None:
        def on_delivery(err: Any, _msg: Any) -> None:
            if err is None:
                self.stats.dead_letters += 1
                self._tracker.done(ref)
            else:
                log.error("dead letter not stored, will retry: %s", err)
                self._dlq_retry.append((ref, dl))

        try:
            self._producer.produce(self.topics.dlq, key=ref.key, value=self.codec.encode(dl), on_delivery=on_delivery)
        except BufferError:
            self._dlq_retry.append((ref, dl))

    def _retry_dead_letters(self) -> None:
        if self._dlq_retry:
            pending, self._dlq_retry = self._dlq_retry, []
            for ref, dl in pending:
                self._produce_dead_letter(ref, dl)

    # -- offsets -----------------------------------------------------------------------------------
    def _settle_in_flight(self, timeout_s: float) -> None:
        """Wait (bounded) for running deliveries and dead letters."""
        end = time.monotonic() + timeout_s
        while (self._in_flight or len(self._producer) or self._dlq_retry) and time.monotonic() < end:
            self._producer.poll(0.01)
            self._retry_dead_letters()
            self._collect()

    # -- rebalance ---------------------------------------------------------------------------------
    def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        self.assigned |= set(partitions)

    def partitions_revoked(self, partitions: list[TopicPartition]) -> Offsets:
        """Wait (bounded) for in-flight work, return what is done for the loop to commit, forget the rest."""
        self._settle_in_flight(self.config.shutdown_timeout_s)
        offsets = self._tracker.committable()
        tps = set(partitions)
        self.assigned -= tps
        dropped = self._grouper.drop(tps)
        self._tracker.forget(tps)
        log.info("partitions revoked n=%d waiting_records_dropped=%d", len(partitions), dropped)
        return offsets
