"""`verify` on the objects a real cluster returns (files, and the same objects over the token-checking fake API
server). Fixture shapes: see the header of each file in fixtures/ and test_cli_fixtures.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from burstctl.k8s import FileClusterReader, KubeClusterReader, parse_selector
from burstctl.output import BadInput
from burstctl.verify import CAUSE_CRASH, CAUSE_LAUNCH, CAUSE_NO_GPU_NODE, CAUSE_SO_NOT_READY, verify
from dumps import SELECTOR, TARGET, mutated


def _checks(result) -> dict[str, dict]:
    doc = json.loads(result.stdout)
    return {c["name"]: c for c in doc["checks"]}




def test_scaled_up_passes_every_check(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml", "--json")
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    assert doc["target"] == {"mode": "active", "namespace": "inference", "scaled_object": "qwen2-5-1-5b-instruct",
                             "hpa": "keda-hpa-qwen2-5-1-5b-instruct", "selector": SELECTOR, "pool": None,
                             "traffic_class": "gpu"}
    assert [c["name"] for c in doc["checks"]] == ["scaledobject ready", "scaledobject active", "hpa desired replicas",
                                                  "model pods", "nodeclaims", "gpu nodes"]
    assert all(c["status"] == "pass" for c in doc["checks"])
    assert doc["checks"][2]["data"] == {"desired": 2, "current": 2}
    assert set(doc["checks"][0]) == {"name", "status", "detail", "cause", "data"}


def test_active_detail_comes_from_the_activation_event_not_a_condition_time(invoke, fixtures: Path):
    # KEDA's conditions have no lastTransitionTime: "since None" was printed before.
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml")
    assert "None" not in r.stdout
    active = _checks(invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml", "--json"))[
        "scaledobject active"]
    assert "scaled from zero at 2026-09-01T10:00:00.412337+00:00 (ScaledObject event KEDAScaleTargetActivated)" \
        in active["detail"]


def test_active_without_events_still_says_no_none(invoke, fixtures: Path, tmp_path: Path):
    path = mutated(fixtures, tmp_path, lambda items: items.__setitem__(
        slice(None), [o for o in items if o["kind"] != "Event"]))
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", path)
    assert r.exit_code == 0 and "None" not in r.stdout and "since" not in r.stdout


def test_ready_replica_passes_whatever_old_pods_are_left(invoke, fixtures: Path):
    # scaled-up.yaml holds a pod the kubelet rejected (UnexpectedAdmissionError) next to the serving replicas.
    checks = _checks(invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml", "--json"))
    pods = checks["model pods"]
    assert pods["status"] == "pass"
    assert pods["data"]["serving"] == ["qwen2-5-1-5b-instruct-7c9f8d6b5-x2k4p", "qwen2-5-1-5b-instruct-7c9f8d6b5-m8q2w"]
    assert pods["data"]["ignored"] == ["qwen2-5-1-5b-instruct-7c9f8d6b5-f9w2c"]
    assert "UnexpectedAdmissionError" in pods["detail"]


def test_evicted_pod_from_yesterday_does_not_fail_verify(invoke, fixtures: Path, tmp_path: Path):
    def edit(items):
        old = copy.deepcopy(next(o for o in items if o["kind"] == "Pod" and o["metadata"]["name"].endswith("x2k4p")))
        old["metadata"]["name"] = "qwen2-5-1-5b-instruct-6d8f7b9c4-h7tq2"
        old["metadata"]["creationTimestamp"] = "2026-08-31T16:20:11Z"
        old["status"].update(phase="Failed", reason="Evicted", message="The node was low on resource: "
                             "ephemeral-storage. Threshold quantity: 10120387266, available: 9612044Ki.")
        items.insert(2, old)

    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", mutated(fixtures, tmp_path, edit), "--json")
    assert r.exit_code == 0 and "Evicted" in _checks(r)["model pods"]["detail"]


def test_scaled_up_is_not_idle(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml", "--expect-idle", "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    assert checks["scaledobject inactive"]["status"] == "fail"
    assert checks["scaledobject inactive"]["detail"] == "still Active (last active at 2026-09-01T10:09:55Z)"
    assert checks["replicas at zero"]["detail"] == "2 pod(s) left, HPA current replicas 2"
    assert checks["gpu nodes gone"]["status"] == "fail" and "ip-10-0-34-12" in checks["gpu nodes gone"]["detail"]
    assert "consolidateAfter" in checks["nodeclaims gone"]["cause"]


def test_an_open_prewarm_window_is_named_as_the_reason(invoke, fixtures: Path, tmp_path: Path):
    """KEDA 2.20 writes status.triggersActivity keyed by metric name; a cron trigger's is
    s<index>-cron-<zone>-<start>-<end> (cron_scaler.go GetMetricSpecForScaling, util.NormalizeString)."""
    def edit(items):
        so = next(o for o in items if o["kind"] == "ScaledObject")
        so["status"]["triggersActivity"] = {
            "s0-interceptor": {"isActive": False}, "s1-prometheus": {"isActive": False},
            "s2-cron-Europe-Berlin-507xx1-5-019xx1-5": {"isActive": True}}

    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", mutated(fixtures, tmp_path, edit, "scaled-up.yaml"),
               "--expect-idle", "--json")
    check = _checks(r)["scaledobject inactive"]
    assert check["detail"] == ("still Active (last active at 2026-09-01T10:09:55Z; active: "
                               "s2-cron-Europe-Berlin-507xx1-5-019xx1-5)")
    assert "pre-warm window is open" in check["cause"]


def test_idle_end_state_passes(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "idle.yaml", "--expect-idle", "--json")
    assert r.exit_code == 0
    checks = _checks(r)
    assert checks["scaledobject inactive"]["detail"] == "not Active; last active at 2026-09-01T10:09:55Z"
    assert "None" not in r.stdout


def test_keda_never_scaled_names_the_metric_query(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "idle.yaml", "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    active = checks["scaledobject active"]
    assert active["status"] == "fail"
    assert 'vllm:num_requests_waiting{model_name="qwen2-5-1-5b-instruct"}' in active["cause"]
    assert "ServiceMonitor" in active["cause"] and "interceptor route" in active["cause"]
    assert checks["hpa desired replicas"]["status"] == "fail"


def test_scaledobject_not_ready_is_said_once_with_health(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "so-not-ready.yaml", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    ready, *rest = doc["checks"]
    assert ready["status"] == "fail" and ready["cause"] == CAUSE_SO_NOT_READY.format(name="qwen2-5-1-5b-instruct", ns="inference")
    assert "connection refused" in ready["detail"]  # the latest KEDAScalerFailed event
    # No spec.fallback, so KEDA keeps no status.health: the event is the only word on the failing trigger.
    assert ready["data"]["health"] == {} and "failures in a row" not in ready["detail"]
    # Nothing downstream is blamed: no quota, no Prometheus query, no GPU node hints.
    assert [c["status"] for c in rest] == ["skip"] * 5
    assert all(not c["cause"] for c in rest)
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "so-not-ready.yaml")
    assert r.stdout.count("a trigger fails") == 1 and "preflight" not in r.stdout


def test_with_a_fallback_the_failing_trigger_is_named_from_health(invoke, fixtures: Path, tmp_path: Path):
    # KEDA tracks status.health only for a ScaledObject with a valid spec.fallback (keda@v2.20.2 fallback.go).
    def edit(items):
        so = items[0]
        so["spec"]["fallback"] = {"failureThreshold": 3, "replicas": 1}
        so["status"]["health"] = {"s0-http_qwen2-5-1-5b-instruct_concurrency": {"numberOfFailures": 0,
                                                                                "status": "Happy"},
                                  "s1-prometheus": {"numberOfFailures": 37, "status": "Failing"}}

    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", mutated(fixtures, tmp_path, edit, "so-not-ready.yaml"),
               "--json")
    ready = json.loads(r.stdout)["checks"][0]
    assert "trigger 'queue-depth' (prometheus), metric s1-prometheus: 37 failures in a row" in ready["detail"]
    assert ready["data"]["health"]["s1-prometheus"] == {"numberOfFailures": 37, "status": "Failing"}


def test_partial_trigger_error_warns_and_keeps_checking(invoke, fixtures: Path, tmp_path: Path):
    def edit(items):
        so = items[0]
        so["status"]["conditions"][0].update(status="Unknown", reason="PartialTriggerError",
                                             message="Some triggers defined in ScaledObject are not working correctly")

    checks = _checks(invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", mutated(fixtures, tmp_path, edit), "--json"))
    assert checks["scaledobject ready"]["status"] == "warn"
    assert checks["model pods"]["status"] == "pass"


def test_no_capacity_shows_the_deleted_nodeclaims_reason(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "pending-no-capacity.yaml", "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    assert checks["model pods"]["cause"] == CAUSE_NO_GPU_NODE
    assert "unschedulable" in checks["model pods"]["detail"]
    claims = checks["nodeclaims"]
    assert claims["cause"] == CAUSE_LAUNCH and "burstctl preflight" in claims["cause"]
    assert "gpu-on-demand-b7m2x InsufficientCapacityError (deleted by Karpenter)" in claims["detail"]
    assert "VcpuLimitExceeded" in claims["detail"] and "gpu-on-demand-w4j8r" in claims["detail"]
    assert checks["gpu nodes"]["status"] == "fail"
    assert [c for c, v in checks.items() if v["status"] == "pass"] == ["scaledobject ready", "scaledobject active",
                                                                       "hpa desired replicas"]


def test_launch_failed_shows_the_launched_reason(invoke, fixtures: Path):
    checks = _checks(invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "launch-failed.yaml", "--json"))
    claims = checks["nodeclaims"]
    assert claims["status"] == "fail" and claims["cause"] == CAUSE_LAUNCH
    assert "gpu-on-demand-z5r2k not Launched: Unauthorized User is not authorized" in claims["detail"]


def test_pod_never_ready_names_vram(invoke, fixtures: Path):
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "crashloop.yaml")
    assert r.exit_code == 1
    assert "CrashLoopBackOff" in r.stdout and "1 check(s) failed" in r.stdout
    checks, _ = verify(FileClusterReader(fixtures / "crashloop.yaml"), TARGET)
    assert {c.name: c for c in checks}["model pods"].cause == CAUSE_CRASH


def test_nodeclaim_not_initialized_and_node_without_gpus(invoke, fixtures: Path, tmp_path: Path):
    def edit(items):
        claim = next(o for o in items if o["kind"] == "NodeClaim")
        init = next(c for c in claim["status"]["conditions"] if c["type"] == "Initialized")
        init.update(status="False", reason="NotInitialized", message="expected resource \"nvidia.com/gpu\" didn't "
                    "register on the node")
        node = next(o for o in items if o["kind"] == "Node")
        node["status"]["allocatable"]["nvidia.com/gpu"] = "0"
        for p in items:
            if p["kind"] == "Pod":
                p["status"]["conditions"] = [c for c in p["status"]["conditions"] if c["type"] != "Ready"]

    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", mutated(fixtures, tmp_path, edit), "--json")
    assert r.exit_code == 1
    checks = _checks(r)
    assert "not Initialized" in checks["nodeclaims"]["detail"]
    assert "nvidia-device-plugin DaemonSet" in checks["nodeclaims"]["cause"]
    assert "nvidia-k8s-device-plugin" in checks["nodeclaims"]["cause"]
    assert "advertises no nvidia.com/gpu" in checks["gpu nodes"]["detail"]


def test_a_time_sliced_node_advertises_slices_instead_of_gpus(invoke, fixtures: Path, tmp_path: Path):
    def edit(items):
        node = next(o for o in items if o["kind"] == "Node")
        alloc = node["status"]["allocatable"]
        del alloc["nvidia.com/gpu"]
        alloc["nvidia.com/gpu.shared"] = "4"

    checks = _checks(invoke("verify", "-m", "qwen2-5-1-5b-instruct", "-f", mutated(fixtures, tmp_path, edit), "--json"))
    assert checks["gpu nodes"]["status"] == "pass" and "gpus=4" in checks["gpu nodes"]["detail"]


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


@pytest.mark.parametrize("text", [
    "items: 3\nkind: List\n",                                         # items not a list
    "kind: List\nitems:\n- kind: Pod\n  metadata: 3\n",               # metadata not a mapping
    "kind: List\nitems:\n- kind: Pod\n  metadata: {name: p, namespace: inference, labels: [a]}\n",
    "kind: ScaledObject\nmetadata: {name: qwen2-5-1-5b-instruct, namespace: inference}\nstatus: {conditions: 7}\n",
    "kind: List\nitems:\n- kind: Pod\n  metadata: {name: p, namespace: inference, labels: {app.kubernetes.io/name: "
    "vllm, app.kubernetes.io/instance: qwen2-5-1-5b-instruct}}\n  status: {phase: Running, conditions: [3]}\n",
    "[1, 2]\n",
    "\x00\x01binary",
])
def test_malformed_dumps_are_one_line_errors(invoke, tmp_path: Path, text: str):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    for cmd in ("verify", "timeline"):
        r = invoke(cmd, "-m", "qwen2-5-1-5b-instruct", "-f", bad)
        # invoke() does not catch exceptions: a crash fails the test with its traceback.
        assert r.exit_code in (1, 2), (cmd, r.stdout, r.stderr)
        assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) <= 3, r.stderr


# -- the live-cluster reader against the fake API server --------------------------------------------------------
def test_kube_reader_reads_the_same_objects(fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "scaled-up.yaml", auth="token",
                           logs={"qwen2-5-1-5b-instruct-7c9f8d6b5-x2k4p": (fixtures / "scaled-up.vllm.log").read_text()})
    reader = KubeClusterReader(kubeconfig=str(kubeconfig), context="other")
    so = reader.scaled_object("inference", "qwen2-5-1-5b-instruct")
    assert so["status"]["hpaName"] == "keda-hpa-qwen2-5-1-5b-instruct"
    assert reader.scaled_object("inference", "absent") is None
    hpa = reader.hpa("inference", "keda-hpa-qwen2-5-1-5b-instruct")
    assert hpa["status"]["desiredReplicas"] == 2  # camelCase dicts, like the files
    pods = reader.pods("inference", SELECTOR)
    assert len(pods) == 3 and pods[0]["status"]["conditions"]
    assert len(reader.nodes({"nvidia.com/gpu.present": "true"})) == 2
    assert [e["reason"] for e in reader.events("inference", "ScaledObject", "qwen2-5-1-5b-instruct")] == \
        ["KEDAScaleTargetActivated"]
    assert reader.pod_log("inference", "qwen2-5-1-5b-instruct-7c9f8d6b5-x2k4p", "vllm").startswith("2026-09-01T10:02:21.884120367Z")
    file_checks, _ = verify(FileClusterReader(fixtures / "scaled-up.yaml"), TARGET)
    live_checks, _ = verify(reader, TARGET)
    assert [(c.name, c.status, c.detail) for c in live_checks] == [(c.name, c.status, c.detail) for c in file_checks]
    from burstctl.timeline import build_timeline

    live = build_timeline(reader, TARGET)
    offline = build_timeline(FileClusterReader(fixtures / "scaled-up.yaml",
                                               logs={"*": (fixtures / "scaled-up.vllm.log").read_text()}), TARGET)
    assert live == offline and live["engine"]["engine_init_s"] == 40.9


def test_verify_cli_against_fake_cluster(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "pending-no-capacity.yaml", auth="token")
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig, "--context", "fake", "--json")
    assert r.exit_code == 1 and "InsufficientCapacityError" in _checks(r)["nodeclaims"]["detail"]
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig, "--context", "missing")
    assert r.exit_code == 2 and "--context" in r.stderr


def test_deep_copy_safety(fixtures: Path):
    # The reader hands out the objects it loaded; verify must not mutate them (a second run sees the same input).
    from burstctl.timeline import build_timeline

    reader = FileClusterReader(fixtures / "scaled-up.yaml")
    before = copy.deepcopy(reader.objects)
    verify(reader, TARGET)
    build_timeline(reader, TARGET)
    assert reader.objects == before


def test_pods_of_a_traffic_class_are_served_by_every_pool_of_the_class(fixtures: Path, tmp_path: Path):
    """Model pods select the traffic class, not a NodePool: capacity from the spot pool or its on-demand fallback
    both count, and the model is never judged by one pool it is not pinned to."""
    def from_spot_pool(items):
        for o in items:
            labels = o["metadata"].get("labels") or {}
            if o["kind"] in ("NodeClaim", "Node") and labels.get("karpenter.sh/nodepool") == "gpu-on-demand":
                labels["karpenter.sh/nodepool"] = "gpu-spot"
                labels["karpenter.sh/capacity-type"] = "spot"
    reader = FileClusterReader(mutated(fixtures, tmp_path, from_spot_pool))
    checks, target = verify(reader, TARGET)
    assert target["traffic_class"] == "gpu" and target["pool"] is None
    assert all(c.status == "pass" for c in checks), [(c.name, c.detail) for c in checks]

    def outside_the_class(items):
        for o in items:
            labels = o["metadata"].get("labels") or {}
            if o["kind"] in ("NodeClaim", "Node"):
                labels.pop("gpu-burst.io/traffic-class", None)
    checks, _ = verify(FileClusterReader(mutated(fixtures, tmp_path, outside_the_class)), TARGET)
    by_name = {c.name: c for c in checks}
    assert by_name["nodeclaims"].status == "warn"
    assert by_name["gpu nodes"].status == "fail"
    assert "in the pools of traffic class gpu" in by_name["gpu nodes"].detail
