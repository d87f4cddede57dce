"""Helpers for tests on the Kubernetes dumps in fixtures/: the model they hold, and edited copies of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from burstctl.verify import Target

SELECTOR = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "qwen2-5-1-5b-instruct"}
TARGET = Target("inference", "qwen2-5-1-5b-instruct", "qwen2-5-1-5b-instruct", SELECTOR)


def mutated(fixtures: Path, tmp_path: Path, edit: Callable[[list[dict[str, Any]]], None],
            name: str = "scaled-up.yaml") -> Path:
    """A copy of a dump whose `items` went through `edit` (in place), for cases a fixture does not cover."""
    doc = yaml.safe_load((fixtures / name).read_text())
    edit(doc["items"])
    out = tmp_path / f"mutated-{name}"
    out.write_text(yaml.safe_dump(doc))
    return out
