"""Versioned operator state (processors/state_format.py): every serialized state carries its format
version; a v1 state (no version field, the run state's ``version`` since renamed) loads into the
current state; a newer one is a typed error that the runtime sends to the DLQ."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.proc_factory import STATE_NOW, RunScript, state_scenario
from tripwire.processors import STATE_VERSION, Pipeline, StateError, StateVersionError
from tripwire.processors.tables import pack, unpack

pytestmark = pytest.mark.unit

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "proc_state" / "v1_pipeline.json"


def _current() -> Pipeline:
    p = Pipeline()
    for now, e in state_scenario():
        p.process(e, now)
    p.tick(STATE_NOW + 600)  # the fixture was taken after the same tick
    return p


def test_every_stage_state_carries_the_format_version() -> None:
    p = _current()
    for stage in (p.runs, p.agents, p.credentials):
        assert p.states[stage.name]  # the scenario leaves state in every stage
        for st in p.states[stage.name].values():
            assert json.loads(stage.dumps(st))["v"] == STATE_VERSION == 2


def test_a_v1_snapshot_loads_into_the_current_state() -> None:
    data = V1.read_bytes()
    v1_runs = {k: json.loads(v)["run"] for k, v in json.loads(data)["runs"].items()}
    assert all("v" not in json.loads(v) for v in json.loads(data)["runs"].values())
    assert sorted(r["version"] for r in v1_runs.values()) == [1, 1, 1]  # the field renamed in v2
    old = Pipeline.from_bytes(data)
    assert {k: st.run.summary_version for k, st in old.states["runs"].items()} == {k: 1 for k in v1_runs}
    assert old.to_bytes() == _current().to_bytes()  # the same state the current code builds


def test_a_v1_changelog_record_loads_and_keeps_counting() -> None:
    # A table value / changelog record as the v1 worker wrote it: partition + state bytes.
    p = Pipeline()
    done = next(k for k, st in _current().states["runs"].items() if st.run.outcome == "success")
    record = pack(5, json.loads(V1.read_bytes())["runs"][done].encode())
    partition, raw = unpack(record)
    state = p.runs.loads(raw)
    assert partition == 5 and state.run.summary_version == 1 and state.run.outcome == "success"
    late = RunScript(11)  # the same run: a late event revises its summary
    late.start(max_tool_calls=10)
    late.model(0.1)
    late.tool()
    late.finish()
    extra = late.tool(name="late_tool")
    res = p.runs.process(state, extra, STATE_NOW + 700)
    [summary] = res.outputs.runs
    assert summary.version == 2 and state.run.summary_version == 2


def test_a_newer_version_is_a_typed_error() -> None:
    p = _current()
    st = next(iter(p.states["agents"].values()))
    newer = json.loads(p.agents.dumps(st)) | {"v": 3}
    with pytest.raises(StateVersionError) as info:
        p.agents.loads(json.dumps(newer).encode())
    assert isinstance(info.value, StateError)
    assert str(info.value) == (
        "agents state in format v3, newer than this worker reads (v1..v2): "
        "a newer tripwire wrote it; upgrade this worker"
    )


@pytest.mark.parametrize("bad", [b"[1]", b'{"v": "two"}', b'{"v": 0}'])
def test_a_malformed_state_is_a_state_error(bad: bytes) -> None:
    with pytest.raises(StateError):
        Pipeline().runs.loads(bad)


class _Table:
    def __init__(self, name: str, values: dict[bytes, bytes]) -> None:
        self.values = values
        self.data: dict[bytes, bytes] = values
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"state-{name}-changelog")

    def get(self, key: bytes) -> bytes | None:
        return self.values.get(key)


def test_the_runtime_sends_an_event_on_newer_state_to_the_dlq() -> None:
    # A worker of an older release meets a record a newer one wrote: the event goes to the DLQ
    # with the error, and the worker keeps running (handle returns).
    from tripwire.processors.agents import Runtime
    from tripwire.processors.config import ProcessorConfig
    from tripwire.processors.topics import RuntimeTopics
    from tripwire.schemas import DeadLetter

    r = RunScript(21)
    event = r.start()
    newer = pack(0, json.dumps({"v": STATE_VERSION + 1, "run": {"run_id": r.run_id}}).encode())
    tables = {name: _Table(name, {}) for name in ("runs", "agents", "credentials")}
    tables["runs"].values[r.run_id.encode()] = newer
    config = ProcessorConfig(processing_guarantee="at_least_once")
    app: Any = SimpleNamespace(consumer_generation_id=1)
    runtime = Runtime(app, config, RuntimeTopics.from_config(config), tables, Pipeline())
    msg = SimpleNamespace(topic=runtime.topics.events, partition=0, offset=41, key=r.run_id.encode(), value=None)
    msg.value = runtime.codec.encode(event)
    runtime.handle(runtime.pipeline.runs, msg, validate=True)
    [(topic, _key, value, _partition)] = runtime.pending[None]
    dl = runtime.codec.decode(value)
    assert topic == runtime.topics.dlq and isinstance(dl, DeadLetter)
    assert (dl.stage, dl.error_type, dl.offset) == ("process", "StateVersionError", 41)
    assert dl.reason.startswith("runs: runs state in format v3, newer than this worker reads (v1..v2)")
