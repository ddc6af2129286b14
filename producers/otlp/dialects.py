"""The one mapping table: OTel GenAI semconv, OpenInference and OpenLLMetry/traceloop span attributes
-> a dialect-neutral :class:`SpanFacts` (documented as a table in ``schemas/README.md``).

Pure: no I/O, no protobuf (attributes arrive as a plain ``dict``). A span's dialect is picked by its
marker attribute (``openinference.span.kind`` -> OpenInference; ``traceloop.span.kind`` or
``llm.request.type`` -> traceloop; otherwise GenAI semconv); in each dialect the first attribute of a
field's list that is present wins, so older names (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``)
are read when the newer ones are absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

SpanRole = Literal["llm", "tool", "agent", "root_only", "other"]
Dialect = Literal["genai", "openinference", "traceloop"]

GENAI_ROLES: dict[str, SpanRole] = {
    "chat": "llm",
    "generate_content": "llm",
    "text_completion": "llm",
    "embeddings": "llm",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "invoke_workflow": "agent",
}
"""``gen_ai.operation.name`` -> role (``create_agent`` and anything else: no event)."""

OPENINFERENCE_ROLES: dict[str, SpanRole] = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "root_only",  # a run only at the trace's root: LangChain nests CHAIN spans everywhere
}
TRACELOOP_ROLES: dict[str, SpanRole] = {"workflow": "agent", "agent": "agent", "tool": "tool"}

# field -> attribute names per dialect, first present wins
FIELDS: dict[str, dict[Dialect, tuple[str, ...]]] = {
    "provider": {
        "genai": ("gen_ai.provider.name", "gen_ai.system"),
        "openinference": ("llm.provider", "llm.system", "gen_ai.provider.name", "gen_ai.system"),
        "traceloop": ("gen_ai.provider.name", "gen_ai.system"),
    },
    "request_model": {
        "genai": ("gen_ai.request.model",),
        "openinference": ("llm.model_name", "gen_ai.request.model"),
        "traceloop": ("gen_ai.request.model", "llm.request.model"),
    },
    "response_model": {
        "genai": ("gen_ai.response.model",),
        "openinference": ("llm.model_name",),
        "traceloop": ("gen_ai.response.model", "llm.response.model"),
    },
    "input_tokens": {
        "genai": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        "openinference": ("llm.token_count.prompt",),
        "traceloop": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens"),
    },
    "output_tokens": {
        "genai": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
        "openinference": ("llm.token_count.completion",),
        "traceloop": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens"),
    },
    "cache_read_tokens": {
        "genai": ("gen_ai.usage.cache_read.input_tokens",),
        "openinference": ("llm.token_count.prompt_details.cache_read",),
        "traceloop": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    },
    "cache_write_tokens": {
        "genai": ("gen_ai.usage.cache_creation.input_tokens",),
        "openinference": ("llm.token_count.prompt_details.cache_write",),
        "traceloop": ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"),
    },
    "reasoning_tokens": {
        "genai": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
        "openinference": ("llm.token_count.completion_details.reasoning",),
        "traceloop": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
    },
    "cost_usd": {
        "genai": ("gen_ai.usage.cost",),
        "openinference": ("llm.cost.total",),
        "traceloop": ("gen_ai.usage.cost",),
    },
    "finish_reason": {
        "genai": ("gen_ai.response.finish_reasons",),
        "openinference": ("gen_ai.response.finish_reasons",),
        "traceloop": ("gen_ai.response.finish_reasons", "gen_ai.completion.0.finish_reason"),
    },
    "prompt": {
        "genai": ("gen_ai.input.messages", "gen_ai.prompt"),
        "openinference": ("input.value",),
        "traceloop": ("gen_ai.input.messages", "gen_ai.prompt.0.content", "traceloop.entity.input"),
    },
    "completion": {
        "genai": ("gen_ai.output.messages", "gen_ai.completion"),
        "openinference": ("output.value",),
        "traceloop": ("gen_ai.output.messages", "gen_ai.completion.0.content", "traceloop.entity.output"),
    },
    "tool_name": {
        "genai": ("gen_ai.tool.name",),
        "openinference": ("tool.name", "gen_ai.tool.name"),
        "traceloop": ("gen_ai.tool.name", "traceloop.entity.name"),
    },
    "tool_call_id": {
        "genai": ("gen_ai.tool.call.id",),
        "openinference": ("tool.id", "tool_call.id", "gen_ai.tool.call.id"),
        "traceloop": ("gen_ai.tool.call.id",),
    },
    "tool_args": {
        "genai": ("gen_ai.tool.call.arguments",),
        "openinference": ("input.value",),  # its gen_ai.tool.call.arguments holds the tool's JSON schema
        "traceloop": ("gen_ai.tool.call.arguments", "traceloop.entity.input"),
    },
    "agent_name": {
        "genai": ("gen_ai.agent.name", "gen_ai.agent.id", "gen_ai.workflow.name"),
        "openinference": ("agent.name", "gen_ai.agent.name"),
        "traceloop": ("gen_ai.agent.name", "traceloop.entity.name", "traceloop.workflow.name"),
    },
    "agent_version": {
        "genai": ("gen_ai.agent.version",),
        "openinference": ("gen_ai.agent.version",),
        "traceloop": ("gen_ai.agent.version",),
    },
    "conversation_id": {
        "genai": ("gen_ai.conversation.id",),
        "openinference": ("session.id", "gen_ai.conversation.id"),
        "traceloop": (
            "gen_ai.conversation.id",
            "traceloop.association.properties.conversation_id",
            "traceloop.association.properties.session_id",
        ),
    },
    "principal": {
        "genai": ("enduser.id", "user.id"),
        "openinference": ("user.id", "enduser.id"),
        "traceloop": ("traceloop.association.properties.user_id", "enduser.id", "user.id"),
    },
    "error_type": {
        "genai": ("error.type",),
        "openinference": ("error.type", "exception.type"),
        "traceloop": ("error.type",),
    },
}

OPERATION_BY_TRACELOOP_REQUEST: dict[str, str] = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
}
INFERENCE_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
"""A span event whose attributes may carry ``gen_ai.input.messages`` / ``gen_ai.output.messages``."""


@dataclass(slots=True)
class SpanFacts:
    """What one span says, in tripwire's words (token counts still as the dialect reports them:
    ``input_tokens`` includes cache reads/writes, ``output_tokens`` includes reasoning)."""

    role: SpanRole
    dialect: Dialect
    operation: str = ""
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    finish_reason: str | None = None
    prompt: str | None = None
    completion: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_args: str | None = None
    agent_name: str | None = None
    agent_version: str | None = None
    conversation_id: str | None = None
    principal: str | None = None
    error_type: str | None = None


def dialect_of(attrs: dict[str, Any]) -> Dialect:
    if "openinference.span.kind" in attrs:
        return "openinference"
    if "traceloop.span.kind" in attrs or "llm.request.type" in attrs:
        return "traceloop"
    return "genai"


def role_of(attrs: dict[str, Any], dialect: Dialect) -> tuple[SpanRole, str]:
    """(role, GenAI operation name) of a span."""
    op = attrs.get("gen_ai.operation.name")
    if dialect == "openinference":
        role = OPENINFERENCE_ROLES.get(str(attrs.get("openinference.span.kind", "")).upper(), "other")
        if role == "llm":
            return role, str(op) if op else (
                "embeddings" if attrs["openinference.span.kind"] == "EMBEDDING" else "chat"
            )
        return role, {"tool": "execute_tool", "agent": "invoke_agent"}.get(role, "")
    if dialect == "traceloop":
        kind = attrs.get("traceloop.span.kind")
        if kind in TRACELOOP_ROLES:
            role = TRACELOOP_ROLES[str(kind)]
            return role, {"tool": "execute_tool"}.get(role, "invoke_workflow" if kind == "workflow" else "invoke_agent")
        req = attrs.get("llm.request.type")
        if req is not None or op in GENAI_ROLES:
            operation = str(op) if op else OPERATION_BY_TRACELOOP_REQUEST.get(str(req), "chat")
            return GENAI_ROLES.get(operation, "llm"), operation
        return "other", ""
    if isinstance(op, str) and op in GENAI_ROLES:
        return GENAI_ROLES[op], op
    return "other", str(op or "")


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    for n in names:
        v = attrs.get(n)
        if v is not None and v != "":
            return v
    return None


def _int(v: Any) -> int:
    if isinstance(v, bool) or v is None:
        return 0
    try:
        n = int(v)
    except (TypeError, ValueError):
        return 0
    return n if n > 0 else 0


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f >= 0 and f != float("inf") else None


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, list | tuple) and len(v) == 1 and isinstance(v[0], str):
        return v[0]
    try:
        return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(v)


_COMMON = ("principal", "error_type")
_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "llm": ("provider", "request_model", "response_model", "prompt", "completion", *_COMMON),
    "tool": ("tool_name", "tool_call_id", "tool_args", *_COMMON),
    "agent": ("agent_name", "agent_version", "conversation_id", *_COMMON),
    "root_only": ("agent_name", "agent_version", "conversation_id", *_COMMON),
}
"""The fields read per role (a tool span has no model, an LLM span no tool)."""


def _traceloop_kwargs(text: str) -> str:
    """traceloop records a tool's input as ``{"args": [], "kwargs": {...}}``: keep the keyword arguments."""
    try:
        v = json.loads(text)
    except ValueError:
        return text
    if isinstance(v, dict) and set(v) == {"args", "kwargs"} and not v["args"] and isinstance(v["kwargs"], dict):
        return json.dumps(v["kwargs"], sort_keys=True, separators=(",", ":"))
    return text


def read_facts(attrs: dict[str, Any], events: dict[str, dict[str, Any]] | None = None) -> SpanFacts:
    """Map one span's attributes (and the attributes of its span events, by event name) to facts."""
    dialect = dialect_of(attrs)
    role, operation = role_of(attrs, dialect)
    f = SpanFacts(role=role, dialect=dialect, operation=operation)
    if role == "other":
        return f
    if events and INFERENCE_DETAILS_EVENT in events:  # content logged as an event wins nothing over attributes
        attrs = {**events[INFERENCE_DETAILS_EVENT], **attrs}

    def get(field: str) -> Any:
        return _first(attrs, FIELDS[field][dialect])

    if role == "llm":
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            setattr(f, name, _int(get(name)))
        f.cost_usd = _float(get("cost_usd"))
    for name in _TEXT_FIELDS[role]:
        setattr(f, name, _text(get(name)))
    if dialect == "traceloop" and f.tool_args is not None:
        f.tool_args = _traceloop_kwargs(f.tool_args)
    fr = get("finish_reason") if role == "llm" else None
    if isinstance(fr, list | tuple):
        fr = fr[0] if fr else None
    f.finish_reason = None if fr is None else str(fr)
    if f.provider is not None:
        f.provider = f.provider.lower()
    return f


__all__ = [
    "FIELDS",
    "GENAI_ROLES",
    "OPENINFERENCE_ROLES",
    "TRACELOOP_ROLES",
    "Dialect",
    "SpanFacts",
    "SpanRole",
    "dialect_of",
    "read_facts",
    "role_of",
]
