"""The background listener that keeps an SDK's :class:`KillSwitchState` current with the topic.

A daemon thread runs a confluent-kafka consumer that *assigns* every partition of the
compacted kill-switch topic at the beginning: no consumer group offsets are committed or
used, so every process (and every restart) rebuilds the full state from the log.

- **Ready**: once the consumer's position has reached the high watermark that each partition
  had when it was assigned, the initial state is loaded; the guard waits (bounded) for this
  before the first guarded call. A topic that does not exist yet means "no commands": ready.
- **Contact**: every ``heartbeat_s`` a heartbeat thread (with a client of its own) asks the broker
  for the partitions' high watermarks; once the consumer's position has reached them, the state is
  confirmed current as of the question. The guard fails closed for high-risk tools when that
  confirmation is older than ``staleness_s``.
- Nothing raises out of the thread: decode failures and rejected commands are counted on the
  state and logged at a rate limit; broker errors are logged and retried.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tripwire.core.kafka_security import AuthWatch
from tripwire.core.ratelimit import RateLimitedLog
from tripwire.killswitch.config import KillSwitchConfig
from tripwire.killswitch.state import KillSwitchState, Rejection
from tripwire.schemas import DecodeError, KillSwitchCommand, decode

log = logging.getLogger(__name__)

CONSUME_BATCH = 500
CONSUME_TIMEOUT_S = 0.05
METADATA_REFRESH_S = 30.0
CLOSE_TIMEOUT_S = 5.0
HEARTBEAT_TIMEOUT_S = 5.0
AUTH_CHECK_S = 0.25


class KillSwitchListener:
    """Feeds ``state`` from the kill-switch topic on a daemon thread (see the module doc)."""

    def __init__(
        self,
        config: KillSwitchConfig,
        state: KillSwitchState,
        *,
        name: str = "tripwire-killswitch",
        on_replay: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.records = 0
        # ``on_replay(scope, held_bytes)``: a record that is not the scope's held command landed on its key (an
        # older signed command, a tombstone, a re-keyed or forged copy); called with the exact bytes of the
        # command the scope holds, so the control plane can re-publish them after it (see
        # ``killswitch_agent``). Only the control plane sets it; SDKs just ignore such records.
        self._on_replay = on_replay
        self._held_raw: dict[str, bytes] = {}
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rl = RateLimitedLog(log, interval_s=10.0)
        self._partitions: list[int] = []
        self._initial_high: dict[int, int] = {}
        self._beat: tuple[float, dict[int, int]] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KillSwitchListener:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def wait_ready(self, timeout: float) -> bool:
        return self.state.ready.wait(timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            consumer = self._consumer()
        except Exception as e:  # bad librdkafka config: the guard then fails safe (never ready, stale)
            log.error("killswitch listener cannot start error=%s", e)
            return
        # Contact is confirmed on a thread of its own, so a slow broker answer never delays records.
        loop_done = threading.Event()
        beat = threading.Thread(target=self._heartbeat_loop, args=(loop_done,),
                                name=f"{self._name}-heartbeat", daemon=True)
        beat.start()
        try:
            self._loop(consumer)
        except Exception:  # never raise into the agent; the state goes stale and the guard fails safe
            log.exception("killswitch listener stopped by an unexpected error")
        finally:
            loop_done.set()  # a dead loop must not look fresh: the heartbeat stops with it
            beat.join(HEARTBEAT_TIMEOUT_S + 1.0)
            try:
                consumer.close()
            except Exception:
                pass

    def _consumer(self, suffix: str = "") -> Any:
        from confluent_kafka import Consumer

        props = self.config.kafka_properties()
        props.update({
            # A group id is required by the client but never used: partitions are assigned, not subscribed,
            # and no offsets are committed.
            "group.id": f"tripwire-killswitch-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
            "allow.auto.create.topics": False,
            "client.id": self._name + suffix,
            "error_cb": self._on_error,
        })
        return Consumer(props)

    def _on_error(self, err: Any) -> None:
        self._rl.warning(f"kafka:{err.code()}", "killswitch listener kafka error=%s", err.str())

    def _loop(self, consumer: Any) -> None:
        heartbeat = self.config.heartbeat_s
        next_metadata = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_metadata:
                answered = self._refresh_partitions(consumer)
                # Until the topic exists, look for it often: the first trip must not wait a refresh period.
                next_metadata = now + (METADATA_REFRESH_S if answered and self._partitions else heartbeat / 4)
            if not self._partitions:
                self._stop.wait(heartbeat / 4)
                continue
            # poll() returns as soon as one record is there (consume(n, t) would wait to fill a batch);
            # whatever else is already fetched is then drained without waiting.
            first = consumer.poll(CONSUME_TIMEOUT_S)
            if first is not None:
                self._handle(first)
                for message in consumer.consume(CONSUME_BATCH, timeout=0):
                    self._handle(message)
            if not self.state.ready.is_set():
                if self._caught_up(consumer):
                    self.state.mark_contact()
                    self.state.ready.set()
                    log.info("killswitch state loaded records=%d scopes=%d", self.records,
                             len(self.state.switches()))
            elif self._beat is not None:
                self._confirm(consumer)

    def _refresh_partitions(self, consumer: Any) -> bool:
        """Assign any partition of the topic not assigned yet (at its beginning); False if the broker did not answer."""
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

        topic = self.config.topic
        try:
            metadata = consumer.list_topics(topic, timeout=max(self.config.heartbeat_s, 1.0))
        except KafkaException as e:
            self._rl.warning("metadata", "killswitch listener cannot reach the broker error=%s", e)
            return False
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            if info is not None and info.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                self._rl.warning("metadata", "killswitch topic metadata error=%s", info.error)
                return False
            # The broker answered: there is no kill-switch topic, hence no command. That is a current state.
            self.state.mark_contact()
            if not self.state.ready.is_set():
                self.state.ready.set()
                log.info("killswitch topic %s does not exist yet: no commands", topic)
            return True
        new = sorted(p for p in info.partitions if p not in self._partitions)
        if not new:
            return True
        high: dict[int, int] = {}
        for p in new:
            try:
                _low, high[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0, cached=False)
            except KafkaException as e:
                self._rl.warning("watermarks", "killswitch listener cannot read watermarks error=%s", e)
                return False
        consumer.incremental_assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in new])
        self._partitions.extend(new)
        self._initial_high.update(high)
        return True

    def _caught_up(self, consumer: Any) -> bool:
        from confluent_kafka import TopicPartition

        topic = self.config.topic
        pending = [p for p in self._partitions if self._initial_high.get(p, 0) > 0]
        if not pending:
            return True
        positions = consumer.position([TopicPartition(topic, p) for p in pending])
        return all(tp.offset >= 0 and tp.offset >= self._initial_high[tp.partition] for tp in positions)

    def _heartbeat_loop(self, loop_done: threading.Event) -> None:
        """Every ``heartbeat_s``, ask the broker for the partitions' high watermarks with a client of its own
        (a consumer handle must not be used from two threads); the loop confirms contact once its
        position has reached them (see :meth:`_confirm`)."""
        try:
            client = self._consumer(suffix="-heartbeat")
        except Exception as e:
            log.error("killswitch listener heartbeat cannot start error=%s", e)
            return
        try:
            while not loop_done.wait(self.config.heartbeat_s) and not self._stop.is_set():
                try:
                    self._heartbeat(client)
                except Exception as e:  # never let the heartbeat thread die silently
                    self._rl.warning("heartbeat", "killswitch listener heartbeat failed error=%r", e)
        finally:
            try:
                client.close()
            except Exception:
                pass

    def _heartbeat(self, client: Any) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        partitions = list(self._partitions)
        if not partitions:
            return
        asked = time.monotonic()
        highs: dict[int, int] = {}
        try:
            for p in partitions:
                _low, highs[p] = client.get_watermark_offsets(TopicPartition(self.config.topic, p),
                                                              timeout=HEARTBEAT_TIMEOUT_S, cached=False)
        except KafkaException as e:
            self._rl.warning("heartbeat", "killswitch listener has no contact with the broker error=%s", e)
            return
        self._beat = (asked, highs)

    def _confirm(self, consumer: Any) -> None:
        """Contact as of a heartbeat's question once the consumer has read up to the watermarks it got."""
        from confluent_kafka import TopicPartition

        beat = self._beat
        if beat is None:
            return
        asked, highs = beat
        pending = [p for p, high in highs.items() if high > 0]
        if pending:
            positions = consumer.position([TopicPartition(self.config.topic, p) for p in pending])
            if not all(tp.offset >= highs[tp.partition] for tp in positions):
                return  # still reading: not current yet (the next pass checks again)
        self._beat = None
        self.state.mark_contact(at=asked)

    def _handle(self, message: Any) -> None:
        err = message.error()
        if err is not None:
            self._rl.warning(f"consume:{err.code()}", "killswitch listener consume error=%s", err.str())
            return
        self.records += 1
        raw_key = message.key()
        key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
        value = message.value()
        if value is None:
            self.state.reject(Rejection.TOMBSTONE, "tombstones are unsigned; use resume")
            self._rl.warning("tombstone", "killswitch tombstone ignored key=%s", key)
            self._defend(key, value)
            return
        try:
            command = decode(value)
        except DecodeError as e:
            self.state.reject(Rejection.MALFORMED, e.reason)
            self._rl.warning("malformed", "killswitch record ignored reason=malformed key=%s offset=%d error=%s",
                             key, message.offset(), e.reason)
            self._defend(key, value)
            return
        if not isinstance(command, KillSwitchCommand):
            self.state.reject(Rejection.MALFORMED, f"a {type(command).__name__} on the kill-switch topic")
            self._rl.warning("malformed", "killswitch record ignored reason=not_a_command key=%s type=%s",
                             key, type(command).__name__)
            self._defend(key, value)
            return
        result = self.state.apply(command, key=key)
        if result.accepted or result.rejection is Rejection.EXPIRED:  # the command became the scope's state
            self._held_raw[command.scope] = value
        else:
            self._defend(key, value)
        if result.accepted:
            log.info("killswitch command applied scope=%s action=%s command_id=%s issued_by=%s expires_at=%s",
                     command.scope, command.action, command.command_id, command.issued_by,
                     command.expires_at.isoformat() if command.expires_at else None)
        elif result.rejection is not Rejection.DUPLICATE:  # a re-published copy of the held command is routine
            reason = result.rejection.value if result.rejection else "unknown"
            self._rl.warning(f"rejected:{reason}",
                             "killswitch command ignored reason=%s scope=%s command_id=%s detail=%s",
                             reason, command.scope, command.command_id, result.detail)

    def held_records(self) -> dict[str, bytes]:
        """The exact bytes of each scope's newest signed command read so far (what the control plane
        re-publishes; see :class:`~tripwire.killswitch.publisher.Republisher`)."""
        return dict(self._held_raw)

    def _defend(self, key: str | None, value: bytes | None) -> None:
        """A record on ``key`` that did not become its scope's state (an older signed command, a tombstone, a
        re-keyed or forged copy) would be the last record of that key once compaction runs: the control plane
        (``on_replay`` set) puts the exact bytes of the scope's held command back after it."""
        if self._on_replay is None or key is None:
            return
        raw = self._held_raw.get(key)
        if raw is None or value == raw:
            return  # nothing held on that key, or a copy of the held command itself (such as a re-publication)
        try:
            self._on_replay(key, raw)
        except Exception as e:  # the hook must not stop the listener
            self._rl.warning("on_replay", "killswitch replay hook failed scope=%s error=%r", key, e)


def topic_config(config: KillSwitchConfig) -> dict[str, str]:
    """The kill-switch topic's configs: compacted by scope, and no record younger than
    ``min_compaction_lag_s`` ever compacted (see the README's "Compaction cannot undo a switch")."""
    return {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": str(int(config.min_compaction_lag_s * 1000)),
        "segment.ms": str(int(min(3600.0, config.min_compaction_lag_s) * 1000)),
    }


def ensure_topic(config: KillSwitchConfig, timeout: float = 15.0) -> bool:
    """Create the compacted kill-switch topic if it does not exist; True if this call created it.

    A refused login or TLS handshake raises :class:`~tripwire.core.kafka_security.KafkaAuthError` within about
    a second instead of waiting out ``timeout``; no answer at all raises ``TimeoutError``."""
    from concurrent.futures import TimeoutError as FutureTimeout

    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    watch = AuthWatch(config, config.bootstrap)
    conf: dict[str, Any] = {**config.kafka_properties(), "error_cb": watch}
    admin = AdminClient(conf)
    topic = NewTopic(
        config.topic,
        num_partitions=config.partitions,
        replication_factor=-1,  # the broker default (1 on a dev broker, 3 on a cluster)
        config=topic_config(config),
    )
    future = admin.create_topics([topic], operation_timeout=timeout, request_timeout=timeout)[config.topic]
    deadline = time.monotonic() + timeout
    while True:
        try:
            future.result(timeout=max(0.01, min(AUTH_CHECK_S, deadline - time.monotonic())))
            return True
        except FutureTimeout:
            admin.poll(0)  # serve the error callback: librdkafka reports a refused login only there
            watch.check()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the broker at {config.bootstrap} did not answer within {timeout:g}s") from None
        except KafkaException as e:
            if e.args and isinstance(e.args[0], KafkaError) and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            watch.check()
            raise


def read_topic(config: KillSwitchConfig, timeout: float = 15.0) -> list[Any]:
    """Every record now on the kill-switch topic (all partitions, from the beginning up to the high
    watermarks read at the start), in offset order per partition. Empty if the topic does not exist."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

    props = config.kafka_properties()
    props.update({"group.id": f"tripwire-killswitch-read-{uuid.uuid4().hex}", "enable.auto.commit": False,
                  "allow.auto.create.topics": False, "fetch.wait.max.ms": 50})
    consumer = Consumer(props)
    try:
        metadata = consumer.list_topics(config.topic, timeout=timeout)
        info = metadata.topics.get(config.topic)
        if info is None or (info.error is not None and info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            return []
        if info.error is not None:
            raise KafkaException(info.error)
        highs = {}
        for p in info.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(config.topic, p), timeout=timeout, cached=False)
            if high > low:
                highs[p] = high
        if not highs:
            return []
        consumer.assign([TopicPartition(config.topic, p, OFFSET_BEGINNING) for p in highs])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in consumer.consume(CONSUME_BATCH, timeout=0.2):
                if m.error() is None:
                    records.append(m)
            positions = consumer.position([TopicPartition(config.topic, p) for p in highs])
            if all(tp.offset >= highs[tp.partition] for tp in positions):
                return records
        raise TimeoutError(f"could not read {config.topic} to its end within {timeout:.0f}s")
    finally:
        consumer.close()


__all__ = ["KillSwitchListener", "ensure_topic", "read_topic"]
