"""The README's first command, headless: ``tripwire demo --duration 60 --no-dashboard`` on a fresh
folder detects every injected incident, stores exactly what the SDK emitted, keeps no PII, and a
second run continues the same data without duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tripwire.sim.incidents import INCIDENT_KINDS, PII_CORPUS

pytestmark = pytest.mark.e2e

EVENT_TABLES = ("model_calls", "tool_calls", "run_events")
ALL_TABLES = (*EVENT_TABLES, "run_summaries", "window_stats", "alerts", "killswitch_audit", "dead_letters")


def _tripwire(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tripwire.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _store(folder: Path):  # type: ignore[no-untyped-def]
    from tripwire.sinks.store import open_store

    return open_store(f"chdb://{(folder / 'chdb').resolve()}", create=False)


def test_demo_detects_every_incident_and_loses_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = _tripwire("demo", "--duration", "60", "--no-dashboard", "--dir", str(folder), timeout=240)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-4000:]
    run1 = json.loads((folder / "last_run.json").read_text())
    assert run1["dropped"] == 0 and run1["drained"] is True
    assert run1["internal_errors"] == 0 and run1["dead_letters"] == 0

    report = _tripwire("demo", "report", "--dir", str(folder), timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr  # non-zero when an incident was missed
    assert report.stdout.count("detected") == len(INCIDENT_KINDS)
    assert "missed" not in report.stdout

    # The report is judged independently here too: per incident kind, the expected alert exists.
    with _store(folder) as store:
        kinds = {k for (k,) in store.query("SELECT DISTINCT kind FROM alerts", {}).rows}
        assert {a for a in INCIDENT_KINDS.values() if a} <= kinds
        stored = sum(int(store.query(f"SELECT count() FROM {t}", {}).rows[0][0]) for t in EVENT_TABLES)
        assert stored == run1["emitted"]
        # at least one automatic trip that agents obeyed: blocked calls stored with a kill-switch reason
        auto = store.query("SELECT count() FROM killswitch_audit WHERE startsWith(issued_by, 'policy:')", {})
        assert int(auto.rows[0][0]) >= 1
        blocked = store.query("SELECT count() FROM tool_calls WHERE status = 'blocked' "
                              "AND startsWith(blocked_reason, 'kill switch')", {})
        assert int(blocked.rows[0][0]) >= 1
        for s in PII_CORPUS:
            for table in ALL_TABLES:
                hits = store.query(f"SELECT count() FROM {table} WHERE position(formatRow('TSV', *), {{s:String}}) > 0",
                                   {"s": s})
                assert int(hits.rows[0][0]) == 0, f"{s!r} stored in {table}"

    second = _tripwire("demo", "--duration", "15", "--no-dashboard", "--dir", str(folder), timeout=180)
    assert second.returncode == 0, second.stderr[-4000:]
    run2 = json.loads((folder / "last_run.json").read_text())
    with _store(folder) as store:
        for t in EVENT_TABLES:
            total, distinct = store.query(f"SELECT count(), uniqExact(event_id) FROM {t}", {}).rows[0]
            assert int(total) == int(distinct), f"duplicates in {t}"
        stored = sum(int(store.query(f"SELECT count() FROM {t}", {}).rows[0][0]) for t in EVENT_TABLES)
        assert stored == run1["emitted"] + run2["emitted"]
