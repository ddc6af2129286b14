"""Drivers of the separate processes the kill-switch tests and benchmark need: an agent (SDK) process
and a processors worker with the kill-switch policy. Every wait has a deadline."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class AgentProcess:
    """``python -m benchmarks._ks_agent`` driven over JSON lines (see that module)."""

    def __init__(self, *, bootstrap: str, killswitch_topic: str, events_topic: str, public_key: Path,
                 extra: list[str] | None = None, ready_timeout: float = 60.0) -> None:
        cmd = [sys.executable, "-m", "benchmarks._ks_agent", "--bootstrap", bootstrap,
               "--killswitch-topic", killswitch_topic, "--events-topic", events_topic,
               "--public-key", str(public_key), *(extra or [])]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.started = self.read(ready_timeout)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the agent process did not answer within {timeout:.0f}s") from None
        if line is None:
            raise RuntimeError(f"the agent process exited (code {self.proc.wait(5)})")
        return json.loads(line)

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def ask(self, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        self.send(request)
        return self.read(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"op": "exit"})
                self.read(timeout)
            except (OSError, TimeoutError, RuntimeError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PolicyWorker:
    """A processors worker (``python -m benchmarks._ks_worker``) with the kill-switch policy, until stopped."""

    def __init__(self, *, bootstrap: str, prefix: str, partitions: int, data_dir: Path, private_key: Path,
                 log_path: Path) -> None:
        from tripwire.processors.config import ProcessorConfig
        from tripwire.processors.topics import ensure_runtime_topics

        self.config = ProcessorConfig(bootstrap=bootstrap, topic_prefix=prefix, partitions=partitions,
                                      data_dir=data_dir, commit_interval_s=0.1)
        ensure_runtime_topics(self.config)
        env = dict(os.environ)
        env.update({
            "TRIPWIRE_PROCESSORS_BOOTSTRAP": bootstrap, "TRIPWIRE_PROCESSORS_TOPIC_PREFIX": prefix,
            "TRIPWIRE_PROCESSORS_PARTITIONS": str(partitions), "TRIPWIRE_PROCESSORS_DATA_DIR": str(data_dir),
            "TRIPWIRE_PROCESSORS_COMMIT_INTERVAL_S": "0.1", "TRIPWIRE_PROCESSORS_LOG_LEVEL": "info",
            "TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH": str(private_key),
        })
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks._ks_worker"], cwd=REPO, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_stable(self, timeout: float = 90.0) -> None:
        """Until the worker's consumer group is stable with a member (its agents are consuming)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.config.bootstrap})
        group = self.config.group_id
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited (code {self.proc.returncode}); see {self.log_path}")
            try:
                g = admin.describe_consumer_groups([group])[group].result(timeout=5)
                if str(g.state).endswith("STABLE") and g.members:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the worker's group {group} was not stable within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


__all__ = ["AgentProcess", "PolicyWorker"]
