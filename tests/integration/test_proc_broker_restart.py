"""The worker across a broker stop/start and a SIGKILL during the outage: latency windows keep being
emitted after the restart, closed by the wall clock once the agents go quiet, and every window
equals a recount from the raw events (issue 20: windows stopped after a broker restart, and were
under-counted around a SIGKILL with the broker stopped)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import WaitTimeout, uid
from tests.integration.test_proc_worker import reference_windows, window_figures
from tests.proc_factory import RunScript
from tests.proc_kafka import CommittedReader, WorkerProcess, produce_events, setup, wait_for
from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WINDOW_S = 5
OUTAGE_S = 12  # the broker is down this long (the fault itself, not a wait for a condition)


@pytest.fixture()
def private_broker(tmp_path: Path) -> Iterator[KafkaDevBroker]:
    b = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=tmp_path / "kafka"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _feed(bootstrap: str, topic: str, seconds: float, seed: int) -> list:
    """Runs of 3 agents at wall-clock event times, ~30 events/s for ``seconds``."""
    events: list = []
    pace = threading.Event()  # paces the producer (never set)
    start = datetime.now(UTC)
    i = 0
    while (datetime.now(UTC) - start).total_seconds() < seconds:
        batch = []
        for _ in range(3):
            r = RunScript(seed * 100_000 + i, agent_id=f"agent-{i % 3}", credential=f"fp-{i % 2}",
                          start=datetime.now(UTC))  # fmt: skip
            r.start()
            r.model(0.01, input_tokens=10, output=5)
            r.tool("lookup", status="error" if i % 4 == 0 else "ok")
            r.finish("success")
            batch.extend(r.events)
            i += 1
        produce_events(bootstrap, topic, batch)
        events.extend(batch)
        pace.wait(0.1)
    return events


def test_windows_after_a_broker_restart_and_a_sigkill_are_emitted_and_exact(
    private_broker: KafkaDevBroker, tmp_path: Path
) -> None:
    bootstrap = private_broker.bootstrap
    config, topics = setup(bootstrap, uid("br"), tmp_path, partitions=3, inactivity_timeout_s=3)
    config.policy_path.write_text(
        "runs: {inactivity_timeout_s: 3, reorder_grace_s: 1}\n"
        f"latency_windows: {{window_s: {WINDOW_S}, allowed_lateness_s: 1}}\n"
        "incidents: {update_interval_s: 0.5}\n"
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    metrics_r = None
    try:
        events = _feed(bootstrap, topics.events, 8, seed=1)
        private_broker.stop()
        worker.kill()  # SIGKILL with the broker down: its open transaction is aborted at the restart
        threading.Event().wait(OUTAGE_S)
        private_broker.start()
        restarted_at = datetime.now(UTC).timestamp()
        worker = WorkerProcess(config, tmp_path / "worker2.log").start()
        events += _feed(bootstrap, topics.events, 10, seed=2)
        # no closer: the last windows close by the wall clock (ticks) once the agents are quiet
        want = reference_windows(events, WINDOW_S)
        after = {k for k in want if k[-1] >= restarted_at}
        assert len(after) >= 6, "the test produced no windows after the restart"
        metrics_r = CommittedReader(bootstrap, topics.metrics)

        def latest(recs: list) -> dict:
            out: dict = {}
            for w in recs:  # a late call re-emits its window: the latest emission counts (as in the sink)
                key = (w.tenant, w.agent_id, w.agent_version, w.kind, w.name, w.model, int(w.window_start.timestamp()))
                if key not in out or w.emitted_at >= out[key].emitted_at:
                    out[key] = w
            return {k: window_figures(w) for k, w in out.items()}

        try:
            wait_for(metrics_r, lambda recs: latest(recs) == want, 90, "every window emitted and exact", worker)
        except WaitTimeout:
            pass  # the comparison below says which windows are missing or wrong
        got = latest(metrics_r.records)
    finally:
        worker.stop()
        if metrics_r is not None:
            metrics_r.close()
    missing_after = sorted(k for k in after if k not in got)
    assert missing_after == []
    diffs = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert diffs == {}
    assert set(got) == set(want)
