"""Errors the kill-switch package raises on purpose, all under :class:`tripwire.core.errors.TripwireError`."""

from __future__ import annotations

from tripwire.core.errors import TripwireError


class KillSwitchError(TripwireError):
    """Root of the kill switch's errors."""


class ScopeError(KillSwitchError, ValueError):
    """A scope string does not follow the grammar; the message says what was expected."""


class KillSwitchKeyError(KillSwitchError, ValueError):
    """A key file is missing, unreadable or not an Ed25519 key."""


class SignatureError(KillSwitchError):
    """A command is unsigned, signed by an unknown key, or its signature does not verify.

    ``reason`` is one of ``unsigned``, ``unknown_key``, ``bad_signature``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CommandPublishError(KillSwitchError):
    """A command could not be signed or was not acknowledged by the broker within the publisher's timeout.

    ``command_id`` names the command (None when it failed before one was built), ``scope`` its scope."""

    def __init__(self, message: str, *, command_id: str | None = None, scope: str | None = None) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.scope = scope


__all__ = ["CommandPublishError", "KillSwitchError", "KillSwitchKeyError", "ScopeError", "SignatureError"]
