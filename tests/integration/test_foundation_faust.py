"""faust-streaming works against the dev broker: an agent with a Table, under exactly_once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from tests.helpers import create_topics, uid

pytestmark = pytest.mark.integration


def test_faust_agent_with_table_round_trip(kafka_bootstrap: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    create_topics(kafka_bootstrap, {f"src-{suffix}": 2, f"dst-{suffix}": 2})
    env = dict(os.environ, PROBE_SUFFIX=suffix, PROBE_BOOTSTRAP=kafka_bootstrap, PROBE_DATADIR=str(tmp_path))
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "tests.integration.faust_probe.app", "worker", "-l", "warn",
         "--without-web"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2],
    )
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        sent = [(f"k{i % 3}".encode(), f"v{i}".encode()) for i in range(30)]
        for key, value in sent:
            producer.produce(f"src-{suffix}", key=key, value=value)
        assert producer.flush(30) == 0

        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": uid("g"),
                             "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        consumer.subscribe([f"dst-{suffix}"])
        got: dict[bytes, list[bytes]] = {}
        deadline = time.monotonic() + 90
        while sum(map(len, got.values())) < len(sent) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.setdefault(msg.key(), []).append(msg.value())
        consumer.close()
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    expected: dict[bytes, list[bytes]] = {}
    for key, value in sent:
        expected.setdefault(key, []).append(value + b":" + str(len(expected[key]) + 1).encode())
    assert got == expected
