"""The whole-pipeline fault suite (issue 20): ``python -m benchmarks faults`` (full) and
:func:`suite` (``short=True``: the CI variant, tests/integration/test_faults.py).

On a PRIVATE dev broker (so it can be stopped), it runs the SDK fleet (``tripwire simulate``), two
``tripwire process`` workers, ``tripwire sink`` into chdb and ``tripwire notify`` against a local webhook,
all as subprocesses, and injects on a schedule: hostile events from a plain producer, SIGKILL of each
worker, SIGKILL of the sink, a webhook outage (503s) and a broker stop. Then it checks, from the stored
data: SDK events emitted = distinct events stored; every run summary and every latency window = a
recomputation from the raw stored events (SQL, no operator code); cost totals equal to the cent; every
hostile message dead-lettered with a reason; every incident delivered to the webhook, no notification
delivered twice. It prints one row per fault and the checks, and fails on any mismatch.

ClickHouse insert failures go through the sink's test hook (``TRIPWIRE_SINK_TEST_FAIL_INSERTS_WHILE``, a
marker file; off by default). "Recovered after" counts from the end of an outage (broker, webhook, inserts)
or from the injection (kills, hostile burst) to the first commit past the mark of the affected consumers.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, report

TRIPWIRE = [sys.executable, "-m", "tripwire.cli"]
WINDOW_S, LATENESS_S = 10, 3
POLICY = f"""
runs: {{inactivity_timeout_s: 120, reorder_grace_s: 1}}
latency_windows: {{window_s: {WINDOW_S}, allowed_lateness_s: {LATENESS_S}}}
incidents: {{update_interval_s: 0.5}}
"""


@dataclass(frozen=True)
class Plan:
    duration_s: float  # how long the fleet emits
    rate: float
    agents: int
    kills_per_worker: int
    broker_stop_s: float
    webhook_outage_s: float
    insert_fail_s: float

    def schedule(self) -> list[tuple[float, str]]:
        """(seconds after the fleet started, fault), spread over the fleet's run."""
        d = self.duration_s
        faults = [(0.10 * d, "hostile_burst"), (0.12 * d, "clickhouse_insert_failures")]
        for k in range(self.kills_per_worker):
            base = 0.15 + 0.45 * k / max(self.kills_per_worker, 1)
            faults += [(base * d, "sigkill_worker_a"), ((base + 0.07) * d, "sigkill_worker_b")]
        faults += [(0.35 * d, "sigkill_sink"), (0.45 * d, "webhook_outage"), (0.75 * d, "broker_stop")]
        return sorted(faults)


SHORT = Plan(duration_s=50, rate=120, agents=4, kills_per_worker=1, broker_stop_s=10, webhook_outage_s=8,
             insert_fail_s=8)
FULL = Plan(duration_s=300, rate=300, agents=8, kills_per_worker=3, broker_stop_s=60, webhook_outage_s=60,
            insert_fail_s=60)


@dataclass
class FaultRow:
    fault: str
    injected_at_s: float
    recovered_after_s: float | None = None


@dataclass
class Outcome:
    rows: list[FaultRow]
    checks: dict[str, tuple[bool, str]]
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.checks.values())

    def table(self) -> str:
        lines = [f"{'fault':<18} {'injected at':>12} {'recovered after':>16}"]
        for r in self.rows:
            rec = f"{r.recovered_after_s:.1f} s" if r.recovered_after_s is not None else "NOT RECOVERED"
            lines.append(f"{r.fault:<18} {r.injected_at_s:>10.1f} s {rec:>16}")
        lines.append("")
        lines += [f"{'PASS' if ok else 'FAIL'}  {name}: {detail}" for name, (ok, detail) in self.checks.items()]
        return "\n".join(lines)


class Proc:
    """A ``tripwire`` subcommand in its own session, logging to a file; restartable."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name, self.args, self.env, self.workdir = name, args, env, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Proc:
        self.starts += 1
        log = (self.workdir / f"{self.name}.{self.starts}.log").open("ab")
        self.proc = subprocess.Popen([*TRIPWIRE, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        path = self.workdir / f"{self.name}.{self.starts}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


_QUIET = {"log_level": 2}  # the probes' "connection refused" while the broker is stopped is expected
_KAFKA = threading.Lock()  # one probe consumer at a time (librdkafka aborts on concurrent creation here)


def _offsets(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int] | None:
    """(sum of the group's committed offsets, sum of the high watermarks) over ``topics``; None if the
    broker does not answer."""
    with _KAFKA:
        return _offsets_unlocked(bootstrap, group, topics)


def _committed(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, int] | None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    with _KAFKA:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                      "socket.timeout.ms": 3000, **_QUIET})
        try:
            return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in partitions],
                                                                   timeout=5)}
        except KafkaException:
            return None
        finally:
            c.close()


def _offsets_unlocked(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int] | None:
    got = _positions(bootstrap, group, topics)
    return (sum(c for c, _ in got.values()), sum(h for _, h in got.values())) if got is not None else None


def _positions(bootstrap: str, group: str, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]] | None:
    """Per partition of ``topics``: (the group's committed offset, the high watermark); None if no answer."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "socket.timeout.ms": 3000, **_QUIET})
    try:
        meta = c.list_topics(timeout=5)
        tps = [TopicPartition(t, p) for t in topics for p in meta.topics[t].partitions]
        committed = c.committed(tps, timeout=5)
        return {(tp.topic, tp.partition): (max(tp.offset, 0), c.get_watermark_offsets(tp, timeout=5)[1])
                for tp in committed}
    except (KafkaException, KeyError):
        return None
    finally:
        c.close()


def _unread(bootstrap: str, group: str, topics: list[str]) -> int | None:
    """How many committed records of ``topics`` lie after the group's committed offsets (read_committed: the
    transaction markers and aborted records at the end of a partition are not records); None if no answer."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    pos = _positions(bootstrap, group, topics)
    if pos is None:
        return None
    behind = [TopicPartition(t, p, c) for (t, p), (c, h) in pos.items() if c < h]
    if not behind:
        return 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}.probe", "enable.auto.commit": False,
                  "isolation.level": "read_committed", **_QUIET})
    try:
        c.assign(behind)
        n = 0
        while batch := c.consume(1000, timeout=2.0):
            n += sum(m.error() is None for m in batch)
        return n
    except KafkaException:
        return None
    finally:
        c.close()


def _caught_up(bootstrap: str, groups: list[tuple[str, list[str]]]) -> Callable[[], bool]:
    """True once no group has a committed record left to read, twice in a row."""
    last = [False]

    def check() -> bool:
        with _KAFKA:
            now = all(_unread(bootstrap, g, ts) == 0 for g, ts in groups)
        done, last[0] = now and last[0], now
        return done

    return check


def _poll(predicate: Callable[[], Any], timeout: float, interval: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def hostile_messages() -> list[tuple[str, bytes | None, bytes]]:
    """(case, key, value): undecodable bytes and schema-valid events that break a limit."""
    from tests.proc_factory import RunScript
    from tripwire.schemas import encode

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    rng = random.Random(20)
    r = RunScript(777, agent_id="hostile", credential=None, start=now)
    r.start()
    good = encode(r.model(0.01))
    cost = r.model(1e308)
    far = datetime(9999, 1, 1, tzinfo=UTC)
    dated = r.model(0.5, ts_start=far, ts_end=far)
    seq = r.model(0.5, seq=2**62)
    big = r.model(0.5).model_copy(update={"run_id": "r" * 900_000})
    cases = [
        ("random_bytes", rng.randbytes(200)),
        ("truncated", good[: len(good) // 2]),
        ("wrong_marker", b"\x00" + good[1:]),
        ("cost_1e308", encode(cost)),
        ("seq_2^62", encode(seq)),
        ("date_9999", encode(dated)),
        ("run_id_900KB", encode(big)),
    ]
    return [(name, b"hostile", value) for name, value in cases]


def suite(short: bool = True, workdir: Path | None = None) -> Outcome:
    from tests.helpers import create_topics
    from tests.notify_helpers import Receiver
    from tests.proc_kafka import produce
    from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port
    from tripwire.processors.config import ProcessorConfig
    from tripwire.processors.topics import ensure_runtime_topics
    from tripwire.schemas import topic_names

    plan = SHORT if short else FULL
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="tripwire_faults_")) if workdir is None else workdir
    broker = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=work / "kafka"))
    broker.start()
    bootstrap = broker.bootstrap
    prefix = f"faults_{uuid.uuid4().hex[:8]}"
    names = topic_names(prefix)
    (work / "policy.yaml").write_text(POLICY)
    config = ProcessorConfig(bootstrap=bootstrap, topic_prefix=prefix, partitions=4, data_dir=work / "worker-a",
                             policy_path=work / "policy.yaml", tick_interval_s=0.2, session_timeout_s=6)
    topics = ensure_runtime_topics(config)
    create_topics(bootstrap, {names.killswitch: 1})
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}

    def worker_env(cfg: ProcessorConfig) -> dict[str, str]:
        env = dict(base_env)
        for k, v in cfg.model_dump(exclude_none=True).items():
            env[f"TRIPWIRE_PROCESSORS_{k.upper()}"] = str(v)
        return env

    workers = {
        "worker_a": Proc("worker_a", ["process", "--log-level", "info"], worker_env(config), work),
        "worker_b": Proc("worker_b", ["process", "--log-level", "info"],
                         worker_env(config.model_copy(update={"data_dir": work / "worker-b"})), work),
    }
    store_url = f"chdb://{work / 'chdb'}"
    sink_group = f"{prefix}.sink"
    sink = Proc("sink", ["sink", "--url", store_url, "--bootstrap", bootstrap, "--group", sink_group,
                         "--topic-prefix", prefix],
                {**base_env, "TRIPWIRE_SINK_BATCH_SECONDS": "0.5", "TRIPWIRE_SINK_RETRY_MAX_S": "2",
                 "TRIPWIRE_SINK_INSTANCE_ID": "sink-1", "TRIPWIRE_SINK_SESSION_TIMEOUT_S": "10",
                 "TRIPWIRE_SINK_TEST_FAIL_INSERTS_WHILE": str(work / "fail-inserts")}, work)
    outage = threading.Event()
    refused_posts: list[int] = []  # 503s served during the webhook outage
    received_at: dict[int, float] = {}

    def respond(i: int, h: dict[str, str], b: bytes) -> int:
        received_at[i] = time.monotonic()
        return 503 if outage.is_set() else 200

    rx = Receiver(responder=respond)
    routes = work / "routes.yaml"
    routes.write_text(
        "routes:\n  - name: faults\n    channel: webhook\n    url_secret: url\n    hmac_key_secret: key\n"
    )
    notify = Proc("notify", ["notify", "--routes", str(routes), "--bootstrap", bootstrap, "--topic-prefix", prefix,
                             "--group", f"{prefix}.notify", "--max-attempts", "100"],
                  {**base_env, "TRIPWIRE_NOTIFY_SECRETS__URL": rx.url, "TRIPWIRE_NOTIFY_BACKOFF_MAX_S": "3",
                   "TRIPWIRE_NOTIFY_SECRETS__KEY": uuid.uuid4().hex}, work)
    fleet = Proc("simulate", ["simulate", "--bootstrap", bootstrap, "--topic-prefix", prefix, "--rate",
                              str(plan.rate), "--duration", str(plan.duration_s), "--agents", str(plan.agents),
                              "--dir", str(work / "fleet")], base_env, work)
    sink_topics = [t for t in (names.events, names.runs, names.metrics, names.alerts, names.dlq, names.killswitch)]
    rows: list[FaultRow] = []
    watchers: list[threading.Thread] = []
    hostile: list[tuple[str, tuple[int, int]]] = []
    t_start = time.monotonic()

    def watch(row: FaultRow, recovered: Callable[[], bool], t0: float, timeout: float = 300) -> None:
        def run() -> None:
            if _poll(recovered, timeout):
                row.recovered_after_s = round(time.monotonic() - t0, 1)

        th = threading.Thread(target=run, daemon=True)
        th.start()
        watchers.append(th)

    def commits_past(group: str, topic_list: list[str], mark: int) -> Callable[[], bool]:
        def check() -> bool:
            got = _offsets(bootstrap, group, topic_list)
            return got is not None and got[0] > mark

        return check

    def committed_now(group: str, topic_list: list[str]) -> int:
        got = _offsets(bootstrap, group, topic_list)
        return got[0] if got else 0

    def inject(fault: str) -> None:
        t0 = time.monotonic()
        row = FaultRow(fault, round(t0 - t_start, 1))
        rows.append(row)
        if fault == "hostile_burst":
            msgs = hostile_messages()
            where = produce(bootstrap, topics.events, [(k, v) for _, k, v in msgs])
            hostile.extend(zip((n for n, _, _ in msgs), where, strict=True))
            last = {p: o for _, (p, o) in hostile}

            def past() -> bool:  # the workers committed past every hostile message
                got = _committed(bootstrap, config.group_id, topics.events, list(last))
                return got is not None and all(got[p] > o for p, o in last.items())

            watch(row, past, t0)
        elif fault.startswith("sigkill_worker"):
            w = workers[fault.removeprefix("sigkill_")]
            mark = committed_now(config.group_id, [topics.events])
            w.kill()
            w.start()
            watch(row, commits_past(config.group_id, [topics.events], mark), t0)
        elif fault == "sigkill_sink":
            mark = committed_now(sink_group, sink_topics)
            sink.kill()
            sink.start()
            watch(row, commits_past(sink_group, sink_topics, mark), t0)
        elif fault == "webhook_outage":
            outage.set()
            n_before = len(rx.requests)
            time.sleep(plan.webhook_outage_s)  # the outage itself: the receiver answers 503 meanwhile
            # ... and until it refused a delivery (alerts come in bursts; an outage nobody saw tests nothing)
            _poll(lambda: any(r.status == 503 for r in rx.requests[n_before:]), 60, 0.2)
            outage.clear()
            refused_posts.append(sum(r.status == 503 for r in rx.requests[n_before:]))
            t1 = time.monotonic()
            watch(row, lambda: any(200 <= r.status < 300 for r in rx.requests[n_before:]), t1)
            row.injected_at_s = round(t0 - t_start, 1)
        elif fault == "clickhouse_insert_failures":
            marker = work / "fail-inserts"
            marker.touch()
            time.sleep(plan.insert_fail_s)  # the failure period itself: every insert of the sink fails
            mark = committed_now(sink_group, sink_topics)
            marker.unlink()
            t1 = time.monotonic()
            watch(row, commits_past(sink_group, sink_topics, mark), t1)
        elif fault == "broker_stop":
            marks = {g: committed_now(g, ts) for g, ts in ((config.group_id, [topics.events]),
                                                           (sink_group, sink_topics))}
            broker.stop()
            time.sleep(plan.broker_stop_s)  # the outage itself
            broker.start()
            t1 = time.monotonic()
            watch(row, lambda: all(commits_past(g, ts, marks[g])() for g, ts in
                                   ((config.group_id, [topics.events]), (sink_group, sink_topics))), t1)

    try:
        for p in (*workers.values(), sink, notify):
            p.start()
        # the workers joined and committed once (on an empty topic: a warm-up event is not needed)
        fleet.start()
        t_start = time.monotonic()
        for at, fault in plan.schedule():
            time.sleep(max(0.0, at - (time.monotonic() - t_start)))
            inject(fault)
        assert fleet.proc is not None
        fleet.proc.wait(timeout=plan.duration_s + plan.broker_stop_s + 180)
        summary_line = (work / f"simulate.{fleet.starts}.log").read_text().strip().splitlines()
        sim = json.loads(next(line for line in reversed(summary_line) if line.startswith("{")))
        # drain: both groups caught up; then the last windows close on the wall clock; then caught up again
        drained = _caught_up(bootstrap, [(config.group_id, [topics.events]), (sink_group, sink_topics)])
        _poll(drained, 180, 2.0)
        time.sleep(WINDOW_S + LATENESS_S + 2)  # the last windows close on the wall clock: nothing to poll for
        _poll(drained, 120, 2.0)
        for th in watchers:
            th.join(timeout=60)
        alive = {p.name: p.alive() for p in (*workers.values(), sink, notify)}
    finally:
        sink_rc = None
        try:
            for p in (fleet, *workers.values(), notify):
                p.stop()
            sink_rc = sink.stop()
        finally:
            rx.close()
            broker.stop()
    elapsed = time.monotonic() - t_start
    rx.received_s = {i: round(t - t_start, 1) for i, t in received_at.items()}  # type: ignore[attr-defined]
    checks = _checks(store_url, sim, topics.events, hostile, rx, alive, sink_rc)
    notify_log = (work / f"notify.{notify.starts}.log").read_text(errors="replace")
    replayed = re.findall(r"replayed_done=(\d+)", notify_log)  # records redelivered-if-not-remembered
    refused = sum(f.read_text(errors="replace").count("insert failed") for f in work.glob("sink.*.log"))
    checks["insert_failures_exercised"] = (refused > 0, f"{refused} inserts refused by the test hook, then retried")
    checks["webhook_outage_exercised"] = (sum(refused_posts) > 0,
                                          f"{sum(refused_posts)} deliveries refused (503) during the outage")
    out = Outcome(rows, checks, round(elapsed, 1), {"simulate": sim, "workdir": str(work),
                                              "notify_replayed_done": int(replayed[-1]) if replayed else None})
    if own_dir and out.ok:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _checks(store_url: str, sim: dict[str, Any], events_topic: str, hostile: list[tuple[str, tuple[int, int]]],
            rx: Any, alive: dict[str, bool], sink_rc: int | None) -> dict[str, tuple[bool, str]]:
    from tripwire.sinks.store import open_store

    checks: dict[str, tuple[bool, str]] = {}
    checks["processes_alive"] = (all(alive.values()) and sink_rc == 0, f"{alive}, sink exit code {sink_rc}")
    checks["sdk_nothing_dropped"] = (sim["dropped"] == 0 and bool(sim["flushed"]),
                                     f"dropped={sim['dropped']} flushed={sim['flushed']} spooled={sim['spooled']}")
    with open_store(store_url) as store:
        q = store.query
        stored = q("SELECT uniqExact(event_id) FROM (SELECT event_id FROM model_calls UNION ALL SELECT event_id "
                   "FROM tool_calls UNION ALL SELECT event_id FROM run_events)").scalar()
        rows = q("SELECT (SELECT count() FROM model_calls) + (SELECT count() FROM tool_calls)"
                 " + (SELECT count() FROM run_events)").scalar()
        checks["emitted_eq_stored"] = (int(stored) == sim["emitted"],
                                       f"SDK emitted {sim['emitted']}, distinct stored {stored} ({rows} rows)")
        # run summaries against the raw events (SQL over the stored rows, no operator code)
        diff = q(
            "WITH mc AS (SELECT run_id, count() AS n, sum(ifNull(cost_usd, 0)) AS cost FROM model_calls"
            " GROUP BY run_id), tc AS (SELECT run_id, count() AS n FROM tool_calls GROUP BY run_id),"
            " s AS (SELECT run_id, model_calls, tool_calls, cost_usd FROM run_summaries FINAL)"
            " SELECT s.run_id, s.model_calls, ifNull(mc.n, 0), s.tool_calls, ifNull(tc.n, 0), s.cost_usd,"
            " ifNull(mc.cost, 0) FROM s LEFT JOIN mc ON mc.run_id = s.run_id LEFT JOIN tc ON tc.run_id = s.run_id"
            " SETTINGS join_use_nulls = 1"
        ).rows
        bad = [r for r in diff if r[1] != r[2] or r[3] != r[4] or round(r[5], 9) != round(r[6], 9)]
        finished = q("SELECT uniqExact(run_id) FROM run_events WHERE event_type = 'run_finished'").scalar()
        checks["run_summaries_eq_raw"] = (
            not bad and len(diff) >= int(finished) and len(diff) > 0,
            f"{len(diff)} summaries ({finished} runs finished), {len(bad)} differ{': ' + str(bad[:3]) if bad else ''}",
        )
        raw_cost = q("SELECT sum(ifNull(cost_usd, 0)) FROM model_calls").scalar()
        sum_cost = q("SELECT sum(cost_usd) FROM run_summaries FINAL").scalar()
        checks["cost_to_the_cent"] = (round(float(raw_cost), 2) == round(float(sum_cost), 2),
                                      f"raw ${float(raw_cost):.6f}, summaries ${float(sum_cost):.6f}")
        checks.update(_window_check(q))
        dead = q("SELECT partition, offset, reason, stage FROM dead_letters WHERE source_topic = {t:String}",
                 {"t": events_topic}).rows
        reasons = {(p, o): (r, s) for p, o, r, s in dead}
        missing = [n for n, w in hostile if not reasons.get(w, ("", ""))[0]]
        checks["hostile_in_dlq"] = (
            not missing and len(hostile) > 0,
            f"{len(hostile) - len(missing)}/{len(hostile)} with a reason"
            + (f", missing {missing}" if missing else "")
            + "; " + ", ".join(f"{n}: {reasons.get(w, ('-', '-'))[1]}" for n, w in hostile),
        )
        incidents = {r[0] for r in q("SELECT DISTINCT incident_id FROM alerts").rows}
    delivered: dict[str, int] = {}
    per_record: dict[tuple[str, str], list[float]] = {}
    for r in rx.ok():
        doc = r.json()
        delivered[doc["dedup_key"]] = delivered.get(doc["dedup_key"], 0) + 1
        key = (doc["dedup_key"], str(doc.get("record_id")))
        per_record.setdefault(key, []).append(getattr(rx, "received_s", {}).get(r.index, -1.0))
    twice = {k: at for k, at in per_record.items() if len(at) > 1}
    undelivered = incidents - set(delivered)
    checks["alerts_once_per_incident"] = (
        not twice and not undelivered and len(incidents) > 0,
        f"{len(incidents)} incidents, {len(delivered)} dedup keys delivered, {len(twice)} notifications delivered"
        f" twice, {len(undelivered)} incidents never delivered, {len(rx.requests) - len(rx.ok())} 503/failed posts"
        + (f"; delivered twice at (s): {list(twice.values())[:5]}" if twice else ""),
    )
    return checks


def _window_check(q: Callable[..., Any]) -> dict[str, tuple[bool, str]]:
    """Every stored WindowStats (latest emission) = the recomputation from the raw calls; every window that
    must have closed by now is there."""
    raw = (
        "SELECT tenant, agent_id, agent_version, 'model' AS kind, ifNull(response_model, request_model) AS name,"
        f" toStartOfInterval(ts_end, INTERVAL {WINDOW_S} SECOND) AS ws, count() AS n,"
        " countIf(status IN ('error', 'timeout')) AS e, sum(ifNull(cost_usd, 0)) AS c FROM model_calls"
        " GROUP BY tenant, agent_id, agent_version, kind, name, ws"
        " UNION ALL SELECT tenant, agent_id, agent_version, 'tool' AS kind, tool_name AS name,"
        f" toStartOfInterval(ts_end, INTERVAL {WINDOW_S} SECOND) AS ws, count() AS n,"
        " countIf(status IN ('error', 'timeout')) AS e, 0.0 AS c FROM tool_calls"
        " GROUP BY tenant, agent_id, agent_version, kind, name, ws"
    )
    want = {(t, a, v, k, n, int(ws.timestamp())): (cnt, e, round(c, 9)) for t, a, v, k, n, ws, cnt, e, c in q(raw).rows}
    got = {
        (t, a, v, str(k), n, int(ws.timestamp())): (cnt, e, round(c, 9))
        for t, a, v, k, n, ws, cnt, e, c in q(
            "SELECT tenant, agent_id, agent_version, kind, name, window_start, count, errors, cost_usd"
            " FROM window_stats FINAL"
        ).rows
    }
    wrong = {k: (got[k], v) for k, v in want.items() if k in got and got[k] != v}
    extra = [k for k in got if k not in want]
    horizon = time.time() - WINDOW_S - LATENESS_S - 5  # windows ending before this must have been emitted
    missing = [k for k in want if k not in got and k[5] + WINDOW_S < horizon]
    ok = not wrong and not extra and not missing and len(got) > 0
    over = sum(g[0] > w[0] for g, w in wrong.values())
    stored_calls = sum(g[0] for g, _ in wrong.values())
    raw_calls = sum(w[0] for _, w in wrong.values())
    detail = (f"{len(want)} windows recomputed, {len(got)} stored, {len(wrong)} differ ({over} over-counted,"
              f" {len(wrong) - over} under-counted: {stored_calls} calls stored for {raw_calls} raw),"
              f" {len(missing)} missing ({sum(want[k][0] for k in missing)} calls), {len(extra)} unexplained")
    if wrong:
        detail += f"; e.g. {list(wrong.items())[:3]}"
    return {"windows_eq_raw": (ok, detail)}


def run(short: bool = False) -> list[Result]:
    out = suite(short=short)
    print(out.table(), flush=True)
    if not out.ok:
        raise AssertionError(f"fault suite: {[k for k, (ok, _) in out.checks.items() if not ok]} failed")
    return [
        Result("fault_suite_elapsed", out.elapsed_s, "s", extra={"faults": len(out.rows), **out.extra}),
        *[Result(f"recovered_{r.fault}", r.recovered_after_s or -1, "s") for r in out.rows],
    ]


if __name__ == "__main__":
    report(run(short="--short" in sys.argv))
