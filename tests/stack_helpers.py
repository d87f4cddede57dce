"""Evaluate whole stacks (or parts) under mocks, configured from the real Pulumi.<stack>.yaml files."""

import json
from pathlib import Path
from typing import Callable, Optional

import pulumi
import yaml

ROOT = Path(__file__).resolve().parents[1]


def shared_loop():
    """The one event loop tests/conftest.py keeps for every mock test (it publishes it as pulumi_mocks.EVENT_LOOP:
    tests/cli has a conftest.py of its own, so the module name `conftest` is not reliable)."""
    import pulumi_mocks

    return pulumi_mocks.EVENT_LOOP


def stack_config(stack: str, overrides: Optional[dict] = None, secrets: Optional[dict] = None) -> dict:
    """The stack file's config as `pulumi config` would pass it (structured values as JSON strings)."""
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw.update({(k if ":" in k else f"gpu-burst:{k}"): v for k, v in (overrides or {}).items()})
    raw.update({f"gpu-burst:{k}": v for k, v in (secrets or {}).items()})
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def apply_stack_config(stack: str, overrides: Optional[dict] = None, secrets: Optional[dict] = None) -> None:
    pulumi.runtime.set_all_config(
        stack_config(stack, overrides, secrets), secret_keys=[f"gpu-burst:{k}" for k in (secrets or {})]
    )


def evaluate(fn: Callable[[], object]) -> object:
    """Run `fn` as a Pulumi program under the active mocks and wait until every resource is registered."""
    result = {}

    @pulumi.runtime.test
    def _run():
        result["value"] = fn()

    _run()
    return result.get("value")


def evaluate_stack(stack: str, overrides: Optional[dict] = None, secrets: Optional[dict] = None) -> dict:
    from stacks.config import load
    from stacks.main import build

    apply_stack_config(stack, overrides, secrets)
    return evaluate(lambda: build(load()))


def resolve(output: pulumi.Output) -> object:
    """The value of an Output after evaluation (mocks resolve everything synchronously)."""
    from pulumi.runtime.sync_await import _sync_await

    return _sync_await(output.future())
