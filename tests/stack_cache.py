"""Whole-stack evaluations shared by the tests of one module: evaluating a stack under mocks takes about a second, and
most tests only read what was registered, so a module-scoped fixture evaluates each stack once."""

import asyncio
from typing import Optional

import pulumi

from pulumi_mocks import Mocks, RecordingMonitor
from stack_helpers import evaluate_stack, shared_loop


def evaluated(stack: str, overrides: Optional[dict] = None, secrets: Optional[dict] = None,
              newest_addon_versions: Optional[dict] = None, pulumi_stack: str = "dev") -> tuple[Mocks, dict]:
    """Fresh mocks (as the `mocks` fixture sets them up), the stack evaluated on them, and its outputs.
    `newest_addon_versions` replaces what the mocked getAddonVersion answers as the newest build of an add-on;
    `pulumi_stack` is the stack name the program sees (`pulumi.get_stack()`)."""
    asyncio.set_event_loop(shared_loop())
    m = Mocks()
    m.newest_addon_versions.update(newest_addon_versions or {})
    mon = RecordingMonitor(m)
    m.monitor = mon
    pulumi.runtime.set_mocks(m, project="gpu-burst", stack=pulumi_stack, preview=False, monitor=mon)
    pulumi.runtime.set_all_config({})
    outputs = evaluate_stack(stack, overrides, secrets)
    return m, outputs


_SHIPPED: dict = {}


def shipped(stack: str) -> tuple[Mocks, dict]:
    """`dev` or `prod` as shipped (prod with an HF token), evaluated once per test process and shared by the modules
    that only read what was registered."""
    if stack not in _SHIPPED:
        _SHIPPED[stack] = evaluated(stack, secrets={"hfToken": "hf_test_token"} if stack == "prod" else None)
    return _SHIPPED[stack]
