"""Configuration and errors of the alert notifier (env prefix ``TRIPWIRE_NOTIFY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from tripwire.core.errors import ConfigError, TripwireError
from tripwire.core.kafka_security import KafkaSecurity

DEFAULT_GROUP = "tripwire-notify"


class NotifyError(TripwireError):
    """Base class of the errors the notifier raises on purpose."""


class RoutesError(NotifyError, ConfigError):
    """The routes YAML is missing, unreadable or invalid, or names a secret that is not set;
    the message names the route and field."""


class NotifyConfig(KafkaSecurity):
    """How ``tripwire notify`` runs. Every field has an env var ``TRIPWIRE_NOTIFY_<FIELD>``; the broker
    also falls back to ``TRIPWIRE_KAFKA_BOOTSTRAP``; TLS/SASL are the shared ``TRIPWIRE_KAFKA_*`` settings.

    Secrets referenced by the routes file (``url_secret: ops_hook``) come from ``secrets``:
    ``TRIPWIRE_NOTIFY_SECRETS__OPS_HOOK=https://...`` or ``TRIPWIRE_NOTIFY_SECRETS='{"ops_hook": "..."}'``.
    Names are case-insensitive. They are ``SecretStr`` and never logged.
    """

    model_config = SettingsConfigDict(
        env_prefix="TRIPWIRE_NOTIFY_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("bootstrap", "TRIPWIRE_NOTIFY_BOOTSTRAP", "TRIPWIRE_KAFKA_BOOTSTRAP"),
    )
    topic_prefix: str = ""
    """Prefix of every topic (``topic_names(prefix)``); tests use uuid prefixes."""
    group_id: str | None = None
    """Consumer group; default ``tripwire-notify`` (prefixed like the topics)."""
    instance_id: str | None = None
    """Static group membership (``group.instance.id``): a restarted notifier with the same id takes its
    partitions back at once instead of waiting for the session timeout of its dead predecessor."""
    routes_path: Path | None = None
    consume_killswitch: bool = True
    """Also route kill-switch trips and resets from the kill-switch topic."""
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve Prometheus metrics on this port (0: a free one; None: not served): delivered, retried and
    dead-lettered by route, delivery latency histogram (``tripwire_notify_*``)."""
    max_age_s: float | None = Field(default=6 * 3600.0, gt=0)
    """Records older than this (alert ``updated_at``, command ``issued_at``) are committed without a delivery,
    so a new consumer group does not page for the history of the topics (None: deliver everything)."""

    max_attempts: int = Field(default=5, ge=1, le=100)
    """Tries per delivery (first try included) before the route's records go to the dead-letter topic."""
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    retry_after_max_s: float = Field(default=120.0, gt=0, le=3600)
    """A receiver's Retry-After is honoured up to this many seconds."""
    request_timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_in_flight: int = Field(default=8, ge=1, le=256)
    """Deliveries running at once (threads); one incident on one route is never sent twice at once."""
    max_pending_records: int = Field(default=10_000, ge=1)
    """Consumed records not yet delivered or dead-lettered before the partitions are paused."""
    poll_timeout_s: float = Field(default=0.05, gt=0, le=5)
    commit_interval_s: float = Field(default=0.2, ge=0, le=60)
    session_timeout_s: float = Field(default=10.0, ge=2, le=300)
    shutdown_timeout_s: float = Field(default=10.0, ge=0, le=600)
    """On stop or revocation, how long in-flight deliveries may finish before their offsets stay uncommitted."""

    test_crash_after_deliveries: int = Field(default=0, ge=0)
    """Test-only: SIGKILL this process right after the Nth successful delivery, before it is committed."""

    @model_validator(mode="after")
    def _check(self) -> NotifyConfig:
        if not self.bootstrap.strip():
            raise ConfigError("TRIPWIRE_NOTIFY_BOOTSTRAP must name at least one broker (host:port)")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ConfigError("TRIPWIRE_NOTIFY_BACKOFF_MAX_S must be >= TRIPWIRE_NOTIFY_BACKOFF_INITIAL_S")
        return self

    @property
    def consumer_group(self) -> str:
        if self.group_id:
            return self.group_id
        return f"{self.topic_prefix.rstrip('.')}.{DEFAULT_GROUP}" if self.topic_prefix else DEFAULT_GROUP

    def secret(self, name: str) -> SecretStr | None:
        """The secret called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.secrets.items():
            if key.lower() == wanted:
                return value
        return None
