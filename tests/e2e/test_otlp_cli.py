"""``tripwire otlp`` as a process: it listens, turns an OTLP/HTTP export into events on the topic,
answers /health, and exits cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import create_topics, uid, wait_until
from tests.integration.test_otlp_http_errors import chat_span, request
from tests.proc_kafka import CommittedReader
from tripwire.schemas import ModelCall

pytestmark = pytest.mark.e2e


def test_otlp_command_serves_and_stops(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = uid("otlp_cli")
    create_topics(kafka_bootstrap, {topic: 1})
    env = {**os.environ, "TRIPWIRE_KAFKA_BOOTSTRAP": kafka_bootstrap, "TRIPWIRE_KAFKA_TOPIC": topic,
           "TRIPWIRE_DELIVERY_SPOOL_DIR": str(tmp_path / "spool"), "TRIPWIRE_OTLP_HOST": "127.0.0.1",
           "TRIPWIRE_TENANT": "cli-tenant"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripwire.cli", "otlp", "--http-port", "0", "--grpc-port", "0"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and not line.startswith(b'{"listening"'):  # log lines may come first
            line = proc.stderr.readline()
        ports = json.loads(line)["listening"]
        base = f"http://127.0.0.1:{ports['http']}"
        r = httpx.post(f"{base}/v1/traces", content=request(chat_span(2)).SerializeToString(),
                       headers={"Content-Type": "application/x-protobuf"}, timeout=10)  # fmt: skip
        assert r.status_code == 200
        assert httpx.get(f"{base}/health", timeout=5).json()["receiver"]["events"] == 1
        reader = CommittedReader(kafka_bootstrap, topic, committed=False)
        try:
            wait_until(lambda: reader.poll(), timeout=30, message="the event on the topic")
            (ev,) = reader.records
            assert isinstance(ev, ModelCall) and ev.tenant == "cli-tenant" and ev.input_tokens == 100
        finally:
            reader.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        closed = json.loads(proc.stderr.read().decode().strip().splitlines()[-1])
        assert closed["closed"] is True and closed["clean"] is True and closed["events"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
