"""The adapters' paths the end-to-end tests do not reach, with the frameworks' real types and an in-process
tracer: a failing tool is recorded as ``error`` (and still answers the model), a refusal's shape, arguments that
are not JSON, and the Claude observer's model calls and run end."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.unit._sdk_fixtures import make_tracer
from tripwire.producers import ALLOW, GuardDecision, ToolBlocked, ToolRequest
from tripwire.schemas import ModelCall, RunFinished, ToolCall

pytestmark = pytest.mark.unit


class FreezeGuard:
    def check(self, request: ToolRequest) -> GuardDecision:
        if request.tool_name.endswith("frozen"):
            raise ToolBlocked("kill switch: frozen by test")
        return ALLOW

    def done(self, request: ToolRequest, status: str) -> None:
        pass


def test_langchain_tool_error_and_non_json_args(tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.tools import tool

    from tripwire.producers.adapters.langchain import TripwireCallbackHandler

    @tool
    def explode(order_id: str) -> str:
        """Fails."""
        raise RuntimeError("db down")

    @tool
    def frozen(order_id: str) -> str:
        """Never runs."""
        raise AssertionError("ran")

    tracer, got = make_tracer(tmp_path, guard=FreezeGuard())
    with tracer.run() as run:
        handler = TripwireCallbackHandler(tracer, run=run, risk={"explode": "medium"})
        with pytest.raises(RuntimeError, match="db down"):
            explode.invoke({"order_id": "A-1"}, config={"callbacks": [handler]})
        with pytest.raises(ToolBlocked, match="frozen by test"):
            frozen.invoke({"order_id": "A-2"}, config={"callbacks": [handler]})
        rid = uuid.uuid4()  # a tool taking an object that is not JSON: recorded with its text form
        handler.on_tool_start({"name": "raw"}, "<object>", run_id=rid, inputs={"x": object()})
        handler.on_tool_end("ok", run_id=rid)
    tracer.close()
    tools = got.of(ToolCall)
    assert [(t.tool_name, t.status, t.error_type, t.risk) for t in tools] == [
        ("explode", "error", "RuntimeError", "medium"), ("frozen", "blocked", "ToolBlocked", "low"),
        ("raw", "ok", None, "low")]
    assert tools[2].args_hash == hashlib.sha256(b'{"input":"<object>"}').hexdigest()


def test_openai_agents_failing_tool_is_an_error_and_the_model_gets_the_sdks_message(tmp_path: Path) -> None:
    pytest.importorskip("agents")
    from agents import function_tool, set_trace_processors, trace
    from agents.tool_context import ToolContext
    from agents.tracing import function_span

    from tripwire.producers.adapters.openai_agents import TripwireProcessor

    @function_tool
    async def explode(order_id: str) -> str:
        """Fails."""
        raise RuntimeError("db down")

    @function_tool(name_override="frozen")
    async def frozen(order_id: str) -> str:
        """Never runs."""
        raise AssertionError("ran")

    tracer, got = make_tracer(tmp_path, guard=FreezeGuard())
    processor = TripwireProcessor(tracer, agent_id="refund-assistant")
    guarded = processor.guard_tools([explode, frozen, "not a function tool"])
    raw = '{"order_id": "A-1"}'
    outputs: list[Any] = []

    async def main() -> None:
        with trace("t"):
            for t in guarded[:2]:
                ctx = ToolContext(context=None, tool_name=t.name, tool_call_id=f"call_{t.name}", tool_arguments=raw)
                with function_span(t.name):
                    outputs.append(await t.on_invoke_tool(ctx, raw))

    set_trace_processors([processor])
    try:
        asyncio.run(main())
    finally:
        set_trace_processors([])
    tracer.close()
    assert guarded[2] == "not a function tool" and guarded[0] is not explode
    assert outputs[0].startswith("An error occurred while running the tool")  # the SDK's message, no crash
    assert outputs[1] == "tool call blocked by tripwire (ToolBlocked): kill switch: frozen by test"
    tools = got.of(ToolCall)
    assert [(t.tool_name, t.status, t.error_type, t.tool_call_id) for t in tools] == [
        ("explode", "error", "ToolFailed", "call_explode"), ("frozen", "blocked", "ToolBlocked", "call_frozen")]
    assert [e.outcome for e in got.of(RunFinished)] == ["success"]


def test_claude_hooks_deny_record_failures_and_observe_the_stream(tmp_path: Path) -> None:
    pytest.importorskip("claude_agent_sdk")
    from claude_agent_sdk import AssistantMessage, ResultMessage, TextBlock, ToolUseBlock
    from claude_agent_sdk.types import PostToolUseFailureHookInput, PreToolUseHookInput

    from tripwire.producers.adapters.claude_agent import TripwireHooks

    tracer, got = make_tracer(tmp_path, guard=FreezeGuard())
    tw = TripwireHooks(tracer)
    base: Any = {"session_id": "s", "transcript_path": "/t", "cwd": "/"}

    def pre(name: str, tid: str) -> PreToolUseHookInput:
        return PreToolUseHookInput(**base, hook_event_name="PreToolUse", tool_name=name, tool_input={"q": 1},
                                   tool_use_id=tid)

    async def main() -> list[Any]:
        tw.observe(AssistantMessage(content=[ToolUseBlock(id="t1", name="Bash", input={}),
                                             ToolUseBlock(id="t2", name="mcp__x__frozen", input={})],
                                    model="claude-haiku-4-5", message_id="m1",
                                    usage={"input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 7}))
        out = [await tw.pre_tool_use(pre("Bash", "t1"), "t1", {"signal": None})]
        fail = PostToolUseFailureHookInput(**base, hook_event_name="PostToolUseFailure", tool_name="Bash",
                                           tool_input={"q": 1}, tool_use_id="t1", error="exit 1")
        out.append(await tw.post_tool_use_failure(fail, "t1", {"signal": None}))
        out.append(await tw.pre_tool_use(pre("mcp__x__frozen", "t2"), "t2", {"signal": None}))
        tw.observe(AssistantMessage(content=[TextBlock("done")], model="claude-haiku-4-5", message_id="m2",
                                    usage={"input_tokens": 10, "output_tokens": 3}))
        tw.observe(ResultMessage(subtype="error_during_execution", duration_ms=1, duration_api_ms=1, is_error=True,
                                 num_turns=2, session_id="s"))
        return out

    outputs = asyncio.run(main())
    tracer.close()
    assert outputs[:2] == [{}, {}]
    assert outputs[2] == {"hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "deny",
        "permissionDecisionReason": "tool call blocked by tripwire (ToolBlocked): kill switch: frozen by test"}}
    events = got.events
    assert [type(e).__name__ for e in events] == ["RunStarted", "ModelCall", "ToolCall", "ToolCall", "ModelCall",
                                                  "RunFinished"]
    calls = got.of(ModelCall)
    assert [(c.provider, c.input_tokens, c.cache_read_tokens, c.output_tokens) for c in calls] == [
        ("anthropic", 100, 50, 7), ("anthropic", 10, 0, 3)]
    assert [(t.tool_name, t.status, t.error_type) for t in got.of(ToolCall)] == [
        ("Bash", "error", "ToolFailed"), ("mcp__x__frozen", "blocked", "ToolBlocked")]
    assert got.of(RunFinished)[0].outcome == "failure"
