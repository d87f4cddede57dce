"""Network: the S3 gateway endpoint that keeps model weights and ECR image layers off the NAT gateway — under mocks."""

import re

import pulumi
import pytest

from pulumi_mocks import REGION, Mocks
from stack_cache import evaluated, shipped
from stack_helpers import evaluate, evaluate_stack, resolve

ENDPOINT = "gpu-burst-s3-endpoint"
S3_SERVICE = f"com.amazonaws.{REGION}.s3"
NETWORK_URN = "urn:pulumi:dev::gpu-burst::pulumi:pulumi:Stack$gpu-burst:index:Network::gpu-burst"


@pytest.fixture(scope="module")
def dev():
    return shipped("dev")


@pytest.fixture(scope="module")
def prod():
    return shipped("prod")


def _urn(mocks, name: str) -> str:
    return next(u for u in mocks.monitor.resources if u.endswith(f"::{name}"))


def _id(mocks, name: str) -> str:
    """The id the (mock) provider gave a resource, as a reference to it resolves."""
    return mocks.monitor.resources[_urn(mocks, name)].id


def _route_tables(mocks, kind: str) -> list[str]:
    return sorted(r.name for r in mocks.of_type("aws:ec2/routeTable:RouteTable") if f"-{kind}-" in r.name)


def _endpoints(mocks) -> list:
    return mocks.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_s3_gateway_endpoint_is_on_exactly_the_private_route_tables(stack, request):
    mocks, _ = request.getfixturevalue(stack)
    [ep] = _endpoints(mocks)
    assert ep.name == ENDPOINT
    assert ep.inputs["vpcEndpointType"] == "Gateway"
    private = _route_tables(mocks, "private")
    assert len(private) == 3  # one per AZ; prod's each route to their own AZ's NAT
    # The ids are the route tables' own (references resolved), in AZ order; the public table (NAT and load
    # balancers only) is not among them.
    assert ep.inputs["routeTableIds"] == [_id(mocks, n) for n in private]
    assert _id(mocks, "gpu-burst-public-rt") not in ep.inputs["routeTableIds"]
    req = mocks.monitor.requests[ENDPOINT]
    assert sorted(req.propertyDependencies["routeTableIds"].urns) == sorted(_urn(mocks, n) for n in private)
    assert list(req.propertyDependencies["vpcId"].urns) == [_urn(mocks, "gpu-burst-vpc")]
    assert ep.inputs["vpcId"] == _id(mocks, "gpu-burst-vpc")


def test_s3_service_name_is_looked_up_for_the_providers_region(dev):
    mocks, _ = dev
    [ep] = _endpoints(mocks)
    lookups = [c.args for c in mocks.calls if c.token == "aws:ec2/getVpcEndpointService:getVpcEndpointService"]
    assert [(a.get("service"), a.get("serviceType")) for a in lookups] == [("s3", "Gateway")]
    assert ep.inputs["serviceName"] == S3_SERVICE


def test_s3_endpoint_keeps_the_default_full_access_policy_and_is_tagged_and_parented(dev):
    mocks, _ = dev
    [ep] = _endpoints(mocks)
    # A restrictive endpoint policy would break every other S3 use of the VPC (ECR's layer bucket, OS repositories).
    assert "policy" not in ep.inputs
    assert ep.inputs["tags"]["Name"] == "gpu-burst-s3"
    assert ep.inputs["tags"]["gpu-burst:stack"] == "dev"
    assert mocks.monitor.requests[ENDPOINT].parent == NETWORK_URN


def test_stack_exports_the_s3_endpoint_id(dev):
    mocks, outputs = dev
    assert resolve(outputs["s3EndpointId"]) == _id(mocks, ENDPOINT)
    assert re.fullmatch(r"vpce-[0-9a-f]{17}", _id(mocks, ENDPOINT))


def test_s3_endpoint_can_be_turned_off(mocks):
    outputs = evaluate_stack("dev", overrides={"network": {"cidr": "10.40.0.0/16", "azCount": 3,
                                                           "natGateways": "single", "s3GatewayEndpoint": False}})
    assert _endpoints(mocks) == []
    assert not [c for c in mocks.calls if c.token == "aws:ec2/getVpcEndpointService:getVpcEndpointService"]
    assert resolve(pulumi.Output.from_input(outputs["s3EndpointId"])) == ""
    # Everything else of the network is still there.
    assert len(_route_tables(mocks, "private")) == 3


def test_adopted_vpc_gets_no_endpoint(mocks):
    outputs = evaluate_stack("dev", overrides={"network": {
        "mode": "existing", "vpcId": "vpc-0abc12345def67890",
        "privateSubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]}})
    assert _endpoints(mocks) == []
    assert resolve(pulumi.Output.from_input(outputs["s3EndpointId"])) == ""


def test_component_defaults_to_the_endpoint_and_names_it_from_the_component(mocks):
    from components.network import Network

    def program():
        net = Network("edge", {"cidr": "10.60.0.0/16", "az_count": 2,
                               "availability_zones": [f"{REGION}a", f"{REGION}b"]})
        return net.s3_endpoint_id

    endpoint_id = resolve(evaluate(program))
    [ep] = _endpoints(mocks)
    assert ep.name == "edge-s3-endpoint"
    assert ep.inputs["routeTableIds"] == [_id(mocks, "edge-private-a-rt"), _id(mocks, "edge-private-b-rt")]
    assert endpoint_id == _id(mocks, "edge-s3-endpoint")


def test_a_new_vpc_needs_its_zones_before_anything_is_declared(mocks):
    """No lookup inside the component: it could only fail after resources were registered."""
    from components.network import Network

    with pytest.raises(ValueError, match="availability_zones is required for a new VPC"):
        evaluate(lambda: Network("edge", {"cidr": "10.60.0.0/16", "az_count": 2}))
    assert not [c for c in mocks.calls if c.token == "aws:index/getAvailabilityZones:getAvailabilityZones"]
    assert not mocks.of_type("aws:ec2/vpc:Vpc")


# -- optional interface endpoints ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def with_interface_endpoints():
    return evaluated("dev", overrides={"network": {"cidr": "10.40.0.0/16", "azCount": 3, "natGateways": "single",
                                                   "interfaceEndpoints": True}})


def test_no_interface_endpoints_by_default(dev):
    mocks, _ = dev
    assert [e.inputs["vpcEndpointType"] for e in _endpoints(mocks)] == ["Gateway"]
    assert mocks.of_type("aws:ec2/securityGroup:SecurityGroup") == []


def test_interface_endpoints_use_private_dns_in_every_private_subnet(with_interface_endpoints):
    mocks, _ = with_interface_endpoints
    interface = {e.name: e.inputs for e in _endpoints(mocks) if e.inputs["vpcEndpointType"] == "Interface"}
    assert {n: i["serviceName"] for n, i in interface.items()} == {
        "gpu-burst-ecr-api-endpoint": f"com.amazonaws.{REGION}.ecr.api",
        "gpu-burst-ecr-dkr-endpoint": f"com.amazonaws.{REGION}.ecr.dkr",
        "gpu-burst-sts-endpoint": f"com.amazonaws.{REGION}.sts",
        "gpu-burst-eks-auth-endpoint": f"com.amazonaws.{REGION}.eks-auth",
    }
    private = sorted(r.name for r in mocks.of_type("aws:ec2/subnet:Subnet") if "-private-" in r.name)
    sg = _id(mocks, "gpu-burst-endpoints-sg")
    for name, i in interface.items():
        assert i["privateDnsEnabled"] is True, name
        assert i["subnetIds"] == [_id(mocks, n) for n in private], name
        assert i["securityGroupIds"] == [sg], name
        assert i["vpcId"] == _id(mocks, "gpu-burst-vpc")
        deps = mocks.monitor.requests[name].propertyDependencies
        assert sorted(deps["subnetIds"].urns) == sorted(_urn(mocks, n) for n in private)
        assert list(deps["securityGroupIds"].urns) == [_urn(mocks, "gpu-burst-endpoints-sg")]
        assert mocks.monitor.requests[name].parent == NETWORK_URN
    # Private DNS needs both VPC DNS attributes.
    vpc = mocks.named("gpu-burst-vpc").inputs
    assert vpc["enableDnsSupport"] is True and vpc["enableDnsHostnames"] is True
    # The S3 gateway endpoint stays: ECR's layers come from S3.
    assert mocks.named(ENDPOINT).inputs["vpcEndpointType"] == "Gateway"


def test_interface_endpoint_security_group_admits_https_from_the_vpc_only(with_interface_endpoints):
    mocks, _ = with_interface_endpoints
    [sg] = mocks.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert sg.inputs["vpcId"] == _id(mocks, "gpu-burst-vpc")
    assert sg.inputs["ingress"] == [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.40.0.0/16"],
                                     "description": "HTTPS from the VPC"}]
    assert sg.inputs["egress"] == []
    deps = mocks.monitor.requests["gpu-burst-endpoints-sg"].propertyDependencies
    assert _urn(mocks, "gpu-burst-vpc") in deps["ingress"].urns  # the CIDR is the VPC's own output


def test_component_exports_interface_endpoint_ids_by_service(mocks):
    from components.network import INTERFACE_ENDPOINT_SERVICES, Network

    def program():
        return Network("edge", {"cidr": "10.60.0.0/16", "az_count": 2, "availability_zones": [f"{REGION}a", f"{REGION}b"],
                                "interface_endpoints": True, "s3_gateway_endpoint": False}).interface_endpoint_ids

    ids = resolve(evaluate(program))
    assert set(ids) == set(INTERFACE_ENDPOINT_SERVICES)
    assert ids["eks-auth"] == _id(mocks, "edge-eks-auth-endpoint")
    assert [e.inputs["vpcEndpointType"] for e in _endpoints(mocks)] == ["Interface"] * 4


def test_the_endpoint_service_mock_refuses_an_ambiguous_lookup_like_the_provider():
    # The region offers S3 as a Gateway and as an Interface service: without serviceType the provider's data source
    # finds two and refuses ("multiple EC2 VPC Endpoint Services matched", terraform-provider-aws
    # internal/service/ec2/vpc_endpoint_service_data_source.go), so a lookup that forgets it must fail here too.
    m = Mocks()
    with pytest.raises(Exception, match="multiple EC2 VPC Endpoint Services matched"):
        m._vpc_endpoint_service({"service": "s3"})
    assert m._vpc_endpoint_service({"service": "s3", "serviceType": "Gateway"})["serviceType"] == "Gateway"
    assert m._vpc_endpoint_service({"service": "s3", "serviceType": "Interface"})["serviceType"] == "Interface"
    assert m._vpc_endpoint_service({"service": "ecr.dkr"})["serviceName"] == f"com.amazonaws.{REGION}.ecr.dkr"
    with pytest.raises(Exception, match="no matching EC2 VPC Endpoint Service found"):
        m._vpc_endpoint_service({"service": "ecr.dkr", "serviceType": "Gateway"})
