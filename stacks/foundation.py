"""Foundation layer: network → EKS cluster + system nodes → Karpenter."""

import re
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster import EksCluster, SystemNodeOs
from components.karpenter import Karpenter, KarpenterInterruptionQueue
from components.network import NatMode, Network, regular_zone_filters
from components._common import SYSTEM_NODE_SELECTOR

from .config import ConfigError, NetworkMode, StackConfig
from .config.eks_addons import DEFAULT_ADDON_VERSIONS
from .contracts import ExistingCluster, Foundation
from .existing import POD_IDENTITY_AGENT, kubeconfig


def cluster_name(cfg: StackConfig, prefix: str) -> str:
    """`cluster.name`, or `<prefix>-<stack>`: two stacks of one account and region never collide."""
    if cfg.cluster.name:
        return cfg.cluster.name
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{prefix}-{pulumi.get_stack()}")[:100]


def availability_zones(cfg: StackConfig) -> list[str]:
    """The region's regular AZs (no Local/Wavelength Zones), looked up before any resource is declared, so that an
    `azCount` the region cannot offer is a config error and nothing is half-created."""
    result = aws.get_availability_zones(state="available", filters=regular_zone_filters())
    names = sorted(result.names)
    if len(names) < cfg.network.az_count:
        raise ConfigError([
            f"gpu-burst:network.azCount: {cfg.network.az_count} AZs requested but {cfg.region} has {len(names)} "
            f"({', '.join(names)}; Local and Wavelength Zones are not used); allowed: 2 to {len(names)}"])
    return names


def stack_tags(cfg: StackConfig) -> dict:
    return {"gpu-burst:stack": pulumi.get_stack(), "gpu-burst:environment": cfg.environment, **cfg.cluster.tags}


def build_foundation(cfg: StackConfig, prefix: str, existing: Optional[ExistingCluster] = None) -> Foundation:
    """Declare the network, the EKS cluster with its system node group, and Karpenter; on an existing cluster
    (read before by stacks.existing) only what the stack adds to it."""
    if existing is not None:
        return build_on_existing_cluster(cfg, prefix, existing)
    tags = stack_tags(cfg)
    net_cfg = cfg.network
    if net_cfg.mode is NetworkMode.EXISTING:
        network = Network(prefix, {
            "vpc_id": net_cfg.vpc_id, "private_subnet_ids": net_cfg.private_subnet_ids,
            "public_subnet_ids": net_cfg.public_subnet_ids, "tags": tags,
        })
    else:
        zones = availability_zones(cfg)
        network = Network(prefix, {
            "cidr": net_cfg.cidr, "az_count": net_cfg.az_count, "availability_zones": zones,
            "nat_mode": NatMode(net_cfg.nat_gateways.value),
            "s3_gateway_endpoint": net_cfg.creates_s3_gateway_endpoint,
            "interface_endpoints": net_cfg.interface_endpoints, "tags": tags,
        })

    sysn = cfg.system_nodes
    cluster_args = {}
    if cfg.aws_profile:
        cluster_args["aws_profile"] = cfg.aws_profile
    cluster = EksCluster(prefix, {
        **cluster_args,
        "cluster_name": cluster_name(cfg, prefix),
        "vpc_id": network.vpc_id,
        "private_subnet_ids": network.private_subnet_ids,
        "public_subnet_ids": network.public_subnet_ids,
        "kubernetes_version": cfg.cluster.kubernetes_version,
        "addon_versions": {name.replace("-", "_"): v for name, v in cfg.cluster.eks_addon_versions.items()},
        "system_nodes": {
            "instance_types": sysn.instance_types, "desired_size": sysn.desired_size, "min_size": sysn.min_size,
            "max_size": sysn.max_size, "os": SystemNodeOs(sysn.ami.value), "disk_size_gib": sysn.disk_size_gib,
            **({"release_version": sysn.release_version} if sysn.release_version else {}),
        },
        "endpoint_public_access": cfg.cluster.endpoint_public_access,
        "public_access_cidrs": cfg.cluster.public_access_cidrs,
        "enabled_log_types": [t.value for t in cfg.cluster.enabled_log_types],
        "log_retention_days": cfg.cluster.log_retention_days,
        "admin_principal_arns": list(cfg.cluster.admin_principal_arns),
        "access_entries": [{"principal_arn": e.principal_arn, "policy": e.policy.value, "namespaces": list(e.namespaces)}
                           for e in cfg.cluster.access_entries],
        "tags": tags,
    }, pulumi.ResourceOptions(depends_on=network.egress))
    if net_cfg.mode is NetworkMode.EXISTING and not net_cfg.tag_existing_subnets:
        discovery = []
    else:
        discovery = network.tag_for_discovery(
            cluster.cluster_name, extra_resource_ids=[cluster.cluster_security_group_id],
            count=len(net_cfg.private_subnet_ids) if net_cfg.mode is NetworkMode.EXISTING else None,
        )

    karpenter = Karpenter(prefix, {
        "cluster_name": cluster.cluster_name,
        "cluster_endpoint": cluster.cluster_endpoint,
        "chart_version": cfg.karpenter.chart_version,
        "replicas": cfg.karpenter_replicas,
        "node_selector": dict(SYSTEM_NODE_SELECTOR),
        "log_level": cfg.karpenter.log_level,
        "controller_cpu": cfg.karpenter.controller_cpu,
        "controller_memory": cfg.karpenter.controller_memory,
        "create_spot_service_linked_role": cfg.karpenter.create_spot_service_linked_role,
        "tags": tags,
        **({"node_overlay": True} if cfg.gpu.slice_counts else {}),
    }, pulumi.ResourceOptions(
        provider=cluster.provider,
        depends_on=[cluster.pod_identity_agent, cluster.coredns, *discovery],
    ))
    return Foundation(
        cfg=cfg,
        cluster_name=cluster.cluster_name,
        cluster_security_group_id=cluster.cluster_security_group_id,
        vpc_id=network.vpc_id,
        vpc_cidr=network.vpc_cidr,
        k8s_provider=cluster.provider,
        node_role_name=karpenter.node_role_name,
        karpenter_release=karpenter.release,
        karpenter_crd_release=karpenter.crd_release,
        system_ready=[cluster.coredns],
        kubeconfig=cluster.kubeconfig,
        karpenter_interruption_queue=karpenter.interruption_queue_name,
        private_subnet_ids=network.private_subnet_ids,
        control_plane_log_group=cluster.log_group_name,
        s3_endpoint_id=network.s3_endpoint_id,
        system_node_selector=dict(SYSTEM_NODE_SELECTOR),
        discovery_tag=cluster.cluster_name,
    )


def build_on_existing_cluster(cfg: StackConfig, prefix: str, c: ExistingCluster) -> Foundation:
    """An existing cluster: no VPC, cluster, system nodes or core add-ons; a Kubernetes provider for it, the
    eks-pod-identity-agent add-on if it lacks one (and that is allowed), and Karpenter unless it runs already."""
    tags = stack_tags(cfg)
    kubeconfig_json = kubeconfig(c.name, c.endpoint, c.certificate_authority, cfg.region, cfg.aws_profile)
    provider = k8s.Provider(f"{prefix}-k8s", kubeconfig=kubeconfig_json)
    ready = _pod_identity_agent(prefix, c, tags)
    selector = dict(cfg.cluster.system_node_selector or {})
    discovery = cfg.karpenter.discovery_tag
    out = pulumi.Output.from_input
    return Foundation(
        cfg=cfg, cluster_name=out(c.name), cluster_security_group_id=out(c.security_group_id), vpc_id=out(c.vpc_id),
        vpc_cidr=out(c.vpc_cidr), private_subnet_ids=out(list(c.gpu_subnet_ids)), k8s_provider=provider,
        kubeconfig=out(kubeconfig_json), control_plane_log_group=out(""), system_ready=ready,
        system_node_selector=selector, existing=c,
        # An existing Karpenter's tag selects subnets and security groups; else the private subnets, by id.
        discovery_tag=discovery, gpu_subnet_ids=None if discovery else list(c.gpu_subnet_ids),
        **_karpenter_on(cfg, prefix, c, selector, tags, pulumi.ResourceOptions(provider=provider, depends_on=ready)),
    )


def _pod_identity_agent(prefix: str, c: ExistingCluster, tags: dict) -> list:
    """The eks-pod-identity-agent add-on when the cluster lacks it (config checked it may be installed): first, as
    everything with Pod Identity credentials (Karpenter, the LBC, the model store's Jobs) needs it."""
    if c.pod_identity_agent:
        return []
    return [aws.eks.Addon(
        f"{prefix}-pod-identity-agent", cluster_name=c.name, addon_name=POD_IDENTITY_AGENT,
        addon_version=DEFAULT_ADDON_VERSIONS[c.kubernetes_version][POD_IDENTITY_AGENT],
        # Never OVERWRITE: a self-managed agent's configuration is its owner's.
        resolve_conflicts_on_create="NONE", resolve_conflicts_on_update="NONE", tags=tags)]


def _karpenter_on(cfg: StackConfig, prefix: str, c: ExistingCluster, selector: dict, tags: dict,
                  opts: pulumi.ResourceOptions) -> dict:
    """The Foundation's Karpenter fields: the Karpenter the stack installs, or the node identity of the one the
    cluster runs (and its interruption queue, only if asked for)."""
    k = cfg.karpenter
    if not k.install:
        queue = (KarpenterInterruptionQueue(prefix, {"tags": tags}).queue_name if k.interruption_queue
                 else pulumi.Output.from_input(""))
        return {"node_role_name": pulumi.Output.from_input(k.node_role_name or ""),
                "node_instance_profile": k.node_instance_profile or "", "karpenter_release": None,
                "karpenter_crd_release": None, "karpenter_interruption_queue": queue}
    karpenter = Karpenter(prefix, {
        "cluster_name": c.name, "cluster_endpoint": c.endpoint, "chart_version": k.chart_version,
        "replicas": cfg.karpenter_replicas, "node_selector": selector, "log_level": k.log_level,
        "controller_cpu": k.controller_cpu, "controller_memory": k.controller_memory,
        "create_spot_service_linked_role": k.create_spot_service_linked_role, "tags": tags,
        **({"node_overlay": True} if cfg.gpu.slice_counts else {}),
    }, opts)
    return {"node_role_name": karpenter.node_role_name, "karpenter_release": karpenter.release,
            "karpenter_crd_release": karpenter.crd_release,
            "karpenter_interruption_queue": karpenter.interruption_queue_name}
