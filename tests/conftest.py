"""Shared fixtures: a fresh set of Pulumi mocks per test (module-level set_mocks leaks between modules)."""

import asyncio
import concurrent.futures
import json
import os
import sys

import pulumi
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from pulumi_mocks import Mocks, RecordingMonitor  # noqa: E402


# One event loop for every mock test. The Pulumi SDK keeps loop-bound asyncio primitives in module globals (seen as
# "attached to a different loop" and a hang when rehydrating resource references on a second loop); code under
# test elsewhere (the CLI's asyncio) may also unset the current loop, so the fixture re-installs this one.
_LOOP = asyncio.new_event_loop()
_LOOP.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=32))
# Reachable by module-scoped fixtures elsewhere through pulumi_mocks (tests/cli has a conftest.py of its own, so the
# module name `conftest` is not reliable).
sys.modules["pulumi_mocks"].EVENT_LOOP = _LOOP


@pytest.fixture
def mocks():
    asyncio.set_event_loop(_LOOP)
    m = Mocks()
    mon = RecordingMonitor(m)
    m.monitor = mon
    pulumi.runtime.set_mocks(m, project="gpu-burst", stack="dev", preview=False, monitor=mon)
    pulumi.runtime.set_all_config({})
    yield m


def set_config(values: dict, secrets: dict | None = None) -> None:
    """Set stack config like `pulumi config set` would: namespaced keys, structured values as JSON strings."""
    cfg = {}
    for k, v in {**values, **(secrets or {})}.items():
        key = k if ":" in k else f"gpu-burst:{k}"
        cfg[key] = v if isinstance(v, str) else json.dumps(v)
    pulumi.runtime.set_all_config(cfg, secret_keys=[f"gpu-burst:{k}" for k in (secrets or {})])


# -- upstream reference files ----------------------------------------------------------------------------------------
# Locally, tests that need ../shared/reference/upstream skip with the reason (shown by -rs and the line below). In CI
# (.github/workflows/ci.yml) GPU_BURST_REQUIRE_UPSTREAM=1: every file of .ci/upstream-files.tsv must be there, or the
# run fails before any test.
_MANIFEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".ci", "upstream-files.tsv")


def upstream_files() -> list[str]:
    with open(_MANIFEST) as f:
        return [line.split("\t", 1)[0] for line in f if line.strip() and not line.startswith("#")]


def missing_upstream_files(root) -> list[str]:
    return [rel for rel in upstream_files() if not os.path.isfile(os.path.join(str(root), rel))]


def pytest_configure(config):
    if os.environ.get("GPU_BURST_REQUIRE_UPSTREAM", "") not in ("", "0"):
        from upstream import UPSTREAM

        missing = missing_upstream_files(UPSTREAM)
        if missing:
            raise pytest.UsageError(
                f"GPU_BURST_REQUIRE_UPSTREAM is set but {len(missing)} upstream reference files are missing under "
                f"{UPSTREAM} (first: {missing[0]}); run .ci/fetch-upstream {UPSTREAM}")


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    upstream = [r for r in skipped if "upstream reference files" in str(getattr(r, "longrepr", ""))]
    if upstream:
        from upstream import UPSTREAM

        terminalreporter.write_line(
            f"{len(upstream)} tests skipped: upstream reference files not found at {UPSTREAM} "
            "(set GPU_BURST_UPSTREAM, or fetch them with .ci/fetch-upstream)")
