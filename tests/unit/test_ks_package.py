"""The kill-switch package's boundary: it imports no stage, shell or pipeline framework (the SDK's base install
must import it), and every module outside it uses only its public API (``from tripwire.killswitch import ...``)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tripwire.killswitch as ks

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
# Where tripwire code lives outside the package (the folders mapped in pyproject.toml, tests, benchmarks, scripts).
OUTSIDE = ("tripwire", "schemas", "producers", "processors", "sinks", "dashboard", "tests", "benchmarks", "scripts")
FORBIDDEN_PREFIXES = (
    "tripwire.producers", "tripwire.processors", "tripwire.sinks", "tripwire.dashboard", "tripwire.cli",
    "tripwire.demo", "tripwire.sim", "tripwire.devenv", "tripwire.embedded",
    "faust", "aiokafka", "rocksdict", "clickhouse_connect", "chdb", "streamlit", "pandas", "httpx",
)


def test_importing_the_package_and_its_cli_pulls_in_no_stage_shell_or_pipeline_dependency() -> None:
    code = (
        "import json, sys; import tripwire.killswitch, tripwire.killswitch.cli; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('tripwire', 'faust', 'aiokafka', "
        "'rocksdict', 'clickhouse_connect', 'chdb', 'streamlit', 'pandas', 'httpx')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(out.stdout)
    assert "tripwire.killswitch.publisher" in loaded  # the probe saw the package itself
    assert [m for m in loaded if m.startswith(FORBIDDEN_PREFIXES)] == []


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_modules_outside_the_package_import_only_its_public_api() -> None:
    files = [p for folder in OUTSIDE for p in (REPO / folder).rglob("*.py")]
    assert len(files) > 100  # the scan saw the tree
    offenders = sorted(
        f"{p.relative_to(REPO)}: {name}"
        for p in files
        for name in _imports(p)
        if name.startswith("tripwire.killswitch.") or name.startswith("tripwire.producers._ks_")
    )
    assert offenders == []


def test_every_public_name_is_exported_and_documented() -> None:
    assert len(ks.__all__) == len(set(ks.__all__))
    assert all(hasattr(ks, name) for name in ks.__all__)
    readme = (REPO / "killswitch" / "README.md").read_text(encoding="utf-8")
    for name in ("CommandPublisher", "CommandPublishError", "KillSwitchListener", "KillSwitchState", "CommandSigner",
                 "CommandVerifier", "KillSwitchConfig", "new_command", "parse_scope", "read_topic", "ensure_topic"):
        assert name in ks.__all__ and f"`{name}" in readme, name
