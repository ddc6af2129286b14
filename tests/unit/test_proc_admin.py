"""processors/admin.py ``list_topics``: each attempt waits twice as long as the one before, so metadata
slower than a second (a broker with thousands of topics) arrives instead of timing out forever."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from tripwire.processors.admin import TopicError, list_topics

pytestmark = pytest.mark.unit


class _SlowMetadata:
    """An admin client whose metadata takes ``needs`` seconds to arrive (an attempt waiting less fails)."""

    def __init__(self, needs: float) -> None:
        self.needs = needs
        self.waits: list[float] = []

    def list_topics(self, timeout: float) -> Any:
        self.waits.append(timeout)
        if timeout < self.needs:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return SimpleNamespace(topics={"t": object()})

    def poll(self, timeout: float) -> int:
        return 0


class _Watch:
    checks = 0

    def check(self) -> None:
        self.checks += 1


def test_attempts_double_until_the_metadata_arrives() -> None:
    admin, watch = _SlowMetadata(needs=3.0), _Watch()
    assert list(list_topics(admin, "b:9092", 5.0, watch)) == ["t"]  # type: ignore[arg-type]
    assert admin.waits == [1.0, 2.0, 4.0]  # at a fixed 1 s it would never arrive
    assert watch.checks == 2  # a refused authentication is still checked after every failed attempt


def test_the_deadline_still_bounds_the_attempts() -> None:
    admin = _SlowMetadata(needs=1e9)
    with pytest.raises(TopicError, match="cannot list topics on b:9092"):
        list_topics(admin, "b:9092", 0.05, _Watch())  # type: ignore[arg-type]
    assert all(w <= 0.1 for w in admin.waits)  # never past the deadline (0.1 s floor per attempt)
