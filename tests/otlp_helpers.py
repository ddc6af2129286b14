"""Helpers for the OTLP receiver tests: the one allowed stand-in (a local OpenAI-compatible chat
completions server with canned answers), real OTel SDK pipelines, and a scripted agent loop."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
TOOL = "lookup_order"
TOOL_ARGS = {"order_id": "A-1001"}
# canned usage: prompt 1200 (1000 cached), completion 300 (200 reasoning)
PROMPT_TOKENS, CACHED_TOKENS, COMPLETION_TOKENS, REASONING_TOKENS = 1200, 1000, 300, 200


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            self.server.calls += 1
            n = self.server.calls
        msgs = req.get("messages") or [{}]
        has_tool_result = msgs[-1].get("role") == "tool"
        if not has_tool_result:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{n:04d}",
                        "type": "function",
                        "function": {"name": TOOL, "arguments": json.dumps(TOOL_ARGS)},
                    }
                ],
            }
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": "Your order A-1001 has shipped."}, "stop"
        body = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": RESPONSE_MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS, "audio_tokens": 0},
            },
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.calls = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def tracer_provider(exporter: Any, service: str = "support-bot", tenant: str | None = None) -> Any:
    """A real OTel SDK TracerProvider exporting through ``exporter`` with a batch processor."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attrs: dict[str, Any] = {"service.name": service, "service.version": "2.1.0", "deployment.environment.name": "test"}
    if tenant is not None:
        attrs["tripwire.tenant"] = tenant
    tp = TracerProvider(resource=Resource.create(attrs))
    tp.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512, schedule_delay_millis=200))
    return tp


def run_agent(client: Any, tracer: Any, *, loops: int, agent: str = "refund-assistant", semconv: bool = True) -> None:
    """One agent run in the application's own ``invoke_agent`` span (what frameworks emit): ``loops``
    rounds of chat -> tool call (same tool, same args) -> chat with the tool's result.

    ``semconv``: the agent and tool spans carry GenAI semconv attributes (else OpenInference's)."""
    from opentelemetry.trace import Status, StatusCode

    if semconv:
        agent_attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.agent.version": "3.0.1",
            "gen_ai.conversation.id": "conv-42",
            "gen_ai.provider.name": "openai",
        }
    else:
        agent_attrs = {"openinference.span.kind": "AGENT", "agent.name": agent, "session.id": "conv-42"}
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes=agent_attrs) as root:
        for _ in range(loops):
            messages: list[dict[str, Any]] = [{"role": "user", "content": "Where is my order? Mail jane@example.com"}]
            r = client.chat.completions.create(model=MODEL, messages=messages)
            call = r.choices[0].message.tool_calls[0]
            if semconv:
                tool_attrs = {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": call.function.name,
                    "gen_ai.tool.call.id": call.id,
                    "gen_ai.tool.call.arguments": call.function.arguments,
                }
            else:
                tool_attrs = {
                    "openinference.span.kind": "TOOL",
                    "tool.name": call.function.name,
                    "tool.id": call.id,
                    "input.value": call.function.arguments,
                }
            with tracer.start_as_current_span(f"execute_tool {call.function.name}", attributes=tool_attrs):
                result = {"status": "shipped"}
            messages = [
                *messages,
                r.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
            ]
            client.chat.completions.create(model=MODEL, messages=messages)
        root.set_status(Status(StatusCode.OK))
