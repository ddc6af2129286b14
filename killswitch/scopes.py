"""Kill-switch scopes: what a command applies to, parsed once and matched by dictionary lookup.

Grammar (the compacted topic's key is the canonical text of the scope)::

    global
    tenant:<tenant>
    agent:<agent_id>
    agent:<agent_id>@<version>
    tool:<tool_name>
    agent:<agent_id>/tool:<tool_name>
    credential:<fingerprint>          (every agent that uses that credential)

A tool call matches the scopes built from its own identity (tenant, agent, version, tool,
credential), so deciding which commands apply is a handful of dictionary lookups, never a
scan over every active command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from tripwire.killswitch.errors import ScopeError


class ScopeKind(StrEnum):
    GLOBAL = "global"
    TENANT = "tenant"
    AGENT = "agent"
    AGENT_VERSION = "agent_version"
    TOOL = "tool"
    AGENT_TOOL = "agent_tool"
    CREDENTIAL = "credential"


# Names may hold letters, digits and . _ - + (tool names like ``stripe.issue_refund``), but never
# the separators of the grammar (: @ /) nor whitespace, so every scope has one canonical text.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._+\-]*"
_NAME_RE = re.compile(rf"^{_NAME}$")
# Credential fingerprints may carry an algorithm prefix (``sha256:ab12...``) or base64 padding.
_FINGERPRINT = r"[A-Za-z0-9][A-Za-z0-9._+:=\-]*"
_PATTERNS: tuple[tuple[ScopeKind, re.Pattern[str]], ...] = (
    (ScopeKind.GLOBAL, re.compile(r"^global$")),
    (ScopeKind.TENANT, re.compile(rf"^tenant:(?P<tenant>{_NAME})$")),
    (ScopeKind.AGENT_TOOL, re.compile(rf"^agent:(?P<agent>{_NAME})/tool:(?P<tool>{_NAME})$")),
    (ScopeKind.AGENT_VERSION, re.compile(rf"^agent:(?P<agent>{_NAME})@(?P<version>{_NAME})$")),
    (ScopeKind.AGENT, re.compile(rf"^agent:(?P<agent>{_NAME})$")),
    (ScopeKind.TOOL, re.compile(rf"^tool:(?P<tool>{_NAME})$")),
    (ScopeKind.CREDENTIAL, re.compile(rf"^credential:(?P<credential>{_FINGERPRINT})$")),
)
GRAMMAR = (
    "global | tenant:T | agent:A | agent:A@VERSION | tool:X | agent:A/tool:X | credential:FINGERPRINT "
    "(names: letters, digits, . _ - +)"
)


@dataclass(frozen=True, slots=True)
class Scope:
    """A parsed scope; ``str(scope)`` is its canonical text (the topic key)."""

    kind: ScopeKind
    tenant: str | None = None
    agent: str | None = None
    version: str | None = None
    tool: str | None = None
    credential: str | None = None

    def __str__(self) -> str:
        match self.kind:
            case ScopeKind.GLOBAL:
                return "global"
            case ScopeKind.TENANT:
                return f"tenant:{self.tenant}"
            case ScopeKind.AGENT:
                return f"agent:{self.agent}"
            case ScopeKind.AGENT_VERSION:
                return f"agent:{self.agent}@{self.version}"
            case ScopeKind.TOOL:
                return f"tool:{self.tool}"
            case ScopeKind.AGENT_TOOL:
                return f"agent:{self.agent}/tool:{self.tool}"
            case ScopeKind.CREDENTIAL:
                return f"credential:{self.credential}"
        raise AssertionError(self.kind)  # pragma: no cover

    @property
    def names_tool(self) -> bool:
        """True when the scope is about one tool (``tool:X`` or ``agent:A/tool:X``)."""
        return self.tool is not None


def parse_scope(text: str) -> Scope:
    """Parse ``text`` into a :class:`Scope`; raise :class:`ScopeError` naming the grammar if it does not fit."""
    if not isinstance(text, str):
        raise ScopeError(f"a scope is a string, got {type(text).__name__}")
    for kind, pattern in _PATTERNS:
        m = pattern.match(text)
        if m is not None:
            return Scope(kind=kind, **m.groupdict())
    raise ScopeError(f"invalid kill-switch scope {text!r}; expected {GRAMMAR}")


def is_valid_name(name: str | None) -> bool:
    return name is not None and _NAME_RE.match(name) is not None


def scope_text(
    kind: ScopeKind | str,
    *,
    tenant: str | None = None,
    agent: str | None = None,
    version: str | None = None,
    tool: str | None = None,
    credential: str | None = None,
) -> str:
    """Build the canonical text of a scope from its parts (only those the kind uses); ScopeError if one is
    missing or not a valid name."""
    kind = ScopeKind(kind)
    parts = {"tenant": tenant, "agent": agent, "version": version, "tool": tool, "credential": credential}
    wanted = {name: parts[name] for name in _PARTS[kind]}
    missing = [name for name, value in wanted.items() if not value]
    if missing:
        raise ScopeError(f"a {kind.value} scope needs {', '.join(missing)}")
    text = str(Scope(kind, **wanted))
    if parse_scope(text) != Scope(kind, **wanted):
        raise ScopeError(f"cannot build a {kind.value} scope from {wanted}; expected {GRAMMAR}")
    return text


_PARTS: dict[ScopeKind, tuple[str, ...]] = {
    ScopeKind.GLOBAL: (),
    ScopeKind.TENANT: ("tenant",),
    ScopeKind.AGENT: ("agent",),
    ScopeKind.AGENT_VERSION: ("agent", "version"),
    ScopeKind.TOOL: ("tool",),
    ScopeKind.AGENT_TOOL: ("agent", "tool"),
    ScopeKind.CREDENTIAL: ("credential",),
}


@dataclass(frozen=True, slots=True)
class CallIdentity:
    """Who is calling which tool: everything a scope can match on."""

    tenant: str
    agent_id: str
    agent_version: str | None
    tool_name: str
    credential_fingerprint: str | None = None


def matching_scopes(call: CallIdentity) -> tuple[str, ...]:
    """The canonical texts of every scope that applies to ``call``, broadest first.

    A command stored under any of these keys governs the call.
    """
    keys = ["global", f"tenant:{call.tenant}", f"agent:{call.agent_id}"]
    if call.agent_version:
        keys.append(f"agent:{call.agent_id}@{call.agent_version}")
    keys.append(f"tool:{call.tool_name}")
    keys.append(f"agent:{call.agent_id}/tool:{call.tool_name}")
    if call.credential_fingerprint:
        keys.append(f"credential:{call.credential_fingerprint}")
    return tuple(keys)


__all__ = [
    "GRAMMAR",
    "CallIdentity",
    "Scope",
    "ScopeError",
    "ScopeKind",
    "is_valid_name",
    "matching_scopes",
    "parse_scope",
    "scope_text",
]
