"""The workflow's always-run step: `python -m tests.e2e.cleanup` destroys and removes the stack named by
GPU_BURST_E2E_STACK if a killed run left it (nothing to do otherwise), then reports what `burstctl sweep` finds.
Exit 0 when nothing is left, 1 otherwise."""

import json
import os
import sys
from pathlib import Path
from typing import Mapping

from .automation import AutomationStack, PortForward, WallClock, run_burstctl
from .driver import ROOT, RUN, STACK_FILE, E2EError, Run, Settings, read_config


def main(env: Mapping[str, str] = os.environ) -> int:
    name = env.get("GPU_BURST_E2E_STACK")
    if not name:
        print("GPU_BURST_E2E_STACK: not set; name the stack the run created", file=sys.stderr)
        return 2
    report_dir = Path(env.get("GPU_BURST_E2E_REPORT_DIR") or ROOT / "e2e-report").resolve()
    stack = AutomationStack(name, env)
    if not stack.exists():
        print(f"stack {name} does not exist: the run cleaned up after itself")
        return 0
    run_file = report_dir / RUN
    known = json.loads(run_file.read_text()) if run_file.is_file() else {}
    try:
        config = read_config(report_dir / STACK_FILE, "the run's stack file")
    except E2EError:
        config = {}
    region = known.get("region") or config.get("aws:region") or env.get("AWS_REGION")
    if not region:
        print("no region: the run wrote no stack file; set AWS_REGION", file=sys.stderr)
        return 2
    settings = Settings(stack_name=name, config={**config, "aws:region": region}, report_dir=report_dir,
                        idle_timeout_s=0.0)
    stack.release_stale_lock()
    report = Run(settings, stack, run_burstctl, PortForward(settings.reach), WallClock()).clean_up(
        known.get("clusterName"))
    return 0 if report.cleaned else 1


if __name__ == "__main__":
    sys.exit(main())
