"""Event limits: the one validation beyond the Avro types and the model constraints (issue 20).

An event can be schema-valid and still absurd: a cost of 1e308 per call (a tenant's sum becomes
1e308, then inf), ``seq`` = 2**62, a 10,000-deep argument nesting, a megabyte of run id, a date in
1970 or 9999 (stored, then silently removed by the raw tables' TTL). :func:`check_event` says what is
wrong with an event (a reason) or nothing, and every component that takes events applies it the same
way with the same :class:`EventLimits`: the processors where they decode the events topic, and the
sink where it stores it. An event it rejects goes to the DLQ (stage ``validate``, error type
``LimitExceeded``) everywhere, so raw tables and summaries always agree.

The rules (each ceiling is a setting, env ``TRIPWIRE_LIMITS_<FIELD>``):

- identifiers (tenant, agent, run, model, tool and other names and ids): at most ``max_id_chars``
  characters, no control characters;
- free text (prompt, completion, tool args, reasons): at most ``max_text_chars`` characters; tool
  ``args`` nest at most ``max_nesting`` brackets deep (counted outside JSON strings);
- per call: each token count at most ``max_tokens_per_call``, ``cost_usd`` at most
  ``max_cost_per_call_usd`` (finite and non-negative already by the model), duration
  (``ts_end - ts_start``) at most ``max_call_duration_s``;
- per run: ``seq`` and ``last_seq`` at most ``max_seq`` (so a run has at most that many calls, and its
  totals at most ``max_seq`` times the per-call ceilings); a RunStarted's budgets at most
  ``max_cost_per_run_usd`` / ``max_tokens_per_run`` / ``max_seq`` (steps and tool calls);
- time: ``ts_start`` and ``ts_end`` within [receipt - ``max_age_days``, receipt + ``max_ahead_s``],
  where receipt is the Kafka record's timestamp (the same for every consumer and on every replay,
  so the verdict is deterministic). Keep ``max_age_days`` at or below the sink's call TTL
  (``TRIPWIRE_SINK_CALL_TTL_DAYS``), or events older than the TTL are stored and then dropped by it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_IDS = (
    "tenant",
    "agent_id",
    "agent_version",
    "workflow",
    "environment",
    "principal",
    "credential_fingerprint",
    "run_id",
    "conversation_id",
    "parent_run_id",
    "operation_name",
    "provider",
    "request_model",
    "response_model",
    "price_version",
    "finish_reason",
    "error_type",
    "tool_name",
    "tool_call_id",
    "idempotency_key",
    "approval_ref",
    "approver",
)
_TEXTS = ("prompt", "completion", "args", "reason", "blocked_reason")
_TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
CONTROL_CHARS = _CONTROL.pattern
"""The control characters an identifier may not contain (a regex character class)."""
ID_FIELDS, TEXT_FIELDS, TOKEN_FIELDS = _IDS, _TEXTS, _TOKENS
"""The fields each rule of :func:`check_event` reads, as data (the sink's SQL form of the rules is built from them)."""


class EventLimits(BaseSettings):
    """Ceilings of :func:`check_event`; env ``TRIPWIRE_LIMITS_<FIELD>``. The processors and the sink
    must run with the same values (they read the same variables)."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_LIMITS_", frozen=True, extra="ignore")

    max_id_chars: int = Field(256, ge=1, le=1_000_000)
    """Longest identifier or name (tenant, agent_id, run_id, model, tool, ...), in characters."""
    max_text_chars: int = Field(262_144, ge=1, le=100_000_000)
    """Longest free-text field (prompt, completion, tool args, reasons), in characters."""
    max_nesting: int = Field(64, ge=1, le=100_000)
    """Deepest bracket nesting of a tool call's ``args``."""
    max_tokens_per_call: int = Field(10_000_000, ge=0)
    """Most tokens of one kind in one model call."""
    max_cost_per_call_usd: float = Field(1_000.0, ge=0, allow_inf_nan=False)
    """Highest cost of one model call, USD."""
    max_call_duration_s: float = Field(86_400.0, ge=0, allow_inf_nan=False)
    """Longest duration of one event (``ts_end - ts_start``), seconds."""
    max_seq: int = Field(1_000_000, ge=0)
    """Highest ``seq`` / ``last_seq``: the most events of one run (also the ceiling of step budgets)."""
    max_cost_per_run_usd: float = Field(1_000_000.0, ge=0, allow_inf_nan=False)
    """Highest cost budget a RunStarted may declare, USD."""
    max_tokens_per_run: int = Field(10_000_000_000, ge=0)
    """Highest token budget a RunStarted may declare."""
    max_age_days: float = Field(180.0, gt=0, allow_inf_nan=False)
    """How far before its receipt an event may be dated (keep it <= the sink's call TTL)."""
    max_ahead_s: float = Field(3_600.0, ge=0, allow_inf_nan=False)
    """How far after its receipt an event may be dated (clock skew), seconds."""


_DEFAULT: EventLimits | None = None


def default_limits() -> EventLimits:
    """The limits from the environment, read once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = EventLimits()
    return _DEFAULT


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of ``text``, brackets inside JSON strings not counted."""
    if "[" not in text and "{" not in text:
        return 0
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in "]}":
            depth -= 1
    return deepest


_SEQS = ("seq", "last_seq", "max_steps", "max_tool_calls")
_RUN_TOKENS = ("max_prompt_tokens", "max_completion_tokens")
_GROUPS = (_IDS, _TEXTS, _SEQS, _TOKENS, _RUN_TOKENS)
_PLANS: dict[type, tuple[tuple[str, ...], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, ...], ...]:
    """The names of each group that a model of ``cls`` has (every name for a class without
    pydantic's ``model_fields``): a model's ``__dict__`` holds exactly its fields, so the others are
    never there to check."""
    fields = getattr(cls, "model_fields", None)
    plan = _GROUPS if not fields else tuple(tuple(n for n in group if n in fields) for group in _GROUPS)
    _PLANS[cls] = plan
    return plan


def check_event(event: Any, received_at: float, limits: EventLimits | None = None) -> str | None:
    """What is wrong with ``event`` (a decoded event model) received at ``received_at`` (epoch seconds,
    the Kafka record timestamp), or None when it is within every limit."""
    lim = limits or default_limits()
    get = event.__dict__.get
    id_names, text_names, seq_names, token_names, run_token_names = _PLANS.get(type(event)) or _plan(type(event))
    ids = []
    max_id = lim.max_id_chars
    for name in id_names:
        v = get(name)
        if v is None:
            continue
        if type(v) is not str:
            v = getattr(v, "value", v)  # an enum
        if len(v) > max_id:
            return f"{name} is {len(v)} characters, over the limit of {max_id}"
        ids.append(v)
    joined = "".join(ids)  # one scan of them all (a control character is never printable); which one,
    if not joined.isprintable() and _CONTROL.search(joined):  # only when there is one
        bad = next(n for n in _IDS if isinstance(get(n), str) and _CONTROL.search(get(n)))
        return f"{bad} contains a control character"
    for name in text_names:
        v = get(name)
        if v is not None and len(v) > lim.max_text_chars:
            return f"{name} is {len(v)} characters, over the limit of {lim.max_text_chars}"
    args = get("args")
    if args is not None and args.count("[") + args.count("{") > lim.max_nesting:
        depth = nesting_depth(args)
        if depth > lim.max_nesting:
            return f"args nest {depth} deep, over the limit of {lim.max_nesting}"
    for name in seq_names:
        v = get(name)
        if v is not None and v > lim.max_seq:
            return f"{name} {v} is over the limit of {lim.max_seq}"
    for name in token_names:
        v = get(name)
        if v is not None and v > lim.max_tokens_per_call:
            return f"{name} {v} is over the per-call limit of {lim.max_tokens_per_call}"
    cost = get("cost_usd")
    if cost is not None and not (0.0 <= cost <= lim.max_cost_per_call_usd):  # NaN fails too
        return f"cost_usd {cost!r} is over the per-call limit of {lim.max_cost_per_call_usd}"
    budget = get("max_cost_usd")
    if budget is not None and not (0.0 <= budget <= lim.max_cost_per_run_usd):
        return f"max_cost_usd {budget!r} is over the per-run limit of {lim.max_cost_per_run_usd}"
    for name in run_token_names:
        v = get(name)
        if v is not None and v > lim.max_tokens_per_run:
            return f"{name} {v} is over the per-run limit of {lim.max_tokens_per_run}"
    start, end = get("ts_start"), get("ts_end")
    if isinstance(start, datetime) and isinstance(end, datetime):
        lo, hi = received_at - lim.max_age_days * 86_400.0, received_at + lim.max_ahead_s
        for name, ts in (("ts_start", start), ("ts_end", end)):
            t = ts.timestamp()
            if not lo <= t <= hi:
                at = datetime.fromtimestamp(received_at, UTC).isoformat()
                return (
                    f"{name} {ts.isoformat()} is outside the accepted window of {lim.max_age_days:g} days before "
                    f"to {lim.max_ahead_s:g} s after its receipt ({at})"
                )
        duration = (end - start).total_seconds()
        if not math.isfinite(duration) or duration > lim.max_call_duration_s:
            return f"duration {duration:g} s is over the limit of {lim.max_call_duration_s:g} s"
    return None
