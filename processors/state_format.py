"""The versioned format of serialized operator state: one JSON object per key, with ``"v"``.

Each stage's state (the run aggregator's :class:`RunState`, the latency windows, the detectors'
dicts and the :class:`IncidentBook`, nested under the stage's fields) is written as one JSON
object: a changelog record and a table value (``tables.pack``), and an entry of a
``Pipeline.to_bytes`` snapshot. That object carries the format version :data:`STATE_VERSION` under
``"v"``. :func:`decode` upgrades an older object step by step through :data:`MIGRATIONS`, so a
worker of a new release reads every record its predecessor wrote, and refuses a newer one with
:class:`StateVersionError` (the runtime sends the event to the DLQ and logs it; the worker keeps
running).

Changing a state's shape: bump :data:`STATE_VERSION`, add a migration from the previous version
for every stage, say what changed in the history below, and keep a snapshot written by the old
code as a test fixture (``tests/fixtures/proc_state/v1_pipeline.json`` is format v1, written by
commit 19d8e79 from ``tests.proc_factory.state_scenario``; ``test_proc_state_format`` loads it).

History
- v1 (no ``"v"``): the format up to this change.
- v2: ``"v"`` added; the run state's ``version`` (the revision of its last RunSummary) is renamed
  ``summary_version``, so that "version" means only the format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tripwire.processors.errors import StateError, StateVersionError

STATE_VERSION = 2
_KEY = "v"


def _runs_v1_to_v2(d: dict[str, Any]) -> dict[str, Any]:
    run = d.get("run")
    if isinstance(run, dict) and "version" in run:
        run = dict(run)
        run["summary_version"] = run.pop("version")
        d = {**d, "run": run}
    return d


def _unchanged(d: dict[str, Any]) -> dict[str, Any]:
    return d


# stage name -> {from version: migration to the next version}
MIGRATIONS: dict[str, dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "runs": {1: _runs_v1_to_v2},
    "agents": {1: _unchanged},
    "credentials": {1: _unchanged},
}


def encode(fields: dict[str, Any]) -> bytes:
    """The bytes of one state: ``fields`` plus the current format version."""
    return json.dumps({_KEY: STATE_VERSION, **fields}, separators=(",", ":")).encode()


def decode(stage: str, data: bytes) -> dict[str, Any]:
    """The fields of one state of ``stage``, upgraded to :data:`STATE_VERSION` (without ``"v"``)."""
    try:
        d = json.loads(data)
    except (ValueError, TypeError) as e:
        raise StateError(f"undecodable operator state: {e}") from e
    if not isinstance(d, dict):
        raise StateError(f"undecodable operator state: a JSON {type(d).__name__}, not an object")
    v = d.pop(_KEY, 1)
    if not isinstance(v, int) or v < 1:
        raise StateError(f"bad operator state version {v!r} of stage {stage}")
    if v > STATE_VERSION:
        raise StateVersionError(
            f"{stage} state in format v{v}, newer than this worker reads (v1..v{STATE_VERSION}): "
            "a newer tripwire wrote it; upgrade this worker"
        )
    steps = MIGRATIONS.get(stage, {})
    while v < STATE_VERSION:
        step = steps.get(v)
        if step is None:
            raise StateError(f"no migration of {stage} state from v{v} to v{v + 1}")
        d = step(d)
        v += 1
    return d  # type: ignore[no-any-return]
