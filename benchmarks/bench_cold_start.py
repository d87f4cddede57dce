"""Time to first token from zero GPU nodes for the dev and prod models: baseline path vs the stack's accelerated
path, and the fastest variant the sourced figures allow (Bottlerocket with a pre-loaded data-volume snapshot and a
provisioned initialization rate, the compile cache on).

Figures come from `burstctl estimate` (burstctl/estimate.py): measured elsewhere, vendor specs, stack config or our
estimates, each printed with its source by `burstctl estimate --stack-file Pulumi.<stack>.yaml`. A benchmark, not a
test: it prints figures and never fails on them. Real clusters: measure with `burstctl timeline` after
`burstctl burst --from-zero`.

Usage: python benchmarks/bench_cold_start.py [--json]
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from burstctl import estimate as est  # noqa: E402

BEST_GPU = {"amiFamily": "bottlerocket", "amiVersion": "v1.50.0", "fastImagePull": False,
            "dataVolumeSnapshotId": "snap-0123456789abcdef0", "volumeInitializationRateMibps": 300}
"""A variant, not a stack file: the snapshot id is a placeholder (build one with docs/cold-start.md)."""


def variants(stack: str):
    cfg = est.load_stack(ROOT / f"Pulumi.{stack}.yaml")
    model = cfg.models[0]
    e = est.estimate(cfg, model)
    yield "baseline", e, e.paths[0]
    yield "this stack", e, e.paths[1]
    gpu = cfg.gpu.model_copy(update={}).model_dump(by_alias=True)
    gpu.update(BEST_GPU)
    from stacks.config import validate

    raw = cfg.model_dump(by_alias=True, exclude={"hf_token_set"})
    raw["gpu"] = gpu
    raw["hfTokenSet"] = True
    for m in raw["models"]:
        m["compileCache"] = True
    best_cfg = validate(raw)
    b = est.estimate(best_cfg, best_cfg.models[0], e.instance_type)
    yield "snapshot + compile cache", b, b.paths[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for stack in ("dev", "prod"):
        for label, e, path in variants(stack):
            rows.append({"stack": stack, "model": e.model, "instance": e.instance_type, "path": label,
                         "first_token_s": path.total_s, "cost_usd": e.cost(path),
                         "phases": {p.name: round(p.seconds, 1) for p in path.phases}})
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        phases = ", ".join(f"{k} {v:g}" for k, v in r["phases"].items())
        cost = f"${r['cost_usd']:.4f}" if r["cost_usd"] is not None else "n/a"
        print(f"{r['stack']:4} {r['model']:24} {r['instance']:11} {r['path']:26} first token {r['first_token_s']:6.1f} s"
              f"  GPU cost {cost}\n     {phases}")


if __name__ == "__main__":
    main()
