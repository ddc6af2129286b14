"""Shared fixtures. Integration tests need a real Kafka broker:

- ``TRIPWIRE_KAFKA_BOOTSTRAP`` if set (``.ci/run`` starts the dev broker and sets it);
- else a testcontainers Kafka when a Docker engine answers;
- else the test fails with the command that starts the dev broker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers import uid

# The fixtures' events carry fixed dates (2026-01..11); the event-time window (schemas/limits.py) is
# measured from their receipt, now. Tests of the window set their own limits (tests/unit/test_contract_limits.py).
os.environ.setdefault("TRIPWIRE_LIMITS_MAX_AGE_DAYS", "36500")

DEV_BROKER_HINT = (
    "no Kafka broker: start the dev broker with `python -m tripwire.devenv kafka start` "
    "and export TRIPWIRE_KAFKA_BOOTSTRAP=127.0.0.1:9092"
)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("TRIPWIRE_KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    pytest.fail(DEV_BROKER_HINT)


@pytest.fixture
def topic_name() -> str:
    return uid("t")


@pytest.fixture
def group_name() -> str:
    return uid("g")
