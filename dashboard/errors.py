"""Errors of ``tripwire.dashboard``, all under one root (``DashboardError``)."""

from __future__ import annotations

from tripwire.core.errors import TripwireError


class DashboardError(TripwireError):
    """Root of the dashboard errors; pages show them as messages, never as stack traces."""


class NoStoreError(DashboardError):
    """No store was registered and no store URL is configured."""


class ActionError(DashboardError):
    """An action (trip, reset, acknowledge) could not be carried out; nothing was half-done."""


class NotAuthorizedError(ActionError):
    """The actor's role does not allow the action (checked server-side on every action)."""


class ConsoleQueryError(DashboardError):
    """The SQL console refused a statement (not a single read-only query) or the engine rejected it."""


class AuthConfigError(DashboardError):
    """Sign-in is misconfigured (missing ``[auth]`` secrets or roles file, dev mode off loopback)."""


class RolesConfigError(AuthConfigError):
    """The roles file is missing, not YAML, or names an unknown role."""
