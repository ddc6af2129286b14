"""Pure parts of the dashboard: time ranges (and the catalog
parameters they give), formatting, the trace explanation, the action layer's checks (which run
before any I/O), the CLI's argument errors. The dashboard's queries are tested with the catalog
(tests/unit/test_store_queries.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from tripwire.dashboard import DashboardSettings, _ui, actions, data
from tripwire.dashboard.actions import Action, Actor
from tripwire.dashboard.data import EPOCH, Filters
from tripwire.dashboard.errors import ActionError, NoStoreError, NotAuthorizedError

pytestmark = pytest.mark.unit




def test_time_ranges() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    f = Filters.for_range("Last hour", now=now, tenant="acme")
    assert (f.since, f.until) == (now - timedelta(hours=1), now + timedelta(minutes=1))
    assert f.params() == {"since": f.since, "until": f.until, "tenant": "acme", "agent": "", "workflow": ""}
    assert f.window() == {"start": f.since, "end": f.until, "tenant": "acme", "agent_id": "", "workflow": ""}
    assert f.window(workflow=False) == {"start": f.since, "end": f.until, "tenant": "acme", "agent_id": ""}
    assert f.minutes == 61.0
    everything = Filters.for_range("All time", now=now)
    assert everything.since == EPOCH
    with pytest.raises(KeyError):
        Filters.for_range("Last century", now=now)


def test_formatting() -> None:
    assert _ui.usd(0.0066250001) == "$0.0066"
    assert _ui.usd(1234.5, 2) == "$1,234.50"
    assert _ui.pct(0.7916666) == "79.2%"
    assert _ui.ms(973.6) == "974 ms"
    assert _ui.num(0.475) in ("0.47", "0.48")  # binary float rounding, either is the same figure
    for missing in (None, math.nan, pd.NA, pd.NaT):
        assert _ui.usd(missing) == _ui.pct(missing) == _ui.ms(missing) == _ui.num(missing) == "-"
    assert _ui.run_url("r-1") == "runs?run_id=r-1"


def test_explain_reads_the_trace_in_order() -> None:
    from tripwire.dashboard.runs import explain

    nan = float("nan")
    steps = pd.DataFrame([
        dict(seq=0, kind="run_started", name="run_started", status="", duration_ms=0.0, input_tokens=0,
             output_tokens=0, cost_usd=nan, risk=None, approval_ref=None, blocked_reason=None, error_type=None,
             detail="budget $0.05"),
        dict(seq=1, kind="model_call", name="gpt-4o", status="ok", duration_ms=337.0, input_tokens=1023,
             output_tokens=123, cost_usd=0.003, risk=None, approval_ref=None, blocked_reason=None, error_type=None,
             detail="tool_calls"),
        dict(seq=2, kind="approval_decision", name="issue_refund", status="approved", duration_ms=40.0,
             input_tokens=0, output_tokens=0, cost_usd=nan, risk="high", approval_ref=None, blocked_reason=None,
             error_type=None, detail="approved by oncall:jane: looks fine"),
        dict(seq=3, kind="tool_call", name="issue_refund", status="ok", duration_ms=80.0, input_tokens=0,
             output_tokens=0, cost_usd=nan, risk="high", approval_ref="ev-2", blocked_reason=None, error_type=None,
             detail="c1"),
        dict(seq=4, kind="tool_call", name="send_email", status="blocked", duration_ms=5.0, input_tokens=0,
             output_tokens=0, cost_usd=nan, risk="high", approval_ref=None,
             blocked_reason="kill switch: freeze_tool on agent:a/tool:send_email", error_type=None, detail="c2"),
        dict(seq=5, kind="run_finished", name="run_finished", status="aborted", duration_ms=0.0, input_tokens=0,
             output_tokens=0, cost_usd=nan, risk=None, approval_ref=None, blocked_reason=None,
             error_type="ToolFrozen", detail=None),
    ])
    assert explain(steps) == [
        "#0 run started (budget $0.05)",
        "#1 model **gpt-4o** ok (tool_calls): 1023 in / 123 out, $0.00300, 337 ms",
        "#2 approval for **issue_refund**: approved by oncall:jane: looks fine",
        "#3 tool **issue_refund** [high risk] ok, 80 ms - after approval",
        "#4 tool **send_email** [high risk] blocked, 5 ms"
        " - blocked: kill switch: freeze_tool on agent:a/tool:send_email",
        "#5 run finished: **aborted** (ToolFrozen)",
    ]


def test_switch_age_text() -> None:
    from tripwire.dashboard.killswitch import _age

    assert _age(pd.Timedelta(seconds=75)) == "1m 15s"
    assert _age(pd.Timedelta(hours=2, minutes=5)) == "2h 05m"
    assert _age(pd.Timedelta(days=3, hours=4)) == "3d 4h"
    assert _age(pd.Timedelta(seconds=-1)) == "expired"


# -- the action layer ------------------------------------------------------------------------------


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Action, str]]:
    """The audit rows ``authorize`` writes (no store in unit tests): (actor, action, decision)."""
    rows: list[tuple[str, Action, str]] = []

    def audit(actor: Actor, action: Action, details: object, *, decision: str, reason: str = "") -> None:
        rows.append((actor.name, action, decision))

    monkeypatch.setattr(actions, "audit_action", audit)
    return rows


@pytest.fixture
def recorded(audited: list) -> list[tuple[str, Action, dict]]:
    calls: list[tuple[str, Action, dict]] = []

    def record(actor: Actor, action: Action, details: dict) -> None:
        calls.append((actor.name, action, dict(details)))

    actions.set_authorizer(record)
    yield calls
    actions.set_authorizer(None)


def test_every_action_is_authorized_first(recorded: list, audited: list) -> None:
    who = Actor("oncall:ann", role="oncall")
    with pytest.raises(ActionError, match="a reason is required"):
        actions.trip_switch(who, scope="agent:a", action="disable_autonomy", reason="  ")
    with pytest.raises(ActionError, match="a reason is required"):
        actions.reset_switch(who, scope="agent:a", reason="")
    with pytest.raises(ActionError, match="no incident selected"):
        actions.ack_alert(who, tenant="acme", incident_id="")
    with pytest.raises(ActionError, match="use reset"):
        actions.trip_switch(who, scope="agent:a", action="resume", reason="x")
    assert recorded == [
        ("oncall:ann", Action.TRIP, {"scope": "agent:a", "action": "disable_autonomy"}),
        ("oncall:ann", Action.RESET, {"scope": "agent:a", "action": "resume"}),
        ("oncall:ann", Action.ACK, {"tenant": "acme", "incident_id": ""}),
    ]
    assert audited == [("oncall:ann", Action.TRIP, "allowed"), ("oncall:ann", Action.RESET, "allowed"),
                       ("oncall:ann", Action.ACK, "allowed")]


def test_a_refusing_authorizer_stops_the_action(recorded: list, audited: list) -> None:
    def deny(actor: Actor, action: Action, details: dict) -> None:
        raise NotAuthorizedError(f"{actor.role} may not {action.value}")

    actions.set_authorizer(deny)
    with pytest.raises(NotAuthorizedError, match=r"viewer may not killswitch\.trip"):
        actions.disable_agent_autonomy(Actor("v", role="viewer"), agent_id="a", reason="x")
    with pytest.raises(NotAuthorizedError, match=r"viewer may not alert\.ack"):
        actions.ack_alert(Actor("v", role="viewer"), tenant="acme", incident_id="i")
    assert audited == [("v", Action.TRIP, "refused"), ("v", Action.ACK, "refused")]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"scope": "planet:mars", "action": "freeze_tool"}, "scope"),
        ({"scope": "agent:a", "action": "throttle"}, "throttle needs a per-minute limit"),
        ({"scope": "agent:a", "action": "freeze_tool", "ttl": "soon"}, "invalid duration"),
        ({"scope": "agent:a", "action": "explode"}, "explode"),
    ],
)
def test_bad_commands_are_refused_before_signing(kw: dict, message: str, audited: list) -> None:
    with pytest.raises(ActionError, match=message):
        actions.trip_switch(Actor("oncall:ann"), reason="because", **kw)


def test_store_comes_from_registration_or_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIPWIRE_DASHBOARD_STORE_URL", raising=False)
    monkeypatch.setenv("TRIPWIRE_CLICKHOUSE_URL", "chdb:///tmp/x?database=y")
    assert DashboardSettings().store_url.get_secret_value() == "chdb:///tmp/x?database=y"
    monkeypatch.setenv("TRIPWIRE_DASHBOARD_STORE_URL", "clickhouse://u:p@h:8123/db")
    assert DashboardSettings().store_url.get_secret_value() == "clickhouse://u:p@h:8123/db"
    assert "p@h" not in repr(DashboardSettings())
    data.set_settings(DashboardSettings(store_url=None))
    try:
        with pytest.raises(NoStoreError, match="tripwire dashboard --store"):
            data.get_store()
        sentinel = object()
        data.set_store(sentinel)  # type: ignore[arg-type]
        assert data.get_store() is sentinel
    finally:
        data.set_store(None)
        data.set_settings(None)


def test_cli_argument_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from tripwire.cli import app

    monkeypatch.delenv("TRIPWIRE_DASHBOARD_STORE_URL", raising=False)
    monkeypatch.delenv("TRIPWIRE_CLICKHOUSE_URL", raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["dashboard"])
    assert r.exit_code == 2 and "no store" in r.output
    r = runner.invoke(app, ["dashboard", "--store", "mysql://h/db", "--port", "18999"])
    assert r.exit_code == 2 and "unsupported store URL scheme" in r.output
    r = runner.invoke(app, ["dashboard", "--store", "chdb:///tmp/x", "--port", "0"])
    assert r.exit_code == 2


def test_series_bucket_follows_the_range() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert Filters.for_range("Last hour", now=now).bucket_s == 60
    assert Filters.for_range("Last 6 hours", now=now).bucket_s == 60
    assert Filters.for_range("Last 24 hours", now=now).bucket_s == 300
    assert Filters.for_range("Last 7 days", now=now).bucket_s == 3600
    assert Filters.for_range("Last 30 days", now=now).bucket_s == 4 * 3600
    assert Filters.for_range("All time", now=now).bucket_s == 86400


def test_count_series_are_zero_filled_over_the_chart_span() -> None:
    from tripwire.dashboard.overview import zero_filled

    t = pd.Timestamp("2026-11-26 12:00:00")
    s10 = pd.Timedelta(seconds=10)
    df = pd.DataFrame({
        "bucket": [t, t + s10, t + 3 * s10, t, t + s10],
        "series": ["1.0", "1.0", "1.0", "rc", "rc"],
        "calls": [5, 6, 7, 2, 1],
        "cost_usd": [0.5, 0.6, 0.7, 0.2, 0.1],
        "p95_ms": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    out = zero_filled(df, "series", ["calls", "cost_usd"], 10)
    assert list(out.columns) == ["bucket", "series", "calls", "cost_usd"]
    got = {(r.bucket - t, r.series): (r.calls, r.cost_usd) for r in out.itertuples()}
    assert got == {
        (0 * s10, "1.0"): (5, 0.5), (1 * s10, "1.0"): (6, 0.6), (2 * s10, "1.0"): (0, 0.0), (3 * s10, "1.0"): (7, 0.7),
        (0 * s10, "rc"): (2, 0.2), (1 * s10, "rc"): (1, 0.1), (2 * s10, "rc"): (0, 0.0), (3 * s10, "rc"): (0, 0.0),
    }
    total = zero_filled(df, None, ["calls"], 10)
    assert [(r.bucket - t, r.calls) for r in total.itertuples()] == [(0 * s10, 7), (s10, 7), (2 * s10, 0), (3 * s10, 7)]
    assert zero_filled(df.iloc[:0], "series", ["calls"], 10).empty
