"""The embedded runtime: the whole pipeline in one process, no Kafka and no ClickHouse server.

It is the in-process twin of the distributed deployment and runs the same code:

- agents' :class:`~tripwire.producers.Tracer` deliver encoded events to :meth:`EmbeddedRuntime.submit`
  (a ``QueueTransport`` sink) instead of Kafka;
- the same operators as the faust app (:class:`~tripwire.processors.pipeline.Pipeline`) fold them into
  run summaries, latency windows and alerts;
- the same kill-switch policy turns alerts into signed commands, which are applied to the agents'
  :class:`~tripwire.producers.killswitch.KillSwitchState` exactly as the listener applies records of
  the compacted topic (signature, expiry and replay checks included);
- the same batching sink writes every record, under the topic names the distributed mode uses,
  into ClickHouse (chdb), with per-"topic" offsets that continue across restarts, so a re-run
  continues the same data and a replay is deduplicated by the sink's high-water marks.

One worker thread owns the pipeline, the policy and the sink: no locks on the hot path. Outputs that
cannot be stored yet (ClickHouse refusing a batch) stay buffered in the sink and are retried; the
inbox is unbounded by design because the SDK's own queue bounds what agents can push.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tripwire.killswitch import CommandSigner, KillSwitchState
from tripwire.processors.killswitch_policy import KillSwitchPolicy
from tripwire.processors.pipeline import Pipeline
from tripwire.processors.policy import Policy
from tripwire.schemas import (
    Alert,
    DecodeError,
    KillSwitchCommand,
    RunSummary,
    Topics,
    WindowStats,
    check_event,
    dead_letter,
    decode,
    encode,
    topic_names,
)
from tripwire.schemas.records import DeadLetterStage
from tripwire.sinks.batching import BatchingSink, Message
from tripwire.sinks.exceptions import SinkBackpressureError
from tripwire.sinks.store import Store

log = logging.getLogger(__name__)

TICK_S = 0.25
STATE_FILE = "pipeline.state"


@dataclass
class RuntimeStats:
    events: int = 0
    dead_letters: int = 0
    runs_closed: int = 0
    windows: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    incidents: set[str] = field(default_factory=set)
    commands: int = 0
    commands_rejected: int = 0
    internal_errors: int = 0
    cost_usd: float = 0.0
    _run_cost: dict[str, float] = field(default_factory=dict)

    def note_summary(self, s: RunSummary) -> None:
        prev = self._run_cost.get(s.run_id)
        self._run_cost[s.run_id] = s.cost_usd
        self.cost_usd += s.cost_usd - (prev or 0.0)
        if prev is None and s.outcome != "running":
            self.runs_closed += 1


class EmbeddedRuntime:
    def __init__(
        self,
        store: Store,
        *,
        signer: CommandSigner | None = None,
        killswitch_states: list[KillSwitchState] | None = None,
        topics: Topics | None = None,
        pipeline: Pipeline | None = None,
        policy: KillSwitchPolicy | None = None,
        state_dir: Path | None = None,
        batch_seconds: float = 1.0,
        on_alert: Callable[[Alert], None] | None = None,
        on_command: Callable[[KillSwitchCommand], None] | None = None,
    ) -> None:
        self.store = store
        self.topics = topics or topic_names()
        self.state_dir = state_dir
        self.pipeline = pipeline or self.restore_pipeline(state_dir)
        self.policy = policy or KillSwitchPolicy(signer=signer)
        self.killswitch_states = killswitch_states or []
        self.on_alert = on_alert  # observers (the demo's story feed); their errors are logged, never raised
        self.on_command = on_command
        self.sink = BatchingSink(store, self.topics, batch_seconds=batch_seconds)
        self.stats = RuntimeStats()
        self._offsets = self._load_offsets()
        self._inbox: deque[tuple[bytes, bytes]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drained = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_tick = 0.0

    # -- set-up ---------------------------------------------------------------------------------
    @staticmethod
    def restore_pipeline(state_dir: Path | None, policy: Policy | None = None) -> Pipeline:
        """The operators' state as the last run left it (snapshotted at stop), else empty."""
        if state_dir is not None and (state_dir / STATE_FILE).exists():
            try:
                return Pipeline.from_bytes((state_dir / STATE_FILE).read_bytes(), policy)
            except Exception as e:  # a damaged snapshot must not stop the demo
                log.warning("pipeline snapshot unreadable, starting empty error=%s", e)
        return Pipeline(policy)

    def _load_offsets(self) -> dict[str, int]:
        """Next offset per in-process 'topic' (one partition each): continue after what is stored."""
        res = self.store.query(
            "SELECT src_topic, max(max_offset) FROM sink_offsets GROUP BY src_topic", {}
        )
        offsets = {t: int(m) + 1 for t, m in res.rows}
        for table in ("model_calls", "tool_calls", "run_events", "run_summaries", "window_stats", "alerts",
                      "killswitch_audit", "dead_letters"):
            res = self.store.query(f"SELECT src_topic, max(src_offset) FROM {table} GROUP BY src_topic", {})
            for t, m in res.rows:
                offsets[t] = max(offsets.get(t, 0), int(m) + 1)
        return offsets

    # -- intake (agents' delivery threads) ------------------------------------------------------
    def submit(self, key: bytes, value: bytes) -> None:
        """The SDK's in-process transport sink. Never blocks; never raises for a running runtime."""
        if self._stop.is_set() and self._drained.is_set():
            raise RuntimeError("embedded runtime stopped")  # the SDK spools it for the next start
        self._inbox.append((key, value))
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> EmbeddedRuntime:
        """Load the sink's replay marks of every in-process topic (retrying while ClickHouse is not
        reachable, up to ``timeout``), then start the worker thread."""
        deadline = time.monotonic() + timeout
        for topic in (self.topics.events, self.topics.runs, self.topics.metrics, self.topics.alerts,
                      self.topics.killswitch, self.topics.dlq):
            while True:
                try:
                    self.sink.preload(topic, 0)
                    break
                except SinkBackpressureError as e:
                    if time.monotonic() + e.retry_after > deadline:
                        raise
                    time.sleep(e.retry_after)
        for st in self.killswitch_states:
            st.ready.set()
            st.mark_contact()
        self._thread = threading.Thread(target=self._loop, name="tripwire-embedded", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> bool:
        """Process everything submitted, close what time decides, flush the sink, snapshot state."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self._drained.is_set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(TICK_S)
            self._wake.clear()
            self._drain_inbox()
            now = time.monotonic()
            if now - self._last_tick >= TICK_S:
                self._last_tick = now
                try:
                    self._route(self.pipeline.tick())
                except Exception:
                    self.stats.internal_errors += 1
                    log.exception("embedded runtime tick failed")
                for st in self.killswitch_states:
                    st.mark_contact()
            self._flush(force=False)
            if self._stop.is_set() and not self._inbox:
                break
        self._route(self.pipeline.tick())
        for _ in range(50):
            if self._flush(force=True):
                break
            self._stop.wait(min(1.0, self.sink.retry_in() + 0.05))
        self._snapshot()
        self._drained.set()

    def _snapshot(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_bytes(self.pipeline.to_bytes())
        tmp.replace(self.state_dir / STATE_FILE)

    def _flush(self, *, force: bool) -> bool:
        if not force and not self.sink.should_flush():
            return True
        try:
            self.sink.flush()
            return True
        except SinkBackpressureError as e:
            log.warning("clickhouse refused a batch; retrying retry_after=%.2fs", e.retry_after)
            return False
        except Exception:
            self.stats.internal_errors += 1
            log.exception("embedded runtime flush failed; the batch stays pending")
            return False

    # -- the work -------------------------------------------------------------------------------
    def _emit(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Offer one record of an in-process topic to the sink; the offset is used only once taken."""
        off = self._offsets.get(topic, 0)
        self.sink.add(Message(topic, 0, off, key, value, int(time.time() * 1000)))
        self._offsets[topic] = off + 1

    def _drain_inbox(self) -> None:
        while self._inbox:
            key, value = self._inbox.popleft()
            stage: DeadLetterStage = "sink"
            try:
                self._emit(self.topics.events, key, value)
            except SinkBackpressureError as e:  # not taken: offer it again after the backoff
                self._inbox.appendleft((key, value))
                self._stop.wait(min(e.retry_after, 1.0))
                return
            except Exception as e:  # a bug must cost one event (to the DLQ), never the runtime
                self.stats.internal_errors += 1
                log.exception("embedded runtime could not hand an event to the sink")
                self._dead_letter(key, value, f"{type(e).__name__}: {e}", type(e).__name__, stage)
                continue
            try:
                stage = "decode"
                event = decode(value)
                self.stats.events += 1
                over = check_event(event, time.time())  # the limits the sink applied to the same event
                if over is not None:
                    self._dead_letter(key, value, over, "LimitExceeded", "validate")
                    continue
                stage = "process"
                self._route(self.pipeline.process(event))
            except DecodeError as e:
                self._dead_letter(key, value, e.reason, "DecodeError", stage)
            except Exception as e:  # a bug must cost one event (to the DLQ), never the runtime
                self.stats.internal_errors += 1
                log.exception("embedded runtime failed on an event stage=%s", stage)
                self._dead_letter(key, value, f"{type(e).__name__}: {e}", type(e).__name__, stage)

    def _dead_letter(
        self, key: bytes | None, value: bytes, reason: str, error_type: str, stage: DeadLetterStage
    ) -> None:
        """The processors' DLQ record (the sink dead-letters its own copy of an unmappable event)."""
        self.stats.dead_letters += 1
        offset = self._offsets.get(self.topics.events, 0) - 1
        dl = dead_letter(self.topics.events, 0, max(0, offset), key, value, stage=stage, reason=reason,
                         error_type=error_type)  # fmt: skip
        try:
            self._emit(self.topics.dlq, key, encode(dl))
        except Exception:
            log.exception("embedded runtime could not store a dead letter")

    def _route(self, outputs: Any) -> None:
        for s in outputs.runs:
            self.stats.note_summary(s)
            self._emit(self.topics.runs, s.run_id.encode(), encode(s))
        for w in outputs.metrics:
            self.stats.windows += 1
            self._emit(self.topics.metrics, _window_key(w), encode(w))
        for a in outputs.alerts:
            self.stats.alerts[a.kind] += 1 if a.incident_id not in self.stats.incidents else 0
            self.stats.incidents.add(a.incident_id)
            self._emit(self.topics.alerts, a.incident_id.encode(), encode(a))
            _observe(self.on_alert, a)
            for cmd in self.policy.process(a):
                self.publish_command(cmd)

    def publish_command(self, cmd: KillSwitchCommand) -> None:
        """What producing to the compacted topic does in the distributed mode: store it, and let every
        agent's kill-switch state apply it (the state verifies the signature, expiry and replay)."""
        self.stats.commands += 1
        self._emit(self.topics.killswitch, cmd.scope.encode(), encode(cmd))
        for st in self.killswitch_states:
            res = st.apply(cmd, key=cmd.scope)
            if not res.accepted:
                self.stats.commands_rejected += 1
        _observe(self.on_command, cmd)


def _observe(observer: Callable[[Any], None] | None, record: Any) -> None:
    if observer is None:
        return
    try:
        observer(record)
    except Exception:
        log.exception("embedded runtime observer failed record=%s", type(record).__name__)


def _window_key(w: WindowStats) -> bytes:
    return "|".join((w.tenant, w.agent_id, w.agent_version, w.kind, w.name, w.model,
                     w.window_start.isoformat())).encode()


__all__ = ["EmbeddedRuntime", "RuntimeStats"]
