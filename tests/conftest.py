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
