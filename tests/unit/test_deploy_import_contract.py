"""The import contract (``scripts/import_contract.py``, run by ``.ci/run``): green on the tree, and each rule
catches a deliberate violation in a scratch tree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def _contract():
    spec = importlib.util.spec_from_file_location("import_contract", ROOT / "scripts" / "import_contract.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["import_contract"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_the_tree_keeps_the_contract() -> None:
    found = [str(v) for v in _contract().check(ROOT)]
    assert found == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "tripwire" = "tripwire", "tripwire.schemas" = "schemas", '
        '"tripwire.producers" = "producers", "tripwire.processors" = "processors", "tripwire.sinks" = "sinks", '
        '"tripwire.dashboard" = "dashboard" }\n'
    )
    for folder in ("tripwire", "tripwire/core", "schemas", "producers", "processors", "sinks", "dashboard",
                   "benchmarks"):  # fmt: skip
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    for path, text in files.items():
        (tmp_path / path).write_text(text)
    return tmp_path


def test_a_clean_scratch_tree_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "schemas/codec.py": "from tripwire.core.errors import X\n",
        "producers/tracer.py": "from tripwire.schemas import codec\nfrom tripwire.producers._encode import E\n",
        "processors/run_aggregator.py": "from tripwire.schemas import codec\nimport json\n",
        "processors/app.py": "import faust\n",
        "dashboard/page.py": "from tripwire.sinks import queries\n",
    })  # fmt: skip
    assert _contract().check(root) == []


@pytest.mark.parametrize(
    ("path", "text", "rule"),
    [
        ("schemas/codec.py", "from tripwire.producers import Tracer\n", "layers"),
        ("sinks/store.py", "def f():\n    from tripwire.processors import Pipeline\n", "layers"),  # function-level
        ("dashboard/page.py", "from tripwire.sinks._server_store import S\n", "private"),
        ("dashboard/page.py", "from tripwire.sinks import _server_store\n", "private"),
        ("processors/run_aggregator.py", "import faust\n", "operator-runtime"),
        ("processors/latency.py", "from confluent_kafka import Consumer\n", "operator-runtime"),
        ("processors/detect_run.py", "from tripwire.processors.app import app\n", "operator-runtime"),
        ("tripwire/core/security.py", "import faust\n", "kernel-framework"),
        ("producers/tracer.py", "from tripwire.demo import run_demo\n", "layers"),  # nothing imports the shell
    ],
)
def test_each_rule_catches_a_deliberate_violation(tmp_path: Path, path: str, text: str, rule: str) -> None:
    found = _contract().check(_tree(tmp_path, {path: text}))
    assert [(v.rule, str(v.path)) for v in found] == [(rule, path)]
