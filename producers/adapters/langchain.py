"""LangChain / LangGraph adapter: a callback handler that traces and enforces.

    from tripwire.producers.adapters.langchain import TripwireCallbackHandler, tool_blocked_message

    handler = TripwireCallbackHandler(tracer, risk={"issue_refund": "high"})      # one per agent task
    tools = ToolNode([issue_refund], handle_tool_errors=tool_blocked_message)    # refusals become ToolMessages
    graph.invoke(inputs, config={"callbacks": [handler]})

- Chat model start/end/error -> a ``ModelCall`` (provider and model from LangChain's ``ls_*`` metadata, token
  usage from ``usage_metadata``, made disjoint); the step and token budgets are checked when a model starts.
- Tool start -> ``run.tool_call(...)`` is entered there: budget, the guard (kill switch) and the approver run
  before the tool does. A refusal raises the :class:`~tripwire.producers.ToolBlocked` from the callback
  (``raise_error``), which LangGraph's ``ToolNode`` turns into an error ``ToolMessage`` with
  :func:`tool_blocked_message`: the model reads why; nothing crashes. Tool end/error -> the ``ToolCall``.
- The handler's run: ``run=`` if given, else one tripwire run started at the first top-level event and
  finished when the top-level chain/graph ends. A LangGraph interrupt leaves the run open, so the resumed
  invocation (same handler) continues it.
- Approval: ``Tracer(..., approver=interrupt_approver())`` asks the human through a LangGraph ``interrupt``;
  the graph pauses (a checkpointer is needed) and ``Command(resume=True | False | {"approved": ..., "approver":
  ..., "reason": ...})`` answers; the decision is recorded as an ``ApprovalDecision``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from tripwire.core.errors import MissingExtraError
from tripwire.producers.adapters._common import RiskSpec, ToolRisk, blocked_message, disjoint_usage
from tripwire.producers.errors import InvalidArgumentError, ToolBlocked
from tripwire.producers.guard import ApprovalRequest, ApprovalResult
from tripwire.producers.run import Run
from tripwire.producers.spans import ModelCallSpan, ToolCallSpan
from tripwire.producers.tool_calls import SUSPEND_ATTR
from tripwire.producers.tracer import Tracer

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.outputs import ChatGeneration, LLMResult
except ImportError as e:  # pragma: no cover - depends on the environment
    raise MissingExtraError("langchain-core", "langchain") from e

logger = logging.getLogger(__name__)


def tool_blocked_message(e: ToolBlocked) -> str:
    """``ToolNode(handle_tool_errors=tool_blocked_message)``: a refused call becomes the tool's error message.

    Annotated with ``ToolBlocked`` so ``ToolNode`` hands it only tripwire's refusals; other errors keep the
    node's usual handling."""
    return blocked_message(e)


class TripwireCallbackHandler(BaseCallbackHandler):
    """Traces one agent task into one tripwire run and enforces the tracer's guard on every tool start."""

    raise_error = True  # a refusal must stop the tool, not be logged and ignored
    run_inline = True  # spans are entered and left on the thread (and context) that runs the tool

    def __init__(
        self,
        tracer: Tracer,
        *,
        run: Run | None = None,
        agent_id: str | None = None,
        workflow: str = "",
        principal: str | None = None,
        conversation_id: str | None = None,
        risk: RiskSpec = None,
        default_risk: str = "low",
        provider: str | None = None,
    ) -> None:
        super().__init__()
        self.tracer = tracer
        self._risk = ToolRisk(risk, default_risk)
        self._provider = provider
        self._run_kwargs: dict[str, Any] = {
            "agent_id": agent_id,
            "workflow": workflow,
            "principal": principal,
            "conversation_id": conversation_id,
        }
        self._run: Run | None = run
        self._owns_run = run is None
        self._root: UUID | None = None
        self._paused = False
        self._spans: dict[UUID, ModelCallSpan | ToolCallSpan] = {}
        self._lock = threading.Lock()

    @property
    def run(self) -> Run | None:
        """The tripwire run this handler records into (None before the first event, or with tracing off)."""
        return self._run

    # -- the run -----------------------------------------------------------------------------------
    def _ensure_run(self, run_id: UUID, parent_run_id: UUID | None) -> Run | None:
        if self._run is not None:
            if parent_run_id is None and self._owns_run and self._root is None:
                self._root = run_id  # a resumed invocation: its root now ends the run
            return self._run
        if not self.tracer.enabled:
            return None
        with self._lock:
            if self._run is None:
                run = self.tracer.run(**self._run_kwargs)
                assert isinstance(run, Run)
                run.start()
                self._run = run
                self._root = run_id if parent_run_id is None else None
        return self._run

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None:
            self._ensure_run(run_id, None)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        if self._owns_run and run_id == self._root and self._run is not None:
            if self._paused:  # the graph paused for a human: the resumed invocation continues this run
                self._paused = False
                self._root = None
                return
            self._run.finish()

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if _is_interrupt(error):  # a node (or a tool's approval) interrupted: the graph pauses
            self._paused = True
        if not (self._owns_run and run_id == self._root and self._run is not None):
            return
        if self._paused:
            self._paused = False
            self._root = None
            return
        self._run.finish(error=error)

    # -- model calls -------------------------------------------------------------------------------
    def on_chat_model_start(
        self, serialized: dict[str, Any] | None, messages: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        self._model_start(serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self, serialized: dict[str, Any] | None, prompts: list[str], *, run_id: UUID,
        parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        self._model_start(serialized, run_id, parent_run_id, metadata, kwargs, operation="text_completion")

    def _model_start(
        self, serialized: dict[str, Any] | None, run_id: UUID, parent_run_id: UUID | None,
        metadata: dict[str, Any] | None, kwargs: dict[str, Any], operation: str = "chat",
    ) -> None:
        run = self._ensure_run(run_id, parent_run_id)
        if run is None:
            return
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        provider = self._provider or meta.get("ls_provider") or _provider_of(serialized)
        model = meta.get("ls_model_name") or params.get("model") or params.get("model_name") or "unknown"
        provider, model = str(provider) or "unknown", str(model) or "unknown"
        span = run.model_call(provider=provider, model=model, operation_name=operation)
        span.__enter__()  # raises BudgetExceeded when the step or token budget is spent
        self._spans[run_id] = span

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if not isinstance(span, ModelCallSpan):
            return
        try:
            _record_usage(span, response)
        except Exception as e:  # tracing must never break the agent
            logger.warning("tripwire could not read usage error=%s", type(e).__name__)
        span.__exit__(None, None, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            span.__exit__(type(error), error, None)

    # -- tool calls --------------------------------------------------------------------------------
    def on_tool_start(
        self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        run = self._ensure_run(run_id, parent_run_id)
        if run is None:
            return
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        call_id = kwargs.get("tool_call_id") or None
        try:
            span = run.tool_call(name, inputs if inputs is not None else {"input": input_str},
                                 risk=self._risk(name), tool_call_id=call_id)
        except InvalidArgumentError:  # inputs that are not JSON (objects a tool takes): the text form
            span = run.tool_call(name, {"input": input_str}, risk=self._risk(name), tool_call_id=call_id)
        try:
            span.__enter__()  # budget, guard, approval: raises ToolBlocked (a refusal) before the tool runs
        except Exception as e:
            if getattr(e, SUSPEND_ATTR, False):  # the approver paused the graph (interrupt_approver)
                self._paused = True
            raise
        self._spans[run_id] = span

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            span.__exit__(None, None, None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            span.__exit__(type(error), error, None)


def interrupt_approver(
    payload: Callable[[ApprovalRequest], Any] | None = None,
) -> Callable[[ApprovalRequest], ApprovalResult]:
    """An approver that pauses the LangGraph graph (``interrupt``) until a human resumes it with the decision.

    The interrupt's value is ``payload(request)`` (default: tool, risk, redacted args, reason, run and call ids).
    Resume with ``Command(resume=True/False)`` or ``{"approved": bool, "approver": str, "reason": str}``.
    """
    try:
        from langgraph.types import interrupt
    except ImportError as e:  # pragma: no cover
        raise MissingExtraError("langgraph", "langchain") from e

    def approve(req: ApprovalRequest) -> ApprovalResult:
        r = req.request
        value = payload(req) if payload is not None else {
            "kind": "tripwire_approval", "tool": r.tool_name, "tool_call_id": r.tool_call_id, "risk": r.risk.value,
            "args": r.args, "reason": req.reason, "run_id": r.run_id,
        }
        try:
            answer = interrupt(value)
        except Exception as e:  # GraphInterrupt: the graph pauses; the SDK records nothing yet
            setattr(e, SUSPEND_ATTR, True)
            raise
        if isinstance(answer, dict):
            return ApprovalResult(bool(answer.get("approved")), answer.get("approver"), answer.get("reason"))
        return ApprovalResult(bool(answer))

    return approve


def _is_interrupt(error: BaseException) -> bool:
    try:
        from langgraph.errors import GraphBubbleUp
    except ImportError:
        return False
    return isinstance(error, GraphBubbleUp)


def _provider_of(serialized: dict[str, Any] | None) -> str:
    ids = (serialized or {}).get("id") or []
    name = str(ids[-1]).lower() if ids else ""
    for provider in ("openai", "anthropic", "google", "mistral", "bedrock", "groq", "ollama"):
        if provider in name:
            return provider
    return "unknown"


def _record_usage(span: ModelCallSpan, response: LLMResult) -> None:
    gen = response.generations[0][0] if response.generations and response.generations[0] else None
    usage = getattr(gen.message, "usage_metadata", None) if isinstance(gen, ChatGeneration) else None
    meta = gen.message.response_metadata if isinstance(gen, ChatGeneration) else {}
    if usage:
        inp = usage.get("input_token_details") or {}
        out = usage.get("output_token_details") or {}
        counts = disjoint_usage(
            input_total=int(usage.get("input_tokens") or 0), output_total=int(usage.get("output_tokens") or 0),
            cache_read=int(inp.get("cache_read") or 0), cache_write=int(inp.get("cache_creation") or 0),
            reasoning=int(out.get("reasoning") or 0),
        )
    else:
        tu = (response.llm_output or {}).get("token_usage") or {}
        counts = disjoint_usage(input_total=int(tu.get("prompt_tokens") or 0),
                                output_total=int(tu.get("completion_tokens") or 0))
    span.record_usage(**counts, response_model=meta.get("model_name") or meta.get("model"),
                      finish_reason=meta.get("finish_reason") or meta.get("stop_reason"))


__all__ = ["TripwireCallbackHandler", "interrupt_approver", "tool_blocked_message"]
