"""The installed ``tripwire`` console command runs the contract checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

FIXTURE_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "contract_schemas"


def _tripwire(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("tripwire", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "tripwire.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, check=False)


def test_schemas_check_passes_with_the_v2_fixture():
    r = _tripwire("schemas", "check", "--root", str(FIXTURE_ROOT))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "events v1 -> v2: ok" in lines
    assert "shipped files: unchanged" in lines
    assert lines[-1] == "compatible"


def test_schemas_list_prints_fingerprints():
    r = _tripwire("schemas", "list")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()]
    # run_summary has two versions (v2 added missing_seq_count): one line per shipped version
    assert names == ["alert", "dead_letter", "events", "kill_switch_command", "run_summary", "run_summary",
                     "window_stats"]
    assert all(len(line.split()[2]) == 16 for line in r.stdout.splitlines())
