"""The detector policy: every threshold the operators use, loaded from YAML.

The defaults live in ``default_policy.yaml`` (shipped as package data and documented
there). A user policy file only needs the keys it changes; it is deep-merged over the
defaults and validated, so a typo or a wrong type fails fast with the field's path.
"""

from __future__ import annotations

import fnmatch
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tripwire.processors.errors import PolicyError

Severity = Literal["info", "warning", "critical"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunsPolicy(_Frozen):
    inactivity_timeout_s: float = Field(gt=0)
    reorder_grace_s: float = Field(ge=0)
    closed_retention_s: float = Field(ge=0)


class WindowsPolicy(_Frozen):
    window_s: int = Field(gt=0)
    allowed_lateness_s: float = Field(ge=0)
    relative_accuracy: float = Field(gt=0, lt=1)
    revise_for_s: float = Field(default=300.0, ge=0)
    """How long a closed window is kept: a late call for it within this (wall-clock) time is folded in
    and the window emitted again (same key, later ``emitted_at``: the sink keeps the latest)."""


class IncidentsPolicy(_Frozen):
    cooldown_s: float = Field(gt=0)
    update_interval_s: float = Field(ge=0)
    max_evidence: int = Field(ge=1)


class DetectorPolicy(_Frozen):
    enabled: bool = True
    severity: Severity = "warning"


class ToolErrorRatePolicy(DetectorPolicy):
    window_s: float = Field(gt=0)
    threshold: float = Field(ge=0, le=1)
    min_calls: int = Field(ge=1)


class Slo(_Frozen):
    agent_id: str = "*"
    kind: Literal["model", "tool", "*"] = "*"
    name: str = "*"
    p95_ms: float = Field(gt=0)

    def matches(self, agent_id: str, kind: str, name: str) -> bool:
        return (
            fnmatch.fnmatchcase(agent_id, self.agent_id)
            and self.kind in ("*", kind)
            and fnmatch.fnmatchcase(name, self.name)
        )


class LatencySloPolicy(DetectorPolicy):
    min_count: int = Field(ge=1)
    slos: tuple[Slo, ...] = ()

    def slo_for(self, agent_id: str, kind: str, name: str) -> Slo | None:
        return next((s for s in self.slos if s.matches(agent_id, kind, name)), None)


class CostSpikePolicy(DetectorPolicy):
    bucket_s: float = Field(default=60.0, ge=1)  # spend is compared per bucket (a minute by default)
    alpha: float = Field(gt=0, le=1)
    z_threshold: float = Field(gt=0)
    min_usd: float = Field(ge=0)
    warmup_minutes: int = Field(ge=1)
    mad_floor_usd: float = Field(gt=0)


class RunawayLoopPolicy(DetectorPolicy):
    repeats: int = Field(ge=2)


class SharedCredentialPolicy(DetectorPolicy):
    max_agents: int = Field(ge=1)


class DetectorsPolicy(_Frozen):
    budget_breach: DetectorPolicy
    tool_error_rate: ToolErrorRatePolicy
    latency_slo: LatencySloPolicy
    cost_spike: CostSpikePolicy
    runaway_loop: RunawayLoopPolicy
    unapproved_high_risk: DetectorPolicy
    unauthenticated_tool: DetectorPolicy
    shared_credential: SharedCredentialPolicy
    trace_gaps: DetectorPolicy


class Policy(_Frozen):
    runs: RunsPolicy
    latency_windows: WindowsPolicy
    incidents: IncidentsPolicy
    detectors: DetectorsPolicy


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@cache
def _default_dict() -> dict[str, Any]:
    text = resources.files("tripwire.processors").joinpath("default_policy.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def policy_from_dict(overrides: dict[str, Any] | None = None) -> Policy:
    """The default policy with ``overrides`` deep-merged over it."""
    data = _merge(_default_dict(), overrides or {})
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(f"invalid policy: {e}") from e


def default_policy() -> Policy:
    return policy_from_dict()


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy YAML (only the keys it sets override the defaults); ``None`` gives the defaults."""
    if path is None:
        return default_policy()
    try:
        loaded = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PolicyError(f"cannot read policy file {path}: {e}") from e
    if not isinstance(loaded, dict):
        raise PolicyError(f"policy file {path} must hold a mapping at the top level, got {type(loaded).__name__}")
    return policy_from_dict(loaded)
