"""The local RocksDB state at start (processors/worker.py ``prepare_local_state``): kept when it was
written the trustworthy way and opens cleanly; otherwise deleted, so the tables are rebuilt from
their changelogs (absent, written by an older release, corrupt, unreadable persisted offset)."""

from __future__ import annotations

from pathlib import Path

import pytest
import rocksdict

from tripwire.processors.tables import OFFSET_KEY
from tripwire.processors.worker import STORE_MARKER, prepare_local_state

pytestmark = pytest.mark.unit


def _db(path: Path, offset: bytes | None = b"41") -> None:
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    db[b"run-1"] = b"\x00\x01state"
    if offset is not None:
        db[OFFSET_KEY] = offset
    db.close()


def test_absent_state_starts_new_and_marks_the_directory(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    assert prepare_local_state(tables, reset=False) == "new"
    assert (tables / STORE_MARKER).exists()


def test_a_trustworthy_store_is_kept(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    prepare_local_state(tables, reset=False)
    _db(tables / "app-state-runs-0.db")
    _db(tables / "app-state-runs-1.db", offset=None)  # nothing recovered or written yet: fine
    assert prepare_local_state(tables, reset=False) == "kept"
    db = rocksdict.Rdict(str(tables / "app-state-runs-0.db"), options=rocksdict.Options(raw_mode=True))
    assert db[OFFSET_KEY] == b"41" and db[b"run-1"] == b"\x00\x01state"  # untouched
    db.close()


def test_reset_deletes_a_trustworthy_store(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    prepare_local_state(tables, reset=False)
    _db(tables / "app-state-runs-0.db")
    assert prepare_local_state(tables, reset=True) == "rebuild: reset_local_state"
    assert sorted(p.name for p in tables.iterdir()) == [STORE_MARKER]


def test_a_store_of_an_older_release_is_rebuilt(tmp_path: Path) -> None:
    # it wrote states before their transaction committed: a kill could leave aborted writes in it
    tables = tmp_path / "tables"
    tables.mkdir()
    _db(tables / "app-state-runs-0.db")
    assert prepare_local_state(tables, reset=False) == "rebuild: written by an older release (no marker)"
    assert sorted(p.name for p in tables.iterdir()) == [STORE_MARKER]


@pytest.mark.parametrize("damage", ["current", "offset"])
def test_a_corrupt_store_is_rebuilt(tmp_path: Path, damage: str) -> None:
    tables = tmp_path / "tables"
    prepare_local_state(tables, reset=False)
    path = tables / "app-state-agents-2.db"
    if damage == "current":
        _db(path)
        (path / "CURRENT").write_text("MANIFEST-999999\n")  # points at a manifest that is not there
    else:
        _db(path, offset=b"not a number")
    outcome = prepare_local_state(tables, reset=False)
    assert outcome.startswith("rebuild: app-state-agents-2.db: ")
    assert sorted(p.name for p in tables.iterdir()) == [STORE_MARKER]
