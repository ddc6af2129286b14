"""A ``tripwire notify`` process SIGKILLed between a delivery and its commit: the restarted notifier
delivers that alert again (at most one duplicate), with the same dedup key, then commits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import create_topics, uid, wait_until
from tests.notify_helpers import Receiver, committed, make_alert, produce
from tripwire.schemas import encode, topic_names

pytestmark = pytest.mark.integration

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group never committed


def _notify(bootstrap: str, prefix: str, group: str, routes: Path, env_extra: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_NOTIFY_")}
    env.update(env_extra)
    cmd = [sys.executable, "-m", "tripwire.cli", "--log-level", "INFO", "notify", "--routes", str(routes),
           "--bootstrap", bootstrap, "--topic-prefix", prefix, "--group", group]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_between_delivery_and_commit_gives_at_most_one_duplicate(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix, group = uid("n"), uid("g")
    topics = topic_names(prefix)
    create_topics(kafka_bootstrap, {topics.alerts: 1, topics.killswitch: 1, topics.dlq: 1})
    rx = Receiver()
    hmac_key = "k-" + uid("secret")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - name: hook\n    channel: webhook\n    url_secret: hook_url\n    hmac_key_secret: hook_key\n"
    )
    secrets = {"TRIPWIRE_NOTIFY_SECRETS__HOOK_URL": rx.url, "TRIPWIRE_NOTIFY_SECRETS__HOOK_KEY": hmac_key,
               "TRIPWIRE_NOTIFY_COMMIT_INTERVAL_S": "0.05",
               "TRIPWIRE_NOTIFY_INSTANCE_ID": uid("notifier")}  # static member: the restart rejoins at once
    alert = make_alert()
    produce(kafka_bootstrap, topics.alerts, [(alert.incident_id.encode(), encode(alert))])
    first = second = None
    try:
        crash = {**secrets, "TRIPWIRE_NOTIFY_TEST_CRASH_AFTER_DELIVERIES": "1"}
        first = _notify(kafka_bootstrap, prefix, group, routes, crash)
        _, err1 = first.communicate(timeout=60)
        assert first.returncode == -signal.SIGKILL, err1
        assert len(rx.ok()) == 1
        assert committed(kafka_bootstrap, group, topics.alerts) == NO_OFFSET  # killed before the commit

        second = _notify(kafka_bootstrap, prefix, group, routes, secrets)
        wait_until(lambda: committed(kafka_bootstrap, group, topics.alerts) == 1, 60, message="offset 1 committed")
        second.send_signal(signal.SIGTERM)
        _, err2 = second.communicate(timeout=30)
        assert second.returncode == 0, err2
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
        rx.close()
    delivered = rx.ok()
    assert len(delivered) == 2  # the crash window replays exactly the one uncommitted delivery
    assert [r.headers["x-tripwire-dedup-key"] for r in delivered] == [alert.incident_id] * 2
    assert [r.json()["dedup_key"] for r in delivered] == [alert.incident_id] * 2
    assert delivered[0].body == delivered[1].body
    assert "delivered route=hook" in err1 and "delivered route=hook" in err2
    for log_text in (err1, err2):  # secrets never reach the logs
        assert rx.url not in log_text and hmac_key not in log_text
