"""tripwire.dashboard: the Streamlit dashboard for on-call engineers and analysts.

A host process that owns a store (the embedded demo) registers it with ``set_store`` before
serving; ``get_store`` is how every page reaches it.
"""

from tripwire.dashboard.actions import Action, Actor, set_authorizer
from tripwire.dashboard.auth import AuthMode
from tripwire.dashboard.config import DashboardSettings
from tripwire.dashboard.data import get_store, set_command_sink, set_settings, set_store
from tripwire.dashboard.errors import (
    ActionError,
    AuthConfigError,
    DashboardError,
    NoStoreError,
    NotAuthorizedError,
    RolesConfigError,
)
from tripwire.dashboard.roles import Role, RoleMap

__all__ = [
    "Action",
    "ActionError",
    "Actor",
    "AuthConfigError",
    "AuthMode",
    "DashboardError",
    "DashboardSettings",
    "NoStoreError",
    "NotAuthorizedError",
    "Role",
    "RoleMap",
    "RolesConfigError",
    "get_store",
    "set_authorizer",
    "set_command_sink",
    "set_settings",
    "set_store",
]
