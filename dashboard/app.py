"""The tripwire dashboard: ``streamlit run app.py`` (or ``tripwire dashboard --store URL``)."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="tripwire", page_icon=":material/bolt:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", url_path="overview", default=True),
    st.Page("pages/runs.py", title="Runs", icon=":material/account_tree:", url_path="runs"),
    st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications_active:", url_path="alerts"),
    st.Page("pages/killswitch.py", title="Kill switch", icon=":material/power_settings_new:", url_path="killswitch"),
    st.Page("pages/cost.py", title="Cost", icon=":material/payments:", url_path="cost"),
    st.Page("pages/sql.py", title="SQL", icon=":material/terminal:", url_path="sql"),
]

st.navigation(PAGES).run()
