"""The validating sink's SQL checks (``sinks/_avro_checks.py``) against its Python path.

The same good and hostile events (every model constraint and every event limit, on every event
type) go through a sink whose events are decoded and checked by ClickHouse and through a sink
forced onto the Python decoder; the stored rows and the dead letters (stage, error type, reason)
must be identical. A check missing from the SQL lets its hostile event into an event table on the
ClickHouse path only, and this test fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import uid
from tests.store_helpers import chdb_url
from tripwire.schemas import EventLimits, decode, encode, topic_names
from tripwire.schemas.samples import sample_run
from tripwire.sinks import migrate, open_store
from tripwire.sinks.batching import BatchingSink, Message

pytestmark = pytest.mark.integration

# every limit the cases rely on set here (tests/conftest.py widens the age limit in the environment);
# small texts keep the events small
LIMITS = EventLimits(max_text_chars=2_000, max_nesting=8, max_id_chars=64, max_age_days=180.0, max_ahead_s=3_600.0)
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
RECEIVED_MS = int((NOW + timedelta(minutes=5)).timestamp() * 1000)
BAD_UTF8 = "VVVVVVVVVVVV"  # replaced by invalid UTF-8 bytes of the same length in the encoded value


def _base() -> dict[str, Any]:
    """One event of each type, dated NOW (within every window)."""
    out = {}
    for e in sample_run(7, steps=2):
        shift = NOW - e.ts_start
        out[type(e).__name__] = e.model_copy(update={"ts_start": e.ts_start + shift, "ts_end": e.ts_end + shift})
    return out


def _cases() -> list[tuple[str, Any]]:
    """(label, event) pairs: good ones, and one per broken rule (built without validation)."""
    b = _base()
    mc, tc, rs, rf, ad = b["ModelCall"], b["ToolCall"], b["RunStarted"], b["RunFinished"], b["ApprovalDecision"]
    day = timedelta(days=1)
    edge = datetime.fromtimestamp(RECEIVED_MS / 1000, UTC) + timedelta(seconds=LIMITS.max_ahead_s)

    def m(e: Any, **kw: Any) -> Any:
        return e.model_copy(update=kw)

    cases: list[tuple[str, Any]] = [(f"good {k}", v) for k, v in b.items()]
    cases += [
        # the models' constraints (decode: "invalid")
        ("trace_id not hex", m(mc, trace_id="zz" * 16)),
        ("trace_id all zeros", m(mc, trace_id="0" * 32)),
        ("trace_id upper case", m(mc, trace_id="AB" * 16)),
        ("trace_id final newline", m(mc, trace_id="a" * 31 + "\n")),
        ("span_id short", m(mc, span_id="abc")),
        ("parent_span_id bad", m(tc, parent_span_id="x" * 16)),
        ("event_id not a uuid", m(mc, event_id="not-a-uuid")),
        ("tenant empty", m(mc, tenant="")),
        ("run_id empty", m(tc, run_id="")),
        ("tool_name empty", m(tc, tool_name="")),
        ("request_model empty", m(mc, request_model="")),
        ("seq negative", m(mc, seq=-1)),
        ("input_tokens negative", m(mc, input_tokens=-5)),
        ("cost NaN", m(mc, cost_usd=math.nan)),
        ("cost inf", m(mc, cost_usd=math.inf)),
        ("cost negative", m(mc, cost_usd=-0.01)),
        ("ts_end before ts_start", m(mc, ts_end=mc.ts_start - timedelta(seconds=1))),
        ("schema_version 0", m(mc, schema_version=0)),
        ("args_hash not hex", m(tc, args_hash="g" * 64)),
        ("RunStarted seq 1", m(rs, seq=1)),
        ("RunStarted max_cost NaN", m(rs, max_cost_usd=math.nan)),
        ("RunStarted max_steps negative", m(rs, max_steps=-1)),
        ("RunFinished last_seq != seq", m(rf, last_seq=rf.seq + 1)),
        ("invalid UTF-8", m(mc, agent_version=BAD_UTF8)),
        # the event limits (validate: "LimitExceeded")
        ("cost 1e308", m(mc, cost_usd=1e308)),
        ("cost 1e12", m(mc, cost_usd=1e12)),
        ("cost at the limit", m(mc, cost_usd=LIMITS.max_cost_per_call_usd)),
        ("cost just over", m(mc, cost_usd=math.nextafter(LIMITS.max_cost_per_call_usd, math.inf))),
        ("year 9999", m(mc, ts_start=datetime(9999, 1, 1, tzinfo=UTC), ts_end=datetime(9999, 1, 1, 0, 1, tzinfo=UTC))),
        ("year 1970", m(mc, ts_start=datetime(1970, 1, 1, tzinfo=UTC), ts_end=datetime(1970, 1, 1, 0, 1, tzinfo=UTC))),
        ("older than max_age", m(tc, ts_start=NOW - 181 * day, ts_end=NOW - 181 * day)),
        ("2 h ahead", m(mc, ts_start=NOW + timedelta(hours=2), ts_end=NOW + timedelta(hours=2))),
        ("just inside ahead", m(mc, ts_start=edge - timedelta(seconds=1), ts_end=edge)),  # the edge itself is in
        ("just outside ahead", m(mc, ts_start=edge + timedelta(microseconds=1), ts_end=edge + timedelta(seconds=1))),
        ("duration 2 days", m(mc, ts_start=NOW - 2 * day, ts_end=NOW)),
        ("duration at the limit", m(mc, ts_start=NOW - day, ts_end=NOW)),
        ("seq 2**62", m(mc, seq=2**62)),
        ("seq at max_seq", m(mc, seq=LIMITS.max_seq)),
        ("seq over max_seq", m(tc, seq=LIMITS.max_seq + 1)),
        ("tenant over max_id", m(mc, tenant="t" * 65)),
        ("tenant at max_id", m(mc, tenant="t" * 64)),
        ("agent_id multibyte at max_id", m(mc, agent_id="é" * 64)),
        ("agent_id control char", m(mc, agent_id="agent\x01")),
        ("agent_id C1 control", m(tc, agent_id="agent\x85")),
        ("agent_id DEL", m(tc, agent_id="agent\x7f")),
        ("agent_id pound sign", m(mc, agent_id="agent£")),
        ("principal control char", m(mc, principal="user\n")),
        ("prompt over max_text", m(mc, prompt="p" * 2_001)),
        ("prompt at max_text", m(mc, prompt="p" * 2_000)),
        ("output_tokens over per call", m(mc, output_tokens=LIMITS.max_tokens_per_call + 1)),
        ("args nested too deep", m(tc, args="[" * 9 + "]" * 9)),
        ("args many shallow brackets", m(tc, args="[" + ",".join(["{}"] * 20) + "]")),
        ("args brackets inside strings", m(tc, args='{"a": "' + "[" * 20 + '"}')),
        ("args over max_text", m(tc, args='"' + "a" * 2_000 + '"')),
        ("tool_call_id over max_id", m(tc, tool_call_id="c" * 65)),
        ("blocked_reason over max_text", m(tc, blocked_reason="r" * 2_001)),
        ("RunStarted max_steps over max_seq", m(rs, max_steps=LIMITS.max_seq + 1)),
        ("RunStarted max_tool_calls over", m(rs, max_tool_calls=LIMITS.max_seq + 1)),
        ("RunStarted max_cost_usd 1e9", m(rs, max_cost_usd=1e9)),
        ("RunStarted max_prompt_tokens over", m(rs, max_prompt_tokens=LIMITS.max_tokens_per_run + 1)),
        ("RunStarted conversation_id over", m(rs, conversation_id="c" * 65)),
        ("RunFinished last_seq over max_seq", m(rf, seq=LIMITS.max_seq + 1, last_seq=LIMITS.max_seq + 1)),
        ("ApprovalDecision approver over", m(ad, approver="a" * 65)),
        ("ApprovalDecision reason over", m(ad, reason="r" * 2_001)),
    ]
    return cases


def _value(event: Any) -> bytes:
    data = encode(event, validate=False)
    if BAD_UTF8.encode() in data:
        data = data.replace(BAD_UTF8.encode(), b"\xff\xfe" * (len(BAD_UTF8) // 2))
    return data


@pytest.fixture
def two_stores() -> Iterator[tuple[Any, Any]]:
    dbs = [uid("sqlchk"), uid("pychk")]
    stores = [open_store(chdb_url(db)) for db in dbs]
    try:
        for s in stores:
            migrate(s)
        yield stores[0], stores[1]
    finally:
        for s, db in zip(stores, dbs, strict=True):
            s.command(f"DROP DATABASE IF EXISTS {db}")
            s.close()


def _contents(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in ("model_calls", "tool_calls", "run_events"):
        cols = [
            r[0]
            for r in store.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
                "AND name != 'inserted_at' ORDER BY position",
                {"t": table},
            ).rows
        ]
        out[table] = store.query(f"SELECT {', '.join(cols)} FROM {table} ORDER BY src_offset").rows
    out["dead_letters"] = store.query(
        "SELECT src_offset, stage, error_type, reason FROM dead_letters ORDER BY src_offset"
    ).rows
    return out


def test_sql_checks_store_and_dead_letter_what_the_python_path_does(two_stores: tuple[Any, Any]) -> None:
    sql_store, py_store = two_stores
    topics = topic_names()
    cases = _cases()
    # every case is different enough to be its own event (the event-id guard keeps one row per id)
    msgs = []
    for off, (_label, e) in enumerate(cases):
        if "uuid" not in _label:
            e = e.model_copy(update={"event_id": f"{off:08x}-0000-4000-8000-000000000000"})
        msgs.append(Message(topics.events, 0, off, None, _value(e), RECEIVED_MS))
    fast = BatchingSink(sql_store, topics, limits=LIMITS)
    python = BatchingSink(py_store, topics, limits=LIMITS, decoder=decode)
    assert fast.decodes_in_clickhouse and not python.decodes_in_clickhouse
    for sink in (fast, python):
        for msg in msgs:
            sink.add(msg)
        assert sink.flush() == {(topics.events, 0): len(msgs)}
    assert fast.stats.avro_fallbacks == 0  # every batch went through the SQL checks
    got, want = _contents(sql_store), _contents(py_store)
    labels = {i: label for i, (label, _) in enumerate(cases)}
    for table in want:
        assert [labels[r[-1] if table != "dead_letters" else r[0]] for r in got[table]] == [
            labels[r[-1] if table != "dead_letters" else r[0]] for r in want[table]
        ], table
        assert got[table] == want[table], table
    dead = {labels[r[0]]: (r[1], r[2]) for r in want["dead_letters"]}
    stored = {labels[r[-1]] for t in ("model_calls", "tool_calls", "run_events") for r in want[t]}
    # the cases say what they are: each hostile one is dead-lettered, each edge one is stored
    for label, _ in cases:
        edge = label.startswith("good") or any(
            w in label for w in ("at the limit", "at max", "just inside", "many shallow", "inside strings", "pound")
        )
        assert (label in stored) == edge, label
        assert (label in dead) == (not edge), label
    assert dead["trace_id not hex"] == ("decode", "DecodeError")
    assert dead["cost 1e308"] == ("validate", "LimitExceeded")
    assert fast.stats.dead_lettered == python.stats.dead_lettered == len(dead)
    # the SQL is a filter, not a copy of the Python path: it flags the hostile rows and only these
    # edges (many brackets but shallow, brackets in strings, within 1 s / 1 ms of a time limit)
    conservative = ["args many shallow brackets", "args brackets inside strings", "just inside ahead"]
    conservative.append("duration at the limit")
    assert fast.stats.judged_in_python == len(dead) + len(conservative)
    assert python.stats.judged_in_python == 0


def test_a_rejected_avro_batch_keeps_its_dead_letters_beside_later_python_ones(two_stores: tuple[Any, Any]) -> None:
    """A truncated body makes ClickHouse reject its Avro batch (the Python path takes it over); a
    message at a higher offset that never reached the Avro path (bad marker) was dead-lettered first
    in the same flush. Both dead letters are stored (the fault suite's hostile burst found the first
    one dropped as if already stored)."""
    store, _ = two_stores
    topics = topic_names()
    good = _value(_base()["ModelCall"])
    values = [good, good[: len(good) // 2], b"\x00" + good[1:]]
    sink = BatchingSink(store, topics, limits=LIMITS)
    for off, v in enumerate(values):
        sink.add(Message(topics.events, 0, off, None, v, RECEIVED_MS))
    assert sink.flush() == {(topics.events, 0): 3}
    assert sink.stats.avro_fallbacks == 1
    dead = store.query("SELECT src_offset, stage, reason FROM dead_letters ORDER BY src_offset").rows
    assert [(int(o), st, r) for o, st, r in dead] == [(1, "decode", "truncated"), (2, "decode", "bad_marker")]
    assert store.query("SELECT src_offset FROM model_calls").rows == [(0,)]
