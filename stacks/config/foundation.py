"""Config sections for the AWS foundation: network, EKS cluster, system node group and Karpenter."""

import ipaddress
from enum import Enum
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from .base import Cidr, Strict

SUPPORTED_KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35", "1.36")
"""EKS versions that have AL2023/Bottlerocket AMIs and that Karpenter 1.14 supports (AL2 ended at 1.32)."""


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


class ClusterConfig(Strict):
    """`gpu-burst:cluster` — the EKS control plane."""

    kubernetes_version: Literal[SUPPORTED_KUBERNETES_VERSIONS] = "1.35"  # type: ignore[valid-type]
    endpoint_public_access: bool = True
    public_access_cidrs: list[Cidr] = ["0.0.0.0/0"]
    enabled_log_types: list[LogType] = []
    admin_principal_arns: list[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:.+$")]] = []
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _endpoint(self):
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("publicAccessCidrs must list at least one CIDR when endpointPublicAccess is true")
        return self


class SystemNodesConfig(Strict):
    """`gpu-burst:systemNodes` — the managed node group that runs Karpenter, KEDA, Prometheus and the gateway."""

    instance_types: Annotated[list[str], Field(min_length=1)] = ["m6i.large"]
    ami: NodeAmi = NodeAmi.AL2023
    desired_size: Annotated[int, Field(ge=1, le=20)] = 2
    min_size: Annotated[int, Field(ge=1, le=20)] = 1
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
    log_level: Literal["debug", "info", "error"] = "info"
