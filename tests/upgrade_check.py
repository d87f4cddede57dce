"""Which stateful resources an upgrade would replace or delete: two evaluations (tests/upgrade_dump.py) compared.

"Deleted": a stateful resource of the previous release whose URN no resource of the new program has, neither as its
URN nor among its aliases. "Replaced": the same resource (by URN or alias) with a change in an input that makes its
provider replace it. Which inputs do that is a property of the provider, not of this program; REPLACE_ON_CHANGE
below lists them for the stateful types, each from the provider source named beside it:

- AWS (pulumi-aws 7.x bridges hashicorp/terraform-provider-aws 6.x): the attributes marked `ForceNew` in the
  resource schema, read in internal/service/ec2/vpc_.go, ec2/vpc_subnet.go, eks/cluster.go, eks/node_group.go,
  s3/bucket.go, sqs/queue.go, logs/group.go, iam/role.go, iam/instance_profile.go, elasticache/replication_group.go
  and elasticache/subnet_group.go (6.x, aws-sdk-go-v2). (`vpc_config.subnet_ids` of an EKS cluster is updatable in
  place since provider 5.25.0; it is not listed.) A replication group is also replaced when `engine_version` goes
  down or `engine` changes other than redis -> valkey (the CustomizeDiff functions of elasticache/diff.go,
  engineVersionForceNewOnDowngrade and customizeDiffEngineForceNewOnDowngrade); `engine` is listed for any change.
- pulumi-eks components (what their inputs become; pulumi/pulumi-eks nodejs/eks/cluster/cluster.ts and
  nodejs/eks/nodes/nodegroup.ts): Cluster `name`, `serviceRole` (-> roleArn), `kubernetesServiceIpAddressRange` and
  `ipFamily` (-> kubernetesNetworkConfig); ManagedNodeGroup inputs that become node group ForceNew attributes, with
  `operatingSystem`/`gpu` deciding `amiType`, and the user-data options deciding whether a custom launch template
  (a ForceNew `launchTemplate.id`) exists at all.
- pulumi-kubernetes (provider/pkg/provider/diff.go forceNewProperties): `metadata.name` and `metadata.namespace` of
  every object; a Secret's `type`, `data` and `stringData` unless the provider enables `enableSecretMutable` (this
  program's provider does not); a PersistentVolumeClaim's accessModes, selector, storageClassName and volumeName.
- pulumi-random (hashicorp/terraform-provider-random internal/provider/resource_password.go): every attribute of
  a password requires replacement, and a new password is a new key.

A missing input and a set one differ: a name the provider generated is not kept when the program starts naming the
resource (or stops), so that counts as a change.
"""

from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    CHANGE = "change"
    """Any difference in the value (including set <-> unset)."""
    PRESENCE = "presence"
    """Only set <-> unset (e.g. an option whose presence creates a launch template; its content only versions it)."""
    REMOVAL = "removal"
    """Only set -> unset (e.g. EKS envelope encryption cannot be turned off in place)."""
    DOWNGRADE = "downgrade"
    """Only a lower dotted version, both set (e.g. an ElastiCache engine version: upgrades happen in place)."""


ALL = "*"
"""Every input."""

_C, _P, _R, _D = Mode.CHANGE, Mode.PRESENCE, Mode.REMOVAL, Mode.DOWNGRADE

REPLACE_ON_CHANGE: dict[str, tuple[tuple[str, Mode], ...]] = {
    # Network
    "aws:ec2/vpc:Vpc": (("cidrBlock", _C), ("ipv4IpamPoolId", _C), ("ipv4NetmaskLength", _C)),
    "aws:ec2/subnet:Subnet": (
        ("vpcId", _C), ("cidrBlock", _C), ("availabilityZone", _C), ("availabilityZoneId", _C), ("outpostArn", _C),
        ("ipv4IpamPoolId", _C), ("ipv4NetmaskLength", _C), ("ipv6IpamPoolId", _C), ("ipv6Native", _C),
        ("ipv6NetmaskLength", _C)),
    # EKS: the pulumi-eks components this program uses, and the plain AWS resources should a release switch to them
    "eks:index:Cluster": (
        ("name", _C), ("serviceRole", _C), ("kubernetesServiceIpAddressRange", _C), ("ipFamily", _C),
        ("encryptionConfigKeyArn", _R)),
    "eks:index:ManagedNodeGroup": (
        ("clusterName", _C), ("nodeGroupName", _C), ("nodeGroupNamePrefix", _C), ("nodeRole", _C),
        ("nodeRoleArn", _C), ("subnetIds", _C), ("amiType", _C), ("operatingSystem", _C), ("gpu", _C),
        ("capacityType", _C), ("diskSize", _C), ("instanceTypes", _C), ("remoteAccess", _C), ("launchTemplate", _C),
        ("amiId", _P), ("userData", _P), ("enableIMDSv2", _P), ("enableEfaSupport", _P), ("kubeletExtraArgs", _P),
        ("bootstrapExtraArgs", _P), ("bottlerocketSettings", _P), ("nodeadmExtraOptions", _P)),
    "aws:eks/cluster:Cluster": (
        ("name", _C), ("roleArn", _C), ("bootstrapSelfManagedAddons", _C),
        ("accessConfig.bootstrapClusterCreatorAdminPermissions", _C), ("kubernetesNetworkConfig.ipFamily", _C),
        ("kubernetesNetworkConfig.serviceIpv4Cidr", _C), ("outpostConfig", _C), ("remoteNetworkConfig", _C),
        ("encryptionConfig", _R)),
    "aws:eks/nodeGroup:NodeGroup": (
        ("clusterName", _C), ("nodeGroupName", _C), ("nodeGroupNamePrefix", _C), ("nodeRoleArn", _C),
        ("subnetIds", _C), ("amiType", _C), ("capacityType", _C), ("diskSize", _C), ("instanceTypes", _C),
        ("remoteAccess", _C), ("launchTemplate.id", _C), ("launchTemplate.name", _C)),
    # Storage and queues
    "aws:s3/bucket:Bucket": (("bucket", _C), ("bucketPrefix", _C), ("objectLockEnabled", _C)),
    "aws:s3/bucketV2:BucketV2": (("bucket", _C), ("bucketPrefix", _C), ("objectLockEnabled", _C)),
    "aws:sqs/queue:Queue": (("name", _C), ("namePrefix", _C), ("fifoQueue", _C)),
    "aws:cloudwatch/logGroup:LogGroup": (("name", _C), ("namePrefix", _C), ("logGroupClass", _C)),
    # The rate-limit Redis (token budgets): a new group is a new endpoint and empty counters, after 10+ minutes
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        ("replicationGroupId", _C), ("engine", _C), ("engineVersion", _D), ("port", _C), ("subnetGroupName", _C),
        ("atRestEncryptionEnabled", _C), ("kmsKeyId", _C), ("dataTieringEnabled", _C), ("networkType", _C),
        ("globalReplicationGroupId", _C), ("securityGroupNames", _C), ("snapshotArns", _C), ("snapshotName", _C),
        ("nodeGroupConfigurations", _C)),
    "aws:elasticache/subnetGroup:SubnetGroup": (("name", _C),),
    # Identities other resources and controllers refer to by name or ARN
    "aws:iam/role:Role": (("name", _C), ("namePrefix", _C), ("path", _C)),
    "aws:iam/instanceProfile:InstanceProfile": (("name", _C), ("namePrefix", _C), ("path", _C)),
    # Keys and what holds them
    "kubernetes:core/v1:Namespace": (("metadata.name", _C),),
    "kubernetes:core/v1:Secret": (
        ("metadata.name", _C), ("metadata.namespace", _C), ("type", _C), ("data", _C), ("stringData", _C)),
    "kubernetes:core/v1:PersistentVolumeClaim": (
        ("metadata.name", _C), ("metadata.namespace", _C), ("spec.accessModes", _C), ("spec.selector", _C),
        ("spec.storageClassName", _C), ("spec.volumeName", _C)),
    "random:index/randomPassword:RandomPassword": ((ALL, _C),),
}
"""Stateful resource type -> the inputs whose change makes the provider replace it (sources in the module doc)."""

NOT_STATEFUL: dict[str, str] = {
    **dict.fromkeys((
        "aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip",
        "aws:ec2/routeTable:RouteTable", "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:ec2/tag:Tag", "aws:ec2/securityGroup:SecurityGroup",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"),
        "network plumbing: recreated from config; nothing outside the stack allow-lists the NAT addresses"),
    **dict.fromkeys((
        "aws:eks/accessEntry:AccessEntry", "aws:eks/addon:Addon", "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:sqs/queuePolicy:QueuePolicy", "aws:cloudwatch/eventRule:EventRule",
        "aws:cloudwatch/eventTarget:EventTarget"),
        "permissions and wiring, recreated from config (the roles and queues they attach to are stateful)"),
    **dict.fromkeys((
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"),
        "settings of a bucket; the bucket and its objects are the state"),
    **dict.fromkeys((
        "aws:route53/record:Record", "aws:route53/healthCheck:HealthCheck"),
        "the regional entry of the global name, recreated from the NLB's current address"),
    **dict.fromkeys((
        "tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert",
        "tls:index/certRequest:CertRequest", "tls:index/locallySignedCert:LocallySignedCert"),
        "the in-cluster Redis' own CA and server certificate: a new pair reaches the server and the edge in the "
        "same update, and the counters it protects are disposable"),
}
"""Types of other providers (not Kubernetes) the program registers that a replacement does not lose state of, each
with the reason. `classify` fails on a type in neither table, so a new type is judged when it is added."""

KUBERNETES_NOT_STATEFUL_REASON = ("Kubernetes objects other than those in REPLACE_ON_CHANGE are rendered from config "
                                  "and the charts; what they hold that a replacement would lose lives in Secrets")


def classify(types: set[str]) -> dict[str, str]:
    """Each resource type -> "stateful", the reason it is not, or "unclassified" when neither table knows it.
    Kubernetes types are stateless unless listed as stateful."""
    out = {}
    for t in sorted(types):
        if t in REPLACE_ON_CHANGE:
            out[t] = "stateful"
        elif t in NOT_STATEFUL:
            out[t] = NOT_STATEFUL[t]
        elif t.startswith("kubernetes:"):
            out[t] = KUBERNETES_NOT_STATEFUL_REASON
        else:
            out[t] = "unclassified"
    return out

VARIANTS: dict[str, tuple[str, str, dict]] = {
    "prod-budget": ("prod", "0.2.0", {"gpu-burst:gateway": {"keys": {"default": {"tokensPerMinute": 20000}}}}),
    "dev-budget": ("dev", "0.2.0", {"gpu-burst:gateway": {"keys": {"default": {"tokensPerDay": 100000}}}}),
}
"""Stack-file variants evaluated next to the stack files: name -> (stack file, first release that accepts the keys,
config merged into it). A token budget creates the rate-limit Redis (ElastiCache outside dev, one Valkey pod with its
Secrets in dev), which no stack file has; the upgrade test compares them once the previous release is `since` or
newer."""


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def variants_for(previous_release: str) -> dict[str, tuple[str, dict]]:
    """The variants both the previous release and this tree accept: name -> (stack file, config patch)."""
    return {name: (stack, patch) for name, (stack, since, patch) in VARIANTS.items()
            if _version(previous_release) >= _version(since)}


def with_patch(config: dict, patch: dict) -> dict:
    """A stack file's config with `patch` merged in (mappings deeply, other values replaced)."""
    out = dict(config)
    for key, value in patch.items():
        out[key] = with_patch(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


SNAPSHOT_KEY = "snapshot-tags::gpu.dataVolumeSnapshotId"
"""The migration key for a change in how `dataVolumeSnapshotId: auto` finds its snapshot (not a Pulumi resource:
the snapshots are built by `burstctl snapshot build` and found by their tags)."""

_MISSING = object()


@dataclass(frozen=True)
class Finding:
    stack: str
    verb: str
    """replaced | deleted"""
    type: str
    name: str
    urn: str
    detail: str

    @property
    def key(self) -> str:
        """How the changelog's Migrations list names it."""
        return f"{self.type}::{self.name}"

    def __str__(self) -> str:
        return f"{self.stack}: {self.key} would be {self.verb} ({self.detail}; {self.urn})"


def _get(inputs: dict, path: str):
    node = inputs
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _show(v) -> str:
    return "unset" if v is _MISSING else repr(v)


def _lower_version(new, old) -> bool:
    """Whether dotted version `new` is below `old` (both set; anything not dotted digits counts as a change)."""
    if new is _MISSING or old is _MISSING:
        return False
    try:
        return tuple(int(p) for p in str(new).split(".")) < tuple(int(p) for p in str(old).split("."))
    except ValueError:
        return True


def replacing_changes(type_: str, old: dict, new: dict) -> list[str]:
    """The replace-on-change inputs of a stateful type that differ between two registrations of one resource."""
    rules = list(REPLACE_ON_CHANGE.get(type_, ()))
    # Options of the new program force replacement too: replaceOnChanges paths, and a changed replacementTrigger.
    rules += [(p, Mode.CHANGE) for p in new.get("replaceOnChanges") or []]
    changes = []
    if (old.get("replacementTrigger") or new.get("replacementTrigger")) and \
            old.get("replacementTrigger") != new.get("replacementTrigger"):
        changes.append("replacementTrigger changed")
    for path, mode in rules:
        if path == ALL:
            if old["inputs"] != new["inputs"]:
                changes.append(f"inputs {old['inputs']!r} -> {new['inputs']!r} (every input replaces)")
            continue
        a, b = _get(old["inputs"], path), _get(new["inputs"], path)
        if a == b:
            continue
        if mode is Mode.PRESENCE and (a is _MISSING) == (b is _MISSING):
            continue
        if mode is Mode.REMOVAL and not (a is not _MISSING and b is _MISSING):
            continue
        if mode is Mode.DOWNGRADE and not _lower_version(b, a):
            continue
        changes.append(f"{path}: {_show(a)} -> {_show(b)}")
    return changes


def compare(stack: str, old: dict, new: dict) -> list[Finding]:
    """Findings for one stack: `old`/`new` are tests/upgrade_dump.py's per-stack output."""
    new_by_urn = dict(new["resources"])
    by_alias: dict[str, str] = {}
    for urn, res in new["resources"].items():
        for alias in res.get("aliases") or []:
            by_alias.setdefault(alias, urn)
    findings = []
    for urn, res in old["resources"].items():
        if res["type"] not in REPLACE_ON_CHANGE:
            continue
        match = urn if urn in new_by_urn else by_alias.get(urn)
        if match is None:
            findings.append(Finding(stack, "deleted", res["type"], res["name"], urn,
                                    "no resource of the new program has this URN or an alias to it"))
            continue
        changes = replacing_changes(res["type"], res, new_by_urn[match])
        if changes:
            findings.append(Finding(stack, "replaced", res["type"], res["name"], urn, "; ".join(changes)))
    findings += snapshot_findings(stack, old.get("snapshotLookups") or [], new.get("snapshotLookups") or [])
    return findings


def _snapshot_tags(lookup: dict) -> tuple[dict[str, str], list]:
    """The tags a snapshot found by `lookup` carries (the first value of each tag filter) and its owners."""
    tags = {f["name"][4:]: f["values"][0] for f in lookup.get("filters") or [] if f["name"].startswith("tag:")}
    return tags, sorted(lookup.get("owners") or [])


def _finds(lookup: dict, tags: dict[str, str], owners: list) -> bool:
    if sorted(lookup.get("owners") or []) != owners:
        return False
    for f in lookup.get("filters") or []:
        if f["name"].startswith("tag:"):
            if tags.get(f["name"][4:]) not in f["values"]:
                return False
        elif f["name"] == "status":
            if "completed" not in f["values"]:
                return False
        else:
            return False
    return True


def snapshot_findings(stack: str, old_lookups: list[dict], new_lookups: list[dict]) -> list[Finding]:
    """A snapshot the previous release's `auto` lookup would find (a completed one with its tags) must still be found:
    otherwise nodes silently stop restoring the pre-loaded volume until `burstctl snapshot build` runs again."""
    type_, name = SNAPSHOT_KEY.split("::")
    out = []
    for lookup in old_lookups:
        tags, owners = _snapshot_tags(lookup)
        if not any(_finds(n, tags, owners) for n in new_lookups):
            out.append(Finding(stack, "replaced", type_, name, "(no URN: found by tags)",
                               f"a snapshot tagged {tags} by the previous release is no longer found by the new "
                               f"lookups {new_lookups}"))
    return out


def undocumented(findings: list[Finding], migrations: dict[str, str]) -> list[Finding]:
    """Findings the changelog's Migrations lists do not name (with the same verb)."""
    return [f for f in findings if migrations.get(f.key) != f.verb]


def stateful_types(dump: dict) -> set[str]:
    return {r["type"] for r in dump["resources"].values() if r["type"] in REPLACE_ON_CHANGE}
