"""Errors of ``tripwire.sinks``, all under one root (``SinkError``)."""

from __future__ import annotations

from tripwire.core.consumer import Backpressure
from tripwire.core.errors import TripwireError


class SinkError(TripwireError):
    """Root of the ClickHouse storage errors."""


class StoreError(SinkError):
    """A ClickHouse backend rejected a statement or could not be reached.

    ``code`` and ``name`` carry the ClickHouse error code and name when the engine gave them.
    """

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class StoreURLError(SinkError, ValueError):
    """A store URL that names no supported backend or is malformed."""


class QueryError(SinkError, ValueError):
    """A named query called with missing or unexpected parameters, or an unknown choice."""


class MigrationError(SinkError):
    """A migration file is malformed, or changed after it was applied."""


class RowMappingError(SinkError):
    """A decoded record could not be mapped to a row; the sink sends it to ``dead_letters``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SinkBackpressureError(SinkError, Backpressure):
    """ClickHouse did not accept a batch. The batch stays pending (never dropped) and the
    runtime pauses its partitions for ``retry_after`` seconds before flushing it again
    (the contract of quix-streams' exception of the same name; the consumer loop's
    :class:`~tripwire.core.consumer.Backpressure`)."""

    def __init__(self, retry_after: float, *, table: str | None = None, cause: str = "") -> None:
        message = f"ClickHouse did not accept the batch for {table or '?'}; retry in {retry_after:.2f}s: {cause}"
        Backpressure.__init__(self, retry_after, message)
        self.table = table


class GateError(SinkError):
    """The release gate could not be evaluated (bad thresholds, no data source)."""


class RowDataError(StoreError):
    """Rows that cannot be encoded for their columns (client-side, before ClickHouse saw them).

    Retrying cannot help; the sink splits the batch and dead-letters the offending rows.
    """


class ReadOnlyQueryError(StoreError):
    """The read-only path refused a statement before running it (not one read-only statement:
    a write, INTO OUTFILE, SETTINGS, a table function outside the whitelist, several statements)."""
