"""LatencyWindows: tumbling event-time windows of call latency, cost and errors.

Key: tenant, agent_id, agent_version, kind (model | tool), name (the model or the tool) and model
(the model's name for model calls, empty for tools). A call belongs to the window holding its
``ts_end``; its latency is ``ts_end - ts_start`` in milliseconds.

A window closes (and its WindowStats is emitted, once) when the key's event-time watermark (the
largest ts_end seen) passes ``window_end + allowed_lateness``. When a key goes quiet, its
watermark advances with the wall clock from the last call's arrival (``tick``), so the last
windows close too; replayed history is still windowed by its own event time. A call for a window
that has already closed is late: it is dropped and counted in ``late_dropped``.

The state is per (tenant, agent_id), the key the runtime partitions this operator by.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ddsketch.mapping import LogarithmicMapping

from tripwire.processors._pricing import NANOS_PER_USD, to_nanos
from tripwire.processors._time import micros, utc
from tripwire.processors.policy import WindowsPolicy
from tripwire.processors.run_aggregator import ERROR_STATUSES, _val, model_name
from tripwire.processors.sketch import LatencySketch


class ClosedWindow(NamedTuple):
    """A closed window's WindowStats and the (event_id, trace_id) of its slowest call."""

    stats: Any
    slowest: tuple[str, str] | None


def window_key(stats: Any) -> str:
    """The metrics topic key of a WindowStats: its dimensions and window start."""
    return "|".join(
        (
            stats.tenant,
            stats.agent_id,
            stats.agent_version,
            stats.kind,
            stats.name,
            stats.model,
            stats.window_start.isoformat(),
        )
    )


class LatencyWindows:
    """Folds ModelCall / ToolCall events into per-window aggregates; emits WindowStats on close."""

    def __init__(self, policy: WindowsPolicy) -> None:
        self.policy = policy
        self._acc = policy.relative_accuracy
        self._mapping = LogarithmicMapping(policy.relative_accuracy)

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"wm": None, "arr": 0.0, "closed_upto": None, "late_dropped": 0, "w": {}}

    def dims(self, event: Any) -> tuple[str, str, str] | None:
        kind = type(event).__name__
        if kind == "ModelCall":
            name = model_name(event)
            return "model", name, name
        if kind == "ToolCall":
            return "tool", event.tool_name, ""
        return None

    def process(self, state: dict[str, Any], event: Any, now: float) -> list[Any]:
        dims = self.dims(event)
        if dims is None:
            return []
        start_us, end_us = micros(event.ts_start), micros(event.ts_end)
        end = end_us / 1e6
        size = self.policy.window_s
        w_start = float(end_us // (size * 1_000_000) * size)
        closed_upto = state["closed_upto"]
        if closed_upto is not None and w_start + size <= closed_upto:
            state["late_dropped"] += 1
            return []
        kind, name, model = dims
        key = f"{event.agent_version}\x1f{kind}\x1f{name}\x1f{model}\x1f{w_start!r}"
        agg = state["w"].get(key)
        if agg is None:
            agg = state["w"][key] = {
                "tenant": event.tenant,
                "agent_id": event.agent_id,
                "agent_version": event.agent_version,
                "kind": kind,
                "name": name,
                "model": model,
                "start": w_start,
                "n": 0,
                "err": 0,
                "cost": 0,
                "min": None,
                "max": None,
                "sum": 0.0,
                "z": 0,
                "b": {},
                "slow": None,
            }
        ms = max(0, end_us - start_us) / 1000.0
        agg["n"] += 1
        if _val(event.status) in ERROR_STATUSES:
            agg["err"] += 1
        if kind == "model" and event.cost_usd is not None:
            agg["cost"] += to_nanos(event.cost_usd)
        agg["min"] = ms if agg["min"] is None else min(agg["min"], ms)
        if agg["max"] is None or ms > agg["max"]:
            agg["max"] = ms
            agg["slow"] = [event.event_id, event.trace_id]
        agg["sum"] += ms
        if ms > self._mapping.min_possible:
            b = agg["b"]
            k = str(self._mapping.key(ms))
            b[k] = b.get(k, 0) + 1
        else:
            agg["z"] += 1
        state["arr"] = now
        wm = state["wm"]
        if wm is None or end > wm:
            state["wm"] = end
            return self._close(state, end, now)
        return []

    def tick(self, state: dict[str, Any], now: float, resumed_at: float = 0.0) -> list[Any]:
        """Idle keys: event time is taken to advance with the wall clock since the last call
        (or since the runtime resumed, if later)."""
        if state["wm"] is None:
            return []
        return self._close(state, state["wm"] + max(0.0, now - max(state["arr"], resumed_at)), now)

    def _close(self, state: dict[str, Any], clock: float, now: float) -> list[Any]:
        """Close every window whose end + lateness is at or before ``clock``."""
        horizon = clock - self.policy.allowed_lateness_s
        size = self.policy.window_s
        closed_upto = horizon - (horizon % size)
        if state["closed_upto"] is None or closed_upto > state["closed_upto"]:
            state["closed_upto"] = closed_upto
        done = [k for k, a in state["w"].items() if a["start"] + size <= horizon]
        if not done:
            return []
        out = []
        for k in done:
            agg = state["w"].pop(k)
            slow = agg["slow"]
            out.append(ClosedWindow(self.stats(agg, now), (slow[0], slow[1]) if slow else None))
        out.sort(key=lambda c: window_key(c.stats))
        return out

    def stats(self, agg: dict[str, Any], now: float) -> Any:
        from tripwire.schemas import WindowStats

        sk = LatencySketch(self._acc, {int(k): c for k, c in agg["b"].items()}, agg["z"])
        return WindowStats(
            tenant=agg["tenant"],
            agent_id=agg["agent_id"],
            agent_version=agg["agent_version"],
            kind=agg["kind"],
            name=agg["name"],
            model=agg["model"],
            window_start=utc(agg["start"]),
            window_end=utc(agg["start"] + self.policy.window_s),
            count=agg["n"],
            errors=agg["err"],
            cost_usd=agg["cost"] / NANOS_PER_USD,
            p50_ms=sk.quantile(0.50),
            p95_ms=sk.quantile(0.95),
            p99_ms=sk.quantile(0.99),
            min_ms=agg["min"] or 0.0,
            max_ms=agg["max"] or 0.0,
            sum_ms=agg["sum"],
            sketch=sk.to_bytes(),
            emitted_at=utc(now),
        )
