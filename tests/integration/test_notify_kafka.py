"""The notifier against the real broker and a real HTTP receiver on 127.0.0.1: retries, dead letters,
committed offsets, signatures, PagerDuty trigger/resolve, kill-switch routing, burst grouping."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.helpers import create_topics, uid, wait_until
from tests.notify_helpers import (
    PAGERDUTY_EVENT_SCHEMA,
    PD_ROUTING_KEY,
    Receiver,
    committed,
    make_alert,
    make_command,
    produce,
    read_all,
    validate,
)
from tripwire.notify import Notifier, NotifyConfig, routes_from_dict
from tripwire.schemas import DeadLetter, decode, encode, topic_names

pytestmark = pytest.mark.integration


@pytest.fixture
def env(kafka_bootstrap: str) -> Iterator[dict[str, Any]]:
    prefix = uid("n")
    topics = topic_names(prefix)
    create_topics(kafka_bootstrap, {topics.alerts: 1, topics.killswitch: 1, topics.dlq: 1})
    yield {"bootstrap": kafka_bootstrap, "prefix": prefix, "topics": topics, "group": uid("g")}


class Running:
    """A Notifier on a thread; ``stop()`` joins it (with a deadline)."""

    def __init__(self, env: dict[str, Any], routes: list[dict[str, Any]], **config: Any) -> None:
        base = {"bootstrap": env["bootstrap"], "topic_prefix": env["prefix"], "group_id": env["group"],
                "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "request_timeout_s": 2.0,
                "commit_interval_s": 0.05, "shutdown_timeout_s": 5.0}
        self.config = NotifyConfig(**{**base, **config})
        self.notifier = Notifier(routes_from_dict({"routes": routes}, self.config), self.config)
        self.thread = threading.Thread(target=self.notifier.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.notifier.stop()
        self.thread.join(20)
        assert not self.thread.is_alive(), "the notifier did not stop"


def _committed_is(env: dict[str, Any], topic: str, offset: int) -> bool:
    return committed(env["bootstrap"], env["group"], topic) == offset


def test_500_three_times_then_200_is_delivered_once_with_a_stable_dedup_key(env: dict[str, Any]) -> None:
    rx = Receiver(lambda i, h, b: 500 if i < 3 else 200)
    alert = make_alert()
    produce(env["bootstrap"], env["topics"].alerts, [(alert.incident_id.encode(), encode(alert))])
    run = Running(env, [{"name": "pd", "channel": "pagerduty", "url": rx.url, "routing_key": PD_ROUTING_KEY}],
                  max_attempts=5)
    try:
        wait_until(lambda: _committed_is(env, env["topics"].alerts, 1), 20, message="offset 1 committed")
    finally:
        run.stop()
        rx.close()
    assert [r.status for r in rx.requests] == [500, 500, 500, 200]
    assert len(rx.ok()) == 1
    bodies = [r.json() for r in rx.requests]
    assert {b["dedup_key"] for b in bodies} == {alert.incident_id}
    assert all(r.body == rx.requests[0].body for r in rx.requests)  # the very same event each try
    for b in bodies:
        validate(b, PAGERDUTY_EVENT_SCHEMA)
    assert bodies[0]["event_action"] == "trigger"
    assert run.notifier.stats.delivered == 1 and run.notifier.stats.dead_letters == 0


def test_timeouts_end_in_the_dead_letter_topic_and_offsets_are_committed(env: dict[str, Any]) -> None:
    rx = Receiver()

    def too_slow(i: int, headers: dict[str, str], body: bytes) -> int:
        rx.release.wait(5)  # holds the request far beyond the client's timeout; released at close
        return 504

    rx.responder = too_slow
    alert = make_alert()
    stray = DeadLetter(dlq_id="d-1", source_topic="x", partition=0, offset=0, reason="r", error_type="E",
                       stage="sink", failed_at=alert.created_at)  # valid Avro, but no alert
    produce(env["bootstrap"], env["topics"].alerts,
            [(b"garbage", b"\x00not avro"), (alert.incident_id.encode(), encode(alert)), (b"s", encode(stray))])
    run = Running(env, [{"name": "slow-hook", "channel": "webhook", "url": rx.url}],
                  max_attempts=3, request_timeout_s=0.3)
    try:
        dead = read_all(env["bootstrap"], env["topics"].dlq, 3, timeout=20)
        wait_until(lambda: _committed_is(env, env["topics"].alerts, 3), 15, message="offset 3 committed")
    finally:
        run.stop()
        rx.close()
    letters = sorted((decode(m.value()) for m in dead), key=lambda d: d.offset)
    assert all(isinstance(d, DeadLetter) for d in letters)
    bad, slow, wrong = letters
    assert (wrong.stage, wrong.offset, wrong.error_type) == ("validate", 2, "UnexpectedRecord")
    assert wrong.reason == f"DeadLetter is not a record the notifier routes from {env['topics'].alerts}"
    assert (bad.stage, bad.offset, bad.value, bad.source_topic) == ("decode", 0, b"\x00not avro", env["topics"].alerts)
    assert (slow.stage, slow.offset, slow.key) == ("notify", 1, alert.incident_id.encode())
    assert slow.value == encode(alert)
    assert slow.reason == "route 'slow-hook' (webhook): gave up after 3 tries: timeout (ReadTimeout)"
    assert slow.error_type == "Timeout"
    assert len(rx.requests) == 3
    assert {r.headers["x-tripwire-dedup-key"] for r in rx.requests} == {alert.incident_id}


def test_hmac_signature_verifies_at_the_receiver_and_a_tampered_body_fails(env: dict[str, Any]) -> None:
    key = b"s3cret-hmac-key"
    verdicts: list[bool] = []

    def check(i: int, headers: dict[str, str], body: bytes) -> int:
        ts, sig = headers["x-tripwire-timestamp"], headers["x-tripwire-signature"]
        expected = "v1=" + hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        tampered = body.replace(b'"critical"', b'"info"')
        assert tampered != body
        forged = "v1=" + hmac.new(key, ts.encode() + b"." + tampered, hashlib.sha256).hexdigest()
        verdicts.append(hmac.compare_digest(sig, expected))
        verdicts.append(hmac.compare_digest(sig, forged))
        return 200 if verdicts[-2] else 401

    rx = Receiver(check)
    alert = make_alert()
    produce(env["bootstrap"], env["topics"].alerts, [(alert.incident_id.encode(), encode(alert))])
    run = Running(env, [{"name": "signed", "channel": "webhook", "url": rx.url, "hmac_key": key.decode()}])
    try:
        wait_until(lambda: _committed_is(env, env["topics"].alerts, 1), 15, message="offset 1 committed")
    finally:
        run.stop()
        rx.close()
    assert verdicts == [True, False]
    doc = rx.requests[0].json()
    assert (doc["dedup_key"], doc["severity"], doc["action"], doc["grouped"]) == (alert.incident_id, "critical",
                                                                                   "trigger", 1)


def test_resolve_and_kill_switch_trip_and_reset_reach_pagerduty(env: dict[str, Any]) -> None:
    rx = Receiver()
    t = env["topics"]
    firing = make_alert()
    resolved = firing.model_copy(update={"status": "resolved", "alert_id": "a-resolved"})
    trip, reset = make_command(), make_command(action="resume")
    run = Running(env, [{"name": "pd", "channel": "pagerduty", "url": rx.url, "routing_key": PD_ROUTING_KEY,
                         "group_interval_s": 60}])
    try:
        produce(env["bootstrap"], t.alerts, [(firing.incident_id.encode(), encode(firing))])
        produce(env["bootstrap"], t.killswitch, [(trip.scope.encode(), encode(trip))])
        wait_until(lambda: len(rx.ok()) == 2, 15, message="two triggers")
        produce(env["bootstrap"], t.alerts, [(resolved.incident_id.encode(), encode(resolved))])
        produce(env["bootstrap"], t.killswitch, [(reset.scope.encode(), encode(reset)), (reset.scope.encode(), None)])
        wait_until(lambda: _committed_is(env, t.alerts, 2) and _committed_is(env, t.killswitch, 3), 15,
                   message="all offsets committed")
    finally:
        run.stop()
        rx.close()
    events = [r.json() for r in rx.requests]
    for e in events:
        validate(e, PAGERDUTY_EVENT_SCHEMA)
    got = sorted((e["dedup_key"], e["event_action"]) for e in events)
    ks = f"killswitch:{trip.scope}"
    assert got == sorted([(firing.incident_id, "trigger"), (firing.incident_id, "resolve"),
                          (ks, "trigger"), (ks, "resolve")])
    ks_trigger = next(e for e in events if e["dedup_key"] == ks and e["event_action"] == "trigger")
    assert ks_trigger["payload"]["custom_details"]["action"] == "disable_autonomy"
    assert ks_trigger["payload"]["custom_details"]["issued_by"] == "oncall@example.com"


def test_a_burst_for_one_incident_is_one_delivery_with_a_count(env: dict[str, Any]) -> None:
    rx = Receiver()
    incident = f"inc-{uid('b')}"
    burst = [make_alert(incident, count=i + 1) for i in range(5)]
    other = make_alert(severity="info")
    long_ago = other.created_at - timedelta(hours=7)
    stale = make_alert().model_copy(update={"created_at": long_ago, "updated_at": long_ago})
    run = Running(env, [{"name": "hook", "channel": "webhook", "url": rx.url, "group_wait_s": 1.0,
                         "match": {"min_severity": "warning"}}])
    try:
        produce(env["bootstrap"], env["topics"].alerts,
                [(a.incident_id.encode(), encode(a)) for a in [*burst, other, stale]])
        wait_until(lambda: _committed_is(env, env["topics"].alerts, 7), 15, message="offset 7 committed")
    finally:
        run.stop()
        rx.close()
    assert len(rx.requests) == 1  # the info alert matched no route, the stale one is skipped; the burst is one
    doc = rx.requests[0].json()
    assert (doc["dedup_key"], doc["grouped"], doc["details"]["count"], doc["record_id"]) == (
        incident, 5, 5, burst[-1].alert_id)
    assert (run.notifier.stats.unrouted, run.notifier.stats.stale) == (1, 1)  # older than max_age_s: not paged


def test_a_second_notifier_joining_loses_nothing(kafka_bootstrap: str) -> None:
    """A rebalance mid-stream (eager: every partition revoked, then split between two notifiers): in-flight
    deliveries settle and commit, waiting groups are dropped and replayed by the new owner."""
    from confluent_kafka import Producer

    prefix = uid("n")
    topics = topic_names(prefix)
    create_topics(kafka_bootstrap, {topics.alerts: 2, topics.killswitch: 1, topics.dlq: 1})
    env = {"bootstrap": kafka_bootstrap, "prefix": prefix, "topics": topics, "group": uid("g")}
    rx = Receiver()
    alerts = [make_alert() for _ in range(20)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})

    def produce_half(half: list) -> None:
        for i, a in enumerate(half):
            producer.produce(topics.alerts, key=a.incident_id.encode(), value=encode(a), partition=i % 2)
        assert producer.flush(15) == 0

    route = [{"name": "hook", "channel": "webhook", "url": rx.url, "group_wait_s": 0.2}]
    first = Running(env, route)
    second = None
    try:
        produce_half(alerts[:10])
        wait_until(lambda: len({r.json()["record_id"] for r in rx.ok()}) >= 4, 15, message="first deliveries")
        second = Running(env, route)
        owns = (first.notifier, second.notifier)
        wait_until(lambda: all((topics.alerts, p) in n.assigned for n, p in zip(owns, (0, 1), strict=True))
                   or all((topics.alerts, p) in n.assigned for n, p in zip(owns, (1, 0), strict=True)),
                   30, message="the two notifiers share the partitions")
        produce_half(alerts[10:])
        wait_until(lambda: _committed_is(env, topics.alerts, 10) and committed(
            kafka_bootstrap, env["group"], topics.alerts, 1) == 10, 30, message="both partitions committed")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        rx.close()
    delivered = [r.json()["record_id"] for r in rx.ok()]
    assert set(delivered) == {a.alert_id for a in alerts}  # nothing lost
    assert len(delivered) - len(set(delivered)) <= 10  # replays only of what was uncommitted at the rebalance
    assert first.notifier.stats.delivered >= 4 and second.notifier.stats.delivered >= 5  # the group did split
