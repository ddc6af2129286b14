"""SIGTERM and SIGINT: deliver what can be delivered in a bounded time, then pass the signal on (private).

SIGTERM is how container runtimes, systemd and Kubernetes stop a process; ``atexit`` does not run for it.
One handler serves every tracer of the process. On the signal it:

* when the signal's previous disposition is the default action (SIGTERM's ``SIG_DFL``): *closes* every
  live tracer within ``delivery.signal_flush_s`` (what is not delivered by then stays in the spool for
  the next start), restores ``SIG_DFL`` and re-sends the signal to the process, which then ends as the
  signal says (exit status -15 / 143);
* when the previous handler is a Python callable (the application's own, or SIGINT's
  ``default_int_handler``, which raises ``KeyboardInterrupt``): *flushes* every tracer within the same
  bound (the application may go on emitting while it shuts down; ``atexit`` or its own ``close()``
  closes the tracer later), then calls that handler with the same arguments.

A second signal while the first is being handled skips the flush and is passed on at once. It is
never swallowed. SIGINT is only taken over while it has Python's default handler (an application
that installed its own keeps it untouched); a signal the application ignores (``SIG_IGN``) is left
alone. Handlers can only be installed from the main thread: a tracer built elsewhere installs none.
Servers that manage signals themselves (gunicorn, uvicorn, Celery) install theirs after the tracer or
instead of it; call ``tracer.close()`` from their shutdown hook.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Closable(Protocol):
    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self, timeout: float | None = None) -> bool: ...


_lock = threading.Lock()
_tracers: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()  # tracer -> flush bound (s)
_previous: dict[int, Any] = {}  # signal -> the disposition our handler replaced
_handling = False


def install(tracer: _Closable, flush_s: float) -> tuple[int, ...]:
    """Register ``tracer`` with the process's handler (installing it if needed); the signals handled."""
    with _lock:
        _tracers[tracer] = flush_s
        if threading.current_thread() is not threading.main_thread():
            logger.info("tripwire signal handlers not installed: the tracer was built outside the main thread")
            return tuple(s for s in _previous if signal.getsignal(s) is _on_signal)
        for sig in SIGNALS:
            current = signal.getsignal(sig)
            if current is _on_signal:
                continue
            if sig == signal.SIGINT and current is not signal.default_int_handler:
                continue  # the application handles SIGINT itself
            if current == signal.SIG_IGN or current is None:
                continue  # ignored on purpose, or set outside Python: not ours to change
            signal.signal(sig, _on_signal)
            _previous[sig] = current
        return tuple(s for s in _previous if signal.getsignal(s) is _on_signal)


def forget(tracer: _Closable) -> None:
    with _lock:
        _tracers.pop(tracer, None)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _handling
    previous = _previous.get(signum, signal.SIG_DFL)
    default = not callable(previous)
    if not _handling:
        _handling = True
        try:
            _drain(signum, close=default)
        finally:
            _handling = False
    if default:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    previous(signum, frame)


def _drain(signum: int, *, close: bool) -> None:
    tracers = list(_tracers.items())
    if not tracers:
        return
    deadline = time.monotonic() + max(bound for _, bound in tracers)
    logger.info("tripwire got signal=%d, %s tracers=%d", signum, "closing" if close else "flushing", len(tracers))
    for tracer, _ in tracers:
        remaining = max(0.0, deadline - time.monotonic())
        step: Callable[..., bool] = tracer.close if close else tracer.flush
        try:
            if not step(remaining):
                logger.warning("tripwire signal=%d: not everything was delivered in time, the rest is spooled", signum)
        except Exception as e:  # never in the way of the signal
            logger.error("tripwire signal=%d flush failed error=%r", signum, e)


__all__ = ["SIGNALS", "forget", "install"]
