"""A fake Prometheus HTTP API on 127.0.0.1 for `burstctl usage`.

It answers `GET /api/v1/query` the way Prometheus does (prometheus/prometheus web/api/v1/api.go): a success
envelope with an instant vector (`{"metric": {...}, "value": [<unix time>, "<number as string>"]}`), stamped with the
query's `time`; a query that does not parse is `400 bad_data` with the parser's message; another path is `404 page
not found` as plain text. It cannot evaluate PromQL: answers are recorded per query text (`series`), every other
valid query has no data (an empty vector), as Prometheus answers a selector nothing matches. Requests are kept in
`requests` for assertions. The same handler serves the Kubernetes API fake's service proxy."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional
from urllib.parse import parse_qs

import promql_parser
import pytest


@dataclass
class FakePrometheus:
    series: dict[str, list[tuple[dict[str, str], Any]]] = field(default_factory=dict)
    """Per query text: the samples (labels, value) the query returns."""
    fail: Optional[tuple[int, Any, str]] = None
    """Answer every query with this (status, body, content type) instead."""
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, str]:
        if path != "/api/v1/query":
            return 404, "404 page not found\n", "text/plain; charset=utf-8"
        expr, at = query.get("query", [""])[0], query.get("time", [""])[0]
        self.requests.append({"query": expr, "time": at})
        if self.fail is not None:
            return self.fail
        try:
            promql_parser.parse(expr)
        except ValueError as e:
            return 400, {"status": "error", "errorType": "bad_data",
                         "error": f'invalid parameter "query": {e}'}, "application/json"
        result = [{"metric": labels, "value": [float(at), str(value)]} for labels, value in self.series.get(expr, [])]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}, "application/json"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path, _, query = self.path.partition("?")
                status, body, ctype = state.answer(path, parse_qs(query))
                data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else \
                    json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def fake_prometheus() -> Iterator[Any]:
    """Factory: ``fake_prometheus(series={...})`` serves a FakePrometheus on 127.0.0.1 (its ``url`` is set)."""
    servers: list[ThreadingHTTPServer] = []

    def start(**state: Any) -> FakePrometheus:
        prom = FakePrometheus(**state)
        server = ThreadingHTTPServer(("127.0.0.1", 0), prom.handler())
        # A short poll interval: shutdown() waits for it at teardown.
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        prom.url = f"http://127.0.0.1:{server.server_port}"
        return prom

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()
