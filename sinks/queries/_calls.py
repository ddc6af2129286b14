"""Model and tool calls: time series and per version x model figures from the rollups, the exact
figures from raw rows (and with a workflow filter: the rollups carry no workflow), a run's trace."""

from __future__ import annotations

from tripwire.sinks.exceptions import QueryError
from tripwire.sinks.queries._core import EPOCH, FAR_FUTURE, TDIGEST, query

_WINDOW = ("tenant", "agent_id", "start", "end")
_BUCKET = "toStartOfInterval(ts, toIntervalSecond({bucket_s:UInt32}))"

# The series a model-call chart is split by: a column of the rollup, chosen by name (never user text).
SPLITS = {"none": "'all'", "version": "agent_version", "model": "model"}


def split_column(split: str) -> str:
    """The rollup column for a split choice (whitelist; never user text)."""
    try:
        return SPLITS[split]
    except KeyError as e:
        raise QueryError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}") from e


CALLS = (
    query(
        "model_call_series",
        "Model calls in one pass over the rollup (the t-digest merges dominate): per time bucket x split "
        "series (``bucket`` set) and per version x model (``bucket`` NULL): calls, errors, cost, tokens, "
        "merged latency quantiles ``q`` = [p50, p95, p99] (ms).",
        f"""
SELECT
    {_BUCKET} AS bucket,
    @SPLIT@ AS series,
    agent_version AS version,
    model AS call_model,
    sum(calls) AS calls,
    sum(errors) AS errors,
    sum(cost_usd) AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms) AS q
FROM @MODEL_SRC@
GROUP BY GROUPING SETS ((bucket, series), (version, call_model))
ORDER BY bucket, series, version, call_model
SETTINGS group_by_use_nulls = 1
""",
        *_WINDOW,
        "bucket_s",
        exactness=TDIGEST,
        choices={"split": SPLITS},
    ),
    query(
        "cost_timeseries",
        "Model cost, calls and tokens per time bucket and model (rollup).",
        f"""
SELECT {_BUCKET} AS bucket, model, sum(calls) AS calls, sum(errors) AS errors, sum(cost_usd) AS cost_usd,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
FROM @MODEL_SRC@
GROUP BY bucket, model ORDER BY bucket, model
""",
        *_WINDOW,
        "bucket_s",
    ),
    query(
        "latency_timeseries",
        "Model-call latency p50/p95/p99 (ms) per time bucket and model, merged t-digests (rollup).",
        f"""
SELECT {_BUCKET} AS bucket, model,
       quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms) AS q,
       q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, sum(calls) AS calls
FROM @MODEL_SRC@
GROUP BY bucket, model ORDER BY bucket, model
""",
        *_WINDOW,
        "bucket_s",
        exactness=TDIGEST,
    ),
    query(
        "tool_timeseries",
        "Tool calls, errors, blocked calls and p95 latency per time bucket and tool (rollup).",
        f"""
SELECT {_BUCKET} AS bucket, tool_name, sum(calls) AS calls, sum(errors) AS errors, sum(blocked) AS blocked,
       quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms)[2] AS p95_ms
FROM @TOOL_SRC@
GROUP BY bucket, tool_name ORDER BY bucket, tool_name
""",
        *_WINDOW,
        "bucket_s",
        exactness=TDIGEST,
    ),
    query(
        "version_latency",
        "Model-call p50/p95/p99 (ms), error rate and cost per agent, version and model over the range (rollup).",
        """
SELECT agent_id, agent_version, model, sum(calls) AS calls, sum(errors) AS errors, errors / calls AS error_rate,
       sum(cost_usd) AS cost_usd, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms) AS q,
       q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms
FROM @MODEL_SRC@
GROUP BY agent_id, agent_version, model ORDER BY agent_id, agent_version, model
""",
        *_WINDOW,
        exactness=TDIGEST,
    ),
    query(
        "model_mix",
        "Calls, cost and tokens per model over the range (rollup).",
        """
SELECT model, sum(calls) AS calls, sum(cost_usd) AS cost_usd,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
FROM @MODEL_SRC@
GROUP BY model
ORDER BY cost_usd DESC, model
""",
        *_WINDOW,
    ),
    query(
        "p95_by_version_and_model",
        "Model calls, errors, cost, tokens and exact p50/p95/p99 latency (ms) by agent version and model, "
        "from raw rows (the dashboard's table with a workflow filter: the rollups carry no workflow).",
        """
SELECT agent_version, request_model AS model, count() AS calls, countIf(status != 'ok') AS errors,
       sum(ifNull(cost_usd, 0)) AS cost_usd, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       quantilesExact(0.5, 0.95, 0.99)(duration_ms) AS q, q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms
FROM model_calls
WHERE $CALL_WINDOW
GROUP BY agent_version, model ORDER BY agent_version, model
""",
        *_WINDOW,
        "workflow",
        exactness="exact quantiles over raw rows",
    ),
    query(
        "run_trace",
        "Every stored event of one run in seq order (model calls, tool calls, lifecycle, approvals). The run's "
        "tenant, agent and time span (from its summary) hit the event tables' sorting key; '' and the default "
        "span (epoch .. 2200) disable a hint.",
        """
SELECT * FROM (
    SELECT seq, 'model_call' AS kind, request_model AS name, ts_start, ts_end, duration_ms, status,
           input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd,
           CAST(NULL AS Nullable(String)) AS args, CAST(NULL AS Nullable(String)) AS risk,
           CAST(NULL AS Nullable(String)) AS approval_ref, CAST(NULL AS Nullable(String)) AS blocked_reason,
           CAST(error_type AS Nullable(String)) AS error_type, CAST(finish_reason AS Nullable(String)) AS detail,
           event_id, span_id, parent_span_id
    FROM model_calls WHERE run_id = {run_id:String} AND $DIMS AND ts_start >= $START AND ts_start < $END
    UNION ALL
    SELECT seq, 'tool_call', tool_name, ts_start, ts_end, duration_ms, status,
           0, 0, 0, 0, 0, CAST(NULL AS Nullable(Float64)),
           args, CAST(risk AS Nullable(String)), approval_ref, CAST(blocked_reason AS Nullable(String)),
           CAST(error_type AS Nullable(String)), tool_call_id, event_id, span_id, parent_span_id
    FROM tool_calls WHERE run_id = {run_id:String} AND $DIMS AND ts_start >= $START AND ts_start < $END
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
    FROM run_events WHERE run_id = {run_id:String} AND $DIMS AND ts_start >= $START AND ts_start < $END
)
ORDER BY seq, ts_start, event_id
LIMIT 5000
""",
        "run_id",
        *_WINDOW,
        defaults={"tenant": "", "start": EPOCH, "end": FAR_FUTURE},
    ),
)
