"""Runs explorer: find runs, then read one run's trace as a waterfall ("why did the agent do that?")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from tripwire.dashboard import _ui, data
from tripwire.dashboard.data import Filters

OUTCOMES = ["success", "failure", "escalated", "aborted", "killed", "timed_out", "running"]
MAX_SEARCH_CHARS = 200
STATUS_COLORS = {"ok": "#2e7d32", "error": "#c62828", "timeout": "#ef6c00", "blocked": "#6a1b9a", "denied": "#ad1457"}


def search(f: Filters, *, outcomes: list[str], min_cost: float, max_cost: float, text: str, alerted: bool,
           limit: int = 500) -> pd.DataFrame:
    params = {**f.window(), "outcomes": outcomes, "min_cost": float(min_cost), "max_cost": float(max_cost),
              "search": text.strip()[:MAX_SEARCH_CHARS], "alerted": int(alerted), "limit": limit}
    return data.frame("run_search", params)


TRACE_MARGIN = timedelta(hours=1)


def trace(run_id: str, summary: dict[str, Any] | None = None) -> pd.DataFrame:
    """The run's events in order; its summary (tenant, agent, time span) narrows the scan to the sorting key."""
    params: dict[str, Any] = {"run_id": run_id}  # unhinted: every tenant, agent and time
    if summary and summary.get("started_at") is not None:
        end = summary.get("ended_at") or datetime.now(UTC)
        params.update(tenant=summary["tenant"], agent_id=summary["agent_id"],
                      start=summary["started_at"] - TRACE_MARGIN, end=end + TRACE_MARGIN)
    return data.frame("run_trace", params)


def explain(steps: pd.DataFrame) -> list[str]:
    """One line per step, in order: what the agent did and what stopped it."""
    lines = []
    for r in steps.itertuples():
        if r.kind == "model_call":
            tokens = f"{r.input_tokens} in / {r.output_tokens} out"
            cost = "" if pd.isna(r.cost_usd) else f", {_ui.usd(r.cost_usd, 5)}"
            why = f" ({r.detail})" if isinstance(r.detail, str) and r.detail else ""
            err = f" - error {r.error_type}" if isinstance(r.error_type, str) and r.error_type else ""
            lines.append(f"#{r.seq} model **{r.name}** {r.status}{why}: {tokens}{cost}, {_ui.ms(r.duration_ms)}{err}")
        elif r.kind == "tool_call":
            risk = f" [{r.risk} risk]" if isinstance(r.risk, str) else ""
            line = f"#{r.seq} tool **{r.name}**{risk} {r.status}, {_ui.ms(r.duration_ms)}"
            if isinstance(r.blocked_reason, str) and r.blocked_reason:
                line += f" - blocked: {r.blocked_reason}"
            if isinstance(r.approval_ref, str) and r.approval_ref:
                line += " - after approval"
            if isinstance(r.error_type, str) and r.error_type:
                line += f" - error {r.error_type}"
            lines.append(line)
        elif r.kind == "approval_decision":
            lines.append(f"#{r.seq} approval for **{r.name}**: {r.detail}")
        elif r.kind == "run_started":
            lines.append(f"#{r.seq} run started" + (f" ({r.detail})" if isinstance(r.detail, str) else ""))
        elif r.kind == "run_finished":
            err = f" ({r.error_type})" if isinstance(r.error_type, str) and r.error_type else ""
            lines.append(f"#{r.seq} run finished: **{r.status}**{err}")
    return lines


def _waterfall(steps: pd.DataFrame) -> go.Figure:
    t0 = steps["ts_start"].min()
    offset = (steps["ts_start"] - t0).dt.total_seconds() * 1000
    dur = steps["duration_ms"].clip(lower=1.0)
    labels = [f"#{s} {k}: {n}" for s, k, n in zip(steps["seq"], steps["kind"], steps["name"], strict=True)]
    colors = [STATUS_COLORS.get(s, "#546e7a") for s in steps["status"]]
    fig = go.Figure(go.Bar(
        x=dur, y=labels, base=offset, orientation="h", marker_color=colors,
        hovertext=[f"{s} · {d:.0f} ms" for s, d in zip(steps["status"], steps["duration_ms"], strict=True)],
    ))
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(title="ms since run start")
    fig.update_layout(height=max(220, 34 * len(steps) + 80), margin=dict(l=10, r=10, t=30, b=10),
                      title="Trace waterfall")
    return fig


def run_detail(run_id: str) -> None:
    summary = data.rows("run_summary", {"run_id": run_id})
    steps = trace(run_id, summary[0] if summary else None)
    if not summary and not len(steps):
        st.warning("No run with that id.")
        return
    st.subheader(f"Run {run_id}")
    if summary:
        s = summary[0]
        c = st.columns(6)
        c[0].metric("Outcome", s["outcome"])
        c[1].metric("Cost", _ui.usd(s["cost_usd"], 5))
        c[2].metric("Duration", _ui.ms(s["duration_ms"]))
        c[3].metric("Steps", f"{s['steps']}")
        c[4].metric("Blocked calls", f"{s['blocked_calls']}")
        # missing_seq_count counts the missing seqs; seq_gaps only the ranges of them
        c[5].metric("Missing seqs", f"{s['missing_seq_count']}", help=f"in {s['seq_gaps']} gap(s)")
        st.caption(f"{s['agent_id']} {s['agent_version']} · workflow {s['workflow']} · principal {s['principal']} · "
                   f"trace {s['trace_id']} · budget used {_ui.num(s['budget_cost_pct'], 1)}% of cost cap")
        if s["missing_seqs"]:
            st.warning(f"Events missing from this trace: seq {list(s['missing_seqs'])}")
    alerts = data.frame("run_alerts", {
        "run_id": run_id, "trace_id": summary[0]["trace_id"] if summary else "",
        "event_ids": list(steps["event_id"]) if len(steps) else [],
    })
    if len(alerts):
        st.warning("Alerts tied to this run: " + "; ".join(
            f"{a.severity} {a.kind} ({a.status}): {a.summary}" for a in alerts.itertuples()))
    if not len(steps):
        st.info("No events of this run are stored yet.")
        return
    st.markdown("**Why did the agent do that?**")
    st.markdown("\n".join(f"{i + 1}. {line}" for i, line in enumerate(explain(steps))))
    st.plotly_chart(_waterfall(steps), key="run_waterfall")
    cols = ["seq", "kind", "name", "status", "duration_ms", "input_tokens", "output_tokens", "cache_read_tokens",
            "reasoning_tokens", "cost_usd", "risk", "args", "approval_ref", "blocked_reason", "error_type", "detail"]
    st.dataframe(steps[cols], hide_index=True, key="run_steps")
    _window_p95(run_id)


P95_DEFINITIONS = (
    "p95 of each tool in the latency window holding this run's first tool call. streaming = the processors' "
    "DDSketch (within 1% of the exact value at rank 0.95·(n−1)); exact at sketch rank = that value from the "
    "stored calls; quantileExact = ClickHouse quantileExact(0.95) (rank ⌊0.95·n⌋), what `quantile`-style SQL "
    "gives. With few calls adjacent ranks can be far apart, so the last two may differ by more than 1%."
)


def _window_p95(run_id: str) -> None:
    """The streaming p95 next to the exact ones, where a latency window and stored calls both exist."""
    lat = data.frame("run_window_p95", {"run_id": run_id})
    if not len(lat):
        return
    st.markdown("**Tool latency p95: streaming vs exact**")
    st.caption(P95_DEFINITIONS)
    st.dataframe(lat.rename(columns={"exact_p95_ms": "quantileExact_p95_ms"}), hide_index=True, key="run_p95")


def body(f: Filters) -> None:
    c = st.columns([2, 1, 1, 1, 1])
    text = c[0].text_input("Search run id, trace id or principal", key="rx_search", max_chars=MAX_SEARCH_CHARS)
    outcomes = c[1].multiselect("Outcome", OUTCOMES, key="rx_outcomes")
    min_cost = c[2].number_input("Min cost $", min_value=0.0, value=0.0, step=0.01, format="%.4f", key="rx_min")
    max_cost = c[3].number_input("Max cost $", min_value=0.0, value=1e6, step=0.01, format="%.4f", key="rx_max")
    alerted = c[4].checkbox("With alerts only", key="rx_alerted")
    runs = search(f, outcomes=outcomes, min_cost=min_cost, max_cost=max_cost, text=text, alerted=alerted)
    st.caption(f"{len(runs)} runs" + (" (newest 500)" if len(runs) >= 500 else ""))
    if not len(runs):
        if not data.rows("stored_counts")[0]["runs"]:
            _ui.no_data()
        else:
            st.info("No run matches these filters.")
    else:
        view = runs.assign(link=runs["run_id"].map(_ui.run_url))
        st.dataframe(
            view, hide_index=True, key="rx_table",
            column_order=["link", "started_at", "agent_id", "agent_version", "workflow", "outcome", "cost_usd",
                          "duration_ms", "steps", "errors", "blocked_calls", "seq_gaps", "principal"],
            column_config={"link": st.column_config.LinkColumn("run", display_text=r"run_id=(.{8})")},
        )
    wanted = st.query_params.get("run_id", "")
    options = list(runs["run_id"]) if len(runs) else []
    if wanted and wanted not in options:
        options.insert(0, wanted)
    if not options:
        return
    chosen = st.selectbox("Open run", options, index=options.index(wanted) if wanted else 0, key="rx_run")
    if chosen:
        run_detail(chosen)


def render() -> None:
    _ui.page("Runs explorer", body)
