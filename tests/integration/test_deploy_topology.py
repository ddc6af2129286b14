"""The docker-compose topology without containers: the same commands as processes.

``tripwire topics create`` (init), two ``tripwire process`` workers in one consumer group, a
``tripwire sink`` into chdb, and ``tripwire simulate`` against the dev broker. It shows

- the events partitions split between the two workers (the group's assignment, read with
  ``AdminClient.describe_consumer_groups``);
- a SIGKILLed worker's partitions move to the survivor, which finishes them;
- no run summary lost or doubled: in ClickHouse every run the simulator started (its RunStarted
  row) has exactly one current summary (``FINAL``), no revision is stored twice, and each
  summary counted exactly the events stored for its run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import uid, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 4
POLICY = "runs: {inactivity_timeout_s: 5, reorder_grace_s: 1}\nincidents: {update_interval_s: 0.5}\n"
TRIPWIRE = [sys.executable, "-m", "tripwire.cli"]


class Proc:
    """A ``tripwire`` subcommand in its own process group, output to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([*TRIPWIRE, *args], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait(timeout=10)
        finally:
            self._log.close()


def assignment(bootstrap: str, group: str, topic: str) -> dict[str, set[int]]:
    """member id -> partitions of ``topic`` assigned to it (empty dict while the group rebalances)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    except Exception:  # the group does not exist yet, or its coordinator is loading: not stable
        return {}
    if desc.state != ConsumerGroupState.STABLE:
        return {}
    return {m.member_id: {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
            for m in desc.members}


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    except KafkaException:  # coordinator loading
        return {}
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str) -> tuple[list[Any], dict[int, int]]:
    """Every committed record of ``topic`` (decoded) and, per partition, the offset after its last record."""
    from confluent_kafka import Consumer, TopicPartition

    from tripwire.schemas import decode

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uid("reader"), "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    try:
        ends = {}
        for p in range(PARTITIONS):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        records, after_last = [], dict.fromkeys(range(PARTITIONS), 0)
        done = {p for p, h in ends.items() if h == 0}
        while len(done) < PARTITIONS:
            batch = c.consume(5000, timeout=1.0)
            if not batch:
                # read_committed stops at the last stable offset; past markers/aborted data: compare positions
                positions = c.position([TopicPartition(topic, p) for p in range(PARTITIONS)])
                done |= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
                continue
            for m in batch:
                if m.error() is None:
                    records.append(decode(m.value()))
                    after_last[m.partition()] = m.offset() + 1
                    if m.offset() + 1 >= ends[m.partition()]:
                        done.add(m.partition())
        return records, after_last
    finally:
        c.close()


def sql(url: str, query: str, env: dict[str, str]) -> list[dict[str, Any]]:
    out = subprocess.run([*TRIPWIRE, "sql", "--url", url, "--format", "json", "--max-rows", "1000000", query],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


def test_two_workers_split_the_partitions_and_a_killed_one_loses_no_run(
    kafka_bootstrap: str, tmp_path: Path, procs: list[Proc]
) -> None:
    prefix, app_id, sink_group = uid("dp"), uid("procs"), uid("sink")
    events_topic = f"{prefix}.tripwire.events.v1"
    runs_topic = f"{prefix}.tripwire.runs.v1"
    store_url = f"chdb://{tmp_path / 'chdb'}?database=tripwire"
    (tmp_path / "policy.yaml").write_text(POLICY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    env.update({
        "TRIPWIRE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TRIPWIRE_PROCESSORS_PARTITIONS": str(PARTITIONS),
        "TRIPWIRE_PROCESSORS_SESSION_TIMEOUT_S": "10",
        "TRIPWIRE_PROCESSORS_TICK_INTERVAL_S": "0.5",
        "TRIPWIRE_SINK_BATCH_SECONDS": "0.5",
    })

    # init, as the compose `topics` service does
    init = subprocess.run([*TRIPWIRE, "topics", "create", "--topic-prefix", prefix, "--app-id", app_id],
                          env=env, capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    created = {ln.split()[0]: ln.split()[1:] for ln in init.stdout.splitlines()}
    assert created[events_topic] == [str(PARTITIONS), "partitions", "delete"]
    assert created[f"{prefix}.tripwire.killswitch.v1"] == ["1", "partitions", "compact"]

    procs.append(Proc("sink", ["sink", "--url", store_url, "--topic-prefix", prefix, "--group", sink_group],
                      env, tmp_path))
    workers = [
        Proc(f"worker{i}", ["process", "--topic-prefix", prefix, "--app-id", app_id, "--data-dir",
                            str(tmp_path / f"w{i}"), "--policy", str(tmp_path / "policy.yaml"), "--log-level", "info"],
             env, tmp_path)
        for i in range(2)
    ]
    procs.extend(workers)

    def all_alive() -> None:
        for p in procs:
            assert p.alive(), f"{p.name} exited:\n{p.log()[-3000:]}"

    def split() -> dict[str, set[int]]:
        all_alive()
        members = assignment(kafka_bootstrap, app_id, events_topic)
        return members if len(members) == 2 and all(members.values()) else {}

    before = wait_until(split, timeout=90, interval=0.5, message="two workers sharing the events partitions")
    shares = list(before.values())
    assert shares[0].isdisjoint(shares[1]) and shares[0] | shares[1] == set(range(PARTITIONS))

    # a few thousand events: enough for every partition to be mid-stream at the kill, few enough for
    # one exactly-once worker on a shared 2-core machine to finish them quickly (docs/scale-out.md)
    sim = Proc("simulate", ["simulate", "--topic-prefix", prefix, "--rate", "250", "--duration", "10",
                            "--agents", "6", "--no-incidents", "--dir", str(tmp_path / "sim")], env, tmp_path)
    procs.append(sim)

    # both workers have committed work on their partitions; then one dies mid-stream
    def progressed() -> bool:
        all_alive()
        offsets = committed(kafka_bootstrap, app_id, events_topic)
        return len(offsets) == PARTITIONS and all(o > 0 for o in offsets.values())

    wait_until(progressed, timeout=60, interval=0.25, message="both workers committing")
    assert sim.alive(), "the simulator finished before the kill: the worker did not die mid-stream"
    workers[0].signal(signal.SIGKILL)
    workers[0].proc.wait(timeout=10)
    procs.remove(workers[0])
    at_kill = committed(kafka_bootstrap, app_id, events_topic)

    def survivor_has_all() -> dict[str, set[int]]:
        assert workers[1].alive(), workers[1].log()[-3000:]
        members = assignment(kafka_bootstrap, app_id, events_topic)
        return members if len(members) == 1 and next(iter(members.values())) == set(range(PARTITIONS)) else {}

    after = wait_until(survivor_has_all, timeout=60, interval=0.5, message="the survivor owning every partition")
    (survivor,) = after
    (dead,) = set(before) - {survivor}
    moved = before[dead]
    assert survivor in before and moved and moved <= after[survivor]

    assert sim.proc.wait(timeout=90) == 0, sim.log()[-3000:]
    summary = json.loads(next(ln for ln in reversed(sim.log().splitlines()) if ln.startswith("{")))
    assert summary["dropped"] == 0 and summary["delivered"] == summary["emitted"] > 0

    # the survivor consumes every event, including the rest of the dead worker's partitions
    events, events_end = read_topic(kafka_bootstrap, events_topic)
    assert len(events) == summary["emitted"]
    started = {e.run_id for e in events if type(e).__name__ == "RunStarted"}

    def all_processed() -> bool:
        assert workers[1].alive(), workers[1].log()[-3000:]
        return committed(kafka_bootstrap, app_id, events_topic) == events_end

    wait_until(all_processed, timeout=150, interval=0.5, message="the survivor committing every event")
    assert all(events_end[p] > at_kill[p] for p in moved), "the dead worker's partitions saw no new events"

    def summarized() -> tuple[list[Any], dict[int, int]] | None:
        got = read_topic(kafka_bootstrap, runs_topic)
        return got if {s.run_id for s in got[0]} >= started else None

    runs, runs_end = wait_until(summarized, timeout=60, interval=1.0, message="a summary of every run")

    def stored() -> bool:
        assert procs[0].alive(), procs[0].log()[-3000:]
        ev = committed(kafka_bootstrap, sink_group, events_topic)
        ru = committed(kafka_bootstrap, sink_group, runs_topic)
        return all(ev.get(p, -1) >= events_end[p] for p in events_end) and all(
            ru.get(p, -1) >= runs_end[p] for p in runs_end)

    wait_until(stored, timeout=60, interval=0.5, message="the sink committing every event and summary")
    assert procs[0].stop() == 0
    workers[1].stop()

    stored_started = {r["run_id"] for r in sql(
        store_url, "SELECT run_id FROM run_events WHERE event_type = 'run_started'", env)}
    assert stored_started == started
    current = sql(store_url, "SELECT run_id, count() AS n, any(events_seen) AS seen FROM run_summaries FINAL "
                             "GROUP BY run_id", env)
    assert {r["run_id"] for r in current} == started  # none lost, none invented
    assert all(int(r["n"]) == 1 for r in current)  # one current summary each
    doubled = sql(store_url, "SELECT run_id, version, count() AS n FROM run_summaries GROUP BY run_id, version "
                             "HAVING n > 1", env)
    assert doubled == []
    per_run = sql(store_url, "SELECT run_id, count() AS n FROM (SELECT run_id FROM run_events UNION ALL "
                             "SELECT run_id FROM model_calls UNION ALL SELECT run_id FROM tool_calls) GROUP BY run_id",
                  env)
    events_per_run = {r["run_id"]: int(r["n"]) for r in per_run}
    assert sum(events_per_run.values()) == len(events)
    wrong = {r["run_id"]: (int(r["seen"]), events_per_run.get(r["run_id"])) for r in current
             if int(r["seen"]) != events_per_run.get(r["run_id"])}
    assert wrong == {}  # every summary counted its run's events exactly once across the kill
    assert len({s.run_id for s in runs}) == len(started)
    revisions = [(s.run_id, s.version) for s in runs]
    assert len(revisions) == len(set(revisions))  # no revision committed twice to the runs topic either
