"""GPU node disks and image pull for cold starts: Bottlerocket's kubelet root on the data volume, gp3 IOPS for high
throughput, the pre-loaded data-volume snapshot and SOCI parallel pull, rendered and checked against the upstream
Karpenter v1.14.1 EC2NodeClass schema."""

import tomllib

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from test_gpu_node_pool import _cr
from upstream import needs_upstream, validate_cr

from components.gpu_node_pool import AmiFamily, GpuNodePool, block_device_mappings, fast_image_pull_user_data
from stacks.config import ConfigError, validate

BASE = {"environment": "dev", "region": "us-west-2"}
BR = {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0"}
SNAP = "snap-0123456789abcdef0"


def _node_class(mocks, gpu_raw: dict) -> dict:
    """Render the EC2NodeClass from validated config the way stacks/addons.py passes it."""
    g = validate({**BASE, "gpu": gpu_raw}).gpu
    provider = k8s.Provider("k8s", kubeconfig="{}")
    extra = {k: v for k, v in {"volume_iops": g.effective_volume_iops, "data_volume_snapshot_id":
                               g.data_volume_snapshot_id, "volume_initialization_rate_mibps":
                               g.volume_initialization_rate_mibps}.items() if v}
    comp = GpuNodePool("gpu", {
        "cluster_name": "gpu-burst-eks", "cluster_security_group_id": "sg-0abc", "node_role_name": "node-role",
        "ami_family": AmiFamily(g.ami_family.value), "ami_version": g.ami_version,
        "volume_size_gib": g.volume_size_gib, "volume_throughput_mibps": g.volume_throughput_mibps,
        "fast_image_pull": g.fast_image_pull, **extra,
        "pools": [{"name": "gpu", "instance_families": ["g5"], "gpus_per_node": [1], "capacity_types": ["on-demand"],
                   "gpu_limit": 2, "cpu_limit": 16}],
    }, opts=pulumi.ResourceOptions(provider=provider))
    box = {}

    @pulumi.runtime.test
    def run():
        return comp.node_class.urn.apply(lambda _: box.setdefault("cr", _cr(mocks, "gpu-nodeclass")))

    run()
    return box["cr"]


@needs_upstream
@pytest.mark.parametrize("gpu", [
    {},
    {"volumeThroughputMibps": 1000},
    BR,
    {**BR, "fastImagePull": False, "dataVolumeSnapshotId": SNAP, "volumeInitializationRateMibps": 300},
], ids=["al2023-soci", "al2023-1000mibps", "bottlerocket-soci", "bottlerocket-snapshot"])
def test_node_class_validates_against_the_crd(mocks, gpu):
    cr = _node_class(mocks, gpu)
    assert validate_cr(cr) == []


def test_bottlerocket_kubelet_root_is_the_data_volume(mocks):
    bdm = _node_class(mocks, BR)["spec"]["blockDeviceMappings"]
    roots = [d["deviceName"] for d in bdm if d.get("rootVolume")]
    # Karpenter sizes ephemeral-storage from the rootVolume device: the 200 GiB data volume, not the 4 GiB OS disk.
    assert roots == ["/dev/xvdb"]
    assert {d["deviceName"]: d["ebs"]["volumeSize"] for d in bdm} == {"/dev/xvda": "4Gi", "/dev/xvdb": "200Gi"}


@pytest.mark.parametrize("throughput,iops,expected", [(600, None, None), (750, None, None), (751, None, 3004),
                                                      (1000, None, 4000), (1000, 6000, 6000)])
def test_gp3_iops_follow_the_throughput(throughput, iops, expected):
    g = validate({**BASE, "gpu": {"volumeThroughputMibps": throughput,
                                  **({"volumeIops": iops} if iops else {})}}).gpu
    assert g.effective_volume_iops == expected
    ebs = block_device_mappings("al2023", 200, throughput, g.effective_volume_iops)[0]["ebs"]
    assert ebs.get("iops") == expected
    assert ebs.get("iops", 3000) * 0.25 >= throughput  # the gp3 ratio rule holds for whatever is sent


@pytest.mark.parametrize("gpu,key", [
    ({"volumeThroughputMibps": 1000, "volumeIops": 3500}, "gpu.volumeIops"),
    ({"volumeThroughputMibps": 1200}, "gpu.volumeThroughputMibps"),
    ({"dataVolumeSnapshotId": SNAP, "fastImagePull": False}, "gpu.dataVolumeSnapshotId"),
    ({**BR, "dataVolumeSnapshotId": SNAP}, "gpu.fastImagePull"),
    ({**BR, "volumeInitializationRateMibps": 200}, "gpu.volumeInitializationRateMibps"),
    ({**BR, "fastImagePull": False, "dataVolumeSnapshotId": "snap-xyz"}, "gpu.dataVolumeSnapshotId"),
])
def test_bad_disk_settings_are_one_line_errors_naming_the_key(gpu, key):
    with pytest.raises(ConfigError) as e:
        validate({**BASE, "gpu": gpu})
    assert any(line.startswith(f"gpu-burst:{key}:") for line in e.value.lines), e.value.lines


def test_snapshot_volume_takes_the_snapshot_and_its_encryption(mocks):
    bdm = _node_class(mocks, {**BR, "fastImagePull": False, "dataVolumeSnapshotId": SNAP,
                              "volumeInitializationRateMibps": 300})["spec"]["blockDeviceMappings"]
    data = next(d for d in bdm if d["deviceName"] == "/dev/xvdb")["ebs"]
    assert data["snapshotID"] == SNAP and data["volumeInitializationRate"] == 300
    assert "encrypted" not in data  # EC2 refuses an encryption value next to a snapshot id
    assert next(d for d in bdm if d["deviceName"] == "/dev/xvda")["ebs"]["encrypted"] is True


def test_soci_parallel_pull_user_data(mocks):
    al = yaml.safe_load(_node_class(mocks, {})["spec"]["userData"])
    assert al == {"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig",
                  "spec": {"featureGates": {"FastImagePull": True}}}
    br = tomllib.loads(fast_image_pull_user_data("bottlerocket", True))["settings"]
    assert br["container-runtime"]["snapshotter"] == "soci"
    soci = br["container-runtime-plugins"]["soci-snapshotter"]
    assert soci["pull-mode"] == "parallel-pull-unpack"
    assert soci["parallel-pull-unpack"] == {"max-concurrent-downloads-per-image": 20,
                                            "concurrent-download-chunk-size": "16mb",
                                            "max-concurrent-unpacks-per-image": 12, "discard-unpacked-layers": True}
    assert fast_image_pull_user_data("al2023", False) is None


def test_snapshot_nodes_get_no_soci_user_data(mocks):
    spec = _node_class(mocks, {**BR, "fastImagePull": False, "dataVolumeSnapshotId": SNAP})["spec"]
    assert "userData" not in spec or spec["userData"] is None


def _pool_args(family: str, **disk) -> dict:
    return {"cluster_name": "gpu-burst-eks", "cluster_security_group_id": "sg-0abc", "node_role_name": "node-role",
            "ami_family": AmiFamily(family), "ami_version": "v1.64.0" if family == "bottlerocket" else "v20260714",
            "pools": [{"name": "gpu", "instance_families": ["g5"], "gpus_per_node": [1],
                       "capacity_types": ["on-demand"], "gpu_limit": 2, "cpu_limit": 16}], **disk}


@pytest.mark.parametrize("family,disk,arg", [
    # On AL2023 /dev/xvda is the AMI's root device: a snapshotID there would replace the OS with an image cache.
    ("al2023", {"data_volume_snapshot_id": SNAP, "fast_image_pull": False}, "data_volume_snapshot_id"),
    # SOCI would not see images the snapshot holds in containerd's default snapshotter: every pull starts again.
    ("bottlerocket", {"data_volume_snapshot_id": SNAP}, "fast_image_pull"),
    ("bottlerocket", {"fast_image_pull": False, "volume_initialization_rate_mibps": 300},
     "volume_initialization_rate_mibps"),
], ids=["al2023-snapshot", "bottlerocket-snapshot-with-soci", "rate-without-snapshot"])
def test_component_refuses_a_snapshot_it_cannot_use_before_declaring_anything(mocks, family, disk, arg):
    # The stack config refuses these too; a component used on its own (MLC provider) must not render them.
    with pytest.raises(ValueError, match=f"GpuNodePool 'gpu': {arg}: .*allowed: "):
        GpuNodePool("gpu", _pool_args(family, **disk))
    assert mocks.created == []


def test_no_snapshot_on_the_al2023_root_device_even_through_outputs():
    with pytest.raises(ValueError, match="data_volume_snapshot_id: AL2023"):
        block_device_mappings("al2023", 200, 600, snapshot_id=SNAP)
