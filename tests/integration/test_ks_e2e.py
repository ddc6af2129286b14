"""The kill switch across processes, against the real broker:

- an on-call trip with the CLI blocks the next call of an agent running in another process; a reset lets
  it run again; a command signed by another key changes nothing; status and audit show what happened;
- an agent process that starts after a trip is blocked on its very first call (state recovered from the
  compacted topic before the first guarded call);
- a scripted runaway loop -> processors worker -> runaway_loop alert -> kill-switch policy -> signed
  freeze -> the looping agent (another process) is stopped, with a blocked ToolCall on the events topic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import uid, wait_until
from tests.ks_procs import AgentProcess, PolicyWorker
from tripwire.killswitch import KillSwitchConfig, ensure_topic, generate_keypair, read_topic
from tripwire.schemas import Alert, KillSwitchCommand, ToolCall, decode, topic_names

pytestmark = pytest.mark.integration

AGENT = "refund-assistant"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tripwire.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public, _ = generate_keypair(tmp_path / "keys")
    return private, public


def test_cli_trip_blocks_an_agent_in_another_process_and_reset_resumes_it(
    kafka_bootstrap: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    topics = topic_names(uid("t_ks"))
    ensure_topic(KillSwitchConfig(bootstrap=kafka_bootstrap, topic=topics.killswitch))
    common = ["--bootstrap", kafka_bootstrap, "--topic", topics.killswitch]
    scope = f"agent:{AGENT}/tool:stripe.issue_refund"
    with AgentProcess(bootstrap=kafka_bootstrap, killswitch_topic=topics.killswitch, events_topic=topics.events,
                      public_key=public) as agent:
        assert agent.started["ready"] and agent.started["first_call"] == "ok"
        assert agent.ask({"op": "call", "tool": "stripe.issue_refund", "risk": "high"}) == {"status": "ok"}

        # A trip signed by a key the agent does not trust changes nothing.
        other_private, _, _ = generate_keypair(tmp_path / "other")
        forged = cli("killswitch", "trip", "--scope", scope, "--action", "freeze_tool", "--reason", "forged",
                     "--key", str(other_private), *common)
        assert forged.returncode == 0, forged.stderr

        assert agent.ask({"op": "watch", "tool": "stripe.issue_refund", "risk": "high", "timeout": 30}) == {
            "watching": True}
        tripped = cli("killswitch", "trip", "--scope", scope, "--action", "freeze_tool", "--reason", "refund storm",
                      "--ttl", "30m", "--key", str(private), *common)
        assert tripped.returncode == 0, tripped.stderr
        blocked = agent.read(30)
        assert (blocked["status"], blocked["error"]) == ("blocked", "ToolFrozen")
        assert "refund storm" in blocked["reason"]
        assert agent.ask({"op": "call", "tool": "search"}) == {"status": "ok"}  # other tools still run

        reset = cli("killswitch", "reset", "--scope", scope, "--key", str(private), *common)
        assert reset.returncode == 0, reset.stderr
        wait_until(lambda: agent.ask({"op": "call", "tool": "stripe.issue_refund", "risk": "high"})["status"] == "ok",
                   timeout=15, message="reset reached the agent")
        stats = agent.ask({"op": "stats"})
        assert stats["rejected"] == {"unknown_key": 1} and stats["accepted"] == 2

        # disable_autonomy with no approver configured: blocked with AutonomyDisabled.
        assert cli("killswitch", "trip", "--scope", f"agent:{AGENT}", "--action", "disable_autonomy", "--reason",
                   "cost spike", "--key", str(private), *common).returncode == 0
        wait_until(lambda: agent.ask({"op": "call", "tool": "search"}).get("error") == "AutonomyDisabled",
                   timeout=15, message="autonomy disabled")

    status = cli("killswitch", "status", "--json", "--key", str(private), *common)
    assert status.returncode == 0, status.stderr
    rows = [json.loads(line) for line in status.stdout.splitlines()]
    assert [(r["scope"], r["action"]) for r in rows] == [(f"agent:{AGENT}", "disable_autonomy")]
    audit = cli("killswitch", "audit", "--json", "--public-key", str(public), *common)
    assert audit.returncode == 0, audit.stderr
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [(r["action"], r["verdict"], r["rejection"]) for r in records] == [
        ("freeze_tool", "rejected", "unknown_key"),
        ("freeze_tool", "accepted", None),
        ("resume", "accepted", None),
        ("disable_autonomy", "accepted", None),
    ]
    assert all(r["issued_by"].startswith("user:") for r in records)


def test_an_agent_started_after_a_trip_is_blocked_on_its_first_call(
    kafka_bootstrap: str, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    topics = topic_names(uid("t_ks"))
    common = ["--bootstrap", kafka_bootstrap, "--topic", topics.killswitch, "--key", str(private)]
    for i in range(2):  # history: other scopes tripped (and one reset) before
        assert cli("killswitch", "trip", "--scope", f"tool:t{i}", "--action", "freeze_tool", "--reason", "x",
                   *common).returncode == 0
    assert cli("killswitch", "reset", "--scope", "tool:t0", *common).returncode == 0
    assert cli("killswitch", "trip", "--scope", f"agent:{AGENT}/tool:stripe.issue_refund", "--action", "freeze_tool",
               "--reason", "incident 7", *common).returncode == 0
    for _ in range(2):  # each restart knows the state before its first call
        with AgentProcess(bootstrap=kafka_bootstrap, killswitch_topic=topics.killswitch, events_topic=topics.events,
                          public_key=public, extra=["--first-tool", "stripe.issue_refund"]) as agent:
            assert agent.started["ready"] is True
            assert (agent.started["first_call"], agent.started["first_error"]) == ("blocked", "ToolFrozen")
            assert agent.ask({"op": "call", "tool": "t0"}) == {"status": "ok"}
            assert agent.ask({"op": "call", "tool": "t1"})["error"] == "ToolFrozen"


def test_runaway_loop_alert_trips_the_policy_and_stops_the_agent(
    kafka_bootstrap: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    prefix = uid("t_ks")
    topics = topic_names(prefix)
    worker = PolicyWorker(bootstrap=kafka_bootstrap, prefix=prefix, partitions=2, data_dir=tmp_path / "data",
                          private_key=private, log_path=tmp_path / "worker.log")
    try:
        worker.wait_stable()
        with AgentProcess(bootstrap=kafka_bootstrap, killswitch_topic=topics.killswitch,
                          events_topic=topics.events, public_key=public) as agent:
            result = agent.ask({"op": "loop", "tool": "crm.lookup", "args": {"id": 42}, "timeout": 60, "pause": 0.02},
                               timeout=90)
            assert (result["status"], result["error"]) == ("blocked", "ToolFrozen"), result
            assert f"frozen by freeze_tool on agent:{AGENT}/tool:crm.lookup (runaway_loop" in result["reason"]
            assert result["ran"] >= 5  # the loop limit of the default detector policy
            assert agent.ask({"op": "call", "tool": "search"}) == {"status": "ok"}
    finally:
        worker.stop()

    def records(topic: str) -> list:
        return [decode(m.value()) for m in read_topic(KillSwitchConfig(bootstrap=kafka_bootstrap, topic=topic))]

    commands = [c for c in records(topics.killswitch) if isinstance(c, KillSwitchCommand)]
    loop_commands = [c for c in commands if c.scope == f"agent:{AGENT}/tool:crm.lookup"]
    assert len(loop_commands) == 1  # one incident, one trip
    [command] = loop_commands
    alerts = {a.alert_id: a for a in records(topics.alerts) if isinstance(a, Alert)}
    assert command.alert_id in alerts and alerts[command.alert_id].kind == "runaway_loop"
    assert command.issued_by == "policy:runaway-loop" and command.signature is not None
    tool_calls = [e for e in records(topics.events) if isinstance(e, ToolCall) and e.tool_name == "crm.lookup"]
    assert [e.status for e in tool_calls].count("blocked") == 1
    assert tool_calls[-1].status == "blocked" and tool_calls[-1].error_type == "ToolFrozen"
    assert all(e.status == "ok" for e in tool_calls[:-1]) and len(tool_calls) == result["ran"] + 1
