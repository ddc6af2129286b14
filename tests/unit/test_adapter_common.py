"""What the framework adapters share: tool risk lookup, disjoint token counts, the refusal message."""

from __future__ import annotations

import pytest

from tripwire.producers import ApprovalDenied, BudgetExceeded, InvalidArgumentError
from tripwire.producers.adapters._common import ToolRisk, blocked_message, disjoint_usage, parse_args

pytestmark = pytest.mark.unit


def test_tool_risk_from_a_mapping_a_function_or_the_default() -> None:
    assert [ToolRisk({"refund": "high"})(n) for n in ("refund", "search")] == ["high", "low"]
    assert ToolRisk(lambda n: "medium" if n.startswith("db.") else "low", "high")("db.write") == "medium"
    assert ToolRisk(None, "medium")("anything") == "medium"
    with pytest.raises(InvalidArgumentError):
        ToolRisk(["refund"])  # type: ignore[arg-type]


def test_provider_counts_become_the_contracts_disjoint_counts() -> None:
    assert disjoint_usage(input_total=1000, output_total=300, cache_read=600, cache_write=100, reasoning=200) == {
        "input_tokens": 300, "cache_read_tokens": 600, "cache_write_tokens": 100, "output_tokens": 100,
        "reasoning_tokens": 200}
    assert disjoint_usage(input_total=5, output_total=1, cache_read=9, reasoning=-3)["input_tokens"] == 0


def test_refusal_messages_name_the_kind_and_the_reason() -> None:
    assert blocked_message(BudgetExceeded("max_tool_calls", 2, 2)) == (
        "tool call blocked by tripwire (BudgetExceeded): budget max_tool_calls exhausted: used 2 of 2")
    assert blocked_message(ApprovalDenied("no")) == "tool call denied by tripwire (ApprovalDenied): no"


def test_tool_args_json_is_parsed_and_plain_text_is_wrapped() -> None:
    assert parse_args('{"a": 1}') == {"a": 1}
    assert parse_args("not json") == {"input": "not json"}
    assert parse_args("") is None and parse_args({"b": 2}) == {"b": 2}
