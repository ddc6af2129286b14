"""Tool args on their way into a ToolCall event: snapshotted at the call, finished where the event is encoded.

The agent thread does only what must happen at the call site: the args become canonical JSON (sorted
keys, compact, UTF-8 encodable), which checks them (``InvalidArgumentError`` at the call site) and
snapshots them (the caller mutating its dict afterwards cannot change the event). The SHA-256 and the
redaction (the costly part: every detector over every string) run where the event is *encoded*: by
default in the delivery worker, inside the agent process, before the record is written to the durable
log, handed to the transport or spilled to the overflow spool. Every one of those paths encodes through
the function :meth:`ArgsFinisher.wrap` returns, and an event whose args were not finished cannot be
encoded at all (:class:`PendingArgs` is not a string: the Avro writer refuses it and the event is
dropped and counted), so unredacted args never reach the spool, the log file, a log line or the broker;
until the worker takes the record they sit in the in-memory hand-off queue only, next to the caller's
own objects.

With a custom redaction hook (user code, which may rely on the agent thread's context variables or
thread-locals) the args are finished on the agent thread, as every other field is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from tripwire.producers._runtime import canonical_json, new_uuid
from tripwire.producers.errors import InvalidArgumentError
from tripwire.redaction import FULL_MASK, Redactor

logger = logging.getLogger(__name__)

_MASKED_JSON = json.dumps(FULL_MASK)


def snapshot_args(args: Any) -> str:
    """The args as canonical JSON; raises InvalidArgumentError (at the call site) if they cannot be."""
    canonical = canonical_json(args)
    if not canonical.isascii():
        try:
            canonical.encode()
        except UnicodeEncodeError:  # a lone surrogate: the message would carry the args, so it is not kept
            raise InvalidArgumentError("tool args must be valid Unicode text (a lone surrogate was found)") from None
    return canonical


def args_digest(canonical: str) -> str:
    """The ``args_hash`` of an event: SHA-256 hex of the unredacted canonical JSON."""
    return hashlib.sha256(canonical.encode()).hexdigest()


class PendingArgs:
    """Canonical args JSON not yet hashed nor redacted (placed in the event's ``args`` field)."""

    __slots__ = ("json",)

    def __init__(self, canonical: str) -> None:
        self.json = canonical

    def __repr__(self) -> str:  # never shows the unredacted text
        return f"PendingArgs(<{len(self.json)} chars, unredacted>)"


class ArgsFinisher:
    """Turns canonical args JSON into the event's ``(args, args_hash)``: the JSON as logged (redacted, or
    ``None`` when ``log_tool_args`` is off) and the SHA-256 hex of the unredacted canonical JSON."""

    __slots__ = ("deferred", "log_args", "redactor")

    def __init__(self, redactor: Redactor, log_args: bool, *, deferred: bool) -> None:
        self.redactor = redactor
        self.log_args = log_args
        self.deferred = deferred
        """True: spans leave :class:`PendingArgs` in the event and the encoder finishes them."""

    def finish(self, canonical: str) -> tuple[str | None, str]:
        digest = args_digest(canonical)
        if not self.log_args:
            return None, digest
        try:
            return self.logged(canonical), digest
        except Exception as e:  # fail closed; the exception text may quote the args, so only its type is logged
            logger.warning("redaction failed, args fully masked error=%s", type(e).__name__)
            return _MASKED_JSON, digest

    def logged(self, canonical: str) -> str:
        red = self.redactor
        if red.is_clean_json(canonical):
            return canonical
        value = json.loads(canonical)
        masked = red.redact(value, "args")
        if masked == value:
            return canonical
        try:
            return canonical_json(masked)
        except InvalidArgumentError:
            return _MASKED_JSON

    def wrap(self, encode: Callable[..., bytes]) -> Callable[..., bytes]:
        """``encode(model, fields, const, base)`` that first finishes pending args and draws an event_id
        left ``None`` (a ToolCall's: nothing on the agent thread reads it), the one encoder every delivery
        path and the on-agent-thread mode use."""
        finish = self.finish

        def encode_event(model: Any, fields: dict[str, Any], const: bytes = b"", base: Any = None) -> bytes:
            pending = fields.get("args")
            if type(pending) is PendingArgs:
                fields["args"], fields["args_hash"] = finish(pending.json)
            if fields.get("event_id", "") is None:  # drawn here (once: the bytes are what is stored and sent)
                fields["event_id"] = new_uuid()
            return encode(model, fields, const, base)

        return encode_event


__all__ = ["ArgsFinisher", "PendingArgs", "args_digest", "snapshot_args"]
