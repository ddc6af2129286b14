"""Cost: unit economics by workflow and version, model mix, budgets and breaches, top runs, token kinds."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from tripwire.dashboard import _ui, data, queries
from tripwire.dashboard.data import Filters

TOKEN_KINDS = ["input", "cache_read", "cache_write", "output", "reasoning"]


def token_kinds(f: Filters) -> pd.DataFrame:
    r = data.rows(queries.COST_BY_TOKEN_KIND, f.params())[0]
    return pd.DataFrame({
        "kind": TOKEN_KINDS,
        "cost_usd": [float(r[k] or 0) for k in TOKEN_KINDS],
        "tokens": [int(r[f"{k}_tokens"] or 0) for k in TOKEN_KINDS],
    }).assign(unknown_cost_calls=int(r["unknown_cost_calls"] or 0))


def body(f: Filters) -> None:
    by_wv = data.frame(queries.COST_BY_WORKFLOW_VERSION, f.params())
    if not len(by_wv):
        _ui.no_data()
        return
    total = float(by_wv["total_cost_usd"].sum())
    runs = int(by_wv["runs"].sum())
    budget = data.frame(queries.BUDGET_BY_AGENT, f.params())
    m = st.columns(4)
    m[0].metric("Total spend", _ui.usd(total, 2))
    m[1].metric("Cost / run", _ui.usd(total / runs if runs else None))
    m[2].metric("Runs", f"{runs:,}")
    m[3].metric("Budget breaches", f"{int(budget['any_breaches'].sum()) if len(budget) else 0}")

    st.subheader("Cost per run by workflow and version")
    left, right = st.columns([3, 2])
    left.dataframe(by_wv, hide_index=True, key="co_wv")
    right.plotly_chart(px.bar(by_wv, x="workflow", y="cost_per_run_usd", color="agent_version", barmode="group",
                              title="Cost per run ($)"), key="co_wv_chart")

    st.subheader("Model mix")
    mix = data.frame(queries.MODEL_MIX, f.params())
    left, right = st.columns([3, 2])
    left.dataframe(mix, hide_index=True, key="co_mix")
    if len(mix) and float(mix["cost_usd"].sum()) > 0:
        right.plotly_chart(px.pie(mix, names="model", values="cost_usd", title="Spend by model"), key="co_mix_chart")

    st.subheader("Spend against budget caps")
    st.caption("A breach is a run that used 100% or more of a budget it declared (cost, steps, tool calls, tokens).")
    st.dataframe(budget, hide_index=True, key="co_budget")
    breaches = data.frame(queries.BUDGET_BREACHES, f.params())
    if len(breaches):
        st.dataframe(breaches.assign(link=breaches["run_id"].map(_ui.run_url)), hide_index=True, key="co_breaches",
                     column_config={"link": st.column_config.LinkColumn("run", display_text=r"run_id=(.{8})")})

    st.subheader("Top expensive runs")
    top = data.frame(queries.TOP_EXPENSIVE_RUNS, {**f.params(), "limit": 20})
    st.dataframe(top.assign(link=top["run_id"].map(_ui.run_url)), hide_index=True, key="co_top",
                 column_order=["link", "cost_usd", "agent_id", "agent_version", "workflow", "outcome", "model_calls",
                               "tool_calls", "tokens", "started_at"],
                 column_config={"link": st.column_config.LinkColumn("run", display_text=r"run_id=(.{8})")})

    st.subheader("Cost by token kind")
    kinds = token_kinds(f)
    left, right = st.columns([2, 3])
    left.dataframe(kinds[["kind", "cost_usd", "tokens"]], hide_index=True, key="co_kinds")
    right.plotly_chart(px.bar(kinds, x="kind", y="cost_usd", title="Spend by token kind ($)"), key="co_kinds_chart")
    unknown = int(kinds["unknown_cost_calls"].iloc[0])
    if unknown:
        st.caption(f"{unknown} model calls had no known price and are not in these sums.")


def render() -> None:
    _ui.page("Cost", body)
