"""Fixtures for the burstctl tests: all offline (local stub server, recorded Kubernetes objects, moto for AWS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from burstctl.cli import app
from openai_stub import StubBehaviour, StubServer

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


# The fake Kubernetes API server (token-checking) and a never-answering server live in kube_fake.py.
from kube_fake import fake_kube, in_cluster, silent_server  # noqa: E402,F401
# The fake Prometheus HTTP API (recorded answers per query) lives in prometheus_fake.py.
from prometheus_fake import fake_prometheus  # noqa: E402,F401
