"""A local OpenAI-compatible stub server: the test double `burstctl burst` runs against in the tests, the docs' examples
and the client benchmark.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies, chunked SSE) on raw asyncio streams, because a
thread-per-connection server would be the bottleneck long before the client at 500+ concurrent streams. It behaves
like the stack's front door: routes on the JSON body's ``model`` (404 "The model `x` does not exist." for an unknown
one, as vLLM words it), lists the models at ``GET /v1/models``, answers 401 without the right bearer key. It can
imitate what the real path does during a scale-from-zero: the KEDA HTTP add-on interceptor holds requests while
the model cold-starts and marks them with ``X-KEDA-HTTP-Cold-Start: true``; it can also answer 429 (with
``Retry-After``)/503/504, reset connections, stall (to trigger client timeouts), delay the first token and close
every connection after one response without saying so (a server without keep-alive).

Run standalone: ``python tests/cli/openai_stub.py --port 8000 --ttft 0.2 --tokens 16 --token-delay 0.02 --models qwen3-4b
--api-key k --cold-start 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Union

Action = Union[int, str]
"""A scripted answer for one request: an HTTP status (429, 503, 504...), ``"reset"``, ``"stall"`` or ``"slow"``."""

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class StubBehaviour:
    """What the stub does. Request numbers (``plan`` keys) count from 1 in arrival order."""

    ttft: float = 0.02
    """Server-side delay before the first token (or before the whole body without streaming)."""
    token_delay: float = 0.0
    """Delay between tokens after the first."""
    tokens: int = 8
    """Tokens generated per request (capped by the request's max_tokens)."""
    cold_start: float = 0.0
    """Seconds the 'model' needs to come up after the first request arrives; requests arriving before then are
    held until it is up and carry ``X-KEDA-HTTP-Cold-Start: true``."""
    plan: dict[int, Action] = field(default_factory=dict)
    slow_ttft: float = 1.0
    """Delay before the first token for requests planned as ``"slow"``."""
    api_key: str | None = None
    """When set, requests without ``Authorization: Bearer <api_key>`` get 401 (before any cold-start hold, as at
    the edge)."""
    models: list[str] | None = None
    """Served model names; when set, a body naming another model gets 404 the way vLLM answers it."""
    cold_start_header: bool = True
    """Send ``X-KEDA-HTTP-Cold-Start`` (the interceptor can be configured not to, and proxies may drop it)."""
    keep_alive: bool = True
    """False: close the connection after each response, without a ``Connection: close`` header."""
    close_reused: bool = False
    """Close a kept-alive connection when the next request arrives on it, without reading or answering it (an idle
    timeout firing as the request arrives: the stale keep-alive connection every client meets)."""
    retry_after: int = 1
    """``Retry-After`` seconds on injected 429 and 503 answers."""


@dataclass
class Seen:
    """A request as the stub received it, for assertions."""

    number: int
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class StubServer:
    """The stub on 127.0.0.1, on its own event loop in a daemon thread (so sync tests and CliRunner can use it).

    Use as a context manager: ``with StubServer(StubBehaviour(...)) as stub: ... stub.url``.
    """

    def __init__(self, behaviour: StubBehaviour | None = None, port: int = 0):
        self.behaviour = behaviour or StubBehaviour()
        self.port = port
        self.seen: list[Seen] = []
        self._count = 0
        self.inflight = 0
        self.max_inflight = 0
        """Most completion requests the stub was serving at once (to check the client's concurrency bound)."""
        self.connections = 0
        """TCP connections accepted."""
        self.stale_closed = 0
        """Requests dropped unread on a reused connection (``close_reused``)."""
        self._first_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start_async(self) -> None:
        """Start on the running loop (used by the standalone entry point)."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> "StubServer":
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start_async())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="openai-stub", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("stub server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            return  # already stopped

        async def stop() -> None:
            self._stop_event.set()
            assert self._server is not None
            self._server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(5)

    # -- HTTP --------------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if served and self.behaviour.close_reused:
                    self.stale_closed += 1
                    writer.transport.abort()
                    break
                served += 1
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                self.inflight += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
                try:
                    keep = await self._respond(method, path, headers, raw, writer)
                finally:
                    self.inflight -= 1
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            try:
                writer.close()
            except Exception:  # pragma: no cover - socket already gone
                pass

    async def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                       writer: asyncio.StreamWriter) -> bool:
        b = self.behaviour
        if method == "GET" and path in ("/health", "/v1/models"):
            data = [{"id": m, "object": "model"} for m in (b.models or ["stub"])]
            await self._send_json(writer, 200, {"object": "list", "data": data}, {})
            return b.keep_alive
        self._count += 1
        number = self._count
        now = time.perf_counter()
        if self._first_at is None:
            self._first_at = now
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        self.seen.append(Seen(number, path, headers, body))
        if path not in ("/v1/completions", "/v1/chat/completions") or method != "POST":
            await self._send_json(writer, 404, {"error": {"message": f"no route {method} {path}"}}, {})
            return b.keep_alive
        if b.api_key and headers.get("authorization") != f"Bearer {b.api_key}":
            await self._send_json(writer, 401, {"error": {"message": "invalid api key"}}, {})
            return b.keep_alive
        if b.models is not None and body.get("model") not in b.models:
            # The body vLLM's OpenAI server sends for an unknown model (NotFoundError, 404).
            await self._send_json(writer, 404, {"object": "error", "message": f"The model `{body.get('model')}` "
                                                "does not exist.", "type": "NotFoundError", "param": None,
                                                "code": 404}, {})
            return b.keep_alive

        # Like the interceptor: hold requests until the replica is up, and say so in a header.
        cold = b.cold_start > 0 and now < self._first_at + b.cold_start
        if cold:
            await asyncio.sleep(self._first_at + b.cold_start - now)
        extra = {"X-KEDA-HTTP-Cold-Start": "true" if cold else "false"} if b.cold_start_header else {}

        action = b.plan.get(number)
        if action == "reset":
            writer.transport.abort()
            return False
        if action == "stall":
            await self._stop_event.wait()
            return False
        if isinstance(action, int):
            if action in (429, 503):
                extra = {**extra, "Retry-After": str(b.retry_after)}
            await self._send_json(writer, action, {"error": {"message": f"injected {action}", "code": action}}, extra)
            return b.keep_alive

        ttft = b.slow_ttft if action == "slow" else b.ttft
        n = max(1, min(b.tokens, int(body.get("max_tokens") or b.tokens)))
        chat = path.endswith("/chat/completions")
        usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5}
        if not body.get("stream"):
            await asyncio.sleep(ttft + b.token_delay * (n - 1))
            text = " ".join(f"tok{i}" for i in range(n))
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                      if chat else {"index": 0, "text": text, "finish_reason": "length"})
            await self._send_json(writer, 200, {"id": f"cmpl-{number}", "object": "chat.completion" if chat
                                                else "text_completion", "model": body.get("model"),
                                                "choices": [choice], "usage": usage}, extra)
            return b.keep_alive

        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                "Transfer-Encoding: chunked\r\n" + "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n")
        writer.write(head.encode())
        # Sleep to absolute times: timer overshoot does not add up, so the server time stays ttft + gaps.
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(ttft)
        kind = "chat.completion.chunk" if chat else "text_completion"
        for i in range(n):
            if i and b.token_delay:
                await asyncio.sleep(max(0.0, t0 + ttft + i * b.token_delay - loop.time()))
            choice = ({"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}
                      if chat else {"index": 0, "text": f" tok{i}", "finish_reason": None})
            self._chunk(writer, {"id": f"cmpl-{number}", "object": kind, "choices": [choice]})
            await writer.drain()
        if (body.get("stream_options") or {}).get("include_usage"):
            self._chunk(writer, {"id": f"cmpl-{number}", "object": kind, "choices": [], "usage": usage})
        writer.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
        await writer.drain()
        return b.keep_alive

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        data = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))

    @staticmethod
    async def _send_json(writer: asyncio.StreamWriter, status: int, obj: Any, extra: dict[str, str]) -> None:
        data = json.dumps(obj).encode()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n")
        writer.write(head.encode() + data)
        await writer.drain()


def main(argv: list[str] | None = None) -> None:
    """Standalone stub (the benchmark runs it in its own process so client and server do not share a GIL)."""
    p = argparse.ArgumentParser(prog="python tests/cli/openai_stub.py", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ttft", type=float, default=0.02)
    p.add_argument("--token-delay", type=float, default=0.0)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--cold-start", type=float, default=0.0)
    p.add_argument("--models", default="", help="comma-separated served names (others get 404); default: any")
    p.add_argument("--api-key", default=None, help="require this bearer key (401 otherwise)")
    p.add_argument("--no-cold-start-header", action="store_true", help="hold without X-KEDA-HTTP-Cold-Start")
    p.add_argument("--no-keep-alive", action="store_true", help="close every connection after one response")
    args = p.parse_args(argv)
    stub = StubServer(StubBehaviour(ttft=args.ttft, token_delay=args.token_delay, tokens=args.tokens,
                                    cold_start=args.cold_start, models=[m for m in args.models.split(",") if m]
                                    or None, api_key=args.api_key, cold_start_header=not args.no_cold_start_header,
                                    keep_alive=not args.no_keep_alive), port=args.port)

    async def serve() -> None:
        await stub.start_async()
        print(f"listening on {stub.url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
