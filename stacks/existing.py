"""An existing EKS cluster (`cluster.mode: existing`): read it, check what the stack needs from it, and give the
Kubernetes provider a kubeconfig for it. Everything here runs before any resource is declared, so a cluster the
stack cannot use is one config error per problem and nothing is half-created."""

import json
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.gpu_node_pool import DISCOVERY_TAG

from .config import (KARPENTER_MIN_FOR_KUBERNETES, SUPPORTED_KUBERNETES_VERSIONS, ConfigError, NetworkMode,
                     StackConfig, bottlerocket_variant_problems)
from .config.eks_addons import DEFAULT_ADDON_VERSIONS
from .config.errors import NAMESPACE, invoke_reason
from .contracts import ExistingCluster

ACCESS_ENTRY_MODES = ("API", "API_AND_CONFIG_MAP")
"""Authentication modes in which EKS access entries exist (CreateAccessEntry is refused under CONFIG_MAP)."""
USABLE_STATUSES = ("ACTIVE", "UPDATING")
POD_IDENTITY_AGENT = "eks-pod-identity-agent"


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str, profile: Optional[str] = None) -> str:
    """Kubeconfig (JSON) for the cluster with an `aws eks get-token` exec user, the shape pulumi-eks writes for the
    clusters it creates (nodejs/eks/cluster/cluster.ts generateKubeconfig), so `burstctl` and kubectl read both the
    same way. The profile is passed as `--profile`: AWS_PROFILE could be overridden by ambient credentials."""
    args = ["--region", region, "eks", "get-token", "--cluster-name", cluster_name, "--output", "json"]
    if profile:
        args += ["--profile", profile]
    return json.dumps({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"server": endpoint, "certificate-authority-data": ca_data}, "name": "kubernetes"}],
        "contexts": [{"context": {"cluster": "kubernetes", "user": "aws"}, "name": "aws"}],
        "current-context": "aws",
        "kind": "Config",
        "users": [{"name": "aws", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": args,
            "env": [{"name": "KUBERNETES_EXEC_INFO",
                     "value": '{"apiVersion": "client.authentication.k8s.io/v1beta1"}'}],
        }}}],
    })


def _not_found(e: Exception) -> bool:
    text = str(e)
    return any(s in text for s in ("couldn't find resource", "ResourceNotFoundException", "NoSuchEntity",
                                   "no results", "not found"))


class _Lines(list):
    def add(self, key: str, message: str) -> None:
        self.append(f"{NAMESPACE}:{key}: {message}")


def read_existing_cluster(cfg: StackConfig) -> tuple[StackConfig, ExistingCluster]:
    """Read the cluster `cluster.name` and everything the stack needs from it; the config comes back with the
    cluster's Kubernetes version in `cluster.kubernetesVersion`, so every later use sees the real one."""
    c = _describe(cfg)
    name, version, vpc = cfg.cluster.name, c.version, c.vpc_config
    lines = _Lines()
    mode = _control_plane(cfg, c, lines)
    agent = _pod_identity_agent(cfg, name, version, lines)
    subnets = _gpu_subnets(cfg, name, vpc.vpc_id, list(vpc.subnet_ids or []), lines)
    _karpenter_identity(cfg, lines)
    if version in SUPPORTED_KUBERNETES_VERSIONS:
        for path, message in bottlerocket_variant_problems(cfg.gpu, version, f" (the version of cluster '{name}')"):
            lines.add(path, message)
    if lines:
        raise ConfigError(list(lines))
    if not cfg.karpenter.install:
        pulumi.log.info(f"cluster '{name}' runs Kubernetes {version}: its Karpenter must be "
                        f"{KARPENTER_MIN_FOR_KUBERNETES[version]} or later (`burstctl preflight --cluster` checks)")
    oidc = c.identities[0].oidcs if c.identities else []
    existing = ExistingCluster(
        name=name, endpoint=c.endpoint, certificate_authority=c.certificate_authorities[0].data,
        kubernetes_version=version, authentication_mode=mode, security_group_id=vpc.cluster_security_group_id,
        vpc_id=vpc.vpc_id, vpc_cidr=aws.ec2.get_vpc(id=vpc.vpc_id).cidr_block, gpu_subnet_ids=subnets,
        oidc_issuer=(oidc[0].issuer or "") if oidc else "", pod_identity_agent=agent)
    cluster = cfg.cluster.model_copy(update={"kubernetes_version": version})
    return cfg.model_copy(update={"cluster": cluster}), existing


def _describe(cfg: StackConfig):
    name, region = cfg.cluster.name, cfg.region
    try:
        return aws.eks.get_cluster(name=name)
    except Exception as e:  # noqa: BLE001 - the SDK raises a plain Exception for a failed invoke
        raise ConfigError([
            f"{NAMESPACE}:cluster.name: cannot read EKS cluster '{name}' in {region} ({invoke_reason(e)}); allowed: "
            f"the name of a cluster in {region} that these credentials may describe (`aws eks list-clusters "
            f"--region {region}`)"]) from None


def _control_plane(cfg: StackConfig, c, lines: _Lines) -> str:
    """Status, Kubernetes version and (when the stack installs Karpenter) an authentication mode with access
    entries; returns the authentication mode."""
    name, version = cfg.cluster.name, c.version
    if c.status not in USABLE_STATUSES:
        lines.add("cluster.name", f"cluster '{name}' is {c.status}; allowed: an ACTIVE cluster")
    if version not in SUPPORTED_KUBERNETES_VERSIONS:
        lines.add("cluster.name", f"cluster '{name}' runs Kubernetes {version}, which the stack does not support "
                                  f"(GPU AMIs, Karpenter and add-on builds are pinned for "
                                  f"{', '.join(SUPPORTED_KUBERNETES_VERSIONS)}); allowed: a cluster on one of those "
                                  "(upgrade it first)")
    mode = (c.access_configs[0].authentication_mode if c.access_configs else "") or "CONFIG_MAP"
    if cfg.karpenter.install and mode not in ACCESS_ENTRY_MODES:
        lines.add("karpenter.install", f"the stack gives the node role of the Karpenter it installs an EC2_LINUX "
                                       f"access entry, but cluster '{name}' has authenticationMode {mode}, which has "
                                       f"no access entries; allowed: switch the cluster to API_AND_CONFIG_MAP (`aws "
                                       f"eks update-cluster-config --name {name} --access-config "
                                       "authenticationMode=API_AND_CONFIG_MAP`), or install: false with the "
                                       "cluster's own Karpenter")
    return mode


def _pod_identity_agent(cfg: StackConfig, name: str, version: str, lines: _Lines) -> bool:
    """Whether the eks-pod-identity-agent add-on is there. Every Pod Identity association of the stack (model store,
    and the Karpenter and load balancer controllers it installs) needs the agent on the nodes."""
    try:
        aws.eks.get_addon(addon_name=POD_IDENTITY_AGENT, cluster_name=name)
        return True
    except Exception as e:  # noqa: BLE001
        if not _not_found(e):
            lines.add("cluster.installPodIdentityAgent", f"cannot read the {POD_IDENTITY_AGENT} add-on of cluster "
                                                         f"'{name}' ({invoke_reason(e)}); allowed: credentials "
                                                         "that may eks:DescribeAddon")
            return False
    if not cfg.cluster.install_pod_identity_agent:
        build = DEFAULT_ADDON_VERSIONS.get(version, {}).get(POD_IDENTITY_AGENT, "<build>")
        lines.add("cluster.installPodIdentityAgent", f"cluster '{name}' has no {POD_IDENTITY_AGENT} add-on, which the "
                                                     "stack's Pod Identity associations need; allowed: true (the "
                                                     f"stack installs build {build}), or install it yourself (`aws eks "
                                                     f"create-addon --cluster-name {name} --addon-name "
                                                     f"{POD_IDENTITY_AGENT}`)")
    return False


def _route_tables(vpc_id: str) -> tuple[dict, Optional[dict]]:
    """The VPC's route tables: (subnet id → its explicitly associated table, the main table)."""
    by_subnet, main = {}, None
    for rt_id in aws.ec2.get_route_tables(vpc_id=vpc_id).ids:
        rt = aws.ec2.get_route_table(route_table_id=rt_id)
        for a in rt.associations or []:
            if a.main:
                main = rt
            elif a.subnet_id:
                by_subnet[a.subnet_id] = rt
    return by_subnet, main


def _public_route(rt) -> bool:
    """A default route to an internet gateway: instances there without a public IP reach nothing outside."""
    return any((r.cidr_block == "0.0.0.0/0") and (r.gateway_id or "").startswith("igw-") for r in rt.routes or [])


def _subnet_facts(ids: list[str], vpc_id: str) -> dict:
    """subnet id → (VPC id, AZ, why it is not usable for GPU nodes or ''); (None, None, the provider's reason) for a
    subnet that cannot be read."""
    tables, main = _route_tables(vpc_id)
    out = {}
    for sid in ids:
        try:
            s = aws.ec2.get_subnet(id=sid)
        except Exception as e:  # noqa: BLE001
            out[sid] = (None, None, f"cannot be read ({invoke_reason(e)})")
            continue
        rt = tables.get(sid, main)
        why = ""
        if s.map_public_ip_on_launch:
            why = "gives instances public IPs (mapPublicIpOnLaunch)"
        elif rt is not None and _public_route(rt):
            why = "routes 0.0.0.0/0 to an internet gateway"
        out[sid] = (s.vpc_id, s.availability_zone, why)
    return out


def _gpu_subnets(cfg: StackConfig, name: str, vpc_id: str, cluster_subnets: list[str], lines: _Lines) -> list[str]:
    """Private subnets of the cluster's VPC for GPU nodes: those tagged `karpenter.discoveryTag` (the existing
    Karpenter's), else `network.privateSubnetIds`, else the cluster's own subnets that are private (GPU nodes get no
    public IP, so they need a NAT or VPC endpoints: a subnet whose default route is an internet gateway is public)."""
    tag, net = cfg.karpenter.discovery_tag, cfg.network
    if tag:
        flt = [{"name": "vpc-id", "values": [vpc_id]}, {"name": f"tag:{DISCOVERY_TAG}", "values": [tag]}]
        ids = sorted(aws.ec2.get_subnets(filters=flt).ids or [])
        groups = aws.ec2.get_security_groups(filters=flt).ids or []
        if not ids:
            lines.add("karpenter.discoveryTag", f"no subnet of {vpc_id} (the VPC of cluster '{name}') is tagged "
                                                f"{DISCOVERY_TAG}={tag}; allowed: the tag value your Karpenter's "
                                                "EC2NodeClasses select subnets by")
        if not groups:
            lines.add("karpenter.discoveryTag", f"no security group of {vpc_id} is tagged {DISCOVERY_TAG}={tag}, so "
                                                "GPU nodes would get none; allowed: the tag value your Karpenter's "
                                                "EC2NodeClasses select security groups by")
        for sid, (_, _, why) in _subnet_facts(ids, vpc_id).items():
            if why:
                lines.add("karpenter.discoveryTag", f"subnet {sid} is tagged {DISCOVERY_TAG}={tag} but {why}, and GPU "
                                                    "nodes would launch there; allowed: a tag only private subnets "
                                                    "carry")
        return ids
    if net.mode is NetworkMode.EXISTING:
        if net.vpc_id != vpc_id:
            lines.add("network.vpcId", f"'{net.vpc_id}' is not the VPC of cluster '{name}' ({vpc_id}); allowed: "
                                       f"{vpc_id}, or remove gpu-burst:network")
        facts = _subnet_facts(list(net.private_subnet_ids), vpc_id)
        for i, sid in enumerate(net.private_subnet_ids):
            in_vpc, _, why = facts[sid]
            if in_vpc is None:
                lines.add(f"network.privateSubnetIds[{i}]", f"{sid} {why}; allowed: the id of a private subnet of "
                                                            f"{vpc_id} (the VPC of cluster '{name}')")
            elif in_vpc != vpc_id:
                lines.add(f"network.privateSubnetIds[{i}]", f"{sid} is in {in_vpc}, not in {vpc_id} (the VPC of "
                                                            f"cluster '{name}'); allowed: a private subnet of {vpc_id}")
            elif why:
                lines.add(f"network.privateSubnetIds[{i}]", f"{sid} {why}: GPU nodes get no public IP there; "
                                                            "allowed: a private subnet (NAT or VPC endpoints)")
        return list(net.private_subnet_ids)
    facts = _subnet_facts(cluster_subnets, vpc_id)
    private = [sid for sid in cluster_subnets if not facts[sid][2]]
    if not private:
        lines.add("network.privateSubnetIds", f"none of the subnets of cluster '{name}' "
                                              f"({', '.join(cluster_subnets) or 'none'}) is private, so GPU nodes "
                                              "have nowhere to launch; allowed: gpu-burst:network with mode: existing, "
                                              f"vpcId {vpc_id} and privateSubnetIds (private subnets of that VPC)")
    return private


def _karpenter_identity(cfg: StackConfig, lines: _Lines) -> None:
    """The node role or instance profile of an existing Karpenter exists (the EC2NodeClass would stay not Ready)."""
    k = cfg.karpenter
    if k.install:
        return
    key, lookup, what = (("karpenter.nodeRoleName", lambda: aws.iam.get_role(name=k.node_role_name), "IAM role")
                         if k.node_role_name else
                         ("karpenter.nodeInstanceProfile",
                          lambda: aws.iam.get_instance_profile(name=k.node_instance_profile), "instance profile"))
    value = k.node_role_name or k.node_instance_profile
    try:
        lookup()
    except Exception as e:  # noqa: BLE001
        lines.add(key, f"no {what} '{value}' can be read ({invoke_reason(e)}); allowed: the {what} your Karpenter's "
                       "nodes use (`aws eks list-access-entries --cluster-name <cluster>` lists the node roles that "
                       "may join)")
