"""Detectors judged per agent (state keyed by tenant + agent_id, next to the latency windows).

- tool_error_rate: errors / calls of one tool over a sliding event-time window, above the
  threshold with at least ``min_calls`` calls (the seed's ``tool_error_rate > 0.10``);
- latency_slo: a closed latency window whose p95 is above the SLO configured for the agent and
  operation (kind + name);
- cost_spike: the agent's spend in the current minute against an EWMA baseline of past minutes,
  using a robust z-score (EW mean absolute deviation x 1.4826) and a minimum dollar excess;
- unauthenticated_tool: a tool call with no credential fingerprint.

The detectors read a :class:`Call`, what they need of a model or tool call (a few fields, no
Avro event): the runs stage extracts it where the event is first read and ships it in the agent's
partial, so the agents stage folds calls without decoding events again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tripwire.processors._pricing import NANOS_PER_USD, to_nanos
from tripwire.processors._time import epoch
from tripwire.processors.incidents import Occurrence
from tripwire.processors.policy import DetectorsPolicy
from tripwire.processors.run_aggregator import ERROR_STATUSES, _val

MAD_SCALE = 1.4826  # makes a mean absolute deviation comparable to a standard deviation
_MAX_FILL_MINUTES = 120  # quiet minutes folded into the baseline at most, after a long pause


class Call(NamedTuple):
    """The fields of a model or tool call the agent detectors read (JSON-able as a list)."""

    kind: str  # "ToolCall" | "ModelCall"
    tenant: str
    agent_id: str
    agent_version: str
    event_id: str
    trace_id: str
    credential_fingerprint: str | None
    run_id: str
    tool_name: str | None
    end: float  # epoch seconds of ts_end
    error: bool
    cost_nanos: int | None  # model calls with a cost


def _occ(event: Call, kind: str, key: str, severity: str, **kw: Any) -> Occurrence:
    return Occurrence(
        kind=kind,
        key=f"{kind}|{event.tenant}|{event.agent_id}|{key}",
        severity=severity,
        scope=f"agent:{event.agent_id}",
        tenant=event.tenant,
        agent_id=event.agent_id,
        agent_version=event.agent_version,
        event_id=event.event_id,
        trace_id=event.trace_id,
        credential_fingerprint=event.credential_fingerprint,
        **kw,
    )


class AgentDetectors:
    def __init__(self, policy: DetectorsPolicy) -> None:
        self.policy = policy
        te = policy.tool_error_rate
        self._bucket_s = max(1.0, te.window_s / 30.0)

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"te": {}, "cs": {"min": None, "spend": 0, "ewma": None, "ewmad": 0.0, "n": 0}}

    def call(self, event: Any) -> Call | None:
        """What the detectors need of ``event``; None when no enabled detector reads it."""
        kind = type(event).__name__
        p = self.policy
        if kind == "ToolCall":
            if not (p.tool_error_rate.enabled or p.unauthenticated_tool.enabled):
                return None
            tool, cost = event.tool_name, None
        elif kind == "ModelCall" and p.cost_spike.enabled and event.cost_usd is not None:
            tool, cost = None, to_nanos(event.cost_usd)
        else:
            return None
        return Call(
            kind,
            event.tenant,
            event.agent_id,
            event.agent_version,
            event.event_id,
            event.trace_id,
            event.credential_fingerprint,
            event.run_id,
            tool,
            epoch(event.ts_end),
            _val(event.status) in ERROR_STATUSES,
            cost,
        )

    def on_event(self, state: dict[str, Any], event: Any) -> list[Occurrence]:
        call = self.call(event)
        return [] if call is None else self.on_call(state, call)

    def on_call(self, state: dict[str, Any], call: Call) -> list[Occurrence]:
        out: list[Occurrence] = []
        p = self.policy
        if call.kind == "ToolCall":
            if p.tool_error_rate.enabled:
                out.extend(self._error_rate(state, call))
            if p.unauthenticated_tool.enabled and call.credential_fingerprint is None:
                out.append(
                    _occ(
                        call,
                        "unauthenticated_tool",
                        "",
                        p.unauthenticated_tool.severity,
                        tool_name=call.tool_name,
                        run_id=call.run_id,
                        observed=1.0,
                        threshold=0.0,
                        summary=f"{call.agent_id} called tool {call.tool_name} with no credential (run {call.run_id})",
                    )
                )
        elif call.kind == "ModelCall" and p.cost_spike.enabled and call.cost_nanos is not None:
            out.extend(self._cost(state, call))
        return out

    # -- tool error rate ---------------------------------------------------------------------
    def _error_rate(self, state: dict[str, Any], event: Call) -> list[Occurrence]:
        p = self.policy.tool_error_rate
        end = event.end
        tool = event.tool_name or ""  # (a ToolCall always has one)
        buckets: dict[str, list[int]] = state["te"].setdefault(tool, {})
        b_start = end - (end % self._bucket_s)
        b = buckets.setdefault(repr(b_start), [0, 0])
        b[0] += 1
        if event.error:
            b[1] += 1
        horizon = end - p.window_s
        for k in [k for k in buckets if float(k) + self._bucket_s <= horizon]:
            del buckets[k]
        calls = sum(v[0] for v in buckets.values())
        errors = sum(v[1] for v in buckets.values())
        if calls < p.min_calls or errors / calls <= p.threshold:
            return []
        rate = errors / calls
        return [
            _occ(
                event,
                "tool_error_rate",
                tool,
                p.severity,
                tool_name=event.tool_name,
                observed=rate,
                threshold=p.threshold,
                window_start=end - p.window_s,
                window_end=end,
                summary=f"{event.agent_id}: tool {event.tool_name} failed {errors} of {calls} calls "
                f"({rate:.0%}) in {p.window_s:g}s (limit {p.threshold:.0%}, min {p.min_calls} calls)",
            )
        ]

    # -- cost spike ----------------------------------------------------------------------------
    def _cost(self, state: dict[str, Any], event: Call) -> list[Occurrence]:
        p = self.policy.cost_spike
        cs = state["cs"]
        end = event.end
        bucket = p.bucket_s
        minute = end - (end % bucket)
        if cs["min"] is None:
            cs["min"] = minute
        elif minute > cs["min"]:
            closed = round((minute - cs["min"]) / bucket)
            self._fold(cs, cs["spend"] / NANOS_PER_USD)
            for _ in range(min(closed - 1, _MAX_FILL_MINUTES)):
                self._fold(cs, 0.0)
            cs["min"], cs["spend"] = minute, 0
        cs["spend"] += event.cost_nanos or 0  # a late call counts in the current minute
        if cs["n"] < p.warmup_minutes or cs["ewma"] is None:
            return []
        spend = cs["spend"] / NANOS_PER_USD
        scale = max(MAD_SCALE * cs["ewmad"], p.mad_floor_usd)
        excess = spend - cs["ewma"]
        z = excess / scale
        if z <= p.z_threshold or excess < p.min_usd:
            return []
        trigger = cs["ewma"] + max(p.z_threshold * scale, p.min_usd)
        return [
            _occ(
                event,
                "cost_spike",
                "",
                p.severity,
                run_id=event.run_id,
                observed=spend,
                threshold=trigger,
                window_start=cs["min"],
                window_end=cs["min"] + bucket,
                summary=f"{event.agent_id} spent ${spend:.2f} in {bucket:g}s against a baseline of "
                f"${cs['ewma']:.2f} (robust z {z:.1f} > {p.z_threshold:g})",
            )
        ]

    def _fold(self, cs: dict[str, Any], x: float) -> None:
        a = self.policy.cost_spike.alpha
        if cs["ewma"] is None:
            cs["ewma"], cs["ewmad"] = x, 0.0
        else:
            cs["ewmad"] = (1 - a) * cs["ewmad"] + a * abs(x - cs["ewma"])
            cs["ewma"] = (1 - a) * cs["ewma"] + a * x
        cs["n"] += 1

    # -- latency SLO (judged on closed windows) ---------------------------------------------------
    def on_window(self, stats: Any, slowest: tuple[str, str] | None) -> list[Occurrence]:
        p = self.policy.latency_slo
        if not p.enabled or stats.count < p.min_count:
            return []
        slo = p.slo_for(stats.agent_id, stats.kind, stats.name)
        if slo is None or stats.p95_ms <= slo.p95_ms:
            return []
        event_id, trace_id = slowest or (f"window:{stats.window_start.isoformat()}", None)
        return [
            Occurrence(
                kind="latency_slo",
                key=f"latency_slo|{stats.tenant}|{stats.agent_id}|{stats.kind}|{stats.name}",
                severity=p.severity,
                scope=f"agent:{stats.agent_id}",
                tenant=stats.tenant,
                agent_id=stats.agent_id,
                agent_version=stats.agent_version,
                tool_name=stats.name if stats.kind == "tool" else None,
                event_id=event_id,
                trace_id=trace_id,
                evidence=slowest is not None,
                observed=stats.p95_ms,
                threshold=slo.p95_ms,
                window_start=stats.window_start.timestamp(),
                window_end=stats.window_end.timestamp(),
                summary=f"{stats.agent_id}: p95 of {stats.kind} {stats.name} was {stats.p95_ms:.0f} ms over "
                f"{stats.count} calls (SLO {slo.p95_ms:g} ms)",
            )
        ]
