"""Detectors judged per agent (state keyed by tenant + agent_id, next to the latency windows).

- tool_error_rate: errors / calls of one tool over a sliding event-time window, above the
  threshold with at least ``min_calls`` calls (the seed's ``tool_error_rate > 0.10``);
- latency_slo: a closed latency window whose p95 is above the SLO configured for the agent and
  operation (kind + name);
- cost_spike: the agent's spend in the current minute against an EWMA baseline of past minutes,
  using a robust z-score (EW mean absolute deviation x 1.4826) and a minimum dollar excess;
- unauthenticated_tool: a tool call with no credential fingerprint.
"""

from __future__ import annotations

from typing import Any

from tripwire.processors._pricing import NANOS_PER_USD, to_nanos
from tripwire.processors._time import epoch
from tripwire.processors.incidents import Occurrence
from tripwire.processors.policy import DetectorsPolicy
from tripwire.processors.run_aggregator import ERROR_STATUSES, _val

MAD_SCALE = 1.4826  # makes a mean absolute deviation comparable to a standard deviation
_MAX_FILL_MINUTES = 120  # quiet minutes folded into the baseline at most, after a long pause


def _occ(event: Any, kind: str, key: str, severity: str, **kw: Any) -> Occurrence:
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

    def on_event(self, state: dict[str, Any], event: Any) -> list[Occurrence]:
        kind = type(event).__name__
        out: list[Occurrence] = []
        p = self.policy
        if kind == "ToolCall":
            if p.tool_error_rate.enabled:
                out.extend(self._error_rate(state, event))
            if p.unauthenticated_tool.enabled and event.credential_fingerprint is None:
                out.append(
                    _occ(
                        event,
                        "unauthenticated_tool",
                        "",
                        p.unauthenticated_tool.severity,
                        tool_name=event.tool_name,
                        run_id=event.run_id,
                        observed=1.0,
                        threshold=0.0,
                        summary=f"{event.agent_id} called tool {event.tool_name} with no credential "
                        f"(run {event.run_id})",
                    )
                )
        elif kind == "ModelCall" and p.cost_spike.enabled and event.cost_usd is not None:
            out.extend(self._cost(state, event))
        return out

    # -- tool error rate ---------------------------------------------------------------------
    def _error_rate(self, state: dict[str, Any], event: Any) -> list[Occurrence]:
        p = self.policy.tool_error_rate
        end = epoch(event.ts_end)
        buckets: dict[str, list[int]] = state["te"].setdefault(event.tool_name, {})
        b_start = end - (end % self._bucket_s)
        b = buckets.setdefault(repr(b_start), [0, 0])
        b[0] += 1
        if _val(event.status) in ERROR_STATUSES:
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
                event.tool_name,
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
    def _cost(self, state: dict[str, Any], event: Any) -> list[Occurrence]:
        p = self.policy.cost_spike
        cs = state["cs"]
        end = epoch(event.ts_end)
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
        cs["spend"] += to_nanos(event.cost_usd)  # a late call counts in the current minute
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
