"""Overview: runs per minute, success rate, cost, latency, trace coverage; split by version and
model; compare two versions side by side."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from tripwire.dashboard import _ui, data
from tripwire.dashboard.data import Filters

SPLITS = {"version": "Agent version", "model": "Model", "none": "No split"}


def kpis(f: Filters) -> dict:
    found = data.rows("run_kpis", f.window())
    return found[0] if found else {"runs": 0}


def _quantiles(df: pd.DataFrame) -> pd.DataFrame:
    if len(df):
        q = df.pop("q")
        for i, name in enumerate(("p50_ms", "p95_ms", "p99_ms")):
            df[name] = q.map(lambda v, i=i: float(v[i]))
        df["error_rate"] = df["errors"] / df["calls"].clip(lower=1)
    return df


def model_calls(f: Filters, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per bucket x split series, per version x model table) of model calls.

    Both come from one pass over the rollup (hourly for long ranges); with a workflow filter the
    table is computed from raw calls instead (the rollups carry no workflow)."""
    df = data.frame("model_call_series", {**f.window(workflow=False), "bucket_s": f.bucket_s, "split": split})
    series = df[df["bucket"].notna()].drop(columns=["version", "call_model"]).reset_index(drop=True)
    if f.workflow:
        table = data.frame("p95_by_version_and_model", f.window()).drop(columns=["p50_ms", "p95_ms", "p99_ms"])
    else:
        table = (df[df["bucket"].isna()].drop(columns=["bucket", "series"])
                 .rename(columns={"version": "agent_version", "call_model": "model"}).reset_index(drop=True))
    return _quantiles(series), _quantiles(table)


def latency_table(f: Filters) -> pd.DataFrame:
    return model_calls(f, "none")[1]


def _kpi_row(k: dict) -> None:
    c = st.columns(5)
    c[0].metric("Runs / minute", _ui.num(k["runs_per_minute"]), help=f"{k['runs']} runs in range")
    c[1].metric("Success rate", _ui.pct(k["success_rate"]), help=f"{k['successes']} of {k['finished']} finished runs")
    c[2].metric("Cost / run", _ui.usd(k["cost_per_run_usd"]))
    c[3].metric("Total spend", _ui.usd(k["total_cost_usd"], 2))
    c[4].metric("Trace coverage", _ui.pct(k["trace_coverage"]), help="runs whose events arrived without seq gaps")
    q = k["run_ms"] or [None, None, None]
    c = st.columns(5)
    c[0].metric("Runs", f"{k['runs']:,}")
    c[1].metric("Run p50", _ui.ms(q[0]))
    c[2].metric("Run p95", _ui.ms(q[1]))
    c[3].metric("Run p99", _ui.ms(q[2]))


def _series(f: Filters, split: str, calls: pd.DataFrame) -> None:
    runs = data.frame("runs_per_bucket", {**f.window(), "bucket_s": f.bucket_s})
    per = _bucket_label(f.bucket_s)
    left, right = st.columns(2)
    if len(runs):
        color = "agent_version" if split == "version" else None
        agg = runs if color else runs.groupby("bucket", as_index=False)[["runs", "cost_usd"]].sum()
        left.plotly_chart(px.line(agg, x="bucket", y="runs", color=color, title=f"Runs per {per}", markers=True),
                          key="ov_runs")
    if len(calls):
        right.plotly_chart(
            px.line(calls, x="bucket", y="p95_ms", color="series", title=f"Model-call p95 latency per {per} (ms)",
                    markers=True),
            key="ov_p95",
        )
        left.plotly_chart(px.bar(calls, x="bucket", y="cost_usd", color="series", title=f"Model spend per {per} ($)"),
                          key="ov_cost")
        right.plotly_chart(px.bar(calls, x="bucket", y="calls", color="series", title=f"Model calls per {per}"),
                           key="ov_calls")


def _bucket_label(seconds: int) -> str:
    return {60: "minute", 300: "5 minutes", 900: "15 minutes", 3600: "hour", 14400: "4 hours"}.get(seconds, "day")


def _compare(f: Filters, lat: pd.DataFrame) -> None:
    st.subheader("Compare two versions")
    dims = data.cached_frame("dimensions")
    for column, value in (("tenant", f.tenant), ("agent_id", f.agent), ("workflow", f.workflow)):
        if value:
            dims = dims[dims[column] == value]
    versions = sorted(dims["agent_version"].unique())
    if len(versions) < 2:
        st.caption("Two agent versions are needed for a comparison.")
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("Version A", versions, index=len(versions) - 2, key="cmp_a")
    b = c2.selectbox("Version B", versions, index=len(versions) - 1, key="cmp_b")
    df = data.frame("version_compare", {**f.window(), "versions": [a, b]}).set_index("agent_version")
    for col, v, other in ((c1, a, b), (c2, b, a)):
        if v not in df.index:
            col.caption(f"No runs of {v} in range.")
            continue
        r = df.loc[v]
        o = df.loc[other] if other in df.index else None
        col.markdown(f"**{v}**")
        col.metric("Runs", f"{int(r['runs']):,}")
        col.metric("Success rate", _ui.pct(r["success_rate"]),
                   delta=None if o is None else f"{(r['success_rate'] - o['success_rate']) * 100:+.1f} pp")
        col.metric("Cost / run", _ui.usd(r["cost_per_run_usd"]),
                   delta=None if o is None else f"{r['cost_per_run_usd'] - o['cost_per_run_usd']:+.4f}",
                   delta_color="inverse")
        col.metric("Run p95", _ui.ms(r["p95_run_ms"]))
        col.metric("Call error rate", _ui.pct(r["call_error_rate"], 2))
        col.metric("Trace coverage", _ui.pct(r["trace_coverage"]))
        mine = lat[lat["agent_version"] == v] if len(lat) else lat
        if len(mine):
            col.dataframe(mine[["model", "calls", "p50_ms", "p95_ms", "p99_ms", "error_rate"]],
                          hide_index=True, key=f"cmp_lat_{v}")


def body(f: Filters) -> None:
    k = kpis(f)
    if not k["runs"]:
        _ui.no_data()
        return
    _kpi_row(k)
    split = st.radio("Split by", list(SPLITS), format_func=SPLITS.get, horizontal=True, key="ov_split")
    series, lat = model_calls(f, split)
    _series(f, split, series)
    st.subheader("Model calls by version and model")
    if f.workflow:
        st.caption("With a workflow filter this table comes from raw calls; the model-call charts above read the "
                   "per-minute rollups, which carry no workflow, so they cover every workflow of the selection.")
    if len(lat):
        st.dataframe(lat, hide_index=True, key="ov_lat")
    _compare(f, lat)


def render() -> None:
    _ui.page("Overview", body)
