"""GPU nodes' local NVMe instance store: whether containerd and the kubelet keep their data there (Karpenter's
EC2NodeClass `instanceStorePolicy: RAID0`), and the instance-store sizes that bound what a model cache may ask for."""

import math
from enum import Enum
from typing import Iterable, Optional

from .base import GIB


class InstanceStore(str, Enum):
    """`gpu.instanceStore`: where containerd, SOCI and the kubelet keep images, pod volumes and logs."""

    RAID0 = "raid0"
    """Karpenter's `instanceStorePolicy: RAID0`: the instance's NVMe disks striped into one array that holds
    containerd, SOCI's store, the kubelet and pod logs (the layout AWS's SOCI parallel-pull figures were measured
    with). Node ephemeral-storage is then the instance-store size."""
    NONE = "none"
    """Everything stays on the EBS volume (`gpu.volumeSizeGib`); the NVMe disks are left unused."""


KARPENTER_INSTANCE_TYPES = "aws/karpenter-provider-aws@v1.14.1 website/content/en/docs/reference/instance-types.md"
"""Karpenter's generated instance-type reference (labels from EC2 DescribeInstanceTypes): `instance-local-nvme` is
InstanceStorageInfo.TotalSizeInGB (decimal GB, pkg/providers/instancetype/types.go)."""

LOCAL_NVME_GB: dict[str, dict[str, int]] = {
    "g4dn": {"xlarge": 125, "2xlarge": 225, "4xlarge": 225, "8xlarge": 900, "12xlarge": 900, "16xlarge": 900,
             "metal": 1800},
    "g5": {"xlarge": 250, "2xlarge": 450, "4xlarge": 600, "8xlarge": 900, "12xlarge": 3800, "16xlarge": 1900,
           "24xlarge": 3800, "48xlarge": 7600},
    "g6": {"xlarge": 250, "2xlarge": 450, "4xlarge": 600, "8xlarge": 900, "12xlarge": 3760, "16xlarge": 1880,
           "24xlarge": 3760, "48xlarge": 7520},
    "g6e": {"xlarge": 250, "2xlarge": 450, "4xlarge": 600, "8xlarge": 900, "12xlarge": 3800, "16xlarge": 1900,
            "24xlarge": 3800, "48xlarge": 7600},
    "gr6": {"4xlarge": 600, "8xlarge": 900},
    "p4d": {"24xlarge": 8000},
    "p4de": {"24xlarge": 8000},
    "p5": {"48xlarge": 30400},
    "p5e": {"48xlarge": 30400},
    "p5en": {"48xlarge": 30400},
    "p6-b200": {"48xlarge": 30400},
}
"""Total NVMe instance store per instance, in GB, as Karpenter labels it (`karpenter.k8s.aws/instance-local-nvme`,
KARPENTER_INSTANCE_TYPES). Every size of every supported GPU family has one; g5g (Graviton) has none and is not a
supported family."""

BOTTLEROCKET_DEFAULT_BIND = (1, 46, 0)
"""From this Bottlerocket release Karpenter runs `apiclient ephemeral-storage bind` without `--dirs`
(aws/karpenter-provider-aws@v1.14.1 pkg/providers/version/version.go SupportsDefaultBind, used by
pkg/providers/amifamily/bottlerocket.go), which binds every directory the installed packages allow-list, SOCI's
/var/lib/soci-snapshotter included (bottlerocket-core-kit packages/soci-snapshotter/ephemeral-storage.conf;
bottlerocket-core-kit PR #632). Older releases get a fixed `--dirs /var/lib/containerd /var/lib/kubelet
/var/log/pods`, which leaves SOCI's unpacked layers on the EBS data volume."""

BOTTLEROCKET_BOOTSTRAP_COMMANDS = (1, 22, 0)
"""Karpenter's Bottlerocket RAID0 userData is a `settings.bootstrap-commands` entry, which Bottlerocket has since
v1.22.0 (bottlerocket CHANGELOG v1.22.0 "Add support for bootstrap commands"; Karpenter upgrade guide for 1.1.0,
aws/karpenter-provider-aws PR #7044: "only valid on Bottlerocket v1.22.0+")."""


def nvme_allocatable_bytes(total_gb: int) -> int:
    """ephemeral-storage Karpenter offers pods on a RAID0 node with `total_gb` of instance store: capacity
    `<total_gb>G` (decimal; types.go ephemeralStorage), less kube-reserved 1Gi and the 10% nodefs eviction threshold
    (types.go kubeReservedResources, evictionThreshold)."""
    capacity = total_gb * 10**9
    return capacity - GIB - math.ceil(capacity / 100 * 10)


def smallest_local_nvme(families: Iterable[str], gpu_counts: Iterable[int],
                        sizes: dict[str, dict[str, tuple[int, int]]]) -> Optional[tuple[str, int]]:
    """(instance type, NVMe GB) of the instance with the least instance store among `families` with one of
    `gpu_counts` GPUs (`sizes`: family -> size -> (vCPUs, GPUs)); None when none of them has a known instance store."""
    counts = set(gpu_counts)
    found = [(LOCAL_NVME_GB[f][s], f"{f}.{s}") for f in families for s, (_, g) in sizes.get(f, {}).items()
             if g in counts and s in LOCAL_NVME_GB.get(f, {})]
    if not found:
        return None
    gb, name = min(found)
    return name, gb


def version_at_least(version: str, minimum: tuple[int, ...]) -> bool:
    """`v1.64.0` >= (1, 46, 0); `latest` is taken to be new enough (as Karpenter does)."""
    if version == "latest":
        return True
    return tuple(int(x) for x in version.lstrip("v").split(".")) >= minimum
