"""Pipeline and policy: snapshots, the documented defaults, bad policy files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proc_factory import RunScript
from tripwire.processors import Pipeline, PolicyError, StateError, default_policy, load_policy

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def test_snapshot_mid_stream_gives_the_same_outputs() -> None:
    runs = [RunScript(i) for i in range(3)]
    for r in runs:
        r.start(max_tool_calls=1)
        r.model(0.1)
        r.tool(args="a")
        r.tool(args="a")
        r.finish()
    events = [e for r in runs for e in r.events]
    ref = Pipeline()
    ref_out = [ref.process(e, NOW) for e in events]
    p = Pipeline()
    out = []
    for e in events:
        p = Pipeline.from_bytes(p.to_bytes())
        out.append(p.process(e, NOW))
    assert [(o.runs, o.alerts) for o in out] == [(o.runs, o.alerts) for o in ref_out]
    assert sum(len(o.runs) for o in out) == 3 and sum(len(o.alerts) for o in out) == 3


def test_duplicates_are_counted_and_not_forwarded() -> None:
    r = RunScript(1)
    r.tool(args="x")
    p = Pipeline()
    p.process(r.events[0], NOW)
    assert not p.process(r.events[0], NOW) and p.duplicates == 1


def test_defaults_are_documented_values() -> None:
    pol = default_policy()
    te = pol.detectors.tool_error_rate
    assert (te.window_s, te.threshold, te.min_calls) == (300, 0.10, 20)
    assert pol.latency_windows.window_s == 60 and pol.latency_windows.relative_accuracy == 0.01


def test_policy_file_overrides_only_what_it_sets(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("detectors:\n  runaway_loop:\n    repeats: 3\n")
    pol = load_policy(f)
    assert pol.detectors.runaway_loop.repeats == 3 and pol.detectors.runaway_loop.severity == "critical"


@pytest.mark.parametrize(
    "text", ["detectors:\n  runaway_loop:\n    repeats: one\n", "- a list\n", "runs: {bogus: 1}\n"]
)
def test_bad_policy_is_a_typed_error(tmp_path: Path, text: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(PolicyError):
        load_policy(f)


def test_bad_snapshot_is_a_typed_error() -> None:
    with pytest.raises(StateError):
        Pipeline.from_bytes(b"{not json")


def test_operators_import_no_runtime_libraries() -> None:
    """Principle 1: the operators (the package's public names) load without faust, Kafka or ClickHouse."""
    import subprocess
    import sys

    code = (
        "import sys, tripwire.processors as p; from tripwire.processors import Pipeline; Pipeline(); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('faust', 'mode', 'aiokafka', 'confluent_kafka', 'clickhouse_connect', 'chdb', 'rocksdict')); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
