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
- **size**: with ``max_bytes``, a dead letter whose original key and value would make it larger than
  that (a producer's request limit) leaves out the key, then the value, and says so in the reason
  (``[key of N bytes omitted]``): the failure is always recorded, never lost for its size.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import get_args

from tripwire.schemas.records import DeadLetter, DeadLetterStage

DLQ_NAMESPACE = uuid.UUID("6f1d2c3e-5b7a-4f3c-9a8e-1d2c3b4a5f60")
MAX_REASON = 2000
STAGES: tuple[str, ...] = get_args(DeadLetterStage)
_FIXED_BYTES = 256  # a dead letter's encoding besides key, value, reason, topic and error type (header, id, ...)


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
    max_bytes: int | None = None,
) -> DeadLetter:
    """The dead letter of the message at (``topic``, ``partition``, ``offset``) with its original key and
    value bytes; ``failed_at`` defaults to now (pass the message timestamp to make a replay identical)."""
    if stage not in STAGES:
        raise ValueError(f"dead-letter stage must be one of {', '.join(STAGES)}; got {stage!r}")
    reason = reason[:MAX_REASON]
    if max_bytes is not None:
        budget = max_bytes - _FIXED_BYTES - 4 * len(reason) - len(topic) - len(error_type)
        if key is not None and len(key) + (len(value) if value is not None else 0) > budget:
            reason, key = f"{reason} [key of {len(key)} bytes omitted]", None
        if value is not None and len(value) > budget:
            reason, value = f"{reason} [value of {len(value)} bytes omitted]", None
    return DeadLetter(
        dlq_id=dead_letter_id(topic, partition, offset, stage, part),
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        reason=reason,
        error_type=error_type,
        stage=stage,
        failed_at=failed_at or datetime.now(UTC),
    )
