"""The Quix Streams peer of ``tripwire process`` (runs + windows stages), for ``bench_processors``.

Run by the peer's own interpreter (``python benchmarks/_quix_peer.py``): quixstreams 3.28 pins
confluent-kafka < 2.13 and pydantic < 2.14, which conflict with tripwire's pins, so it lives in its
own virtualenv (see ``benchmarks/README.md``). Configuration is the environment (``PEER_*``).

Same work as tripwire's stages on the same backlog: each value is the single-object Avro bytes of
the events topic, decoded with fastavro and the writer's record schema (header check, union branch,
``schemaless_reader``: what tripwire's codec does before validation); per-run state in RocksDB (event
count, cost, tokens, tool calls, seq tracking with missing seqs, dedup of seqs) with a summary sent
when the run finishes; model and tool calls regrouped by agent into 1-minute tumbling windows (count,
errors, cost, DDSketch bins through tripwire's ``LatencySketch`` mapping) emitted when they close;
events regrouped by credential into per-credential state (agents seen). Exactly-once, 0.25 s commits.
"""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from typing import Any

from fastavro import schemaless_reader
from quixstreams import Application, State
from quixstreams.models.serializers import Deserializer

from tripwire.processors.sketch import LatencySketch
from tripwire.schemas import default_catalog

_MAPPING = LatencySketch().mapping


class SingleObjectAvro(Deserializer):
    """Single-object Avro value -> record dict (plus ``_t``, the record name), fastavro record schema."""

    def __init__(self) -> None:
        super().__init__()
        sv = default_catalog().current("events")
        self.fingerprint = sv.fingerprint
        self.branches = [(n.rsplit(".", 1)[-1], s) for n, s in zip(sv.branch_names, sv.branches, strict=True)]

    def __call__(self, value: bytes, ctx: Any) -> Any:
        if value[:2] != b"\xc3\x01" or value[2:10] != self.fingerprint:
            raise ValueError("not a single-object value of the events schema")
        name, schema = self.branches[value[10] >> 1]  # one-byte zig-zag branch index
        buf = io.BytesIO(value)
        buf.seek(11)
        rec: dict[str, Any] = schemaless_reader(buf, schema, None)  # type: ignore[assignment]
        rec["_t"] = name
        return rec


def fold_run(e: dict[str, Any], state: State) -> dict[str, Any] | None:
    """Per-run state; the summary when the run finishes."""
    s = state.get("run") or {"events": 0, "cost": 0.0, "in": 0, "out": 0, "tools": 0, "models": 0, "seqs": []}
    seq = e["seq"]
    if seq in s["seqs"]:
        return None  # a duplicate
    s["seqs"].append(seq)
    s["events"] += 1
    t = e["_t"]
    if t == "ModelCall":
        s["models"] += 1
        s["cost"] += e["cost_usd"] or 0.0
        s["in"] += e["input_tokens"]
        s["out"] += e["output_tokens"]
    elif t == "ToolCall":
        s["tools"] += 1
    elif t == "RunStarted":
        s["agent"] = e["agent_id"]
    state.set("run", s)
    if t != "RunFinished":
        return None
    top = max(s["seqs"])
    seen = set(s["seqs"])
    return {
        "run_id": e["run_id"],
        "events": s["events"],
        "cost_usd": s["cost"],
        "input_tokens": s["in"],
        "output_tokens": s["out"],
        "tool_calls": s["tools"],
        "model_calls": s["models"],
        "missing_seqs": [i for i in range(top + 1) if i not in seen],
    }


def window_init(e: dict[str, Any]) -> dict[str, Any]:
    return {"count": 0, "errors": 0, "cost": 0.0, "bins": {}, "zero": 0}


def call_view(e: dict[str, Any]) -> dict[str, Any]:
    """What the per-agent windows need of a call (the regrouping topic carries JSON, no datetimes)."""
    ms = (e["ts_end"] - e["ts_start"]).total_seconds() * 1000.0
    return {"agent_id": e["agent_id"], "status": e["status"], "cost_usd": e.get("cost_usd"), "ms": ms}


def window_add(w: dict[str, Any], e: dict[str, Any]) -> dict[str, Any]:
    w["count"] += 1
    if e["status"] != "ok":
        w["errors"] += 1
    w["cost"] += e["cost_usd"] or 0.0
    ms = e["ms"]
    if ms > 0:
        k = str(_MAPPING.key(ms))
        w["bins"][k] = w["bins"].get(k, 0) + 1
    else:
        w["zero"] += 1
    return w


def agents_seen(e: dict[str, Any], state: State) -> None:
    agents = state.get("agents") or []
    if e["agent_id"] not in agents:
        agents.append(e["agent_id"])
        state.set("agents", agents)


def main() -> None:
    env = os.environ
    app = Application(
        broker_address=env["PEER_BOOTSTRAP"],
        consumer_group=env["PEER_GROUP"],
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=0.25,
        state_dir=env["PEER_STATE_DIR"],
        loglevel="WARNING",
    )
    events = app.topic(
        env["PEER_EVENTS_TOPIC"],
        key_deserializer="bytes",
        value_deserializer=SingleObjectAvro(),
        timestamp_extractor=lambda v, h, ts, tt: int(v["ts_end"].timestamp() * 1000),
    )
    prefix = env["PEER_GROUP"]
    runs_out = app.topic(f"{prefix}.runs", value_serializer="json")
    windows_out = app.topic(f"{prefix}.windows", value_serializer="json")

    sdf = app.dataframe(events)
    sdf.apply(fold_run, stateful=True).filter(lambda s: s is not None).to_topic(runs_out)
    calls = sdf.filter(lambda e: e["_t"] in ("ModelCall", "ToolCall")).apply(call_view)
    by_agent = calls.group_by(lambda e: e["agent_id"], name="agent")
    by_agent.tumbling_window(timedelta(minutes=1)).reduce(window_add, window_init).final().to_topic(windows_out)
    by_cred = sdf.filter(lambda e: e["credential_fingerprint"] is not None)
    by_cred = by_cred.apply(lambda e: {"cred": e["credential_fingerprint"], "agent_id": e["agent_id"]})
    by_cred = by_cred.group_by(lambda e: e["cred"], name="credential")
    by_cred.update(agents_seen, stateful=True)
    print(json.dumps({"peer": "started"}), flush=True)
    app.run()


if __name__ == "__main__":
    main()
