"""Kafka helpers for the processor integration tests: a worker subprocess, feeding events,
reading committed outputs, consumer-group progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.helpers import WaitTimeout, wait_until
from tripwire.processors.config import ProcessorConfig
from tripwire.processors.topics import RuntimeTopics, ensure_runtime_topics
from tripwire.schemas import decode, encode

FAST_POLICY = """
runs: {inactivity_timeout_s: %s, reorder_grace_s: 1}
latency_windows: {allowed_lateness_s: 1}
incidents: {update_interval_s: 0.5}
"""


def setup(
    bootstrap: str, prefix: str, tmp_path: Path, partitions: int = 3, inactivity_timeout_s: float = 3, **extra: Any
) -> tuple[ProcessorConfig, RuntimeTopics]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(FAST_POLICY % inactivity_timeout_s)
    config = ProcessorConfig(
        bootstrap=bootstrap,
        topic_prefix=prefix,
        partitions=partitions,
        data_dir=tmp_path / "data",
        policy_path=policy,
        tick_interval_s=0.2,
        session_timeout_s=6,
        **extra,
    )
    return config, ensure_runtime_topics(config)


class WorkerProcess:
    """``tripwire process`` in a subprocess, configured through TRIPWIRE_PROCESSORS_* variables."""

    def __init__(self, config: ProcessorConfig, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ)
        for k, v in self.config.model_dump(exclude_none=True).items():
            env[f"TRIPWIRE_PROCESSORS_{k.upper()}"] = str(v)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire.cli", "process", "--log-level", "info"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def produce(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> list[tuple[int, int]]:
    """Produce (key, value) pairs in order; returns each message's (partition, offset)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    items = list(items)
    where: list[tuple[int, int] | None] = [None] * len(items)

    def done(i: int):
        def cb(err: Any, msg: Any) -> None:
            assert err is None, err
            where[i] = (msg.partition(), msg.offset())

        return cb

    for i, (k, v) in enumerate(items):
        p.produce(topic, key=k, value=v, on_delivery=done(i))
        p.poll(0)
    assert p.flush(30) == 0
    return [w for w in where if w is not None]


def produce_events(bootstrap: str, topic: str, events: Iterable[Any]) -> list[tuple[int, int]]:
    return produce(bootstrap, topic, ((e.run_id.encode(), encode(e)) for e in events))


class CommittedReader:
    """Reads a topic from the beginning with isolation.level=read_committed, incrementally."""

    def __init__(self, bootstrap: str, topic: str, committed: bool = True) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{topic}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed" if committed else "read_uncommitted",
            }
        )
        parts = self.c.list_topics(topic, timeout=10).topics[topic].partitions
        self.c.assign([TopicPartition(topic, p, 0) for p in parts])
        self.messages: list[Any] = []
        self.records: list[Any] = []

    def poll(self) -> list[Any]:
        while True:
            batch = self.c.consume(1000, timeout=0.2)
            if not batch:
                return self.records
            for m in batch:
                if m.error() is None:
                    self.messages.append(m)
                    self.records.append(decode(m.value()))

    def close(self) -> None:
        self.c.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Sum of the group's committed offsets on ``topic``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    except KafkaException:  # the group coordinator is (re)loading: no answer yet
        return 0
    finally:
        c.close()


def wait_for(reader: CommittedReader, predicate: Any, timeout: float, message: str, worker: WorkerProcess) -> list[Any]:
    def check() -> Any:
        assert worker.alive(), "worker died:\n" + worker.log()[-3000:]
        recs = reader.poll()
        return predicate(recs)

    try:
        wait_until(check, timeout=timeout, interval=0.2, message=message)
    except WaitTimeout as e:  # say how far it got, and what the worker logged last
        raise WaitTimeout(f"{e}; {len(reader.records)} records read\n{worker.log()[-3000:]}") from None
    return reader.records
