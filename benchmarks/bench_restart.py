"""Restart-to-processing time of a processor worker that holds N live runs of state (issue 17).

The runs changelog is filled with N open runs (state format v4, the bytes a worker writes: each a
RunStarted and a model call folded in, under its own run id), then, each round:

- **before** (``reset_local_state=True``, the old default): the worker deletes its local RocksDB
  state and rebuilds it from the changelog;
- **after** (``reset_local_state=False``, the default now): the same worker, SIGKILLed, restarts on
  the local state it left, and replays only the changelog past the persisted offset.

The figure is the wall time from spawning ``tripwire process`` until the summary of a fresh,
complete probe run (produced right after the spawn) is readable (read_committed) on the runs
topic: start-up + recovery + the first processing. ``TRIPWIRE_BENCH_RESTART_RUNS`` sets N
(default 200,000; 1M runs of changelog are ~0.8 GB of state, built and written in ~5 s, and the
rebuild round takes ~2 min). The rebuild time grows linearly with N; the kept-state restart grows
only by the deadline index built at the first tick (a pass over the stored values' headers).
Needs the broker (``TRIPWIRE_KAFKA_BOOTSTRAP``); a broker holding thousands of topics (the shared
dev broker) adds its metadata time to every start: measure on a broker of your own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, bootstrap, report

RUNS = int(os.environ.get("TRIPWIRE_BENCH_RESTART_RUNS", "200000"))
ROUNDS = int(os.environ.get("TRIPWIRE_BENCH_RESTART_ROUNDS", "2"))
PARTITIONS = 4
TIMEOUT_S = 300.0
TRIPWIRE = [sys.executable, "-m", "tripwire.cli"]
LOG = ["--log-level", os.environ.get("TRIPWIRE_BENCH_RESTART_LOG_LEVEL", "warn")]


def _uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _env(bs: str, reset: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    env.update(
        {
            "TRIPWIRE_KAFKA_BOOTSTRAP": bs,
            "TRIPWIRE_PROCESSORS_PARTITIONS": str(PARTITIONS),
            "TRIPWIRE_PROCESSORS_RESET_LOCAL_STATE": "true" if reset else "false",
            "TRIPWIRE_PROCESSORS_SESSION_TIMEOUT_S": "6",
        }
    )
    return env


def _state_records(n: int) -> list[tuple[bytes, bytes, int]]:
    """``n`` (key, value, partition) changelog records of open runs, as a worker writes them."""
    from tripwire.processors import Pipeline
    from tripwire.processors.tables import pack
    from tripwire.schemas.samples import sample_run

    stage = Pipeline().runs
    events = sample_run(1)[:2]  # RunStarted + a model call: an open run
    template = events[0].run_id
    st = stage.new_state(template)
    for e in events:
        stage.process(st, e, time.time())
    raw = stage.dumps(st)
    assert raw.count(template.encode()) == 1
    out = []
    for i in range(n):
        rid = str(uuid.uuid4())  # same length as the template: the MessagePack stays valid
        out.append((rid.encode(), pack(i % PARTITIONS, raw.replace(template.encode(), rid.encode())), i % PARTITIONS))
    return out


def _fill_changelog(bs: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> float:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bs})
    fut = admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={"cleanup.policy": "compact"})])[topic]
    fut.result(timeout=60)
    p = Producer(
        {
            "bootstrap.servers": bs,
            "transactional.id": _uid("bench-restart-fill"),  # as a worker writes its changelog
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    p.init_transactions(30)
    p.begin_transaction()
    t0 = time.perf_counter()
    for k, v, part in records:
        while True:
            try:
                p.produce(topic, key=k, value=v, partition=part)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.commit_transaction(600)
    return time.perf_counter() - t0


def _probe(bs: str, prefix: str, seed: int) -> str:
    """Produce a fresh complete run; returns its run id."""
    from confluent_kafka import Producer

    from tripwire.schemas.config import SchemaConfig, make_codec
    from tripwire.schemas.samples import sample_run

    codec = make_codec(SchemaConfig(topic_prefix=prefix))
    sample = sample_run(10_000 + seed)
    shift = datetime.now(UTC) - sample[0].ts_start  # (the sample's dates are past the accepted window)
    events = [e.model_copy(update={"ts_start": e.ts_start + shift, "ts_end": e.ts_end + shift}) for e in sample]
    p = Producer({"bootstrap.servers": bs, "enable.idempotence": True})
    for e in events:
        p.produce(f"{prefix}.tripwire.events.v1", key=e.run_id.encode(), value=codec.encode(e))
    if p.flush(30):
        raise RuntimeError("probe not delivered")
    return events[0].run_id


def _wait_summary(bs: str, prefix: str, run_id: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = f"{prefix}.tripwire.runs.v1"
    c = Consumer(
        {
            "bootstrap.servers": bs,
            "group.id": _uid("bench-restart"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        want = run_id.encode()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}")
            for m in c.consume(1000, timeout=0.2):
                if m.error() is None and m.key() == want:
                    return
        raise TimeoutError(f"no summary of the probe run within {TIMEOUT_S:.0f}s")
    finally:
        c.close()


def _restart(bs: str, prefix: str, app_id: str, data: Path, reset: bool, seed: int, log: Path) -> float:
    """Seconds from spawn to the probe's summary; leaves the worker SIGKILLed."""
    t0 = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*TRIPWIRE, "process", "--topic-prefix", prefix, "--app-id", app_id, "--data-dir", str(data), *LOG],
            env=_env(bs, reset),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        run_id = _probe(bs, prefix, seed)
        _wait_summary(bs, prefix, run_id, proc, time.monotonic() + TIMEOUT_S)
        return time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # a crash: the next start must trust what it left
        proc.wait(timeout=30)


def run() -> list[dict[str, Any]]:
    bs = bootstrap()
    folder = Path(tempfile.mkdtemp(prefix="bench_restart_"))
    prefix, app_id = _uid("brs"), _uid("brs-procs")
    try:
        out = subprocess.run(
            [*TRIPWIRE, "topics", "create", "--topic-prefix", prefix, "--app-id", app_id],
            env=_env(bs, False),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode:
            raise RuntimeError(f"tripwire topics create failed: {out.stderr}")
        t0 = time.perf_counter()
        records = _state_records(RUNS)
        build_s = time.perf_counter() - t0
        fill_s = _fill_changelog(bs, f"{app_id}-state-runs-changelog", records)
        state_bytes = sum(len(k) + len(v) for k, v, _ in records)
        del records
        data, log = folder / "data", folder / "worker.log"
        before: list[float] = []
        after: list[float] = []
        for r in range(ROUNDS):  # alternate, so machine noise hits both alike
            before.append(_restart(bs, prefix, app_id, data, True, 2 * r, log))
            after.append(_restart(bs, prefix, app_id, data, False, 2 * r + 1, log))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    extra = {
        "live_runs": RUNS,
        "partitions": PARTITIONS,
        "changelog_bytes": state_bytes,
        "rounds": ROUNDS,
        "before_s": [round(x, 2) for x in before],
        "after_s": [round(x, 2) for x in after],
        "build_records_s": round(build_s, 1),
        "fill_changelog_s": round(fill_s, 1),
    }
    b, a = min(before), min(after)
    return [
        {"name": "restart_rebuild_from_changelog", "value": b, "unit": "s", "extra": extra},
        {
            "name": "restart_kept_local_state",
            "value": a,
            "unit": "s",
            "ratio": b / a,
            "baseline": b,
            "goal": "< 10 s with 1M live runs",
            "extra": extra,
        },
    ]


def main() -> None:
    report([Result(**r) for r in run()])


if __name__ == "__main__":
    main()
