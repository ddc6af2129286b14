"""Rate-limited logging: one line per key per interval, with the count of lines suppressed."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def _should(self, key: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._suppressed.pop(key, 0)

    def _log(self, level: int, key: str, msg: str, *args: object) -> None:
        suppressed = self._should(key)
        if suppressed is None:
            return
        if suppressed:
            msg += " suppressed=%d"
            args = (*args, suppressed)
        self._logger.log(level, msg, *args)

    def warning(self, key: str, msg: str, *args: object) -> None:
        self._log(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args: object) -> None:
        self._log(logging.ERROR, key, msg, *args)
