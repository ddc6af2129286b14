"""Versioned schema migrations (``sinks/migrations/NNNN_name.sql``), recorded in ``schema_migrations``.

Each file is applied once, in version order; every statement in it is idempotent
(``IF NOT EXISTS``), so a run interrupted half-way is completed by the next one. The
checksum of each applied file's statements is recorded and checked: changing an applied
migration's SQL is an error (add a new one instead); its comments may be corrected.
``${PROMPT_TTL_DAYS}`` / ``${CALL_TTL_DAYS}`` are rendered from ``ClickHouseSettings``
(validated integers, never user input).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from tripwire.sinks.config import DEFAULT_CALL_TTL_DAYS, DEFAULT_PROMPT_TTL_DAYS
from tripwire.sinks.exceptions import MigrationError
from tripwire.sinks.store import Store

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TEMPLATE = re.compile(r"\$\{([A-Z_]+)\}")

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version     UInt32,
    name        String,
    checksum    String,
    applied_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        """Hash of the statements (comments and layout between statements do not count)."""
        return hashlib.sha256("\n;\n".join(split_statements(self.text)).encode()).hexdigest()

    def matches(self, recorded: str) -> bool:
        """The recorded checksum is this file's (or its raw text's, as the first releases recorded)."""
        return recorded in (self.checksum, hashlib.sha256(self.text.encode()).hexdigest())

    def statements(self, variables: dict[str, int]) -> list[str]:
        def render(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in variables:
                raise MigrationError(f"migration {self.version:04d}_{self.name}: unknown template variable {key}")
            return str(int(variables[key]))

        return [_TEMPLATE.sub(render, s) for s in split_statements(self.text)]


def split_statements(text: str) -> list[str]:
    """Split a SQL file on ``;`` outside quotes and comments; drops ``--`` comments."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            buf.append(ch)
        elif ch == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch == ";":
            stmt = "".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
        else:
            buf.append(ch)
        i += 1
    if quote:
        raise MigrationError("unterminated quote in migration")
    tail = "".join(buf).strip()
    if tail:
        out.append(tail)
    return out


def load_migrations() -> list[Migration]:
    """The shipped migrations, in version order (package data ``tripwire.sinks/migrations``)."""
    root = resources.files("tripwire.sinks").joinpath("migrations")
    found: list[Migration] = []
    for entry in root.iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
        elif entry.name.endswith(".sql"):
            raise MigrationError(f"migration file {entry.name!r} must be named NNNN_lower_snake.sql")
    found.sort(key=lambda x: x.version)
    versions = [x.version for x in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def applied_migrations(store: Store) -> dict[int, str]:
    """version -> checksum of the migrations recorded in ``schema_migrations``."""
    store.command(SCHEMA_MIGRATIONS_DDL)
    res = store.query("SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version")
    return {int(v): str(c) for v, c in res.rows}


def migrate(
    store: Store,
    *,
    prompt_ttl_days: int = DEFAULT_PROMPT_TTL_DAYS,
    call_ttl_days: int = DEFAULT_CALL_TTL_DAYS,
    migrations: list[Migration] | None = None,
) -> list[int]:
    """Apply the pending migrations; returns the versions applied now (empty when up to date)."""
    todo = load_migrations() if migrations is None else migrations
    done = applied_migrations(store)
    variables = {"PROMPT_TTL_DAYS": prompt_ttl_days, "CALL_TTL_DAYS": call_ttl_days}
    applied: list[int] = []
    for mig in todo:
        if mig.version in done:
            if not mig.matches(done[mig.version]):
                raise MigrationError(
                    f"migration {mig.version:04d}_{mig.name} changed after it was applied "
                    f"(recorded {done[mig.version][:12]}, file {mig.checksum[:12]}); add a new migration instead"
                )
            continue
        for stmt in mig.statements(variables):
            store.command(stmt)
        store.insert(
            "schema_migrations",
            ("version", "name", "checksum", "applied_at"),
            [(mig.version, mig.name, mig.checksum, datetime.now(UTC))],
        )
        log.info("migration applied version=%04d name=%s database=%s", mig.version, mig.name, store.database)
        applied.append(mig.version)
    return applied


def apply_retention(store: Store, *, prompt_ttl_days: int, call_ttl_days: int, materialize: bool = True) -> None:
    """Change the retention of existing tables (the migrations render it only at creation).

    ``materialize=True`` recomputes the TTL of existing parts now (a mutation; rows and texts
    past the new TTL go at the next merge, or at ``OPTIMIZE ... FINAL``). ``False`` applies the
    new TTL to new parts only, which is cheap on very large tables.
    """
    p, c = int(prompt_ttl_days), int(call_ttl_days)
    stmts = [
        f"ALTER TABLE model_calls MODIFY TTL toDateTime(ts_start) + INTERVAL {c} DAY",
        f"ALTER TABLE tool_calls MODIFY TTL toDateTime(ts_start) + INTERVAL {c} DAY",
        f"ALTER TABLE model_calls MODIFY COLUMN prompt TTL toDateTime(ts_start) + INTERVAL {p} DAY",
        f"ALTER TABLE model_calls MODIFY COLUMN completion TTL toDateTime(ts_start) + INTERVAL {p} DAY",
        f"ALTER TABLE tool_calls MODIFY COLUMN args TTL toDateTime(ts_start) + INTERVAL {p} DAY",
    ]
    flag = 1 if materialize else 0
    for s in stmts:
        store.command(f"{s} SETTINGS materialize_ttl_after_modify = {flag}, mutations_sync = 1")
