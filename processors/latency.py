"""LatencyWindows: tumbling event-time windows of call latency, cost and errors.

Key: tenant, agent_id, agent_version, kind (model | tool), name (the model or the tool) and model
(the model's name for model calls, empty for tools). A call belongs to the window holding its
``ts_end``; its latency is ``ts_end - ts_start`` in milliseconds.

A window closes (and its WindowStats is emitted, once) when the key's event-time watermark (the
largest ts_end seen) passes ``window_end + allowed_lateness``. When a key goes quiet, its
watermark advances with the wall clock from the last call's arrival (``tick``), so the last
windows close too; replayed history is still windowed by its own event time.

A call for a window that has already closed is late. Late calls are normal after a restart: the
backlog of the events topic is read at a different pace per partition, so one agent's calls from
partition A run ahead of those from partition B by far more than the allowed lateness (measured:
27 of 36 windows under-counted after a SIGKILL, e.g. 3 of 15 calls). A closed window is therefore
kept for ``revise_for_s`` of wall-clock time; a late call within it is folded in and the window is
emitted again, complete (same key, later ``emitted_at``: the sink's ReplacingMergeTree keeps the
latest). Later than that, the call is dropped and counted in ``late_dropped``.

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


def _copy(p: dict[str, Any]) -> dict[str, Any]:
    """A window aggregate of the state from a partial's (without its ``"e"``)."""
    agg = dict(p)
    agg.pop("e", None)
    agg["b"] = dict(p["b"])
    if p["slow"] is not None:
        agg["slow"] = list(p["slow"])
    return agg


def _merge_agg(agg: dict[str, Any], p: dict[str, Any]) -> None:
    """Add the calls of aggregate ``p`` to ``agg`` (the slowest call: the first of the largest)."""
    if p["n"] == 0:
        return
    agg["n"] += p["n"]
    agg["err"] += p["err"]
    agg["cost"] += p["cost"]
    agg["sum"] += p["sum"]
    agg["z"] += p["z"]
    if agg["min"] is None or p["min"] < agg["min"]:
        agg["min"] = p["min"]
    if agg["max"] is None or p["max"] > agg["max"]:
        agg["max"] = p["max"]
        agg["slow"] = list(p["slow"]) if p["slow"] is not None else None
    b = agg["b"]
    for k, c in p["b"].items():
        b[k] = b.get(k, 0) + c


class LatencyWindows:
    """Folds ModelCall / ToolCall events into per-window aggregates; emits WindowStats on close."""

    def __init__(self, policy: WindowsPolicy) -> None:
        self.policy = policy
        self._acc = policy.relative_accuracy
        self._mapping = LogarithmicMapping(policy.relative_accuracy)

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {
            "wm": None,
            "arr": 0.0,
            "closed_upto": None,
            "late_dropped": 0,
            "w": {},
            "c": {},
            "ch": [],
            "final": None,
        }

    def dims(self, event: Any) -> tuple[str, str, str] | None:
        kind = type(event).__name__
        if kind == "ModelCall":
            name = model_name(event)
            return "model", name, name
        if kind == "ToolCall":
            return "tool", event.tool_name, ""
        return None

    def process(self, state: dict[str, Any], event: Any, now: float) -> list[Any]:
        """Fold one call: the merge of a partial holding that call alone."""
        part: dict[str, dict[str, Any]] = {}
        self.contribute(part, event)
        return self.merge(state, part, now) if part else []

    def contribute(self, part: dict[str, dict[str, Any]], event: Any) -> None:
        """Fold a call into ``part``, a partial of one key's windows (window key -> aggregate, plus
        ``"e"``: the largest ts_end folded). Partials merge (:meth:`merge`) into the same windows
        as the calls one by one: counts, errors, cost, sum, min, max and DDSketch bins add up."""
        dims = self.dims(event)
        if dims is None:
            return
        start_us, end_us = micros(event.ts_start), micros(event.ts_end)
        size = self.policy.window_s
        w_start = float(end_us // (size * 1_000_000) * size)
        kind, name, model = dims
        key = f"{event.agent_version}\x1f{kind}\x1f{name}\x1f{model}\x1f{w_start!r}"
        agg = part.get(key)
        if agg is None:
            agg = part[key] = self._new(event, kind, name, model, w_start)
            agg["e"] = end_us / 1e6
        elif end_us / 1e6 > agg["e"]:
            agg["e"] = end_us / 1e6
        self._fold(agg, event, kind, start_us, end_us)

    def merge(self, state: dict[str, Any], part: dict[str, dict[str, Any]], now: float) -> list[Any]:
        """Merge a partial (see :meth:`contribute`; left unchanged) into the key's windows; returns
        the windows it closes or revises. A window already closed takes the partial's calls as late
        calls (revised within ``revise_for_s``, else dropped and counted); the others advance the
        watermark to the partial's largest ts_end."""
        size = self.policy.window_s
        out: list[Any] = []
        top: float | None = None
        closed_upto = state["closed_upto"]
        for key, p in part.items():
            w_start = p["start"]
            if closed_upto is not None and w_start + size <= closed_upto:  # late calls
                final = state.get("final")
                if self.policy.revise_for_s <= 0 or (final is not None and w_start + size <= final):
                    state["late_dropped"] += p["n"]  # its window closed longer ago than revise_for_s
                    continue
                kept = state.setdefault("c", {})
                agg = kept.get(key)
                if agg is None:  # the window had no call of these dimensions when it closed
                    kept[key] = agg = _copy(p)
                else:
                    _merge_agg(agg, p)
                slow = agg["slow"]
                out.append(ClosedWindow(self.stats(agg, now), (slow[0], slow[1]) if slow else None))
                continue
            agg = state["w"].get(key)
            if agg is None:
                state["w"][key] = _copy(p)
            else:
                _merge_agg(agg, p)
            if top is None or p["e"] > top:
                top = p["e"]
        if top is not None:
            state["arr"] = now
            wm = state["wm"]
            if wm is None or top > wm:
                state["wm"] = top
                out.extend(self._close(state, top, now))
        return out

    @staticmethod
    def _new(event: Any, kind: str, name: str, model: str, w_start: float) -> dict[str, Any]:
        return {
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

    def _fold(self, agg: dict[str, Any], event: Any, kind: str, start_us: int, end_us: int) -> None:
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
        revise = self.policy.revise_for_s > 0
        if state["closed_upto"] is None or closed_upto > state["closed_upto"]:
            state["closed_upto"] = closed_upto
            if revise:
                state.setdefault("ch", []).append([closed_upto, now])  # what closed when
        kept = state.setdefault("c", {})
        history = state.get("ch")
        if history and now - history[0][1] >= self.policy.revise_for_s:
            # windows ending at or before "final" closed longer ago than revise_for_s: no more revisions
            while history and now - history[0][1] >= self.policy.revise_for_s:
                state["final"] = history.pop(0)[0]
            final = state["final"]
            for k in [k for k, a in kept.items() if a["start"] + size <= final]:
                del kept[k]
        done = [k for k, a in state["w"].items() if a["start"] + size <= horizon]
        if not done:
            return []
        out = []
        for k in done:
            agg = state["w"].pop(k)
            if revise:
                kept[k] = agg
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
