"""tripwire.sinks: ClickHouse storage. Migrations, the Store interface and its two backends
(chdb embedded, ClickHouse server), the loss-free batching sink, the one catalog of named queries
(``queries``: the dashboard's, the analysts', the release gate's), the release gate, data-subject
deletion, the scan of stored text for PII and secrets and the read-only check of analyst SQL
(``check_readonly_sql``)."""

from tripwire.sinks import queries
from tripwire.sinks.batching import BatchingSink, Message, SinkStats
from tripwire.sinks.config import ClickHouseSettings, SinkSettings
from tripwire.sinks.deletion import DeletionIncompleteError, DeletionReport, delete_subject
from tripwire.sinks.exceptions import (
    GateError,
    MigrationError,
    QueryError,
    ReadOnlyQueryError,
    RowDataError,
    RowMappingError,
    SinkBackpressureError,
    SinkError,
    StoreError,
    StoreURLError,
)
from tripwire.sinks.gate import GateThresholds, GateVerdict, evaluate_gate
from tripwire.sinks.migrations import apply_retention, load_migrations, migrate, split_statements
from tripwire.sinks.queries import QUERIES, NamedQuery
from tripwire.sinks.queries import run as run_query
from tripwire.sinks.queries import run_df as run_query_df
from tripwire.sinks.rows import TABLES, TableSpec
from tripwire.sinks.scan import RedactionResult, ScanIncompleteError, ScanReport, redact_findings, scan
from tripwire.sinks.sql_guard import MAX_SQL_CHARS, TABLE_FUNCTIONS, check_readonly_sql
from tripwire.sinks.store import QueryLimits, QueryResult, Store, open_store, parse_store_url

__all__ = [
    "MAX_SQL_CHARS",
    "QUERIES",
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
    "NamedQuery",
    "QueryError",
    "QueryLimits",
    "QueryResult",
    "ReadOnlyQueryError",
    "RedactionResult",
    "RowDataError",
    "RowMappingError",
    "ScanIncompleteError",
    "ScanReport",
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
    "queries",
    "redact_findings",
    "run_query",
    "run_query_df",
    "scan",
    "split_statements",
]
