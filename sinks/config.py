"""Configuration of the ClickHouse storage: one frozen settings class per component."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tripwire.core.kafka_security import KafkaSecurity

DEFAULT_URL = "chdb:///.tripwire/chdb?database=tripwire"
DEFAULT_PROMPT_TTL_DAYS = 30
DEFAULT_CALL_TTL_DAYS = 180
DEFAULT_BATCH_ROWS = 50_000
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_BATCH_SECONDS = 1.0


class ClickHouseSettings(BaseSettings):
    """Where ClickHouse is and how long data lives (env prefix ``TRIPWIRE_CLICKHOUSE_``).

    ``url`` is ``chdb:///path/to/dir[?database=name]`` (embedded engine persisted to a folder)
    or ``clickhouse://user:pass@host:8123/db`` (``clickhouses://`` for TLS). It is a secret
    because a server URL carries a password.
    """

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_CLICKHOUSE_", frozen=True, extra="ignore")

    url: SecretStr = SecretStr(DEFAULT_URL)
    prompt_ttl_days: int = Field(DEFAULT_PROMPT_TTL_DAYS, ge=1, le=36500)
    call_ttl_days: int = Field(DEFAULT_CALL_TTL_DAYS, ge=1, le=36500)
    query_max_rows: int = Field(10_000, ge=1)
    query_timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _prompts_not_outliving_calls(self) -> ClickHouseSettings:
        if self.prompt_ttl_days > self.call_ttl_days:
            raise ValueError(
                f"prompt_ttl_days ({self.prompt_ttl_days}) must not exceed call_ttl_days ({self.call_ttl_days})"
            )
        return self


class SinkSettings(KafkaSecurity):
    """The batching sink (env prefix ``TRIPWIRE_SINK_``; the broker from ``TRIPWIRE_KAFKA_BOOTSTRAP``, TLS/SASL
    from the shared ``TRIPWIRE_KAFKA_*`` security settings)."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_SINK_", frozen=True, extra="ignore", populate_by_name=True)

    bootstrap: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("TRIPWIRE_KAFKA_BOOTSTRAP", "TRIPWIRE_SINK_BOOTSTRAP", "bootstrap"),
    )
    group_id: str = "tripwire-sink"
    instance_id: str | None = None
    """Static group membership (``group.instance.id``, one per sink process): a sink restarted with the same
    id takes its partitions back at once instead of waiting for its old session to time out (a SIGKILLed
    sink's partitions stayed with the dead member for ``session_timeout_s``, then a rebalance). A static
    member does not leave the group on stop: its partitions wait ``session_timeout_s`` for it to return."""
    session_timeout_s: float = Field(45.0, ge=6, le=1800)
    """The group session: how long the broker waits for a silent (killed, partitioned) sink before it hands
    its partitions to the others."""
    topic_prefix: str = ""
    batch_rows: int = Field(DEFAULT_BATCH_ROWS, ge=1)
    batch_bytes: int = Field(DEFAULT_BATCH_BYTES, ge=1024)
    batch_seconds: float = Field(DEFAULT_BATCH_SECONDS, gt=0)
    retry_initial_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    poll_timeout_s: float = Field(0.2, gt=0)
    validate_events: bool = True  # False: trusted (Avro types checked; model constraints and event limits not)
    test_fail_inserts_while: Path | None = None
    """Test-only (default off): while this file exists, every ClickHouse insert of `tripwire sink` fails as an
    unreachable server's would (the fault suite, benchmarks/bench_faults.py, injects insert failures with it)."""

    @model_validator(mode="after")
    def _backoff_order(self) -> SinkSettings:
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError(f"retry_initial_s ({self.retry_initial_s}) must be <= retry_max_s ({self.retry_max_s})")
        return self
