"""The SDK against the real broker: concurrency, ordering, exactly-once, redaction on the wire."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.helpers import create_topics, uid
from tests.integration._sdk_kafka_helpers import check_exactly_once_in_order, read_topic, total_messages
from tripwire.producers import Tracer, TracerConfig
from tripwire.schemas import ModelCall, RunFinished, RunStarted, ToolCall

pytestmark = pytest.mark.integration


def _tracer(bootstrap: str, topic: str, spool: Path, **extra) -> Tracer:
    cfg = TracerConfig(
        tenant="acme",
        agent={"name": "refund-assistant"},
        kafka={"bootstrap": bootstrap, "topic": topic},
        delivery={"spool_dir": spool, **extra.pop("delivery", {})},
        **extra,
    )
    return Tracer(cfg)


def test_threads_and_tasks_20k_events_arrive_once_in_seq_order(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = uid("t_sdk")
    create_topics(kafka_bootstrap, {topic: 6})
    tracer = _tracer(kafka_bootstrap, topic, tmp_path / "spool")
    shared = tracer.run(workflow="shared")
    shared.start()
    start = threading.Barrier(5)

    def worker(n: int) -> None:
        start.wait(timeout=30)
        with tracer.run(workflow=f"thread-{n}") as run:
            for i in range(2998):
                if i % 2:
                    with run.model_call(provider="openai", model="gpt-4.1-mini") as call:
                        call.record_usage(input_tokens=10, output_tokens=2)
                else:
                    with run.tool_call("lookup", args={"i": i, "thread": n}):
                        pass
                if i < 500:  # 500 tool calls per thread into the one shared run, interleaved
                    with shared.tool_call("shared.tool", args={"thread": n, "i": i}):
                        pass

    async def task(n: int) -> None:
        async with tracer.run(workflow=f"task-{n}") as run:
            for i in range(2997):
                async with run.tool_call("async.tool", args={"i": i}):
                    if i % 100 == 0:
                        await asyncio.sleep(0)

    async def both() -> None:
        await asyncio.gather(task(0), task(1))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    start.wait(timeout=30)
    asyncio.run(both())
    for t in threads:
        t.join(timeout=120)
    shared.finish()
    assert tracer.flush(60)
    c = tracer.counters()
    tracer.close()
    assert (c.emitted, c.delivered, c.dropped) == (20_000, 20_000, 0)

    dump = read_topic(kafka_bootstrap, topic, uid("g"), expected=20_000)
    assert total_messages(kafka_bootstrap, topic, uid("g")) == 20_000
    events = dump.events()
    assert len(events) == 20_000
    per_run = check_exactly_once_in_order(events)
    assert len(per_run) == 7
    assert sorted(len(s) for s in per_run.values()) == [2002, 2999, 2999, 3000, 3000, 3000, 3000]
    # every record is keyed by its run_id (one ordered log per run)
    assert all(key == ev.run_id.encode() for (_, key, _), ev in zip(dump.raw, events, strict=True))
    kinds = {type(e) for e in events}
    assert kinds == {RunStarted, RunFinished, ModelCall, ToolCall}


CORPUS = {
    "email": "jane.doe+refunds@example.co.uk",
    "email2": "BOB_SMITH@corp-mail.example.com",
    "phone_us": "(415) 555-0143",
    "phone_intl": "+44 20 7946 0958",
    "phone_e164": "+14155550143",
    "card_spaces": "4111 1111 1111 1111",
    "card_dashes": "5500-0000-0000-0004",
    "card_plain": "340000000000009",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "iban_compact": "DE89370400440532013000",
    "openai_key": "sk-proj-Abc123Def456Ghi789Jkl012Mno345",
    "anthropic_key": "sk-ant-api03-AAAABBBBCCCCDDDDEEEE1111",
    "aws_key": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "bearer": "Bearer mF_9.B5f-4.1JqM",
}


def test_redaction_corpus_never_reaches_the_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = uid("t_sdk")
    create_topics(kafka_bootstrap, {topic: 2})
    tracer = _tracer(kafka_bootstrap, topic, tmp_path / "spool", logging={"store_prompts": "30_days"})
    with tracer.run(workflow="refunds", principal="svc-refunds") as run:
        for name, secret in CORPUS.items():
            with run.tool_call(
                "crm.update",
                args={"note": f"customer said {secret} today", "nested": {"list": [secret]}, "field": secret},
                risk="medium",
            ):
                pass
            with run.model_call(provider="openai", model="gpt-4.1-mini") as call:
                call.record_usage(input_tokens=5, output_tokens=5)
                call.record_prompt(prompt=f"Refund for {secret}?", completion=f"Done, {name}: {secret}.")
        with run.tool_call("pay", args={"card_number": 4111111111111111, "api_key": "not-a-pattern-but-a-key"}):
            pass
    assert tracer.flush(30)
    tracer.close()
    expected = 2 + 2 * len(CORPUS) + 1
    dump = read_topic(kafka_bootstrap, topic, uid("g"), expected=expected)
    assert len(dump.raw) == expected
    blob = b"\n".join(v for _, _, v in dump.raw)
    leaked = [n for n, s in CORPUS.items() if s.encode() in blob]
    assert leaked == []
    for needle in (b"4111111111111111", b"not-a-pattern-but-a-key", b"IOSFODNN7", b"7946 0958", b"0532013000"):
        assert needle not in blob
    events = dump.events()
    tools = [e for e in events if isinstance(e, ToolCall)]
    models = [e for e in events if isinstance(e, ModelCall)]
    # the text around the secrets survives, and a marker replaced each secret
    assert all("customer said [REDACTED:" in e.args for e in tools if e.tool_name == "crm.update")
    assert all(e.prompt.startswith("Refund for [REDACTED:") for e in models)
    # args_hash is of the un-redacted args, so equal args hash equally without being readable
    assert all(len(e.args_hash) == 64 for e in tools)
