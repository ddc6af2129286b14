"""OpenAI Agents SDK adapter: a tracing processor for the run and its model calls, and a tool wrapper that
enforces the guard (kill switch), budgets and approvals before each function tool runs.

    from agents import add_trace_processor
    from tripwire.producers.adapters.openai_agents import TripwireProcessor

    tripwire = TripwireProcessor(tracer, risk={"issue_refund": "high"})
    add_trace_processor(tripwire)
    agent = Agent(name="refunds", tools=tripwire.guard_tools([issue_refund]), ...)

- A trace (``Runner.run``) is one tripwire run: started with the trace, finished with it (``failure`` when an
  agent span ended with an error).
- A response or generation span is one ``ModelCall`` (usage from the span, made disjoint; the model from the
  response when the SDK kept it, else ``model=``). Tokens and cost count against the run's budgets; a spent
  cost budget refuses the next tool call. A spent step or token budget is recorded (a ``blocked`` ModelCall)
  but cannot stop the framework's model call: a tracing processor has no say over it (use ``max_turns``).
- A guarded function tool is one ``ToolCall``: before it runs, ``run.tool_call(...)`` takes the budget, asks the
  guard and, when the kill switch demands a human, awaits the tracer's approver (sync or async). A refusal is
  returned to the model as the tool's output (:func:`~tripwire.producers.adapters._common.blocked_message`),
  the framework's own convention for a tool error: the agent reads why and carries on, nothing crashes.
- Handoff and guardrail spans have no event of their own in the contract; they are not recorded.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable
from typing import Any

from tripwire.core.errors import MissingExtraError
from tripwire.producers.adapters._common import RiskSpec, ToolRisk, blocked_message, disjoint_usage, parse_args
from tripwire.producers.errors import BudgetExceeded, ToolBlocked
from tripwire.producers.run import Run
from tripwire.producers.spans import ModelCallSpan
from tripwire.producers.tracer import Tracer

try:
    from agents import FunctionTool
    from agents.tool_context import ToolContext
    from agents.tracing import Span, Trace, TracingProcessor, get_current_span, get_current_trace
    from agents.tracing.span_data import AgentSpanData, GenerationSpanData, ResponseSpanData
except ImportError as e:  # pragma: no cover - depends on the environment
    raise MissingExtraError("openai-agents", "openai-agents") from e

logger = logging.getLogger(__name__)


class FrameworkError(Exception):
    """A framework span that ended with an error (its message), recorded as the call's ``error_type``."""


class _TraceState:
    __slots__ = ("error", "run")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.error: BaseException | None = None


class TripwireProcessor(TracingProcessor):
    """Traces Agents SDK runs into tripwire runs and guards the function tools given to :meth:`guard_tools`."""

    def __init__(
        self,
        tracer: Tracer,
        *,
        agent_id: str | None = None,
        principal: str | None = None,
        risk: RiskSpec = None,
        default_risk: str = "low",
        provider: str = "openai",
        model: str = "unknown",
    ) -> None:
        self.tracer = tracer
        self._agent_id = agent_id
        self._principal = principal
        self._risk = ToolRisk(risk, default_risk)
        self._provider = provider
        self._model = model
        self._traces: dict[str, _TraceState] = {}
        self._spans: dict[str, ModelCallSpan] = {}
        self._lock = threading.Lock()

    # -- the tracing processor ---------------------------------------------------------------------
    def on_trace_start(self, trace: Trace) -> None:
        if not self.tracer.enabled:
            return
        run = self.tracer.run(self._agent_id, workflow=trace.name or "", principal=self._principal)
        assert isinstance(run, Run)
        run.start()
        with self._lock:
            self._traces[trace.trace_id] = _TraceState(run)

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            state = self._traces.pop(trace.trace_id, None)
        if state is not None:
            state.run.finish(error=state.error)

    def on_span_start(self, span: Span[Any]) -> None:
        data = span.span_data
        if not isinstance(data, ResponseSpanData | GenerationSpanData):
            return
        state = self._traces.get(span.trace_id)
        if state is None:
            return
        model = getattr(data, "model", None) or self._model
        call = state.run.model_call(provider=self._provider, model=str(model))
        try:
            call.__enter__()
        except BudgetExceeded:  # recorded as a blocked ModelCall (see the module doc)
            return
        self._spans[span.span_id] = call

    def on_span_end(self, span: Span[Any]) -> None:
        data = span.span_data
        if isinstance(data, AgentSpanData):
            if span.error is not None and (state := self._traces.get(span.trace_id)) is not None:
                state.error = FrameworkError(span.error.get("message", "agent error"))
            return
        call = self._spans.pop(span.span_id, None)
        if call is None:
            return
        try:
            _record_usage(call, data)
        except Exception as e:  # tracing must never break the agent
            logger.warning("tripwire could not read usage error=%s", type(e).__name__)
        err = FrameworkError(span.error.get("message", "")) if span.error is not None else None
        call.__exit__(type(err) if err else None, err, None)

    def shutdown(self) -> None:
        return None

    def force_flush(self) -> None:
        self.tracer.flush(5.0)

    # -- tools ---------------------------------------------------------------------------------------
    def guard_tools(self, tools: Iterable[Any]) -> list[Any]:
        """The tools, with every ``FunctionTool`` guarded (a copy; others are returned as they are)."""
        return [self.guard_tool(t) if isinstance(t, FunctionTool) else t for t in tools]

    def guard_tool(self, tool: FunctionTool, *, risk: str | None = None) -> FunctionTool:
        """A copy of ``tool`` whose invocation is traced and checked (budget, guard, approval) first."""
        inner = tool.on_invoke_tool
        name = tool.name
        tool_risk = risk or self._risk(name)

        async def invoke(ctx: ToolContext[Any], raw: str) -> Any:
            trace = get_current_trace()
            state = self._traces.get(trace.trace_id) if trace is not None else None
            if state is None:  # not inside a traced run (or tracing is off): run as is
                return await inner(ctx, raw)
            run = state.run
            try:
                span = run.tool_call(name, parse_args(raw), risk=tool_risk, tool_call_id=ctx.tool_call_id or None)
                async with span:  # refusals raise ToolBlocked here, before the tool runs
                    out = await inner(ctx, raw)
                    current = get_current_span()
                    if current is not None and current.error is not None:  # the SDK turned a failure into text
                        raise ToolFailed(out)
                    return out
            except ToolFailed as f:
                return f.output
            except ToolBlocked as e:
                return blocked_message(e)

        guarded = copy.copy(tool)
        guarded.on_invoke_tool = invoke
        return guarded


class ToolFailed(Exception):
    """The tool failed but the framework already made its error message the output: recorded as ``error``."""

    def __init__(self, output: Any) -> None:
        super().__init__("tool failed")
        self.output = output


def _record_usage(call: ModelCallSpan, data: Any) -> None:
    usage = data.usage or {}
    inp = usage.get("input_tokens_details") or {}
    out = usage.get("output_tokens_details") or {}
    counts = disjoint_usage(
        input_total=int(usage.get("input_tokens") or 0), output_total=int(usage.get("output_tokens") or 0),
        cache_read=int(inp.get("cached_tokens") or 0), cache_write=int(inp.get("cache_write_tokens") or 0),
        reasoning=int(out.get("reasoning_tokens") or 0),
    )
    response = getattr(data, "response", None)
    model = getattr(response, "model", None) or getattr(data, "model", None)
    if model and call.model == "unknown":
        call.model = str(model)
    call.record_usage(**counts, response_model=str(model) if model else None)


__all__ = ["FrameworkError", "ToolFailed", "TripwireProcessor"]
