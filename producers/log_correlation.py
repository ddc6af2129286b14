"""``logging.trace_id: true``: every log record carries the current run's ``trace_id``, ``span_id`` and
``run_id`` (empty strings outside a run), so agent logs join the events on those ids.

Installed once per process by wrapping the log record factory (as OpenTelemetry's logging
instrumentation does), so it works for every logger and handler; use them in a format string, e.g.
``%(asctime)s %(levelname)s trace_id=%(trace_id)s run_id=%(run_id)s %(message)s``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tripwire.producers.run import CURRENT

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            cur = CURRENT.get()
            if cur is None:
                record.trace_id = record.span_id = record.run_id = ""
            else:
                run, span_id = cur
                record.trace_id, record.span_id, record.run_id = run.trace_id, span_id, run.run_id
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


__all__ = ["install"]
