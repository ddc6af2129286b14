"""``tripwire notify``: route alerts and kill-switch trips/resets to people.

The :class:`Notifier` consumes ``tripwire.alerts.v1`` and ``tripwire.killswitch.v1`` (confluent-kafka,
manual commits), matches every record against the routes, groups bursts per (route, incident), and
delivers on a small thread pool over httpx with retries. Offsets are committed only up to the
per-partition watermark of records that were delivered or dead-lettered on every route they matched,
so a crash replays (at most) what was not yet committed: a receiver may see a delivery twice, always
with the same dedup key, and never misses one. Records that cannot be decoded go to the dead-letter
topic with the reason; the notifier never stops on bad input.
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

from tripwire.core.kafka_security import AuthWatch
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
from tripwire.notify.routes import Route
from tripwire.notify.state import Batch, Grouper, OffsetTracker, Ref
from tripwire.schemas import Alert, DeadLetter, KillSwitchCommand, Topics, dead_letter, topic_names
from tripwire.schemas.records import DeadLetterStage

log = logging.getLogger(__name__)
_ERROR_LOG_EVERY_S = 30.0


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
        from confluent_kafka import Consumer, Producer

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
            **c.confluent_conf(),
            "group.id": c.consumer_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(c.session_timeout_s * 1000),
            "fetch.wait.max.ms": 100,
            "on_commit": self._on_commit,
        }
        if c.instance_id:
            conf["group.instance.id"] = c.instance_id
        conf.update(consumer_config or {})
        self._auth = AuthWatch(c, c.bootstrap)  # refused credentials stop the notifier with a KafkaAuthError
        conf.setdefault("error_cb", self._auth)
        self._consumer = Consumer(conf)
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
        self._results: queue.SimpleQueue[tuple[Batch, DeliveryResult]] = queue.SimpleQueue()
        self._in_flight = 0
        self._stop = threading.Event()
        self._abort = threading.Event()  # interrupts retry back-offs at shutdown
        self._tracker = OffsetTracker()
        self._grouper = Grouper(self.routes, time.monotonic())
        self._dlq_retry: list[tuple[Ref, DeadLetter]] = []
        self._paused = False
        self._last_commit = 0.0
        self._last_gc = 0.0
        self._error_logged: dict[int, float] = {}
        self.stats = NotifyStats()
        self.assigned: set[tuple[str, int]] = set()
        """Partitions this notifier owns now (changed on the consumer's rebalance callbacks)."""

    # -- public ------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self, *, max_seconds: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Consume until ``stop()``, ``until()`` is true or ``max_seconds`` passed; then finish in-flight work."""
        subs = [self.topics.alerts] + ([self.topics.killswitch] if self.config.consume_killswitch else [])
        self._consumer.subscribe(subs, on_assign=self._on_assign, on_revoke=self._on_revoke)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        log.info("notifier started routes=%d topics=%s group=%s", len(self.routes), subs, self.config.consumer_group)
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if until is not None and until():
                    break
                self._step()
            self._drain(self.config.shutdown_timeout_s)
        finally:
            self._abort.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._collect()  # outcomes that arrived while aborting still count (and commit on close)
            self._in_flight = 0  # cancelled before they started: nothing will report them
            self._producer.flush(5)
            self._consumer.close()
            self._http.close()
            log.info("notifier stopped %s", self.stats)

    # -- loop --------------------------------------------------------------------------------------
    def _step(self) -> None:
        now = time.monotonic()
        timeout = self.config.poll_timeout_s
        if self._in_flight < self.config.max_in_flight:  # when every worker is busy, waiting batches can't go
            nxt = self._grouper.next_due_in(now)
            if nxt is not None:
                timeout = min(timeout, nxt)
        msg = self._consumer.poll(timeout)
        self._auth.check()
        if msg is not None:
            msgs = [msg, *self._consumer.consume(num_messages=500, timeout=0)]
            for m in msgs:
                self._ingest(m)
        self._producer.poll(0)
        self._retry_dead_letters()
        self._collect()
        self._dispatch(time.monotonic())
        self._backpressure()
        self._maybe_commit(force=False)
        if time.monotonic() - self._last_gc >= 1.0:
            self._grouper.gc(time.monotonic())
            self._last_gc = time.monotonic()

    def _ingest(self, m: Any) -> None:
        err = m.error()
        if err is not None:
            now = time.monotonic()
            if now - self._error_logged.get(err.code(), -1e9) >= _ERROR_LOG_EVERY_S:  # rate-limited
                self._error_logged[err.code()] = now
                log.warning("consumer error: %s", err)
            return
        topic, value = m.topic(), m.value()
        self.stats.consumed += 1
        ref = self._tracker.track(topic, m.partition(), m.offset(), m.key(), value)
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
        try:
            request = batch.route.request(batch.notification)
            result = deliver(self._http, request, self._policy, route=batch.route.name, stop=self._abort)
        except Exception as e:  # a bug in a channel must not wedge the loop: dead-letter with the reason
            log.exception("delivery crashed route=%s", batch.route.name)
            result = DeliveryResult(False, 0, None, f"internal error: {type(e).__name__}", type(e).__name__)
        self._results.put((batch, result))

    def _collect(self) -> None:
        while True:
            try:
                batch, result = self._results.get_nowait()
            except queue.Empty:
                return
            self._in_flight -= 1
            now = time.monotonic()
            self._grouper.finished(batch, now, result.ok)
            if result.aborted:
                continue  # outcome unknown: left uncommitted, replayed after restart
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
    def _maybe_commit(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self.config.commit_interval_s:
            return
        self._last_commit = now
        offsets = self._tracker.committable()
        if not offsets:
            return
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        try:
            # In the loop the commit is asynchronous (it does not stall deliveries); a failed one marks
            # its partitions for the next commit (_on_commit). Shutdown and revocation commit synchronously.
            if force:
                self._consumer.commit(offsets=tps, asynchronous=False)
            else:
                self._consumer.commit(offsets=tps, asynchronous=True)
            self.stats.commits += 1
        except KafkaException as e:  # e.g. during a rebalance: the records are replayed, never skipped
            log.warning("commit failed: %s", e)
            self._tracker.retry_commit(offsets)

    def _on_commit(self, err: Any, partitions: list) -> None:
        if err is None and not any(p.error for p in partitions):
            return
        log.warning("async commit failed, retrying with the next commit: %s", err)
        self._tracker.retry_commit({(p.topic, p.partition): p.offset for p in partitions})

    def _backpressure(self) -> None:
        limit = self.config.max_pending_records
        pending = self._tracker.pending
        if not self._paused and pending >= limit:
            self._consumer.pause(self._consumer.assignment())
            self._paused = True
            log.warning("paused partitions pending=%d", pending)
        elif self._paused and pending <= limit // 2:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
            log.info("resumed partitions pending=%d", pending)

    def _settle_in_flight(self, timeout_s: float) -> None:
        """Wait (bounded) for running deliveries and dead letters, then commit what is done."""
        end = time.monotonic() + timeout_s
        while (self._in_flight or len(self._producer) or self._dlq_retry) and time.monotonic() < end:
            self._producer.poll(0.01)
            self._retry_dead_letters()
            self._collect()
        self._maybe_commit(force=True)

    def _drain(self, timeout_s: float) -> None:
        """On stop: send what is due now, wait for in-flight work, commit. Waiting groups stay uncommitted."""
        self._collect()
        self._dispatch(time.monotonic())
        self._settle_in_flight(timeout_s)
        if self._tracker.pending:
            log.info("stopping with %d undelivered records; they are replayed on restart", self._tracker.pending)

    # -- rebalance ---------------------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        if self._paused:
            consumer.pause(partitions)
        log.info("partitions assigned n=%d", len(partitions))

    def _on_revoke(self, consumer: Any, partitions: list) -> None:
        self._settle_in_flight(self.config.shutdown_timeout_s)
        tps = {(p.topic, p.partition) for p in partitions}
        self.assigned -= tps
        dropped = self._grouper.drop(tps)
        self._tracker.forget(tps)
        log.info("partitions revoked n=%d waiting_records_dropped=%d", len(partitions), dropped)
