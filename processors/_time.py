"""Time helpers: operator state keeps epoch seconds (floats), records carry aware UTC datetimes."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def epoch(value: datetime) -> float:
    """Epoch seconds of an aware datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def wall_clock() -> float:
    return time.time()
