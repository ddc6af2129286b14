"""Every path by which text enters an event goes through the redactor: the emitted Avro bytes hold
none of the injected secrets, whichever field carried them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.unit._sdk_fixtures import make_tracer
from tripwire.producers import ApprovalResult, GuardDecision, ToolBlocked
from tripwire.schemas import ApprovalDecision, ModelCall, RunFinished, RunStarted, ToolCall

STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n"
    "-----END RSA PRIVATE KEY-----"
)
DSN = "postgres://app:Zq8w2LmN4pX7@db.internal:5432/prod"
EMAIL = "josé.müller@bücher.de"
SECRETS = (STRIPE, SLACK, AWS_SECRET, "MIIEowIBAAKCAQEAu1SU1Lf", "Zq8w2LmN4pX7", EMAIL, "4111 1111 1111 1111")


class ReasonGuard:
    def check(self, request):  # type: ignore[no-untyped-def]
        if request.tool_name == "blocked":
            raise ToolBlocked(f"refused: the args held {EMAIL}")
        if request.tool_name == "approve":
            return GuardDecision(require_approval=True, reason=f"key {STRIPE} in use")
        if request.tool_name == "crash":
            raise RuntimeError(f"guard bug while reading {SLACK}")
        from tripwire.producers import ALLOW

        return ALLOW

    def done(self, request, status):  # type: ignore[no-untyped-def]
        pass


def test_no_field_carries_a_secret_to_the_topic(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tracer, got = make_tracer(
        tmp_path,
        logging={"store_prompts": True},
        guard=ReasonGuard(),
        approver=lambda req: ApprovalResult(True, approver="bot", reason=f"ok, rotate {SLACK} later"),
    )
    caplog.set_level(logging.ERROR)
    with tracer.run(principal=EMAIL) as run:
        with run.model_call("openai", "gpt-4o") as mc:
            mc.record_prompt(
                prompt=f"connect with {DSN} and aws_secret_access_key={AWS_SECRET}",
                completion=f"Here is the key:\n{PEM}\nand mail {EMAIL}",
            )
        args = {"q": {"deep": [f"pay {STRIPE}", {"note": f"card 4111 1111 1111 1111 from {EMAIL}"}]}, "x": SLACK}
        with run.tool_call("lookup", args=args):
            pass
        with pytest.raises(ToolBlocked), run.tool_call("blocked", args={"a": 1}):
            pass
        with run.tool_call("approve", risk="high"):
            pass
        with run.tool_call("crash", risk="low"):  # low risk: a failing guard fails open, and is logged
            pass
    tracer.close()
    events = got.events
    assert {type(e) for e in events} >= {RunStarted, ModelCall, ToolCall, ApprovalDecision, RunFinished}
    for _, value in got.raw:
        for s in SECRETS:
            assert s.encode() not in value, s
    (mc_event,) = got.of(ModelCall)
    assert mc_event.prompt == (
        "connect with postgres://app:[REDACTED:SECRET]@db.internal:5432/prod and "
        "aws_secret_access_key=[REDACTED:SECRET]"
    )
    assert mc_event.completion == "Here is the key:\n[REDACTED:SECRET]\nand mail [REDACTED:EMAIL]"
    assert {e.principal for e in events} == {"[REDACTED:EMAIL]"}
    tools = {t.tool_name: t for t in got.of(ToolCall)}
    assert tools["lookup"].args == (
        '{"q":{"deep":["pay [REDACTED:SECRET]",{"note":"card [REDACTED:CARD] from [REDACTED:EMAIL]"}]},'
        '"x":"[REDACTED:SECRET]"}'
    )
    assert tools["blocked"].blocked_reason == "refused: the args held [REDACTED:EMAIL]"
    (approval,) = got.of(ApprovalDecision)
    assert approval.reason == "ok, rotate [REDACTED:SECRET] later"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError: guard bug while reading [REDACTED:SECRET]" in logged
    assert all(s not in logged for s in SECRETS)


def test_the_guard_reason_reaches_the_event_redacted_when_the_approver_has_none(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, guard=ReasonGuard(), approver=lambda req: True)
    with tracer.run() as run, run.tool_call("approve", risk="high"):
        pass
    tracer.close()
    (approval,) = got.of(ApprovalDecision)
    assert approval.reason == "key [REDACTED:SECRET] in use"
