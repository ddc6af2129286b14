"""Configuration of the OTLP receiver (env prefix ``TRIPWIRE_OTLP_``) and its per-tenant bearer tokens."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tripwire.core.errors import ConfigError
from tripwire.producers.otlp.errors import Unauthenticated
from tripwire.producers.otlp.mapping import Identity


class OtlpSettings(BaseSettings):
    """The receiver's own settings; the producer side (Kafka, delivery and spool, redaction, prices,
    ``logging.store_prompts``) is the SDK's :class:`~tripwire.producers.TracerConfig`, read from
    ``tracer_config`` (an agent YAML) and ``TRIPWIRE_*`` like any agent's."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_OTLP_", frozen=True, extra="forbid")

    host: str = "0.0.0.0"
    """Address both front ends listen on."""
    http_enabled: bool = True
    """Serve OTLP/HTTP (``POST /v1/traces``, protobuf or JSON, gzip; ``GET /health``)."""
    http_port: int = Field(default=4318, ge=0, le=65535)
    """OTLP/HTTP port (0: any free port, printed at start)."""
    grpc_enabled: bool = True
    """Serve OTLP/gRPC (``TraceService/Export``)."""
    grpc_port: int = Field(default=4317, ge=0, le=65535)
    """OTLP/gRPC port (0: any free port, printed at start)."""
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest accepted body, compressed and decompressed (HTTP 413 / gRPC RESOURCE_EXHAUSTED)."""
    tokens_file: Path | None = None
    """YAML: ``tokens: [{token: ..., tenant: ..., name: ...}]``. With tokens, every request needs one."""
    token: SecretStr | None = None
    """A single bearer token (for one tenant, ``token_tenant``); adds to ``tokens_file``."""
    token_tenant: str | None = None
    """The tenant ``token`` authenticates."""
    tenant_attribute: str = "tripwire.tenant"
    """Resource attribute naming the tenant when the request's token does not bind one."""
    credential_attribute: str | None = None
    """Span or resource attribute holding the credential fingerprint; else the token's identity."""
    retry_after_s: int = Field(default=5, ge=1, le=3600)
    """Retry-After (gRPC RetryInfo) of a 429 (queue and spool full) or 503 (hand-off not done in time)."""
    ack_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """How long a request waits for its events to be handed to the producer or the spool."""
    delivery_poll_interval_s: float = Field(default=0.001, gt=0, le=1)
    """The producer worker's idle poll interval in the receiver (replaces the SDK's ``poll_interval_s``,
    10 ms for agents: a request waits for up to two worker cycles before it is acknowledged)."""
    tls_cert_file: Path | None = None
    """PEM certificate (chain) the receiver serves TLS with, on both front ends (with ``tls_key_file``)."""
    tls_key_file: Path | None = None
    """PEM private key of ``tls_cert_file``."""
    tls_client_ca_file: Path | None = None
    """PEM CA bundle: with it, clients must present a certificate it signed (mutual TLS)."""
    client_certs_file: Path | None = None
    """YAML ``clients: [{fingerprint|subject: ..., tenant: ..., name: ...}]``: client certificate -> tenant."""
    tracer_config: Path | None = None
    """Agent YAML with the producer side (kafka, delivery, redaction, price_overrides, logging)."""

    @model_validator(mode="after")
    def _check(self) -> OtlpSettings:
        if self.token is not None and not self.token_tenant:
            raise ValueError("token needs token_tenant (the tenant the token authenticates)")
        if self.tokens_file is not None and not self.tokens_file.is_file():
            raise ValueError(f"tokens_file not found: {self.tokens_file}")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        if self.client_certs_file is not None and self.tls_client_ca_file is None:
            raise ValueError("client_certs_file needs tls_client_ca_file (only verified certificates are mapped)")
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "client_certs_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} not found: {path}")
        return self


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    token: SecretStr = Field(min_length=16)
    tenant: str = Field(min_length=1)
    name: str | None = None


class TokenAuth:
    """Bearer tokens -> :class:`Identity`; no tokens configured means open (unauthenticated) access."""

    def __init__(self, entries: list[tuple[str, str, str]]) -> None:
        self._entries = [(t.encode(), tenant, name) for t, tenant, name in entries]

    @classmethod
    def from_settings(cls, settings: OtlpSettings) -> TokenAuth:
        entries: list[tuple[str, str, str]] = []
        if settings.tokens_file is not None:
            try:
                data: Any = yaml.safe_load(settings.tokens_file.read_text(encoding="utf-8")) or {}
                items = [_TokenEntry(**e) for e in data.get("tokens", [])]
            except (OSError, yaml.YAMLError, ValidationError, TypeError, AttributeError) as e:
                raise ConfigError(f"invalid OTLP tokens file {settings.tokens_file}: {e}") from e
            entries += [(e.token.get_secret_value(), e.tenant, e.name or e.tenant) for e in items]
        if settings.token is not None and settings.token_tenant:
            entries.append((settings.token.get_secret_value(), settings.token_tenant, settings.token_tenant))
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def identify(self, authorization: str | None) -> Identity:
        if not self._entries:
            return Identity()
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        given = authorization[7:].strip().encode()
        found: tuple[str, str] | None = None
        for token, tenant, name in self._entries:  # compare with every entry: no early exit on a match
            if hmac.compare_digest(token, given):
                found = (tenant, name)
        if found is None:
            raise Unauthenticated("unknown bearer token")
        return Identity(tenant=found[0], name=found[1])


__all__ = ["OtlpSettings", "TokenAuth"]
