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
