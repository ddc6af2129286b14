"""tripwire.sinks: ClickHouse storage. Migrations, the Store interface and its two backends
(chdb embedded, ClickHouse server), the loss-free batching sink, analyst queries, the release gate,
data-subject deletion and the scan of stored text for PII and secrets."""

from tripwire.sinks.batching import BatchingSink, Message, SinkStats
from tripwire.sinks.config import ClickHouseSettings, SinkSettings
from tripwire.sinks.deletion import DeletionIncompleteError, DeletionReport, delete_subject
from tripwire.sinks.exceptions import (
    GateError,
    MigrationError,
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
from tripwire.sinks.scan import RedactionResult, ScanIncompleteError, ScanReport, redact_findings, scan
from tripwire.sinks.store import QueryLimits, QueryResult, Store, open_store, parse_store_url

__all__ = [
    "TABLES",
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
    "delete_subject",
    "evaluate_gate",
    "load_migrations",
    "migrate",
    "open_store",
    "parse_store_url",
    "redact_findings",
    "scan",
]
