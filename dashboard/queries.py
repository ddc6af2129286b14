"""The dashboard's SQL: named, parameterized (``{name:Type}``) ClickHouse queries.

Values always travel as server-side parameters; the only text ever chosen at run time is a
column from a fixed whitelist (``split_column``). Time series read the per-minute rollups
(``model_calls_1m``, ``tool_calls_1m``); run-level figures read ``run_summaries FINAL`` (the
exact latest revision of each run); alert state is ``argMax(..., updated_at)`` per incident.
The same text runs unchanged on chdb and on a ClickHouse server.
"""

from __future__ import annotations

from tripwire.dashboard.errors import DashboardError

# '' means "all" for every filter; the time range is [since, until).
_RUN_FILTER = """
    started_at >= {since:DateTime64(6, 'UTC')} AND started_at < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant = {tenant:String})
    AND ({agent:String} = '' OR agent_id = {agent:String})
    AND ({workflow:String} = '' OR workflow = {workflow:String})
"""
_MINUTE_FILTER = """
    minute >= toStartOfMinute({since:DateTime64(6, 'UTC')}) AND minute < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant = {tenant:String})
    AND ({agent:String} = '' OR agent_id = {agent:String})
"""
_CALL_FILTER = """
    ts_start >= {since:DateTime64(6, 'UTC')} AND ts_start < {until:DateTime64(6, 'UTC')}
    AND ({tenant:String} = '' OR tenant = {tenant:String})
    AND ({agent:String} = '' OR agent_id = {agent:String})
    AND ({workflow:String} = '' OR workflow = {workflow:String})
"""

_SPLITS = {"version": "agent_version", "model": "model", "none": "'all'"}


def split_column(split: str) -> str:
    """The rollup column for a split choice (whitelist; never user text)."""
    try:
        return _SPLITS[split]
    except KeyError as e:
        raise DashboardError(f"unknown split {split!r}; expected one of {sorted(_SPLITS)}") from e


# -- filter choices -------------------------------------------------------------------------

DIMENSIONS = """
SELECT DISTINCT tenant, agent_id, agent_version, workflow
FROM run_summaries
ORDER BY tenant, agent_id, agent_version, workflow
LIMIT 5000
"""

# -- Overview -------------------------------------------------------------------------------

RUN_KPIS = f"""
SELECT
    count() AS runs,
    countIf(outcome != 'running') AS finished,
    countIf(outcome = 'success') AS successes,
    if(finished = 0, NULL, successes / finished) AS success_rate,
    sum(cost_usd) AS total_cost_usd,
    if(runs = 0, NULL, total_cost_usd / runs) AS cost_per_run_usd,
    if(runs = 0, NULL, countIf(seq_gaps = 0) / runs) AS trace_coverage,
    if(runs = 0, NULL,
       runs / greatest(dateDiff('second', min(started_at), least({{until:DateTime64(6, 'UTC')}}, now64(6))) / 60.0, 1.0)
    ) AS runs_per_minute,
    quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, duration_ms IS NOT NULL) AS run_ms
FROM run_summaries FINAL
WHERE {_RUN_FILTER}
"""

RUNS_PER_BUCKET = f"""
SELECT
    toStartOfInterval(started_at, toIntervalSecond({{bucket_s:UInt32}})) AS bucket,
    agent_version,
    count() AS runs,
    countIf(outcome = 'success') AS successes,
    countIf(outcome != 'running') AS finished,
    sum(cost_usd) AS cost_usd
FROM run_summaries FINAL
WHERE {_RUN_FILTER}
GROUP BY bucket, agent_version
ORDER BY bucket, agent_version
"""


def model_call_rollup(split: str) -> str:
    """Model calls from the per-minute rollup, in one pass over it (the t-digest merges dominate):
    per time bucket x split column (``bucket`` set) and per version x model (``bucket`` NULL):
    calls, errors, cost, tokens and merged latency quantiles."""
    col = split_column(split)
    return f"""
SELECT
    toStartOfInterval(minute, toIntervalSecond({{bucket_s:UInt32}})) AS bucket,
    {col} AS series,
    agent_version AS version,
    model AS call_model,
    sum(calls) AS calls,
    sum(errors) AS errors,
    sum(cost_usd) AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms) AS q
FROM model_calls_1m
WHERE {_MINUTE_FILTER}
GROUP BY GROUPING SETS ((bucket, series), (version, call_model))
ORDER BY bucket, series, version, call_model
SETTINGS group_by_use_nulls = 1
"""


# The rollups carry no workflow: with a workflow filter the same figures come from raw rows.
MODEL_LATENCY_BY_VERSION_MODEL_RAW = f"""
SELECT
    agent_version,
    request_model AS model,
    count() AS calls,
    countIf(status != 'ok') AS errors,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    quantilesTDigest(0.5, 0.95, 0.99)(duration_ms) AS q
FROM model_calls
WHERE {_CALL_FILTER}
GROUP BY agent_version, model
ORDER BY agent_version, model
"""

VERSION_COMPARE = f"""
SELECT
    agent_version,
    count() AS runs,
    countIf(outcome = 'success') / greatest(countIf(outcome != 'running'), 1) AS success_rate,
    avg(cost_usd) AS cost_per_run_usd,
    sum(cost_usd) AS total_cost_usd,
    quantileExactIf(0.95)(duration_ms, duration_ms IS NOT NULL) AS p95_run_ms,
    sum(errors) / greatest(sum(model_calls + tool_calls), 1) AS call_error_rate,
    countIf(seq_gaps = 0) / count() AS trace_coverage,
    sum(blocked_calls) AS blocked_calls
FROM run_summaries FINAL
WHERE {_RUN_FILTER} AND agent_version IN ({{versions:Array(String)}})
GROUP BY agent_version
"""

# -- Runs explorer ----------------------------------------------------------------------------

_ALERTED_RUNS = """
    SELECT run_id FROM alerts WHERE run_id IS NOT NULL AND created_at >= {since:DateTime64(6, 'UTC')}
    UNION ALL
    SELECT run_id FROM run_summaries WHERE trace_id IN (
        SELECT arrayJoin(evidence_trace_ids) FROM alerts WHERE created_at >= {since:DateTime64(6, 'UTC')})
"""

RUN_SEARCH = f"""
SELECT
    run_id, started_at, agent_id, agent_version, workflow, outcome, cost_usd, duration_ms,
    steps, model_calls, tool_calls, errors, blocked_calls, seq_gaps, principal, trace_id, tenant
FROM run_summaries FINAL
WHERE {_RUN_FILTER}
    AND (length({{outcomes:Array(String)}}) = 0 OR has({{outcomes:Array(String)}}, outcome))
    AND cost_usd >= {{min_cost:Float64}} AND cost_usd <= {{max_cost:Float64}}
    AND ({{search:String}} = ''
         OR startsWith(run_id, {{search:String}})
         OR startsWith(trace_id, {{search:String}})
         OR positionCaseInsensitiveUTF8(ifNull(principal, ''), {{search:String}}) > 0)
    AND ({{alerted:UInt8}} = 0 OR run_id IN ({_ALERTED_RUNS}))
ORDER BY started_at DESC, run_id
LIMIT {{limit:UInt32}}
"""

RUN_SUMMARY = """
SELECT * FROM run_summaries FINAL WHERE run_id = {run_id:String} LIMIT 1
"""

# The run's tenant, agent and time window (from its summary) hit the event tables' sorting key
# (tenant, agent_id, toStartOfHour(ts_start), ...); '' / the epoch..far future disable a hint.
_TRACE_KEY = """({tenant:String} = '' OR tenant = {tenant:String})
        AND ({agent:String} = '' OR agent_id = {agent:String})
        AND ts_start >= {since:DateTime64(6, 'UTC')} AND ts_start < {until:DateTime64(6, 'UTC')}"""

RUN_TRACE = f"""
SELECT * FROM (
    SELECT seq, 'model' AS kind, request_model AS name, ts_start, ts_end, duration_ms, status,
           input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd,
           CAST(NULL AS Nullable(String)) AS args, CAST(NULL AS Nullable(String)) AS risk,
           CAST(NULL AS Nullable(String)) AS approval_ref, CAST(NULL AS Nullable(String)) AS blocked_reason,
           CAST(error_type AS Nullable(String)) AS error_type, CAST(finish_reason AS Nullable(String)) AS detail,
           event_id, span_id, parent_span_id
    FROM model_calls WHERE run_id = {{run_id:String}} AND {_TRACE_KEY}
    UNION ALL
    SELECT seq, 'tool', tool_name, ts_start, ts_end, duration_ms, status,
           0, 0, 0, 0, 0, CAST(NULL AS Nullable(Float64)),
           args, CAST(risk AS Nullable(String)), approval_ref, CAST(blocked_reason AS Nullable(String)),
           CAST(error_type AS Nullable(String)), tool_call_id, event_id, span_id, parent_span_id
    FROM tool_calls WHERE run_id = {{run_id:String}} AND {_TRACE_KEY}
    UNION ALL
    SELECT seq, event_type, ifNull(tool_name, event_type), ts_start, ts_end,
           dateDiff('microsecond', ts_start, ts_end) / 1000.0, ifNull(outcome, ifNull(decision, '')),
           0, 0, 0, 0, 0, CAST(NULL AS Nullable(Float64)),
           CAST(NULL AS Nullable(String)), CAST(risk AS Nullable(String)), CAST(NULL AS Nullable(String)),
           CAST(NULL AS Nullable(String)), CAST(error_type AS Nullable(String)),
           multiIf(event_type = 'approval_decision',
                   concat(ifNull(decision, ''), ' by ', ifNull(approver, '?'),
                          if(reason IS NULL, '', concat(': ', reason))),
                   event_type = 'run_started' AND max_cost_usd IS NOT NULL, concat('budget $', toString(max_cost_usd)),
                   NULL),
           event_id, span_id, parent_span_id
    FROM run_events WHERE run_id = {{run_id:String}} AND {_TRACE_KEY}
)
ORDER BY seq, ts_start
LIMIT 5000
"""

RUN_ALERTS = """
SELECT incident_id, argMax(kind, updated_at) AS kind, argMax(severity, updated_at) AS severity,
       argMax(summary, updated_at) AS summary, argMax(status, updated_at) AS status,
       argMax(observed, updated_at) AS observed, argMax(threshold, updated_at) AS threshold,
       min(created_at) AS created_at
FROM alerts
WHERE run_id = {run_id:String} OR has(evidence_trace_ids, {trace_id:String})
   OR hasAny(evidence_event_ids, {event_ids:Array(String)})
GROUP BY incident_id
ORDER BY created_at
"""

# -- Alerts -----------------------------------------------------------------------------------

INCIDENTS = """
WITH acks AS (
    SELECT tenant, incident_id, max(acked_at) AS acked_at, argMax(acked_by, acked_at) AS acked_by,
           argMax(note, acked_at) AS ack_note
    FROM alert_acks
    GROUP BY tenant, incident_id
)
SELECT i.*, a.acked_at AS acked_at, a.acked_by AS acked_by, a.ack_note AS ack_note
FROM (
    SELECT
        tenant, incident_id,
        argMax(alert_id, updated_at) AS alert_id,
        argMax(kind, updated_at) AS kind,
        argMax(severity, updated_at) AS severity,
        argMax(scope, updated_at) AS scope,
        argMax(agent_id, updated_at) AS agent_id,
        argMax(agent_version, updated_at) AS agent_version,
        argMax(tool_name, updated_at) AS tool_name,
        argMax(run_id, updated_at) AS run_id,
        argMax(observed, updated_at) AS observed,
        argMax(threshold, updated_at) AS threshold,
        argMax(count, updated_at) AS count,
        argMax(summary, updated_at) AS summary,
        argMax(status, updated_at) AS status,
        argMax(evidence_trace_ids, updated_at) AS evidence_trace_ids,
        argMax(evidence_event_ids, updated_at) AS evidence_event_ids,
        min(created_at) AS created_at,
        max(updated_at) AS updated_at
    FROM alerts
    WHERE updated_at >= {since:DateTime64(6, 'UTC')} AND created_at < {until:DateTime64(6, 'UTC')}
        AND ({tenant:String} = '' OR tenant = {tenant:String})
        AND ({agent:String} = '' OR agent_id = {agent:String})
    GROUP BY tenant, incident_id
) AS i
LEFT JOIN acks AS a ON a.tenant = i.tenant AND a.incident_id = i.incident_id
WHERE (length({severities:Array(String)}) = 0 OR has({severities:Array(String)}, i.severity))
    AND (length({statuses:Array(String)}) = 0 OR has({statuses:Array(String)}, i.status))
ORDER BY i.updated_at DESC, i.incident_id
LIMIT 1000
SETTINGS join_use_nulls = 1, prefer_column_name_to_alias = 1
"""

EVIDENCE_RUNS = """
SELECT run_id, trace_id, started_at, agent_id, agent_version, outcome, cost_usd
FROM run_summaries FINAL
WHERE trace_id IN {trace_ids:Array(String)} OR run_id IN {run_ids:Array(String)}
ORDER BY started_at
LIMIT 200
"""

# -- Kill switch ------------------------------------------------------------------------------

# The latest command per scope (rows from the topic and from the CLI/dashboard share the
# command_id, so either copy gives the same answer); in force unless it is a resume or expired.
SWITCH_STATE = """
SELECT scope, last.1 AS action, last.2 AS issued_at, last.3 AS expires_at, last.4 AS reason, last.5 AS issued_by,
       last.6 AS alert_id, last.7 AS min_risk, last.8 AS throttle_per_minute, last.9 AS command_id
FROM (
    SELECT scope,
           argMax(tuple(action, issued_at, expires_at, reason, issued_by, alert_id, min_risk, throttle_per_minute,
                        command_id), (issued_at, command_id)) AS last
    FROM killswitch_audit
    GROUP BY scope
)
WHERE action != 'resume' AND (expires_at IS NULL OR expires_at > now64(6))
ORDER BY issued_at DESC, scope
"""

SWITCH_AUDIT = """
SELECT issued_at, scope, action, actor, source, reason, issued_by, expires_at, alert_id, key_id,
       signature IS NOT NULL AND signature != '' AS signed, command_id
FROM killswitch_audit
WHERE issued_at >= {since:DateTime64(6, 'UTC')}
ORDER BY issued_at DESC, command_id, source
LIMIT {limit:UInt32}
"""

AGENTS = """
SELECT DISTINCT agent_id FROM run_summaries
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
ORDER BY agent_id LIMIT 1000
"""

# -- Cost -------------------------------------------------------------------------------------

COST_BY_WORKFLOW_VERSION = f"""
SELECT workflow, agent_version,
       count() AS runs, sum(cost_usd) AS total_cost_usd, avg(cost_usd) AS cost_per_run_usd,
       quantileExact(0.95)(cost_usd) AS p95_cost_usd,
       countIf(outcome = 'success') AS successes,
       if(successes = 0, NULL, sum(cost_usd) / successes) AS cost_per_success_usd,
       sum(cost_input_usd) AS input, sum(cost_cache_read_usd) AS cache_read,
       sum(cost_cache_write_usd) AS cache_write, sum(cost_output_usd) AS output,
       sum(cost_reasoning_usd) AS reasoning,
       sum(input_tokens) AS input_tokens, sum(cache_read_tokens) AS cache_read_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens,
       sum(reasoning_tokens) AS reasoning_tokens,
       sum(cost_unknown_calls) AS unknown_cost_calls
FROM run_summaries FINAL
WHERE {_RUN_FILTER}
GROUP BY workflow, agent_version
ORDER BY workflow, agent_version
"""

MODEL_MIX = f"""
SELECT model, sum(calls) AS calls, sum(cost_usd) AS cost_usd,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
FROM model_calls_1m
WHERE {_MINUTE_FILTER}
GROUP BY model
ORDER BY cost_usd DESC, model
"""

# A breach is a run that used 100% or more of any budget it declared. One scan gives the
# per-agent figures and (up to 200 per agent version) the breaching runs.
BUDGETS = f"""
SELECT agent_id, agent_version,
       countIf(budget_cost_pct IS NOT NULL) AS runs_with_cost_cap,
       countIf(budget_cost_pct >= 100) AS cost_breaches,
       countIf(used >= 100) AS any_breaches,
       max(budget_cost_pct) AS max_cost_pct,
       sum(cost_usd) AS total_cost_usd,
       groupArrayIf(200)(tuple(run_id, started_at, workflow, outcome, cost_usd, used), used >= 100) AS breaching
FROM (
    SELECT agent_id, agent_version, run_id, started_at, workflow, outcome, cost_usd, budget_cost_pct,
           greatest(ifNull(budget_cost_pct, 0), ifNull(budget_steps_pct, 0), ifNull(budget_tool_calls_pct, 0),
                    ifNull(budget_prompt_tokens_pct, 0), ifNull(budget_completion_tokens_pct, 0)) AS used
    FROM run_summaries FINAL
    WHERE {_RUN_FILTER}
)
GROUP BY agent_id, agent_version
ORDER BY any_breaches DESC, agent_id, agent_version
"""

TOP_EXPENSIVE_RUNS = f"""
SELECT run_id, started_at, agent_id, agent_version, workflow, outcome, cost_usd, model_calls, tool_calls,
       input_tokens + cache_read_tokens + cache_write_tokens + output_tokens + reasoning_tokens AS tokens
FROM run_summaries FINAL
WHERE {_RUN_FILTER}
ORDER BY cost_usd DESC, run_id
LIMIT {{limit:UInt32}}
"""

# -- SQL console examples ---------------------------------------------------------------------

EXAMPLES: dict[str, str] = {
    "Cost per successful run by workflow": (
        "SELECT workflow, countIf(outcome = 'success') AS successes, round(sum(cost_usd), 4) AS cost_usd,\n"
        "       round(sum(cost_usd) / nullIf(successes, 0), 4) AS cost_per_success\n"
        "FROM run_summaries FINAL\nGROUP BY workflow\nORDER BY cost_per_success DESC"
    ),
    "p95 model latency by version and model": (
        "SELECT agent_version, model, sum(calls) AS calls,\n"
        "       round(quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms)[2], 1) AS p95_ms\n"
        "FROM model_calls_1m\nGROUP BY agent_version, model\nORDER BY agent_version, model"
    ),
    "Top 20 expensive runs": (
        "SELECT run_id, agent_id, agent_version, workflow, outcome, round(cost_usd, 4) AS cost_usd\n"
        "FROM run_summaries FINAL\nORDER BY cost_usd DESC\nLIMIT 20"
    ),
    "Policy violation rate by version": (
        "SELECT agent_version, count() AS runs, countIf(blocked_calls + denials > 0) AS violating_runs,\n"
        "       round(violating_runs / runs, 4) AS violation_rate\n"
        "FROM run_summaries FINAL\nGROUP BY agent_version\nORDER BY agent_version"
    ),
    "Trace coverage by agent": (
        "SELECT agent_id, count() AS runs, countIf(seq_gaps = 0) AS complete,\n"
        "       round(complete / runs, 4) AS coverage\n"
        "FROM run_summaries FINAL\nGROUP BY agent_id\nORDER BY coverage"
    ),
}
