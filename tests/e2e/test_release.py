"""A release on a real AWS account: skipped unless GPU_BURST_E2E=1 and AWS credentials are present, so the default
`python -m pytest -q tests` never runs it. The steps and their verdicts: driver.py; set-up, cost and what it proves:
docs/delivery.md."""

import contextlib
import os
import shutil
import signal

import pytest

from .automation import AutomationStack, PortForward, WallClock, has_aws_credentials, run_burstctl
from .driver import Run, preconditions, settings_from_env, skip_reason

REASON = skip_reason(os.environ, has_aws_credentials)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """A cancelled CI job gets SIGTERM: start the clean-up as on Ctrl-C (the workflow's always-run step finishes
    it if the runner does not wait)."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_release_on_a_real_account():
    problems = preconditions(os.environ, shutil.which)
    assert not problems, "the end-to-end run cannot start:\n  " + "\n  ".join(problems)
    settings = settings_from_env(os.environ)
    stack = AutomationStack(settings.stack_name, os.environ)
    with _terminate_as_interrupt():
        report = Run(settings, stack, run_burstctl, PortForward(settings.reach), WallClock()).execute()
    assert report.ok, "\n".join(f"{f.name}: {f.detail}" for f in report.failures)
