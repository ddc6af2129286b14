"""The server backend: a ClickHouse server through clickhouse-connect (HTTP).

Inserts are Native format, LZ4-compressed, through one reused insert context per
(table, columns); queries bind ``{name:Type}`` parameters server-side.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tripwire.core.errors import MissingExtraError
from tripwire.sinks._params import normalize_params
from tripwire.sinks.exceptions import RowDataError, StoreError
from tripwire.sinks.store import QueryLimits, QueryResult, Store, StoreURL, check_identifier, store_error

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _wrap(e: Exception, what: str) -> StoreError:
    """A ``StoreError`` with the server's code and name (from the exception, else from its text)."""
    parsed = store_error(e, what)
    code = getattr(e, "code", None)
    name = getattr(e, "name", None)
    return StoreError(
        f"{what}: {e}",
        code=code if isinstance(code, int) else parsed.code,
        name=name if isinstance(name, str) else parsed.name,
    )


class ClickHouseStore(Store):
    backend = "clickhouse"
    supports_avro_insert = True

    def __init__(
        self, url: StoreURL, *, readonly: bool = False, limits: QueryLimits | None = None, create: bool = True
    ) -> None:
        try:
            import clickhouse_connect
        except ImportError as e:  # pragma: no cover
            raise MissingExtraError("clickhouse-connect", "pipeline") from e
        self.url = url
        self.database = check_identifier(url.database, "database")
        self.readonly = readonly
        self.limits = (limits or QueryLimits()) if readonly else limits
        self._lock = threading.Lock()
        self._contexts: dict[tuple[str, tuple[str, ...]], Any] = {}
        try:
            admin = clickhouse_connect.get_client(
                host=url.host, port=url.port, username=url.username, password=url.password, secure=url.secure
            )
            if create and not readonly:
                admin.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            server_readonly = int(str(admin.command("SELECT getSetting('readonly')")))
            admin.close()
            settings: dict[str, Any] = {}
            if readonly:
                lim = self.limits or QueryLimits()
                if server_readonly == 0:  # a read-only user already is; otherwise make this session one
                    settings["readonly"] = 2
                settings.update(
                    max_execution_time=lim.timeout_s, max_result_rows=lim.max_rows + 1, result_overflow_mode="break"
                )
            self._client: Any = clickhouse_connect.get_client(
                host=url.host,
                port=url.port,
                username=url.username,
                password=url.password,
                database=self.database,
                secure=url.secure,
                compress="lz4",
                settings=settings,
                autogenerate_session_id=False,
            )
        except Exception as e:
            raise _wrap(e, f"cannot connect to {url.redacted()}") from e

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=normalize_params(params) or None)
        except Exception as e:
            raise _wrap(e, "ClickHouse command failed") from e

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        try:
            res = self._client.query(sql, parameters=normalize_params(params) or None)
        except Exception as e:
            raise _wrap(e, "ClickHouse query failed") from e
        rows = [tuple(r) for r in res.result_rows]
        truncated = False
        if self.limits is not None and len(rows) > self.limits.max_rows:
            rows, truncated = rows[: self.limits.max_rows], True
        return QueryResult(tuple(res.column_names), rows, truncated)

    def explain_ast(self, statement: str) -> list[str]:
        try:
            res = self._client.query(f"EXPLAIN AST {statement}")
        except Exception as e:
            raise _wrap(e, "ClickHouse query failed") from e
        return [str(r[0]) for r in res.result_rows]

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        try:
            df = self._client.query_df(sql, parameters=normalize_params(params) or None)
        except Exception as e:
            raise _wrap(e, "ClickHouse query failed") from e
        if self.limits is not None and len(df) > self.limits.max_rows:
            df = df.iloc[: self.limits.max_rows]
        return df

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None
    ) -> int:
        if not rows:
            return 0
        check_identifier(table, "table")
        key = (table, tuple(columns))
        settings: dict[str, Any] = {"insert_deduplicate": 1, "deduplicate_blocks_in_dependent_materialized_views": 1}
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        try:
            with self._lock:
                ctx = self._contexts.get(key)
                if ctx is None:
                    ctx = self._client.create_insert_context(table, list(columns))
                    self._contexts[key] = ctx
                merged = {k: v for k, v in ctx.settings.items() if k != "insert_deduplication_token"}
                merged.update(settings)
                ctx.settings = merged
                ctx.data = rows
                try:
                    self._client.insert(context=ctx)
                finally:
                    ctx.data = None
        except Exception as e:
            from clickhouse_connect.driver.exceptions import DataError

            if isinstance(e, DataError) or isinstance(e.__cause__, (TypeError, ValueError, OverflowError)):
                raise RowDataError(f"rows for {table} cannot be encoded: {e}") from e
            raise _wrap(e, f"insert into {table} failed") from e
        return len(rows)

    def insert_avro(
        self, table: str, columns: Sequence[str], container: bytes, *, dedup_token: str | None = None
    ) -> None:
        check_identifier(table, "table")
        settings: dict[str, Any] = {
            "insert_deduplicate": 1,
            "deduplicate_blocks_in_dependent_materialized_views": 1,
            "input_format_avro_allow_missing_fields": 1,
        }
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        try:
            self._client.raw_insert(table, list(columns), container, settings=settings, fmt="Avro")
        except Exception as e:
            raise _wrap(e, f"Avro insert into {table} failed") from e

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()

    def location(self) -> str:
        return self.url.redacted()

    def open_reader(self, limits: QueryLimits) -> ClickHouseStore:
        return ClickHouseStore(self.url, readonly=True, limits=limits, create=False)

    def __repr__(self) -> str:
        return f"ClickHouseStore({self.url.redacted()}, readonly={self.readonly})"
