"""Whole-stack evaluations shared by the tests of one module: evaluating a stack under mocks takes about a second, and
most tests only read what was registered, so a module-scoped fixture evaluates each stack once."""

import asyncio
from pathlib import Path
from typing import Optional

import pulumi

from pulumi_mocks import Mocks, RecordingMonitor
from stack_helpers import evaluate_stack

_CONFTEST = Path(__file__).with_name("conftest.py")


def _mock_loop(request) -> asyncio.AbstractEventLoop:
    """The one event loop tests/conftest.py runs every mock test on. Looked up among pytest's loaded conftest
    plugins by file: tests/cli/conftest.py is also a module named `conftest`."""
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == _CONFTEST.resolve():
            return plugin._LOOP
    raise RuntimeError("tests/conftest.py is not loaded")


def evaluated(request, stack: str, overrides: Optional[dict] = None,
              secrets: Optional[dict] = None) -> tuple[Mocks, dict]:
    """Fresh mocks (as the `mocks` fixture sets them up), the stack evaluated on them, and its outputs. `request` is
    the calling fixture's pytest request."""
    asyncio.set_event_loop(_mock_loop(request))
    m = Mocks()
    mon = RecordingMonitor(m)
    m.monitor = mon
    pulumi.runtime.set_mocks(m, project="gpu-burst", stack="dev", preview=False, monitor=mon)
    pulumi.runtime.set_all_config({})
    outputs = evaluate_stack(stack, overrides, secrets)
    return m, outputs
