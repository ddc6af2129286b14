"""The event limits (schemas/limits.py): each rule with hand-computed cases at and over its ceiling."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.proc_factory import T0, RunScript
from tripwire.schemas import EventLimits, ModelCall, RunFinished, RunStarted, ToolCall, check_event
from tripwire.schemas.limits import nesting_depth

pytestmark = pytest.mark.unit

LIM = EventLimits(max_id_chars=10, max_text_chars=20, max_nesting=3, max_tokens_per_call=100,
                  max_cost_per_call_usd=2.0, max_call_duration_s=60, max_seq=50, max_cost_per_run_usd=10.0,
                  max_tokens_per_run=1000, max_age_days=2, max_ahead_s=30)  # fmt: skip
AT = T0.timestamp() + 1.0  # received 1 s after the script's first event starts


def call(**over) -> ModelCall:  # type: ignore[no-untyped-def]
    r = RunScript(1, tenant="acme", agent_id="a1", run_id="run-1", credential=None)
    ev = r.model(0.5, input_tokens=10, output=5, model="m", provider="p")
    return ModelCall(**{**ev.model_dump(), "agent_version": "1", "workflow": "w", "environment": "e",
                        "principal": None, **over})  # fmt: skip


def test_an_ordinary_event_passes() -> None:
    assert check_event(call(), AT, LIM) is None


def test_identifiers_bounded_in_length_and_free_of_control_characters() -> None:
    assert check_event(call(run_id="r" * 10), AT, LIM) is None
    assert check_event(call(run_id="r" * 11), AT, LIM) == "run_id is 11 characters, over the limit of 10"
    assert check_event(call(tenant="ac\x00me"), AT, LIM) == "tenant contains a control character"
    assert check_event(call(request_model="gpt\n4"), AT, LIM) == "request_model contains a control character"


def test_costs_and_tokens_under_the_per_call_ceilings() -> None:
    assert check_event(call(cost_usd=2.0), AT, LIM) is None
    assert check_event(call(cost_usd=2.01), AT, LIM) == "cost_usd 2.01 is over the per-call limit of 2.0"
    assert check_event(call(cost_usd=1e308), AT, LIM) == "cost_usd 1e+308 is over the per-call limit of 2.0"
    assert check_event(call(output_tokens=100), AT, LIM) is None
    assert check_event(call(output_tokens=101), AT, LIM) == "output_tokens 101 is over the per-call limit of 100"
    default = EventLimits(max_age_days=36500)
    assert (
        check_event(call(cost_usd=1e12), AT, default) == "cost_usd 1000000000000.0 is over the per-call limit of 1000.0"
    )


def test_seq_and_run_budgets_under_the_per_run_ceilings() -> None:
    assert check_event(call(seq=50), AT, LIM) is None
    assert check_event(call(seq=51), AT, LIM) == "seq 51 is over the limit of 50"
    assert check_event(call(seq=2**62), AT, LIM) == f"seq {2**62} is over the limit of 50"
    base = call().model_dump(exclude={"operation_name", "provider", "request_model", "response_model", "input_tokens",
                                       "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
                                       "cost_usd", "cost_source", "price_version", "status", "finish_reason",
                                       "error_type", "prompt", "completion"})  # fmt: skip
    assert check_event(RunStarted(**base, max_cost_usd=10.0, max_steps=50), AT, LIM) is None
    assert (
        check_event(RunStarted(**base, max_cost_usd=10.5), AT, LIM)
        == "max_cost_usd 10.5 is over the per-run limit of 10.0"
    )
    assert check_event(RunStarted(**base, max_steps=51), AT, LIM) == "max_steps 51 is over the limit of 50"
    assert check_event(RunStarted(**base, max_prompt_tokens=1001), AT, LIM) == (
        "max_prompt_tokens 1001 is over the per-run limit of 1000"
    )
    fin = RunFinished(**{**base, "seq": 60}, outcome="success", last_seq=60)
    assert check_event(fin, AT, LIM) == "seq 60 is over the limit of 50"


def test_timestamps_within_the_window_around_receipt_and_durations_bounded() -> None:
    start = T0
    assert check_event(call(ts_start=start, ts_end=start + timedelta(seconds=31)), AT, LIM) is None  # end = AT + 30
    late = check_event(call(ts_start=start, ts_end=start + timedelta(seconds=31.5)), AT, LIM)
    assert late is not None and late.startswith(
        "ts_end 2026-03-01T12:00:31.500000+00:00 is outside the accepted window"
    )
    old = start - timedelta(days=2, seconds=1)  # received 2 days + 2 s after it
    assert check_event(call(ts_start=old, ts_end=old), AT, LIM).startswith(
        "ts_start 2026-02-27T11:59:59+00:00 is outside"
    )  # type: ignore[union-attr]
    edge = start - timedelta(days=2) + timedelta(seconds=1)  # exactly 2 days before receipt
    assert check_event(call(ts_start=edge, ts_end=edge), AT, LIM) is None
    assert check_event(call(ts_start=start - timedelta(seconds=61), ts_end=start), AT, LIM) == (
        "duration 61 s is over the limit of 60 s"
    )
    from datetime import UTC, datetime

    for year in (1970, 9999):
        t = datetime(year, 1, 1, tzinfo=UTC)
        assert "is outside the accepted window" in check_event(call(ts_start=t, ts_end=t), AT, LIM)  # type: ignore[operator]


def test_text_sizes_and_argument_nesting_bounded() -> None:
    r = RunScript(1, run_id="run-1", credential=None)
    tool = r.tool("t", args='{"a": [1, {"b": "[[[[["}]}')  # depth 3; the brackets in the string do not count
    tool = ToolCall(**{**tool.model_dump(), "agent_version": "1", "workflow": "w", "environment": "e",
                       "principal": None, "tenant": "acme", "agent_id": "a1", "tool_call_id": "c1"})  # fmt: skip
    assert nesting_depth(tool.args or "") == 3
    assert check_event(tool.model_copy(update={"args": None}), AT, LIM) is None
    lim = LIM.model_copy(update={"max_text_chars": 100})
    assert check_event(tool, AT, lim) is None
    deep = "[" * 4 + "]" * 4
    assert check_event(tool.model_copy(update={"args": deep}), AT, lim) == "args nest 4 deep, over the limit of 3"
    assert check_event(tool, AT, LIM) == "args is 26 characters, over the limit of 20"
    assert nesting_depth("[" * 10_000 + "]" * 10_000) == 10_000
    assert nesting_depth('"\\"[["') == 0


def test_control_characters_of_every_range_and_non_printable_characters_that_are_not_control() -> None:
    # the check scans only ids that are not all printable; C1 controls count, other non-printables do not
    assert check_event(call(workflow="w\x9f"), AT, LIM) == "workflow contains a control character"
    assert check_event(call(workflow="w\x7f"), AT, LIM) == "workflow contains a control character"
    assert check_event(call(workflow="w\u00a0x"), AT, LIM) is None  # a no-break space: not printable, not control
    assert check_event(call(workflow="w\u2028"), AT, LIM) is None


def test_an_object_without_model_fields_is_checked_on_every_name() -> None:
    # the per-class plan keeps only a model's fields; anything else with a __dict__ gets every name
    from types import SimpleNamespace

    assert check_event(SimpleNamespace(run_id="r" * 11), AT, LIM) == "run_id is 11 characters, over the limit of 10"
    assert check_event(SimpleNamespace(max_completion_tokens=1001), AT, LIM) == (
        "max_completion_tokens 1001 is over the per-run limit of 1000"
    )
    assert check_event(SimpleNamespace(tool_name="t", seq=3), AT, LIM) is None
