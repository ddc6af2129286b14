"""``tripwire sdk check-config`` and ``spool-status``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit._sdk_fixtures import make_tracer
from tripwire.cli import app
from tripwire.producers.spool import Spool

pytestmark = pytest.mark.unit


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "agent.yaml"
    good.write_text("agent:\n  name: a\n  max_steps: 3\nkafka:\n  sasl_password: hunter2\n")
    r = CliRunner().invoke(app, ["sdk", "check-config", str(good)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["agent"]["max_steps"] == 3
    assert "hunter2" not in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  max_steps: -3\n")
    r = CliRunner().invoke(app, ["sdk", "check-config", str(bad)])
    assert r.exit_code == 2
    assert "agent.max_steps" in r.output


def test_spool_status_counts_records_and_runs(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path / "t")
    for _ in range(3):
        with tracer.run() as run, run.tool_call("t"):
            pass
    tracer.close()
    captured = got.raw
    spool_dir = tmp_path / "spool"
    s = Spool(spool_dir, max_bytes=1 << 20, segment_bytes=512)
    for k, v in captured:
        s.append(k, v)
    s.close()
    r = CliRunner().invoke(app, ["sdk", "spool-status", str(spool_dir)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["records"], out["runs"], out["corrupt_records"], out["undecodable_records"]) == (9, 3, 0, 0)
    assert out["segments"] > 1
