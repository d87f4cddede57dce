"""`burstctl estimate`: hand-computed cases, every figure sourced, the CLI's table and JSON, bad input."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from burstctl import estimate as est
from burstctl.cli import app
from burstctl.output import BadInput

ROOT = Path(__file__).resolve().parents[2]
REV = "989aa7980e4cf806f80c7fef2b1adb7bc71aa306"


def _cfg(gpu: dict | None = None, model: dict | None = None):
    from stacks.config import validate

    return validate({"environment": "dev", "region": "us-west-2", "gpu": gpu or {},
                     "models": [{"servedName": "m", "hfModelId": "acme/Tiny-8B-Instruct", "revision": REV,
                                 "pool": "gpu-on-demand", **(model or {})}]})


def _phases(path) -> dict[str, float]:
    return {p.name: round(p.seconds, 3) for p in path.phases}


def test_al2023_soci_streamer_by_hand():
    cfg = _cfg()
    e = est.estimate(cfg, cfg.models[0], "g5.xlarge", weights_gb=15.0, image_gb=9.354)
    base, stack = e.paths
    # stack: 1 + 1 (trigger, Karpenter batch) + 45 (node) + 10 (AL2023 device plugin) + 39.553 (SOCI, same image
    # size as measured) + 15 GB / min(3.074 GB/s, 10 Gbit/s = 1.25 GB/s) = 12 + (18.3 + 15.0 from the compile
    # cache) + (2/2 + 5/2 + 1 probes and route) + 0.5
    assert _phases(stack) == {"scale-from-zero trigger": 2.0, "node launch -> Ready": 45.0,
                              "Ready -> GPU allocatable": 10.0, "image pull (SOCI parallel, al2023)": 39.553,
                              "weights in GPU": 12.0, "engine init": 33.3, "ready -> request routed": 4.5,
                              "first token": 0.5}
    assert stack.total_s == 146.9
    assert stack.gpu_billed_s == 144.9  # from the EC2 launch on
    assert e.cost(stack) == round(144.9 * 1.006 / 3600, 4)
    # baseline: containerd 130.813 s; weights 15 GB at 1 GB/s from the Hub + 47.6 s read from gp3; cold compile
    assert _phases(base)["image pull"] == 130.813 and _phases(base)["weights in GPU"] == 62.6
    assert _phases(base)["engine init"] == 49.0
    assert base.total_s == 304.4
    # without the compile cache the stack compiles from scratch too
    cold = _cfg(model={"compileCache": False})
    assert _phases(est.estimate(cold, cold.models[0], "g5.xlarge", 15.0, 9.354).paths[1])["engine init"] == 49.0


def test_bottlerocket_snapshot_by_hand():
    cfg = _cfg({"amiFamily": "bottlerocket", "amiVersion": "v1.50.0", "fastImagePull": False,
                "dataVolumeSnapshotId": "snap-0123456789abcdef0", "volumeInitializationRateMibps": 300})
    e = est.estimate(cfg, cfg.models[0], "g6e.xlarge", weights_gb=16.0, image_gb=10.0)
    ph = _phases(e.paths[1])
    # 4 GB read at start at 300 MiB/s; 16 GB at min(3.074, 20 Gbit/s = 2.5 GB/s); Bottlerocket's built-in plugin
    assert ph["image (data-volume snapshot)"] == round(4e9 / (300 * 2**20), 3) == 12.716
    assert ph["weights in GPU"] == 6.4 and ph["Ready -> GPU allocatable"] == 3.0
    assert e.instance_type == "g6e.xlarge" and e.price_per_hour == 1.861


def test_bottlerocket_soci_uses_its_own_measurement():
    cfg = _cfg({"amiFamily": "bottlerocket", "amiVersion": "v1.50.0"})
    e = est.estimate(cfg, cfg.models[0], "g5.xlarge", weights_gb=15.0, image_gb=9.354 * 2)
    assert _phases(e.paths[1])["image pull (SOCI parallel, bottlerocket)"] == round(23.229 * 2, 3)


def test_every_figure_has_a_kind_and_a_source_and_the_defaults_come_from_the_stack():
    cfg = _cfg()
    e = est.estimate(cfg, cfg.models[0])
    assert e.instance_type == "g6.xlarge"  # smallest 1-GPU size of [g5, g6], cheapest first
    assert e.weights_gb == 16.0  # 8B parameters x 2 bytes
    keys = {f.key for f in e.figures}
    for p in e.paths:
        for ph in p.phases:
            assert ph.figures and {f.key for f in ph.figures} <= keys
    for f in e.figures:
        assert f.kind in ("measured", "spec", "config", "estimate") and f.source and f.unit
    measured = {f.key for f in e.figures if f.kind == "measured"}
    assert {"node_ready", "pull_soci_al2023", "runai_s3_rate", "engine_work", "compile_cold"} <= measured


def test_sizes_from_model_ids():
    assert est.weights_gb_of("meta-llama/Llama-3.1-8B-Instruct") == 16.0
    assert est.weights_gb_of("Qwen/Qwen2.5-1.5B-Instruct") == 3.0
    with pytest.raises(BadInput, match="--weights-gb"):
        est.weights_gb_of("acme/mystery-model")


def test_cli_table_and_json_for_the_prod_stack():
    runner = CliRunner()
    r = runner.invoke(app, ["estimate", "-s", str(ROOT / "Pulumi.prod.yaml")])
    assert r.exit_code == 0, r.output
    assert "llama-3-1-8b-instruct" in r.output and "first token after" in r.output and "figures" in r.output
    r = runner.invoke(app, ["estimate", "-s", str(ROOT / "Pulumi.prod.yaml"), "--json"])
    doc = json.loads(r.stdout)
    assert [p["path"] for p in doc["paths"]] == ["baseline", "stack"]
    stack = doc["paths"][1]
    assert stack["total_s"] == pytest.approx(sum(p["seconds"] for p in stack["phases"]), abs=0.2)
    assert all(f["source"] for f in doc["figures"])


def test_cli_rejects_unknown_model_and_instance(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["estimate", "-s", str(ROOT / "Pulumi.dev.yaml"), "--model", "nope"])
    assert r.exit_code == 2 and "--model" in r.output and "qwen2-5-1-5b-instruct" in r.output
    r = runner.invoke(app, ["estimate", "-s", str(ROOT / "Pulumi.dev.yaml"), "--instance-type", "m5.large"])
    assert r.exit_code == 2 and "--instance-type" in r.output
    bad = tmp_path / "Pulumi.x.yaml"
    bad.write_text(yaml.safe_dump({"config": {"aws:region": "us-west-2", "gpu-burst:environment": "dev",
                                              "gpu-burst:models": [{"servedName": "m", "hfModelId": "a/b-1B"}]}}))
    r = runner.invoke(app, ["estimate", "-s", str(bad)])
    assert r.exit_code == 2 and "revision" in r.output
