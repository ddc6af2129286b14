"""Errors raised by the event contract (models, codec, schema registry framing)."""

from __future__ import annotations

from tripwire.errors import TripwireError


class SchemaError(TripwireError):
    """The shipped ``.avsc`` files are missing, malformed or inconsistent."""


class EncodeError(TripwireError, ValueError):
    """A record could not be encoded (not a contract model, or invalid for its schema)."""


class DecodeError(TripwireError, ValueError):
    """Bytes could not be decoded into a valid contract model.

    ``reason`` is a short machine-friendly label (``truncated``, ``bad_marker``,
    ``unknown_fingerprint``, ``malformed``, ``trailing_bytes``, ``invalid``, ...);
    the message adds the detail. Stream processors put both into the dead letter.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SchemaRegistryUnavailableError(TripwireError):
    """The Confluent Schema Registry could not be reached or failed; retry later (not a DLQ case)."""
