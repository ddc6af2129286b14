"""The storage commands end to end on chdb: migrate, sql (read-only, formats, limits), gate
(exit codes), data delete."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests import store_helpers as h
from tests.helpers import uid
from tripwire.cli import app
from tripwire.schemas import encode, topic_names
from tripwire.sinks import BatchingSink, Message, open_store

pytestmark = pytest.mark.integration
T = topic_names("cli")


@pytest.fixture
def url(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    db = uid("cli")
    u = h.chdb_url(db)
    monkeypatch.setenv("TRIPWIRE_CLICKHOUSE_URL", u)
    yield u
    with open_store(u) as s:
        s.command(f"DROP DATABASE IF EXISTS {db}")


def _seed(url: str, *, good: int, failed: int, violating: int) -> None:
    with open_store(url) as s:
        sink = BatchingSink(s, T)
        for i in range(good + failed):
            outcome = "success" if i < good else "failure"
            rec = h.run_summary(
                f"r{i}", outcome=outcome, blocked_calls=1 if i < violating else 0, principal=f"p{i % 2}"
            )
            sink.add(Message(T.runs, 0, i, b"k", encode(rec)))
        sink.add(Message(T.events, 0, 0, b"k", encode(h.model_call("r0", principal="p0"))))
        sink.flush()


def test_migrate_is_idempotent(url: str) -> None:
    r = CliRunner().invoke(app, ["migrate"])
    assert r.exit_code == 0, r.output
    assert "applied [1, 2, 3, 4, 5, 6, 7]" in r.output
    r = CliRunner().invoke(app, ["migrate"])
    assert r.exit_code == 0 and "nothing (up to date)" in r.output


def test_sql_formats_limits_and_read_only(url: str) -> None:
    CliRunner().invoke(app, ["migrate"])
    _seed(url, good=3, failed=1, violating=0)
    r = CliRunner().invoke(
        app, ["sql", "SELECT run_id, outcome FROM run_summaries FINAL ORDER BY run_id", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [
        {"run_id": "r0", "outcome": "success"},
        {"run_id": "r1", "outcome": "success"},
        {"run_id": "r2", "outcome": "success"},
        {"run_id": "r3", "outcome": "failure"},
    ]
    r = CliRunner().invoke(app, ["sql", "SELECT number AS n FROM numbers(10)", "--format", "csv", "--max-rows", "2"])
    assert r.exit_code == 0 and r.stdout.splitlines()[:3] == ["n", "0", "1"] and "truncated to 2 rows" in r.output
    r = CliRunner().invoke(app, ["sql", "DROP TABLE run_summaries"])
    assert r.exit_code == 1 and "readonly" in r.output.lower()
    r = CliRunner().invoke(app, ["sql", "SELECT count() AS n FROM run_summaries"])
    assert r.exit_code == 0 and r.stdout.splitlines()[-1].strip() == "4"


def test_gate_exit_codes(url: str) -> None:
    CliRunner().invoke(app, ["migrate"])
    _seed(url, good=19, failed=1, violating=0)
    args = ["gate", "--agent", "refund-assistant", "--version", "1.0.0", "--min-runs", "20"]
    ok = CliRunner().invoke(app, [*args, "--min-success", "0.95"])
    assert ok.exit_code == 0, ok.output
    assert "verdict: PASS" in ok.output and "0.9500" in ok.output
    fail = CliRunner().invoke(app, [*args, "--min-success", "0.96"])
    assert fail.exit_code == 1 and "verdict: FAIL" in fail.output
    few = CliRunner().invoke(app, [*args[:-1], "21"])
    assert few.exit_code == 1
    bad = CliRunner().invoke(app, [*args, "--min-success", "2"])
    assert bad.exit_code == 2


def test_gate_fails_on_violations(url: str) -> None:
    CliRunner().invoke(app, ["migrate"])
    _seed(url, good=20, failed=0, violating=1)
    r = CliRunner().invoke(app, ["gate", "--agent", "refund-assistant", "--version", "1.0.0", "--min-runs", "20"])
    assert r.exit_code == 1
    line = next(x for x in r.output.splitlines() if x.startswith("violation_rate"))
    assert line.split()[1:] == ["0.0500", "<=", "0.005", "FAIL"]


def test_data_delete_principal(url: str) -> None:
    CliRunner().invoke(app, ["migrate"])
    _seed(url, good=4, failed=0, violating=0)
    r = CliRunner().invoke(app, ["data", "delete", "--principal", "p0"])
    assert r.exit_code == 0, r.output
    assert "deleted 3 rows" in r.output  # 2 run summaries + 1 model call
    with open_store(url) as s:
        assert s.query("SELECT principal, count() FROM run_summaries GROUP BY principal").rows == [("p1", 2)]
    r = CliRunner().invoke(app, ["data", "delete"])
    assert r.exit_code == 2
