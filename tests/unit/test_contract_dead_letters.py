"""The one dead-letter builder: one id scheme (source position + stage + failed part), one stage vocabulary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tripwire.schemas import DeadLetter, dead_letter, dead_letter_id, decode, encode

pytestmark = pytest.mark.unit


def test_a_replay_of_the_same_failure_has_the_same_id_and_bytes() -> None:
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    a = dead_letter("t", 2, 41, b"k", b"\x00bad", stage="decode", reason="bad marker", error_type="DecodeError",
                    failed_at=at)  # fmt: skip
    b = dead_letter("t", 2, 41, b"k", b"\x00bad", stage="decode", reason="bad marker", error_type="DecodeError",
                    failed_at=at)  # fmt: skip
    assert a == b
    assert encode(a) == encode(b)
    assert decode(encode(a)) == a


def test_different_failures_of_one_message_have_different_ids() -> None:
    ids = {
        dead_letter_id("t", 0, 7, "decode"),
        dead_letter_id("t", 0, 7, "sink"),
        dead_letter_id("t", 0, 7, "notify", "pagerduty"),
        dead_letter_id("t", 0, 7, "notify", "slack"),
        dead_letter_id("t", 0, 7, "process", 3),
        dead_letter_id("t", 1, 7, "decode"),
        dead_letter_id("u", 0, 7, "decode"),
    }
    assert len(ids) == 7


def test_the_record_keeps_the_original_bytes_and_cuts_the_reason() -> None:
    dl = dead_letter("t", 0, 1, None, b"\xff" * 10, stage="validate", reason="x" * 5000, error_type="E")
    assert isinstance(dl, DeadLetter)
    assert (dl.key, dl.value, len(dl.reason), dl.stage) == (None, b"\xff" * 10, 2000, "validate")
    assert dl.dlq_id == dead_letter_id("t", 0, 1, "validate")


def test_a_stage_outside_the_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="stage must be one of decode, validate, process, sink, notify"):
        dead_letter("t", 0, 1, None, None, stage="parse", reason="r", error_type="E")  # type: ignore[arg-type]
