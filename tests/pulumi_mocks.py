"""Pulumi mocks that behave like the real providers where it matters to this program.

- Every RegisterResourceRequest is recorded (dependencies, propertyDependencies, parent, provider, ignoreChanges),
  so tests can assert the dependency graph, not only property values.
- Auto-naming is simulated the way the AWS and Kubernetes providers do it (`<logical>-<7 hex>`), so a test that
  accidentally relies on a guessed physical name fails instead of passing by coincidence.
- ARNs, queue URLs and ids are synthesised from the auto-name, so IAM documents reference realistic values.
- `eks:index:Cluster` is a remote component: the mock returns its outputs, with `eksCluster` as a *resource
  reference* to a pre-registered `aws:eks/cluster:Cluster`, as the real pulumi-eks provider does.
- What the pulumi-eks provider registers inside `eks:index:Cluster` (its kube-proxy, vpc-cni and coredns Addons) is
  emulated in `provider_children`, with the versions pulumi-eks would resolve (`aws:eks/getAddonVersion`, answered
  from `newest_addon_versions` / `default_addon_versions`).
- The stock MockMonitor lacks `Call`; `RecordingMonitor` adds it for resource methods.
- A `pulumi:pulumi:StackReference` reads `Mocks.stacks` (outputs and secret names), as the engine reads a stack.
"""

import hashlib
import json
import re
from typing import Optional

import grpc
import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs
from pulumi.runtime.proto import provider_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

ACCOUNT = "123456789012"
REGION = "us-west-2"
CLUSTER_SG = "sg-0c1a2b3c4d5e6f701"

# -- an account with an EKS cluster the team already runs (what `cluster.mode: existing` reads) -------------------
EXISTING_CLUSTER = "ml-platform"
EXISTING_VPC = "vpc-0b7e4c1d2a3f45678"
EXISTING_VPC_CIDR = "10.80.0.0/16"
EXISTING_CLUSTER_SG = "sg-0e5d4c3b2a1f09876"
EXISTING_ENDPOINT = "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"
EXISTING_CA = ("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURBTkJna3Foa2lHOXcwQkFRc0ZBREFW"
               "TVJNd0VRWURWUVFERXdwcmRXSmwKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=")
"""Base64 PEM of the cluster CA, as DescribeCluster returns certificateAuthority.data."""
EXISTING_PRIVATE = ["subnet-0a1a2a3a4a5a6a701", "subnet-0a1a2a3a4a5a6a702", "subnet-0a1a2a3a4a5a6a703"]
"""Private subnets (a NAT route each), tagged karpenter.sh/discovery=ml-platform by the team's Karpenter setup."""
EXISTING_PUBLIC = ["subnet-0b1b2b3b4b5b6b701", "subnet-0b1b2b3b4b5b6b702", "subnet-0b1b2b3b4b5b6b703"]
"""Public subnets on the VPC's main route table (internet gateway); the third does not map public IPs."""
EXISTING_NODE_ROLE = "KarpenterNodeRole-ml-platform"
# Wire encoding of a resource reference (pulumi/runtime/rpc.py: _special_sig_key / _special_resource_sig).
_SIG_KEY, _RES_SIG = "4dabf18193072939515e22adb298388d", "5cf8f73096256a8f31e491e813e4eb8e"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class ProviderError(grpc.RpcError):
    """What the engine sends back when a provider's invoke fails ("invocation of <tok> returned an error: ...",
    pulumi/pulumi pkg/resource/deploy/source_eval.go resmon.Invoke): a gRPC error, which the Python SDK turns into
    an exception the program can catch (pulumi/runtime/invoke.py do_invoke). A plain exception from a mock would
    instead count as an unhandled RPC failure and end the program whatever it catches."""

    def __init__(self, tok: str, message: str):
        super().__init__(message)
        self._details = f"invocation of {tok} returned an error: {message}"

    def code(self):
        return grpc.StatusCode.UNKNOWN

    def details(self):
        return self._details


def configured_region() -> str:
    """The region of the default AWS provider: `aws:region` of the stack under test (REGION when unset), as the real
    provider answers getRegion and builds regional names from its configuration."""
    return pulumi.Config("aws").get("region") or REGION


def suffix(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:7]


def autoname(name: str) -> str:
    return f"{name}-{suffix(name)}"


def _strip_resource_refs(value) -> None:
    """Turn every resource reference inside a protobuf Struct/ListValue into a plain {urn, id} struct, in place."""
    if isinstance(value, struct_pb2.Struct):
        fields = value.fields
        sig = fields.get(_SIG_KEY)
        if sig is not None and sig.string_value == _RES_SIG:
            del fields[_SIG_KEY]
            for key in list(fields):
                if key not in ("urn", "id"):
                    del fields[key]
            return
        for v in fields.values():
            _strip_resource_refs(v)
    elif isinstance(value, struct_pb2.ListValue):
        for v in value.values:
            _strip_resource_refs(v)
    elif isinstance(value, struct_pb2.Value):
        kind = value.WhichOneof("kind")
        if kind == "struct_value":
            _strip_resource_refs(value.struct_value)
        elif kind == "list_value":
            _strip_resource_refs(value.list_value)


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks):
        super().__init__(mocks)
        self.requests: dict[str, object] = {}
        self.by_type: dict[str, list] = {}
        self.custom_names: set[str] = set()

    def RegisterResource(self, request):
        # The stock monitor deserialises inputs on an executor thread; a resource reference among them (e.g. the
        # eks.Cluster passed to a ManagedNodeGroup) would be rehydrated there, creating a get_resource task on that
        # thread's own event loop, which the main loop then awaits: "attached to a different loop", or a hang.
        # Inputs only need the reference's urn/id, so strip the signature before the stock code sees them.
        _strip_resource_refs(request.object)
        resp = super().RegisterResource(request)
        # Logical names are unique per type in Pulumi; this project keeps them unique across types too, so tests
        # can address requests by name alone.
        if request.custom:
            assert request.name not in self.custom_names, f"two resources named {request.name!r}"
            self.custom_names.add(request.name)
            self.requests[request.name] = request
        else:
            self.requests.setdefault(request.name, request)
        self.by_type.setdefault(request.type, []).append(request)
        return resp

    def Call(self, request):
        _ensure_event_loop()
        raw = struct_pb2.Struct()
        raw.CopyFrom(request.args)
        if "__self__" in raw.fields:
            del raw.fields["__self__"]
        ret = self.mocks.call(
            MockCallArgs(token=request.tok, args=rpc.deserialize_properties(raw), provider=request.provider)
        )
        ret = ret[0] if isinstance(ret, tuple) else ret
        return provider_pb2.CallResponse(**{"return": _sync_await(rpc.serialize_properties(ret, {}))})


def _arn(service: str, resource: str, region: bool = True) -> str:
    return f"arn:aws:{service}:{REGION if region else ''}:{ACCOUNT}:{resource}"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.monitor: Optional[RecordingMonitor] = None
        self.created: list[MockResourceArgs] = []
        self.calls: list[MockCallArgs] = []
        self.states: dict[str, dict] = {}
        """Logical name -> the state the mock provider returned (inputs plus auto-names, ARNs, ids)."""
        self.resources_at_call: list[int] = []
        """For each entry of `calls`, how many resources had been registered when it was made."""
        self.newest_addon_versions: dict[str, str] = dict(self.NEWEST_ADDON_VERSIONS)
        """What getAddonVersion answers with mostRecent: add-on name -> build (`{k8s}`: the Kubernetes version)."""
        self.default_addon_versions: dict[str, str] = dict(self.DEFAULT_ADDON_VERSIONS)
        """What getAddonVersion answers without mostRecent (EKS's default build for the Kubernetes version)."""
        self.provider_children: list[tuple[str, str, dict]] = []
        """(type, name, inputs) of the resources the pulumi-eks provider registers inside an eks:index:Cluster."""
        self.provider_invokes: list[tuple[str, dict]] = []
        """(token, args) of the invokes the pulumi-eks provider makes itself (not through this program)."""
        self.eks_clusters: dict[str, dict] = {EXISTING_CLUSTER: self.existing_cluster()}
        """EKS clusters of the account by name, shaped like the getCluster answer (DescribeCluster)."""
        self.eks_addons: dict[tuple[str, str], str] = {
            (EXISTING_CLUSTER, "eks-pod-identity-agent"): "v1.3.8-eksbuild.2",
            (EXISTING_CLUSTER, "vpc-cni"): "v1.20.4-eksbuild.1"}
        """(cluster, add-on) -> installed build."""
        self.vpcs: dict[str, str] = {EXISTING_VPC: EXISTING_VPC_CIDR}
        self.subnets: dict[str, dict] = self.existing_subnets()
        """Subnets by id: vpcId, availabilityZone, mapPublicIpOnLaunch, tags."""
        self.route_tables: dict[str, dict] = self.existing_route_tables()
        """Route tables by id: vpcId, routes, associations (as getRouteTable answers)."""
        self.security_groups: dict[str, dict] = {
            EXISTING_CLUSTER_SG: {"vpcId": EXISTING_VPC, "tags": {
                "aws:eks:cluster-name": EXISTING_CLUSTER, "karpenter.sh/discovery": EXISTING_CLUSTER}}}
        self.iam_roles: set[str] = {EXISTING_NODE_ROLE}
        self.instance_profiles: dict[str, str] = {f"{EXISTING_NODE_ROLE}-profile": EXISTING_NODE_ROLE}
        self.hosted_zones: list[tuple[str, str, bool]] = list(self.HOSTED_ZONES)
        """Route 53 hosted zones of the account, (id, name with the final dot, private), answered by getZone."""
        self.stacks: dict[str, tuple[dict, set]] = {}
        """Stacks a StackReference can read: fully qualified name -> (outputs, names of the secret ones)."""
        self.snapshots: list[dict] = []
        """EBS snapshots the account can see, shaped like DescribeSnapshots entries (SnapshotId, OwnerId, State,
        StartTime as an ISO string, Tags as [{Key, Value}]); answered by getSnapshotIds."""

    # -- helpers for tests ------------------------------------------------------------------------------------
    def of_type(self, typ: str) -> list[MockResourceArgs]:
        return [r for r in self.created if r.typ == typ]

    def named(self, name: str) -> MockResourceArgs:
        matches = [r for r in self.created if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name!r}, found {len(matches)}"
        return matches[0]

    def state(self, name: str) -> dict:
        return self.states[name]

    def _resource_ref(self, typ, name, state):
        urn = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{typ}::{name}"
        self.monitor.resources[urn] = MockMonitor.ResourceRegistration(urn, f"{name}-id", state)
        return {_SIG_KEY: _RES_SIG, "urn": urn, "id": f"{name}-id"}

    # -- resources ----------------------------------------------------------------------------------------------
    def new_resource(self, args: MockResourceArgs):
        self.created.append(args)
        rid, state = self._new_resource(args)
        self.states[args.name] = state
        return [rid, state]

    def _new_resource(self, args: MockResourceArgs):
        out = dict(args.inputs)
        t = args.typ
        if t == "eks:index:Cluster":
            return self._eks_cluster(args, out)
        if t == "pulumi:pulumi:StackReference":
            return self._stack_reference(args)
        if t == "eks:index:ManagedNodeGroup":
            ng = self._resource_ref(
                "eks:index:ManagedNodeGroup$aws:eks/nodeGroup:NodeGroup", f"{args.name}-nodeGroup",
                {"nodeGroupName": autoname(args.name), "arn": _arn("eks", f"nodegroup/{args.name}"),
                 "status": "ACTIVE"},
            )
            out["nodeGroup"] = ng
            return [f"{args.name}-id", out]
        if t.startswith("kubernetes:helm.sh/v3:Release"):
            out.setdefault("name", autoname(args.name))
            out["status"] = {"name": out["name"], "namespace": out.get("namespace", "default"), "status": "deployed",
                             "version": out.get("version", ""), "revision": 1, "chart": out.get("chart", "")}
            return [f"{args.name}-id", out]
        if t == "kubernetes:core/v1:Service" and getattr(args, "resource_id", None):
            # Service.get of a Service a controller created (e.g. Envoy Gateway's): the live object, LB status included.
            ns, _, name = args.resource_id.rpartition("/")
            out = {"metadata": {"name": name, "namespace": ns or "default", "uid": f"uid-{suffix(name)}"},
                   "spec": {"type": "LoadBalancer"},
                   "status": {"loadBalancer": {"ingress": [{"hostname": f"k8s-{suffix(name)}.elb.{REGION}.amazonaws.com"}]}}}
            return [args.resource_id, out]
        if t.startswith("kubernetes:") and args.custom and not t.startswith("kubernetes:helm.sh"):
            md = dict(out.get("metadata") or {})
            md.setdefault("name", autoname(args.name))
            md["uid"] = f"uid-{suffix(args.name)}"
            out["metadata"] = md
            if t == "kubernetes:core/v1:Service" and (out.get("spec") or {}).get("type") == "LoadBalancer":
                # The LBC's status: the NLB's DNS name, `k8s-<namespace:8>-<name:8>-<hash:10>` plus the suffix ELB
                # adds (kubernetes-sigs/aws-load-balancer-controller@v3.5.0 buildLoadBalancerName). Only
                # LoadBalancer Services get one.
                lb = "k8s-{}-{}-{}".format(*(re.sub(r"[^A-Za-z0-9]", "", v)[:n] for v, n in (
                    (md.get("namespace") or "default", 8), (md["name"], 8), (suffix(md["name"]) * 2, 10))))
                out["status"] = {"loadBalancer": {"ingress": [{"hostname": f"{lb}-{suffix(lb)}{suffix(md['name'])}"
                                                                           f".elb.{configured_region()}.amazonaws.com"}]}}
            return [f"{md['name']}-id", out]
        if t.startswith("aws:"):
            return self._aws(args, out)
        if t.startswith("tls:"):
            # PEM-shaped stand-ins for what the TLS provider computes.
            pem = lambda kind: f"-----BEGIN {kind}-----\n{suffix(args.name)}\n-----END {kind}-----\n"  # noqa: E731
            if t == "tls:index/privateKey:PrivateKey":
                out.update(privateKeyPem=pem("PRIVATE KEY"), publicKeyPem=pem("PUBLIC KEY"))
            elif t == "tls:index/certRequest:CertRequest":
                out["certRequestPem"] = pem("CERTIFICATE REQUEST")
            elif t in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
                out.update(certPem=pem("CERTIFICATE"), readyForRenewal=False,
                           validityStartTime="2026-12-01T00:00:00Z", validityEndTime="2036-11-29T00:00:00Z")
            return [f"{args.name}-id", out]
        if t.startswith("random:"):
            if "RandomPassword" in t or "RandomString" in t:
                out["result"] = "x" * int(out.get("length", 16))
            return [f"{args.name}-id", out]
        return [f"{args.name}-id", out]

    def _aws(self, args: MockResourceArgs, out: dict):
        t, n = args.typ, args.name
        if "name" not in out and "namePrefix" not in out:
            out["name"] = autoname(n)
        elif "namePrefix" in out and "name" not in out:
            out["name"] = out["namePrefix"] + suffix(n)
        name = out["name"]
        rid = name
        if t == "aws:iam/role:Role":
            out["arn"] = f"arn:aws:iam::{ACCOUNT}:role{out.get('path', '/')}{name}"
            out["uniqueId"] = f"AROA{suffix(n).upper()}"
        elif t == "aws:iam/policy:Policy":
            out["arn"] = f"arn:aws:iam::{ACCOUNT}:policy{out.get('path', '/')}{name}"
            rid = out["arn"]
        elif t == "aws:iam/serviceLinkedRole:ServiceLinkedRole":
            out["arn"] = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{out.get('awsServiceName')}/AWSServiceRoleForEC2Spot"
        elif t == "aws:s3/bucket:Bucket":
            # S3 appends a unique suffix to bucketPrefix; the bucket's name is `bucket`, its ARN has no region.
            out["bucket"] = out.get("bucket") or f"{out.get('bucketPrefix', 'terraform-')}{suffix(n)}"
            out["arn"] = f"arn:aws:s3:::{out['bucket']}"
            rid = out["bucket"]
        elif t == "aws:ecr/pullThroughCacheRule:PullThroughCacheRule":
            out["registryId"] = ACCOUNT
            rid = out.get("ecrRepositoryPrefix", name)
        elif t == "aws:sqs/queue:Queue":
            out["arn"] = _arn("sqs", name)
            out["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            rid = out["url"]
        elif t == "aws:cloudwatch/eventRule:EventRule":
            out["arn"] = _arn("events", f"rule/{name}")
        elif t == "aws:ec2/vpc:Vpc":
            rid = f"vpc-{suffix(n)}0000000000"[:21]
            out["arn"] = _arn("ec2", f"vpc/{rid}")
            out["defaultSecurityGroupId"] = f"sg-{suffix(n)}"
        elif t == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{suffix(n)}0000000000"[:24]
            out["arn"] = _arn("ec2", f"subnet/{rid}")
        elif t in ("aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip", "aws:ec2/internetGateway:InternetGateway",
                   "aws:ec2/routeTable:RouteTable"):
            rid = f"{t.split(':')[-1].lower()}-{suffix(n)}"
            if t == "aws:ec2/eip:Eip":
                out["allocationId"] = f"eipalloc-{suffix(n)}"
                out["publicIp"] = "198.51.100.7"
        elif t == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-{suffix(n)}0000000000"
            out["arn"] = _arn("ec2", f"security-group/{rid}")
        elif t == "aws:ec2/vpcEndpoint:VpcEndpoint":
            # EC2 ids are the prefix and 17 hex digits; a gateway endpoint's prefixListId is the service's managed
            # prefix list (S3's in us-west-2 is pl-68a54001).
            rid = f"vpce-{suffix(n)}0000000000"
            out["arn"] = _arn("ec2", f"vpc-endpoint/{rid}")
            out["state"] = "available"
            if out.get("vpcEndpointType") == "Gateway":
                out["prefixListId"] = "pl-68a54001"
        elif t == "aws:eks/accessEntry:AccessEntry":
            out["accessEntryArn"] = _arn("eks", f"access-entry/{out.get('clusterName')}/{suffix(n)}")
        elif t == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
            out["associationArn"] = _arn("eks", f"podidentityassociation/{out.get('clusterName')}/a-{suffix(n)}")
            out["associationId"] = f"a-{suffix(n)}"
        elif t == "aws:route53/healthCheck:HealthCheck":
            # Route 53 health checks have no name; their id is a UUID.
            del out["name"]
            h = hashlib.sha1(n.encode()).hexdigest()
            rid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
            out["arn"] = f"arn:aws:route53:::healthcheck/{rid}"
        elif t == "aws:route53/record:Record":
            # The provider's id is <zone>_<name>_<type>[_<set identifier>]; fqdn is the name, lowercase, no final
            # dot (hashicorp/terraform-provider-aws internal/service/route53/record.go).
            out["fqdn"] = name.rstrip(".").lower()
            rid = "_".join([out["zoneId"], name, out["type"]] + ([out["setIdentifier"]] if out.get("setIdentifier") else []))
        elif t == "aws:eks/addon:Addon":
            out["arn"] = _arn("eks", f"addon/{out.get('clusterName')}/{out.get('addonName')}/{suffix(n)}")
        elif t == "aws:elasticache/replicationGroup:ReplicationGroup":
            # The provider auto-names replicationGroupId (lowercase, at most 40); a cluster-mode-disabled group with
            # TLS answers on master.<id>.<6 chars>.<region code>.cache.amazonaws.com (reader: replica.<...>).
            del out["name"]
            rid = out.setdefault("replicationGroupId", autoname(n).lower())
            assert len(rid) <= 40, f"replicationGroupId {rid!r} is longer than ElastiCache allows (40)"
            out["arn"] = _arn("elasticache", f"replicationgroup:{rid}")
            out["primaryEndpointAddress"] = f"master.{rid}.{suffix(n)[:6]}.usw2.cache.amazonaws.com"
            out["readerEndpointAddress"] = f"replica.{rid}.{suffix(n)[:6]}.usw2.cache.amazonaws.com"
            out["engineVersionActual"] = f"{out.get('engineVersion', '8.1')}.4"
        elif t == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
            del out["name"]
            rid = f"sgr-{suffix(n)}0000000000"
            out["securityGroupRuleId"] = rid
            out["arn"] = _arn("ec2", f"security-group-rule/{rid}")
        else:
            out.setdefault("arn", _arn(t.split(":")[1].split("/")[0], name))
        return [rid, out]

    NEWEST_ADDON_VERSIONS = {"vpc-cni": "v1.23.1-eksbuild.2", "kube-proxy": "v{k8s}.9-eksbuild.4",
                             "coredns": "v1.14.7-eksbuild.1", "eks-pod-identity-agent": "v1.3.12-eksbuild.1"}
    DEFAULT_ADDON_VERSIONS = {"vpc-cni": "v1.22.4-eksbuild.3", "kube-proxy": "v{k8s}.3-eksbuild.13",
                              "coredns": "v1.14.3-eksbuild.3", "eks-pod-identity-agent": "v1.3.10-eksbuild.3"}

    def _addon_version(self, a: dict) -> dict:
        """getAddonVersion (DescribeAddonVersions for one add-on and Kubernetes version): the newest build with
        `mostRecent`, else EKS's default (hashicorp/terraform-provider-aws eks/addon_version_data_source.go)."""
        table = self.newest_addon_versions if a.get("mostRecent") else self.default_addon_versions
        k8s = a.get("kubernetesVersion")
        return {"addonName": a["addonName"], "kubernetesVersion": k8s, "mostRecent": bool(a.get("mostRecent")),
                "version": table[a["addonName"]].format(k8s=k8s), "id": a["addonName"]}

    def _eks_addons(self, name: str, out: dict, cluster_name: str) -> None:
        """The Addons pulumi-eks (4.4.0, nodejs/eks/cluster/cluster.ts and addons/cni-addon.ts) registers itself:
        kube-proxy and vpc-cni unless turned off, coredns only if enabled with a default node group or explicitly;
        an option without a version is resolved with getAddonVersion(mostRecent: true) on every run."""
        wanted = []
        kp, cni, dns = (out.get(k) or {} for k in ("kubeProxyAddonOptions", "vpcCniOptions", "corednsAddonOptions"))
        if kp.get("enabled", True):
            wanted.append(("kube-proxy", f"{name}-kube-proxy", kp.get("version"), kp))
        if not out.get("useDefaultVpcCni"):
            wanted.append(("vpc-cni", f"{name}-vpc-cni", cni.get("addonVersion"), cni))
        if dns.get("enabled") is True or (not out.get("skipDefaultNodeGroup") and dns.get("enabled", True)):
            wanted.append(("coredns", f"{name}-coredns", dns.get("version"), dns))
        for addon, child, version, opts in wanted:
            if not version:
                query = {"addonName": addon, "kubernetesVersion": out.get("version", "1.35"), "mostRecent": True}
                self.provider_invokes.append(("aws:eks/getAddonVersion:getAddonVersion", query))
                version = self._addon_version(query)["version"]
            self.provider_children.append(("aws:eks/addon:Addon", child, {
                "clusterName": cluster_name, "addonName": addon, "addonVersion": version, "preserve": True,
                "resolveConflictsOnCreate": opts.get("resolveConflictsOnCreate", "OVERWRITE"),
                "resolveConflictsOnUpdate": opts.get("resolveConflictsOnUpdate", "OVERWRITE")}))

    def _stack_reference(self, args: MockResourceArgs):
        """A StackReference is read by the engine: its outputs with secret values wrapped as secrets, and their names
        in `secretOutputNames`; a stack the backend does not have is an error."""
        name = args.inputs.get("name") or args.resource_id
        if name not in self.stacks:
            raise Exception(f"unknown stack \"{name}\"")
        outputs, secret = self.stacks[name]
        wrapped = {k: {_SIG_KEY: _SECRET_SIG, "value": v} if k in secret else v for k, v in outputs.items()}
        return [name, {"name": name, "outputs": wrapped, "secretOutputNames": sorted(secret)}]

    def _eks_cluster(self, args: MockResourceArgs, out: dict):
        cluster_name = out.get("name") or f"{args.name}-eksCluster-{suffix(args.name)}"
        endpoint = "https://ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com"
        kc = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "kubernetes", "cluster": {"server": endpoint, "certificate-authority-data": "Zm9v"}}],
              "users": [{"name": "aws", "user": {"exec": {"command": "aws", "args": ["eks", "get-token", "--cluster-name", cluster_name]}}}]}
        eks_cluster = self._resource_ref(
            "eks:index:Cluster$aws:eks/cluster:Cluster", f"{args.name}-eksCluster",
            {"name": cluster_name, "arn": _arn("eks", f"cluster/{cluster_name}"), "endpoint": endpoint,
             "version": out.get("version", "1.35"), "certificateAuthority": {"data": "Zm9v"},
             "vpcConfig": {"clusterSecurityGroupId": CLUSTER_SG, "vpcId": out.get("vpcId", "vpc-123"),
                           "subnetIds": out.get("privateSubnetIds", [])},
             "accessConfig": {"authenticationMode": out.get("authenticationMode")}},
        )
        self._eks_addons(args.name, out, cluster_name)
        issuer = f"oidc.eks.{REGION}.amazonaws.com/id/ABCDEF0123456789"
        out.update({
            "kubeconfig": kc, "kubeconfigJson": json.dumps(kc), "eksCluster": eks_cluster,
            "clusterSecurityGroupId": CLUSTER_SG, "nodeSecurityGroupId": CLUSTER_SG,
            "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}", "oidcIssuer": f"https://{issuer}",
            "core": {"cluster": eks_cluster, "endpoint": endpoint, "vpcId": out.get("vpcId", "vpc-123"),
                     "subnetIds": out.get("privateSubnetIds", []), "instanceRoles": [], "nodeGroupOptions": {},
                     "kubeconfig": kc, "tags": {}, "clusterSecurityGroupId": CLUSTER_SG},
        })
        return [f"{args.name}-id", out]

    # -- invokes ------------------------------------------------------------------------------------------------
    REGION_NAMES = {"us-west-2": "US West (Oregon)", "eu-west-1": "Europe (Ireland)", "us-east-1": "US East (N. Virginia)"}
    ZONES = [
        # (name, id, zone type, opt-in status, group): us-west-2 has 4 AZs, a Local Zone (opted in) and a Wavelength
        # Zone, as DescribeAvailabilityZones with AllAvailabilityZones lists them.
        *((f"{REGION}{z}", f"usw2-az{i}", "availability-zone", "opt-in-not-required", REGION)
          for i, z in enumerate("abcd", 1)),
        (f"{REGION}-lax-1a", "usw2-lax1-az1", "local-zone", "opted-in", f"{REGION}-lax-1"),
        (f"{REGION}-wl1-sea-wlz-1", "usw2-wl1-sea-wlz1", "wavelength-zone", "opted-in", f"{REGION}-wl1"),
    ]
    OTHER_REGION_ZONES = {
        # eu-west-1 (Ireland) has three AZs and no Local or Wavelength Zone.
        "eu-west-1": [(f"eu-west-1{z}", f"euw1-az{i}", "availability-zone", "opt-in-not-required", "eu-west-1")
                      for i, z in enumerate("abc", 1)],
    }

    def _zones(self, a: dict) -> dict:
        """getAvailabilityZones with its `filters` (DescribeAvailabilityZones filter names) applied. Without filters
        and all_availability_zones, AWS returns the opted-in Local/Wavelength zones too."""
        fields = {"zone-name": 0, "zone-id": 1, "zone-type": 2, "opt-in-status": 3, "group-name": 4}
        region = configured_region()
        zones = list(self.ZONES if region == REGION else self.OTHER_REGION_ZONES[region])
        for f in a.get("filters") or []:
            zones = [z for z in zones if z[fields[f["name"]]] in f["values"]]
        return {"names": [z[0] for z in zones], "zoneIds": [z[1] for z in zones], "id": region,
                "groupNames": sorted({z[4] for z in zones})}

    def _snapshot_ids(self, a: dict) -> dict:
        """getSnapshotIds as the provider answers it: DescribeSnapshots with OwnerIds (`self` = this account) and
        filters (`tag:<key>`, `status`), sorted by StartTime newest first; no match is an empty list, not an error."""
        owners = [ACCOUNT if o == "self" else o for o in a.get("owners") or []]
        snaps = [s for s in self.snapshots if not owners or s["OwnerId"] in owners]
        for f in a.get("filters") or []:
            name, values = f["name"], f["values"]
            if name.startswith("tag:"):
                key = name[4:]
                snaps = [s for s in snaps if any(t["Key"] == key and t["Value"] in values for t in s.get("Tags", []))]
            elif name == "status":
                snaps = [s for s in snaps if s["State"] in values]
            else:
                raise AssertionError(f"getSnapshotIds filter {name!r} is not simulated")
        snaps.sort(key=lambda s: s["StartTime"], reverse=True)
        return {"ids": [s["SnapshotId"] for s in snaps], "id": REGION}

    def _snapshot(self, a: dict) -> dict:
        """getSnapshot by id as the provider answers it (DescribeSnapshots; no match is the provider's error).
        VolumeSize and Encrypted default to what `burstctl snapshot build` makes: 100 GiB, encrypted."""
        owners = [ACCOUNT if o == "self" else o for o in a.get("owners") or []]
        match = [s for s in self.snapshots if s["SnapshotId"] in (a.get("snapshotIds") or [])
                 and (not owners or s["OwnerId"] in owners)]
        if not match:
            raise Exception("Your query returned no results. Please change your search criteria and try again.")
        s = match[0]
        return {"id": s["SnapshotId"], "snapshotId": s["SnapshotId"], "volumeSize": s.get("VolumeSize", 100),
                "encrypted": s.get("Encrypted", True), "state": s["State"], "ownerId": s["OwnerId"],
                "tags": {t["Key"]: t["Value"] for t in s.get("Tags", [])}}

    ELB_ZONE_IDS = {
        # region: (Application/Classic, Network) Route 53 hosted zone ids of the load balancers' DNS names, from the
        # ELB endpoints page (docs.aws.amazon.com/general/latest/gr/elb.html) and the provider's own table
        # (hashicorp/terraform-provider-aws internal/service/elbv2/hosted_zone_id_data_source.go).
        "us-west-2": ("Z1H1FL5HABSF5", "Z18D5FSROUN65G"),
        "eu-west-1": ("Z32O12XQLNTSW2", "Z2IFOLAFXWLO4F"),
        "us-east-1": ("Z35SXDOTRQ7X7K", "Z26RNL4JYFTOTI"),
    }

    def _elb_hosted_zone_id(self, a: dict) -> dict:
        """getHostedZoneId as the provider answers it: from its table, for `region` (default: the provider's),
        `application` unless `loadBalancerType` says `network`; a region missing from the table is an error."""
        region = a.get("region") or configured_region()
        lb_type = a.get("loadBalancerType") or "application"
        if lb_type not in ("application", "network"):
            raise ProviderError("aws:lb/getHostedZoneId:getHostedZoneId",
                                f'expected load_balancer_type to be one of ["application" "network"], got {lb_type}')
        if region not in self.ELB_ZONE_IDS:
            raise ProviderError("aws:lb/getHostedZoneId:getHostedZoneId", f"unsupported AWS Region: {region}")
        zone = self.ELB_ZONE_IDS[region][lb_type == "network"]
        return {"id": zone, "region": region, "loadBalancerType": lb_type}

    HOSTED_ZONES = [
        # (id, name, private): what ListHostedZones returns for this account. A public and a private zone share the
        # name example.com, as split-horizon DNS has them.
        ("Z0123456789ABCDEFGHIJ", "example.com.", False),
        ("Z0987654321KLMNOPQRST", "example.com.", True),
        ("Z05551234INTERNAL0001", "internal.example.net.", True),
    ]

    def _route53_zone(self, a: dict) -> dict:
        """getZone as the provider answers it: by `zoneId` any zone, by `name` only zones whose privacy equals
        `privateZone` (default false); exactly one match, else the provider's error. The name comes back without
        the final dot (hashicorp/terraform-provider-aws internal/service/route53/zone_data_source.go)."""
        zones = [z for z in self.hosted_zones if (
            z[0] == a["zoneId"] if a.get("zoneId") else
            z[1].rstrip(".") == str(a.get("name", "")).rstrip(".") and z[2] == bool(a.get("privateZone")))]
        if len(zones) != 1:
            raise ProviderError("aws:route53/getZone:getZone", "no matching Route 53 Hosted Zone found" if not zones
                                else "multiple Route 53 Hosted Zones matched; use additional constraints to reduce "
                                     "matches to a single Route 53 Hosted Zone")
        zid, name, private = zones[0]
        return {"id": zid, "zoneId": zid, "name": name.rstrip("."), "privateZone": private,
                "arn": f"arn:aws:route53:::hostedzone/{zid}", "callerReference": f"ref-{suffix(zid)}",
                "comment": "", "nameServers": [] if private else [f"ns-{i}.awsdns-{i:02d}.org" for i in (1, 2)],
                "primaryNameServer": "" if private else "ns-1.awsdns-01.org", "resourceRecordSetCount": 2,
                "tags": {}}

    GATEWAY_SERVICES = ("s3", "dynamodb")
    """The AWS services a region offers as Gateway endpoints (DescribeVpcEndpointServices, service-type Gateway)."""
    INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "sts", "eks-auth", "eks", "ec2", "s3", "ssm", "sqs", "logs")
    """Some of the services a commercial region offers as Interface endpoints (the rest are not simulated)."""

    def _vpc_endpoint_service(self, a: dict) -> dict:
        """getVpcEndpointService as the provider answers it: `service` means `com.amazonaws.<provider region>.<service>`
        (hashicorp/terraform-provider-aws internal/service/ec2/vpc_endpoint_service_data_source.go), filtered by
        `serviceType`; no match is the provider's error, not an empty answer, and so is more than one: without
        `serviceType`, `s3` names both the Gateway and the Interface service and the provider refuses to pick."""
        service, stype = a.get("service"), a.get("serviceType")
        name = a.get("serviceName") or f"com.amazonaws.{REGION}.{service}"
        offered = {"Gateway": self.GATEWAY_SERVICES, "Interface": self.INTERFACE_SERVICES}
        types = [t for t, names in offered.items() if (stype is None or t == stype)
                 and name in {f"com.amazonaws.{REGION}.{s}" for s in names}]
        if not types:
            raise Exception("no matching EC2 VPC Endpoint Service found")
        if len(types) > 1:
            raise Exception("multiple EC2 VPC Endpoint Services matched; use additional constraints to reduce "
                            "matches to a single EC2 VPC Endpoint Service")
        stype = types[0]
        return {"serviceName": name, "serviceType": stype, "service": service, "owner": "amazon",
                "serviceId": f"vpce-svc-{suffix(name)}0000000000", "vpcEndpointPolicySupported": True,
                "acceptanceRequired": False, "id": suffix(name)}

    # -- an existing cluster and its VPC ---------------------------------------------------------------------------
    @staticmethod
    def existing_cluster(name: str = EXISTING_CLUSTER, version: str = "1.35", mode: str = "API_AND_CONFIG_MAP",
                         status: str = "ACTIVE") -> dict:
        """getCluster as the provider answers it (DescribeCluster flattened: lists of one block for
        accessConfig, certificateAuthority, identity.oidc)."""
        return {
            "id": name, "name": name, "arn": _arn("eks", f"cluster/{name}"), "endpoint": EXISTING_ENDPOINT,
            "version": version, "platformVersion": "eks.12", "status": status, "createdAt": "2026-03-02T09:14:00Z",
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{name}-cluster", "tags": {"team": "platform"},
            "certificateAuthorities": [{"data": EXISTING_CA}],
            "accessConfigs": [{"authenticationMode": mode, "bootstrapClusterCreatorAdminPermissions": False}],
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{REGION}.amazonaws.com/id/0123456789ABCDEF"}]}],
            "enabledClusterLogTypes": ["api", "audit"],
            "vpcConfig": {"clusterSecurityGroupId": EXISTING_CLUSTER_SG, "vpcId": EXISTING_VPC,
                          "subnetIds": [*EXISTING_PRIVATE, *EXISTING_PUBLIC], "securityGroupIds": [],
                          "endpointPrivateAccess": True, "endpointPublicAccess": True,
                          "publicAccessCidrs": ["0.0.0.0/0"]},
            "upgradePolicies": [{"supportType": "STANDARD"}],
        }

    @staticmethod
    def existing_subnets() -> dict:
        out = {}
        for i, sid in enumerate(EXISTING_PRIVATE):
            out[sid] = {"vpcId": EXISTING_VPC, "availabilityZone": f"{REGION}{'abc'[i]}", "mapPublicIpOnLaunch": False,
                        "cidrBlock": f"10.80.{32 * i}.0/19", "tags": {"karpenter.sh/discovery": EXISTING_CLUSTER,
                                                                       "kubernetes.io/role/internal-elb": "1"}}
        for i, sid in enumerate(EXISTING_PUBLIC):
            out[sid] = {"vpcId": EXISTING_VPC, "availabilityZone": f"{REGION}{'abc'[i]}",
                        "mapPublicIpOnLaunch": i < 2, "cidrBlock": f"10.80.{96 + 8 * i}.0/22",
                        "tags": {"kubernetes.io/role/elb": "1"}}
        return out

    @staticmethod
    def existing_route_tables() -> dict:
        """One route table per private subnet (NAT gateway), and the main table (internet gateway) that the public
        subnets use implicitly, as terraform-aws-modules/vpc lays a VPC out."""
        local = {"cidrBlock": EXISTING_VPC_CIDR, "gatewayId": "local"}
        out = {"rtb-0f0f0f0f0f0f0f000": {
            "vpcId": EXISTING_VPC, "routes": [local, {"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-0d0d0d0d0d0d0d0d0"}],
            "associations": [{"main": True, "routeTableAssociationId": "rtbassoc-0f00", "subnetId": "",
                              "routeTableId": "rtb-0f0f0f0f0f0f0f000"}]}}
        for i, sid in enumerate(EXISTING_PRIVATE):
            rt = f"rtb-0f0f0f0f0f0f0f00{i + 1}"
            out[rt] = {"vpcId": EXISTING_VPC,
                       "routes": [local, {"cidrBlock": "0.0.0.0/0", "natGatewayId": f"nat-0c0c0c0c0c0c0c0c{i}"}],
                       "associations": [{"main": False, "subnetId": sid, "routeTableId": rt,
                                         "routeTableAssociationId": f"rtbassoc-0f0{i + 1}"}]}
        return out

    def _matches(self, obj: dict, filters: list, what: str) -> bool:
        for f in filters or []:
            name, values = f["name"], f["values"]
            if name == "vpc-id":
                ok = obj["vpcId"] in values
            elif name.startswith("tag:"):
                ok = obj.get("tags", {}).get(name[4:]) in values
            else:
                raise AssertionError(f"{what} filter {name!r} is not simulated")
            if not ok:
                return False
        return True

    def _existing(self, tok: str, a: dict) -> Optional[dict]:
        """The invokes that read an existing cluster and its VPC; no match is the provider's error, as for real
        (hashicorp/terraform-provider-aws data sources: "couldn't find resource", "no matching ... found")."""
        if tok == "aws:eks/getCluster:getCluster":
            c = self.eks_clusters.get(a["name"])
            if c is None:
                raise ProviderError(tok, f"reading EKS Cluster ({a['name']}): couldn't find resource")
            return c
        if tok == "aws:eks/getAddon:getAddon":
            key = (a["clusterName"], a["addonName"])
            if key not in self.eks_addons:
                raise ProviderError(tok, f"reading EKS Add-On ({key[0]}:{key[1]}): couldn't find resource")
            return {"id": f"{key[0]}:{key[1]}", "addonName": key[1], "clusterName": key[0],
                    "addonVersion": self.eks_addons[key], "arn": _arn("eks", f"addon/{key[0]}/{key[1]}/x"),
                    "configurationValues": "", "serviceAccountRoleArn": "", "podIdentityAssociations": []}
        if tok == "aws:ec2/getSubnet:getSubnet":
            sn = self.subnets.get(a.get("id"))
            if sn is None:
                raise ProviderError(tok, "no matching EC2 Subnet found")
            return {"id": a["id"], "arn": _arn("ec2", f"subnet/{a['id']}"), **sn}
        if tok == "aws:ec2/getSubnets:getSubnets":
            ids = [sid for sid, sn in self.subnets.items() if self._matches(sn, a.get("filters"), "getSubnets")]
            return {"ids": ids, "id": REGION}
        if tok == "aws:ec2/getSecurityGroups:getSecurityGroups":
            ids = [g for g, sg in self.security_groups.items()
                   if self._matches(sg, a.get("filters"), "getSecurityGroups")]
            return {"ids": ids, "vpcIds": [self.security_groups[g]["vpcId"] for g in ids], "arns": [], "id": REGION}
        if tok == "aws:ec2/getRouteTables:getRouteTables":
            return {"ids": [r for r, rt in self.route_tables.items() if rt["vpcId"] == a["vpcId"]], "id": REGION}
        if tok == "aws:ec2/getRouteTable:getRouteTable":
            rt = self.route_tables.get(a.get("routeTableId"))
            if rt is None:
                raise ProviderError(tok, "query returned no results. Please change your search criteria and try again")
            return {"id": a["routeTableId"], "routeTableId": a["routeTableId"], "ownerId": ACCOUNT, **rt}
        if tok == "aws:iam/getRole:getRole":
            if a["name"] not in self.iam_roles:
                raise ProviderError(tok, f"reading IAM Role ({a['name']}): couldn't find resource")
            return {"id": a["name"], "name": a["name"], "arn": f"arn:aws:iam::{ACCOUNT}:role/{a['name']}",
                    "uniqueId": f"AROA{suffix(a['name']).upper()}", "path": "/"}
        if tok == "aws:iam/getInstanceProfile:getInstanceProfile":
            role = self.instance_profiles.get(a["name"])
            if role is None:
                raise ProviderError(tok, f"reading IAM Instance Profile ({a['name']}): couldn't find resource")
            return {"id": a["name"], "name": a["name"], "roleName": role, "path": "/",
                    "arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{a['name']}",
                    "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}
        return None

    def call(self, args: MockCallArgs):
        self.calls.append(args)
        self.resources_at_call.append(len(self.created))
        tok = args.token
        if tok == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "AIDA", "id": ACCOUNT}
        if tok == "aws:index/getRegion:getRegion":
            region = configured_region()
            return {"name": region, "region": region, "id": region, "description": self.REGION_NAMES[region]}
        if tok == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"}
        if tok == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return self._zones(args.args)
        if tok == "aws:iam/getPolicyDocument:getPolicyDocument":
            doc = {"Version": "2012-10-17", "Statement": args.args.get("statements") or []}
            return {"json": json.dumps(doc), "minifiedJson": json.dumps(doc, separators=(",", ":")), "id": "doc"}
        if tok == "aws:ec2/getVpc:getVpc":
            vid = args.args.get("id", "vpc-0existing00000000")
            return {"id": vid, "cidrBlock": self.vpcs.get(vid, "10.42.0.0/16"), "arn": _arn("ec2", f"vpc/{vid}")}
        existing = self._existing(tok, args.args)
        if existing is not None:
            return existing
        if tok == "aws:ec2/getVpcEndpointService:getVpcEndpointService":
            return self._vpc_endpoint_service(args.args)
        if tok == "aws:ebs/getSnapshotIds:getSnapshotIds":
            return self._snapshot_ids(args.args)
        if tok == "aws:ebs/getSnapshot:getSnapshot":
            return self._snapshot(args.args)
        if tok == "aws:lb/getHostedZoneId:getHostedZoneId":
            return self._elb_hosted_zone_id(args.args)
        if tok == "aws:route53/getZone:getZone":
            return self._route53_zone(args.args)
        if tok == "aws:eks/getAddonVersion:getAddonVersion":
            return self._addon_version(args.args)
        if tok == "eks:index:Cluster/getKubeconfig":
            return {"result": json.dumps({"kind": "Config", "roleArn": args.args.get("roleArn")})}
        return {}
