"""Time-sliced GPU pools in whole stacks: a dev-shaped AL2023 stack and a prod-shaped Bottlerocket stack with one
time-sliced pool next to the whole-GPU pools. The device plugin config (AL2023) or the Bottlerocket settings per pool,
the NodePools (label, taint, limits) and NodeOverlays against the upstream Karpenter v1.14.1 CRDs, the resource name
and tolerations the model pods use, Karpenter's feature gate, and that stacks without time-slicing are unchanged."""

import functools
import tomllib

import pytest
import yaml
from stack_cache import evaluated
from upstream import chart_values, needs_upstream, unknown_value_keys, validate_cr

from components._common import (DEVICE_PLUGIN_CONFIG_LABEL, GPU_RESOURCE, GPU_TAINT_KEY, SHARED_GPU_RESOURCE,
                                TIME_SLICING_TAINT_KEY, TRAFFIC_CLASS_LABEL, time_slicing_config_name)
from components.gpu_node_pool import GPU_TAINT
from components.nvidia_device_plugin import NFD_WORKER_TOLERATIONS, WHOLE_GPUS_CONFIG
from test_bottlerocket_gpu_nodes import cel_errors

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
EC2NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
OVERLAY = "kubernetes:karpenter.sh/v1alpha1:NodeOverlay"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
REV = "989aa7980e4cf806f80c7fef2b1adb7bc71aa306"

SHARED_POOL = {"name": "gpu-shared", "trafficClass": "gpu-shared", "instanceFamilies": ["g5", "g6"],
               "gpusPerNode": [1, 4], "capacityTypes": ["on-demand"], "weight": 10, "gpuLimit": 4, "cpuLimit": 128,
               "timeSlicing": 4}
SHARED_MODEL = {"servedName": "qwen-shared", "hfModelId": "Qwen/Qwen2.5-0.5B-Instruct", "revision": REV,
                "pool": "gpu-shared", "sharedGpu": True, "gpuMemoryUtilization": 0.2, "maxReplicas": 4, "cpu": "3",
                "memory": "12Gi", "cacheSize": "20Gi"}


def _stack_file(stack: str) -> dict:
    return yaml.safe_load((__import__("stack_helpers").ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


@functools.cache
def _stack(variant: str):
    """dev (AL2023) or prod (Bottlerocket, SOCI, no snapshot) with the shared pool and model added; `plain-*`: the
    stack files as they are."""
    stack = "dev" if variant.endswith("dev") else "prod"
    cfg = _stack_file(stack)
    gpu = dict(cfg["gpu-burst:gpu"])
    if stack == "prod":
        gpu = {k: v for k, v in gpu.items() if k not in ("dataVolumeSnapshotId", "volumeInitializationRateMibps")}
    overrides = {"gpu": gpu}
    if not variant.startswith("plain"):
        overrides = {"gpu": {**gpu, "pools": [*gpu["pools"], SHARED_POOL]},
                     "models": [*cfg["gpu-burst:models"], SHARED_MODEL]}
    return evaluated(stack, overrides=overrides, secrets={"hfToken": "hf_test_token"})[0]


def _cr(r) -> dict:
    i = r.inputs
    return {"apiVersion": i["apiVersion"], "kind": i["kind"], "metadata": i["metadata"], "spec": i["spec"]}


def _pools(mocks) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: _cr(r) for r in mocks.of_type(NODEPOOL)}


def _deployment(mocks, served: str) -> dict:
    (d,) = [d for d in mocks.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"] == served]
    return d.inputs["spec"]["template"]["spec"]


SLICED = ["sliced-dev", "sliced-prod"]


# -- NodePools ------------------------------------------------------------------------------------------------------
@needs_upstream
@pytest.mark.parametrize("variant", SLICED)
def test_node_pools_validate_and_only_the_shared_one_slices(variant):
    mocks = _stack(variant)
    pools = _pools(mocks)
    for name, obj in pools.items():
        assert validate_cr(obj) == [], (name, validate_cr(obj))
        assert cel_errors(obj) == [], (name, cel_errors(obj))  # the label-domain rules included
    shared = pools["gpu-shared"]["spec"]
    tmpl = shared["template"]
    assert tmpl["spec"]["taints"] == [GPU_TAINT, {"key": TIME_SLICING_TAINT_KEY, "value": "4", "effect": "NoSchedule"}]
    assert tmpl["metadata"]["labels"][TRAFFIC_CLASS_LABEL] == "gpu-shared"
    # gpuLimit 4 physical GPUs: in flight Karpenter counts the instance's nvidia.com/gpu, once the plugin registered
    # the node's slices.
    assert shared["limits"] == {GPU_RESOURCE: "4", "cpu": "128", SHARED_GPU_RESOURCE: "16"}
    for name, obj in pools.items():
        if name != "gpu-shared":
            assert obj["spec"]["template"]["spec"]["taints"] == [GPU_TAINT]
            assert SHARED_GPU_RESOURCE not in obj["spec"]["limits"]
            assert DEVICE_PLUGIN_CONFIG_LABEL not in obj["spec"]["template"]["metadata"]["labels"]


# NodeOverlay (karpenter.sh/v1alpha1), kubernetes-sigs/karpenter@v1.14.1 pkg/apis/v1alpha1/nodeoverlay.go and
# aws/karpenter-provider-aws@v1.14.1 pkg/apis/crds/karpenter.sh_nodeoverlays.yaml (not among the reference files
# tests/upstream.py reads): these are the schema's fields and rules the rendered objects reach.
OVERLAY_SPEC_KEYS = {"requirements", "priceAdjustment", "price", "capacity", "weight"}
OVERLAY_OPERATORS = {"Gte", "Lte", "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"}
OVERLAY_KARPENTER_KEYS = {"karpenter.sh/capacity-type", "karpenter.sh/nodepool"}
"""The only karpenter.sh label keys a requirement may use; karpenter.k8s.aws/instance-gpu-count is among the AWS
provider's well-known labels (rule `label domain "karpenter.k8s.aws" is restricted`)."""
QUANTITY = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"


def _overlay_errors(obj: dict) -> list[str]:
    import re

    spec, errors = obj["spec"], []
    errors += [f"unknown spec key {k}" for k in set(spec) - OVERLAY_SPEC_KEYS]
    if not spec.get("requirements"):
        errors.append("requirements is required")
    for r in spec.get("requirements", []):
        if r["operator"] not in OVERLAY_OPERATORS or (r["operator"] in ("In", "NotIn") and not r.get("values")):
            errors.append(f"bad operator/values {r}")
        domain = r["key"].split("/")[0]
        if domain.endswith("karpenter.sh") and r["key"] not in OVERLAY_KARPENTER_KEYS:
            errors.append(f"restricted key {r['key']}")
    for name, q in (spec.get("capacity") or {}).items():
        if name in ("cpu", "memory", "ephemeral-storage", "pods") or not re.match(QUANTITY, str(q)):
            errors.append(f"capacity {name}: {q}")
    if "price" in spec and "priceAdjustment" in spec:
        errors.append("price and priceAdjustment")
    return errors


def test_overlay_check_is_not_vacuous():
    bad = {"spec": {"requirements": [{"key": "karpenter.sh/initialized", "operator": "In", "values": []}],
                    "capacity": {"cpu": "4", "nvidia.com/gpu.shared": "four"}, "kubelet": {}}}
    assert len(_overlay_errors(bad)) == 5


@pytest.mark.parametrize("variant", SLICED)
def test_node_overlays_give_karpenter_the_slices_of_each_instance_size(variant):
    mocks = _stack(variant)
    overlays = {r.inputs["metadata"]["name"]: _cr(r) for r in mocks.of_type(OVERLAY)}
    # One per GPU count of the shared pool: without it no instance type offers nvidia.com/gpu.shared and Karpenter
    # never launches a node for a model on slices.
    assert set(overlays) == {"gpu-shared-slices-1gpu", "gpu-shared-slices-4gpu"}
    for name, o in overlays.items():
        gpus = 1 if name.endswith("-1gpu") else 4
        assert _overlay_errors(o) == [], (name, _overlay_errors(o))
        assert o["spec"]["requirements"] == [
            {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["gpu-shared"]},
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": [str(gpus)]}]
        assert o["spec"]["capacity"] == {SHARED_GPU_RESOURCE: str(gpus * 4)}
    # The NodePool waits for its overlays and goes first on delete.
    deps = set(mocks.monitor.requests["gpu-gpu-shared"].dependencies)
    assert all(any(u.endswith(f"::gpu-gpu-shared-overlay-{g}gpu") for u in deps) for g in (1, 4)), deps
    # Each overlay waits for the CRDs of the Karpenter release and is deleted before it.
    for g in (1, 4):
        overlay_deps = mocks.monitor.requests[f"gpu-gpu-shared-overlay-{g}gpu"].dependencies
        assert any(u.endswith("::gpu-burst-release") for u in overlay_deps), overlay_deps


@needs_upstream
@pytest.mark.parametrize("variant", SLICED)
def test_karpenter_turns_on_node_overlays(variant):
    values = _stack(variant).named("gpu-burst-release").inputs["values"]
    assert values["settings"]["featureGates"] == {"nodeOverlay": True}
    assert "nodeOverlay" in chart_values("karpenter")["settings"]["featureGates"]
    assert unknown_value_keys("karpenter", values, open_paths=("nodeSelector",)) == []


# -- what the model pods ask for ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", SLICED)
def test_the_shared_model_requests_one_slice_and_the_others_whole_gpus(variant):
    mocks = _stack(variant)
    pod = _deployment(mocks, "qwen-shared")
    (c,) = pod["containers"]
    assert c["resources"]["requests"][SHARED_GPU_RESOURCE] == "1" == c["resources"]["limits"][SHARED_GPU_RESOURCE]
    assert GPU_RESOURCE not in c["resources"]["requests"] and GPU_RESOURCE not in c["resources"]["limits"]
    assert "--tensor-parallel-size=1" in c["args"] and "--gpu-memory-utilization=0.2" in c["args"]
    assert pod["tolerations"] == [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
                                  {"key": TIME_SLICING_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["nodeSelector"][TRAFFIC_CLASS_LABEL] == "gpu-shared"
    whole = [_deployment(mocks, m["servedName"]) for m in _stack_file(variant.split("-")[1])["gpu-burst:models"]]
    for spec in whole:
        (c,) = spec["containers"]
        assert SHARED_GPU_RESOURCE not in c["resources"]["requests"] and c["resources"]["requests"][GPU_RESOURCE] == "1"
        # A whole-GPU pod neither tolerates the shared pools' taint nor selects their class.
        assert all(t["key"] != TIME_SLICING_TAINT_KEY for t in spec["tolerations"])
        assert spec["nodeSelector"][TRAFFIC_CLASS_LABEL] != "gpu-shared"


# -- AL2023: the device plugin's config per node -----------------------------------------------------------------
@needs_upstream
def test_al2023_device_plugin_config_is_selected_by_the_shared_pools_label():
    mocks = _stack("sliced-dev")
    values = mocks.named("nvidia-device-plugin-release").inputs["values"]
    label = _pools(mocks)["gpu-shared"]["spec"]["template"]["metadata"]["labels"][DEVICE_PLUGIN_CONFIG_LABEL]
    assert label == time_slicing_config_name(4) == "time-slicing-4"
    # The chart builds a ConfigMap from config.map and its config-manager copies the entry the node's
    # nvidia.com/device-plugin.config label names (templates/daemonset-device-plugin.yml, NODE_LABEL); nodes without
    # the label get config.default. Only one of config.name / config.map may be set (templates/validation.yml).
    assert set(values["config"]) == {"map", "default"} and values["config"]["default"] == WHOLE_GPUS_CONFIG
    assert set(values["config"]["map"]) == {WHOLE_GPUS_CONFIG, label}
    sliced = yaml.safe_load(values["config"]["map"][label])
    whole = yaml.safe_load(values["config"]["map"][WHOLE_GPUS_CONFIG])
    # api/config/v1 (v0.20.0): Config{version, flags, sharing}; ReplicatedResources{renameByDefault,
    # failRequestsGreaterThanOne, resources[{name, replicas}]}, replicas >= 2. renameByDefault renames
    # nvidia.com/gpu to nvidia.com/gpu.shared (DefaultSharedResourceNameSuffix); a per-resource `rename` is ignored
    # by DisableResourceNamingInConfig in v0.20.0, so it is not used.
    assert sliced == {"version": "v1", "flags": {"migStrategy": "none"}, "sharing": {"timeSlicing": {
        "renameByDefault": True, "failRequestsGreaterThanOne": True,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    assert SHARED_GPU_RESOURCE == sliced["sharing"]["timeSlicing"]["resources"][0]["name"] + ".shared"
    assert whole == {"version": "v1", "flags": {"migStrategy": "none"}}
    # The plugin and the NFD worker run on the tainted shared nodes too (the DaemonSets would skip them).
    sharing = {"key": TIME_SLICING_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    assert sharing in values["tolerations"]
    upstream = chart_values("nvidia-device-plugin")
    assert NFD_WORKER_TOLERATIONS == upstream["nfd"]["worker"]["tolerations"]
    assert values["nfd"]["worker"]["tolerations"] == [*upstream["nfd"]["worker"]["tolerations"], sharing]
    assert unknown_value_keys("nvidia-device-plugin", values) == []


# -- Bottlerocket: a node class with the plugin's settings ---------------------------------------------------------
# bottlerocket-settings-sdk bottlerocket-settings-models modeled-types/src/kubernetes.rs: NvidiaDevicePluginSettings
# (kebab-case keys) and NvidiaTimeSlicingSettings {replicas: BoundedI32<2, i32::MAX>, rename-by-default,
# fail-requests-greater-than-one}; NvidiaDeviceSharingStrategy none | time-slicing. `#[model]` rejects other keys.
NVIDIA_SETTINGS = {"pass-device-specs", "device-id-strategy", "device-list-strategy", "device-sharing-strategy",
                   "time-slicing", "device-partitioning-strategy", "mig"}
TIME_SLICING_SETTINGS = {"replicas": int, "rename-by-default": bool, "fail-requests-greater-than-one": bool}


@needs_upstream
def test_bottlerocket_shared_pool_gets_a_node_class_with_time_slicing_settings():
    mocks = _stack("sliced-prod")
    classes = {r.inputs["metadata"]["name"]: _cr(r) for r in mocks.of_type(EC2NODECLASS)}
    assert set(classes) == {"gpu", "gpu-ts4"}
    for name, obj in classes.items():
        assert validate_cr(obj) == [] and cel_errors(obj) == [], (name, cel_errors(obj))
    pools = _pools(mocks)
    assert pools["gpu-shared"]["spec"]["template"]["spec"]["nodeClassRef"]["name"] == "gpu-ts4"
    assert {p["spec"]["template"]["spec"]["nodeClassRef"]["name"] for n, p in pools.items() if n != "gpu-shared"} \
        == {"gpu"}
    # No device plugin DaemonSet on Bottlerocket, so no per-node config label.
    assert DEVICE_PLUGIN_CONFIG_LABEL not in pools["gpu-shared"]["spec"]["template"]["metadata"]["labels"]
    shared, whole = (tomllib.loads(classes[n]["spec"]["userData"])["settings"] for n in ("gpu-ts4", "gpu"))
    nvidia = shared["kubelet-device-plugins"]["nvidia"]
    assert set(nvidia) <= NVIDIA_SETTINGS and nvidia["device-sharing-strategy"] == "time-slicing"
    ts = nvidia["time-slicing"]
    assert set(ts) == set(TIME_SLICING_SETTINGS) and all(type(ts[k]) is t for k, t in TIME_SLICING_SETTINGS.items())
    # bottlerocket-core-kit nvidia-k8s-device-plugin-conf renders resources [{name: nvidia.com/gpu, replicas}], renamed
    # by rename-by-default to nvidia.com/gpu.shared.
    assert ts == {"replicas": 4, "rename-by-default": True, "fail-requests-greater-than-one": True}
    # Everything else of the node class is the shared one's: same SOCI settings, disks, AMI.
    assert {k: v for k, v in shared.items() if k != "kubelet-device-plugins"} == whole
    assert "kubelet-device-plugins" not in whole
    same = lambda c: {k: v for k, v in c["spec"].items() if k not in ("userData", "tags")}  # noqa: E731
    assert same(classes["gpu"]) == same(classes["gpu-ts4"])
    assert classes["gpu-ts4"]["spec"]["tags"]["gpu-burst.io/node-class"] == "gpu-ts4"
    charts = [r.inputs["chart"] for r in mocks.of_type("kubernetes:helm.sh/v3:Release")]
    assert "nvidia-device-plugin" not in charts


# -- stacks without time-slicing keep what they had -----------------------------------------------------------------
@pytest.mark.parametrize("variant", ["plain-dev", "plain-prod"])
def test_stacks_without_time_slicing_render_as_before(variant):
    mocks = _stack(variant)
    assert mocks.of_type(OVERLAY) == []
    assert len(mocks.of_type(EC2NODECLASS)) == 1
    assert "featureGates" not in mocks.named("gpu-burst-release").inputs["values"]["settings"]
    for pool in _pools(mocks).values():
        assert pool["spec"]["template"]["spec"]["taints"] == [GPU_TAINT]
        assert set(pool["spec"]["limits"]) == {GPU_RESOURCE, "cpu"}
    for d in mocks.of_type(DEPLOYMENT):
        for c in d.inputs["spec"]["template"]["spec"]["containers"]:
            assert SHARED_GPU_RESOURCE not in (c.get("resources") or {}).get("requests", {})
    if variant == "plain-dev":
        values = mocks.named("nvidia-device-plugin-release").inputs["values"]
        assert "config" not in values and "nfd" not in values
        assert values["tolerations"] == [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]


# -- the components on their own -----------------------------------------------------------------------------------
def test_node_pool_refuses_slices_it_cannot_render():
    import pulumi

    from components.gpu_node_pool import AmiFamily, GpuNodePool

    pool = {"name": "p", "gpus_per_node": [1], "time_slicing": 4}
    assert GpuNodePool._sliced_pools("gpu", {"pools": [pool], "ami_family": AmiFamily.AL2023}) == {"p": 4}
    for bad in (1, 9, "4"):
        with pytest.raises(ValueError, match="allowed: 2 to 8"):
            GpuNodePool._sliced_pools("gpu", {"pools": [{**pool, "time_slicing": bad}], "ami_family": AmiFamily.AL2023})
    # The node classes and overlays depend on them, so they must be known before anything is declared.
    with pytest.raises(ValueError, match="plain ami_family and gpus_per_node"):
        GpuNodePool._sliced_pools("gpu", {"pools": [{**pool, "gpus_per_node": pulumi.Output.from_input([1])}],
                                          "ami_family": AmiFamily.AL2023})


@pytest.mark.parametrize("gpus", [2, 4])
def test_model_service_refuses_a_multi_gpu_slice(gpus):
    from components.model_service import ModelService

    with pytest.raises(ValueError, match="shared_gpu with gpus"):
        ModelService("m", {"shared_gpu": True, "gpus": gpus, "min_replicas": 0, "max_replicas": 1,
                           "served_name": "m", "namespace": "inference"})
