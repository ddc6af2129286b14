"""TEST HOOK (off by default): a store whose inserts fail, as an unreachable ClickHouse's would, while a
marker file exists. Only ``tripwire sink`` uses it, and only when ``TRIPWIRE_SINK_TEST_FAIL_INSERTS_WHILE``
names a file; the whole-pipeline fault suite (benchmarks/bench_faults.py) creates and removes that file to
inject ClickHouse insert failures into a sink running in its own process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tripwire.sinks.exceptions import StoreError
from tripwire.sinks.store import QueryResult, Store


class FailInsertsWhile(Store):
    """Delegates to ``inner``; ``insert``, ``insert_avro`` and ``insert_select`` raise while ``marker`` exists
    (loading the validating sink's temporary staging table does not: it stores nothing)."""

    def __init__(self, inner: Store, marker: Path) -> None:
        self.inner, self.marker = inner, marker
        self.backend, self.database, self.readonly = inner.backend, inner.database, inner.readonly
        self.supports_avro_insert = inner.supports_avro_insert
        self.supports_avro_staging = inner.supports_avro_staging

    def _refuse(self) -> None:
        if self.marker.exists():
            raise StoreError("Code: 210. Connection refused (test hook: inserts fail)", code=210,
                             name="NETWORK_ERROR")

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.inner.command(sql, params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        return self.inner.query(sql, params)

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.inner.query_df(sql, params)

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None
    ) -> int:
        self._refuse()
        return self.inner.insert(table, columns, rows, dedup_token=dedup_token)

    def insert_avro(
        self, table: str, columns: Sequence[str], container: bytes, *, dedup_token: str | None = None
    ) -> None:
        self._refuse()
        self.inner.insert_avro(table, columns, container, dedup_token=dedup_token)

    def insert_select(
        self,
        table: str,
        columns: Sequence[str],
        select: str,
        params: Mapping[str, Any],
        *,
        dedup_token: str | None = None,
    ) -> None:
        self._refuse()
        self.inner.insert_select(table, columns, select, params, dedup_token=dedup_token)

    def stage_avro(self, stage: str, container: bytes) -> None:
        self.inner.stage_avro(stage, container)

    def location(self) -> str:
        return self.inner.location()

    def close(self) -> None:
        self.inner.close()
