"""``tripwire sdk spool-replay`` delivers a spool left behind by an agent to the real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import create_topics, uid
from tests.integration._sdk_kafka_helpers import check_exactly_once_in_order, read_topic
from tripwire.cli import app
from tripwire.producers import Tracer, TracerConfig
from tripwire.producers.spool import Spool, read_all

pytestmark = pytest.mark.integration


def test_spool_replay_command(kafka_bootstrap: str, tmp_path: Path) -> None:
    got: list[tuple[bytes, bytes]] = []
    tracer = Tracer.in_process(
        lambda k, v: got.append((k, v)),
        TracerConfig(agent={"name": "a"}, delivery={"spool_dir": tmp_path / "unused"}),
    )
    for _ in range(4):
        with tracer.run() as run:
            for i in range(25):
                with run.tool_call("t", args={"i": i}):
                    pass
    tracer.close()
    spool_dir = tmp_path / "left-behind"
    s = Spool(spool_dir, max_bytes=1 << 24, segment_bytes=4096)
    for k, v in got:
        s.append(k, v)
    s.close()

    topic = uid("t_sdk_cli")
    create_topics(kafka_bootstrap, {topic: 3})
    r = CliRunner().invoke(
        app,
        ["sdk", "spool-replay", str(spool_dir), "--bootstrap", kafka_bootstrap, "--topic", topic, "--timeout", "30"],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert (out["complete"], out["replayed"], out["dropped"]) == (True, 108, 0)
    assert read_all(spool_dir) == []
    dump = read_topic(kafka_bootstrap, topic, uid("g"), expected=108)
    events = dump.events()
    assert len(events) == 108
    assert len(check_exactly_once_in_order(events)) == 4
