"""Issue 19, the README's first command as a new user runs it: ``tripwire demo`` with no ``--duration``.

- Five minutes, stopped by Ctrl-C (SIGINT): every incident kind is detected, a kill switch blocked calls
  that are stored, and ``tripwire demo report`` says so. The figures (time to the first incident, to
  every kind detected, blocked calls) go to ``test-artifacts/demo/figures.json``.
- A restart: switches tripped in the first run are restored from the audit table, so the first call the
  restarted fleet makes under one of them is blocked, and the incident cycle continues.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tripwire.sim.incidents import INCIDENT_KINDS, read_ground_truth

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "demo"
RUN_S = 300.0


def _start(folder: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tripwire.cli", "demo", "--no-dashboard", "--dir", str(folder),
                             *args], stdout=log.open("w"), stderr=subprocess.STDOUT)


def _run_for(proc: subprocess.Popen[bytes], seconds: float, log: Path) -> None:
    """Let the demo run for ``seconds`` (the scenario's length), then Ctrl-C it and wait for the flush."""
    try:
        proc.wait(timeout=seconds)
        pytest.fail("the demo ended on its own:\n" + log.read_text()[-4000:])
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 0, log.read_text()[-4000:]


def _report(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tripwire.cli", "demo", "report", "--dir", str(folder)],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "250"})


def _store(folder: Path):  # type: ignore[no-untyped-def]
    from tripwire.sinks.store import open_store

    return open_store(f"chdb://{(folder / 'chdb').resolve()}", create=False)


@pytest.mark.timeout(420)
def test_open_ended_demo_detects_every_kind_within_five_minutes(tmp_path: Path) -> None:
    folder, log = tmp_path / "demo", tmp_path / "demo.log"
    _run_for(_start(folder, log), RUN_S, log)
    run = json.loads((folder / "last_run.json").read_text())
    assert run["dropped"] == 0 and run["drained"] is True and run["internal_errors"] == 0

    report = _report(folder)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "missed" not in report.stdout
    assert f"incident kinds caught │ {len(INCIDENT_KINDS)}: " in report.stdout, report.stdout

    truth = read_ground_truth(folder / "ground_truth.jsonl")
    started = float(run["started_epoch_s"])
    first_incident = min(float(r["started_epoch_s"]) for r in truth) - started
    assert first_incident <= 30.0
    assert {r["kind"] for r in truth} == set(INCIDENT_KINDS)
    assert any(r["incident_id"].startswith("c1-") for r in truth)  # the cycle repeats after 180 s
    with _store(folder) as store:
        blocked = int(store.query("SELECT count() FROM tool_calls WHERE status = 'blocked' "
                                  "AND startsWith(blocked_reason, 'kill switch')", {}).rows[0][0])
        assert blocked >= 1
        detected_at: dict[str, float] = {}
        for r in truth:  # the first alert of the expected kind on the incident's agents, after it began
            kind, expected = r["kind"], r["expected_alert"]
            if expected is None:
                continue
            agents = [r["agent_id"], *([r["params"]["shares_with"]] if r["params"].get("shares_with") else [])]
            found = store.query(
                "SELECT min(created_at) FROM alerts WHERE kind = {k:String} AND agent_id IN {a:Array(String)} "
                "AND created_at >= {t:DateTime64(6, 'UTC')}",
                {"k": expected, "a": agents, "t": datetime.fromtimestamp(float(r["started_epoch_s"]) - 5, UTC)},
            ).rows[0][0]
            if found is not None and found.year > 1970:
                at = (found if found.tzinfo else found.replace(tzinfo=UTC)).timestamp()
                detected_at[kind] = min(detected_at.get(kind, at), at)
        # detected within the run (the report's judgement above covers the PII redaction)
        assert set(detected_at) == {k for k, a in INCIDENT_KINDS.items() if a is not None}
        audit_rows, trips = store.query("SELECT count(), uniqExact(command_id) FROM killswitch_audit", {}).rows[0]
    all_kinds = max(detected_at.values()) - started
    assert all_kinds <= RUN_S
    figures = {"first_incident_s": round(first_incident, 1), "all_kinds_detected_s": round(all_kinds, 1),
               "blocked_calls_stored": blocked, "blocked_calls_sdk": run["blocked_calls"],
               "killswitch_audit_rows": int(audit_rows), "kill_switch_trips": int(trips),
               "incidents_injected": len(truth), "events": run["emitted"]}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print("demo figures:", json.dumps(figures))


@pytest.mark.timeout(300)
def test_restart_restores_the_switches_in_force_and_continues_the_cycle(tmp_path: Path) -> None:
    folder, log = tmp_path / "demo", tmp_path / "demo.log"
    # first run: cycle 0 trips freeze_tool switches (runaway loop ~20 s in, unapproved refund ~25 s in;
    # TTLs 60 s and 90 s in the demo's kill-switch policy)
    _run_for(_start(folder, log), 45.0, log)
    with _store(folder) as store:
        now = datetime.now(UTC)
        frozen = store.query(
            "SELECT scope, max(expires_at) FROM killswitch_audit WHERE action = 'freeze_tool' GROUP BY scope", {}
        ).rows
    assert frozen, "the first run tripped no freeze_tool switch"
    assert any(exp.replace(tzinfo=UTC) > now for _, exp in frozen)

    second = _start(folder, tmp_path / "demo2.log")
    wait_until(lambda: second.poll() is not None or (folder / "ground_truth.jsonl").read_text().count("c1-") >= 1,
               timeout=90, message="the restarted demo's first incident")
    _run_for(second, 5.0, tmp_path / "demo2.log")
    run2 = json.loads((folder / "last_run.json").read_text())
    assert run2["restored_switches"] >= 1
    ids = [r["incident_id"] for r in read_ground_truth(folder / "ground_truth.jsonl")]
    assert ids[0] == "c0-pii_in_args" and "c1-pii_in_args" in ids  # the cycle continued, new ids
    started2 = datetime.fromtimestamp(float(run2["started_epoch_s"]), UTC)
    checked = 0
    with _store(folder) as store:
        for scope, expires in frozen:
            if expires.replace(tzinfo=UTC) <= started2:
                continue  # expired before the restart: nothing to obey
            agent, tool = scope.removeprefix("agent:").split("/tool:")
            # Only runs the restarted fleet began: the first run simulated its runs ahead on their virtual
            # clock, so calls it decided before its switch tripped can carry timestamps after the restart.
            first = store.query(
                "SELECT ts_start, status, blocked_reason FROM tool_calls WHERE agent_id = {a:String} "
                "AND tool_name = {t:String} AND ts_start < {e:DateTime64(6, 'UTC')} AND run_id IN ("
                "SELECT run_id FROM run_events WHERE event_type = 'run_started' AND agent_id = {a:String} "
                "AND ts_start >= {s:DateTime64(6, 'UTC')}) ORDER BY ts_start LIMIT 1",
                {"a": agent, "t": tool, "s": started2, "e": expires},
            ).rows
            if not first:
                continue  # the agent did not reach that tool before the switch ended
            at, status, reason = first[0]
            assert status == "blocked" and reason.startswith("kill switch"), (scope, status, reason)
            # blocked by the restored switch, not by one the restarted policy issued for the scope since
            reissued = store.query(
                "SELECT min(issued_at) FROM killswitch_audit WHERE scope = {sc:String} "
                "AND issued_at >= {s:DateTime64(6, 'UTC')}", {"sc": scope, "s": started2},
            ).rows[0][0]
            assert reissued is None or reissued.year <= 1970 or at < reissued, (scope, at, reissued)
            checked += 1
    assert checked >= 1, f"no restored switch was met by the restarted fleet: {frozen}"
