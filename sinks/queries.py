"""Named, parameterized queries for the dashboard and for analysts.

Every value is a ClickHouse server-side parameter (``{name:Type}``); the same SQL runs on chdb
and on a server. Time series read the rollups, not raw rows: per minute (``model_calls_1m``,
``tool_calls_1m``), or per hour (``*_1h``) for buckets of whole hours and windows of 6 hours or
more; a window is aligned down to the grain it reads. Exactness of the ReplacingMergeTree tables is stated per
query: ``run_summaries`` and ``window_stats`` are read with ``FINAL`` (one row per key,
highest version), the alert history with ``argMax(..., updated_at)``.

Common parameters: ``tenant`` (String), ``agent_id`` (String, '' = every agent),
``start``/``end`` (DateTime64 UTC, half-open [start, end)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tripwire.sinks.store import QueryResult, Store

if TYPE_CHECKING:
    import pandas as pd

_AGENT = "({agent_id:String} = '' OR agent_id = {agent_id:String})"
# Rollup queries are written against the grain placeholders below; ``bind`` picks the per-minute
# or the hourly rollup (buckets of whole hours, or windows of HOURLY_WINDOW or more).
_RANGE_MIN = "@TS@ >= @TRUNC@({start:DateTime64(6, 'UTC')}) AND @TS@ < {end:DateTime64(6, 'UTC')}"
_RUN_TIME = "coalesce(started_at, emitted_at)"
_RUNS_RANGE = f"{_RUN_TIME} >= {{start:DateTime64(6, 'UTC')}} AND {_RUN_TIME} < {{end:DateTime64(6, 'UTC')}}"
_BUCKET = "toStartOfInterval(@TS@, toIntervalSecond({bucket_s:UInt32}))"
HOURLY_WINDOW = timedelta(hours=6)
_GRAINS = {
    "minute": {
        "@MODEL_ROLLUP@": "model_calls_1m",
        "@TOOL_ROLLUP@": "tool_calls_1m",
        "@TS@": "minute",
        "@TRUNC@": "toStartOfMinute",
    },
    "hour": {
        "@MODEL_ROLLUP@": "model_calls_1h",
        "@TOOL_ROLLUP@": "tool_calls_1h",
        "@TS@": "hour",
        "@TRUNC@": "toStartOfHour",
    },
}


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    description: str
    sql: str
    params: tuple[str, ...]
    exactness: str = ""


_EXACT = "exact (write-once rows or rollup sums)"


def _q(name: str, description: str, sql: str, *params: str, exactness: str | None = None) -> NamedQuery:
    return NamedQuery(name, description, sql.strip(), params, exactness or _EXACT)


_WINDOW = ("tenant", "agent_id", "start", "end")

QUERIES: dict[str, NamedQuery] = {
    q.name: q
    for q in (
        # ---------------------------------------------------------------- dashboard time series
        _q(
            "cost_timeseries",
            "Model cost, calls and tokens per time bucket and model (rollup).",
            f"""
SELECT {_BUCKET} AS bucket, model, sum(calls) AS calls, sum(errors) AS errors, sum(cost_usd) AS cost_usd,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
FROM @MODEL_ROLLUP@
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RANGE_MIN}
GROUP BY bucket, model ORDER BY bucket, model
""",
            *_WINDOW,
            "bucket_s",
        ),
        _q(
            "latency_timeseries",
            "Model-call latency p50/p95/p99 (ms) per time bucket and model, merged t-digests (rollup).",
            f"""
SELECT {_BUCKET} AS bucket, model,
       quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms) AS q,
       q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, sum(calls) AS calls
FROM @MODEL_ROLLUP@
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RANGE_MIN}
GROUP BY bucket, model ORDER BY bucket, model
""",
            *_WINDOW,
            "bucket_s",
            exactness="approximate quantiles (t-digest); counts exact",
        ),
        _q(
            "tool_timeseries",
            "Tool calls, errors, blocked calls and p95 latency per time bucket and tool (rollup).",
            f"""
SELECT {_BUCKET} AS bucket, tool_name, sum(calls) AS calls, sum(errors) AS errors, sum(blocked) AS blocked,
       quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms)[2] AS p95_ms
FROM @TOOL_ROLLUP@
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RANGE_MIN}
GROUP BY bucket, tool_name ORDER BY bucket, tool_name
""",
            *_WINDOW,
            "bucket_s",
            exactness="approximate quantiles (t-digest); counts exact",
        ),
        _q(
            "version_latency",
            "Model-call p50/p95/p99 (ms), error rate and cost per agent version and model over the range (rollup).",
            f"""
SELECT agent_id, agent_version, model, sum(calls) AS calls, sum(errors) AS errors, errors / calls AS error_rate,
       sum(cost_usd) AS cost_usd, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms) AS q,
       q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms
FROM @MODEL_ROLLUP@
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RANGE_MIN}
GROUP BY agent_id, agent_version, model ORDER BY agent_id, agent_version, model
""",
            *_WINDOW,
            exactness="approximate quantiles (t-digest); counts exact",
        ),
        # ---------------------------------------------------------------- runs
        _q(
            "agent_overview",
            "Runs, success rate, cost and p95 run duration per agent and version (run_summaries FINAL).",
            f"""
SELECT agent_id, agent_version, count() AS runs, countIf(outcome = 'success') AS succeeded,
       succeeded / runs AS success_rate, sum(cost_usd) AS cost_usd, quantileExact(0.95)(duration_ms) AS p95_duration_ms,
       countIf(blocked_calls > 0 OR denials > 0) / runs AS violation_rate
FROM run_summaries FINAL
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RUNS_RANGE}
GROUP BY agent_id, agent_version ORDER BY agent_id, agent_version
""",
            *_WINDOW,
            exactness="exact: FINAL keeps the highest version of each run summary",
        ),
        _q(
            "recent_runs",
            "The latest runs with their outcome and cost (run_summaries FINAL).",
            f"""
SELECT run_id, agent_id, agent_version, workflow, principal, outcome, {_RUN_TIME} AS started,
       duration_ms, cost_usd, model_calls, tool_calls, errors, blocked_calls, trace_id
FROM run_summaries FINAL
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RUNS_RANGE}
ORDER BY started DESC LIMIT {{limit:UInt32}}
""",
            *_WINDOW,
            "limit",
            exactness="exact: FINAL keeps the highest version of each run summary",
        ),
        _q(
            "run_trace",
            "Every stored event of one run, in seq order (model calls, tool calls, lifecycle, approvals).",
            """
SELECT seq, kind, name, status, ts_start, ts_end, duration_ms, cost_usd, span_id, parent_span_id, event_id
FROM (
    SELECT seq, 'model_call' AS kind, toString(request_model) AS name, toString(status) AS status, ts_start, ts_end,
           duration_ms, cost_usd, span_id, parent_span_id, event_id
    FROM model_calls WHERE tenant = {tenant:String} AND run_id = {run_id:String}
    UNION ALL
    SELECT seq, 'tool_call', toString(tool_name), toString(status), ts_start, ts_end, duration_ms, NULL,
           span_id, parent_span_id, event_id
    FROM tool_calls WHERE tenant = {tenant:String} AND run_id = {run_id:String}
    UNION ALL
    SELECT seq, toString(event_type), ifNull(toString(tool_name), ''),
           ifNull(toString(outcome), ifNull(toString(decision), '')), ts_start, ts_end,
           dateDiff('microsecond', ts_start, ts_end) / 1000.0, NULL, span_id, parent_span_id, event_id
    FROM run_events WHERE tenant = {tenant:String} AND run_id = {run_id:String}
)
ORDER BY seq, event_id
""",
            "tenant",
            "run_id",
        ),
        # ---------------------------------------------------------------- alerts, kill switch, DLQ
        _q(
            "active_alerts",
            "Current state of each incident (argMax by updated_at) and whether it was acknowledged.",
            """
SELECT a.incident_id, a.kind, a.severity, a.scope, a.agent_id, a.status, a.observed, a.threshold, a.count,
       a.summary, a.first_seen, a.last_seen, ack.last_acked_by AS acked_by, ack.last_acked_at AS acked_at
FROM (
    SELECT incident_id, argMax(kind, updated_at) AS kind, argMax(severity, updated_at) AS severity,
           argMax(scope, updated_at) AS scope, argMax(agent_id, updated_at) AS agent_id,
           argMax(status, updated_at) AS status, argMax(observed, updated_at) AS observed,
           argMax(threshold, updated_at) AS threshold, max(count) AS count,
           argMax(summary, updated_at) AS summary, min(created_at) AS first_seen, max(updated_at) AS last_seen
    FROM alerts
    WHERE tenant = {tenant:String} AND created_at >= {start:DateTime64(6, 'UTC')}
    GROUP BY incident_id
) AS a
LEFT JOIN (
    SELECT incident_id, argMax(acked_by, acked_at) AS last_acked_by, max(acked_at) AS last_acked_at
    FROM alert_acks WHERE tenant = {tenant:String} GROUP BY incident_id
) AS ack USING (incident_id)
WHERE {include_resolved:UInt8} = 1 OR a.status = 'firing'
ORDER BY a.last_seen DESC
SETTINGS join_use_nulls = 1
""",
            "tenant",
            "start",
            "include_resolved",
            exactness="exact: argMax(..., updated_at) per incident",
        ),
        _q(
            "killswitch_history",
            "Kill-switch commands and actions for a scope prefix, newest first.",
            """
SELECT issued_at, source, actor, scope, action, min_risk, throttle_per_minute, expires_at, reason, alert_id,
       command_id, key_id
FROM killswitch_audit
WHERE startsWith(scope, {scope_prefix:String}) AND issued_at >= {start:DateTime64(6, 'UTC')}
ORDER BY issued_at DESC LIMIT {limit:UInt32}
""",
            "scope_prefix",
            "start",
            "limit",
        ),
        _q(
            "dead_letters_recent",
            "Dead letters per stage, source topic and error type since a time.",
            """
SELECT stage, source_topic, error_type, count() AS n, max(failed_at) AS last_failed_at, any(reason) AS example
FROM dead_letters WHERE failed_at >= {start:DateTime64(6, 'UTC')}
GROUP BY stage, source_topic, error_type ORDER BY n DESC
""",
            "start",
        ),
        # ---------------------------------------------------------------- analysts (sinks/README.md)
        _q(
            "cost_per_resolved_ticket",
            "Cost per resolved ticket by workflow: total run cost / runs that ended in success.",
            f"""
SELECT workflow, count() AS runs, countIf(outcome = 'success') AS resolved, sum(cost_usd) AS cost_usd,
       if(resolved = 0, NULL, cost_usd / resolved) AS cost_per_resolved_usd
FROM run_summaries FINAL
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RUNS_RANGE}
GROUP BY workflow ORDER BY cost_per_resolved_usd DESC
""",
            *_WINDOW,
            exactness="exact: FINAL keeps the highest version of each run summary",
        ),
        _q(
            "p95_by_version_and_model",
            "p95 model-call latency (exact, from raw rows) by agent version and model.",
            f"""
SELECT agent_version, request_model AS model, count() AS calls, quantileExact(0.95)(duration_ms) AS p95_ms
FROM model_calls
WHERE tenant = {{tenant:String}} AND {_AGENT}
  AND ts_start >= {{start:DateTime64(6, 'UTC')}} AND ts_start < {{end:DateTime64(6, 'UTC')}}
GROUP BY agent_version, model ORDER BY agent_version, model
""",
            *_WINDOW,
            exactness="exact quantile over raw rows",
        ),
        _q(
            "top_expensive_runs",
            "The most expensive runs (run_summaries FINAL).",
            f"""
SELECT run_id, agent_id, agent_version, workflow, outcome, cost_usd, model_calls, tool_calls, duration_ms, trace_id
FROM run_summaries FINAL
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RUNS_RANGE}
ORDER BY cost_usd DESC, run_id LIMIT {{limit:UInt32}}
""",
            *_WINDOW,
            "limit",
            exactness="exact: FINAL keeps the highest version of each run summary",
        ),
        _q(
            "policy_violation_rate_by_version",
            "Share of finished runs with a policy violation (a blocked tool/model call or a denied approval).",
            f"""
SELECT agent_id, agent_version, count() AS runs, countIf(blocked_calls > 0 OR denials > 0) AS violating_runs,
       violating_runs / runs AS violation_rate, sum(blocked_calls) AS total_blocked_calls,
       sum(denials) AS total_denials
FROM run_summaries FINAL
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RUNS_RANGE} AND outcome != 'running'
GROUP BY agent_id, agent_version ORDER BY agent_id, agent_version
""",
            *_WINDOW,
            exactness="exact: FINAL keeps the highest version of each run summary",
        ),
        _q(
            "trace_coverage",
            "Share of runs with a complete trace (start and end seen, no sequence gaps) per agent version.",
            f"""
SELECT agent_id, agent_version, count() AS runs,
       countIf(started_at IS NOT NULL AND ended_at IS NOT NULL AND seq_gaps = 0) AS complete_traces,
       complete_traces / runs AS coverage, sum(seq_gaps) AS missing_events
FROM run_summaries FINAL
WHERE tenant = {{tenant:String}} AND {_AGENT} AND {_RUNS_RANGE}
GROUP BY agent_id, agent_version ORDER BY agent_id, agent_version
""",
            *_WINDOW,
            exactness="exact: FINAL keeps the highest version of each run summary",
        ),
        # ---------------------------------------------------------------- release gate
        _q(
            "release_gate",
            "Finished runs, success rate and violation rate of one agent version (tenant '' = every tenant).",
            """
SELECT count() AS runs, countIf(outcome = 'success') AS succeeded,
       countIf(blocked_calls > 0 OR denials > 0) AS violating_runs,
       if(runs = 0, 0, succeeded / runs) AS success_rate, if(runs = 0, 0, violating_runs / runs) AS violation_rate
FROM run_summaries FINAL
WHERE agent_id = {agent_id:String} AND agent_version = {agent_version:String}
  AND ({tenant:String} = '' OR tenant = {tenant:String}) AND outcome != 'running'
""",
            "agent_id",
            "agent_version",
            "tenant",
            exactness="exact: FINAL keeps the highest version of each run summary",
        ),
    )
}

DASHBOARD_QUERIES = (
    "cost_timeseries",
    "latency_timeseries",
    "tool_timeseries",
    "version_latency",
    "agent_overview",
    "recent_runs",
    "active_alerts",
)
ANALYST_QUERIES = (
    "cost_per_resolved_ticket",
    "p95_by_version_and_model",
    "top_expensive_runs",
    "policy_violation_rate_by_version",
    "trace_coverage",
)


def grain(params: Mapping[str, Any]) -> str:
    """The rollup a time-series query reads: hourly for whole-hour buckets or long windows."""
    bucket = params.get("bucket_s")
    if bucket is not None:
        return "hour" if int(bucket) % 3600 == 0 else "minute"
    start, end = params.get("start"), params.get("end")
    if isinstance(start, datetime) and isinstance(end, datetime) and end - start >= HOURLY_WINDOW:
        return "hour"
    return "minute"


def bind(name: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """SQL and parameters of a named query; missing or unknown parameters fail fast."""
    try:
        q = QUERIES[name]
    except KeyError:
        raise KeyError(f"unknown query {name!r}; known: {sorted(QUERIES)}") from None
    missing = [p for p in q.params if p not in params]
    extra = [p for p in params if p not in q.params]
    if missing or extra:
        raise ValueError(f"query {name!r} takes {list(q.params)}; missing {missing}, unexpected {extra}")
    sql = q.sql
    if "@" in sql:
        for token, value in _GRAINS[grain(params)].items():
            sql = sql.replace(token, value)
    return sql, dict(params)


def run(store: Store, name: str, **params: Any) -> QueryResult:
    sql, p = bind(name, params)
    return store.query(sql, p)


def run_df(store: Store, name: str, **params: Any) -> pd.DataFrame:
    sql, p = bind(name, params)
    return store.query_df(sql, p)


def default_params(name: str, *, tenant: str, now: datetime, hours: float = 24.0) -> dict[str, Any]:
    """Reasonable values for a query's parameters (used by tests, the benchmark and the dashboard)."""
    base: dict[str, Any] = {
        "tenant": tenant,
        "agent_id": "",
        "start": now - timedelta(hours=hours),
        "end": now,
        "bucket_s": 300,
        "limit": 50,
        "include_resolved": 0,
        "scope_prefix": "",
        "run_id": "",
        "agent_version": "",
    }
    return {p: base[p] for p in QUERIES[name].params}
