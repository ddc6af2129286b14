"""Run mypy over the whole ``tripwire`` namespace.

mypy cannot follow setuptools' editable finder for the ``package-dir`` mapping, so this builds a tree of
links (``build/typecheck/tripwire/schemas -> schemas/`` ...) that mirrors the installed layout and points
mypy at it. Usage: ``python scripts/typecheck.py [extra mypy args]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    tree = ROOT / "build" / "typecheck"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "tripwire").mkdir(parents=True)
    for entry in (ROOT / "tripwire").iterdir():
        os.symlink(entry, tree / "tripwire" / entry.name)
    for package, folder in mapping.items():
        if package != "tripwire":
            os.symlink(ROOT / folder, tree / Path(*package.split(".")))
    cmd = [sys.executable, "-m", "mypy", "-p", "tripwire", *sys.argv[1:]]
    return subprocess.call(cmd, cwd=tree, env={**os.environ, "MYPYPATH": str(tree)})


if __name__ == "__main__":
    raise SystemExit(main())
