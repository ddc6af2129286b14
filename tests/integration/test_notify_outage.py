"""The notifier across a broker outage that outlasts its group session (issue 20's fault suite found the same
alerts delivered twice): deliveries that finish while the broker is down cannot be committed, the session
times out and the assignment is revoked as lost, and the partition comes back from its last committed
offset. What this notifier already delivered must be committed on the replay, not delivered again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.helpers import create_topics, uid, wait_until
from tests.notify_helpers import Receiver, committed, make_alert, produce
from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig, free_port
from tripwire.notify import Notifier, NotifyConfig, routes_from_dict
from tripwire.schemas import encode, topic_names

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_deliveries_whose_commit_the_outage_lost_are_not_sent_again(tmp_path: Path) -> None:
    broker = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=tmp_path / "k"))
    broker.start()
    rx: Receiver | None = None
    thread: threading.Thread | None = None
    notifier: Notifier | None = None
    try:
        bootstrap, prefix, group = broker.bootstrap, uid("n"), uid("g")
        topics = topic_names(prefix)
        create_topics(bootstrap, {topics.alerts: 1, topics.killswitch: 1, topics.dlq: 1})
        down = threading.Event()

        def respond(i: int, h: dict[str, str], b: bytes) -> int:
            down.wait(60)  # answer once the broker is down: the commit of this delivery cannot reach it
            return 200

        rx = Receiver(respond)
        alerts = [make_alert() for _ in range(3)]
        produce(bootstrap, topics.alerts, [(a.incident_id.encode(), encode(a)) for a in alerts])
        config = NotifyConfig(bootstrap=bootstrap, topic_prefix=prefix, group_id=group, session_timeout_s=6,
                              commit_interval_s=0.05, request_timeout_s=60, shutdown_timeout_s=5)
        notifier = Notifier(routes_from_dict({"routes": [{"name": "w", "channel": "webhook", "url": rx.url}]},
                                             config), config)
        thread = threading.Thread(target=notifier.run, daemon=True)
        thread.start()
        wait_until(lambda: len(rx.requests) == 3, 30, message="the three deliveries in flight")
        broker.stop()
        down.set()
        n = notifier
        wait_until(lambda: n.stats.delivered == 3, 30, message="delivered while the broker is down")
        wait_until(lambda: not n.assigned, 60, message="the session timed out: assignment lost")
        broker.start()
        wait_until(lambda: committed(bootstrap, group, topics.alerts) == 3, 90, interval=0.5,
                   message="offset 3 committed after the outage")
    finally:
        if notifier is not None and thread is not None:
            notifier.stop()
            thread.join(30)
        if rx is not None:
            rx.close()
        broker.stop()
    assert thread is not None and not thread.is_alive()
    assert sorted(r.json()["record_id"] for r in rx.ok()) == sorted(a.alert_id for a in alerts)  # once each
    assert notifier.stats.replayed_done == 3
    assert notifier.stats.delivered == 3
