"""Partials: what one key of the agents or credentials stage gets from the runs stage, pre-aggregated.

An event passes faust's per-message path once, on the events topic. Where it is first read, the
runs stage folds what the per-agent and per-credential views need into one partial per key
(between two commits) and forwards that partial instead of the event:

- :class:`AgentPartial` (key ``tenant|agent_id``): the latency windows' aggregates (count, errors,
  cost, min/max/sum and DDSketch bins per window key; they add up, see
  :meth:`LatencyWindows.merge`) and the detectors' :class:`Call` records, in the order the calls
  were read (the tool error rate and cost spike detectors judge each call, so their alerts, counts
  and evidence are those of the calls one by one);
- :class:`CredentialPartial` (key: fingerprint): the first use of the credential by each agent.

A partial is JSON behind a magic (``b"TWP\\x01"``); one too large for a record is split in order
(:func:`encode_partial`), each piece a partial that merges on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tripwire.processors.detect_agent import Call
from tripwire.processors.detect_credential import CredentialUse

MAGIC = b"TWP\x01"
MAX_RECORD_BYTES = 256 * 1024  # a forwarded record, well under the broker's 1 MB default


class PartialError(ValueError):
    """A forwarded record that is not a well-formed partial."""


@dataclass
class AgentPartial:
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)  # window key -> aggregate
    calls: list[Call] = field(default_factory=list)
    events: int = 0  # events folded in (the stage's "ok" count)

    def __bool__(self) -> bool:
        return bool(self.windows or self.calls)


@dataclass
class CredentialPartial:
    uses: dict[str, CredentialUse] = field(default_factory=dict)  # "tenant/agent_id" -> first use
    events: int = 0  # events folded in (the stage's "ok" count)

    def __bool__(self) -> bool:
        return bool(self.uses)


Partial = AgentPartial | CredentialPartial


def _dump(p: Partial) -> bytes:
    if isinstance(p, AgentPartial):
        body: dict[str, Any] = {"n": p.events, "w": p.windows, "c": p.calls}
    else:
        body = {"n": p.events, "u": list(p.uses.values())}
    return MAGIC + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def encode_partial(p: Partial, limit: int = MAX_RECORD_BYTES) -> list[bytes]:
    """``p`` as records of at most ``limit`` bytes where it can be split (one window aggregate or
    one call is never split); the pieces keep the order of the calls and uses (the first counts
    the events)."""
    data = _dump(p)
    if len(data) <= limit:
        return [data]
    if isinstance(p, AgentPartial):
        items: list[tuple[str, Any]] = [("w", kv) for kv in p.windows.items()] + [("c", c) for c in p.calls]
        if len(items) < 2:
            return [data]
        half = len(items) // 2
        parts: list[Partial] = []
        for chunk in (items[:half], items[half:]):
            windows = dict(x for t, x in chunk if t == "w")
            parts.append(AgentPartial(windows, [x for t, x in chunk if t == "c"], 0 if parts else p.events))
    else:
        uses = list(p.uses.items())
        if len(uses) < 2:
            return [data]
        half = len(uses) // 2
        parts = [CredentialPartial(dict(uses[:half]), p.events), CredentialPartial(dict(uses[half:]))]
    return [r for part in parts for r in encode_partial(part, limit)]


def is_partial(value: bytes | None) -> bool:
    return value is not None and value.startswith(MAGIC)


def decode_partial(value: bytes) -> Partial:
    """The partial of a forwarded record; :class:`PartialError` if it is not one."""
    if not value.startswith(MAGIC):
        raise PartialError("not a partial (no magic)")
    try:
        body = json.loads(value[len(MAGIC) :])
        if "u" in body:
            uses = [CredentialUse(*u) for u in body["u"]]
            return CredentialPartial({f"{u.tenant}/{u.agent_id}": u for u in uses}, int(body["n"]))
        windows = body["w"]
        if not isinstance(windows, dict) or not all(isinstance(a, dict) for a in windows.values()):
            raise PartialError("malformed window aggregates")
        return AgentPartial(windows, [Call(*c) for c in body["c"]], int(body["n"]))
    except (ValueError, TypeError, KeyError) as e:
        raise PartialError(f"malformed partial: {e}") from e
