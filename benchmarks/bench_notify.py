"""Alert on the topic -> webhook delivered: p50 and p95 latency at 100 alerts/s (goal: p95 < 500 ms).

``tripwire notify`` in its own process (one webhook route, HMAC-signed, no grouping delay) consumes a
uuid-prefixed alerts topic on the real broker and delivers to an HTTP receiver on 127.0.0.1 in this
process. The latency of an
alert is the time from the ``produce()`` call to the receiver's handler seeing its body. The baseline,
run in the same process, is a raw confluent-kafka produce -> consume round trip of one message at
a time; the ratio says what routing, HMAC signing and an HTTP delivery add on top of Kafka itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, bootstrap, percentile, report

RATE = 100  # alerts per second
ALERTS = 1000
WARMUP = 20
BASELINE_ROUNDS = 200
PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 5}


def _create(servers: str, topics: dict[str, int]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": servers})
    for f in admin.create_topics([NewTopic(t, p, 1) for t, p in topics.items()], operation_timeout=30).values():
        f.result(30)


def _delete(servers: str, topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    AdminClient({"bootstrap.servers": servers}).delete_topics(topics)


def baseline_round_trips(servers: str, rounds: int = BASELINE_ROUNDS) -> list[float]:
    """Seconds from produce() to the consumer's poll() returning that message, one message at a time."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"bench_rt_{uuid.uuid4().hex[:10]}"
    _create(servers, {topic: 1})
    producer = Producer({"bootstrap.servers": servers, **PRODUCER})
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[float] = []
    try:
        for i in range(rounds + 10):
            t0 = time.perf_counter()
            producer.produce(topic, key=b"k", value=b"x" * 600)
            producer.poll(0)
            deadline = t0 + 10
            while True:
                m = consumer.poll(0.5)
                if m is not None and m.error() is None:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError("baseline message not consumed within 10 s")
            if i >= 10:  # the first round trips include connection set-up
                out.append(time.perf_counter() - t0)
            time.sleep(1 / RATE)  # the same pacing as the alerts
    finally:
        producer.flush(10)
        consumer.close()
        _delete(servers, [topic])
    return out


class _Receiver:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                seen.setdefault(json.loads(body)["record_id"], time.perf_counter())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _alerts(n: int) -> list[tuple[str, bytes, bytes]]:
    from datetime import UTC, datetime

    from tripwire.schemas import Alert, Severity, encode

    now = datetime.now(UTC)
    out = []
    for i in range(n):
        a = Alert(
            alert_id=str(uuid.uuid4()),
            incident_id=f"inc-{i}-{uuid.uuid4().hex[:8]}",
            kind="cost_spike",
            severity=Severity.CRITICAL,
            scope="agent:bench",
            tenant="acme",
            agent_id="bench",
            observed=4.2,
            threshold=2.0,
            summary="cost per run 4.2x the baseline",
            status="firing",
            created_at=now,
            updated_at=now,
        )
        out.append((a.alert_id, a.incident_id.encode(), encode(a)))
    return out


def _start_notifier(servers: str, prefix: str, url: str, workdir: Path) -> subprocess.Popen:
    """``tripwire notify`` in its own process, as deployed (one webhook route, HMAC-signed)."""
    routes = workdir / "routes.yaml"
    routes.write_text("routes:\n  - name: bench\n    channel: webhook\n    url_secret: url\n    hmac_key_secret: key\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_NOTIFY_")}
    env |= {"TRIPWIRE_NOTIFY_SECRETS__URL": url, "TRIPWIRE_NOTIFY_SECRETS__KEY": uuid.uuid4().hex}
    cmd = [
        sys.executable,
        "-m",
        "tripwire.cli",
        "notify",
        "--routes",
        str(routes),
        "--bootstrap",
        servers,
        "--topic-prefix",
        prefix,
        "--group",
        f"{prefix}.notify",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def notify_latencies(servers: str, n: int = ALERTS) -> tuple[list[float], dict[str, Any]]:
    from confluent_kafka import Producer

    from tripwire.schemas import topic_names

    prefix = f"bench_{uuid.uuid4().hex[:10]}"
    topics = topic_names(prefix)
    _create(servers, {topics.alerts: 6, topics.killswitch: 1, topics.dlq: 1})
    rx = _Receiver()
    workdir = Path(tempfile.mkdtemp(prefix="bench_notify_"))
    proc = _start_notifier(servers, prefix, rx.url, workdir)
    producer = Producer({"bootstrap.servers": servers, **PRODUCER})
    sent: dict[str, float] = {}
    try:
        warm = _alerts(WARMUP)
        for _, key, value in warm:
            producer.produce(topics.alerts, key=key, value=value)
        producer.flush(10)
        deadline = time.monotonic() + 90
        while len(rx.seen) < WARMUP:  # process start, group join and first connections are not in the figure
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"warm-up alerts were not delivered (notifier exit code {proc.poll()})")
            time.sleep(0.05)
        items = _alerts(n)
        t0 = time.perf_counter()
        for i, (alert_id, key, value) in enumerate(items):
            due = t0 + i / RATE
            while (now := time.perf_counter()) < due:
                time.sleep(min(0.002, due - now))
            sent[alert_id] = time.perf_counter()
            producer.produce(topics.alerts, key=key, value=value)
            producer.poll(0)
        producer.flush(10)
        rate = n / (time.perf_counter() - t0)
        deadline = time.monotonic() + 60
        while not all(a in rx.seen for a in sent):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(a in rx.seen for a in sent)}/{n} alerts delivered within 60 s")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        rx.close()
        shutil.rmtree(workdir, ignore_errors=True)
        _delete(servers, list(topics.all()))
    return [rx.seen[a] - t for a, t in sent.items()], {"offered_rate": round(rate, 1), "delivered": n}


def run() -> list[Result]:
    servers = bootstrap()
    base = baseline_round_trips(servers)
    lat, extra = notify_latencies(servers)
    b50, b95 = percentile(base, 50) * 1000, percentile(base, 95) * 1000
    p50, p95 = percentile(lat, 50) * 1000, percentile(lat, 95) * 1000
    p99 = percentile(lat, 99) * 1000
    extra = {**extra, "rate_per_s": RATE, "p99_ms": round(p99, 2), "max_ms": round(max(lat) * 1000, 2)}
    return [
        Result("notify_latency_p50", p50, "ms", ratio=p50 / b50, baseline=b50, extra=extra),
        Result("notify_latency_p95", p95, "ms", ratio=p95 / b95, baseline=b95, goal="p95 < 500 ms", extra=extra),
        Result("kafka_round_trip_p50", b50, "ms", ratio=1.0, baseline=b50, extra={"rounds": len(base)}),
        Result("kafka_round_trip_p95", b95, "ms", ratio=1.0, baseline=b95, extra={"rounds": len(base)}),
    ]


if __name__ == "__main__":
    report(run())
