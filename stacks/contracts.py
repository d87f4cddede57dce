"""What each layer of the stack hands to the next. Built in stacks/, consumed by the later layers' wiring."""

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .config import StackConfig


@dataclass(frozen=True)
class Foundation:
    """Issue 2 layer: network, cluster, system nodes, Karpenter."""

    cfg: StackConfig
    cluster_name: pulumi.Output[str]
    """The real EKS cluster name (auto-named by pulumi-eks); use it for discovery tags, IAM conditions, settings."""
    cluster_security_group_id: pulumi.Output[str]
    """EKS-created cluster security group: attached to managed nodes; GPU nodes get it too."""
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    k8s_provider: k8s.Provider
    node_role_name: pulumi.Output[str]
    """Karpenter node role *name* (EC2NodeClass spec.role)."""
    karpenter_release: pulumi.Resource
    """The Karpenter controller Helm release: Karpenter CRs depend on it, so they are deleted before it."""
    karpenter_crd_release: pulumi.Resource
    system_ready: list = field(default_factory=list)
    """Resources that must exist before any in-cluster workload (system node group, coredns)."""
    extra: dict = field(default_factory=dict)
    """The foundation components themselves (network, cluster, karpenter), for outputs and tests."""


@dataclass(frozen=True)
class Addons:
    """Issue 3 layer: GPU pools and the cluster add-ons that the model services plug into."""

    gpu_pool_names: list
    """NodePool names (traffic classes) a model can pin to with nodeSelector karpenter.sh/nodepool=<name>."""
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
    extra: Optional[dict] = None
