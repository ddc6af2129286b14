"""The embedded backend: chdb (the ClickHouse engine in-process), persisted to a folder.

chdb hosts one engine per process, bound to one folder; any number of connections to that
folder may be open (each with its own current database and settings), and a different folder
can only be opened after every connection is closed. This store keeps one connection, selects
its database with ``USE``, and serialises its own calls with a lock.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripwire.core.errors import MissingExtraError
from tripwire.sinks._native import column_types, native_block, parse_native
from tripwire.sinks._params import text_params
from tripwire.sinks.exceptions import RowDataError, StoreError
from tripwire.sinks.store import QueryLimits, QueryResult, Store, check_identifier, store_error

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def _insert_settings(dedup_token: str | None) -> str:
    if dedup_token is None:
        return ""
    if not _TOKEN.match(dedup_token):
        raise StoreError(f"invalid dedup token {dedup_token!r}")
    return (
        f" SETTINGS insert_deduplicate = 1, insert_deduplication_token = '{dedup_token}',"
        " deduplicate_blocks_in_dependent_materialized_views = 1"
    )


class ChdbStore(Store):
    backend = "chdb"
    supports_avro_insert = True
    supports_avro_staging = True  # temporary tables live as long as the one connection

    def __init__(
        self,
        path: str,
        database: str,
        *,
        readonly: bool = False,
        limits: QueryLimits | None = None,
        create: bool = True,
    ) -> None:
        try:
            import chdb.state as chdb_state
        except ImportError as e:  # pragma: no cover - depends on the install
            raise MissingExtraError("chdb", "embedded") from e
        self.path = str(Path(path).expanduser().resolve())
        self.database = check_identifier(database, "database")
        self.readonly = readonly
        self.limits = (limits or QueryLimits()) if readonly else limits
        self._lock = threading.Lock()
        self._types: dict[tuple[str, tuple[str, ...]], list[Any]] = {}
        Path(self.path).mkdir(parents=True, exist_ok=True)
        conn_str = self.path
        # readonly=1 (not chdb's mode=ro, which is readonly=2): the limits below are session
        # settings the query itself cannot raise, and file()/url()/DDL/DELETE are refused.
        if readonly:
            lim = self.limits or QueryLimits()
            conn_str += (
                f"?readonly=1&max_execution_time={lim.timeout_s:g}"
                f"&max_result_rows={lim.max_rows + 1}&result_overflow_mode=break"
            )
        try:
            self._conn: Any = chdb_state.connect(conn_str)
        except Exception as e:
            raise store_error(e, f"cannot open chdb at {self.path} (one folder per process: close other stores)") from e
        if create and not readonly:
            self._run(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        self._run(f"USE {self.database}")

    # -- internals ---------------------------------------------------------------------
    def _run(self, sql: str, params: Mapping[str, Any] | None = None, fmt: str = "Null") -> Any:
        if self._conn is None:
            raise StoreError("store is closed")
        with self._lock:
            try:
                return self._conn.query(sql, fmt, params=text_params(params))
            except Exception as e:
                if "Timeout exceeded" in str(e):
                    try:  # chdb answers the next query on a timed-out connection with an empty result: drain it
                        self._conn.query("SELECT 1", "Null")
                    except Exception:
                        pass
                raise store_error(e, "chdb query failed") from e

    # -- Store ---------------------------------------------------------------------------
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, params, "Null")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        raw = self._run(sql, params, "Native")
        columns, rows = parse_native(raw.bytes())
        truncated = False
        if self.limits is not None and len(rows) > self.limits.max_rows:
            rows, truncated = rows[: self.limits.max_rows], True
        return QueryResult(columns, rows, truncated)

    def explain_ast(self, statement: str) -> list[str]:
        raw = self._run(f"EXPLAIN AST {statement}", None, "Native")
        return [str(r[0]) for r in parse_native(raw.bytes())[1]]

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        # Built from the Native result rather than chdb's own "dataframe" output: chdb 4.4 hangs
        # (holding the GIL, so the whole process stops) converting some arrays of tuples to pandas.
        import pandas as pd

        res = self.query(sql, params)
        if not res.columns:  # an empty Native result names no columns: take the (empty) frame chdb makes
            return self._run(sql, params, "dataframe")
        df = pd.DataFrame.from_records(res.rows, columns=list(res.columns))
        for col in df.columns:  # ClickHouse DateTime columns here are UTC; say so, as chdb's pandas output did
            if pd.api.types.is_datetime64_dtype(df[col]) and getattr(df[col].dt, "tz", None) is None:
                df[col] = df[col].dt.tz_localize("UTC")
        return df

    def _column_types(self, table: str, columns: tuple[str, ...]) -> list[Any]:
        key = (table, columns)
        types = self._types.get(key)
        if types is None:
            res = self.query(
                "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                {"db": self.database, "t": table},
            )
            by_name = dict(res.rows)
            missing = [c for c in columns if c not in by_name]
            if missing:
                raise StoreError(f"table {self.database}.{table} has no column(s) {missing}")
            types = column_types([by_name[c] for c in columns])
            self._types[key] = types
        return types

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None
    ) -> int:
        if not rows:
            return 0
        check_identifier(table, "table")
        cols = tuple(columns)
        types = self._column_types(table, cols)
        try:
            data = native_block(table, cols, types, rows)
        except Exception as e:
            raise RowDataError(f"rows for {table} cannot be encoded: {type(e).__name__}: {e}") from e
        sql = f"INSERT INTO {self.database}.{table} ({', '.join(cols)})" + _insert_settings(dedup_token)
        self._send(sql, "Native", data, table)
        return len(rows)

    def insert_avro(
        self, table: str, columns: Sequence[str], container: bytes, *, dedup_token: str | None = None
    ) -> None:
        check_identifier(table, "table")
        for c in columns:
            check_identifier(c, "column")
        settings = _insert_settings(dedup_token) or " SETTINGS insert_deduplicate = 1"
        sql = (
            f"INSERT INTO {self.database}.{table} ({', '.join(columns)}){settings},"
            " input_format_avro_allow_missing_fields = 1"
        )
        self._send(sql, "Avro", container, table)

    def insert_select(
        self,
        table: str,
        columns: Sequence[str],
        select: str,
        params: Mapping[str, Any],
        *,
        dedup_token: str | None = None,
    ) -> None:
        check_identifier(table, "table")
        for c in columns:
            check_identifier(c, "column")
        settings = _insert_settings(dedup_token) or " SETTINGS insert_deduplicate = 1"
        self._run(f"INSERT INTO {self.database}.{table} ({', '.join(columns)}){settings} {select}", params)

    def stage_avro(self, stage: str, container: bytes) -> None:
        check_identifier(stage, "table")
        self._send(f"INSERT INTO {stage} SETTINGS input_format_avro_allow_missing_fields = 1", "Avro", container, stage)

    def _send(self, sql: str, fmt: str, data: bytes, table: str) -> None:
        if self._conn is None:
            raise StoreError("store is closed")
        try:
            with self._lock:
                inserter = self._conn.send_insert(sql, fmt)
                try:
                    inserter.append(data)
                    inserter.finish()
                except BaseException:
                    try:
                        inserter.cancel()
                    except Exception:  # already finished or failed; nothing was committed
                        pass
                    raise
        except StoreError:
            raise
        except Exception as e:
            raise store_error(e, f"insert into {table} failed") from e

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def location(self) -> str:
        return f"chdb://{self.path}?database={self.database}"

    def open_reader(self, limits: QueryLimits) -> ChdbStore:
        return ChdbStore(self.path, self.database, readonly=True, limits=limits, create=False)

    def __repr__(self) -> str:
        return f"ChdbStore(path={self.path!r}, database={self.database!r}, readonly={self.readonly})"
