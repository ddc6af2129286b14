"""Test helpers: uuid names and waiting without sleeping blindly."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def uid(prefix: str) -> str:
    """A unique name for a topic, consumer group or database."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class WaitTimeout(AssertionError):
    pass


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, message: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {message} (last={last!r})")
        time.sleep(interval)
        last = predicate()
    return last


def create_topics(bootstrap: str, names: dict[str, int], config: dict[str, str] | None = None) -> None:
    """Create topics with explicit partition counts and wait until they exist."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=p, replication_factor=1, config=config or {}) for n, p in names.items()],
        operation_timeout=30,
    )
    for f in futures.values():
        f.result(timeout=30)
