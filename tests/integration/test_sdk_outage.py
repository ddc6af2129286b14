"""Broker outages against a PRIVATE broker (stopped and restarted here; the shared one is never touched).

* stopped mid-stream while the agent keeps emitting, then restarted: every event arrives exactly once,
  in seq order per run, and the spool was used and replayed;
* the process exits while the broker is down: the spool it leaves is delivered by the next process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import create_topics, uid, wait_until
from tests.integration._sdk_kafka_helpers import check_exactly_once_in_order, read_topic, total_messages
from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port
from tripwire.producers import Tracer, TracerConfig
from tripwire.producers.spool import read_all
from tripwire.schemas import decode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def _private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaDevBroker]:
    run_dir = tmp_path_factory.mktemp("sdk_outage_broker")
    b = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=run_dir))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(_private_broker: KafkaDevBroker) -> KafkaDevBroker:
    _private_broker.start()  # a no-op when running; a test may have left it stopped
    return _private_broker


def _emit(tracer: Tracer, runs: int, calls: int) -> None:
    for r in range(runs):
        with tracer.run(workflow=f"w{r}") as run:
            for i in range(calls):
                with run.tool_call("t", args={"i": i}):
                    pass


def test_broker_stopped_mid_stream_then_restarted_exactly_once(broker: KafkaDevBroker, tmp_path: Path) -> None:
    topic = uid("t_outage")
    create_topics(broker.bootstrap, {topic: 3})
    tracer = Tracer(
        TracerConfig(
            agent={"name": "a"},
            kafka={"bootstrap": broker.bootstrap, "topic": topic},
            delivery={"spool_dir": tmp_path / "spool", "segment_bytes": 64 * 1024},
        )
    )
    long_run = tracer.run(workflow="spans-the-outage")
    long_run.start()
    _emit(tracer, runs=5, calls=200)  # 5 x 202
    for i in range(300):
        with long_run.tool_call("before", args={"i": i}):
            pass
    assert tracer.flush(30)
    assert tracer.counters().delivered == 5 * 202 + 301

    broker.stop()
    _emit(tracer, runs=5, calls=400)  # 5 x 402, while the broker is down
    for i in range(2000):
        with long_run.tool_call("during", args={"i": i}):
            pass
    wait_until(lambda: tracer.counters().spooled > 0, timeout=30, message="events spooled during the outage")
    assert not tracer.flush(0.5)

    broker.start()
    _emit(tracer, runs=2, calls=100)  # 2 x 102 after the restart
    long_run.finish()
    assert tracer.flush(60)
    c = tracer.counters()
    tracer.close()
    expected = 5 * 202 + 5 * 402 + 2 * 102 + 1 + 300 + 2000 + 1
    assert (c.emitted, c.delivered, c.dropped) == (expected, expected, 0)
    assert c.spooled > 0 and c.replayed == c.spooled

    dump = read_topic(broker.bootstrap, topic, uid("g"), expected=expected)
    events = dump.events()
    assert total_messages(broker.bootstrap, topic, uid("g")) == expected  # no duplicate on the log at all
    assert len(events) == expected
    per_run = check_exactly_once_in_order(events)
    assert len(per_run[long_run.run_id]) == 2302
    assert sorted(read_all(tmp_path / "spool")) == []


CHILD = textwrap.dedent(
    """
    import json, sys
    from tripwire.producers import Tracer, TracerConfig
    bootstrap, topic, spool, runs, tag = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    tracer = Tracer(TracerConfig(
        agent={"name": "child"},
        kafka={"bootstrap": bootstrap, "topic": topic},
        delivery={"spool_dir": spool, "close_timeout_s": 2.0, "flush_timeout_s": 30.0},
    ))
    ids = []
    for r in range(runs):
        with tracer.run(workflow=tag) as run:
            ids.append(run.run_id)
            for i in range(50):
                with run.tool_call("t", args={"i": i}):
                    pass
    if tag == "second":
        ok = tracer.flush()
        c = tracer.counters()
        print(json.dumps({"flushed": ok, "replayed": c.replayed, "delivered": c.delivered, "runs": ids}))
    else:
        print(json.dumps({"runs": ids}))
    # no close(): the atexit hook must spool whatever is undelivered
    """
)


def _child(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=120, env=env, cwd="/tmp"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_exit_during_outage_leaves_a_spool_the_next_process_delivers(broker: KafkaDevBroker, tmp_path: Path) -> None:
    topic = uid("t_outage")
    create_topics(broker.bootstrap, {topic: 3})
    spool = tmp_path / "spool"
    broker.stop()

    first = _child(broker.bootstrap, topic, str(spool), "4", "first")
    left = [decode(v) for _, v in read_all(spool)]
    assert len(left) == 4 * 52  # every event of the first process is on disk, in order
    check_exactly_once_in_order(left)
    assert {e.run_id for e in left} == set(first["runs"])

    broker.start()
    second = _child(broker.bootstrap, topic, str(spool), "2", "second")
    assert second["flushed"] is True
    # the first process's 208 events came off the disk (the second's own may have too, behind them)
    assert second["replayed"] >= 4 * 52
    assert read_all(spool) == []

    expected = 6 * 52
    dump = read_topic(broker.bootstrap, topic, uid("g"), expected=expected)
    assert total_messages(broker.bootstrap, topic, uid("g")) == expected
    events = dump.events()
    per_run = check_exactly_once_in_order(events)
    assert set(per_run) == set(first["runs"]) | set(second["runs"])
    assert all(len(s) == 52 for s in per_run.values())
