"""Stream processors on the real broker: one worker's throughput beside a Quix Streams peer and the
raw floor, and event-to-alert latency.

Throughput, on one backlog (runs of 9 events, interleaved like live traffic, 6 partitions; size
``BENCH_PROC_EVENTS``, default 36,000; ``BENCH_PROC_ROUNDS`` rounds, default 2, the order of the
Kafka consumers alternating between rounds). Each consumer starts from the beginning of the same
events topic in its own consumer group and is measured from its first commit until it has
committed the whole backlog (or ``THROUGHPUT_WINDOW_S``): events/s, and events per CPU-second of its
process (``/proc/<pid>/stat`` utime + stime over the same interval).

- ``tripwire``: ``tripwire process`` (faust, exactly-once, every stage; validated decode, limits).
- ``peer``: the Quix Streams 3.28 app of ``benchmarks/_quix_peer.py`` doing the runs + windows
  stages' work (per-run RocksDB state, 1-minute per-agent DDSketch windows, credential regrouping,
  exactly-once, 0.25 s commits), run by its own interpreter (``BENCH_PEER_PYTHON``, default
  ``.venv-peer/bin/python``; see ``benchmarks/README.md``). Skipped, and said so, without one.
- ``floor``: plain confluent-kafka consume + fastavro ``schemaless_reader`` with each event's
  *record* schema (the honest floor: the events union is read about 6.5x slower), in this process.
- ``operators``: tripwire's own codec decode (validating) + ``Pipeline.process`` in a loop, no Kafka,
  alternating with the in-process raw record-schema decode (``interleaved``).

``processors_events_per_cpu_s`` is tripwire's figure with its ratio to the peer's (goal >= 1.0x);
``..._vs_floor`` and ``..._vs_operators`` give the other ratios per CPU-second (goal >= 0.5x of the
operators' in-memory rate, measured in CPU time too). ``processors_throughput`` is events/s with its
ratio to the peer: wall clock, so on a shared machine it says more about the load than the code.

``processors_alert_latency_p50`` / ``_p95``: events produced at 1,000 events/s; the time from
producing the event that breaches a run budget to the alert being readable (read_committed) on the
alerts topic (goal p95 < 1 s). When one worker processes fewer than 1,000 events/s the backlog
dominates this figure, so the same measurement is repeated at half the measured throughput
(``..._at_<rate>eps``): the pipeline's own latency (commit interval included).
"""

from __future__ import annotations

import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader

from benchmarks._harness import Result, bootstrap, interleaved, percentile, report

PARTITIONS = 6
THROUGHPUT_EVENTS = int(os.environ.get("BENCH_PROC_EVENTS", "36000"))  # runs of 9 events
ROUNDS = int(os.environ.get("BENCH_PROC_ROUNDS", "2"))
IDLE_WINDOW_S = 1.0  # the process counts as done once its CPU use stays low this long
IDLE_CPU_SHARE = 0.1  # ... under this share of one core
THROUGHPUT_WINDOW_S = 90  # measure each drain over at most this long
REPO = Path(__file__).resolve().parent.parent
PEER_PYTHON = Path(os.environ.get("BENCH_PEER_PYTHON", str(REPO / ".venv-peer" / "bin" / "python")))
LATENCY_RATE = 1000  # events/s
LATENCY_SECONDS = 5
LATENCY_WAIT_S = 60  # after the last event, how long alerts may take before they count as missing


def _runs(n: int, seed: int, start: datetime, breach_every: int = 0) -> list[list[Any]]:
    """``n`` runs of 9 events; every ``breach_every``-th run breaks its tool-call budget at its 2nd tool call."""
    from tripwire.schemas import ModelCall, RunFinished, RunStarted, ToolCall

    rng = random.Random(seed)
    out = []
    for i in range(n):
        breach = breach_every and i % breach_every == 0
        run_id, trace = str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"{rng.getrandbits(128) | 1:032x}"
        t = start
        events: list[Any] = []

        def base(seq: int, ms: float, i: int = i, run_id: str = run_id, trace: str = trace) -> dict[str, Any]:
            nonlocal t
            t0, t = t, t + timedelta(milliseconds=ms)
            return {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "tenant": "bench",
                "agent_id": f"agent-{i % 20}",
                "agent_version": "1.0",
                "workflow": "w",
                "environment": "bench",
                "credential_fingerprint": f"fp-{i % 20}",
                "trace_id": trace,
                "span_id": f"{rng.getrandbits(64) | 1:016x}",
                "run_id": run_id,
                "seq": seq,
                "ts_start": t0,
                "ts_end": t,
            }

        events.append(RunStarted(**base(0, 0), max_tool_calls=1 if breach else 100, max_cost_usd=10.0))
        for k in range(3):
            events.append(
                ModelCall(
                    **base(len(events), rng.uniform(100, 900)),
                    provider="openai",
                    request_model="gpt-4o",
                    input_tokens=rng.randint(100, 2000),
                    output_tokens=rng.randint(10, 300),
                    cost_usd=round(rng.uniform(0.001, 0.02), 6),
                    cost_source="provider_reported",
                    status="ok",
                )
            )
            events.append(
                ToolCall(
                    **base(len(events), rng.uniform(5, 200)),
                    tool_name="lookup",
                    tool_call_id=f"c{k}",
                    risk="low",
                    args_hash=f"{rng.getrandbits(256):064x}",
                    status="ok",
                    side_effect=False,
                )
            )
        events.append(ModelCall(**base(len(events), 300), provider="openai", request_model="gpt-4o", status="ok"))
        events.append(RunFinished(**base(len(events), 1), outcome="success", last_seq=len(events)))
        out.append(events)
    return out


class _Child:
    """A benchmarked process with its output in ``log_path``; ``stop`` terminates it (kill after 30 s)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


class _Worker(_Child):
    def __init__(self, prefix: str, data_dir: Path) -> None:
        env = dict(os.environ)
        env.update(
            TRIPWIRE_PROCESSORS_BOOTSTRAP=bootstrap(),
            TRIPWIRE_PROCESSORS_TOPIC_PREFIX=prefix,
            TRIPWIRE_PROCESSORS_PARTITIONS=str(PARTITIONS),
            TRIPWIRE_PROCESSORS_DATA_DIR=str(data_dir),
            TRIPWIRE_PROCESSORS_SESSION_TIMEOUT_S="6",
        )
        argv = [sys.executable, "-m", "tripwire.cli", "process", "--log-level", "warn"]
        super().__init__(argv, env, data_dir.parent / f"{prefix}.log")



def _setup(prefix: str) -> Any:
    from tripwire.processors.config import ProcessorConfig
    from tripwire.processors.topics import ensure_runtime_topics

    config = ProcessorConfig(bootstrap=bootstrap(), topic_prefix=prefix, partitions=PARTITIONS)
    return config, ensure_runtime_topics(config)


def _producer() -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True, "linger.ms": 2})


def _committed(group: str, topic: str) -> int:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    except KafkaException:
        return 0
    finally:
        c.close()


def _deadline_loop(pred: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def _cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (its threads included), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain(proc: subprocess.Popen[bytes], log: Path, group: str, topic: str, n: int, what: str) -> dict[str, float]:
    """Events/s and events per CPU-second of ``proc`` from its group's first commit on ``topic`` until
    it has committed the whole backlog *and* gone idle (or THROUGHPUT_WINDOW_S).

    Committing the input topic is not the end of the work: tripwire's agents and credential stages
    (and the peer's repartitioned credential stage) run after it. So the interval ends where the
    process's CPU use first falls under IDLE_CPU_SHARE of a core for IDLE_WINDOW_S after the last
    commit: every stage's work is counted, the idle tail is not. The same rule for both sides."""

    def committed() -> int:
        if proc.poll() is not None:
            tail = log.read_bytes()[-2000:].decode(errors="replace")
            raise RuntimeError(f"{what} exited with {proc.returncode}; its log ends:\n{tail}")
        return _committed(group, topic)

    _deadline_loop(lambda: committed() > 0, 120, f"the first commit of {what}")
    c0, t0, cpu0 = committed(), time.perf_counter(), _cpu_s(proc.pid)
    done = c0
    while done < n and time.perf_counter() - t0 < THROUGHPUT_WINDOW_S:
        time.sleep(0.05)  # sampling the committed offsets
        done = committed()
    samples = [(time.perf_counter(), _cpu_s(proc.pid))]
    start: tuple[float, float] | None = None
    while time.perf_counter() - t0 < THROUGHPUT_WINDOW_S:
        time.sleep(0.1)  # sampling the process's CPU time until it is idle
        samples.append((time.perf_counter(), _cpu_s(proc.pid)))
        start = next((s for s in reversed(samples) if samples[-1][0] - s[0] >= IDLE_WINDOW_S), None)
        if start is not None and samples[-1][1] - start[1] < IDLE_CPU_SHARE * (samples[-1][0] - start[0]):
            break
    end_t, end_cpu = start if start is not None else samples[-1]
    wall, cpu = end_t - t0, end_cpu - cpu0
    return {
        "eps": (done - c0) / wall,
        "per_cpu_s": (done - c0) / cpu,
        "events": done - c0,
        "wall_s": wall,
        "cpu_s": cpu,
    }


class _Peer(_Child):
    """The Quix Streams peer (benchmarks/_quix_peer.py) under its own interpreter."""

    def __init__(self, events_topic: str, group: str, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            PEER_BOOTSTRAP=bootstrap(),
            PEER_GROUP=group,
            PEER_EVENTS_TOPIC=events_topic,
            PEER_STATE_DIR=str(data_dir / "state"),
        )
        super().__init__([str(PEER_PYTHON), str(REPO / "benchmarks" / "_quix_peer.py")], env, data_dir / "peer.log")



def _floor(topic: str, n: int, record_schemas: dict[int, Any]) -> dict[str, float]:
    """Plain confluent-kafka consume + fastavro record-schema decode of the backlog, in this process."""
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": f"floor-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([topic])
    got = 0
    t0 = cpu0 = None
    end = time.monotonic() + 120
    while got < n and time.monotonic() < end:
        for m in c.consume(1000, timeout=0.2):
            if m.error() is not None:
                continue
            if t0 is None:
                t0, cpu0 = time.perf_counter(), time.process_time()
            v = m.value()
            buf = io.BytesIO(v)
            buf.seek(11)
            schemaless_reader(buf, record_schemas[v[10] >> 1], None)
            got += 1
    wall, cpu = time.perf_counter() - (t0 or 0.0), time.process_time() - (cpu0 or 0.0)
    c.close()
    if got < n:
        raise TimeoutError(f"the floor consumer read {got} of {n} events")
    return {"eps": got / wall, "per_cpu_s": got / cpu, "events": got, "wall_s": wall, "cpu_s": cpu}


def _operators(framed: list[bytes], record_pairs: list[tuple[Any, bytes]]) -> tuple[float, float]:
    """(raw record-schema decode, codec decode + Pipeline operators) events per CPU-second in this
    process, alternating."""
    from tripwire.processors import Pipeline
    from tripwire.schemas import decode

    n = len(framed)

    def raw_record() -> int:
        for schema, body in record_pairs:
            schemaless_reader(io.BytesIO(body), schema)
        return n

    def operators() -> int:
        pipe = Pipeline()
        now = time.time()
        for d in framed:
            pipe.process(decode(d), now)
        return n

    return interleaved(raw_record, operators, rounds=3, clock=time.process_time)  # CPU time: single-threaded


def _median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def throughput(tmp: Path) -> list[Result]:
    from tripwire.schemas import default_catalog, encode

    # dated now: the events must pass the timestamp window of the validation (older ones are dead-lettered)
    runs = _runs(THROUGHPUT_EVENTS // 9, 1, datetime.now(UTC) - timedelta(minutes=10))
    events = [e for i in range(9) for r in runs for e in r[i : i + 1]]  # interleaved like live traffic
    framed = [encode(e) for e in events]
    n = len(framed)
    sv = default_catalog().current("events")
    by_name = dict(zip(sv.branch_names, sv.branches, strict=True))
    record_pairs = [(by_name[type(e).AVRO_NAME], d[11:]) for e, d in zip(events, framed, strict=True)]
    record_schemas = dict(enumerate(sv.branches))
    raw_in_memory, ops_in_memory = _operators(framed, record_pairs)

    peer_ok = PEER_PYTHON.exists()
    mine: list[dict[str, float]] = []
    peer: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    for rnd in range(ROUNDS):
        prefix = f"bench_{uuid.uuid4().hex[:10]}"
        config, topics = _setup(prefix)
        p = _producer()
        for e, d in zip(events, framed, strict=True):
            p.produce(topics.events, key=e.run_id.encode(), value=d)
            p.poll(0)
        p.flush(60)

        def run_tripwire(prefix: str = prefix, config: Any = config, topics: Any = topics) -> None:
            worker = _Worker(prefix, tmp / prefix)
            try:
                mine.append(_drain(worker.proc, worker.log_path, config.group_id, topics.events, n, "tripwire process"))
            finally:
                worker.stop()

        def run_peer(prefix: str = prefix, topics: Any = topics) -> None:
            group = f"{prefix}-quix"
            q = _Peer(topics.events, group, tmp / group)
            try:
                peer.append(_drain(q.proc, q.log_path, group, topics.events, n, "the Quix Streams peer"))
            finally:
                q.stop()

        order = [run_tripwire, run_peer] if rnd % 2 == 0 else [run_peer, run_tripwire]
        for fn in order:
            if fn is run_peer and not peer_ok:
                continue
            fn()
        floor.append(_floor(topics.events, n, record_schemas))

    eps, per_cpu = _median(mine, "eps"), _median(mine, "per_cpu_s")
    floor_eps, floor_cpu = _median(floor, "eps"), _median(floor, "per_cpu_s")
    common: dict[str, Any] = {
        "events": n,
        "rounds": ROUNDS,
        "partitions": PARTITIONS,
        "guarantee": "exactly_once",
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "tripwire_events_per_s": eps,
        "tripwire_rounds": mine,
        "floor_events_per_s": floor_eps,
        "floor_events_per_cpu_s": floor_cpu,
        "floor_rounds": floor,
        "operators_in_memory_events_per_cpu_s": ops_in_memory,
        "raw_record_decode_in_memory_events_per_cpu_s": raw_in_memory,
    }
    out: list[Result] = []
    if peer:
        peer_eps, peer_cpu = _median(peer, "eps"), _median(peer, "per_cpu_s")
        common.update(peer_events_per_s=peer_eps, peer_events_per_cpu_s=peer_cpu, peer_rounds=peer)
        out += [
            Result("processors_events_per_cpu_s", per_cpu, "events/cpu-s", ratio=per_cpu / peer_cpu,
                   baseline=peer_cpu, goal=">= 1.0x the Quix Streams peer", extra=common),
            Result("processors_throughput", eps, "events/s", ratio=eps / peer_eps, baseline=peer_eps,
                   extra={"baseline_name": "Quix Streams 3.28 peer, events/s (wall clock: load-dependent)"}),
            Result("processors_peer_events_per_cpu_s", peer_cpu, "events/cpu-s", extra={"events_per_s": peer_eps}),
        ]  # fmt: skip
    else:
        common["peer"] = f"skipped: no interpreter at {PEER_PYTHON} (see benchmarks/README.md)"
        out.append(Result("processors_events_per_cpu_s", per_cpu, "events/cpu-s", extra=common))
        out.append(Result("processors_throughput", eps, "events/s"))
    out += [
        Result("processors_events_per_cpu_s_vs_floor", per_cpu, "events/cpu-s", ratio=per_cpu / floor_cpu,
               baseline=floor_cpu, extra={"baseline_name": "confluent-kafka consume + fastavro record-schema decode",
                                          "events_per_s_ratio": eps / floor_eps}),
        Result("processors_events_per_cpu_s_vs_operators", per_cpu, "events/cpu-s", ratio=per_cpu / ops_in_memory,
               baseline=ops_in_memory, goal=">= 0.5x the operators' in-memory rate",
               extra={"baseline_name": "codec decode (validating) + Pipeline.process in a loop, no Kafka"}),
        Result("processors_operators_in_memory", ops_in_memory, "events/cpu-s", ratio=ops_in_memory / raw_in_memory,
               baseline=raw_in_memory, extra={"baseline_name": "raw fastavro record-schema decode in memory"}),
    ]  # fmt: skip
    return out


def latency(tmp: Path, rate: int = LATENCY_RATE, seconds: float = LATENCY_SECONDS, tag: str = "") -> list[Result]:
    from confluent_kafka import Consumer, TopicPartition

    from tripwire.schemas import decode, encode

    prefix = f"bench_{uuid.uuid4().hex[:10]}"
    config, topics = _setup(prefix)
    emitted: dict[str, float] = {}
    arrived: dict[str, float] = {}
    stop = threading.Event()

    def read_alerts() -> None:
        c = Consumer({"bootstrap.servers": bootstrap(), "group.id": f"{prefix}-r", "isolation.level": "read_committed"})
        c.assign([TopicPartition(topics.alerts, p, 0) for p in range(PARTITIONS)])
        while not stop.is_set():
            for m in c.consume(500, timeout=0.05):
                if m.error() is None:
                    now = time.time()
                    a = decode(m.value())
                    if a.kind == "budget_breach" and a.count == 1:
                        arrived.setdefault(a.evidence_event_ids[0], now)
        c.close()

    reader = threading.Thread(target=read_alerts, daemon=True)
    reader.start()
    worker = _Worker(prefix, tmp / prefix)
    p = _producer()
    try:
        # warm-up: wait until the worker is consuming and publishing alerts
        (warm,) = _runs(1, 2, datetime.now(UTC), breach_every=1)
        for e in warm:
            p.produce(topics.events, key=e.run_id.encode(), value=encode(e))
        p.flush(10)
        _deadline_loop(lambda: warm[4].event_id in arrived, 120, "the warm-up alert")
        arrived.clear()

        total = int(rate * seconds)
        runs = _runs(total // 9 + 1, 3, datetime.now(UTC), breach_every=3)
        queue = [e for i in range(0, len(runs), 20) for k in range(9) for r in runs[i : i + 20] for e in r[k : k + 1]]
        queue = queue[:total]
        frames = [(e.event_id, e.run_id.encode(), encode(e)) for e in queue]
        t_start = time.perf_counter()
        for i, (eid, key, value) in enumerate(frames):
            due = t_start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the producer, not waiting for a result
            emitted[eid] = time.time()
            p.produce(topics.events, key=key, value=value)
            p.poll(0)
        p.flush(30)
        achieved = len(frames) / (time.perf_counter() - t_start)
        breaches = {r[4].event_id for r in runs if r[0].max_tool_calls == 1 and r[4].event_id in emitted}
        try:
            _deadline_loop(lambda: breaches <= set(arrived), LATENCY_WAIT_S, "every breach alert")
        except TimeoutError:
            pass  # reported: alerts still missing after the wait count as latency > LATENCY_WAIT_S
    finally:
        stop.set()
        worker.stop()
        reader.join(timeout=5)
    lat = [arrived[e] - emitted[e] if e in arrived else float("inf") for e in breaches]
    extra = {
        "alerts_expected": len(breaches),
        "alerts_missing_after_wait": sum(1 for e in breaches if e not in arrived),
        "wait_s": LATENCY_WAIT_S,
        "achieved_events_per_s": achieved,
        "commit_interval_s": config.commit_interval_s,
    }
    return [
        Result(f"processors_alert_latency_p50{tag}", percentile(lat, 50), "s", extra=extra),
        Result(
            f"processors_alert_latency_p95{tag}",
            percentile(lat, 95),
            "s",
            goal="< 1 s" if not tag else None,
            extra=extra,
        ),
    ]


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench_proc_") as d:
        only = os.environ.get("BENCH_PROC_ONLY")
        if only == "latency":
            return latency(Path(d))
        if only == "throughput":
            return throughput(Path(d))
        results = [*throughput(Path(d)), *latency(Path(d))]
        # the same measurement at a rate one worker sustains here: the pipeline's own latency, no backlog
        drained = next(r.value for r in results if r.name == "processors_throughput")
        sustainable = max(50, int(drained * 0.5))
        return results + latency(Path(d), sustainable, 20.0, tag=f"_at_{sustainable}eps")


if __name__ == "__main__":
    report(run())
