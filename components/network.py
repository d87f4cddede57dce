"""VPC for the cluster: private subnets for every node, public subnets for NAT and internet-facing load balancers."""

import ipaddress
from enum import Enum
from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired

from ._common import child, token


REGULAR_ZONE_FILTERS = (
    {"name": "zone-type", "values": ["availability-zone"]},
    {"name": "opt-in-status", "values": ["opt-in-not-required"]},
)
"""DescribeAvailabilityZones filters that keep the region's own AZs: an opted-in Local Zone or Wavelength Zone is
`available` too, but has no NAT gateways/EKS control-plane support and few instance types
(https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html: for AZs, OptInStatus is
always opt-in-not-required)."""


def regular_zone_filters() -> list:
    """:data:`REGULAR_ZONE_FILTERS` as invoke arguments."""
    return [aws.GetAvailabilityZonesFilterArgs(name=f["name"], values=list(f["values"])) for f in REGULAR_ZONE_FILTERS]


class NatMode(str, Enum):
    """How many NAT gateways to run."""

    SINGLE = "single"
    """One NAT gateway (cheapest; egress of every AZ depends on one AZ)."""
    PER_AZ = "perAz"
    """One NAT gateway per AZ (production: an AZ outage does not cut egress of the others)."""


class NetworkArgs(TypedDict):
    """Inputs for Network. Either `cidr` (create) or `vpc_id` + subnet ids (adopt)."""

    cidr: NotRequired[str]
    """CIDR of a new VPC (/16 to /20). Private subnets get 1/8 of it each, public ones 1/64."""
    az_count: NotRequired[int]
    """Number of AZs of a new VPC (2 to 6, the region's first regular ones; Local and Wavelength Zones never). GPU
    capacity is scarce: more AZs mean fewer insufficient-capacity errors. Default 3."""
    availability_zones: NotRequired[list[str]]
    """AZ names of a new VPC (required then; the first `az_count` are used), looked up before anything is declared
    (`aws.get_availability_zones` with :func:`regular_zone_filters`): a lookup here could only fail once resources
    are registered."""
    nat_mode: NotRequired[NatMode]
    """NAT gateways of a new VPC. Default single."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """Adopt this existing VPC instead of creating one."""
    private_subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """Existing private subnets (nodes) when adopting a VPC."""
    public_subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """Existing public subnets (internet-facing load balancers) when adopting a VPC."""
    s3_gateway_endpoint: NotRequired[bool]
    """A new VPC only: an S3 gateway endpoint on every private route table, so nodes reach S3 (model weights, the
    compile cache, ECR image layers) without the NAT gateway, which bills every GB it processes. Default true."""
    interface_endpoints: NotRequired[bool]
    """A new VPC only: interface endpoints (private DNS) in the private subnets for the AWS APIs a GPU node's cold
    start calls (:data:`INTERFACE_ENDPOINT_SERVICES`), so those calls need no NAT. Billed per endpoint, AZ and hour
    and per GB (https://aws.amazon.com/privatelink/pricing/). Default false."""
    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Tags for every resource."""


INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "sts", "eks-auth")
"""Services of the optional interface endpoints: ECR's registry API (auth token, pull-through-cache import) and its
Docker endpoint (manifests; the layers come from S3 through the gateway endpoint; both are needed with it,
docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html), STS, and the EKS Auth API that the Pod Identity
agent calls for every pod credential (`com.amazonaws.<region>.eks-auth`)."""


class Network(pulumi.ComponentResource):
    """A VPC over several AZs with private subnets (nodes, internal load balancers) and public subnets (NAT,
    internet-facing load balancers), tagged for the AWS load balancer integrations; or an adopted existing VPC.
    The Karpenter discovery tag needs the real cluster name, which exists only after the cluster: see
    :meth:`tag_for_discovery`. `egress` (a list of resources, not an output) is what gives the private subnets their
    way to the AWS APIs and the internet (route table associations, and through them routes, NAT gateways and the
    internet gateway; VPC endpoints): whatever runs on the nodes depends on it, since on `destroy` the controllers
    still call AWS while they delete what they made. Empty for an adopted VPC (its routing is not this stack's)."""

    vpc_id: pulumi.Output[str]
    """VPC id."""
    vpc_cidr: pulumi.Output[str]
    """VPC CIDR block."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnet ids (one per AZ)."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnet ids (one per AZ)."""
    s3_endpoint_id: pulumi.Output[str]
    """Id (vpce-...) of the S3 gateway endpoint; '' when none was created (adopted VPC, or turned off)."""
    interface_endpoint_ids: pulumi.Output[dict[str, str]]
    """Interface endpoint id by service (`ecr.api` -> vpce-...); empty when none were created."""

    def __init__(self, name: str, args: NetworkArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("Network"), name, None, opts)
        self._name = name
        tags = args.get("tags") or {}
        self.egress: list[pulumi.Resource] = []
        if args.get("vpc_id"):
            self.vpc_id = pulumi.Output.from_input(args["vpc_id"])
            vpc = aws.ec2.get_vpc_output(id=self.vpc_id, opts=pulumi.InvokeOutputOptions(parent=self))
            self.vpc_cidr = vpc.cidr_block
            self.private_subnet_ids = pulumi.Output.from_input(args.get("private_subnet_ids") or [])
            self.public_subnet_ids = pulumi.Output.from_input(args.get("public_subnet_ids") or [])
            # An adopted VPC's routing belongs to its owner: a second S3 gateway endpoint on a route table that
            # already has one is refused by EC2, so nothing is added here.
            self.s3_endpoint_id = pulumi.Output.from_input("")
            self.interface_endpoint_ids = pulumi.Output.from_input({})
        else:
            self._create(name, args, tags)
        self.register_outputs({
            "vpc_id": self.vpc_id, "vpc_cidr": self.vpc_cidr,
            "private_subnet_ids": self.private_subnet_ids, "public_subnet_ids": self.public_subnet_ids,
            "s3_endpoint_id": self.s3_endpoint_id, "interface_endpoint_ids": self.interface_endpoint_ids,
        })

    def _create(self, name: str, args: NetworkArgs, tags: dict) -> None:
        cidr = args.get("cidr", "10.0.0.0/16")
        az_count = args.get("az_count", 3)
        if not 2 <= az_count <= 6:
            raise ValueError(f"Network '{name}': az_count must be 2 to 6, got {az_count}")
        given = args.get("availability_zones")
        if given is None:
            raise ValueError(f"Network '{name}': availability_zones is required for a new VPC (look them up before "
                             "declaring resources, e.g. aws.get_availability_zones with regular_zone_filters())")
        if len(given) < az_count:
            raise ValueError(f"Network '{name}': {az_count} AZs requested, {len(given)} given")
        azs = [pulumi.Output.from_input(z) for z in given[:az_count]]
        net = ipaddress.ip_network(cidr)
        # Private: the first N eighths (pods take VPC IPs with the VPC CNI, so they need room).
        # Public: the first N sixty-fourths of the last eighth (NAT and load balancer ENIs only).
        eighths = list(net.subnets(prefixlen_diff=3))
        private_cidrs = [str(s) for s in eighths[: len(azs)]]
        public_cidrs = [str(s) for s in list(eighths[-1].subnets(prefixlen_diff=3))[: len(azs)]]

        vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=cidr, enable_dns_hostnames=True, enable_dns_support=True,
            tags={**tags, "Name": f"{name}-vpc"}, opts=child(self),
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": f"{name}-igw"},
                                      opts=child(self))
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{name}-public"}, opts=child(self),
        )
        public, private, nats, private_rts = [], [], [], []
        for i, az in enumerate(azs):
            suffix = "abcdef"[i]
            pub = aws.ec2.Subnet(
                f"{name}-public-{suffix}", vpc_id=vpc.id, cidr_block=public_cidrs[i], availability_zone=az,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-public-{suffix}", "kubernetes.io/role/elb": "1"},
                opts=child(self),
            )
            self.egress.append(aws.ec2.RouteTableAssociation(
                f"{name}-public-{suffix}-rta", subnet_id=pub.id, route_table_id=public_rt.id, opts=child(self)))
            public.append(pub)
            if i == 0 or args.get("nat_mode") == NatMode.PER_AZ:
                eip = aws.ec2.Eip(f"{name}-nat-{suffix}-eip", domain="vpc", tags={**tags, "Name": f"{name}-nat-{suffix}"},
                                  opts=child(self))
                nats.append(aws.ec2.NatGateway(
                    f"{name}-nat-{suffix}", allocation_id=eip.allocation_id, subnet_id=pub.id,
                    tags={**tags, "Name": f"{name}-nat-{suffix}"}, opts=child(self, depends_on=[igw]),
                ))
            priv = aws.ec2.Subnet(
                f"{name}-private-{suffix}", vpc_id=vpc.id, cidr_block=private_cidrs[i], availability_zone=az,
                tags={**tags, "Name": f"{name}-private-{suffix}", "kubernetes.io/role/internal-elb": "1"},
                # The discovery tag is added by an aws.ec2.Tag once the cluster name exists; don't remove it here.
                opts=child(self, ignore_changes=['tags["karpenter.sh/discovery"]']),
            )
            rt = aws.ec2.RouteTable(
                f"{name}-private-{suffix}-rt", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[-1].id)],
                tags={**tags, "Name": f"{name}-private-{suffix}"}, opts=child(self),
            )
            self.egress.append(aws.ec2.RouteTableAssociation(
                f"{name}-private-{suffix}-rta", subnet_id=priv.id, route_table_id=rt.id, opts=child(self)))
            private.append(priv)
            private_rts.append(rt)
        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public])
        self._private_count = len(private)
        if args.get("s3_gateway_endpoint", True):
            s3 = self._s3_gateway_endpoint(name, vpc, private_rts, tags)
            self.egress.append(s3)
            self.s3_endpoint_id = s3.id
        else:
            self.s3_endpoint_id = pulumi.Output.from_input("")
        if args.get("interface_endpoints", False):
            endpoints = self._interface_endpoints(name, vpc, private, tags)
            self.egress += list(endpoints.values())
            self.interface_endpoint_ids = pulumi.Output.all(**{svc: ep.id for svc, ep in endpoints.items()})
        else:
            self.interface_endpoint_ids = pulumi.Output.from_input({})

    def _interface_endpoints(self, name: str, vpc: aws.ec2.Vpc, subnets: list, tags: dict) -> dict:
        """One interface endpoint per service of :data:`INTERFACE_ENDPOINT_SERVICES`, with an ENI in each private
        subnet (one per AZ, so no request crosses an AZ) and private DNS, so the SDKs' default host names resolve to
        those ENIs (the VPC has DNS support and hostnames on, which private DNS requires). Their security group admits
        HTTPS from the VPC's CIDR only and has no egress rule: an endpoint ENI only answers (security groups are
        stateful) and never opens connections. Service names are looked up like the S3 one; in the China regions the
        ECR services carry another prefix, so the lookup fails the preview there instead of guessing."""
        sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg", vpc_id=vpc.id,
            description="HTTPS from the VPC to its AWS service interface endpoints",
            ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=443, to_port=443,
                                                      cidr_blocks=[vpc.cidr_block], description="HTTPS from the VPC")],
            egress=[], tags={**tags, "Name": f"{name}-endpoints"}, opts=child(self),
        )
        out = {}
        for svc in INTERFACE_ENDPOINT_SERVICES:
            service = aws.ec2.get_vpc_endpoint_service_output(
                service=svc, service_type="Interface", opts=pulumi.InvokeOutputOptions(parent=self))
            slug = svc.replace(".", "-")
            out[svc] = aws.ec2.VpcEndpoint(
                f"{name}-{slug}-endpoint", vpc_id=vpc.id, service_name=service.service_name,
                vpc_endpoint_type="Interface", private_dns_enabled=True, subnet_ids=[s.id for s in subnets],
                security_group_ids=[sg.id], tags={**tags, "Name": f"{name}-{slug}"}, opts=child(self),
            )
        return out

    def _s3_gateway_endpoint(self, name: str, vpc: aws.ec2.Vpc, route_tables: list, tags: dict) -> aws.ec2.VpcEndpoint:
        """The S3 gateway endpoint of the private route tables.

        - Why: every cold start streams the model's weights (16 GB for an 8B model in bf16) and pulls the image's
          layers, which ECR serves from S3 (docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html,
          "Create the Amazon S3 gateway endpoint"), from the private subnets. Through the NAT gateway that is billed per GB
          processed (https://aws.amazon.com/vpc/pricing/); through a gateway endpoint it costs nothing ("There is no
          additional charge for using gateway endpoints", docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html).
        - Routing: EC2 adds a route for the S3 prefix list to each associated table; it is more specific than
          0.0.0.0/0, so S3 traffic of the region leaves by the endpoint and everything else still by the NAT
          (docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html, "Routing"). Only the private tables:
          nodes never run in the public subnets (NAT and load balancers only). The inline `routes` of those tables do
          not fight that route: the provider skips prefix-list routes whose target is a vpce- endpoint when it reads a
          table (hashicorp/terraform-provider-aws `internal/service/ec2/vpc_route_table.go`, "VPC endpoint routes are
          handled separately").
        - Service name: looked up, not spelled: DescribeVpcEndpointServices for the Gateway service `s3` of the
          provider's region: the provider asks for `com.amazonaws.<region>.s3` of type Gateway
          (hashicorp/terraform-provider-aws `internal/service/ec2/vpc_endpoint_service_data_source.go`). That is the
          S3 gateway's name in the GovCloud and, by published examples, the China regions too (there only some
          interface services, ECR's among them, are `cn.com.amazonaws.*`). A region where it does not exist fails
          the preview instead of getting a wrong endpoint; `s3_gateway_endpoint: False` is the way out there.
        - Policy: the default (full access). The endpoint carries every S3 request of the VPC, not only the model
          store's: ECR layers (`prod-<region>-starport-layer-bucket`), AMI/OS package repositories, the compile cache
          and whatever else runs in the cluster; a restrictive endpoint policy would break those silently. Who may
          read what stays with IAM (the model pods' role only reads its own prefix) and the bucket policies.
          S3 in other regions is not routed through the endpoint: it still goes through the NAT."""
        service = aws.ec2.get_vpc_endpoint_service_output(
            service="s3", service_type="Gateway", opts=pulumi.InvokeOutputOptions(parent=self))
        return aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint", vpc_id=vpc.id, service_name=service.service_name, vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in route_tables],
            tags={**tags, "Name": f"{name}-s3"}, opts=child(self),
        )

    def tag_for_discovery(self, cluster_name: pulumi.Input[str], extra_resource_ids: Optional[list] = None,
                          count: Optional[int] = None) -> list:
        """Tag the private subnets (and e.g. the cluster security group) `karpenter.sh/discovery=<cluster>`.

        Separate `aws.ec2.Tag` resources because the subnets must exist before the cluster whose name is the
        value. `count` is the number of private subnets when adopting a VPC (ids may be unknown at preview)."""
        n = count if count is not None else getattr(self, "_private_count", 0)
        tags = []
        for i in range(n):
            tags.append(aws.ec2.Tag(
                f"{self._name}-discovery-private-{i}",
                resource_id=self.private_subnet_ids.apply(lambda ids, i=i: ids[i]),
                key="karpenter.sh/discovery", value=cluster_name, opts=child(self),
            ))
        for j, rid in enumerate(extra_resource_ids or []):
            tags.append(aws.ec2.Tag(
                f"{self._name}-discovery-extra-{j}", resource_id=rid, key="karpenter.sh/discovery",
                value=cluster_name, opts=child(self),
            ))
        return tags
