"""Table-driven stack configuration checks: realistic mistakes, each with the exact lines the user sees, and valid
variations that must keep passing.

Every bad case starts from Pulumi.dev.yaml and changes a little (`patch`, merged into the dev values); its lines are
exactly what `validate()` reports, in order: pydantic's errors explained from the field metadata, then the
cross-field problems (which run on the valid part even when other fields are invalid). Every line has the shape
`<key>:<full path>: <what is wrong>; <what is allowed>` and never shows a raw regex."""

import copy
import re

import pytest
import yaml

from stack_helpers import ROOT
from stacks.config import (ClusterConfig, ConfigError, GatewayConfig, GpuPoolConfig, KarpenterConfig, ModelConfig,
                           StackConfig, raw_from_values, validate)
from stacks.config.base import Strict
from stacks.config.errors import NAMESPACE
from stacks.config.models import VLLM_IMAGE

_DEV = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
DEV = {**{k.split(":", 1)[1]: v for k, v in _DEV.items() if k.startswith("gpu-burst:")}, "region": _DEV["aws:region"]}
POOL = DEV["gpu"]["pools"][0]
MODEL = DEV["models"][0]
UNSET = object()
"""A patch value that removes the key from the dev values (e.g. dev's create-mode network keys)."""
EXIST = {"mode": "existing", "vpcId": "vpc-0a1b2c3d4e5f67890",
         "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
         "cidr": UNSET, "azCount": UNSET, "natGateways": UNSET}


def keys(cls) -> str:
    """The keys a section accepts, as the unknown-key message lists them (so adding a field does not edit the
    table; the top-level and network cases spell the list out)."""
    hidden = getattr(cls, "internal_keys", ())
    return ", ".join(k for n, f in cls.model_fields.items() if (k := f.alias or n) not in hidden)


def merge(a: dict, b: dict) -> dict:
    """`b` over `a`: mappings merge key by key, anything else (lists included) replaces, UNSET removes."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        if v is UNSET:
            out.pop(k, None)
        else:
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


CERT = "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"
GLOBAL = {"hostedZoneName": "example.com", "recordName": "llm.example.com"}


def public_gw(**kw):
    """An internet-facing gateway with TLS (what globalDns needs), plus `kw`."""
    return {"gateway": {"public": True, "certificateArn": CERT, **kw}}


def pool(**kw):
    return {"gpu": {"pools": [{**POOL, **kw}]}}


def model(**kw):
    return {"models": [{**MODEL, **kw}]}


def net(**kw):
    return {"network": kw}


SLICED_POOL = {**POOL, "timeSlicing": 4}
SHARED = {"sharedGpu": True, "gpuMemoryUtilization": 0.2}


def sliced(**kw):
    """The dev model on one slice of the dev pool, its GPUs cut into 4."""
    return {"gpu": {"pools": [SLICED_POOL]}, "models": [{**MODEL, **SHARED, **kw}]}


WIN = {"start": "50 7 * * 1-5", "end": "0 19 * * 1-5", "timezone": "Europe/Berlin"}
"""Office hours in Berlin, warm ten minutes before eight (a cold start's worth), weekdays."""


def prewarm(*windows, **kw):
    return model(prewarm=list(windows), **kw)


A = {"name": "qwen-sql", "hfModelId": "acme/qwen2.5-1.5b-sql-lora", "revision": "1111111111222222222233333333334444444444"}
B = {**A, "name": "qwen-chat", "hfModelId": "acme/qwen2.5-1.5b-chat-lora"}
"""Two LoRA adapters of the dev model."""


def lora(*adapters, **kw):
    return model(adapters=list(adapters), **kw)


BAD = [
    # top level
    ('unknown-top-key', {"bogus": 1}, [
        'gpu-burst:bogus: unknown key; valid keys here: environment, network, cluster, systemNodes, karpenter, gpu, addons, models, gateway',
    ]),
    ('environment-enum', {"environment": "qa"}, [
        "gpu-burst:environment: 'qa' is not allowed; allowed: 'dev', 'staging' or 'prod'",
    ]),
    ('environment-type', {"environment": 3}, [
        'gpu-burst:environment: expected a string, got the number 3 (YAML reads it as a number); quote it, e.g. environment: "dev"; allowed: \'dev\', \'staging\' or \'prod\'',
    ]),
    ('region-format', {"region": "x"}, [
        "aws:region: 'x' is not an AWS region; allowed: e.g. us-west-2",
    ]),
    # network
    ('net-unknown', net(cidrr="10.0.0.0/16"), [
        'gpu-burst:network.cidrr: unknown key; valid keys here: mode, cidr, azCount, natGateways, vpcId, privateSubnetIds, publicSubnetIds, tagExistingSubnets, s3GatewayEndpoint, interfaceEndpoints',
    ]),
    ('net-cidr-garbage', net(cidr="ten"), [
        "gpu-burst:network.cidr: 'ten' is not a CIDR block; allowed: an IPv4 block with a prefix from /16 to /20, e.g. 10.0.0.0/16",
    ]),
    ('net-cidr-too-big', net(cidr="10.0.0.0/8"), [
        "gpu-burst:network.cidr: '10.0.0.0/8' has the wrong size; allowed: an IPv4 block with a prefix from /16 to /20, e.g. 10.0.0.0/16",
    ]),
    ('net-cidr-ipv6', net(cidr="fd00::/48"), [
        "gpu-burst:network.cidr: 'fd00::/48' is IPv6; allowed: an IPv4 block with a prefix from /16 to /20, e.g. 10.0.0.0/16",
    ]),
    ('net-az-type', net(azCount="three"), [
        "gpu-burst:network.azCount: expected an integer, got 'three'; write a whole number without quotes, e.g. azCount: 3",
    ]),
    ('net-az-low', net(azCount=1), [
        'gpu-burst:network.azCount: 1 is out of range; allowed: an integer from 2 to 6',
    ]),
    ('net-az-high', net(azCount=9), [
        'gpu-burst:network.azCount: 9 is out of range; allowed: an integer from 2 to 6',
    ]),
    ('net-az-float', net(azCount=2.5), [
        'gpu-burst:network.azCount: expected an integer, got the number 2.5; write a whole number without quotes, e.g. azCount: 3',
    ]),
    ('net-nat-enum', net(natGateways="two"), [
        "gpu-burst:network.natGateways: 'two' is not allowed; allowed: 'single' or 'perAz'",
    ]),
    ('net-mode-enum', net(mode="adopt"), [
        "gpu-burst:network.mode: 'adopt' is not allowed; allowed: 'create' or 'existing'",
    ]),
    ('net-existing-empty', net(mode="existing", cidr=UNSET, azCount=UNSET, natGateways=UNSET), [
        "gpu-burst:network.vpcId: required when mode is 'existing'; allowed: the id of the VPC to adopt, e.g. vpc-0a1b2c3d4e5f67890",
        "gpu-burst:network.privateSubnetIds: lists 0 subnets; allowed: at least 2, in different AZs, when mode is 'existing'",
    ]),
    ('net-existing-one-subnet', net(**{**EXIST, "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001"]}), [
        "gpu-burst:network.privateSubnetIds: lists 1 subnet; allowed: at least 2, in different AZs, when mode is 'existing'",
    ]),
    ('net-vpc-id-format', net(**{**EXIST, "vpcId": "vpc-xyz"}), [
        "gpu-burst:network.vpcId: 'vpc-xyz' is not a VPC id; allowed: e.g. vpc-0a1b2c3d4e5f67890",
    ]),
    ('net-subnet-id-format', net(**{**EXIST, "privateSubnetIds": ["subnet-1", "subnet-0a1b2c3d4e5f60002"]}), [
        "gpu-burst:network.privateSubnetIds[0]: 'subnet-1' is not a subnet id; allowed: e.g. subnet-0a1b2c3d4e5f67890",
    ]),
    ('net-subnet-twice', net(**{**EXIST, "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60001"]}), [
        "gpu-burst:network.privateSubnetIds[1]: 'subnet-0a1b2c3d4e5f60001' is listed twice (privateSubnetIds[0]); allowed: each subnet once",
    ]),
    ('net-subnet-private-and-public', net(**{**EXIST, "publicSubnetIds": ["subnet-0a1b2c3d4e5f60002"]}), [
        "gpu-burst:network.publicSubnetIds[0]: 'subnet-0a1b2c3d4e5f60002' is also a private subnet; allowed: a subnet is either private (nodes) or public (internet-facing load balancers), not both",
    ]),
    ('net-public-twice', net(**{**EXIST, "publicSubnetIds": ["subnet-0a1b2c3d4e5f60009", "subnet-0a1b2c3d4e5f60009"]}), [
        "gpu-burst:network.publicSubnetIds[1]: 'subnet-0a1b2c3d4e5f60009' is listed twice (publicSubnetIds[0]); allowed: each subnet once",
    ]),
    ('net-ids-in-create-mode', net(vpcId="vpc-0a1b2c3d4e5f67890"), [
        "gpu-burst:network.vpcId: is only read when mode is 'existing'; allowed: remove it, or set mode: existing",
    ]),
    ('net-subnets-not-list', net(**{**EXIST, "privateSubnetIds": "subnet-0a1b2c3d4e5f60001"}), [
        "gpu-burst:network.privateSubnetIds: expected a list, got 'subnet-0a1b2c3d4e5f60001'; write it as a YAML list, e.g. privateSubnetIds: [a, b]",
    ]),
    ('net-tag-existing-type', net(**{**EXIST, "tagExistingSubnets": "yes please"}), [
        "gpu-burst:network.tagExistingSubnets: expected true or false, got 'yes please'; write tagExistingSubnets: true or tagExistingSubnets: false",
    ]),
    ('net-s3-endpoint-existing', net(**EXIST, s3GatewayEndpoint=True), [
        "gpu-burst:network.s3GatewayEndpoint: is only read when mode is 'create' (an adopted VPC's route tables are its owner's); allowed: remove it, and give the adopted VPC's private route tables an S3 gateway endpoint yourself",
    ]),
    ('net-interface-endpoints-existing', net(**EXIST, interfaceEndpoints=True), [
        "gpu-burst:network.interfaceEndpoints: is only read when mode is 'create' (an adopted VPC's endpoints and DNS are its owner's); allowed: remove it",
    ]),
    # Switching dev to an adopted VPC and leaving its create-mode keys: each is named, like the endpoint keys.
    ('net-existing-leftover-create-keys', net(mode="existing", vpcId=EXIST["vpcId"], privateSubnetIds=EXIST["privateSubnetIds"]), [
        "gpu-burst:network.cidr: is only read when mode is 'create' (the adopted VPC keeps its own CIDR); allowed: remove it",
        "gpu-burst:network.azCount: is only read when mode is 'create' (the nodes use the AZs of privateSubnetIds); allowed: remove it",
        "gpu-burst:network.natGateways: is only read when mode is 'create' (an adopted VPC's egress is its owner's); allowed: remove it",
    ]),
    # Written is written, even at the default value or "off".
    ('net-existing-create-keys-at-default', net(**{**EXIST, "azCount": 3, "interfaceEndpoints": False}), [
        "gpu-burst:network.azCount: is only read when mode is 'create' (the nodes use the AZs of privateSubnetIds); allowed: remove it",
        "gpu-burst:network.interfaceEndpoints: is only read when mode is 'create' (an adopted VPC's endpoints and DNS are its owner's); allowed: remove it",
    ]),
    # Also on the partial section rebuilt around an invalid key: the defaults of mode create still do not count.
    ('net-existing-leftover-next-to-a-bad-id', net(**{**EXIST, "vpcId": "vpc-xyz", "natGateways": "perAz"}), [
        "gpu-burst:network.vpcId: 'vpc-xyz' is not a VPC id; allowed: e.g. vpc-0a1b2c3d4e5f67890",
        "gpu-burst:network.natGateways: is only read when mode is 'create' (an adopted VPC's egress is its owner's); allowed: remove it",
    ]),
    ('net-tag-existing-in-create-mode', net(tagExistingSubnets=False), [
        "gpu-burst:network.tagExistingSubnets: is only read when mode is 'existing'; allowed: remove it, or set mode: existing",
    ]),
    ('net-s3-endpoint-type', net(s3GatewayEndpoint="always"), [
        "gpu-burst:network.s3GatewayEndpoint: expected true or false, got 'always'; write s3GatewayEndpoint: true or s3GatewayEndpoint: false",
    ]),
    ('net-not-mapping', {"network": "create"}, [
        "gpu-burst:network: expected a mapping, got 'create'; write it as indented key: value lines with keys: mode, cidr, azCount, natGateways, vpcId, privateSubnetIds, publicSubnetIds, tagExistingSubnets, s3GatewayEndpoint, interfaceEndpoints",
    ]),
    # cluster
    ('k8s-version-number', {"cluster": {"kubernetesVersion": 1.35}}, [
        'gpu-burst:cluster.kubernetesVersion: expected a string, got the number 1.35 (YAML reads it as a number); quote it, e.g. kubernetesVersion: "1.35"; allowed: \'1.35\' or \'1.36\'',
    ]),
    ('k8s-version-old', {"cluster": {"kubernetesVersion": "1.29"}}, [
        "gpu-burst:cluster.kubernetesVersion: '1.29' is not allowed; allowed: '1.35' or '1.36'",
    ]),
    ('k8s-version-130-float', {"cluster": {"kubernetesVersion": 1.30}}, [
        'gpu-burst:cluster.kubernetesVersion: expected a string, got the number 1.3 (YAML reads it as a number); quote it, e.g. kubernetesVersion: "1.35"; allowed: \'1.35\' or \'1.36\'',
    ]),
    ('addon-version-not-a-build', {"cluster": {"addonVersions": {"coredns": "1.14.3"}}}, [
        "gpu-burst:cluster.addonVersions.coredns: '1.14.3' is not an EKS add-on version; allowed: v<major>.<minor>.<patch>-eksbuild.<build> as `aws eks describe-addon-versions` lists it, e.g. v1.14.3-eksbuild.3",
    ]),
    ('addon-version-latest', {"cluster": {"addonVersions": {"vpc-cni": "latest"}}}, [
        "gpu-burst:cluster.addonVersions.vpc-cni: 'latest' is not an EKS add-on version; allowed: v<major>.<minor>.<patch>-eksbuild.<build> as `aws eks describe-addon-versions` lists it, e.g. v1.22.4-eksbuild.3",
    ]),
    ('addon-version-yaml-number', {"cluster": {"addonVersions": {"vpc-cni": 1.22}}}, [
        "gpu-burst:cluster.addonVersions.vpc-cni: '1.22' is not an EKS add-on version; allowed: v<major>.<minor>.<patch>-eksbuild.<build> as `aws eks describe-addon-versions` lists it, e.g. v1.22.4-eksbuild.3",
    ]),
    ('addon-version-self-managed-image-tag', {"cluster": {"addonVersions": {"kube-proxy": "v1.35.3-minimal-eksbuild.2"}}}, [
        "gpu-burst:cluster.addonVersions.kube-proxy: 'v1.35.3-minimal-eksbuild.2' is the tag of a self-managed image, not an EKS add-on version; allowed: the same build without -minimal, e.g. v1.35.3-eksbuild.2",
    ]),
    ('addon-version-unknown-addon', {"cluster": {"addonVersions": {"aws-ebs-csi-driver": "v1.63.1-eksbuild.1"}}}, [
        "gpu-burst:cluster.addonVersions.aws-ebs-csi-driver: unknown key; valid keys here: vpc-cni, kube-proxy, coredns, eks-pod-identity-agent",
    ]),
    ('addon-versions-not-a-mapping', {"cluster": {"addonVersions": "latest"}}, [
        "gpu-burst:cluster.addonVersions: expected a mapping, got 'latest'; write it as indented key: value lines with keys: vpc-cni, kube-proxy, coredns, eks-pod-identity-agent",
    ]),
    ('kube-proxy-left-behind-by-a-kubernetes-upgrade', {"cluster": {"kubernetesVersion": "1.36", "addonVersions": {"kube-proxy": "v1.35.3-eksbuild.13"}}}, [
        "gpu-burst:cluster.addonVersions.kube-proxy: 'v1.35.3-eksbuild.13' is kube-proxy for Kubernetes 1.35, not for kubernetesVersion 1.36; allowed: a v1.36.x build, e.g. v1.36.0-eksbuild.14 (the default for 1.36), or remove the key",
    ]),
    ('kube-proxy-pin-with-a-bad-version-and-a-bad-kubernetes-version', {"cluster": {"kubernetesVersion": "1.29", "addonVersions": {"kube-proxy": "v1.29.15-eksbuild.16", "coredns": "v1.11"}}}, [
        "gpu-burst:cluster.kubernetesVersion: '1.29' is not allowed; allowed: '1.35' or '1.36'",
        "gpu-burst:cluster.addonVersions.coredns: 'v1.11' is not an EKS add-on version; allowed: v<major>.<minor>.<patch>-eksbuild.<build> as `aws eks describe-addon-versions` lists it, e.g. v1.14.3-eksbuild.3",
    ]),
    ('endpoint-bool', {"cluster": {"endpointPublicAccess": "maybe"}}, [
        "gpu-burst:cluster.endpointPublicAccess: expected true or false, got 'maybe'; write endpointPublicAccess: true or endpointPublicAccess: false",
    ]),
    ('public-cidrs-empty', {"cluster": {"publicAccessCidrs": []}}, [
        'gpu-burst:cluster.publicAccessCidrs: is empty while endpointPublicAccess is true; allowed: at least one public CIDR, e.g. your CI egress, or 0.0.0.0/0',
    ]),
    ('public-cidr-garbage', {"cluster": {"publicAccessCidrs": ["office"]}}, [
        "gpu-burst:cluster.publicAccessCidrs[0]: 'office' is not a CIDR block; allowed: an address/prefix such as 203.0.113.0/24",
    ]),
    ('log-type-enum', {"cluster": {"enabledLogTypes": ["api", "kubelet"]}}, [
        "gpu-burst:cluster.enabledLogTypes[1]: 'kubelet' is not allowed; allowed: 'api', 'audit', 'authenticator', 'controllerManager' or 'scheduler'",
    ]),
    ('log-types-not-list', {"cluster": {"enabledLogTypes": "api"}}, [
        "gpu-burst:cluster.enabledLogTypes: expected a list, got 'api'; write it as a YAML list, e.g. enabledLogTypes: [a, b]",
    ]),
    ('tags-aws-prefix', {"cluster": {"tags": {"aws:createdBy": "me"}}}, [
        "gpu-burst:cluster.tags.aws:createdBy: starts with 'aws:', which AWS reserves for its own tags; allowed: any other key, e.g. team or gpu-burst/owner",
    ]),
    ('tags-aws-prefix-case', {"cluster": {"tags": {"AWS:team": "x"}}}, [
        "gpu-burst:cluster.tags.AWS:team: starts with 'aws:', which AWS reserves for its own tags; allowed: any other key, e.g. team or gpu-burst/owner",
    ]),
    ('tags-long-key', {"cluster": {"tags": {"k" * 129: "x"}}}, [
        'gpu-burst:cluster.tags.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk: is 129 characters long; allowed: 1 to 128',
    ]),
    ('tags-long-value', {"cluster": {"tags": {"team": "v" * 257}}}, [
        'gpu-burst:cluster.tags.team: value is 257 characters long; allowed: at most 256',
    ]),
    ('tags-value-type', {"cluster": {"tags": {"team": 5}}}, [
        'gpu-burst:cluster.tags.team: expected a string, got the number 5 (YAML reads it as a number); quote it: team: "5"',
    ]),
    ('tags-not-mapping', {"cluster": {"tags": ["team=a"]}}, [
        'gpu-burst:cluster.tags: expected a mapping, got a list; write it as indented key: value lines',
    ]),
    ('cluster-unknown', {"cluster": {"version": "1.35"}}, [
        'gpu-burst:cluster.version: unknown key; valid keys here: ' + keys(ClusterConfig),
    ]),
    # system nodes
    ('sys-release-shape', {"systemNodes": {"releaseVersion": "latest"}}, [
        "gpu-burst:systemNodes.releaseVersion: 'latest' is not an EKS node group AMI release; allowed: e.g. 1.35.3-20261118",
    ]),
    ('sys-release-other-kubernetes', {"systemNodes": {"releaseVersion": "1.34.2-20261001"}}, [
        "gpu-burst:systemNodes.releaseVersion: '1.34.2-20261001' is an AMI release for Kubernetes 1.34, the cluster runs 1.35; allowed: a 1.35.<patch>-<date> release, or leave it out",
    ]),
    ('sys-types-empty', {"systemNodes": {"instanceTypes": []}}, [
        'gpu-burst:systemNodes.instanceTypes: has 0 items; allowed: at least 1',
    ]),
    ('sys-type-no-size', {"systemNodes": {"instanceTypes": ["m6i"]}}, [
        "gpu-burst:systemNodes.instanceTypes[0]: 'm6i' is not an EC2 instance type (family.size); allowed: e.g. m6i.large",
    ]),
    ('sys-type-upper', {"systemNodes": {"instanceTypes": ["M6i.large"]}}, [
        "gpu-burst:systemNodes.instanceTypes[0]: 'M6i.large' is not an EC2 instance type (family.size); allowed: e.g. m6i.large",
    ]),
    ('sys-type-bad-size', {"systemNodes": {"instanceTypes": ["m6i.huge"]}}, [
        "gpu-burst:systemNodes.instanceTypes[0]: 'm6i.huge' is not an EC2 instance type (family.size); allowed: e.g. m6i.large",
    ]),
    ('sys-type-string', {"systemNodes": {"instanceTypes": "m6i.large"}}, [
        "gpu-burst:systemNodes.instanceTypes: expected a list, got 'm6i.large'; write it as a YAML list, e.g. instanceTypes: [m6i.xlarge]",
    ]),
    ('sys-mixed-arch', {"systemNodes": {"instanceTypes": ["m6i.large", "m7g.large"]}}, [
        'gpu-burst:systemNodes.instanceTypes: mixes CPU architectures: m6i.large (x86_64), m7g.large (arm64); allowed: all x86_64 or all arm64 (one AMI per node group)',
        "gpu-burst:systemNodes.instanceTypes: no capacity figures for ['m7g.large']; allowed: c6i.2xlarge, c6i.4xlarge, c6i.large, c6i.xlarge, c7i.2xlarge, c7i.4xlarge, c7i.large, c7i.xlarge, m5.2xlarge, m5.4xlarge, m5.large, m5.xlarge, m6a.2xlarge, m6a.4xlarge, m6a.large, m6a.xlarge, m6i.2xlarge, m6i.4xlarge, m6i.large, m6i.xlarge, m7a.2xlarge, m7a.4xlarge, m7a.large, m7a.xlarge, m7i.2xlarge, m7i.4xlarge, m7i.large, m7i.xlarge, r6i.2xlarge, r6i.4xlarge, r6i.large, r6i.xlarge, r7i.2xlarge, r7i.4xlarge, r7i.large, r7i.xlarge (add the type to stacks/config/capacity.py INSTANCE_SHAPES)",
    ]),
    ('sys-mixed-arch-t4g', {"systemNodes": {"instanceTypes": ["t3.large", "t4g.large", "c6gn.large"]}}, [
        'gpu-burst:systemNodes.instanceTypes: mixes CPU architectures: t3.large (x86_64), t4g.large (arm64), c6gn.large (arm64); allowed: all x86_64 or all arm64 (one AMI per node group)',
        "gpu-burst:systemNodes.instanceTypes: no capacity figures for ['t3.large', 't4g.large', 'c6gn.large']; allowed: c6i.2xlarge, c6i.4xlarge, c6i.large, c6i.xlarge, c7i.2xlarge, c7i.4xlarge, c7i.large, c7i.xlarge, m5.2xlarge, m5.4xlarge, m5.large, m5.xlarge, m6a.2xlarge, m6a.4xlarge, m6a.large, m6a.xlarge, m6i.2xlarge, m6i.4xlarge, m6i.large, m6i.xlarge, m7a.2xlarge, m7a.4xlarge, m7a.large, m7a.xlarge, m7i.2xlarge, m7i.4xlarge, m7i.large, m7i.xlarge, r6i.2xlarge, r6i.4xlarge, r6i.large, r6i.xlarge, r7i.2xlarge, r7i.4xlarge, r7i.large, r7i.xlarge (add the type to stacks/config/capacity.py INSTANCE_SHAPES)",
    ]),
    ('sys-sizes-order', {"systemNodes": {"desiredSize": 5, "maxSize": 3}}, [
        'gpu-burst:systemNodes.desiredSize: 5 is outside minSize 2 .. maxSize 3; allowed: minSize <= desiredSize <= maxSize',
    ]),
    # minSize above maxSize is reported on the keys written, not on desiredSize (dev writes all three)
    ('sys-min-above-max', {"systemNodes": {"minSize": 3, "maxSize": 2}}, [
        'gpu-burst:systemNodes.minSize: 3 is above maxSize 2; allowed: at most 2, or raise maxSize',
    ]),
    ('sys-min-above-desired', {"systemNodes": {"minSize": 3, "desiredSize": 2}}, [
        'gpu-burst:systemNodes.desiredSize: 2 is outside minSize 3 .. maxSize 3; allowed: minSize <= desiredSize <= maxSize',
    ]),
    ('sys-size-zero', {"systemNodes": {"minSize": 0}}, [
        'gpu-burst:systemNodes.minSize: 0 is out of range; allowed: an integer from 1 to 20',
    ]),
    ('sys-size-type', {"systemNodes": {"maxSize": "3 nodes"}}, [
        "gpu-burst:systemNodes.maxSize: expected an integer, got '3 nodes'; write a whole number without quotes, e.g. maxSize: 3",
    ]),
    ('sys-disk-low', {"systemNodes": {"diskSizeGib": 10}}, [
        'gpu-burst:systemNodes.diskSizeGib: 10 is out of range; allowed: an integer from 20 to 1000',
    ]),
    ('sys-ami-enum', {"systemNodes": {"ami": "al2"}}, [
        "gpu-burst:systemNodes.ami: 'al2' is not allowed; allowed: 'al2023' or 'bottlerocket'",
    ]),
    # karpenter
    ('karp-chart', {"karpenter": {"chartVersion": "1.13.0"}}, [
        "gpu-burst:karpenter.chartVersion: '1.13.0' is not a Karpenter 1.14 chart version; allowed: e.g. 1.14.1",
    ]),
    ('karp-chart-v', {"karpenter": {"chartVersion": "v1.14.1"}}, [
        "gpu-burst:karpenter.chartVersion: 'v1.14.1' is not a Karpenter 1.14 chart version; allowed: e.g. 1.14.1",
    ]),
    ('karp-replicas-above-desired', {"karpenter": {"replicas": 3}}, [
        'gpu-burst:karpenter.replicas: 3 replicas need 3 system nodes (required hostname anti-affinity) but systemNodes.desiredSize is 2; allowed: at most 2, or raise systemNodes.desiredSize',
    ]),
    ('karp-replicas-range', {"karpenter": {"replicas": 5}}, [
        'gpu-burst:karpenter.replicas: 5 is out of range; allowed: an integer from 1 to 3',
    ]),
    ('karp-log-level', {"karpenter": {"logLevel": "warn"}}, [
        "gpu-burst:karpenter.logLevel: 'warn' is not allowed; allowed: 'debug', 'info' or 'error'",
    ]),
    ('karp-unknown', {"karpenter": {"version": "1.14.1"}}, [
        'gpu-burst:karpenter.version: unknown key; valid keys here: ' + keys(KarpenterConfig),
    ]),
    ('karp-spot-role-type', {"karpenter": {"createSpotServiceLinkedRole": "sometimes"}}, [
        "gpu-burst:karpenter.createSpotServiceLinkedRole: expected true or false, got 'sometimes'; write createSpotServiceLinkedRole: true or createSpotServiceLinkedRole: false",
    ]),
    # gpu
    ('gpu-al2', {"gpu": {"amiFamily": "al2"}}, [
        "gpu-burst:gpu.amiFamily: AL2 is not supported (EKS AL2 AMIs ended with Kubernetes 1.32); allowed: 'al2023' or 'bottlerocket'",
    ]),
    ('gpu-ami-family-enum', {"gpu": {"amiFamily": "ubuntu"}}, [
        "gpu-burst:gpu.amiFamily: 'ubuntu' is not allowed; allowed: 'al2023' or 'bottlerocket'",
    ]),
    ('gpu-ami-latest', {"gpu": {"amiVersion": "latest"}}, [
        "gpu-burst:gpu.amiVersion: 'latest' drifts every GPU node on each AMI release; allowed: a pinned version, or latest with allowLatestAmi: true",
    ]),
    ('gpu-ami-non-ascii-digits', {"gpu": {"amiVersion": "v\u0662\u0660\u0662\u0666\u0660\u0667\u0661\u0664"}}, [
        "gpu-burst:gpu.amiVersion: 'v\u0662\u0660\u0662\u0666\u0660\u0667\u0661\u0664' is not an al2023 release; allowed: v<YYYYMMDD> with a real date (e.g. v20260714), or latest",
    ]),
    ('gpu-ami-not-date', {"gpu": {"amiVersion": "v20261350"}}, [
        "gpu-burst:gpu.amiVersion: 'v20261350' is not an al2023 release; allowed: v<YYYYMMDD> with a real date (e.g. v20260714), or latest",
    ]),
    ('gpu-ami-feb-30', {"gpu": {"amiVersion": "v20260230"}}, [
        "gpu-burst:gpu.amiVersion: 'v20260230' is not an al2023 release; allowed: v<YYYYMMDD> with a real date (e.g. v20260714), or latest",
    ]),
    ('gpu-ami-format', {"gpu": {"amiVersion": "20260818"}}, [
        "gpu-burst:gpu.amiVersion: '20260818' is not an al2023 release; allowed: v<YYYYMMDD> with a real date (e.g. v20260714), or latest",
    ]),
    ('gpu-ami-bottlerocket-format', {"gpu": {"amiFamily": "bottlerocket", "amiVersion": "v20260818"}}, [
        "gpu-burst:gpu.amiVersion: 'v20260818' is not a bottlerocket release; allowed: vX.Y.Z (e.g. v1.64.0), or latest",
    ]),
    ('gpu-ami-bottlerocket-non-ascii', {"gpu": {"amiFamily": "bottlerocket", "amiVersion": "v\u0661.\u0665\u0660.\u0660"}}, [
        "gpu-burst:gpu.amiVersion: 'v\u0661.\u0665\u0660.\u0660' is not a bottlerocket release; allowed: vX.Y.Z (e.g. v1.64.0), or latest",
    ]),
    # bottlerocket CHANGELOG: the aws-k8s-1.35-nvidia variant arrives in v1.53.0, aws-k8s-1.36-nvidia in v1.61.0
    ('gpu-ami-bottlerocket-before-the-1-35-variant', {"gpu": {"amiFamily": "bottlerocket", "amiVersion": "v1.52.3"}}, [
        "gpu-burst:gpu.amiVersion: 'v1.52.3' has no aws-k8s-1.35-nvidia variant (added in v1.53.0); allowed: v1.53.0 or later for Kubernetes 1.35",
    ]),
    ('gpu-ami-bottlerocket-before-the-1-36-variant', {"cluster": {"kubernetesVersion": "1.36"},
                                                      "gpu": {"amiFamily": "bottlerocket", "amiVersion": "v1.60.9"}}, [
        "gpu-burst:gpu.amiVersion: 'v1.60.9' has no aws-k8s-1.36-nvidia variant (added in v1.61.0); allowed: v1.61.0 or later for Kubernetes 1.36",
    ]),
    ('gpu-image-cache-prefix-length', {"gpu": {"imageCache": {
        "dockerHubCredentialArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf",
        "repositoryPrefix": "d"}}}, [
        "gpu-burst:gpu.imageCache.repositoryPrefix: 'd' is not an ECR repository prefix (lowercase, 2-30 characters); allowed: e.g. docker-hub",
    ]),
    ('gpu-volume-low', {"gpu": {"volumeSizeGib": 100}}, [
        'gpu-burst:gpu.volumeSizeGib: 100 is out of range; allowed: an integer from 150 to 16000',
    ]),
    ('gpu-throughput-high', {"gpu": {"volumeThroughputMibps": 2000}}, [
        'gpu-burst:gpu.volumeThroughputMibps: 2000 is out of range; allowed: an integer from 125 to 1000',
    ]),
    ('gpu-pools-empty', {"gpu": {"pools": []}}, [
        'gpu-burst:gpu.pools: has 0 items; allowed: at least 1',
    ]),
    ('gpu-pools-dup', {"gpu": {"pools": [POOL, {**POOL, "weight": 50}]}}, [
        "gpu-burst:gpu.pools[1].name: 'gpu-on-demand' is already the name of pools[0]; allowed: a name unique across gpu.pools",
    ]),
    ('gpu-pool-name-upper', pool(name="GPU"), [
        "gpu-burst:gpu.pools[0].name: 'GPU' is not a Kubernetes name; allowed: e.g. gpu-spot",
    ]),
    ('gpu-pool-name-missing', {"gpu": {"pools": [{k: v for k, v in POOL.items() if k != "name"}]}}, [
        "gpu-burst:gpu.pools[0].name: required but not set; NodePool name: lowercase letters, digits and '-'.",
    ]),
    ('gpu-pool-name-long', pool(name="g" * 41), [
        'gpu-burst:gpu.pools[0].name: has 41 characters; allowed: at most 40',
    ]),
    ('gpu-pool-unknown', pool(gpuCount=1), [
        'gpu-burst:gpu.pools[0].gpuCount: unknown key; valid keys here: ' + keys(GpuPoolConfig),
    ]),
    ('gpu-families-empty', pool(instanceFamilies=[]), [
        'gpu-burst:gpu.pools[0].instanceFamilies: is empty; allowed: one or more of g4dn, g5, g6, g6e, gr6, p4d, p4de, p5, p5e, p5en, p6-b200',
    ]),
    ('gpu-families-unknown', pool(instanceFamilies=["g6f"]), [
        "gpu-burst:gpu.pools[0].instanceFamilies: unknown GPU instance families ['g6f']; allowed: g4dn, g5, g6, g6e, gr6, p4d, p4de, p5, p5e, p5en, p6-b200",
    ]),
    ('gpu-families-dup', pool(instanceFamilies=["g5", "g5"]), [
        "gpu-burst:gpu.pools[0].instanceFamilies: ['g5', 'g5'] lists a family twice; allowed: each family once",
    ]),
    ('gpu-gpus-3', pool(gpusPerNode=[3]), [
        'gpu-burst:gpu.pools[0].gpusPerNode: no instance of g5, g6 has [3] GPUs (g5: [1, 4, 8]; g6: [1, 4, 8]); allowed: [1, 4, 8]',
        'gpu-burst:gpu.pools[0].gpuLimit: 2 is below one node of 3 GPUs (gpusPerNode [3]); allowed: at least 3',
    ]),
    ('gpu-p5-one', pool(instanceFamilies=["p5"], gpusPerNode=[1], gpuLimit=8, cpuLimit=192), [
        'gpu-burst:gpu.pools[0].gpusPerNode: no instance of p5 has [1] GPUs (p5: [8]); allowed: [8]',
    ]),
    ('gpu-gr6-four', pool(instanceFamilies=["gr6"], gpusPerNode=[4], gpuLimit=8, cpuLimit=192), [
        'gpu-burst:gpu.pools[0].gpusPerNode: no instance of gr6 has [4] GPUs (gr6: [1]); allowed: [1]',
    ]),
    ('gpu-gpus-zero', pool(gpusPerNode=[0]), [
        'gpu-burst:gpu.pools[0].gpusPerNode: [0] out of range; allowed: GPU counts from 1 to 8',
    ]),
    ('gpu-gpus-empty', pool(gpusPerNode=[]), [
        'gpu-burst:gpu.pools[0].gpusPerNode: is empty; allowed: one or more GPU counts per node, e.g. [1] or [1, 4]',
    ]),
    ('gpu-gpus-dup', pool(gpusPerNode=[1, 1]), [
        'gpu-burst:gpu.pools[0].gpusPerNode: [1, 1] lists a count twice; allowed: each count once',
    ]),
    ('gpu-gpus-type', pool(gpusPerNode=["one"]), [
        "gpu-burst:gpu.pools[0].gpusPerNode[0]: expected an integer, got 'one'; write a whole number without quotes, e.g. gpusPerNode: 1",
    ]),
    ('gpu-capacity-enum', pool(capacityTypes=["reserved"]), [
        "gpu-burst:gpu.pools[0].capacityTypes[0]: 'reserved' is not allowed; allowed: 'spot' or 'on-demand'",
    ]),
    ('gpu-capacity-empty', pool(capacityTypes=[]), [
        "gpu-burst:gpu.pools[0].capacityTypes: is empty; allowed: 'spot', 'on-demand' or both",
    ]),
    ('gpu-capacity-dup', pool(capacityTypes=["spot", "spot"]), [
        "gpu-burst:gpu.pools[0].capacityTypes: ['spot', 'spot'] lists a capacity type twice; allowed: each once",
    ]),
    ('gpu-weight-high', pool(weight=101), [
        'gpu-burst:gpu.pools[0].weight: 101 is out of range; allowed: an integer from 1 to 100',
    ]),
    ('gpu-limit-below-node', pool(gpusPerNode=[1, 4], gpuLimit=2, cpuLimit=64), [
        'gpu-burst:gpu.pools[0].gpuLimit: 2 is below one node of 4 GPUs (gpusPerNode [1, 4]); allowed: at least 4',
    ]),
    ('gpu-cpu-below-node', pool(gpusPerNode=[1, 4], gpuLimit=4, cpuLimit=32), [
        'gpu-burst:gpu.pools[0].cpuLimit: 32 is below one node: the smallest 4-GPU instance of g5, g6 has 48 vCPUs; allowed: at least 48',
    ]),
    ('gpu-cpu-below-p4d', pool(instanceFamilies=["p4d"], gpusPerNode=[8], gpuLimit=8, cpuLimit=64), [
        'gpu-burst:gpu.pools[0].cpuLimit: 64 is below one node: the smallest 8-GPU instance of p4d has 96 vCPUs; allowed: at least 96',
    ]),
    ('gpu-limit-zero', pool(gpuLimit=0), [
        'gpu-burst:gpu.pools[0].gpuLimit: 0 is out of range; allowed: an integer from 1 to 1000',
    ]),
    ('gpu-consolidate-fraction', pool(consolidateAfter="1.5m"), [
        "gpu-burst:gpu.pools[0].consolidateAfter: '1.5m' is not a Karpenter duration; allowed: whole s/m/h units such as 30s, 5m, 720h, or Never",
    ]),
    ('gpu-expire-ms', pool(expireAfter="500ms"), [
        "gpu-burst:gpu.pools[0].expireAfter: '500ms' is not a Karpenter duration; allowed: whole s/m/h units such as 30s, 5m, 720h, or Never",
    ]),
    ('gpu-grace-never', pool(terminationGracePeriod="Never"), [
        "gpu-burst:gpu.pools[0].terminationGracePeriod: 'Never' is not a termination grace period; allowed: whole s/m/h units such as 30m or 1h (no Never: leave the default to bound draining)",
    ]),
    ('gpu-grace-days', pool(terminationGracePeriod="1d"), [
        "gpu-burst:gpu.pools[0].terminationGracePeriod: '1d' is not a termination grace period; allowed: whole s/m/h units such as 30m or 1h (no Never: leave the default to bound draining)",
    ]),
    ('gpu-budget-format', pool(disruptionBudgetNodes="ten"), [
        "gpu-burst:gpu.pools[0].disruptionBudgetNodes: 'ten' is not a node count or percentage; allowed: e.g. 10% or 1",
    ]),
    # YAML reads an unquoted 10 as a number: the hint keeps the count, "10%" is only offered as the other meaning
    ('gpu-budget-unquoted-count', pool(disruptionBudgetNodes=10), [
        'gpu-burst:gpu.pools[0].disruptionBudgetNodes: expected a string, got the number 10 (YAML reads it as a number); quote it: disruptionBudgetNodes: "10" (the count 10); for a percentage instead, disruptionBudgetNodes: "10%"',
    ]),
    ('gpu-budget-unquoted-big-count', pool(disruptionBudgetNodes=150), [
        'gpu-burst:gpu.pools[0].disruptionBudgetNodes: expected a string, got the number 150 (YAML reads it as a number); quote it: disruptionBudgetNodes: "150"',
    ]),
    ('gpu-budget-percent-high', pool(disruptionBudgetNodes="150%"), [
        "gpu-burst:gpu.pools[0].disruptionBudgetNodes: '150%' is not a node count or percentage; allowed: e.g. 10% or 1",
    ]),
    # models
    ('model-unknown', model(replicas=1), [
        'gpu-burst:models[0].replicas: unknown key; valid keys here: ' + keys(ModelConfig),
    ]),
    ('model-served-name-upper', model(servedName="Llama-3.1"), [
        "gpu-burst:models[0].servedName: 'Llama-3.1' is not a DNS label (it also names the model's Deployment, Service and route); allowed: lowercase letters, digits and '-', starting with a letter, e.g. qwen2-5-1-5b-instruct",
    ]),
    ('model-served-name-long', model(servedName="m" * 41), [
        "gpu-burst:models[0].servedName: 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm' is too long; allowed: at most 40 characters",
    ]),
    ('model-served-name-missing', {"models": [{k: v for k, v in MODEL.items() if k != "servedName"}]}, [
        "gpu-burst:models[0].servedName: required but not set; Name clients send as `model` (and in the routing header), the `model_name` label of vLLM's metrics, and the Kubernetes name of every object of the model.",
    ]),
    ('model-served-name-dup', {"models": [MODEL, {**MODEL, "hfModelId": "Qwen/Qwen2.5-3B-Instruct"}]}, [
        "gpu-burst:models[1].servedName: 'qwen2-5-1-5b-instruct' is already used by models[0]; allowed: a servedName unique across gpu-burst:models",
    ]),
    ('model-hf-id-format', model(hfModelId="qwen"), [
        "gpu-burst:models[0].hfModelId: 'qwen' is not a Hugging Face model id; allowed: e.g. Qwen/Qwen2.5-1.5B-Instruct",
    ]),
    ('model-image-latest', model(image="vllm/vllm-openai:latest"), [
        "gpu-burst:models[0].image: image 'vllm/vllm-openai:latest' is not pinned; allowed: an explicit release tag or digest, e.g. " + VLLM_IMAGE,
    ]),
    ('model-image-untagged', model(image="vllm/vllm-openai"), [
        "gpu-burst:models[0].image: image 'vllm/vllm-openai' is not pinned; allowed: an explicit release tag or digest, e.g. " + VLLM_IMAGE,
    ]),
    ('model-image-upper', model(image="vllm/VLLM-openai:v0.29.0"), [
        "gpu-burst:models[0].image: image 'vllm/VLLM-openai:v0.29.0' has uppercase letters in the repository; allowed: a lowercase repository such as vllm/vllm-openai:v0.29.0",
    ]),
    # distribution/reference@v0.6.0 normalize.go splitDockerDomain: the first component is a registry host when it
    # contains '.' or ':' or is localhost, and an uppercase one is read as a host too (no node resolves 'VLLM').
    # Grammar (reference.go): path components are lowercase [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*.
    ('model-image-upper-namespace', model(image="VLLM/vllm-openai:v0.29.0"), [
        "gpu-burst:models[0].image: image 'VLLM/vllm-openai:v0.29.0' has uppercase letters in the repository ('VLLM' is not a registry host: a host contains '.' or ':' or is localhost); allowed: a lowercase repository such as vllm/vllm-openai:v0.29.0",
    ]),
    ('model-image-upper-keeps-the-tag', model(image="ghcr.io/Acme/vllm:v0.29.0-RC1"), [
        "gpu-burst:models[0].image: image 'ghcr.io/Acme/vllm:v0.29.0-RC1' has uppercase letters in the repository; allowed: a lowercase repository such as ghcr.io/acme/vllm:v0.29.0-RC1",
    ]),
    ('model-image-scheme', model(image="https://ghcr.io/vllm/vllm-openai:v0.29.0"), [
        "gpu-burst:models[0].image: image 'https://ghcr.io/vllm/vllm-openai:v0.29.0' is not an image reference; allowed: [registry/]repository:tag or repository@sha256:<digest>, lowercase, no spaces or scheme, e.g. " + VLLM_IMAGE,
    ]),
    ('model-image-space', model(image="vllm/vllm-openai: v0.29.0"), [
        "gpu-burst:models[0].image: image 'vllm/vllm-openai: v0.29.0' is not an image reference; allowed: [registry/]repository:tag or repository@sha256:<digest>, lowercase, no spaces or scheme, e.g. " + VLLM_IMAGE,
    ]),
    ('model-image-bad-digest', model(image="vllm/vllm-openai@sha256:abc"), [
        "gpu-burst:models[0].image: image 'vllm/vllm-openai@sha256:abc' is not an image reference; allowed: [registry/]repository:tag or repository@sha256:<digest>, lowercase, no spaces or scheme, e.g. " + VLLM_IMAGE,
    ]),
    ('model-image-double-colon', model(image="vllm/vllm-openai:v0.29.0:extra"), [
        "gpu-burst:models[0].image: image 'vllm/vllm-openai:v0.29.0:extra' is not an image reference; allowed: [registry/]repository:tag or repository@sha256:<digest>, lowercase, no spaces or scheme, e.g. " + VLLM_IMAGE,
    ]),
    # Python's \w and \d match other scripts; the registry grammar, IAM and Hugging Face are ASCII only
    ('model-image-non-ascii-tag', model(image="vllm/vllm-openai:v0.33.0\u00e9"), [
        "gpu-burst:models[0].image: image 'vllm/vllm-openai:v0.33.0\u00e9' is not an image reference; allowed: [registry/]repository:tag or repository@sha256:<digest>, lowercase, no spaces or scheme, e.g. " + VLLM_IMAGE,
    ]),
    ('model-hf-id-non-ascii', model(hfModelId="Qwen/Qw\u00e9n"), [
        "gpu-burst:models[0].hfModelId: 'Qwen/Qw\u00e9n' is not a Hugging Face model id; allowed: e.g. Qwen/Qwen2.5-1.5B-Instruct",
    ]),
    ('cluster-admin-non-ascii-digits', {"cluster": {"adminPrincipalArns": ["arn:aws:iam::\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662:role/admin"]}}, [
        "gpu-burst:cluster.adminPrincipalArns[0]: 'arn:aws:iam::\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662:role/admin' is not an IAM role or user ARN; allowed: arn:<partition>:iam::<12-digit account>:role/<name> or arn:<partition>:iam::<12-digit account>:user/<name>",
    ]),
    ('model-gpus-high', model(gpus=16), [
        'gpu-burst:models[0].gpus: 16 is out of range; allowed: an integer from 1 to 8',
    ]),
    ('model-gpus-pool-node', model(gpus=4), [
        "gpu-burst:models[0].gpus: 4 GPUs do not fit on one node of pool 'gpu-on-demand' (gpusPerNode [1]); allowed: at most 1, or a pool with larger nodes",
    ]),
    ('model-max-len-low', model(maxModelLen=100), [
        'gpu-burst:models[0].maxModelLen: 100 is out of range; allowed: an integer from 256 to 1048576',
    ]),
    ('model-gpu-mem-high', model(gpuMemoryUtilization=0.99), [
        'gpu-burst:models[0].gpuMemoryUtilization: 0.99 is out of range; allowed: a number more than 0.1 and at most 0.98',
    ]),
    ('model-gpu-mem-type', model(gpuMemoryUtilization="90%"), [
        "gpu-burst:models[0].gpuMemoryUtilization: expected a number, got '90%'; write it without quotes, e.g. gpuMemoryUtilization: 0.9",
    ]),
    ('model-extra-max-len', model(extraArgs=["--max-model-len=4096"]), [
        "gpu-burst:models[0].extraArgs[0]: '--max-model-len' is --max-model-len: the program sets it from the model's `maxModelLen`; allowed: set `maxModelLen` instead",
    ]),
    ('model-extra-max-len-underscore', model(extraArgs=["--max_model_len=4096"]), [
        "gpu-burst:models[0].extraArgs[0]: '--max_model_len' means --max-model-len: the program sets it from the model's `maxModelLen`; allowed: set `maxModelLen` instead",
    ]),
    ('model-extra-tp-short', model(extraArgs=["-tp", "2"]), [
        "gpu-burst:models[0].extraArgs[0]: '-tp' is --tensor-parallel-size, which the program sets from the model's `gpus`; allowed: set `gpus` instead",
        "gpu-burst:models[0].extraArgs[1]: '2' looks like the value of extraArgs[0] (-tp); allowed: flag and value in one item, -tp=2",
    ]),
    ('model-extra-tp-long', model(extraArgs=["--tensor-parallel-size=2"]), [
        "gpu-burst:models[0].extraArgs[0]: '--tensor-parallel-size' is --tensor-parallel-size: the program sets it from the model's `gpus`; allowed: set `gpus` instead",
    ]),
    ('model-extra-tp-underscore', model(extraArgs=["--tensor_parallel_size=2"]), [
        "gpu-burst:models[0].extraArgs[0]: '--tensor_parallel_size' means --tensor-parallel-size: the program sets it from the model's `gpus`; allowed: set `gpus` instead",
    ]),
    ('model-extra-port', model(extraArgs=["--port=9000"]), [
        "gpu-burst:models[0].extraArgs[0]: '--port' is --port: the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag",
    ]),
    ('model-extra-host', model(extraArgs=["--host=127.0.0.1"]), [
        "gpu-burst:models[0].extraArgs[0]: '--host' is --host: the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag",
    ]),
    ('model-extra-api-key', model(extraArgs=["--api-key=abc"]), [
        "gpu-burst:models[0].extraArgs[0]: '--api-key' is --api-key: the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag",
    ]),
    ('model-extra-api-key-underscore', model(extraArgs=["--api_key", "abc"]), [
        "gpu-burst:models[0].extraArgs[0]: '--api_key' means --api-key: the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag",
        "gpu-burst:models[0].extraArgs[1]: 'abc' looks like the value of extraArgs[0] (--api_key); allowed: flag and value in one item, --api_key=abc",
    ]),
    ('model-extra-served-name', model(extraArgs=["--served-model-name=other"]), [
        "gpu-burst:models[0].extraArgs[0]: '--served-model-name' is --served-model-name: the program sets it from the model's `servedName`; allowed: set `servedName` instead",
    ]),
    ('model-extra-model', model(extraArgs=["--model=Qwen/Qwen2.5-7B"]), [
        "gpu-burst:models[0].extraArgs[0]: '--model' is --model: the program sets it from the model's `hfModelId`; allowed: set `hfModelId` instead",
    ]),
    ('model-extra-gpu-mem', model(extraArgs=["--gpu-memory-utilization=0.5"]), [
        "gpu-burst:models[0].extraArgs[0]: '--gpu-memory-utilization' is --gpu-memory-utilization: the program sets it from the model's `gpuMemoryUtilization`; allowed: set `gpuMemoryUtilization` instead",
    ]),
    ('model-extra-download-dir', model(extraArgs=["--download-dir=/tmp"]), [
        "gpu-burst:models[0].extraArgs[0]: '--download-dir' is --download-dir: the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag",
    ]),
    ('model-extra-config', model(extraArgs=["--config=serve.yaml"]), [
        "gpu-burst:models[0].extraArgs[0]: '--config' is --config: the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag",
    ]),
    ('model-extra-load-format', model(extraArgs=["--load-format=safetensors"]), [
        "gpu-burst:models[0].extraArgs[0]: '--load-format' is --load-format: the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag",
    ]),
    ('model-extra-revision', model(extraArgs=["--revision=main"]), [
        "gpu-burst:models[0].extraArgs[0]: '--revision' is --revision: the program sets it from the model's `revision`; allowed: set `revision` instead",
    ]),
    ('model-extra-device-memory', model(extraArgs=["--device_memory_utilization=0.5"]), [
        "gpu-burst:models[0].extraArgs[0]: '--device_memory_utilization' means --device-memory-utilization: the program sets it from the model's `gpuMemoryUtilization`; allowed: set `gpuMemoryUtilization` instead",
    ]),
    ('model-extra-abbrev', model(extraArgs=["--max-model=4096"]), [
        "gpu-burst:models[0].extraArgs[0]: '--max-model' means --max-model-len: the program sets it from the model's `maxModelLen`; allowed: set `maxModelLen` instead",
    ]),
    ('model-extra-pp-short', model(extraArgs=["-pp=2"]), [
        "gpu-burst:models[0].extraArgs[0]: '-pp=2' is --pipeline-parallel-size, which the program sets from the model's `gpus`; allowed: set `gpus` instead",
    ]),
    ('model-extra-dp', model(extraArgs=["--data-parallel-size=2"]), [
        "gpu-burst:models[0].extraArgs[0]: '--data-parallel-size' is --data-parallel-size: the program sets it from the model's `gpus`; allowed: set `gpus` instead",
    ]),
    ('model-extra-empty', model(extraArgs=[""]), [
        'gpu-burst:models[0].extraArgs[0]: is empty; allowed: one vLLM flag per item, e.g. --enable-prefix-caching or --max-num-seqs=64',
    ]),
    ('model-extra-blank', model(extraArgs=["  "]), [
        'gpu-burst:models[0].extraArgs[0]: is empty; allowed: one vLLM flag per item, e.g. --enable-prefix-caching or --max-num-seqs=64',
    ]),
    ('model-extra-two-flags', model(extraArgs=["--enable-prefix-caching --max-num-seqs=64"]), [
        "gpu-burst:models[0].extraArgs[0]: '--enable-prefix-caching --max-num-seqs=64' holds several words; allowed: one flag per item, its value after '=' (e.g. --max-num-seqs=64): items are passed to vLLM without a shell",
    ]),
    ('model-extra-space-value', model(extraArgs=["--max-num-seqs 64"]), [
        "gpu-burst:models[0].extraArgs[0]: '--max-num-seqs 64' holds several words; allowed: one flag per item, its value after '=' (e.g. --max-num-seqs=64): items are passed to vLLM without a shell",
    ]),
    ('model-extra-short-unknown', model(extraArgs=["-q=awq"]), [
        "gpu-burst:models[0].extraArgs[0]: '-q=awq' is not a long flag; allowed: --flag or --flag=value (long names only, e.g. --quantization=...)",
    ]),
    ('model-extra-positional', model(extraArgs=["Qwen/Qwen2.5-7B"]), [
        "gpu-burst:models[0].extraArgs[0]: 'Qwen/Qwen2.5-7B' is not a long flag; allowed: --flag or --flag=value (long names only, e.g. --max-num-seqs=64)",
    ]),
    ('model-extra-not-list', model(extraArgs="--enable-prefix-caching"), [
        "gpu-burst:models[0].extraArgs: expected a list, got '--enable-prefix-caching'; write it as a YAML list, e.g. extraArgs: [a, b]",
    ]),
    ('model-min-above-max', model(minReplicas=5, maxReplicas=2), [
        'gpu-burst:models[0].minReplicas: 5 is above maxReplicas (2); allowed: 0 to 2',
    ]),
    ('model-max-replicas-zero', model(maxReplicas=0), [
        'gpu-burst:models[0].maxReplicas: 0 is out of range; allowed: an integer from 1 to 100',
    ]),
    ('model-max-replicas-over-limit', model(maxReplicas=3), [
        "gpu-burst:models[0].maxReplicas: 3 replicas x 1 GPUs exceed pool 'gpu-on-demand' gpuLimit 2; allowed: at most 2, or raise gpu.pools[0].gpuLimit",
    ]),
    ('model-pool-unknown', model(pool="nope"), [
        "gpu-burst:models[0].pool: 'nope' is not a pool of gpu.pools; allowed: gpu-on-demand",
    ]),
    ('model-idle-short', model(idleBeforeScaleToZero="30s"), [
        "gpu-burst:models[0].idleBeforeScaleToZero: '30s' would thrash GPU nodes; allowed: at least 1m",
    ]),
    ('model-idle-format', model(idleBeforeScaleToZero="ten minutes"), [
        "gpu-burst:models[0].idleBeforeScaleToZero: 'ten minutes' is not a duration; allowed: Go duration syntax such as 30s, 5m, 1h30m",
    ]),
    ('model-startup-short', model(startupBudget="5m"), [
        "gpu-burst:models[0].startupBudget: '5m' cannot cover node + image + weights; allowed: at least 15m",
    ]),
    ('model-drain-long', model(drainTimeout="2h"), [
        "gpu-burst:models[0].drainTimeout: '2h' is out of range; allowed: from 10s to 1h",
    ]),
    ('model-cpu-garbage', model(cpu="lots"), [
        'gpu-burst:models[0].cpu: \'lots\' is not a CPU amount; allowed: a positive Kubernetes quantity such as 4, "3.5" or 3500m (units: no unit, \'m\')',
    ]),
    ('model-cpu-zero', model(cpu=0), [
        'gpu-burst:models[0].cpu: \'0\' is not a CPU amount; allowed: a positive Kubernetes quantity such as 4, "3.5" or 3500m (units: no unit, \'m\')',
    ]),
    ('model-cpu-unit', model(cpu="4Gi"), [
        'gpu-burst:models[0].cpu: \'4Gi\' is not a CPU amount; allowed: a positive Kubernetes quantity such as 4, "3.5" or 3500m (units: no unit, \'m\')',
    ]),
    ('model-cpu-bool', model(cpu=True), [
        'gpu-burst:models[0].cpu: expected a string, got true; write e.g. cpu: "4"',
    ]),
    ('model-memory-unitless-suffix', model(memory="12GB"), [
        "gpu-burst:models[0].memory: '12GB' is not a memory size; allowed: a positive Kubernetes quantity such as 16Gi or 512Mi (units: 'Ki', 'Mi', 'Gi', 'Ti', 'k', 'M', 'G', 'T')",
    ]),
    ('model-memory-garbage', model(memory="a lot"), [
        "gpu-burst:models[0].memory: 'a lot' is not a memory size; allowed: a positive Kubernetes quantity such as 16Gi or 512Mi (units: 'Ki', 'Mi', 'Gi', 'Ti', 'k', 'M', 'G', 'T')",
    ]),
    ('model-shm-above-memory', model(shmSize="16Gi"), [
        "gpu-burst:models[0].shmSize: '16Gi' is not below memory '12Gi' (shared memory counts against the memory limit); allowed: less than memory",
    ]),
    # With gpu.instanceStore none the model cache lives on the EBS volume.
    ('model-cache-above-volume', {**model(cacheSize="500Gi"), "gpu": {"instanceStore": "none"}}, [
        "gpu-burst:models[0].cacheSize: '500Gi' does not fit on the GPU node volume (gpu.volumeSizeGib 200: Karpenter offers pods 179 GiB of ephemeral-storage and the OS and vLLM image take 40 GiB of the same disk); allowed: at most 139Gi, or raise gpu.volumeSizeGib",
    ]),
    ('model-cache-no-headroom', {**model(cacheSize="180Gi"), "gpu": {"instanceStore": "none"}}, [
        "gpu-burst:models[0].cacheSize: '180Gi' does not fit on the GPU node volume (gpu.volumeSizeGib 200: Karpenter offers pods 179 GiB of ephemeral-storage and the OS and vLLM image take 40 GiB of the same disk); allowed: at most 139Gi, or raise gpu.volumeSizeGib",
    ]),
    # 500 GiB volume: Karpenter offers pods 500 - 1 - 50 = 449 GiB, and the image needs 40 GiB of the same disk
    # outside that figure (the kubelet evicts on the disk's real free space): 409 GiB.
    ('model-cache-above-karpenter-allocatable', {**model(cacheSize="410Gi"),
                                                 "gpu": {"volumeSizeGib": 500, "instanceStore": "none"}}, [
        "gpu-burst:models[0].cacheSize: '410Gi' does not fit on the GPU node volume (gpu.volumeSizeGib 500: Karpenter offers pods 449 GiB of ephemeral-storage and the OS and vLLM image take 40 GiB of the same disk); allowed: at most 409Gi, or raise gpu.volumeSizeGib",
    ]),
    # RAID0 (the default): the dev pool's smallest instance is g5.xlarge with 250 GB of NVMe (Karpenter v1.14.1
    # instance-types.md). Karpenter's allocatable 250e9 - 1 GiB - 25e9 B, less the 40 GiB image that shares the
    # array outside that figure: 180.98e9 B = 168.5 GiB, rounded down 168 GiB.
    ('model-cache-above-instance-store', model(cacheSize="169Gi"), [
        "gpu-burst:models[0].cacheSize: '169Gi' does not fit on the instance store of g5.xlarge (250 GB NVMe, the smallest the model's pools may launch; 40 GiB of it hold the vLLM image and Karpenter keeps 1Gi + 10% back); allowed: at most 168Gi, or gpu.instanceStore: none to keep the cache on gpu.volumeSizeGib",
    ]),
    # auto decides at deploy: the cache must fit the instance store and the restored volume alike.
    ('model-cache-auto-snapshot-both-layouts', {**model(cacheSize="170Gi"), "gpu": {
        "amiFamily": "bottlerocket", "amiVersion": "v1.64.0", "dataVolumeSnapshotId": "auto"}}, [
        "gpu-burst:models[0].cacheSize: '170Gi' does not fit on the instance store of g5.xlarge (250 GB NVMe, the smallest the model's pools may launch; 40 GiB of it hold the vLLM image and Karpenter keeps 1Gi + 10% back); allowed: at most 168Gi, or gpu.instanceStore: none to keep the cache on gpu.volumeSizeGib",
        "gpu-burst:models[0].cacheSize: '170Gi' does not fit on the GPU node volume (gpu.volumeSizeGib 200: Karpenter offers pods 179 GiB of ephemeral-storage and the OS and vLLM image take 40 GiB of the same disk); allowed: at most 139Gi, or raise gpu.volumeSizeGib",
    ]),
    ('gpu-instance-store-unknown', {"gpu": {"instanceStore": "raid1"}}, [
        "gpu-burst:gpu.instanceStore: 'raid1' is not allowed; allowed: 'raid0' or 'none'",
    ]),
    ('gpu-instance-store-bottlerocket-before-default-bind', {"gpu": {"amiFamily": "bottlerocket",
                                                                     "amiVersion": "v1.45.0"}}, [
        "gpu-burst:gpu.instanceStore: below Bottlerocket v1.46.0 Karpenter binds only containerd, the kubelet and pod logs to the NVMe disks, not SOCI's store; allowed: amiVersion v1.46.0 or later, or instanceStore: none",
        "gpu-burst:gpu.amiVersion: 'v1.45.0' has no aws-k8s-1.35-nvidia variant (added in v1.53.0); allowed: v1.53.0 or later for Kubernetes 1.35",
    ]),
    ('gpu-instance-store-bottlerocket-before-bootstrap-commands', {"gpu": {
        "amiFamily": "bottlerocket", "amiVersion": "v1.21.1", "fastImagePull": False}}, [
        "gpu-burst:gpu.instanceStore: below Bottlerocket v1.22.0 there are no bootstrap commands to set up the NVMe disks; allowed: amiVersion v1.22.0 or later, or instanceStore: none",
        "gpu-burst:gpu.amiVersion: 'v1.21.1' has no aws-k8s-1.35-nvidia variant (added in v1.53.0); allowed: v1.53.0 or later for Kubernetes 1.35",
    ]),
    ('model-gated-no-token', model(needsHfToken=True), [
        "gpu-burst:models[0].needsHfToken: model 'Qwen/Qwen2.5-1.5B-Instruct' is gated but gpu-burst:hfToken is not set; run `pulumi config set --secret hfToken <token>`",
    ]),
    ('model-queue-depth-zero', model(targetQueueDepth=0), [
        'gpu-burst:models[0].targetQueueDepth: 0 is out of range; allowed: an integer from 1 to 1000',
    ]),
    # models[].prewarm: cron as KEDA v2.20.2's cron scaler parses it (robfig/cron v3.0.1, five fields)
    # KEDA's parser has no Descriptor option
    ('prewarm-descriptor', prewarm({**WIN, "start": "@daily"}), [
        "gpu-burst:models[0].prewarm[0].start: '@daily' is a descriptor, which KEDA's cron scaler does not accept; allowed: five fields `minute hour day-of-month month day-of-week`, e.g. 0 0 * * * for @daily",
    ]),
    ('prewarm-seconds-field', prewarm({**WIN, "start": "0 50 7 * * 1-5"}), [
        "gpu-burst:models[0].prewarm[0].start: '0 50 7 * * 1-5' has 6 fields (KEDA's cron scaler has no seconds field); allowed: exactly five fields `minute hour day-of-month month day-of-week`, e.g. 0 8 * * 1-5",
    ]),
    ('prewarm-hour-24', prewarm({**WIN, "end": "0 24 * * 1-5"}), [
        "gpu-burst:models[0].prewarm[0].end: '0 24 * * 1-5': hour 24 is above 23; allowed: hour 0-23",
    ]),
    ('prewarm-day-name', prewarm({**WIN, "start": "50 7 * * MON-FRY"}), [
        "gpu-burst:models[0].prewarm[0].start: '50 7 * * MON-FRY': 'FRY' is not a number in the day-of-week field; allowed: day-of-week 0-6 or SUN-SAT",
    ]),
    # robfig/cron takes it; the window has one zone, its own key
    ('prewarm-tz-prefix', prewarm({**WIN, "start": "CRON_TZ=Europe/Berlin 50 7 * * 1-5"}), [
        "gpu-burst:models[0].prewarm[0].start: 'CRON_TZ=Europe/Berlin 50 7 * * 1-5' sets its own time zone; allowed: the five fields only, the zone in `timezone` (one zone for start and end)",
    ]),
    ('prewarm-never-fires', prewarm({**WIN, "start": "0 8 30 2 *", "end": "0 19 30 2 *"}), [
        "gpu-burst:models[0].prewarm[0].start: '0 8 30 2 *' never fires (no selected month has the selected day); allowed: a schedule that matches real dates, e.g. 0 8 * * 1-5",
        "gpu-burst:models[0].prewarm[0].end: '0 19 30 2 *' never fires (no selected month has the selected day); allowed: a schedule that matches real dates, e.g. 0 8 * * 1-5",
    ]),
    ('prewarm-empty', prewarm({**WIN, "start": ""}), [
        'gpu-burst:models[0].prewarm[0].start: is empty; allowed: five fields `minute hour day-of-month month day-of-week`, e.g. 0 8 * * 1-5',
    ]),
    ('prewarm-number', prewarm({**WIN, "start": 8}), [
        'gpu-burst:models[0].prewarm[0].start: expected a string, got the number 8 (YAML reads it as a number); quote it: start: "8"',
    ]),
    # KEDA's own check (cron_scaler.go Validate)
    ('prewarm-same', prewarm({**WIN, "end": "50 7 * * 1-5"}), [
        "gpu-burst:models[0].prewarm[0].end: '50 7 * * 1-5' is the same as start; allowed: a different end (KEDA's cron scaler refuses equal start and end)",
    ]),
    # ends without starts keep Friday's window open over the weekend
    ('prewarm-ends-daily', prewarm({**WIN, "end": "0 19 * * *"}), [
        "gpu-burst:models[0].prewarm[0].end: '0 19 * * *' fires again with no start in between (Fri 2026-01-02 19:00, then up to Sun 2026-01-04 19:00): KEDA's cron scaler keeps the window open until Sun 2026-01-04 19:00; allowed: a start and an end that alternate (one end after each start, before the next start), e.g. start 0 8 * * 1-5 with end 0 19 * * 1-5, or start 0 20 * * * with end 0 6 * * * across midnight",
    ]),
    ('prewarm-starts-twice', prewarm({**WIN, "start": "*/30 7 * * 1-5"}), [
        "gpu-burst:models[0].prewarm[0].start: '*/30 7 * * 1-5' fires again with no end in between (Thu 2026-01-01 07:00, then up to Thu 2026-01-01 07:30): KEDA's cron scaler opens the window only at Thu 2026-01-01 07:30; allowed: a start and an end that alternate (one end after each start, before the next start), e.g. start 0 8 * * 1-5 with end 0 19 * * 1-5, or start 0 20 * * * with end 0 6 * * * across midnight",
    ]),
    ('prewarm-same-minute', prewarm({"start": "0 9 * * mon", "end": "0 9,17 * * 1", "timezone": "UTC"}), [
        "gpu-burst:models[0].prewarm[0].end: '0 9,17 * * 1' fires at the same minute as start '0 9 * * mon' (Mon 2026-01-05 09:00), which KEDA's cron scaler cannot order; allowed: end times that differ from every start time",
    ]),
    # no 31st in February: two ends in a row
    ('prewarm-31st', prewarm({"start": "0 20 31 * *", "end": "0 6 1 * *", "timezone": "UTC"}), [
        "gpu-burst:models[0].prewarm[0].end: '0 6 1 * *' fires again with no start in between (Sun 2026-02-01 06:00, then up to Sun 2026-03-01 06:00): KEDA's cron scaler keeps the window open until Sun 2026-03-01 06:00; allowed: a start and an end that alternate (one end after each start, before the next start), e.g. start 0 8 * * 1-5 with end 0 19 * * 1-5, or start 0 20 * * * with end 0 6 * * * across midnight",
    ]),
    ('prewarm-zone-typo', prewarm({**WIN, "timezone": "Europe/Berln"}), [
        "gpu-burst:models[0].prewarm[0].timezone: 'Europe/Berln' is not a time zone of the IANA database (did you mean Europe/Berlin?); allowed: an IANA Area/Location name such as Europe/Berlin or America/New_York, or UTC",
    ]),
    ('prewarm-zone-legacy', prewarm({**WIN, "timezone": "US/Eastern"}), [
        "gpu-burst:models[0].prewarm[0].timezone: 'US/Eastern' is a legacy alias, which slim images (the keda-operator's) may not ship; allowed: an IANA Area/Location name such as Europe/Berlin or America/New_York, or UTC",
    ]),
    # Go's time.LoadLocation takes it, zoneinfo does not
    ('prewarm-zone-local', prewarm({**WIN, "timezone": "Local"}), [
        "gpu-burst:models[0].prewarm[0].timezone: 'Local' means the keda-operator pod's own zone; allowed: an IANA Area/Location name such as Europe/Berlin or America/New_York, or UTC",
    ]),
    ('prewarm-zone-missing', prewarm({"start": WIN["start"], "end": WIN["end"]}), [
        "gpu-burst:models[0].prewarm[0].timezone: required but not set; IANA time zone both schedules are read in (the cron trigger's `timezone`), e.g. Europe/Berlin or UTC.",
    ]),
    ('prewarm-dst-skipped', prewarm({**WIN, "start": "30 2 * * *", "end": "0 8 * * *"}), [
        "gpu-burst:models[0].prewarm[0].start: '30 2 * * *' fires at Sun 2026-03-29 02:30, a time Europe/Berlin skips when its clocks change, so KEDA's cron scaler misses it and the window stays open from the previous end until the next end; allowed: times outside Europe/Berlin's clock changes (02:00-03:00 local on those days), or a zone without daylight saving time such as UTC",
    ]),
    ('prewarm-dst-repeated', prewarm({"start": "0 20 * * *", "end": "30 1 * * *", "timezone": "America/New_York"}), [
        "gpu-burst:models[0].prewarm[0].end: '30 1 * * *' fires at Sun 2026-11-01 01:30, a time America/New_York repeats when its clocks change, so KEDA's cron scaler fires it twice and the window closes an hour late; allowed: times outside America/New_York's clock changes (01:00-02:00 local on those days), or a zone without daylight saving time such as UTC",
    ]),
    ('prewarm-above-max', prewarm({**WIN, "replicas": 2}), [
        'gpu-burst:models[0].prewarm[0].replicas: 2 is above maxReplicas (1); allowed: 1',
    ]),
    ('prewarm-not-above-min', prewarm({**WIN, "replicas": 1}, minReplicas=1, maxReplicas=2), [
        'gpu-burst:models[0].prewarm[0].replicas: 1 is not above minReplicas (1), so the window adds no replica; allowed: 2',
    ]),
    ('prewarm-min-is-max', prewarm({**WIN, "replicas": 1}, minReplicas=1, maxReplicas=1), [
        'gpu-burst:models[0].prewarm[0].replicas: 1 is not above minReplicas (1), so the window adds no replica; allowed: none (minReplicas 1 already keeps maxReplicas running; drop the window)',
    ]),
    ('prewarm-zero', prewarm({**WIN, "replicas": 0}), [
        'gpu-burst:models[0].prewarm[0].replicas: 0 is out of range; allowed: an integer from 1 to 100',
    ]),
    ('prewarm-duplicate', prewarm(WIN, {**WIN, "replicas": 1}), [
        'gpu-burst:models[0].prewarm[1]: repeats prewarm[0] (same start, end and timezone); allowed: each window once (the larger replicas is what counts)',
    ]),
    ('prewarm-unknown-key', prewarm({**WIN, "desiredReplicas": 2}), [
        'gpu-burst:models[0].prewarm[0].desiredReplicas: unknown key; valid keys here: start, end, timezone, replicas',
    ]),
    ('prewarm-not-list', model(prewarm=WIN), [
        'gpu-burst:models[0].prewarm: expected a list, got a mapping; write it as a YAML list, e.g. prewarm: [a, b]',
    ]),
    # models[].adapters: LoRA adapters on the model (flags and limits read from the vllm 0.33.0 wheel)
    ('lora-revision-branch', lora({**A, "revision": "main"}), [
        "gpu-burst:models[0].adapters[0].revision: 'main' is not a Hugging Face commit hash (40 lowercase hex digits); allowed: e.g. 989aa7980e4cf806f80c7fef2b1adb7bc71aa306",
    ]),
    ('lora-revision-uppercase', lora({**A, "revision": "AAAAAAAAAA222222222233333333334444444444"}), [
        "gpu-burst:models[0].adapters[0].revision: 'AAAAAAAAAA222222222233333333334444444444' is not a Hugging Face commit hash (40 lowercase hex digits); allowed: e.g. 989aa7980e4cf806f80c7fef2b1adb7bc71aa306",
    ]),
    ('lora-name-upper', lora({**A, "name": "Qwen_SQL"}), [
        "gpu-burst:models[0].adapters[0].name: 'Qwen_SQL' is not a DNS label (it also names the adapter's route rule and staging Job); allowed: lowercase letters, digits and '-', starting with a letter, e.g. sql-lora",
    ]),
    ('lora-name-long', lora({**A, "name": "a" * 41}), [
        "gpu-burst:models[0].adapters[0].name: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is too long; allowed: at most 40 characters",
    ]),
    ('lora-name-is-the-model', lora({**A, "name": MODEL["servedName"]}), [
        "gpu-burst:models[0].adapters[0].name: 'qwen2-5-1-5b-instruct' is the model's own servedName; allowed: a name of its own",
    ]),
    ('lora-name-repeats', lora(A, {**B, "name": "qwen-sql"}), [
        "gpu-burst:models[0].adapters[1].name: 'qwen-sql' is already used by adapters[0]; allowed: a name unique among the model's adapters",
    ]),
    ('lora-name-of-another-model', {"models": [{**MODEL, "adapters": [A]}, {**MODEL, "servedName": "qwen-sql"}]}, [
        "gpu-burst:models[1].servedName: 'qwen-sql' is already used by models[0].adapters[0].name; allowed: a name unique among the served names and adapters of gpu-burst:models",
    ]),
    ('lora-name-of-another-adapter', {"models": [{**MODEL, "adapters": [A]}, {**MODEL, "servedName": "other", "adapters": [{**B, "name": "qwen-sql"}]}]}, [
        "gpu-burst:models[1].adapters[0].name: 'qwen-sql' is already used by models[0].adapters[0].name; allowed: a name unique among the served names and adapters of gpu-burst:models",
    ]),
    ('lora-base-repository', lora({**A, "hfModelId": MODEL["hfModelId"]}), [
        "gpu-burst:models[0].adapters[0].hfModelId: 'Qwen/Qwen2.5-1.5B-Instruct' is the model's own repository; allowed: the repository of a PEFT LoRA adapter trained on it",
    ]),
    ('lora-too-many', lora(*[{**A, "name": f"a{i}"} for i in range(15)]), [
        'gpu-burst:models[0].adapters: 15 adapters; allowed: at most 14 (the model and its adapters are the rules of one route, at most 15)',
    ]),
    ('lora-max-loras-above-adapters', lora(A, B, maxLoras=3), [
        'gpu-burst:models[0].maxLoras: 3 is above the number of adapters (2): vLLM reserves GPU memory for every slot; allowed: 1 to 2',
    ]),
    ('lora-max-loras-zero', lora(A, maxLoras=0), [
        'gpu-burst:models[0].maxLoras: 0 is out of range; allowed: an integer from 1 to 14',
    ]),
    ('lora-keys-without-adapters', lora(maxLoras=1, maxLoraRank=16), [
        'gpu-burst:models[0].maxLoras: is only read with `adapters` and the model has none; allowed: add adapters, or remove the key',
        'gpu-burst:models[0].maxLoraRank: is only read with `adapters` and the model has none; allowed: add adapters, or remove the key',
    ]),
    ('lora-rank-not-allowed', lora(A, maxLoraRank=24), [
        'gpu-burst:models[0].maxLoraRank: 24 is not a rank vLLM 0.33.0 accepts; allowed: 1, 8, 16, 32, 64, 128, 256, 320, 512',
    ]),
    ('lora-extra-enable-lora', lora(A, extraArgs=["--enable-lora"]), [
        "gpu-burst:models[0].extraArgs[0]: '--enable-lora' is --enable-lora: the program sets it from the model's `adapters`; allowed: set `adapters` instead",
    ]),
    ('lora-extra-no-enable-lora', lora(A, extraArgs=["--no-enable-lora"]), [
        "gpu-burst:models[0].extraArgs[0]: '--no-enable-lora' is --no-enable-lora: the program sets it from the model's `adapters`; allowed: set `adapters` instead",
    ]),
    ('lora-extra-lora-modules', lora(A, extraArgs=["--lora-modules=x=/data/x"]), [
        "gpu-burst:models[0].extraArgs[0]: '--lora-modules' is --lora-modules: the program sets it from the model's `adapters`; allowed: set `adapters` instead",
    ]),
    ('lora-extra-max-loras-underscore', lora(A, extraArgs=["--max_loras=4"]), [
        "gpu-burst:models[0].extraArgs[0]: '--max_loras' means --max-loras: the program sets it from the model's `maxLoras`; allowed: set `maxLoras` instead",
    ]),
    ('lora-extra-max-lora-rank', lora(A, extraArgs=["--max-lora-rank=64"]), [
        "gpu-burst:models[0].extraArgs[0]: '--max-lora-rank' is --max-lora-rank: the program sets it from the model's `maxLoraRank`; allowed: set `maxLoraRank` instead",
    ]),
    ('lora-extra-max-cpu-loras', lora(A, extraArgs=["--max-cpu-loras=8"]), [
        "gpu-burst:models[0].extraArgs[0]: '--max-cpu-loras' is --max-cpu-loras: the program sets it from the model's `adapters`; allowed: set `adapters` instead",
    ]),
    ('lora-extra-abbreviated', lora(extraArgs=["--enable-lor"]), [
        "gpu-burst:models[0].extraArgs[0]: '--enable-lor' means --enable-lora: the program sets it from the model's `adapters`; allowed: set `adapters` instead",
    ]),
    ('lora-tuning-flag-without-adapters', lora(extraArgs=["--lora-dtype=bfloat16", "--no-fully-sharded-loras"]), [
        "gpu-burst:models[0].extraArgs[0]: '--lora-dtype' only tunes LoRA adapters and the model has none; allowed: the flag with `adapters`, or no flag",
        "gpu-burst:models[0].extraArgs[1]: '--no-fully-sharded-loras' only tunes LoRA adapters and the model has none; allowed: the flag with `adapters`, or no flag",
    ]),
    ('lora-mega-moe-backend', lora(A, extraArgs=["--moe-backend=deep_gemm_mega_moe"]), [
        "gpu-burst:models[0].extraArgs[0]: '--moe-backend=deep_gemm_mega_moe' is a MegaMoE backend, with which vLLM refuses LoRA adapters at startup; allowed: another --moe-backend, or no `adapters`",
    ]),
    ('lora-adaptive-verification-json', lora(A, extraArgs=['--speculative-config={"method": "ngram", "num_speculative_tokens": 4, "enable_adaptive_verification": true}']), [
        'gpu-burst:models[0].extraArgs[0]: speculative decoding with enable_adaptive_verification cannot serve LoRA adapters (vLLM refuses the pair at startup); allowed: no adaptive verification, or no `adapters`',
    ]),
    ('lora-adaptive-verification-dotted', lora(A, extraArgs=["--speculative-config.enable_adaptive_verification=true"]), [
        'gpu-burst:models[0].extraArgs[0]: speculative decoding with enable_adaptive_verification cannot serve LoRA adapters (vLLM refuses the pair at startup); allowed: no adaptive verification, or no `adapters`',
    ]),
    ('lora-adapter-no-revision', lora({k: v for k, v in A.items() if k != "revision"}), [
        'gpu-burst:models[0].adapters[0].revision: required but not set; Hugging Face commit hash (40 hex digits) of the adapter repository, staged to the model store and served.',
    ]),
    ('lora-adapter-unknown-key', lora({**A, "rank": 16}), [
        'gpu-burst:models[0].adapters[0].rank: unknown key; valid keys here: name, hfModelId, revision',
    ]),
    ('lora-adapters-not-list', {"models": [{**MODEL, "adapters": A}]}, [
        'gpu-burst:models[0].adapters: expected a list, got a mapping; write it as a YAML list, e.g. adapters: [a, b]',
    ]),
    ('models-not-list', {"models": MODEL}, [
        'gpu-burst:models: expected a list, got a mapping; write it as a YAML list, e.g. models: [a, b]',
    ]),
    # addons
    ('addons-unknown', {"addons": {"istio": {}}}, [
        'gpu-burst:addons.istio: unknown key; valid keys here: keda, httpAddon, monitoring, nvidiaDevicePlugin',
    ]),
    ('addons-keda-chart', {"addons": {"keda": {"chartVersion": "v2.20.2"}}}, [
        "gpu-burst:addons.keda.chartVersion: 'v2.20.2' is not a chart version; allowed: e.g. 2.20.2 (X.Y.Z, no leading v)",
    ]),
    ('addons-readiness-short', {"addons": {"httpAddon": {"readinessTimeout": "5m"}}}, [
        "gpu-burst:addons.httpAddon.readinessTimeout: '5m' is shorter than a GPU cold start; allowed: at least 10m",
    ]),
    ('addons-header-short', {"addons": {"httpAddon": {"responseHeaderTimeout": "10s"}}}, [
        "gpu-burst:addons.httpAddon.responseHeaderTimeout: '10s' is too short for a slow first token; allowed: at least 60s",
    ]),
    ('addons-interceptor-max-below', {"addons": {"httpAddon": {"interceptorReplicas": 3, "interceptorMaxReplicas": 2}}}, [
        'gpu-burst:addons.httpAddon.interceptorMaxReplicas: 2 is below interceptorReplicas (3); allowed: at least 3',
    ]),
    ('addons-retention-fraction', {"addons": {"monitoring": {"retention": "1.5d"}}}, [
        "gpu-burst:addons.monitoring.retention: '1.5d' is not a Prometheus duration; allowed: whole units such as 15s, 168h, 14d",
    ]),
    ('addons-retention-out-of-order', {"addons": {"monitoring": {"retention": "30m1h", "scrapeInterval": "15s15s"}}}, [
        "gpu-burst:addons.monitoring.retention: '30m1h' is not a Prometheus duration (units out of order or repeated); allowed: each unit once, largest first (y, w, d, h, m, s, ms), e.g. 1h30m or 14d",
        "gpu-burst:addons.monitoring.scrapeInterval: '15s15s' is not a Prometheus duration (units out of order or repeated); allowed: each unit once, largest first (y, w, d, h, m, s, ms), e.g. 1h30m or 14d",
    ]),
    ('addons-prom-memory', {"addons": {"monitoring": {"prometheusMemory": "1 gig"}}}, [
        "gpu-burst:addons.monitoring.prometheusMemory: '1 gig' is not a memory size; allowed: a positive Kubernetes quantity such as 16Gi or 512Mi (units: 'Ki', 'Mi', 'Gi', 'Ti', 'k', 'M', 'G', 'T')",
    ]),
    ('addons-grafana-bool', {"addons": {"monitoring": {"grafanaEnabled": "on-ish"}}}, [
        "gpu-burst:addons.monitoring.grafanaEnabled: expected true or false, got 'on-ish'; write grafanaEnabled: true or grafanaEnabled: false",
    ]),
    # gateway
    ('gw-unknown', {"gateway": {"loadBalancer": "nlb"}}, [
        'gpu-burst:gateway.loadBalancer: unknown key; valid keys here: ' + keys(GatewayConfig),
    ]),
    ('gw-namespace-reserved', {"gateway": {"namespace": "kube-system"}}, [
        "gpu-burst:gateway.namespace: 'kube-system' is reserved by the stack or its add-ons; use a namespace of its own such as 'inference' (not one of default, kube-system, kube-public, kube-node-lease, keda, monitoring, envoy-gateway-system, envoy-ai-gateway-system)",
    ]),
    ('gw-namespace-format', {"gateway": {"namespace": "Inference"}}, [
        "gpu-burst:gateway.namespace: 'Inference' is not a Kubernetes name (DNS-1123 label); allowed: lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. inference",
    ]),
    ('gw-public-without-tls', {"gateway": {"public": True}}, [
        'gpu-burst:gateway.public: an internet-facing endpoint without TLS would send API keys in clear text; allowed: public: true with gateway.certificateArn (an ACM certificate), or public: false',
    ]),
    ('gw-cert-format', {"gateway": {"certificateArn": "my-cert"}}, [
        "gpu-burst:gateway.certificateArn: 'my-cert' is not an ACM certificate ARN; use arn:aws:acm:<region>:<account>:certificate/<id>",
    ]),
    ('gw-cert-other-region', {"gateway": {"certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"}}, [
        'gpu-burst:gateway.certificateArn: the certificate is in eu-west-1, the NLB in us-west-2; allowed: an ACM certificate from us-west-2',
    ]),
    ('gw-domain-url', {"gateway": {"domain": "https://llm.example.com"}}, [
        "gpu-burst:gateway.domain: 'https://llm.example.com' is a URL; give the host name only, e.g. llm.example.com",
    ]),
    ('gw-domain-wildcard', {"gateway": {"domain": "*.example.com"}}, [
        "gpu-burst:gateway.domain: '*.example.com' is a wildcard; give the one host name clients use, e.g. llm.example.com",
    ]),
    # An internet-facing NLB sees its clients' public addresses: an allow-list of private ranges admits nobody.
    ('gw-public-private-cidrs', {"gateway": {"public": True, "certificateArn": "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666",
                                             "allowedCidrs": ["10.0.0.0/8", "100.64.0.0/10", "fd00::/8"]}}, [
        "gpu-burst:gateway.allowedCidrs: ['10.0.0.0/8', '100.64.0.0/10', 'fd00::/8'] are all private ranges, which never reach an internet-facing load balancer; allowed: public: false (an internal NLB that the VPC, peered networks and VPN reach) with these ranges, or public: true with the public egress CIDRs of your clients",
    ]),
    ('gw-cidr-garbage', {"gateway": {"allowedCidrs": ["vpc"]}}, [
        "gpu-burst:gateway.allowedCidrs[0]: 'vpc' is not a CIDR block; allowed: an address/prefix such as 203.0.113.0/24",
    ]),
    ('gw-rpm-zero', {"gateway": {"requestsPerMinute": 0}}, [
        'gpu-burst:gateway.requestsPerMinute: 0 is out of range; allowed: an integer from 1 to 1000000',
    ]),
    # gateway.keys: the policy of each API key
    ('gw-key-rpm-moved', {"gateway": {"keyRequestsPerMinute": {"team-a": 1200, "ci": 60}}, "apiKeyNames": ["ci", "team-a"]}, [
        "gpu-burst:gateway.keyRequestsPerMinute: moved to gateway.keys.<name>.requestsPerMinute; allowed: gateway.keys: {ci: {requestsPerMinute: 60}, team-a: {requestsPerMinute: 1200}} (`pulumi config rm --path gateway.keyRequestsPerMinute`, then `pulumi config set --path gateway.keys.<name>.requestsPerMinute <n>`)",
    ]),
    ('gw-keys-policy-without-key', {"gateway": {"keys": {"alice": {"requestsPerMinute": 100}}}}, [
        "gpu-burst:gateway.keys.alice: no key 'alice' in gpu-burst:apiKeys; allowed: a policy for default, or add the key: `pulumi config set --secret --path 'apiKeys.alice' <key>`",
    ]),
    ('gw-keys-bad-name', {"gateway": {"keys": {"Alice": {}}}}, [
        "gpu-burst:gateway.keys: key names ['Alice'] are not allowed; use lowercase letters, digits and '-'",
    ]),
    ('gw-keys-model-not-served', {"gateway": {"keys": {"default": {"models": ["gpt-4", "qwen2-5-1-5b-instruct"]}}}}, [
        "gpu-burst:gateway.keys.default.models: ['gpt-4'] are not served by this stack; allowed: qwen2-5-1-5b-instruct",
    ]),
    ('gw-keys-models-empty', {"gateway": {"keys": {"default": {"models": []}}}}, [
        "gpu-burst:gateway.keys.default.models: [] lets the key call no model; allowed: served names, or leave models out for every model",
    ]),
    ('gw-keys-rpm-zero', {"gateway": {"keys": {"default": {"requestsPerMinute": 0}}}}, [
        'gpu-burst:gateway.keys.default.requestsPerMinute: 0 is out of range; allowed: an integer from 1 to 1000000',
    ]),
    ('gw-keys-tpm-negative', {"gateway": {"keys": {"default": {"tokensPerMinute": -5}}}}, [
        'gpu-burst:gateway.keys.default.tokensPerMinute: -5 is out of range; allowed: an integer from 1 to 4294967295',
    ]),
    ('gw-keys-tpd-zero', {"gateway": {"keys": {"default": {"tokensPerDay": 0}}}}, [
        'gpu-burst:gateway.keys.default.tokensPerDay: 0 is out of range; allowed: an integer from 1 to 4294967295',
    ]),
    # One key limited to some models: a key left without a policy would silently reach every model.
    ('gw-keys-unrestricted-key', {"apiKeyNames": ["ci", "team-a", "team-b"], "gateway": {"keys": {
        "team-a": {"models": ["qwen2-5-1-5b-instruct"]}, "team-b": {"requestsPerMinute": 10}}}}, [
        "gpu-burst:gateway.keys.ci: key 'ci' has no policy while ['team-a'] may call only some models; allowed: a policy for every key, gateway.keys.ci: {} for every model or {models: [...]}",
    ]),
    ('gw-keys-too-many-local', {"apiKeyNames": [f"k{i}" for i in range(17)]}, [
        "gpu-burst:apiKeys: 17 keys need 17 request limits but Envoy's local rate limit holds 16; allowed: at most 16 keys, or a token budget on some key (the limits then live in Redis)",
    ]),
    ('gw-keys-too-many-global', {"apiKeyNames": [f"k{i}" for i in range(90)], "gateway": {"keys": {
        f"k{i}": {"tokensPerMinute": 1000, "tokensPerDay": 100000} for i in range(90)}}}, [
        "gpu-burst:gateway.keys: 90 request limits and 180 token budgets exceed the 256 rules of a global rate limit; allowed: at most 256 in total",
    ]),
    ('gw-redis-mode', {"gateway": {"rateLimit": {"redis": {"mode": "memcached"}}}}, [
        "gpu-burst:gateway.rateLimit.redis.mode: 'memcached' is not allowed; allowed: 'elastiCache' or 'inCluster'",
    ]),
    ('gw-redis-node-type', {"gateway": {"rateLimit": {"redis": {"nodeType": "t4g.micro"}}}}, [
        "gpu-burst:gateway.rateLimit.redis.nodeType: 't4g.micro' is not an ElastiCache node type; allowed: e.g. cache.t4g.micro",
    ]),
    ('gw-rate-limit-unknown', {"gateway": {"rateLimit": {"failClosed": True}}}, [
        "gpu-burst:gateway.rateLimit.failClosed: unknown key; valid keys here: redis, failOpen",
    ]),
    ('gw-replicas-high', {"gateway": {"replicas": 11}}, [
        'gpu-burst:gateway.replicas: 11 is out of range; allowed: an integer from 1 to 10',
    ]),
    # several regions behind one name
    ('gw-global-dns-internal-nlb', {"gateway": {"globalDns": GLOBAL}}, [
        'gpu-burst:gateway.globalDns: needs an internet-facing NLB: Route 53 health checkers and the clients of a public record reach it from the internet, and an internal NLB has only private addresses; allowed: gateway.public: true (with gateway.certificateArn), or no globalDns',
    ]),
    ('gw-global-dns-no-zone', public_gw(globalDns={"recordName": "llm.example.com"}), [
        'gpu-burst:gateway.globalDns: neither hostedZoneId nor hostedZoneName is set; allowed: one of them, e.g. hostedZoneName: example.com',
    ]),
    ('gw-global-dns-two-zones', public_gw(globalDns={**GLOBAL, "hostedZoneId": "Z0123456789ABCDEFGHIJ"}), [
        'gpu-burst:gateway.globalDns: both hostedZoneId and hostedZoneName are set; allowed: one of them, e.g. hostedZoneName: example.com',
    ]),
    ('gw-global-dns-record-outside-zone', public_gw(globalDns={**GLOBAL, "recordName": "llm.example.org"}), [
        "gpu-burst:gateway.globalDns.recordName: 'llm.example.org' is not in hosted zone example.com; allowed: example.com or a name ending in .example.com",
    ]),
    ('gw-global-dns-zone-id-with-prefix', public_gw(globalDns={"hostedZoneId": "/hostedzone/Z0123456789ABCDEFGHIJ", "recordName": "llm.example.com"}), [
        "gpu-burst:gateway.globalDns.hostedZoneId: '/hostedzone/Z0123456789ABCDEFGHIJ' is not a Route 53 hosted zone id; allowed: e.g. Z0123456789ABCDEFGHIJ (without /hostedzone/)",
    ]),
    ('gw-global-dns-final-dot', public_gw(globalDns={**GLOBAL, "recordName": "llm.example.com."}), [
        "gpu-burst:gateway.globalDns.recordName: 'llm.example.com.' is not a DNS host name; allowed: lowercase labels separated by dots, without a final dot, e.g. llm.example.com",
    ]),
    ('gw-global-dns-domain-differs', public_gw(domain="us.llm.example.com", globalDns=GLOBAL), [
        "gpu-burst:gateway.domain: 'us.llm.example.com' differs from globalDns.recordName 'llm.example.com', the one name clients use and the certificate must name in every region; allowed: llm.example.com, or leave domain unset",
    ]),
    ('gw-global-dns-cidrs-keep-checkers-out', public_gw(allowedCidrs=["203.0.113.0/24"], globalDns=GLOBAL), [
        "gpu-burst:gateway.allowedCidrs: ['203.0.113.0/24'] keep Route 53's health checkers out of the NLB, so this region's health check would always fail; allowed: no allowedCidrs (every request still needs an API key), or globalDns.healthCheck.enabled: false (the record then follows only the NLB's target health)",
    ]),
    ('gw-global-dns-check-interval', public_gw(globalDns={**GLOBAL, "healthCheck": {"requestInterval": 60, "failureThreshold": 11}}), [
        'gpu-burst:gateway.globalDns.healthCheck.requestInterval: the number 60 is not allowed; allowed: 10 or 30',
        'gpu-burst:gateway.globalDns.healthCheck.failureThreshold: 11 is out of range; allowed: an integer from 1 to 10',
    ]),
    # time-slicing
    ('ts-slices-range', pool(timeSlicing=1), [
        'gpu-burst:gpu.pools[0].timeSlicing: 1 is out of range; allowed: an integer from 2 to 8',
    ]),
    ('ts-slices-high', pool(timeSlicing=16), [
        'gpu-burst:gpu.pools[0].timeSlicing: 16 is out of range; allowed: an integer from 2 to 8',
    ]),
    ('ts-slices-type', pool(timeSlicing="four"), [
        "gpu-burst:gpu.pools[0].timeSlicing: expected an integer, got 'four'; write a whole number without quotes, e.g. timeSlicing: 2",
    ]),
    ('ts-class-mixes-whole-and-sliced', {"gpu": {"pools": [SLICED_POOL, {**POOL, "name": "gpu-spot", "capacityTypes": ["spot"]}]},
                                         "models": [{**MODEL, **SHARED}]}, [
        "gpu-burst:gpu.pools[1].timeSlicing: unset differs from pools[0] 'gpu-on-demand' (timeSlicing 4) in traffic class 'gpu', whose models all request the same kind of GPU; allowed: 4, or a trafficClass of its own",
    ]),
    ('ts-shared-model-on-whole-pool', model(sharedGpu=True), [
        "gpu-burst:models[0].sharedGpu: true, but pool 'gpu-on-demand' hands out whole GPUs (no gpu.pools[0].timeSlicing); allowed: false, or a pool with timeSlicing",
    ]),
    ('ts-whole-model-on-sliced-pool', pool(timeSlicing=4), [
        "gpu-burst:models[0].sharedGpu: false, but pool 'gpu-on-demand' time-slices its GPUs (gpu.pools[0].timeSlicing 4) and offers no whole GPU; allowed: sharedGpu: true (one slice per replica), or a pool without timeSlicing",
    ]),
    ('ts-shared-model-two-gpus', {"gpu": {"pools": [{**SLICED_POOL, "gpusPerNode": [1, 4], "gpuLimit": 4, "cpuLimit": 64}]},
                                  "models": [{**MODEL, **SHARED, "gpus": 2}]}, [
        'gpu-burst:models[0].gpus: 2 GPUs cannot be time-slices: a replica gets one slice of one GPU, and tensor parallelism needs whole GPUs; allowed: 1 with sharedGpu: true, or a pool without timeSlicing',
    ]),
    ('ts-replicas-beyond-the-slices', sliced(maxReplicas=9), [
        "gpu-burst:models[0].maxReplicas: 9 replicas need 3 GPUs at 4 slices per GPU, above pool 'gpu-on-demand' gpuLimit 2; allowed: at most 8, or raise gpu.pools[0].gpuLimit",
    ]),
    ('ts-memory-of-one-model', sliced(gpuMemoryUtilization=0.3, maxReplicas=4), [
        "gpu-burst:models[0].gpuMemoryUtilization: 0.3 does not fit a GPU of traffic class 'gpu' cut into 4 slices: the 4 slices that may share one GPU (qwen2-5-1-5b-instruct x4) preallocate 1.20 of its memory, 1.28 with 0.02 per slice for its CUDA context; allowed: at most 1 in total, e.g. 0.23 for each of 4 equal slices",
    ]),
    ('ts-memory-default-share', sliced(gpuMemoryUtilization=0.9, maxReplicas=2), [
        "gpu-burst:models[0].gpuMemoryUtilization: 0.9 does not fit a GPU of traffic class 'gpu' cut into 4 slices: the 2 slices that may share one GPU (qwen2-5-1-5b-instruct x2) preallocate 1.80 of its memory, 1.84 with 0.02 per slice for its CUDA context; allowed: at most 1 in total, e.g. 0.48 for each of 2 equal slices",
    ]),
    ('ts-memory-of-two-models', {"gpu": {"pools": [SLICED_POOL]},
                                 "models": [{**MODEL, **SHARED, "gpuMemoryUtilization": 0.45},
                                            {**MODEL, **SHARED, "servedName": "second", "gpuMemoryUtilization": 0.6}]}, [
        "gpu-burst:models[1].gpuMemoryUtilization: 0.6 does not fit a GPU of traffic class 'gpu' cut into 4 slices: the 2 slices that may share one GPU (second, qwen2-5-1-5b-instruct) preallocate 1.05 of its memory, 1.09 with 0.02 per slice for its CUDA context; allowed: at most 1 in total, e.g. 0.48 for each of 2 equal slices",
    ]),
    ('ts-cpu-of-the-slices', {"gpu": {"pools": [{**SLICED_POOL, "timeSlicing": 8, "cpuLimit": 128}]},
                              "models": [{**MODEL, **SHARED, "gpuMemoryUtilization": 0.105, "maxReplicas": 8, "cpu": "16"}]}, [
        "gpu-burst:models[0].cpu: 16000m per replica does not fit 8 slices of traffic class 'gpu' (qwen2-5-1-5b-instruct x8) on one node: they request 128000m CPU and the roomiest instance for them, g5.16xlarge (1 GPU x 8 slices), offers 63770m; allowed: at most 7971m each, a lower timeSlicing, or larger instanceFamilies",
    ]),
    ('ts-caches-of-the-slices', {"gpu": {"pools": [SLICED_POOL], "instanceStore": "none"},
                                 "models": [{**MODEL, **SHARED, "maxReplicas": 4, "cacheSize": "60Gi"}]}, [
        "gpu-burst:models[0].cacheSize: 60Gi per replica does not fit 4 slices of traffic class 'gpu' (qwen2-5-1-5b-instruct x4) on one node: their caches take 240Gi and the roomiest instance for them, g5.xlarge (1 GPU x 4 slices), has 139Gi of ephemeral storage on gpu.volumeSizeGib beside the image; allowed: at most 34Gi each, a lower timeSlicing, or a larger gpu.volumeSizeGib",
    ]),
    ('ts-shared-gpu-type', model(sharedGpu="yes please"), [
        "gpu-burst:models[0].sharedGpu: expected true or false, got 'yes please'; write sharedGpu: true or sharedGpu: false",
    ]),
    # several at once
    ('many-at-once', {"environment": "qa", "network": {"azCount": 1}, "gpu": {"pools": [{**POOL, "gpusPerNode": [3], "weight": "x"}]}, "models": [{**MODEL, "cpu": "lots", "maxReplicas": 5}]}, [
        "gpu-burst:environment: 'qa' is not allowed; allowed: 'dev', 'staging' or 'prod'",
        'gpu-burst:network.azCount: 1 is out of range; allowed: an integer from 2 to 6',
        "gpu-burst:gpu.pools[0].weight: expected an integer, got 'x'; write a whole number without quotes, e.g. weight: 10",
        'gpu-burst:models[0].cpu: \'lots\' is not a CPU amount; allowed: a positive Kubernetes quantity such as 4, "3.5" or 3500m (units: no unit, \'m\')',
        'gpu-burst:gpu.pools[0].gpusPerNode: no instance of g5, g6 has [3] GPUs (g5: [1, 4, 8]; g6: [1, 4, 8]); allowed: [1, 4, 8]',
        'gpu-burst:gpu.pools[0].gpuLimit: 2 is below one node of 3 GPUs (gpusPerNode [3]); allowed: at least 3',
        "gpu-burst:models[0].maxReplicas: 5 replicas x 1 GPUs exceed pool 'gpu-on-demand' gpuLimit 2; allowed: at most 2, or raise gpu.pools[0].gpuLimit",
    ]),]

# Keys of the stack file itself (before validation): secrets in plain text and keys the loader fills.
BAD_KEYS = [
    ("plain-hf-token", {"gpu-burst:hfToken": "hf_abc"}, [
        "gpu-burst:hfToken: is in plain text in the stack file; it must be a Pulumi secret: "
        "`pulumi config set --secret hfToken <token>`"]),
    ("plain-api-key", {"gpu-burst:apiKey": "sk-abc"}, [
        "gpu-burst:apiKey: is in plain text in the stack file; it must be a Pulumi secret: "
        "`pulumi config set --secret apiKey <key>`"]),
    ("plain-api-keys", {"gpu-burst:apiKeys": {"alice": "sk-abc"}}, [
        "gpu-burst:apiKeys.alice: is in plain text in the stack file; a key must be a Pulumi secret: "
        "`pulumi config rm gpu-burst:apiKeys` then `pulumi config set --secret --path 'apiKeys.alice' <key>`"]),
    ("region-in-namespace", {"gpu-burst:region": "eu-west-1"}, [
        "gpu-burst:region: is not read (the AWS provider reads aws:region); use aws:region: "
        "`pulumi config rm gpu-burst:region && pulumi config set aws:region <region>`"]),
    ("internal-hf-token-set", {"gpu-burst:hfTokenSet": True}, [
        "gpu-burst:hfTokenSet: is set by the program, not by config; remove it: `pulumi config rm "
        "gpu-burst:hfTokenSet` (set the token with `pulumi config set --secret hfToken <token>`)"]),
]

GOOD = [
    ("dev-as-is", {}, lambda c: c.environment == "dev"),
    # Keys: policies filled with the defaults; the Redis exists only with a token budget, where the environment says.
    ("keys-default-policy", {"apiKeyNames": ["ci", "team-a"], "gateway": {"requestsPerMinute": 300, "keys": {
        "team-a": {"models": ["qwen2-5-1-5b-instruct"], "requestsPerMinute": 1200}, "ci": {}}}},
     lambda c: (c.key_policies["ci"].models, c.key_policies["ci"].requests_per_minute) == (None, 300)
     and c.key_policies["team-a"].models == ("qwen2-5-1-5b-instruct",) and c.rate_limit_redis is None),
    ("keys-budget-dev-in-cluster", {"gateway": {"keys": {"default": {"tokensPerDay": 100000}}}},
     lambda c: c.rate_limit_redis.value == "inCluster" and c.gateway.rate_limit.fail_open is True),
    ("keys-budget-prod-elasticache", {"environment": "prod", "gateway": {"keys": {"default": {"tokensPerMinute": 5000}}}},
     lambda c: c.rate_limit_redis.value == "elastiCache"),
    ("keys-budget-chosen-redis", {"gateway": {"keys": {"default": {"tokensPerMinute": 5000}}, "rateLimit": {
        "redis": {"mode": "elastiCache", "nodeType": "cache.t4g.small"}, "failOpen": False}}},
     lambda c: c.rate_limit_redis.value == "elastiCache" and c.gateway.rate_limit.fail_open is False),
    ("keys-redis-without-budget", {"gateway": {"rateLimit": {"redis": {"mode": "elastiCache"}}}},
     lambda c: c.rate_limit_redis is None),
    ("prewarm-office-hours", prewarm(WIN), lambda c: c.models[0].prewarm[0].replicas == 1),
    ("prewarm-overnight-and-weekend", prewarm({"start": "0 22 * * *", "end": "0 6 * * *", "timezone": "UTC"},
                                              {"start": "0 18 * * fri", "end": "0 8 * * mon",
                                               "timezone": "Asia/Tokyo", "replicas": 2}, maxReplicas=2),
     lambda c: [w.replicas for w in c.models[0].prewarm] == [1, 2]),
    ("prewarm-lists-names", prewarm({"start": "45 7 * jan-jun,sep-dec mon-fri", "end": "15 18 ? 1-6,9-12 1-5",
                                     "timezone": "Etc/GMT-9"}),
     lambda c: c.models[0].prewarm[0].timezone == "Etc/GMT-9"),
    ("prewarm-steps", prewarm({"start": "0 */12 * * *", "end": "0 6-18/12 * * *", "timezone": "UTC"}),
     lambda c: c.models[0].prewarm[0].end == "0 6-18/12 * * *"),
    ("lora-two-adapters", lora(A, B), lambda c: c.models[0].served_names == ["qwen2-5-1-5b-instruct", "qwen-sql",
                                                                            "qwen-chat"]
     and (c.models[0].lora_slots, c.models[0].lora_rank) == (2, 16)),
    ("lora-rank-and-slots", lora(A, B, maxLoras=1, maxLoraRank=64),
     lambda c: (c.models[0].lora_slots, c.models[0].lora_rank) == (1, 64)),
    ("lora-tuning-flags-with-adapters", lora(A, extraArgs=["--fully-sharded-loras", "--lora-dtype=bfloat16",
                                                           "--moe-backend=triton"]),
     lambda c: len(c.models[0].extra_args) == 3),
    ("lora-same-adapter-on-two-models", {"models": [{**MODEL, "adapters": [A]},
                                                    {**MODEL, "servedName": "other", "adapters": [{**A, "name": "o"}]}]},
     lambda c: [m.served_names for m in c.models] == [["qwen2-5-1-5b-instruct", "qwen-sql"], ["other", "o"]]),
    ("no-adapters", {}, lambda c: c.models[0].served_names == ["qwen2-5-1-5b-instruct"] and c.models[0].lora_slots == 0),
    ("s3-endpoint-off", net(s3GatewayEndpoint=False),
     lambda c: c.network.s3_gateway_endpoint is False and not c.network.creates_s3_gateway_endpoint),
    ("s3-endpoint-default", {},
     lambda c: c.network.s3_gateway_endpoint is None and c.network.creates_s3_gateway_endpoint),
    ("existing-vpc", net(**EXIST, publicSubnetIds=["subnet-0a1b2c3d4e5f60003"], tagExistingSubnets=False),
     lambda c: c.network.mode.value == "existing" and len(c.network.private_subnet_ids) == 2),
    ("existing-vpc-8-hex-ids", net(mode="existing", vpcId="vpc-0a1b2c3d", privateSubnetIds=["subnet-0a1b2c3d",
                                                                                            "subnet-0a1b2c3e"],
                                   cidr=UNSET, azCount=UNSET, natGateways=UNSET),
     lambda c: c.network.vpc_id == "vpc-0a1b2c3d"),
    ("bottlerocket-gpu", {"gpu": {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0"}},
     lambda c: c.gpu.ami_alias == "bottlerocket@v1.64.0" and not c.gpu.needs_device_plugin),
    ("bottlerocket-system", {"systemNodes": {"ami": "bottlerocket"}}, lambda c: c.system_nodes.ami.value == "bottlerocket"),
    ("latest-ami-allowed", {"gpu": {"amiVersion": "latest", "allowLatestAmi": True}},
     lambda c: c.gpu.ami_alias == "al2023@latest"),
    ("spot-and-on-demand-pools-several-models", {
        "gpu": {"pools": [{**POOL, "name": "gpu-spot", "capacityTypes": ["spot"], "weight": 100, "gpusPerNode": [1, 4],
                           "gpuLimit": 8, "cpuLimit": 96}, POOL]},
        "models": [MODEL, {**MODEL, "servedName": "big", "hfModelId": "Qwen/Qwen2.5-32B-Instruct", "gpus": 4,
                           "pool": "gpu-spot", "maxReplicas": 2}]},
     lambda c: [m.pool for m in c.models] == ["gpu-on-demand", "gpu-spot"]),
    ("p5-eight-gpus", pool(instanceFamilies=["p5", "p5e"], gpusPerNode=[8], gpuLimit=8, cpuLimit=192),
     lambda c: c.gpu.pools[0].gpus_per_node == [8]),
    ("g4dn-g6e-up-to-eight-gpus", pool(instanceFamilies=["g4dn", "g6e"], gpusPerNode=[1, 4, 8], gpuLimit=8, cpuLimit=192),
     lambda c: c.gpu.pools[0].cpu_limit == 192),
    ("never-expire-and-consolidate", pool(expireAfter="Never", consolidateAfter="Never", terminationGracePeriod="2h"),
     lambda c: c.gpu.pools[0].expire_after == "Never"),
    ("min-replicas-one", model(minReplicas=1), lambda c: c.models[0].min_replicas == 1),
    ("max-replicas-at-the-limit", model(maxReplicas=2), lambda c: c.models[0].max_replicas == 2),
    ("cpu-as-yaml-number", model(cpu=4), lambda c: c.models[0].cpu == "4"),
    ("cpu-fraction-string", model(cpu="3.5"), lambda c: c.models[0].cpu == "3.5"),
    ("cpu-fraction-number", model(cpu=2.5), lambda c: c.models[0].cpu == "2.5"),
    ("cpu-millicores", model(cpu="3500m"), lambda c: c.models[0].cpu == "3500m"),
    ("memory-decimal-units", model(memory="16G", shmSize="4G"), lambda c: c.models[0].memory == "16G"),
    ("cache-at-the-volume-headroom", {**model(cacheSize="139Gi"), "gpu": {"instanceStore": "none"}},
     lambda c: c.models[0].cache_size == "139Gi"),
    ("cache-at-the-instance-store-limit", model(cacheSize="168Gi"),
     lambda c: c.models[0].cache_size == "168Gi" and c.gpu.instance_store_raid0(None)),
    # 4-GPU nodes only: the smallest is g5.12xlarge with 3,800 GB of NVMe, far beyond the 200 GiB EBS volume.
    ("cache-on-a-4-gpu-instance-store", {**pool(gpusPerNode=[4], gpuLimit=4, cpuLimit=48),
                                         "models": [{**MODEL, "gpus": 4, "maxReplicas": 1, "cacheSize": "1000Gi"}]},
     lambda c: c.models[0].cache_size == "1000Gi"),
    ("bottlerocket-first-release-with-the-1-35-variant", {"gpu": {"amiFamily": "bottlerocket", "amiVersion": "v1.53.0"}},
     lambda c: c.gpu.ami_alias == "bottlerocket@v1.53.0" and c.gpu.instance_store_raid0(None)),
    # raid0 (default or set) is not applied to nodes that restore a snapshot: the array would hide its images.
    ("snapshot-id-leaves-instance-store-off", {"gpu": {
        "amiFamily": "bottlerocket", "amiVersion": "v1.64.0", "fastImagePull": False,
        "dataVolumeSnapshotId": "snap-0123456789abcdef0", "instanceStore": "raid0"}},
     lambda c: not c.gpu.instance_store_raid0(c.gpu.data_volume_snapshot_id)),
    ("image-by-digest", model(image="vllm/vllm-openai@sha256:" + "a" * 64), lambda c: "@sha256:" in c.models[0].image),
    ("image-private-registry-port", model(image="registry.example.com:5000/ml/vllm-openai:v0.29.0-cu129"),
     lambda c: c.models[0].image.startswith("registry.example.com:5000/")),
    ("image-uppercase-tag-and-host", model(image="Registry.Example.com:5000/ml/vllm-openai:v0.29.0-RC1"),
     lambda c: c.models[0].image.endswith(":v0.29.0-RC1")),
    ("image-localhost", model(image="localhost/vllm-openai:v0.29.0"), lambda c: c.models[0].image.startswith("localhost/")),
    ("image-ecr", model(image="123456789012.dkr.ecr.us-west-2.amazonaws.com/vllm/vllm-openai:v0.29.0"),
     lambda c: ".dkr.ecr." in c.models[0].image),
    ("extra-args-unmanaged", model(extraArgs=["--enable-prefix-caching", "--max-num-seqs=64", "--model-impl=vllm",
                                              "--max-num-batched-tokens=8192", "--compilation-config.level=3"]),
     lambda c: len(c.models[0].extra_args) == 5),
    ("gated-model-with-token", {**model(needsHfToken=True, hfModelId="meta-llama/Llama-3.1-8B-Instruct"),
                                "hfTokenSet": True}, lambda c: c.hf_token_set),
    ("public-gateway-cidrs-tls", {"gateway": {"public": True, "allowedCidrs": ["203.0.113.0/24", "198.51.100.7/32"],
                                              "certificateArn": "arn:aws:acm:us-west-2:123456789012:certificate/"
                                                                "0a1b2c3d-1111-2222-3333-444455556666"}},
     lambda c: c.gateway.public and c.gateway.certificate_arn),
    ("kubernetes-136", {"cluster": {"kubernetesVersion": "1.36"}}, lambda c: c.cluster.kubernetes_version == "1.36"
     and c.cluster.eks_addon_versions["kube-proxy"].startswith("v1.36.")),
    ("addon-versions-pinned", {"cluster": {"kubernetesVersion": "1.36", "addonVersions": {
        "vpc-cni": "v1.23.0-eksbuild.1", "kube-proxy": "v1.36.0-eksbuild.21", "coredns": "v1.14.3-eksbuild.16",
        "eks-pod-identity-agent": "v1.3.10-eksbuild.3"}}},
     lambda c: c.cluster.eks_addon_versions == {"vpc-cni": "v1.23.0-eksbuild.1", "kube-proxy": "v1.36.0-eksbuild.21",
                                                "coredns": "v1.14.3-eksbuild.16",
                                                "eks-pod-identity-agent": "v1.3.10-eksbuild.3"}),
    ("public-gateway-office-and-vpn", {"gateway": {"public": True, "allowedCidrs": ["10.8.0.0/16", "198.51.100.7/32"],
                                                   "certificateArn": "arn:aws:acm:us-west-2:123456789012:certificate/"
                                                                     "0a1b2c3d-1111-2222-3333-444455556666"}},
     lambda c: c.gateway.allowed_cidrs == ["10.8.0.0/16", "198.51.100.7/32"]),
    ("internal-gateway-private-cidrs", {"gateway": {"allowedCidrs": ["10.0.0.0/8", "100.64.0.0/10"]}},
     lambda c: not c.gateway.public),
    ("global-dns-by-name", public_gw(globalDns=GLOBAL),
     lambda c: c.gateway.client_host == "llm.example.com" and c.gateway.global_dns.health_check.request_interval == 30),
    ("global-dns-apex-by-id-same-domain", public_gw(domain="example.com", globalDns={
        "hostedZoneId": "Z0123456789ABCDEFGHIJ", "recordName": "example.com"}),
     lambda c: c.gateway.client_host == "example.com" and c.gateway.global_dns.hosted_zone_name is None),
    ("global-dns-client-cidrs-without-health-check", public_gw(allowedCidrs=["203.0.113.0/24"], globalDns={
        **GLOBAL, "healthCheck": {"enabled": False}}),
     lambda c: not c.gateway.global_dns.health_check.enabled),
    ("global-dns-open-cidrs-with-health-check", public_gw(allowedCidrs=["0.0.0.0/0", "::/0"], globalDns={
        **GLOBAL, "healthCheck": {"requestInterval": 10, "failureThreshold": 2}}),
     lambda c: c.gateway.global_dns.health_check.failure_threshold == 2),
    ("budget-count-as-string", pool(disruptionBudgetNodes="10"), lambda c: c.gpu.pools[0].disruption_budget_nodes == "10"),
    ("system-nodes-all-equal", {"systemNodes": {"minSize": 3, "desiredSize": 3, "maxSize": 3}},
     lambda c: c.system_nodes.min_size == c.system_nodes.max_size == 3),
    ("tags", {"cluster": {"tags": {"team": "ml", "cost-center": "42", "gpu-burst/owner": "alice"}}},
     lambda c: c.cluster.tags["team"] == "ml"),
    ("karpenter-two-replicas", {"karpenter": {"replicas": 2}, "systemNodes": {"instanceTypes": ["m6i.xlarge"]}},
     lambda c: c.karpenter_replicas == 2),
    ("log-types", {"cluster": {"enabledLogTypes": ["api", "audit", "authenticator"]}},
     lambda c: len(c.cluster.enabled_log_types) == 3),
    # 4 replicas x (0.2 + 0.02) = 0.88 of one GPU at worst; 4 x 3 CPU fit a g5.4xlarge, 4 x 20Gi its NVMe.
    ("ts-one-model-on-four-slices", sliced(maxReplicas=4),
     lambda c: c.gpu.pools[0].slices_per_gpu == 4 and c.models[0].shared_gpu and c.gpu.slice_counts == [4]),
    # 0.5 + 0.45 + 2 x 0.02 = 0.99: two models of one replica each on a GPU cut in 2.
    ("ts-two-models-fill-a-gpu", {"gpu": {"pools": [{**POOL, "timeSlicing": 2}]},
                                  "models": [{**MODEL, **SHARED, "gpuMemoryUtilization": 0.5},
                                             {**MODEL, **SHARED, "servedName": "second", "gpuMemoryUtilization": 0.45}]},
     lambda c: [m.gpu_memory_utilization for m in c.models] == [0.5, 0.45]),
    # A whole-GPU class and a time-sliced class side by side, on Bottlerocket.
    ("ts-next-to-whole-gpus-bottlerocket", {
        "gpu": {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0",
                "pools": [POOL, {**POOL, "name": "gpu-shared", "trafficClass": "shared", "timeSlicing": 8,
                                 "gpusPerNode": [1, 4], "gpuLimit": 4, "cpuLimit": 96}]},
        "models": [MODEL, {**MODEL, **SHARED, "servedName": "small", "pool": "gpu-shared", "gpuMemoryUtilization": 0.105,
                           "maxReplicas": 8, "cpu": "1", "memory": "6Gi", "shmSize": "1Gi", "cacheSize": "10Gi"}]},
     lambda c: [p.slices_per_gpu for p in c.gpu.pools] == [1, 8] and c.gpu.slice_counts == [8]),
]


# -- an existing cluster (cluster.mode: existing, Pulumi.byo.yaml) and install: false -------------------------------
_BYO = yaml.safe_load((ROOT / "Pulumi.byo.yaml").read_text())["config"]
BYO = {**{k.split(":", 1)[1]: v for k, v in _BYO.items() if k.startswith("gpu-burst:")}, "region": _BYO["aws:region"]}

BYO_BAD = [
    ('byo-name-and-selector-missing', BYO, {'cluster': {'name': UNSET, 'systemNodeSelector': UNSET}}, [
        "gpu-burst:cluster.name: required when mode is 'existing'; allowed: the name of the EKS cluster to install onto (`aws eks list-clusters`)",
        "gpu-burst:cluster.systemNodeSelector: required when mode is 'existing'; allowed: the labels of the nodes the controllers may run on, e.g. {eks.amazonaws.com/nodegroup: system}, or {} for any untainted node",
    ]),
    ('byo-create-keys', BYO, {'cluster': {'kubernetesVersion': '1.35', 'publicAccessCidrs': ['0.0.0.0/0'], 'adminPrincipalArns': ['arn:aws:iam::123456789012:role/admin']}}, [
        "gpu-burst:cluster.kubernetesVersion: is only read when mode is 'create' (the version is read from the existing cluster); allowed: remove it",
        "gpu-burst:cluster.publicAccessCidrs: is only read when mode is 'create' (the existing cluster's endpoint is its owner's); allowed: remove it",
        "gpu-burst:cluster.adminPrincipalArns: is only read when mode is 'create' (the existing cluster's access entries are its owner's); allowed: remove it, and give those principals access yourself",
    ]),
    ('byo-system-nodes', BYO, {'systemNodes': {'minSize': 2}}, [
        "gpu-burst:systemNodes: is only read when cluster.mode is 'create' (an existing cluster's nodes are its owner's); allowed: remove it, and set cluster.systemNodeSelector",
    ]),
    ('byo-network-create', BYO, {'network': {'cidr': '10.60.0.0/16'}}, [
        "gpu-burst:network.mode: 'create' would make a new VPC, but an existing cluster keeps its own; allowed: remove gpu-burst:network (GPU nodes use the cluster's private subnets), or mode: existing with the cluster's vpcId and privateSubnetIds",
    ]),
    ('byo-network-existing-create-only', BYO, {'karpenter': {'discoveryTag': UNSET, 'nodeRoleName': UNSET, 'install': True}, 'network': {'mode': 'existing', 'vpcId': 'vpc-0b7e4c1d2a3f45678', 'privateSubnetIds': ['subnet-0a1a2a3a4a5a6a701', 'subnet-0a1a2a3a4a5a6a702'], 'publicSubnetIds': ['subnet-0b1b2b3b4b5b6b701'], 'tagExistingSubnets': False}}, [
        "gpu-burst:network.publicSubnetIds: is only read when cluster.mode is 'create' (GPU nodes of an existing cluster select their subnets by id or discovery tag, and no tag is written); allowed: remove it",
        "gpu-burst:network.tagExistingSubnets: is only read when cluster.mode is 'create' (GPU nodes of an existing cluster select their subnets by id or discovery tag, and no tag is written); allowed: remove it",
    ]),
    ('byo-subnets-and-discovery-tag', BYO, {'network': {'mode': 'existing', 'vpcId': 'vpc-0b7e4c1d2a3f45678', 'privateSubnetIds': ['subnet-0a1a2a3a4a5a6a701', 'subnet-0a1a2a3a4a5a6a702']}}, [
        'gpu-burst:network.privateSubnetIds: is not read when karpenter.discoveryTag is set (GPU nodes use the subnets carrying that tag); allowed: one of the two',
    ]),
    ('byo-existing-keys-in-create-mode', DEV, {'cluster': {'systemNodeSelector': {}, 'installPodIdentityAgent': True}}, [
        "gpu-burst:cluster.systemNodeSelector: is only read when mode is 'existing' (the stack's own system node group is labelled for its controllers); allowed: remove it, or set mode: existing",
        "gpu-burst:cluster.installPodIdentityAgent: is only read when mode is 'existing' (the stack installs the agent on the cluster it creates); allowed: remove it, or set mode: existing",
    ]),
    ('byo-install-false-in-create-mode', DEV, {'addons': {'keda': {'install': False}}, 'gateway': {'loadBalancerController': {'install': False}}}, [
        "gpu-burst:addons.keda.install: false is only allowed when cluster.mode is 'existing' (a cluster the stack creates has nothing installed); allowed: true, or cluster.mode: existing",
        "gpu-burst:gateway.loadBalancerController.install: false is only allowed when cluster.mode is 'existing' (a cluster the stack creates has nothing installed); allowed: true, or cluster.mode: existing",
    ]),
    ('byo-discovery-tag-in-create-mode', DEV, {'karpenter': {'discoveryTag': 'team'}}, [
        "gpu-burst:karpenter.discoveryTag: is only read when cluster.mode is 'existing' (the stack tags the subnets of the cluster it creates with its name); allowed: remove it",
    ]),
    ('byo-karpenter-install-keys', BYO, {'karpenter': {'chartVersion': '1.14.1', 'replicas': 2}}, [
        'gpu-burst:karpenter.chartVersion: is only read when install is true (it configures the Karpenter the stack installs); allowed: remove it',
        'gpu-burst:karpenter.replicas: is only read when install is true (it configures the Karpenter the stack installs); allowed: remove it',
    ]),
    ('byo-karpenter-identity-and-tag-missing', BYO, {'karpenter': {'nodeRoleName': UNSET, 'discoveryTag': UNSET}}, [
        "gpu-burst:karpenter.nodeRoleName: required when install is false; allowed: the IAM role name your Karpenter's nodes use (e.g. KarpenterNodeRole-<cluster>), or nodeInstanceProfile instead",
        "gpu-burst:karpenter.discoveryTag: required when install is false; allowed: the karpenter.sh/discovery tag value on the subnets and security groups your Karpenter's nodes use (often the cluster name)",
    ]),
    ('byo-karpenter-role-and-profile', BYO, {'karpenter': {'nodeInstanceProfile': 'KarpenterNodeInstanceProfile'}}, [
        'gpu-burst:karpenter.nodeInstanceProfile: is set together with nodeRoleName (EC2NodeClass takes one of them); allowed: one of the two',
    ]),
    ('byo-karpenter-existing-keys-when-installing', BYO, {'karpenter': {'install': True, 'interruptionQueue': True}}, [
        'gpu-burst:karpenter.nodeRoleName: is only read when install is false (the stack creates the node role of the Karpenter it installs); allowed: remove it',
        'gpu-burst:karpenter.interruptionQueue: is only read when install is false (the Karpenter the stack installs always gets its queue); allowed: remove it',
    ]),
    ('byo-karpenter-bad-role-name', BYO, {'karpenter': {'nodeRoleName': 'arn:aws:iam::123456789012:role/KarpenterNodeRole'}}, [
        "gpu-burst:karpenter.nodeRoleName: 'arn:aws:iam::123456789012:role/KarpenterNodeRole' is not an IAM role or instance profile name (letters, digits and +=,.@_-); allowed: e.g. KarpenterNodeRole-my-cluster",
    ]),
    ('byo-http-addon-needs', BYO, {'addons': {'httpAddon': {'install': False}}}, [
        "gpu-burst:addons.httpAddon.interceptorService: required when install is false; allowed: the existing add-on's value, e.g. keda-add-ons-http-interceptor-proxy (its chart's default)",
        "gpu-burst:addons.httpAddon.interceptorNamespace: required when install is false; allowed: the existing add-on's value, e.g. keda (its chart's default)",
        "gpu-burst:addons.httpAddon.interceptorPort: required when install is false; allowed: the existing add-on's value, e.g. 8080 (its chart's default)",
        "gpu-burst:addons.httpAddon.externalScalerAddress: required when install is false; allowed: the existing add-on's value, e.g. keda-add-ons-http-external-scaler.keda:9090 (its chart's default)",
    ]),
    ('byo-http-addon-existing-keys-when-installing', BYO, {'addons': {'httpAddon': {'interceptorPort': 8080}}}, [
        'gpu-burst:addons.httpAddon.interceptorPort: is only read when install is false (the stack knows the addresses of the add-on it installs); allowed: remove it',
    ]),
    ('byo-http-addon-install-keys', BYO, {'addons': {'httpAddon': {'install': False, 'interceptorService': 'keda-add-ons-http-interceptor-proxy', 'interceptorNamespace': 'keda', 'interceptorPort': 8080, 'externalScalerAddress': 'keda-add-ons-http-external-scaler.keda:9090', 'interceptorReplicas': 3}}}, [
        'gpu-burst:addons.httpAddon.interceptorReplicas: is only read when install is true (it configures the HTTP add-on the stack installs); allowed: remove it',
    ]),
    ('byo-http-addon-bad-addresses', BYO, {'addons': {'httpAddon': {'install': False, 'interceptorService': 'Interceptor_Proxy', 'interceptorNamespace': 'keda', 'interceptorPort': 70000, 'externalScalerAddress': 'http://scaler:9090'}}}, [
        "gpu-burst:addons.httpAddon.interceptorService: 'Interceptor_Proxy' is not a Service name (lowercase letters, digits and '-'); allowed: e.g. keda-add-ons-http-interceptor-proxy",
        'gpu-burst:addons.httpAddon.interceptorPort: 70000 is out of range; allowed: an integer from 1 to 65535',
        "gpu-burst:addons.httpAddon.externalScalerAddress: 'http://scaler:9090' is not a host:port address; allowed: e.g. keda-add-ons-http-external-scaler.keda:9090",
    ]),
    ('byo-monitoring-needs', BYO, {'addons': {'monitoring': {'prometheusUrl': UNSET, 'serviceMonitorLabels': UNSET, 'ruleLabels': UNSET, 'dashboardNamespace': UNSET, 'dashboardLabels': UNSET}}}, [
        'gpu-burst:addons.monitoring.prometheusUrl: required when install is false; allowed: the in-cluster URL of your Prometheus, e.g. http://kube-prometheus-stack-prometheus.monitoring.svc:9090',
        'gpu-burst:addons.monitoring.serviceMonitorLabels: required when install is false; allowed: the labels your Prometheus selects monitors by, e.g. {release: kube-prometheus-stack}, or {} when it selects all',
        'gpu-burst:addons.monitoring.ruleLabels: required when install is false; allowed: the labels your Prometheus selects rules by, e.g. {release: kube-prometheus-stack}, or {} when it selects all',
        'gpu-burst:addons.monitoring.dashboardNamespace: required when install is false and dashboards is true; allowed: e.g. monitoring (where your Grafana sidecar looks), or dashboards: false',
        'gpu-burst:addons.monitoring.dashboardLabels: required when install is false and dashboards is true; allowed: e.g. {grafana_dashboard: "1"} (where your Grafana sidecar looks), or dashboards: false',
    ]),
    ('byo-monitoring-bad-url', BYO, {'addons': {'monitoring': {'prometheusUrl': 'kube-prometheus-stack-prometheus.monitoring:9090'}}}, [
        "gpu-burst:addons.monitoring.prometheusUrl: 'kube-prometheus-stack-prometheus.monitoring:9090' is not an http(s) URL of Prometheus; allowed: e.g. http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
    ]),
    ('byo-monitoring-own-label', BYO, {'addons': {'monitoring': {'serviceMonitorLabels': {'app.kubernetes.io/part-of': 'monitoring'}}}}, [
        'gpu-burst:addons.monitoring.serviceMonitorLabels.app.kubernetes.io/part-of: is a label the stack sets on its own objects; allowed: the label your Prometheus selects by, e.g. release',
    ]),
    ('byo-monitoring-bad-label', BYO, {'addons': {'monitoring': {'ruleLabels': {'release': 'kube prometheus'}}}}, [
        "gpu-burst:addons.monitoring.ruleLabels.release: 'kube prometheus' (label release) is not a label value; allowed: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    ]),
    ('byo-monitoring-targets-of-what-is-off', BYO, {'addons': {'monitoring': {'alerts': False, 'dashboards': False}}}, [
        'gpu-burst:addons.monitoring.dashboardNamespace: is only read when dashboards is true; allowed: remove it',
        'gpu-burst:addons.monitoring.dashboardLabels: is only read when dashboards is true; allowed: remove it',
    ]),
    ('byo-monitoring-install-keys', BYO, {'addons': {'monitoring': {'retention': '30d', 'grafanaEnabled': False}}}, [
        'gpu-burst:addons.monitoring.retention: is only read when install is true (it configures the kube-prometheus-stack the stack installs); allowed: remove it',
        'gpu-burst:addons.monitoring.grafanaEnabled: is only read when install is true (it configures the kube-prometheus-stack the stack installs); allowed: remove it',
    ]),
    ('byo-monitoring-existing-keys-when-installing', BYO, {'addons': {'monitoring': {'install': True}}}, [
        'gpu-burst:addons.monitoring.prometheusUrl: is only read when install is false (the stack wires what it installs itself); allowed: remove it',
        'gpu-burst:addons.monitoring.serviceMonitorLabels: is only read when install is false (the stack wires what it installs itself); allowed: remove it',
        'gpu-burst:addons.monitoring.ruleLabels: is only read when install is false (the stack wires what it installs itself); allowed: remove it',
        'gpu-burst:addons.monitoring.dashboardNamespace: is only read when install is false (the stack wires what it installs itself); allowed: remove it',
        'gpu-burst:addons.monitoring.dashboardLabels: is only read when install is false (the stack wires what it installs itself); allowed: remove it',
    ]),
    ('byo-device-plugin-install-keys', BYO, {'addons': {'nvidiaDevicePlugin': {'install': False, 'chartVersion': '0.20.0'}}}, [
        'gpu-burst:addons.nvidiaDevicePlugin.chartVersion: is only read when install is true (it configures the device plugin the stack installs); allowed: remove it',
    ]),
    ('byo-keda-chart-when-existing', BYO, {'addons': {'keda': {'install': False, 'chartVersion': '2.20.2'}}}, [
        'gpu-burst:addons.keda.chartVersion: is only read when install is true (it configures the KEDA the stack installs); allowed: remove it',
    ]),
    ('byo-envoy-gateway-namespace-missing', BYO, {'gateway': {'envoyGateway': {'install': False}, 'aiGateway': {'install': False}}}, [
        "gpu-burst:gateway.envoyGateway.namespace: required when install is false; allowed: the namespace of the existing Envoy Gateway's proxies, e.g. envoy-gateway-system",
    ]),
    ('byo-envoy-gateway-namespace-when-installing', BYO, {'gateway': {'envoyGateway': {'namespace': 'envoy-gateway-system'}}}, [
        'gpu-burst:gateway.envoyGateway.namespace: is only read when install is false (the stack installs Envoy Gateway in envoy-gateway-system); allowed: remove it',
    ]),
    ('byo-ai-gateway-without-envoy-gateway', BYO, {'gateway': {'aiGateway': {'install': False}}}, [
        'gpu-burst:gateway.aiGateway.install: false while envoyGateway.install is true: the Envoy Gateway the stack installs points its extension manager at the AI Gateway the stack installs; allowed: true, or envoyGateway.install: false too',
    ]),
    ('byo-budgets-with-existing-envoy-gateway', BYO, {'gateway': {
        'envoyGateway': {'install': False, 'namespace': 'envoy-gateway-system'}, 'aiGateway': {'install': False},
        'keys': {'default': {'tokensPerDay': 100000}}}}, [
        'gpu-burst:gateway.envoyGateway.install: false cannot carry token budgets (their Redis is configured in the Envoy Gateway release the stack installs); allowed: true, or remove tokensPerMinute and tokensPerDay from gateway.keys',
    ]),
]
"""(id, the values a case starts from, patch, lines): the byo cases start from Pulumi.byo.yaml, the ones that use
a key of an existing cluster in a created one from Pulumi.dev.yaml."""

BYO_GOOD = [
    ("byo-as-is", {}, lambda c: c.existing_cluster and not c.karpenter.install and not c.addons.monitoring.install),
    ("byo-karpenter-installed-subnets-discovered", {"karpenter": {"install": True, "nodeRoleName": UNSET,
                                                                  "discoveryTag": UNSET}},
     lambda c: c.karpenter.install and c.karpenter.discovery_tag is None),
    ("byo-karpenter-installed-with-a-tag-and-queue", {"karpenter": {"install": True, "nodeRoleName": UNSET,
                                                                    "chartVersion": "1.14.1", "replicas": 2}},
     lambda c: c.karpenter_replicas == 2 and c.karpenter.discovery_tag == "ml-platform"),
    ("byo-instance-profile-and-queue", {"karpenter": {"nodeRoleName": UNSET, "nodeInstanceProfile": "KarpenterNodes",
                                                      "interruptionQueue": True}},
     lambda c: c.karpenter.node_instance_profile == "KarpenterNodes" and c.karpenter.interruption_queue),
    ("byo-everything-existing", {"addons": {
        "keda": {"install": False}, "nvidiaDevicePlugin": {"install": False},
        "httpAddon": {"install": False, "interceptorService": "keda-add-ons-http-interceptor-proxy",
                      "interceptorNamespace": "keda", "interceptorPort": 8080,
                      "externalScalerAddress": "keda-add-ons-http-external-scaler.keda:9090"},
        "monitoring": {"alerts": False, "dashboards": False, "dashboardNamespace": UNSET,
                       "dashboardLabels": UNSET, "serviceMonitorLabels": {"prometheus": "main"}}},
        "gateway": {"envoyGateway": {"install": False, "namespace": "envoy-gateway-system"},
                    "aiGateway": {"install": False}, "loadBalancerController": {"install": False}}},
     lambda c: c.addons.monitoring.service_monitor_labels["prometheus"] == "main"
     and not c.gateway.load_balancer_controller.install),
    ("byo-agent-allowed", {"cluster": {"installPodIdentityAgent": True}}, lambda c: c.cluster.install_pod_identity_agent),
    ("byo-own-subnets", {"karpenter": {"discoveryTag": UNSET, "install": True, "nodeRoleName": UNSET},
                         "network": {"mode": "existing", "vpcId": "vpc-0b7e4c1d2a3f45678",
                                     "privateSubnetIds": ["subnet-0a1a2a3a4a5a6a701", "subnet-0a1a2a3a4a5a6a702"]}},
     lambda c: len(c.network.private_subnet_ids) == 2),
]


def _lines(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate(raw)
    return e.value.lines


def test_the_table_is_big_enough():
    assert len(BAD) + len(BAD_KEYS) >= 100 and len(GOOD) >= 20
    ids = [c[0] for c in BAD + BAD_KEYS + GOOD + BYO_BAD + BYO_GOOD]
    assert len(set(ids)) == len(ids), "ids are unique"


@pytest.mark.parametrize("patch, expected", [pytest.param(p, e, id=i) for i, p, e in BAD])
def test_bad_config(patch, expected):
    assert _lines(merge(DEV, patch)) == expected


@pytest.mark.parametrize("base, patch, expected", [pytest.param(b, p, e, id=i) for i, b, p, e in BYO_BAD])
def test_bad_byo_config(base, patch, expected):
    assert _lines(merge(base, patch)) == expected


@pytest.mark.parametrize("patch, check", [pytest.param(p, c, id=i) for i, p, c in BYO_GOOD])
def test_good_byo_config(patch, check):
    cfg = validate(merge(BYO, patch))
    assert isinstance(cfg, StackConfig) and check(cfg)


@pytest.mark.parametrize("values, expected", [pytest.param(v, e, id=i) for i, v, e in BAD_KEYS])
def test_bad_stack_file_keys(values, expected):
    stack = {k: v for k, v in _DEV.items()}
    _, lines = raw_from_values({**stack, **values})
    assert lines == expected


@pytest.mark.parametrize("patch, check", [pytest.param(p, c, id=i) for i, p, c in GOOD])
def test_good_config(patch, check):
    cfg = validate(merge(DEV, patch))
    assert isinstance(cfg, StackConfig) and check(cfg)


def test_byo_empty_selectors_mean_any_node_and_every_monitor():
    """`{}` is a value, not an absent key: controllers on any untainted node, monitors without a label."""
    raw = copy.deepcopy(BYO)
    raw["cluster"]["systemNodeSelector"] = {}
    raw["addons"]["monitoring"]["serviceMonitorLabels"] = {}
    cfg = validate(raw)
    assert cfg.cluster.system_node_selector == {} and cfg.addons.monitoring.service_monitor_labels == {}


@pytest.mark.parametrize("stack", ["prod", "prod-us", "prod-eu"])
def test_prod_as_is(stack):
    prod = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw, lines = raw_from_values({**prod, "gpu-burst:hfToken": {"secure": "v1:xyz"}})
    assert lines == [] and validate(raw).environment == "prod"


_LINE = re.compile(rf"^(aws|{NAMESPACE}):[A-Za-z0-9\[\].:/_-]+: .+; .+$")


@pytest.mark.parametrize("line", sorted({l for _, _, e in BAD + BAD_KEYS for l in e}
                                        | {l for _, _, _, e in BYO_BAD for l in e}))
def test_every_line_says_what_is_wrong_and_what_is_allowed(line):
    assert _LINE.match(line), line
    # a raw regex is not an explanation
    assert not re.search(r"\^|\$'|\\d|\[0-9|\[a-z|\(\?", line), line


def _models(cls=StackConfig, seen=None):
    seen = set() if seen is None else seen
    if cls in seen:
        return seen
    seen.add(cls)
    for f in cls.model_fields.values():
        for t in re.findall(r"[\w.]+", repr(f.annotation)):
            obj = _lookup(t)
            if isinstance(obj, type) and issubclass(obj, Strict):
                _models(obj, seen)
    return seen


def _lookup(dotted: str):
    import importlib

    mod, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(mod), name) if mod else None
    except (ImportError, AttributeError, ValueError):
        return None


def test_fields_with_a_pattern_have_a_description():
    """A field constrained by a bare `Field(pattern=...)` gets the generic message `'<value>' has the wrong
    format; <description>`: the description must exist, so that the message never needs the regex."""
    found = []
    for cls in _models():
        for name, f in cls.model_fields.items():
            text = repr(f.metadata) + repr(f.annotation)
            if re.search(r"pattern=['\"]", text) and not (f.description or "").strip():
                found.append(f"{cls.__name__}.{name}")
    assert found == []


def test_error_lines_quoted_in_the_docs_are_real():
    """An error line a doc shows inline (`gpu-burst:<path>: ...; ...`) is one this table proves the program prints."""
    real = {l for _, _, e in BAD + BAD_KEYS for l in e} | {l for _, _, _, e in BYO_BAD for l in e}
    quoted = [q for p in sorted((ROOT / "docs").glob("*.md"))
              for q in re.findall(r"`((?:aws|gpu-burst):[\w.\[\]]+: [^`]+; [^`]+)`", p.read_text())]
    assert quoted and [q for q in quoted if q not in real] == []
