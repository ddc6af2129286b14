"""What the framework-adapter tests share: a tracer on a fresh events topic of the real broker, a kill-switch
guard fed by a fresh kill-switch topic with a trusted signing key, a publisher for that key (and a forger),
reading the run back, and the hand-instrumented reference run the adapters must match."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import create_topics, uid, wait_until
from tests.integration._model_server import INPUT_TOKENS, MODEL, OUTPUT_TOKENS
from tests.integration._sdk_kafka_helpers import read_topic
from tripwire.killswitch import (
    CommandPublisher,
    CommandSigner,
    CommandVerifier,
    KillSwitchConfig,
    ensure_topic,
    new_command,
)
from tripwire.producers import Approver, Tracer, TracerConfig
from tripwire.producers.killswitch import KillSwitchGuard
from tripwire.schemas import ApprovalDecision, ModelCall, RunFinished, RunStarted, ToolCall

AGENT = "refund-assistant"
TOOL = "issue_refund"
ARGS = {"order_id": "A-1001", "amount_cents": 4200}


@dataclass
class Rig:
    bootstrap: str
    topic: str
    tracer: Tracer
    guard: KillSwitchGuard
    publisher: CommandPublisher
    forger: CommandPublisher

    def trip(self, action: str = "freeze_tool", scope: str = f"agent:{AGENT}/tool:{TOOL}",
             reason: str = "refund storm", *, forged: bool = False) -> None:
        accepted, records = self.guard.state.accepted, self.guard.listener.records
        (self.forger if forged else self.publisher).publish(
            new_command(scope=scope, action=action, reason=reason, issued_by="test:oncall"))
        if forged:
            wait_until(lambda: self.guard.listener.records > records, timeout=15, message="forged command read")
        else:
            wait_until(lambda: self.guard.state.accepted > accepted, timeout=15, message="trip applied")

    def events(self, expected: int) -> list[Any]:
        assert self.tracer.flush(30)
        return read_topic(self.bootstrap, self.topic, uid("g"), expected=expected, timeout=30).events()

    def close(self) -> None:
        self.tracer.close()
        self.guard.close()
        self.publisher.close()
        self.forger.close()


def make_rig(bootstrap: str, tmp_path: Path, *, approver: Approver | None = None, **agent: Any) -> Rig:
    topic = uid("t_adapt")
    create_topics(bootstrap, {topic: 1})
    ks = KillSwitchConfig(bootstrap=bootstrap, topic=uid("t_ks"), heartbeat_s=0.2, ready_timeout_s=10)
    assert ensure_topic(ks) is True
    signer = CommandSigner(Ed25519PrivateKey.generate())
    guard = KillSwitchGuard(ks, verifier=CommandVerifier([signer.public_key()]))
    assert guard.wait_ready(15)
    cfg = TracerConfig(tenant="acme", agent={"name": AGENT, **agent}, kafka={"bootstrap": bootstrap, "topic": topic},
                       delivery={"spool_dir": tmp_path / "spool"})
    tracer = Tracer(cfg, guard=guard, approver=approver)
    return Rig(bootstrap, topic, tracer, guard, CommandPublisher(ks, signer),
               CommandPublisher(ks, CommandSigner(Ed25519PrivateKey.generate())))


def hand_instrumented(tracer: Tracer, provider: str = "openai", model: str = MODEL, tool: str = TOOL) -> None:
    """The two-step agent written against the SDK by hand: model -> tool -> model."""
    with tracer.run() as run:
        with run.model_call(provider=provider, model=model) as call:
            call.record_usage(input_tokens=INPUT_TOKENS[0], output_tokens=OUTPUT_TOKENS)
        with run.tool_call(tool, ARGS, risk="high"):
            pass
        with run.model_call(provider=provider, model=model) as call:
            call.record_usage(input_tokens=INPUT_TOKENS[1], output_tokens=OUTPUT_TOKENS)


def shape(events: list[Any]) -> list[tuple[Any, ...]]:
    """What must match between an adapter's run and the hand-instrumented one (ids and times aside)."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, RunStarted):
            out.append(("RunStarted", e.seq, e.agent_id, e.max_tool_calls))
        elif isinstance(e, ModelCall):
            out.append(("ModelCall", e.seq, e.provider, e.request_model, e.input_tokens, e.output_tokens,
                        e.cost_usd, e.cost_source, e.status))
        elif isinstance(e, ToolCall):
            out.append(("ToolCall", e.seq, e.tool_name, e.risk, e.args_hash, e.status, e.blocked_reason))
        elif isinstance(e, ApprovalDecision):
            out.append(("ApprovalDecision", e.seq, e.tool_name, e.decision, e.approver))
        elif isinstance(e, RunFinished):
            out.append(("RunFinished", e.seq, e.last_seq, e.outcome))
    return out


def by_run(events: list[Any]) -> dict[str, list[Any]]:
    runs: dict[str, list[Any]] = {}
    for e in events:
        runs.setdefault(e.run_id, []).append(e)
    return runs
