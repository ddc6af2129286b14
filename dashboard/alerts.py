"""Alerts: the live incident feed, evidence linked to runs, acknowledgement."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tripwire.dashboard import _ui, actions, data
from tripwire.dashboard.data import Filters

SEVERITIES = ["critical", "warning", "info"]
STATUSES = ["firing", "resolved"]


def incidents(f: Filters, severities: list[str], statuses: list[str]) -> pd.DataFrame:
    return data.frame("active_alerts", {**f.window(workflow=False), "severities": severities, "statuses": statuses})


def _evidence(row: pd.Series) -> None:
    traces = list(row["evidence_trace_ids"] or [])
    run_ids = [row["run_id"]] if isinstance(row["run_id"], str) and row["run_id"] else []
    runs = data.frame("evidence_runs", {"trace_ids": traces, "run_ids": run_ids})
    st.markdown(
        f"**{row['summary']}**  \nscope `{row['scope']}` · observed {row['observed']:g} vs threshold "
        f"{row['threshold']:g} · {row['count']} occurrence(s) · first {row['created_at']:%Y-%m-%d %H:%M:%S} UTC"
    )
    if len(runs):
        st.dataframe(runs.assign(link=runs["run_id"].map(_ui.run_url)), hide_index=True, key="al_evidence",
                     column_order=["link", "started_at", "agent_id", "agent_version", "outcome", "cost_usd"],
                     column_config={"link": st.column_config.LinkColumn("evidence run", display_text=r"run_id=(.*)")})
    else:
        st.caption("No stored run matches this alert's evidence yet.")


def _ack(row: pd.Series) -> None:
    if isinstance(row["acked_by"], str) and row["acked_by"]:
        st.success(f"Acknowledged by {row['acked_by']} at {row['acked_at']:%H:%M:%S} UTC: {row['ack_note'] or '-'}")
    if not _ui.can(actions.Action.ACK):
        st.caption("Acknowledging needs the on-call role.")
        return
    note = st.text_input("Note", key="al_note", max_chars=actions.MAX_NOTE_CHARS)
    if st.button("Acknowledge", key="al_ack", type="primary"):
        try:
            actions.ack_alert(_ui.current_actor(), tenant=row["tenant"], incident_id=row["incident_id"], note=note)
            st.success(f"Incident {row['incident_id']} acknowledged.")
            st.rerun()
        except Exception as e:
            _ui.show_error(e, "acknowledge")


def body(f: Filters) -> None:
    c = st.columns(2)
    severities = c[0].multiselect("Severity", SEVERITIES, key="al_sev")
    statuses = c[1].multiselect("Status", STATUSES, default=None, key="al_status")
    df = incidents(f, severities, statuses)
    if not len(df):
        if not data.rows("stored_counts")[0]["alerts"]:
            _ui.no_data("No alerts yet. Alerts come from the processors (`tripwire process`, or `tripwire demo`).")
        else:
            st.info("No alert matches these filters.")
        return
    firing = df[df["status"] == "firing"]
    m = st.columns(4)
    m[0].metric("Incidents", len(df))
    m[1].metric("Firing", len(firing))
    m[2].metric("Critical firing", int((firing["severity"] == "critical").sum()))
    m[3].metric("Unacknowledged firing", int(firing["acked_by"].isna().sum()))
    view = df.assign(acked=df["acked_by"].fillna(""))
    st.dataframe(view, hide_index=True, key="al_table", column_order=[
        "updated_at", "severity", "status", "kind", "scope", "observed", "threshold", "count", "summary", "acked",
        "incident_id"])
    ids = list(df["incident_id"])
    kinds = dict(zip(df["incident_id"], df["kind"], strict=True))
    wanted = st.query_params.get("incident_id", "")  # a link from the demo's story panel
    chosen = st.selectbox("Incident", ids, index=ids.index(wanted) if wanted in ids else 0, key="al_incident",
                          format_func=lambda i: f"{i} · {kinds[i]}")
    row = df[df["incident_id"] == chosen].iloc[0]
    _evidence(row)
    _ack(row)


def render() -> None:
    _ui.page("Alerts", body, workflow_filter=False, live=True)
