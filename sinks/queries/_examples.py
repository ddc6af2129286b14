"""Starters for the read-only SQL console and ``tripwire sql``: the analysts' questions (the named
queries of ``ANALYST_QUERIES``) as plain statements without parameters, over all stored data."""

from __future__ import annotations

EXAMPLES: dict[str, str] = {
    "Cost per successful run by workflow": (  # cost_per_resolved_ticket
        "SELECT workflow, countIf(outcome = 'success') AS successes, round(sum(cost_usd), 4) AS cost_usd,\n"
        "       round(sum(cost_usd) / nullIf(successes, 0), 4) AS cost_per_success\n"
        "FROM run_summaries FINAL\nGROUP BY workflow\nORDER BY cost_per_success DESC"
    ),
    "p95 model latency by version and model": (  # version_latency
        "SELECT agent_version, model, sum(calls) AS calls,\n"
        "       round(quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms)[2], 1) AS p95_ms\n"
        "FROM model_calls_1m\nGROUP BY agent_version, model\nORDER BY agent_version, model"
    ),
    "Top 20 expensive runs": (  # top_expensive_runs
        "SELECT run_id, agent_id, agent_version, workflow, outcome, round(cost_usd, 4) AS cost_usd\n"
        "FROM run_summaries FINAL\nORDER BY cost_usd DESC\nLIMIT 20"
    ),
    "Policy violation rate by version": (  # policy_violation_rate_by_version
        "SELECT agent_version, count() AS runs, countIf(blocked_calls + denials > 0) AS violating_runs,\n"
        "       round(violating_runs / runs, 4) AS violation_rate\n"
        "FROM run_summaries FINAL\nGROUP BY agent_version\nORDER BY agent_version"
    ),
    "Trace coverage by agent": (  # trace_coverage
        "SELECT agent_id, count() AS runs, countIf(seq_gaps = 0) AS complete,\n"
        "       round(complete / runs, 4) AS coverage\n"
        "FROM run_summaries FINAL\nGROUP BY agent_id\nORDER BY coverage"
    ),
}
