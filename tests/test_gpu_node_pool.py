"""GpuNodePool: rendered EC2NodeClass/NodePool against the upstream Karpenter v1.14.1 CRD schemas, GPU taint and
labels, limits and disruption, dependency edges, and the config errors for bad pools."""

import asyncio

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from upstream import needs_upstream, validate_cr

from components._common import GPU_PRESENT_LABEL, GPU_TAINT_KEY
from components.gpu_node_pool import (GPU_TAINT_VALUE, LOCAL_NVME_LABEL, POOL_LABEL, AmiFamily, GpuNodePool,
                                      block_device_mappings, delete_timeout)
from stacks.config import ConfigError, validate

BASE = {"environment": "dev", "region": "us-west-2"}
PROD_POOLS = [
    {"name": "gpu-spot", "capacityTypes": ["spot"], "weight": 100, "instanceFamilies": ["g5", "g6", "g6e"],
     "gpusPerNode": [1, 4], "gpuLimit": 16, "cpuLimit": 256},
    {"name": "gpu-on-demand", "capacityTypes": ["on-demand"], "weight": 10, "gpuLimit": 8, "cpuLimit": 128,
     "consolidateAfter": "10m", "disruptionBudgetNodes": "1"},
]


@pytest.fixture(autouse=True)
def _fresh_event_loop():
    """Pulumi's mocks need a current event loop; a test elsewhere that ran asyncio.run() leaves none behind."""
    asyncio.set_event_loop(asyncio.new_event_loop())


def _setup(gpu_raw: dict, **extra):
    """A GpuNodePool from validated config, with a real (mocked) cluster, provider and Karpenter release; `extra`
    adds component args."""
    cfg = validate({**BASE, "gpu": gpu_raw}).gpu
    provider = k8s.Provider("k8s", kubeconfig="{}")
    cluster = aws.eks.Cluster("cluster", role_arn="arn:aws:iam::123456789012:role/eks",
                              vpc_config={"subnet_ids": ["subnet-1", "subnet-2"]})
    karpenter = k8s.helm.v3.Release("karpenter", chart="oci://public.ecr.aws/karpenter/karpenter", version="1.14.1",
                                    namespace="kube-system", opts=pulumi.ResourceOptions(provider=provider))
    pools = [{"name": p.name, "instance_families": p.instance_families, "gpus_per_node": p.gpus_per_node,
              "capacity_types": [c.value for c in p.capacity_types], "gpu_limit": p.gpu_limit,
              "cpu_limit": p.cpu_limit, "weight": p.weight, "expire_after": p.expire_after,
              "consolidate_after": p.consolidate_after, "termination_grace_period": p.termination_grace_period,
              "disruption_budget_nodes": p.disruption_budget_nodes} for p in cfg.pools]
    comp = GpuNodePool("gpu", {
        "cluster_name": cluster.name,
        "cluster_security_group_id": cluster.vpc_config.cluster_security_group_id.apply(lambda v: v or "sg-0abc"),
        "node_role_name": "gpu-burst-node-role-1234567",
        "ami_family": AmiFamily(cfg.ami_family.value),
        "ami_version": cfg.ami_version,
        "volume_size_gib": cfg.volume_size_gib,
        "volume_throughput_mibps": cfg.volume_throughput_mibps,
        "pools": pools,
        "instance_store_raid0": cfg.instance_store_raid0(cfg.data_volume_snapshot_id),
        **extra,
    }, opts=pulumi.ResourceOptions(providers=[provider], depends_on=[karpenter]))
    return cfg, cluster, karpenter, comp


def _cr(mocks, name: str) -> dict:
    i = mocks.named(name).inputs
    return {"apiVersion": i["apiVersion"], "kind": i["kind"], "metadata": i["metadata"], "spec": i["spec"]}


def _wait(comp, *extra):
    return pulumi.Output.all(comp.node_class.urn, *[p.urn for p in comp.node_pools], *extra)


CONFIGS = {
    "dev-al2023": {},
    "dev-al2023-no-instance-store": {"instanceStore": "none"},
    "prod-al2023": {"amiVersion": "v20260714", "volumeSizeGib": 300, "pools": PROD_POOLS},
    "dev-bottlerocket": {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0"},
    "prod-bottlerocket": {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0", "pools": PROD_POOLS},
}


@needs_upstream
@pytest.mark.parametrize("label", sorted(CONFIGS))
@pulumi.runtime.test
def test_every_cr_validates_against_upstream_crd(mocks, label):
    cfg, _, _, comp = _setup(CONFIGS[label])

    def check(_):
        names = ["gpu-nodeclass"] + [f"gpu-{p.name}" for p in cfg.pools]
        for n in names:
            obj = _cr(mocks, n)
            assert validate_cr(obj) == [], (n, validate_cr(obj))
        assert len(mocks.of_type("kubernetes:karpenter.sh/v1:NodePool")) == len(cfg.pools)
        assert len(mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")) == 1

    return _wait(comp).apply(check)


@needs_upstream
def test_schema_check_is_not_vacuous():
    # The same validator rejects a v1beta1-style NodePool (consolidationPolicy WhenUnderutilized, kubelet in the pool).
    bad = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "x"},
           "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                           "name": "x"}, "requirements": [], "kubelet": {}}},
                    "disruption": {"consolidationPolicy": "WhenUnderutilized", "consolidateAfter": "5m"}}}
    errors = validate_cr(bad)
    assert any("kubelet" in e for e in errors) and any("WhenUnderutilized" in e for e in errors)


@pulumi.runtime.test
def test_nodeclass_al2023(mocks):
    _, cluster, _, comp = _setup({"volumeSizeGib": 250})

    def check(args):
        cluster_name = args[-1]
        spec = _cr(mocks, "gpu-nodeclass")["spec"]
        assert spec["role"] == "gpu-burst-node-role-1234567"
        assert spec["amiSelectorTerms"] == [{"alias": "al2023@v20260714"}]
        assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": cluster_name}}]
        assert cluster_name.startswith("cluster-")  # the provider-generated name, not a guess
        assert spec["securityGroupSelectorTerms"] == [{"id": "sg-0abc"}]
        assert spec["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {
            "volumeSize": "250Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True,
            "throughput": 600}}]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert spec["tags"]["gpu-burst.io/cluster"] == cluster_name
        req = mocks.monitor.requests["gpu-nodeclass"]
        # The discovery tag is a data dependency on the cluster, so it can never be a stale literal.
        assert any(u.startswith("urn:") and "aws:eks/cluster:Cluster::cluster" in u
                   for u in req.propertyDependencies["spec"].urns)

    return _wait(comp, cluster.name).apply(check)


NVME_REQUIREMENT = {"key": "karpenter.k8s.aws/instance-local-nvme", "operator": "Gt", "values": ["0"]}


@needs_upstream
@pytest.mark.parametrize("raw", [{"pools": PROD_POOLS}, {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0",
                                                          "pools": PROD_POOLS}], ids=["al2023", "bottlerocket"])
@pulumi.runtime.test
def test_instance_store_raid0_puts_the_runtime_on_nvme_and_requires_it(mocks, raw):
    from test_bottlerocket_gpu_nodes import cel_errors

    cfg, _, _, comp = _setup(raw)

    def check(_):
        objs = [_cr(mocks, "gpu-nodeclass")] + [_cr(mocks, f"gpu-{p.name}") for p in cfg.pools]
        for o in objs:  # strict schema and every CEL rule of both CRDs the objects reach
            assert validate_cr(o) == [] and cel_errors(o) == [], (o["metadata"]["name"], cel_errors(o))
        spec = objs[0]["spec"]
        # Karpenter generates the array setup from this field alone (AL2023 NodeConfig localStorage RAID0,
        # Bottlerocket bootstrap command 000-mount-instance-storage); userData only carries the SOCI settings.
        assert spec["instanceStorePolicy"] == "RAID0"
        assert "ephemeral-storage" not in spec.get("userData", "")
        # The EBS devices are unchanged: Bottlerocket still needs its data volume, AL2023 its root.
        assert spec["blockDeviceMappings"] == block_device_mappings(cfg.ami_family.value, 200, 600)
        for p in cfg.pools:
            reqs = _cr(mocks, f"gpu-{p.name}")["spec"]["template"]["spec"]["requirements"]
            assert [r for r in reqs if r["key"] == LOCAL_NVME_LABEL] == [NVME_REQUIREMENT]

    return _wait(comp).apply(check)


@pulumi.runtime.test
def test_instance_store_none_leaves_the_node_class_and_pools_as_before(mocks):
    cfg, _, _, comp = _setup({"instanceStore": "none", "pools": PROD_POOLS})

    def check(_):
        assert "instanceStorePolicy" not in _cr(mocks, "gpu-nodeclass")["spec"]
        for p in cfg.pools:
            reqs = _cr(mocks, f"gpu-{p.name}")["spec"]["template"]["spec"]["requirements"]
            assert LOCAL_NVME_LABEL not in {r["key"] for r in reqs}

    return _wait(comp).apply(check)


@pulumi.runtime.test
def test_component_refuses_raid0_over_a_restored_snapshot_before_any_resource(mocks):
    # The stack never asks for it; a component user (the MLC provider) gets the same rule.
    with pytest.raises(ValueError, match="instance_store_raid0: the NVMe array would hide the images restored on "
                                         "/dev/xvdb; allowed: false with data_volume_snapshot_id"):
        _setup({"amiFamily": "bottlerocket", "amiVersion": "v1.64.0", "fastImagePull": False,
                "dataVolumeSnapshotId": "snap-0123456789abcdef0"}, instance_store_raid0=True,
               data_volume_snapshot_id="snap-0123456789abcdef0", fast_image_pull=False)
    assert not mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")


def test_bottlerocket_disks():
    bdm = block_device_mappings("bottlerocket", 180, 300)
    assert [d["deviceName"] for d in bdm] == ["/dev/xvda", "/dev/xvdb"]
    assert bdm[0]["ebs"]["volumeSize"] == "4Gi"
    assert bdm[1]["ebs"] == {"volumeSize": "180Gi", "volumeType": "gp3", "encrypted": True,
                             "deleteOnTermination": True, "throughput": 300}
    # Karpenter sizes ephemeral-storage from the rootVolume device: on Bottlerocket that must be the data volume.
    assert [d.get("rootVolume", False) for d in bdm] == [False, True]
    assert block_device_mappings("al2023", 180, 300)[0]["ebs"]["volumeSize"] == "180Gi"


@pulumi.runtime.test
def test_nodepool_taint_labels_requirements_limits_disruption(mocks):
    _, _, _, comp = _setup({"pools": PROD_POOLS})

    def check(_):
        spot = _cr(mocks, "gpu-gpu-spot")
        od = _cr(mocks, "gpu-gpu-on-demand")
        assert spot["metadata"]["name"] == "gpu-spot" and od["metadata"]["name"] == "gpu-on-demand"
        s = spot["spec"]
        t = s["template"]
        assert t["metadata"]["labels"] == {GPU_PRESENT_LABEL: "true", POOL_LABEL: "gpu-spot",
                                           "gpu-burst.io/traffic-class": "gpu-spot",
                                           "node.kubernetes.io/exclude-from-external-load-balancers": "true"}
        assert t["spec"]["taints"] == [{"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}]
        assert t["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}
        reqs = {r["key"]: (r["operator"], r["values"]) for r in t["spec"]["requirements"]}
        assert reqs["karpenter.k8s.aws/instance-family"] == ("In", ["g5", "g6", "g6e"])
        assert reqs["karpenter.k8s.aws/instance-gpu-count"] == ("In", ["1", "4"])
        assert reqs["karpenter.sh/capacity-type"] == ("In", ["spot"])
        assert reqs["kubernetes.io/arch"] == ("In", ["amd64"])
        assert t["spec"]["expireAfter"] == "720h"
        assert s["limits"] == {"nvidia.com/gpu": "16", "cpu": "256"}
        assert s["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m",
                                   "budgets": [{"nodes": "10%"}]}
        assert s["weight"] > od["spec"]["weight"]  # spot is tried first, on-demand is the fallback
        o = od["spec"]
        assert dict((r["key"], r["values"]) for r in o["template"]["spec"]["requirements"])[
            "karpenter.sh/capacity-type"] == ["on-demand"]
        assert o["limits"] == {"nvidia.com/gpu": "8", "cpu": "128"}
        assert o["disruption"]["consolidateAfter"] == "10m" and o["disruption"]["budgets"] == [{"nodes": "1"}]

    return _wait(comp).apply(check)


@pulumi.runtime.test
def test_dependency_edges(mocks):
    _, _, karpenter, comp = _setup({"pools": PROD_POOLS})

    def check(args):
        karpenter_urn, nodeclass_urn = args[-2], args[-1]
        for name in ("gpu-nodeclass", "gpu-gpu-spot", "gpu-gpu-on-demand"):
            req = mocks.monitor.requests[name]
            # Explicit depends_on (not a data dependency): created after the CRDs exist, deleted before Karpenter.
            assert karpenter_urn in req.dependencies, name
            assert all(karpenter_urn not in d.urns for d in req.propertyDependencies.values()), name
            assert req.parent.endswith("gpu-burst:index:GpuNodePool::gpu"), name
            assert req.provider.split("::")[-2] == "k8s", name
        for name in ("gpu-gpu-spot", "gpu-gpu-on-demand"):
            assert nodeclass_urn in mocks.monitor.requests[name].dependencies
        assert nodeclass_urn not in mocks.monitor.requests["gpu-nodeclass"].dependencies

    return _wait(comp, karpenter.urn, comp.node_class.urn).apply(check)


@pulumi.runtime.test
def test_outputs(mocks):
    _, _, _, comp = _setup({"pools": PROD_POOLS})

    def check(args):
        assert args[-2:] == ["gpu", ["gpu-spot", "gpu-on-demand"]]

    return _wait(comp, comp.node_class_name, comp.node_pool_names).apply(check)


@pytest.mark.parametrize("grace_periods, pod_grace, expected", [
    (["1h"], 0, "70m"),                 # the default: the pool's 1h, then 10 minutes for the instance
    (["30m", "2h"], 150, "130m"),       # the longest pool
    (["30m"], 3630, "72m"),             # a 1h drain outlasts a 30m pool: 3630 s + a minute + 10 minutes
    (["1h30m", "45s"], 0, "100m"),
])
def test_delete_timeout_covers_the_slowest_drain(grace_periods, pod_grace, expected):
    assert delete_timeout(grace_periods, pod_grace) == expected


@pulumi.runtime.test
def test_node_pools_and_node_classes_wait_for_their_nodes_on_delete(mocks):
    pools = [{**p, "terminationGracePeriod": "30m"} for p in PROD_POOLS]
    _, _, _, comp = _setup({"pools": pools}, pod_termination_grace_seconds=3630)

    def check(_):
        for name in ("gpu-nodeclass", "gpu-gpu-spot", "gpu-gpu-on-demand"):
            assert mocks.monitor.requests[name].customTimeouts.delete == "72m", name

    return _wait(comp).apply(check)


def test_component_refuses_a_grace_period_it_cannot_read_before_any_resource(mocks):
    with pytest.raises(ValueError, match="GpuNodePool 'gpu': termination_grace_period '1d'; allowed: a plain duration"):
        GpuNodePool("gpu", {"cluster_name": "c", "cluster_security_group_id": "sg-1", "node_role_name": "r",
                            "ami_family": AmiFamily.AL2023, "ami_version": "v20260714",
                            "pools": [{"name": "p", "instance_families": ["g5"], "gpus_per_node": [1],
                                       "capacity_types": ["spot"], "gpu_limit": 1, "cpu_limit": 8,
                                       "termination_grace_period": "1d"}]})
    assert not mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")


# -- config errors --------------------------------------------------------------------------------------------------

def _errors(gpu_raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate({**BASE, "gpu": gpu_raw})
    return e.value.lines


def test_config_error_empty_families():
    assert _errors({"pools": [{"name": "a", "instanceFamilies": []}]}) == [
        "gpu-burst:gpu.pools[0].instanceFamilies: is empty; allowed: one or more of "
        "g4dn, g5, g6, g6e, gr6, p4d, p4de, p5, p5e, p5en, p6-b200"]


def test_config_error_unknown_family():
    assert _errors({"pools": [{"name": "a", "instanceFamilies": ["g6f"]}]}) == [
        "gpu-burst:gpu.pools[0].instanceFamilies: unknown GPU instance families ['g6f']; allowed: "
        "g4dn, g5, g6, g6e, gr6, p4d, p4de, p5, p5e, p5en, p6-b200"]


def test_config_error_zero_gpus():
    assert _errors({"pools": [{"name": "a", "gpusPerNode": [0]}]}) == [
        "gpu-burst:gpu.pools[0].gpusPerNode: [0] out of range; allowed: GPU counts from 1 to 8"]
    assert _errors({"pools": [{"name": "a", "gpusPerNode": []}]}) == [
        "gpu-burst:gpu.pools[0].gpusPerNode: is empty; allowed: one or more GPU counts per node, e.g. [1] or [1, 4]"]


def test_config_error_unknown_capacity_type():
    assert _errors({"pools": [{"name": "a", "capacityTypes": ["reserved"]}]}) == [
        "gpu-burst:gpu.pools[0].capacityTypes[0]: 'reserved' is not allowed; allowed: 'spot' or 'on-demand'"]


def test_config_error_al2():
    assert _errors({"amiFamily": "AL2"}) == [
        "gpu-burst:gpu.amiFamily: AL2 is not supported (EKS AL2 AMIs ended with Kubernetes 1.32); "
        "allowed: 'al2023' or 'bottlerocket'"]


def test_config_error_durations_and_limits_all_reported():
    lines = _errors({"pools": [
        {"name": "a", "consolidateAfter": "1.5m"},
        {"name": "b", "gpusPerNode": [8], "gpuLimit": 4, "cpuLimit": 192},
    ]})
    assert lines == [
        "gpu-burst:gpu.pools[0].consolidateAfter: '1.5m' is not a Karpenter duration; allowed: whole s/m/h units "
        "such as 30s, 5m, 720h, or Never",
        "gpu-burst:gpu.pools[1].gpuLimit: 4 is below one node of 8 GPUs (gpusPerNode [8]); allowed: at least 8",
    ]


def test_config_error_unpinned_ami():
    assert _errors({"amiVersion": "latest"}) == [
        "gpu-burst:gpu.amiVersion: 'latest' drifts every GPU node on each AMI release; allowed: a pinned version, "
        "or latest with allowLatestAmi: true"]
    assert validate({**BASE, "gpu": {"amiVersion": "latest", "allowLatestAmi": True}}).gpu.ami_alias == "al2023@latest"


def test_a_pool_without_traffic_class_labels_its_nodes_with_what_its_models_select(mocks):
    # The model's nodeSelector and the NodePool's node label must be one value; with no trafficClass both fall back
    # to the pool name through GpuPoolConfig.traffic_class_label.
    import yaml
    from stack_helpers import ROOT, evaluate_stack
    from test_workload_support import as_object

    gpu = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["gpu-burst:gpu"]
    gpu["pools"] = [{k: v for k, v in p.items() if k != "trafficClass"} for p in gpu["pools"]]
    evaluate_stack("dev", {"gpu": gpu})
    (pool,) = [as_object(r) for r in mocks.of_type("kubernetes:karpenter.sh/v1:NodePool")]
    label = pool["spec"]["template"]["metadata"]["labels"]["gpu-burst.io/traffic-class"]
    assert label == gpu["pools"][0]["name"]
    models = [as_object(r) for r in mocks.of_type("kubernetes:apps/v1:Deployment")
              if "nvidia.com/gpu.present" in (as_object(r)["spec"]["template"]["spec"].get("nodeSelector") or {})]
    assert models and all(m["spec"]["template"]["spec"]["nodeSelector"]["gpu-burst.io/traffic-class"] == label
                          for m in models)
