"""tripwire.dashboard: the Streamlit dashboard for on-call engineers and analysts.

A host process that owns a store (the embedded demo) registers it with ``set_store`` before
serving; ``get_store`` is how every page reaches it.
"""

from tripwire.dashboard.actions import Action, Actor, set_authorizer
from tripwire.dashboard.config import DashboardSettings
from tripwire.dashboard.data import get_store, set_command_sink, set_settings, set_store
from tripwire.dashboard.errors import ActionError, DashboardError, NoStoreError, NotAuthorizedError

__all__ = [
    "Action",
    "ActionError",
    "Actor",
    "DashboardError",
    "DashboardSettings",
    "NoStoreError",
    "NotAuthorizedError",
    "get_store",
    "set_authorizer",
    "set_command_sink",
    "set_settings",
    "set_store",
]
