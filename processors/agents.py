"""The faust agents: thin wiring of the stages to topics and tables.

Three agents, one per stage, each consuming its input topic plus the ticks topic:

- ``runs``: the events topic (key run_id). Decodes and validates each event (failures go to the
  DLQ with the original bytes, topic, partition and offset), runs the RunStage, publishes
  RunSummary records (on the same partition number as the event) and alerts, and folds what the
  other two stages need of the event into one *partial* per key (:mod:`partials`), forwarded to
  the by-agent / by-credential topics at the commit: an event is read from Kafka once.
- ``agents``: the by-agent topic (key tenant|agent_id): merges partials -> WindowStats and alerts.
- ``credentials``: the by-credential topic (key fingerprint): merges partials -> alerts.

The input topics of the three stages do not reach the agents' streams: faust's fetcher hands their
fetched messages to the runtime a run at a time (``_faust_fixes.deliver_in_batches``,
``_delivery.direct_handler``), which handles a run and then acks it; the agents see only the ticks. With
``batch_max`` 1 every message takes faust's per-message path through the agent's stream instead.

Handling a message sends nothing: its outputs, forwards and DLQ records wait in
``Runtime.pending`` and its state change in the stage's :class:`StateCache`, until the next offset
commit flushes them (the commit hook, ``_faust_fixes.flush_before_commit``). With
``exactly_once`` they go in the Kafka transaction of the message's source partition, which
commits together with its offset; a killed worker's open transaction is aborted and its messages
are read again. A key changed by many messages between two commits is written once. Its value
reaches the local RocksDB store only after its transaction committed (:meth:`Runtime.committed`,
called by the commit hook), with the changelog offset, in one write batch: a restarted worker
trusts its local store and replays only the changelog past that offset.

A poison event is isolated, never fatal: before anything an event causes is queued, the runtime
checks that every record it would produce fits the producer's request limit (its outputs, its
forwards, and the key's state as the changelog record it becomes). One that does not is rolled
back (the key's state is rebuilt as it was before the event, see ``StateCache.recover``) and the
*input* goes to the DLQ with the reason, so a commit can never fail on it and later events of the
partition go on. A key's state is thereby bounded by half the request limit (its outputs carry
what it holds): once it would outgrow that, further events of that key are dead-lettered. A record
that still fails to send at the commit with a non-retriable error (not caused by one event: a
time-driven output) is logged and skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tripwire.processors._batch_send import send_batched
from tripwire.processors._delivery import deliverable, direct_handler
from tripwire.processors._forward import MAGIC, BatchError, unpack_events
from tripwire.processors._state_cache import StateCache
from tripwire.processors.config import ProcessorConfig
from tripwire.processors.latency import window_key
from tripwire.processors.metrics import ProcessorMetrics
from tripwire.processors.partials import (
    AgentPartial,
    CredentialPartial,
    PartialError,
    decode_partial,
    encode_partial,
    is_partial,
)
from tripwire.processors.pipeline import Pipeline
from tripwire.processors.stages import Outputs
from tripwire.processors.topics import RuntimeTopics
from tripwire.schemas import DecodeError, EventBase, check_event, default_limits
from tripwire.schemas.records import DeadLetterStage

log = logging.getLogger(__name__)

_PARTIALS = (AgentPartial, CredentialPartial)
RECORD_OVERHEAD = 128  # bytes of a Kafka record besides key and value, rounded up (aiokafka estimates ~90)


class OutputTooLarge(Exception):
    """An event would produce a record larger than the producer's request limit."""


class Runtime:
    """Holds what the agents share: app, codec, stages, tables, topics, metrics, pending records."""

    def __init__(
        self, app: Any, config: ProcessorConfig, topics: RuntimeTopics, tables: dict[str, Any], pipeline: Pipeline
    ) -> None:
        from tripwire.schemas.config import SchemaConfig, make_codec

        self.app = app
        self.config = config
        self.topics = topics
        self.tables = tables
        self.pipeline = pipeline
        self.codec = make_codec(SchemaConfig(topic_prefix=config.topic_prefix))
        self.metrics = ProcessorMetrics()
        self.eos = config.processing_guarantee == "exactly_once"
        self.positions: dict[tuple[str, int], int] = {}
        self._moved: set[tuple[str, int]] = set()  # partitions that delivered a message since their last tick
        self.started_at = time.time()
        self.caches = {
            s.name: StateCache(s, tables[s.name]) for s in (pipeline.runs, pipeline.agents, pipeline.credentials)
        }
        self.changelogs = {name: t.changelog_topic.get_topic_name() for name, t in tables.items()}
        # records caused by messages since the last commit, by transactional id (None without EOS)
        self.pending: dict[str | None, list[tuple[str, bytes | None, bytes | None, int | None]]] = {}
        # the partials of the agents / credentials stages since the last commit, per record key
        self.partials: dict[tuple[str | None, str, bytes], Any] = {}
        # changelog records sent, per transactional id, to write into the local store once committed:
        # (stage, partition, key, value, send future)
        self._to_write: dict[str | None, list[tuple[str, int, bytes, bytes | None, Any]]] = {}
        self._tids: dict[tuple[str, int], str] = {}
        self._ok = {name: self.metrics.events.labels(name, "ok") for name in self.caches}
        self._generation: int | None = None
        # the producer's request limit (aiokafka refuses larger records before sending them)
        self.limits = default_limits()
        self.max_record = int(getattr(getattr(app, "conf", None), "producer_max_request_size", 1_000_000))
        # a key's state (its changelog record) is kept under half the limit: its outputs carry the key
        # and what the state aggregates (a RunSummary its run_id twice), so they fit too
        self.max_state = self.max_record // 2
        # key -> (size of its state record when last measured, upper bound of its growth since)
        self._sizes: dict[tuple[str, bytes], tuple[int, int]] = {}

    def _check_generation(self) -> None:
        """A new consumer generation (a rebalance) drops every cache and every pending record:
        their messages were not committed, so they are read and applied again."""
        generation = self.app.consumer_generation_id
        if generation != self._generation:
            dropped = sum(len(cache.dirty) for cache in self.caches.values())
            if dropped:  # their input was not committed either: it is read and applied again
                log.info("a rebalance drops uncommitted state changes keys=%d", dropped)
            for cache in self.caches.values():
                cache.clear()
            self.pending = {}
            self.partials = {}
            self._to_write = {}  # the changelog recovery of the rebalance brings the store up to date
            self._tids = {}  # the assignment (and so the topic groups) may have changed
            self._sizes = {}
            self._generation = generation

    # -- sending ---------------------------------------------------------------------------------
    def _tid(self, msg: Any) -> str | None:
        """The transactional id of ``msg``'s partition (faust's naming), cached per generation."""
        if not self.eos:
            return None
        tids = self._tids
        tid = tids.get((msg.topic, msg.partition))
        if tid is None:
            group = self.app.assignor.group_for_topic(msg.topic)
            tid = tids[(msg.topic, msg.partition)] = f"{self.app.conf.id}-{group}-{msg.partition}"
        return tid

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, tid: str | None, partition: int | None = None
    ) -> None:
        """Queue a record for the next commit, in the transaction ``tid`` (see :meth:`flush`)."""
        records = self.pending.get(tid)
        if records is None:
            records = self.pending[tid] = []
        records.append((topic, key, value, partition))

    def forward(self, stage: Any, topic: str, key: bytes, event: Any, tid: str | None) -> None:
        """Fold ``event`` into the partial of ``key`` for ``stage`` (sent at the commit)."""
        partial = self.partials.get((tid, topic, key))
        if partial is None:
            partial = self.partials[(tid, topic, key)] = stage.new_partial()
        stage.contribute(partial, event)

    async def flush(self) -> None:
        """Send every pending record and changed state (called right before an offset commit).

        The records and the state snapshot are taken together, with no await in between, so they
        cover the same messages: all those acked so far, maybe a few more (whose offsets the next
        commit takes). Sent in the transactions that commit those offsets, a crash loses all of it
        together with the offsets, and the messages are read and applied again.
        """
        if self.app.consumer_generation_id != self._generation:
            self._check_generation()  # a rebalance: these messages are read again
            return
        batches, self.pending = self.pending, {}
        partials, self.partials = self.partials, {}
        for (tid, topic, key), partial in partials.items():
            batches.setdefault(tid, []).extend((topic, key, value, None) for value in encode_partial(partial))
        states: dict[str | None, list[tuple[str, int, bytes, bytes | None]]] = {}
        for name, cache in self.caches.items():
            for kb, partition, tid, value in cache.snapshot():
                states.setdefault(tid, []).append((name, partition, kb, value))
        n = 0
        for tid in {**batches, **states}:
            records = batches.get(tid, ())
            changes = states.get(tid, ())
            txn = None
            if tid is not None:
                txn = self.app.producer._transaction_producers.get(tid)
                if txn is None:
                    raise RuntimeError(f"no transactional producer for {tid}")
            # records of a known partition go as whole batches (``_batch_send``), in their order;
            # the others (partials, metrics, alerts: a few per commit) one by one, partitioned by key
            grouped: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
            for r_topic, r_key, r_value, r_partition in records:
                if txn is not None and r_partition is not None:
                    grouped.setdefault((r_topic, r_partition), []).append((r_key, r_value))
                    continue
                try:
                    await self._send(txn, r_topic, r_key, r_value, r_partition)
                except Exception as e:
                    self._unsendable(e, r_topic, r_key, r_value)
            for (g_topic, g_partition), items in grouped.items():
                await send_batched(txn, g_topic, g_partition, items)
            to_write = self._to_write.setdefault(tid, []) if changes else []
            if txn is not None:
                by_changelog: dict[tuple[str, int], list[tuple[str, int, bytes, bytes | None]]] = {}
                for change in changes:
                    by_changelog.setdefault((change[0], change[1]), []).append(change)
                for (name, partition), group in by_changelog.items():
                    futures = await send_batched(txn, self.changelogs[name], partition, [(c[2], c[3]) for c in group])
                    to_write.extend((*c, f) for c, f in zip(group, futures, strict=True))
            else:
                for name, partition, kb, value in changes:
                    topic = self.changelogs[name]
                    try:
                        fut = await self._send(txn, topic, kb, value, partition)
                        to_write.append((name, partition, kb, value, fut))
                    except Exception as e:
                        self._unsendable(e, topic, kb, value)
            n += len(records) + len(changes)
        if n:
            self.metrics.flushed.inc(n)

    async def _send(self, txn: Any, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> Any:
        """Send a record (in transaction ``txn``, or None); returns the future of its metadata."""
        if txn is None:
            return await self.app.producer.send(topic, key, value, partition, None, None)
        return await txn.send(topic, value, key=key, partition=partition)

    def committed(self, tid: str | None) -> None:
        """The transaction ``tid`` (None: an at-least-once commit) committed: write its states into
        the local stores, per stage and partition one write batch with the changelog offset of its
        last record (see ``tables.store_write``)."""
        entries = self._to_write.pop(tid, None)
        if not entries:
            return
        groups: dict[tuple[str, int], tuple[list[tuple[bytes, bytes | None]], list[int]]] = {}
        for name, partition, kb, value, fut in entries:
            try:
                offset = fut.result().offset
            except Exception as e:  # not sent: the store stays behind; recovery replays the changelog
                log.warning("a committed state record has no offset stage=%s error=%s", name, e)
                offset = -1
            items, offsets = groups.setdefault((name, partition), ([], []))
            items.append((kb, value))
            offsets.append(offset)
        for (name, partition), (items, offsets) in groups.items():
            if min(offsets) < 0:
                continue  # keep the unwritten overlay: the store is caught up by the next recovery
            self.caches[name].write(partition, items, max(offsets))

    def _unsendable(self, e: Exception, topic: str, key: bytes | None, value: bytes | None) -> None:
        """A record the producer refuses for good is skipped (logged); anything else stops the flush."""
        if getattr(e, "retriable", True) or not hasattr(e, "errno"):  # not a non-retriable KafkaError
            raise e
        self.metrics.dead_letters.labels("flush").inc()
        log.error(
            "skipping a record the producer refuses topic=%s key_bytes=%d value_bytes=%d error=%s: %s",
            topic,
            len(key or b""),
            len(value or b""),
            type(e).__name__,
            e,
        )

    def fits(self, key: bytes | None, value: bytes | None) -> bool:
        """Whether a record of ``key`` and ``value`` is within the producer's request limit."""
        return len(key or b"") + len(value or b"") + RECORD_OVERHEAD <= self.max_record

    def encode_outputs(self, out: Outputs, msg: Any) -> list[tuple[str, bytes, bytes, int | None]]:
        """The records of ``out``: (topic, key, value, partition)."""
        enc = self.codec.encode
        records: list[tuple[str, bytes, bytes, int | None]] = []
        for s in out.runs:
            # same partition number as the event: runs share the events topic's partitioning by run_id
            records.append((self.topics.runs, s.run_id.encode(), enc(s), msg.partition))
        for w in out.metrics:
            records.append((self.topics.metrics, window_key(w).encode(), enc(w), None))
        for a in out.alerts:
            records.append((self.topics.alerts, a.incident_id.encode(), enc(a), None))
        return records

    def publish(
        self, out: Outputs, msg: Any, tid: str | None, records: list[tuple[str, bytes, bytes, int | None]] | None = None
    ) -> None:
        """Queue the records of ``out`` (``records``: already encoded by :meth:`encode_outputs`).
        Without ``records`` (time-driven outputs), one over the request limit is logged and dropped."""
        if records is None:
            records = []
            for r in self.encode_outputs(out, msg):
                if self.fits(r[1], r[2]):
                    records.append(r)
                else:
                    self.metrics.dead_letters.labels("flush").inc()
                    log.error("dropping a time-driven output over the request limit topic=%s bytes=%d", r[0], len(r[2]))
        for r_topic, r_key, r_value, r_partition in records:
            self.send(r_topic, r_key, r_value, tid, partition=r_partition)
        m = self.metrics
        if out.runs:
            m.outputs.labels("runs").inc(len(out.runs))
        if out.metrics:
            m.outputs.labels("metrics").inc(len(out.metrics))
        if out.alerts:
            m.outputs.labels("alerts").inc(len(out.alerts))
            m.record_alerts(out.alerts)
            for a in out.alerts:
                log.info(
                    "alert kind=%s status=%s scope=%s count=%d incident=%s",
                    a.kind,
                    a.status,
                    a.scope,
                    a.count,
                    a.incident_id,
                )

    def dead_letter(
        self,
        msg: Any,
        tid: str | None,
        stage: DeadLetterStage,
        reason: str,
        error_type: str,
        value: bytes | None = None,
        index: int | None = None,
    ) -> None:
        """Queue a DeadLetter for ``msg`` (or, ``index`` given, for that event of a forwarded batch,
        whose bytes are ``value``)."""
        from tripwire.schemas import dead_letter

        # the record's key only when small: the dead letter holds it anyway, and its partition is explicit
        kafka_key = msg.key if msg.key is None or len(msg.key) <= 1024 else None
        dl = dead_letter(
            msg.topic,
            msg.partition,
            msg.offset,
            msg.key,
            msg.value if index is None else value,
            stage=stage,
            reason=reason,
            error_type=error_type,
            part=index,
            max_bytes=self.max_record - RECORD_OVERHEAD - len(kafka_key or b""),
        )
        self.send(self.topics.dlq, kafka_key, self.codec.encode(dl), tid, partition=msg.partition)
        self.metrics.dead_letters.labels(stage).inc()
        log.warning(
            "dead letter stage=%s topic=%s partition=%d offset=%d error=%s reason=%s",
            stage,
            msg.topic,
            msg.partition,
            msg.offset,
            error_type,
            reason[:200],
        )

    # -- input -------------------------------------------------------------------------------------
    def decode(self, value: bytes | None, validate: bool) -> tuple[Any | None, DeadLetterStage, str, str]:
        """(event, stage, reason, error_type); event is None when the message is a dead letter (only
        then do the other three say anything)."""
        if value is None:
            return None, "decode", "empty value (tombstone) on the events topic", "EmptyValue"
        try:
            ev = self.codec.decode(value, validate)
        except DecodeError as e:
            stage: DeadLetterStage = "validate" if e.reason == "invalid" else "decode"
            return None, stage, str(e), type(e).__name__
        if not isinstance(ev, EventBase):
            return None, "validate", f"not an event: a {type(ev).__name__} record", "NotAnEvent"
        return ev, "process", "", ""

    def handle(self, stage: Any, msg: Any, validate: bool) -> None:
        """One input message of ``stage``: decode, fold into the key's state, queue outputs and forwards.

        Synchronous: nothing is sent here (see :meth:`flush`), so a message is fully applied before
        the stream acks it, and no commit can fall between its state change and its outputs. A
        message of the agents / credentials stage holds the events forwarded to one key."""
        self._check_generation()
        tid = self._tid(msg)
        tp = (msg.topic, msg.partition)
        self.positions[tp] = msg.offset
        self._moved.add(tp)
        if stage is self.pipeline.runs:
            self._handle_event(stage, msg, tid, msg.value, validate, None)
            return
        if is_partial(msg.value):
            self._handle_partial(stage, msg, tid)
            return
        # a record forwarded before partials: events, alone or batched (``_forward``)
        try:
            values = unpack_events(msg.value) if msg.value is not None else [None]
        except BatchError as e:
            self.metrics.events.labels(stage.name, "dead_letter").inc()
            self.dead_letter(msg, tid, "decode", str(e), type(e).__name__)
            return
        batched = msg.value is not None and msg.value.startswith(MAGIC)
        for i, value in enumerate(values):
            self._handle_event(stage, msg, tid, value, validate, i if batched else None)

    def _handle_partial(self, stage: Any, msg: Any, tid: str | None) -> None:
        """Merge a forwarded partial into its key's state (the record's key)."""
        try:
            partial = decode_partial(msg.value)
        except PartialError as e:
            self.metrics.events.labels(stage.name, "dead_letter").inc()
            self.dead_letter(msg, tid, "decode", str(e), type(e).__name__)
            return
        self._apply(stage, msg, tid, partial, msg.value, None, (msg.key or b"").decode(errors="replace"), ())

    def _handle_event(
        self, stage: Any, msg: Any, tid: str | None, value: bytes | None, validate: bool, index: int | None
    ) -> None:
        ev, bad_stage, reason, err = self.decode(value, validate)
        if ev is not None and validate:  # the events topic: the limits every consumer of it applies
            over = check_event(ev, getattr(msg, "timestamp", None) or time.time(), self.limits)
            if over is not None:
                ev, bad_stage, reason, err = None, "validate", over, "LimitExceeded"
        if ev is None or value is None:  # (decode dead-letters an empty value)
            self.metrics.events.labels(stage.name, "dead_letter").inc()
            self.dead_letter(msg, tid, bad_stage, reason, err, value, index)
            return
        forwards: list[tuple[Any, str, bytes]] = []
        if stage is self.pipeline.runs:
            agents, creds = self.pipeline.agents, self.pipeline.credentials
            forwards = [(agents, self.topics.by_agent, agents.key(ev).encode())]
            forwards.append((creds, self.topics.by_credential, (ev.credential_fingerprint or "").encode()))
        self._apply(stage, msg, tid, ev, value, index, stage.key(ev), forwards)

    def _apply(
        self,
        stage: Any,
        msg: Any,
        tid: str | None,
        item: Any,
        value: bytes,
        index: int | None,
        key: str,
        forwards: Any,
    ) -> None:
        """Fold ``item`` (an event, or a partial of the agents / credentials stage) into the state of
        ``key``; queue its outputs and (runs stage) its contributions to the ``forwards`` partials.
        A failure (a bug, an output over the request limit) rolls the key back and dead-letters
        ``value``. An input at or below the key's applied position (``StateCache.applied``) is skipped:
        a replay of a record whose effect was committed without its offset (an open transaction
        committed at a rebalance, a snapshot taken after more messages than the offsets it commits)."""
        cache = self.caches[stage.name]
        kb = key.encode()
        now = time.time()
        pos = (msg.offset, -1 if index is None else index)
        try:
            state = cache.get(kb, key)
            if cache.applied(kb, msg.partition, *pos):
                # its effect is in the state already (committed without its offset): never applied twice
                self.metrics.events.labels(stage.name, "replayed").inc()
                log.info("skipping a replayed input stage=%s partition=%d offset=%d", stage.name, msg.partition, pos[0])
                return
            res = stage.process(state, item, now)
        except Exception as e:  # a bug or corrupt state must not stop the worker: the input goes to the DLQ
            log.exception("stage %s failed on %s", stage.name, key)
            self._recover(cache, kb, key)
            self.metrics.events.labels(stage.name, "failed").inc()
            self.dead_letter(msg, tid, "process", f"{stage.name}: {e}", type(e).__name__, value, index)
            return
        if not res.applied:
            self.metrics.events.labels(stage.name, "duplicate").inc()
            return
        if forwards:
            forwards = [f for f, on in zip(forwards, (res.to_agent, res.to_credential), strict=True) if on]
        try:
            records = self.encode_outputs(res.outputs, msg)
            self._check_sizes(stage, kb, state, value, records, item, forwards)
        except Exception as e:  # an output that cannot be produced: the input goes, its effect is undone
            self._recover(cache, kb, key)
            self.metrics.events.labels(stage.name, "failed").inc()
            self.dead_letter(msg, tid, "process", f"{stage.name}: {e}", type(e).__name__, value, index)
            return
        cache.changed(kb, msg.partition, tid, ("event", item, now), pos)
        # a partial counts the events it folds (not getattr on an event: pydantic's miss costs ~4% of a worker)
        self._ok[stage.name].inc(item.events if type(item) in _PARTIALS else 1)
        self.publish(res.outputs, msg, tid, records)
        for f_stage, f_topic, f_key in forwards:
            self.forward(f_stage, f_topic, f_key, item, tid)

    def _check_sizes(
        self,
        stage: Any,
        kb: bytes,
        state: Any,
        value: bytes,
        records: list[tuple[str, bytes, bytes, int | None]],
        item: Any,
        forwards: list[tuple[Any, str, bytes]],
    ) -> None:
        """Raise :class:`OutputTooLarge` if a record this event causes would exceed the request limit.

        The state's changelog record is measured exactly (a serialization) only when it may be near
        the limit: its growth since the last measure is bounded by twice the bytes of the events
        applied (a state keeps at most what its events carry, in JSON), so an ordinary key is
        measured once in a long while and a hostile one (a huge id, too many events) every time."""
        for r_topic, r_key, r_value, _ in records:
            if not self.fits(r_key, r_value):
                raise OutputTooLarge(
                    f"its {r_topic} output would be {len(r_key) + len(r_value)} bytes, over the producer's "
                    f"request limit of {self.max_record}"
                )
        for f_stage, _, fkey in forwards:
            # the event's part of a partial is at most ~6x its bytes (JSON escapes) plus the field names:
            # measured exactly only when that bound does not fit
            if len(fkey) + 6 * len(value) + 1024 + RECORD_OVERHEAD > self.max_record:
                alone = f_stage.new_partial()
                f_stage.contribute(alone, item)
                size = max(len(r) for r in encode_partial(alone, self.max_record))
                if len(fkey) + size + RECORD_OVERHEAD > self.max_record:
                    raise OutputTooLarge(f"forwarding it would be a record of {len(fkey) + size} bytes")
        sk = (stage.name, kb)
        measured, growth = self._sizes.get(sk, (0, 0))
        growth += 2 * (len(value) + len(kb)) + 64
        if measured + growth > self.max_state // 2:
            measured, growth = len(kb) + len(stage.dumps(state)) + 15, 0  # + partition and applied position
            if measured + RECORD_OVERHEAD > self.max_state:
                raise OutputTooLarge(
                    f"the state of its key would be {measured} bytes, over half the producer's request "
                    f"limit of {self.max_record} (a key's outputs carry what its state holds)"
                )
        self._sizes[sk] = (measured, growth)

    @staticmethod
    def _recover(cache: StateCache, kb: bytes, key: str) -> None:
        try:
            cache.recover(kb, key)  # the key as it was before the failing operation
        except Exception:  # pragma: no cover - replaying operations that succeeded before
            log.exception("could not rebuild state key=%s; it restarts from its last snapshot", key)
            cache.dirty.pop(kb, None)
            cache.states.pop(kb, None)

    def backlog(self, topic: str, partition: int) -> bool:
        """True when messages of ``topic``/``partition`` are known to be waiting (called once per
        tick of the partition).

        The highwater counts every offset, and under exactly-once the records of a transactional
        topic (the by-agent and by-credential topics) are each followed by a commit marker, which
        no consumer ever receives: "highwater - 1 > last offset read" then stays true for good, and
        the ticks of those stages did nothing (windows of a quiet agent never closed; after a
        broker restart, windows stopped). So a partition counts as behind only while its messages
        keep coming: if none arrived since its previous tick, what the highwater has beyond the
        last one read are markers (or aborted records)."""
        from faust.types import TP

        tp = (topic, partition)
        moved = tp in self._moved
        self._moved.discard(tp)
        pos = self.positions.get(tp)
        if pos is None or not moved:
            return False
        hw = self.app.consumer.highwater(TP(topic, partition))
        return hw is not None and hw - 1 > pos

    def tick(self, stage: Any, source: str, msg: Any) -> None:
        """A clock message on partition p: time-driven outputs for the keys of partition p that are
        due (the cache's deadline index: a tick costs what is due, not what is stored)."""
        self._check_generation()
        tid = self._tid(msg)
        try:
            now = float(msg.value)
        except (TypeError, ValueError):
            log.warning("ignoring malformed tick value=%r", msg.value)
            return
        if self.backlog(source, msg.partition):
            return  # time-driven outputs wait until the partition has caught up with its input
        cache = self.caches[stage.name]
        for kb in cache.due_keys(msg.partition, now):
            try:
                state = cache.peek(kb)
                if state is None:
                    continue
                out = stage.tick(state, now, self.started_at)
                expired = stage.expired(state, now)
            except Exception:
                log.exception("tick of stage %s failed for key %r", stage.name, kb)
                self._recover(cache, kb, kb.decode(errors="replace"))
                cache.reindex(kb, msg.partition)
                continue
            if expired:
                cache.delete(kb, msg.partition, tid)
                self._sizes.pop((stage.name, kb), None)
            else:
                cache.ticked(kb, msg.partition, tid, now, self.started_at, bool(out))
            if out:
                self.publish(out, msg, tid)
        self.metrics.state_keys.labels(stage.name).set(len(cache.index))


def register_agents(runtime: Runtime) -> None:
    """Define the three agents and the tick/metrics timers on ``runtime.app``.

    With ``batch_max`` > 1 a stage's input topic is delivered to the runtime straight from faust's
    fetcher, a fetched run of messages at a time (``_faust_fixes.deliver_in_batches``, with
    ``_delivery.direct_handler``); its agent then sees only the ticks. With ``batch_max`` 1 every message
    takes faust's per-message path through the agent's stream."""
    app, t, p = runtime.app, runtime.topics, runtime.pipeline
    raw = {"key_serializer": "raw", "value_serializer": "raw", "key_type": bytes, "value_type": bytes}
    batch_max, batch_within = runtime.config.batch_max, runtime.config.batch_within_s
    if batch_max > 1:
        from tripwire.processors._faust_fixes import install_direct

        install_direct(
            app,
            {
                t.events: direct_handler(runtime, p.runs, True),
                t.by_agent: direct_handler(runtime, p.agents, False),  # already validated by the runs stage
                t.by_credential: direct_handler(runtime, p.credentials, False),
            },
        )

    def make_agent(stage: Any, source: str, validate: bool) -> None:
        async def agent(stream: Any) -> None:
            # A batch's events are acked only once all of them are handled, with no await in between
            # (handling is synchronous and Stream.ack never suspends): an offset commit, and so the
            # flush of what the handled messages caused, never falls between handling a message and
            # acking it. Messages still in the buffer are not acked, so a kill loses none of them.
            # A batch is skipped, not handled and not acked, while a rebalance is under way or when it
            # was fetched before one (see :func:`deliverable`): it is read again from the committed offset.
            ticks = t.ticks
            if batch_max == 1:  # one message at a time, acked by the stream when the next is read
                async for event in stream.events():
                    msg = event.message
                    if msg.topic == ticks:
                        runtime.tick(stage, source, msg)
                    else:
                        runtime.handle(stage, msg, validate)
                return
            async for events in stream.noack_take(batch_max, within=batch_within):
                current = deliverable(app, events)
                for event in current:
                    msg = event.message
                    if msg.topic == ticks:
                        runtime.tick(stage, source, msg)
                    else:
                        runtime.handle(stage, msg, validate)
                for event in current:
                    await stream.ack(event)

        agent.__name__ = agent.__qualname__ = f"{stage.name}_agent"
        app.agent(app.topic(source, t.ticks, **raw), name=f"tripwire.processors.{stage.name}")(agent)

    make_agent(p.runs, t.events, validate=True)
    make_agent(p.agents, t.by_agent, validate=False)  # already validated by the runs stage
    make_agent(p.credentials, t.by_credential, validate=False)

    @app.timer(interval=runtime.config.tick_interval_s)
    async def send_ticks() -> None:
        now = str(time.time()).encode()
        for tp in sorted(app.assignor.assigned_actives()):
            if tp.topic == t.ticks:
                await app.producer.send(t.ticks, None, now, tp.partition, None, None)

    @app.timer(interval=5.0)
    async def update_gauges() -> None:
        runtime.metrics.update_rate()
        consumer = app.consumer
        for (topic, partition), offset in list(runtime.positions.items()):
            from faust.types import TP

            hw = consumer.highwater(TP(topic, partition))
            if hw is not None:
                runtime.metrics.lag.labels(topic, str(partition)).set(max(0, hw - offset - 1))
