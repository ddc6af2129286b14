"""Codec configuration (``TRIPWIRE_SCHEMA_*``) and the factory that picks the framing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tripwire.core.errors import ConfigError


class SchemaConfig(BaseSettings):
    """How records are framed on Kafka.

    - ``framing=single_object`` (default): Avro single-object encoding, writer schema resolved
      from the schemas shipped in the package; no service needed.
    - ``framing=confluent``: Confluent Schema Registry wire format (magic 0 + schema id), via
      confluent-kafka's ``AvroSerializer``/``AvroDeserializer``; needs ``registry_url``
      (``http(s)://...``, or ``mock://name`` in tests).
    """

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_SCHEMA_", frozen=True, extra="ignore")

    framing: Literal["single_object", "confluent"] = "single_object"
    registry_url: str | None = None
    registry_basic_auth: SecretStr | None = None  # "user:password"
    auto_register: bool = True
    topic_prefix: str = ""  # subjects are "<prefix>.<topic>-value", matching topic_names(prefix)
    registry_timeout_s: float = Field(10.0, gt=0)
    registry_max_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SchemaConfig:
        if self.framing == "confluent" and not self.registry_url:
            raise ConfigError("TRIPWIRE_SCHEMA_REGISTRY_URL is required when TRIPWIRE_SCHEMA_FRAMING=confluent")
        if self.registry_url and not self.registry_url.startswith(("http://", "https://", "mock://")):
            raise ConfigError(
                f"TRIPWIRE_SCHEMA_REGISTRY_URL must start with http://, https:// or mock://, got {self.registry_url!r}"
            )
        if self.registry_basic_auth and ":" not in self.registry_basic_auth.get_secret_value():
            raise ConfigError("TRIPWIRE_SCHEMA_REGISTRY_BASIC_AUTH must be 'user:password'")
        return self


def make_codec(config: SchemaConfig | None = None):  # -> Codec (import kept lazy)
    """The codec the configuration selects (single-object by default)."""
    config = config or SchemaConfig()
    if config.framing == "confluent":
        from tripwire.schemas.confluent import ConfluentCodec

        return ConfluentCodec(
            config.registry_url,
            basic_auth=config.registry_basic_auth,
            auto_register=config.auto_register,
            topic_prefix=config.topic_prefix,
            timeout_s=config.registry_timeout_s,
            max_retries=config.registry_max_retries,
        )
    from tripwire.schemas.codec import default_codec

    return default_codec()


def check_registry(config: SchemaConfig, codec) -> None:  # codec: ConfluentCodec
    """Fail at start, with a :class:`ConfigError`, when ``framing=confluent`` and the registry does not
    answer: a producer or consumer must not start and then dead-letter every record it cannot frame."""
    try:
        codec.client.get_subjects()
    except Exception as e:
        raise ConfigError(
            f"TRIPWIRE_SCHEMA_FRAMING=confluent but the schema registry at {config.registry_url} does not answer "
            f"({type(e).__name__}: {e}); start it or set TRIPWIRE_SCHEMA_FRAMING=single_object"
        ) from e


class MixedFramingCodec:
    """A reader of topics that hold both framings: records in single-object encoding (written before the
    switch to ``confluent``, and the kill-switch commands, which are always single-object) decode by their
    first bytes; everything else, and every ``encode``, goes through the configured codec."""

    def __init__(self, codec) -> None:  # codec: ConfluentCodec
        from tripwire.schemas.codec import MAGIC, default_codec

        self.codec = codec
        self._single = default_codec()
        self._magic = MAGIC

    def encode(self, record, validate: bool = True) -> bytes:
        return self.codec.encode(record, validate)

    def decode(self, data: bytes, validate: bool = True):
        if bytes(data[:2]) == self._magic:
            return self._single.decode(data, validate)
        return self.codec.decode(data, validate)


def make_reader_codec(config: SchemaConfig | None = None):
    """The codec of a consumer that must start only if it can decode: :func:`make_codec`, and with
    ``framing=confluent`` a registry that answers (:func:`check_registry`) and single-object records
    still decoded (:class:`MixedFramingCodec`)."""
    config = config or SchemaConfig()
    codec = make_codec(config)
    if config.framing != "confluent":
        return codec
    check_registry(config, codec)
    return MixedFramingCodec(codec)
