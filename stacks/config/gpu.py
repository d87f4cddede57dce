"""Config section for GPU capacity: the EC2NodeClass and the Karpenter NodePools (traffic classes)."""

import datetime
import hashlib
import json
import math
import re
from enum import Enum
from typing import Annotated, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from .base import Problems, Strict, pattern_type, repeats
from .instance_store import BOTTLEROCKET_BOOTSTRAP_COMMANDS, BOTTLEROCKET_DEFAULT_BIND, InstanceStore, version_at_least


class GpuAmiFamily(str, Enum):
    AL2023 = "al2023"
    BOTTLEROCKET = "bottlerocket"


class CapacityType(str, Enum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


# GPU families whose instances Karpenter reports with a non-zero nvidia GPU count. g6f and p5.4xlarge report 0
# (aws/karpenter-provider-aws#8368) and are refused so that GPU limits stay meaningful.
GP3_BASELINE_IOPS = 3000
GP3_MAX_IOPS = 16000
GP3_MAX_THROUGHPUT = 1000
GP3_MIBPS_PER_IOPS = 0.25
"""gp3 limits as the EC2 launch-template API documents them (LaunchTemplateEbsBlockDeviceRequest: throughput
125-1,000 MiB/s, IOPS 3,000-16,000) and the EBS user guide's ratio rule (at most 0.25 MiB/s of throughput per
provisioned IOPS; docs.aws.amazon.com/ebs/latest/userguide/general-purpose.html). CreateVolume/ModifyVolume now
document up to 2,000 MiB/s and 80,000 IOPS, but Karpenter creates these volumes through a launch template, whose
documented ceiling (and the Karpenter v1.14.1 EC2NodeClass field doc) is still 1,000 MiB/s."""


def gp3_iops(throughput_mibps: int, iops: Optional[int] = None) -> Optional[int]:
    """IOPS to provision for a gp3 volume: the configured value, or the least that carries the throughput
    (None = leave AWS's 3,000 baseline)."""
    need = math.ceil(throughput_mibps / GP3_MIBPS_PER_IOPS)
    if iops is not None:
        return iops
    return need if need > GP3_BASELINE_IOPS else None


KNOWN_GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200")
_K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# vCPUs and NVIDIA GPUs per size, from the AWS instance-type specifications: "Accelerated computing" in
# https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html and the GPU table of
# https://docs.aws.amazon.com/batch/latest/userguide/gpu-jobs.html. p5.4xlarge (1 H100) is left out: Karpenter
# reports its GPU count as 0 (aws/karpenter-provider-aws#8368), so a pool can never get it for a GPU pod.
GPU_INSTANCE_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "g4dn": {"xlarge": (4, 1), "2xlarge": (8, 1), "4xlarge": (16, 1), "8xlarge": (32, 1), "16xlarge": (64, 1),
             "12xlarge": (48, 4), "metal": (96, 8)},
    "g5": {"xlarge": (4, 1), "2xlarge": (8, 1), "4xlarge": (16, 1), "8xlarge": (32, 1), "16xlarge": (64, 1),
           "12xlarge": (48, 4), "24xlarge": (96, 4), "48xlarge": (192, 8)},
    "g5g": {"xlarge": (4, 1), "2xlarge": (8, 1), "4xlarge": (16, 1), "8xlarge": (32, 1), "16xlarge": (64, 2),
            "metal": (64, 2)},
    "g6": {"xlarge": (4, 1), "2xlarge": (8, 1), "4xlarge": (16, 1), "8xlarge": (32, 1), "16xlarge": (64, 1),
           "12xlarge": (48, 4), "24xlarge": (96, 4), "48xlarge": (192, 8)},
    "g6e": {"xlarge": (4, 1), "2xlarge": (8, 1), "4xlarge": (16, 1), "8xlarge": (32, 1), "16xlarge": (64, 1),
            "12xlarge": (48, 4), "24xlarge": (96, 4), "48xlarge": (192, 8)},
    "gr6": {"4xlarge": (16, 1), "8xlarge": (32, 1)},
    "p4d": {"24xlarge": (96, 8)},
    "p4de": {"24xlarge": (96, 8)},
    "p5": {"48xlarge": (192, 8)},
    "p5e": {"48xlarge": (192, 8)},
    "p5en": {"48xlarge": (192, 8)},
    "p6-b200": {"48xlarge": (192, 8)},
}


def gpu_counts(families: list[str]) -> list[int]:
    """GPU counts per node that at least one size of the families has."""
    return sorted({g for f in families for _, g in GPU_INSTANCE_SIZES.get(f, {}).values()})


def smallest_vcpus(families: list[str], gpus: int) -> int | None:
    """vCPUs of the smallest instance of the families with exactly `gpus` GPUs (None: there is none)."""
    sizes = [c for f in families for c, g in GPU_INSTANCE_SIZES.get(f, {}).values() if g == gpus]
    return min(sizes) if sizes else None


_KARPENTER_DURATION = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
_KARPENTER_GRACE = re.compile(r"^([0-9]+(s|m|h))+$")


def _karpenter_duration(v: str) -> str:
    # NodePool CRD (aws/karpenter-provider-aws@v1.14.1:pkg/apis/crds/karpenter.sh_nodepools.yaml) pattern for
    # expireAfter and consolidateAfter: narrower than Go's time.ParseDuration, no ms, no fractions.
    if not _KARPENTER_DURATION.match(v):
        raise ValueError(f"'{v}' is not a Karpenter duration; allowed: whole s/m/h units such as 30s, 5m, 720h, "
                         "or Never")
    return v


def _karpenter_grace(v: str) -> str:
    # spec.template.spec.terminationGracePeriod has no `Never` in the same CRD: `^([0-9]+(s|m|h))+$`
    if not _KARPENTER_GRACE.match(v):
        raise ValueError(f"'{v}' is not a termination grace period; allowed: whole s/m/h units such as 30m or 1h "
                         "(no Never: leave the default to bound draining)")
    return v


KarpenterDuration = Annotated[str, AfterValidator(_karpenter_duration)]
"""A duration Karpenter's NodePool CRD accepts (`^(([0-9]+(s|m|h))+|Never)$`)."""
KarpenterGracePeriod = Annotated[str, AfterValidator(_karpenter_grace)]
"""A NodePool terminationGracePeriod (`^([0-9]+(s|m|h))+$`)."""


class GpuPoolConfig(Strict):
    """One NodePool of a traffic class. A model names a pool; it may run on every pool of that pool's traffic class
    (node label `gpu-burst.io/traffic-class`), tried by weight: a spot pool and its on-demand fallback share a class."""

    name: Annotated[pattern_type(_K8S_NAME[1:-1], "a Kubernetes name", "gpu-spot"), Field(max_length=40)]
    """NodePool name: lowercase letters, digits and '-'."""
    traffic_class: Optional[Annotated[pattern_type(_K8S_NAME[1:-1], "a label value", "gpu"), Field(max_length=63)]] = None
    """Traffic class shared by the pools a model may use (highest weight first); default: the pool's own name."""
    instance_families: list[str] = ["g5", "g6"]
    """Explicit EC2 families (not "any NVIDIA": g6f would match and report 0 GPUs)."""
    gpus_per_node: list[int] = [1]
    """Allowed GPU counts per instance (`karpenter.k8s.aws/instance-gpu-count`)."""
    capacity_types: list[CapacityType] = [CapacityType.ON_DEMAND]
    weight: Annotated[int, Field(ge=1, le=100)] = 10
    """Higher is tried first: give a spot pool a higher weight than its on-demand fallback."""
    gpu_limit: Annotated[int, Field(ge=1, le=1000)] = 4
    """Guardrail: the most `nvidia.com/gpu` this pool may have running at once (bounds the bill)."""
    cpu_limit: Annotated[int, Field(ge=1, le=100000)] = 64
    expire_after: KarpenterDuration = "720h"
    consolidate_after: KarpenterDuration = "5m"
    """How long a GPU node must be empty before it is removed: short enough to stop paying, long enough to reuse
    a warm node for the next burst."""
    termination_grace_period: KarpenterGracePeriod = "1h"
    """Upper bound on draining a node being expired/disrupted, even if pods ask not to be disrupted."""
    disruption_budget_nodes: pattern_type(r"((100|[0-9]{1,2})%|[0-9]+)", "a node count or percentage", "10% or 1") = "10%"
    """How many nodes Karpenter may disrupt at once (a count, or a percentage of the pool)."""
    time_slicing: Optional[Annotated[int, Field(ge=2, le=8)]] = None
    """Slices per GPU (2-8): the NVIDIA device plugin time-slices each GPU of the pool and advertises the slices as
    `nvidia.com/gpu.shared`, so only models with `sharedGpu: true` run there, one slice per replica. Unset: whole
    GPUs. `gpuLimit` still counts physical GPUs."""

    @field_validator("instance_families")
    @classmethod
    def _families(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"is empty; allowed: one or more of {', '.join(KNOWN_GPU_FAMILIES)}")
        bad = [f for f in v if f not in KNOWN_GPU_FAMILIES]
        if bad:
            raise ValueError(f"unknown GPU instance families {bad}; allowed: {', '.join(KNOWN_GPU_FAMILIES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"{v} lists a family twice; allowed: each family once")
        return v

    @field_validator("gpus_per_node")
    @classmethod
    def _gpus(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("is empty; allowed: one or more GPU counts per node, e.g. [1] or [1, 4]")
        bad = [n for n in v if not 1 <= n <= 8]
        if bad:
            raise ValueError(f"{bad} out of range; allowed: GPU counts from 1 to 8")
        if len(set(v)) != len(v):
            raise ValueError(f"{v} lists a count twice; allowed: each count once")
        return v

    @field_validator("capacity_types")
    @classmethod
    def _capacity(cls, v: list[CapacityType]) -> list[CapacityType]:
        if not v:
            raise ValueError("is empty; allowed: 'spot', 'on-demand' or both")
        if len(set(v)) != len(v):
            raise ValueError(f"{[c.value for c in v]} lists a capacity type twice; allowed: each once")
        return v

    @model_validator(mode="after")
    def _counts_exist(self):
        have = gpu_counts(self.instance_families)
        missing = [n for n in self.gpus_per_node if n not in have]
        if missing:
            per_family = "; ".join(f"{f}: {gpu_counts([f])}" for f in self.instance_families)
            raise Problems(("gpusPerNode", f"no instance of {', '.join(self.instance_families)} has {missing} GPUs "
                                           f"({per_family}); allowed: {have}"))
        return self

    @model_validator(mode="after")
    def _gpu_limit(self):
        if self.gpu_limit < max(self.gpus_per_node):
            raise Problems(("gpuLimit", f"{self.gpu_limit} is below one node of {max(self.gpus_per_node)} GPUs "
                                        f"(gpusPerNode {self.gpus_per_node}); allowed: at least "
                                        f"{max(self.gpus_per_node)}"))
        return self

    @model_validator(mode="after")
    def _cpu_limit(self):
        # Karpenter counts a node's full vCPU capacity against spec.limits.cpu: a limit below the smallest
        # instance with a given GPU count means such a node can never launch.
        need = {n: smallest_vcpus(self.instance_families, n) for n in self.gpus_per_node}
        need = {n: c for n, c in need.items() if c is not None}
        if need and self.cpu_limit < max(need.values()):
            worst = max(need, key=lambda n: need[n])
            raise Problems(("cpuLimit", f"{self.cpu_limit} is below one node: the smallest {worst}-GPU instance of "
                                        f"{', '.join(self.instance_families)} has {need[worst]} vCPUs; allowed: at "
                                        f"least {need[worst]}"))
        return self

    @property
    def traffic_class_label(self) -> str:
        """Value of the pool's `gpu-burst.io/traffic-class` node label, and what the models of its class select."""
        return self.traffic_class or self.name

    @property
    def slices_per_gpu(self) -> int:
        """Pods one GPU of the pool can hold: `timeSlicing`, or 1 for whole GPUs."""
        return self.time_slicing or 1


AL2023_AMI_VERSION = "v20260714"
"""Pinned EKS AL2023 AMI release: AMI Release v20260714 of awslabs/amazon-eks-ami (tag v20260714, CHANGELOG.md
"AMI Release v20260714") lists amazon-eks-node-al2023-x86_64-nvidia-1.35-v20260714 (release 1.35.6-20260714) and
…-1.36-v20260714, i.e. NVIDIA AMIs for both supported Kubernetes versions. v20260724 is tagged but had no published
release notes (CHANGELOG) when pinned, so it is not used."""

AL2023_SSM_PARAMETER = ("/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/nvidia/"
                        "amazon-eks-node-al2023-{arch}-nvidia-{k8s}-{version}/image_id")
"""SSM parameter Karpenter reads to resolve the alias `al2023@<version>` for GPU (nvidia variant) nodes
(aws/karpenter-provider-aws pkg/providers/amifamily/al2023.go, resolvePath: `/aws/service/eks/optimized-ami/<k8s>/
amazon-linux-2023/<arch>/<variant>/amazon-eks-node-al2023-<arch>-<variant>-<k8s>-<version>/image_id`). If it does not
exist in the region, Karpenter finds no AMI for the alias and launches nothing."""


def al2023_ssm_parameter(kubernetes_version: str, version: str, arch: str = "x86_64") -> str:
    """The SSM parameter behind `al2023@<version>` for NVIDIA nodes of `arch` on `kubernetes_version`."""
    return AL2023_SSM_PARAMETER.format(k8s=kubernetes_version, arch=arch, version=version)


SNAPSHOT_AUTO = "auto"
_SNAPSHOT_ID = re.compile(r"snap-([0-9a-f]{8}|[0-9a-f]{17})")


def _data_volume_snapshot(v: str) -> str:
    # EC2 resource ids are the prefix plus 8 (older) or 17 hex characters (EC2 user guide, "Resource IDs").
    if v != SNAPSHOT_AUTO and not _SNAPSHOT_ID.fullmatch(v):
        raise ValueError(f"'{v}' is not a snapshot id; allowed: auto, or snap- followed by 8 or 17 hex digits "
                         "(e.g. snap-0123456789abcdef0)")
    return v


DataVolumeSnapshot = Annotated[str, AfterValidator(_data_volume_snapshot)]
"""`auto` or an EBS snapshot id."""

GPU_NODE_ARCH = "x86_64"
"""Architecture of every GPU node: the NodePools require `kubernetes.io/arch In [amd64]` (components/gpu_node_pool.py),
x86_64 in EC2 and SSM parameter names."""

SNAPSHOT_TAG = "gpu-burst.io/image-snapshot"
"""Tag key that identifies a pre-loaded data-volume snapshot; its value is :func:`image_snapshot_tags`' digest."""


BOTTLEROCKET_FIRST_NVIDIA_RELEASE = {"1.35": (1, 53, 0), "1.36": (1, 61, 0)}
"""First Bottlerocket release with the `aws-k8s-<k8s>-nvidia` variant, per Kubernetes version (bottlerocket CHANGELOG:
v1.53.0 "Add new kubernetes 1.35 variants", v1.61.0 "Add new Kubernetes 1.36 variants"). Karpenter resolves
`bottlerocket@vX.Y.Z` through `/aws/service/bottlerocket/aws-k8s-<k8s>-nvidia/<arch>/X.Y.Z/image_id`, which does not
exist for an older release, so no GPU node could launch."""


def bottlerocket_release(ami_version: str) -> str:
    """`1.64.0` for the amiVersion `v1.64.0`: the form of SSM parameter paths and of Karpenter's alias resolution
    (aws/karpenter-provider-aws@v1.14.1 pkg/providers/amifamily/bottlerocket.go trims the leading v)."""
    return ami_version.lstrip("v")


def image_snapshot_tags(images: list[str], bottlerocket_version: str, kubernetes_version: str,
                        arch: str = GPU_NODE_ARCH) -> dict[str, str]:
    """The tags that identify a data-volume snapshot holding `images` for Bottlerocket `bottlerocket_version`
    (`1.64.0`) of the `aws-k8s-<kubernetes_version>` variants on `arch`: written by `burstctl snapshot build` and
    matched by the stack's `dataVolumeSnapshotId: auto` lookup, so both sides always agree.

    The identity is a digest (a tag value holds at most 256 characters; image references can be longer). It covers
    the Kubernetes version too: the builder runs `aws-k8s-<k8s>`, and Bottlerocket warns that containerd or kubelet
    updates may change the data they store on the data volume (bottlerocket-os/bottlerocket README "Default
    Volumes"). The other tags are for people reading the snapshot list."""
    refs = sorted(set(images))
    ident = json.dumps({"images": refs, "bottlerocket": bottlerocket_version, "kubernetes": kubernetes_version,
                        "arch": arch}, sort_keys=True, separators=(",", ":"))
    shown = " ".join(refs)
    return {
        SNAPSHOT_TAG: hashlib.sha256(ident.encode()).hexdigest()[:32],
        "gpu-burst.io/bottlerocket-version": bottlerocket_version,
        "gpu-burst.io/kubernetes-version": kubernetes_version,
        "gpu-burst.io/arch": arch,
        "gpu-burst.io/images": shown if len(shown) <= 256 else shown[:253] + "...",
    }


def snapshot_filters(tags: dict[str, str]) -> list[dict[str, list[str]]]:
    """EC2 DescribeSnapshots filters (`Name`/`Values`) for a completed snapshot carrying the identity tag of `tags`."""
    return [{"Name": f"tag:{SNAPSHOT_TAG}", "Values": [tags[SNAPSHOT_TAG]]},
            {"Name": "status", "Values": ["completed"]}]


class ImageCacheConfig(Strict):
    """`gpu.imageCache` — pull Docker Hub images (the vLLM image) through an ECR pull-through cache in the region."""

    docker_hub_credential_arn: pattern_type(
        r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/[A-Za-z0-9/_+=.@-]+",
        "a Secrets Manager secret ARN whose name starts with ecr-pullthroughcache/ (ECR requires credentials for a "
        "Docker Hub upstream)",
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf")
    """Secret holding `{"username": ..., "accessToken": ...}` for Docker Hub, in the stack's account and region."""
    # CreatePullThroughCacheRule ecrRepositoryPrefix: 2 to 30 characters (ECR API reference, Length Constraints)
    repository_prefix: pattern_type(r"(?=.{2,30}\Z)[a-z0-9]+(?:[._-][a-z0-9]+)*", "an ECR repository prefix "
                                    "(lowercase, 2-30 characters)", "docker-hub") = "docker-hub"
    """Cached images appear as `<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<repository>:<tag>`."""


class GpuConfig(Strict):
    """`gpu-burst:gpu` — one EC2NodeClass (AMI, disk, IMDS) shared by the pools."""

    ami_family: GpuAmiFamily = GpuAmiFamily.AL2023
    ami_version: str = AL2023_AMI_VERSION
    """Pinned AMI release (`vYYYYMMDD` for al2023, `vX.Y.Z` for bottlerocket); `latest` needs allowLatestAmi."""
    allow_latest_ami: bool = False
    volume_size_gib: Annotated[int, Field(ge=150, le=16000)] = 200
    """Root volume (al2023) or data volume /dev/xvdb (bottlerocket): holds the vLLM image and model weights cache."""
    volume_throughput_mibps: Annotated[int, Field(ge=125, le=GP3_MAX_THROUGHPUT)] = 600
    """gp3 throughput of the image volume. 600 MiB/s with baseline IOPS is the starting point AWS's SOCI parallel-pull
    benchmark recommends (aws-samples/karpenter-blueprints blueprints/soci-snapshotter/README.md); the 125 MiB/s
    default would make unpacking a ~10 GB image a large part of a cold start."""
    volume_iops: Optional[Annotated[int, Field(ge=GP3_BASELINE_IOPS, le=GP3_MAX_IOPS)]] = None
    """gp3 IOPS. Unset: the 3,000 baseline, raised to 4 x throughput when the throughput needs it (gp3 allows at most
    0.25 MiB/s per provisioned IOPS, so baseline IOPS carry at most 750 MiB/s)."""
    fast_image_pull: bool = True
    """SOCI parallel pull/unpack on GPU nodes that pull their image (AL2023 nodeadm feature gate `FastImagePull`,
    Bottlerocket settings `container-runtime.snapshotter = soci`): layers download in parallel chunks and unpack
    concurrently. Nodes that restore a pre-loaded data-volume snapshot never use it (the snapshot's images are
    unpacked by containerd's default snapshotter): with a `snap-` id it must be false; with `auto` it is what nodes
    do while no snapshot has been built."""
    data_volume_snapshot_id: Optional[DataVolumeSnapshot] = None
    """Bottlerocket only: EBS snapshot restored as /dev/xvdb that already holds the pinned vLLM image, so no image is
    pulled on the cold-start path. `auto`: the newest completed snapshot of this account that `burstctl snapshot
    build` made for the stack's images, Bottlerocket release, Kubernetes version and architecture (found by its
    tags at deploy; none yet: the nodes pull, with SOCI when fastImagePull is on). `snap-...`: that snapshot."""
    volume_initialization_rate_mibps: Optional[Annotated[int, Field(ge=100, le=300)]] = None
    """EBS Provisioned Rate for Volume Initialization of the snapshot volume (100-300 MiB/s, billed per GiB): blocks
    of a snapshot-restored volume are otherwise fetched from S3 lazily on first read."""
    instance_store: InstanceStore = InstanceStore.RAID0
    """raid0: containerd, SOCI's store, the kubelet and pod logs live on the instance's NVMe disks (Karpenter
    `instanceStorePolicy: RAID0`), as in the SOCI parallel-pull measurements; the NodePools then require an instance
    store. It applies to nodes that pull their image: nodes that restore a data-volume snapshot (a `snap-` id, or
    one `auto` found) never get it, since the array would be mounted over the restored images on /dev/xvdb.
    none: everything on the EBS volume."""
    image_cache: Optional[ImageCacheConfig] = None
    """Pull the model images through an ECR pull-through cache (in-region, authenticated to Docker Hub, range
    requests for SOCI). Unset: nodes pull from Docker Hub through the NAT gateway."""
    pools: Annotated[list[GpuPoolConfig], Field(min_length=1)] = [GpuPoolConfig(name="gpu-on-demand")]

    @field_validator("ami_family", mode="before")
    @classmethod
    def _no_al2(cls, v):
        if isinstance(v, str) and v.lower() == "al2":
            raise ValueError("AL2 is not supported (EKS AL2 AMIs ended with Kubernetes 1.32); allowed: 'al2023' or "
                             "'bottlerocket'")
        return v

    @model_validator(mode="after")
    def _ami(self):
        v = self.ami_version
        if v == "latest":
            if not self.allow_latest_ami:
                raise Problems(("amiVersion", "'latest' drifts every GPU node on each AMI release; allowed: a pinned "
                                              "version, or latest with allowLatestAmi: true"))
        elif self.ami_family is GpuAmiFamily.AL2023:
            # EKS AL2023 releases are named v<YYYYMMDD> after their build date (awslabs/amazon-eks-ami releases)
            ok = bool(re.fullmatch(r"v[0-9]{8}", v))
            if ok:
                try:
                    datetime.datetime.strptime(v[1:], "%Y%m%d")
                except ValueError:
                    ok = False
            if not ok:
                raise Problems(("amiVersion", f"'{v}' is not an al2023 release; allowed: v<YYYYMMDD> with a real "
                                              "date (e.g. v20260714), or latest"))
        elif self.ami_family is GpuAmiFamily.BOTTLEROCKET and not re.fullmatch(r"v[0-9]+\.[0-9]+\.[0-9]+", v):
            raise Problems(("amiVersion", f"'{v}' is not a bottlerocket release; allowed: vX.Y.Z (e.g. v1.64.0), "
                                          "or latest"))
        return self

    @model_validator(mode="after")
    def _unique_pools(self):
        p = Problems()
        for i, first in repeats([pool.name for pool in self.pools]):
            p.add(f"pools[{i}].name", f"'{self.pools[i].name}' is already the name of pools[{first}]; "
                                      "allowed: a name unique across gpu.pools")
        p.raise_if_any()
        return self

    def traffic_class_of(self, pool: str) -> str:
        """Traffic class of the named pool (what a model of that pool selects)."""
        return next(p for p in self.pools if p.name == pool).traffic_class_label

    @model_validator(mode="after")
    def _one_way_of_sharing_per_class(self):
        # A model selects a traffic class and requests whole GPUs or one slice: every pool it may land on must
        # offer what it requests.
        p = Problems()
        first: dict[str, int] = {}
        for i, pool in enumerate(self.pools):
            j = first.setdefault(pool.traffic_class_label, i)
            other = self.pools[j]
            if pool.time_slicing != other.time_slicing:
                how = f"timeSlicing {other.time_slicing}" if other.time_slicing else "whole GPUs"
                p.add(f"pools[{i}].timeSlicing",
                      f"{pool.time_slicing or 'unset'} differs from pools[{j}] '{other.name}' ({how}) in traffic class "
                      f"'{pool.traffic_class_label}', whose models all request the same kind of GPU; allowed: "
                      f"{other.time_slicing or 'unset'}, or a trafficClass of its own")
        p.raise_if_any()
        return self

    @property
    def slice_counts(self) -> list[int]:
        """The distinct `timeSlicing` values of the pools (empty: every pool hands out whole GPUs)."""
        return sorted({p.time_slicing for p in self.pools if p.time_slicing})

    @model_validator(mode="after")
    def _image_volume(self):
        p = Problems()
        if self.volume_iops is not None and self.volume_iops * GP3_MIBPS_PER_IOPS < self.volume_throughput_mibps:
            p.add("volumeIops", f"{self.volume_iops} cannot carry volumeThroughputMibps {self.volume_throughput_mibps} "
                                "(gp3 allows 0.25 MiB/s per IOPS); allowed: >= "
                                f"{math.ceil(self.volume_throughput_mibps / GP3_MIBPS_PER_IOPS)}, or unset")
        if self.data_volume_snapshot_id is not None:
            if self.ami_family is not GpuAmiFamily.BOTTLEROCKET:
                p.add("dataVolumeSnapshotId", "AL2023 keeps images on the AMI's root volume, which cannot come from a "
                                              "separate snapshot; allowed: only with amiFamily bottlerocket")
            elif self.data_volume_snapshot_id == SNAPSHOT_AUTO and self.ami_version == "latest":
                p.add("dataVolumeSnapshotId", "auto finds the snapshot built for one Bottlerocket release, and "
                                              "amiVersion latest moves; allowed: auto with a pinned amiVersion "
                                              "(vX.Y.Z), or a snap- id")
            # With auto, fastImagePull picks how nodes pull while no snapshot exists; nodes that restore one never
            # use SOCI (stacks/snapshot.py).
            if self.fast_image_pull and self.data_volume_snapshot_id != SNAPSHOT_AUTO:
                p.add("fastImagePull", "the snapshot holds images unpacked by containerd's default snapshotter, which "
                                       "the SOCI snapshotter would not see; allowed: false with a snap- id, or "
                                       "dataVolumeSnapshotId: auto (SOCI only while no snapshot exists)")
        elif self.volume_initialization_rate_mibps is not None:
            p.add("volumeInitializationRateMibps", "only applies to a volume restored from a snapshot; allowed: "
                                                   "unset, or together with dataVolumeSnapshotId")
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _instance_store(self):
        if self.instance_store is not InstanceStore.RAID0:
            return self
        p = Problems()
        snap = self.data_volume_snapshot_id
        if snap and snap != SNAPSHOT_AUTO:
            return self  # nodes restoring this snapshot keep everything on it: raid0 is never applied to them
        if (self.ami_family is GpuAmiFamily.BOTTLEROCKET
              and re.fullmatch(r"v[0-9]+\.[0-9]+\.[0-9]+", self.ami_version)):
            need = BOTTLEROCKET_DEFAULT_BIND if self.fast_image_pull else BOTTLEROCKET_BOOTSTRAP_COMMANDS
            if not version_at_least(self.ami_version, need):
                shown = "v" + ".".join(map(str, need))
                why = ("Karpenter binds only containerd, the kubelet and pod logs to the NVMe disks, not SOCI's store"
                       if self.fast_image_pull else "there are no bootstrap commands to set up the NVMe disks")
                p.add("instanceStore", f"below Bottlerocket {shown} {why}; allowed: amiVersion {shown} or later, "
                                       "or instanceStore: none")
        p.raise_if_any()
        return self

    def instance_store_raid0(self, snapshot_id: Optional[str]) -> bool:
        """Whether nodes that start from `snapshot_id` (None: an empty volume) get `instanceStorePolicy: RAID0`."""
        return self.instance_store is InstanceStore.RAID0 and not snapshot_id

    @property
    def snapshot_auto(self) -> bool:
        """The data-volume snapshot is looked up by its tags at deploy (`dataVolumeSnapshotId: auto`)."""
        return self.data_volume_snapshot_id == SNAPSHOT_AUTO

    @property
    def image_cache_prefix(self) -> Optional[str]:
        """ECR repository prefix the model images are pulled through (None: pulled from their own registry)."""
        return self.image_cache.repository_prefix if self.image_cache else None

    @property
    def ami_alias(self) -> str:
        return f"{self.ami_family.value}@{self.ami_version}"

    @property
    def effective_volume_iops(self) -> Optional[int]:
        """IOPS the image volume is created with (None = gp3 baseline)."""
        return gp3_iops(self.volume_throughput_mibps, self.volume_iops)

    @property
    def needs_device_plugin(self) -> bool:
        """AL2023's NVIDIA AMI has the driver but not the Kubernetes device plugin; Bottlerocket's ships it."""
        return self.ami_family is GpuAmiFamily.AL2023
