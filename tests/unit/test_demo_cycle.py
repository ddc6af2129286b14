"""Issue 19: the open-ended demo's incident cycle, the story feed, and chart buckets that fit the data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tripwire.dashboard.data import Filters, bucket_for_span
from tripwire.demo_feed import StoryFeed
from tripwire.schemas import Alert
from tripwire.sim.incidents import (
    CYCLE_S,
    INCIDENT_KINDS,
    IncidentCycle,
    IncidentSchedule,
    append_ground_truth,
    next_cycle,
    read_ground_truth,
)
from tripwire.sim.workflows import AGENTS

pytestmark = pytest.mark.unit


def test_first_incident_within_30s_all_seven_kinds_within_the_first_minute() -> None:
    c = IncidentCycle()
    assert c.due(9.9) == []
    first = c.due(10.0)
    assert [i.incident_id for i in first] == ["c0-pii_in_args"]
    rest = c.due(60.0)
    assert {i.kind for i in first + rest} == set(INCIDENT_KINDS)
    assert len(first + rest) == 7
    assert max(i.start_s for i in first + rest) == 55.0 and max(i.end_s for i in first + rest) == 100.0
    assert c.due(60.0) == []  # each once


def test_the_cycle_repeats_with_new_ids_agents_and_parameters() -> None:
    c = IncidentCycle()
    c0 = {i.kind: i for i in c.cycle(0)}
    c1 = {i.kind: i for i in c.cycle(1)}
    assert {i.incident_id for i in c1.values()} == {f"c1-{k}" for k in INCIDENT_KINDS}
    assert all(c1[k].start_s == c0[k].start_s + CYCLE_S for k in INCIDENT_KINDS)
    assert (c0["pii_in_args"].agent_id, c1["pii_in_args"].agent_id) == ("support-triage", "refund-assistant")
    assert (c0["latency_slo_breach"].tool, c1["latency_slo_breach"].tool) == ("zendesk.search_kb", "zendesk.get_ticket")
    assert c0["shared_credential"].agent_id == "crm-updater"
    assert c1["shared_credential"].params == {"shares_with": "support-triage"}
    assert c1["shared_credential"].agent_id == "expense-categorizer"
    assert c0["cost_spike"].params == {"token_multiplier": 4}
    assert 4 <= c1["cost_spike"].params["token_multiplier"] <= 6
    assert 8 <= c1["runaway_loop"].params["repeats"] <= 12
    # every injected tool belongs to the misbehaving agent, in every cycle of a long run
    for k in range(12):
        for i in c.cycle(k):
            if i.tool is not None:
                assert i.tool in AGENTS[i.agent_id].tools, (i.incident_id, i.agent_id, i.tool)
            assert i.expected_alert == INCIDENT_KINDS[i.kind]
        kinds = {i.kind: i for i in c.cycle(k)}
        # no trip hides another incident of its cycle (see the comment on the role tables)
        loop_agent = kinds["runaway_loop"].agent_id
        assert all(i.agent_id != loop_agent for i in kinds.values() if i.kind != "runaway_loop")
        unapproved = kinds["high_risk_unapproved"].agent_id
        shared = kinds["shared_credential"]
        assert unapproved not in (shared.agent_id, shared.params["shares_with"], kinds["tool_error_burst"].agent_id,
                                  kinds["cost_spike"].agent_id)
    due = c.due(CYCLE_S * 2 + 60)  # two cycles and a bit, at once
    assert len(due) == 21 and len({i.incident_id for i in due}) == 21
    assert [i.incident_id for i in c.active("pr-agent", CYCLE_S + 25)] == ["c1-runaway_loop"]
    assert [i.incident_id for i in c.active("refund-assistant", CYCLE_S + 25)] == [
        "c1-pii_in_args", "c1-high_risk_unapproved"]


def test_ground_truth_is_appended_as_incidents_start_and_the_cycle_continues(tmp_path: Path) -> None:
    gt = tmp_path / "gt.jsonl"
    assert next_cycle(gt) == 0
    c = IncidentCycle()
    append_ground_truth(gt, c.due(30.0), started_at=1000.0)
    rows = read_ground_truth(gt)
    assert [r["incident_id"] for r in rows] == ["c0-pii_in_args", "c0-shared_credential", "c0-runaway_loop",
                                                 "c0-high_risk_unapproved", "c0-tool_error_burst"]
    assert rows[0]["started_epoch_s"] == 1010.0 and rows[0]["ended_epoch_s"] == 1100.0
    assert next_cycle(gt) == 1
    again = IncidentCycle(first_cycle=next_cycle(gt))
    assert [i.incident_id for i in again.due(10.0)] == ["c1-pii_in_args"]
    assert again.due(10.0) == [] and json.loads(gt.read_text().splitlines()[0])["cycle"] == 0


def test_the_standard_schedule_is_announced_as_it_starts() -> None:
    s = IncidentSchedule.standard(60.0)
    assert [i.kind for i in s.due(6.0)] == ["pii_in_args"]
    assert len(s.due(60.0)) == 6 and s.due(60.0) == []


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _alert(kind: str, agent: str, at: datetime, alert_id: str = "al-1") -> Alert:
    return Alert(alert_id=alert_id, incident_id=f"inc-{alert_id}", kind=kind, severity="critical",
                 scope=f"agent:{agent}", tenant="acme", agent_id=agent, run_id="run-7", observed=9.0,
                 threshold=5.0, summary="x", status="firing", created_at=at, updated_at=at)


def test_the_story_line_grows_step_by_step() -> None:
    from tripwire.killswitch import new_command

    now = [T0.timestamp()]
    blocked = {"": 0}
    feed = StoryFeed(blocked=lambda cid: blocked.get(cid, 0), clock=lambda: now[0])
    [loop] = [i for i in IncidentCycle().cycle(0) if i.kind == "runaway_loop"]
    # the alert may be processed before the fleet announces the incident: matched either way
    now[0] += 2.1
    feed.alert(_alert("runaway_loop", "pr-agent", T0 + timedelta(seconds=1)))
    feed.incident(loop, started_epoch_s=T0.timestamp())
    cmd = new_command(scope="agent:pr-agent/tool:github.read_issue", action="freeze_tool", reason="loop",
                      issued_by="policy:runaway-loop", ttl=timedelta(seconds=60), alert_id="al-1", now=T0)
    feed.command(cmd)
    blocked[cmd.command_id] = 14
    feed.tick()
    assert feed.lines() == ["runaway_loop injected on pr-agent (github.read_issue) → alert runaway_loop after 2.1 s → "
                            "kill switch freeze_tool agent:pr-agent/tool:github.read_issue (policy) → 14 calls blocked"]
    now[0] = T0.timestamp() + 61
    [row] = feed.rows()
    assert row["story"].endswith("14 calls blocked → reset after TTL")
    assert (row["alert_id"], row["run_id"], row["command_id"], row["complete"]) == ("al-1", "run-7",
                                                                                     cmd.command_id, True)


def test_an_alert_of_another_agent_or_before_the_incident_does_not_match() -> None:
    feed = StoryFeed(clock=lambda: T0.timestamp())
    [loop] = [i for i in IncidentCycle().cycle(0) if i.kind == "runaway_loop"]
    feed.incident(loop, started_epoch_s=T0.timestamp())
    feed.alert(_alert("runaway_loop", "crm-updater", T0, "a-other"))
    feed.alert(_alert("runaway_loop", "pr-agent", T0 - timedelta(seconds=30), "a-old"))
    feed.alert(_alert("cost_spike", "pr-agent", T0, "a-kind"))
    assert feed.stories()[0].alert_id is None
    assert feed.lines() == ["runaway_loop injected on pr-agent (github.read_issue)"]


@pytest.mark.parametrize(("span_s", "bucket"), [
    (0, 10), (60, 10), (1200, 10), (1201, 30), (3600, 30), (7200, 60), (86400, 900), (7 * 86400, 14400),
    (30 * 86400, 86400), (400 * 86400, 86400),
])
def test_chart_buckets_fit_the_data_in_at_most_120_points(span_s: float, bucket: int) -> None:
    assert bucket_for_span(span_s) == bucket
    assert span_s / bucket <= 120 or bucket == 86400


def test_a_fresh_demo_in_a_24_hour_range_gets_10_second_buckets() -> None:
    f = Filters.for_range("Last 24 hours", now=T0)
    assert f.bucket_s == 300  # the range alone
    assert f.chart_bucket_s(T0 - timedelta(seconds=60), T0) == 10  # one minute of data
    assert f.chart_bucket_s(T0 - timedelta(days=7), T0) == 14400
    assert f.chart_bucket_s(None, None) == 300
