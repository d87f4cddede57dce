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
class ExistingCluster:
    """What the stack read about an existing EKS cluster (`cluster.mode: existing`) before declaring anything."""

    name: str
    endpoint: str
    certificate_authority: str
    """Base64 PEM bundle of the API server's CA (DescribeCluster certificateAuthority.data)."""
    kubernetes_version: str
    authentication_mode: str
    """API, API_AND_CONFIG_MAP or CONFIG_MAP."""
    security_group_id: str
    """The EKS-created cluster security group."""
    vpc_id: str
    vpc_cidr: str
    gpu_subnet_ids: list
    """Private subnets GPU nodes launch in: configured, discovered among the cluster's, or those carrying
    `karpenter.discoveryTag`."""
    oidc_issuer: str = ""
    """OIDC issuer URL ('' when none): the stack uses EKS Pod Identity, not IRSA; reported for reference."""
    pod_identity_agent: bool = True
    """Whether the eks-pod-identity-agent add-on is installed (else the stack installs it, if allowed)."""


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
    """Karpenter node role *name* (EC2NodeClass spec.role); '' when an existing Karpenter's nodes use
    `node_instance_profile`."""
    karpenter_interruption_queue: pulumi.Output[str]
    """SQS queue Karpenter drains for spot interruptions and health events ('' when none was asked for)."""
    karpenter_release: Optional[pulumi.Resource]
    """The Karpenter controller Helm release: Karpenter CRs depend on it, so they are deleted before it. None when
    Karpenter was already installed (`karpenter.install: false`)."""
    karpenter_crd_release: Optional[pulumi.Resource]
    control_plane_log_group: pulumi.Output[str]
    """Log group of the control-plane logs ('' when none are enabled)."""
    system_ready: list = field(default_factory=list)
    """Resources that must exist before any in-cluster workload (system node group, coredns)."""
    s3_endpoint_id: pulumi.Input[str] = ""
    """The VPC's S3 gateway endpoint (vpce-...), '' when the stack added none (adopted VPC, or turned off)."""
    system_node_selector: Optional[dict[str, str]] = None
    """nodeSelector of every controller the stack installs: its own system node group, or `cluster.systemNodeSelector`
    on an existing cluster."""
    node_instance_profile: str = ""
    """Instance profile of an existing Karpenter's nodes (EC2NodeClass spec.instanceProfile) instead of a role."""
    gpu_subnet_ids: Optional[list] = None
    """GPU nodes' subnets by id (an existing cluster without a discovery tag); None: by `discovery_tag`."""
    discovery_tag: Optional[pulumi.Input[str]] = None
    """Value of `karpenter.sh/discovery` GPU nodes select subnets by: the cluster name (created cluster), an existing
    Karpenter's tag (then security groups too), or None when `gpu_subnet_ids` is used."""
    existing: Optional[ExistingCluster] = None
    """What was read about an existing cluster; None when the stack created it."""


@dataclass(frozen=True)
class Addons:
    """GPU pools and the cluster add-ons that the model services plug into."""

    gpu_pool_names: list
    """NodePool names, in config order."""
    gpu_pools: pulumi.Resource
    keda_release: Optional[pulumi.Resource]
    """None for each add-on already installed in an existing cluster (`install: false`): nothing to wait for."""
    http_addon_release: Optional[pulumi.Resource]
    monitoring_release: Optional[pulumi.Resource]
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
    monitor_labels: dict[str, str] = field(default_factory=dict)
    """Labels every ServiceMonitor/PodMonitor needs to be selected ({}: the stack's Prometheus selects all)."""
    rule_labels: dict[str, str] = field(default_factory=dict)
    """Labels the PrometheusRule needs to be selected."""
    dashboards: bool = True
    alerts: bool = True

