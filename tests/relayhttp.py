"""Plain HTTP/1.0 GETs to a server through its relay URL (``http://127.0.0.1:PORT``), for
backend-level tests that run without a hub or proxy in between."""

from __future__ import annotations

import asyncio


async def http_get(url: str, path: str = "/env", timeout: float = 10) -> tuple[int, str]:
    """(status, body) of ``GET path``; ConnectionError when the relay closes without answering."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    if not head:
        raise ConnectionError("connection closed without a response")
    return int(head.split()[1]), body
