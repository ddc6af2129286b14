"""How a named query is declared and bound; the SQL fragments the queries share.

Values are always ClickHouse server-side parameters (``{name:Type}``). The only text chosen at
run time is (a) the rollup grain a time series reads and (b) a *choice*: a whitelisted SQL text
picked by name (a split column), never a value. Fragments (``$NAME``) are expanded when a query
is declared, so the stored text is the text that runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tripwire.sinks.exceptions import QueryError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
START = "{start:DateTime64(6, 'UTC')}"
END = "{end:DateTime64(6, 'UTC')}"
# '' means "every tenant / agent / workflow" for each filter.
DIMS = "({tenant:String} = '' OR tenant = {tenant:String}) AND ({agent_id:String} = '' OR agent_id = {agent_id:String})"
WORKFLOW = "({workflow:String} = '' OR workflow = {workflow:String})"
# A run's time is when it started or, for a run whose RunStarted never arrived (lost, or still in
# the disk spool of a crashed agent), when its summary was emitted: such runs are still runs, with
# a cost and an outcome, and must be counted. (The dashboard used to filter on started_at alone
# and silently dropped them; the analyst queries used this expression.)
RUN_TIME = "coalesce(started_at, emitted_at)"
RUN_WINDOW = f"{RUN_TIME} >= {START} AND {RUN_TIME} < {END} AND {DIMS} AND {WORKFLOW}"
CALL_WINDOW = f"ts_start >= {START} AND ts_start < {END} AND {DIMS} AND {WORKFLOW}"

FRAGMENTS = {
    "$RUN_WINDOW": RUN_WINDOW,
    "$RUN_TIME": RUN_TIME,
    "$CALL_WINDOW": CALL_WINDOW,
    "$DIMS": DIMS,
    "$START": START,
    "$END": END,
}

# -- rollup grains ---------------------------------------------------------------------------------
# Time series read a rollup source: ``@MODEL_SRC@`` / ``@TOOL_SRC@`` (a subquery already filtered
# by tenant, agent and [start, end), with a ``ts`` column). The minute source reads ``*_1m``; the
# hour source reads the whole hours inside the window from ``*_1h`` and the partial hours at both
# ends from ``*_1m``, so both give the same sums (the per-minute answer) while a day merges 24
# hourly t-digests per series instead of 1,440.
HOURLY_WINDOW = timedelta(hours=6)
_H0 = f"toStartOfHour(addMicroseconds({START}, 3599999999))"  # the first whole hour at or after start
_H1 = f"toStartOfHour({END})"  # the hour in progress at end
_MINUTES = f"minute >= toStartOfMinute({START}) AND minute < {END}"
_COLUMNS = {
    "model": "tenant, agent_id, agent_version, model, calls, errors, cost_usd, input_tokens, output_tokens, latency_ms",
    "tool": "tenant, agent_id, agent_version, tool_name, calls, errors, blocked, latency_ms",
}


def _sources(kind: str) -> dict[str, str]:
    cols, table = _COLUMNS[kind], f"{kind}_calls"
    minute = f"SELECT {cols}, minute AS ts FROM {table}_1m WHERE {DIMS} AND {_MINUTES}"
    hour = (
        f"SELECT {cols}, hour AS ts FROM {table}_1h WHERE {DIMS} AND hour >= {_H0} AND hour < {_H1}\n"
        f"    UNION ALL\n"
        f"    SELECT {cols}, minute AS ts FROM {table}_1m WHERE {DIMS} AND {_MINUTES}"
        f" AND NOT (minute >= {_H0} AND minute < {_H1})"
    )
    return {"minute": f"({minute})", "hour": f"(\n    {hour}\n)"}


_GRAINS = {
    grain: {"@MODEL_SRC@": _sources("model")[grain], "@TOOL_SRC@": _sources("tool")[grain]}
    for grain in ("minute", "hour")
}
# Buckets shorter than a minute (a fresh demo's first minutes) cannot come from the minute rollup:
# the "second" grain aggregates the raw calls per second with the rollups' own expressions.
_RAW_WINDOW = f"{DIMS} AND ts_start >= {START} AND ts_start < {END}"
_GRAINS["second"] = {
    "@MODEL_SRC@": (
        "(SELECT tenant, agent_id, agent_version, request_model AS model, toUInt64(count()) AS calls, "
        "toUInt64(countIf(status != 'ok')) AS errors, sum(ifNull(cost_usd, 0)) AS cost_usd, "
        "toUInt64(sum(input_tokens)) AS input_tokens, toUInt64(sum(output_tokens)) AS output_tokens, "
        "quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS latency_ms, toStartOfSecond(ts_start) AS ts "
        f"FROM model_calls WHERE {_RAW_WINDOW} GROUP BY tenant, agent_id, agent_version, model, ts)"
    ),
    "@TOOL_SRC@": (
        "(SELECT tenant, agent_id, agent_version, tool_name, toUInt64(count()) AS calls, "
        "toUInt64(countIf(status IN ('error', 'timeout'))) AS errors, "
        "toUInt64(countIf(status IN ('blocked', 'denied'))) AS blocked, "
        "quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS latency_ms, toStartOfSecond(ts_start) AS ts "
        f"FROM tool_calls WHERE {_RAW_WINDOW} GROUP BY tenant, agent_id, agent_version, tool_name, ts)"
    ),
}


def grain(params: Mapping[str, Any]) -> str:
    """The rollup grain a time series reads: "second" (raw calls) for buckets that are not whole minutes,
    "hour" for whole-hour buckets or windows of 6 hours or more (both rollup grains give the same sums;
    the hourly one is faster), else "minute"."""
    bucket = params.get("bucket_s")
    if bucket is not None and int(bucket) % 60:
        return "second"  # sub-minute buckets: the raw calls (only chosen for short spans of data)
    if bucket is not None and int(bucket) % 3600:
        return "minute"  # an hour's row cannot be split into smaller buckets
    if bucket is not None:
        return "hour"
    start, end = params.get("start"), params.get("end")
    if isinstance(start, datetime) and isinstance(end, datetime) and end - start >= HOURLY_WINDOW:
        return "hour"
    return "minute"


# -- named queries -----------------------------------------------------------------------------------
EXACT = "exact (write-once rows or rollup sums)"
FINAL = "exact: FINAL keeps the highest version of each run summary"
TDIGEST = "approximate quantiles (t-digest); counts and sums exact"
# Filters that default to '' (all) when a caller leaves them out.
FILTER_DEFAULTS: dict[str, Any] = {"agent_id": "", "workflow": ""}


@dataclass(frozen=True, slots=True)
class NamedQuery:
    """A query of the catalog: its parameters (``params``, with ``defaults`` for the optional
    ones) and its choices (name -> {value: SQL text}; the first value is the default)."""

    name: str
    description: str
    sql: str
    params: tuple[str, ...]
    exactness: str = EXACT
    defaults: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def expand(sql: str) -> str:
    for token in sorted(FRAGMENTS, key=len, reverse=True):
        sql = sql.replace(token, FRAGMENTS[token])
    return sql.strip()


def query(
    name: str,
    description: str,
    sql: str,
    *params: str,
    exactness: str = EXACT,
    defaults: Mapping[str, Any] | None = None,
    choices: Mapping[str, Mapping[str, str]] | None = None,
    required: tuple[str, ...] = (),
) -> NamedQuery:
    implied = {k: v for k, v in FILTER_DEFAULTS.items() if k in params and k not in required}
    return NamedQuery(name, description, expand(sql), params, exactness, {**implied, **(defaults or {})},
                      dict(choices or {}))


def catalog(*groups: tuple[NamedQuery, ...]) -> dict[str, NamedQuery]:
    out: dict[str, NamedQuery] = {}
    for group in groups:
        for q in group:
            if q.name in out:
                raise ValueError(f"query {q.name!r} is declared twice")
            out[q.name] = q
    return out


def bind_query(queries: Mapping[str, NamedQuery], name: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The SQL of ``queries[name]`` with its choices and grain filled in, and its parameter values
    (defaults added, choices removed)."""
    try:
        q = queries[name]
    except KeyError:
        raise KeyError(f"unknown query {name!r}; known: {sorted(queries)}") from None
    values = {**q.defaults, **{k: v for k, v in params.items() if k not in q.choices}}
    missing = [p for p in q.params if p not in values]
    extra = [p for p in values if p not in q.params]
    if missing or extra:
        raise QueryError(
            f"query {name!r} takes {list(q.params)} (choices {list(q.choices)}); missing {missing}, unexpected {extra}"
        )
    sql = q.sql
    for choice, options in q.choices.items():
        picked = params.get(choice, next(iter(options)))
        if picked not in options:
            raise QueryError(f"unknown {choice} {picked!r}; expected one of {sorted(options)}")
        sql = sql.replace(f"@{choice.upper()}@", options[picked])
    if "@" in sql:
        for token, text in _GRAINS[grain(values)].items():
            sql = sql.replace(token, text)
    return sql, values

