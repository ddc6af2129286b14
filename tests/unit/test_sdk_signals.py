"""SIGTERM/SIGINT: the tracer flushes within its bound, then the previous handler runs; never swallowed."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit._sdk_fixtures import make_tracer
from tripwire.producers import _signals

pytestmark = pytest.mark.unit


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in _signals.SIGNALS}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        _signals._previous.clear()


def test_sigterm_flushes_then_calls_the_applications_handler(tmp_path: Path, restore_signals: None) -> None:
    seen: list[tuple[int, int]] = []
    tracer, got = make_tracer(tmp_path, delivery={"signal_flush_s": 5.0})
    tracer.close()  # a tracer built before the application's handler: that one is then not chained

    def app_handler(signum: int, frame: Any) -> None:
        seen.append((signum, len(got.raw)))

    signal.signal(signal.SIGTERM, app_handler)
    tracer, got = make_tracer(tmp_path / "2", delivery={"signal_flush_s": 5.0, "poll_interval_s": 0.5})
    assert signal.getsignal(signal.SIGTERM) is _signals._on_signal
    with tracer.run() as run:
        for i in range(300):
            with run.tool_call("t", args={"i": i}):
                pass
    os.kill(os.getpid(), signal.SIGTERM)  # the handler runs in this (the main) thread, right here
    assert seen == [(signal.SIGTERM, 302)]  # called once, after every event was delivered
    assert tracer.counters().delivered == 302
    tracer.close()


def test_sigint_of_an_application_that_handles_it_is_left_alone(tmp_path: Path, restore_signals: None) -> None:
    def mine(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGINT, mine)
    tracer, _ = make_tracer(tmp_path)
    assert signal.getsignal(signal.SIGINT) is mine
    assert signal.getsignal(signal.SIGTERM) is _signals._on_signal
    tracer.close()


def test_default_sigint_raises_keyboard_interrupt_after_the_flush(tmp_path: Path, restore_signals: None) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tracer, got = make_tracer(tmp_path, delivery={"poll_interval_s": 0.5})
    with tracer.run() as run:
        for i in range(100):
            with run.tool_call("t", args={"i": i}):
                pass
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert len(got.raw) == 102
    tracer.close()


def test_disabled_by_setting(tmp_path: Path, restore_signals: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    tracer, _ = make_tracer(tmp_path, delivery={"handle_signals": False})
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    tracer.close()
