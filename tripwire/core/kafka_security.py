"""Kafka TLS and SASL settings shared by every Kafka client of tripwire (env prefix ``TRIPWIRE_KAFKA_``).

One block of settings, read once from ``TRIPWIRE_KAFKA_SECURITY_PROTOCOL``, ``TRIPWIRE_KAFKA_SASL_*`` and
``TRIPWIRE_KAFKA_SSL_*``, and translated for each client library:

- :meth:`KafkaSecurity.confluent_conf` -> librdkafka properties (the SDK producer, the kill-switch
  listener and CLI, the sink, the notifier, topic administration);
- :meth:`KafkaSecurity.aiokafka_kwargs` -> keyword arguments of aiokafka's clients;
- ``tripwire.processors.faust_credentials(security)`` -> ``broker_credentials`` of a faust App (the
  processors own that converter: this kernel module imports no framework).

The component settings classes (``ProcessorConfig``, ``SinkSettings``, ``NotifyConfig``,
``KafkaProducerSettings``, ``KillSwitchConfig``) derive from :class:`KafkaSecurity`, so each of them
carries the same fields under the same environment variables. Passwords are ``SecretStr``: they appear
in no repr and no log line; only the converters hand them, in clear, to the client library.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tripwire.core.errors import ConfigError

log = logging.getLogger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

ENV_PREFIX = "TRIPWIRE_KAFKA_"
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


def security_env(name: str, *more: str) -> AliasChoices:
    """The environment variables of security field ``name``: ``more`` first (a component's own
    names, kept for compatibility), then the shared ``TRIPWIRE_KAFKA_<NAME>``."""
    return AliasChoices(*more, f"{ENV_PREFIX}{name.upper()}")


class KafkaSecurity(BaseSettings):
    """How tripwire's Kafka clients authenticate and encrypt (env ``TRIPWIRE_KAFKA_SECURITY_PROTOCOL``,
    ``TRIPWIRE_KAFKA_SASL_*``, ``TRIPWIRE_KAFKA_SSL_*``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid", populate_by_name=True)

    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        validation_alias=security_env("security_protocol"),
        description="Kafka `security.protocol` of every client: `SSL` (TLS), `SASL_PLAINTEXT`, `SASL_SSL` "
        "(SASL over TLS) or `PLAINTEXT`.",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None,
        validation_alias=security_env("sasl_mechanism"),
        description="SASL mechanism (`SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN`); required with `SASL_*`.",
    )
    sasl_username: str | None = Field(
        None, validation_alias=security_env("sasl_username"), description="SASL user; required with `SASL_*`."
    )
    sasl_password: SecretStr | None = Field(
        None, validation_alias=security_env("sasl_password"), description="SASL password; required with `SASL_*`."
    )
    ssl_cafile: Path | None = Field(
        None,
        validation_alias=security_env("ssl_cafile"),
        description="PEM file of the CA(s) that signed the brokers' certificates (`SSL`, `SASL_SSL`; "
        "unset: the system trust store).",
    )
    ssl_certfile: Path | None = Field(
        None,
        validation_alias=security_env("ssl_certfile"),
        description="PEM client certificate for mutual TLS (needs `ssl_keyfile`).",
    )
    ssl_keyfile: Path | None = Field(
        None, validation_alias=security_env("ssl_keyfile"), description="PEM private key of `ssl_certfile`."
    )
    ssl_key_password: SecretStr | None = Field(
        None, validation_alias=security_env("ssl_key_password"), description="Password of an encrypted `ssl_keyfile`."
    )
    ssl_check_hostname: bool = Field(
        True,
        validation_alias=security_env("ssl_check_hostname"),
        description="Check that the broker's certificate names the host connected to (turn off only for "
        "brokers addressed by IP with certificates that do not list it).",
    )

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSecurity:
        env = ENV_PREFIX
        if self.security_protocol in _SASL:
            missing = [f"{env}{n.upper()}" for n in ("sasl_mechanism", "sasl_username", "sasl_password")
                       if getattr(self, n) in (None, "")]
            if missing:
                raise ValueError(f"security_protocol={self.security_protocol} needs {', '.join(missing)}")
            assert self.sasl_password is not None
            if not self.sasl_password.get_secret_value():
                raise ValueError(f"security_protocol={self.security_protocol} needs a non-empty {env}SASL_PASSWORD")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{env}{name.upper()}: no such file: {path}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(f"{env}SSL_CERTFILE and {env}SSL_KEYFILE go together (mutual TLS needs both)")
        if self.ssl_key_password is not None and self.ssl_keyfile is None:
            raise ValueError(f"{env}SSL_KEY_PASSWORD is set but {env}SSL_KEYFILE is not")
        return self

    # -- views --------------------------------------------------------------------------------------
    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in _SASL

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in _TLS

    def security(self) -> KafkaSecurity:
        """Just the security block (a component config derives from this class)."""
        return KafkaSecurity.model_validate(self.security_fields())

    def security_fields(self) -> dict[str, Any]:
        """The security fields by name, e.g. to hand this block to another component's config."""
        return {name: getattr(self, name) for name in KafkaSecurity.model_fields}

    # -- converters ---------------------------------------------------------------------------------
    def confluent_conf(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) properties: ``security.protocol`` and, as it needs them, ``sasl.*``
        and ``ssl.*``. Holds the password in clear: pass it to the client, never log it."""
        conf: dict[str, Any] = {"security.protocol": self.security_protocol}
        if self.uses_sasl:
            assert self.sasl_password is not None  # checked at construction
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.uses_tls:
            if self.ssl_cafile is not None:
                conf["ssl.ca.location"] = str(self.ssl_cafile)
            if self.ssl_certfile is not None:
                conf["ssl.certificate.location"] = str(self.ssl_certfile)
                conf["ssl.key.location"] = str(self.ssl_keyfile)
            if self.ssl_key_password is not None:
                conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
            conf["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the Python clients (aiokafka, faust); None unless the protocol uses TLS."""
        if not self.uses_tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile is not None:
            password = self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ctx.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile), password=password)
        ctx.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            ctx.verify_mode = ssl.CERT_REQUIRED  # still verify the chain: only the host name is not checked
        return ctx

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's ``AIOKafkaProducer``/``AIOKafkaConsumer``/admin client."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_sasl:
            assert self.sasl_password is not None
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs


class KafkaAuthError(ConfigError):
    """The broker refused the client's credentials (SASL) or its TLS handshake failed: a configuration error,
    not an outage, so the component stops with this message instead of retrying forever."""


# librdkafka error names of a refused SASL authentication or a failed TLS handshake.
_AUTH_FAILURES = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL"})


class AuthWatch:
    """A librdkafka ``error_cb`` that remembers the first authentication/TLS failure; :meth:`check` raises it
    as a :class:`KafkaAuthError` naming the broker and the user (never the password). Other errors go to
    ``chain`` (or are logged at debug level: librdkafka retries them)."""

    def __init__(self, security: KafkaSecurity, bootstrap: str,
                 chain: Callable[[Any], None] | None = None) -> None:
        self.security = security
        self.bootstrap = bootstrap
        self.chain = chain
        self.failure: str | None = None

    def __call__(self, err: Any) -> None:
        if err.name() in _AUTH_FAILURES:
            if self.failure is None:
                self.failure = err.str()
                log.error("kafka authentication failed bootstrap=%s %s error=%s", self.bootstrap, self._who(),
                          self.failure)
        elif self.chain is not None:
            self.chain(err)
        else:
            log.debug("kafka client error=%s", err.str())

    def _who(self) -> str:
        s = self.security
        if s.uses_sasl:
            return f"user={s.sasl_username} mechanism={s.sasl_mechanism} protocol={s.security_protocol}"
        return f"protocol={s.security_protocol}"

    def check(self) -> None:
        """Raise :class:`KafkaAuthError` once a failure was seen (call it from the loop that polls the client)."""
        if self.failure is not None:
            raise KafkaAuthError(
                f"Kafka at {self.bootstrap} refused the connection ({self._who()}): {self.failure}; check "
                f"{ENV_PREFIX}SECURITY_PROTOCOL, {ENV_PREFIX}SASL_* and {ENV_PREFIX}SSL_*"
            )


__all__ = ["AuthWatch", "KafkaAuthError", "KafkaSecurity", "SaslMechanism", "SecurityProtocol", "security_env"]
