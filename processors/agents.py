"""The faust agents: thin wiring of the stages to topics and tables.

Three agents, one per stage, each consuming its input topic plus the ticks topic:

- ``runs``: the events topic (key run_id). Decodes and validates each event (failures go to the
  DLQ with the original bytes, topic, partition and offset), runs the RunStage, publishes
  RunSummary records (on the same partition number as the event) and alerts, and forwards the
  original bytes to the by-agent / by-credential topics.
- ``agents``: the by-agent topic (key tenant|agent_id) -> WindowStats and alerts.
- ``credentials``: the by-credential topic (key fingerprint) -> alerts.

With ``exactly_once`` every record a message causes (outputs, forwards, DLQ records and the
table changelog) is sent in the Kafka transaction of the message's source partition, which
commits together with its offset; a killed worker's open transaction is aborted and replayed.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from tripwire.processors._state_cache import StateCache
from tripwire.processors.config import ProcessorConfig
from tripwire.processors.latency import window_key
from tripwire.processors.metrics import ProcessorMetrics
from tripwire.processors.pipeline import Pipeline
from tripwire.processors.stages import Outputs
from tripwire.processors.tables import pack, unpack
from tripwire.processors.topics import RuntimeTopics

log = logging.getLogger(__name__)
_DLQ_NS = uuid.UUID("0d6a3b9e-5a7e-4c43-9d8e-3f1b2c4a5d60")


class Runtime:
    """Holds what the agents share: app, codec, stages, tables, topics, metrics."""

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
        self.started_at = time.time()
        self._scans: dict[str, tuple[float, dict[int, list[bytes]]]] = {}
        self.caches = {
            s.name: StateCache(s, tables[s.name]) for s in (pipeline.runs, pipeline.agents, pipeline.credentials)
        }
        self._generation: int | None = None

    def _cache(self, stage: Any) -> StateCache:
        """``stage``'s state cache; a new consumer generation (a rebalance) drops every cache."""
        generation = self.app.consumer_generation_id
        if generation != self._generation:
            for cache in self.caches.values():
                cache.clear()
            self._generation = generation
        return self.caches[stage.name]

    # -- sending ---------------------------------------------------------------------------------
    def _tid(self, msg: Any) -> str | None:
        if not self.eos:
            return None
        group = self.app.assignor.group_for_topic(msg.topic)
        return f"{self.app.conf.id}-{group}-{msg.partition}"

    async def send(self, topic: str, key: bytes | None, value: bytes, tid: str | None, partition: int | None = None):
        if tid is None:
            return await self.app.producer.send(topic, key, value, partition, None, None)
        return await self.app.producer.send(topic, key, value, partition, None, None, transactional_id=tid)

    async def publish(self, out: Outputs, msg: Any, tid: str | None) -> None:
        enc = self.codec.encode
        for s in out.runs:
            # same partition number as the event: runs share the events topic's partitioning by run_id
            await self.send(self.topics.runs, s.run_id.encode(), enc(s), tid, partition=msg.partition)
        for w in out.metrics:
            await self.send(self.topics.metrics, window_key(w).encode(), enc(w), tid)
        for a in out.alerts:
            await self.send(self.topics.alerts, a.incident_id.encode(), enc(a), tid)
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

    async def dead_letter(self, msg: Any, tid: str | None, stage: str, reason: str, error_type: str) -> None:
        from tripwire.schemas import DeadLetter

        dl = DeadLetter(
            dlq_id=str(uuid.uuid5(_DLQ_NS, f"{msg.topic}|{msg.partition}|{msg.offset}")),
            source_topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            reason=reason[:2000],
            error_type=error_type,
            stage=stage,
            failed_at=_now_dt(),
        )
        await self.send(self.topics.dlq, msg.key, self.codec.encode(dl), tid, partition=msg.partition)
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
    def decode(self, msg: Any, validate: bool) -> tuple[Any | None, str, str, str]:
        """(event, stage, reason, error_type); event is None when the message is a dead letter."""
        from tripwire.schemas import DecodeError, EventBase

        if msg.value is None:
            return None, "decode", "empty value (tombstone) on the events topic", "EmptyValue"
        try:
            ev = self.codec.decode(msg.value, validate)
        except DecodeError as e:
            stage = "validate" if e.reason == "invalid" else "decode"
            return None, stage, str(e), type(e).__name__
        if not isinstance(ev, EventBase):
            return None, "validate", f"not an event: a {type(ev).__name__} record", "NotAnEvent"
        return ev, "", "", ""

    async def handle(self, stage: Any, msg: Any, validate: bool) -> None:
        """One input message of ``stage``: decode, fold into the key's state, publish, forward."""
        tid = self._tid(msg)
        self.positions[(msg.topic, msg.partition)] = msg.offset
        ev, bad_stage, reason, err = self.decode(msg, validate)
        if ev is None:
            self.metrics.events.labels(stage.name, "dead_letter").inc()
            await self.dead_letter(msg, tid, bad_stage, reason, err)
            return
        table = self.tables[stage.name]
        cache = self._cache(stage)
        key = stage.key(ev)
        kb = key.encode()
        now = time.time()
        try:
            state = cache.get(kb, key)
            res = stage.process(state, ev, now)
        except Exception as e:  # a bug or corrupt state must not stop the worker: the event goes to the DLQ
            log.exception("stage %s failed on %s", stage.name, key)
            cache.evict(kb)  # maybe half-updated; the table holds the state from before this event
            self.metrics.events.labels(stage.name, "failed").inc()
            await self.dead_letter(msg, tid, "process", f"{stage.name}: {e}", type(e).__name__)
            return
        if not res.applied:
            self.metrics.events.labels(stage.name, "duplicate").inc()
            return
        await self.put(table, kb, pack(msg.partition, stage.dumps(state)), msg.partition)
        self.metrics.events.labels(stage.name, "ok").inc()
        await self.publish(res.outputs, msg, tid)
        if res.to_agent:
            await self.send(self.topics.by_agent, self.pipeline.agents.key(ev).encode(), msg.value, tid)
        if res.to_credential:
            await self.send(self.topics.by_credential, ev.credential_fingerprint.encode(), msg.value, tid)

    @staticmethod
    async def put(table: Any, key: bytes, value: bytes | None, partition: int) -> None:
        """Write a table key (None deletes it) and send its changelog record *now*.

        ``table[key] = value`` would queue the changelog record in faust's producer buffer, which
        a transaction commit does not drain: the record could land in a later transaction than
        the offsets of the message that caused it, and a kill in between would lose the state.
        Sending it here puts it in the same transaction as the message's other outputs.
        """
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
        await table.changelog_topic.send(key=key, value=value, partition=partition)

    def _keys_of(self, name: str, table: Any, now: float, partition: int) -> list[bytes]:
        """The table keys owned by ``partition``. One scan of the table serves every partition's
        tick of the same round (ticks of a round carry the same clock value)."""
        cached = self._scans.get(name)
        if cached is None or cached[0] != now:
            groups: dict[int, list[bytes]] = {}
            for k, v in list(table.items()):
                groups.setdefault(unpack(v)[0], []).append(k)
            cached = self._scans[name] = (now, groups)
        return cached[1].get(partition, [])

    def backlog(self, topic: str, partition: int) -> bool:
        """True when messages of ``topic``/``partition`` are known to be waiting."""
        from faust.types import TP

        pos = self.positions.get((topic, partition))
        if pos is None:
            return False
        hw = self.app.consumer.highwater(TP(topic, partition))
        return hw is not None and hw - 1 > pos

    async def tick(self, stage: Any, source: str, msg: Any) -> None:
        """A clock message on partition p: time-driven outputs for the keys partition p owns."""
        tid = self._tid(msg)
        try:
            now = float(msg.value)
        except (TypeError, ValueError):
            log.warning("ignoring malformed tick value=%r", msg.value)
            return
        if self.backlog(source, msg.partition):
            return  # time-driven outputs wait until the partition has caught up with its input
        table = self.tables[stage.name]
        mine = self._keys_of(stage.name, table, now, msg.partition)
        cache = self._cache(stage)
        for kb in mine:
            try:
                state = cache.peek(kb)
                if state is None:
                    continue
                out = stage.tick(state, now, self.started_at)
                expired = stage.expired(state, now)
            except Exception:
                log.exception("tick of stage %s failed for key %r", stage.name, kb)
                cache.evict(kb)
                continue
            if expired:
                cache.evict(kb)
                await self.put(table, kb, None, msg.partition)
            elif out:
                await self.put(table, kb, pack(msg.partition, stage.dumps(state)), msg.partition)
            if out:
                await self.publish(out, msg, tid)
        self.metrics.state_keys.labels(stage.name).set(sum(len(k) for k in self._scans[stage.name][1].values()))


def _now_dt() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def register_agents(runtime: Runtime) -> None:
    """Define the three agents and the tick/metrics timers on ``runtime.app``."""
    app, t, p = runtime.app, runtime.topics, runtime.pipeline
    raw = {"key_serializer": "raw", "value_serializer": "raw", "key_type": bytes, "value_type": bytes}

    def make_agent(stage: Any, source: str, validate: bool) -> None:
        async def agent(stream: Any) -> None:
            async for event in stream.events():
                msg = event.message
                if msg.topic == t.ticks:
                    await runtime.tick(stage, source, msg)
                else:
                    await runtime.handle(stage, msg, validate)

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
