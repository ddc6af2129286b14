"""Runs (``run_summaries FINAL``: the latest revision of each run): filter choices, KPIs, search,
version comparison, cost, budgets, the analysts' questions and the release gate.

Every run query selects runs by ``$RUN_WINDOW``: the run's time (``coalesce(started_at,
emitted_at)``, see ``_core.RUN_TIME``) in [start, end), and tenant / agent_id / workflow ('' = all).
"""

from __future__ import annotations

from tripwire.sinks.queries._core import FINAL, query

_WINDOW = ("tenant", "agent_id", "workflow", "start", "end")

# Runs tied to an alert since ``start``: named by the alert, or whose trace is in its evidence.
_ALERTED_RUNS = """
    SELECT run_id FROM alerts WHERE run_id IS NOT NULL AND created_at >= $START
    UNION ALL
    SELECT run_id FROM run_summaries WHERE trace_id IN (
        SELECT arrayJoin(evidence_trace_ids) FROM alerts WHERE created_at >= $START)
"""

RUNS = (
    # ---------------------------------------------------------------- filter choices, counts
    query(
        "dimensions",
        "Every (tenant, agent, version, workflow) with a run: the dashboard's filter choices.",
        """
SELECT DISTINCT tenant, agent_id, agent_version, workflow
FROM run_summaries
ORDER BY tenant, agent_id, agent_version, workflow
LIMIT 5000
""",
    ),
    query(
        "agents",
        "Every agent with a run, of one tenant ('' = all).",
        """
SELECT DISTINCT agent_id FROM run_summaries
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
ORDER BY agent_id LIMIT 1000
""",
        "tenant",
    ),
    query(
        "stored_counts",
        "How many run summaries and alert records are stored at all (an empty store says what to run).",
        "SELECT (SELECT count() FROM run_summaries) AS runs, (SELECT count() FROM alerts) AS alerts",
    ),
    # ---------------------------------------------------------------- overview
    query(
        "run_kpis",
        "Runs, finished, successes, success rate, spend, cost per run, trace coverage, runs per minute "
        "(runs / the minutes of the range that have a run: ``minutes_with_data``) and run duration "
        "p50/p95/p99 ``run_ms`` (exact quantiles); no row without runs.",
        """
SELECT
    count() AS runs,
    countIf(outcome != 'running') AS finished,
    countIf(outcome = 'success') AS successes,
    if(finished = 0, NULL, successes / finished) AS success_rate,
    sum(cost_usd) AS total_cost_usd,
    if(runs = 0, NULL, total_cost_usd / runs) AS cost_per_run_usd,
    if(runs = 0, NULL, countIf(seq_gaps = 0) / runs) AS trace_coverage,
    uniqExact(toStartOfMinute($RUN_TIME)) AS minutes_with_data,
    if(runs = 0, NULL, runs / greatest(minutes_with_data, 1)) AS runs_per_minute,
    quantilesExactIf(0.5, 0.95, 0.99)(duration_ms, duration_ms IS NOT NULL) AS run_ms
FROM run_summaries FINAL
WHERE $RUN_WINDOW
HAVING runs > 0
""",
        *_WINDOW,
        exactness=FINAL,
    ),
    query(
        "data_span",
        "The first and last run time in the range (charts size their buckets to the data, not the range); "
        "no row without runs.",
        """
SELECT min($RUN_TIME) AS first, max($RUN_TIME) AS last, count() AS runs
FROM run_summaries
WHERE $RUN_WINDOW
HAVING runs > 0
""",
        *_WINDOW,
    ),
    query(
        "runs_per_bucket",
        "Runs, successes, finished runs and cost per time bucket and agent version.",
        """
SELECT
    toStartOfInterval($RUN_TIME, toIntervalSecond({bucket_s:UInt32})) AS bucket,
    agent_version,
    count() AS runs,
    countIf(outcome = 'success') AS successes,
    countIf(outcome != 'running') AS finished,
    sum(cost_usd) AS cost_usd
FROM run_summaries FINAL
WHERE $RUN_WINDOW
GROUP BY bucket, agent_version
ORDER BY bucket, agent_version
""",
        *_WINDOW,
        "bucket_s",
        exactness=FINAL,
    ),
    query(
        "version_compare",
        "Runs, success rate, cost per run, run p95, call error rate, trace coverage and blocked calls of the "
        "given agent versions.",
        """
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
WHERE $RUN_WINDOW AND agent_version IN ({versions:Array(String)})
GROUP BY agent_version
""",
        *_WINDOW,
        "versions",
        exactness=FINAL,
    ),
    query(
        "agent_overview",
        "Runs, success rate, cost, p95 run duration and violation rate per agent and version.",
        """
SELECT agent_id, agent_version, count() AS runs, countIf(outcome = 'success') AS succeeded,
       succeeded / runs AS success_rate, sum(cost_usd) AS cost_usd, quantileExact(0.95)(duration_ms) AS p95_duration_ms,
       countIf(blocked_calls > 0 OR denials > 0) / runs AS violation_rate
FROM run_summaries FINAL
WHERE $RUN_WINDOW
GROUP BY agent_id, agent_version ORDER BY agent_id, agent_version
""",
        *_WINDOW,
        exactness=FINAL,
    ),
    # ---------------------------------------------------------------- runs explorer
    query(
        "run_search",
        "Runs newest first, by outcome ([] = all), cost range, a run/trace id prefix or principal text, "
        "and optionally only runs tied to an alert.",
        f"""
SELECT
    run_id, started_at, agent_id, agent_version, workflow, outcome, cost_usd, duration_ms,
    steps, model_calls, tool_calls, errors, blocked_calls, seq_gaps, principal, trace_id, tenant
FROM run_summaries FINAL
WHERE $RUN_WINDOW
    AND (length({{outcomes:Array(String)}}) = 0 OR has({{outcomes:Array(String)}}, outcome))
    AND cost_usd >= {{min_cost:Float64}} AND cost_usd <= {{max_cost:Float64}}
    AND ({{search:String}} = ''
         OR startsWith(run_id, {{search:String}})
         OR startsWith(trace_id, {{search:String}})
         OR positionCaseInsensitiveUTF8(ifNull(principal, ''), {{search:String}}) > 0)
    AND ({{alerted:UInt8}} = 0 OR run_id IN ({_ALERTED_RUNS}))
ORDER BY $RUN_TIME DESC, run_id
LIMIT {{limit:UInt32}}
""",
        *_WINDOW,
        "outcomes",
        "min_cost",
        "max_cost",
        "search",
        "alerted",
        "limit",
        exactness=FINAL,
    ),
    query(
        "run_summary",
        "One run's latest summary.",
        "SELECT * FROM run_summaries FINAL WHERE run_id = {run_id:String} LIMIT 1",
        "run_id",
        exactness=FINAL,
    ),
    query(
        "evidence_runs",
        "The runs an alert's evidence names (by trace id or run id).",
        """
SELECT run_id, trace_id, started_at, agent_id, agent_version, outcome, cost_usd
FROM run_summaries FINAL
WHERE trace_id IN {trace_ids:Array(String)} OR run_id IN {run_ids:Array(String)}
ORDER BY $RUN_TIME, run_id
LIMIT 200
""",
        "trace_ids",
        "run_ids",
        exactness=FINAL,
    ),
    # ---------------------------------------------------------------- cost
    query(
        "cost_by_workflow_version",
        "Unit economics per workflow and version: runs, spend, cost per run and per success, p95 run cost, "
        "cost and tokens per token kind, calls without a known price.",
        """
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
WHERE $RUN_WINDOW
GROUP BY workflow, agent_version
ORDER BY workflow, agent_version
""",
        *_WINDOW,
        exactness=FINAL,
    ),
    query(
        "budgets",
        "Per agent and version: runs with a cost cap, breaches (a run that used 100% or more of any budget it "
        "declared) and up to 200 breaching runs, in one scan.",
        """
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
    WHERE $RUN_WINDOW
)
GROUP BY agent_id, agent_version
ORDER BY any_breaches DESC, agent_id, agent_version
""",
        *_WINDOW,
        exactness=FINAL,
    ),
    query(
        "top_expensive_runs",
        "The most expensive runs.",
        """
SELECT run_id, started_at, agent_id, agent_version, workflow, outcome, cost_usd, model_calls, tool_calls,
       duration_ms, trace_id,
       input_tokens + cache_read_tokens + cache_write_tokens + output_tokens + reasoning_tokens AS tokens
FROM run_summaries FINAL
WHERE $RUN_WINDOW
ORDER BY cost_usd DESC, run_id
LIMIT {limit:UInt32}
""",
        *_WINDOW,
        "limit",
        exactness=FINAL,
    ),
    # ---------------------------------------------------------------- analysts (sinks/README.md)
    query(
        "cost_per_resolved_ticket",
        "Cost per resolved ticket by workflow: total run cost / runs that ended in success.",
        """
SELECT workflow, count() AS runs, countIf(outcome = 'success') AS resolved, sum(cost_usd) AS cost_usd,
       if(resolved = 0, NULL, cost_usd / resolved) AS cost_per_resolved_usd
FROM run_summaries FINAL
WHERE $RUN_WINDOW
GROUP BY workflow ORDER BY cost_per_resolved_usd DESC
""",
        *_WINDOW,
        exactness=FINAL,
    ),
    query(
        "policy_violation_rate_by_version",
        "Share of finished runs with a policy violation (a blocked tool/model call or a denied approval).",
        """
SELECT agent_id, agent_version, count() AS runs, countIf(blocked_calls > 0 OR denials > 0) AS violating_runs,
       violating_runs / runs AS violation_rate, sum(blocked_calls) AS total_blocked_calls,
       sum(denials) AS total_denials
FROM run_summaries FINAL
WHERE $RUN_WINDOW AND outcome != 'running'
GROUP BY agent_id, agent_version ORDER BY agent_id, agent_version
""",
        *_WINDOW,
        exactness=FINAL,
    ),
    query(
        "trace_coverage",
        "Share of runs with a complete trace (start and end seen, no sequence gaps) per agent version.",
        """
SELECT agent_id, agent_version, count() AS runs,
       countIf(started_at IS NOT NULL AND ended_at IS NOT NULL AND seq_gaps = 0) AS complete_traces,
       complete_traces / runs AS coverage, sum(missing_seq_count) AS missing_events
FROM run_summaries FINAL
WHERE $RUN_WINDOW
GROUP BY agent_id, agent_version ORDER BY agent_id, agent_version
""",
        *_WINDOW,
        exactness=FINAL,
    ),
    query(
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
        exactness=FINAL,
        required=("agent_id",),
    ),
)
