"""Channel payloads against the published Slack and PagerDuty formats, and the webhook signature scheme."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import jsonschema
import pytest

from tests.notify_helpers import (
    PAGERDUTY_EVENT_SCHEMA,
    PD_ROUTING_KEY,
    SLACK_WEBHOOK_SCHEMA,
    make_alert,
    make_command,
    validate,
)
from tripwire.notify import (
    from_alert,
    from_command,
    pagerduty_event,
    signature,
    slack_message,
    verify_signature,
)
from tripwire.notify.channels import pagerduty_request, slack_request, webhook_request

pytestmark = pytest.mark.unit

ACTIONS = ["disable_autonomy", "force_approval", "freeze_tool", "resume"]


@pytest.mark.parametrize("status", ["firing", "resolved"])
@pytest.mark.parametrize("severity", ["info", "warning", "critical"])
def test_alert_payloads_match_the_published_formats(status: str, severity: str) -> None:
    n = from_alert(make_alert(status=status, severity=severity))
    validate(slack_message(n), SLACK_WEBHOOK_SCHEMA)
    validate(pagerduty_event(n, PD_ROUTING_KEY), PAGERDUTY_EVENT_SCHEMA)


@pytest.mark.parametrize("action", ACTIONS)
def test_kill_switch_payloads_match_the_published_formats(action: str) -> None:
    n = from_command(make_command(action=action))
    validate(slack_message(n), SLACK_WEBHOOK_SCHEMA)
    event = pagerduty_event(n, PD_ROUTING_KEY)
    validate(event, PAGERDUTY_EVENT_SCHEMA)
    assert event["dedup_key"] == "killswitch:agent:refund-assistant"
    assert event["event_action"] == ("resolve" if action == "resume" else "trigger")


def test_the_schemas_reject_wrong_field_names() -> None:
    """The schema check can fail: a misspelt PagerDuty or Slack field is caught."""
    event = pagerduty_event(from_alert(make_alert()), PD_ROUTING_KEY)
    bad = {**event, "payload": {**event["payload"], "sevrity": "critical"}}
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, PAGERDUTY_EVENT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        validate({**event, "payload": {**event["payload"], "severity": "high"}}, PAGERDUTY_EVENT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        validate({"txt": "x"}, SLACK_WEBHOOK_SCHEMA)


def test_pagerduty_trigger_fields() -> None:
    alert = make_alert(severity="warning", kind="tool_error_rate", summary="refund tool errors at 40%")
    event = pagerduty_event(from_alert(alert), PD_ROUTING_KEY)
    assert (event["routing_key"], event["event_action"], event["dedup_key"]) == (
        PD_ROUTING_KEY, "trigger", alert.incident_id)  # fmt: skip
    p = event["payload"]
    assert (p["summary"], p["source"], p["severity"], p["component"], p["group"], p["class"]) == (
        "refund tool errors at 40%", "refund-assistant", "warning", "refund-assistant", "acme", "tool_error_rate")
    assert datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) == alert.updated_at
    assert p["custom_details"]["incident_id"] == alert.incident_id
    assert p["custom_details"]["evidence_trace_ids"] == alert.evidence_trace_ids


def test_pagerduty_resolve_carries_only_the_key_fields() -> None:
    alert = make_alert(status="resolved")
    assert pagerduty_event(from_alert(alert), PD_ROUTING_KEY) == {
        "routing_key": PD_ROUTING_KEY, "event_action": "resolve", "dedup_key": alert.incident_id}


def test_grouped_summary_and_truncation() -> None:
    first = from_alert(make_alert("inc-1", summary="x" * 2000))
    merged = first.merge(from_alert(make_alert("inc-1", summary="y" * 2000))).merge(from_alert(make_alert("inc-1")))
    assert merged.grouped == 3 and merged.summary == "cost per run 4.2x the baseline"
    event = pagerduty_event(first.merge(from_alert(make_alert("inc-1", summary="y" * 2000))), PD_ROUTING_KEY)
    assert len(event["payload"]["summary"]) == 1024 and event["payload"]["custom_details"]["grouped"] == 2
    msg = slack_message(merged)
    assert msg["blocks"][0]["text"]["text"].endswith("(x3)")


def test_slack_escapes_control_characters() -> None:
    msg = slack_message(from_alert(make_alert(summary="<!channel> & <http://evil|click>")))
    section = msg["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in section and "<!channel>" not in section


def test_webhook_signature_scheme_is_what_the_docs_say() -> None:
    n = from_alert(make_alert())
    req = webhook_request(n, "http://127.0.0.1:1/h", b"key")
    headers = req.headers_for_attempt()
    ts = headers["X-Tripwire-Timestamp"]
    mac = hmac.new(b"key", ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert headers["X-Tripwire-Signature"] == f"v1={mac}"
    assert headers["X-Tripwire-Dedup-Key"] == n.dedup_key
    assert json.loads(req.body)["dedup_key"] == n.dedup_key
    assert "X-Tripwire-Signature" not in webhook_request(n, "http://127.0.0.1:1/h", None).headers_for_attempt()


def test_verify_signature() -> None:
    body, now = b'{"a":1}', 1_800_000_000
    ts = str(now)
    good = signature(b"k", ts, body)
    assert verify_signature(b"k", ts, body, good, now=now)
    assert verify_signature(b"k", ts, body, f"v1=00, {good}", now=now)  # key rotation: several values
    assert not verify_signature(b"k", ts, b'{"a":2}', good, now=now)  # tampered body
    assert not verify_signature(b"other", ts, body, good, now=now)  # wrong key
    assert not verify_signature(b"k", str(now + 1), body, good, now=now)  # timestamp is signed too
    assert not verify_signature(b"k", ts, body, good, now=now + 301)  # replayed after the tolerance
    assert verify_signature(b"k", ts, body, good, now=now + 299)
    assert not verify_signature(b"k", "not-a-number", body, good, now=now)


def test_kill_switch_notification_fields() -> None:
    cmd = make_command("tenant:acme", "freeze_tool")
    n = from_command(cmd)
    assert (n.source, n.kind, n.severity, n.tenant, n.agent_id, n.action) == (
        "killswitch", "killswitch", "critical", "acme", None, "trigger")
    assert n.summary == "Kill switch tripped: freeze_tool on tenant:acme by oncall@example.com: runaway refunds"
    assert n.details["signed"] is False and n.timestamp == cmd.issued_at
    assert from_command(make_command("agent:bot@2.1/tool:refund")).agent_id == "bot"


def test_request_builders_keep_the_dedup_key_and_urls() -> None:
    n = from_alert(make_alert())
    assert slack_request(n, "https://hooks.slack.test/x").dedup_key == n.dedup_key
    pd = pagerduty_request(n, PD_ROUTING_KEY)
    assert pd.url == "https://events.pagerduty.com/v2/enqueue"
    assert json.loads(pd.body)["dedup_key"] == n.dedup_key
    assert n.timestamp.tzinfo is not None and n.timestamp <= datetime.now(UTC)
