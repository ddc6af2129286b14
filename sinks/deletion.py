"""Data-subject deletion: remove every row of one principal or one tenant, and prove it.

Lightweight ``DELETE FROM ... WHERE`` (rows disappear from queries at once; parts are rewritten
by later merges, or right away with ``purge=True`` via ``APPLY DELETED MASK``). After deleting,
every table that holds the identifier is counted again; a non-zero count raises.

The per-minute rollups hold no principal (only tenant/agent/version/model aggregates), so a
principal deletion leaves them alone and a tenant deletion includes them. Dead letters keep the
raw bytes of undecodable messages and cannot be searched by principal; they expire with the
DLQ retention.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tripwire.sinks.exceptions import SinkError
from tripwire.sinks.store import Store

log = logging.getLogger(__name__)

PRINCIPAL_TABLES = ("model_calls", "tool_calls", "run_events", "run_summaries")
TENANT_TABLES = (
    *PRINCIPAL_TABLES,
    "window_stats",
    "alerts",
    "alert_acks",
    "model_calls_1m",
    "tool_calls_1m",
    "model_calls_1h",
    "tool_calls_1h",
)


class DeletionIncompleteError(SinkError):
    """Rows of the subject are still visible after the delete."""


@dataclass(frozen=True, slots=True)
class DeletionReport:
    column: str
    value_hint: str
    deleted: dict[str, int]  # table -> rows matched before the delete
    remaining: dict[str, int]  # table -> rows visible after (all zero on success)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def _count(store: Store, table: str, column: str, value: str) -> int:
    return int(store.query(f"SELECT count() FROM {table} WHERE {column} = {{v:String}}", {"v": value}).scalar())


def delete_subject(
    store: Store, *, principal: str | None = None, tenant: str | None = None, purge: bool = False
) -> DeletionReport:
    """Delete every row of exactly one principal or one tenant and verify that none is left."""
    if (principal is None) == (tenant is None):
        raise ValueError("give exactly one of principal or tenant")
    column, value = ("principal", principal) if principal is not None else ("tenant", tenant)
    assert value is not None
    if not value:
        raise ValueError(f"{column} must not be empty")
    tables = PRINCIPAL_TABLES if column == "principal" else TENANT_TABLES
    deleted: dict[str, int] = {}
    for t in tables:
        n = _count(store, t, column, value)
        deleted[t] = n
        if n:
            store.command(f"DELETE FROM {t} WHERE {column} = {{v:String}}", {"v": value})
            if purge:
                store.command(f"ALTER TABLE {t} APPLY DELETED MASK")
    remaining = {t: _count(store, t, column, value) for t in tables}
    hint = value[:2] + "***" if len(value) > 2 else "***"
    log.info("subject deleted column=%s value=%s rows=%d", column, hint, sum(deleted.values()))
    report = DeletionReport(column, hint, deleted, remaining)
    left = {t: n for t, n in remaining.items() if n}
    if left:
        raise DeletionIncompleteError(f"rows of the {column} are still visible after DELETE: {left}")
    return report
