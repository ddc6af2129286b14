"""The embedded runtime (the demo's in-process pipeline) against the real ClickHouse engine (chdb):
everything the SDK emits is stored exactly once, through ClickHouse failures, bad bytes and restarts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import uid
from tripwire.embedded import EmbeddedRuntime
from tripwire.producers import Tracer, TracerConfig
from tripwire.sinks.exceptions import StoreError
from tripwire.sinks.migrations import migrate
from tripwire.sinks.store import Store, open_store

pytestmark = pytest.mark.integration

EVENT_TABLES = ("model_calls", "tool_calls", "run_events")


class FlakyStore(Store):
    """A real store whose first ``failures`` inserts fail, as a ClickHouse outage would."""

    def __init__(self, inner: Store, failures: int, mark_failures: int = 0) -> None:
        self.inner = inner
        self.failures = failures
        self.failed = 0
        self.mark_failures = mark_failures  # failures of the sink's replay-mark lookups
        self.backend = inner.backend
        self.database = inner.database

    def command(self, sql: str, params: Any = None) -> None:
        self.inner.command(sql, params)

    def query(self, sql: str, params: Any = None) -> Any:
        if self.mark_failures and "src_topic = {topic:String}" in sql:
            self.mark_failures -= 1
            raise StoreError("Code: 210. DB::NetException: Connection refused (simulated outage)")
        return self.inner.query(sql, params)

    def query_df(self, sql: str, params: Any = None) -> Any:
        return self.inner.query_df(sql, params)

    def insert(self, table: str, columns: Any, rows: Any, *, dedup_token: str | None = None) -> int:
        if self.failed < self.failures:
            self.failed += 1
            raise StoreError("Code: 242. DB::Exception: Table is in readonly mode (simulated outage)")
        return self.inner.insert(table, columns, rows, dedup_token=dedup_token)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def store() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="embedded_chdb_"))
    s = open_store(f"chdb://{folder}?database={uid('emb')}")
    migrate(s)
    yield s
    s.close()


def _emit_runs(runtime: EmbeddedRuntime, spool: Path, runs: int) -> int:
    cfg = TracerConfig(tenant="acme", agent_version="1.0.0", delivery={"spool_dir": str(spool)})
    tracer = Tracer.in_process(runtime.submit, cfg)
    for i in range(runs):
        with tracer.run("refund-assistant", workflow="refunds", principal="svc", credential_fingerprint="fp") as run:
            with run.model_call("openai", "gpt-4.1-mini") as call:
                call.record_usage(input_tokens=800, output_tokens=90)
            with run.tool_call("stripe.get_charge", {"charge_id": f"ch_{i}"}):
                pass
    assert tracer.close(timeout=30)
    return tracer.counters().emitted


def _count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count() FROM {table}", {}).rows[0][0])


def _events(store: Store) -> int:
    return sum(_count(store, t) for t in EVENT_TABLES)


def test_everything_arrives_once_through_clickhouse_failures(store: Store, tmp_path: Path) -> None:
    flaky = FlakyStore(store, failures=4)
    runtime = EmbeddedRuntime(flaky, state_dir=tmp_path / "state", batch_seconds=0.1).start()
    emitted = _emit_runs(runtime, tmp_path / "spool", runs=25)
    assert runtime.stop(timeout=60)
    assert flaky.failed == 4
    assert emitted == 25 * 4
    assert _events(store) == emitted
    for t in EVENT_TABLES:
        total, distinct = store.query(f"SELECT count(), uniqExact(event_id) FROM {t}", {}).rows[0]
        assert int(total) == int(distinct)
    closed = store.query("SELECT count(DISTINCT run_id) FROM run_summaries FINAL WHERE outcome = 'success'", {})
    assert int(closed.rows[0][0]) == 25
    assert runtime.stats.internal_errors == 0


def test_bad_bytes_go_to_the_dlq_and_processing_goes_on(store: Store, tmp_path: Path) -> None:
    runtime = EmbeddedRuntime(store, state_dir=tmp_path / "state", batch_seconds=0.1).start()
    runtime.submit(b"run-x", b"\xc3\x01 definitely not avro")
    emitted = _emit_runs(runtime, tmp_path / "spool", runs=3)
    assert runtime.stop(timeout=60)
    assert _events(store) == emitted
    reasons = store.query("SELECT stage, reason FROM dead_letters ORDER BY stage", {}).rows
    assert [r[0] for r in reasons if r[0] == "decode"] != []
    assert all(r[1] for r in reasons)
    assert runtime.stats.dead_letters == 1


def test_a_restart_continues_the_same_data(store: Store, tmp_path: Path) -> None:
    first = EmbeddedRuntime(store, state_dir=tmp_path / "state", batch_seconds=0.1).start()
    n1 = _emit_runs(first, tmp_path / "spool", runs=5)
    assert first.stop(timeout=60)
    assert (tmp_path / "state" / "pipeline.state").exists()
    second = EmbeddedRuntime(store, state_dir=tmp_path / "state", batch_seconds=0.1).start()
    n2 = _emit_runs(second, tmp_path / "spool", runs=7)
    assert second.stop(timeout=60)
    assert _events(store) == n1 + n2
    assert int(store.query("SELECT count(DISTINCT run_id) FROM run_summaries FINAL", {}).rows[0][0]) == 12


def test_clickhouse_down_at_start_delays_the_start_and_loses_nothing(store: Store, tmp_path: Path) -> None:
    flaky = FlakyStore(store, failures=0, mark_failures=3)
    runtime = EmbeddedRuntime(flaky, state_dir=tmp_path / "state", batch_seconds=0.1).start(timeout=30)
    assert flaky.mark_failures == 0
    emitted = _emit_runs(runtime, tmp_path / "spool", runs=4)
    assert runtime.stop(timeout=60)
    assert _events(store) == emitted
    assert runtime.stats.dead_letters == 0 and runtime.stats.internal_errors == 0
