"""The shared part of spans: timing, the context variable, status mapping (private)."""

from __future__ import annotations

import asyncio
import time
from contextvars import Token
from typing import TYPE_CHECKING, Any

from tripwire.producers._runtime import (
    Runtime,
    new_span_id,
    now_us,
    span_end_us,
)
from tripwire.producers.errors import InvalidArgumentError
from tripwire.producers.run import CURRENT
from tripwire.schemas.enums import CallStatus

if TYPE_CHECKING:
    from tripwire.producers.run import Run

_OK, _ERROR, _TIMEOUT = CallStatus.OK.value, CallStatus.ERROR.value, CallStatus.TIMEOUT.value
_BLOCKED, _DENIED = CallStatus.BLOCKED.value, CallStatus.DENIED.value


def _status_of(exc: BaseException | None) -> str:
    if exc is None:
        return _OK
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return _TIMEOUT
    return _ERROR


def _count(name: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise InvalidArgumentError(f"{name} must be a non-negative int, got {value!r}")
    return value


class _Span:
    __slots__ = ("_parent_span_id", "_perf", "_rt", "_run", "_start_us", "_token", "span_id")

    def __init__(self, run: Run, rt: Runtime) -> None:
        self._run = run
        self._rt = rt
        self.span_id = ""
        self._parent_span_id: str | None = ""  # "" = not decided yet
        self._token: Token[Any] | None = None

    def _open(self) -> None:
        run = self._run
        cur = CURRENT.get()
        self._parent_span_id = cur[1] if cur is not None and cur[0] is run else run.span_id
        if not self.span_id:
            self.span_id = new_span_id()
        self._start_us = now_us()
        self._perf = time.perf_counter_ns()
        self._token = CURRENT.set((run, self.span_id))

    def _close(self) -> int:
        if self._token is not None:
            try:
                CURRENT.reset(self._token)
            except ValueError:
                pass
            self._token = None
        return span_end_us(self._start_us, self._perf)


__all__ = ["_Span", "_count", "_status_of"]
