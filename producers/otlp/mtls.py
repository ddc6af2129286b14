"""TLS and per-tenant mutual TLS for both OTLP front ends.

- ``tls_cert_file`` + ``tls_key_file``: the receiver serves HTTPS and gRPC over TLS.
- ``tls_client_ca_file``: clients must present a certificate signed by that CA (the TLS handshake refuses
  anyone else: no certificate, another CA, an expired one).
- ``client_certs_file`` (YAML) maps a verified client certificate to a tenant, by its SHA-256 fingerprint
  (of the DER bytes; hex, colons allowed) or its subject (RFC 4514, e.g. ``CN=agent-a,O=acme``)::

      clients:
        - {fingerprint: "3f:9a:...", tenant: acme, name: billing-agents}
        - {subject: "CN=agent-b,O=globex", tenant: globex}

  A verified certificate that matches no entry is refused (HTTP 401 / gRPC UNAUTHENTICATED). The events of a
  certificate's requests carry its tenant and ``credential_fingerprint = "cert:" + the first 16 hex digits of
  its SHA-256`` (unless ``credential_attribute`` names a span attribute). Bearer tokens still apply to
  requests without a mapped certificate (no ``client_certs_file``).
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tripwire.core.errors import ConfigError
from tripwire.producers.otlp.errors import Unauthenticated
from tripwire.producers.otlp.mapping import Identity


class _ClientEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fingerprint: str | None = None
    subject: str | None = None
    tenant: str = Field(min_length=1)
    name: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> _ClientEntry:
        if (self.fingerprint is None) == (self.subject is None):
            raise ValueError("a client entry names exactly one of fingerprint or subject")
        return self


def cert_fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER bytes, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def cert_subject(der: bytes) -> str:
    """The certificate's subject, RFC 4514 (``CN=agent-a,O=acme``)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


class ClientCertAuth:
    """Verified client certificates -> :class:`Identity` (see the module docstring)."""

    def __init__(self, entries: list[_ClientEntry]) -> None:
        self._by_fp = {e.fingerprint.replace(":", "").lower(): e for e in entries if e.fingerprint}
        self._by_subject = {e.subject: e for e in entries if e.subject}

    @classmethod
    def load(cls, path: Path) -> ClientCertAuth:
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls([_ClientEntry(**e) for e in data.get("clients", [])])
        except (OSError, yaml.YAMLError, ValidationError, TypeError, AttributeError) as e:
            raise ConfigError(f"invalid OTLP client certificates file {path}: {e}") from e

    def identify(self, der: bytes) -> Identity:
        fp = cert_fingerprint(der)
        entry = self._by_fp.get(fp)
        if entry is None:
            try:
                entry = self._by_subject.get(cert_subject(der))
            except ValueError as e:  # not parseable: the handshake verified it, so this is unexpected
                raise Unauthenticated(f"client certificate not readable: {e}") from e
        if entry is None:
            raise Unauthenticated("client certificate not mapped to a tenant")
        return Identity(tenant=entry.tenant, name=entry.name or entry.tenant, fingerprint="cert:" + fp[:16])


def server_ssl_context(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> ssl.SSLContext:
    """The HTTPS front end's context: TLS 1.2+, client certificates required when a client CA is set."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_file, key_file)
        if client_ca_file is not None:
            ctx.load_verify_locations(cafile=str(client_ca_file))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the OTLP TLS files: {e}") from e
    return ctx


def grpc_server_credentials(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> Any:
    """The gRPC front end's credentials: client certificates required when a client CA is set."""
    import grpc

    try:
        cert, key = cert_file.read_bytes(), key_file.read_bytes()
        ca = client_ca_file.read_bytes() if client_ca_file is not None else None
    except OSError as e:
        raise ConfigError(f"cannot read the OTLP TLS files: {e}") from e
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def grpc_peer_cert(context: Any) -> bytes | None:
    """The verified client certificate (DER) of a gRPC call, or None."""
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return None
    return ssl.PEM_cert_to_DER_cert(pems[0].decode())


__all__ = [
    "ClientCertAuth",
    "cert_fingerprint",
    "cert_subject",
    "grpc_peer_cert",
    "grpc_server_credentials",
    "server_ssl_context",
]
