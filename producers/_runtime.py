"""Shared per-tracer machinery handed to runs and spans (private)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from random import getrandbits
from typing import Any

from tripwire.producers._encode import EventEncoder
from tripwire.producers._ratelimit import RateLimitedLog
from tripwire.producers.config import TracerConfig
from tripwire.producers.cost import CostCalculator
from tripwire.producers.delivery import Delivery
from tripwire.producers.errors import InvalidArgumentError
from tripwire.producers.guard import Approver, ToolGuard
from tripwire.producers.redaction import Redactor
from tripwire.schemas.enums import Risk

logger = logging.getLogger("tripwire.producers")

_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_uuid() -> str:
    """A random (version 4) UUID in text form; ~4x cheaper than ``str(uuid.uuid4())``."""
    h = f"{(getrandbits(128) & _V4_CLEAR) | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_trace_id() -> str:
    while True:
        v = getrandbits(128)
        if v:
            return f"{v:032x}"


def new_span_id() -> str:
    while True:
        v = getrandbits(64)
        if v:
            return f"{v:016x}"


def now_us() -> int:
    return time.time_ns() // 1000


_RISKS: dict[Any, Risk] = {r: r for r in Risk} | {r.value: r for r in Risk}


def as_risk(value: Any) -> Risk:
    try:
        return _RISKS[value]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f"risk must be one of low, medium, high; got {value!r}") from None


def canonical_json(value: Any) -> str:
    """Sorted-key compact JSON; raises InvalidArgumentError for non-serializable values."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"tool args must be JSON-serializable: {e}") from e


def non_empty(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string, got {value!r}")
    return value


@dataclass
class Runtime:
    config: TracerConfig
    encoder: EventEncoder
    delivery: Delivery
    redactor: Redactor
    costs: CostCalculator
    guard: ToolGuard | None
    approver: Approver | None
    log: RateLimitedLog
    encode_errors: int = 0

    @property
    def store_prompts(self) -> bool:
        return self.config.logging.store_prompts

    @property
    def log_tool_args(self) -> bool:
        return self.config.logging.log_tool_args == "redact_pii"
