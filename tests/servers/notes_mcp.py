"""A small MCP server over stdio, written with the `mcp` package's server API, for the tests.

Its `read_file` collides with loop's own tool of that name (the prefix keeps them apart); `crash`
kills the server (once, or always with --crash-always), to test the restart; `leak` shows what
of the environment it sees; `write_note` writes in its working folder (the workdir, sandboxed).
With `--http PORT --token T` it serves Streamable HTTP and wants `Authorization: Bearer T`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes")
MARK = Path(".crashed-once")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def read_file(name: str) -> str:
    """Read a note by name."""
    return f"note {name}: hello"


@server.tool()
def write_note(name: str, text: str) -> str:
    """Write a note into the working folder."""
    Path(name).write_text(text)
    return f"wrote {name} in {os.getcwd()}"


@server.tool()
def leak() -> str:
    """Say which secret-looking variables it sees."""
    return ",".join(sorted(k for k in os.environ if "KEY" in k or "TOKEN" in k)) or "none"


@server.tool()
def fail() -> str:
    """Raise an error: the result is marked as an error."""
    raise ValueError("this tool always fails")


@server.tool()
def crash() -> str:
    """Kill the server."""
    if "--crash-always" in sys.argv or not MARK.exists():
        MARK.touch()
        os._exit(3)
    return "survived"


def serve_http(port: int, token: str) -> None:
    """Streamable HTTP on 127.0.0.1:PORT/mcp, answering only requests that carry `Authorization: Bearer TOKEN`."""
    import uvicorn

    app = server.streamable_http_app()

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != f"Bearer {token}".encode():
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if "--http" in sys.argv:
        serve_http(int(sys.argv[sys.argv.index("--http") + 1]), sys.argv[sys.argv.index("--token") + 1])
    else:
        server.run()
