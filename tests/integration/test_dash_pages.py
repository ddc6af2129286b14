"""Every dashboard page under streamlit's AppTest against seeded chdb data: the figures shown
equal SQL computed independently here (argMax per run instead of FINAL, raw calls instead of
rollups, Python over raw alert rows), and actions land in the store."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.dash_seed import Seeded, seed
from tests.helpers import uid
from tripwire.dashboard import DashboardSettings, actions, console, data
from tripwire.dashboard.errors import NotAuthorizedError
from tripwire.sinks import queries
from tripwire.sinks.migrations import migrate
from tripwire.sinks.store import Store, open_store

pytestmark = pytest.mark.integration

OPERATOR = "oncall:test"
# The latest revision of each run, computed without FINAL.
LATEST = """
SELECT run_id, argMax(outcome, version) AS outcome, argMax(cost_usd, version) AS cost_usd,
       argMax(seq_gaps, version) AS seq_gaps, argMax(started_at, version) AS started_at,
       argMax(agent_id, version) AS agent_id, argMax(agent_version, version) AS agent_version,
       argMax(workflow, version) AS workflow, argMax(duration_ms, version) AS duration_ms,
       argMax(budget_cost_pct, version) AS budget_cost_pct, argMax(budget_steps_pct, version) AS budget_steps_pct,
       argMax(cost_input_usd, version) AS cost_input_usd, argMax(cost_output_usd, version) AS cost_output_usd,
       argMax(trace_id, version) AS trace_id
FROM run_summaries GROUP BY run_id
"""


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[Store, Seeded]]:
    folder = Path(tempfile.mkdtemp(prefix="dash_chdb_"))
    store = open_store(f"chdb://{folder}?database={uid('dash')}")
    migrate(store)
    s = seed(store)
    data.set_store(store)
    data.set_settings(DashboardSettings(operator=OPERATOR))
    yield store, s
    data.set_store(None)
    data.set_settings(None)
    data.set_command_sink(None)
    actions.set_authorizer(None)
    console.close_readers()
    store.close()
    shutil.rmtree(folder, ignore_errors=True)


def page(module: str, **query: str) -> AppTest:
    at = AppTest.from_string(f"from tripwire.dashboard.{module} import render\nrender()\n", default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in at.metric:
        out.setdefault(m.label, m.value)
    return out


def table_with(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first table on the page that has all these columns (AppTest does not expose dataframe keys)."""
    for d in at.dataframe:
        if all(c in d.value.columns for c in columns):
            return d.value
    raise AssertionError(f"no table with columns {columns}")


def clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def latest(store: Store) -> pd.DataFrame:
    return store.query_df(LATEST)


# -- Overview -------------------------------------------------------------------------------------


def test_overview_figures_equal_independent_sql(seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    at = page("overview")
    clean(at)
    runs = latest(store)
    m = metrics(at)
    finished = runs[runs.outcome != "running"]
    assert m["Runs"] == f"{len(runs):,}"
    assert m["Success rate"] == f"{(finished.outcome == 'success').sum() / len(finished) * 100:.1f}%"
    assert m["Total spend"] == f"${runs.cost_usd.sum():,.2f}"
    assert m["Cost / run"] == f"${runs.cost_usd.mean():,.4f}"
    assert m["Trace coverage"] == f"{(runs.seq_gaps == 0).sum() / len(runs) * 100:.1f}%"
    # issue 19: runs / minutes of the range that have data (was: / minutes since the first run)
    minutes = runs.started_at.dt.floor("min").nunique()
    assert m["Runs / minute"] == f"{len(runs) / max(minutes, 1):,.2f}"
    q = sorted(runs.duration_ms)
    # quantileExact: the element at floor(q * n) of the sorted values
    assert m["Run p50"] == f"{q[int(0.5 * len(q))]:,.0f} ms"
    assert m["Run p99"] == f"{q[int(0.99 * len(q))]:,.0f} ms"

    table = table_with(at, "agent_version", "model", "p50_ms").set_index(["agent_version", "model"]).sort_index()
    raw = store.query_df(
        "SELECT agent_version, request_model AS model, count() AS calls, countIf(status != 'ok') AS errors, "
        "sum(cost_usd) AS cost_usd, min(duration_ms) AS lo, max(duration_ms) AS hi "
        "FROM model_calls GROUP BY agent_version, model"
    ).set_index(["agent_version", "model"]).sort_index()
    assert list(table.index) == list(raw.index)
    assert list(table["calls"]) == list(raw["calls"])
    assert list(table["errors"]) == list(raw["errors"])
    assert [round(v, 9) for v in table["cost_usd"]] == [round(v, 9) for v in raw["cost_usd"]]
    assert all(table["p50_ms"] >= raw["lo"]) and all(table["p99_ms"] <= raw["hi"])


def test_overview_long_range_reads_the_hourly_rollup_with_the_same_figures(seeded: tuple[Store, Seeded]) -> None:
    from tripwire.dashboard.data import Filters
    from tripwire.sinks import queries

    store, _ = seeded
    week = Filters.for_range("Last 7 days")
    assert queries.grain({**week.window(workflow=False), "bucket_s": week.bucket_s}) == "hour"
    assert queries.grain(week.window(workflow=False)) == "hour"  # the cost page's model mix too
    at = page("overview")
    at.selectbox(key="f_range").select("Last 7 days").run()
    clean(at)
    table = table_with(at, "agent_version", "model", "p50_ms").set_index(["agent_version", "model"]).sort_index()
    raw = store.query_df(
        "SELECT agent_version, request_model AS model, count() AS calls, countIf(status != 'ok') AS errors, "
        "sum(cost_usd) AS cost_usd FROM model_calls GROUP BY agent_version, model"
    ).set_index(["agent_version", "model"]).sort_index()
    assert list(table.index) == list(raw.index)
    assert list(table["calls"]) == list(raw["calls"]) and list(table["errors"]) == list(raw["errors"])
    assert [round(v, 9) for v in table["cost_usd"]] == [round(v, 9) for v in raw["cost_usd"]]
    cost = page("cost")
    cost.selectbox(key="f_range").select("Last 7 days").run()
    clean(cost)
    mix = table_with(cost, "model", "calls").set_index("model").sort_index()
    assert list(mix.calls) == list(raw.groupby("model").calls.sum().sort_index())


def test_overview_filters_and_workflow_path(seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    at = page("overview")
    at.selectbox(key="f_agent").select("refund-assistant").run()
    clean(at)
    runs = latest(store)
    mine = runs[runs.agent_id == "refund-assistant"]
    assert metrics(at)["Runs"] == f"{len(mine):,}"
    at.selectbox(key="f_workflow").select("refund_request").run()
    clean(at)
    table = table_with(at, "agent_version", "model", "p50_ms")
    raw = store.query_df(
        "SELECT agent_version, count() AS calls FROM model_calls WHERE agent_id = 'refund-assistant' "
        "AND workflow = 'refund_request' GROUP BY agent_version ORDER BY agent_version"
    )
    assert list(table.sort_values("agent_version")["calls"]) == list(raw["calls"])
    # version comparison side by side: each column's run count
    a, b = at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value
    shown = [m.value for m in at.metric if m.label == "Runs"][1:]
    assert shown == [f"{(mine.agent_version == v).sum():,}" for v in (a, b)]


# -- Runs explorer -------------------------------------------------------------------------------


def test_runs_search_filters(seeded: tuple[Store, Seeded]) -> None:
    store, s = seeded
    at = page("runs")
    clean(at)
    runs = latest(store)
    assert len(table_with(at, "outcome", "seq_gaps", "link")) == len(runs)
    at.multiselect(key="rx_outcomes").select("failure").run()
    clean(at)
    shown = table_with(at, "outcome", "seq_gaps", "link")
    assert sorted(shown.run_id) == sorted(runs[runs.outcome == "failure"].run_id)
    at.multiselect(key="rx_outcomes").unselect("failure").run()
    at.checkbox(key="rx_alerted").check().run()
    clean(at)
    linked = store.query(
        "SELECT DISTINCT run_id FROM run_summaries WHERE run_id IN (SELECT run_id FROM alerts WHERE run_id IS NOT NULL)"
        " OR trace_id IN (SELECT arrayJoin(evidence_trace_ids) FROM alerts)"
    ).rows
    assert sorted(table_with(at, "outcome", "seq_gaps", "link").run_id) == sorted(r[0] for r in linked)
    assert {s.blocked_run, s.breach_run} == {r[0] for r in linked}


@pytest.mark.parametrize("hostile", ["' OR 1=1 --", "%" * 200, "日本語 🙂 \\' \" ` ; DROP TABLE alerts"])
def test_runs_hostile_search_matches_nothing(seeded: tuple[Store, Seeded], hostile: str) -> None:
    store, _ = seeded
    before = store.query("SELECT count() FROM alerts").scalar()
    at = page("runs")
    at.text_input(key="rx_search").input(hostile).run()
    clean(at)
    assert not any(len(d.value) for d in at.dataframe)
    assert [i.value for i in at.info] == ["No run matches these filters."]
    assert store.query("SELECT count() FROM alerts").scalar() == before
    bad = page("runs", run_id=hostile)
    clean(bad)
    assert [w.value for w in bad.warning] == ["No run with that id."]


def test_run_trace_explains_the_block(seeded: tuple[Store, Seeded]) -> None:
    store, s = seeded
    at = page("runs", run_id=s.blocked_run)
    clean(at)
    assert at.selectbox(key="rx_run").value == s.blocked_run
    m = metrics(at)
    row = latest(store).set_index("run_id").loc[s.blocked_run]
    assert m["Outcome"] == row.outcome == "aborted"
    assert m["Blocked calls"] == "1"
    steps = table_with(at, "seq", "kind", "blocked_reason")
    n = sum(
        store.query(f"SELECT count() FROM {t} WHERE run_id = {{r:String}}", {"r": s.blocked_run}).scalar()
        for t in ("model_calls", "tool_calls", "run_events")
    )
    assert list(steps["seq"]) == list(range(n))
    why = "\n".join(md.value for md in at.markdown)
    assert "tool **send_email** [high risk] blocked, 5 ms - blocked: kill switch: freeze_tool" in why
    assert "run finished: **aborted**" in why
    assert [w.value for w in at.warning] == [
        "Alerts tied to this run: critical runaway_loop (firing): send_email called 30x"
    ]


# -- Alerts ------------------------------------------------------------------------------------------


def _incidents(store: Store) -> dict[str, dict]:
    latest_by: dict[str, dict] = {}
    for r in store.query("SELECT * FROM alerts").dicts():
        cur = latest_by.get(r["incident_id"])
        if cur is None or r["updated_at"] > cur["updated_at"]:
            latest_by[r["incident_id"]] = r
    return latest_by


def test_alerts_feed_and_acknowledge(seeded: tuple[Store, Seeded]) -> None:
    store, s = seeded
    inc = _incidents(store)
    acked = {r[0] for r in store.query("SELECT DISTINCT incident_id FROM alert_acks").rows}
    firing = [i for i in inc.values() if i["status"] == "firing"]
    at = page("alerts")
    clean(at)
    m = metrics(at)
    assert m["Incidents"] == str(len(inc))
    assert m["Firing"] == str(len(firing))
    assert m["Critical firing"] == str(sum(i["severity"] == "critical" for i in firing))
    assert m["Unacknowledged firing"] == str(sum(i["incident_id"] not in acked for i in firing)) == "1"
    table = table_with(at, "incident_id", "acked").set_index("incident_id")
    assert table.loc[s.incident_acked, "observed"] == 30 and table.loc[s.incident_acked, "severity"] == "critical"

    at.selectbox(key="al_incident").select(s.incident_with_run).run()
    evidence = table_with(at, "link", "outcome")
    assert list(evidence.run_id) == [s.breach_run]
    assert list(evidence.link) == [f"runs?run_id={s.breach_run}"]
    at.text_input(key="al_note").input("on it").run()
    at.button(key="al_ack").click().run()
    clean(at)
    rows = store.query(
        "SELECT acked_by, note FROM alert_acks WHERE incident_id = {i:String}", {"i": s.incident_with_run}
    ).rows
    assert rows == [(OPERATOR, "on it")]
    assert metrics(at)["Unacknowledged firing"] == "0"


# -- Kill switch -------------------------------------------------------------------------------------


@pytest.fixture
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tripwire.killswitch import generate_keypair

    private, public, _ = generate_keypair(tmp_path / "keys")
    monkeypatch.setenv("TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH", str(private))
    return public


def test_killswitch_disable_autonomy_in_three_clicks_then_reset(
    seeded: tuple[Store, Seeded], signing_key: Path
) -> None:
    from tripwire.killswitch import CommandVerifier, load_public_key

    store, s = seeded
    delivered: list = []
    data.set_command_sink(delivered.append)
    try:
        at = page("killswitch")
        clean(at)
        assert list(table_with(at, "expires_in").scope) == [s.active_scope]
        quick = [b for b in at.button if b.label == "Disable refund-assistant"]
        quick[0].click().run()                        # click 2 (click 1 opened the page)
        at.button(key="ks_confirm").click().run()     # click 3
        clean(at)
        assert len(delivered) == 1
        cmd = delivered[0]
        CommandVerifier([load_public_key(signing_key)]).verify(cmd)
        assert (cmd.scope, cmd.action.value, cmd.issued_by) == ("agent:refund-assistant", "disable_autonomy", OPERATOR)
        audit = store.query(
            "SELECT source, actor, action, reason FROM killswitch_audit WHERE command_id = {c:String}",
            {"c": cmd.command_id},
        ).rows
        reason = f"autonomy disabled from the dashboard by {OPERATOR}"
        assert audit == [("dashboard", OPERATOR, "disable_autonomy", reason)]
        assert set(table_with(at, "expires_in").scope) == {s.active_scope, "agent:refund-assistant"}

        reset = [b for b in at.button if b.label == "Reset agent:refund-assistant"]
        reset[0].click().run()
        at.text_input(key="ks_reason").input("all clear").run()
        at.button(key="ks_confirm").click().run()
        clean(at)
        assert [c.action.value for c in delivered] == ["disable_autonomy", "resume"]
        CommandVerifier([load_public_key(signing_key)]).verify(delivered[1])
        assert delivered[1].reason == "all clear"
        assert list(table_with(at, "expires_in").scope) == [s.active_scope]
    finally:
        data.set_command_sink(None)


def test_killswitch_refuses_without_key_or_role(seeded: tuple[Store, Seeded], monkeypatch: pytest.MonkeyPatch,
                                                signing_key: Path) -> None:
    store, _ = seeded
    delivered: list = []
    data.set_command_sink(delivered.append)
    before = store.query("SELECT count() FROM killswitch_audit").scalar()
    try:
        def deny(actor, action, details):  # type: ignore[no-untyped-def]
            raise NotAuthorizedError(f"{actor.name} may not {action.value}")

        actions.set_authorizer(deny)
        at = page("killswitch")
        next(b for b in at.button if b.label == "Disable sales-agent").click().run()
        at.button(key="ks_confirm").click().run()
        assert not at.exception
        assert [e.value for e in at.error] == [f"Trip disable_autonomy: {OPERATOR} may not killswitch.trip"]
        actions.set_authorizer(None)

        monkeypatch.delenv("TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH")
        at.button(key="ks_confirm").click().run()
        assert not at.exception
        assert "no signing key configured" in at.error[0].value
        assert delivered == []
        assert store.query("SELECT count() FROM killswitch_audit").scalar() == before
    finally:
        actions.set_authorizer(None)
        data.set_command_sink(None)


def test_killswitch_trip_and_reset_reach_the_real_broker_signed(
    seeded: tuple[Store, Seeded], signing_key: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No in-process sink: the dashboard's actions publish through the kill switch's CommandPublisher to Kafka."""
    from tripwire.killswitch import CommandVerifier, KillSwitchConfig, load_public_key, read_topic
    from tripwire.schemas import decode

    store, _ = seeded
    topic = uid("t_ks_dash")
    monkeypatch.setenv("TRIPWIRE_KILLSWITCH_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("TRIPWIRE_KILLSWITCH_TOPIC", topic)
    data.set_command_sink(None)
    actor = actions.Actor(OPERATOR)
    tripped = actions.disable_agent_autonomy(actor, agent_id="kafka-path-agent", reason="via kafka", ttl="30m")
    reset = actions.reset_switch(actor, scope="agent:kafka-path-agent", reason="all clear")
    records = read_topic(KillSwitchConfig(bootstrap=kafka_bootstrap, topic=topic))
    assert [(m.key(), decode(m.value())) for m in records] == [
        (b"agent:kafka-path-agent", tripped), (b"agent:kafka-path-agent", reset)]
    verifier = CommandVerifier([load_public_key(signing_key)])
    for c in (tripped, reset):
        verifier.verify(c)
    assert [(c.action.value, c.issued_by) for c in (tripped, reset)] == [
        ("disable_autonomy", OPERATOR), ("resume", OPERATOR)]
    audit = store.query(
        "SELECT action, actor FROM killswitch_audit WHERE scope = 'agent:kafka-path-agent' ORDER BY issued_at").rows
    assert audit == [("disable_autonomy", OPERATOR), ("resume", OPERATOR)]


# -- Cost --------------------------------------------------------------------------------------------


def test_cost_page_figures(seeded: tuple[Store, Seeded]) -> None:
    store, s = seeded
    at = page("cost")
    clean(at)
    runs = latest(store)
    m = metrics(at)
    assert m["Total spend"] == f"${runs.cost_usd.sum():,.2f}"
    breaches = runs[(runs.budget_cost_pct >= 100) | (runs.budget_steps_pct >= 100)]
    assert m["Budget breaches"] == str(len(breaches)) == "1"
    assert list(table_with(at, "max_budget_pct", "link").run_id) == [s.breach_run]
    top = table_with(at, "tokens", "link")
    assert list(top.run_id) == list(runs.sort_values(["cost_usd", "run_id"], ascending=[False, True]).run_id[:20])
    assert top.run_id.iloc[0] == s.expensive_run
    kinds = table_with(at, "kind", "tokens").set_index("kind")
    assert round(kinds.loc["input", "cost_usd"], 9) == round(runs.cost_input_usd.sum(), 9)
    assert round(kinds.loc["output", "cost_usd"], 9) == round(runs.cost_output_usd.sum(), 9)
    mix = table_with(at, "model", "calls").set_index("model").sort_index()
    raw = store.query_df(
        "SELECT request_model AS model, count() AS calls, sum(cost_usd) AS cost FROM model_calls GROUP BY model"
    ).set_index("model").sort_index()
    assert list(mix.index) == list(raw.index) and list(mix.calls) == list(raw.calls)
    wv = table_with(at, "cost_per_run_usd", "workflow").set_index(["workflow", "agent_version"]).sort_index()
    exp = runs.groupby(["workflow", "agent_version"]).cost_usd.mean().sort_index()
    assert [round(v, 9) for v in wv.cost_per_run_usd] == [round(v, 9) for v in exp]


# -- SQL ---------------------------------------------------------------------------------------------


def test_sql_console_read_only_limits_and_examples(seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    at = page("console")
    clean(at)
    at.button(key="sql_ex_2").click().run()  # "Top 20 expensive runs"
    assert at.text_area(key="sql_text").value.startswith("SELECT run_id")
    at.button(key="sql_run").click().run()
    clean(at)
    shown = table_with(at)
    exp = sorted(latest(store).cost_usd, reverse=True)[:20]
    assert list(shown.cost_usd) == [round(c, 4) for c in exp]
    assert at.get("download_button")

    at.text_area(key="sql_text").input("SELECT number FROM numbers(5000)").run()
    at.button(key="sql_run").click().run()
    assert len(table_with(at)) == 1000
    assert "truncated" in at.caption[-1].value

    before = store.query("SELECT count() FROM alert_acks").scalar()
    for bad, why in [
        ("INSERT INTO alert_acks (tenant, incident_id, acked_by, acked_at) VALUES ('a', 'b', 'c', now())",
         "INSERT is not allowed"),
        ("SELECT 1; DROP TABLE alerts", "one statement at a time"),
        ("WITH x AS (SELECT 1) SELECT * FROM x; ALTER TABLE alerts DELETE WHERE 1", "one statement at a time"),
    ]:
        at.text_area(key="sql_text").input(bad).run()
        at.button(key="sql_run").click().run()
        assert not at.exception
        assert why in at.error[0].value
    assert store.query("SELECT count() FROM alert_acks").scalar() == before
    assert store.table_exists("alerts")


def test_sql_console_engine_enforces_read_only_and_timeout(seeded: tuple[Store, Seeded]) -> None:
    from tripwire.dashboard.errors import ConsoleQueryError

    # the statement check refuses it (table function url, SETTINGS) ...
    with pytest.raises(ConsoleQueryError, match=r"readonly|read-only|Cannot execute"):
        console.run_readonly("SELECT * FROM url('http://127.0.0.1:1/x', CSV) SETTINGS readonly = 0",
                             max_rows=10, timeout_s=5)
    # ... and so does the engine's read-only mode, the second wall, when the check is bypassed
    with pytest.raises(Exception, match=r"readonly|read-only|Cannot execute"):
        console._reader(10, 5.0).query("SELECT * FROM url('http://127.0.0.1:1/x', CSV) SETTINGS readonly = 0")
    with pytest.raises(ConsoleQueryError, match="Timeout"):
        console.run_readonly("SELECT count() FROM numbers(100000000000)", max_rows=10, timeout_s=0.5)
    assert console.run_readonly("SELECT 41 + 1 AS x", max_rows=10, timeout_s=5).rows == [(42,)]


def test_sql_console_writes_no_file(seeded: tuple[Store, Seeded], tmp_path: Path) -> None:
    """Issue 21, finding 3: the console let ``SELECT ... INTO OUTFILE`` through (it starts with SELECT)."""
    from tripwire.dashboard.errors import ConsoleQueryError

    target = tmp_path / "authorized_keys"
    for sql in (f"SELECT 'ssh-ed25519 AAAA' INTO OUTFILE '{target}'",
                f"SELECT 'ssh-ed25519 AAAA' INTO OUTFILE '{target}' APPEND",
                f"SELECT 'x' INTO OUTFILE '{target}' TRUNCATE FORMAT TSVRaw",
                f"/* c */ SELECT 1 # c\n INTO\u00a0OUTFILE '{target}' AND STDOUT",
                f"SELECT 1 # '\n; SELECT 2 INTO OUTFILE '{target}' --'"):
        with pytest.raises(ConsoleQueryError, match=r"INTO OUTFILE is not allowed|one statement at a time"):
            console.run_readonly(sql, max_rows=10, timeout_s=5)
        assert list(tmp_path.iterdir()) == [], sql


def test_sql_console_examples_pass_the_check(seeded: tuple[Store, Seeded]) -> None:
    reader = console._reader(1000, 30.0)
    for name, sql in queries.EXAMPLES.items():
        canonical = console.check_statement(reader, sql)
        assert canonical == " ".join(canonical.split()) and canonical.startswith("SELECT "), name


# -- empty store and hostile filters -------------------------------------------------------------------


def test_every_page_says_what_to_run_on_an_empty_store(seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    empty = open_store(f"chdb://{store.path}?database={uid('dash_empty')}")  # type: ignore[attr-defined]
    migrate(empty)
    data.set_store(empty)
    try:
        for module in ("overview", "runs", "alerts", "cost"):
            at = page(module)
            clean(at)
            assert any("tripwire demo" in i.value for i in at.info), module
        at = page("killswitch")
        clean(at)
        assert [x.value for x in at.success] == ["No kill switch is in force."]
    finally:
        data.set_store(store)
        empty.close()


@pytest.mark.parametrize("hostile", ["' OR 1=1 --", "a" * 100_000, "租户 🙂 \\N \t '\""])
def test_hostile_filter_values_match_nothing(seeded: tuple[Store, Seeded], hostile: str) -> None:
    from tripwire.dashboard import alerts, cost, overview, runs
    from tripwire.dashboard.data import Filters

    f = Filters.for_range("All time", tenant=hostile, agent=hostile, workflow=hostile)
    assert overview.kpis(f)["runs"] == 0
    assert len(overview.latency_table(f)) == 0
    assert len(runs.search(f, outcomes=[hostile], min_cost=0, max_cost=1e9, text=hostile, alerted=True)) == 0
    assert len(alerts.incidents(f, [hostile], [hostile])) == 0
    assert cost.token_kinds(f).cost_usd.sum() == 0
    assert len(runs.trace(hostile)) == 0


def test_a_failing_store_shows_a_message_never_a_stack_trace(seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    broken = open_store(f"chdb://{store.path}?database={uid('dash_broken')}")  # type: ignore[attr-defined]
    broken.close()  # every query now fails with a StoreError
    data.set_store(broken)
    try:
        for module in ("overview", "runs", "alerts", "killswitch", "cost", "console"):
            at = page(module)
            assert not at.exception, module
            if module == "console":  # a query is audited first: with the store down it is refused, not run
                at.button(key="sql_run").click().run()
                assert not at.exception
                assert [e.value for e in at.error] == [
                    "the action could not be audited, so it was not carried out: store is closed"]
                continue
            assert [e.value for e in at.error] == ["filters: store is closed"], module
    finally:
        data.set_store(store)


def test_run_trace_explains_a_failure(seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    runs = latest(store)
    failed = sorted(runs[runs.outcome == "failure"].run_id)[0]
    at = page("runs", run_id=failed)
    clean(at)
    why = "\n".join(md.value for md in at.markdown)
    assert "ok (tool_calls)" not in why.split("\n")[1]
    assert "error (tool_calls)" in why and "- error RateLimit" in why
    assert "run finished: **failure**" in why
    assert metrics(at)["Outcome"] == "failure"


def test_runs_cost_range_and_tenant_filter(seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    runs = latest(store)
    at = page("runs")
    at.number_input(key="rx_min").set_value(0.005).run()
    at.number_input(key="rx_max").set_value(0.02).run()
    clean(at)
    shown = table_with(at, "outcome", "seq_gaps", "link")
    expected = runs[(runs.cost_usd >= 0.005) & (runs.cost_usd <= 0.02)]
    assert 0 < len(expected) < len(runs)
    assert sorted(shown.run_id) == sorted(expected.run_id)
    at.selectbox(key="f_tenant").select("globex").run()
    clean(at)
    globex = store.query("SELECT DISTINCT run_id FROM run_summaries WHERE tenant = 'globex'").rows
    assert set(table_with(at, "outcome", "seq_gaps", "link").run_id) == {r[0] for r in globex} & set(expected.run_id)


def test_overview_auto_refresh_renders_the_same_figures(seeded: tuple[Store, Seeded]) -> None:
    at = page("overview")
    before = metrics(at)
    at.toggle(key="f_live").set_value(True).run()
    clean(at)
    after = metrics(at)
    assert after["Runs"] == before["Runs"] and after["Total spend"] == before["Total spend"]
    assert at.toggle(key="f_live").value is True


def test_sub_minute_buckets_read_the_raw_calls_with_the_rollups_sums(seeded: tuple[Store, Seeded]) -> None:
    """Issue 19: charts of a few minutes of data use 10-second buckets, read from the raw calls (the
    "second" grain); their sums equal the minute rollup's, and each bucket is a 10-second boundary."""
    from tripwire.dashboard.data import Filters
    from tripwire.sinks import queries

    store, _ = seeded
    f = Filters.for_range("All time")
    params = {**f.window(workflow=False), "split": "none"}
    assert queries.grain({**params, "bucket_s": 10}) == "second"
    fine = queries.run_df(store, "model_call_series", **params, bucket_s=10)
    coarse = queries.run_df(store, "model_call_series", **params, bucket_s=60)
    fine_series, coarse_series = fine[fine["bucket"].notna()], coarse[coarse["bucket"].notna()]
    assert int(fine_series["calls"].sum()) == int(coarse_series["calls"].sum()) > 0
    assert int(fine_series["errors"].sum()) == int(coarse_series["errors"].sum())
    assert fine_series["cost_usd"].sum() == pytest.approx(coarse_series["cost_usd"].sum(), rel=1e-9)
    assert all(pd.Timestamp(b).second % 10 == 0 and pd.Timestamp(b).microsecond == 0 for b in fine_series["bucket"])
    raw = store.query_df("SELECT count() AS calls, countIf(status != 'ok') AS errors FROM model_calls")
    assert int(fine_series["calls"].sum()) == int(raw["calls"][0])
    tools_fine = queries.run_df(store, "tool_timeseries", **{k: v for k, v in params.items() if k != "split"},
                                bucket_s=10)
    tools_coarse = queries.run_df(store, "tool_timeseries", **{k: v for k, v in params.items() if k != "split"},
                                  bucket_s=60)
    for col in ("calls", "errors", "blocked"):
        assert int(tools_fine[col].sum()) == int(tools_coarse[col].sum()), col
