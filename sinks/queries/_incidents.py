"""Alerts (current state per incident, ``argMax(..., updated_at)``), the kill switch (state in force,
audit history), dead letters, and what ``tripwire demo report`` checks against the ground truth."""

from __future__ import annotations

from tripwire.sinks.queries._core import query

_STATE = "exact: argMax(..., updated_at) per incident"

INCIDENTS = (
    # ---------------------------------------------------------------- alerts
    query(
        "active_alerts",
        "Incidents active in [start, end): their latest state (argMax by updated_at), evidence, and the latest "
        "acknowledgement; by severity and status ([] = all; without ``statuses``, firing only).",
        # An incident belongs to the window when it was updated inside it (it opened before start and
        # still fires, or it opened inside it): updated_at >= start AND created_at < end. Filtering on
        # created_at >= start alone hid incidents that were opened earlier and are still firing.
        """
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
    WHERE updated_at >= $START AND created_at < $END AND $DIMS
    GROUP BY tenant, incident_id
) AS i
LEFT JOIN acks AS a ON a.tenant = i.tenant AND a.incident_id = i.incident_id
WHERE (length({severities:Array(String)}) = 0 OR has({severities:Array(String)}, i.severity))
    AND (length({statuses:Array(String)}) = 0 OR has({statuses:Array(String)}, i.status))
ORDER BY i.updated_at DESC, i.incident_id
LIMIT 1000
SETTINGS join_use_nulls = 1, prefer_column_name_to_alias = 1
""",
        "tenant",
        "agent_id",
        "start",
        "end",
        "severities",
        "statuses",
        exactness=_STATE,
        defaults={"severities": [], "statuses": ["firing"]},
    ),
    query(
        "run_alerts",
        "The incidents tied to one run: named by it, or with its trace or one of its events as evidence.",
        """
SELECT incident_id, argMax(kind, updated_at) AS kind, argMax(severity, updated_at) AS severity,
       argMax(summary, updated_at) AS summary, argMax(status, updated_at) AS status,
       argMax(observed, updated_at) AS observed, argMax(threshold, updated_at) AS threshold,
       min(created_at) AS created_at
FROM alerts
WHERE run_id = {run_id:String} OR has(evidence_trace_ids, {trace_id:String})
   OR hasAny(evidence_event_ids, {event_ids:Array(String)})
GROUP BY incident_id
ORDER BY created_at
""",
        "run_id",
        "trace_id",
        "event_ids",
        exactness=_STATE,
    ),
    # ---------------------------------------------------------------- kill switch
    query(
        "killswitch_state",
        "The kill switches in force: the latest command per scope (rows from the topic and from the "
        "CLI/dashboard share the command_id, so either copy gives the same answer) unless it is a resume or "
        "expired.",
        """
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
""",
    ),
    query(
        "killswitch_history",
        "Kill-switch commands since ``start`` for a scope prefix ('' = every scope), newest first: one row per "
        "command (``command_id``). The policy extends a trip still in force by re-issuing the same command "
        "(newer ``issued_at``, later ``expires_at``): ``issues`` counts its signed issues, ``first_issued_at`` "
        "is the trip's start, and the other columns are the newest issue's (copies of one issue from the topic "
        "and the CLI/dashboard count once).",
        """
SELECT last.1 AS issued_at, scope, last.2 AS action, last.3 AS actor, last.4 AS source, last.5 AS reason,
       last.6 AS issued_by, last.7 AS expires_at, last.8 AS min_risk, last.9 AS throttle_per_minute,
       last.10 AS alert_id, last.11 AS key_id, last.12 AS signed, issues, first_issued_at, command_id
FROM (
    SELECT scope, command_id, min(issued_at) AS first_issued_at, uniqExact(issued_at) AS issues,
           argMax(tuple(issued_at, action, actor, source, reason, issued_by, expires_at, min_risk,
                        throttle_per_minute, alert_id, key_id, signature IS NOT NULL AND signature != ''),
                  (issued_at, source)) AS last
    FROM killswitch_audit
    WHERE startsWith(scope, {scope_prefix:String}) AND issued_at >= $START
    GROUP BY scope, command_id
)
ORDER BY issued_at DESC, command_id
LIMIT {limit:UInt32}
""",
        "scope_prefix",
        "start",
        "limit",
        defaults={"scope_prefix": ""},
    ),
    query(
        "killswitch_commands_in_force",
        "The signed command in force per scope, every field of it (a restarted embedded demo re-applies "
        "them to its agents' kill-switch state, which verifies the signatures; the signature comes hex-encoded): "
        "the newest issue per scope unless it is a resume or expired at ``now``.",
        """
SELECT * FROM (
    SELECT scope,
           argMax(tuple(command_id, action, min_risk, throttle_per_minute, issued_at, expires_at, reason,
                        alert_id, issued_by, nonce, key_id, hex(signature)), (issued_at, command_id)) AS c
    FROM killswitch_audit
    GROUP BY scope
)
WHERE c.2 != 'resume' AND (c.6 IS NULL OR c.6 > {now:DateTime64(6, 'UTC')})
ORDER BY scope
""",
        "now",
    ),
    query(
        "killswitch_actions",
        "Kill-switch commands per action, all time.",
        "SELECT action, count() AS commands FROM killswitch_audit GROUP BY action ORDER BY action",
    ),
    # ---------------------------------------------------------------- dead letters
    query(
        "dead_letters_recent",
        "Dead letters per stage, source topic and error type since a time.",
        """
SELECT stage, source_topic, error_type, count() AS n, max(failed_at) AS last_failed_at, any(reason) AS example
FROM dead_letters WHERE failed_at >= $START
GROUP BY stage, source_topic, error_type ORDER BY n DESC
""",
        "start",
    ),
    # ---------------------------------------------------------------- the demo's report (tripwire.demo_report)
    query(
        "first_alert",
        "The first alert of a kind for some agents (or for no agent) since ``start``, and how many incidents; "
        "no row without one.",
        """
SELECT min(created_at) AS first_at, count(DISTINCT incident_id) AS incidents
FROM alerts
WHERE kind = {kind:String} AND (agent_id IN {agents:Array(String)} OR agent_id = '') AND created_at >= $START
HAVING incidents > 0
""",
        "kind",
        "agents",
        "start",
    ),
    query(
        "redacted_tool_args",
        "Calls of one agent's tool since ``start``, and how many of their stored arguments were redacted; no row "
        "without calls.",
        """
SELECT count() AS calls, countIf(position(ifNull(args, ''), '[REDACTED') > 0) AS redacted
FROM tool_calls
WHERE agent_id = {agent_id:String} AND tool_name = {tool:String} AND ts_start >= $START
HAVING calls > 0
""",
        "agent_id",
        "tool",
        "start",
        required=("agent_id",),
    ),
    query(
        "stored_text_hits",
        "Stored tool arguments, prompts and completions that contain a text (a PII check); no row without one.",
        """
SELECT count() AS hits FROM (
    SELECT 1 FROM tool_calls WHERE position(ifNull(args, ''), {text:String}) > 0
    UNION ALL
    SELECT 1 FROM model_calls
    WHERE position(ifNull(prompt, ''), {text:String}) > 0 OR position(ifNull(completion, ''), {text:String}) > 0
)
HAVING hits > 0
""",
        "text",
    ),
    query(
        "stored_totals",
        "Events stored (model calls, tool calls, run lifecycle), total run cost (latest revision of each run) "
        "and blocked tool calls, all time.",
        """
SELECT (SELECT count() FROM model_calls) + (SELECT count() FROM tool_calls) + (SELECT count() FROM run_events)
           AS events,
       (SELECT sum(cost_usd) FROM run_summaries FINAL) AS cost_usd,
       (SELECT count() FROM tool_calls WHERE status = 'blocked') AS blocked_calls
""",
        exactness="exact: FINAL keeps the highest version of each run summary",
    ),
    query(
        "run_window_p95",
        "For each tool of the run's agent and version, the latency window (``window_stats``) holding the run's "
        "first tool call: the streaming p95 (DDSketch, within 1% of the exact value at the same rank) next to the "
        "exact p95 of the stored calls that ended in that window (quantileExact(0.95), the value at rank "
        "floor(0.95 * n)) and the exact value at the sketch's own rank (0.95 * (n - 1), the DDSketch definition: "
        "the streaming p95 is within 1% of it); ``stored_calls`` vs ``window_calls`` shows whether both saw the "
        "same calls.",
        """
WITH (SELECT tuple(any(tenant), any(agent_id), any(agent_version), min(ts_start))
      FROM tool_calls WHERE run_id = {run_id:String}) AS r
SELECT w.name AS tool, w.window_start AS window_start, w.window_end AS window_end,
       any(w.count) AS window_calls, any(w.p95_ms) AS streaming_p95_ms,
       quantileExact(0.95)(t.duration_ms) AS exact_p95_ms,
       arrayElement(arraySort(groupArray(t.duration_ms)), toUInt64(floor(0.95 * (count() - 1))) + 1)
           AS exact_at_sketch_rank_ms,
       count() AS stored_calls
FROM (
    SELECT name, window_start, window_end, count, p95_ms
    FROM window_stats FINAL
    WHERE kind = 'tool' AND tenant = r.1 AND agent_id = r.2 AND agent_version = r.3
      AND window_start <= r.4 AND window_end > r.4
) AS w
INNER JOIN (
    SELECT tool_name, ts_end, duration_ms
    FROM tool_calls
    WHERE tenant = r.1 AND agent_id = r.2 AND agent_version = r.3
      AND ts_start >= r.4 - INTERVAL 1 HOUR AND ts_start < r.4 + INTERVAL 1 HOUR
) AS t ON t.tool_name = w.name
WHERE t.ts_end >= w.window_start AND t.ts_end < w.window_end
GROUP BY tool, window_start, window_end
ORDER BY tool
""",
        "run_id",
        exactness="streaming: DDSketch (1% relative); exact_p95_ms: quantileExact",
    ),
    query(
        "tool_p95_by_version",
        "Tool-call p95 latency (ms) per agent and version, all time: quantileExact(0.95), the stored "
        "duration at rank floor(0.95 * n).",
        """
SELECT agent_id, agent_version, quantileExact(0.95)(duration_ms) AS p95_ms
FROM tool_calls GROUP BY agent_id, agent_version ORDER BY agent_id, agent_version
""",
        exactness="exact quantile (quantileExact)",
    ),
)
