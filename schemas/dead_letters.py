"""Dead letters: the one builder every component uses, with one id scheme and one stage vocabulary.

A message that cannot be decoded, validated, processed, stored or delivered becomes a
:class:`~tripwire.schemas.DeadLetter` built here, by the processors, the sink, the notifier and the
embedded runtime alike:

- **id**: ``dlq_id`` is a UUIDv5 of the source position (topic, partition, offset), the ``stage`` and
  the ``part`` of the message that failed (the index of one event in a forwarded batch, the name of a
  notifier route; empty when the whole message failed). A replay of the same failure therefore
  produces the same id, and two different failures of one message (two routes, two stages) two ids.
- **stage** (where it failed): ``decode`` (bytes that are not a record of ours), ``validate`` (a record
  that breaks the contract), ``process`` (an operator or a policy failed on it), ``sink`` (it cannot be
  stored), ``notify`` (it cannot be delivered or published).
- **reason**: the error's message, cut to :data:`MAX_REASON` characters; ``error_type`` names the error
  (an exception class name, or a fixed word such as ``EmptyValue``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import get_args

from tripwire.schemas.records import DeadLetter, DeadLetterStage

DLQ_NAMESPACE = uuid.UUID("6f1d2c3e-5b7a-4f3c-9a8e-1d2c3b4a5f60")
MAX_REASON = 2000
STAGES: tuple[str, ...] = get_args(DeadLetterStage)


def dead_letter_id(topic: str, partition: int, offset: int, stage: str, part: str | int | None = None) -> str:
    """The id of the dead letter of (the ``part`` of) the message at that position, failed at ``stage``."""
    return str(uuid.uuid5(DLQ_NAMESPACE, f"{topic}|{partition}|{offset}|{stage}|{'' if part is None else part}"))


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    stage: DeadLetterStage,
    reason: str,
    error_type: str,
    part: str | int | None = None,
    failed_at: datetime | None = None,
) -> DeadLetter:
    """The dead letter of the message at (``topic``, ``partition``, ``offset``) with its original key and
    value bytes; ``failed_at`` defaults to now (pass the message timestamp to make a replay identical)."""
    if stage not in STAGES:
        raise ValueError(f"dead-letter stage must be one of {', '.join(STAGES)}; got {stage!r}")
    return DeadLetter(
        dlq_id=dead_letter_id(topic, partition, offset, stage, part),
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        reason=reason[:MAX_REASON],
        error_type=error_type,
        stage=stage,
        failed_at=failed_at or datetime.now(UTC),
    )
