"""Overview: runs per minute, success rate, cost, latency, trace coverage; split by version and
model; compare two versions side by side."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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


P95_HELP = ("p95 = the t-digest sketch's 0.95 rank (ClickHouse quantilesTDigest; within about 1% of the rank), "
            "so it can differ slightly from quantile(0.95) or quantileExact(0.95) in SQL. Run p50/p95/p99 are exact "
            "(quantileExact over run durations).")


def chart_bucket(f: Filters) -> int:
    """Bucket size that fits the data in range (not the range itself): <= 120 points."""
    found = data.rows("data_span", f.window())
    if not found:
        return f.bucket_s
    return f.chart_bucket_s(_utc(found[0]["first"]), _utc(found[0]["last"]))


def _utc(v: object) -> datetime | None:
    if v is None:
        return None
    ts = v if isinstance(v, datetime) else pd.Timestamp(v).to_pydatetime()
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def model_calls(f: Filters, split: str, bucket_s: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per bucket x split series, per version x model table) of model calls.

    Both come from one pass over the rollup (hourly for long ranges; raw calls for buckets under a
    minute); with a workflow filter the table is computed from raw calls instead (the rollups carry no
    workflow)."""
    bucket = bucket_s or f.bucket_s
    df = data.frame("model_call_series", {**f.window(workflow=False), "bucket_s": bucket, "split": split})
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
    c[0].metric("Runs / minute", _ui.num(k["runs_per_minute"]),
                help=f"runs ÷ minutes of the selected range that have data: {k['runs']} runs in "
                     f"{k['minutes_with_data']} minute(s) with runs")
    c[1].metric("Success rate", _ui.pct(k["success_rate"]), help=f"{k['successes']} of {k['finished']} finished runs")
    c[2].metric("Cost / run", _ui.usd(k["cost_per_run_usd"]))
    c[3].metric("Total spend", _ui.usd(k["total_cost_usd"], 2))
    c[4].metric("Trace coverage", _ui.pct(k["trace_coverage"]), help="runs whose events arrived without seq gaps")
    q = k["run_ms"] or [None, None, None]
    c = st.columns(5)
    c[0].metric("Runs", f"{k['runs']:,}")
    c[1].metric("Run p50", _ui.ms(q[0]))
    c[2].metric("Run p95", _ui.ms(q[1]), help="exact: quantileExact(0.95) of run durations")
    c[3].metric("Run p99", _ui.ms(q[2]))


def zero_filled(df: pd.DataFrame, series: str | None, values: list[str], bucket_s: int) -> pd.DataFrame:
    """Counts and sums per bucket for every series over every bucket of the chart's span, 0 where a series had
    no rows: a version that stopped (or started) running shows zeros there, not a line drawn across the gap.
    (Quantiles are not filled: a bucket without calls has no latency.)"""
    if not len(df):
        return df
    start, end = df["bucket"].min(), df["bucket"].max()
    grid = pd.date_range(start, end, freq=pd.Timedelta(seconds=bucket_s))
    keys = ["bucket"] if series is None else ["bucket", series]
    index = grid.rename("bucket") if series is None else pd.MultiIndex.from_product(
        [grid, sorted(df[series].unique())], names=keys)
    summed = df.groupby(keys)[values].sum()
    return summed.reindex(index, fill_value=0).reset_index()


def _series(f: Filters, split: str, calls: pd.DataFrame, bucket_s: int) -> None:
    runs = data.frame("runs_per_bucket", {**f.window(), "bucket_s": bucket_s})
    per = _bucket_label(bucket_s)
    left, right = st.columns(2)
    if len(runs):
        color = "agent_version" if split == "version" else None
        agg = zero_filled(runs, color, ["runs", "cost_usd"], bucket_s)
        left.plotly_chart(_time_axes(px.line(agg, x="bucket", y="runs", color=color, title=f"Runs per {per}",
                                             markers=True), bucket_s), key="ov_runs")
    if len(calls):
        sums = zero_filled(calls, "series", ["calls", "cost_usd"], bucket_s)
        right.plotly_chart(
            _time_axes(px.line(calls, x="bucket", y="p95_ms", color="series",
                               title=f"Model-call p95 latency per {per} (ms; t-digest rank, ~1%)", markers=True),
                       bucket_s),
            key="ov_p95",
        )
        left.plotly_chart(_time_axes(px.bar(sums, x="bucket", y="cost_usd", color="series",
                                            title=f"Model spend per {per} ($)"), bucket_s), key="ov_cost")
        right.plotly_chart(_time_axes(px.bar(sums, x="bucket", y="calls", color="series",
                                             title=f"Model calls per {per}"), bucket_s), key="ov_calls")
        st.caption(P95_HELP)


def _bucket_label(seconds: int) -> str:
    return {10: "10 seconds", 30: "30 seconds", 60: "minute", 300: "5 minutes", 900: "15 minutes", 3600: "hour",
            14400: "4 hours"}.get(seconds, "day")


def _time_axes(fig: Any, bucket_s: int) -> Any:
    """Readable time ticks: clock times for short buckets, dates with hours for long ones."""
    fmt = next(f for limit, f in ((60, "%H:%M:%S"), (3600, "%H:%M"), (86400, "%b %d %H:%M"), (None, "%b %d"))
               if limit is None or bucket_s < limit)
    fig.update_xaxes(tickformat=fmt, title_text=None)
    return fig


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


def _feed() -> None:
    """The embedded demo's story: one line per injected incident (demo mode only)."""
    rows = data.feed_rows()
    if rows is None:
        return
    st.subheader("What happened (demo)")
    if not rows:
        st.caption("The first incident is injected about 10 s after the demo starts; all seven kinds within a minute "
                   "of each 3-minute cycle.")
        return
    lines = []
    for r in rows[:20]:
        links = []
        if r["alert_incident"]:
            links.append(f"[alert](alerts?incident_id={r['alert_incident']})")
        if r["run_id"]:
            links.append(f"[run trace]({_ui.run_url(r['run_id'])})")
        if r["command_id"]:
            links.append(f"[kill-switch audit](killswitch?command_id={r['command_id']})")
        at = r["at"].strftime("%H:%M:%S")
        lines.append(f"- `{at}` {r['story']}" + (" · " + " · ".join(links) if links else ""))
    st.markdown("\n".join(lines))


def body(f: Filters) -> None:
    _feed()
    k = kpis(f)
    if not k["runs"]:
        _ui.no_data()
        return
    _kpi_row(k)
    split = st.radio("Split by", list(SPLITS), format_func=SPLITS.get, horizontal=True, key="ov_split")
    bucket = chart_bucket(f)
    series, lat = model_calls(f, split, bucket)
    _series(f, split, series, bucket)
    st.subheader("Model calls by version and model")
    if f.workflow:
        st.caption("With a workflow filter this table comes from raw calls; the model-call charts above read the "
                   "per-minute rollups, which carry no workflow, so they cover every workflow of the selection.")
    if len(lat):
        st.dataframe(lat, hide_index=True, key="ov_lat")
    _compare(f, lat)


def render() -> None:
    _ui.page("Overview", body)
