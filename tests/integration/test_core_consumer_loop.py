"""The one consumer loop (``tripwire.core.consumer.ConsumerLoop``) on the real broker: it commits only what
its handler says is durable, pauses and re-offers under backpressure without losing or doubling a message,
drains and commits on stop, hands failed commits back, and stops at once on a refused login."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.helpers import create_topics, uid, wait_until
from tripwire.core.consumer import Backpressure, ConsumerLoop, LoopSettings, Message, Offsets
from tripwire.core.kafka_security import KafkaAuthError, KafkaSecurity

pytestmark = pytest.mark.integration


class RecordingHandler:
    """Takes messages in order; ``durable_upto`` caps what it calls durable; scripted backpressure."""

    def __init__(self) -> None:
        self.taken: list[Message] = []
        self.durable_upto: int | None = None  # offset (next to read) of partition 0 that is durable
        self.refuse_take: dict[int, int] = {}  # offset -> how many offers to refuse
        self.refuse_flush = 0
        self.refusals_seen = 0
        self.commits_while_refusing: list[int] = []
        self.failed: list[Offsets] = []
        self.calls: list[str] = []
        self.topic = ""
        self.loop: ConsumerLoop | None = None

    def take(self, msg: Message) -> None:
        left = self.refuse_take.get(msg.offset, 0)
        if left:
            self.refuse_take[msg.offset] = left - 1
            self.refusals_seen += 1
            raise Backpressure(0.05, "store full")
        self.taken.append(msg)

    def step(self, now: float) -> float | None:
        return None

    def committable(self, *, final: bool) -> Offsets:
        if self.refuse_flush:
            self.refuse_flush -= 1
            self.commits_while_refusing.append(self.loop.commits if self.loop else -1)
            raise Backpressure(0.05, "flush refused")
        if final:
            self.calls.append("final")
        upto = self.taken[-1].offset + 1 if self.taken else 0
        if self.durable_upto is not None:
            upto = min(upto, self.durable_upto)
        return {(self.topic, 0): upto} if upto else {}

    def backlogged(self) -> bool:
        return False

    def partitions_assigned(self, partitions: list[tuple[str, int]]) -> None:
        self.calls.append("assigned")

    def partitions_revoked(self, partitions: list[tuple[str, int]]) -> Offsets:
        self.calls.append("revoked")
        return {}

    def drain(self, timeout_s: float) -> None:
        self.calls.append("drain")

    def commit_failed(self, offsets: Offsets) -> None:
        self.failed.append(offsets)

    def close(self) -> None:
        self.calls.append("close")


def produce(bootstrap: str, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(topic, key=b"k", value=f"v{i}".encode(), partition=0)
    assert p.flush(10) == 0


def committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def make_loop(bootstrap: str, topic: str, group: str, handler: Any, **settings: Any) -> ConsumerLoop:
    handler.topic = topic
    conf = {"bootstrap.servers": bootstrap, "group.id": group}
    return ConsumerLoop(conf, [topic], handler, security=KafkaSecurity(), settings=LoopSettings(**settings))


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = uid("loop")
    create_topics(kafka_bootstrap, {name: 1})
    return name


def test_commits_only_what_the_handler_calls_durable(kafka_bootstrap: str, topic: str) -> None:
    produce(kafka_bootstrap, topic, 20)
    group, h = uid("g"), RecordingHandler()
    h.durable_upto = 7
    loop = make_loop(kafka_bootstrap, topic, group, h)
    loop.run(max_seconds=30, until=lambda: len(h.taken) == 20)
    assert [m.offset for m in h.taken] == list(range(20))
    assert committed(kafka_bootstrap, group, topic) == 7
    assert h.calls[-3:] == ["final", "close", "revoked"]  # drain, final commit, close (revokes)
    assert "drain" in h.calls


def test_backpressure_on_take_pauses_and_reoffers_in_order_exactly_once(kafka_bootstrap: str, topic: str) -> None:
    produce(kafka_bootstrap, topic, 50)
    group, h = uid("g"), RecordingHandler()
    h.refuse_take = {10: 3, 30: 2}
    loop = make_loop(kafka_bootstrap, topic, group, h, fill_batch=True, batch_size=100)
    paused_seen: list[bool] = []
    loop.run(max_seconds=30, until=lambda: paused_seen.append(loop.paused) or len(h.taken) == 50)
    assert [m.offset for m in h.taken] == list(range(50))
    assert h.refusals_seen == 5
    assert any(paused_seen) and not paused_seen[-1]  # paused while refused, resumed after
    assert committed(kafka_bootstrap, group, topic) == 50


def test_a_refused_flush_commits_nothing_until_it_succeeds(kafka_bootstrap: str, topic: str) -> None:
    produce(kafka_bootstrap, topic, 5)
    group, h = uid("g"), RecordingHandler()
    loop = make_loop(kafka_bootstrap, topic, group, h)
    loop.run(max_seconds=30, until=lambda: len(h.taken) == 5)  # everything taken and committed
    assert committed(kafka_bootstrap, group, topic) == 5
    produce(kafka_bootstrap, topic, 5)
    h2 = RecordingHandler()
    h2.refuse_flush = 4
    loop2 = h2.loop = make_loop(kafka_bootstrap, topic, group, h2)
    loop2.run(max_seconds=30, until=lambda: len(h2.taken) == 5 and h2.refuse_flush == 0 and loop2.commits > 0)
    assert [m.offset for m in h2.taken] == [5, 6, 7, 8, 9]
    assert h2.commits_while_refusing == [0, 0, 0, 0]  # nothing committed while every flush was refused
    assert committed(kafka_bootstrap, group, topic) == 10  # the first flush that succeeded committed it all


def test_stop_from_another_thread_drains_and_commits(kafka_bootstrap: str, topic: str) -> None:
    produce(kafka_bootstrap, topic, 10)
    group, h = uid("g"), RecordingHandler()
    h.durable_upto = 10
    loop = make_loop(kafka_bootstrap, topic, group, h)
    t = threading.Thread(target=loop.run, kwargs={"max_seconds": 60})
    t.start()
    wait_until(lambda: len(h.taken) == 10, timeout=30, message="all ten taken")
    loop.stop()
    t.join(timeout=30)
    assert not t.is_alive()
    assert committed(kafka_bootstrap, group, topic) == 10
    assert h.calls.count("drain") == 1 and h.calls.count("final") == 1


def test_a_refused_login_stops_the_loop_with_a_kafka_auth_error(kafka_bootstrap: str, topic: str) -> None:
    h = RecordingHandler()
    loop = make_loop(kafka_bootstrap, topic, uid("g"), h)
    loop.auth(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: wrong password"))  # as librdkafka
    with pytest.raises(KafkaAuthError, match="refused the connection"):
        loop.run(max_seconds=30)
    assert "close" in h.calls  # the handler was still closed


def test_a_failed_commit_is_handed_back(kafka_bootstrap: str, topic: str) -> None:
    produce(kafka_bootstrap, topic, 3)
    h = RecordingHandler()
    loop = make_loop(kafka_bootstrap, topic, uid("g"), h)
    # a commit for a partition the group does not know fails on the broker: the offsets come back
    loop._commit({(uid("absent"), 0): 1}, sync=True)
    assert len(h.failed) == 1 and loop.commits == 0
    loop.consumer.close()
