"""Raw confluent-kafka produce throughput against the broker: the baseline that the SDK's
delivery benchmark compares against. Settings match the SDK's producer (idempotent, acks=all,
lz4, linger 5 ms) so the ratio isolates what tripwire adds."""

from __future__ import annotations

import os
import uuid

from benchmarks._harness import Result, bootstrap, report

MESSAGES = 200_000
PAYLOAD_BYTES = 400  # about the size of one encoded ModelCall event

PRODUCER_CONFIG = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
    "batch.size": 256 * 1024,
    "queue.buffering.max.messages": 500_000,
}


def produce_raw(bootstrap_servers: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    """Produce every (key, value) and wait for all delivery reports; return messages/s."""
    import time

    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap_servers, **PRODUCER_CONFIG})
    delivered = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1

    t0 = time.perf_counter()
    for key, value in payloads:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - t0
    if delivered != len(payloads):
        raise RuntimeError(f"only {delivered}/{len(payloads)} messages were delivered")
    return len(payloads) / elapsed


def make_payloads(n: int = MESSAGES, runs: int = 1000) -> list[tuple[bytes, bytes]]:
    body = os.urandom(PAYLOAD_BYTES)
    keys = [uuid.uuid4().hex.encode() for _ in range(runs)]
    return [(keys[i % runs], body) for i in range(n)]


def run() -> list[Result]:
    from confluent_kafka.admin import AdminClient, NewTopic

    servers = bootstrap()
    topic = f"bench_raw_{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": servers})
    for f in admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)]).values():
        f.result(30)
    payloads = make_payloads()
    produce_raw(servers, topic, payloads[:20_000])  # warm-up: connections, metadata
    rate = produce_raw(servers, topic, payloads)
    admin.delete_topics([topic])
    return [Result("kafka_raw_produce", rate, "msg/s", ratio=1.0, baseline=rate,
                   extra={"payload_bytes": PAYLOAD_BYTES, "messages": MESSAGES})]


if __name__ == "__main__":
    report(run())
