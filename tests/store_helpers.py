"""Record factories and store fixtures for the ClickHouse storage tests (area prefix: store)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tripwire.schemas import (
    Alert,
    ApprovalDecision,
    DeadLetter,
    KillSwitchCommand,
    ModelCall,
    RunFinished,
    RunStarted,
    RunSummary,
    ToolCall,
    WindowStats,
)

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def _hex(n: int) -> str:
    return uuid.uuid4().hex[:n] if n <= 32 else (uuid.uuid4().hex + uuid.uuid4().hex)[:n]


def base(run_id: str, seq: int, *, ts: datetime = T0, ms: float = 100.0, **kw: Any) -> dict[str, Any]:
    d = {
        "event_id": str(uuid.uuid4()),
        "tenant": "acme",
        "agent_id": "refund-assistant",
        "agent_version": "1.0.0",
        "workflow": "refunds",
        "environment": "prod",
        "principal": "user-1",
        "credential_fingerprint": "fp-1",
        "trace_id": _hex(32),
        "span_id": _hex(16),
        "parent_span_id": None,
        "run_id": run_id,
        "seq": seq,
        "ts_start": ts,
        "ts_end": ts + timedelta(milliseconds=ms),
    }
    d.update(kw)
    return d


def model_call(
    run_id: str = "r1", seq: int = 1, *, cost: float | None = 0.01, status: str = "ok", **kw: Any
) -> ModelCall:
    extra = {k: kw.pop(k) for k in list(kw) if k in ModelCall.model_fields and k not in base("x", 0)}
    return ModelCall(
        **base(run_id, seq, **kw),
        provider="openai",
        request_model=extra.pop("request_model", "gpt-4o"),
        input_tokens=extra.pop("input_tokens", 100),
        output_tokens=extra.pop("output_tokens", 20),
        cost_usd=cost,
        cost_source="price_table",
        status=status,
        **extra,
    )


def tool_call(run_id: str = "r1", seq: int = 2, *, status: str = "ok", **kw: Any) -> ToolCall:
    extra = {k: kw.pop(k) for k in list(kw) if k in ToolCall.model_fields and k not in base("x", 0)}
    return ToolCall(
        **base(run_id, seq, **kw),
        tool_name=extra.pop("tool_name", "issue_refund"),
        tool_call_id=extra.pop("tool_call_id", _hex(8)),
        risk=extra.pop("risk", "high"),
        status=status,
        side_effect=extra.pop("side_effect", True),
        **extra,
    )


def run_started(run_id: str = "r1", **kw: Any) -> RunStarted:
    return RunStarted(**base(run_id, 0, **kw), max_steps=10)


def approval(run_id: str = "r1", seq: int = 3, decision: str = "approved", **kw: Any) -> ApprovalDecision:
    return ApprovalDecision(
        **base(run_id, seq, **kw), tool_name="issue_refund", tool_call_id=_hex(8), risk="high", decision=decision
    )


def run_finished(run_id: str = "r1", seq: int = 4, outcome: str = "success", **kw: Any) -> RunFinished:
    return RunFinished(**base(run_id, seq, **kw), outcome=outcome, last_seq=seq)


def run_summary(
    run_id: str = "r1", *, version: int = 1, cost: float = 0.02, outcome: str = "success", **kw: Any
) -> RunSummary:
    d: dict[str, Any] = {
        "run_id": run_id,
        "tenant": "acme",
        "agent_id": "refund-assistant",
        "agent_version": "1.0.0",
        "workflow": "refunds",
        "environment": "prod",
        "principal": "user-1",
        "trace_id": _hex(32),
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=2),
        "duration_ms": 2000.0,
        "outcome": outcome,
        "cost_usd": cost,
        "cost_by_model": {"gpt-4o": cost},
        "model_calls": 1,
        "tool_calls": 1,
        "steps": 2,
        "events_seen": 5,
        "missing_seqs": [],
        "version": version,
        "emitted_at": T0 + timedelta(seconds=3, microseconds=version),
    }
    d.update(kw)
    return RunSummary(**d)


def window_stats(**kw: Any) -> WindowStats:
    d: dict[str, Any] = {
        "tenant": "acme",
        "agent_id": "refund-assistant",
        "agent_version": "1.0.0",
        "kind": "model",
        "name": "gpt-4o",
        "model": "gpt-4o",
        "window_start": T0,
        "window_end": T0 + timedelta(minutes=1),
        "count": 10,
        "errors": 1,
        "cost_usd": 0.1,
        "p50_ms": 100.0,
        "p95_ms": 200.0,
        "p99_ms": 300.0,
        "min_ms": 50.0,
        "max_ms": 400.0,
        "sum_ms": 1000.0,
        "sketch": b"\x00\x01\xff",
        "emitted_at": T0 + timedelta(minutes=1, seconds=5),
    }
    d.update(kw)
    return WindowStats(**d)


def alert(**kw: Any) -> Alert:
    d: dict[str, Any] = {
        "alert_id": str(uuid.uuid4()),
        "incident_id": "inc-1",
        "kind": "cost_spike",
        "severity": "critical",
        "scope": "agent:refund-assistant",
        "tenant": "acme",
        "agent_id": "refund-assistant",
        "observed": 5.0,
        "threshold": 1.0,
        "summary": "cost spike",
        "status": "firing",
        "evidence_event_ids": [str(uuid.uuid4())],
        "evidence_trace_ids": [_hex(32)],
        "created_at": T0,
        "updated_at": T0,
    }
    d.update(kw)
    return Alert(**d)


def killswitch_command(**kw: Any) -> KillSwitchCommand:
    d: dict[str, Any] = {
        "command_id": str(uuid.uuid4()),
        "scope": "agent:refund-assistant",
        "action": "freeze_tool",
        "issued_at": T0,
        "reason": "cost spike",
        "issued_by": "oncall@acme",
        "nonce": _hex(16),
        "key_id": "k1",
        "signature": b"\x01\x02" * 32,
    }
    d.update(kw)
    return KillSwitchCommand(**d)


def dead_letter(**kw: Any) -> DeadLetter:
    d: dict[str, Any] = {
        "dlq_id": str(uuid.uuid4()),
        "source_topic": "tripwire.events.v1",
        "partition": 0,
        "offset": 7,
        "key": b"r1",
        "value": b"\x00garbage",
        "reason": "bad magic",
        "error_type": "DecodeError",
        "stage": "decode",
        "failed_at": T0,
    }
    d.update(kw)
    return DeadLetter(**d)


# ---------------------------------------------------------------------------- stores


# chdb hosts one engine per process bound to one folder: every test of a process shares this
# folder and gets its own uuid database.
CHDB_ROOT = os.path.join(tempfile.gettempdir(), f"tripwire-store-tests-{os.getpid()}")
atexit.register(shutil.rmtree, CHDB_ROOT, True)


def chdb_url(database: str) -> str:
    return f"chdb://{CHDB_ROOT}?database={database}"


def _open_migrated(url: str, db: str) -> Iterator[Any]:
    from tripwire.sinks import migrate, open_store

    store = open_store(url)
    STORE_URLS[id(store)] = url
    migrate(store)
    try:
        yield store
    finally:
        STORE_URLS.pop(id(store), None)
        try:
            store.command(f"DROP DATABASE IF EXISTS {db}")
        finally:
            store.close()


STORE_URLS: dict[int, str] = {}


def store_url(store: Any) -> str:
    """The URL a test store was opened with (to open a second, e.g. read-only, store on it)."""
    return STORE_URLS[id(store)]


@pytest.fixture
def chdb_store() -> Iterator[Any]:
    """A migrated chdb store in a fresh uuid database (dropped afterwards)."""
    from tests.helpers import uid

    db = uid("st")
    yield from _open_migrated(chdb_url(db), db)


def server_url() -> str | None:
    """``TRIPWIRE_CLICKHOUSE_URL`` when it names a ClickHouse server."""
    url = os.environ.get("TRIPWIRE_CLICKHOUSE_URL", "")
    return url if url.startswith(("clickhouse://", "clickhouses://")) else None


@pytest.fixture(scope="session")
def clickhouse_server_url() -> Iterator[str]:
    """A ClickHouse server: TRIPWIRE_CLICKHOUSE_URL, else a testcontainers server when Docker
    answers, else the test is skipped with the reason."""
    url = server_url()
    if url:
        yield url
        return
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        pytest.skip(
            "no ClickHouse server: set TRIPWIRE_CLICKHOUSE_URL=clickhouse://user:pass@host:8123/db or run Docker"
        )
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    c = (
        DockerContainer("clickhouse/clickhouse-server:25.8")
        .with_env("CLICKHOUSE_USER", "tripwire")
        .with_env("CLICKHOUSE_PASSWORD", "tripwire")
        .with_env("CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT", "1")
        .with_exposed_ports(8123)
    )
    with c:
        wait_for_logs(c, "Ready for connections", timeout=60)
        yield f"clickhouse://tripwire:tripwire@{c.get_container_host_ip()}:{c.get_exposed_port(8123)}/default"


@pytest.fixture(params=["chdb", "server"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The same test on both backends: chdb always, a ClickHouse server when one is configured."""
    from tests.helpers import uid
    from tripwire.sinks.store import parse_store_url

    db = uid("st")
    if request.param == "chdb":
        yield from _open_migrated(chdb_url(db), db)
        return
    base = parse_store_url(request.getfixturevalue("clickhouse_server_url"))
    scheme = "clickhouses" if base.secure else "clickhouse"
    from urllib.parse import quote

    url = f"{scheme}://{quote(base.username)}:{quote(base.password)}@{base.host}:{base.port}/{db}"
    yield from _open_migrated(url, db)


def table_count(store: Any, table: str) -> int:
    return int(store.query(f"SELECT count() FROM {table}").scalar())
