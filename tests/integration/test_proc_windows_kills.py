"""Latency windows exact under faults (issue 20): two workers in one group, SIGKILLed mid-stream three
times while a fleet keeps sending; every WindowStats (count, errors, cost, the sketch's count) must
equal a recomputation from the raw events.

Without the applied positions (``StateCache.applied``) the agents stage applied by-agent records
twice: the state snapshots a worker commits run ahead of the by-agent offsets committed with them,
so a restarted worker replays records whose effect its recovered state already holds, and only the
runs stage had a dedup (event_id) to drop them."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WaitTimeout, uid, wait_until
from tests.integration.test_proc_worker import reference_windows, window_figures
from tests.proc_factory import T0, RunScript
from tests.proc_kafka import CommittedReader, WorkerProcess, committed_offsets, produce_events, setup, wait_for
from tripwire.processors import load_policy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 4
AGENTS = 8
KILLS = 3
SLICE = 12  # events per produce call
PACE_S = 0.1  # between produce calls: ~100 events/s, so the kills fall in the middle of the stream


def fleet_runs(n: int) -> list[Any]:
    """``n`` runs of 6 events over ``AGENTS`` agents, one starting every second of event time, in
    event-time order (as a fleet emits them): windows close all along the kills."""
    events = []
    for i in range(n):
        r = RunScript(5000 + i, agent_id=f"agent-{i % AGENTS}", credential=f"fp-{i % 3}",
                      start=T0 + timedelta(seconds=i))  # fmt: skip
        r.start()
        r.model(0.05 + i * 0.001, input_tokens=100 + i, output=20 + i)
        r.tool("lookup_order", args=f'{{"o": {i}}}', status="error" if i % 4 == 0 else "ok")
        r.model(0.125, model="claude-sonnet-4-5", provider="anthropic", input_tokens=50, output=5)
        r.tool("lookup_order", args=f'{{"o": {i}, "again": true}}')
        r.finish()
        events.extend(r.events)
    return sorted(events, key=lambda e: e.ts_end)


def test_windows_equal_the_raw_events_after_sigkills_of_the_workers(kafka_bootstrap: str, tmp_path: Path) -> None:
    config, topics = setup(kafka_bootstrap, uid("tw"), tmp_path, partitions=PARTITIONS, inactivity_timeout_s=60)
    policy = load_policy(config.policy_path)
    events = fleet_runs(500)
    total = len(events)
    starts = {"a": 0, "b": 0}

    def worker(name: str) -> WorkerProcess:
        own = config.model_copy(update={"data_dir": tmp_path / f"data-{name}"})
        starts[name] += 1
        return WorkerProcess(own, tmp_path / f"worker-{name}-{starts[name]}.log").start()

    def committed() -> int:
        return committed_offsets(kafka_bootstrap, config.group_id, topics.events, PARTITIONS)

    stop = threading.Event()

    def fleet() -> None:
        for i in range(0, total, SLICE):
            produce_events(kafka_bootstrap, topics.events, events[i : i + SLICE])
            if stop.wait(PACE_S):  # pacing the load, not waiting for a condition
                return

    workers = {"a": worker("a"), "b": worker("b")}
    metrics_r = CommittedReader(kafka_bootstrap, topics.metrics)
    feeder = threading.Thread(target=fleet, daemon=True)
    try:
        feeder.start()
        for n in range(KILLS):  # both workers die mid-stream and come back: their states are recovered
            at = total * (n + 1) // (KILLS + 2)
            wait_until(lambda a=at: committed() >= a, timeout=120, interval=0.02, message=f"progress before kill {n}")
            assert feeder.is_alive(), "the fleet finished before the kill: it did not fall mid-stream"
            for name in ("a", "b"):
                workers[name].kill()
            workers = {"a": worker("a"), "b": worker("b")}
        feeder.join(timeout=120)
        assert not feeder.is_alive()
        wait_until(lambda: committed() == total, timeout=120, message="all events committed")
        # one call per agent an hour later closes every earlier window of that agent
        closers = []
        for i in range(AGENTS):
            c = RunScript(9000 + i, agent_id=f"agent-{i}", credential=None, start=T0 + timedelta(hours=1))
            c.model(0.0)
            closers.append(c.events[0])
        produce_events(kafka_bootstrap, topics.events, closers)
        want = reference_windows(events, int(policy.latency_windows.window_s))
        try:
            wait_for(
                metrics_r,
                lambda recs: {window_figures(w) for w in recs} >= set(want.values()),
                90,
                "every window complete",
                workers["a"],
            )
        except WaitTimeout:
            pass  # the comparison below says which windows are missing or wrong
        windows = metrics_r.poll()
        assert workers["a"].alive() and workers["b"].alive()
    finally:
        stop.set()
        metrics_r.close()
        for w in workers.values():
            w.stop()
    latest: dict[tuple, Any] = {}  # a late call re-emits its window: the latest emission counts (as in the sink)
    for w in windows:
        key = (w.tenant, w.agent_id, w.agent_version, w.kind, w.name, w.model, int(w.window_start.timestamp()))
        if key not in latest or w.emitted_at >= latest[key].emitted_at:
            latest[key] = w
    got = {k: window_figures(w) for k, w in latest.items()}
    assert len(want) >= AGENTS * 3 * 8  # 8 agents x 3 call names x 9 minutes of event time
    diffs = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert diffs == {}
    assert set(got) == set(want)
