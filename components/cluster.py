"""The EKS control plane, the managed system node group and the core EKS add-ons."""

import json
from enum import Enum
from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import SYSTEM_NODE_SELECTOR, child, deps_of, token

SYSTEM_NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly",
                        "AmazonSSMManagedInstanceCore")
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
"""EKS access policies are ARNs `arn:<partition>:eks::aws:cluster-access-policy/<name>`."""


def log_group_name(cluster_name: str) -> str:
    """The log group EKS writes control-plane logs to (https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html)."""
    return f"/aws/eks/{cluster_name}/cluster"


class AccessEntrySpec(TypedDict):
    """One principal's access to the Kubernetes API: an access entry with one access policy."""

    principal_arn: str
    """IAM role or user ARN (not an STS assumed-role session ARN)."""
    policy: str
    """Access policy name, e.g. AmazonEKSViewPolicy."""
    namespaces: NotRequired[list[str]]
    """Namespaces the policy applies to; empty or absent: the whole cluster."""


class SystemNodeOs(str, Enum):
    """Operating system of the system node group."""

    AL2023 = "al2023"
    BOTTLEROCKET = "bottlerocket"


class SystemNodeGroupArgs(TypedDict):
    """Shape of the managed system node group."""

    instance_types: list[str]
    """On-demand instance types, e.g. m6i.large."""
    desired_size: int
    """Initial node count (also the count Karpenter's replicas are sized against)."""
    min_size: int
    """Minimum node count."""
    max_size: int
    """Maximum node count."""
    os: NotRequired[SystemNodeOs]
    """al2023 (default) or bottlerocket."""
    disk_size_gib: NotRequired[int]
    """Root volume size. Default 50."""
    release_version: NotRequired[str]
    """AMI release of the nodes (`aws eks describe-nodegroup` releaseVersion, e.g. 1.35.3-20261118). Default: the
    newest for the Kubernetes version when the group is created or its version changes, chosen by EKS."""


class EksAddonVersions(TypedDict):
    """The build of each EKS add-on (`aws eks describe-addon-versions`), e.g. v1.22.4-eksbuild.3. Given, never looked
    up: left out, pulumi-eks resolves the newest vpc-cni and kube-proxy on every run and EKS picks one for the rest."""

    vpc_cni: str
    """vpc-cni build."""
    kube_proxy: str
    """kube-proxy build (its minor is the cluster's Kubernetes minor)."""
    coredns: str
    """coredns build."""
    eks_pod_identity_agent: str
    """eks-pod-identity-agent build."""


class EksClusterArgs(TypedDict):
    """Inputs for EksCluster."""

    cluster_name: str
    """EKS cluster name. Chosen, not auto-named: the control-plane log group is named after it and must exist first."""

    vpc_id: pulumi.Input[str]
    """VPC of the cluster."""
    private_subnet_ids: pulumi.Input[list[str]]
    """Subnets of the control-plane ENIs and every node (nodes never get public IPs)."""
    public_subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """Subnets for internet-facing load balancers."""
    kubernetes_version: str
    """EKS version, e.g. 1.35 (must be one Karpenter 1.14 supports)."""
    addon_versions: EksAddonVersions
    """Builds of the vpc-cni, kube-proxy, coredns and eks-pod-identity-agent add-ons for kubernetes_version."""
    system_nodes: SystemNodeGroupArgs
    """The managed node group that runs Karpenter, KEDA, Prometheus and the gateway."""
    endpoint_public_access: NotRequired[bool]
    """Expose the API server endpoint publicly (the private endpoint is always on). Default true."""
    public_access_cidrs: NotRequired[list[str]]
    """CIDRs allowed to reach the public endpoint."""
    enabled_log_types: NotRequired[list[str]]
    """Control-plane log types sent to CloudWatch (api, audit, authenticator, controllerManager, scheduler)."""
    log_retention_days: NotRequired[int]
    """Retention of the control-plane log group. Default 30."""
    admin_principal_arns: NotRequired[list[str]]
    """IAM principals given cluster-admin through access entries (the creator always is)."""
    access_entries: NotRequired[list[AccessEntrySpec]]
    """Other principals with one access policy each (e.g. a CI preview role)."""
    aws_profile: NotRequired[str]
    """AWS CLI profile the kubeconfig's `aws eks get-token` uses (the stack's `aws:profile`)."""
    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Tags for every resource."""


def _check_system_nodes(name: str, sys_args: SystemNodeGroupArgs) -> None:
    if not sys_args["min_size"] <= sys_args["desired_size"] <= sys_args["max_size"]:
        raise ValueError(f"EksCluster '{name}': need min_size <= desired_size <= max_size")



class EksCluster(pulumi.ComponentResource):
    """EKS in standard support only (upgrade policy STANDARD), access entries only (authentication mode API), no
    default node group or pulumi-eks security groups, control-plane logs in a log group the stack owns (retention,
    removed on destroy), a managed on-demand system node group labelled for controllers, the vpc-cni, kube-proxy,
    eks-pod-identity-agent and coredns add-ons (coredns only after the node group exists, else it degrades), and a
    Kubernetes provider for the rest. Pass the network's egress (`Network.egress`) in `opts.depends_on`."""

    cluster_name: pulumi.Output[str]
    """Real EKS cluster name: the chosen `cluster_name`, as an Output of the cluster (depend on it, not the string)."""
    cluster_endpoint: pulumi.Output[str]
    """API server endpoint."""
    cluster_security_group_id: pulumi.Output[str]
    """EKS-created cluster security group (attached to the control plane and every managed node)."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig (JSON) using `aws eks get-token` (with the stack's AWS profile, if any)."""
    log_group_name: pulumi.Output[str]
    """Control-plane log group ('' when no log type is enabled)."""

    def __init__(self, name: str, args: EksClusterArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("EksCluster"), name, None, opts)
        # The network's egress (opts.depends_on): nodes need it to join, controllers on them to call AWS until the end.
        egress = deps_of(opts)
        tags = args.get("tags") or {}
        _check_system_nodes(name, args["system_nodes"])
        access_entries = self._access_entries(args)
        log_group = self._control_plane_logs(name, args, tags)
        self._control_plane(name, args, tags, access_entries, log_group)
        self._pod_identity_agent(name, args, tags)
        self._system_nodes(name, args, tags, egress)
        self._coredns(name, args, tags)
        self._kubernetes_provider(name, egress)
        self._outputs()

    def _access_entries(self, args: EksClusterArgs) -> dict:
        """pulumi-eks access entries: the extra cluster admins, then the other principals with one policy each."""
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        entries: list[AccessEntrySpec] = [
            {"principal_arn": arn, "policy": CLUSTER_ADMIN_POLICY} for arn in args.get("admin_principal_arns") or []]
        entries += list(args.get("access_entries") or [])
        return {
            f"entry-{i}": eks.AccessEntryArgs(
                principal_arn=e["principal_arn"],
                type=eks.AccessEntryType.STANDARD,
                access_policies={e["policy"]: eks.AccessPolicyAssociationArgs(
                    policy_arn=partition.apply(lambda p, n=e["policy"]: f"arn:{p}:eks::aws:cluster-access-policy/{n}"),
                    access_scope=(aws.eks.AccessPolicyAssociationAccessScopeArgs(
                        type="namespace", namespaces=list(e["namespaces"])) if e.get("namespaces")
                        else aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster")),
                )},
            )
            for i, e in enumerate(entries)
        }

    def _control_plane_logs(self, name: str, args: EksClusterArgs, tags) -> list:
        """The control-plane log group, when a log type is enabled. Returns what the cluster waits for."""
        self.log_group_name = pulumi.Output.from_input("")
        if not args.get("enabled_log_types"):
            return []
        # EKS creates this group on first write, with no retention, and `destroy` would leave it behind.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=log_group_name(args["cluster_name"]),
            retention_in_days=args.get("log_retention_days", 30),
            tags=tags,
            opts=child(self),
        )
        self.log_group_name = log_group.name
        return [log_group]

    def _control_plane(self, name: str, args: EksClusterArgs, tags, access_entries: dict, cluster_deps: list) -> None:
        """The pulumi-eks Cluster: standard support, access entries only, no default node group or security groups,
        the vpc-cni and kube-proxy add-ons pinned (coredns comes after the system nodes)."""
        versions = args["addon_versions"]
        log_types = args.get("enabled_log_types") or []
        kubeconfig_opts = {}
        if args.get("aws_profile"):
            kubeconfig_opts["provider_credential_opts"] = eks.KubeconfigOptionsArgs(profile_name=args["aws_profile"])
        self.cluster = eks.Cluster(
            f"{name}-eks",
            name=args["cluster_name"],
            version=args["kubernetes_version"],
            # EXTENDED (the AWS default) bills six times the control-plane price once standard support ends.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            vpc_id=args["vpc_id"],
            private_subnet_ids=args["private_subnet_ids"],
            public_subnet_ids=args.get("public_subnet_ids"),
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=access_entries or None,
            skip_default_node_group=True,
            # Managed nodes use the EKS-created cluster security group; pulumi-eks' own groups would be unused.
            skip_default_security_groups=True,
            endpoint_private_access=True,
            endpoint_public_access=args.get("endpoint_public_access", True),
            public_access_cidrs=args.get("public_access_cidrs") if args.get("endpoint_public_access", True) else None,
            enabled_cluster_log_types=log_types or None,
            # Pinned: without a version pulumi-eks resolves the newest build for the cluster version on every run.
            vpc_cni_options=eks.VpcCniOptionsArgs(
                addon_version=versions["vpc_cni"],
                resolve_conflicts_on_update=eks.ResolveConflictsOnUpdate.OVERWRITE),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(
                version=versions["kube_proxy"],
                resolve_conflicts_on_update=eks.ResolveConflictsOnUpdate.OVERWRITE),
            # Created below, after the system nodes exist: with no nodes the add-on times out DEGRADED.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            tags=tags,
            opts=child(self, depends_on=cluster_deps),
            **kubeconfig_opts,
        )
        eks_cluster = self.cluster.eks_cluster
        self.cluster_name = eks_cluster.name
        self.cluster_endpoint = eks_cluster.endpoint
        self.cluster_security_group_id = eks_cluster.vpc_config.cluster_security_group_id

    def _pod_identity_agent(self, name: str, args: EksClusterArgs, tags) -> None:
        # Before any node: Karpenter's credentials depend on it (TF: before_compute).
        self.pod_identity_agent = aws.eks.Addon(
            f"{name}-pod-identity-agent",
            cluster_name=self.cluster_name,
            addon_name="eks-pod-identity-agent",
            addon_version=args["addon_versions"]["eks_pod_identity_agent"],
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=child(self),
        )

    def _system_nodes(self, name: str, args: EksClusterArgs, tags, egress: list) -> None:
        """The managed on-demand node group that runs the controllers, with its node role."""
        sys_args = args["system_nodes"]
        self.system_role = aws.iam.Role(
            f"{name}-system-nodes",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            description="EKS managed system node group",
            tags=tags,
            opts=child(self),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-system-nodes-{p}", role=self.system_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{p}", opts=child(self),
            )
            for p in SYSTEM_NODE_POLICIES
        ]
        os_ = sys_args.get("os", SystemNodeOs.AL2023)
        self.system_nodes = eks.ManagedNodeGroup(
            f"{name}-system",
            cluster=self.cluster,
            node_role=self.system_role,
            instance_types=sys_args["instance_types"],
            capacity_type="ON_DEMAND",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=sys_args["desired_size"], min_size=sys_args["min_size"], max_size=sys_args["max_size"],
            ),
            subnet_ids=args["private_subnet_ids"],
            labels=dict(SYSTEM_NODE_SELECTOR),
            disk_size=sys_args.get("disk_size_gib", 50),
            # Explicit (pulumi-eks would default it to the cluster's): systemNodes.releaseVersion is checked against it.
            version=args["kubernetes_version"],
            **({"release_version": sys_args["release_version"]} if sys_args.get("release_version") else {}),
            operating_system=(eks.OperatingSystem.BOTTLEROCKET if os_ == SystemNodeOs.BOTTLEROCKET
                              else eks.OperatingSystem.AL2023),
            tags=tags,
            opts=child(self, depends_on=[*attachments, self.pod_identity_agent, *egress]),
        )

    def _coredns(self, name: str, args: EksClusterArgs, tags) -> None:
        self.coredns = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=self.cluster_name,
            addon_name="coredns",
            addon_version=args["addon_versions"]["coredns"],
            # EKS bootstraps a self-managed CoreDNS; take it over instead of failing on the conflict.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=child(self, depends_on=[self.system_nodes]),
        )

    def _kubernetes_provider(self, name: str, egress: list) -> None:
        self.kubeconfig = self.cluster.kubeconfig_json
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Resources wait for the system nodes: nothing in-cluster can run before them.
            opts=child(self, depends_on=[self.system_nodes, *egress]),
        )

    def _outputs(self) -> None:
        self.register_outputs({
            "cluster_name": self.cluster_name, "cluster_endpoint": self.cluster_endpoint,
            "cluster_security_group_id": self.cluster_security_group_id, "kubeconfig": self.kubeconfig,
            "log_group_name": self.log_group_name,
        })
