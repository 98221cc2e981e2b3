"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for litellm's real HTTP path.

Tests queue what the "model" answers, in order: replies with text, tool calls and usage, or
failures (an HTTP status, a hang, a malformed or truncated body). Every request body is kept
in `requests`. With the queue empty it answers 500 and sets `ran_out`, so a test notices.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def reply(text: str = "", tools: list[tuple[str, dict[str, Any]]] | None = None,
          usage: tuple[int, int] = (100, 20)) -> dict[str, Any]:
    calls = [{"id": f"call_{i}_{time.monotonic_ns()}", "type": "function",
              "function": {"name": name, "arguments": json.dumps(args)}} for i, (name, args) in enumerate(tools or [])]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return {"kind": "reply", "body": {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}}


def anthropic_reply(text: str = "", tools: list[tuple[str, dict[str, Any]]] | None = None,
                    usage: tuple[int, int] = (100, 20), cached: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """A reply in Anthropic's Messages API (litellm posts `anthropic/...` models to /v1/messages);
    `cached`: prompt tokens read from and written to the prompt cache, besides `usage`'s fresh ones."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": f"toolu_{i}_{time.monotonic_ns()}", "name": name, "input": args}
                for i, (name, args) in enumerate(tools or [])]
    return {"kind": "reply", "body": {
        "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-test", "content": content,
        "stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1], "cache_read_input_tokens": cached[0],
                  "cache_creation_input_tokens": cached[1]}}}


def failure(status: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "status", "status": status, "headers": headers or {}}


def hang(seconds: float) -> dict[str, Any]:
    return {"kind": "hang", "seconds": seconds}


def raw(body: bytes, length: int | None = None) -> dict[str, Any]:
    """Send `body` as is (malformed JSON), optionally announcing a longer length (a truncated body)."""
    return {"kind": "raw", "body": body, "length": length}


class FakeProvider:
    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.responder: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
        self.ran_out = False
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def add(self, *items: dict[str, Any]) -> FakeProvider:
        self.queue.extend(items)
        return self

    def start(self) -> FakeProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # otherwise every call waits ~40 ms on delayed ACKs

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with provider.lock:
                    provider.requests.append(body)
                    item = provider.responder(body) if provider.responder else None
                    if item is None:
                        item = provider.queue.popleft() if provider.queue else None
                    if item is None:
                        provider.ran_out = True
                        item = failure(500)
                provider.answer(self, item)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def answer(self, handler: BaseHTTPRequestHandler, item: dict[str, Any]) -> None:
        kind = item["kind"]
        if kind == "hang":
            time.sleep(item["seconds"])
            item = failure(504)
            kind = "status"
        if kind == "reply":
            data, status, headers = json.dumps(item["body"]).encode(), 200, {}
        elif kind == "raw":
            data, status, headers = item["body"], 200, {}
        else:
            data = json.dumps({"error": {"message": f"fake error {item['status']}", "type": "server_error"}}).encode()
            status, headers = item["status"], item["headers"]
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(item.get("length") or len(data)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test)
        if item.get("length"):
            handler.close_connection = True

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
