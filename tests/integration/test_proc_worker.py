"""The faust worker against the real broker: exact RunSummaries and alerts, DLQ, crash recovery."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers import WaitTimeout, uid, wait_until
from tests.proc_factory import T0, RunScript
from tests.proc_kafka import (
    CommittedReader,
    WorkerProcess,
    committed_offsets,
    produce,
    produce_events,
    setup,
    wait_for,
)
from tripwire.devenv.kafka import free_port
from tripwire.processors import Pipeline, load_policy
from tripwire.processors.sketch import LatencySketch
from tripwire.processors.stages import RunStage
from tripwire.schemas import encode
from tripwire.schemas.samples import sample_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOW = 1_800_000_000.0


def comparable(summary) -> dict:
    """A summary without its emission time (the one field that depends on when it was computed)."""
    d = summary.model_dump()
    d.pop("emitted_at")
    return d


def reference_summaries(events, policy) -> dict[str, dict]:
    """What the same operators compute in-process (the final version per run)."""
    p = Pipeline(policy)
    out = {}
    for e in events:
        for s in p.process(e, NOW).runs:
            out[s.run_id] = comparable(s)
    for s in p.tick(NOW + 10_000).runs:
        out[s.run_id] = comparable(s)
    return out


def window_figures(stats) -> tuple[int, int, float, int]:  # type: ignore[no-untyped-def]
    """count, errors, cost and the sketch's count of one WindowStats."""
    return stats.count, stats.errors, round(stats.cost_usd, 9), LatencySketch.from_bytes(stats.sketch).count


def reference_windows(events, window_s: int) -> dict[tuple, tuple[int, int, float, int]]:  # type: ignore[no-untyped-def]
    """The same figures recomputed from the raw events (no operator code): per (agent, version, kind,
    name, model, window start)."""
    acc: dict[tuple, list] = {}
    for e in events:
        kind = type(e).__name__
        if kind not in ("ModelCall", "ToolCall"):
            continue
        name = (e.response_model or e.request_model) if kind == "ModelCall" else e.tool_name
        end = int(e.ts_end.timestamp() * 1_000_000)
        start = end // (window_s * 1_000_000) * window_s
        key = (e.tenant, e.agent_id, e.agent_version, "model" if kind == "ModelCall" else "tool", name,
               name if kind == "ModelCall" else "", start)  # fmt: skip
        a = acc.setdefault(key, [0, 0, 0])
        a[0] += 1
        a[1] += str(getattr(e.status, "value", e.status)) in ("error", "timeout")
        a[2] += round((e.cost_usd or 0.0) * 1e9) if kind == "ModelCall" else 0
    return {k: (n, err, round(nanos / 1e9, 9), n) for k, (n, err, nanos) in acc.items()}


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


def forwarded(events, policy) -> tuple[int, int]:
    """How many of ``events`` the runs stage forwards to the agents and to the credentials stage."""
    stage = RunStage(policy)
    states: dict = {}
    to_agent = to_credential = 0
    for e in events:
        res = stage.process(states.setdefault(e.run_id, stage.new_state(e.run_id)), e, NOW)
        to_agent += res.to_agent
        to_credential += res.to_credential
    return to_agent, to_credential


def scripted_runs(n: int, seed: int = 0, spread_s: float = 0.0) -> list[RunScript]:
    """``n`` runs of 6 events; run i starts ``i * spread_s`` seconds after T0."""
    runs = []
    for i in range(n):
        start = T0 + timedelta(seconds=i * spread_s)
        r = RunScript(seed * 1000 + i, agent_id=f"agent-{i % 3}", credential=f"fp-{i % 3}", start=start)
        r.start(max_cost_usd=0.25, max_tool_calls=3)
        r.model(0.05 + i * 0.001, input_tokens=100 + i, output=20 + i)
        r.tool("lookup_order", args=f'{{"o": {i}}}')
        r.model(0.125, model="claude-sonnet-4-5", provider="anthropic", input_tokens=50, cache_read=10, output=5)
        r.tool("lookup_order", args=f'{{"o": {i}, "again": true}}', status="error" if i % 4 == 0 else "ok")
        r.finish("success" if i % 5 else "failure")
        runs.append(r)
    return runs


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_worker_publishes_exact_summaries_alerts_and_dead_letters(
    kafka_bootstrap: str, tmp_path: Path, guarantee: str
) -> None:
    metrics_port = free_port()
    config, topics = setup(
        kafka_bootstrap, uid("tp"), tmp_path, metrics_port=metrics_port, processing_guarantee=guarantee
    )
    policy = load_policy(config.policy_path)
    runs = scripted_runs(6)
    # one run over budget (4 tool calls > 3, cost 0.30 > 0.25), one loop, one unapproved high-risk call
    bad = RunScript(99, agent_id="agent-x", credential="fp-x")
    bad.start(max_cost_usd=0.25, max_tool_calls=3)
    for _ in range(5):
        bad.tool("search", args='{"q": "same"}')
    bad.tool("issue_refund", risk="high", args='{"amount": 100}')
    bad.model(0.30)
    bad.finish()
    quiet = RunScript(98, agent_id="agent-q", credential=None)  # never finishes: timed_out + trace gap
    quiet.start()
    quiet.tool("lookup_order")
    first, rest = runs[:3], runs[3:]
    produce_events(kafka_bootstrap, topics.events, [e for r in first for e in r.events])
    garbage = [
        (b"k1", b"\x00not avro at all"),
        (b"k2", b"\xc3\x01" + b"\x00" * 8 + b"xx"),
        (b"k3", encode(sample_records()[-1])),
    ]
    dlq_where = produce(kafka_bootstrap, topics.events, garbage)
    produce_events(kafka_bootstrap, topics.events, [e for r in [*rest, bad, quiet] for e in r.events])

    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    runs_r, alerts_r = CommittedReader(kafka_bootstrap, topics.runs), CommittedReader(kafka_bootstrap, topics.alerts)
    dlq_r = CommittedReader(kafka_bootstrap, topics.dlq)
    try:
        summaries = wait_for(runs_r, lambda recs: len(recs) >= 8, 60, "8 run summaries", worker)
        wait_for(dlq_r, lambda recs: len(recs) >= 3, 10, "3 dead letters", worker)
        want_alerts = {"budget_breach", "runaway_loop", "unapproved_high_risk", "trace_gaps", "unauthenticated_tool"}
        wait_for(alerts_r, lambda recs: want_alerts <= {a.kind for a in recs}, 20, "alerts", worker)
        # every forwarded event reaches the agents and credentials stages exactly once
        to_agent, to_credential = forwarded([e for r in [*runs, bad, quiet] for e in r.events], policy)
        agents_ok = 'tripwire_processor_events_total{result="ok",stage="agents"}'
        credentials_ok = 'tripwire_processor_events_total{result="ok",stage="credentials"}'
        samples = wait_until(
            lambda: (m := scrape(metrics_port)).get(agents_ok) == to_agent
            and m.get(credentials_ok) == to_credential
            and m,
            timeout=20,
            message="the forwarded events counted by the agents and credentials stages",
        )
    finally:
        worker.stop()

    # Prometheus: every valid event counted once, the three bad messages as dead letters
    assert samples['tripwire_processor_events_total{result="ok",stage="runs"}'] == 47.0
    assert samples['tripwire_processor_events_total{result="dead_letter",stage="runs"}'] == 3.0
    assert samples['tripwire_processor_dead_letters_total{stage="decode"}'] == 2.0
    assert samples['tripwire_processor_alerts_total{kind="runaway_loop",status="firing"}'] >= 1.0
    assert samples['tripwire_processor_outputs_total{topic="runs"}'] == 8.0
    assert to_agent == 32 and to_credential == 7  # model and tool calls; one per run with a credential

    got = {s.run_id: comparable(s) for s in summaries}
    assert len(summaries) == 8 == len(got)  # exactly one committed summary per run
    assert got == reference_summaries([e for r in [*runs, bad, quiet] for e in r.events], policy)
    # a few hand-computed figures on top of the reference comparison
    assert got[runs[1].run_id]["cost_usd"] == 0.051 + 0.125 and got[runs[1].run_id]["errors"] == 0
    assert got[runs[0].run_id]["errors"] == 1 and got[runs[0].run_id]["outcome"] == "failure"
    assert got[bad.run_id]["tool_calls"] == 6 and got[bad.run_id]["budget_tool_calls_pct"] == 200.0
    assert got[quiet.run_id]["outcome"] == "timed_out" and got[quiet.run_id]["events_seen"] == 2
    # RunSummaries share the events topic's partitioning by run_id
    event_partition = {m.key(): m.partition() for m in runs_r.messages}
    assert all(
        event_partition[r.run_id.encode()] == m.partition()
        for r in runs
        for m in runs_r.messages
        if m.key() == r.run_id.encode()
    )

    alerts = alerts_r.records
    by_kind = {}
    for a in alerts:
        by_kind.setdefault(a.kind, set()).add(a.run_id)
    assert by_kind["budget_breach"] == {bad.run_id}
    assert by_kind["runaway_loop"] == {bad.run_id}
    assert by_kind["trace_gaps"] == {quiet.run_id}
    loop = [a for a in alerts if a.kind == "runaway_loop"]
    assert {a.incident_id for a in loop} == {loop[0].incident_id}  # one incident, not a storm
    assert [a.evidence_event_ids[0] for a in loop[:1]] == [bad.events[5].event_id]  # 5th identical call

    dead = dlq_r.records
    assert len(dead) == 3
    assert sorted((d.partition, d.offset) for d in dead) == sorted(dlq_where)
    assert sorted(d.value for d in dead) == sorted(v for _, v in garbage)
    assert {d.source_topic for d in dead} == {topics.events}
    assert sorted(d.stage for d in dead) == ["decode", "decode", "validate"]
    assert all(d.reason for d in dead)


@pytest.mark.parametrize(
    ("order", "store"), [("interleaved", "kept"), ("in-time", "kept"), ("interleaved", "corrupt")]
)
def test_sigkill_mid_stream_gives_the_same_summaries(
    kafka_bootstrap: str, tmp_path: Path, order: str, store: str
) -> None:
    # store "kept": the restarted worker trusts the local RocksDB state the killed one left (states
    # written only once committed, with their changelog offset) and replays the changelog past it;
    # "corrupt": a damaged local store is detected at start and rebuilt from the changelogs
    # inactivity timeout well above the restart time: this test is about recovery, not timeouts
    config, topics = setup(kafka_bootstrap, uid("tp"), tmp_path, partitions=4, inactivity_timeout_s=60)
    policy = load_policy(config.policy_path)
    if order == "interleaved":  # most runs open (state only in the tables) when the worker dies; one window
        runs = scripted_runs(150, seed=7)
        events = []
        for i in range(max(len(r.events) for r in runs)):
            events.extend(r.events[i] for r in runs if i < len(r.events))
    else:  # as a fleet emits them: in event time, over ~3 minutes, so windows close around the kill
        runs = scripted_runs(150, seed=7, spread_s=1.3)
        events = sorted((e for r in runs for e in r.events), key=lambda e: e.ts_end)
    total = len(events)
    first, rest = events[: total // 2], events[total // 2 :]
    produce_events(kafka_bootstrap, topics.events, first)

    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        wait_until(
            lambda: committed_offsets(kafka_bootstrap, config.group_id, topics.events, 4) > 0,
            timeout=60,
            interval=0.02,
            message="a first commit",
        )
        # the second half arrives while the worker runs, and it dies in the middle of it
        produce_events(kafka_bootstrap, topics.events, rest)
        worker.kill()  # SIGKILL: no shutdown, the open transaction is left to the broker to abort
        at_kill = committed_offsets(kafka_bootstrap, config.group_id, topics.events, 4)
        assert 0 < at_kill < total, "the test did not crash the worker mid-stream"
        dbs = sorted(config.data_dir.rglob("*.db"))
        assert dbs, "the killed worker left no local state"
        if store == "corrupt":
            (dbs[0] / "CURRENT").write_text("MANIFEST-999999\n")  # points at a manifest that is not there
        worker = WorkerProcess(config, tmp_path / "worker2.log").start()
        runs_r = CommittedReader(kafka_bootstrap, topics.runs)
        summaries = wait_for(runs_r, lambda recs: len(recs) >= len(runs), 60, "all run summaries", worker)
        wait_until(
            lambda: committed_offsets(kafka_bootstrap, config.group_id, topics.events, 4) == total,
            timeout=30,
            message="all events committed",
        )
        summaries = runs_r.poll()
        # windows: one call per agent an hour later (after everything was committed) closes every earlier
        # window of that agent; each must equal a recomputation from the raw events
        closers = []
        for i in range(3):
            c = RunScript(9000 + i, agent_id=f"agent-{i}", credential=None, start=T0 + timedelta(hours=1))
            c.model(0.0)
            closers.append(c.events[0])
        produce_events(kafka_bootstrap, topics.events, closers)
        want_windows = reference_windows(events, int(policy.latency_windows.window_s))
        metrics_r = CommittedReader(kafka_bootstrap, topics.metrics)
        try:
            wait_for(
                metrics_r,
                lambda recs: {window_figures(w) for w in recs} >= set(want_windows.values()),
                60,
                "every window complete",
                worker,
            )
        except WaitTimeout:
            pass  # the comparison below says which windows are missing or wrong
        windows = metrics_r.poll()
    finally:
        worker.stop()
    rebuilt = "rebuilding the local state from the changelogs" in (tmp_path / "worker2.log").read_text()
    assert rebuilt == (store == "corrupt")
    latest: dict[tuple, object] = {}  # a late call re-emits its window: the latest emission counts (as in the sink)
    for w in windows:
        key = (w.tenant, w.agent_id, w.agent_version, w.kind, w.name, w.model, int(w.window_start.timestamp()))
        if key not in latest or w.emitted_at >= latest[key].emitted_at:  # type: ignore[attr-defined]
            latest[key] = w
    got_windows = {k: window_figures(w) for k, w in latest.items()}
    # 3 agents x 3 call names (gpt-4o, claude, lookup_order), in one minute or in four
    assert len(want_windows) == (9 if order == "interleaved" else 36)
    window_diffs = {k: (got_windows.get(k), v) for k, v in want_windows.items() if got_windows.get(k) != v}
    assert window_diffs == {}
    assert set(got_windows) == set(want_windows)
    got = {}
    for s in summaries:
        assert s.run_id not in got, f"run {s.run_id} summarized twice"
        got[s.run_id] = comparable(s)
    assert len(summaries) == len(runs)
    want = reference_summaries(events, policy)
    diffs = {
        rid: {k: (got[rid][k], want[rid][k]) for k in want[rid] if got[rid][k] != want[rid][k]}
        for rid in want
        if got.get(rid) != want[rid]
    }
    assert diffs == {}
