"""Semantics of the query catalog on both backends (chdb always; a server when configured): the
hourly rollup source gives the raw tables' answer over a window that starts and ends inside an
hour; a run whose RunStarted never arrived is still a run of its window; an incident opened before
the window that still fires inside it is in it."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from tests import store_helpers as h
from tests.store_helpers import clickhouse_server_url, store  # noqa: F401 - fixtures
from tripwire.schemas import encode, topic_names
from tripwire.sinks import BatchingSink, Message
from tripwire.sinks import queries as Q

pytestmark = pytest.mark.integration

T = topic_names("itq")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")
TOOLS = ("lookup_order", "issue_refund")
# Inside hours on both ends, longer than HOURLY_WINDOW: the hourly source is chosen and has to read
# the partial first hour (12:17-13:00) and last hour (19:00-19:42) from the per-minute rollup.
START = h.T0 + timedelta(minutes=17)
END = h.T0 + timedelta(hours=7, minutes=42)


def _sink_all(st, records) -> None:  # type: ignore[no-untyped-def]
    sink = BatchingSink(st, T)
    for i, (topic, rec) in enumerate(records):
        sink.add(Message(topic, 0, i, b"k", encode(rec)))
    sink.flush()


def _calls(st) -> None:  # type: ignore[no-untyped-def]
    """Model calls every 7 minutes and tool calls every 11 from 40 minutes before START to 40 after END."""
    recs = []
    for i in range(80):
        ts = h.T0 - timedelta(minutes=23) + timedelta(minutes=7 * i, seconds=i % 50)
        recs.append((T.events, h.model_call(
            f"run-{i}", 1, ts=ts, ms=50.0 + 3 * i, cost=0.001 * (i + 1), status="error" if i % 5 == 0 else "ok",
            agent_version="1.0.0" if i % 2 else "2.0.0", request_model=MODELS[i % 3], input_tokens=100 + i,
            output_tokens=10 + i % 7,
        )))
    for i in range(52):
        ts = h.T0 - timedelta(minutes=23) + timedelta(minutes=11 * i, seconds=i % 40)
        status = "blocked" if i % 7 == 0 else "error" if i % 4 == 0 else "ok"
        recs.append((T.events, h.tool_call(f"run-t{i}", 2, ts=ts, ms=20.0 + i, status=status,
                                           tool_name=TOOLS[i % 2])))
    _sink_all(st, recs)


def _window(name: str, **extra: object) -> dict:
    return {**Q.default_params(name, tenant="acme", now=END), "start": START, "end": END, **extra}


def _raw_models(st, group: str) -> dict:  # type: ignore[no-untyped-def]
    rows = st.query(
        f"SELECT {group} AS k, count(), countIf(status != 'ok'), round(sum(cost_usd), 9), sum(input_tokens), "
        "sum(output_tokens) FROM model_calls WHERE ts_start >= {s:DateTime64(6, 'UTC')} "
        "AND ts_start < {e:DateTime64(6, 'UTC')} GROUP BY k",
        {"s": START, "e": END},
    ).rows
    return {r[0]: tuple(r[1:]) for r in rows}


def test_hourly_rollup_answer_equals_the_raw_tables(store) -> None:  # noqa: F811
    s = store
    _calls(s)
    assert s.query("SELECT sum(calls) FROM model_calls_1h").scalar() == 80  # the hourly rollup is fed
    # model mix over the window: the hourly source (whole hours from *_1h, the ends from *_1m)
    params = _window("model_mix")
    assert Q.grain(params) == "hour" and "FROM model_calls_1h" in Q.bind("model_mix", params)[0]
    mix = {r["model"]: (r["calls"], round(r["cost_usd"], 9), r["input_tokens"], r["output_tokens"])
           for r in Q.run(s, "model_mix", **params).dicts()}
    raw = {k: (v[0], v[2], v[3], v[4]) for k, v in _raw_models(s, "request_model").items()}
    assert mix == raw
    assert sum(v[0] for v in raw.values()) == 64  # calls 4..67 fall in [12:17, 19:42): edges included, not doubled

    # the overview's one pass, per hour x model and per version x model
    series = Q.run(s, "model_call_series", **_window("model_call_series", bucket_s=3600, split="model")).dicts()
    by_bucket = {(r["bucket"].replace(tzinfo=None), r["series"]): (r["calls"], r["errors"], round(r["cost_usd"], 9))
                 for r in series if r["bucket"] is not None}
    raw_hours = {
        (k[0], k[1]): v[:3]
        for k, v in _raw_models(s, "(toStartOfHour(ts_start), request_model)").items()
    }
    assert {(b.replace(tzinfo=None) if hasattr(b, "replace") else b, m): v for (b, m), v in raw_hours.items()} \
        == by_bucket
    by_version = {(r["version"], r["call_model"]): (r["calls"], r["errors"], round(r["cost_usd"], 9))
                  for r in series if r["bucket"] is None}
    assert by_version == {k: v[:3] for k, v in _raw_models(s, "(agent_version, request_model)").items()}

    # per version x model with quantiles: counts exact, merged t-digest quantiles inside the raw range
    lat = Q.run(s, "version_latency", **_window("version_latency")).dicts()
    durations: dict[tuple, list[float]] = defaultdict(list)
    for version, model, ms in s.query(
        "SELECT agent_version, request_model, duration_ms FROM model_calls WHERE ts_start >= {s:DateTime64(6, 'UTC')}"
        " AND ts_start < {e:DateTime64(6, 'UTC')}", {"s": START, "e": END},
    ).rows:
        durations[(version, model)].append(ms)
    assert {(r["agent_version"], r["model"]): r["calls"] for r in lat} == {k: len(v) for k, v in durations.items()}
    assert all(min(durations[(r["agent_version"], r["model"])]) <= r["p50_ms"] <= r["p99_ms"]
               <= max(durations[(r["agent_version"], r["model"])]) for r in lat)

    # tool calls per hour and tool
    tools = Q.run(s, "tool_timeseries", **_window("tool_timeseries", bucket_s=3600)).dicts()
    raw_tools = s.query(
        "SELECT toStartOfHour(ts_start) AS b, tool_name, count(), countIf(status IN ('error', 'timeout')), "
        "countIf(status IN ('blocked', 'denied')) FROM tool_calls WHERE ts_start >= {s:DateTime64(6, 'UTC')} "
        "AND ts_start < {e:DateTime64(6, 'UTC')} GROUP BY b, tool_name", {"s": START, "e": END},
    ).rows
    assert {(r["bucket"].replace(tzinfo=None), r["tool_name"]): (r["calls"], r["errors"], r["blocked"])
            for r in tools} == {(b.replace(tzinfo=None), t): (n, e, k) for b, t, n, e, k in raw_tools}
    assert sum(r["blocked"] for r in tools) > 0 and sum(r["errors"] for r in tools) > 0


def test_a_run_whose_start_never_arrived_is_a_run_of_its_window(store) -> None:  # noqa: F811
    s = store
    _sink_all(s, [
        (T.runs, h.run_summary("run-started", cost=0.5, started_at=START + timedelta(minutes=1),
                               ended_at=START + timedelta(minutes=2), emitted_at=START + timedelta(minutes=2))),
        # RunStarted lost: no started_at; the summary was emitted inside the window
        (T.runs, h.run_summary("run-unstarted", cost=0.25, started_at=None, duration_ms=None, outcome="failure",
                               ended_at=START + timedelta(minutes=3),
                               emitted_at=START + timedelta(minutes=3))),
        (T.runs, h.run_summary("run-before", cost=1.0, started_at=START - timedelta(minutes=5),
                               ended_at=START + timedelta(minutes=4), emitted_at=START + timedelta(minutes=4))),
    ])
    found = Q.run(s, "run_search", **_window("run_search")).dicts()
    assert [r["run_id"] for r in found] == ["run-unstarted", "run-started"]  # newest first by run time
    kpis = Q.run(s, "run_kpis", **_window("run_kpis")).dicts()[0]
    assert (kpis["runs"], kpis["finished"], kpis["successes"], kpis["total_cost_usd"]) == (2, 2, 1, 0.75)
    top = Q.run(s, "top_expensive_runs", **_window("top_expensive_runs")).dicts()
    assert [r["run_id"] for r in top] == ["run-started", "run-unstarted"]
    buckets = Q.run(s, "runs_per_bucket", **_window("runs_per_bucket", bucket_s=3600)).dicts()
    assert sum(r["runs"] for r in buckets) == 2


def test_an_incident_opened_before_the_window_and_still_firing_is_in_it(store) -> None:  # noqa: F811
    s = store
    _sink_all(s, [
        (T.alerts, h.alert(incident_id="inc-old", status="firing", created_at=START - timedelta(hours=2),
                           updated_at=START - timedelta(hours=2))),
        (T.alerts, h.alert(incident_id="inc-old", status="firing", created_at=START - timedelta(hours=2),
                           updated_at=START + timedelta(minutes=5))),
        (T.alerts, h.alert(incident_id="inc-gone", status="firing", created_at=START - timedelta(hours=3),
                           updated_at=START - timedelta(hours=3))),
        (T.alerts, h.alert(incident_id="inc-after", status="firing", created_at=END + timedelta(minutes=1),
                           updated_at=END + timedelta(minutes=1))),
    ])
    active = Q.run(s, "active_alerts", **_window("active_alerts")).dicts()
    assert [(r["incident_id"], r["status"]) for r in active] == [("inc-old", "firing")]
    assert active[0]["created_at"].replace(tzinfo=None) == (START - timedelta(hours=2)).replace(tzinfo=None)
