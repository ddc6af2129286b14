"""Time helpers: operator state keeps epoch seconds (floats), records carry aware UTC datetimes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def epoch(value: datetime) -> float:
    """Epoch seconds of an aware datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def wall_clock() -> float:
    return time.time()


def micros(value: datetime) -> int:
    """Exact epoch microseconds (the Avro ``timestamp-micros`` value)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _US


def utc_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)
