"""Claude Agent SDK adapter: its tool hooks trace and guard every tool call; the message stream gives the model
calls and the run's end.

    from tripwire.producers.adapters.claude_agent import TripwireHooks

    tw = TripwireHooks(tracer, risk={"mcp__refunds__issue_refund": "high"})
    options = ClaudeAgentOptions(hooks=tw.hooks(), ...)
    async for message in query(prompt=..., options=options):
        tw.observe(message)

- ``PreToolUse``: ``run.tool_call(...)`` is entered (budget, guard, approval; an async approver is awaited, so a
  human can take up to the hook's timeout). A refusal answers ``permissionDecision: "deny"`` with the kill
  switch's (or budget's) reason, which the CLI hands the model as the tool's error. Otherwise the hook has no
  opinion (``{}``): the session's own permission rules still apply.
- ``PostToolUse`` / ``PostToolUseFailure``: the ``ToolCall`` ends ``ok`` / ``error``.
- ``observe(message)``: one ``ModelCall`` per assistant message id (provider ``anthropic``, the message's model
  and usage, made disjoint; the step and token budgets are counted); the ``ResultMessage`` finishes the run
  (``failure`` if it is an error). With ``include_partial_messages=True`` the stream's ``message_delta`` usage
  (the final output count) is used; without it, the assistant message's usage is what the CLI reported.
- One ``TripwireHooks`` per session (query): the run starts at the first hook or message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from tripwire.core.errors import MissingExtraError
from tripwire.producers.adapters._common import RiskSpec, TokenCounts, ToolRisk, blocked_message, disjoint_usage
from tripwire.producers.errors import BudgetExceeded, ToolBlocked
from tripwire.producers.run import Run
from tripwire.producers.spans import ModelCallSpan, ToolCallSpan
from tripwire.producers.tracer import Tracer

try:
    from claude_agent_sdk import AssistantMessage, HookMatcher, ResultMessage, ToolUseBlock
    from claude_agent_sdk.types import HookContext, HookInput, HookJSONOutput, StreamEvent
except ImportError as e:  # pragma: no cover - depends on the environment
    raise MissingExtraError("claude-agent-sdk", "claude-agent") from e

logger = logging.getLogger(__name__)

CATCH_UP_S = 2.0
"""How long a tool hook waits for the observed stream to reach the message that asked for the tool."""


class ToolFailed(Exception):
    """The CLI reported the tool failed (``PostToolUseFailure``); recorded as the call's ``error_type``."""


class TripwireHooks:
    """Tool hooks and a message observer recording one Claude Agent SDK session as one tripwire run."""

    def __init__(
        self,
        tracer: Tracer,
        *,
        run: Run | None = None,
        agent_id: str | None = None,
        workflow: str = "",
        principal: str | None = None,
        risk: RiskSpec = None,
        default_risk: str = "low",
    ) -> None:
        self.tracer = tracer
        self._risk = ToolRisk(risk, default_risk)
        self._run_kwargs: dict[str, Any] = {"agent_id": agent_id, "workflow": workflow, "principal": principal}
        self._run = run
        self._owns_run = run is None
        self._tools: dict[str, ToolCallSpan] = {}
        self._model: _ModelCall | None = None  # the assistant message being recorded
        self._lock = threading.Lock()
        self._observed = False  # observe() is fed: hooks wait (bounded) for the stream to catch up
        self._partial = False  # the stream carries StreamEvents (include_partial_messages)
        self._seen_tool_ids: set[str] = set()
        self._changed: asyncio.Event | None = None

    @property
    def run(self) -> Run | None:
        return self._run

    def hooks(self) -> dict[Any, list[HookMatcher]]:
        """``ClaudeAgentOptions(hooks=tw.hooks())``: every tool (no matcher)."""
        return {
            "PreToolUse": [HookMatcher(hooks=[self.pre_tool_use])],
            "PostToolUse": [HookMatcher(hooks=[self.post_tool_use])],
            "PostToolUseFailure": [HookMatcher(hooks=[self.post_tool_use_failure])],
        }

    def _ensure_run(self) -> Run | None:
        if self._run is None and self.tracer.enabled:
            with self._lock:
                if self._run is None:
                    run = self.tracer.run(**self._run_kwargs)
                    assert isinstance(run, Run)
                    run.start()
                    self._run = run
        return self._run

    # -- hooks -------------------------------------------------------------------------------------
    async def pre_tool_use(self, input: HookInput, tool_use_id: str | None, context: HookContext) -> HookJSONOutput:
        if input["hook_event_name"] != "PreToolUse":
            return {}
        run = self._ensure_run()
        if run is None:
            return {}
        name = input["tool_name"]
        call_id = tool_use_id or input.get("tool_use_id") or None
        await self._catch_up(call_id)
        self._end_model_call()
        span = run.tool_call(name, input.get("tool_input"), risk=self._risk(name), tool_call_id=call_id)
        try:
            await span.__aenter__()  # budget, guard, approval (awaited): raises ToolBlocked before the tool runs
        except ToolBlocked as e:
            return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                           "permissionDecisionReason": blocked_message(e)}}
        self._tools[call_id or name] = span
        return {}

    async def post_tool_use(self, input: HookInput, tool_use_id: str | None, context: HookContext) -> HookJSONOutput:
        span = self._pop_tool(input, tool_use_id)
        if span is not None:
            span.__exit__(None, None, None)
        return {}

    async def post_tool_use_failure(
        self, input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        span = self._pop_tool(input, tool_use_id)
        if span is not None:
            err = ToolFailed(str(input.get("error", "")))
            span.__exit__(ToolFailed, err, None)
        return {}

    async def _catch_up(self, call_id: str | None) -> None:
        """The hook can run before the caller's loop has observed the assistant message that asked for the
        tool (the SDK dispatches hooks and messages separately): wait, bounded, so the ModelCall is complete
        and recorded before the ToolCall."""
        if not self._observed or call_id is None:
            return
        deadline = time.monotonic() + CATCH_UP_S
        while not self._caught_up(call_id):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._changed = changed = self._changed or asyncio.Event()
            changed.clear()
            if self._caught_up(call_id):
                return
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                return

    def _caught_up(self, call_id: str) -> bool:
        current = self._model
        return call_id in self._seen_tool_ids and (not self._partial or current is None or current.final)

    def _pop_tool(self, input: HookInput, tool_use_id: str | None) -> ToolCallSpan | None:
        key = tool_use_id or input.get("tool_use_id") or input.get("tool_name")
        return self._tools.pop(str(key), None)

    # -- the message stream ------------------------------------------------------------------------
    def observe(self, message: Any) -> None:
        """Feed every message of ``query(...)`` / ``ClaudeSDKClient.receive_response()``. Never raises."""
        self._observed = True
        try:
            if isinstance(message, AssistantMessage):
                self._assistant(message)
            elif isinstance(message, StreamEvent):
                self._stream(message)
            elif isinstance(message, ResultMessage):
                self._end_model_call()
                run = self._run
                if run is not None and self._owns_run:
                    run.finish("failure" if message.is_error else None)
        except BudgetExceeded:
            pass  # recorded by the span as a blocked ModelCall; the CLI's call is not ours to stop
        except Exception as e:  # tracing must never break the agent
            logger.warning("tripwire could not record a Claude message error=%s", type(e).__name__)
        if self._changed is not None:
            self._changed.set()

    def _assistant(self, message: AssistantMessage) -> None:
        if message.parent_tool_use_id is not None:
            return  # a sub-agent's turn inside a tool: not this run's model call
        self._seen_tool_ids.update(b.id for b in message.content if isinstance(b, ToolUseBlock))
        current = self._open_model_call(message.message_id or message.uuid or "", message.model)
        if current is None:
            return
        usage = message.usage or {}
        cache_read = int(usage.get("cache_read_input_tokens") or 0)
        cache_write = int(usage.get("cache_creation_input_tokens") or 0)
        current.counts = disjoint_usage(  # Anthropic's input_tokens exclude the cache already
            input_total=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
            output_total=max(int(usage.get("output_tokens") or 0), current.counts["output_tokens"]),
            cache_read=cache_read, cache_write=cache_write,
        )
        current.span.record_usage(**current.counts, response_model=message.model, finish_reason=message.stop_reason)

    def _stream(self, message: StreamEvent) -> None:
        if message.parent_tool_use_id is not None:
            return
        self._partial = True
        event = message.event
        kind = event.get("type")
        if kind == "message_start":  # with include_partial_messages: the call's real start
            msg = event.get("message") or {}
            self._open_model_call(str(msg.get("id") or ""), str(msg.get("model") or "unknown"))
        elif kind == "message_delta" and self._model is not None:
            out = (event.get("usage") or {}).get("output_tokens")
            if isinstance(out, int):  # the final output count (the assistant message carries the start's)
                current = self._model
                current.counts = TokenCounts(**{**current.counts, "output_tokens": out})
                current.span.record_usage(**current.counts)
                current.final = True

    def _open_model_call(self, message_id: str, model: str) -> _ModelCall | None:
        if self._model is not None and self._model.message_id == message_id:
            return self._model
        self._end_model_call()
        run = self._ensure_run()
        if run is None:
            return None
        span = run.model_call(provider="anthropic", model=model or "unknown")
        span.__enter__()  # counts a step; raises BudgetExceeded (recorded as blocked) when spent
        self._model = _ModelCall(message_id, span)
        return self._model

    def _end_model_call(self) -> None:
        current, self._model = self._model, None
        if current is not None:
            current.span.__exit__(None, None, None)


class _ModelCall:
    __slots__ = ("counts", "final", "message_id", "span")

    def __init__(self, message_id: str, span: ModelCallSpan) -> None:
        self.message_id = message_id
        self.span = span
        self.final = False  # the stream's message_delta (final usage) was seen
        self.counts = disjoint_usage(input_total=0, output_total=0)


__all__ = ["ToolFailed", "TripwireHooks"]
