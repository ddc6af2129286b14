"""Model-call spans (tool-call spans live in :mod:`tripwire.producers.tool_calls`). Each span emits one
event when it ends (or when it is refused)."""

from __future__ import annotations

import math
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tripwire.producers._runtime import (
    Runtime,
    new_span_id,
    non_empty,
    now_us,
)
from tripwire.producers.cost import TokenUsage
from tripwire.producers.errors import BudgetExceeded, InvalidArgumentError
from tripwire.schemas.events import ModelCall

if TYPE_CHECKING:
    from tripwire.producers.run import Run

from tripwire.producers._span_base import _BLOCKED, _count, _Span, _status_of


class ModelCallSpan(_Span):
    """``with run.model_call(provider=..., model=...) as call: call.record_usage(...)``."""

    __slots__ = (
        "_completion",
        "_finish_reason",
        "_prompt",
        "_provider_cost",
        "_response_model",
        "_usage",
        "model",
        "operation_name",
        "provider",
    )

    def __init__(self, run: Run, rt: Runtime, provider: str, model: str, operation_name: str) -> None:
        super().__init__(run, rt)
        self.provider = non_empty("provider", provider)
        self.model = non_empty("model", model)
        self.operation_name = non_empty("operation_name", operation_name)
        self._usage = TokenUsage()
        self._provider_cost: float | None = None
        self._response_model: str | None = None
        self._finish_reason: str | None = None
        self._prompt: str | None = None
        self._completion: str | None = None

    def record_usage(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cost_usd: float | None = None,
        response_model: str | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """Token counts are disjoint: ``input_tokens`` exclude cache reads/writes, ``output_tokens`` exclude
        reasoning. ``cost_usd`` is what the provider reported (it wins over the price table)."""
        usage = TokenUsage(
            _count("input_tokens", input_tokens),
            _count("cache_read_tokens", cache_read_tokens),
            _count("cache_write_tokens", cache_write_tokens),
            _count("output_tokens", output_tokens),
            _count("reasoning_tokens", reasoning_tokens),
        )
        if cost_usd is not None:
            if (
                isinstance(cost_usd, bool)
                or not isinstance(cost_usd, int | float)
                or not math.isfinite(cost_usd)
                or cost_usd < 0
            ):
                raise InvalidArgumentError(f"cost_usd must be a finite non-negative number, got {cost_usd!r}")
            self._provider_cost = float(cost_usd)
        self._usage = usage
        if response_model is not None:
            self._response_model = str(response_model)
        if finish_reason is not None:
            self._finish_reason = str(finish_reason)

    def record_prompt(self, prompt: str | None = None, completion: str | None = None) -> None:
        """Kept (redacted) only when ``logging.store_prompts`` is on; otherwise discarded here."""
        if not self._rt.store_prompts:
            return
        red = self._rt.redactor
        if prompt is not None:
            self._prompt = red.redact_text(str(prompt), "prompt")
        if completion is not None:
            self._completion = red.redact_text(str(completion), "completion")

    def _event(self, status: str, error_type: str | None, start: int, end: int) -> dict[str, Any]:
        run = self._run
        f = run.fields(self.span_id, self._parent_span_id, start, end)
        u = self._usage
        result = self._rt.costs.compute(self.provider, self.model, u, provider_cost_usd=self._provider_cost)
        f.update(
            operation_name=self.operation_name,
            provider=self.provider,
            request_model=self.model,
            response_model=self._response_model,
            input_tokens=u.input_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            output_tokens=u.output_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cost_usd=result.cost_usd,
            cost_source=result.cost_source,
            price_version=result.price_version,
            status=status,
            finish_reason=self._finish_reason,
            error_type=error_type,
            prompt=self._prompt,
            completion=self._completion,
        )
        run.budget.commit_usage(
            u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
            u.output_tokens + u.reasoning_tokens,
            result.cost_usd,
        )
        return f

    def __enter__(self) -> ModelCallSpan:
        run = self._run
        try:
            run.budget.reserve_step()
        except BudgetExceeded as e:
            self._parent_span_id = run.span_id
            self.span_id = new_span_id()
            t = now_us()
            run.emit(ModelCall, self._event(_BLOCKED, type(e).__name__, t, t))
            raise
        self._open()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        end = self._close()
        self._run.emit(
            ModelCall,
            self._event(_status_of(exc), type(exc).__name__ if exc is not None else None, self._start_us, end),
        )

    async def __aenter__(self) -> ModelCallSpan:
        return self.__enter__()

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, exc, tb)


from tripwire.producers.tool_calls import ToolCallSpan  # noqa: E402 - re-exported

__all__ = ["ModelCallSpan", "ToolCallSpan"]
