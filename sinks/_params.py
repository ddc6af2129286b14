"""Query parameters in ClickHouse's escaped text form, identical on both backends.

ClickHouse binds ``{name:Type}`` placeholders server-side from text values (HTTP ``param_name``;
chdb's ``params=``), parsed with the escaped-text rules, never spliced into the SQL.
Datetimes keep their microseconds (clickhouse-connect's own formatter drops them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from clickhouse_connect.driver.binding import format_bind_value, must_escape

# clickhouse-connect's ``escape_str`` (a backslash before each of ``must_escape``) as one C-level
# pass: its per-character generator was most of the event-id lookup of a 50k-row batch
_ESCAPES = str.maketrans({c: "\\" + c for c in must_escape})


def normalize_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [normalize_value(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):  # StrEnum
        return str(value.value)
    return value


def normalize_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Python values with datetimes as UTC text (what the server path hands clickhouse-connect)."""
    return {k: normalize_value(v) for k, v in (params or {}).items()}


def text_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """The escaped-text values chdb binds (the same text clickhouse-connect sends as ``param_*``)."""
    return {
        k: v.translate(_ESCAPES) if type(v) is str else format_bind_value(v, UTC, True)
        for k, v in normalize_params(params).items()
    }
