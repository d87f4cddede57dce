"""`preflight`: AWS checks that catch, before `pulumi up`, what would make GPU nodes never appear.

* GPU vCPU quotas (Service Quotas) against what the pools may launch (each pool's cpuLimit, per instance class
  and capacity type; a time-sliced pool's instances count the same, the detail says how many slices they serve);
* the pools' instance families offered in the stack's availability zones;
* the pinned GPU AMI alias resolves (its public SSM parameter exists for the cluster version and region);
* every pinned EKS add-on build exists for the cluster version in the region (eks:DescribeAddonVersions);
* the EC2 Spot service-linked role when a pool uses spot;
* the pre-loaded data-volume snapshot (`gpu.dataVolumeSnapshotId`): a `snap-` id is completed, `auto` has one;
* the caller, who becomes a cluster admin by creating the cluster, is not listed again as an access entry;
* with `gateway.globalDns`: the certificate names the global record and is issued, the hosted zone is public, and
  no record of another kind holds the name;
* after deploy: subnets and security groups carry the Karpenter discovery tag;
* an existing cluster (`cluster.mode: existing`): it exists, is ACTIVE, runs a supported Kubernetes version (which
  the AMI check then uses) and takes access entries when the stack installs Karpenter; with `--cluster`, what is
  installed inside it (burstctl.preflight_cluster).

It validates the stack file with the program's own typed config (`stacks.config.validate`), so a config the
program would reject is rejected here the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from burstctl import aws
from burstctl.output import BadInput, Check, CheckError


# (instance class, capacity type) -> (quota code, quota name); all in the "ec2" service and counted in vCPUs.
QUOTAS: dict[tuple[str, str], tuple[str, str]] = {
    ("G", "on-demand"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("P", "on-demand"): ("L-417A185B", "Running On-Demand P instances"),
    ("G", "spot"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("P", "spot"): ("L-7212CCBC", "All P Spot Instance Requests"),
}
SPOT_ROLE = "AWSServiceRoleForEC2Spot"
DISCOVERY_TAG = "karpenter.sh/discovery"


def family_class(family: str) -> str:
    """Which quota bucket an instance family counts against: G (g4dn, g5, g6, g6e, gr6...) or P (p4d, p5...)."""
    return "P" if family.startswith("p") else "G"


# -- the stack file --------------------------------------------------------------------------------------------
@dataclass
class StackFile:
    """A stack file read for preflight: the validated config and what preflight could not know from it."""

    config: Any
    notes: list[Check]


def read_stack_file(path: Path) -> dict[str, Any]:
    """The raw dict `stacks.config.validate` takes, read the way the program reads its config
    (`stacks.config.raw_from_values`: `gpu-burst:*` keys, JSON strings decoded, `aws:region`; secret values are
    never read, `hfToken` only sets `hfTokenSet`)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"--stack-file: cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise BadInput(f"--stack-file: {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    config = (doc or {}).get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise BadInput(f"--stack-file: {path} has no `config:` mapping; expected a Pulumi.<stack>.yaml file")
    from burstctl.program import stack_config  # the program's own loader (imports pulumi: keep it lazy)

    raw, problems = stack_config().raw_from_values(config)
    if problems:
        raise BadInput(f"--stack-file: {path} is not a valid stack configuration:\n  " + "\n  ".join(problems))
    raw.setdefault("region", "")
    return raw


def load_stack(path: Path, region: Optional[str] = None) -> Any:
    """Validated :class:`stacks.config.StackConfig` for the stack file (``--region`` overrides ``aws:region``)."""
    return load_stack_file(path, region).config


def load_stack_file(path: Path, region: Optional[str] = None) -> StackFile:
    """Like :func:`load_stack`, plus notes. Preflight needs no secret, so a stack file whose secrets are not set yet
    (a fresh clone, before `pulumi config set --secret hfToken`) is checked as if they were, with a warning."""
    raw = read_stack_file(path)
    if region:
        raw["region"] = region
    if not raw["region"]:
        raise BadInput(f"--stack-file: {path} sets no aws:region; set it there or pass --region")
    notes: list[Check] = []
    if not raw.get("hfTokenSet"):
        raw["hfTokenSet"] = True
        from burstctl.program import stack_config
        config_problems = stack_config().problems

        if not config_problems({**raw, "hfTokenSet": True}) and config_problems({**raw, "hfTokenSet": False}):
            notes.append(Check("hf token", "warn", f"{path.name} sets no gpu-burst:hfToken, which a gated model "
                               "needs; preflight does not need it, `pulumi up` will",
                               "pulumi config set --secret hfToken <token>"))
    from burstctl.program import stack_config  # the program's own model (imports pulumi: keep it lazy)
    ConfigError, validate = stack_config().ConfigError, stack_config().validate

    try:
        return StackFile(validate(raw), notes)
    except ConfigError as e:
        raise BadInput(f"--stack-file: {path} is not a valid stack configuration:\n  " + "\n  ".join(e.lines)) \
            from None


# -- AWS -------------------------------------------------------------------------------------------------------
@dataclass
class AwsClients:
    """The clients preflight needs; tests inject moto-backed or stubbed ones."""

    ec2: Any
    iam: Any
    quotas: Any
    region: str
    ssm: Any
    sts: Any = None
    """The caller (the cluster creator check) and, for `gpu.dataVolumeSnapshotId: auto`, its account."""
    eks: Any = None
    """The published add-on builds (DescribeAddonVersions)."""
    acm: Any = None
    """The gateway's certificate (DescribeCertificate), for `gateway.globalDns`."""
    route53: Any = None
    """The hosted zone and the records of the global name, for `gateway.globalDns`."""


def make_clients(region: str, profile: Optional[str] = None, timeout: Optional[float] = None) -> AwsClients:
    s, config = aws.session(region, profile), aws.client_config(timeout)
    return AwsClients(s.client("ec2", config=config), s.client("iam", config=config),
                      s.client("service-quotas", config=config), region, s.client("ssm", config=config),
                      s.client("sts", config=config), s.client("eks", config=config),
                      s.client("acm", config=config), s.client("route53", config=config))


def vcpu_needs(cfg: Any) -> dict[tuple[str, str], tuple[int, list[str]]]:
    """vCPUs each (class, capacity type) bucket may need: the sum of cpuLimit over the pools that can use it.

    A pool with both capacity types, or both G and P families, may put its whole cpuLimit in any one bucket, so
    it counts in full against each.
    """
    needs: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for pool in cfg.gpu.pools:
        classes = sorted({family_class(f) for f in pool.instance_families})
        for cap in pool.capacity_types:
            for cls in classes:
                total, names = needs.get((cls, cap.value), (0, []))
                needs[(cls, cap.value)] = (total + pool.cpu_limit, names + [pool.name])
    return needs


def _with_slices(cfg: Any, pools: list[str]) -> list[str]:
    """Pool names, a time-sliced one with what its GPUs serve: the quota counts instances' vCPUs, which slicing does
    not change, but each GPU then carries timeSlicing replicas."""
    by_name = {p.name: p for p in cfg.gpu.pools}
    return [f"{n} ({by_name[n].gpu_limit} GPUs x {by_name[n].time_slicing} slices)" if by_name[n].time_slicing else n
            for n in pools]


def check_quotas(clients: AwsClients, cfg: Any) -> list[Check]:
    from botocore.exceptions import ClientError

    checks = []
    for (cls, cap), (need, pools) in sorted(vcpu_needs(cfg).items()):
        code, qname = QUOTAS[(cls, cap)]
        name = f"quota {code}"
        try:
            try:
                value = clients.quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
            except ClientError as e:
                if aws.error_code(e) != "NoSuchResourceException":
                    raise
                # Never changed in this account: the AWS default applies.
                value = clients.quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        except ClientError as e:
            what, todo = aws.explain(e, "servicequotas:GetServiceQuota and servicequotas:GetAWSDefaultServiceQuota")
            checks.append(Check(name, "fail", f"{qname}: cannot read the quota ({what})", todo))
            continue
        have = int(value)
        detail = f"{qname}: {have} vCPUs, pools {', '.join(_with_slices(cfg, pools))} may use {need}"
        data = {"quota_code": code, "value": have, "needed": need, "pools": pools, "capacity_type": cap}
        sliced = {p.name: p.time_slicing for p in cfg.gpu.pools if p.name in pools and p.time_slicing}
        if sliced:
            data["time_slicing"] = sliced
        if have >= need:
            checks.append(Check(name, "pass", detail, data=data))
        else:
            hint = "no GPU node can launch" if have == 0 else f"only {have} of {need} vCPUs can run at once"
            checks.append(Check(name, "fail", f"{detail} ({hint})",
                                f"request an increase: aws service-quotas request-service-quota-increase "
                                f"--service-code ec2 --quota-code {code} --desired-value {need} --region "
                                f"{clients.region}; or lower cpuLimit of {', '.join(pools)}", data))
    return checks


def stack_azs(clients: AwsClients, cfg: Any) -> list[str]:
    """AZs the stack's nodes can use: those of the existing private subnets, or the first azCount of the region; on
    an existing cluster, those of the subnets its GPU nodes select (discovery tag, configured, or the cluster's)."""
    if cfg.existing_cluster and cfg.network.mode.value != "existing":
        vpc = clients.eks.describe_cluster(name=cfg.cluster.name)["cluster"]["resourcesVpcConfig"]
        if cfg.karpenter.discovery_tag:
            flt = [{"Name": "vpc-id", "Values": [vpc["vpcId"]]},
                   {"Name": f"tag:{DISCOVERY_TAG}", "Values": [cfg.karpenter.discovery_tag]}]
            subnets = clients.ec2.describe_subnets(Filters=flt)["Subnets"]
        else:
            subnets = clients.ec2.describe_subnets(SubnetIds=list(vpc["subnetIds"]))["Subnets"]
        return sorted({s["AvailabilityZone"] for s in subnets})
    if cfg.network.mode.value == "existing":
        subnets = clients.ec2.describe_subnets(SubnetIds=list(cfg.network.private_subnet_ids))["Subnets"]
        return sorted({s["AvailabilityZone"] for s in subnets})
    zones = clients.ec2.describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
    )["AvailabilityZones"]
    return sorted(z["ZoneName"] for z in zones)[: cfg.network.az_count]


def check_offerings(clients: AwsClients, cfg: Any) -> list[Check]:
    from botocore.exceptions import ClientError

    families: dict[str, list[str]] = {}
    for pool in cfg.gpu.pools:
        for fam in pool.instance_families:
            families.setdefault(fam, []).append(pool.name)
    try:
        azs = stack_azs(clients, cfg)
        offered: dict[str, set[str]] = {}
        # No instance-type filter: wildcard filters are not honoured everywhere (moto), and a region has only a
        # few thousand offerings, i.e. a handful of pages.
        for page in clients.ec2.get_paginator("describe_instance_type_offerings").paginate(
                LocationType="availability-zone"):
            for o in page["InstanceTypeOfferings"]:
                offered.setdefault(o["InstanceType"].split(".")[0], set()).add(o["Location"])
    except ClientError as e:
        what, todo = aws.explain(e, "ec2:DescribeInstanceTypeOfferings, ec2:DescribeAvailabilityZones, "
                                    "ec2:DescribeSubnets")
        return [Check("instance offerings", "fail", f"cannot list instance type offerings ({what})", todo)]
    checks = []
    for fam, pools in sorted(families.items()):
        where = sorted(offered.get(fam, set()) & set(azs))
        where_text = "all stack AZs" if where == azs else (", ".join(where) or "none") + " of the stack AZs"
        detail = f"{fam} (pools {', '.join(pools)}): offered in {where_text} ({', '.join(azs)})"
        data = {"family": fam, "azs": where, "stack_azs": azs}
        if not where:
            checks.append(Check(f"family {fam}", "fail", detail,
                                f"{fam} is not offered in the stack's AZs of {clients.region}: remove it from "
                                f"instanceFamilies of {', '.join(pools)} or pick a region that has it", data))
        elif len(where) < len(azs):
            checks.append(Check(f"family {fam}", "warn", detail,
                                "Karpenter can only place these nodes in the listed AZs; capacity there is all "
                                "the pool gets", data))
        else:
            checks.append(Check(f"family {fam}", "pass", detail, data=data))
    return checks


def check_spot_role(clients: AwsClients, cfg: Any) -> list[Check]:
    from botocore.exceptions import ClientError

    spot = [p.name for p in cfg.gpu.pools if any(c.value == "spot" for c in p.capacity_types)]
    if not spot:
        return [Check("spot service-linked role", "skip", "no pool uses spot")]
    try:
        clients.iam.get_role(RoleName=SPOT_ROLE)
        return [Check("spot service-linked role", "pass", f"{SPOT_ROLE} exists (spot pools: {', '.join(spot)})")]
    except ClientError as e:
        if aws.error_code(e) != "NoSuchEntity":
            what, todo = aws.explain(e, "iam:GetRole")
            return [Check("spot service-linked role", "fail", f"cannot read role {SPOT_ROLE} ({what})", todo)]
    if cfg.karpenter.create_spot_service_linked_role:
        return [Check("spot service-linked role", "pass", f"{SPOT_ROLE} missing; the stack creates it "
                      "(karpenter.createSpotServiceLinkedRole)")]
    return [Check("spot service-linked role", "fail", f"{SPOT_ROLE} missing; spot pools {', '.join(spot)} "
                  "cannot launch", "run `aws iam create-service-linked-role --aws-service-name spot.amazonaws.com` "
                  "or set gpu-burst:karpenter.createSpotServiceLinkedRole: true")]


def family_arch(family: str) -> str:
    """EC2 architecture of an instance family: Graviton families carry a `g` after the generation (g5g)."""
    return "arm64" if re.fullmatch(r"[a-z]+\d+[a-z]*g[a-z]*", family) else "x86_64"


def ami_parameter(family: str, version: str, k8s: str, arch: str) -> str:
    """The public SSM parameter Karpenter resolves an EC2NodeClass `amiSelectorTerms: [{alias: <family>@<version>}]`
    to for NVIDIA nodes (aws/karpenter-provider-aws@v1.14.1 pkg/providers/amifamily/al2023.go resolvePath and
    bottlerocket.go DescribeImageQuery)."""
    if family == "bottlerocket":
        # bottlerocket.go: strings.TrimLeft(amiVersion, "v"); `latest` stays `latest`.
        return f"/aws/service/bottlerocket/aws-k8s-{k8s}-nvidia/{arch}/{version.lstrip('v')}/image_id"
    name = "recommended" if version == "latest" else f"amazon-eks-node-al2023-{arch}-nvidia-{k8s}-{version}"
    return f"/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/nvidia/{name}/image_id"


def _ami_listing(family: str, k8s: str, arch: str) -> str:
    path = (f"/aws/service/bottlerocket/aws-k8s-{k8s}-nvidia/{arch}" if family == "bottlerocket"
            else f"/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/nvidia")
    return f"aws ssm get-parameters-by-path --path {path} --recursive --query 'Parameters[].Name'"


def check_ami(clients: AwsClients, cfg: Any) -> list[Check]:
    """The pinned AMI alias exists for the cluster version in this region, for every GPU pool's architecture.
    Karpenter ignores an alias it cannot resolve; the EC2NodeClass then reports no AMI and nothing launches."""
    from botocore.exceptions import ClientError

    family, version, k8s = cfg.gpu.ami_family.value, cfg.gpu.ami_version, cfg.cluster.kubernetes_version
    by_path: dict[str, tuple[str, list[str]]] = {}
    for pool in cfg.gpu.pools:
        for arch in sorted({family_arch(f) for f in pool.instance_families}):
            path = ami_parameter(family, version, k8s, arch)
            by_path.setdefault(path, (arch, []))[1].append(pool.name)
    checks = []
    for path, (arch, pools) in by_path.items():
        alias = f"{family}@{version}"
        name = f"ami {alias} {arch}"
        data = {"alias": alias, "kubernetes": k8s, "parameter": path, "pools": pools}
        try:
            image = clients.ssm.get_parameter(Name=path)["Parameter"]["Value"]
        except ClientError as e:
            if aws.error_code(e) == "ParameterNotFound":
                checks.append(Check(name, "fail", f"{alias} does not exist for Kubernetes {k8s} ({arch}) in "
                                    f"{clients.region}: no SSM parameter {path} (pools {', '.join(pools)})",
                                    f"no GPU node of these pools can launch (Karpenter finds no AMI for the alias); "
                                    f"set gpu-burst:gpu.amiVersion to a release that exists: {_ami_listing(family, k8s, arch)} "
                                    f"--region {clients.region}", data))
            else:
                what, todo = aws.explain(e, "ssm:GetParameter on the public /aws/service/* parameters")
                checks.append(Check(name, "fail", f"cannot resolve {alias} ({what})", todo, data))
            continue
        checks.append(Check(name, "pass", f"{alias} for Kubernetes {k8s} is {image} (pools {', '.join(pools)})",
                            data={**data, "image_id": image}))
    return checks


def _build_key(version: str) -> tuple[int, ...]:
    """`v1.22.4-eksbuild.3` -> (1, 22, 4, 3), for picking the newest build."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def published_builds(clients: AwsClients, addon: str, k8s: str) -> tuple[list[str], Optional[str]]:
    """The builds of `addon` EKS offers for Kubernetes `k8s` in the region, and its default among them."""
    builds, default = [], None
    for page in clients.eks.get_paginator("describe_addon_versions").paginate(addonName=addon, kubernetesVersion=k8s):
        for info in page.get("addons", []):
            if info.get("addonName") != addon:
                continue
            for v in info.get("addonVersions", []):
                compat = [c for c in v.get("compatibilities", []) if c.get("clusterVersion") == k8s]
                if compat:
                    builds.append(v["addonVersion"])
                    if any(c.get("defaultVersion") for c in compat):
                        default = v["addonVersion"]
    return builds, default


def check_addon_versions(clients: AwsClients, cfg: Any) -> list[Check]:
    """Every pinned add-on build exists for the cluster version here: EKS refuses one it does not list ("Addon
    version specified is not supported") and `pulumi up` stops half way. The defaults come from AWS's documentation
    tables, which name a build as it is published; this asks the API of the stack's region."""
    from botocore.exceptions import ClientError

    if clients.eks is None:
        return [Check("eks add-ons", "skip", "no EKS client")]
    if cfg.existing_cluster:
        return [Check("eks add-ons", "skip", "an existing cluster's add-ons are its owner's")]
    k8s, checks = cfg.cluster.kubernetes_version, []
    for addon, pinned in cfg.cluster.eks_addon_versions.items():
        name = f"addon {addon}"
        try:
            builds, default = published_builds(clients, addon, k8s)
        except ClientError as e:
            what, todo = aws.explain(e, "eks:DescribeAddonVersions")
            checks.append(Check(name, "fail", f"cannot list the {addon} builds ({what})", todo))
            continue
        newest = max(builds, key=_build_key) if builds else None
        data = {"addon": addon, "kubernetes": k8s, "version": pinned, "default": default, "newest": newest}
        listing = f"aws eks describe-addon-versions --addon-name {addon} --kubernetes-version {k8s} --region " \
                  f"{clients.region}"
        if pinned in builds:
            checks.append(Check(name, "pass", f"{pinned} is published for Kubernetes {k8s} (EKS default "
                                f"{default or 'none'}, newest {newest})", data=data))
        elif not builds:
            checks.append(Check(name, "fail", f"EKS offers no {addon} build for Kubernetes {k8s} in {clients.region}",
                                f"`pulumi up` cannot create the add-on; check the region and {listing}", data))
        else:
            suggest = default or newest
            checks.append(Check(name, "fail", f"{pinned} is not published for Kubernetes {k8s} in {clients.region} "
                                f"(EKS default {default or 'none'}, newest {newest})",
                                f"EKS refuses it, so `pulumi up` fails: pulumi config set --path "
                                f"'cluster.addonVersions.{addon}' {suggest}, or another of {listing}", data))
    return checks


def check_cluster_creator(clients: AwsClients, cfg: Any) -> list[Check]:
    """The caller is not listed as an access entry too. pulumi-eks creates the cluster (authentication mode API) with
    bootstrapClusterCreatorAdminPermissions, so EKS gives its creator an access entry with AmazonEKSClusterAdminPolicy;
    a second entry for the same principal is refused (409 ResourceInUseException) and `pulumi up` stops."""
    from botocore.exceptions import ClientError

    from burstctl.program import stack_config

    name = "cluster creator"
    if cfg.existing_cluster:
        return [Check(name, "skip", "the stack creates no cluster and no access entry for people")]
    if clients.sts is None:
        return [Check(name, "skip", "no STS client")]
    try:
        caller = clients.sts.get_caller_identity()["Arn"]
    except ClientError as e:
        what, todo = aws.explain(e, "sts:GetCallerIdentity")
        return [Check(name, "fail", f"cannot tell who these credentials are ({what})", todo)]
    sc = stack_config()
    principal = sc.access_entry_principal(caller)
    listed = [(f"cluster.adminPrincipalArns[{i}]", arn) for i, arn in enumerate(cfg.cluster.admin_principal_arns)]
    listed += [(f"cluster.accessEntries[{i}].principalArn", e.principal_arn)
               for i, e in enumerate(cfg.cluster.access_entries)]
    dup = [(key, arn) for key, arn in listed if principal and sc.same_principal(arn, principal)]
    data = {"caller": caller, "principal": principal, "listed_as": [key for key, _ in dup]}
    if principal is None:
        return [Check(name, "pass", f"the caller {caller} is no IAM role or user, so no access entry can list it",
                      data=data)]
    account, kind_name = principal.split(":", 5)[4:]
    kind, _, who = kind_name.partition("/")
    who = f"{kind} {who.rsplit('/', 1)[-1]} of {account}"
    if not dup:
        return [Check(name, "pass", f"the caller, {who}, is not in adminPrincipalArns or accessEntries (creating the "
                      "cluster makes it an admin)", data=data)]
    keys = ", ".join(f"gpu-burst:{key}" for key, _ in dup)
    return [Check(name, "fail", f"the caller, {who}, is also {keys}: a cluster it creates already gives it "
                  "AmazonEKSClusterAdminPolicy, and EKS refuses a second access entry for one principal "
                  "(ResourceInUseException), so `pulumi up` fails",
                  f"remove {keys} (the creator stays an admin), or run `pulumi up` and this check with the "
                  "credentials that will create the cluster", data)]


def _too_big(cfg: Any, snap: dict, what: str) -> Optional[Check]:
    """A failing check when the GPU nodes' data volume (gpu.volumeSizeGib) is smaller than the snapshot: EC2 refuses
    a volume smaller than its snapshot (CreateVolume / EbsBlockDevice `VolumeSize`: "must be equal to or larger than
    the snapshot size"), so every GPU launch would fail; `pulumi up` refuses the same for `auto`."""
    size, want = int(snap.get("VolumeSize") or 0), cfg.gpu.volume_size_gib
    if size <= want:
        return None
    sid = snap["SnapshotId"]
    return Check("data-volume snapshot", "fail", f"{what} {sid} is {size} GiB, larger than gpu.volumeSizeGib "
                 f"({want} GiB)", f"GPU nodes cannot restore it onto a smaller volume: set gpu-burst:gpu.volumeSizeGib "
                 f"to at least {size}, or rebuild it with `burstctl snapshot build ... --volume-size-gib {want}`",
                 {"snapshot_id": sid, "volume_size_gib": size, "gpu_volume_size_gib": want})


def check_image_snapshot(clients: AwsClients, cfg: Any) -> list[Check]:
    """The pre-loaded data-volume snapshot: a `snap-` id must be a completed snapshot; for `auto`, whether the one
    the stack will look for exists yet (without it the deploy still works: the nodes pull the image)."""
    from botocore.exceptions import ClientError

    from burstctl import snapshot as sn

    name, sid = "data-volume snapshot", cfg.gpu.data_volume_snapshot_id
    if sid is None:
        return [Check(name, "skip", "gpu.dataVolumeSnapshotId is not set: GPU nodes pull the image")]
    if not cfg.gpu.snapshot_auto:
        try:
            snaps = clients.ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"]
        except ClientError as e:
            if aws.error_code(e) in ("InvalidSnapshot.NotFound", "InvalidSnapshotID.Malformed"):
                snaps = []
            else:
                what, todo = aws.explain(e, "ec2:DescribeSnapshots")
                return [Check(name, "fail", f"cannot read {sid} ({what})", todo)]
        state = snaps[0]["State"] if snaps else "missing"
        if state == "completed":
            return [_too_big(cfg, snaps[0], "gpu.dataVolumeSnapshotId")
                    or Check(name, "pass", f"{sid} is completed", data={"snapshot_id": sid})]
        return [Check(name, "fail", f"gpu.dataVolumeSnapshotId {sid} is {state} in {clients.region}",
                      "GPU nodes cannot launch from it: use a completed snapshot of this account and region, or "
                      "`auto` with `burstctl snapshot build`", {"snapshot_id": sid, "state": state})]
    try:
        account = clients.sts.get_caller_identity()["Account"]
        images, tags = sn.stack_identity(cfg, account)
        found = sn.existing(clients, tags)
    except ClientError as e:
        what, todo = aws.explain(e, "sts:GetCallerIdentity")
        return [Check(name, "fail", f"cannot look up the snapshot ({what})", todo)]
    except (CheckError, BadInput) as e:
        return [Check(name, "fail", f"cannot look up the snapshot: {e}", "see the message")]
    data = {"images": images, "tags": tags}
    if found:
        too_big = _too_big(cfg, found, "dataVolumeSnapshotId: auto found")
        if too_big:
            return [too_big]
        return [Check(name, "pass", f"auto: {found['SnapshotId']} holds {', '.join(images)} for Bottlerocket "
                      f"{tags['gpu-burst.io/bottlerocket-version']}", data={**data, "snapshot_id": found["SnapshotId"]})]
    return [Check(name, "warn", f"auto: no completed snapshot of this account holds {', '.join(images)} for "
                  f"Bottlerocket {tags['gpu-burst.io/bottlerocket-version']} "
                  f"(aws-k8s-{tags['gpu-burst.io/kubernetes-version']}); GPU nodes will pull the image",
                  "build it before the first cold start: burstctl snapshot build --stack-file <this stack file> "
                  "--subnet-id <private subnet> --instance-profile <builder profile> --yes", data)]


def certificate_names(names: list[str], host: str) -> bool:
    """Whether a certificate with these names (DomainName and SubjectAlternativeNames) is valid for `host`: the name
    itself, or a wildcard for exactly one label in its place (RFC 6125 6.4.3, as ACM issues them)."""
    parent = host.split(".", 1)[1] if "." in host else ""
    return any(n.lower() == host or (n.startswith("*.") and n[2:].lower() == parent) for n in names)


def check_global_name(clients: AwsClients, cfg: Any) -> list[Check]:
    """`gateway.globalDns`: what the program cannot know before `pulumi up`. The certificate of this region must
    name the global record (clients verify TLS against it, whichever region answers); the zone must be public;
    a plain record of the same name would make Route 53 refuse the latency record."""
    g = cfg.gateway.global_dns
    if g is None:
        return []  # a single-region stack: nothing to report
    return _global_certificate(clients, cfg.gateway.certificate_arn, g.record_name) + _global_zone(clients, g)


def _global_certificate(clients: AwsClients, arn: str, host: str) -> list[Check]:
    from botocore.exceptions import ClientError

    name = "global name certificate"
    try:
        cert = clients.acm.describe_certificate(CertificateArn=arn)["Certificate"]
    except ClientError as e:
        if aws.error_code(e) == "ResourceNotFoundException":
            return [Check(name, "fail", f"gateway.certificateArn {arn} does not exist in {clients.region}",
                          f"request or import a certificate for {host} in {clients.region} and set "
                          "gpu-burst:gateway.certificateArn to it")]
        what, todo = aws.explain(e, "acm:DescribeCertificate")
        return [Check(name, "fail", f"cannot read {arn} ({what})", todo)]
    names = sorted({cert.get("DomainName", ""), *cert.get("SubjectAlternativeNames", [])} - {""})
    data = {"certificate_arn": arn, "names": names, "status": cert.get("Status"), "record_name": host}
    if not certificate_names(names, host):
        return [Check(name, "fail", f"{arn} names {', '.join(names)}, not {host}: clients of https://{host}/v1 "
                      "would refuse the TLS handshake", f"use a certificate of {clients.region} whose names include "
                      f"{host} (or *.{host.split('.', 1)[1]}) as gpu-burst:gateway.certificateArn", data)]
    if cert.get("Status") != "ISSUED":
        return [Check(name, "fail", f"{arn} is {cert.get('Status')}, not ISSUED", "finish its validation (ACM "
                      "console or `aws acm describe-certificate`) before `pulumi up`: the NLB listener needs an "
                      "issued certificate", data)]
    return [Check(name, "pass", f"{arn} names {host} and is issued", data=data)]


def _global_zone(clients: AwsClients, g: Any) -> list[Check]:
    from botocore.exceptions import ClientError

    name, record = "global name zone", g.record_name
    try:
        if g.hosted_zone_id:
            zone = clients.route53.get_hosted_zone(Id=g.hosted_zone_id)["HostedZone"]
        else:
            listed = clients.route53.list_hosted_zones_by_name(DNSName=g.hosted_zone_name)["HostedZones"]
            zone = next((z for z in listed if z["Name"].rstrip(".") == g.hosted_zone_name
                         and not z.get("Config", {}).get("PrivateZone")), None)
    except ClientError as e:
        if aws.error_code(e) != "NoSuchHostedZone":
            what, todo = aws.explain(e, "route53:GetHostedZone or route53:ListHostedZonesByName")
            return [Check(name, "fail", f"cannot read the hosted zone ({what})", todo)]
        zone = None
    wanted = g.hosted_zone_id or g.hosted_zone_name
    if zone is None:
        return [Check(name, "fail", f"no public hosted zone {wanted} in this account",
                      "create it (and delegate the domain to its name servers), or set gpu-burst:gateway.globalDns "
                      "to a zone of this account")]
    zone_id, zone_name = zone["Id"].rsplit("/", 1)[-1], zone["Name"].rstrip(".")
    if zone.get("Config", {}).get("PrivateZone"):
        return [Check(name, "fail", f"{zone_id} ({zone_name}) is a private hosted zone",
                      "use a public hosted zone: the internet never resolves a private one")]
    try:
        sets = clients.route53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=record,
                                                         MaxItems="100")["ResourceRecordSets"]
    except ClientError as e:
        what, todo = aws.explain(e, "route53:ListResourceRecordSets")
        return [Check(name, "fail", f"cannot list the records of {zone_id} ({what})", todo)]
    same = [r for r in sets if r["Name"].rstrip(".").lower() == record]
    plain = [r["Type"] for r in same if r["Type"] in ("A", "CNAME") and "SetIdentifier" not in r]
    data = {"zone_id": zone_id, "zone_name": zone_name, "record_name": record,
            "regions": sorted(r["Region"] for r in same if r.get("Region"))}
    if plain:
        return [Check(name, "fail", f"{record} already has a {'/'.join(plain)} record without a set identifier in "
                      f"{zone_name}", "Route 53 refuses a latency record next to it: delete that record (the "
                      "regional stacks' records replace it) before `pulumi up`", data)]
    others = f"; latency records of {', '.join(data['regions'])} already there" if data["regions"] else ""
    return [Check(name, "pass", f"{record} can be added to public zone {zone_name} ({zone_id}){others}", data=data)]


def check_discovery(clients: AwsClients, cluster: str) -> list[Check]:
    """After deploy: the EC2NodeClass selects subnets and security groups by this tag; none means no launch."""
    from botocore.exceptions import ClientError

    flt = [{"Name": f"tag:{DISCOVERY_TAG}", "Values": [cluster]}]
    try:
        subnets = clients.ec2.describe_subnets(Filters=flt)["Subnets"]
        groups = clients.ec2.describe_security_groups(Filters=flt)["SecurityGroups"]
    except ClientError as e:
        what, todo = aws.explain(e, "ec2:DescribeSubnets and ec2:DescribeSecurityGroups")
        return [Check("discovery tags", "fail", f"cannot list subnets/security groups ({what})", todo)]
    checks = []
    azs = sorted({s["AvailabilityZone"] for s in subnets})
    tag = f"{DISCOVERY_TAG}={cluster}"
    if not subnets:
        checks.append(Check("discovery subnets", "fail", f"no subnet tagged {tag}",
                            "the EC2NodeClass subnetSelectorTerms match nothing, so every NodeClaim fails to launch: "
                            "tag the private subnets (network.tagExistingSubnets for an existing VPC) or fix "
                            "--cluster-name"))
    elif len(azs) < 2:
        checks.append(Check("discovery subnets", "warn", f"{len(subnets)} subnet(s) tagged {tag}, all in {azs[0]}",
                            "GPU capacity is scarce: spread the pool over at least two AZs"))
    else:
        checks.append(Check("discovery subnets", "pass", f"{len(subnets)} subnets tagged {tag} in {', '.join(azs)}",
                            data={"subnets": [s["SubnetId"] for s in subnets]}))
    if not groups:
        checks.append(Check("discovery security group", "fail", f"no security group tagged {tag}",
                            "the EC2NodeClass securityGroupSelectorTerms match nothing: tag the cluster security "
                            "group or fix --cluster-name"))
    else:
        checks.append(Check("discovery security group", "pass", f"{len(groups)} security group(s) tagged {tag}: "
                            + ", ".join(g["GroupId"] for g in groups)))
    return checks


def check_existing_cluster(clients: AwsClients, cfg: Any) -> tuple[list[Check], Any]:
    """`cluster.mode: existing`: the cluster exists, is ACTIVE, runs a Kubernetes version the stack supports and, if
    the stack installs Karpenter, takes access entries. The config comes back with the cluster's version, which the
    AMI check then uses."""
    from botocore.exceptions import ClientError

    from burstctl.program import stack_config

    sc, name = stack_config(), cfg.cluster.name
    if clients.eks is None:
        return [Check("existing cluster", "skip", "no EKS client")], cfg
    try:
        c = clients.eks.describe_cluster(name=name)["cluster"]
    except ClientError as e:
        if aws.error_code(e) == "ResourceNotFoundException":
            return [Check("existing cluster", "fail", f"no EKS cluster {name} in {clients.region}",
                          f"set gpu-burst:cluster.name to a cluster of `aws eks list-clusters --region "
                          f"{clients.region}`")], cfg
        what, todo = aws.explain(e, "eks:DescribeCluster")
        return [Check("existing cluster", "fail", f"cannot read EKS cluster {name} ({what})", todo)], cfg
    version, status = c.get("version", ""), c.get("status", "")
    mode = (c.get("accessConfig") or {}).get("authenticationMode", "CONFIG_MAP")
    data = {"cluster": name, "kubernetes": version, "status": status, "authentication_mode": mode}
    problems = []
    if status not in ("ACTIVE", "UPDATING"):
        problems.append(f"it is {status}")
    if version not in sc.SUPPORTED_KUBERNETES_VERSIONS:
        supported = ", ".join(sc.SUPPORTED_KUBERNETES_VERSIONS)
        problems.append(f"it runs Kubernetes {version}; the stack supports {supported}")
    if cfg.karpenter.install and mode not in ("API", "API_AND_CONFIG_MAP"):
        problems.append(f"its authenticationMode {mode} has no access entries, which the Karpenter the stack installs "
                        "needs for its node role")
    if problems:
        return [Check("existing cluster", "fail", f"cluster {name}: " + "; ".join(problems),
                      "`pulumi up` refuses it the same way: see README \"Install onto an existing cluster\"",
                      data)], cfg
    checks = [Check("existing cluster", "pass", f"{name} is {status}, Kubernetes {version}, authenticationMode {mode}",
                    data=data), *check_node_role_access(clients, cfg, mode)]
    return checks, cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"kubernetes_version": version})})


def check_node_role_access(clients: AwsClients, cfg: Any, mode: str) -> list[Check]:
    """`karpenter.install: false`: the existing node role may join the cluster. The stack gives it no access entry
    (its nodes already join); EKS needs an EC2_LINUX entry for it, or under API_AND_CONFIG_MAP an aws-auth mapping
    (which `--cluster` reads)."""
    from botocore.exceptions import ClientError

    k, name = cfg.karpenter, "node role access"
    if k.install or not k.node_role_name or clients.iam is None or clients.eks is None:
        return []
    try:
        arn = clients.iam.get_role(RoleName=k.node_role_name)["Role"]["Arn"]
        entry = clients.eks.describe_access_entry(clusterName=cfg.cluster.name, principalArn=arn)["accessEntry"]
    except ClientError as e:
        if aws.error_code(e) == "NoSuchEntity":
            return [Check(name, "fail", f"no IAM role {k.node_role_name}", "set gpu-burst:karpenter.nodeRoleName to "
                          "the role your Karpenter's EC2NodeClasses use")]
        if aws.error_code(e) != "ResourceNotFoundException":
            what, todo = aws.explain(e, "iam:GetRole and eks:DescribeAccessEntry")
            return [Check(name, "fail", f"cannot read the access of {k.node_role_name} ({what})", todo)]
        if mode == "API":
            return [Check(name, "fail", f"{k.node_role_name} has no access entry in {cfg.cluster.name}, whose "
                          "authenticationMode API has no aws-auth ConfigMap", "GPU nodes would never join: `aws eks "
                          f"create-access-entry --cluster-name {cfg.cluster.name} --principal-arn <role arn> --type "
                          "EC2_LINUX`")]
        return [Check(name, "warn", f"{k.node_role_name} has no access entry; under {mode} it must be mapped in the "
                      "aws-auth ConfigMap", "`--cluster` checks the mapping")]
    if entry.get("type") != "EC2_LINUX":
        return [Check(name, "fail", f"the access entry of {k.node_role_name} is {entry.get('type')}, not EC2_LINUX",
                      "nodes join only through an EC2_LINUX entry (a STANDARD one breaks node join)")]
    return [Check(name, "pass", f"{k.node_role_name} has an EC2_LINUX access entry")]


def with_cluster_version(cfg: Any, region: str, profile: Optional[str] = None,
                         timeout: Optional[float] = None) -> Any:
    """The config with an existing cluster's own Kubernetes version (`cluster.mode: existing` reads it; the snapshot
    tags of `dataVolumeSnapshotId: auto` carry it); unchanged for a cluster the stack creates."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not cfg.existing_cluster:
        return cfg
    try:
        c = aws.session(region, profile).client("eks", config=aws.client_config(timeout)).describe_cluster(
            name=cfg.cluster.name)["cluster"]
    except ClientError as e:
        what, todo = aws.explain(e, "eks:DescribeCluster")
        raise CheckError(f"cannot read EKS cluster {cfg.cluster.name} for its Kubernetes version ({what}); {todo}") \
            from None
    except BotoCoreError as e:
        raise CheckError(aws.unreachable(e)) from None
    return cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"kubernetes_version": c["version"]})})


def preflight(clients: AwsClients, cfg: Any, after_deploy_cluster: Optional[str] = None,
              cluster_reader: Any = None) -> list[Check]:
    """The AWS checks; with `cluster_reader` (`--cluster`) also what is installed in the cluster."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError

    try:
        checks: list[Check] = []
        if cfg.existing_cluster:
            checks, cfg = check_existing_cluster(clients, cfg)
            if any(c.status == "fail" for c in checks):
                return checks + (in_cluster(cluster_reader, cfg) if cluster_reader is not None else [])
        checks += (check_quotas(clients, cfg) + check_offerings(clients, cfg) + check_ami(clients, cfg)
                  + check_addon_versions(clients, cfg) + check_spot_role(clients, cfg)
                  + check_image_snapshot(clients, cfg) + check_cluster_creator(clients, cfg)
                  + check_global_name(clients, cfg))
        if after_deploy_cluster:
            checks += check_discovery(clients, after_deploy_cluster)
    except NoCredentialsError:
        raise CheckError("no AWS credentials found: set AWS_PROFILE (or --profile) or AWS_ACCESS_KEY_ID") from None
    except BotoCoreError as e:
        raise CheckError(aws.unreachable(e)) from None
    if cluster_reader is not None:
        checks += in_cluster(cluster_reader, cfg)
    return checks


def in_cluster(reader: Any, cfg: Any) -> list[Check]:
    """`--cluster`: the checks against the live Kubernetes API (burstctl.preflight_cluster)."""
    from burstctl.preflight_cluster import cluster_checks
    from burstctl.program import stack_config

    sc = stack_config()
    return cluster_checks(reader, cfg, sc.KARPENTER_MIN_FOR_KUBERNETES, sc.KARPENTER_MIN_FOR_FIELDS)
