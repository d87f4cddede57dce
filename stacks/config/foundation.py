"""Config sections for the AWS foundation: network, EKS cluster, system node group and Karpenter."""

import ipaddress
import re
from enum import Enum
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from .base import Cidr, Strict

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
_IAM_PRINCIPAL = re.compile(rf"^arn:{_PARTITION}:iam::\d{{12}}:(role|user)/[\w+=,.@/-]+$")
_ASSUMED_ROLE = re.compile(rf"^arn:(?P<p>{_PARTITION}):sts::(?P<a>\d{{12}}):assumed-role/(?P<r>[\w+=,.@-]+)/.+$")


def principal_arn(v: str) -> str:
    """An IAM role or user ARN as EKS access entries take it. An STS assumed-role ARN (what `aws sts
    get-caller-identity` prints under an assumed role) is refused with the role ARN to use instead."""
    m = _ASSUMED_ROLE.match(v)
    if m:
        raise ValueError(
            f"'{v}' is an STS assumed-role session; access entries take the role itself: "
            f"arn:{m['p']}:iam::{m['a']}:role/{m['r']} (insert the role's path after role/ if it has one)")
    if not _IAM_PRINCIPAL.match(v):
        raise ValueError(f"'{v}' is not an IAM principal ARN; use arn:<partition>:iam::<12-digit account>:role/<name> "
                         "or arn:<partition>:iam::<12-digit account>:user/<name>")
    return v


PrincipalArn = Annotated[str, AfterValidator(principal_arn)]


def _public_cidr(v: str) -> str:
    net = ipaddress.ip_network(v, strict=False)
    if not net.is_global:
        raise ValueError(
            f"'{v}' is a private, documentation or otherwise reserved range that never appears as a source address on "
            "the public endpoint (RFC 1918/5737/6598/3849 ...); list your CI and VPN egress CIDRs, or 0.0.0.0/0")
    if net.version != 4:
        raise ValueError(f"'{v}': the EKS public endpoint allow-list takes IPv4 CIDRs only")
    return v


class NetworkMode(str, Enum):
    CREATE = "create"
    EXISTING = "existing"


class NatGateways(str, Enum):
    SINGLE = "single"
    PER_AZ = "perAz"


class NodeAmi(str, Enum):
    AL2023 = "al2023"
    BOTTLEROCKET = "bottlerocket"


class NetworkConfig(Strict):
    """`gpu-burst:network` — create a 3-AZ VPC, or adopt an existing one."""

    mode: NetworkMode = NetworkMode.CREATE
    cidr: str = "10.0.0.0/16"
    az_count: Annotated[int, Field(ge=2, le=6)] = 3
    nat_gateways: NatGateways = NatGateways.SINGLE
    vpc_id: Optional[Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]] = None
    private_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    public_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    tag_existing_subnets: bool = True

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            net = ipaddress.ip_network(v)
        except ValueError:
            raise ValueError(f"'{v}' is not an IPv4 CIDR block such as 10.0.0.0/16") from None
        if net.version != 4 or not 16 <= net.prefixlen <= 20:
            raise ValueError(f"'{v}' must be an IPv4 CIDR with a prefix from /16 to /20")
        return v

    @model_validator(mode="after")
    def _mode(self):
        if self.mode is NetworkMode.EXISTING:
            if not self.vpc_id:
                raise ValueError("vpcId is required when mode is 'existing'")
            if len(self.private_subnet_ids) < 2:
                raise ValueError("privateSubnetIds needs at least 2 subnets in different AZs when mode is 'existing'")
        elif self.vpc_id or self.private_subnet_ids or self.public_subnet_ids:
            raise ValueError("vpcId/privateSubnetIds/publicSubnetIds are only allowed when mode is 'existing'")
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
    policy: AccessPolicy = AccessPolicy.VIEW
    namespaces: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]] = []
    """Scope of the policy: these namespaces; empty means the whole cluster."""

    @model_validator(mode="after")
    def _scope(self):
        if self.policy is AccessPolicy.CLUSTER_ADMIN and self.namespaces:
            raise ValueError("AmazonEKSClusterAdminPolicy is cluster-scoped; drop namespaces or use AmazonEKSAdminPolicy")
        return self


def _cluster_name(v: str) -> str:
    if not re.match(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", v):
        raise ValueError(f"'{v}' is not an EKS cluster name (letters, digits, '-' and '_', at most 100, starting with a "
                         "letter or digit)")
    return v


class ClusterConfig(Strict):
    """`gpu-burst:cluster` — the EKS control plane."""

    name: Optional[Annotated[str, AfterValidator(_cluster_name)]] = None
    """EKS cluster name. Default `gpu-burst-<stack>`. Explicit because the control-plane log group
    `/aws/eks/<name>/cluster` must exist (with its retention) before the cluster."""
    kubernetes_version: Literal[SUPPORTED_KUBERNETES_VERSIONS] = "1.35"  # type: ignore[valid-type]
    endpoint_public_access: bool = True
    public_access_cidrs: list[Annotated[Cidr, AfterValidator(_public_cidr)]] = ["0.0.0.0/0"]
    """Source CIDRs allowed to reach the public endpoint (requests still need an IAM-authenticated token)."""
    enabled_log_types: list[LogType] = []
    log_retention_days: int = 30
    """Retention of the control-plane log group (created by the stack, so `destroy` removes it)."""
    admin_principal_arns: list[PrincipalArn] = []
    """More cluster admins. The principal that runs `pulumi up` (the cluster creator) already is one."""
    access_entries: list[AccessEntryConfig] = []
    """Other principals, each with one access policy and scope (e.g. a CI preview role with AmazonEKSViewPolicy)."""
    tags: dict[str, str] = {}

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"{v} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return v

    @model_validator(mode="after")
    def _endpoint(self):
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("publicAccessCidrs must list at least one CIDR when endpointPublicAccess is true")
        principals = [*self.admin_principal_arns, *(e.principal_arn for e in self.access_entries)]
        dup = sorted({p for p in principals if principals.count(p) > 1})
        if dup:
            raise ValueError(f"a principal can have one access entry only; listed twice in adminPrincipalArns/"
                             f"accessEntries: {dup}")
        return self


class SystemNodesConfig(Strict):
    """`gpu-burst:systemNodes` — the managed node group that runs Karpenter, KEDA, Prometheus and the gateway."""

    instance_types: Annotated[list[str], Field(min_length=1)] = ["m6i.xlarge"]
    """On-demand types; the smallest must hold every system pod on `minSize` nodes (stacks/config/capacity.py)."""
    ami: NodeAmi = NodeAmi.AL2023
    desired_size: Annotated[int, Field(ge=1, le=20)] = 2
    min_size: Annotated[int, Field(ge=1, le=20)] = 2
    """Nothing scales this group (Karpenter only launches GPU nodes): the capacity that is sure to exist."""
    max_size: Annotated[int, Field(ge=1, le=20)] = 3
    disk_size_gib: Annotated[int, Field(ge=20, le=1000)] = 50

    @model_validator(mode="after")
    def _sizes(self):
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"need minSize <= desiredSize <= maxSize, got {self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


class KarpenterConfig(Strict):
    """`gpu-burst:karpenter` — controller chart and options."""

    chart_version: Annotated[str, Field(pattern=r"^1\.14\.\d+$")] = "1.14.1"
    replicas: Optional[Annotated[int, Field(ge=1, le=3)]] = None
    """Defaults to 2 when the system node group has at least 2 nodes, else 1 (replicas repel each other by hostname)."""
    create_spot_service_linked_role: bool = False
    """Create AWSServiceRoleForEC2Spot (account-wide; kept on `destroy`)."""
    log_level: Literal["debug", "info", "error"] = "info"
    controller_cpu: Annotated[str, Field(pattern=r"^[0-9]+m?$")] = "1"
    """CPU request (= limit) of each controller replica; upstream's getting-started uses 1."""
    controller_memory: Annotated[str, Field(pattern=r"^[0-9]+(Mi|Gi)$")] = "1Gi"
    """Memory request (= limit) of each controller replica; upstream's getting-started uses 1Gi."""
