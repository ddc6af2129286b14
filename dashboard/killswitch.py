"""Kill switch: what is in force, trip or reset with a reason and a confirmation, the audit trail.

"Disable this agent's autonomy" takes three clicks: open this page, press the agent's button,
confirm (the reason is prefilled and editable).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from tripwire.dashboard import _ui, actions, data
from tripwire.dashboard.data import Filters

ACTIONS = ["disable_autonomy", "force_approval", "freeze_tool", "throttle"]
TTLS = {"No expiry": "", "15 minutes": "15m", "1 hour": "1h", "4 hours": "4h", "24 hours": "24h"}
PENDING = "ks_pending"
QUICK_AGENTS = 12


def active() -> pd.DataFrame:
    df = data.frame("killswitch_state")
    if len(df):
        now = pd.Timestamp(datetime.now(UTC))
        df["age"] = (now - df["issued_at"]).map(_age)
        df["expires_in"] = df["expires_at"].map(lambda t: "never" if pd.isna(t) else _age(t - now))
    return df


def _age(delta: pd.Timedelta) -> str:
    s = int(delta.total_seconds())
    if s < 0:
        return "expired"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _ask(**command: object) -> None:
    st.session_state[PENDING] = command
    st.session_state.pop("ks_reason", None)  # the new command's prefilled reason, not the last one's
    st.session_state.pop("ks_ttl", None)


def _pending() -> None:
    p = st.session_state.get(PENDING)
    if not p:
        return
    verb = "Reset" if p["action"] == "resume" else f"Trip {p['action']}"
    with st.container(border=True):
        st.warning(f"**{verb}** on `{p['scope']}`. Signed and published to every agent; this is audited.")
        reason = st.text_input("Reason", value=p["reason"], key="ks_reason", max_chars=500)
        ttl = ""
        if p["action"] != "resume":
            ttl_label = st.selectbox("Expires", list(TTLS), index=list(TTLS.values()).index(p.get("ttl", "")),
                                     key="ks_ttl")
            ttl = TTLS[ttl_label]
        c = st.columns([1, 1, 4])
        if c[0].button("Confirm", type="primary", key="ks_confirm"):
            actor = _ui.current_actor()
            try:
                if p["action"] == "resume":
                    cmd = actions.reset_switch(actor, scope=p["scope"], reason=reason)
                else:
                    cmd = actions.trip_switch(
                        actor, scope=p["scope"], action=p["action"], reason=reason, ttl=ttl or None,
                        min_risk=p.get("min_risk"), throttle_per_minute=p.get("throttle"),
                    )
                st.session_state.pop(PENDING, None)
                st.session_state["ks_done"] = f"{cmd.action.value} on {cmd.scope} issued (command {cmd.command_id})"
                st.rerun()
            except Exception as e:
                _ui.show_error(e, verb)
        if c[1].button("Cancel", key="ks_cancel"):
            st.session_state.pop(PENDING, None)
            st.rerun()


def _quick(f: Filters, in_force: pd.DataFrame) -> None:
    st.subheader("Disable an agent's autonomy")
    agents = list(data.cached_frame("agents", {"tenant": f.tenant})["agent_id"])
    if f.agent and f.agent in agents:
        agents.remove(f.agent)
        agents.insert(0, f.agent)
    disabled = set(in_force.loc[in_force["action"] == "disable_autonomy", "scope"]) if len(in_force) else set()
    actor = _ui.current_actor().name
    cols = st.columns(4)
    for i, agent in enumerate(agents[:QUICK_AGENTS]):
        scope = f"agent:{agent}"
        label = f"{agent}: autonomy disabled" if scope in disabled else f"Disable {agent}"
        cols[i % 4].button(
            label, key=f"ks_quick_{i}", icon=":material/block:", disabled=scope in disabled,
            on_click=_ask, kwargs=dict(scope=scope, action="disable_autonomy", ttl="",
                                       reason=f"autonomy disabled from the dashboard by {actor}"),
        )
    if len(agents) > QUICK_AGENTS:
        st.caption(f"{len(agents) - QUICK_AGENTS} more agents: use the tenant filter or the form below.")


def _in_force(df: pd.DataFrame) -> None:
    st.subheader("In force")
    if not len(df):
        st.success("No kill switch is in force.")
        return
    st.dataframe(df, hide_index=True, key="ks_active", column_order=[
        "scope", "action", "age", "expires_in", "reason", "issued_by", "alert_id", "min_risk", "throttle_per_minute"])
    if not _ui.can(actions.Action.RESET):
        return
    actor = _ui.current_actor().name
    cols = st.columns(4)
    for i, scope in enumerate(df["scope"]):
        cols[i % 4].button(f"Reset {scope}", key=f"ks_reset_{i}", icon=":material/restart_alt:", on_click=_ask,
                           kwargs=dict(scope=scope, action="resume", reason=f"reset from the dashboard by {actor}"))


def _form() -> None:
    with st.expander("Trip any scope"), st.form("ks_form", border=False):
        scope = st.text_input("Scope", placeholder="agent:refund-assistant/tool:issue_refund", key="ks_f_scope")
        action = st.selectbox("Action", ACTIONS, key="ks_f_action")
        min_risk = st.selectbox("Minimum risk (force_approval)", ["", "low", "medium", "high"], key="ks_f_risk")
        throttle = st.number_input("Calls per minute (throttle)", min_value=1, value=10, key="ks_f_thr")
        reason = st.text_input("Reason", key="ks_f_reason", max_chars=500)
        if st.form_submit_button("Trip…"):
            _ask(scope=scope, action=action, reason=reason, ttl="",
                 min_risk=min_risk if action == "force_approval" and min_risk else None,
                 throttle=int(throttle) if action == "throttle" else None)
            st.rerun()


def _audit(f: Filters) -> None:
    st.subheader("Audit history")
    df = data.frame("killswitch_history", {"start": f.since, "limit": 500})
    if not len(df):
        st.caption("No kill-switch command in this time range.")
        return
    wanted = st.query_params.get("command_id", "")
    if wanted:  # a link from the demo's story panel: that trip's row first
        st.caption(f"Trip {wanted}: one row per command; `issues` counts how often the policy re-issued it.")
        df = df.sort_values("command_id", key=lambda c: c != wanted, kind="stable")
    st.dataframe(df, hide_index=True, key="ks_audit")


def body(f: Filters) -> None:
    done = st.session_state.pop("ks_done", None)
    if done:
        st.success(done)
    _pending()
    in_force = active()
    _in_force(in_force)
    if _ui.can(actions.Action.TRIP):
        _quick(f, in_force)
        _form()
    else:
        st.caption("Tripping and resetting kill switches needs the on-call role.")
    _audit(f)


def render() -> None:
    _ui.page("Kill switch", body, workflow_filter=False)
