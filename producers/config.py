"""SDK configuration: frozen pydantic-settings classes (env prefix ``TRIPWIRE_``) and a YAML loader.

The loader accepts the agent YAML from the seed as-is::

    agent:
      name: "refund-assistant"
      max_steps: 8
      max_tool_calls: 5
      max_prompt_tokens: 12000
      max_completion_tokens: 1500
      max_cost_usd: 0.75
      models: {default: "gpt-4.1-mini", escalate: "gpt-4.1"}
      escalation_rules:
        - if: "tool_error_rate > 0.10"
          action: "handoff_to_human"
      logging:
        trace_id: true
        log_tool_args: "redact_pii"
        store_prompts: "30_days"

``models``, ``escalation_rules`` and ``logging`` may sit under ``agent:`` or next to it. The SDK's own
settings (``tenant``, ``environment``, ``kafka``, ``delivery``, ``redaction``, ``price_overrides``,
``enabled``) are further top-level keys. Values in the file win over the environment; the environment
fills in whatever the file leaves out. Any invalid value fails at startup with a
:class:`tripwire.core.errors.ConfigError` that names the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tripwire.core.errors import ConfigError
from tripwire.core.kafka_security import KafkaSecurity
from tripwire.schemas.config import SchemaConfig

DEFAULT_TOPIC = "tripwire.events.v1"
DEFAULT_SPOOL_DIR = Path(".tripwire") / "spool"

_STRICT = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ModelsSpec(BaseModel):
    model_config = _STRICT

    default: str | None = None
    escalate: str | None = None


class EscalationRule(BaseModel):
    """One ``if:``/``action:`` rule; recorded with the config, evaluated by the processors."""

    model_config = _STRICT

    condition: str = Field(alias="if", min_length=1)
    action: str = Field(min_length=1)


class AgentSpec(BaseModel):
    """The ``agent:`` block: identity and per-run budgets (``None`` = no cap)."""

    model_config = _STRICT

    name: str | None = Field(default=None, min_length=1)
    max_steps: int | None = Field(default=None, ge=0)
    max_tool_calls: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    max_completion_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    escalation_rules: tuple[EscalationRule, ...] = ()


_RETENTION = re.compile(r"^\s*(\d+)\s*(?:_|\s)?\s*(d|day|days)\s*$", re.IGNORECASE)
_OFF = {"", "off", "false", "no", "none", "0", "never", "disabled"}
_ON = {"on", "true", "yes", "forever", "always"}


class LoggingSpec(BaseModel):
    """The ``logging:`` block.

    ``store_prompts`` accepts a bool or a retention such as ``"30_days"`` (kept, retention recorded in
    ``prompt_retention_days``). ``log_tool_args``: ``redact_pii`` (args are logged after redaction) or
    ``none`` (only the args hash is logged).
    """

    model_config = _STRICT

    trace_id: bool = True
    log_tool_args: Literal["redact_pii", "none"] = "redact_pii"
    store_prompts: bool = False
    prompt_retention_days: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _parse_store_prompts(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "store_prompts" not in data:
            return data
        raw = data["store_prompts"]
        if isinstance(raw, bool) or raw is None:
            return {**data, "store_prompts": bool(raw)}
        if isinstance(raw, int):
            if raw < 0:
                raise ValueError(f"store_prompts: expected a bool or a retention like '30_days', got {raw!r}")
            return {**data, "store_prompts": raw > 0, "prompt_retention_days": raw or None}
        text = str(raw).strip().lower()
        if text in _OFF:
            return {**data, "store_prompts": False}
        if text in _ON:
            return {**data, "store_prompts": True}
        m = _RETENTION.match(text)
        if not m or int(m.group(1)) < 1:
            raise ValueError(f"store_prompts: expected a bool or a retention like '30_days', got {raw!r}")
        return {**data, "store_prompts": True, "prompt_retention_days": int(m.group(1))}


class RedactionSpec(BaseModel):
    """How PII and secrets are removed before anything is serialized."""

    model_config = _STRICT

    mode: Literal["redact", "hash", "drop"] = "redact"
    detectors: tuple[
        Literal[
            "secret",
            "cloud",
            "payment",
            "chat",
            "saas",
            "vcs",
            "registry",
            "ai",
            "private_key",
            "jwt",
            "url_credentials",
            "generic",
            "email",
            "phone",
            "card",
            "iban",
        ],
        ...,
    ] = ("secret", "email", "card", "iban", "phone")
    """Detector families switched on. ``secret`` = every credential family (cloud, payment, chat, saas,
    vcs, registry, ai, private_key, jwt, url_credentials, generic); list single families to narrow it."""
    hash_key: SecretStr | None = None
    """HMAC key for ``hash`` mode, so hashes correlate across processes without being guessable."""
    sensitive_keys: tuple[str, ...] = ("password", "passwd", "secret", "token", "api_key", "apikey", "authorization")
    """Dict keys whose values are masked whole, whatever they contain (substring match, case-insensitive)."""


class KafkaProducerSettings(KafkaSecurity):
    """Kafka settings of the SDK's producer (env prefix ``TRIPWIRE_KAFKA_``); TLS and SASL are the shared
    :class:`~tripwire.core.kafka_security.KafkaSecurity` fields."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_KAFKA_", frozen=True, extra="forbid")

    bootstrap: str = "127.0.0.1:9092"
    topic: str = DEFAULT_TOPIC
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    linger_ms: int = Field(default=20, ge=0, le=60_000)
    batch_size: int = Field(default=262_144, ge=1)
    client_id: str = "tripwire-sdk"
    extra: dict[str, str] = Field(default_factory=dict)
    """Further librdkafka properties (cannot weaken idempotence or acks)."""

    @field_validator("extra")
    @classmethod
    def _no_weakening(cls, value: dict[str, str]) -> dict[str, str]:
        forbidden = {"enable.idempotence", "acks", "request.required.acks", "bootstrap.servers"}
        bad = sorted(forbidden & set(value))
        if bad:
            raise ValueError(f"kafka.extra may not set {', '.join(bad)} (the SDK fixes them)")
        return value


class DeliverySettings(BaseSettings):
    """Queueing, spooling and shutdown bounds (env prefix ``TRIPWIRE_DELIVERY_``)."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_DELIVERY_", frozen=True, extra="forbid")

    transport: Literal["kafka", "queue"] = "kafka"
    encode_on_agent_thread: bool = False
    """Encode Avro on the agent's thread (True) or in the delivery worker (False, the default: the agent
    thread then only builds the record and enqueues it; anything that can fail runs in the worker)."""
    queue_max: int = Field(default=100_000, ge=1)
    """Hard cap of the in-memory hand-off queue; the worker spills to the spool long before it is reached."""
    inflight_max: int = Field(default=50_000, ge=1)
    """Records handed to the transport but not yet acknowledged; beyond this, records go to the spool."""
    probe_inflight: int = Field(default=100, ge=1)
    """While the broker is down, at most this many spooled records are offered to the transport to probe it."""
    spool_enabled: bool = True
    spool_dir: Path = DEFAULT_SPOOL_DIR
    handoff: Literal["durable", "memory"] = "durable"
    """``durable`` (with the spool on): the worker appends each record to the on-disk log before it hands
    it to the Kafka client and marks it on the broker's ack; a restarted process delivers what is not
    marked, so a killed process loses at most the records still in the in-memory hand-off queue: those
    emitted during the worker's last cycle (about ``poll_interval_s`` plus one write and fsync) while it
    keeps up, its whole backlog when it does not. ``memory``: records go to the Kafka client straight from
    memory; a killed process also loses what the client held (up to ``inflight_max``)."""
    fsync: Literal["batch", "interval", "off"] = "batch"
    """When the durable log is fsynced: ``batch`` before each batch is handed to the Kafka client (a machine
    crash loses nothing more than a process kill); ``interval`` at most every ``fsync_interval_ms`` (a
    machine crash can also lose the records of that last interval); ``off`` never (the OS writes back)."""
    fsync_interval_ms: int = Field(default=20, ge=1, le=60_000)
    """With ``fsync: interval``: the longest time between two fsyncs of the durable log."""
    handle_signals: bool = True
    """On SIGTERM (and SIGINT unless the application set its own handler): flush for at most
    ``signal_flush_s``, leave the rest in the spool, then pass the signal on to the previous handler or the
    default action. Only installed when the tracer is built in the main thread."""
    signal_flush_s: float = Field(default=2.0, ge=0, le=60)
    """How long a SIGTERM/SIGINT may spend flushing before the signal is passed on."""
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    segment_bytes: int = Field(default=1024 * 1024, ge=256)
    poll_interval_s: float = Field(default=0.01, gt=0, le=1)
    flush_timeout_s: float = Field(default=5.0, ge=0)
    close_timeout_s: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _segment_fits(self) -> DeliverySettings:
        if self.segment_bytes > self.spool_max_bytes:
            raise ValueError(
                f"segment_bytes ({self.segment_bytes}) must not exceed spool_max_bytes ({self.spool_max_bytes})"
            )
        return self


class TracerConfig(BaseSettings):
    """Everything a :class:`~tripwire.producers.Tracer` needs (env prefix ``TRIPWIRE_``)."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_", frozen=True, extra="forbid", populate_by_name=True)

    enabled: bool = True
    tenant: str = Field(default="default", min_length=1)
    environment: str = "dev"
    agent_version: str = "0.0.0"
    credential_fingerprint: str | None = None
    agent: AgentSpec = Field(default_factory=AgentSpec)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    redaction: RedactionSpec = Field(default_factory=RedactionSpec)
    kafka: KafkaProducerSettings = Field(default_factory=KafkaProducerSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    schemas: SchemaConfig = Field(default_factory=SchemaConfig)
    """How events are framed (``TRIPWIRE_SCHEMA_FRAMING``, shared with the processors and the sink)."""
    price_overrides: Path | None = None
    """YAML/JSON file of custom or negotiated prices (see :mod:`tripwire.producers.cost`)."""

    @field_validator("price_overrides")
    @classmethod
    def _overrides_exist(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"price override file not found: {value}")
        return value


_SIBLINGS = ("models", "escalation_rules", "logging")


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Fold the seed layout (models/escalation_rules/logging next to or under ``agent:``) into TracerConfig."""
    out = dict(data)
    agent = out.get("agent")
    agent = {} if agent is None else dict(agent) if isinstance(agent, dict) else agent
    if isinstance(agent, dict):
        for key in ("models", "escalation_rules"):
            if key in out:
                if key in agent:
                    raise ConfigError(f"config: {key!r} is given both at the top level and under 'agent'")
                agent[key] = out.pop(key)
        if "logging" in agent:
            if "logging" in out:
                raise ConfigError("config: 'logging' is given both at the top level and under 'agent'")
            out["logging"] = agent.pop("logging")
    out["agent"] = agent
    for key, cls in (("kafka", KafkaProducerSettings), ("delivery", DeliverySettings), ("schemas", SchemaConfig)):
        if isinstance(out.get(key), dict):
            out[key] = _build(cls, out[key], prefix=f"{key}.")
    return out


def _describe(e: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{prefix}{loc}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def _build(cls: type[BaseSettings], data: dict[str, Any], prefix: str = "") -> Any:
    try:
        return cls(**data)
    except ValidationError as e:
        raise ConfigError(f"invalid tripwire config: {_describe(e, prefix)}") from e


def build_config(data: dict[str, Any] | None = None) -> TracerConfig:
    """Build a :class:`TracerConfig` from a plain mapping (the parsed YAML), failing with a ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid tripwire config: expected a mapping at the top level, got {type(data).__name__}")
    return _build(TracerConfig, _normalise(data))


def load_config(path: str | Path) -> TracerConfig:
    """Read an agent YAML file (the seed's layout accepted as-is) into a :class:`TracerConfig`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read tripwire config {p}: {e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"tripwire config {p} is not valid YAML: {e}") from e
    try:
        return build_config(data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from e.__cause__


__all__ = [
    "AgentSpec",
    "DeliverySettings",
    "EscalationRule",
    "KafkaProducerSettings",
    "LoggingSpec",
    "ModelsSpec",
    "RedactionSpec",
    "TracerConfig",
    "build_config",
    "load_config",
]
