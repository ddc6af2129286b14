"""The versioned format of serialized operator state: one binary record per key.

Each stage's state (the run aggregator's :class:`RunState`, the latency windows, the detectors'
dicts and the :class:`IncidentBook`, nested under the stage's fields) is written as one record: a
changelog record and a table value (``tables.pack``), and an entry of a ``Pipeline.to_bytes``
snapshot. Since v4 the record is binary::

    0x00 | version (1 byte) | due (float64, big-endian; NaN: none) | MessagePack of the fields

``due`` is the earliest wall-clock time at which a tick may change the key (a lower bound: see
``stages``), so the deadline index of a restarted worker is rebuilt from the stored values without
decoding them (:func:`peek_due`). Formats v1-v3 were one JSON object, with the version under
``"v"`` (v1: none); a JSON object never starts with 0x00, so :func:`decode` tells them apart by the
first byte. :func:`decode` upgrades an older state step by step through :data:`MIGRATIONS`, so a
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
- v3: the latency windows (agents stage, ``data.lw``) keep their recently closed windows under
  ``"c"`` (window key -> aggregate), with ``"ch"`` (``[closed_upto, wall time]`` of each advance)
  and ``"final"`` (windows ending at or before it take no revision), so a late call revises its
  window instead of being dropped; a v2 state starts with none and its closed windows final.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from typing import Any

import msgpack

from tripwire.processors._seq_tracker import SeqTracker
from tripwire.processors.errors import StateError, StateVersionError

STATE_VERSION = 4
_KEY = "v"
_BINARY = 0x00  # the first byte of a v4+ state (a JSON object starts with "{")
_HEADER = struct.Struct(">BBd")  # 0x00, version, due
HEADER_SIZE = _HEADER.size
_NONE = math.nan


def _runs_v1_to_v2(d: dict[str, Any]) -> dict[str, Any]:
    run = d.get("run")
    if isinstance(run, dict) and "version" in run:
        run = dict(run)
        run["summary_version"] = run.pop("version")
        d = {**d, "run": run}
    return d


def _unchanged(d: dict[str, Any]) -> dict[str, Any]:
    return d


def _agents_v2_to_v3(d: dict[str, Any]) -> dict[str, Any]:
    data = d.get("data")
    if isinstance(data, dict) and isinstance(data.get("lw"), dict) and "c" not in data["lw"]:
        lw = data["lw"]  # the windows it closed are final (their aggregates are gone)
        d = {**d, "data": {**data, "lw": {**lw, "c": {}, "ch": [], "final": lw.get("closed_upto")}}}
    return d


def _runs_v3_to_v4(d: dict[str, Any]) -> dict[str, Any]:
    run = d.get("run")
    if isinstance(run, dict) and "event_ids" in run:
        run = dict(run)
        events = run.pop("event_ids")
        run["seqs"] = SeqTracker.of(run.get("seqs", ()), count=len(events)).to_list()
        d = {**d, "run": run}
    return d


# stage name -> {from version: migration to the next version}
MIGRATIONS: dict[str, dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "runs": {1: _runs_v1_to_v2, 2: _unchanged, 3: _runs_v3_to_v4},
    "agents": {1: _unchanged, 2: _agents_v2_to_v3, 3: _unchanged},
    "credentials": {1: _unchanged, 2: _unchanged, 3: _unchanged},
}

_pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack


def encode(fields: dict[str, Any], due: float | None = None) -> bytes:
    """The bytes of one state: the header (format version, ``due``) and ``fields``."""
    try:
        return _HEADER.pack(_BINARY, STATE_VERSION, _NONE if due is None else due) + _pack(fields)
    except (TypeError, ValueError, OverflowError) as e:
        raise StateError(f"unencodable operator state: {e}") from e


def encode_json_v3(fields: dict[str, Any]) -> bytes:
    """A state as format v3 wrote it (JSON): for migration tests and the encoding benchmark only."""
    return json.dumps({_KEY: 3, **fields}, separators=(",", ":")).encode()


def peek_due(data: bytes, offset: int = 0) -> tuple[bool, float | None]:
    """(known, due) of the state in ``data[offset:]`` without decoding it; ``known`` is False for a
    JSON state (v1-v3), whose due only a decode can tell."""
    if len(data) < offset + HEADER_SIZE or data[offset] != _BINARY:
        return False, None
    due = _HEADER.unpack_from(data, offset)[2]
    return True, None if math.isnan(due) else due


def read(data: bytes) -> tuple[int, dict[str, Any]]:
    """(format version, fields) of a state as stored, not migrated (for tests and tools)."""
    if data[:1] == b"\x00":
        return data[1], msgpack.unpackb(data[HEADER_SIZE:], raw=False, strict_map_key=False)
    d = json.loads(data)
    return d.pop(_KEY, 1), d


def decode(stage: str, data: bytes) -> dict[str, Any]:
    """The fields of one state of ``stage``, upgraded to :data:`STATE_VERSION` (without ``"v"``)."""
    if data[:1] == b"\x00":
        if len(data) < HEADER_SIZE:
            raise StateError(f"undecodable operator state: {len(data)} bytes, shorter than its header")
        v = data[1]
        if v > STATE_VERSION:
            raise StateVersionError(
                f"{stage} state in format v{v}, newer than this worker reads (v1..v{STATE_VERSION}): "
                "a newer tripwire wrote it; upgrade this worker"
            )
        try:
            d = msgpack.unpackb(data[HEADER_SIZE:], raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            raise StateError(f"undecodable operator state: {e}") from e
        if not isinstance(d, dict):
            raise StateError(f"undecodable operator state: a {type(d).__name__}, not a map")
        return _migrate(stage, d, v)
    try:
        d = json.loads(data)
    except (ValueError, TypeError) as e:
        raise StateError(f"undecodable operator state: {e}") from e
    if not isinstance(d, dict):
        raise StateError(f"undecodable operator state: a JSON {type(d).__name__}, not an object")
    return _migrate(stage, d, d.pop(_KEY, 1))


def _migrate(stage: str, d: dict[str, Any], v: Any) -> dict[str, Any]:
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
