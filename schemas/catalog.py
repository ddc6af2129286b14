"""Every shipped ``.avsc`` version, indexed by name, version and CRC-64-AVRO fingerprint.

Layout: ``<root>/v<N>/<name>.avsc``. A version directory holds only the schemas that changed
in that version; files are never edited or deleted once shipped. The *current* (reader)
schema of a name is its highest version. Writers are resolved by fingerprint across all
versions of all roots, so data written by any shipped version stays readable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from tripwire.schemas.errors import SchemaError

SHIPPED_ROOT = Path(__file__).resolve().parent / "avro"
_VERSION_DIR = re.compile(r"^v(\d+)$")


@dataclass(frozen=True, slots=True, eq=False)
class SchemaVersion:
    """One ``.avsc`` file: ``name`` is the file stem (``events``, ``run_summary``, ...)."""

    name: str
    version: int
    path: Path
    schema: Any  # the JSON as written (with docs and annotations)
    parsed: Any = field(repr=False)  # fastavro-parsed, reused by every call
    canonical: str = field(repr=False)  # Avro Parsing Canonical Form
    fingerprint: bytes = b""  # CRC-64-AVRO, 8 bytes little-endian (as in single-object encoding)
    # For a union of records: each branch parsed on its own (sharing the named types), with its full
    # name. fastavro re-walks a top-level union on every call; a parsed record is reused as is.
    branches: tuple[Any, ...] = field(default=(), repr=False)
    branch_names: tuple[str, ...] = ()

    @property
    def json(self) -> str:
        return json.dumps(self.schema)


def load_schema_file(path: Path, name: str, version: int) -> SchemaVersion:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = parse_schema(raw, _write_hint=True, _force=True)
        canonical = to_parsing_canonical_form(raw)
        branches: tuple[Any, ...] = ()
        if isinstance(raw, list):
            named: dict[str, Any] = {}
            branches = tuple(parse_schema(b, named, _write_hint=True, _force=True) for b in raw)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise SchemaError(f"cannot load schema {path}: {e}") from e
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    names = tuple(b["name"] if isinstance(b, dict) and "name" in b else str(b) for b in branches)
    return SchemaVersion(name, version, path, raw, parsed, canonical, fp, branches, names)


class SchemaCatalog:
    """All schema versions found under ``roots`` (the shipped root first; tests add fixture roots)."""

    def __init__(self, roots: Sequence[Path] = (SHIPPED_ROOT,), *, pins: dict[str, int] | None = None) -> None:
        self.roots = tuple(Path(r) for r in roots)
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fp: dict[bytes, SchemaVersion] = {}
        for root in self.roots:
            if not root.is_dir():
                raise SchemaError(f"schema root {root} is not a directory")
            for vdir in sorted(root.iterdir()):
                m = _VERSION_DIR.match(vdir.name)
                if not m or not vdir.is_dir():
                    continue
                for path in sorted(vdir.glob("*.avsc")):
                    self._add(load_schema_file(path, path.stem, int(m.group(1))))
        if not self._by_name:
            raise SchemaError(f"no .avsc files under {', '.join(map(str, self.roots))}")
        self._current: dict[str, SchemaVersion] = {}
        for name, versions in self._by_name.items():
            pin = (pins or {}).get(name)
            if pin is not None and pin not in versions:
                raise SchemaError(f"pinned version v{pin} of {name} does not exist")
            self._current[name] = versions[pin if pin is not None else max(versions)]

    def _add(self, sv: SchemaVersion) -> None:
        versions = self._by_name.setdefault(sv.name, {})
        if sv.version in versions:
            raise SchemaError(f"{sv.name} v{sv.version} is defined twice: {versions[sv.version].path} and {sv.path}")
        other = self._by_fp.get(sv.fingerprint)
        if other is not None and other.name != sv.name:
            raise SchemaError(f"{sv.path} has the same fingerprint as {other.path}")
        versions[sv.version] = sv
        self._by_fp.setdefault(sv.fingerprint, sv)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def versions(self, name: str) -> list[SchemaVersion]:
        """Every version of ``name``, oldest first."""
        try:
            return [v for _, v in sorted(self._by_name[name].items())]
        except KeyError as e:
            raise SchemaError(f"unknown schema {name!r}; known: {', '.join(self.names())}") from e

    def current(self, name: str) -> SchemaVersion:
        """The reader schema of ``name``: its highest version (or the pinned one)."""
        try:
            return self._current[name]
        except KeyError as e:
            raise SchemaError(f"unknown schema {name!r}; known: {', '.join(self.names())}") from e

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fp.get(fp)

    def all(self) -> Iterable[SchemaVersion]:
        for name in self.names():
            yield from self.versions(name)


@cache
def default_catalog() -> SchemaCatalog:
    """The catalog of the schemas shipped with this package (loaded once per process)."""
    return SchemaCatalog()


LOCK_FILE = SHIPPED_ROOT / "fingerprints.json"


def read_lock(path: Path = LOCK_FILE) -> dict[str, dict[str, str]]:
    """``{name: {"v<N>": fingerprint hex}}`` of every version ever shipped."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise SchemaError(f"cannot read {path}: {e}") from e


def check_lock(root: Path = SHIPPED_ROOT, lock_path: Path = LOCK_FILE) -> list[str]:
    """Shipped files are kept forever and never edited: every locked version must still exist with
    the same fingerprint, and every version under ``root`` must be locked."""
    lock = read_lock(lock_path)
    found = {(sv.name, f"v{sv.version}"): sv.fingerprint.hex() for sv in SchemaCatalog([root]).all()}
    problems = []
    for name, versions in sorted(lock.items()):
        for version, fp in sorted(versions.items()):
            got = found.get((name, version))
            if got is None:
                problems.append(f"{name} {version} was shipped (fingerprint {fp}) but its file is gone")
            elif got != fp:
                problems.append(f"{name} {version} changed after it was shipped: fingerprint {got}, locked {fp}")
    for (name, version), fp in sorted(found.items()):
        if version not in lock.get(name, {}):
            problems.append(f"{name} {version} ({fp}) is not in {lock_path.name}; run `tripwire schemas lock`")
    return problems


def update_lock(root: Path = SHIPPED_ROOT, lock_path: Path = LOCK_FILE) -> list[str]:
    """Add new versions to the lock (never changes a locked one); returns what was added."""
    lock = read_lock(lock_path)
    added = []
    for sv in SchemaCatalog([root]).all():
        versions = lock.setdefault(sv.name, {})
        key = f"v{sv.version}"
        if key not in versions:
            versions[key] = sv.fingerprint.hex()
            added.append(f"{sv.name} {key} {sv.fingerprint.hex()}")
        elif versions[key] != sv.fingerprint.hex():
            raise SchemaError(f"{sv.name} {key} differs from its locked fingerprint; ship a new version instead")
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return added
