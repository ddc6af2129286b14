"""The faust-side wiring of the kill-switch policy, driven without faust: publish, record, retry, DLQ."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tripwire.processors.killswitch_agent import KillSwitchPolicyAgent
from tripwire.processors.killswitch_policy import KillSwitchPolicy
from tripwire.schemas import Alert, AvroCodec, encode

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)


class FakeRuntime:
    def __init__(self) -> None:
        self.codec = AvroCodec()
        self.dead: list[tuple[str, str]] = []

    def _tid(self, _msg: Any) -> None:
        return None

    def dead_letter(self, _msg: Any, _tid: Any, stage: str, reason: str, _err: str) -> None:
        self.dead.append((stage, reason))


class FlakyPublisher:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[Any] = []

    def publish_all(self, commands: list[Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("broker unreachable")
        self.published.extend(commands)


def message(alert: Alert | None = None, value: bytes | None = None) -> Any:
    return SimpleNamespace(topic="alerts", partition=0, offset=0, key=b"k",
                           value=encode(alert) if alert is not None else value)


def loop_alert(alert_id: str) -> Alert:
    return Alert(alert_id=alert_id, incident_id="inc-1", kind="runaway_loop", severity="critical", scope="run:r1",
                 tenant="acme", agent_id="bot", tool_name="search", observed=5, threshold=5, summary="loop",
                 status="firing", created_at=NOW, updated_at=NOW)


def test_a_failed_publish_is_not_recorded_and_the_next_update_trips_again() -> None:
    runtime, table, publisher = FakeRuntime(), {}, FlakyPublisher(failures=1)
    agent = KillSwitchPolicyAgent(runtime, KillSwitchPolicy(), table, publisher)  # type: ignore[arg-type]
    asyncio.run(agent.handle(message(loop_alert("a1"))))
    assert runtime.dead == [("notify", "killswitch publish: broker unreachable")]
    assert table == {} and publisher.published == []
    asyncio.run(agent.handle(message(loop_alert("a2"))))
    [command] = publisher.published
    assert (command.scope, command.alert_id) == ("agent:bot/tool:search", "a2")
    assert json.loads(table[b"inc-1"])["command_id"] == command.command_id
    # The same incident again, with its switch in force: no new command, even from a fresh policy (table state).
    fresh = KillSwitchPolicyAgent(runtime, KillSwitchPolicy(), table, publisher)  # type: ignore[arg-type]
    asyncio.run(fresh.handle(message(loop_alert("a3"))))
    assert len(publisher.published) == 1


def test_bad_bytes_and_non_alerts_go_to_the_dlq() -> None:
    runtime, publisher = FakeRuntime(), FlakyPublisher(failures=0)
    agent = KillSwitchPolicyAgent(runtime, KillSwitchPolicy(), {}, publisher)  # type: ignore[arg-type]
    asyncio.run(agent.handle(message(value=b"\x00not avro")))
    from tripwire.killswitch import new_command

    command = new_command(scope="global", action="freeze_tool", reason="x", issued_by="y")
    asyncio.run(agent.handle(message(value=encode(command))))
    assert [stage for stage, _ in runtime.dead] == ["decode", "validate"]
    assert publisher.published == []
