"""Release simulated events when their time comes.

The fleet runs each simulated run ahead on its virtual clock, so a run's events are emitted within
milliseconds while their timestamps span the run's (realistic) seconds. Real agents emit an event
when its call ends; :class:`PacedRelease` restores that: it holds each event until the wall clock
reaches its ``ts_end`` and then passes it on, in due order. Event time then tracks arrival time, as
in production, and windowed detectors see what they would see there. ``close()`` releases
everything still held at once: nothing is lost on stop.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from tripwire.schemas import DecodeError, decode


class PacedRelease:
    def __init__(self, submit: Callable[[bytes, bytes], None], *, max_hold_s: float = 120.0) -> None:
        self._submit = submit
        self._max_hold_s = max_hold_s
        self._heap: list[tuple[float, int, bytes, bytes]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="tripwire-sim-release", daemon=True)
        self._thread.start()

    def __call__(self, key: bytes, value: bytes) -> None:
        """The SDK transport's sink: hold the event until its end time."""
        if self._closed:
            self._submit(key, value)
            return
        try:
            due = decode(value).ts_end.timestamp()  # type: ignore[attr-defined]  # events carry ts_end
        except (DecodeError, AttributeError):
            due = 0.0  # not ours to judge: pass it on now, the pipeline dead-letters it
        due = min(due, time.time() + self._max_hold_s)
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), key, value))
            self._cond.notify()

    @property
    def held(self) -> int:
        return len(self._heap)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.time()):
                    wait = self._heap[0][0] - time.time() if self._heap else None
                    self._cond.wait(wait if wait is None else max(0.001, min(wait, 0.5)))
                if self._closed and not self._heap:
                    return
                due = []
                now = time.time()
                while self._heap and (self._closed or self._heap[0][0] <= now):
                    _, _, k, v = heapq.heappop(self._heap)
                    due.append((k, v))
            for k, v in due:
                self._submit(k, v)

    def close(self, timeout: float = 30.0) -> None:
        """Release everything held now, in due order, and stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
