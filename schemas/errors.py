"""Errors raised by the event contract (models, codec, schema registry framing)."""

from __future__ import annotations

from typing import Any

from tripwire.core.errors import TripwireError


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


def describe_validation(model: str, errors: list[Any]) -> str:
    """``Model: field: message; ...`` from pydantic's ``errors(include_input=False)``: the field names
    and rules, never the offending values (they may be unredacted payload)."""
    parts = []
    for err in errors[:10]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "<record>"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
    return f"{model}: " + "; ".join(parts) + more
