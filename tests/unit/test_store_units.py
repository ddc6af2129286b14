"""Pure pieces of the ClickHouse storage: URL parsing, parameters, SQL splitting, migrations
files, row mapping, batch tokens, gate thresholds, CLI rendering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests import store_helpers as h
from tripwire.schemas import topic_names
from tripwire.sinks import TABLES, GateError, GateThresholds, StoreURLError, load_migrations, parse_store_url
from tripwire.sinks._params import text_params
from tripwire.sinks.batching import batch_token
from tripwire.sinks.cli import format_rows
from tripwire.sinks.config import ClickHouseSettings, SinkSettings
from tripwire.sinks.exceptions import MigrationError, RowMappingError
from tripwire.sinks.migrations import Migration, split_statements
from tripwire.sinks.rows import dead_letter_row, map_record

pytestmark = pytest.mark.unit


def test_parse_chdb_url() -> None:
    u = parse_store_url("chdb:///var/lib/tw?database=prod")
    assert (u.backend, u.path, u.database) == ("chdb", "/var/lib/tw", "prod")
    assert parse_store_url("chdb:///x").database == "tripwire"


def test_parse_server_url_and_redaction() -> None:
    u = parse_store_url("clickhouse://writer:s%40cret@ch.local:8123/telemetry")
    assert (u.backend, u.host, u.port, u.username, u.password, u.database, u.secure) == (
        "clickhouse",
        "ch.local",
        8123,
        "writer",
        "s@cret",
        "telemetry",
        False,
    )
    assert "s@cret" not in u.redacted()
    assert parse_store_url("clickhouses://h/db").port == 8443


@pytest.mark.parametrize(
    "url",
    ["mysql://h/db", "chdb://", "clickhouse:///db", "chdb:///x?database=a;DROP", "clickhouse://h/db-name"],
)
def test_bad_urls_fail_fast(url: str) -> None:
    with pytest.raises(StoreURLError):
        parse_store_url(url)


def test_text_params_escape_and_keep_microseconds() -> None:
    p = text_params(
        {
            "s": "x' OR 1=1 --",
            "b": "a\\b\tc",
            "t": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
            "a": ["it's", "z"],
            "n": None,
            "i": 7,
        }
    )
    assert p == {
        "s": "x\\' OR 1=1 --",
        "b": "a\\\\b\\\tc",
        "t": "2026-01-02 03:04:05.123456",
        "a": "['it\\'s', 'z']",
        "n": "\\N",
        "i": "7",
    }


@pytest.mark.parametrize("value", ["", "plain", "x' OR 1=1 --", "back`tick", "nl\nx\ty", "a\\b\\\\c", "ünï\x00'\\"])
def test_text_params_escape_strings_as_clickhouse_connect_does(value: str) -> None:
    # the sink escapes a string in one str.translate pass; clickhouse-connect's escape_str is the reference
    from clickhouse_connect.driver.binding import escape_str

    assert text_params({"s": value}) == {"s": escape_str(value)}


def test_split_statements_ignores_semicolons_in_quotes_and_comments() -> None:
    sql = "-- a; comment\nCREATE TABLE a (x String DEFAULT ';');\n\nSELECT 'it\\'s; fine' ; -- tail;\n"
    assert split_statements(sql) == ["CREATE TABLE a (x String DEFAULT ';')", "SELECT 'it\\'s; fine'"]


def test_shipped_migrations_are_ordered_and_render_ttls() -> None:
    migs = load_migrations()
    assert [m.version for m in migs] == [1, 2, 3, 4, 5, 6, 7]
    stmts = migs[0].statements({"PROMPT_TTL_DAYS": 7, "CALL_TTL_DAYS": 90})
    model_calls = next(s for s in stmts if "TABLE IF NOT EXISTS model_calls" in s)
    assert "prompt                 Nullable(String) TTL toDateTime(ts_start) + INTERVAL 7 DAY" in model_calls
    assert "TTL toDateTime(ts_start) + INTERVAL 90 DAY\nSETTINGS" in model_calls
    assert all("${" not in s for m in migs for s in m.statements({"PROMPT_TTL_DAYS": 1, "CALL_TTL_DAYS": 2}))


def test_unknown_template_variable_is_an_error() -> None:
    with pytest.raises(MigrationError, match="FOO"):
        Migration(9, "x", "SELECT ${FOO}").statements({})


def test_settings_validate_cross_fields() -> None:
    with pytest.raises(ValueError, match="prompt_ttl_days"):
        ClickHouseSettings(prompt_ttl_days=200, call_ttl_days=180)
    with pytest.raises(ValueError, match="retry_initial_s"):
        SinkSettings(retry_initial_s=5, retry_max_s=1)
    assert ClickHouseSettings().prompt_ttl_days == 30 and ClickHouseSettings().call_ttl_days == 180


def test_every_mapped_row_matches_its_table_columns() -> None:
    cases = [
        ("events", h.model_call(), "model_calls"),
        ("events", h.tool_call(), "tool_calls"),
        ("events", h.run_started(), "run_events"),
        ("events", h.approval(decision="denied"), "run_events"),
        ("events", h.run_finished(), "run_events"),
        ("runs", h.run_summary(), "run_summaries"),
        ("metrics", h.window_stats(), "window_stats"),
        ("alerts", h.alert(agent_id=None), "alerts"),
        ("killswitch", h.killswitch_command(), "killswitch_audit"),
        ("dlq", h.dead_letter(), "dead_letters"),
    ]
    for role, record, table in cases:
        got_table, row = map_record(role, record)
        assert got_table == table
        assert len(row) == len(TABLES[table].columns)
    _, row = map_record("alerts", h.alert(agent_id=None))
    assert row[TABLES["alerts"].columns.index("agent_id")] == ""
    _, row = map_record("killswitch", h.killswitch_command(issued_by="ops@acme"))
    assert row[:2] == ("topic", "ops@acme")
    _, row = map_record("events", h.approval(decision="denied"))
    assert row[0] == "approval_decision"


def test_record_on_the_wrong_topic_is_unmappable() -> None:
    with pytest.raises(RowMappingError, match="unexpected record type ModelCall on the runs topic"):
        map_record("runs", h.model_call())


def test_partition_id_mirrors_toyyyymm() -> None:
    _, row = map_record("events", h.model_call(ts=datetime(2026, 3, 31, 23, 59, tzinfo=UTC)))
    assert TABLES["model_calls"].partition_id((*row, "t", 0, 1)) == "202603"
    _, row = map_record("runs", h.run_summary())
    assert TABLES["run_summaries"].partition_id((*row, "t", 0, 1)) == "all"


def test_dead_letter_rows_are_identical_on_replay() -> None:
    a = dead_letter_row(
        "t", 1, 5, b"k", b"v", reason="r", error_type="E", stage="decode", timestamp_ms=1_700_000_000_000
    )
    b = dead_letter_row(
        "t", 1, 5, b"k", b"v", reason="r", error_type="E", stage="decode", timestamp_ms=1_700_000_000_000
    )
    assert a == b
    assert a[1][TABLES["dead_letters"].columns.index("failed_at")] == datetime.fromtimestamp(1_700_000_000, UTC)


def test_batch_token_depends_on_offset_ranges_only() -> None:
    rows1 = [("x", "t", 0, 1), ("y", "t", 0, 2), ("z", "t", 1, 9)]
    rows2 = [("other", "t", 0, 1), ("values", "t", 0, 2), ("q", "t", 1, 9)]
    assert batch_token("model_calls", "202611", rows1) == batch_token("model_calls", "202611", rows2)
    assert batch_token("model_calls", "202611", rows1) != batch_token("model_calls", "202611", rows1[:2])
    assert batch_token("model_calls", "202611", rows1) != batch_token("tool_calls", "202611", rows1)
    assert batch_token("model_calls", "202611", rows1) != batch_token("model_calls", "202612", rows1)


def test_topic_roles_cover_the_six_topics() -> None:
    from tripwire.sinks.rows import topic_roles

    roles = topic_roles(topic_names("p"))
    assert sorted(roles.values()) == ["alerts", "dlq", "events", "killswitch", "metrics", "runs"]
    assert roles["p.tripwire.events.v1"] == "events"


def test_gate_thresholds_validate() -> None:
    with pytest.raises(GateError):
        GateThresholds(min_success=1.5)
    with pytest.raises(GateError):
        GateThresholds(min_runs=0)


def test_format_rows() -> None:
    cols = ("a", "b")
    rows = [(1, None), (22, "x,y")]
    assert format_rows(cols, rows, "csv") == 'a,b\n1,\n22,"x,y"'
    assert format_rows(cols, rows, "json") == '[{"a": 1, "b": null}, {"a": 22, "b": "x,y"}]'
    assert format_rows(cols, rows, "table").splitlines() == ["a   b", "--  ----", "1   NULL", "22  x,y"]


def test_row_columns_read_fields_and_fall_back_to_attributes() -> None:
    from tripwire.sinks.rows import _attrs

    class Rec:
        def __init__(self) -> None:
            self.a, self.b = 1, "x"

        @property
        def c(self) -> int:  # not in __dict__: read as an attribute
            return self.a + 1

    assert _attrs(Rec(), ("a", "b")) == (1, "x")
    assert _attrs(Rec(), ("b", "c", "a")) == ("x", 2, 1)
