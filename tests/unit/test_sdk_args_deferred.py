"""Tool args are hashed and redacted where the event is encoded (the delivery worker), never later than
that: whatever reaches the durable log, the overflow spool or the transport is redacted."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.unit._sdk_fixtures import Collected, make_tracer
from tripwire.producers import InvalidArgumentError, Tracer, TracerConfig
from tripwire.producers._args import PendingArgs
from tripwire.producers._encode import EventEncoder
from tripwire.producers.spool import Spool
from tripwire.schemas import ToolCall

STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
EMAIL = "jane.doe@example.org"
ARGS = {"note": f"mail {EMAIL}", "key": {"k": [f"pay {STRIPE}"]}, "n": 3}
REDACTED = '{"key":{"k":["pay [REDACTED:SECRET]"]},"n":3,"note":"mail [REDACTED:EMAIL]"}'
CANONICAL = json.dumps(ARGS, sort_keys=True, separators=(",", ":"))


def test_every_record_written_to_the_durable_log_and_the_overflow_spool_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    for name in ("append", "append_live"):
        original = getattr(Spool, name)

        def spy(self: Spool, key: bytes, value: bytes, _o: Any = original, _n: str = name) -> Any:
            with lock:
                written.append((_n, value))
            return _o(self, key, value)

        monkeypatch.setattr(Spool, name, spy)
    entered, release = threading.Event(), threading.Event()
    got = Collected()

    def sink(key: bytes, value: bytes) -> None:
        entered.set()
        assert release.wait(30)
        got.sink(key, value)

    # queue_max=1 and a sink that holds the worker: the first record goes through the durable log, the
    # rest spill from the agent thread to the overflow spool
    cfg = TracerConfig(agent={"name": "a"}, delivery={"spool_dir": tmp_path / "spool", "queue_max": 1})
    tracer = Tracer.in_process(sink, cfg)
    run = tracer.run(workflow="w")
    run.start()
    assert entered.wait(30)  # the worker holds RunStarted in the sink
    for _ in range(20):
        with run.tool_call("lookup", args=ARGS):
            pass
    run.finish()
    release.set()
    assert tracer.flush(30)
    tracer.close()
    lanes = {n for n, _ in written}
    assert lanes == {"append", "append_live"}
    assert all(STRIPE.encode() not in v and EMAIL.encode() not in v for _, v in written)
    tools = got.of(ToolCall)
    assert len(tools) == 20
    assert {t.args for t in tools} == {REDACTED}
    assert {t.args_hash for t in tools} == {hashlib.sha256(CANONICAL.encode()).hexdigest()}
    # the encoder draws a ToolCall's event_id: one per event, a version-4 UUID
    assert len({t.event_id for t in tools}) == 20
    assert all(uuid.UUID(t.event_id).version == 4 for t in tools)
    for f in (tmp_path / "spool").rglob("*"):
        if f.is_file():
            assert STRIPE.encode() not in f.read_bytes() and EMAIL.encode() not in f.read_bytes()


@pytest.mark.parametrize("on_agent_thread", [False, True])
def test_args_are_snapshotted_at_the_call(tmp_path: Path, on_agent_thread: bool) -> None:
    tracer, got = make_tracer(tmp_path, delivery={"encode_on_agent_thread": on_agent_thread})
    args: dict[str, Any] = {"note": f"mail {EMAIL}", "n": 1}
    with tracer.run() as run, run.tool_call("t", args=args):
        args["n"] = 2  # mutated by the tool after the call started
        args["extra"] = STRIPE
    tracer.close()
    (t,) = got.of(ToolCall)
    assert t.args == '{"n":1,"note":"mail [REDACTED:EMAIL]"}'
    assert t.args_hash == hashlib.sha256(b'{"n":1,"note":"mail ' + EMAIL.encode() + b'"}').hexdigest()


def test_log_tool_args_none_keeps_the_hash_only(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, logging={"log_tool_args": "none"})
    with tracer.run() as run, run.tool_call("t", args=ARGS):
        pass
    tracer.close()
    (t,) = got.of(ToolCall)
    assert (t.args, t.args_hash) == (None, hashlib.sha256(CANONICAL.encode()).hexdigest())


def test_a_custom_hook_runs_on_the_agent_thread(tmp_path: Path) -> None:
    threads: set[int] = set()

    def hook(text: str, *, field: str) -> str:
        threads.add(threading.get_ident())
        return text.replace("ord_1", "[ORDER]")

    tracer, got = make_tracer(tmp_path, redactor=hook)
    with tracer.run() as run, run.tool_call("t", args={"id": "ord_1"}):
        pass
    tracer.close()
    assert threads == {threading.get_ident()}
    (t,) = got.of(ToolCall)
    assert t.args == '{"id":"[ORDER]"}'


def test_pending_args_cannot_be_encoded_and_never_print() -> None:
    pending = PendingArgs(CANONICAL)
    assert STRIPE not in repr(pending) and EMAIL not in repr(pending)
    fields = {
        "event_id": "e",
        "run_id": "r",
        "span_id": "s",
        "parent_span_id": None,
        "ts_start": 0,
        "ts_end": 0,
        "seq": 0,
        "tool_name": "t",
        "tool_call_id": "s",
        "risk": "low",
        "args": pending,
        "args_hash": None,
        "status": "ok",
        "error_type": None,
        "idempotency_key": None,
        "approval_ref": None,
        "side_effect": False,
        "blocked_reason": None,
    }
    base = {
        "schema_version": 1,
        "tenant": "",
        "agent_id": "a",
        "agent_version": "",
        "workflow": "",
        "environment": "",
        "principal": None,
        "credential_fingerprint": None,
        "trace_id": "t",
    }
    with pytest.raises(AttributeError):
        EventEncoder().encode(ToolCall, fields, b"", base)


def test_args_that_are_not_valid_unicode_are_refused_at_the_call_site(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path)
    with tracer.run() as run, pytest.raises(InvalidArgumentError, match="lone surrogate"):
        run.tool_call("t", args={"s": "\ud800"})
    tracer.close()
    assert got.of(ToolCall) == []


class _Recorder:
    """A guard that lets every call run and keeps the requests; reads their args only if told to."""

    def __init__(self, read_args: bool) -> None:
        self.read_args = read_args
        self.requests: list[Any] = []
        self.args_seen: list[Any] = []

    def check(self, request: Any) -> Any:
        from tripwire.producers import ALLOW

        self.requests.append(request)
        if self.read_args:
            self.args_seen.append(request.args)
        return ALLOW

    def done(self, request: Any, status: str) -> None:
        return None


def _spy_args_redaction(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """(thread, method) of every redaction of the ARGS value or of its canonical JSON."""
    from tripwire.redaction import Redactor

    calls: list[tuple[int, str]] = []
    originals = {n: getattr(Redactor, n) for n in ("redact", "is_clean_json")}

    def redact(self: Redactor, value: Any, field: str = "") -> Any:
        if field == "args":
            calls.append((threading.get_ident(), "redact"))
        return originals["redact"](self, value, field)

    def is_clean_json(self: Redactor, text: str) -> bool:
        if text == CANONICAL:
            calls.append((threading.get_ident(), "is_clean_json"))
        return bool(originals["is_clean_json"](self, text))

    monkeypatch.setattr(Redactor, "redact", redact)
    monkeypatch.setattr(Redactor, "is_clean_json", is_clean_json)
    return calls


def test_a_guard_that_never_reads_the_args_costs_the_agent_thread_no_redaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_args_redaction(monkeypatch)
    guard = _Recorder(read_args=False)
    tracer, got = make_tracer(tmp_path, guard=guard)
    with tracer.run() as run:
        for _ in range(3):
            with run.tool_call("lookup", args=ARGS):
                pass
    tracer.close()
    assert len(guard.requests) == 3
    agent = threading.get_ident()
    assert calls and all(thread != agent for thread, _ in calls), calls  # redacted, by the delivery worker
    tools = got.of(ToolCall)
    assert [t.args for t in tools] == [REDACTED] * 3
    assert {t.args_hash for t in tools} == {hashlib.sha256(CANONICAL.encode()).hexdigest()}


def test_a_guard_that_reads_the_args_gets_them_redacted_once_and_the_event_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_args_redaction(monkeypatch)
    guard = _Recorder(read_args=True)
    tracer, got = make_tracer(tmp_path, guard=guard)
    with tracer.run() as run, run.tool_call("lookup", args=ARGS):
        pass
    tracer.close()
    expected = json.loads(REDACTED)
    assert guard.args_seen == [expected]  # redacted, never the raw args
    (request,) = guard.requests
    assert request.args is guard.args_seen[0]  # cached: read again, not redacted again
    agent = threading.get_ident()
    assert [thread for thread, _ in calls] == [agent, agent], calls  # is_clean_json + redact, on the agent thread
    (t,) = got.of(ToolCall)
    assert t.args == REDACTED  # the worker encoded what the guard's read produced
    assert STRIPE not in repr(request) and EMAIL not in repr(request)
    with pytest.raises(AttributeError):
        request.args = ARGS  # type: ignore[misc]


def test_canonical_json_is_the_standard_librarys_text_and_refuses_what_it_refuses() -> None:
    import random

    from tripwire.producers._runtime import canonical_json

    rng = random.Random(7)
    chars = [chr(i) for i in range(0x80)] + ["é", "€", "😀", "\u2028", "\ufeff", "\x85"]
    for _ in range(2000):  # orjson writes it: the same text as json for strings, ints, floats >= 1e-4, nesting
        s = "".join(rng.choice(chars) for _ in range(rng.randint(0, 10)))
        value = {s: [s, rng.randint(-(2**62), 2**62), rng.uniform(1e-4, 1e15), None, True, {"k": s[::-1], "": []}]}
        assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # what orjson refuses takes the standard library's path, with its text
    assert canonical_json({2: "b", 1: "a"}) == '{"1":"a","2":"b"}'
    assert canonical_json({"n": 2**70}) == '{"n":1180591620717411303424}'
    for bad in ({"x": float("nan")}, {"x": [float("inf")]}, {"x": {1, 2}}, {"x": b"raw"}, {"x": object()}):
        with pytest.raises(InvalidArgumentError, match="JSON-serializable"):
            canonical_json(bad)
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidArgumentError):
        canonical_json(cyclic)
    assert canonical_json({"id": uuid.UUID(int=1)}) == '{"id":"00000000-0000-0000-0000-000000000001"}'
