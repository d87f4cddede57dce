"""GPU capacity as Karpenter v1 objects: one EC2NodeClass (AMI, disks, IMDS, network) shared by one or more
NodePools, each a traffic class with its own instance families, capacity types, weight and limits."""

import math
import re
from enum import Enum
from typing import Iterable, Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import (DEVICE_PLUGIN_CONFIG_LABEL, GPU_PRESENT_LABEL, GPU_RESOURCE, GPU_TAINT_KEY,
                      GPU_TOLERATION, SHARED_GPU_RESOURCE, TIME_SLICING_TAINT_KEY, TRAFFIC_CLASS_LABEL, child, deps_of,
                      labels, time_slicing_config_name, token)

DISCOVERY_TAG = "karpenter.sh/discovery"
"""Tag key Karpenter's getting-started puts on the subnets and security groups its nodes use."""
GPU_TAINT_VALUE = "present"
"""Value of the `nvidia.com/gpu` NoSchedule taint. Workloads tolerate the key with `operator: Exists`, so the value
only matters to tolerations that use `Equal`: the node-feature-discovery worker that GPU feature discovery needs
ships with `nvidia.com/gpu Equal present` (nvidia-device-plugin chart values `nfd.worker.tolerations`)."""
GPU_TAINT = {"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}
POOL_LABEL = "gpu-burst.io/gpu-pool"
"""Our own copy of the pool name on each node; `karpenter.sh/nodepool` carries it too but is Karpenter's."""
LOCAL_NVME_LABEL = "karpenter.k8s.aws/instance-local-nvme"
"""Karpenter well-known label: total NVMe instance store in GB, absent without one (aws/karpenter-provider-aws@v1.14.1
pkg/apis/v1/labels.go LabelInstanceLocalNVME; set from DescribeInstanceTypes in instancetype/types.go)."""
EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
"""Keeps GPU nodes out of every load balancer's targets (the in-tree service controller and the AWS Load Balancer
Controller honour it: https://kubernetes.io/docs/reference/labels-annotations-taints/#node-kubernetes-io-exclude-from-external-load-balancers),
so consolidating a GPU node never cuts gateway connections. Karpenter accepts it in NodePool labels: only the
karpenter.sh and karpenter.k8s.aws domains and kubernetes.io/hostname are restricted (kubernetes-sigs/karpenter@v1.14.1
pkg/apis/v1/labels.go RestrictedLabelDomains, RestrictedLabels; the NodePool CRD's template.metadata.labels rules), and
the kubelet may set node.kubernetes.io/* labels on itself (NodeRestriction admission)."""


class AmiFamily(str, Enum):
    """GPU node operating system."""

    AL2023 = "al2023"
    """EKS-optimized AL2023 NVIDIA variant: driver and toolkit, but no Kubernetes device plugin."""
    BOTTLEROCKET = "bottlerocket"
    """Bottlerocket NVIDIA variant: the device plugin is built in."""


class GpuPoolArgs(TypedDict):
    """One NodePool (traffic class)."""

    name: str
    """NodePool name."""
    traffic_class: NotRequired[str]
    """Value of the `gpu-burst.io/traffic-class` node label; models select it, and Karpenter tries the pools of a
    class by weight. Default: the pool name (a class of its own)."""
    instance_families: pulumi.Input[list[str]]
    """Explicit EC2 instance families, e.g. ["g5", "g6"]."""
    gpus_per_node: pulumi.Input[list[int]]
    """Allowed GPU counts per instance."""
    capacity_types: pulumi.Input[list[str]]
    """Karpenter capacity types: "spot" and/or "on-demand"."""
    gpu_limit: pulumi.Input[int]
    """Most `nvidia.com/gpu` this pool may run at once."""
    cpu_limit: pulumi.Input[int]
    """Most vCPUs this pool may run at once."""
    weight: NotRequired[pulumi.Input[int]]
    """Karpenter weight (1-100, higher first). Default 10."""
    expire_after: NotRequired[pulumi.Input[str]]
    """Node lifetime before replacement. Default 720h."""
    consolidate_after: NotRequired[pulumi.Input[str]]
    """How long a node must be empty before removal. Default 5m."""
    termination_grace_period: NotRequired[str]
    """Upper bound on draining a disrupted node (s/m/h units, e.g. 1h or 30m); it also bounds how long `pulumi
    destroy` waits for the pool. Default 1h."""
    disruption_budget_nodes: NotRequired[pulumi.Input[str]]
    """Nodes ("N" or "N%") Karpenter may disrupt at once. Default 10%."""
    time_slicing: NotRequired[int]
    """Time-slices per GPU (2-8): the GPUs are advertised as `nvidia.com/gpu.shared`, the nodes are tainted for pods
    that opted in, and a NodeOverlay tells Karpenter how many slices each instance type has (then `gpus_per_node`
    must be a plain list). AL2023: the nodes carry the device plugin config label (pass the same counts to
    NvidiaDevicePlugin); Bottlerocket: the pool gets an EC2NodeClass of its own with the plugin's settings.
    Omit for whole GPUs."""


class GpuNodePoolArgs(TypedDict):
    """Inputs for GpuNodePool."""

    cluster_name: pulumi.Input[str]
    """Real EKS cluster name: value of the `karpenter.sh/discovery` tag on the private subnets."""
    cluster_security_group_id: pulumi.Input[str]
    """EKS cluster security group id, attached to GPU nodes like to the managed nodes."""
    node_role_name: NotRequired[pulumi.Input[str]]
    """Karpenter node role *name* (not ARN); Karpenter creates the instance profile. Required unless
    `instance_profile` is given."""
    instance_profile: NotRequired[pulumi.Input[str]]
    """Instead of `node_role_name`: an existing instance profile for the nodes (EC2NodeClass `spec.instanceProfile`)."""
    subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """Select the nodes' subnets by id instead of by the discovery tag."""
    discovery_tag: NotRequired[pulumi.Input[str]]
    """Value of `karpenter.sh/discovery` that selects the nodes' subnets *and* security groups (an existing Karpenter
    setup's tag); without it subnets carry `cluster_name` and the only security group is the cluster's."""
    ami_family: pulumi.Input[AmiFamily]
    """al2023 or bottlerocket."""
    ami_version: pulumi.Input[str]
    """Pinned release (`vYYYYMMDD` for al2023, `vX.Y.Z` for bottlerocket) or `latest`."""
    pools: list[GpuPoolArgs]
    """The NodePools sharing this node class."""
    volume_size_gib: NotRequired[pulumi.Input[int]]
    """Size of the volume holding images and model cache (root on al2023, /dev/xvdb on bottlerocket). Default 200."""
    volume_throughput_mibps: NotRequired[pulumi.Input[int]]
    """gp3 throughput of that volume. Default 600."""
    volume_iops: NotRequired[pulumi.Input[int]]
    """gp3 IOPS of that volume; omit for the 3,000 baseline (it must be >= 4 x throughput above 750 MiB/s)."""
    fast_image_pull: NotRequired[pulumi.Input[bool]]
    """SOCI parallel pull/unpack (AL2023 `FastImagePull` feature gate, Bottlerocket soci snapshotter). Default true."""
    data_volume_snapshot_id: NotRequired[pulumi.Input[str]]
    """Bottlerocket only: EBS snapshot restored as /dev/xvdb, pre-loaded with the pinned images; needs
    `fast_image_pull` false. The volume takes the snapshot's encryption, so build it encrypted."""
    volume_initialization_rate_mibps: NotRequired[pulumi.Input[int]]
    """EBS Provisioned Rate for Volume Initialization (100-300 MiB/s) of the snapshot volume; only with a snapshot."""
    instance_store_raid0: NotRequired[bool]
    """Karpenter `instanceStorePolicy: RAID0`: stripe the instance's NVMe disks and keep containerd, SOCI's store,
    the kubelet and pod logs there (AL2023: nodeadm `localStorage`; Bottlerocket: `apiclient ephemeral-storage`,
    added by Karpenter); every NodePool then requires an instance store. Not with `data_volume_snapshot_id` (the
    array would hide the restored images). Default false."""
    pod_termination_grace_seconds: NotRequired[int]
    """Longest terminationGracePeriodSeconds of the pods that run on these pools (the models'): with the pools'
    terminationGracePeriod it bounds how long `pulumi destroy` waits for the NodePools and node classes
    (`delete_timeout`). Default 0: the pools' terminationGracePeriod alone."""
    node_class_name: NotRequired[str]
    """EC2NodeClass name. Default: the component name."""
    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Extra EC2 tags for instances, volumes and network interfaces."""


def data_volume_problems(ami_family: str, snapshot_id: Optional[str], fast_image_pull: bool,
                         init_rate: Optional[int], instance_store_raid0: bool = False) -> list[str]:
    """What is wrong with a data-volume snapshot request (empty: nothing). The stack config refuses the same
    combinations; components used on their own (the MLC provider) get the same answer here, before any resource."""
    problems = []
    if snapshot_id and instance_store_raid0:
        # Karpenter binds /var/lib/containerd (and the kubelet's dirs) onto the NVMe array over /dev/xvdb's copy.
        problems.append("instance_store_raid0: the NVMe array would hide the images restored on /dev/xvdb; "
                        "allowed: false with data_volume_snapshot_id")
    if snapshot_id:
        if AmiFamily(ami_family) is not AmiFamily.BOTTLEROCKET:
            # AL2023 has a single disk: /dev/xvda is the AMI's root device, and a snapshotID there replaces the
            # AMI's own root snapshot, so the node would boot from an image cache instead of an OS.
            problems.append("data_volume_snapshot_id: AL2023 keeps images on the AMI's root volume /dev/xvda, which "
                            "cannot come from another snapshot; allowed: only with ami_family bottlerocket")
        if fast_image_pull:
            problems.append("fast_image_pull: the snapshot holds images unpacked by containerd's default snapshotter, "
                            "which the SOCI snapshotter does not see (every image would be pulled again); allowed: "
                            "false with data_volume_snapshot_id")
    elif init_rate:
        # EC2NodeClass CRD v1.14.1: `!has(self.volumeInitializationRate) || has(self.snapshotID)`.
        problems.append("volume_initialization_rate_mibps: only applies to a volume restored from a snapshot; "
                        "allowed: unset, or together with data_volume_snapshot_id")
    return problems


def block_device_mappings(ami_family: str, size_gib: int, throughput: int, iops: Optional[int] = None,
                          snapshot_id: Optional[str] = None, init_rate: Optional[int] = None) -> list[dict]:
    """Disk layout: the volume that stores container images must hold a multi-GB vLLM image plus weights.

    `rootVolume` marks the device Karpenter treats as the kubelet root (it sizes node ephemeral-storage from it,
    EC2NodeClass CRD v1.14.1 `blockDeviceMappings[].rootVolume`). On Bottlerocket that is the data volume /dev/xvdb
    (images, pod volumes, logs); flagging the 4 GiB OS disk /dev/xvda instead makes every node look like it has
    ~4 GiB of ephemeral storage, and no instance type fits a model's cache request. With `instanceStorePolicy:
    RAID0` Karpenter takes the instance store's size instead (types.go ephemeralStorage), and these devices keep only
    what the runtime does not move (AL2023's OS, Bottlerocket's data partition)."""
    if snapshot_id and AmiFamily(ami_family) is not AmiFamily.BOTTLEROCKET:
        raise ValueError(data_volume_problems(ami_family, snapshot_id, False, init_rate)[0])
    data: dict = {"volumeSize": f"{size_gib}Gi", "volumeType": "gp3", "deleteOnTermination": True,
                  "throughput": throughput}
    if iops is not None:
        data["iops"] = iops
    if snapshot_id:
        # A volume restored from a snapshot takes the snapshot's encryption; the EC2 API refuses an `encrypted`
        # value next to a snapshot id (LaunchTemplateEbsBlockDeviceRequest.Encrypted).
        data["snapshotID"] = snapshot_id
        if init_rate:
            data["volumeInitializationRate"] = init_rate
    else:
        data["encrypted"] = True
    if AmiFamily(ami_family) is AmiFamily.BOTTLEROCKET:
        return [
            {"deviceName": "/dev/xvda",
             "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}},
            {"deviceName": "/dev/xvdb", "rootVolume": True, "ebs": data},
        ]
    return [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": data}]


SOCI_DOWNLOADS_PER_IMAGE = 20
SOCI_UNPACKS_PER_IMAGE = 12
SOCI_CHUNK = "16mb"
"""SOCI parallel-mode settings AWS recommends for images served from ECR (karpenter-blueprints
blueprints/soci-snapshotter/README.md: 10-20 downloads, 16mb chunks with HTTP range requests, unpacks ~ layer
count, discard unpacked layers on EKS nodes). Bottlerocket's own defaults (3 downloads, 1 unpack) are far lower."""


def fast_image_pull_user_data(ami_family: str, enabled: bool) -> Optional[str]:
    """userData that turns on SOCI parallel pull/unpack; Karpenter merges it with the bootstrap it generates
    (AL2023: a nodeadm NodeConfig; Bottlerocket: TOML settings). None when disabled."""
    if not enabled:
        return None
    if AmiFamily(ami_family) is AmiFamily.BOTTLEROCKET:
        # Settings API (Bottlerocket >= 1.44.0): bottlerocket-os/bottlerocket-settings-sdk settings-extensions
        # container-runtime (`snapshotter`: overlayfs|soci) and container-runtime-plugins (SociSnapshotterSettings),
        # rendered by bottlerocket-core-kit packages/soci-snapshotter/soci-config-toml. Karpenter v1.14.1 keeps every
        # [settings.*] table it does not model and rewrites only settings.kubernetes and settings.bootstrap-commands
        # (pkg/providers/amifamily/bootstrap/bottlerocketsettings.go MarshalTOML), so nothing here goes there.
        return ("[settings.container-runtime]\n"
                'snapshotter = "soci"\n'
                "[settings.container-runtime-plugins.soci-snapshotter]\n"
                'pull-mode = "parallel-pull-unpack"\n'
                "[settings.container-runtime-plugins.soci-snapshotter.parallel-pull-unpack]\n"
                f"max-concurrent-downloads-per-image = {SOCI_DOWNLOADS_PER_IMAGE}\n"
                f'concurrent-download-chunk-size = "{SOCI_CHUNK}"\n'
                f"max-concurrent-unpacks-per-image = {SOCI_UNPACKS_PER_IMAGE}\n"
                "discard-unpacked-layers = true\n")
    # nodeadm feature gate (AL2023 >= v20250821 ships the SOCI snapshotter; its AL2023 defaults already are 20
    # downloads, 12 unpacks, 16mb chunks and discarded layers).
    return ("apiVersion: node.eks.aws/v1alpha1\n"
            "kind: NodeConfig\n"
            "spec:\n"
            "  featureGates:\n"
            "    FastImagePull: true\n")


TIME_SLICING_RANGE = (2, 8)
"""Slices per GPU a pool may have (the device plugin and Bottlerocket both refuse fewer than 2)."""


def time_slicing_user_data(slices: int) -> str:
    """Bottlerocket settings that make the NVIDIA variant's built-in device plugin advertise `slices` time-slices per
    GPU as `nvidia.com/gpu.shared` and refuse a pod asking for more than one (bottlerocket-settings-sdk
    modeled-types NvidiaDevicePluginSettings / NvidiaTimeSlicingSettings, replicas >= 2; rendered by
    bottlerocket-core-kit packages/nvidia-k8s-device-plugin/nvidia-k8s-device-plugin-conf, whose own defaults are
    rename-by-default and fail-requests-greater-than-one true and 2 replicas: all three are set here, not inherited).
    Karpenter keeps these tables of the userData as they are (it rewrites only settings.kubernetes and
    settings.bootstrap-commands)."""
    return ("[settings.kubelet-device-plugins.nvidia]\n"
            'device-sharing-strategy = "time-slicing"\n'
            "[settings.kubelet-device-plugins.nvidia.time-slicing]\n"
            f"replicas = {slices}\n"
            "rename-by-default = true\n"
            "fail-requests-greater-than-one = true\n")


def time_slicing_overlay(pool_name: str, gpus: int, slices: int) -> dict:
    """NodeOverlay spec (karpenter.sh/v1alpha1) that gives the pool's `gpus`-GPU instance types `gpus x slices`
    `nvidia.com/gpu.shared`: Karpenter only knows `nvidia.com/gpu` from EC2, and a pod whose extended resource no
    instance type offers is never provisioned (kubernetes-sigs/karpenter@v1.14.1 resources.Fits in the scheduler).
    Capacity adds an extended resource, as the CRD allows (not cpu/memory/ephemeral-storage/pods)."""
    return {
        "requirements": [
            {"key": "karpenter.sh/nodepool", "operator": "In", "values": [pool_name]},
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": [str(gpus)]},
        ],
        "capacity": {SHARED_GPU_RESOURCE: str(gpus * slices)},
    }


DEFAULT_TERMINATION_GRACE_PERIOD = "1h"
STUCK_TERMINATING_SECONDS = 60
"""Karpenter stops waiting for a terminating pod a minute after its deletion timestamp, i.e. its deletion time plus its
grace period (kubernetes-sigs/karpenter@v1.14.1 pkg/utils/pod/scheduling.go IsStuckTerminating)."""
INSTANCE_TERMINATION_SECONDS = 600
"""Allowance after the drain: Karpenter terminates the instance, waits for EC2 to report it gone, and removes the
node's, the NodeClaim's and then the NodePool's finalizers."""
_GRACE_PERIOD = re.compile(r"^([0-9]+(s|m|h))+$")


def grace_period_seconds(duration: str) -> int:
    """Seconds in a NodePool terminationGracePeriod (`^([0-9]+(s|m|h))+$`, the CRD's pattern)."""
    if not isinstance(duration, str) or not _GRACE_PERIOD.match(duration):
        raise ValueError(f"termination_grace_period {duration!r}; allowed: a plain duration in whole s/m/h units, "
                         "e.g. 1h or 30m (it also bounds how long destroy waits for the pool)")
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(s|m|h)", duration))


def delete_timeout(termination_grace_periods: Iterable[str], pod_termination_grace_seconds: int = 0) -> str:
    """How long destroy waits for a NodePool or EC2NodeClass to be gone (pulumi-kubernetes waits 10 minutes unless
    told). Karpenter drains each node of the pool until its pods are gone, waiting for a terminating pod until a
    minute past its grace period and for nothing past the NodePool's terminationGracePeriod, then terminates the
    instance. The larger of the two drain bounds, plus the instance's termination."""
    drain = max([*(grace_period_seconds(g) for g in termination_grace_periods),
                 pod_termination_grace_seconds + STUCK_TERMINATING_SECONDS])
    return f"{math.ceil((drain + INSTANCE_TERMINATION_SECONDS) / 60)}m"


def _str_list(values: pulumi.Input[list]) -> pulumi.Output[list[str]]:
    return pulumi.Output.from_input(values).apply(lambda vs: [str(getattr(v, "value", v)) for v in vs])


class GpuNodePool(pulumi.ComponentResource):
    """NVIDIA GPU capacity for Karpenter v1: an EC2NodeClass (pinned AMI alias, discovery-tag subnets, the cluster
    security group, encrypted gp3 volumes sized for LLM images, optionally the NVMe instance store striped for the
    container runtime, IMDSv2 with hop limit 1) and one NodePool per pool.
    Every node is tainted `nvidia.com/gpu=present:NoSchedule` and labelled `nvidia.com/gpu.present=true`, so only
    GPU workloads and GPU daemons land there. A pool with `time_slicing` shares each GPU between that many pods as
    `nvidia.com/gpu.shared` (its own taint, device plugin config or Bottlerocket node class, and NodeOverlays; Karpenter
    needs its `nodeOverlay` feature gate on). Pass the Karpenter controller release in `opts.depends_on`: the
    custom resources then wait for its CRDs and are deleted before it, while Karpenter can still drain nodes."""

    node_class_name: pulumi.Output[str]
    """Name of the EC2NodeClass."""
    node_pool_names: pulumi.Output[list[str]]
    """Names of the NodePools, in config order."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("GpuNodePool"), name, None, opts)
        external_deps = deps_of(opts)
        pools = args["pools"]
        if not pools:
            raise ValueError(f"GpuNodePool '{name}': pools is empty; declare at least one NodePool")
        family = pulumi.Output.from_input(args["ami_family"]).apply(lambda f: AmiFamily(f).value)
        class_name = args.get("node_class_name") or name
        try:
            # Destroy waits for every node to drain and terminate; the node class goes after all of its pools' nodes.
            self.delete_timeout = delete_timeout(
                [p.get("termination_grace_period", DEFAULT_TERMINATION_GRACE_PERIOD) for p in pools],
                args.get("pod_termination_grace_seconds", 0))
        except ValueError as e:
            raise ValueError(f"GpuNodePool '{name}': {e}") from None

        fast_pull = args.get("fast_image_pull", True)
        raid0 = bool(args.get("instance_store_raid0", False))
        disk = (args["ami_family"], args.get("data_volume_snapshot_id"), fast_pull,
                args.get("volume_initialization_rate_mibps"), raid0)
        if not any(isinstance(v, pulumi.Output) for v in disk):
            problems = data_volume_problems(*disk)
            if problems:
                raise ValueError(f"GpuNodePool '{name}': " + "; ".join(problems))
        user_data = None
        if fast_pull is not False:
            user_data = pulumi.Output.all(family, fast_pull).apply(lambda a: fast_image_pull_user_data(a[0], a[1]))
        sliced = self._sliced_pools(name, args)
        self.node_class = self._node_class(f"{name}-nodeclass", class_name, name, args, family, user_data, raid0,
                                           external_deps)
        # Bottlerocket reads the device plugin's sharing from the node's settings: one EC2NodeClass per slice count.
        self.sliced_node_classes: dict[int, k8s.apiextensions.CustomResource] = {}
        on_al2023 = bool(sliced) and AmiFamily(args["ami_family"]) is AmiFamily.AL2023
        if sliced and not on_al2023:
            for n in sorted(set(sliced.values())):
                ts = time_slicing_user_data(n)
                ud = ts if user_data is None else user_data.apply(lambda u, ts=ts: (u or "") + ts)
                self.sliced_node_classes[n] = self._node_class(f"{name}-nodeclass-ts{n}", f"{class_name}-ts{n}", name,
                                                               args, family, ud, raid0, external_deps)

        self.node_overlays: list[k8s.apiextensions.CustomResource] = []
        self.node_pools: list[k8s.apiextensions.CustomResource] = []
        for pool in pools:
            pool_name = pool["name"]
            n = sliced.get(pool_name)
            overlays = self._overlays(name, pool, n, external_deps) if n else []
            self.node_overlays.extend(overlays)
            node_class, ref = self.node_class, class_name
            if n in self.sliced_node_classes:
                node_class, ref = self.sliced_node_classes[n], f"{class_name}-ts{n}"
            self.node_pools.append(k8s.apiextensions.CustomResource(
                f"{name}-{pool_name}",
                api_version="karpenter.sh/v1",
                kind="NodePool",
                metadata={"name": pool_name, "labels": labels("gpu-nodes", name, {POOL_LABEL: pool_name})},
                spec=self._pool_spec(pool, ref, raid0, device_plugin_label=on_al2023),
                # The NodePool goes first on delete: its nodes drain while the node class (and the overlays that
                # let Karpenter place slices) still exist.
                opts=child(self, depends_on=[*external_deps, node_class, *overlays],
                           custom_timeouts=pulumi.CustomTimeouts(delete=self.delete_timeout)),
            ))

        self.node_class_name = pulumi.Output.from_input(class_name)
        self.node_pool_names = pulumi.Output.from_input([p["name"] for p in pools])
        self.register_outputs({"node_class_name": self.node_class_name, "node_pool_names": self.node_pool_names})

    def _node_class(self, logical: str, class_name: str, name: str, args: GpuNodePoolArgs, family: pulumi.Output,
                    user_data: Optional[pulumi.Input[str]], raid0: bool, deps: list) -> k8s.apiextensions.CustomResource:
        tags = pulumi.Output.all(args["cluster_name"], args.get("tags") or {}).apply(
            lambda a: {"gpu-burst.io/cluster": a[0], "gpu-burst.io/node-class": class_name, **a[1]})
        return k8s.apiextensions.CustomResource(
            logical,
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": class_name, "labels": labels("gpu-nodes", name)},
            spec={
                **self._identity(name, args),
                "amiSelectorTerms": [{"alias": pulumi.Output.concat(family, "@", args["ami_version"])}],
                **self._network(args),
                "blockDeviceMappings": pulumi.Output.all(
                    family, args.get("volume_size_gib", 200), args.get("volume_throughput_mibps", 600),
                    args.get("volume_iops"), args.get("data_volume_snapshot_id"),
                    args.get("volume_initialization_rate_mibps"),
                ).apply(lambda a: block_device_mappings(*a)),
                **({} if user_data is None else {"userData": user_data}),
                # Karpenter then generates the array setup itself (AL2023: NodeConfig localStorage.strategy RAID0;
                # Bottlerocket: bootstrap command `apiclient ephemeral-storage init` + `bind`;
                # aws/karpenter-provider-aws@v1.14.1 pkg/providers/amifamily/bootstrap/nodeadm.go, bottlerocket.go)
                # and counts the instance store, not the EBS volume, as node ephemeral-storage (instancetype/types.go
                # ephemeralStorage).
                **({"instanceStorePolicy": "RAID0"} if raid0 else {}),
                # Pods reach AWS through Pod Identity; hop limit 1 keeps them off the node role's credentials.
                "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                    "httpPutResponseHopLimit": 1, "httpTokens": "required"},
                "tags": tags,
            },
            opts=child(self, depends_on=deps, custom_timeouts=pulumi.CustomTimeouts(delete=self.delete_timeout)),
        )

    def _overlays(self, name: str, pool: GpuPoolArgs, slices: int, deps: list) -> list:
        """One NodeOverlay per GPU count of a time-sliced pool: its instance types' `nvidia.com/gpu.shared`."""
        return [k8s.apiextensions.CustomResource(
            f"{name}-{pool['name']}-overlay-{gpus}gpu",
            api_version="karpenter.sh/v1alpha1",
            kind="NodeOverlay",
            metadata={"name": f"{pool['name']}-slices-{gpus}gpu",
                      "labels": labels("gpu-nodes", name, {POOL_LABEL: pool["name"]})},
            spec=time_slicing_overlay(pool["name"], gpus, slices),
            opts=child(self, depends_on=deps),
        ) for gpus in sorted(set(pool["gpus_per_node"]))]

    @staticmethod
    def _identity(name: str, args: GpuNodePoolArgs) -> dict:
        """`role` (Karpenter makes the instance profile) or an existing `instanceProfile`: the CRD takes one."""
        role, profile = args.get("node_role_name"), args.get("instance_profile")
        if (role is None) == (profile is None):
            raise ValueError(f"GpuNodePool '{name}': give node_role_name or instance_profile (one of them)")
        return {"role": role} if role is not None else {"instanceProfile": profile}

    @staticmethod
    def _network(args: GpuNodePoolArgs) -> dict:
        """Subnet and security group selector terms (terms of one selector are ORed, a term's fields ANDed)."""
        if args.get("discovery_tag") is not None:
            tag = {"tags": {DISCOVERY_TAG: args["discovery_tag"]}}
            return {"subnetSelectorTerms": [tag], "securityGroupSelectorTerms": [tag]}
        subnets = (pulumi.Output.from_input(args["subnet_ids"]).apply(lambda ids: [{"id": i} for i in ids])
                   if args.get("subnet_ids") is not None else [{"tags": {DISCOVERY_TAG: args["cluster_name"]}}])
        return {"subnetSelectorTerms": subnets,
                "securityGroupSelectorTerms": [{"id": args["cluster_security_group_id"]}]}

    @staticmethod
    def _sliced_pools(name: str, args: GpuNodePoolArgs) -> dict[str, int]:
        """Pool name -> slices per GPU, for the pools that time-slice; checked before anything is declared."""
        sliced = {p["name"]: p["time_slicing"] for p in args["pools"] if p.get("time_slicing")}
        lo, hi = TIME_SLICING_RANGE
        for pool_name, n in sliced.items():
            if not (isinstance(n, int) and lo <= n <= hi):
                raise ValueError(f"GpuNodePool '{name}': pool '{pool_name}' time_slicing {n!r}; allowed: {lo} to {hi}")
        plain = [p["name"] for p in args["pools"] if p["name"] in sliced
                 and not isinstance(p["gpus_per_node"], (list, tuple))]
        if plain or (sliced and isinstance(args["ami_family"], pulumi.Output)):
            raise ValueError(f"GpuNodePool '{name}': time-slicing needs a plain ami_family and gpus_per_node (pools "
                             f"{plain or list(sliced)}), which decide the node classes and NodeOverlays")
        return sliced

    @staticmethod
    def _pool_spec(pool: GpuPoolArgs, class_name: str, instance_store: bool = False,
                   device_plugin_label: bool = False) -> dict:
        # With RAID0, an instance without NVMe would fall back to the EBS volume for everything; requiring the label
        # keeps every node on the layout the image-pull figures were measured with.
        nvme = ([{"key": LOCAL_NVME_LABEL, "operator": "Gt", "values": ["0"]}] if instance_store else [])
        n = pool.get("time_slicing")
        # Time-sliced GPUs are a resource of their own (nvidia.com/gpu.shared), so a pod asking for whole GPUs can
        # never get a slice; the taint also keeps Karpenter from launching a shared node for such a pod.
        sliced_labels = {DEVICE_PLUGIN_CONFIG_LABEL: time_slicing_config_name(n)} if n and device_plugin_label else {}
        sliced_taints = [{"key": TIME_SLICING_TAINT_KEY, "value": str(n), "effect": "NoSchedule"}] if n else []
        # gpuLimit counts physical GPUs: Karpenter counts a node's capacity, which once the plugin registered has
        # the slices and no nvidia.com/gpu (before that, the instance type's GPUs plus the NodeOverlay's slices).
        sliced_limit = ({SHARED_GPU_RESOURCE: pulumi.Output.from_input(pool["gpu_limit"]).apply(lambda g: str(g * n))}
                        if n else {})
        return {
            "weight": pool.get("weight", 10),
            "template": {
                "metadata": {"labels": {GPU_PRESENT_LABEL: "true", POOL_LABEL: pool["name"],
                                        TRAFFIC_CLASS_LABEL: pool.get("traffic_class") or pool["name"],
                                        EXCLUDE_FROM_LB_LABEL: "true", **sliced_labels}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": class_name},
                    "requirements": [
                        {"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                         "values": _str_list(pool["instance_families"])},
                        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In",
                         "values": _str_list(pool["gpus_per_node"])},
                        {"key": "karpenter.k8s.aws/instance-gpu-manufacturer", "operator": "In", "values": ["nvidia"]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In",
                         "values": _str_list(pool["capacity_types"])},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                        *nvme,
                    ],
                    "taints": [dict(GPU_TAINT), *sliced_taints],
                    "expireAfter": pool.get("expire_after", "720h"),
                    "terminationGracePeriod": pool.get("termination_grace_period", DEFAULT_TERMINATION_GRACE_PERIOD),
                },
            },
            "limits": {
                GPU_RESOURCE: pulumi.Output.from_input(pool["gpu_limit"]).apply(str),
                "cpu": pulumi.Output.from_input(pool["cpu_limit"]).apply(str),
                **sliced_limit,
            },
            # WhenEmpty: a GPU node running a model is never "underutilized" enough to be worth a cold start.
            "disruption": {
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": pool.get("consolidate_after", "5m"),
                "budgets": [{"nodes": pool.get("disruption_budget_nodes", "10%")}],
            },
        }
