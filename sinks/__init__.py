"""tripwire.sinks: ClickHouse storage. Migrations, the Store interface and its two backends
(chdb embedded, ClickHouse server), the loss-free batching sink, analyst queries, the release gate,
the read-only check of analyst SQL (``check_readonly_sql``)."""

from tripwire.sinks.batching import BatchingSink, Message, SinkStats
from tripwire.sinks.config import ClickHouseSettings, SinkSettings
from tripwire.sinks.deletion import DeletionIncompleteError, DeletionReport, delete_subject
from tripwire.sinks.exceptions import (
    GateError,
    MigrationError,
    ReadOnlyQueryError,
    RowDataError,
    RowMappingError,
    SinkBackpressureError,
    SinkError,
    StoreError,
    StoreURLError,
)
from tripwire.sinks.gate import GateThresholds, GateVerdict, evaluate_gate
from tripwire.sinks.migrations import apply_retention, load_migrations, migrate
from tripwire.sinks.rows import TABLES, TableSpec
from tripwire.sinks.sql_guard import MAX_SQL_CHARS, TABLE_FUNCTIONS, check_readonly_sql
from tripwire.sinks.store import QueryLimits, QueryResult, Store, open_store, parse_store_url

__all__ = [
    "MAX_SQL_CHARS",
    "TABLES",
    "TABLE_FUNCTIONS",
    "BatchingSink",
    "ClickHouseSettings",
    "DeletionIncompleteError",
    "DeletionReport",
    "GateError",
    "GateThresholds",
    "GateVerdict",
    "Message",
    "MigrationError",
    "QueryLimits",
    "QueryResult",
    "ReadOnlyQueryError",
    "RowDataError",
    "RowMappingError",
    "SinkBackpressureError",
    "SinkError",
    "SinkSettings",
    "SinkStats",
    "Store",
    "StoreError",
    "StoreURLError",
    "TableSpec",
    "apply_retention",
    "check_readonly_sql",
    "delete_subject",
    "evaluate_gate",
    "load_migrations",
    "migrate",
    "open_store",
    "parse_store_url",
]
