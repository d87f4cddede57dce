"""Config sections for the AWS foundation: network, EKS cluster, system node group and Karpenter."""

import ipaddress
import re
from enum import Enum
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from .base import (CREATE_MODES, INSTALL_MODES, Cidr, CpuQuantity, LabelMap, MemoryQuantity, Problems, Strict,
                   pattern_type, refuse_other_mode_keys, repeats)
from .eks_addons import AddonVersionsConfig, addon_version_problems, resolved_addon_versions

SUPPORTED_KUBERNETES_VERSIONS = ("1.35", "1.36")
"""EKS versions in *standard* support that have AL2023 NVIDIA AMIs (amazon-eks-node-al2023-x86_64-nvidia-1.35/1.36 in
awslabs/amazon-eks-ami release v20260714) and that Karpenter 1.14 supports. A version is in standard support for 14
months after its EKS release, then in extended support at six times the control-plane price
(https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html): 1.33 left standard support on
2026-07-29 and 1.34 leaves it on 2026-12-02 (https://endoflife.date/amazon-eks); 1.35 is in it until 2027-03-27."""

LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)
"""Values CloudWatch Logs accepts for a log group's retention (PutRetentionPolicy `retentionInDays`)."""

_PARTITION = r"aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f|-eusc)?"
_IAM_PRINCIPAL = re.compile(rf"^arn:{_PARTITION}:iam::\d{{12}}:(role|user)/[\w+=,.@/-]+$", re.ASCII)
_ASSUMED_ROLE = re.compile(rf"^arn:(?P<p>{_PARTITION}):sts::(?P<a>\d{{12}}):assumed-role/(?P<r>[\w+=,.@-]+)/.+$",
                           re.ASCII)


def principal_arn(v: str) -> str:
    """An IAM role or user ARN as EKS access entries take it. An STS assumed-role ARN (what `aws sts
    get-caller-identity` prints under an assumed role) is refused with the role ARN to use instead."""
    m = _ASSUMED_ROLE.match(v)
    if m:
        raise ValueError(
            f"'{v}' is an STS assumed-role session, not a principal an access entry can name; allowed: the role "
            f"itself, arn:{m['p']}:iam::{m['a']}:role/{m['r']} (insert the role's path after role/ if it has one)")
    if not _IAM_PRINCIPAL.match(v):
        raise ValueError(f"'{v}' is not an IAM role or user ARN; allowed: "
                         "arn:<partition>:iam::<12-digit account>:role/<name> or "
                         "arn:<partition>:iam::<12-digit account>:user/<name>")
    return v


def access_entry_principal(caller_arn: str) -> Optional[str]:
    """The IAM principal an EKS access entry names for an identity `aws sts get-caller-identity` prints: an
    assumed-role session is its role (without the role's path, which the session ARN does not carry), an IAM user
    itself; None for anything else (the root user, a federated user)."""
    m = _ASSUMED_ROLE.match(caller_arn)
    if m:
        return f"arn:{m['p']}:iam::{m['a']}:role/{m['r']}"
    return caller_arn if _IAM_PRINCIPAL.match(caller_arn) else None


def same_principal(a: str, b: str) -> bool:
    """Whether two IAM role or user ARNs name the same principal. A role or user name is unique in its account
    whatever its path, and an assumed-role session ARN drops the path: compare partition, account, kind, name."""
    def key(arn: str) -> tuple:
        head, _, resource = arn.partition(":iam::")
        account, _, path = resource.partition(":")
        kind, _, rest = path.partition("/")
        return head, account, kind, rest.rsplit("/", 1)[-1]

    return _IAM_PRINCIPAL.match(a) is not None and _IAM_PRINCIPAL.match(b) is not None and key(a) == key(b)


PrincipalArn = Annotated[str, AfterValidator(principal_arn)]
"""An IAM role or user ARN (what an EKS access entry names)."""


def _public_cidr(v: str) -> str:
    net = ipaddress.ip_network(v, strict=False)
    if not net.is_global:
        raise ValueError(
            f"'{v}' is a private, documentation or otherwise reserved range that never appears as a source address on "
            "the public endpoint (RFC 1918/5737/6598/3849 ...); allowed: your CI and VPN egress CIDRs, or 0.0.0.0/0")
    if net.version != 4:
        raise ValueError(f"'{v}' is IPv6; allowed: IPv4 CIDRs (the EKS public endpoint allow-list is IPv4 only)")
    return v


class NetworkMode(str, Enum):
    CREATE = "create"
    EXISTING = "existing"


class ClusterMode(str, Enum):
    CREATE = "create"
    """The stack creates the EKS cluster, its system node group and core add-ons."""
    EXISTING = "existing"
    """The stack installs onto an EKS cluster it reads by name and never changes (stacks/existing.py)."""


class NatGateways(str, Enum):
    SINGLE = "single"
    PER_AZ = "perAz"


class NodeAmi(str, Enum):
    AL2023 = "al2023"
    BOTTLEROCKET = "bottlerocket"


# EC2 resource ids: the prefix, then 8 (older resources) or 17 lowercase hex digits.
_VPC_ID = pattern_type(r"vpc-([0-9a-f]{8}|[0-9a-f]{17})", "a VPC id", "vpc-0a1b2c3d4e5f67890")
_SUBNET_ID = pattern_type(r"subnet-([0-9a-f]{8}|[0-9a-f]{17})", "a subnet id", "subnet-0a1b2c3d4e5f67890")


class NetworkConfig(Strict):
    """`gpu-burst:network` — create a 3-AZ VPC, or adopt an existing one."""

    mode: NetworkMode = NetworkMode.CREATE
    cidr: str = "10.0.0.0/16"
    az_count: Annotated[int, Field(ge=2, le=6)] = 3
    nat_gateways: NatGateways = NatGateways.SINGLE
    vpc_id: Optional[_VPC_ID] = None
    """Existing VPC (mode existing)."""
    private_subnet_ids: list[_SUBNET_ID] = []
    """Existing private subnets for the nodes, in at least 2 AZs (mode existing)."""
    public_subnet_ids: list[_SUBNET_ID] = []
    """Existing public subnets for internet-facing load balancers (mode existing, optional)."""
    tag_existing_subnets: bool = True
    s3_gateway_endpoint: Optional[bool] = None
    """Mode create: route the private subnets' S3 traffic (model weights, compile cache, ECR image layers) through a
    free S3 gateway endpoint instead of the NAT gateway, which bills every GB. Default true; false keeps every byte
    on the NAT (e.g. when egress must pass an inspection firewall). Mode existing never changes the adopted VPC's
    routing."""

    interface_endpoints: bool = False
    """Mode create: interface endpoints with private DNS in the private subnets for ecr.api, ecr.dkr, sts and eks-auth,
    so those API calls of a cold start need no NAT. Costs about $0.01 per endpoint, AZ and hour (4 endpoints x 3 AZs
    is ~$88 a month) plus $0.01 per GB (https://aws.amazon.com/privatelink/pricing/). Default false."""

    @property
    def creates_s3_gateway_endpoint(self) -> bool:
        """Whether the stack adds the S3 gateway endpoint (mode create, unless turned off)."""
        return self.mode is NetworkMode.CREATE and self.s3_gateway_endpoint is not False

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            net = ipaddress.ip_network(v)
        except ValueError:
            raise ValueError(f"'{v}' is not a CIDR block; allowed: an IPv4 block with a prefix from /16 to /20, "
                             "e.g. 10.0.0.0/16") from None
        if net.version != 4:
            raise ValueError(f"'{v}' is IPv6; allowed: an IPv4 block with a prefix from /16 to /20, e.g. 10.0.0.0/16")
        if not 16 <= net.prefixlen <= 20:
            raise ValueError(f"'{v}' has the wrong size; allowed: an IPv4 block with a prefix from /16 to /20, "
                             "e.g. 10.0.0.0/16")
        return v

    CREATE_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        "cidr": ("the adopted VPC keeps its own CIDR", "remove it"),
        "az_count": ("the nodes use the AZs of privateSubnetIds", "remove it"),
        "nat_gateways": ("an adopted VPC's egress is its owner's", "remove it"),
        # EC2 refuses a second S3 gateway endpoint on a route table that has one, and the adopted route tables are
        # not the stack's to change.
        "s3_gateway_endpoint": ("an adopted VPC's route tables are its owner's", "remove it, and give the adopted "
                                "VPC's private route tables an S3 gateway endpoint yourself"),
        # Private DNS of a second endpoint for a service the VPC already has one for is refused by EC2.
        "interface_endpoints": ("an adopted VPC's endpoints and DNS are its owner's", "remove it"),
    }
    """Keys only mode create reads (field name → why an adopted VPC ignores it, what to do instead)."""
    EXISTING_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        key: ("", "remove it, or set mode: existing")
        for key in ("vpc_id", "private_subnet_ids", "public_subnet_ids", "tag_existing_subnets")}
    """Keys only mode existing reads."""

    @model_validator(mode="after")
    def _mode(self):
        p = Problems()
        if self.mode is NetworkMode.EXISTING:
            if not self.vpc_id:
                p.add("vpcId", "required when mode is 'existing'; allowed: the id of the VPC to adopt, e.g. "
                               "vpc-0a1b2c3d4e5f67890")
            if len(self.private_subnet_ids) < 2:
                n = len(self.private_subnet_ids)
                p.add("privateSubnetIds", f"lists {n} subnet{'' if n == 1 else 's'}; allowed: at least 2, in "
                                          "different AZs, when mode is 'existing'")
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _keys_of_the_other_mode(self):
        # Its own validator: it reads only the mode and which keys were written, so an invalid vpcId does not hide it.
        refuse_other_mode_keys(self, self.mode is NetworkMode.EXISTING, self.CREATE_ONLY, self.EXISTING_ONLY,
                               CREATE_MODES)
        return self

    @model_validator(mode="after")
    def _distinct_subnets(self):
        p = Problems()
        for key, ids in (("privateSubnetIds", self.private_subnet_ids), ("publicSubnetIds", self.public_subnet_ids)):
            for i, first in repeats(ids):
                p.add(f"{key}[{i}]", f"'{ids[i]}' is listed twice ({key}[{first}]); allowed: each subnet once")
        private = set(self.private_subnet_ids)
        for i, sid in enumerate(self.public_subnet_ids):
            if sid in private:
                # one subnet cannot carry both kubernetes.io/role/elb and internal-elb roles for its route table
                p.add(f"publicSubnetIds[{i}]", f"'{sid}' is also a private subnet; allowed: a subnet is either private "
                                               "(nodes) or public (internet-facing load balancers), not both")
        p.raise_if_any()
        return self


class LogType(str, Enum):
    API = "api"
    AUDIT = "audit"
    AUTHENTICATOR = "authenticator"
    CONTROLLER_MANAGER = "controllerManager"
    SCHEDULER = "scheduler"


class AccessPolicy(str, Enum):
    """EKS access policies an access entry can be associated with (`aws eks list-access-policies`)."""

    CLUSTER_ADMIN = "AmazonEKSClusterAdminPolicy"
    ADMIN = "AmazonEKSAdminPolicy"
    EDIT = "AmazonEKSEditPolicy"
    VIEW = "AmazonEKSViewPolicy"


class AccessEntryConfig(Strict):
    """One more principal with access to the Kubernetes API, e.g. the CI role that runs `pulumi preview`."""

    principal_arn: PrincipalArn
    """IAM role or user ARN, e.g. arn:aws:iam::123456789012:role/ci-preview."""
    policy: AccessPolicy = AccessPolicy.VIEW
    """EKS access policy of the entry."""
    namespaces: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]] = []
    """Scope of the policy: these namespaces; empty means the whole cluster."""

    @model_validator(mode="after")
    def _scope(self):
        if self.policy is AccessPolicy.CLUSTER_ADMIN and self.namespaces:
            raise Problems(("namespaces", "AmazonEKSClusterAdminPolicy is cluster-scoped; allowed: no namespaces, or "
                                          "policy AmazonEKSAdminPolicy for namespace-scoped admin"))
        return self


_CLUSTER_NAME = pattern_type(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}", "an EKS cluster name (letters, digits, '-', '_'; at "
                             "most 100)", "gpu-burst-prod")


class ClusterConfig(Strict):
    """`gpu-burst:cluster` — the EKS control plane: created by the stack, or an existing cluster it installs onto."""

    mode: ClusterMode = ClusterMode.CREATE
    """create: the stack creates the cluster; existing: install onto the EKS cluster `name`, read before anything
    is declared and never changed (no VPC, cluster, system node group or core add-ons are created)."""
    name: Optional[_CLUSTER_NAME] = None
    """EKS cluster name; mode create: default `gpu-burst-<stack>` (chosen, not auto-named, because the control-plane
    log group `/aws/eks/<name>/cluster` must exist before the cluster); mode existing: the cluster to install onto."""
    system_node_selector: Optional[LabelMap] = None
    """Mode existing: nodeSelector of every controller the stack installs (Karpenter, KEDA, the HTTP add-on,
    Prometheus, Envoy and the edge controllers), e.g. {eks.amazonaws.com/nodegroup: system}; {} lets them run on any
    untainted node. Mode create pins them to the system node group the stack creates."""
    install_pod_identity_agent: bool = False
    """Mode existing: install the eks-pod-identity-agent EKS add-on (the build for the cluster's Kubernetes version)
    when the cluster has none; the stack's Pod Identity associations need it. Default false: its absence is an
    error."""
    kubernetes_version: Literal[SUPPORTED_KUBERNETES_VERSIONS] = "1.35"  # type: ignore[valid-type]
    addon_versions: AddonVersionsConfig = AddonVersionsConfig()
    """Builds of the EKS add-ons (vpc-cni, kube-proxy, coredns, eks-pod-identity-agent) that override the defaults
    for kubernetesVersion; nothing looks up a newest build at deploy time."""
    endpoint_public_access: bool = True
    public_access_cidrs: list[Annotated[Cidr, AfterValidator(_public_cidr)]] = ["0.0.0.0/0"]
    """Source CIDRs allowed to reach the public endpoint (requests still need an IAM-authenticated token)."""
    enabled_log_types: list[LogType] = []
    log_retention_days: int = 30
    """Retention (days) of the control-plane log group the stack creates, so `destroy` removes it."""
    admin_principal_arns: list[PrincipalArn] = []
    """More cluster admins (IAM role or user ARNs). The principal that runs `pulumi up` already is one."""
    access_entries: list[AccessEntryConfig] = []
    """Other principals, each with one access policy and scope (e.g. a CI preview role with AmazonEKSViewPolicy)."""
    tags: dict[str, str] = {}
    """Tags added to every AWS resource of the stack."""

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        # AWS reserves the aws: prefix (any case) for its own tags and rejects user tags that use it; key up to 128
        # and value up to 256 characters (https://docs.aws.amazon.com/tag-editor/latest/userguide/best-practices-and-strats.html)
        p = Problems()
        for k, val in v.items():
            if k.lower().startswith("aws:"):
                p.add(k, "starts with 'aws:', which AWS reserves for its own tags; allowed: any other key, e.g. "
                         "team or gpu-burst/owner")
            elif not 1 <= len(k) <= 128:
                p.add(k, f"is {len(k)} characters long; allowed: 1 to 128")
            if len(val) > 256:
                p.add(k, f"value is {len(val)} characters long; allowed: at most 256")
        p.raise_if_any()
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"{v} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return v

    CREATE_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        "kubernetes_version": ("the version is read from the existing cluster", "remove it"),
        "addon_versions": ("the existing cluster's add-ons are its owner's", "remove it"),
        "endpoint_public_access": ("the existing cluster's endpoint is its owner's", "remove it"),
        "public_access_cidrs": ("the existing cluster's endpoint is its owner's", "remove it"),
        "enabled_log_types": ("the existing cluster's logging is its owner's", "remove it"),
        "log_retention_days": ("the existing cluster's log group is its owner's", "remove it"),
        "admin_principal_arns": ("the existing cluster's access entries are its owner's", "remove it, and give "
                                 "those principals access yourself"),
        "access_entries": ("the existing cluster's access entries are its owner's", "remove it, and give those "
                           "principals access yourself"),
    }
    """Keys only mode create reads (field name → why an existing cluster ignores it, what to do instead)."""
    EXISTING_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        "system_node_selector": ("the stack's own system node group is labelled for its controllers",
                                 "remove it, or set mode: existing"),
        "install_pod_identity_agent": ("the stack installs the agent on the cluster it creates",
                                       "remove it, or set mode: existing"),
    }
    """Keys only mode existing reads."""

    @model_validator(mode="after")
    def _keys_of_the_other_mode(self):
        refuse_other_mode_keys(self, self.mode is ClusterMode.EXISTING, self.CREATE_ONLY, self.EXISTING_ONLY,
                               CREATE_MODES)
        return self

    @model_validator(mode="after")
    def _existing_needs(self):
        if self.mode is not ClusterMode.EXISTING:
            return self
        p = Problems()
        if not self.name:
            p.add("name", "required when mode is 'existing'; allowed: the name of the EKS cluster to install onto "
                          "(`aws eks list-clusters`)")
        if self.system_node_selector is None:
            p.add("systemNodeSelector", "required when mode is 'existing'; allowed: the labels of the nodes the "
                                        "controllers may run on, e.g. {eks.amazonaws.com/nodegroup: system}, or {} "
                                        "for any untainted node")
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _endpoint(self):
        if self.mode is ClusterMode.EXISTING:
            return self
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise Problems(("publicAccessCidrs", "is empty while endpointPublicAccess is true; allowed: at least one "
                                                 "public CIDR, e.g. your CI egress, or 0.0.0.0/0"))
        return self

    @model_validator(mode="after")
    def _addon_versions_go_with_the_kubernetes_version(self):
        lines = addon_version_problems(self.kubernetes_version, self.addon_versions)
        if lines:
            raise Problems(*lines)
        return self

    @property
    def eks_addon_versions(self) -> dict[str, str]:
        """The build of every EKS add-on, by EKS add-on name: the pin, else the default for kubernetesVersion."""
        return resolved_addon_versions(self.kubernetes_version, self.addon_versions)

    @model_validator(mode="after")
    def _one_entry_per_principal(self):
        principals = [*self.admin_principal_arns, *(e.principal_arn for e in self.access_entries)]
        dup = sorted({p for p in principals if principals.count(p) > 1})
        if dup:
            raise Problems(("", f"{dup} listed more than once in adminPrincipalArns/accessEntries; allowed: one "
                                "access entry per principal"))
        return self


_INSTANCE_TYPE = pattern_type(r"[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.(nano|micro|small|medium|large|metal|[0-9]*xlarge|metal-[0-9]+xl)",
                              "an EC2 instance type (family.size)", "m6i.large")


def cpu_architecture(instance_type: str) -> str:
    """arm64 for Graviton families, else x86_64. In EC2's naming, a `g` among the attribute letters after the
    generation digit means an AWS Graviton processor (m7g, c6gn, t4g; a1 is the first Graviton):
    https://docs.aws.amazon.com/ec2/latest/instancetypes/instance-type-names.html"""
    family = instance_type.split(".", 1)[0]
    m = re.fullmatch(r"([a-z]+)([0-9]+)([a-z-]*)", family)
    if family == "a1" or (m and "g" in m.group(3)):
        return "arm64"
    return "x86_64"


class SystemNodesConfig(Strict):
    """`gpu-burst:systemNodes` — the managed node group that runs Karpenter, KEDA, Prometheus and the gateway."""

    instance_types: Annotated[list[_INSTANCE_TYPE], Field(min_length=1)] = ["m6i.xlarge"]
    """EC2 instance types of the managed node group, one CPU architecture (e.g. [m6i.large, m7i.large]); minSize
    nodes of the smallest must hold every system pod (stacks/config/capacity.py)."""
    ami: NodeAmi = NodeAmi.AL2023
    desired_size: Annotated[int, Field(ge=1, le=20)] = 2
    min_size: Annotated[int, Field(ge=1, le=20)] = 2
    """Nothing scales this group (Karpenter launches GPU nodes only): the capacity that is sure to exist."""
    max_size: Annotated[int, Field(ge=1, le=20)] = 3
    disk_size_gib: Annotated[int, Field(ge=20, le=1000)] = 50
    release_version: Optional[pattern_type(r"[0-9]+\.[0-9]+\.[0-9]+-[0-9a-f]{8}", "an EKS node group AMI release",
                                           "1.35.3-20261118")] = None
    """AMI release of the system nodes, as `aws eks describe-nodegroup` reports it (al2023: <kubernetes>.<patch>-
    <date>; bottlerocket: <version>-<commit>). Unset: EKS picks the newest when the group is created or upgraded."""

    @model_validator(mode="after")
    def _sizes(self):
        # Reported against a key the user wrote: a default they never saw is not where the mistake is.
        written = self.model_fields_set
        lo, want, hi = self.min_size, self.desired_size, self.max_size

        def other(field: str, value: int) -> str:
            return f"{value}{'' if field in written else ' (the default)'}"

        between = f"desiredSize: {lo}" if lo == hi else f"desiredSize from {lo} to {hi}"
        if lo > hi:
            if "min_size" in written or "max_size" not in written:
                raise Problems(("minSize", f"{lo} is above maxSize {other('max_size', hi)}; allowed: at most {hi}, "
                                           "or raise maxSize"))
            raise Problems(("maxSize", f"{hi} is below minSize {other('min_size', lo)}; allowed: at least {lo}"))
        if lo <= want <= hi:
            return self
        if "desired_size" in written or not written & {"min_size", "max_size"}:
            raise Problems(("desiredSize", f"{want} is outside minSize {lo} .. maxSize {hi}; allowed: minSize <= "
                                           "desiredSize <= maxSize"))
        if want < lo:
            raise Problems(("minSize", f"{lo} is above desiredSize {other('desired_size', want)}; allowed: at most "
                                       f"{want}, or set {between}"))
        raise Problems(("maxSize", f"{hi} is below desiredSize {other('desired_size', want)}; allowed: at least "
                                   f"{want}, or set {between}"))

    @model_validator(mode="after")
    def _one_architecture(self):
        # a managed node group has one AMI type, and the AMI type fixes the architecture
        arch = {t: cpu_architecture(t) for t in self.instance_types}
        if len(set(arch.values())) > 1:
            shown = ", ".join(f"{t} ({a})" for t, a in arch.items())
            raise Problems(("instanceTypes", f"mixes CPU architectures: {shown}; allowed: all x86_64 or all arm64 "
                                             "(one AMI per node group)"))
        return self


_IAM_NAME = pattern_type(r"[\w+=,.@-]{1,128}", "an IAM role or instance profile name (letters, digits and +=,.@_-)",
                         "KarpenterNodeRole-my-cluster")
_DISCOVERY_VALUE = pattern_type(r"[\w .:/=+@-]{1,256}", "an EC2 tag value", "my-cluster")
# Karpenter 1.x: the NodePool/EC2NodeClass v1 API exists since 1.0; the Kubernetes version sets the floor
# (aws/karpenter-provider-aws@v1.14.1 website/content/en/docs/upgrading/compatibility.md).
KARPENTER_MIN_FOR_KUBERNETES = {"1.35": "1.9", "1.36": "1.13"}
"""Oldest Karpenter an existing install may run per Kubernetes version (`karpenter.install: false`)."""
KARPENTER_MIN_FOR_FIELDS = {"volumeInitializationRate": "1.5"}
"""EC2NodeClass fields the stack may set and the Karpenter release that added them to the CRD."""


class KarpenterConfig(Strict):
    """`gpu-burst:karpenter` — the controller the stack installs, or (install: false) the one the cluster runs."""

    install: bool = True
    """false: Karpenter already runs in the existing cluster (cluster.mode existing; Karpenter 1.9 or later, see
    docs); the stack still creates its EC2NodeClass and NodePools, for the node role given here."""
    node_role_name: Optional[_IAM_NAME] = None
    """install false: the IAM role your Karpenter's nodes run as (EC2NodeClass `spec.role`); it must already be able
    to join the cluster (an EC2_LINUX access entry or an aws-auth mapping)."""
    node_instance_profile: Optional[_IAM_NAME] = None
    """install false, instead of nodeRoleName: an instance profile for the nodes (EC2NodeClass
    `spec.instanceProfile`)."""
    discovery_tag: Optional[_DISCOVERY_VALUE] = None
    """cluster.mode existing: value of the `karpenter.sh/discovery` tag on the subnets and security groups GPU nodes
    use (required with install false: your Karpenter's own). Without it (install true) GPU nodes use the private
    subnets by id and the cluster security group."""
    interruption_queue: bool = False
    """install false: also create the SQS interruption queue and its EventBridge rules (point your Karpenter's
    settings.interruptionQueue at the `karpenterInterruptionQueue` output)."""
    chart_version: pattern_type(r"1\.14\.\d+", "a Karpenter 1.14 chart version", "1.14.1") = "1.14.1"
    """Karpenter chart version (1.14.x: the CRDs, IAM policies and settings here are those of 1.14)."""
    replicas: Optional[Annotated[int, Field(ge=1, le=3)]] = None
    """Defaults to 2 when the system node group has at least 2 nodes, else 1 (replicas repel each other by hostname)."""
    create_spot_service_linked_role: bool = False
    """Create AWSServiceRoleForEC2Spot (account-wide; kept on `destroy`)."""
    log_level: Literal["debug", "info", "error"] = "info"
    controller_cpu: CpuQuantity = "1"
    """CPU request (= limit) of each controller replica; upstream's getting-started uses 1."""
    controller_memory: MemoryQuantity = "1Gi"
    """Memory request (= limit) of each controller replica; upstream's getting-started uses 1Gi."""

    INSTALL_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        name: ("it configures the Karpenter the stack installs", "remove it")
        for name in ("chart_version", "replicas", "create_spot_service_linked_role", "log_level", "controller_cpu",
                     "controller_memory")}
    """Keys only read when the stack installs Karpenter."""
    EXISTING_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        "node_role_name": ("the stack creates the node role of the Karpenter it installs", "remove it"),
        "node_instance_profile": ("the stack creates the node role of the Karpenter it installs", "remove it"),
        "interruption_queue": ("the Karpenter the stack installs always gets its queue", "remove it"),
    }
    """Keys only read when Karpenter is already installed."""

    @model_validator(mode="after")
    def _keys_of_the_other_mode(self):
        refuse_other_mode_keys(self, not self.install, self.INSTALL_ONLY, self.EXISTING_ONLY, INSTALL_MODES)
        return self

    @model_validator(mode="after")
    def _existing_needs(self):
        if self.install:
            return self
        p = Problems()
        if self.node_role_name and self.node_instance_profile:
            p.add("nodeInstanceProfile", "is set together with nodeRoleName (EC2NodeClass takes one of them); "
                                         "allowed: one of the two")
        elif not (self.node_role_name or self.node_instance_profile):
            p.add("nodeRoleName", "required when install is false; allowed: the IAM role name your Karpenter's "
                                  "nodes use (e.g. KarpenterNodeRole-<cluster>), or nodeInstanceProfile instead")
        if not self.discovery_tag:
            p.add("discoveryTag", "required when install is false; allowed: the karpenter.sh/discovery tag value on "
                                  "the subnets and security groups your Karpenter's nodes use (often the cluster "
                                  "name)")
        p.raise_if_any()
        return self
