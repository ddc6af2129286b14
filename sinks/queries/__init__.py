"""The one catalog of named, parameterized queries: the dashboard's, the analysts', the release
gate's and the demo report's.

Every value is a ClickHouse server-side parameter (``{name:Type}``); the same SQL runs on chdb
and on a server. Time series and per-model figures read the rollups (``_core.grain``: per minute,
or whole hours from ``*_1h`` plus the partial hours at the ends from ``*_1m`` for whole-hour
buckets and windows of 6 hours or more, the same sums either way). Exactness of the
ReplacingMergeTree tables is stated per query: ``run_summaries`` is read with ``FINAL`` (one row
per run, highest version), the alert history with ``argMax(..., updated_at)``.

Common parameters: ``tenant``, ``agent_id``, ``workflow`` (String, '' = all; ``agent_id`` and
``workflow`` may be left out), ``start``/``end`` (DateTime64 UTC, half-open [start, end)). A run's
time is ``coalesce(started_at, emitted_at)``.

    from tripwire.sinks import queries
    queries.run(store, "cost_per_resolved_ticket", tenant="acme", start=..., end=...)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tripwire.sinks.queries._calls import CALLS, SPLITS, split_column
from tripwire.sinks.queries._core import HOURLY_WINDOW, NamedQuery, bind_query, catalog, grain
from tripwire.sinks.queries._examples import EXAMPLES
from tripwire.sinks.queries._incidents import INCIDENTS
from tripwire.sinks.queries._runs import RUNS
from tripwire.sinks.store import QueryResult, Store

if TYPE_CHECKING:
    import pandas as pd

QUERIES: dict[str, NamedQuery] = catalog(CALLS, RUNS, INCIDENTS)

# What the dashboard pages run (a test checks this against the pages' calls).
DASHBOARD_QUERIES = (
    "dimensions",
    "agents",
    "stored_counts",
    "run_kpis",
    "data_span",
    "runs_per_bucket",
    "model_call_series",
    "p95_by_version_and_model",
    "version_compare",
    "run_search",
    "run_summary",
    "run_trace",
    "run_window_p95",
    "run_alerts",
    "active_alerts",
    "evidence_runs",
    "killswitch_state",
    "killswitch_history",
    "cost_by_workflow_version",
    "model_mix",
    "budgets",
    "top_expensive_runs",
)
ANALYST_QUERIES = (
    "cost_per_resolved_ticket",
    "p95_by_version_and_model",
    "top_expensive_runs",
    "policy_violation_rate_by_version",
    "trace_coverage",
)

__all__ = [
    "ANALYST_QUERIES",
    "DASHBOARD_QUERIES",
    "EXAMPLES",
    "HOURLY_WINDOW",
    "QUERIES",
    "SPLITS",
    "NamedQuery",
    "bind",
    "default_params",
    "grain",
    "run",
    "run_df",
    "split_column",
]


def bind(name: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """SQL and parameters of a named query (choices, e.g. ``split``, go in ``params`` too); an unknown
    query raises KeyError, missing or unexpected parameters and unknown choices QueryError."""
    return bind_query(QUERIES, name, params)


def run(store: Store, name: str, **params: Any) -> QueryResult:
    sql, p = bind(name, params)
    return store.query(sql, p)


def run_df(store: Store, name: str, **params: Any) -> pd.DataFrame:
    sql, p = bind(name, params)
    return store.query_df(sql, p)


_SAMPLE: dict[str, Any] = {
    "agent_id": "",
    "workflow": "",
    "bucket_s": 300,
    "limit": 50,
    "scope_prefix": "",
    "run_id": "",
    "trace_id": "",
    "agent_version": "",
    "versions": [],
    "outcomes": [],
    "min_cost": 0.0,
    "max_cost": 1e12,
    "search": "",
    "alerted": 0,
    "severities": [],
    "statuses": ["firing"],
    "event_ids": [],
    "trace_ids": [],
    "run_ids": [],
    "kind": "",
    "agents": [],
    "tool": "",
    "text": "",
}


def default_params(name: str, *, tenant: str, now: datetime, hours: float = 24.0) -> dict[str, Any]:
    """Reasonable values for every parameter of a query (used by tests and the benchmarks)."""
    base = {**_SAMPLE, "tenant": tenant, "start": now - timedelta(hours=hours), "end": now, "now": now}
    return {p: base[p] for p in QUERIES[name].params}
