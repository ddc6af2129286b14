"""Settings of the kill switch, shared by the SDK guard, the on-call CLI, the dashboard and the policy worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from tripwire.core.kafka_security import KafkaSecurity, SaslMechanism, SecurityProtocol, security_env
from tripwire.killswitch.state import DEFAULT_MAX_CLOCK_SKEW_S
from tripwire.schemas.topics import KILLSWITCH

DEFAULT_STALENESS_S = 15.0
DEFAULT_READY_TIMEOUT_S = 5.0
DEFAULT_HEARTBEAT_S = 1.0
DEFAULT_MIN_COMPACTION_LAG_S = 7 * 86400.0
DEFAULT_REPUBLISH_INTERVAL_S = 3600.0


class KillSwitchConfig(KafkaSecurity):
    """Kill-switch settings (env prefix ``TRIPWIRE_KILLSWITCH_``; the bootstrap and the TLS/SASL settings
    fall back to ``TRIPWIRE_KAFKA_*``). Key paths are paths: key material is never logged."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_KILLSWITCH_", frozen=True, extra="forbid",
                                      populate_by_name=True)

    enabled: bool = True
    bootstrap: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("bootstrap", "TRIPWIRE_KILLSWITCH_BOOTSTRAP", "TRIPWIRE_KAFKA_BOOTSTRAP"),
    )
    topic: str = KILLSWITCH
    partitions: int = Field(default=1, ge=1)
    """Partition count used when the CLI or the policy worker creates the (compacted) topic."""
    public_key_path: Path | None = None
    """PEM file of the control plane's public key (what SDKs trust)."""
    public_key: str | None = None
    """The same, inline: PEM text or base64 of the 32 raw bytes (handy for env-only deployments)."""
    private_key_path: Path | None = None
    """PEM file of the signing key: control plane and CLI only, never on an agent host."""
    policy_path: Path | None = None
    """Kill-switch policy YAML of the processors worker (default: the shipped killswitch_policy.yaml)."""
    staleness_s: float = Field(default=DEFAULT_STALENESS_S, gt=0)
    """No confirmed contact with the topic for longer than this = stale: high-risk tools fail closed."""
    stale_medium_risk: Literal["open", "closed"] = "closed"
    """What medium-risk tools do while stale (low always fails open, high always fails closed)."""
    ready_timeout_s: float = Field(default=DEFAULT_READY_TIMEOUT_S, ge=0)
    """How long the first guarded call waits for the initial state to load from the topic."""
    heartbeat_s: float = Field(default=DEFAULT_HEARTBEAT_S, gt=0)
    """How often the listener confirms it is current with the topic (watermark check)."""
    max_clock_skew_s: float = Field(default=DEFAULT_MAX_CLOCK_SKEW_S, ge=0)
    """How far in the future a command's ``issued_at`` may be and still be obeyed (clock skew allowance)."""
    min_compaction_lag_s: float = Field(default=DEFAULT_MIN_COMPACTION_LAG_S, gt=0)
    """``min.compaction.lag.ms`` of the topic: no record younger than this is ever compacted away, so the
    newest signed command of a scope (re-published more often than this) always survives a replay or tombstone."""
    republish_interval_s: float = Field(default=DEFAULT_REPUBLISH_INTERVAL_S, gt=0)
    """How often the control plane (the policy worker) re-publishes the exact signed bytes of every scope's
    newest command; must be shorter than ``min_compaction_lag_s``."""
    issued_by: str | None = None
    """Who the CLI records as the issuer (default: the OS user)."""
    # The shared security fields, also read from the kill switch's own (older) variables, which win.
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        validation_alias=security_env("security_protocol", "TRIPWIRE_KILLSWITCH_SECURITY_PROTOCOL"),
        description="Kafka `security.protocol` of the listener, CLI and policy worker (default: "
        "`TRIPWIRE_KAFKA_SECURITY_PROTOCOL`).",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None, validation_alias=security_env("sasl_mechanism", "TRIPWIRE_KILLSWITCH_SASL_MECHANISM"),
        description="SASL mechanism of the kill-switch clients (default: `TRIPWIRE_KAFKA_SASL_MECHANISM`).",
    )
    sasl_username: str | None = Field(
        None, validation_alias=security_env("sasl_username", "TRIPWIRE_KILLSWITCH_SASL_USERNAME"),
        description="SASL user of the kill-switch clients (default: `TRIPWIRE_KAFKA_SASL_USERNAME`).",
    )
    sasl_password: SecretStr | None = Field(
        None, validation_alias=security_env("sasl_password", "TRIPWIRE_KILLSWITCH_SASL_PASSWORD"),
        description="SASL password of the kill-switch clients (default: `TRIPWIRE_KAFKA_SASL_PASSWORD`).",
    )

    @model_validator(mode="after")
    def _one_public_key_source(self) -> KillSwitchConfig:
        if self.public_key_path is not None and self.public_key is not None:
            raise ValueError("set either public_key_path or public_key, not both")
        if self.republish_interval_s >= self.min_compaction_lag_s:
            raise ValueError(
                f"republish_interval_s ({self.republish_interval_s:g}) must be shorter than min_compaction_lag_s "
                f"({self.min_compaction_lag_s:g}): otherwise compaction can drop a scope's newest command"
            )
        return self

    def kafka_properties(self) -> dict[str, Any]:
        """librdkafka properties shared by the listener, the CLI and the policy worker."""
        return {"bootstrap.servers": self.bootstrap, **self.confluent_conf()}


__all__ = ["KillSwitchConfig"]
