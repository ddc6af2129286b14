"""The garbage-collector policy of a long-running stage process (a processor worker, a sink).

Both hold many young objects that live on until their commit (decoded events, states, a sink's
buffered messages) and allocate at a high rate. With CPython's default thresholds (a young
collection every 700 allocations) the collector walked those objects again and again: ~10% of a
draining processor worker and ~30% of a sink consuming a backlog (``benchmarks/bench_processors.py``,
``benchmarks/bench_sink.py``). What exists once the process is built (modules, the app, its tables)
lives as long as the process, so it is frozen out of every collection, and young objects are
collected every ``YOUNG_THRESHOLD`` allocations. Cycles are still collected; later and in bigger
steps.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of young objects (CPython's default: 700)."""


def tune_gc() -> None:
    """Freeze what exists now out of every collection and collect young objects less often. Call it
    once, after the process has built what it keeps, right before its main loop."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)
