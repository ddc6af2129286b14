"""The ClickHouse storage on both backends (chdb always; a server when TRIPWIRE_CLICKHOUSE_URL is set
or Docker answers, skipped with the reason otherwise): migrations, every table's round
trip, dedup tokens through the rollups, every named query, injection, TTL, deletion, read-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests import store_helpers as h
from tests.helpers import uid
from tests.store_helpers import clickhouse_server_url, store, table_count  # noqa: F401 - fixtures
from tripwire.schemas import decode, encode, topic_names
from tripwire.sinks import (
    BatchingSink,
    Message,
    MigrationError,
    QueryLimits,
    StoreError,
    apply_retention,
    delete_subject,
    load_migrations,
    migrate,
    open_store,
)
from tripwire.sinks import queries as Q
from tripwire.sinks.migrations import Migration
from tripwire.sinks.rows import TABLES

pytestmark = pytest.mark.integration

T = topic_names("it")
EXPECTED_TABLES = {
    "model_calls": "MergeTree",
    "tool_calls": "MergeTree",
    "run_events": "MergeTree",
    "run_summaries": "ReplacingMergeTree",
    "window_stats": "ReplacingMergeTree",
    "alerts": "MergeTree",
    "alert_acks": "MergeTree",
    "killswitch_audit": "MergeTree",
    "dashboard_audit": "MergeTree",
    "dead_letters": "MergeTree",
    "sink_offsets": "ReplacingMergeTree",
    "schema_migrations": "ReplacingMergeTree",
    "model_calls_1m": "AggregatingMergeTree",
    "tool_calls_1m": "AggregatingMergeTree",
    "model_calls_1m_mv": "MaterializedView",
    "tool_calls_1m_mv": "MaterializedView",
    "model_calls_1h": "AggregatingMergeTree",
    "tool_calls_1h": "AggregatingMergeTree",
    "model_calls_1h_mv": "MaterializedView",
    "tool_calls_1h_mv": "MaterializedView",
}


def _sink_all(st, records, *, start=0):  # type: ignore[no-untyped-def]
    sink = BatchingSink(st, T)
    for i, (topic, rec) in enumerate(records):
        sink.add(Message(topic, 0, start + i, b"k", encode(rec)))
    sink.flush()
    return sink


def test_migrations_create_every_table_once_and_record_themselves(store) -> None:  # noqa: F811
    s = store
    got = dict(s.query("SELECT name, engine FROM system.tables WHERE database = {db:String}", {"db": s.database}).rows)
    assert got == EXPECTED_TABLES
    recorded = s.query("SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version").rows
    assert recorded == [(m.version, m.name, m.checksum) for m in load_migrations()]
    assert migrate(s) == []
    assert table_count(s, "schema_migrations") == len(load_migrations()) == 7


def test_changed_applied_migration_is_refused(store) -> None:  # noqa: F811
    first = load_migrations()[0]
    tampered = Migration(
        first.version, first.name, first.text + "\nCREATE TABLE IF NOT EXISTS sneaky (a UInt8) ENGINE = Log;"
    )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(store, migrations=[tampered])
    recommented = Migration(first.version, first.name, "-- a corrected comment\n" + first.text)
    assert migrate(store, migrations=[recommented]) == []


def test_new_migration_applies_in_order(store) -> None:  # noqa: F811
    extra = Migration(99, "extra", "CREATE TABLE IF NOT EXISTS extra_t (a UInt8) ENGINE = MergeTree ORDER BY a;")
    assert migrate(store, migrations=[*load_migrations(), extra]) == [99]
    assert store.table_exists("extra_t")


def test_every_record_type_round_trips(store) -> None:  # noqa: F811
    s = store
    weird = "tab\there 'quote' back\\slash ünïcode \N{PILE OF POO} -- ;"
    ts = datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)
    mc = h.model_call(ts=ts, prompt=weird, completion=None, cost=0.125)
    ks = h.killswitch_command(signature=bytes(range(256))[:64])
    ws = h.window_stats(sketch=b"\x00\xff\x10")
    rs = h.run_summary(cost_by_model={"gpt-4o": 0.5, "claude": 0.25}, missing_seqs=[3, 7], seq_gaps=2)
    al = h.alert(agent_id=None, evidence_event_ids=["a", "b"])
    records = [
        (T.events, mc),
        (T.events, h.tool_call(args='{"amount": 5}')),
        (T.events, h.run_started()),
        (T.events, h.approval(decision="denied", approver="boss")),
        (T.events, h.run_finished(outcome="killed")),
        (T.runs, rs),
        (T.metrics, ws),
        (T.alerts, al),
        (T.killswitch, ks),
        (T.dlq, h.dead_letter()),
    ]
    sink = _sink_all(s, records)
    assert sink.stats.rows_inserted == 10 and sink.stats.dead_lettered == 0
    row = s.query("SELECT prompt, completion, ts_start, duration_ms, cost_usd FROM model_calls").rows[0]
    assert row == (weird, None, ts.replace(tzinfo=None), 100.0, 0.125)
    assert s.query("SELECT signature FROM killswitch_audit").scalar() in (ks.signature, ks.signature.decode("latin-1"))
    assert s.query("SELECT hex(signature), actor, source FROM killswitch_audit").rows[0] == (
        ks.signature.hex().upper(),
        ks.issued_by,
        "topic",
    )
    assert s.query("SELECT hex(sketch) FROM window_stats").scalar() == "00FF10"
    assert s.query("SELECT cost_by_model, missing_seqs, seq_gaps FROM run_summaries").rows[0] == (
        {"gpt-4o": 0.5, "claude": 0.25},
        [3, 7],
        2,
    )
    assert s.query("SELECT agent_id, evidence_event_ids FROM alerts").rows[0] == ("", ["a", "b"])
    events = s.query("SELECT event_type, decision, approver, outcome FROM run_events ORDER BY seq").rows
    assert events == [
        ("run_started", None, None, None),
        ("approval_decision", "denied", "boss", None),
        ("run_finished", None, None, "killed"),
    ]
    for table in TABLES:
        assert table_count(s, table) == (3 if table == "run_events" else 1), table


def test_dedup_token_drops_a_resent_block_in_the_table_and_the_rollup(store) -> None:  # noqa: F811
    s = store
    spec = TABLES["model_calls"]
    from tripwire.sinks.rows import map_record

    rows = [(*map_record("events", h.model_call(cost=0.25))[1], "t", 0, i) for i in range(4)]
    for _ in range(3):
        s.insert("model_calls", spec.insert_columns, rows, dedup_token="tok-1")
    s.insert("model_calls", spec.insert_columns, rows, dedup_token="tok-2")
    assert table_count(s, "model_calls") == 8
    assert s.query("SELECT sum(calls), sum(cost_usd) FROM model_calls_1m").rows[0] == (8, 2.0)


def test_replacing_run_summaries_exact_with_final_and_argmax(store) -> None:  # noqa: F811
    s = store
    for offset, (v, cost) in enumerate(((1, 0.1), (3, 0.3), (2, 0.2))):  # separate batches, versions out of order
        _sink_all(s, [(T.runs, h.run_summary("run-a", version=v, cost=cost))], start=offset)
    assert table_count(s, "run_summaries") == 3
    assert s.query("SELECT version, cost_usd FROM run_summaries FINAL").rows == [(3, 0.3)]
    assert s.query("SELECT argMax(cost_usd, version) FROM run_summaries GROUP BY run_id").scalar() == 0.3


def _dataset(st) -> None:  # type: ignore[no-untyped-def]
    recs = []
    for i in range(10):
        run = f"run-{i}"
        ver = "1.0.0" if i < 6 else "2.0.0"
        ts = h.T0 + timedelta(minutes=i)
        recs += [
            (T.events, h.run_started(run, ts=ts, agent_version=ver)),
            (T.events, h.model_call(run, 1, ts=ts, cost=0.01 * (i + 1), agent_version=ver, ms=100 + i)),
            (
                T.events,
                h.tool_call(run, 2, ts=ts, agent_version=ver, status="blocked" if i == 9 else "ok"),
            ),
            (T.events, h.run_finished(run, 3, ts=ts, agent_version=ver, outcome="success" if i % 5 else "failure")),
            (
                T.runs,
                h.run_summary(
                    run,
                    cost=0.01 * (i + 1),
                    agent_version=ver,
                    outcome="success" if i % 5 else "failure",
                    blocked_calls=1 if i == 9 else 0,
                    started_at=ts,
                    ended_at=ts + timedelta(seconds=1),
                    workflow="refunds" if i % 2 else "billing",
                ),
            ),
        ]
    recs.append((T.alerts, h.alert(incident_id="inc-9", status="firing")))
    recs.append((T.alerts, h.alert(incident_id="inc-9", status="resolved", updated_at=h.T0 + timedelta(minutes=5))))
    recs.append((T.alerts, h.alert(incident_id="inc-7", status="firing")))
    recs.append((T.killswitch, h.killswitch_command()))
    _sink_all(st, recs)


def test_every_named_query_runs_and_returns_exact_values(store) -> None:  # noqa: F811
    s = store
    _dataset(s)
    now = h.T0 + timedelta(hours=1)
    results = {}
    for name in Q.QUERIES:
        params = Q.default_params(name, tenant="acme", now=now)
        if name == "run_trace":
            params["run_id"] = "run-3"
        if name == "release_gate":
            params.update(agent_id="refund-assistant", agent_version="1.0.0")
        results[name] = Q.run(s, name, **params).dicts()
    hourly = Q.run(
        s, "cost_timeseries", **{**Q.default_params("cost_timeseries", tenant="acme", now=now), "bucket_s": 3600}
    ).dicts()
    assert Q.grain({"bucket_s": 3600}) == "hour" and Q.grain({"bucket_s": 300}) == "minute"
    assert sum(r["calls"] for r in hourly) == 10
    assert round(sum(r["cost_usd"] for r in hourly), 9) == round(sum(0.01 * (i + 1) for i in range(10)), 9)
    short = Q.run(s, "version_latency", **{**Q.default_params("version_latency", tenant="acme", now=now, hours=2)})
    assert {r[1]: r[3] for r in short.rows} == {r["agent_version"]: r["calls"] for r in results["version_latency"]}
    cost = results["cost_timeseries"]
    assert sum(r["calls"] for r in cost) == 10
    assert round(sum(r["cost_usd"] for r in cost), 9) == round(sum(0.01 * (i + 1) for i in range(10)), 9)
    assert [r["kind"] for r in results["run_trace"]] == ["run_started", "model_call", "tool_call", "run_finished"]
    overview = {r["agent_version"]: r for r in results["agent_overview"]}
    assert (overview["1.0.0"]["runs"], overview["1.0.0"]["succeeded"]) == (6, 4)  # i = 0, 5 failed
    assert (overview["2.0.0"]["runs"], overview["2.0.0"]["succeeded"]) == (4, 4)
    assert {r["incident_id"]: r["status"] for r in results["active_alerts"]} == {"inc-7": "firing"}
    viol = {r["agent_version"]: r for r in results["policy_violation_rate_by_version"]}
    assert (viol["2.0.0"]["violating_runs"], viol["2.0.0"]["violation_rate"]) == (1, 0.25)
    assert viol["1.0.0"]["violating_runs"] == 0
    top = results["top_expensive_runs"]
    assert [r["run_id"] for r in top[:2]] == ["run-9", "run-8"]
    gate = results["release_gate"][0]
    assert (gate["runs"], gate["succeeded"], gate["violating_runs"]) == (6, 4, 0)
    cprt = {r["workflow"]: r for r in results["cost_per_resolved_ticket"]}
    assert cprt["refunds"]["resolved"] == 4  # odd i: 1,3,7,9 succeed (5 failed)
    tools = results["tool_timeseries"]
    assert sum(r["blocked"] for r in tools) == 1
    cov = {r["agent_version"]: r["coverage"] for r in results["trace_coverage"]}
    assert cov == {"1.0.0": 1.0, "2.0.0": 1.0}
    p95 = results["p95_by_version_and_model"]
    assert {r["agent_version"]: r["calls"] for r in p95} == {"1.0.0": 6, "2.0.0": 4}
    assert results["killswitch_history"][0]["action"] == "freeze_tool"


INJECTION = "x' OR 1=1 --"


@pytest.mark.parametrize("name", sorted(Q.QUERIES))
def test_injection_values_match_nothing_and_error_nothing(store, name: str) -> None:  # noqa: F811
    s = store
    _dataset(s)
    params = Q.default_params(name, tenant="acme", now=h.T0 + timedelta(hours=1))
    string_params = [k for k, v in params.items() if isinstance(v, str)]
    if not string_params:
        pytest.skip(f"{name} takes no string parameter")
    for k in string_params:
        params[k] = INJECTION
    rows = Q.run(s, name, **params).dicts()
    if name == "release_gate":
        assert rows[0]["runs"] == 0
    else:
        assert rows == []
    assert table_count(s, "model_calls") == 10  # nothing was touched


def test_ttl_removes_old_rows_and_old_prompt_text(store) -> None:  # noqa: F811
    s = store
    now = datetime.now(UTC)
    recs = [
        (T.events, h.model_call("old", 1, ts=now - timedelta(days=200), prompt="p-old")),
        (T.events, h.model_call("mid", 1, ts=now - timedelta(days=40), prompt="p-mid", completion="c-mid")),
        (T.events, h.model_call("new", 1, ts=now - timedelta(days=1), prompt="p-new")),
        (T.events, h.tool_call("old", 2, ts=now - timedelta(days=181))),
        (T.events, h.tool_call("mid", 2, ts=now - timedelta(days=179), args='{"a": 1}')),
        (T.events, h.tool_call("new", 2, ts=now - timedelta(days=2), args='{"a": 2}')),
    ]
    _sink_all(s, recs)
    s.command("OPTIMIZE TABLE model_calls FINAL")
    s.command("OPTIMIZE TABLE tool_calls FINAL")
    got = s.query("SELECT run_id, prompt, completion FROM model_calls ORDER BY run_id").rows
    assert got == [("mid", None, None), ("new", "p-new", None)]
    assert s.query("SELECT run_id, args FROM tool_calls ORDER BY run_id").rows == [("mid", None), ("new", '{"a": 2}')]


def test_shorter_retention_applies_at_the_next_final_merge(store) -> None:  # noqa: F811
    s = store
    now = datetime.now(UTC)
    recs = [
        (T.events, h.model_call("d40", 1, ts=now - timedelta(days=40), prompt="p40")),
        (T.events, h.model_call("d10", 1, ts=now - timedelta(days=10), prompt="p10")),
        (T.events, h.model_call("d1", 1, ts=now - timedelta(days=1), prompt="p1")),
    ]
    _sink_all(s, recs)
    s.command("OPTIMIZE TABLE model_calls FINAL")
    assert s.query("SELECT run_id, prompt FROM model_calls ORDER BY run_id").rows == [
        ("d1", "p1"),
        ("d10", "p10"),
        ("d40", None),  # prompt text: 30 days
    ]
    apply_retention(s, prompt_ttl_days=5, call_ttl_days=30)
    s.command("OPTIMIZE TABLE model_calls FINAL")
    assert s.query("SELECT run_id, prompt FROM model_calls ORDER BY run_id").rows == [("d1", "p1"), ("d10", None)]


def test_delete_principal_removes_only_that_principal(store) -> None:  # noqa: F811
    s = store
    recs = []
    for who in ("alice", "bob"):
        run = f"run-{who}"
        recs += [
            (T.events, h.run_started(run, principal=who)),
            (T.events, h.model_call(run, 1, principal=who)),
            (T.events, h.tool_call(run, 2, principal=who)),
            (T.events, h.run_finished(run, 3, principal=who)),
            (T.runs, h.run_summary(run, principal=who)),
        ]
    _sink_all(s, recs)
    tables = ("model_calls", "tool_calls", "run_events", "run_summaries")

    def counts(who: str) -> dict[str, int]:
        return {
            t: int(s.query(f"SELECT count() FROM {t} WHERE principal = {{p:String}}", {"p": who}).scalar())
            for t in tables
        }

    before_bob = counts("bob")
    report = delete_subject(s, principal="alice")
    assert report.deleted == {"model_calls": 1, "tool_calls": 1, "run_events": 2, "run_summaries": 1}
    assert counts("alice") == dict.fromkeys(tables, 0)
    assert counts("bob") == before_bob == {"model_calls": 1, "tool_calls": 1, "run_events": 2, "run_summaries": 1}
    # a replay after the deletion does not bring the principal back (sink_offsets remembers)
    sink = _sink_all(s, recs)
    assert counts("alice") == dict.fromkeys(tables, 0)
    assert sink.stats.deduplicated == len(recs)


def test_injection_in_deletion_and_gate_matches_nothing(store) -> None:  # noqa: F811
    s = store
    _dataset(s)
    before = {t: table_count(s, t) for t in ("model_calls", "tool_calls", "run_events", "run_summaries")}
    report = delete_subject(s, principal=INJECTION)
    assert report.total == 0
    assert {t: table_count(s, t) for t in before} == before
    from tripwire.sinks import GateThresholds, evaluate_gate

    verdict = evaluate_gate(s, INJECTION, INJECTION, GateThresholds(min_runs=1), tenant=INJECTION)
    assert verdict.runs == 0 and not verdict.passed


def test_delete_tenant_covers_rollups(store) -> None:  # noqa: F811
    s = store
    _sink_all(s, [(T.events, h.model_call(tenant="t1")), (T.events, h.model_call(tenant="t2"))])
    report = delete_subject(s, tenant="t1")
    assert report.deleted["model_calls_1m"] == report.deleted["model_calls_1h"] == report.deleted["model_calls"] == 1
    assert s.query("SELECT DISTINCT tenant FROM model_calls_1m").rows == [("t2",)]


def test_readonly_store_refuses_writes_and_enforces_limits(store) -> None:  # noqa: F811
    url = h.store_url(store)
    with open_store(url, readonly=True, limits=QueryLimits(max_rows=5, timeout_s=1.0), create=False) as ro:
        for sql in (
            "INSERT INTO alert_acks (tenant) VALUES ('x')",
            "DROP TABLE model_calls",
            "DELETE FROM model_calls WHERE 1",
            "SELECT * FROM file('/etc/passwd', 'LineAsString')",
            "SELECT 1 SETTINGS max_execution_time = 1000",
        ):
            with pytest.raises(StoreError) as ei:
                ro.query(sql)
            assert ei.value.code == 164, sql
        res = ro.query("SELECT number FROM numbers(1000)")
        assert (len(res.rows), res.truncated) == (5, True)
        with pytest.raises(StoreError) as ei:
            ro.query("SELECT count() FROM numbers(100000000000)")
        assert ei.value.code == 159
    assert store.table_exists("model_calls")
    assert table_count(store, "alert_acks") == 0


# ---------------------------------------------------------------------------- trusted fast path
def _event_records() -> list:
    recs = []
    for i in range(6):
        run = f"fast-{i}"
        recs += [
            h.run_started(run),
            h.model_call(run, 1, cost=0.01 * i, prompt="tab\there 'q'" if i == 2 else None),
            h.tool_call(run, 2, status="blocked", blocked_reason="policy") if i == 3 else h.tool_call(run, 2),
            h.approval(run, 3, decision="denied", reason="no"),
            h.run_finished(run, 4, outcome="escalated"),
        ]
    return recs


def _rows(st, table: str, topic: str) -> list:  # type: ignore[no-untyped-def]
    cols = list(TABLES[table].columns) + (["duration_ms"] if table != "run_events" else [])
    res = st.query(
        f"SELECT {', '.join(cols)}, src_partition, src_offset FROM {table} "
        "WHERE src_topic = {t:String} ORDER BY src_offset",
        {"t": topic},
    )
    return res.rows


def _stored_events(st, topic: str) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """(event_id, src_offset) of every row of the three event tables from ``topic``."""
    rows = st.query(
        "SELECT event_id, src_offset FROM model_calls WHERE src_topic = {t:String}"
        " UNION ALL SELECT event_id, src_offset FROM tool_calls WHERE src_topic = {t:String}"
        " UNION ALL SELECT event_id, src_offset FROM run_events WHERE src_topic = {t:String}",
        {"t": topic},
    ).rows
    return [(str(e), int(o)) for e, o in rows]


class _Wrapped:
    """A store that delegates everything to ``inner``; subclasses change one behaviour."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


class _NoStaging(_Wrapped):
    """A store without temporary staging tables (as the ClickHouse-server backend is): trusted mode
    then inserts the Avro container directly and reads the event ids in Python."""

    supports_avro_staging = False


_MODES = pytest.mark.parametrize(
    ("validate", "staging"),
    [(False, True), (False, False), (True, True)],
    ids=["trusted", "trusted-direct", "validating"],
)


@_MODES
def test_clickhouse_decoded_rows_equal_python_decoded_rows(store, validate: bool, staging: bool) -> None:  # noqa: F811
    s = store if staging else _NoStaging(store)
    if staging and not s.supports_avro_staging:
        pytest.skip(f"{s.backend}: no staging on this backend")
    slow_t, fast_t = topic_names(uid("slow")), topic_names(uid("fast"))
    recs = _event_records()
    slow = BatchingSink(s, slow_t, validate=True, decoder=decode)  # the Python decoder
    fast = BatchingSink(s, fast_t, validate=validate)
    assert fast.decodes_in_clickhouse and not slow.decodes_in_clickhouse
    for i, r in enumerate(recs):
        data = encode(r)
        slow.add(Message(slow_t.events, 0, i, b"k", data))
        fast.add(Message(fast_t.events, 0, i, b"k", data))
    slow.flush()
    tables = ("model_calls", "tool_calls", "run_events")
    slow_rows = {table: _rows(s, table, slow_t.events) for table in tables}
    for table in tables:  # the same event ids: stored once (sinks/_event_ids.py) unless the first copy is gone
        s.command(f"TRUNCATE TABLE {table}")
    assert fast.flush() == {(fast_t.events, 0): len(recs)}
    assert fast.stats.avro_fallbacks == 0 and fast.stats.rows_inserted == len(recs)
    assert (fast.stats.batches_staged > 0) == staging
    for table in tables:
        a, b = slow_rows[table], _rows(s, table, fast_t.events)
        assert len(a) > 0 and a == b, table


@_MODES
def test_events_produced_twice_at_new_offsets_are_stored_once(store, validate: bool, staging: bool) -> None:  # noqa: F811
    s = store if staging else _NoStaging(store)
    if staging and not s.supports_avro_staging:
        pytest.skip(f"{s.backend}: no staging on this backend")
    t = topic_names(uid("twice"))
    recs = _event_records()[:10]
    first = BatchingSink(s, t, validate=validate)
    for i, r in enumerate(recs):
        first.add(Message(t.events, 0, i, b"k", encode(r)))
    assert first.flush() == {(t.events, 0): 10}
    again = BatchingSink(s, t, validate=validate)  # a restarted sink: the tables know, memory does not
    for i, r in enumerate(recs):
        again.add(Message(t.events, 0, 100 + i, b"k", encode(r)))
    assert again.flush() == {(t.events, 0): 110}
    assert again.stats.deduplicated == 10 and again.stats.rows_inserted == 0
    assert (again.stats.batches_staged > 0) == staging
    assert sorted(e for e, _ in _stored_events(s, t.events)) == sorted(r.event_id for r in recs)


@_MODES
def test_a_batch_with_stored_and_repeated_event_ids_keeps_each_event_once_at_its_first_offset(
    store,  # noqa: F811
    validate: bool,
    staging: bool,
) -> None:
    s = store if staging else _NoStaging(store)
    if staging and not s.supports_avro_staging:
        pytest.skip(f"{s.backend}: no staging on this backend")
    t = topic_names(uid("repeat"))
    recs = _event_records()[:10]
    first = BatchingSink(s, t, validate=validate)
    for i, r in enumerate(recs[:5]):
        first.add(Message(t.events, 0, i, b"k", encode(r)))
    assert first.flush() == {(t.events, 0): 5}
    again = BatchingSink(s, t, validate=validate)  # offsets 100..108: recs 3-4 stored, 7 and 8 twice in the batch
    batch = [*recs[3:], recs[7], recs[8]]
    for i, r in enumerate(batch):
        again.add(Message(t.events, 0, 100 + i, b"k", encode(r)))
    assert again.flush() == {(t.events, 0): 100 + len(batch)}
    assert again.stats.deduplicated == 4 and again.stats.rows_inserted == 5
    assert (again.stats.batches_staged > 0) == staging
    rows = _stored_events(s, t.events)
    at = dict(rows)
    assert len(rows) == len(recs) == len(at)
    assert at == {r.event_id: (i if i < 5 else 100 + i - 3) for i, r in enumerate(recs)}


def test_fast_path_rejected_batch_falls_back_and_dead_letters_the_bad_message(store) -> None:  # noqa: F811
    s = store
    t = topic_names("fb")
    recs = _event_records()[:10]
    sink = BatchingSink(s, t, validate=False)
    good = [encode(r) for r in recs]
    model_call_bytes = good[1]
    bad = model_call_bytes[:11] + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # header ok, body garbage
    for i, data in enumerate([*good[:5], bad, *good[5:]]):
        sink.add(Message(t.events, 0, i, b"k", data))
    assert sink.flush() == {(t.events, 0): 11}
    assert sink.stats.avro_fallbacks == 1
    assert sink.stats.dead_lettered == 1
    assert s.query("SELECT offset, stage FROM dead_letters WHERE src_topic = {t:String}", {"t": t.events}).rows == [
        (5, "decode")
    ]
    n = s.query(
        "SELECT (SELECT count() FROM model_calls WHERE src_topic = {t:String})"
        " + (SELECT count() FROM tool_calls WHERE src_topic = {t:String})"
        " + (SELECT count() FROM run_events WHERE src_topic = {t:String})",
        {"t": t.events},
    ).scalar()
    assert n == 10


class _NoOffsetsStore(_Wrapped):
    """Wraps a store; writing sink_offsets fails (a crash between the data insert and the mark)."""

    def insert(self, table, columns, rows, *, dedup_token=None):  # type: ignore[no-untyped-def]
        if table == "sink_offsets":
            raise StoreError("simulated crash before the offsets were recorded")
        return self.inner.insert(table, columns, rows, dedup_token=dedup_token)


@pytest.mark.parametrize("validate", [True, False])
def test_crash_between_insert_and_offset_record_replays_exactly_once(store, validate: bool) -> None:  # noqa: F811
    s = store
    t = topic_names("cr")
    recs = _event_records()
    msgs = [Message(t.events, 0, i, b"k", encode(r)) for i, r in enumerate(recs)]
    first = BatchingSink(_NoOffsetsStore(s), t, validate=validate)  # type: ignore[arg-type]
    for m in msgs[:20]:
        first.add(m)
    with pytest.raises(Exception, match="offsets were recorded"):
        first.flush()
    # restart: nothing was committed, everything is replayed (plus the rest)
    second = BatchingSink(s, t, validate=validate)
    for m in msgs:
        second.add(m)
    assert second.flush() == {(t.events, 0): len(msgs)}
    ids = [e for e, _ in _stored_events(s, t.events)]
    assert (len(set(ids)), len(ids)) == (len(msgs), len(msgs))
    # and a third replay after the offsets are recorded is dropped before decoding
    third = BatchingSink(s, t, validate=validate)
    for m in msgs:
        third.add(m)
    third.flush()
    assert third.stats.deduplicated == len(msgs) and third.stats.rows_inserted == 0


class _SecondRunEventsInsertCrashStore(_Wrapped):
    """Wraps a store; the second Avro insert into run_events fails (the process dies there)."""

    run_events_inserts = 0

    def _crash(self, table: str) -> None:
        if table == "run_events":
            self.run_events_inserts += 1
            if self.run_events_inserts == 2:
                raise StoreError("simulated crash between two run_events batches")

    def insert_select(self, table, columns, select, params, *, dedup_token=None):  # type: ignore[no-untyped-def]
        self._crash(table)
        return self.inner.insert_select(table, columns, select, params, dedup_token=dedup_token)

    def insert_avro(self, table, columns, data, *, dedup_token=None):  # type: ignore[no-untyped-def]
        self._crash(table)
        return self.inner.insert_avro(table, columns, data, dedup_token=dedup_token)


@_MODES
def test_a_crash_between_two_batches_of_one_event_table_replays_every_row(
    store,  # noqa: F811
    validate: bool,
    staging: bool,
) -> None:
    """run_events takes three writer records (RunStarted, ApprovalDecision, RunFinished), one Avro batch
    each: after a crash between two of them, the table's highest stored offset is above rows never
    stored, and the replay must still store those (and nothing twice)."""
    s = store if staging else _NoStaging(store)
    if staging and not s.supports_avro_staging:
        pytest.skip(f"{s.backend}: no staging on this backend")
    t = topic_names(uid("branches"))
    recs = _event_records()
    msgs = [Message(t.events, 0, i, b"k", encode(r)) for i, r in enumerate(recs)]
    crashing = _SecondRunEventsInsertCrashStore(s)
    first = BatchingSink(crashing, t, validate=validate)  # type: ignore[arg-type]
    for m in msgs:
        first.add(m)
    with pytest.raises(Exception, match="between two run_events batches"):
        first.flush()
    assert crashing.run_events_inserts == 2
    second = BatchingSink(s, t, validate=validate)  # restart: nothing was committed, everything is replayed
    for m in msgs:
        second.add(m)
    assert second.flush() == {(t.events, 0): len(msgs)}
    ids = [e for e, _ in _stored_events(s, t.events)]
    assert (len(set(ids)), len(ids)) == (len(msgs), len(msgs))


class _DeadLetterCrashStore(_Wrapped):
    """Wraps a store; the dead-letter insert holding a given offset fails (the process dies there)."""

    def __init__(self, inner, offset: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(inner)
        self.offset = offset

    def insert(self, table, columns, rows, *, dedup_token=None):  # type: ignore[no-untyped-def]
        if table == "dead_letters" and any(r[-1] == self.offset for r in rows):
            raise StoreError("simulated crash before this dead letter was stored")
        return self.inner.insert(table, columns, rows, dedup_token=dedup_token)


def test_a_crash_between_dead_letter_inserts_loses_no_dead_letter_on_replay(store) -> None:  # noqa: F811
    """A flush finds dead letters in two places: a message that does not decode (Python path, offset 9)
    and a staged event the checks reject (offset 6, found after its batch's insert). They are stored
    together after the data batches, so a crash before that leaves no dead-letter mark above offset 6
    for the replay to take it for stored."""
    s = store
    if not s.supports_avro_staging:
        pytest.skip(f"{s.backend}: no staged (validating) path on this backend")
    t = topic_names(uid("dlcrash"))
    recs = _event_records()[:10]
    values = [encode(r) for r in recs]
    values[6] = encode(recs[6].model_copy(update={"event_id": "not-a-uuid"}), validate=False)  # rejected by the sink
    values[9] = b"\x00not avro"  # does not decode
    msgs = [Message(t.events, 0, i, b"k", v) for i, v in enumerate(values)]
    first = BatchingSink(_DeadLetterCrashStore(s, 6), t, validate=True)  # type: ignore[arg-type]
    for m in msgs:
        first.add(m)
    with pytest.raises(Exception, match="dead letter was stored"):
        first.flush()
    second = BatchingSink(s, t, validate=True)  # restart: nothing was committed, everything is replayed
    for m in msgs:
        second.add(m)
    assert second.flush() == {(t.events, 0): len(msgs)}
    dead = s.query(
        "SELECT offset, stage FROM dead_letters WHERE src_topic = {t:String} ORDER BY offset", {"t": t.events}
    ).rows
    assert [int(o) for o, _ in dead] == [6, 9]
    assert len(_stored_events(s, t.events)) == len(msgs) - 2


def test_run_window_p95_puts_the_streaming_value_next_to_exact_ones(store) -> None:  # noqa: F811
    """Issue 19: the run view's p95 comparison. Twenty calls of 10, 20, ... 200 ms end inside one window:
    quantileExact(0.95) is the value at 0-based rank floor(0.95 * 20) = 19 (200 ms); the sketch's rank is
    floor(0.95 * 19) = 18 (190 ms); the streaming value (stored as the window's p95) is passed through."""
    s = store
    ts = h.T0 + timedelta(seconds=1)
    recs = [(T.events, h.tool_call("rw-1", 2, ts=ts, ms=10.0 * (i + 1), tool_name="kb.search", risk="low",
                                   side_effect=False)) for i in range(20)]
    recs.append((T.events, h.tool_call("rw-1", 3, ts=h.T0 + timedelta(minutes=2), ms=5000.0, tool_name="kb.search",
                                       risk="low", side_effect=False)))  # ends in a later window: not counted
    recs.append((T.metrics, h.window_stats(kind="tool", name="kb.search", model="", count=20, p95_ms=191.5)))
    recs.append((T.metrics, h.window_stats(kind="tool", name="other.tool", model="", count=3, p95_ms=9.0)))
    _sink_all(s, recs)
    rows = Q.run(s, "run_window_p95", run_id="rw-1").dicts()
    assert len(rows) == 1  # other.tool has a window but no stored call of this agent
    r = rows[0]
    assert (r["tool"], r["window_calls"], r["stored_calls"]) == ("kb.search", 20, 20)
    assert (r["streaming_p95_ms"], r["exact_p95_ms"], r["exact_at_sketch_rank_ms"]) == (191.5, 200.0, 190.0)
    assert Q.run(s, "run_window_p95", run_id="no-such-run").dicts() == []
