"""What each layer of the stack hands to the next, as typed fields: foundation → add-ons → workload → outputs."""

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .config import StackConfig


@dataclass(frozen=True)
class DataVolume:
    """How GPU nodes get their image: from a pre-loaded data-volume snapshot, or by pulling it."""

    snapshot_id: Optional[str]
    """EBS snapshot restored as the Bottlerocket data volume /dev/xvdb (None: an empty volume, the image is pulled)."""
    fast_image_pull: bool
    """SOCI parallel pull/unpack on the nodes; always False when a snapshot is restored."""
    snapshot_tags: dict = field(default_factory=dict)
    """The tags `dataVolumeSnapshotId: auto` looked for ({} for an explicit or no snapshot)."""


@dataclass(frozen=True)
class Foundation:
    """The AWS foundation: network, EKS cluster, system nodes, Karpenter."""

    cfg: StackConfig
    cluster_name: pulumi.Output[str]
    """The real EKS cluster name (an Output of the cluster); use it for discovery tags, IAM conditions, settings."""
    cluster_security_group_id: pulumi.Output[str]
    """EKS-created cluster security group: attached to managed nodes; GPU nodes get it too."""
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list]
    """Subnets of every node (and of internal load balancers)."""
    k8s_provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    """Kubeconfig (JSON) for `aws eks get-token`; a stack output, always as a secret."""
    node_role_name: pulumi.Output[str]
    """Karpenter node role *name* (EC2NodeClass spec.role)."""
    karpenter_interruption_queue: pulumi.Output[str]
    """SQS queue Karpenter drains for spot interruptions and health events."""
    karpenter_release: pulumi.Resource
    """The Karpenter controller Helm release: Karpenter CRs depend on it, so they are deleted before it."""
    karpenter_crd_release: pulumi.Resource
    control_plane_log_group: pulumi.Output[str]
    """Log group of the control-plane logs ('' when none are enabled)."""
    system_ready: list = field(default_factory=list)
    """Resources that must exist before any in-cluster workload (system node group, coredns)."""
    s3_endpoint_id: pulumi.Input[str] = ""
    """The VPC's S3 gateway endpoint (vpce-...), '' when the stack added none (adopted VPC, or turned off)."""


@dataclass(frozen=True)
class Addons:
    """GPU pools and the cluster add-ons that the model services plug into."""

    gpu_pool_names: list
    """NodePool names, in config order."""
    gpu_pools: pulumi.Resource
    keda_release: pulumi.Resource
    http_addon_release: pulumi.Resource
    monitoring_release: pulumi.Resource
    prometheus_url: pulumi.Output[str]
    """In-cluster URL of Prometheus for KEDA's prometheus trigger, e.g. http://<svc>.<ns>.svc:9090."""
    external_scaler_address: pulumi.Output[str]
    """host:port of the HTTP add-on external scaler for the `external-push` trigger."""
    interceptor_namespace: pulumi.Output[str]
    interceptor_proxy_service: pulumi.Output[str]
    interceptor_proxy_port: int
    dashboards_namespace: pulumi.Output[str]
    dashboard_label: dict
    """Labels a ConfigMap needs for the Grafana sidecar to load it as a dashboard."""
    monitoring_namespace: pulumi.Output[str]
    grafana_service: pulumi.Output[str]
    """Service name of Grafana (port 80) in `monitoring_namespace`."""
    gpu_toleration: dict
    """What a pod needs to land on a GPU node (besides a `nvidia.com/gpu` request)."""
    device_plugin_release: Optional[pulumi.Resource] = None
    """The NVIDIA device plugin release (AL2023 only; Bottlerocket ships the plugin)."""
    gpu_data_volume_snapshot_id: str = ""
    """Snapshot the GPU nodes' data volume is restored from ("" when they pull the image)."""
