"""What every adapter shares: a tool's risk, token counts made disjoint, the message a blocked call returns."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from tripwire.producers.errors import InvalidArgumentError, ToolBlocked

RiskSpec = Mapping[str, str] | Callable[[str], str] | None
"""How an adapter learns a tool's risk: a name -> risk mapping (missing names get the default), a function of
the name, or None (every tool has the default risk)."""


class ToolRisk:
    """Resolves the risk (``low``/``medium``/``high``) the guard and the fail-closed rule see for a tool."""

    __slots__ = ("_default", "_spec")

    def __init__(self, spec: RiskSpec = None, default: str = "low") -> None:
        if spec is not None and not callable(spec) and not isinstance(spec, Mapping):
            raise InvalidArgumentError(f"risk must be a mapping, a callable or None, got {spec!r}")
        self._spec = spec
        self._default = default

    def __call__(self, tool_name: str) -> str:
        spec = self._spec
        if spec is None:
            return self._default
        if isinstance(spec, Mapping):
            return spec.get(tool_name, self._default)
        return spec(tool_name)


class TokenCounts(TypedDict):
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int


def disjoint_usage(
    *, input_total: int, output_total: int, cache_read: int = 0, cache_write: int = 0, reasoning: int = 0
) -> TokenCounts:
    """Provider counts (input including cache, output including reasoning) as the contract's disjoint counts."""
    cache_read, cache_write, reasoning = max(cache_read, 0), max(cache_write, 0), max(reasoning, 0)
    return TokenCounts(
        input_tokens=max(input_total - cache_read - cache_write, 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=max(output_total - reasoning, 0),
        reasoning_tokens=reasoning,
    )


def blocked_message(e: ToolBlocked) -> str:
    """What the model is told instead of the tool's result: the refusal and its (redacted-at-record) reason."""
    kind = "denied" if e.status == "denied" else "blocked"
    return f"tool call {kind} by tripwire ({type(e).__name__}): {e.reason}"


def parse_args(raw: Any) -> Any:
    """Tool arguments as the SDK records them: JSON text is parsed, anything else is kept as given."""
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            return {"input": raw}
    return raw


__all__ = ["RiskSpec", "TokenCounts", "ToolRisk", "blocked_message", "disjoint_usage", "parse_args"]
