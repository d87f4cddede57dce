"""Time to first token from zero GPU nodes for the dev and prod models: the baseline path, the stack file's path, and
the accelerated variants the sourced figures allow (AL2023 or Bottlerocket with SOCI parallel pull onto the NVMe
instance store, Bottlerocket with SOCI onto the EBS volume, Bottlerocket with a pre-loaded data-volume snapshot at
EBS's default initialization rate or a provisioned one), the compile cache on.

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

BOTTLEROCKET = {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0"}
SNAPSHOT = {**BOTTLEROCKET, "fastImagePull": False, "dataVolumeSnapshotId": "snap-0123456789abcdef0"}
"""The snapshot id is a placeholder: the variants are what-ifs, not stack files (build one with docs/cold-start.md)."""
VARIANTS = {
    "AL2023 + SOCI": {"amiFamily": "al2023", "fastImagePull": True},
    "Bottlerocket + SOCI": {**BOTTLEROCKET, "fastImagePull": True},
    "BR + SOCI, image on EBS": {**BOTTLEROCKET, "fastImagePull": True, "instanceStore": "none"},
    "BR + snapshot (default init)": SNAPSHOT,
    "BR + snapshot + 300 MiB/s init": {**SNAPSHOT, "volumeInitializationRateMibps": 300},
}
"""GPU settings layered on the stack's own, each with the compile cache on."""
GPU_KEYS = ("amiFamily", "amiVersion", "fastImagePull", "dataVolumeSnapshotId", "volumeInitializationRateMibps",
            "instanceStore")


def variant_config(cfg, gpu_update: dict):
    from burstctl.program import stack_config

    # Only the keys the stack file wrote: a key of the other network mode is refused even at its default.
    raw = cfg.model_dump(by_alias=True, exclude_unset=True, exclude={"hf_token_set"})
    raw["gpu"] = {k: v for k, v in raw.get("gpu", {}).items() if k not in GPU_KEYS or k == "amiVersion"}
    if gpu_update.get("amiFamily") == "al2023" and cfg.gpu.ami_family.value != "al2023":
        raw["gpu"].pop("amiVersion")  # the AL2023 default release, not a Bottlerocket version
    raw["gpu"].update(gpu_update)
    raw["hfTokenSet"] = True
    for m in raw["models"]:
        m["compileCache"] = True
    return stack_config().validate(raw)


def variants(stack: str):
    cfg = est.load_stack(ROOT / f"Pulumi.{stack}.yaml")
    e = est.estimate(cfg, cfg.models[0])
    yield "baseline", e, e.paths[0]
    yield "this stack", e, e.paths[1]
    for label, update in VARIANTS.items():
        v = variant_config(cfg, update)
        b = est.estimate(v, v.models[0], e.instance_type)
        yield label, b, b.paths[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for stack in ("dev", "prod"):
        for label, e, path in variants(stack):
            rows.append({"stack": stack, "model": e.model, "instance": e.instance_type, "path": label,
                         "description": path.description, "first_token_s": path.total_s, "target_s": e.target_s, "cost_usd": e.cost(path),
                         "phases": {p.name: round(p.seconds, 1) for p in path.phases}})
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        phases = ", ".join(f"{k} {v:g}" for k, v in r["phases"].items())
        cost = f"${r['cost_usd']:.4f}" if r["cost_usd"] is not None else "n/a"
        target = r["target_s"]  # the goal `burstctl estimate` judges by (estimate.TARGET_S), not a second copy
        verdict = "meets" if r["first_token_s"] <= target else "misses"
        print(f"{r['stack']:4} {r['model']:24} {r['instance']:11} {r['path']:31} first token "
              f"{r['first_token_s']:6.1f} s ({verdict} {target:g} s)  GPU cost {cost}\n     {phases}")


if __name__ == "__main__":
    main()
