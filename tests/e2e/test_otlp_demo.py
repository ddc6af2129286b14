"""``tripwire demo`` accepts OTLP/HTTP: a recorded traceloop trace posted to the demo's receiver is processed
by the same in-process pipeline as the simulated fleet and stored in its chdb (events and a run summary)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import wait_until
from tripwire.producers.otlp import trace_run_id

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "otlp" / "traceloop_openai.pb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_demo_ingests_otlp_into_its_pipeline(tmp_path: Path) -> None:
    folder, port = tmp_path / "demo", _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripwire.cli", "demo", "--duration", "25", "--no-dashboard", "--rate", "20",
         "--agents", "1", "--dir", str(folder), "--otlp-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _health(port) or proc.poll() is not None, timeout=60, message="the demo's OTLP port")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        r = httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=FIXTURE.read_bytes(),
                       headers={"Content-Type": "application/x-protobuf"}, timeout=10)  # fmt: skip
        assert r.status_code == 200
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, out[-2000:] + err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    last = json.loads((folder / "last_run.json").read_text())
    assert last["otlp"]["events"] == 8 and last["otlp"]["rejected_spans"] == 0

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    req.ParseFromString(FIXTURE.read_bytes())
    trace = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    from tripwire.sinks.store import open_store

    with open_store(f"chdb://{(folder / 'chdb').resolve()}", create=False) as store:
        q = "SELECT count(), sum(cache_read_tokens) FROM model_calls WHERE trace_id = {t:String}"
        assert tuple(store.query(q, {"t": trace}).rows[0]) == (4, 4000)
        q = "SELECT count() FROM tool_calls WHERE trace_id = {t:String} AND tool_name = 'lookup_order'"
        assert int(store.query(q, {"t": trace}).scalar()) == 2
        q = "SELECT outcome, model_calls, tool_calls FROM run_summaries FINAL WHERE run_id = {r:String}"
        assert [tuple(r) for r in store.query(q, {"r": trace_run_id(trace)}).rows] == [("success", 4, 2)]
