"""Helpers for the SDK integration tests: read back everything on a topic, check order and uniqueness."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from tripwire.schemas import decode


@dataclass
class TopicDump:
    raw: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (partition, key, value)

    def events(self) -> list:
        return [decode(v) for _, _, v in self.raw]


def total_messages(bootstrap: str, topic: str, group: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        md = c.list_topics(topic, timeout=10)
        total = 0
        for p in md.topics[topic].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += hi - lo
        return total
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, group: str, expected: int, timeout: float = 60.0) -> TopicDump:
    """Everything on the topic, read until the high watermarks (which must hold ``expected`` messages)."""
    deadline = time.monotonic() + timeout
    while total_messages(bootstrap, topic, group + "_wm") < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    dump = TopicDump()
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        done = {p for p in parts if highs[p] == 0}
        while len(done) < len(parts) and time.monotonic() < deadline:
            for msg in c.consume(num_messages=5000, timeout=0.5):
                if msg.error():
                    continue
                dump.raw.append((msg.partition(), msg.key(), msg.value()))
                if msg.offset() + 1 >= highs[msg.partition()]:
                    done.add(msg.partition())
    finally:
        c.close()
    return dump


def check_exactly_once_in_order(events: list) -> dict[str, list[int]]:
    """Returns seqs per run (in topic order); asserts no duplicate event_id and seqs 0..n-1 in order."""
    ids = [e.event_id for e in events]
    dupes = len(ids) - len(set(ids))
    assert dupes == 0, f"{dupes} duplicate event_ids"
    per_run: dict[str, list[int]] = defaultdict(list)
    for e in events:
        per_run[e.run_id].append(e.seq)
    for run_id, seqs in per_run.items():
        assert seqs == list(range(len(seqs))), f"run {run_id}: seqs out of order or missing: {seqs[:20]}..."
    return per_run
