"""The tripwire dashboard: ``tripwire dashboard --store URL`` (or ``streamlit run app.py``).

One multipage app: each page is a ``render`` function of its module (no pages/ folder, so the
entry point always runs and owns the navigation).
"""

from __future__ import annotations

import streamlit as st

from tripwire.dashboard import _signin, alerts, console, cost, killswitch, overview, runs
from tripwire.dashboard.actions import Action
from tripwire.dashboard.roles import can

st.set_page_config(page_title="tripwire", page_icon=":material/bolt:", layout="wide")
actor = _signin.gate()  # the sign-in page (and a stop) for a visitor; the dev banner in development mode

PAGES = [
    st.Page(overview.render, title="Overview", icon=":material/monitoring:", url_path="overview", default=True),
    st.Page(runs.render, title="Runs", icon=":material/account_tree:", url_path="runs"),
    st.Page(alerts.render, title="Alerts", icon=":material/notifications_active:", url_path="alerts"),
    st.Page(killswitch.render, title="Kill switch", icon=":material/power_settings_new:", url_path="killswitch"),
    st.Page(cost.render, title="Cost", icon=":material/payments:", url_path="cost"),
]
if can(actor, Action.SQL):  # the console itself checks the role again on every query
    PAGES.append(st.Page(console.render, title="SQL", icon=":material/terminal:", url_path="sql"))

st.navigation(PAGES).run()
