"""A real Apache Kafka broker for development and CI, run in KRaft mode on 127.0.0.1.

The broker jars come from Maven Central through the machine's ``mvn`` into a cache
that is reused between runs. One run folder holds the config, the data, the logs
and the recorded pid, so ``stop`` ends exactly the broker that ``start`` started.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tripwire.core.errors import TripwireError

DEFAULT_KAFKA_VERSION = "4.1.1"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_HEAP = "512m"
DEFAULT_START_TIMEOUT_S = 90.0
DEFAULT_STOP_TIMEOUT_S = 30.0


class DevBrokerError(TripwireError):
    """The dev broker could not be fetched, started or stopped; the message says why."""


class KafkaDevConfig(BaseSettings):
    """Settings of the dev broker (env prefix ``TRIPWIRE_DEV_KAFKA_``)."""

    model_config = SettingsConfigDict(env_prefix="TRIPWIRE_DEV_KAFKA_", frozen=True)

    version: str = DEFAULT_KAFKA_VERSION
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    controller_port: int = Field(DEFAULT_CONTROLLER_PORT, ge=1, le=65535)
    heap: str = DEFAULT_HEAP
    run_dir: Path = Path(".tripwire/kafka")
    cache_dir: Path = Path.home() / ".cache" / "tripwire" / "kafka"
    start_timeout_s: float = Field(DEFAULT_START_TIMEOUT_S, gt=0)
    sasl_port: int | None = Field(None, ge=1, le=65535)
    """Also listen for SASL_PLAINTEXT clients (SCRAM-SHA-512) on this port; the PLAINTEXT port stays for the
    controller, the broker itself and the readiness check."""
    ssl_port: int | None = Field(None, ge=1, le=65535)
    """Also listen for SSL (TLS) clients on this port, with a certificate of a throwaway CA whose PEM file
    is ``<run_dir>/tls/ca.pem`` (valid for 127.0.0.1 and localhost)."""
    scram_users: dict[str, SecretStr] = Field(default_factory=dict)
    """SCRAM-SHA-512 users (name -> password) created when the storage is formatted (needs ``sasl_port``)."""
    authorizer: bool = False
    """Run Kafka's StandardAuthorizer with ``allow.everyone.if.no.acl.found=false`` (needs ``sasl_port``):
    SASL users may do only what ACLs allow (``tripwire.core.kafka_acls``), except ``super_users``. The
    loopback PLAINTEXT listener's anonymous principal (the broker itself, the controller, the readiness
    check) is a super user too."""
    super_users: list[str] = Field(default_factory=list)
    """SCRAM user names with every right when ``authorizer`` is on (the admin that creates topics and ACLs)."""

    @model_validator(mode="after")
    def _sasl_needs_users(self) -> KafkaDevConfig:
        if (self.sasl_port is None) != (not self.scram_users):
            raise ValueError("sasl_port and scram_users go together (a SASL listener needs at least one user)")
        if self.authorizer and self.sasl_port is None:
            raise ValueError("authorizer needs sasl_port and scram_users (ACLs name SASL users)")
        unknown = [u for u in self.super_users if u not in self.scram_users]
        if unknown:
            raise ValueError(f"super_users {unknown} are not among scram_users")
        for name, password in self.scram_users.items():
            for text in (name, password.get_secret_value()):
                if not text or any(ch in text for ch in ',[]="\\ '):
                    raise ValueError(f"SCRAM user {name!r}: names and passwords must be non-empty, "
                                     "without spaces, commas, brackets, quotes, '=' or backslashes")
        return self


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    run_dir: Path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


class KafkaDevBroker:
    """One single-node KRaft broker (broker and controller in one JVM) bound to 127.0.0.1."""

    def __init__(self, config: KafkaDevConfig | None = None) -> None:
        self.config = config or KafkaDevConfig()
        self.run_dir = self.config.run_dir.resolve()
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.config.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT (SCRAM-SHA-512) listener; needs ``sasl_port``."""
        if self.config.sasl_port is None:
            raise DevBrokerError("this dev broker has no SASL listener (set sasl_port and scram_users)")
        return f"127.0.0.1:{self.config.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The SSL listener; needs ``ssl_port``."""
        if self.config.ssl_port is None:
            raise DevBrokerError("this dev broker has no SSL listener (set ssl_port)")
        return f"127.0.0.1:{self.config.ssl_port}"

    @property
    def ssl_cafile(self) -> Path:
        """The CA certificate (PEM) clients of the SSL listener trust."""
        return self.run_dir / "tls" / "ca.pem"

    @property
    def libs_dir(self) -> Path:
        return self.config.cache_dir.expanduser().resolve() / self.config.version / "libs"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "broker.pid"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    # -- fetch -------------------------------------------------------------------------
    def fetch(self) -> Path:
        """Resolve the broker jars from Maven Central into the cache (once per version)."""
        marker = self.libs_dir.parent / ".complete"
        if marker.exists():
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise DevBrokerError("Maven (mvn) is not on PATH; install it (apt-get install -y maven)")
        self.libs_dir.mkdir(parents=True, exist_ok=True)
        pom = resources.files("tripwire.devenv").joinpath("kafka-pom.xml")
        with resources.as_file(pom) as pom_path:
            cmd = [
                mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
                f"-Dkafka.version={self.config.version}", f"-DoutputDirectory={self.libs_dir}",
                "-DincludeScope=runtime",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise DevBrokerError(
                "Maven could not fetch org.apache.kafka:kafka_2.13:"
                f"{self.config.version} (is Maven Central reachable?):\n" + "\n".join(tail)
            )
        # Two SLF4J APIs on the classpath would silence the log4j2 binding.
        for old in self.libs_dir.glob("slf4j-api-1.*.jar"):
            old.unlink()
        marker.write_text(self.config.version)
        return self.libs_dir

    # -- config ------------------------------------------------------------------------
    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise DevBrokerError("Java is not on PATH; Kafka needs Java 17+ (apt-get install -y openjdk-17-jre)")
        return java

    def _classpath(self) -> str:
        return f"{self.libs_dir}/*"

    def _write_config(self) -> Path:
        c = self.config
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{c.port},CONTROLLER://127.0.0.1:{c.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{c.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{c.controller_port}",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.cleaner.backoff.ms": "1000",
            "log.retention.check.interval.ms": "60000",
        }
        if c.sasl_port is not None:
            props["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{c.sasl_port}"
            props["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{c.sasl_port}"
            props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            props["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
            props["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
            props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        if c.authorizer:
            props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            props["allow.everyone.if.no.acl.found"] = "false"
            props["super.users"] = ";".join(["User:ANONYMOUS", *(f"User:{u}" for u in c.super_users)])
        if c.ssl_port is not None:
            from tripwire.devenv._tls import ensure_dev_tls

            tls = ensure_dev_tls(self.run_dir / "tls")
            props["listeners"] += f",SSL://127.0.0.1:{c.ssl_port}"
            props["advertised.listeners"] += f",SSL://127.0.0.1:{c.ssl_port}"
            props["listener.security.protocol.map"] += ",SSL:SSL"
            props["listener.name.ssl.ssl.keystore.type"] = "PEM"
            props["listener.name.ssl.ssl.keystore.location"] = str(tls.server)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _jvm_args(self) -> list[str]:
        log4j = resources.files("tripwire.devenv").joinpath("log4j2.properties")
        return [
            self._java(), f"-Xms{self.config.heap}", f"-Xmx{self.config.heap}",
            "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}", f"-Dlog4j2.configurationFile={log4j}",
            "-cp", self._classpath(),
        ]

    def _format(self, props: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        # "--cluster-id=<id>": an id may start with "-" (1 in 64), which argparse takes for an option after "-t"
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        cmd = [*self._jvm_args(), "kafka.tools.StorageTool", "format", "--standalone",
               f"--cluster-id={cluster_id}", "-c", str(props)]
        for name, password in self.config.scram_users.items():  # SCRAM credentials live in the cluster metadata
            cmd += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password.get_secret_value()}]"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise DevBrokerError(f"formatting the KRaft storage failed:\n{proc.stdout}{proc.stderr}")

    # -- lifecycle ---------------------------------------------------------------------
    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def status(self) -> BrokerStatus:
        pid = self.recorded_pid()
        running = pid is not None and _pid_alive(pid)
        return BrokerStatus(running, pid if running else None, self.bootstrap, self.run_dir)

    def start(self, timeout_s: float | None = None) -> BrokerStatus:
        """Start the broker in the background and return once an AdminClient gets metadata."""
        st = self.status()
        if st.running:
            self.wait_ready(timeout_s or self.config.start_timeout_s)
            return st
        for port in (self.config.port, self.config.controller_port, self.config.sasl_port, self.config.ssl_port):
            if port is not None and not _port_free(port):
                raise DevBrokerError(
                    f"port {port} on 127.0.0.1 is taken by another process; stop it or choose another "
                    "port (TRIPWIRE_DEV_KAFKA_PORT / TRIPWIRE_DEV_KAFKA_CONTROLLER_PORT)"
                )
        self._java()
        self.fetch()
        props = self._write_config()
        self._format(props)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        self._proc = subprocess.Popen(
            [*self._jvm_args(), "kafka.Kafka", str(props)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        out.close()
        self.pid_file.write_text(str(self._proc.pid))
        try:
            self.wait_ready(timeout_s or self.config.start_timeout_s)
        except DevBrokerError:
            self.stop()
            raise
        return self.status()

    def wait_ready(self, timeout_s: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout_s
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
        last: Exception | None = None
        while time.monotonic() < deadline:
            pid = self.recorded_pid()
            if pid is not None and not _pid_alive(pid):
                raise DevBrokerError(f"the broker exited during start; see {self.log_dir}/stdout.log\n"
                                     + self._log_tail())
            try:
                md = admin.list_topics(timeout=2)
                if md.brokers:
                    return
            except Exception as e:  # KafkaException while the broker boots
                last = e
            time.sleep(0.2)
        raise DevBrokerError(f"the broker did not answer within {timeout_s:.0f}s ({last}); "
                             f"see {self.log_dir}/server.log\n" + self._log_tail())

    def _log_tail(self, n: int = 20) -> str:
        try:
            lines = (self.log_dir / "stdout.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """End the broker by its recorded pid and wait for it to exit. True if one was running."""
        pid = self.recorded_pid()
        if pid is None or not _pid_alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _pid_alive(pid):
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the broker (an abrupt outage, for failure tests)."""
        pid = self.recorded_pid()
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.02)
        self.pid_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tripwire.devenv", description=__doc__)
    sub = parser.add_subparsers(dest="service", required=True)
    kp = sub.add_parser("kafka", help="the dev Kafka broker")
    kp.add_argument("action", choices=["start", "stop", "status", "fetch"])
    kp.add_argument("--port", type=int, help=f"broker port (default {DEFAULT_PORT})")
    kp.add_argument("--controller-port", type=int, help=f"controller port (default {DEFAULT_CONTROLLER_PORT})")
    kp.add_argument("--run-dir", type=Path, help="folder for config, data, logs and pid")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"port": args.port, "controller_port": args.controller_port,
                                   "run_dir": args.run_dir}.items() if v is not None}
    broker = KafkaDevBroker(KafkaDevConfig(**overrides))
    try:
        if args.action == "fetch":
            print(f"kafka jars in {broker.fetch()}")
        elif args.action == "start":
            t0 = time.monotonic()
            st = broker.start()
            print(f"kafka running pid={st.pid} bootstrap={st.bootstrap} "
                  f"ready_in={time.monotonic() - t0:.1f}s run_dir={st.run_dir}")
        elif args.action == "stop":
            print("kafka stopped" if broker.stop() else "kafka was not running")
        else:
            st = broker.status()
            print(f"kafka {'running' if st.running else 'stopped'} pid={st.pid} bootstrap={st.bootstrap}")
            return 0 if st.running else 3
    except DevBrokerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
