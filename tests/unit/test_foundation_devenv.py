"""The dev broker script fails with a clear message instead of a stack trace."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tripwire.devenv.kafka import DevBrokerError, KafkaDevBroker, KafkaDevConfig, free_port

pytestmark = pytest.mark.unit


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        broker = KafkaDevBroker(KafkaDevConfig(port=taken, controller_port=free_port(), run_dir=tmp_path))
        with pytest.raises(DevBrokerError, match=f"port {taken} .* is taken"):
            broker.start()


def test_java_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither java nor mvn on it
    broker = KafkaDevBroker(KafkaDevConfig(port=free_port(), controller_port=free_port(), run_dir=tmp_path))
    with pytest.raises(DevBrokerError, match="Java is not on PATH"):
        broker.start()


def test_maven_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    broker = KafkaDevBroker(KafkaDevConfig(cache_dir=tmp_path / "cache", run_dir=tmp_path))
    with pytest.raises(DevBrokerError, match="Maven"):
        broker.fetch()


def test_status_and_stop_without_a_broker(tmp_path: Path) -> None:
    broker = KafkaDevBroker(KafkaDevConfig(run_dir=tmp_path))
    assert broker.status().running is False
    assert broker.stop() is False


def test_cli_help_lists_devenv() -> None:
    from typer.testing import CliRunner

    from tripwire.cli import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "devenv" in result.output


def test_the_authorizer_settings_and_their_checks(tmp_path: Path) -> None:
    users = {"admin": "a-Pass", "agent": "b-Pass"}
    c = KafkaDevConfig(port=1, controller_port=2, sasl_port=3, scram_users=users, authorizer=True,
                       super_users=["admin"], run_dir=tmp_path)
    props = dict(line.split("=", 1) for line in KafkaDevBroker(c)._write_config().read_text().splitlines())
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:ANONYMOUS;User:admin"
    plain = KafkaDevBroker(KafkaDevConfig(port=1, controller_port=2, run_dir=tmp_path / "p"))._write_config()
    assert "authorizer.class.name" not in plain.read_text()
    with pytest.raises(ValueError, match="authorizer needs sasl_port"):
        KafkaDevConfig(authorizer=True)
    with pytest.raises(ValueError, match=r"super_users \['root'\] are not among scram_users"):
        KafkaDevConfig(sasl_port=3, scram_users=users, authorizer=True, super_users=["root"])
