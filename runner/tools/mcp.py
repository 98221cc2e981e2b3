"""MCP servers as tools: each `mcp:` entry of a spec is one server, started once per run.

    tools:
      - name: time
        mcp: {command: [uvx, mcp-server-time], allow: [get_current_time], timeout: 20s}

Its tools are offered under their own names with a prefix (`time_get_current_time`), with the
server's descriptions and input schemas. A stdio server runs in the workdir inside the run's
sandbox, with the environment of the run's commands; the MCP SDK talks to it from a thread of its
own (the SDK is async, the loop is not). A server that dies is started again once; after that
its tools answer with the error. Calls never raise: a failure is a message to the model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shlex
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..spec.format import McpSpec, Spec
from .sandbox import Commands

MAX_SCHEMA_CHARS = 20000  # of one tool's input schema: beyond it the tool is not offered


class McpServer:
    def __init__(self, name: str, spec: McpSpec, workdir: Path, commands: Commands | None):
        self.name, self.spec, self.workdir, self.commands = name, spec, workdir, commands
        self.prefix = f"{name}_" if spec.prefix is None else spec.prefix
        self.tools: dict[str, dict[str, Any]] = {}  # offered name -> the server's tool (name, description, schema)
        self.restarted = False
        self.broken: str | None = None  # why its tools answer with an error
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"mcp-{name}", daemon=True)
        self._thread.start()
        self._session: Any = None
        self._closing: asyncio.Event | None = None
        self._task: concurrent.futures.Future[None] | None = None
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - for messages

    def start(self) -> McpServer:
        """Start the server and list its tools; a RunError says why it could not start."""
        try:
            self._connect()
            listed = self._await(self._session.list_tools(), self.spec.start_timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to start is one message
            self.close()
            raise RunError(f"the MCP server `{self.name}` did not start: {_reason(exc)}{self._stderr_tail()}. "
                           "Check its command or url; `loop render` starts it and lists its tools") from None
        unknown = set(self.spec.allow or []) - {t.name for t in listed.tools}
        if unknown:
            self.close()
            raise RunError(f"the MCP server `{self.name}` has no tool {', '.join(sorted(unknown))}; it has: "
                           f"{', '.join(t.name for t in listed.tools)}")
        for tool in listed.tools:
            if self.spec.allow is None or tool.name in self.spec.allow:
                schema = tool.input_schema if isinstance(tool.input_schema, dict) else {"type": "object"}
                if len(json.dumps(schema)) <= MAX_SCHEMA_CHARS:
                    self.tools[self.prefix + tool.name] = {"name": tool.name, "description": tool.description or "",
                                                           "schema": schema}
        return self

    def schemas(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {
            "name": offered, "description": f"{tool['description']} (MCP server `{self.name}`)".strip(),
            "parameters": tool["schema"]}} for offered, tool in self.tools.items()]

    def call(self, offered: str, args: dict[str, Any]) -> tuple[bool, str]:
        """Call one of its tools: (ok, the text of its result)."""
        if self.broken:
            return False, self.broken
        name = self.tools[offered]["name"]
        try:
            result = self._await(self._session.call_tool(name, args), self.spec.timeout)
        except TimeoutError:
            return False, f"{offered} gave no answer within {self.spec.timeout:.0f}s (the server's timeout)"
        except Exception as exc:  # noqa: BLE001 - the server died or broke the protocol
            return self._after_failure(offered, args, exc)
        return not result.is_error, _text(result)

    def _after_failure(self, offered: str, args: dict[str, Any], exc: BaseException) -> tuple[bool, str]:
        """A server that failed is started again once, and the call tried again; then its tools give up."""
        reason = f"the MCP server `{self.name}` failed: {_reason(exc)}{self._stderr_tail()}"
        if self.restarted:
            self.broken = f"{reason}; it was started again once already, so its tools are not available now"
            return False, self.broken
        self.restarted = True
        self._disconnect()
        try:
            self._connect()
        except Exception as again:  # noqa: BLE001
            self.broken = f"{reason}; starting it again failed too: {_reason(again)}"
            return False, self.broken
        return self.call(offered, args)

    def close(self) -> None:
        self._disconnect()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._stderr.close()

    def _connect(self) -> None:
        ready: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._task = asyncio.run_coroutine_threadsafe(self._serve(ready), self._loop)
        self._session = ready.result(timeout=self.spec.start_timeout)

    def _disconnect(self) -> None:
        if self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        if self._task is not None:
            try:
                self._task.result(timeout=10)
            except Exception:  # noqa: BLE001 - it is going away either way
                self._task.cancel()
        self._task = self._closing = self._session = None

    async def _serve(self, ready: concurrent.futures.Future[Any]) -> None:
        """Hold the connection open (the SDK's context managers enter and exit in one task) until closed."""
        from mcp import Client

        self._closing = asyncio.Event()
        try:
            async with Client(self._transport(), read_timeout_seconds=None) as client:
                ready.set_result(client)
                await self._closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    def _transport(self) -> Any:
        if self.spec.url:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            headers = {header: os.environ.get(variable, "") for header, variable in self.spec.headers_env.items()}
            return streamable_http_client(self.spec.url, http_client=httpx2.AsyncClient(headers=headers))
        from mcp.client.stdio import StdioServerParameters, stdio_client

        command = shlex.join(self.spec.command or [])
        argv = self.commands.policy.argv(command) if self.commands else ["bash", "-c", command]
        env = {**(self.commands.env if self.commands else {}), **self.spec.env,
               **{name: os.environ[name] for name in self.spec.env_from if name in os.environ}}
        parameters = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=self.workdir)
        return stdio_client(parameters, errlog=self._stderr)

    def _await(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            tail = self._stderr.read()[-1500:].strip()
        except (OSError, ValueError):
            return ""
        return f"\nits stderr ends:\n{tail}" if tail else ""


class McpServers:
    """A run's servers, by name: started once, kept across a hot reload that leaves them as they
    were, closed with the run."""

    def __init__(self) -> None:
        self.running: dict[str, McpServer] = {}

    def for_spec(self, spec: Spec, workdir: Path, commands: Commands | None) -> dict[str, McpServer]:
        wanted = {tool.name: tool.mcp for tool in spec.tools if tool.mcp is not None}
        for name in [n for n, server in self.running.items() if wanted.get(n) != server.spec]:
            self.running.pop(name).close()
        try:
            for name, declared in wanted.items():
                if name not in self.running:
                    self.running[name] = McpServer(name, declared, workdir, commands).start()
        except RunError:
            self.close()  # the run does not start: none of its servers stays
            raise
        return dict(self.running)

    def close(self) -> None:
        for server in self.running.values():
            server.close()
        self.running.clear()


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)  # an exception group from the SDK's task group
    if inner:
        return _reason(inner[0])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(result: Any) -> str:
    """A call's result as text: its text parts, its structured content, and a word for what is not text."""
    parts = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        parts.append(item.text if kind == "text" else f"[{kind} content: not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, indent=1))
    return "\n".join(parts) or "(no content)"
