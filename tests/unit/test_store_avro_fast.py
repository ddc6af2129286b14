"""The Avro container the trusted sink hands ClickHouse: standard Avro any reader decodes, with
the source position appended to each record."""

from __future__ import annotations

import io

import pytest
from fastavro import reader

from tests import store_helpers as h
from tripwire.schemas import encode
from tripwire.schemas.wire import avro_string
from tripwire.schemas.wire import parse_single_object as parse_header
from tripwire.sinks._avro_fast import AvroPlans

pytestmark = pytest.mark.unit


def test_container_decodes_with_a_standard_reader_and_carries_the_source() -> None:
    plans = AvroPlans()
    recs = [h.run_started("r9"), h.approval("r9", 1, decision="denied", reason="nope")]
    out = []
    for off, rec in enumerate(recs):
        data = encode(rec)
        fp, index, start = parse_header(data)  # type: ignore[misc]
        branch = plans.branch(fp, index)
        assert branch is not None and branch.table == "run_events"
        out.append((branch, branch.body(data, start, avro_string("topic-a"), 3, 100 + off)))
    for branch, body in out:
        decoded = list(reader(io.BytesIO(branch.container([body]))))
        assert len(decoded) == 1
        d = decoded[0]
        assert (d["src_topic"], d["src_partition"], d["run_id"]) == ("topic-a", 3, "r9")
        assert d["event_type"] in ("run_started", "approval_decision")
        assert branch.columns[-3:] == ("src_topic", "src_partition", "src_offset")
        assert "event_type" in branch.columns and "schema_version" not in branch.columns
    branch = out[0][0]
    assert branch.body(b"", 0, b"", 0, 0) == branch.suffix + b"\x00\x00"  # empty topic, partition 0, offset 0


def test_same_batch_gives_the_same_container_bytes() -> None:
    plans = AvroPlans()
    data = encode(h.model_call())
    fp, index, start = parse_header(data)  # type: ignore[misc]
    b = plans.branch(fp, index)
    assert b is not None and b.table == "model_calls"
    body = b.body(data, start, avro_string("t"), 0, 1)
    assert b.container([body, body]) == b.container([body, body])


def test_unknown_fingerprint_or_branch_has_no_plan() -> None:
    plans = AvroPlans()
    assert plans.branch(b"\x00" * 8, 0) is None
    data = encode(h.model_call())
    fp, _index, _ = parse_header(data)  # type: ignore[misc]
    assert plans.branch(fp, 99) is None
    summary = encode(h.run_summary())
    assert plans.branch(summary[2:10], 0) is None  # not an events schema
