"""``tripwire data scan``: run the redactor's detectors over what is already stored, and mask what they find.

For every table of the database (views excepted) and every text column of it (``String``, ``Nullable``
and ``LowCardinality`` of it), the store's SQL selects the rows where ``match()`` of the detectors' RE2
patterns (one alternation, passed as a query parameter) hits, within a time range on the table's first
``DateTime`` column (tables without one are scanned whole). The RE2 patterns are supersets of the
Python detectors, so no hit is lost; the candidate rows are then checked in Python by the same
``Redactor`` the SDK runs (Luhn and issuer, IBAN mod-97, JWT header, entropy), which reports each finding
by family. Nothing is sampled: every row of the range is looked at by the SQL.

``redact_findings`` masks them: for each distinct offending value, ``ALTER TABLE ... UPDATE col = masked
WHERE col = value`` (a synchronous mutation); a value in a column of the sorting key (which ClickHouse
cannot update) has its rows deleted instead. A second scan then proves nothing is left.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tripwire.redaction import Redactor
from tripwire.sinks.exceptions import SinkError
from tripwire.sinks.store import Store, check_identifier

log = logging.getLogger(__name__)

_TEXT_TYPES = ("String", "Nullable(String)", "LowCardinality(String)", "LowCardinality(Nullable(String))")
_SKIP_ENGINES = ("View", "MaterializedView", "LiveView", "WindowView")
_MAX_RUN_IDS = 1000  # run_ids kept per (table, column, family) in a report


class ScanIncompleteError(SinkError):
    """Findings are still there after ``--redact``."""


@dataclass(frozen=True, slots=True)
class TableText:
    table: str
    columns: tuple[str, ...]
    time_column: str | None
    key_columns: frozenset[str]
    has_run_id: bool


@dataclass
class ScanReport:
    """Findings per (table, column, family), the rows that hold them and their run_ids."""

    hits: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)
    run_ids: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    candidates: int = 0  # rows the SQL prefilter returned
    tables: list[str] = field(default_factory=list)
    unbounded: list[str] = field(default_factory=list)  # tables scanned whole (no time column)
    # table -> column -> {stored value: masked value}, for redact_findings
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(dict)))

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    def lines(self) -> list[tuple[str, str, str, int, str]]:
        """(table, column, family, findings, run_ids) sorted, for printing."""
        out = []
        for (t, c, f), n in sorted(self.hits.items()):
            ids = sorted(self.run_ids.get((t, c, f), ()))
            shown = ",".join(ids[:5]) + (f",... ({len(ids)} runs)" if len(ids) > 5 else "")
            out.append((t, c, f, n, shown))
        return out


def text_tables(store: Store) -> list[TableText]:
    """Every table of the store's database with its text columns, time column and sorting-key columns."""
    db = {"db": store.database}
    tables = store.query(
        "SELECT name, engine, sorting_key FROM system.tables WHERE database = {db:String} ORDER BY name", db
    ).rows
    cols = store.query(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String} ORDER BY table, position", db
    ).rows
    by_table: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for t, name, typ in cols:
        by_table[t].append((name, typ))
    out = []
    for name, engine, sorting_key in tables:
        if engine in _SKIP_ENGINES or name.startswith(".inner"):
            continue
        columns = by_table.get(name, [])
        text = tuple(c for c, typ in columns if typ in _TEXT_TYPES)
        if not text:
            continue
        time_col = next((c for c, typ in columns if typ.startswith("DateTime")), None)
        key = frozenset(c for c, _ in columns if c in {p.strip() for p in _key_terms(sorting_key or "")})
        out.append(TableText(name, text, time_col, key, any(c == "run_id" for c, _ in columns)))
    return out


def _key_terms(sorting_key: str) -> list[str]:
    # "tenant, agent_id, toStartOfHour(ts_start), ts_start" -> names, including those inside functions
    for ch in "(),":
        sorting_key = sorting_key.replace(ch, " ")
    return sorting_key.split()


def re2_alternation(redactor: Redactor) -> str:
    """One RE2 pattern matching (at least) everything any of the redactor's detectors can match."""

    def scoped(p: str) -> str:
        return f"(?i:{p[4:]})" if p.startswith("(?i)") else f"(?:{p})"

    return "|".join(scoped(d.re2) for d in redactor.detectors)


def scan(
    store: Store,
    redactor: Redactor | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    tables: list[str] | None = None,
) -> ScanReport:
    """Every finding of the redactor's detectors in the stored text columns (rows in ``[since, until)``)."""
    red = redactor or Redactor()
    pattern = re2_alternation(red)
    report = ScanReport()
    for tt in text_tables(store):
        if tables is not None and tt.table not in tables:
            continue
        report.tables.append(tt.table)
        table = check_identifier(tt.table, "table")
        cols = [check_identifier(c, "column") for c in tt.columns]
        params: dict[str, Any] = {"p": pattern}
        where = ["(" + " OR ".join(f"match(ifNull(toString({c}), ''), {{p:String}})" for c in cols) + ")"]
        if tt.time_column is None:
            report.unbounded.append(tt.table)
        else:
            tc = check_identifier(tt.time_column, "column")
            if since is not None:
                where.append(f"{tc} >= {{since:DateTime64(6, 'UTC')}}")
                params["since"] = since
            if until is not None:
                where.append(f"{tc} < {{until:DateTime64(6, 'UTC')}}")
                params["until"] = until
        run_col = "run_id" if tt.has_run_id else "''"
        sql = f"SELECT {run_col}, {', '.join(cols)} FROM {table} WHERE {' AND '.join(where)}"
        for row in store.query(sql, params).rows:
            report.candidates += 1
            run_id = row[0]
            for col, value in zip(cols, row[1:], strict=True):
                if not value:
                    continue
                findings = red.find(str(value))
                if not findings:
                    continue
                report.rows[(tt.table, col)] += 1
                for f in findings:
                    key = (tt.table, col, f.family)
                    report.hits[key] += 1
                    ids = report.run_ids[key]
                    if run_id and len(ids) < _MAX_RUN_IDS:
                        ids.add(run_id)
                report.values[tt.table][col][str(value)] = red.redact_text(str(value), col)
    log.info("scan done tables=%d candidates=%d findings=%d", len(report.tables), report.candidates, report.total)
    return report


@dataclass(frozen=True, slots=True)
class RedactionResult:
    masked: dict[tuple[str, str], int]  # (table, column) -> distinct values rewritten
    deleted: dict[tuple[str, str], int]  # (table, key column) -> distinct values whose rows were deleted
    after: ScanReport


def redact_findings(
    store: Store,
    report: ScanReport,
    redactor: Redactor | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> RedactionResult:
    """Mask every value the scan found (delete the rows where the value is part of the sorting key),
    then scan again; raises ``ScanIncompleteError`` if anything is left."""
    red = redactor or Redactor()
    info = {tt.table: tt for tt in text_tables(store)}
    masked: Counter[tuple[str, str]] = Counter()
    deleted: Counter[tuple[str, str]] = Counter()
    for table, columns in report.values.items():
        t = check_identifier(table, "table")
        for col, values in columns.items():
            c = check_identifier(col, "column")
            for old, new in values.items():
                if c in info[table].key_columns:
                    store.command(f"DELETE FROM {t} WHERE {c} = {{old:String}}", {"old": old})
                    deleted[(table, col)] += 1
                else:
                    store.command(
                        f"ALTER TABLE {t} UPDATE {c} = {{new:String}} WHERE {c} = {{old:String}}"
                        " SETTINGS mutations_sync = 2",
                        {"old": old, "new": new},
                    )
                    masked[(table, col)] += 1
    after = scan(store, red, since=since, until=until, tables=list(report.values) or None)
    log.info(
        "scan findings redacted masked=%d deleted=%d left=%d", sum(masked.values()), sum(deleted.values()), after.total
    )
    result = RedactionResult(dict(masked), dict(deleted), after)
    if after.total:
        raise ScanIncompleteError(f"findings left after --redact: {dict(after.hits)}")
    return result


__all__ = [
    "RedactionResult",
    "ScanIncompleteError",
    "ScanReport",
    "TableText",
    "re2_alternation",
    "redact_findings",
    "scan",
    "text_tables",
]
