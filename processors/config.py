"""Processor runtime configuration (env prefix ``TRIPWIRE_PROCESSORS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from tripwire.core.errors import ConfigError
from tripwire.core.kafka_security import KafkaSecurity

DEFAULT_PARTITIONS = 6


class ProcessorConfig(KafkaSecurity):
    """How the faust worker runs. Every field has an env var ``TRIPWIRE_PROCESSORS_<FIELD>``;
    the broker also falls back to ``TRIPWIRE_KAFKA_BOOTSTRAP``, and TLS/SASL are the shared
    ``TRIPWIRE_KAFKA_*`` security settings (passed to aiokafka through faust and to the admin client)."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_PROCESSORS_", frozen=True, extra="forbid")

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("bootstrap", "TRIPWIRE_PROCESSORS_BOOTSTRAP", "TRIPWIRE_KAFKA_BOOTSTRAP"),
    )
    topic_prefix: str = ""
    """Prefix of every topic (``topic_names(prefix)``); tests use uuid prefixes."""
    app_id: str | None = None
    """The faust app id = consumer group and changelog prefix; default derives from the topic prefix."""
    partitions: int = Field(default=DEFAULT_PARTITIONS, ge=1, le=1024)
    """Partitions of every topic this app creates; the events topic must have the same count."""
    replication: int = Field(default=1, ge=1, le=16)
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    commit_interval_s: float = Field(default=0.25, gt=0, le=60)
    """Offset commit (= transaction) interval; outputs become visible to read_committed readers then."""
    session_timeout_s: float = Field(default=10.0, ge=2, le=300)
    """Consumer-group session timeout: how soon the partitions of a dead worker are reassigned."""
    producer_linger_s: float = Field(default=0.02, ge=0, le=1)
    """Producer batching delay: fewer, larger produce requests (each output is one otherwise)."""
    batch_max: int = Field(default=500, ge=1, le=100_000)
    """Above 1: the stages' input topics go from faust's fetcher to the runtime a fetched run of messages at a
    time (handled, then acked), and the ticks to the agents in batches of at most this many (faust ``noack_take``).
    1: every message one at a time through faust's per-message stream."""
    batch_within_s: float = Field(default=0.02, gt=0, le=5)
    """How long an agent waits to fill a batch of ticks before handling what it has."""
    tick_interval_s: float = Field(default=1.0, gt=0, le=600)
    """How often time-driven outputs (timeouts, window closes, alert updates) are evaluated."""
    data_dir: Path = Path(".tripwire/processors")
    reset_local_state: bool = False
    """Rebuild tables from their changelogs at start. Off: the local RocksDB state is kept across
    restarts (even a kill: it only holds committed states, with the changelog offset they reflect)
    and recovery replays only the changelog past it; a corrupt or foreign store is rebuilt anyway."""
    policy_path: Path | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve Prometheus metrics on this port (None: off; 0: any free port)."""
    log_level: Literal["crit", "error", "warn", "info", "debug"] = "warn"

    @model_validator(mode="after")
    def _check(self) -> ProcessorConfig:
        if not self.bootstrap.strip():
            raise ConfigError("TRIPWIRE_PROCESSORS_BOOTSTRAP must name at least one broker (host:port)")
        return self

    @property
    def group_id(self) -> str:
        if self.app_id:
            return self.app_id
        base = "tripwire-processors"
        return f"{self.topic_prefix.rstrip('.')}.{base}" if self.topic_prefix else base


def faust_credentials(security: KafkaSecurity) -> Any:
    """``broker_credentials`` of a faust App (faust hands them to aiokafka); None for PLAINTEXT.

    The converter lives with the processors (the only faust users) so the shared kernel
    (``tripwire.core.kafka_security``) imports no framework."""
    if security.security_protocol == "PLAINTEXT":
        return None
    import faust

    if security.uses_sasl:
        assert security.sasl_password is not None
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.get_secret_value(),
            mechanism=security.sasl_mechanism,
            ssl_context=security.ssl_context(),  # None for SASL_PLAINTEXT; a context makes it SASL_SSL
        )
    return faust.SSLCredentials(security.ssl_context())
