"""Routes: which notifications go where, how often, and how bursts are grouped (YAML).

    routes:
      - name: oncall-pager
        channel: pagerduty            # webhook | slack | pagerduty
        routing_key_secret: pd_oncall # TRIPWIRE_NOTIFY_SECRETS__PD_ONCALL
        match:                        # every key optional; lists of glob patterns; all keys must match
          severity: [critical]        # or min_severity: warning
          kind: ["cost_*", killswitch]
          agent: ["refund-*"]
          tenant: [acme]
          source: [alert, killswitch]
        rate_limit: {per_minute: 30, burst: 10}
        group_wait_s: 0               # hold the first record of an incident this long, folding more in
        group_interval_s: 60          # after a delivery, fold further firing records this long

Secrets (webhook ``url``, ``hmac_key``, ``routing_key``) are given inline or, better, as
``<field>_secret: NAME`` resolved from :class:`NotifyConfig` ``secrets``; both become ``SecretStr``.
A notification goes to every route that matches it.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from tripwire.notify.channels import (
    PAGERDUTY_URL,
    HttpRequest,
    Notification,
    pagerduty_request,
    slack_request,
    webhook_request,
)
from tripwire.notify.config import NotifyConfig, RoutesError

_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_SECRET_FIELDS = ("url", "hmac_key", "routing_key")


def _patterns(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list | tuple) and v and all(isinstance(x, str) and x for x in v):
        return tuple(v)
    raise ValueError("expected a pattern or a non-empty list of patterns")


class Match(BaseModel):
    """All given keys must match; each is a list of glob patterns (``fnmatchcase``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: tuple[Literal["info", "warning", "critical"], ...] | None = None
    min_severity: Literal["info", "warning", "critical"] | None = None
    kind: tuple[str, ...] | None = None
    agent: tuple[str, ...] | None = None
    tenant: tuple[str, ...] | None = None
    source: tuple[Literal["alert", "killswitch"], ...] | None = None

    @field_validator("severity", "kind", "agent", "tenant", "source", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _patterns(v)

    def matches(self, n: Notification) -> bool:
        if self.source is not None and n.source not in self.source:
            return False
        if self.severity is not None and n.severity not in self.severity:
            return False
        if self.min_severity is not None and _SEVERITY_RANK.get(n.severity, -1) < _SEVERITY_RANK[self.min_severity]:
            return False
        return _any(self.kind, n.kind) and _any(self.agent, n.agent_id) and _any(self.tenant, n.tenant)


def _any(patterns: tuple[str, ...] | None, value: str | None) -> bool:
    if patterns is None:
        return True
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


class RateLimit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    per_minute: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    channel: Literal["webhook", "slack", "pagerduty"]
    match: Match = Field(default_factory=Match)
    url: SecretStr | None = None
    hmac_key: SecretStr | None = None
    routing_key: SecretStr | None = None
    rate_limit: RateLimit | None = None
    group_wait_s: float = Field(default=0.0, ge=0, le=3600)
    group_interval_s: float = Field(default=30.0, ge=0, le=86400)

    @model_validator(mode="after")
    def _channel_needs(self) -> Route:
        if self.channel in ("webhook", "slack") and self.url is None:
            raise ValueError(f"a {self.channel} route needs url (or url_secret)")
        if self.channel == "pagerduty" and self.routing_key is None:
            raise ValueError("a pagerduty route needs routing_key (or routing_key_secret)")
        if self.channel != "webhook" and self.hmac_key is not None:
            raise ValueError("hmac_key only applies to webhook routes")
        if self.url is not None and not self.url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self

    def matches(self, n: Notification) -> bool:
        return self.match.matches(n)

    def request(self, n: Notification) -> HttpRequest:
        if self.channel == "webhook":
            assert self.url is not None
            key = self.hmac_key.get_secret_value().encode() if self.hmac_key else None
            return webhook_request(n, self.url.get_secret_value(), key)
        if self.channel == "slack":
            assert self.url is not None
            return slack_request(n, self.url.get_secret_value())
        assert self.routing_key is not None
        url = self.url.get_secret_value() if self.url else PAGERDUTY_URL
        return pagerduty_request(n, self.routing_key.get_secret_value(), url)


class TokenBucket:
    """``burst`` tokens, refilled at ``per_minute``/60 per second."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.per_minute / 60.0
        self.capacity = float(limit.burst)
        self.tokens = self.capacity
        self.at = now

    def try_take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a token is available."""
        tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


def _resolve_secrets(raw: dict[str, Any], config: NotifyConfig, where: str) -> dict[str, Any]:
    out = dict(raw)
    for name in _SECRET_FIELDS:
        ref = out.pop(f"{name}_secret", None)
        if ref is None:
            continue
        if name in out:
            raise RoutesError(f"{where}: give {name} or {name}_secret, not both")
        if not isinstance(ref, str) or not ref:
            raise RoutesError(f"{where}: {name}_secret must name a secret")
        value = config.secret(ref)
        if value is None:
            raise RoutesError(
                f"{where}: secret {ref!r} for {name} is not set (set TRIPWIRE_NOTIFY_SECRETS__{ref.upper()})"
            )
        out[name] = value
    return out


def routes_from_dict(doc: Any, config: NotifyConfig | None = None) -> tuple[Route, ...]:
    config = config or NotifyConfig()
    if not isinstance(doc, dict) or not isinstance(doc.get("routes"), list) or not doc["routes"]:
        raise RoutesError("routes file: expected a mapping with a non-empty 'routes' list")
    unknown = set(doc) - {"routes"}
    if unknown:
        raise RoutesError(f"routes file: unknown top-level keys {sorted(unknown)}")
    routes: list[Route] = []
    for i, raw in enumerate(doc["routes"]):
        where = f"routes[{i}]"
        if not isinstance(raw, dict):
            raise RoutesError(f"{where}: expected a mapping")
        if isinstance(raw.get("name"), str):
            where = f"route {raw['name']!r}"
        try:
            routes.append(Route.model_validate(_resolve_secrets(raw, config, where)))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = str(first["msg"]).removeprefix("Value error, ")
            raise RoutesError(f"{where}: {loc}: {msg}" if loc else f"{where}: {msg}") from e
    names = [r.name for r in routes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RoutesError(f"routes file: duplicate route names {dupes}")
    return tuple(routes)


def load_routes(path: Path | str, config: NotifyConfig | None = None) -> tuple[Route, ...]:
    """Parse and validate the routes YAML; raises :class:`RoutesError` naming the route and field."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise RoutesError(f"routes file {p}: cannot read: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise RoutesError(f"routes file {p}: not valid YAML: {e}") from e
    try:
        return routes_from_dict(doc, config)
    except RoutesError as e:
        raise RoutesError(f"{p}: {e}") from e
