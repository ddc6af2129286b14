"""The import contract of the ``tripwire`` namespace, checked over the AST of every module (CI runs it).

Rules (a module's package is the top-level folder it lives in, mapped by ``package-dir`` in pyproject.toml):

1. **Layers.** Each package imports only the packages listed for it in :data:`ALLOWED` (the shared kernel
   ``tripwire.core`` and the contract ``tripwire.schemas`` are under everything; the kill-switch package and
   the redaction detectors are usable by all stages; the application shell (CLI, demo, simulator, dev
   services) may import anything and nothing imports it).
2. **Public APIs only.** No module imports a ``_private`` module (or name) of another package.
3. **Operators are plain Python.** The stream operators (every module of ``tripwire.processors`` outside
   :data:`PROCESSOR_RUNTIME`) import no faust, Kafka or ClickHouse client, and no runtime module.
4. **The kernel imports no framework** (faust, ClickHouse, Streamlit, ...).

Function-level imports count like module-level ones. ``TYPE_CHECKING`` blocks count too: a type-only
dependency is still a dependency. Usage: ``python scripts/import_contract.py [ROOT]``; exits 1 and lists
every violation as ``path:line: rule: detail``.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SHELL = "shell"
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "schemas": {"core"},
    "killswitch": {"core", "schemas"},
    "redaction": {"core"},
    "producers": {"core", "schemas", "killswitch", "redaction"},
    "processors": {"core", "schemas", "killswitch", "redaction", "producers"},
    "sinks": {"core", "schemas", "killswitch", "redaction"},
    "notify": {"core", "schemas", "killswitch", "redaction"},
    "dashboard": {"core", "schemas", "killswitch", "redaction", "sinks"},
    "benchmarks": {"core", "schemas", "killswitch", "redaction", "producers", "processors", "sinks", "notify",
                   "dashboard", SHELL},
    SHELL: {"core", "schemas", "killswitch", "redaction", "producers", "processors", "sinks", "notify", "dashboard",
            SHELL},
}  # fmt: skip
"""package -> the packages it may import (besides itself)."""

PROCESSOR_RUNTIME = {"app", "agents", "worker", "tables", "topics", "admin", "cli", "config", "killswitch_agent",
                     "metrics", "_faust_fixes", "_faust_check", "_state_cache", "_changelog_end"}  # fmt: skip
"""Modules of ``tripwire.processors`` that wire the operators to faust and Kafka; every other one is an operator."""

RUNTIME_LIBRARIES = {"faust", "mode", "aiokafka", "kafka", "confluent_kafka", "clickhouse_connect", "chdb", "rocksdict"}
# the kernel may use the base install's Kafka client (confluent-kafka: the SDK ships it) and nothing heavier
KERNEL_FORBIDDEN = (RUNTIME_LIBRARIES - {"confluent_kafka"}) | {"streamlit", "plotly", "pandas", "httpx"}


@dataclass(frozen=True, slots=True)
class Violation:
    path: Path
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.detail}"


def package_map(root: Path) -> dict[str, Path]:
    """``tripwire.<package>`` name -> its folder, from pyproject.toml's package-dir (``tripwire`` itself too)."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name: root / folder for name, folder in mapping.items()}


def package_of(module: str) -> str:
    """The contract's package of a ``tripwire.*`` module name (``shell`` for the root's own modules)."""
    parts = module.split(".")
    if parts[0] == "benchmarks":
        return "benchmarks"
    if len(parts) >= 2 and parts[1] in ALLOWED and parts[1] not in (SHELL, "benchmarks"):
        return parts[1]
    return SHELL


def modules(root: Path) -> Iterator[tuple[str, Path]]:
    """(module name, file) of every module of the namespace and of the benchmarks."""
    packages = package_map(root)
    nested = {folder.resolve() for name, folder in packages.items() if name != "tripwire"}
    for name, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            if name == "tripwire" and any(p in nested for p in path.resolve().parents):
                continue
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([*name.split("."), *parts]), path
    for path in sorted((root / "benchmarks").glob("*.py")):
        yield f"benchmarks.{path.stem}", path


def imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, imported module, imported names) of every import statement, relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([target] if target else [])])
            yield node.lineno, target, tuple(a.name for a in node.names)


def check(root: Path) -> list[Violation]:
    found: list[Violation] = []
    for module, path in modules(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        own = package_of(module)
        rel = path.relative_to(root)
        for line, target, names in imports(tree, module, path.name == "__init__.py"):
            top = target.split(".")[0]
            if own == "core" and top in KERNEL_FORBIDDEN:
                found.append(Violation(rel, line, "kernel-framework", f"{module} imports {target}"))
            if own == "processors":
                short = module.split(".")[2] if module.count(".") >= 2 else ""
                operator = short not in PROCESSOR_RUNTIME and module != "tripwire.processors"
                if operator and top in RUNTIME_LIBRARIES:
                    found.append(Violation(rel, line, "operator-runtime", f"operator {module} imports {target}"))
                if operator and target.startswith("tripwire.processors."):
                    dep = target.split(".")[2]
                    if dep in PROCESSOR_RUNTIME:
                        found.append(Violation(rel, line, "operator-runtime",
                                               f"operator {module} imports runtime module {target}"))  # fmt: skip
            if top != "tripwire":
                continue
            other = package_of(target) if target.count(".") >= 1 else SHELL
            if target == "tripwire":  # the namespace root re-exports the kernel's root error only
                other = "core"
            if other != own and other not in ALLOWED[own]:
                found.append(Violation(rel, line, "layers", f"{own} may not import {other} ({module} -> {target})"))
            if other != own:
                private = [p for p in target.split(".")[2:] if p.startswith("_")]
                private += [n for n in names if n.startswith("_") and not n.startswith("__")]
                if private:
                    found.append(Violation(rel, line, "private", f"{module} imports {target} {', '.join(private)}"))
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]).resolve() if len(argv) > 1 else Path(__file__).resolve().parents[1]
    found = check(root)
    for v in found:
        print(v)
    n = sum(1 for _ in modules(root))
    print(f"import contract: {n} modules, {len(found)} violation(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
