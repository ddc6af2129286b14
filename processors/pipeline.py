"""Pipeline: every operator in one object, for in-process runtimes and tests.

``Pipeline.process(event)`` runs the event through the RunStage and, as the Kafka runtime
does through its repartition topics, on to the AgentStage and CredentialStage; it returns
every output of every operator. ``tick(now)`` emits what time alone decides (inactivity
timeouts, window closes, alert updates and resolutions). The state of all stages can be
snapshotted with ``to_bytes`` / ``from_bytes`` (MessagePack of stage -> key -> state bytes; a JSON
snapshot of formats v1-v3, stage -> key -> state text, still loads).

The embedded runtime drives exactly this object; the faust runtime drives the same stages one
key at a time (see :mod:`tripwire.processors.stages`).
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from tripwire.processors._time import wall_clock
from tripwire.processors.errors import StateError
from tripwire.processors.policy import Policy, default_policy
from tripwire.processors.stages import AgentStage, CredentialStage, Outputs, RunStage


class Pipeline:
    """All operators, with their per-key states held in dicts."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or default_policy()
        self.runs = RunStage(self.policy)
        self.agents = AgentStage(self.policy)
        self.credentials = CredentialStage(self.policy)
        self._stages = (self.runs, self.agents, self.credentials)
        self.states: dict[str, dict[str, Any]] = {s.name: {} for s in self._stages}
        self.events_processed = 0
        self.duplicates = 0

    def _state(self, stage: Any, key: str) -> Any:
        states = self.states[stage.name]
        st = states.get(key)
        if st is None:
            st = states[key] = stage.new_state(key)
        return st

    def process(self, event: Any, now: float | None = None) -> Outputs:
        """Fold one decoded, validated event into every operator; returns all outputs."""
        now = wall_clock() if now is None else now
        self.events_processed += 1
        res = self.runs.process(self._state(self.runs, self.runs.key(event)), event, now)
        out = res.outputs
        if not res.applied:
            self.duplicates += 1
            return out
        if res.to_agent:
            out.extend(self.agents.process(self._state(self.agents, self.agents.key(event)), event, now).outputs)
        if res.to_credential:
            key = self.credentials.key(event)
            out.extend(self.credentials.process(self._state(self.credentials, key), event, now).outputs)
        return out

    def tick(self, now: float | None = None, resumed_at: float = 0.0) -> Outputs:
        """Time-driven outputs for every key; drops the state of keys whose retention passed.
        ``resumed_at``: when the runtime (re)started consuming (quiet time counts from then)."""
        now = wall_clock() if now is None else now
        out = Outputs()
        for stage in self._stages:
            states = self.states[stage.name]
            for key in sorted(states):
                st = states[key]
                out.extend(stage.tick(st, now, resumed_at))
                if stage.expired(st, now):
                    del states[key]
        return out

    # -- snapshots -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        snap = {stage.name: {k: stage.dumps(v) for k, v in self.states[stage.name].items()} for stage in self._stages}
        return msgpack.packb(snap, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def from_bytes(cls, data: bytes, policy: Policy | None = None) -> Pipeline:
        p = cls(policy)
        try:
            if data[:1] == b"{":  # a snapshot of formats v1-v3: JSON, each state as text
                snap = {n: {k: v.encode() for k, v in d.items()} for n, d in json.loads(data).items()}
            else:
                snap = msgpack.unpackb(data, raw=False)
            for stage in p._stages:
                p.states[stage.name] = {k: stage.loads(v) for k, v in snap.get(stage.name, {}).items()}
        except (ValueError, AttributeError, TypeError, msgpack.UnpackException) as e:
            raise StateError(f"undecodable pipeline snapshot: {e}") from e
        return p
