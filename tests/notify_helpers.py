"""Shared by the notify tests: a real HTTP receiver on 127.0.0.1, record builders, JSON Schemas of the
published Slack and PagerDuty formats, and Kafka probes (committed offsets, dead letters)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tripwire.schemas import Alert, KillSwitchAction, KillSwitchCommand, Severity


@dataclass
class Received:
    index: int
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


# responder(index, headers, body) -> status; it may block (a slow receiver) on an Event with a timeout.
Responder = Callable[[int, dict[str, str], bytes], int]


@dataclass
class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records every POST and answers what ``responder`` says."""

    responder: Responder = lambda i, h, b: 200
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    index = len(receiver.requests)
                    receiver.requests.append(Received(index, self.path, headers, body, 0))
                status = receiver.responder(index, headers, body)
                receiver.requests[index].status = status
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def ok(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def make_alert(
    incident_id: str | None = None,
    *,
    status: str = "firing",
    severity: str = "critical",
    kind: str = "cost_spike",
    agent_id: str = "refund-assistant",
    tenant: str = "acme",
    count: int = 1,
    summary: str = "cost per run 4.2x the baseline",
) -> Alert:
    now = datetime.now(UTC)
    return Alert(
        alert_id=str(uuid.uuid4()),
        incident_id=incident_id or f"inc-{uuid.uuid4().hex[:12]}",
        kind=kind,
        severity=Severity(severity),
        scope=f"agent:{agent_id}",
        tenant=tenant,
        agent_id=agent_id,
        agent_version="1.4.0",
        observed=4.2,
        threshold=2.0,
        count=count,
        evidence_event_ids=[str(uuid.uuid4())],
        evidence_trace_ids=[uuid.uuid4().hex],
        summary=summary,
        status=status,
        created_at=now,
        updated_at=now,
    )


def make_command(scope: str = "agent:refund-assistant", action: str = "disable_autonomy") -> KillSwitchCommand:
    return KillSwitchCommand(
        command_id=str(uuid.uuid4()),
        scope=scope,
        action=KillSwitchAction(action),
        issued_at=datetime.now(UTC),
        reason="runaway refunds",
        issued_by="oncall@example.com",
        nonce=uuid.uuid4().hex,
    )


# -- published formats (field names from the vendors' documentation) --------------------------------
_TEXT_OBJECT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"enum": ["plain_text", "mrkdwn"]},
        "text": {"type": "string", "minLength": 1, "maxLength": 3000},
        "emoji": {"type": "boolean"},
        "verbatim": {"type": "boolean"},
    },
    "additionalProperties": False,
}

# Slack incoming webhook: https://api.slack.com/messaging/webhooks + Block Kit reference (blocks).
SLACK_WEBHOOK_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "header"},
                            "text": {**_TEXT_OBJECT, "properties": {**_TEXT_OBJECT["properties"],
                                                                    "type": {"const": "plain_text"},
                                                                    "text": {"type": "string", "maxLength": 150}}},
                            "block_id": {"type": "string"},
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "anyOf": [{"required": ["text"]}, {"required": ["fields"]}],
                        "properties": {
                            "type": {"const": "section"},
                            "text": _TEXT_OBJECT,
                            "fields": {"type": "array", "maxItems": 10, "items": _TEXT_OBJECT},
                            "block_id": {"type": "string"},
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type", "elements"],
                        "properties": {
                            "type": {"const": "context"},
                            "elements": {"type": "array", "minItems": 1, "maxItems": 10, "items": _TEXT_OBJECT},
                            "block_id": {"type": "string"},
                        },
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "thread_ts": {"type": "string"},
        "mrkdwn": {"type": "boolean"},
    },
    "additionalProperties": False,
}

# PagerDuty Events API v2: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ (+ resolve).
PAGERDUTY_EVENT_SCHEMA = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 32, "maxLength": 32},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "images": {"type": "array"},
        "links": {"type": "array"},
        "client": {"type": "string"},
        "client_url": {"type": "string"},
    },
    "allOf": [
        {"if": {"properties": {"event_action": {"const": "trigger"}}}, "then": {"required": ["payload"]}},
        {"if": {"properties": {"event_action": {"enum": ["acknowledge", "resolve"]}}},
         "then": {"required": ["dedup_key"]}},
    ],
    "additionalProperties": False,
}

PD_ROUTING_KEY = "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey32"  # the API's keys are 32 characters


def validate(doc: Any, schema: dict[str, Any]) -> None:
    """jsonschema validation with format checks (date-time parsed as RFC 3339)."""
    import jsonschema

    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str) or "T" not in value:
            return False
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None

    jsonschema.validate(doc, schema, format_checker=checker)


# -- kafka probes ------------------------------------------------------------------------------------
def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for key, value in items:
        p.produce(topic, key=key, value=value, partition=0)
    assert p.flush(15) == 0


def committed(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    """The group's committed offset (-1001 = none) read through the broker."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 15.0) -> list[Any]:
    """Read ``expected`` messages of ``topic`` from the start (fails on timeout)."""
    import time

    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(m)
    finally:
        c.close()
    if len(out) < expected:
        raise AssertionError(f"read {len(out)}/{expected} messages from {topic} within {timeout}s")
    return out
