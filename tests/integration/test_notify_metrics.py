"""Issue 19: the notifier's Prometheus metrics, scraped over HTTP from a notifier on the real broker:
delivered, retried and dead-lettered by route, and the delivery-latency histogram."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import create_topics, uid, wait_until
from tests.notify_helpers import Receiver, committed, make_alert, produce
from tripwire.notify import Notifier, NotifyConfig, routes_from_dict
from tripwire.schemas import encode, topic_names

pytestmark = pytest.mark.integration


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_delivered_retried_dead_lettered_and_latency_by_route(kafka_bootstrap: str) -> None:
    prefix, group = uid("n"), uid("g")
    topics = topic_names(prefix)
    create_topics(kafka_bootstrap, {topics.alerts: 1, topics.killswitch: 1, topics.dlq: 1})
    flaky = Receiver(lambda i, h, b: 500 if i < 2 else 200)  # two 5xx, then delivered: 2 retries
    broken = Receiver(lambda i, h, b: 503)  # never delivered: 3 tries (2 retries), dead-lettered
    config = NotifyConfig(bootstrap=kafka_bootstrap, topic_prefix=prefix, group_id=group, max_attempts=3,
                          backoff_initial_s=0.05, backoff_max_s=0.1, request_timeout_s=2.0, commit_interval_s=0.05,
                          shutdown_timeout_s=5.0, metrics_port=0)
    routes = [{"name": "flaky", "channel": "webhook", "url": flaky.url},
              {"name": "broken", "channel": "webhook", "url": broken.url}]
    notifier = Notifier(routes_from_dict({"routes": routes}, config), config)
    assert notifier.metrics_port is not None and notifier.metrics_port > 0
    thread = threading.Thread(target=notifier.run, daemon=True)
    thread.start()
    alert = make_alert()
    produce(kafka_bootstrap, topics.alerts, [(alert.incident_id.encode(), encode(alert))])
    try:
        wait_until(lambda: committed(kafka_bootstrap, group, topics.alerts) == 1, 30, message="offset 1 committed")
        m: dict[Any, float] = {}

        def scraped() -> bool:
            m.clear()
            m.update(_scrape(notifier.metrics_port or 0))
            return m.get(("tripwire_notify_dead_lettered_total", (("route", "broken"),)), 0) == 1

        wait_until(scraped, 10, message="dead letter counted")
    finally:
        notifier.stop()
        thread.join(20)
        flaky.close()
        broken.close()
    assert m[("tripwire_notify_delivered_total", (("route", "flaky"),))] == 1
    assert m.get(("tripwire_notify_delivered_total", (("route", "broken"),)), 0) == 0
    assert m[("tripwire_notify_retried_total", (("route", "flaky"),))] == 2
    assert m[("tripwire_notify_retried_total", (("route", "broken"),))] == 2
    assert m.get(("tripwire_notify_dead_lettered_total", (("route", "flaky"),)), 0) == 0
    assert m[("tripwire_notify_delivery_seconds_count", (("outcome", "delivered"), ("route", "flaky")))] == 1
    assert m[("tripwire_notify_delivery_seconds_count", (("outcome", "failed"), ("route", "broken")))] == 1
    # two back-offs happened inside the measured delivery: equal jitter, at least 0.025 s + 0.05 s
    assert m[("tripwire_notify_delivery_seconds_sum", (("outcome", "delivered"), ("route", "flaky")))] >= 0.075
    assert len(flaky.requests) == 3 and len(broken.requests) == 3
