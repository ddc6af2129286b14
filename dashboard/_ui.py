"""Shared page furniture: the filter sidebar, the error guard, the empty state, formatting."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from tripwire.core.errors import TripwireError
from tripwire.dashboard import data
from tripwire.dashboard.actions import Action, Actor
from tripwire.dashboard.data import RANGES, Filters

log = logging.getLogger(__name__)

ALL = ""
DEFAULT_RANGE = "Last 24 hours"


def current_actor() -> Actor:
    """Who is acting: the signed-in user and their role (or, in development mode, the operator)."""
    from tripwire.dashboard._signin import current_actor as signed_in

    return signed_in()


def can(action: Action) -> bool:
    """Whether to show the controls of ``action`` (the server checks again when it is carried out)."""
    from tripwire.dashboard.roles import can as role_can

    return role_can(current_actor(), action)


def error_message(e: BaseException) -> str:
    if isinstance(e, TripwireError):
        return str(e)
    return f"unexpected {type(e).__name__}; the details are in the dashboard's log"


def show_error(e: BaseException, what: str = "") -> None:
    if not isinstance(e, TripwireError):
        log.exception("dashboard page error what=%s", what or "-")
    st.error(f"{what + ': ' if what else ''}{error_message(e)}")


def guarded(fn: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any) -> Any:
    """Run a page section; any failure becomes a message (never a stack trace). Returns None on failure."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        show_error(e, what)
        return None


def _keep(key: str, default: Any, valid: Callable[[Any], bool] = lambda v: True) -> None:
    """Widget state that survives page switches: a shadow copy restores it when the widget reappears."""
    shadow = f"_keep_{key}"
    if key not in st.session_state:
        value = st.session_state.get(shadow, default)
        st.session_state[key] = value if valid(value) else default


def _save(key: str) -> Callable[[], None]:
    def save() -> None:
        st.session_state[f"_keep_{key}"] = st.session_state[key]

    return save


def _choice(label: str, key: str, options: list[str]) -> str:
    _keep(key, ALL, lambda v: v in options)
    return st.sidebar.selectbox(
        label, options, key=key, on_change=_save(key), format_func=lambda v: v if v != ALL else "All"
    )


def sidebar_filters(*, workflow: bool = True) -> Filters:
    """The time range and tenant / agent / workflow filters (choices from the data)."""
    _keep("f_range", DEFAULT_RANGE, lambda v: v in RANGES)
    label = st.sidebar.selectbox("Time range", list(RANGES), key="f_range", on_change=_save("f_range"))
    dims = data.cached_frame("dimensions")
    tenants = [ALL, *sorted(dims["tenant"].unique())] if len(dims) else [ALL]
    tenant = _choice("Tenant", "f_tenant", tenants)
    if tenant:
        dims = dims[dims["tenant"] == tenant]
    agents = [ALL, *sorted(dims["agent_id"].unique())] if len(dims) else [ALL]
    agent = _choice("Agent", "f_agent", agents)
    flow = ALL
    if workflow:
        if agent:
            dims = dims[dims["agent_id"] == agent]
        flows = [ALL, *sorted(dims["workflow"].unique())] if len(dims) else [ALL]
        flow = _choice("Workflow", "f_workflow", flows)
    return Filters.for_range(label, tenant=tenant, agent=agent, workflow=flow)


def auto_refresh_interval(default_on: bool = False) -> float | None:
    """The sidebar auto-refresh control; seconds between refreshes, or None when off.

    Live pages (the alert feed) start with it on; the choice is remembered per page."""
    key = "f_live_feed" if default_on else "f_live"
    _keep(key, default_on)
    on = st.sidebar.toggle("Auto-refresh", key=key, on_change=_save(key),
                           help=f"re-run this page every {data.settings().refresh_s} s")
    if not on:
        return None
    return float(data.settings().refresh_s)


def page(title: str, body: Callable[[Filters], None], *, workflow_filter: bool = True, live: bool = False) -> None:
    """Title, filters, then the body, re-run every ``refresh_s`` while auto-refresh is on."""
    st.title(title)
    filters = guarded(sidebar_filters, workflow=workflow_filter, what="filters")
    if filters is None:
        return
    every = auto_refresh_interval(live)
    if every:
        st.fragment(run_every=every)(lambda: guarded(body, filters))()
    else:
        guarded(body, filters)


def no_data(message: str = data.NO_DATA_HINT) -> None:
    st.info(message, icon=":material/hourglass_empty:")


# -- formatting -------------------------------------------------------------------------------------


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def usd(v: Any, digits: int = 4) -> str:
    return "-" if _missing(v) else f"${float(v):,.{digits}f}"


def pct(v: Any, digits: int = 1) -> str:
    return "-" if _missing(v) else f"{float(v) * 100:.{digits}f}%"


def ms(v: Any) -> str:
    return "-" if _missing(v) else f"{float(v):,.0f} ms"


def num(v: Any, digits: int = 2) -> str:
    return "-" if _missing(v) else f"{float(v):,.{digits}f}"


def run_url(run_id: str) -> str:
    return f"runs?run_id={run_id}"
