"""Stages: the operators grouped by the key their state is partitioned by.

- :class:`RunStage` (key ``run_id``, the events topic key): RunAggregator + run detectors;
- :class:`AgentStage` (key ``tenant|agent_id``): LatencyWindows + agent detectors;
- :class:`CredentialStage` (key: credential fingerprint): shared-credential detector.

The agents and credentials stages take *partials* (:mod:`partials`): where an event is first
read, ``contribute(partial, event)`` folds what they need of it into its key's partial, and
``process(state, partial, now)`` merges it. ``process(state, event, now)`` is the merge of a
partial of that one event (the in-process Pipeline and the tests drive them so).

Every stage has the same shape, so a runtime only needs a keyed store of bytes:
``key(event)``, ``new_state(key)``, ``process(state, event, now)``, ``tick(state, now, resumed_at)``,
``expired(state, now)``, ``due(state)``, ``dumps(state) -> bytes`` and ``loads(bytes)``. States are
plain data (versioned: see :mod:`state_format`); nothing here imports faust, Kafka or ClickHouse.

``due(state)`` is the earliest wall-clock time at which ``tick`` or ``expired`` may act on the key
(None: only an event can), a lower bound: a tick before it changes and emits nothing. The runtime's
deadline index (``_state_cache.DeadlineIndex``) ticks only the keys that are due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tripwire.processors.detect_agent import AgentDetectors
from tripwire.processors.detect_credential import CredentialDetector, CredentialUse
from tripwire.processors.detect_run import RunDetectors
from tripwire.processors.errors import StateError
from tripwire.processors.incidents import IncidentBook, Occurrence
from tripwire.processors.latency import LatencyWindows
from tripwire.processors.partials import AgentPartial, CredentialPartial
from tripwire.processors.policy import Policy
from tripwire.processors.run_aggregator import RunAggregator, RunState
from tripwire.processors.state_format import decode, encode

ALWAYS = float("-inf")
"""``due`` of a key every tick must visit."""


def _earliest(*times: float | None) -> float | None:
    """The smallest of ``times`` that is not None (None: none is); called for every changed key."""
    best = None
    for t in times:
        if t is not None and (best is None or t < best):
            best = t
    return best


_FORWARD_KINDS = frozenset({"ModelCall", "ToolCall"})


@dataclass
class Outputs:
    """What operators emit: records for the runs, metrics and alerts topics."""

    runs: list[Any] = field(default_factory=list)
    metrics: list[Any] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)

    def extend(self, other: Outputs) -> None:
        self.runs.extend(other.runs)
        self.metrics.extend(other.metrics)
        self.alerts.extend(other.alerts)

    def __bool__(self) -> bool:
        return bool(self.runs or self.metrics or self.alerts)

    def __len__(self) -> int:
        return len(self.runs) + len(self.metrics) + len(self.alerts)


@dataclass
class StageResult:
    outputs: Outputs = field(default_factory=Outputs)
    applied: bool = True
    to_agent: bool = False  # the event should go on to the AgentStage
    to_credential: bool = False  # ... and to the CredentialStage


def _alerts(book: IncidentBook, occs: list[Occurrence], now: float) -> list[Any]:
    out: list[Any] = []
    for occ in occs:
        out.extend(book.occur(occ, now))
    return out


# -- runs ------------------------------------------------------------------------------------


@dataclass
class RunStageState:
    run: RunState
    det: dict[str, Any]
    inc: IncidentBook


class RunStage:
    name = "runs"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.aggregator = RunAggregator(policy.runs)
        self.detectors = RunDetectors(policy.detectors)

    @staticmethod
    def key(event: Any) -> str:
        return event.run_id

    def new_state(self, key: str) -> RunStageState:
        return RunStageState(RunState(run_id=key), RunDetectors.new_state(), IncidentBook(self.policy.incidents))

    def process(self, state: RunStageState, event: Any, now: float) -> StageResult:
        n_creds = len(state.run.credentials)
        applied, summaries = self.aggregator.process(state.run, event, now)
        if not applied:
            return StageResult(applied=False)
        out = Outputs(runs=summaries)
        out.alerts.extend(_alerts(state.inc, self.detectors.on_event(state.run, state.det, event), now))
        for s in summaries:
            out.alerts.extend(_alerts(state.inc, self.detectors.on_close(state.run, s), now))
        return StageResult(
            out,
            applied=True,
            to_agent=type(event).__name__ in _FORWARD_KINDS,
            to_credential=len(state.run.credentials) > n_creds,
        )

    def tick(self, state: RunStageState, now: float, resumed_at: float = 0.0) -> Outputs:
        summaries = self.aggregator.tick(state.run, now, resumed_at)
        out = Outputs(runs=summaries)
        for s in summaries:
            out.alerts.extend(_alerts(state.inc, self.detectors.on_close(state.run, s), now))
        out.alerts.extend(state.inc.tick(now))
        return out

    def expired(self, state: RunStageState, now: float) -> bool:
        return self.aggregator.expired(state.run, now) and not state.inc

    def due(self, state: RunStageState) -> float | None:
        """Reorder grace, inactivity timeout (counted from the last event: a restart only delays
        it), closed-run retention, incident updates and expiry."""
        run, p = state.run, self.policy.runs
        if run.closed:
            mine = run.closed_at + p.closed_retention_s if run.closed_at is not None else None
        else:
            quiet = run.last_arrival + p.inactivity_timeout_s if run.outcome is None else None
            mine = _earliest(run.close_deadline, quiet)
        return _earliest(mine, state.inc.due())

    def dumps(self, state: RunStageState) -> bytes:
        return encode({"run": state.run.to_dict(), "det": state.det, "inc": state.inc.to_dict()}, self.due(state))

    def loads(self, data: bytes) -> RunStageState:
        d = decode(self.name, data)
        try:
            return RunStageState(
                RunState.from_dict(d["run"]), d["det"], IncidentBook.from_dict(self.policy.incidents, d["inc"])
            )
        except (KeyError, TypeError) as e:
            raise StateError(f"bad run state: {e}") from e


# -- agents ----------------------------------------------------------------------------------


@dataclass
class KeyedState:
    data: dict[str, Any]
    inc: IncidentBook


class AgentStage:
    name = "agents"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.windows = LatencyWindows(policy.latency_windows)
        self.detectors = AgentDetectors(policy.detectors)

    @staticmethod
    def key(event: Any) -> str:
        return f"{event.tenant}|{event.agent_id}"

    def new_state(self, key: str) -> KeyedState:
        return KeyedState(
            {"lw": LatencyWindows.new_state(), "det": AgentDetectors.new_state()}, IncidentBook(self.policy.incidents)
        )

    @staticmethod
    def new_partial() -> AgentPartial:
        return AgentPartial()

    def contribute(self, partial: AgentPartial, event: Any) -> None:
        """Fold what this stage needs of ``event`` into its key's ``partial``."""
        partial.events += 1
        self.windows.contribute(partial.windows, event)
        call = self.detectors.call(event)
        if call is not None:
            partial.calls.append(call)

    def process(self, state: KeyedState, item: Any, now: float) -> StageResult:
        """Merge a partial (or fold one event); the partial is left unchanged."""
        if not isinstance(item, AgentPartial):
            partial = AgentPartial()
            self.contribute(partial, item)
            item = partial
        det = state.data["det"]
        closed = self.windows.merge(state.data["lw"], item.windows, now) if item.windows else []
        occs = [o for call in item.calls for o in self.detectors.on_call(det, call)]
        return StageResult(self._outputs(state, closed, occs, now))

    def tick(self, state: KeyedState, now: float, resumed_at: float = 0.0) -> Outputs:
        out = self._outputs(state, self.windows.tick(state.data["lw"], now, resumed_at), [], now)
        out.alerts.extend(state.inc.tick(now))
        return out

    def _outputs(self, state: KeyedState, closed: list[Any], occs: list[Occurrence], now: float) -> Outputs:
        out = Outputs(metrics=[c.stats for c in closed])
        for c in closed:
            occs = [*occs, *self.detectors.on_window(c.stats, c.slowest)]
        out.alerts.extend(_alerts(state.inc, occs, now))
        return out

    def expired(self, state: KeyedState, now: float) -> bool:
        return False  # per-agent baselines are long-lived; the number of agents is bounded

    def due(self, state: KeyedState) -> float | None:
        """Every tick while the key has latency windows: their clock advances with the wall clock
        between calls (closing windows, finalizing revisions); the number of agents is bounded."""
        if state.data["lw"]["wm"] is not None:
            return ALWAYS
        return state.inc.due()

    def dumps(self, state: KeyedState) -> bytes:
        return encode({"data": state.data, "inc": state.inc.to_dict()}, self.due(state))

    def loads(self, data: bytes) -> KeyedState:
        d = decode(self.name, data)
        try:
            return KeyedState(d["data"], IncidentBook.from_dict(self.policy.incidents, d["inc"]))
        except (KeyError, TypeError) as e:
            raise StateError(f"bad agent state: {e}") from e


# -- credentials -------------------------------------------------------------------------------


class CredentialStage(AgentStage):
    name = "credentials"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.detector = CredentialDetector(policy.detectors.shared_credential)

    @staticmethod
    def key(event: Any) -> str:
        return event.credential_fingerprint  # type: ignore[no-any-return]

    def new_state(self, key: str) -> KeyedState:
        return KeyedState(CredentialDetector.new_state(), IncidentBook(self.policy.incidents))

    @staticmethod
    def new_partial() -> CredentialPartial:  # type: ignore[override]
        return CredentialPartial()

    def contribute(self, partial: CredentialPartial, event: Any) -> None:  # type: ignore[override]
        partial.events += 1
        use = CredentialUse.of(event)
        partial.uses.setdefault(f"{use.tenant}/{use.agent_id}", use)

    def process(self, state: KeyedState, item: Any, now: float) -> StageResult:
        uses = item.uses.values() if isinstance(item, CredentialPartial) else [CredentialUse.of(item)]
        occs = [o for use in uses for o in self.detector.on_use(state.data, use)]
        return StageResult(Outputs(alerts=_alerts(state.inc, occs, now)))

    def tick(self, state: KeyedState, now: float, resumed_at: float = 0.0) -> Outputs:
        return Outputs(alerts=state.inc.tick(now))

    def due(self, state: KeyedState) -> float | None:
        return state.inc.due()
