"""``python -m benchmarks [name ...]``: run every ``bench_*.py`` module (or the named ones)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks._harness import Result, report


def available() -> list[str]:
    here = Path(__file__).parent
    modules = pkgutil.iter_modules([str(here)])
    return sorted(m.name.removeprefix("bench_") for m in modules if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(names)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {names}")
    failed = 0
    for name in args.names or names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"# {name}", flush=True)
        try:
            results = module.run()
        except Exception as e:  # one failing benchmark must not hide the others' figures
            print(f"# {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        report([r if isinstance(r, Result) else Result(**r) for r in results])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
