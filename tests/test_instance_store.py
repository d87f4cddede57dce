"""`gpu.instanceStore`: the NVMe sizes the model cache is checked against (hand-computed from Karpenter v1.14.1's
arithmetic), and which nodes get `instanceStorePolicy: RAID0` when `dataVolumeSnapshotId: auto` decides at deploy."""

from test_image_snapshot import VLLM, _deploy, _snapshot

from stacks.config import image_snapshot_tags
from stacks.config.base import GIB
from stacks.config.gpu import GPU_INSTANCE_SIZES, KNOWN_GPU_FAMILIES
from stacks.config.instance_store import (LOCAL_NVME_GB, nvme_allocatable_bytes, smallest_local_nvme,
                                          version_at_least)


def test_every_supported_gpu_instance_has_a_known_instance_store():
    # The NodePools require `instance-local-nvme Gt 0` with RAID0: a size without one could never launch.
    for fam in KNOWN_GPU_FAMILIES:
        assert set(GPU_INSTANCE_SIZES[fam]) == set(LOCAL_NVME_GB[fam]), fam
        assert all(gb > 0 for gb in LOCAL_NVME_GB[fam].values())


def test_allocatable_is_karpenters_capacity_less_reserve_and_eviction():
    # 250G = 250,000,000,000 B; kube-reserved 1Gi = 1,073,741,824 B; eviction ceil(10%) = 25,000,000,000 B.
    assert nvme_allocatable_bytes(250) == 223_926_258_176
    assert nvme_allocatable_bytes(250) // GIB == 208
    # 3,800 GB (g5.12xlarge): 3.8e12 - 1Gi - 3.8e11.
    assert nvme_allocatable_bytes(3800) == 3_418_926_258_176


def test_smallest_instance_store_follows_gpu_counts_and_families():
    assert smallest_local_nvme(["g5", "g6"], [1], GPU_INSTANCE_SIZES) == ("g5.xlarge", 250)
    # 4-GPU sizes only: g6.12xlarge's 4 x 940 GB (3,760) is below g5.12xlarge's 3,800.
    assert smallest_local_nvme(["g5", "g6"], [4], GPU_INSTANCE_SIZES) == ("g6.12xlarge", 3760)
    assert smallest_local_nvme(["g4dn"], [1, 4], GPU_INSTANCE_SIZES) == ("g4dn.xlarge", 125)
    assert smallest_local_nvme(["p5"], [8], GPU_INSTANCE_SIZES) == ("p5.48xlarge", 30400)
    assert smallest_local_nvme(["g5"], [2], GPU_INSTANCE_SIZES) is None  # no g5 has 2 GPUs


def test_bottlerocket_version_order_is_numeric():
    assert version_at_least("v1.64.0", (1, 46, 0)) and version_at_least("v1.46.0", (1, 46, 0))
    assert not version_at_least("v1.45.9", (1, 46, 0)) and not version_at_least("v1.9.0", (1, 22, 0))
    assert version_at_least("latest", (1, 46, 0))


# -- dataVolumeSnapshotId: auto, decided at deploy -------------------------------------------------------------------

def test_auto_that_restores_a_snapshot_keeps_the_runtime_on_the_restored_volume(mocks):
    tags = image_snapshot_tags([VLLM], "1.64.0", "1.35")
    spec, _ = _deploy(mocks, [_snapshot("snap-0ddddddddddddddd1", tags, "2026-11-01T10:00:00Z")])
    assert "instanceStorePolicy" not in spec
    pool = mocks.named("gpu-gpu-on-demand").inputs["spec"]["template"]["spec"]["requirements"]
    assert "karpenter.k8s.aws/instance-local-nvme" not in {r["key"] for r in pool}


def test_auto_without_a_snapshot_pulls_onto_the_instance_store(mocks):
    spec, _ = _deploy(mocks, [])
    assert spec["instanceStorePolicy"] == "RAID0"
    pool = mocks.named("gpu-gpu-on-demand").inputs["spec"]["template"]["spec"]["requirements"]
    assert {"key": "karpenter.k8s.aws/instance-local-nvme", "operator": "Gt", "values": ["0"]} in pool


def test_auto_with_instance_store_none_never_applies_raid0(mocks):
    spec, _ = _deploy(mocks, [], instanceStore="none")
    assert "instanceStorePolicy" not in spec
