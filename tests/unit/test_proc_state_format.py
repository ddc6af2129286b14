"""Versioned operator state (processors/state_format.py): every serialized state carries its format
version; a v1 state (no version field, the run state's ``version`` since renamed) and a v3 one (JSON,
event ids and seqs as lists) load into the current state; a newer one is a typed error that the
runtime sends to the DLQ."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.proc_factory import STATE_NOW, RunScript, state_scenario
from tripwire.processors import STATE_VERSION, Pipeline, StateError, StateVersionError
from tripwire.processors.state_format import peek_due, read
from tripwire.processors.tables import pack, unpack

pytestmark = pytest.mark.unit

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "proc_state" / "v1_pipeline.json"
# format v3, written by commit bfd72e1 (the last JSON format) from tests.proc_factory.state_scenario
V3 = V1.with_name("v3_pipeline.json")


def _fields(snapshot: bytes) -> dict[str, dict[str, Any]]:
    """stage -> key -> the fields of its state as stored (format version under "v")."""
    p = Pipeline.from_bytes(snapshot)
    out: dict[str, dict[str, Any]] = {}
    for stage in (p.runs, p.agents, p.credentials):
        out[stage.name] = {}
        for k, st in p.states[stage.name].items():
            v, fields = read(stage.dumps(st))
            out[stage.name][k] = {"v": v, **fields}
    return out


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
            assert read(stage.dumps(st))[0] == STATE_VERSION == 4


def test_a_v1_snapshot_loads_into_the_current_state() -> None:
    data = V1.read_bytes()
    v1_runs = {k: json.loads(v)["run"] for k, v in json.loads(data)["runs"].items()}
    assert all("v" not in json.loads(v) for v in json.loads(data)["runs"].values())
    assert sorted(r["version"] for r in v1_runs.values()) == [1, 1, 1]  # the field renamed in v2
    old = Pipeline.from_bytes(data)
    assert {k: st.run.summary_version for k, st in old.states["runs"].items()} == {k: 1 for k in v1_runs}
    # the same state the current code builds, but for the latency windows' revision fields (v3): the
    # windows a v1/v2 worker closed are final (their aggregates are gone), the current code's revisable
    now = _fields(_current().to_bytes())
    migrated = _fields(old.to_bytes())
    for snap in (now, migrated):
        for state in snap["agents"].values():
            for field in ("c", "ch", "final"):
                state["data"]["lw"].pop(field)
    assert migrated == now
    lws = [v["data"]["lw"] for v in _fields(old.to_bytes())["agents"].values()]
    assert all(lw["c"] == {} and lw["ch"] == [] and lw["final"] == lw["closed_upto"] for lw in lws)


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
    newer = p.agents.dumps(st)
    newer = newer[:1] + bytes([5]) + newer[2:]  # the header's version byte
    with pytest.raises(StateVersionError) as info:
        p.agents.loads(newer)
    assert isinstance(info.value, StateError)
    assert str(info.value) == (
        "agents state in format v5, newer than this worker reads (v1..v4): "
        "a newer tripwire wrote it; upgrade this worker"
    )


@pytest.mark.parametrize("bad", [b"[1]", b'{"v": "two"}', b'{"v": 0}', b"\x00\x04", b"\x00\x04" + bytes(8) + b"\xc1"])
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
    assert dl.reason.startswith("runs: runs state in format v5, newer than this worker reads (v1..v4)")


def test_a_v3_snapshot_loads_into_the_same_state_the_current_code_builds() -> None:
    # v3 -> v4: JSON becomes binary; a run's event_ids and seqs lists become its bounded SeqTracker
    data = V3.read_bytes()
    v3_runs = {k: json.loads(v)["run"] for k, v in json.loads(data)["runs"].items()}
    assert all(json.loads(v)["v"] == 3 for v in json.loads(data)["runs"].values())
    assert sorted(len(r["event_ids"]) for r in v3_runs.values()) == [2, 4, 7]
    migrated = _fields(data)
    assert migrated == _fields(_current().to_bytes())
    runs = Pipeline.from_bytes(data).states["runs"]
    assert sorted((len(st.run.seqs), st.run.seqs.low) for st in runs.values()) == [(2, 2), (4, 4), (7, 7)]


def test_a_v3_changelog_record_migrates_and_dedups_by_seq() -> None:
    p = Pipeline()
    done = next(k for k, st in _current().states["runs"].items() if st.run.outcome == "success")
    partition, raw = unpack(pack(3, json.loads(V3.read_bytes())["runs"][done].encode()))
    state = p.runs.loads(raw)
    assert partition == 3 and state.run.summary_version == 1 and len(state.run.seqs) == 4
    again = RunScript(11)  # the same run's events: duplicates by seq
    again.start(max_tool_calls=10)
    assert p.runs.process(state, again.events[0], STATE_NOW + 700).applied is False


def test_the_header_tells_when_a_key_is_due_without_decoding() -> None:
    p = _current()
    for stage in (p.runs, p.agents, p.credentials):
        for st in p.states[stage.name].values():
            assert peek_due(pack(2, stage.dumps(st)), 2) == (True, stage.due(st))
    assert peek_due(b'{"v":3}') == (False, None)
    closed = next(st for st in p.states["runs"].values() if st.run.closed)
    assert p.runs.due(closed) == closed.run.closed_at + p.policy.runs.closed_retention_s
