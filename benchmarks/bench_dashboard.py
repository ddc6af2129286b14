"""Dashboard page time over 10M synthetic events on chdb.

10M events are generated inside ClickHouse with ``numbers()`` over the last 24 hours (5M model
calls, 3M tool calls, 2M run lifecycle events; 1M run summaries, 20k alert records, 2k
kill-switch commands; 5 tenants, 20 agents, 3 versions each, 6 models), then every page is
rendered under streamlit's AppTest with the "Last 24 hours" range (every row in range):

- ``page_render_ms[page]``: the whole page (all its queries plus building the elements), median;
- ``page_queries_ms[page]``: the time spent in the page's queries alone, median.

The baseline is a bare ``SELECT count() FROM model_calls`` over the same table, same process
(``context_full_scan_ms``, one aggregate scan of the 5M model calls, is printed for scale).
Goal: < 1 s per page. ``python -m benchmarks dashboard`` or ``python benchmarks/bench_dashboard.py``.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks._harness import Result, percentile, report

MODEL_CALLS = 5_000_000
TOOL_CALLS = 3_000_000
RUNS = 1_000_000  # 2 lifecycle events each
ALERTS = 20_000
COMMANDS = 2_000
REPEATS = 5
SPAN_US = 24 * 3600 * 1_000_000 - 60_000_000  # the last 24 hours, minus a minute of margin

_RUN = """
    concat('t', toString(r % 5)) AS tenant, concat('agent-', toString(r % 20)) AS agent_id,
    concat('1.', toString(intDiv(r, 20) % 3), '.0') AS agent_version, concat('wf-', toString(r % 6)) AS workflow,
    'prod' AS environment, concat('user-', toString(r % 5000)) AS principal,
    leftPad(lower(hex(cityHash64(r))), 32, '0') AS trace_id,
    leftPad(lower(hex(cityHash64(number))), 16, '0') AS span_id,
    concat('run-', toString(r)) AS run_id,
    fromUnixTimestamp64Micro(toInt64({start_us:Int64} + intDiv(r * {span_us:Int64}, {runs:Int64}) + k * 400000), 'UTC')
        AS ts_start,
    ts_start + toIntervalMillisecond(50 + cityHash64(number) % 2000) AS ts_end,
    'synthetic' AS src_topic, toUInt32(0) AS src_partition, number AS src_offset
"""
# in the order of the SELECTs below: event_id, then _RUN's columns, then seq
_BASE_COLS = ("event_id, tenant, agent_id, agent_version, workflow, environment, principal, trace_id, span_id, "
              "run_id, ts_start, ts_end, src_topic, src_partition, src_offset, seq")


def _synthesize(store: Any, end: datetime) -> None:
    start_us = int(end.timestamp() * 1_000_000) - SPAN_US
    p = {"start_us": start_us, "span_us": SPAN_US, "runs": RUNS}
    # model calls: 5 per run at seq 1..5; tool calls: 3 per run at seq 6..8; lifecycle at 0 and 9
    store.command(
        f"""INSERT INTO model_calls ({_BASE_COLS}, operation_name, provider, request_model, input_tokens,
            cache_read_tokens, output_tokens, reasoning_tokens, cost_usd, cost_source, status)
        SELECT toString(generateUUIDv4()) AS event_id, {_RUN}, toUInt32(1 + k) AS seq,
            'chat', 'openai', ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'gemini-pro', 'o3', 'llama-70b'][r % 6 + 1],
            toUInt32(100 + number % 900), toUInt32(number % 300), toUInt32(10 + number % 300), toUInt32(number % 50),
            (number % 100) / 10000.0, 'price_table', if(number % 50 = 0, 'error', 'ok')
        FROM (SELECT number, intDiv(number, 5) AS r, number % 5 AS k FROM numbers({{n:UInt64}}))""",
        {**p, "n": MODEL_CALLS},
    )
    store.command(
        f"""INSERT INTO tool_calls ({_BASE_COLS}, tool_name, tool_call_id, risk, args, status, side_effect,
            blocked_reason)
        SELECT toString(generateUUIDv4()) AS event_id, {_RUN}, toUInt32(6 + k) AS seq,
            ['lookup_order', 'issue_refund', 'send_email'][k + 1], toString(number), ['low', 'high', 'medium'][k + 1],
            '{{"order_id": "A-1"}}', multiIf(number % 97 = 0, 'blocked', number % 41 = 0, 'error', 'ok'), k = 1,
            if(number % 97 = 0, 'kill switch: freeze_tool', NULL)
        FROM (SELECT number, intDiv(number, 3) AS r, number % 3 AS k FROM numbers({{n:UInt64}}))""",
        {**p, "n": TOOL_CALLS},
    )
    store.command(
        f"""INSERT INTO run_events ({_BASE_COLS}, event_type, max_cost_usd, outcome, last_seq)
        SELECT toString(generateUUIDv4()) AS event_id, {_RUN}, toUInt32(k * 9) AS seq,
            if(k = 0, 'run_started', 'run_finished'), if(k = 0, 0.05, NULL),
            if(k = 0, NULL, multiIf(r % 20 = 0, 'failure', r % 150 = 0, 'escalated', 'success')), if(k = 0, NULL, 9)
        FROM (SELECT number, intDiv(number, 2) AS r, number % 2 AS k FROM numbers({{n:UInt64}}))""",
        {**p, "n": 2 * RUNS},
    )
    store.command(
        """INSERT INTO run_summaries (run_id, tenant, agent_id, agent_version, workflow, environment, principal,
            trace_id, started_at, ended_at, duration_ms, outcome, cost_usd, cost_by_model, cost_input_usd,
            cost_cache_read_usd, cost_cache_write_usd, cost_output_usd, cost_reasoning_usd, cost_unknown_calls,
            input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, steps, model_calls,
            tool_calls, errors, blocked_calls, approvals, denials, budget_cost_pct, budget_steps_pct, events_seen,
            missing_seqs, seq_gaps, version, emitted_at, src_topic, src_partition, src_offset)
        SELECT concat('run-', toString(r)), concat('t', toString(r % 5)), concat('agent-', toString(r % 20)),
            concat('1.', toString(intDiv(r, 20) % 3), '.0'), concat('wf-', toString(r % 6)), 'prod',
            concat('user-', toString(r % 5000)), leftPad(lower(hex(cityHash64(r))), 32, '0'),
            fromUnixTimestamp64Micro(toInt64({start_us:Int64} + intDiv(r * {span_us:Int64}, {runs:Int64})), 'UTC') AS s,
            s + toIntervalMillisecond(2000 + r % 4000), toFloat64(2000 + r % 4000),
            multiIf(r % 20 = 0, 'failure', r % 150 = 0, 'escalated', 'success'), (r % 100) / 2000.0 AS c,
            map('gpt-4o', c), c * 0.5, c * 0.05, c * 0.05, c * 0.35, c * 0.05, 0,
            2500, 300, 0, 800, 50, 8, 5, 3, toUInt32(r % 50 = 0), toUInt32(r % 97 = 0), 0, 0,
            c / 0.05 * 100, 80, if(r % 500 = 0, 9, 10), if(r % 500 = 0, [4], []), toUInt32(r % 500 = 0), 1,
            s + toIntervalSecond(10), 'synthetic', toUInt32(0), r
        FROM (SELECT number AS r FROM numbers({runs:UInt64}))""",
        p,
    )
    store.command(
        """INSERT INTO alerts (alert_id, incident_id, kind, severity, scope, tenant, agent_id, run_id, observed,
            threshold, count, evidence_event_ids, evidence_trace_ids, summary, status, created_at, updated_at,
            src_topic, src_partition, src_offset)
        SELECT toString(number), concat('inc-', toString(intDiv(number, 2))),
            ['cost_spike', 'tool_error_rate', 'runaway_loop', 'shared_credential'][number % 4 + 1],
            ['info', 'warning', 'critical'][number % 3 + 1], concat('agent:agent-', toString(number % 20)),
            concat('t', toString(number % 5)), concat('agent-', toString(number % 20)),
            concat('run-', toString(number * 37 % {runs:UInt64})), 2.0 + number % 5, 1.0, 1 + number % 2, [],
            [leftPad(lower(hex(cityHash64(number * 37 % {runs:UInt64}))), 32, '0')], 'synthetic alert',
            if(number % 5 = 0, 'resolved', 'firing'),
            fromUnixTimestamp64Micro(toInt64({start_us:Int64} + intDiv(number * {span_us:Int64}, {n:Int64})), 'UTC')
                AS t, t + toIntervalSecond(30 * (number % 2)), 'synthetic', toUInt32(0), number
        FROM numbers({n:UInt64})""",
        {**p, "n": ALERTS},
    )
    store.command(
        """INSERT INTO killswitch_audit (source, actor, command_id, scope, action, issued_at, expires_at, reason,
            issued_by, nonce, src_topic, src_partition, src_offset)
        SELECT 'topic', 'policy:auto', toString(generateUUIDv4()), concat('agent:agent-', toString(number % 40)),
            ['freeze_tool', 'disable_autonomy', 'resume', 'force_approval'][number % 4 + 1],
            fromUnixTimestamp64Micro(toInt64({start_us:Int64} + intDiv(number * {span_us:Int64}, {n:Int64})), 'UTC'),
            NULL, 'synthetic', 'policy:auto', toString(number), 'synthetic', toUInt32(0), number
        FROM numbers({n:UInt64})""",
        {**p, "n": COMMANDS},
    )
    for t in ("model_calls", "tool_calls", "run_events", "run_summaries", "model_calls_1m", "tool_calls_1m"):
        store.command(f"OPTIMIZE TABLE {t} FINAL")


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


class _QueryClock:
    """Accumulates the time the pages spend in ``data.frame`` / ``data.rows``."""

    def __init__(self) -> None:
        from tripwire.dashboard import data

        self.data = data
        self.total_ms = 0.0
        self._frame, self._rows = data.frame, data.rows

    def __enter__(self) -> _QueryClock:
        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            def timed(*a: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    self.total_ms += (time.perf_counter() - t) * 1000

            return timed

        self.data.frame, self.data.rows = wrap(self._frame), wrap(self._rows)
        return self

    def __exit__(self, *exc: object) -> None:
        self.data.frame, self.data.rows = self._frame, self._rows


def _render(module: str, **query: str) -> tuple[float, float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(f"from tripwire.dashboard.{module} import render\nrender()\n", default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    with _QueryClock() as clock:
        t = time.perf_counter()
        at.run()
        render_ms = (time.perf_counter() - t) * 1000
    if at.exception or at.error:
        raise RuntimeError(f"{module} failed: {[e.value for e in [*at.exception, *at.error]]}")
    return render_ms, clock.total_ms


def run() -> list[Result]:
    from tripwire.dashboard import DashboardSettings, console, data
    from tripwire.sinks.migrations import migrate
    from tripwire.sinks.store import open_store

    path = tempfile.mkdtemp(prefix="tripwire-bench-dash-")
    out: list[Result] = []
    store = open_store(f"chdb://{path}?database=bench")
    try:
        migrate(store)
        t = time.perf_counter()
        _synthesize(store, datetime.now(UTC))
        gen_s = time.perf_counter() - t
        events = int(store.query(
            "SELECT (SELECT count() FROM model_calls) + (SELECT count() FROM tool_calls) "
            "+ (SELECT count() FROM run_events)").scalar())
        assert events == MODEL_CALLS + TOOL_CALLS + 2 * RUNS, events
        data.set_store(store)
        data.set_settings(DashboardSettings(operator="bench"))
        base = [_timed(lambda: store.query("SELECT count() FROM model_calls")) for _ in range(REPEATS * 3)]
        baseline = statistics.median(base)
        out.append(Result("baseline_count_ms", baseline, "ms", extra={"sql": "SELECT count() FROM model_calls"}))
        scan_sql = "SELECT sum(cost_usd), quantileTDigest(0.95)(duration_ms) FROM model_calls"
        scan = statistics.median(_timed(lambda: store.query(scan_sql)) for _ in range(REPEATS))
        out.append(Result("context_full_scan_ms", scan, "ms", extra={"sql": scan_sql, "rows": MODEL_CALLS}))
        pages: list[tuple[str, str, dict[str, str]]] = [
            ("overview", "overview", {}),
            ("runs", "runs", {"run_id": "run-123457"}),
            ("alerts", "alerts", {}),
            ("killswitch", "killswitch", {}),
            ("cost", "cost", {}),
            ("sql", "console", {}),
        ]
        for name, module, query in pages:
            _render(module, **query)  # warm-up (imports, caches)
            samples = [_render(module, **query) for _ in range(REPEATS)]
            render = [s[0] for s in samples]
            queries = [s[1] for s in samples]
            extra = {"events": events, "runs": RUNS, "range": "Last 24 hours", "generate_s": round(gen_s, 1),
                     "p95_ms": round(percentile(render, 95), 1), "repeats": REPEATS}
            out.append(Result(f"page_render_ms[{name}]", statistics.median(render), "ms",
                              ratio=statistics.median(render) / baseline, baseline=baseline, goal="< 1000 ms",
                              extra=extra))
            out.append(Result(f"page_queries_ms[{name}]", statistics.median(queries), "ms",
                              ratio=statistics.median(queries) / baseline, baseline=baseline, goal="< 1000 ms",
                              extra={"events": events}))
        # the heaviest SQL-console example, through the read-only connection
        from tripwire.sinks import queries as Q

        sql = Q.EXAMPLES["p95 model latency by version and model"]
        console.run_readonly(sql, max_rows=1000, timeout_s=30)
        ex = [_timed(lambda: console.run_readonly(sql, max_rows=1000, timeout_s=30)) for _ in range(REPEATS)]
        out.append(Result("sql_example_ms[p95 by version and model]", statistics.median(ex), "ms",
                          ratio=statistics.median(ex) / baseline, baseline=baseline, goal="< 1000 ms"))
    finally:
        data.set_store(None)
        data.set_settings(None)
        console.close_readers()
        store.close()
        shutil.rmtree(path, ignore_errors=True)
    return out


if __name__ == "__main__":
    report(run())
