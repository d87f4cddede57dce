"""Fixtures for the burstctl tests: all offline (local stub server, recorded Kubernetes objects, moto for AWS)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs

import pytest
import yaml
from typer.testing import CliRunner

from burstctl.cli import app
from burstctl.stub import StubBehaviour, StubServer

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def invoke():
    """Run the CLI in-process; returns the click Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str, **kwargs: Any):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return run


@pytest.fixture
def stub() -> Iterator[Any]:
    """Factory: ``with stub(ttft=..., plan={...}) as s`` starts a stub server on 127.0.0.1."""
    servers: list[StubServer] = []

    def start(**behaviour: Any) -> StubServer:
        server = StubServer(StubBehaviour(**behaviour)).__enter__()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.__exit__(None, None, None)


@pytest.fixture(scope="session")
def aws_session() -> Iterator[None]:
    """One moto account for the whole session: moto loads its AMI and instance-type catalogues on first use per
    mock (seconds each), so tests share it and keep apart by unique names (cluster, VPC, profile) instead."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp:
        # Fake credentials so nothing can reach a real account even if a mock is missing.
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-west-2"}.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            yield


@pytest.fixture
def unique() -> str:
    """A short name no other test uses (tests share one moto account)."""
    import uuid

    return "t" + uuid.uuid4().hex[:8]


def reply_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    """Answer an http.server request with a JSON body and its Content-Length."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


# -- a fake Kubernetes API server for the KubeClusterReader ------------------------------------------------------
def _routes(objects: list[dict[str, Any]]) -> list[tuple[re.Pattern[str], Any]]:
    def of(kind: str) -> list[dict[str, Any]]:
        return [o for o in objects if o["kind"] == kind]

    def one(kind: str):
        def get(m: re.Match[str], query: str) -> Any:
            for o in of(kind):
                md = o["metadata"]
                if md.get("namespace") == m["ns"] and md["name"] == m["name"]:
                    return o
            return None
        return get

    def many(kind: str, namespaced: bool):
        def lst(m: re.Match[str], query: str) -> Any:
            text = parse_qs(query).get("labelSelector", [""])[0]
            sel = dict(p.split("=", 1) for p in text.split(",") if p)
            items = [o for o in of(kind) if (not namespaced or o["metadata"].get("namespace") == m["ns"])
                     and all((o["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
            return {"apiVersion": "v1", "kind": f"{kind}List", "metadata": {}, "items": items}
        return lst

    return [
        (re.compile(r"^/apis/keda\.sh/v1alpha1/namespaces/(?P<ns>[^/]+)/scaledobjects/(?P<name>[^/]+)$"),
         one("ScaledObject")),
        (re.compile(r"^/apis/autoscaling/v2/namespaces/(?P<ns>[^/]+)/horizontalpodautoscalers/(?P<name>[^/]+)$"),
         one("HorizontalPodAutoscaler")),
        (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$"), many("Pod", True)),
        (re.compile(r"^/apis/karpenter\.sh/v1/nodeclaims$"), many("NodeClaim", False)),
        (re.compile(r"^/api/v1/nodes$"), many("Node", False)),
    ]


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[Any]:
    """Factory: serve a fixture file's objects over the Kubernetes REST paths; returns a kubeconfig path."""
    servers: list[ThreadingHTTPServer] = []

    def start(fixture: Path, forbid: bool = False) -> Path:
        objects = yaml.safe_load(fixture.read_text())["items"]
        routes = _routes(objects)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path, _, query = self.path.partition("?")
                status, body = 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
                if forbid:
                    status, body = 403, {"kind": "Status", "code": 403, "reason": "Forbidden"}
                else:
                    for rx, fn in routes:
                        m = rx.match(path)
                        if m:
                            got = fn(m, query)
                            if got is not None:
                                status, body = 200, got
                            break
                reply_json(self, status, body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        kubeconfig = tmp_path / f"kubeconfig-{len(servers)}"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}},
                         {"name": "other", "context": {"cluster": "fake", "user": "fake"}}],
            "users": [{"name": "fake", "user": {"token": "t"}}],
        }))
        return kubeconfig

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()
