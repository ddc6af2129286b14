"""Avro schema resolution rules (spec, "Schema Resolution"), applied statically: can a reader
schema read everything a writer schema writes? Used by ``tripwire schemas check`` and the
evolution tests to prove every version backward and forward compatible with all earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tripwire.schemas.catalog import SchemaCatalog, SchemaVersion

_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}
_PRIMITIVE = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class _Names:
    """Named types (records, enums, fixed) of one schema, by full and short name."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._walk(schema, "")

    def _walk(self, s: Any, ns: str) -> None:
        if isinstance(s, list):
            for b in s:
                self._walk(b, ns)
        elif isinstance(s, dict):
            t = s.get("type")
            if t in ("record", "enum", "fixed", "error"):
                name = s["name"]
                ns = s.get("namespace", ns) if "." not in name else name.rsplit(".", 1)[0]
                full = name if "." in name else (f"{ns}.{name}" if ns else name)
                self.types.setdefault(full, s)
                self.types.setdefault(full.rsplit(".", 1)[-1], s)
                for f in s.get("fields", []):
                    self._walk(f["type"], ns)
            elif t in ("array", "map"):
                self._walk(s.get("items", s.get("values")), ns)
            elif isinstance(t, dict | list):
                self._walk(t, ns)

    def resolve(self, s: Any) -> Any:
        if isinstance(s, str) and s not in _PRIMITIVE:
            found = self.types.get(s) or self.types.get(s.rsplit(".", 1)[-1])
            if found is None:
                raise KeyError(f"unknown named type {s}")
            return found
        if isinstance(s, dict) and isinstance(s.get("type"), str) and s["type"] in _PRIMITIVE:
            return s["type"]  # {"type": "long", "logicalType": ...} reads as its underlying type
        if isinstance(s, dict) and isinstance(s.get("type"), dict | list):
            return self.resolve(s["type"])
        return s


def _kind(s: Any) -> str:
    if isinstance(s, str):
        return s
    if isinstance(s, list):
        return "union"
    return s["type"]


def _short(s: dict[str, Any]) -> str:
    return s["name"].rsplit(".", 1)[-1]


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.rn, self.wn = _Names(reader), _Names(writer)
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def check(self, r: Any, w: Any, path: str) -> bool:
        r, w = self.rn.resolve(r), self.wn.resolve(w)
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            ok = True
            for branch in w:
                label = _label(self.wn.resolve(branch))
                ok &= self._readable_branch(r, branch, f"{path}|{label}" if path else label)
            return ok
        if rk == "union":
            return self._readable_branch(r, w, path)
        if rk != wk:
            if (wk, rk) in _PROMOTIONS:
                return True
            return self._fail(path, f"writer {wk} cannot be read as {rk}")
        if rk in _PRIMITIVE:
            return True
        if rk in ("record", "error"):
            return self._record(r, w, path)
        if rk == "enum":
            if _short(r) != _short(w):
                return self._fail(path, f"enum name {_short(w)} != {_short(r)}")
            unknown = [s for s in w["symbols"] if s not in r["symbols"]]
            if unknown and "default" not in r:
                return self._fail(path, f"writer enum symbols {unknown} unknown to reader (and no enum default)")
            return True
        if rk == "array":
            return self.check(r["items"], w["items"], f"{path}[]")
        if rk == "map":
            return self.check(r["values"], w["values"], f"{path}{{}}")
        if rk == "fixed":
            if _short(r) != _short(w) or r["size"] != w["size"]:
                return self._fail(path, "fixed name or size differs")
            return True
        return self._fail(path, f"unsupported type {rk}")

    def _readable_branch(self, reader: Any, writer_branch: Any, path: str) -> bool:
        branches = reader if isinstance(reader, list) else [reader]
        w = self.wn.resolve(writer_branch)
        if isinstance(w, dict) and w.get("type") in ("record", "error", "enum", "fixed"):
            # a named writer type is read by the reader branch of the same name: report its problems
            for b in branches:
                rb = self.rn.resolve(b)
                if isinstance(rb, dict) and rb.get("type") == w["type"] and _short(rb) == _short(w):
                    return self.check(rb, w, path)
        sub = _Checker.__new__(_Checker)
        sub.rn, sub.wn, sub._seen = self.rn, self.wn, set(self._seen)
        for b in branches:
            sub.problems = []
            if sub.check(b, writer_branch, path):
                return True
        return self._fail(path, f"no reader branch can read writer {_label(w)}")

    def _record(self, r: dict[str, Any], w: dict[str, Any], path: str) -> bool:
        if _short(r) != _short(w) and _short(w) not in r.get("aliases", []):
            return self._fail(path, f"record name {_short(w)} != {_short(r)}")
        key = (id(r), id(w))
        if key in self._seen:  # recursive types
            return True
        self._seen.add(key)
        wfields = {f["name"]: f for f in w["fields"]}
        ok = True
        for rf in r["fields"]:
            wf = wfields.get(rf["name"]) or next((wfields[a] for a in rf.get("aliases", []) if a in wfields), None)
            fpath = f"{path}.{rf['name']}"
            if wf is None:
                if "default" not in rf:
                    ok = self._fail(fpath, "reader field is missing from the writer and has no default")
                continue
            ok &= self.check(rf["type"], wf["type"], fpath)
        return ok

    def _fail(self, path: str, why: str) -> bool:
        self.problems.append(f"{path or '<root>'}: {why}")
        return False


def _label(s: Any) -> str:
    if isinstance(s, dict):
        return str(s.get("name", s.get("type", "?")))
    return str(s)


def can_read(reader: Any, writer: Any) -> list[str]:
    """Problems preventing ``reader`` from reading data written with ``writer`` (empty = compatible).
    Both are schema JSON (dict/list/str) as written in the ``.avsc`` files."""
    c = _Checker(reader, writer)
    c.check(reader, writer, "")
    return c.problems


@dataclass(frozen=True, slots=True)
class CompatResult:
    name: str
    old: int
    new: int
    backward: list[str]  # new reader reading old data
    forward: list[str]  # old reader reading new data

    @property
    def ok(self) -> bool:
        return not self.backward and not self.forward


def check_pair(old: SchemaVersion, new: SchemaVersion) -> CompatResult:
    return CompatResult(
        old.name, old.version, new.version, can_read(new.schema, old.schema), can_read(old.schema, new.schema)
    )


def check_catalog(catalog: SchemaCatalog) -> list[CompatResult]:
    """Every version of every schema against all of its earlier versions, both directions."""
    results = []
    for name in catalog.names():
        versions = catalog.versions(name)
        for i, new in enumerate(versions):
            for old in versions[:i]:
                results.append(check_pair(old, new))
    return results
