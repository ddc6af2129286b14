"""Cost: unit economics by workflow and version, model mix, budgets and breaches, top runs, token kinds."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from tripwire.dashboard import _ui, data
from tripwire.dashboard.data import Filters

TOKEN_KINDS = ["input", "cache_read", "cache_write", "output", "reasoning"]
BREACH_COLUMNS = ["run_id", "started_at", "workflow", "outcome", "cost_usd", "max_budget_pct"]


def unit_economics(f: Filters) -> pd.DataFrame:
    return data.frame("cost_by_workflow_version", f.window())


def token_kinds_of(wv: pd.DataFrame) -> pd.DataFrame:
    """Cost and tokens per token kind, summed over the workflow x version groups."""
    def total(col: str) -> float:
        return float(wv[col].sum()) if len(wv) else 0.0

    return pd.DataFrame({
        "kind": TOKEN_KINDS,
        "cost_usd": [total(k) for k in TOKEN_KINDS],
        "tokens": [int(total(f"{k}_tokens")) for k in TOKEN_KINDS],
    })


def token_kinds(f: Filters) -> pd.DataFrame:
    return token_kinds_of(unit_economics(f))


def budgets(f: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per agent version: caps, breaches; and the breaching runs (newest first)."""
    by_agent = data.frame("budgets", f.window())
    rows = [
        (agent, version, *run)
        for agent, version, runs in zip(by_agent["agent_id"], by_agent["agent_version"], by_agent["breaching"],
                                        strict=True)
        for run in runs
    ]
    breaches = pd.DataFrame(rows, columns=["agent_id", "agent_version", *BREACH_COLUMNS])
    breaches = breaches.sort_values(["started_at", "run_id"], ascending=[False, True]).reset_index(drop=True)
    return by_agent.drop(columns=["breaching"]), breaches


def _link(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(link=df["run_id"].map(_ui.run_url))


LINK = {"link": st.column_config.LinkColumn("run", display_text=r"run_id=(.{8})")}


def body(f: Filters) -> None:
    wv = unit_economics(f)
    if not len(wv):
        _ui.no_data()
        return
    total = float(wv["total_cost_usd"].sum())
    runs = int(wv["runs"].sum())
    by_agent, breaches = budgets(f)
    m = st.columns(4)
    m[0].metric("Total spend", _ui.usd(total, 2))
    m[1].metric("Cost / run", _ui.usd(total / runs if runs else None))
    m[2].metric("Runs", f"{runs:,}")
    m[3].metric("Budget breaches", f"{int(by_agent['any_breaches'].sum()) if len(by_agent) else 0}")

    st.subheader("Cost per run by workflow and version")
    left, right = st.columns([3, 2])
    left.dataframe(wv[["workflow", "agent_version", "runs", "total_cost_usd", "cost_per_run_usd", "p95_cost_usd",
                       "successes", "cost_per_success_usd"]], hide_index=True)
    right.plotly_chart(px.bar(wv, x="workflow", y="cost_per_run_usd", color="agent_version", barmode="group",
                              title="Cost per run ($)"), key="co_wv_chart")

    st.subheader("Model mix")
    mix = data.frame("model_mix", f.window(workflow=False))
    left, right = st.columns([3, 2])
    left.dataframe(mix, hide_index=True)
    if len(mix) and float(mix["cost_usd"].sum()) > 0:
        right.plotly_chart(px.pie(mix, names="model", values="cost_usd", title="Spend by model"), key="co_mix_chart")

    st.subheader("Spend against budget caps")
    st.caption("A breach is a run that used 100% or more of a budget it declared (cost, steps, tool calls, tokens).")
    st.dataframe(by_agent, hide_index=True)
    if len(breaches):
        st.dataframe(_link(breaches), hide_index=True, column_config=LINK)

    st.subheader("Top expensive runs")
    top = data.frame("top_expensive_runs", {**f.window(), "limit": 20})
    st.dataframe(_link(top), hide_index=True, column_config=LINK,
                 column_order=["link", "cost_usd", "agent_id", "agent_version", "workflow", "outcome", "model_calls",
                               "tool_calls", "tokens", "started_at"])

    st.subheader("Cost by token kind")
    kinds = token_kinds_of(wv)
    left, right = st.columns([2, 3])
    left.dataframe(kinds, hide_index=True)
    right.plotly_chart(px.bar(kinds, x="kind", y="cost_usd", title="Spend by token kind ($)"), key="co_kinds_chart")
    unknown = int(wv["unknown_cost_calls"].sum())
    if unknown:
        st.caption(f"{unknown} model calls had no known price and are not in these sums.")


def render() -> None:
    _ui.page("Cost", body)
