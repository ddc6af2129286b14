"""The one stand-in the adapter tests use: a local HTTP server speaking OpenAI's chat-completions and responses
APIs and Anthropic's messages API (streamed, as the Claude Code CLI asks for it). It scripts a tool-using agent:
while the conversation holds fewer tool results than ``tool_rounds`` it asks for one call of ``tool`` (with
``args``), then answers in text. Usage is fixed per request so the events' tokens and cost are known in advance."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4.1-mini"
INPUT_TOKENS = (120, 180)  # the first request, then every later one
OUTPUT_TOKENS = 20


class ModelServer:
    def __init__(self, tool: str, args: dict[str, Any], tool_rounds: int = 1) -> None:
        self.tool, self.args, self.tool_rounds = tool, args, tool_rounds
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                if self.path.endswith("/chat/completions"):
                    reply = server.chat(body)
                elif self.path.endswith("/responses"):
                    reply = server.responses(body)
                elif self.path.split("?")[0].endswith("/messages"):
                    data = server.messages(body).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                else:
                    self.send_error(404)
                    return
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def _turn(self, tool_results: int) -> tuple[bool, int]:
        """(call the tool?, input tokens) for a request that carries ``tool_results`` results."""
        return tool_results < self.tool_rounds, INPUT_TOKENS[0 if tool_results == 0 else 1]

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        results = sum(1 for m in body["messages"] if m.get("role") == "tool")
        call, tokens = self._turn(results)
        message: dict[str, Any] = {"role": "assistant", "content": None if call else "done: refund issued"}
        if call:
            message["tool_calls"] = [{"id": f"call_{results}", "type": "function",
                                      "function": {"name": self.tool, "arguments": json.dumps(self.args)}}]
        return {"id": f"chatcmpl-{results}", "object": "chat.completion", "created": 0, "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}],
                "usage": {"prompt_tokens": tokens, "completion_tokens": OUTPUT_TOKENS,
                          "total_tokens": tokens + OUTPUT_TOKENS}}

    def responses(self, body: dict[str, Any]) -> dict[str, Any]:
        items = body["input"] if isinstance(body["input"], list) else []
        results = sum(1 for i in items if isinstance(i, dict) and i.get("type") == "function_call_output")
        call, tokens = self._turn(results)
        if call:
            output: list[dict[str, Any]] = [
                {"type": "function_call", "id": f"fc_{results}", "call_id": f"call_{results}", "name": self.tool,
                 "arguments": json.dumps(self.args), "status": "completed"}]
        else:
            output = [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                       "content": [{"type": "output_text", "text": "done: refund issued", "annotations": []}]}]
        return {"id": f"resp_{results}", "object": "response", "created_at": 0, "model": MODEL, "status": "completed",
                "output": output, "parallel_tool_calls": False, "tool_choice": "auto", "tools": [],
                "usage": {"input_tokens": tokens, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": tokens + OUTPUT_TOKENS}}

    def messages(self, body: dict[str, Any]) -> str:
        """A streamed Anthropic messages response (server-sent events)."""
        results = sum(1 for m in body["messages"] if m.get("role") == "user" and isinstance(m.get("content"), list)
                      for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result")
        call, tokens = self._turn(results)
        model = body.get("model", "")
        events: list[dict[str, Any]] = [{"type": "message_start", "message": {
            "id": f"msg_{results}", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": tokens, "output_tokens": 1}}}]
        if call:
            events += [
                {"type": "content_block_start", "index": 0, "content_block": {
                    "type": "tool_use", "id": f"toolu_{results}", "name": self.tool, "input": {}}},
                {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(self.args)}}]
        else:
            events += [
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "text_delta", "text": "done: refund issued"}}]
        events += [{"type": "content_block_stop", "index": 0},
                   {"type": "message_delta", "delta": {"stop_reason": "tool_use" if call else "end_turn",
                                                       "stop_sequence": None},
                    "usage": {"output_tokens": OUTPUT_TOKENS}},
                   {"type": "message_stop"}]
        return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
