"""`verify` and `timeline` on recorded Kubernetes objects (files, and the same objects over a fake API server)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from burstctl.k8s import FileClusterReader, KubeClusterReader, parse_selector
from burstctl.output import BadInput
from burstctl.timeline import build_timeline
from burstctl.verify import CAUSE_CRASH, CAUSE_LAUNCH, CAUSE_NO_GPU_NODE, Target, verify

SELECTOR = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "qwen3-4b"}
TARGET = Target("inference", "qwen3-4b", "qwen3-4b", SELECTOR)


def _checks(result) -> dict[str, dict]:
    doc = json.loads(result.stdout)
    return {c["name"]: c for c in doc["checks"]}


def test_scaled_up_passes_every_check(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen3-4b", "-f", fixtures / "scaled-up.yaml", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    assert doc["target"] == {"mode": "active", "namespace": "inference", "scaled_object": "qwen3-4b",
                             "hpa": "keda-hpa-qwen3-4b", "selector": SELECTOR,
                             "pool": "gpu-on-demand"}
    assert [c["name"] for c in doc["checks"]] == ["scaledobject ready", "scaledobject active", "hpa desired replicas",
                                                  "model pods", "nodeclaims", "gpu nodes"]
    assert all(c["status"] == "pass" for c in doc["checks"])
    assert doc["checks"][2]["data"] == {"desired": 2, "current": 2}
    assert set(doc["checks"][0]) == {"name", "status", "detail", "cause", "data"}


def test_scaled_up_is_not_idle(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen3-4b", "-f", fixtures / "scaled-up.yaml", "--expect-idle", "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    assert checks["scaledobject inactive"]["status"] == "fail"
    assert checks["replicas at zero"]["detail"] == "2 pod(s) left, HPA current replicas 2"
    assert checks["gpu nodes gone"]["status"] == "fail" and "ip-10-0-34-12" in checks["gpu nodes gone"]["detail"]
    assert "consolidateAfter" in checks["nodeclaims gone"]["cause"]


def test_idle_end_state_passes(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen3-4b", "-f", fixtures / "idle.yaml", "--expect-idle")
    assert r.exit_code == 0
    assert "all checks passed" in r.stdout


def test_keda_never_scaled_names_the_metric_query(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen3-4b", "-f", fixtures / "idle.yaml", "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    active = checks["scaledobject active"]
    assert active["status"] == "fail"
    assert 'vllm:num_requests_waiting{model_name="qwen3-4b"}' in active["cause"]
    assert "ServiceMonitor" in active["cause"] and "interceptor route" in active["cause"]
    assert checks["hpa desired replicas"]["status"] == "fail"


def test_no_gpu_node_points_at_nodeclaim_and_quota(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen3-4b", "-f", fixtures / "pending-no-capacity.yaml", "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    assert checks["model pods"]["cause"] == CAUSE_NO_GPU_NODE
    assert "unschedulable" in checks["model pods"]["detail"]
    assert checks["nodeclaims"]["cause"] == CAUSE_LAUNCH
    assert "VcpuLimitExceeded" in checks["nodeclaims"]["detail"]
    assert "burstctl preflight" in checks["nodeclaims"]["cause"]
    assert checks["gpu nodes"]["status"] == "fail"
    assert [c for c, v in checks.items() if v["status"] == "pass"] == ["scaledobject ready", "scaledobject active",
                                                                       "hpa desired replicas"]


def test_pod_never_ready_names_vram(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen3-4b", "-f", fixtures / "crashloop.yaml")
    assert r.exit_code == 1
    assert "CrashLoopBackOff" in r.stdout and "1 check(s) failed" in r.stdout
    checks, _ = verify(FileClusterReader(fixtures / "crashloop.yaml"), TARGET)
    assert {c.name: c for c in checks}["model pods"].cause == CAUSE_CRASH


def _mutated(fixtures: Path, tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load((fixtures / "scaled-up.yaml").read_text())
    edit(doc["items"])
    out = tmp_path / "mutated.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def test_nodeclaim_not_initialized_and_node_without_gpus(invoke, fixtures: Path, tmp_path: Path):
    def edit(items):
        claim = next(o for o in items if o["kind"] == "NodeClaim")
        init = next(c for c in claim["status"]["conditions"] if c["type"] == "Initialized")
        init.update(status="False", reason="NotInitialized", message="expected resource \"nvidia.com/gpu\" didn't "
                    "register on the node")
        node = next(o for o in items if o["kind"] == "Node")
        node["status"]["allocatable"]["nvidia.com/gpu"] = "0"

    r = invoke("verify", "-m", "qwen3-4b", "-f", _mutated(fixtures, tmp_path, edit), "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    assert "not Initialized" in checks["nodeclaims"]["detail"]
    assert "NVIDIA device plugin" in checks["nodeclaims"]["cause"]
    assert "advertises no nvidia.com/gpu" in checks["gpu nodes"]["detail"]


def test_missing_scaledobject(invoke, fixtures: Path):
    r = invoke("verify", "-m", "llama", "-f", fixtures / "scaled-up.yaml", "--json")
    assert r.exit_code == 1
    assert "not found" in _checks(r)["scaledobject ready"]["detail"]


def test_bad_inputs_exit_2(invoke, fixtures: Path, tmp_path: Path):
    r = invoke("verify", "-m", "m", "-f", tmp_path / "nope.yaml")
    assert r.exit_code == 2 and "--from-file" in r.stderr
    garbage = tmp_path / "g.yaml"
    garbage.write_text("items: [\n")
    r = invoke("verify", "-m", "m", "-f", garbage)
    assert r.exit_code == 2 and "not valid JSON/YAML" in r.stderr
    r = invoke("verify", "-m", "m", "-f", fixtures / "idle.yaml", "--selector", "app")
    assert r.exit_code == 2 and "--selector" in r.stderr
    with pytest.raises(BadInput):
        parse_selector("a!=b")


# -- the live-cluster reader against a fake API server ---------------------------------------------------------
def test_kube_reader_reads_the_same_objects(fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "scaled-up.yaml", auth="token")
    reader = KubeClusterReader(kubeconfig=str(kubeconfig), context="other")
    so = reader.scaled_object("inference", "qwen3-4b")
    assert so["status"]["hpaName"] == "keda-hpa-qwen3-4b"
    assert reader.scaled_object("inference", "absent") is None
    hpa = reader.hpa("inference", "keda-hpa-qwen3-4b")
    assert hpa["status"]["desiredReplicas"] == 2  # camelCase dicts, like the files
    pods = reader.pods("inference", SELECTOR)
    assert len(pods) == 2 and pods[0]["status"]["conditions"]
    assert len(reader.nodes({"nvidia.com/gpu.present": "true"})) == 2
    file_checks, _ = verify(FileClusterReader(fixtures / "scaled-up.yaml"), TARGET)
    live_checks, _ = verify(reader, TARGET)
    assert [(c.name, c.status, c.detail) for c in live_checks] == [(c.name, c.status, c.detail) for c in file_checks]
    assert build_timeline(reader, TARGET)["total_s"] == 245.0


def test_verify_cli_against_fake_cluster(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "pending-no-capacity.yaml", auth="token")
    r = invoke("verify", "-m", "qwen3-4b", "--kubeconfig", kubeconfig, "--context", "fake", "--json")
    assert r.exit_code == 1 and _checks(r)["nodeclaims"]["status"] == "fail"
    r = invoke("verify", "-m", "qwen3-4b", "--kubeconfig", kubeconfig, "--context", "missing")
    assert r.exit_code == 2 and "--context" in r.stderr
    forbidden = fake_kube(fixtures / "idle.yaml", forbid=True)
    r = invoke("verify", "-m", "qwen3-4b", "--kubeconfig", forbidden)
    assert r.exit_code == 1 and "RBAC" in r.stderr


# -- timeline --------------------------------------------------------------------------------------------------
def test_timeline_durations_from_fixture(invoke, fixtures: Path):
    r = invoke("timeline", "-m", "qwen3-4b", "-f", fixtures / "scaled-up.yaml", "--json")
    assert r.exit_code == 0
    tl = json.loads(r.stdout)
    assert tl["pod"] == "qwen3-4b-7c9f8d6b5-x2k4p"  # the first pod of the scale-up, not the 1->N one
    assert tl["nodeclaim"] == "gpu-on-demand-7xk2p" and tl["warm_node"] is False and tl["complete"] is True
    assert [(s["name"], s["offset_s"], s["delta_s"]) for s in tl["steps"]] == [
        ("activation", 0.0, None), ("pod created", 2.0, 2.0), ("nodeclaim created", 4.0, 2.0),
        ("nodeclaim launched", 9.0, 5.0), ("node registered", 41.0, 32.0), ("node initialized", 72.0, 31.0),
        ("pod scheduled", 73.0, 1.0), ("container started", 140.0, 67.0), ("ready", 245.0, 105.0)]
    assert tl["total_s"] == 245.0
    assert {p["phase"]: p["seconds"] for p in tl["phases"]} == {
        "scale decision": 2.0, "node provisioning": 70.0, "scheduling": 1.0, "image pull + container start": 67.0,
        "model load (startup probe)": 105.0}


def test_timeline_table(invoke, fixtures: Path):
    r = invoke("timeline", "-m", "qwen3-4b", "-f", fixtures / "scaled-up.yaml")
    assert r.exit_code == 0
    assert "node registered" in r.stdout and "total: 4m05.0s (ready)" in r.stdout


def test_timeline_warm_node_skips_node_steps(fixtures: Path, tmp_path: Path):
    def edit(items):
        claim = next(o for o in items if o["kind"] == "NodeClaim")
        claim["metadata"]["creationTimestamp"] = "2026-09-01T09:00:00Z"

    doc = yaml.safe_load((fixtures / "scaled-up.yaml").read_text())
    edit(doc["items"])
    path = tmp_path / "warm.yaml"
    path.write_text(yaml.safe_dump(doc))
    tl = build_timeline(FileClusterReader(path), TARGET)
    assert tl["warm_node"] is True
    chained = [s["name"] for s in tl["steps"] if s["offset_s"] is not None]
    assert chained == ["activation", "pod created", "pod scheduled", "container started", "ready"]
    assert tl["total_s"] == 245.0


def test_timeline_stuck_and_empty(invoke, fixtures: Path):
    r = invoke("timeline", "-m", "qwen3-4b", "-f", fixtures / "pending-no-capacity.yaml", "--json")
    assert r.exit_code == 1
    tl = json.loads(r.stdout)
    assert tl["complete"] is False and tl["nodeclaim"] == "gpu-on-demand-b7m2x"
    assert {s["name"]: s["at"] for s in tl["steps"]}["nodeclaim launched"] is None
    r = invoke("timeline", "-m", "qwen3-4b", "-f", fixtures / "idle.yaml")
    assert r.exit_code == 1 and "no pod matches" in r.stderr


def test_deep_copy_safety(fixtures: Path):
    # The reader hands out the objects it loaded; verify must not mutate them (a second run sees the same input).
    reader = FileClusterReader(fixtures / "scaled-up.yaml")
    before = copy.deepcopy(reader.objects)
    verify(reader, TARGET)
    build_timeline(reader, TARGET)
    assert reader.objects == before


def test_verify_never_prints_since_none(invoke, fixtures: Path, tmp_path: Path):
    # KEDA's conditions carry no lastTransitionTime (keda.sh_scaledobjects CRD, v2.20.2).
    for name, idle in (("scaled-up.yaml", False), ("idle.yaml", True)):
        doc = yaml.safe_load((fixtures / name).read_text())
        for o in doc["items"]:
            if o["kind"] == "ScaledObject":
                for c in o["status"]["conditions"]:
                    c.pop("lastTransitionTime", None)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc))
        r = invoke("verify", "-m", "qwen3-4b", "-f", path, *(["--expect-idle"] if idle else []))
        assert "None" not in r.stdout and "since ?" not in r.stdout, r.stdout
