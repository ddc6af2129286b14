"""The SDK's hot-path encoder writes exactly the bytes of the contract codec, for every event type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tripwire.producers._encode import EventEncoder
from tripwire.producers._runtime import new_span_id, new_trace_id, new_uuid
from tripwire.schemas import ApprovalDecision, ModelCall, RunFinished, RunStarted, ToolCall, decode, encode

pytestmark = pytest.mark.unit

T0 = 1_764_115_200_123_456  # epoch micros


def _base(seq: int) -> dict:
    return {
        "event_id": new_uuid(),
        "schema_version": 1,
        "tenant": "acme",
        "agent_id": "a",
        "agent_version": "1",
        "workflow": "w",
        "environment": "prod",
        "principal": "p",
        "credential_fingerprint": None,
        "trace_id": new_trace_id(),
        "span_id": new_span_id(),
        "parent_span_id": new_span_id(),
        "run_id": "r",
        "seq": seq,
        "ts_start": T0,
        "ts_end": T0 + 1500,
    }


CASES = [
    (
        RunStarted,
        {
            "conversation_id": "c",
            "parent_run_id": None,
            "max_steps": 8,
            "max_tool_calls": None,
            "max_prompt_tokens": 12000,
            "max_completion_tokens": 1500,
            "max_cost_usd": 0.75,
        },
        0,
    ),
    (
        ModelCall,
        {
            "operation_name": "chat",
            "provider": "openai",
            "request_model": "gpt-4.1-mini",
            "response_model": "gpt-4.1-mini-2025",
            "input_tokens": 812,
            "cache_read_tokens": 400,
            "cache_write_tokens": 0,
            "output_tokens": 95,
            "reasoning_tokens": 7,
            "cost_usd": 0.0003568,
            "cost_source": "price_table",
            "price_version": "genai-prices/0.2.3",
            "status": "ok",
            "finish_reason": "stop",
            "error_type": None,
            "prompt": "hé ✓",
            "completion": None,
        },
        1,
    ),
    (
        ToolCall,
        {
            "tool_name": "stripe.issue_refund",
            "tool_call_id": "tc",
            "risk": "high",
            "args": '{"a":1}',
            "args_hash": "ab" * 32,
            "status": "blocked",
            "error_type": "BudgetExceeded",
            "idempotency_key": "k",
            "approval_ref": None,
            "side_effect": True,
            "blocked_reason": "budget",
        },
        2,
    ),
    (
        ApprovalDecision,
        {
            "tool_name": "t",
            "tool_call_id": "tc",
            "risk": "medium",
            "decision": "denied",
            "approver": "me",
            "reason": None,
        },
        3,
    ),
    (RunFinished, {"outcome": "killed", "error_type": "ToolBlocked", "last_seq": 4}, 4),
]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "fastavro"])
@pytest.mark.parametrize(("model", "fields", "seq"), CASES, ids=[c[0].__name__ for c in CASES])
def test_bytes_identical_to_contract_codec(model, fields, seq, compiled) -> None:
    enc = EventEncoder(compiled=compiled)
    assert enc.compiled is compiled
    d = {**_base(seq), **fields}
    ours = enc.encode(model, dict(d))
    as_model = {**d, "ts_start": datetime.fromtimestamp(T0 / 1e6, UTC).replace(microsecond=T0 % 1_000_000)}
    as_model["ts_end"] = datetime.fromtimestamp((T0 + 1500) // 1_000_000, UTC).replace(
        microsecond=(T0 + 1500) % 1_000_000
    )
    validated = model.model_validate(as_model)
    assert ours == encode(validated)
    back = decode(ours)
    assert back == validated
    assert set(enc.field_names[model]) == set(model.model_fields)


def test_large_strings_and_none_everywhere() -> None:
    enc = EventEncoder()
    d = {
        **_base(1),
        **CASES[1][1],
        "prompt": "x" * 100_000,
        "completion": None,
        "cost_usd": None,
        "response_model": None,
        "finish_reason": None,
        "price_version": None,
        "principal": None,
        "parent_span_id": None,
    }
    ours = enc.encode(ModelCall, dict(d))
    assert decode(ours).prompt == "x" * 100_000
    base = {k: d[k] for k in enc.field_names[ModelCall][1:10]}
    rest = {k: v for k, v in d.items() if k not in base}
    assert enc.encode(ModelCall, rest, enc.encode_const(base), base) == ours
    assert ours == EventEncoder(compiled=False).encode(ModelCall, dict(d))


def test_run_constant_fields_spliced_from_a_per_run_blob() -> None:
    from tripwire.producers._encode import RUN_CONSTANT_FIELDS

    enc = EventEncoder()
    d = {**_base(2), **CASES[2][1]}
    base = {k: d[k] for k in RUN_CONSTANT_FIELDS}
    rest = {k: v for k, v in d.items() if k not in base}
    const = enc.encode_const(base)
    assert const
    full = enc.encode(ToolCall, dict(d))
    assert full == encode(decode(full))
    assert enc.encode(ToolCall, rest, const, base) == full
    non_ascii = {**rest, "args": '{"note":"café ✓"}'}
    expected = enc.encode(ToolCall, {**base, **non_ascii})
    assert enc.encode(ToolCall, non_ascii, const, base) == expected
    assert decode(expected).args == '{"note":"café ✓"}'
    slow = EventEncoder(compiled=False)
    assert slow.encode_const(base) == b""
    assert slow.encode(ToolCall, rest, b"", base) == full
