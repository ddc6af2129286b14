"""The ``Store`` interface: all the rest of tripwire sees of ClickHouse.

Two backends implement it, chosen by URL (``open_store``):

- ``chdb:///path/to/dir[?database=name]``: the embedded ClickHouse engine (chdb), persisted to a folder;
- ``clickhouse://user:pass@host:8123/db`` (``clickhouses://`` for TLS): a server via clickhouse-connect.

Both run the same SQL unchanged: values travel as ClickHouse server-side query parameters
(``{name:Type}`` placeholders), never formatted into the text.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from tripwire.sinks.exceptions import StoreError, StoreURLError

if TYPE_CHECKING:
    import pandas as pd

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_MESSAGE = re.compile(r"DB::Exception: (.*?)(?: \([A-Z][A-Z0-9_]+\))?(?: \(version [^)]*\))?\s*$", re.S)

DEFAULT_DATABASE = "tripwire"


def check_identifier(name: str, what: str = "identifier") -> str:
    """Table and database names are never parameters in ClickHouse DDL; accept only plain identifiers."""
    if not _IDENTIFIER.match(name):
        raise StoreURLError(f"invalid {what} {name!r}: expected letters, digits and underscores")
    return name


def store_error(e: Exception, what: str) -> StoreError:
    """A ``StoreError`` with the ClickHouse code and name parsed from chdb's message."""
    text = str(e).strip()
    code = _CODE.search(text)
    name = _NAME.search(text)
    message = _MESSAGE.search(text)
    detail = message.group(1).strip() if message else text
    return StoreError(
        f"{what}: {detail}", code=int(code.group(1)) if code else None, name=name.group(1) if name else None
    )


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a query as Python values (datetime, int, float, str, list, dict), in column order."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool = False

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def scalar(self) -> Any:
        if not self.rows:
            return None
        return self.rows[0][0]


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Limits of the read-only analyst path."""

    max_rows: int = 10_000
    timeout_s: float = 30.0


class Store(ABC):
    """Execute DDL, insert rows, query with parameters."""

    backend: str
    database: str
    readonly: bool
    supports_avro_insert: bool = False
    supports_avro_staging: bool = False  # stage_avro: the validating sink's SQL checks (``_avro_checks``)

    @abstractmethod
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, DELETE, OPTIMIZE)."""

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a SELECT with ``{name:Type}`` parameters and return its rows."""

    @abstractmethod
    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a SELECT with parameters and return a pandas DataFrame."""

    @abstractmethod
    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None
    ) -> int:
        """Insert rows (tuples in ``columns`` order) as one Native-format block; returns the row count.

        ``dedup_token`` becomes ``insert_deduplication_token``: re-sending the same block with
        the same token is a no-op on the table and on the materialized views fed by it.
        """

    def insert_avro(
        self, table: str, columns: Sequence[str], container: bytes, *, dedup_token: str | None = None
    ) -> None:
        """Insert an Avro object container; ClickHouse decodes it (fields matched to ``columns`` by name)."""
        raise NotImplementedError(f"{type(self).__name__} does not insert Avro")

    def stage_avro(self, stage: str, container: bytes) -> None:
        """Load an Avro object container into ``stage``, a temporary table of this connection
        (created by the caller), fields matched to its columns by name."""
        raise NotImplementedError(f"{type(self).__name__} does not stage Avro")

    def insert_select(
        self,
        table: str,
        columns: Sequence[str],
        select: str,
        params: Mapping[str, Any],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """``INSERT INTO table (columns) SELECT ...`` with parameters and the same deduplication as ``insert``."""
        raise NotImplementedError(f"{type(self).__name__} does not insert from a SELECT")

    def explain_ast(self, statement: str) -> list[str]:
        """``EXPLAIN AST`` of one statement (parsed, not run): its lines, never cut by the row limit."""
        raise NotImplementedError(f"{type(self).__name__} does not explain statements")

    @abstractmethod
    def close(self) -> None: ...

    def location(self) -> str:
        """Where the data lives, without secrets (a redacted URL): the same text for two connections to one database."""
        return repr(self)

    def open_reader(self, limits: QueryLimits) -> Store:
        """A new read-only connection to the same database, the engine enforcing ``limits`` (the analyst path)."""
        raise NotImplementedError(f"{type(self).__name__} opens no read-only connection")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def table_exists(self, table: str) -> bool:
        n = self.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.database, "t": table},
        ).scalar()
        return bool(n)


@dataclass(frozen=True, slots=True)
class StoreURL:
    backend: str  # "chdb" | "clickhouse"
    path: str = ""
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: str = ""
    database: str = DEFAULT_DATABASE
    secure: bool = False

    def redacted(self) -> str:
        if self.backend == "chdb":
            return f"chdb://{self.path}?database={self.database}"
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{self.username}:***@{self.host}:{self.port}/{self.database}"


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL; raises ``StoreURLError`` naming what was expected."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise StoreURLError(f"malformed store URL: {e}") from e
    query = parse_qs(parts.query)
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise StoreURLError("chdb URL needs a folder: chdb:///path/to/dir[?database=name]")
        database = check_identifier(query.get("database", [DEFAULT_DATABASE])[0], "database")
        return StoreURL("chdb", path=path, database=database)
    if parts.scheme in ("clickhouse", "clickhouses", "http", "https"):
        secure = parts.scheme in ("clickhouses", "https")
        if not parts.hostname:
            raise StoreURLError("ClickHouse URL needs a host: clickhouse://user:pass@host:8123/db")
        database = parts.path.strip("/") or query.get("database", [DEFAULT_DATABASE])[0]
        return StoreURL(
            "clickhouse",
            host=parts.hostname,
            port=parts.port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=check_identifier(database, "database"),
            secure=secure,
        )
    raise StoreURLError(
        f"unsupported store URL scheme {parts.scheme!r}: expected chdb:///path or clickhouse://user:pass@host:8123/db"
    )


def open_store(url: str, *, readonly: bool = False, limits: QueryLimits | None = None, create: bool = True) -> Store:
    """Open the backend a URL names.

    ``readonly=True`` opens the analyst path: the engine rejects writes and DDL (chdb read-only
    mode; ``readonly=2`` on a server, or a read-only user), and every query gets ``limits``.
    ``create`` creates the database when it is missing (never in read-only mode).
    """
    parsed = parse_store_url(url)
    if parsed.backend == "chdb":
        from tripwire.sinks._chdb_store import ChdbStore

        return ChdbStore(parsed.path, parsed.database, readonly=readonly, limits=limits, create=create)
    from tripwire.sinks._server_store import ClickHouseStore

    return ClickHouseStore(parsed, readonly=readonly, limits=limits, create=create)
