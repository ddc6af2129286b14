"""The shared Kafka TLS/SASL settings: validation, the three converters, and that every component reads them."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tripwire.core.errors import ConfigError
from tripwire.core.kafka_security import KafkaSecurity
from tripwire.processors.config import faust_credentials

pytestmark = pytest.mark.unit

PASSWORD = "s3cr3t-Pa55"
SCRAM: dict[str, Any] = {
    "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "alice",
    "sasl_password": PASSWORD,
}
ENV_NAMES = ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE", "SSL_CERTFILE",
             "SSL_KEYFILE", "SSL_KEY_PASSWORD", "SSL_CHECK_HOSTNAME")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(f"TRIPWIRE_KAFKA_{name}", raising=False)
        monkeypatch.delenv(f"TRIPWIRE_KILLSWITCH_{name}", raising=False)


def _pem_pair(folder: Path, key_password: bytes | None = None) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tripwire-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = (serialization.BestAvailableEncryption(key_password) if key_password
                  else serialization.NoEncryption())
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return cert_path, key_path


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    s = KafkaSecurity()
    assert s.confluent_conf() == {"security.protocol": "PLAINTEXT"}
    assert s.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None
    assert s.ssl_context() is None


def test_sasl_scram_converters() -> None:
    s = KafkaSecurity(**SCRAM)
    assert s.confluent_conf() == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                                  "sasl.username": "alice", "sasl.password": PASSWORD}
    assert s.aiokafka_kwargs() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                   "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD}
    creds = faust_credentials(s)
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    assert credentials_to_aiokafka_auth(creds) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD, "ssl_context": None}


def test_password_in_no_repr_str_or_dump() -> None:
    s = KafkaSecurity(**SCRAM, ssl_key_password=None)
    for text in (repr(s), str(s), s.model_dump_json(), repr(faust_credentials(s))):
        assert PASSWORD not in text
    from tripwire.processors.config import ProcessorConfig

    assert PASSWORD not in repr(ProcessorConfig(**SCRAM))


@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username", "sasl_password"])
def test_sasl_needs_mechanism_user_and_password(missing: str) -> None:
    given = {k: v for k, v in SCRAM.items() if k != missing}
    with pytest.raises(ValidationError) as e:
        KafkaSecurity(**given)
    assert f"security_protocol=SASL_PLAINTEXT needs TRIPWIRE_KAFKA_{missing.upper()}" in str(e.value)


def test_sasl_rejects_an_empty_password_and_an_unknown_mechanism() -> None:
    with pytest.raises(ValidationError, match="non-empty TRIPWIRE_KAFKA_SASL_PASSWORD"):
        KafkaSecurity(**{**SCRAM, "sasl_password": ""})
    with pytest.raises(ValidationError, match="sasl_mechanism"):
        KafkaSecurity(**{**SCRAM, "sasl_mechanism": "SCRAM-SHA-1"})
    with pytest.raises(ValidationError, match="security_protocol"):
        KafkaSecurity(security_protocol="TLS")


def test_ssl_files_must_exist_and_cert_goes_with_key(tmp_path: Path) -> None:
    cert, _key = _pem_pair(tmp_path)
    with pytest.raises(ValidationError, match=f"TRIPWIRE_KAFKA_SSL_CAFILE: no such file: {tmp_path / 'nope.pem'}"):
        KafkaSecurity(security_protocol="SSL", ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(ValidationError, match="SSL_CERTFILE and TRIPWIRE_KAFKA_SSL_KEYFILE go together"):
        KafkaSecurity(security_protocol="SSL", ssl_certfile=cert)
    with pytest.raises(ValidationError, match="SSL_KEY_PASSWORD is set but TRIPWIRE_KAFKA_SSL_KEYFILE is not"):
        KafkaSecurity(security_protocol="SSL", ssl_key_password="x")


def test_ssl_converters_with_mutual_tls(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, key_password=b"keypw")
    s = KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="bob",
                      sasl_password="pw", ssl_cafile=cert, ssl_certfile=cert, ssl_keyfile=key,
                      ssl_key_password="keypw")
    assert s.confluent_conf() == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "bob",
        "sasl.password": "pw", "ssl.ca.location": str(cert), "ssl.certificate.location": str(cert),
        "ssl.key.location": str(key), "ssl.key.password": "keypw", "ssl.endpoint.identification.algorithm": "https"}
    kwargs = s.aiokafka_kwargs()
    ctx = kwargs.pop("ssl_context")
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert kwargs == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                      "sasl_plain_username": "bob", "sasl_plain_password": "pw"}
    creds = faust_credentials(s)
    assert (creds.protocol.value, creds.mechanism.value, creds.username) == ("SASL_SSL", "SCRAM-SHA-256", "bob")
    assert isinstance(creds.ssl_context, ssl.SSLContext)


def test_ssl_without_hostname_check(tmp_path: Path) -> None:
    cert, _ = _pem_pair(tmp_path)
    s = KafkaSecurity(security_protocol="SSL", ssl_cafile=cert, ssl_check_hostname=False)
    assert s.confluent_conf() == {"security.protocol": "SSL", "ssl.ca.location": str(cert),
                                  "ssl.endpoint.identification.algorithm": "none"}
    ctx = s.ssl_context()
    assert ctx is not None and not ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    creds = faust_credentials(s)
    assert creds.protocol.value == "SSL" and creds.context is not None


def test_a_wrong_key_password_fails_when_the_context_is_built(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, key_password=b"right")
    s = KafkaSecurity(security_protocol="SSL", ssl_cafile=cert, ssl_certfile=cert, ssl_keyfile=key,
                      ssl_key_password="wrong")
    with pytest.raises(ssl.SSLError):
        s.ssl_context()


def _scram_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SCRAM.items():
        monkeypatch.setenv(f"TRIPWIRE_KAFKA_{k.upper()}", v)


def test_every_component_reads_the_shared_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from tripwire.killswitch import KillSwitchConfig
    from tripwire.notify.config import NotifyConfig
    from tripwire.processors.config import ProcessorConfig
    from tripwire.producers.config import KafkaProducerSettings
    from tripwire.producers.transport import KafkaTransport
    from tripwire.sinks.config import SinkSettings

    _scram_env(monkeypatch)
    monkeypatch.setenv("TRIPWIRE_KAFKA_BOOTSTRAP", "broker-1:9093")  # CI exports its dev broker's address
    monkeypatch.delenv("TRIPWIRE_KILLSWITCH_BOOTSTRAP", raising=False)
    expected = KafkaSecurity(**SCRAM).confluent_conf()
    for cls in (ProcessorConfig, NotifyConfig, SinkSettings, KafkaProducerSettings, KillSwitchConfig):
        assert cls().confluent_conf() == expected, cls.__name__
        assert cls().security() == KafkaSecurity(**SCRAM), cls.__name__
    assert KillSwitchConfig().kafka_properties() == {"bootstrap.servers": "broker-1:9093", **expected}
    conf = KafkaTransport(KafkaProducerSettings()).librdkafka_config()
    assert {k: conf[k] for k in expected} == expected
    assert (conf["enable.idempotence"], conf["acks"]) == (True, "all")


def test_killswitch_variables_win_over_the_shared_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from tripwire.killswitch import KillSwitchConfig

    _scram_env(monkeypatch)
    monkeypatch.setenv("TRIPWIRE_KILLSWITCH_SASL_USERNAME", "ks-user")
    monkeypatch.setenv("TRIPWIRE_KILLSWITCH_SASL_PASSWORD", "ks-pw")
    props = KillSwitchConfig().kafka_properties()
    assert (props["sasl.username"], props["sasl.password"], props["sasl.mechanism"]) == (
        "ks-user", "ks-pw", "SCRAM-SHA-512")


def test_sdk_yaml_takes_the_security_keys() -> None:
    from tripwire.producers.config import build_config

    cfg = build_config({"kafka": {**SCRAM}})
    assert cfg.kafka.confluent_conf()["sasl.username"] == "alice"
    with pytest.raises(ConfigError, match="needs TRIPWIRE_KAFKA_SASL_PASSWORD"):
        build_config({"kafka": {k: v for k, v in SCRAM.items() if k != "sasl_password"}})


def test_processors_hand_the_credentials_to_faust_and_the_policy_clients(tmp_path: Path) -> None:
    from tripwire.processors.app import create_app
    from tripwire.processors.config import ProcessorConfig

    app = create_app(ProcessorConfig(**SCRAM, data_dir=tmp_path))
    creds = app.conf.broker_credentials
    assert (creds.protocol.value, creds.mechanism.value, creds.username, creds.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", PASSWORD)
    assert create_app(ProcessorConfig(data_dir=tmp_path)).conf.broker_credentials is None


def test_topics_cli_gives_the_killswitch_topic_the_processors_security() -> None:
    from tripwire.processors.config import ProcessorConfig
    from tripwire.topics_cli import _killswitch_config

    ks = _killswitch_config(ProcessorConfig(**SCRAM, bootstrap="10.0.0.1:9093", topic_prefix="p"), 3)
    assert ks.kafka_properties() == {"bootstrap.servers": "10.0.0.1:9093",
                                     **KafkaSecurity(**SCRAM).confluent_conf()}
    assert ks.partitions == 3


def test_dev_broker_sasl_mode_needs_users_with_safe_names(tmp_path: Path) -> None:
    from tripwire.devenv.kafka import KafkaDevBroker, KafkaDevConfig

    with pytest.raises(ValidationError, match="sasl_port and scram_users go together"):
        KafkaDevConfig(sasl_port=19094, run_dir=tmp_path)
    with pytest.raises(ValidationError, match="sasl_port and scram_users go together"):
        KafkaDevConfig(scram_users={"alice": "pw"}, run_dir=tmp_path)
    with pytest.raises(ValidationError, match="SCRAM user 'alice'"):
        KafkaDevConfig(sasl_port=19094, scram_users={"alice": "a,b"}, run_dir=tmp_path)
    broker = KafkaDevBroker(KafkaDevConfig(port=19092, controller_port=19093, sasl_port=19094, ssl_port=19095,
                                           scram_users={"alice": "dev-Secret-9"}, run_dir=tmp_path))
    props = dict(line.split("=", 1) for line in broker._write_config().read_text().splitlines())
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,"
                                  "SASL_PLAINTEXT://127.0.0.1:19094,SSL://127.0.0.1:19095")
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL")
    assert props["listener.name.ssl.ssl.keystore.type"] == "PEM"
    # the broker's certificate chains to the CA clients are given, and names 127.0.0.1
    ctx = KafkaSecurity(security_protocol="SSL", ssl_cafile=broker.ssl_cafile).ssl_context()
    assert ctx is not None and len(ctx.get_ca_certs()) == 1
    server_pem = Path(props["listener.name.ssl.ssl.keystore.location"]).read_text()
    assert server_pem.startswith("-----BEGIN PRIVATE KEY-----") and server_pem.count("BEGIN CERTIFICATE") == 2
    assert props["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert broker.sasl_bootstrap == "127.0.0.1:19094"
    assert "dev-Secret-9" not in repr(broker.config)


def test_the_simulators_tracer_config_takes_the_shared_security(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tripwire simulate`` passes only bootstrap, topic and client id (tripwire/simulate.py): the security
    settings come from the environment."""
    from tripwire.producers import TracerConfig

    _scram_env(monkeypatch)
    cfg = TracerConfig(kafka={"bootstrap": "10.0.0.1:9092", "topic": "t", "client_id": "tripwire-sim-a"})
    assert cfg.kafka.confluent_conf() == KafkaSecurity(**SCRAM).confluent_conf()
