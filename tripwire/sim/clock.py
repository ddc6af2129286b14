"""A per-run virtual clock, so simulated calls take realistic (heavy-tailed) time without the
simulator sleeping through it.

Each simulated run binds its own cursor in a context variable, starting at the wall clock; the
simulator advances it by each call's latency. The SDK reads time through ``clock()`` and so stamps
events with the virtual times, while runs in other threads or tasks keep their own cursors.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager


class VirtualClock:
    def __init__(self) -> None:
        self._cursor: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("tripwire_sim_clock",
                                                                                      default=None)

    def __call__(self) -> int:
        """Epoch microseconds: the bound run's virtual time, else the wall clock."""
        cur = self._cursor.get()
        return cur[0] if cur is not None else time.time_ns() // 1000

    def now_s(self) -> float:
        return self() / 1e6

    @contextmanager
    def bind(self, start_us: int | None = None) -> Iterator[None]:
        token = self._cursor.set([start_us if start_us is not None else time.time_ns() // 1000])
        try:
            yield
        finally:
            self._cursor.reset(token)

    def advance_ms(self, ms: float) -> None:
        cur = self._cursor.get()
        if cur is None:
            raise RuntimeError("advance_ms outside VirtualClock.bind()")
        cur[0] += int(ms * 1000)
