"""A lean HTTP/1.1 client on asyncio streams, for the load generator's hot path.

httpx costs about 5-7 ms of CPU per streamed completion (anyio, the connection pool's bookkeeping and per-chunk
event plumbing); at 500 concurrent streams on two cores that alone saturates the machine and the measured TTFT
becomes the client's own queueing. This client does only what `burst` needs: one persistent connection per worker,
a request with a JSON body, and a response body read by Content-Length, chunked encoding or until close — about
0.4 ms of CPU per streamed request. httpx stays available with ``--engine httpx`` (proxies, unusual servers).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import AsyncIterator, Optional
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server sent something that is not HTTP/1.1 as expected."""


class ConnectError(OSError):
    """The TCP (or TLS) connection could not be opened."""


class Response:
    """Status line and headers, with the body still on the wire (read with :meth:`iter_bytes` or :meth:`read`)."""

    def __init__(self, conn: "Connection", status: int, headers: dict[str, str]):
        self._conn = conn
        self.status_code = status
        self.headers = headers
        self._done = False

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        assert reader is not None
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = await reader.readline()
                if not line:
                    raise asyncio.IncompleteReadError(b"", None)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers expected from OpenAI-compatible servers
                    break
                data = await reader.readexactly(size + 2)
                yield data[:-2]
        elif "content-length" in self.headers:
            left = int(self.headers["content-length"])
            while left > 0:
                data = await reader.read(min(left, 65536))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
        else:
            self._conn.keep_alive = False
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                yield data
        self._done = True

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes()])

    @property
    def complete(self) -> bool:
        return self._done


class Connection:
    """One persistent connection to one origin, reopened when the server closes it. Not shared between tasks."""

    def __init__(self, base_url: str, connect_timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.keep_alive = True
        self._ssl = ssl.create_default_context() if self.tls else None

    async def _open(self) -> None:
        async with asyncio.timeout(self.connect_timeout):
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, server_hostname=self.host if self.tls else None, limit=1 << 20)
        self.keep_alive = True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        """Send a request and read the status line and headers. Call :meth:`finish` after consuming the body."""
        if self.writer is None or self.writer.is_closing():
            try:
                await self._open()
            except OSError as e:
                raise ConnectError(str(e)) from e
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {self.prefix}{path} HTTP/1.1", f"Content-Length: {len(body)}"]
        if not any(k.lower() == "host" for k in headers):
            default_port = 443 if self.tls else 80
            head.append(f"Host: {self.host}" + ("" if self.port == default_port else f":{self.port}"))
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        status_line = await self.reader.readline()
        if not status_line:
            # Closed before answering: the classic "connection reset" of an overloaded or restarting backend.
            raise ConnectionResetError("server closed the connection without a response")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {status_line[:60]!r}")
        fields: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            k, sep, v = line.decode("latin-1").partition(":")
            if sep:
                fields[k.strip().lower()] = v.strip()
        if fields.get("connection", "").lower() == "close":
            self.keep_alive = False
        return Response(self, int(parts[1]), fields)

    def finish(self, response: Response) -> None:
        """Keep the connection for the next request only if the body was fully read and the server allows it."""
        if not (response.complete and self.keep_alive):
            self.close()
