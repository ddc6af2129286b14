"""Shared benchmark plumbing: results, timing loops and printing."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """One figure. ``ratio`` is tripwire's figure over the baseline's, oriented so that the
    ``higher_is_better`` flag says which way is good."""

    name: str
    value: float
    unit: str
    ratio: float | None = None
    baseline: float | None = None
    goal: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        ratio = f"{self.ratio:.3f}x" if self.ratio is not None else "-"
        return f"{self.name} {self.value:.4g} {self.unit} {ratio}"

    def json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, {})}, sort_keys=True)


def bootstrap() -> str:
    """The broker the Kafka benchmarks talk to."""
    return os.environ.get("TRIPWIRE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def best_rate(fn: Callable[[], int], repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Items per second of the best of ``repeats`` runs of ``fn`` (which returns how many items it did);
    ``clock=time.process_time`` counts this process's CPU time instead of the wall clock."""
    rates = []
    for _ in range(repeats):
        t0 = clock()
        n = fn()
        rates.append(n / (clock() - t0))
    return max(rates)


def interleaved(
    baseline: Callable[[], int],
    candidate: Callable[[], int],
    rounds: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float]:
    """Median items/s of a baseline and a candidate, run alternately so machine noise hits both alike."""
    b, c = [], []
    for _ in range(rounds):
        b.append(best_rate(baseline, 1, clock))
        c.append(best_rate(candidate, 1, clock))
    return statistics.median(b), statistics.median(c)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def report(results: list[Result]) -> None:
    for r in results:
        print(r.line())
        print(r.json())
