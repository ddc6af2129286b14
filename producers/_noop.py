"""The no-op API used when tripwire is disabled by config: same shapes, does nothing."""

from __future__ import annotations

from typing import Any


class NoopSpan:
    __slots__ = ()
    span_id = ""
    tool_call_id = ""

    def record_usage(self, **kwargs: Any) -> None:
        return None

    def record_prompt(self, prompt: str | None = None, completion: str | None = None) -> None:
        return None

    def __enter__(self) -> NoopSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> NoopSpan:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


NOOP_SPAN = NoopSpan()


class NoopRun:
    __slots__ = ()
    run_id = ""
    trace_id = ""
    span_id = ""

    def model_call(self, provider: str, model: str, **kwargs: Any) -> NoopSpan:
        return NOOP_SPAN

    def tool_call(self, name: str, args: Any = None, **kwargs: Any) -> NoopSpan:
        return NOOP_SPAN

    def set_outcome(self, outcome: Any) -> None:
        return None

    def start(self) -> NoopRun:
        return self

    def finish(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __enter__(self) -> NoopRun:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> NoopRun:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


NOOP_RUN = NoopRun()
