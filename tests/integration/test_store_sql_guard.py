"""Read-only means read-only (issue 21, finding 3): the one check of analyst SQL
(``tripwire.sinks.check_readonly_sql``), decided by ClickHouse's parser, on chdb and (when a server
is given) on ClickHouse server; and ``tripwire sql`` end to end on chdb, where INTO OUTFILE wrote
files before the check existed. Every refusal also asserts that no file was created."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests import store_helpers as h
from tests.helpers import uid
from tests.store_helpers import clickhouse_server_url, store  # noqa: F401 - fixtures
from tripwire.cli import app
from tripwire.sinks import MAX_SQL_CHARS, QueryLimits, ReadOnlyQueryError, check_readonly_sql, open_store

pytestmark = pytest.mark.integration

# {p} is a path in the test's tmp_path: the file must never appear.
OUTFILE = [
    "SELECT 1 INTO OUTFILE '{p}'",
    "SELECT 1 INTO OUTFILE '{p}' APPEND",
    "SELECT 1 INTO OUTFILE '{p}' TRUNCATE",
    "SELECT 1 INTO OUTFILE '{p}' TRUNCATE FORMAT CSV",
    "SELECT 1 INTO OUTFILE '{p}' COMPRESSION 'gzip'",
    "SELECT 1 INTO OUTFILE '{p}' APPEND COMPRESSION 'gzip' LEVEL 3 FORMAT TSV",
    "SELECT 1 INTO OUTFILE '{p}' AND STDOUT",
    "SELECT 1 INTO OUTFILE '{p}' AND STDOUT FORMAT JSON",
    "select 1 into outfile '{p}'",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x INTO OUTFILE '{p}'",
    "SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{p}'",
    "(SELECT 1) INTO OUTFILE '{p}'",
    "SHOW TABLES INTO OUTFILE '{p}'",
    "DESCRIBE TABLE alerts INTO OUTFILE '{p}'",
    "EXISTS TABLE alerts INTO OUTFILE '{p}'",
    "EXPLAIN SELECT 1 INTO OUTFILE '{p}'",
    "EXPLAIN SYNTAX SELECT 1 INTO OUTFILE '{p}'",
    # comments and unicode whitespace before and between the keywords
    "/* x */ SELECT 1 /* y */ INTO /* z */ OUTFILE '{p}'",
    "-- x\nSELECT 1 -- y\nINTO OUTFILE '{p}' -- z",
    "# x\nSELECT 1 # y\nINTO OUTFILE '{p}'",
    "\u00a0SELECT\u00a01\u00a0INTO\u00a0OUTFILE\u00a0'{p}'",
    "\u2003SELECT\u20031\u2003INTO\u2003OUTFILE '{p}'",
    "\ufeffSELECT 1\tINTO\r\nOUTFILE\x0c'{p}'",
    "SELECT 1 AS `a\n Literal 'x'` INTO OUTFILE '{p}'",  # a name with a line break forging AST lines
]

# a second statement that the old text splitter did not see (it knew neither # nor /* */)
SMUGGLED = [
    "SELECT 1 # '\n; SELECT 2 INTO OUTFILE '{p}' --'",
    "SELECT 1 /* ' */ ; SELECT 2 INTO OUTFILE '{p}' /* ' */",
    "SELECT 1; SELECT 2 INTO OUTFILE '{p}'",
    "SELECT 1;\u00a0SELECT 2 INTO OUTFILE '{p}'",
]

# refused by the engine (chdb applies a top-level SETTINGS while parsing) or by the check
_SETTINGS = "readonly|SETTINGS are not allowed"

# the issue's escapes, table functions at any depth, SETTINGS, FORMAT tricks, writes
REFUSED = [
    ("SELECT * FROM file('{p}', 'LineAsString')", "table function file"),
    ("SELECT * FROM FILE('{p}', 'LineAsString')", "table function FILE"),
    ("SELECT file('{p}')", "function file"),
    ("SELECT 1 WHERE 'x' IN file('{p}', 'LineAsString')", "function file"),
    ("SELECT * FROM url('http://127.0.0.1:1/x', CSV)", "table function url"),
    ("SELECT * FROM s3('http://127.0.0.1:1/b/x.csv', CSV)", "table function s3"),
    ("SELECT * FROM remote('127.0.0.1:1', system.one)", "table function remote"),
    ("SELECT * FROM executable('x.sh', CSV, 'a String')", "table function executable"),
    ("SELECT * FROM (SELECT * FROM (SELECT * FROM file('{p}')))", "table function file"),
    ("SELECT number FROM numbers(3) WHERE number IN (SELECT * FROM url('http://127.0.0.1:1/x', CSV))",
     "table function url"),
    ("WITH x AS (SELECT * FROM s3('http://127.0.0.1:1/b/x', CSV)) SELECT * FROM x", "table function s3"),
    ("SELECT * FROM numbers(1) AS a JOIN remote('127.0.0.1:1', system.one) AS b ON 1", "table function remote"),
    ("SELECT * FROM view(SELECT * FROM file('{p}'))", "table function file"),
    ("SELECT 1 UNION ALL SELECT * FROM url('http://127.0.0.1:1/x', CSV)", "table function url"),
    ("EXPLAIN SELECT * FROM file('{p}')", "table function file"),
    ("DESCRIBE TABLE file('{p}', 'LineAsString')", "table function file"),
    ("SELECT * FROM input('a String')", "table function input"),
    ("SELECT 1 SETTINGS readonly = 0", _SETTINGS),
    ("SELECT * FROM url('http://127.0.0.1:1/x', CSV) SETTINGS readonly = 0", _SETTINGS),
    ("SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)", _SETTINGS),
    ("SELECT 1 FORMAT JSON", "FORMAT is not allowed"),
    ("SELECT 1 FORMAT Template", "FORMAT is not allowed"),
    ("SELECT * FROM (SELECT 1) FORMAT Native", "FORMAT is not allowed"),
    ("EXPLAIN SELECT 1 FORMAT CSV", "FORMAT is not allowed"),
    ("EXPLAIN PIPELINE header = 1 SELECT 1", _SETTINGS),
    ("EXPLAIN AST INSERT INTO alerts SELECT * FROM alerts", "EXPLAIN is allowed for a SELECT only"),
    ("INSERT INTO alert_acks (tenant) VALUES ('x')", "INSERT is not allowed"),
    ("INSERT INTO FUNCTION file('{p}') SELECT 1", "INSERT is not allowed"),
    ("INSERT INTO alerts SELECT * FROM alerts", "INSERT is not allowed"),
    ("DROP TABLE alerts", "DROP is not allowed"),
    ("ALTER TABLE alerts DELETE WHERE 1", "ALTER is not allowed"),
    ("SET readonly = 0", "SET is not allowed"),
    ("TRUNCATE alerts", "TRUNCATE is not allowed"),
    ("CREATE TABLE x ENGINE = File(CSV, '{p}') AS SELECT 1", "CREATE is not allowed"),
    ("SYSTEM FLUSH LOGS", "SYSTEM is not allowed"),
    ("SHOW USERS", "SHOW is not allowed"),
    ("SELECT 1; SELECT 2", "one statement at a time"),
    ("SELECT 1; DROP TABLE alerts", "one statement at a time"),
    ("SELECT 1 -- x\n; TRUNCATE alerts", "one statement at a time"),
    ("WITH x AS (SELECT 1) SELECT * FROM x; ALTER TABLE alerts DELETE WHERE 1", "one statement at a time"),
    ("", "enter a query"),
    ("   ;  ", "enter a query"),
    ("-- only a comment", "enter a query"),
    ("SELECT '" + "x" * MAX_SQL_CHARS + "'", f"longer than {MAX_SQL_CHARS} characters"),
]

# what an analyst writes, with the text ClickHouse formats it to (which is what runs)
ALLOWED = [
    ("SELECT 1", "SELECT 1"),
    ("  select 1;  ", "SELECT 1"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 1) SELECT * FROM x"),
    ("-- a comment\nSELECT ';' AS semi", "SELECT ';' AS semi"),
    ("/* c */ SELECT 'INTO OUTFILE' AS s # c", "SELECT 'INTO OUTFILE' AS s"),
    ("\u00a0SELECT\u20031", "SELECT 1"),
    ("SHOW TABLES", "SHOW TABLES"),
    ("DESCRIBE TABLE alerts", "DESCRIBE TABLE alerts"),
    ("EXISTS TABLE alerts", "EXISTS TABLE alerts"),
    ("EXPLAIN SELECT 1", "EXPLAIN SELECT 1"),
    ("(SELECT 1)", "SELECT 1"),
    ("SELECT number FROM numbers(3) UNION ALL SELECT 7", "SELECT number FROM numbers(3) UNION ALL SELECT 7"),
    ("SELECT format('{}-{}', 1, 2) AS f", "SELECT format('{}-{}', 1, 2) AS f"),
]


@pytest.fixture
def ro(store) -> Iterator[Any]:  # noqa: F811
    with open_store(
        h.store_url(store), readonly=True, limits=QueryLimits(max_rows=100, timeout_s=10.0), create=False
    ) as r:
        yield r


def _refused(ro: Any, sql: str) -> str:
    with pytest.raises(ReadOnlyQueryError) as ei:
        check_readonly_sql(ro, sql)
    return str(ei.value)


@pytest.mark.parametrize("template", OUTFILE)
def test_into_outfile_in_every_form_is_refused(ro: Any, tmp_path: Path, template: str) -> None:
    sql = template.format(p=tmp_path / "out.txt")
    message = _refused(ro, sql)
    assert "INTO OUTFILE is not allowed" in message or "syntax tree" in message, message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template", SMUGGLED)
def test_a_second_statement_is_refused_before_anything_runs(ro: Any, tmp_path: Path, template: str) -> None:
    assert "one statement at a time" in _refused(ro, template.format(p=tmp_path / "out.txt"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("template", "why"), REFUSED)
def test_everything_but_one_read_is_refused(ro: Any, store, tmp_path: Path, template: str, why: str) -> None:  # noqa: F811
    (tmp_path / "secret.txt").write_text("secret\n")
    before = int(store.query("SELECT count() FROM alert_acks").scalar())
    message = _refused(ro, template.format(p=tmp_path / "secret.txt"))
    assert re.search(why, message), message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt"]
    assert int(store.query("SELECT count() FROM alert_acks").scalar()) == before
    assert store.table_exists("alerts")


@pytest.mark.parametrize(("sql", "canonical"), ALLOWED)
def test_analyst_statements_pass_and_run(ro: Any, sql: str, canonical: str) -> None:
    assert check_readonly_sql(ro, sql) == canonical
    ro.query(canonical)


def test_joins_ctes_windows_run_through_the_check(ro: Any, store) -> None:  # noqa: F811
    sql = """
        WITH runs AS (SELECT number AS run, number % 3 AS agent FROM numbers(9)),
             costs AS (SELECT number AS run, number * 1.5 AS cost FROM numbers(9))
        SELECT r.agent, c.run, c.cost,
               sum(c.cost) OVER (PARTITION BY r.agent ORDER BY c.run) AS running,
               rank() OVER (PARTITION BY r.agent ORDER BY c.cost DESC) AS rnk
        FROM runs AS r INNER JOIN costs AS c ON r.run = c.run
        WHERE r.agent IN (SELECT number FROM numbers(2))
        ORDER BY r.agent, c.run
    """
    rows = ro.query(check_readonly_sql(ro, sql)).rows
    assert [(a, run, running, rnk) for a, run, _, running, rnk in rows] == [
        (0, 0, 0.0, 3), (0, 3, 4.5, 2), (0, 6, 13.5, 1), (1, 1, 1.5, 3), (1, 4, 7.5, 2), (1, 7, 18.0, 1),
    ]
    tables = ro.query(check_readonly_sql(ro, "SELECT count() FROM run_summaries AS a FINAL LEFT JOIN alert_acks AS k "
                                             "ON a.tenant = k.tenant")).scalar()
    assert int(tables) == 0


def test_the_engine_stays_the_second_wall(ro: Any, tmp_path: Path) -> None:
    """What the check refuses, the read-only connection refuses too (bypassing the check)."""
    (tmp_path / "secret.txt").write_text("secret\n")
    for sql in (f"SELECT * FROM file('{tmp_path / 'secret.txt'}', 'LineAsString')", "DROP TABLE alerts",
                "SELECT 1 SETTINGS max_execution_time = 1000"):
        with pytest.raises(Exception, match=r"(?i)readonly|not allowed|Cannot execute"):
            ro.query(sql)


# ------------------------------------------------------------------------------ tripwire sql on chdb
@pytest.fixture
def url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    db = uid("sqlg")
    u = h.chdb_url(db)
    monkeypatch.setenv("TRIPWIRE_CLICKHOUSE_URL", u)
    with open_store(u) as s:
        s.command("CREATE TABLE notes (n UInt8) ENGINE = MergeTree ORDER BY n")
    yield u
    with open_store(u) as s:
        s.command(f"DROP DATABASE IF EXISTS {db}")


@pytest.mark.parametrize("template", OUTFILE[:8] + SMUGGLED)
def test_tripwire_sql_writes_no_file(url: str, tmp_path: Path, template: str) -> None:
    target = tmp_path / "authorized_keys"
    r = CliRunner().invoke(app, ["sql", template.format(p=target)])
    assert r.exit_code == 1, r.output
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_tripwire_sql_refuses_the_issues_escapes(url: str, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("secret\n")
    for sql in (f"SELECT file('{tmp_path / 's.txt'}') AS f", "SELECT * FROM system.users",
                "INSERT INTO notes VALUES (1)", "SELECT 1 SETTINGS readonly = 0", "SELECT 1; SELECT 2"):
        r = CliRunner().invoke(app, ["sql", sql])
        assert r.exit_code == 1 and "secret" not in r.output, (sql, r.output)
    r = CliRunner().invoke(app, ["sql", "SELECT count() AS n FROM notes", "--format", "json"])
    assert r.exit_code == 0 and r.stdout.strip() == '[{"n": 0}]', r.output
