"""Constrained field types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, StringConstraints

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

MODEL_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=False)


def _to_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


# Lowercase hex of a fixed length with at least one non-zero digit (W3C: all-zero ids are invalid);
# checked entirely by pydantic-core's regex engine, no Python call on the hot path.
TraceId = Annotated[str, StringConstraints(min_length=32, max_length=32, pattern=r"^[0-9a-f]*[1-9a-f][0-9a-f]*$")]
SpanId = Annotated[str, StringConstraints(min_length=16, max_length=16, pattern=r"^[0-9a-f]*[1-9a-f][0-9a-f]*$")]
UuidText = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative Avro ``long``."""
Usd = Annotated[float, Field(ge=0.0)]
"""A non-negative, finite amount of US dollars (NaN and infinities are rejected by ``allow_inf_nan=False``)."""
NonNegFloat = Annotated[float, Field(ge=0.0)]
Pct = NonNegFloat
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
