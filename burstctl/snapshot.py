"""`snapshot build`: an EBS snapshot of a Bottlerocket data volume that already holds the stack's vLLM image, so
GPU nodes restore it as /dev/xvdb (`gpu.dataVolumeSnapshotId: auto` or the id) instead of pulling ~10 GB on a cold
start.

What it does is what aws-samples/bottlerocket-images-cache@3370ea0 (snapshot.sh, ebs-snapshot-instance.yaml) does,
with the stack's own values and clean-up on every failure (but without its `ctr images rm` of what the fresh data
volume already holds: those images stay):

1. the references the model pods pull (`components.image_cache.pulled_images`, the pull-through-cache reference
   when `gpu.imageCache` is set) and the stack's Bottlerocket release, Kubernetes version and architecture give the
   snapshot's tags (`stacks.config.image_snapshot_tags`, the function the stack's `auto` lookup uses); a completed
   snapshot of this account with those tags means there is nothing to do;
2. a builder instance of the non-NVIDIA `aws-k8s-<k8s>` variant at the same release (an x86 instance without a GPU
   is enough to pull; both variants run the same containerd with the same root, socket and default snapshotter:
   bottlerocket-os/bottlerocket@96dc931 packages/containerd/containerd-config-toml_k8s_containerd_sock and
   ..._k8s_nvidia_containerd_sock) with the admin host container enabled in its user data;
3. through SSM Run Command into the control container: stop the kubelet, then `apiclient exec admin sheltie ctr -a
   /run/containerd/containerd.sock -n k8s.io images pull --label io.cri-containerd.image=managed ...` per image, so
   the images are unpacked by containerd's default (overlayfs) snapshotter in the namespace the kubelet uses, and
   labelled as CRI-managed so the kubelet sees them;
4. stop the instance (a clean file-system shutdown), snapshot /dev/xvdb with the tags, wait until it is completed,
   terminate the instance (also after any failure or Ctrl-C).
"""

from __future__ import annotations

import base64
import math
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from burstctl import aws
from burstctl.output import BadInput, CheckError

BUILDER_TAG = "gpu-burst.io/snapshot-builder"
"""Tag on the builder instance and its volumes (value: the snapshot's identity digest): the operator's IAM policy
scopes stop/terminate/snapshot to resources that carry it."""
DATA_DEVICE = "/dev/xvdb"
"""Bottlerocket's data volume (images, containerd and kubelet state): the second block device of its AMIs and the
device Karpenter maps for it (aws/karpenter-provider-aws@v1.14.1 pkg/providers/amifamily/bottlerocket.go
DefaultBlockDeviceMappings; bottlerocket-os/bottlerocket README "Default Volumes")."""
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
"""The orchestrator's containerd (`[grpc] address` of Bottlerocket's k8s containerd config), not the host-containers
one (bottlerocket README "Host containers": two containerd instances)."""
ADMIN_USER_DATA = "[settings.host-containers.admin]\nenabled = true\n"
"""User data that starts the admin container, which provides `sheltie` (a root shell in the host's namespaces): the
bottlerocket README "Admin container" TOML, as the reference template sets it; the setting is still
`host-containers.admin.enabled` in the 1.57.x docs (bottlerocket-project-website@6102096
content/en/os/1.57.x/login/regaining-access), which also say every host container mounts `apiclient`
(concepts/host-containers)."""
CTR = f"apiclient exec admin sheltie ctr -a {CONTAINERD_SOCKET} -n k8s.io"
"""`ctr` in the host through the admin container; `-n k8s.io` is the namespace the CRI plugin (the kubelet) uses."""
CRI_MANAGED_LABEL = "io.cri-containerd.image=managed"
"""Label the CRI plugin puts on images it pulled; images without it are not listed to the kubelet (snapshot.sh)."""
AMI_PARAMETER = "/aws/service/bottlerocket/aws-k8s-{k8s}/{arch}/{version}/image_id"
"""Public SSM parameter of a Bottlerocket AMI: variant, architecture, release without the `v` (bottlerocket
QUICKSTART-EKS.md "Finding an AMI"; the NVIDIA variants append `-nvidia`, which the builder does not need)."""
OS_VOLUME_GIB = 4
"""The OS volume /dev/xvda: Karpenter's Bottlerocket default (bottlerocket.go DefaultBlockDeviceMappings)."""
DEFAULT_INSTANCE_TYPE = "m6i.large"
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
"""`ctr --platform` per EC2 architecture (containerd platforms syntax)."""
_ECR = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")
_SUBNET = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
_SG = re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")
_PROFILE_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
_PROFILE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:instance-profile/([\w+=,.@/-]{1,128})$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_SSM_DONE = {"Success", "Failed", "Cancelled", "TimedOut", "Cancelling", "Undeliverable", "Terminated",
             "DeliveryTimedOut", "ExecutionTimedOut"}
"""Terminal statuses of a command invocation (SSM GetCommandInvocation `Status`/`StatusDetails`)."""


@dataclass
class Timeouts:
    """How long each wait may take (seconds) and how often it polls; tests pass `poll=0`."""

    running: float = 600
    ssm_online: float = 900
    command: float = 3600
    """One image pull: about 10 GB from Docker Hub or ECR and the unpack."""
    stopped: float = 900
    snapshot: float = 7200
    """A first snapshot copies every written block to S3; tens of GB take tens of minutes."""
    poll: float = 10


@dataclass
class Clients:
    """The AWS clients the build needs; tests inject moto-backed or stubbed ones."""

    ec2: Any
    ssm: Any
    sts: Any
    iam: Any
    ecr: Callable[[str], Any]
    """ECR client for a region (only used when an image is in ECR)."""
    region: str


def make_clients(region: str, profile: Optional[str] = None, timeout: Optional[float] = None) -> Clients:
    s, config = aws.session(region, profile), aws.client_config(timeout)
    return Clients(s.client("ec2", config=config), s.client("ssm", config=config), s.client("sts", config=config),
                   s.client("iam", config=config), lambda r: s.client("ecr", region_name=r, config=config), region)


@dataclass
class Plan:
    """What would be built: the snapshot's identity and the builder's launch parameters."""

    region: str
    account: str
    images: list[str]
    bottlerocket_version: str
    kubernetes_version: str
    arch: str
    tags: dict[str, str]
    ami_parameter: str
    instance_type: str
    subnet_id: str
    security_group_ids: list[str]
    instance_profile: str
    volume_size_gib: int
    public_ip: bool
    stack_volume_size_gib: int


@dataclass
class Step:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class Result:
    status: str
    """`exists` (nothing to do), `pending` (being written, without --yes), `planned` (without --yes) or `built`."""
    plan: Plan
    snapshot_id: Optional[str] = None
    instance_id: Optional[str] = None
    steps: list[Step] = field(default_factory=list)
    cleanup: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[str, str, str], None]
"""progress(step, state, detail): state is `start`, `tick` (detail carries e.g. `45%`), `done` or `fail`."""


def _quiet(step: str, state: str, detail: str) -> None:
    return None


# -- inputs ------------------------------------------------------------------------------------------------------
def check_flags(subnet_id: str, instance_profile: str, instance_type: str, security_group_ids: list[str],
                volume_size_gib: Optional[int], stack_volume_gib: int) -> int:
    """Offline checks of the flags; returns the data volume size. Every problem is one line naming the flag."""
    if not _SUBNET.match(subnet_id or ""):
        raise BadInput(f"--subnet-id: '{subnet_id}' is not a subnet id; allowed: subnet- and 8 or 17 hex digits "
                       "(a private subnet of the stack's VPC, e.g. subnet-0123456789abcdef0)")
    if not (_PROFILE_NAME.match(instance_profile or "") or _PROFILE_ARN.match(instance_profile or "")):
        raise BadInput(f"--instance-profile: '{instance_profile}' is not an instance profile name or ARN; allowed: "
                       "e.g. gpu-burst-snapshot-builder or arn:aws:iam::123456789012:instance-profile/<name>")
    if not _INSTANCE_TYPE.match(instance_type or ""):
        raise BadInput(f"--instance-type: '{instance_type}' is not an EC2 instance type; allowed: e.g. "
                       f"{DEFAULT_INSTANCE_TYPE}")
    bad = [g for g in security_group_ids if not _SG.match(g)]
    if bad:
        raise BadInput(f"--security-group-id: {bad} are not security group ids; allowed: sg- and 8 or 17 hex digits")
    size = volume_size_gib if volume_size_gib is not None else min(100, stack_volume_gib)
    # A volume restored from a snapshot must be at least the snapshot's size (EC2 CreateVolume/RunInstances).
    if not 20 <= size <= stack_volume_gib:
        raise BadInput(f"--volume-size-gib: {size} GiB does not fit the GPU nodes' data volume; allowed: 20 to "
                       f"{stack_volume_gib} (gpu.volumeSizeGib: nodes restore the snapshot onto a volume of that size)")
    return size


def stack_identity(cfg: Any, account: str) -> tuple[list[str], dict[str, str]]:
    """The references the GPU nodes pull and the snapshot tags for them: the same functions the stack uses."""
    from burstctl.program import image_cache

    gpu = cfg.gpu
    if gpu.ami_family.value != "bottlerocket":
        raise BadInput(f"gpu-burst:gpu.amiFamily: {gpu.ami_family.value} keeps images on the AMI's root volume, "
                       "which a data-volume snapshot cannot pre-load; allowed: bottlerocket")
    if gpu.ami_version == "latest":
        raise BadInput("gpu-burst:gpu.amiVersion: latest moves with every release, a snapshot is built for one; "
                       "allowed: a pinned vX.Y.Z")
    if not cfg.models:
        raise BadInput("gpu-burst:models: the stack serves no model, so there is no image to pre-load; allowed: "
                       "one or more models")
    images = image_cache().pulled_images(cfg.model_images, account, cfg.region, gpu.image_cache_prefix)
    return images, cfg.image_snapshot_tags(images)


def plan(cfg: Any, account: str, subnet_id: str, instance_profile: str, instance_type: str,
         security_group_ids: list[str], volume_size_gib: Optional[int], public_ip: bool) -> Plan:
    size = check_flags(subnet_id, instance_profile, instance_type, security_group_ids, volume_size_gib,
                       cfg.gpu.volume_size_gib)
    images, tags = stack_identity(cfg, account)
    from burstctl.program import stack_config

    sc = stack_config()
    version = sc.bottlerocket_release(cfg.gpu.ami_version)
    arch = sc.GPU_NODE_ARCH
    return Plan(region=cfg.region, account=account, images=images, bottlerocket_version=version,
                kubernetes_version=cfg.cluster.kubernetes_version, arch=arch, tags=tags,
                ami_parameter=AMI_PARAMETER.format(k8s=cfg.cluster.kubernetes_version, arch=arch, version=version),
                instance_type=instance_type, subnet_id=subnet_id, security_group_ids=list(security_group_ids),
                instance_profile=instance_profile, volume_size_gib=size, public_ip=public_ip,
                stack_volume_size_gib=cfg.gpu.volume_size_gib)


# -- AWS ---------------------------------------------------------------------------------------------------------
def _fail(err: Exception, permissions: str, what: str) -> CheckError:
    code, todo = aws.explain(err, permissions)
    return CheckError(f"{what}: {code}; {todo}")


def account_id(clients: Clients) -> str:
    from botocore.exceptions import ClientError

    try:
        return clients.sts.get_caller_identity()["Account"]
    except ClientError as e:
        raise _fail(e, "sts:GetCallerIdentity", "cannot read the AWS account") from None


def snapshot_filters(tags: dict[str, str], states: list[str]) -> list[dict]:
    from burstctl.program import stack_config

    sc = stack_config()
    return [f for f in sc.snapshot_filters(tags) if f["Name"] != "status"] + [{"Name": "status", "Values": states}]


def existing(clients: Clients, tags: dict[str, str], states: tuple[str, ...] = ("completed",)) -> Optional[dict]:
    """This account's newest snapshot with the identity tag in one of `states` (None: there is none)."""
    from botocore.exceptions import ClientError

    try:
        snaps = clients.ec2.describe_snapshots(OwnerIds=["self"], Filters=snapshot_filters(tags, list(states)))
    except ClientError as e:
        raise _fail(e, "ec2:DescribeSnapshots", "cannot list snapshots") from None
    found = sorted(snaps["Snapshots"], key=lambda s: s["StartTime"], reverse=True)
    return found[0] if found else None


def check_aws(clients: Clients, p: Plan) -> None:
    """The flags against the account: the instance type is offered and of the nodes' architecture, the subnet and
    the instance profile exist. Each problem is one line naming the flag."""
    from botocore.exceptions import ClientError

    try:
        types = clients.ec2.describe_instance_types(InstanceTypes=[p.instance_type])["InstanceTypes"]
    except ClientError as e:
        if aws.error_code(e) == "InvalidInstanceType":
            raise BadInput(f"--instance-type: {p.instance_type} does not exist in {p.region}; allowed: an "
                           f"{p.arch} type such as {DEFAULT_INSTANCE_TYPE}") from None
        raise _fail(e, "ec2:DescribeInstanceTypes", "cannot check --instance-type") from None
    archs = types[0]["ProcessorInfo"]["SupportedArchitectures"] if types else []
    if p.arch not in archs:
        raise BadInput(f"--instance-type: {p.instance_type} is {'/'.join(archs) or 'unknown'}, the GPU nodes are "
                       f"{p.arch}; allowed: an {p.arch} type such as {DEFAULT_INSTANCE_TYPE}")
    try:
        clients.ec2.describe_subnets(SubnetIds=[p.subnet_id])
    except ClientError as e:
        if aws.error_code(e) in ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"):
            raise BadInput(f"--subnet-id: {p.subnet_id} does not exist in {p.region}; allowed: a subnet with a "
                           "route to SSM and the image registry (the stack's private subnets have a NAT)") from None
        raise _fail(e, "ec2:DescribeSubnets", "cannot check --subnet-id") from None
    name = _PROFILE_ARN.match(p.instance_profile)
    name = name.group(1).rsplit("/", 1)[-1] if name else p.instance_profile
    try:
        roles = clients.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
    except ClientError as e:
        if aws.error_code(e) == "NoSuchEntity":
            raise BadInput(f"--instance-profile: {name} does not exist; allowed: an instance profile whose role has "
                           "AmazonSSMManagedInstanceCore (docs/cli.md \"snapshot build\")") from None
        raise _fail(e, "iam:GetInstanceProfile", "cannot check --instance-profile") from None
    if not roles:
        raise BadInput(f"--instance-profile: {name} has no role, so the SSM agent cannot register; allowed: a profile "
                       "with a role that has AmazonSSMManagedInstanceCore")


def _sleep_until(clock: Callable[[], float], sleep: Callable[[float], None], deadline: float, poll: float,
                 what: str, timeout: float) -> None:
    if clock() >= deadline:
        raise CheckError(f"{what} did not finish within {timeout:.0f} s")
    sleep(poll)


def _registry_auth(clients: Clients, image: str) -> Optional[str]:
    """`AWS:<password>` for an image in ECR (the operator's own short-lived token, valid 12 hours), else None."""
    from botocore.exceptions import ClientError

    m = _ECR.match(image)
    if not m:
        return None
    try:
        data = clients.ecr(m.group(2)).get_authorization_token()["authorizationData"][0]
    except ClientError as e:
        raise _fail(e, "ecr:GetAuthorizationToken (and ecr:BatchGetImage, ecr:GetDownloadUrlForLayer on the "
                       "repository; ecr:BatchImportUpstreamImage and ecr:CreateRepository for a first pull through "
                       "the cache)", f"cannot get an ECR token for {image}") from None
    return base64.b64decode(data["authorizationToken"]).decode()


def containerd_name(image: str) -> str:
    """The name the CRI plugin looks an image up by: the pod's reference normalized as
    distribution/reference ParseDockerRef does it (docker.io for a bare name, `library/` for an official image,
    index.docker.io folded into docker.io, `:latest` when untagged, the tag dropped next to a digest). `ctr` does
    not normalize, so the pull must use this name or the kubelet would not find the image."""
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    last = path.rsplit("/", 1)[-1]
    repo, tag = (path.rsplit(":", 1) if ":" in last else (path, ""))
    if domain == "docker.io" and "/" not in repo:
        repo = f"library/{repo}"
    if digest:
        return f"{domain}/{repo}@{digest}"
    return f"{domain}/{repo}:{tag or 'latest'}"


def pull_command(image: str, arch: str, auth: Optional[str]) -> str:
    """The pull, as snapshot.sh runs it: unpacked (ctr's default) by the default snapshotter for the nodes'
    platform, labelled as CRI-managed (containerd@029c029 cmd/ctr/commands/images/pull.go: --platform, --label,
    --user from RegistryFlags)."""
    cmd = f"{CTR} images pull --label {CRI_MANAGED_LABEL} --platform {PLATFORMS[arch]}"
    if auth:
        cmd += f" --user {shlex.quote(auth)}"
    return f"{cmd} {shlex.quote(containerd_name(image))}"


class Builder:
    """One build; every AWS wait is bounded and the builder instance is terminated whatever happens."""

    def __init__(self, clients: Clients, p: Plan, timeouts: Timeouts, progress: Progress = _quiet,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.c, self.p, self.t, self.progress, self.sleep, self.clock = clients, p, timeouts, progress, sleep, clock
        self.steps: list[Step] = []
        self.instance_id: Optional[str] = None

    def _step(self, name: str, fn: Callable[[], str]) -> str:
        start = self.clock()
        self.progress(name, "start", "")
        try:
            detail = fn()
        except BaseException as e:
            self.progress(name, "fail", str(e))
            raise
        self.steps.append(Step(name, round(self.clock() - start, 1), detail))
        self.progress(name, "done", detail)
        return detail

    def _waiter(self, name: str, timeout: float, **kw: Any) -> None:
        from botocore.exceptions import WaiterError

        delay = self.t.poll
        attempts = max(1, math.ceil(timeout / delay)) if delay else max(1, int(timeout))
        try:
            self.c.ec2.get_waiter(name).wait(WaiterConfig={"Delay": delay, "MaxAttempts": attempts}, **kw)
        except WaiterError as e:
            why = (e.last_response or {}).get("Error", {}).get("Message") or str(e)
            raise CheckError(f"{self.instance_id} is not {name.split('_', 1)[1]} within {timeout:.0f} s: {why}") \
                from None

    # each step returns its detail line
    def launch(self) -> str:
        from botocore.exceptions import ClientError

        p = self.p
        try:
            ami = self.c.ssm.get_parameter(Name=p.ami_parameter)["Parameter"]["Value"]
        except ClientError as e:
            if aws.error_code(e) == "ParameterNotFound":
                raise CheckError(f"gpu-burst:gpu.amiVersion: Bottlerocket {p.bottlerocket_version} has no "
                                 f"aws-k8s-{p.kubernetes_version} {p.arch} AMI in {p.region} (no SSM parameter "
                                 f"{p.ami_parameter}); allowed: a release that ships it") from None
            raise _fail(e, "ssm:GetParameter on the public /aws/service/bottlerocket/* parameters",
                        "cannot resolve the builder AMI") from None
        from burstctl.program import stack_config

        ident = p.tags[stack_config().SNAPSHOT_TAG]
        tags = [{"Key": BUILDER_TAG, "Value": ident}, {"Key": "Name", "Value": "gpu-burst-snapshot-builder"}]
        profile = {"Arn": p.instance_profile} if p.instance_profile.startswith("arn:") else {"Name": p.instance_profile}
        net: dict[str, Any] = {"DeviceIndex": 0, "SubnetId": p.subnet_id, "AssociatePublicIpAddress": p.public_ip}
        if p.security_group_ids:
            net["Groups"] = p.security_group_ids
        try:
            r = self.c.ec2.run_instances(
                ImageId=ami, InstanceType=p.instance_type, MinCount=1, MaxCount=1, IamInstanceProfile=profile,
                UserData=ADMIN_USER_DATA, NetworkInterfaces=[net],
                # Host containers (the SSM agent's control container) share the host network namespace
                # (bottlerocket@v1.20.0 sources/host-ctr/cmd/host-ctr/main.go WithHostNamespace(NetworkNamespace)),
                # so IMDSv2 with hop limit 1 is enough.
                MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
                BlockDeviceMappings=[
                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": OS_VOLUME_GIB, "VolumeType": "gp3",
                                                        "Encrypted": True, "DeleteOnTermination": True}},
                    # gp3 at its launch-template maximum: the pull is disk-bound once the network is fast. Encrypted
                    # with the account's default EBS key: volumes restored from the snapshot are encrypted too.
                    {"DeviceName": DATA_DEVICE, "Ebs": {"VolumeSize": p.volume_size_gib, "VolumeType": "gp3",
                                                        "Encrypted": True, "DeleteOnTermination": True,
                                                        "Throughput": 1000, "Iops": 4000}},
                ],
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                                   {"ResourceType": "volume", "Tags": tags}],
            )
        except ClientError as e:
            raise _fail(e, "ec2:RunInstances (and iam:PassRole on the builder role)",
                        "cannot launch the builder instance") from None
        self.instance_id = r["Instances"][0]["InstanceId"]
        self._waiter("instance_running", self.t.running, InstanceIds=[self.instance_id])
        return f"{self.instance_id} ({p.instance_type}, {ami})"

    def wait_ssm(self) -> str:
        from botocore.exceptions import ClientError

        deadline = self.clock() + self.t.ssm_online
        while True:
            try:
                info = self.c.ssm.describe_instance_information(
                    Filters=[{"Key": "InstanceIds", "Values": [self.instance_id]}])["InstanceInformationList"]
            except ClientError as e:
                raise _fail(e, "ssm:DescribeInstanceInformation", "cannot read the SSM agent's status") from None
            if info and info[0].get("PingStatus") == "Online":
                return f"{self.instance_id} online"
            _sleep_until(self.clock, self.sleep, deadline, self.t.poll,
                         f"the SSM agent of {self.instance_id} (a route to ssm/ssmmessages/ec2messages from "
                         f"{self.p.subnet_id}, and AmazonSSMManagedInstanceCore on the instance profile)",
                         self.t.ssm_online)

    def run(self, commands: list[str], comment: str) -> str:
        """Run a shell command in the control container and wait for it; its output on failure."""
        from botocore.exceptions import ClientError

        try:
            cmd = self.c.ssm.send_command(
                InstanceIds=[self.instance_id], DocumentName="AWS-RunShellScript", Comment=comment[:100],
                Parameters={"commands": commands, "executionTimeout": [str(int(self.t.command))]},
            )["Command"]["CommandId"]
        except ClientError as e:
            raise _fail(e, "ssm:SendCommand on document/AWS-RunShellScript and the builder instance",
                        f"cannot run '{comment}'") from None
        deadline = self.clock() + self.t.command
        while True:
            try:
                inv = self.c.ssm.get_command_invocation(CommandId=cmd, InstanceId=self.instance_id)
            except ClientError as e:
                if aws.error_code(e) != "InvocationDoesNotExist":  # not registered yet right after SendCommand
                    raise _fail(e, "ssm:GetCommandInvocation", f"cannot read '{comment}'") from None
                inv = {"Status": "Pending"}
            status = inv.get("Status", "")
            if status == "Success":
                return inv.get("StandardOutputContent", "")
            if status in _SSM_DONE:
                out = (inv.get("StandardErrorContent") or inv.get("StandardOutputContent") or "").strip()
                last = out.splitlines()[-1] if out else inv.get("StatusDetails", "")
                raise CheckError(f"'{comment}' ended {status} on {self.instance_id}: {last}")
            _sleep_until(self.clock, self.sleep, deadline, self.t.poll, f"'{comment}'", self.t.command)

    def stop_kubelet(self) -> str:
        # As snapshot.sh does: the builder belongs to no cluster, and nothing should touch the images meanwhile.
        self.run(["apiclient exec admin sheltie systemctl stop kubelet"], "gpu-burst: stop kubelet")
        return "kubelet stopped"

    def pull(self) -> str:
        for image in self.p.images:
            auth = _registry_auth(self.c, image)
            self.progress("pull images", "tick", image)
            self.run([pull_command(image, self.p.arch, auth)], f"gpu-burst: pull {image}")
        listed = self.run([f"{CTR} images ls -q"], "gpu-burst: list images").split()
        missing = [i for i in self.p.images if containerd_name(i) not in listed]
        if missing:
            raise CheckError(f"containerd on {self.instance_id} does not list {missing} after the pull")
        return ", ".join(self.p.images)

    def stop(self) -> str:
        from botocore.exceptions import ClientError

        try:
            self.c.ec2.stop_instances(InstanceIds=[self.instance_id])
        except ClientError as e:
            raise _fail(e, "ec2:StopInstances on the builder instance", "cannot stop the builder") from None
        self._waiter("instance_stopped", self.t.stopped, InstanceIds=[self.instance_id])
        return f"{self.instance_id} stopped"

    def snapshot(self) -> str:
        from botocore.exceptions import ClientError

        p = self.p
        inst = self.c.ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"][0]["Instances"][0]
        vol = next((b["Ebs"]["VolumeId"] for b in inst.get("BlockDeviceMappings", [])
                    if b["DeviceName"] == DATA_DEVICE), None)
        if vol is None:
            raise CheckError(f"{self.instance_id} has no {DATA_DEVICE} volume")
        tags = [{"Key": k, "Value": v} for k, v in p.tags.items()]
        tags.append({"Key": "Name", "Value": f"gpu-burst data volume {p.bottlerocket_version} {p.images[0]}"[:255]})
        try:
            snap = self.c.ec2.create_snapshot(
                VolumeId=vol, Description=f"Bottlerocket {p.bottlerocket_version} aws-k8s-{p.kubernetes_version} "
                                          f"{p.arch} data volume with {' '.join(p.images)}"[:255],
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
        except ClientError as e:
            raise _fail(e, "ec2:CreateSnapshot on the builder volume and ec2:CreateTags on create",
                        "cannot create the snapshot") from None
        self.snapshot_id = snap["SnapshotId"]
        self.wait_snapshot(self.snapshot_id)
        return self.snapshot_id

    def wait_snapshot(self, sid: str) -> None:
        from botocore.exceptions import ClientError

        deadline = self.clock() + self.t.snapshot
        while True:
            try:
                s = self.c.ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
            except ClientError as e:
                raise _fail(e, "ec2:DescribeSnapshots", f"cannot read {sid}") from None
            if s["State"] == "completed":
                return
            if s["State"] == "error":
                self._delete_failed(sid)
                raise CheckError(f"snapshot {sid} failed: {s.get('StateMessage') or 'state error'}; it was deleted, "
                                 "run the build again")
            self.progress("snapshot data volume", "tick", s.get("Progress") or "")
            _sleep_until(self.clock, self.sleep, deadline, self.t.poll,
                         f"snapshot {sid} (still {s['State']} at {s.get('Progress') or '?'}; it completes on its "
                         f"own and `auto` finds it then)", self.t.snapshot)

    def _delete_failed(self, sid: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.c.ec2.delete_snapshot(SnapshotId=sid)
        except ClientError:
            pass  # an error-state snapshot is never found by `auto` (completed only)

    def terminate(self) -> str:
        """Always called: terminating is what stops the bill; the volumes go with the instance."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.instance_id:
            return ""
        try:
            self.c.ec2.terminate_instances(InstanceIds=[self.instance_id])
        except (ClientError, BotoCoreError) as e:
            return (f"could not terminate {self.instance_id} ({aws.error_code(e)}): terminate it yourself: aws ec2 "
                    f"terminate-instances --region {self.p.region} --instance-ids {self.instance_id}")
        return f"{self.instance_id} terminated"

    def build(self) -> Result:
        self.snapshot_id: Optional[str] = None
        cleanup = ""
        try:
            self._step("launch builder", self.launch)
            self._step("wait for SSM agent", self.wait_ssm)
            self._step("stop kubelet", self.stop_kubelet)
            self._step("pull images", self.pull)
            self._step("stop builder", self.stop)
            self._step("snapshot data volume", self.snapshot)
        except BaseException as e:
            cleanup = self.terminate()
            if isinstance(e, CheckError) and cleanup:
                raise CheckError(f"{e} ({cleanup})") from None
            raise
        cleanup = self.terminate()
        return Result("built", self.p, self.snapshot_id, self.instance_id, self.steps, cleanup)


def build(clients: Clients, p: Plan, yes: bool, timeouts: Optional[Timeouts] = None, progress: Progress = _quiet,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Result:
    """Idempotent: a completed snapshot with the plan's tags is the result; one still being written is waited for;
    otherwise (with `yes`) a builder makes it."""
    t = timeouts or Timeouts()
    done = existing(clients, p.tags)
    if done:
        return Result("exists", p, done["SnapshotId"])
    pending = existing(clients, p.tags, ("pending",))
    if pending:
        # Another build (or an interrupted one) is still writing it: wait rather than build a second copy.
        if not yes:
            return Result("pending", p, pending["SnapshotId"])
        b = Builder(clients, p, t, progress, sleep, clock)

        def wait() -> str:
            b.wait_snapshot(pending["SnapshotId"])
            return pending["SnapshotId"]

        b._step("snapshot data volume", wait)
        return Result("exists", p, pending["SnapshotId"], steps=b.steps)
    check_aws(clients, p)
    if not yes:
        return Result("planned", p)
    return Builder(clients, p, t, progress, sleep, clock).build()


# -- IAM ---------------------------------------------------------------------------------------------------------
BUILDER_MANAGED_POLICY = "AmazonSSMManagedInstanceCore"
"""All the builder's role needs: the SSM agent registers and runs commands (ECR pulls use the operator's token)."""


def operator_policy(partition: str, region: str, account: str, builder_role_arn: str,
                    ecr_repositories: Optional[list[str]] = None) -> dict[str, Any]:
    """The least IAM policy that runs `snapshot build`: launch, stop, snapshot and terminate only what carries the
    builder/snapshot tags (tag-on-create conditions, EC2 user guide "Grant permission to tag resources during
    creation" and "Example policies for working with the EC2 API"), run commands only on tagged instances
    (Systems Manager user guide, "Restricting Run Command access based on tags"), pass only the builder's role to
    EC2. `ecr_repositories` (ARN patterns) add the pull rights the ECR token carries. sts:GetCallerIdentity needs no
    permission (STS API reference)."""
    from burstctl.program import stack_config

    ec2 = f"arn:{partition}:ec2:{region}"
    # The key the build tags the snapshot with and the stack's `auto` lookup filters on: one constant, not a copy.
    snap_tag = stack_config().SNAPSHOT_TAG
    statements: list[dict[str, Any]] = [
        {"Sid": "Describe", "Effect": "Allow",  # these EC2/SSM reads support no resource-level permissions
         "Action": ["ec2:DescribeSnapshots", "ec2:DescribeInstances", "ec2:DescribeInstanceTypes",
                    "ec2:DescribeSubnets", "ssm:DescribeInstanceInformation",
                    "ssm:GetCommandInvocation"],
         "Resource": "*"},
        {"Sid": "BottlerocketAmiParameter", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": f"arn:{partition}:ssm:{region}::parameter/aws/service/bottlerocket/*"},
        {"Sid": "ReadBuilderProfile", "Effect": "Allow", "Action": "iam:GetInstanceProfile",
         "Resource": f"arn:{partition}:iam::{account}:instance-profile/*"},
        {"Sid": "LaunchTaggedBuilder", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": [f"{ec2}:{account}:instance/*", f"{ec2}:{account}:volume/*"],
         "Condition": {"Null": {f"aws:RequestTag/{BUILDER_TAG}": "false"}}},
        {"Sid": "LaunchFrom", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": [f"{ec2}::image/*", f"{ec2}:{account}:subnet/*", f"{ec2}:{account}:security-group/*",
                      f"{ec2}:{account}:network-interface/*"]},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": [f"{ec2}:{account}:instance/*", f"{ec2}:{account}:volume/*", f"{ec2}::snapshot/*"],
         "Condition": {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateSnapshot"]}}},
        {"Sid": "OperateBuilder", "Effect": "Allow", "Action": ["ec2:StopInstances", "ec2:TerminateInstances"],
         "Resource": f"{ec2}:{account}:instance/*",
         "Condition": {"Null": {f"ec2:ResourceTag/{BUILDER_TAG}": "false"}}},
        {"Sid": "SnapshotBuilderVolume", "Effect": "Allow", "Action": "ec2:CreateSnapshot",
         "Resource": f"{ec2}:{account}:volume/*",
         "Condition": {"Null": {f"ec2:ResourceTag/{BUILDER_TAG}": "false"}}},
        {"Sid": "CreateTaggedSnapshot", "Effect": "Allow", "Action": "ec2:CreateSnapshot",
         "Resource": f"{ec2}::snapshot/*", "Condition": {"Null": {f"aws:RequestTag/{snap_tag}": "false"}}},
        {"Sid": "DeleteFailedSnapshot", "Effect": "Allow", "Action": "ec2:DeleteSnapshot",
         "Resource": f"{ec2}::snapshot/*", "Condition": {"Null": {f"ec2:ResourceTag/{snap_tag}": "false"}}},
        {"Sid": "RunShellScript", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"arn:{partition}:ssm:{region}::document/AWS-RunShellScript"},
        {"Sid": "OnTaggedBuilder", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": f"{ec2}:{account}:instance/*",
         "Condition": {"StringLike": {f"ssm:resourceTag/{BUILDER_TAG}": "*"}}},
        {"Sid": "PassBuilderRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": builder_role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    ]
    if ecr_repositories:
        statements += [
            {"Sid": "EcrToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            # What the token's identity does on the builder: pull, and on a first pull through the cache, import.
            {"Sid": "EcrPull", "Effect": "Allow",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
             "Resource": ecr_repositories},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def ecr_repositories(partition: str, images: list[str]) -> list[str]:
    """ARN patterns of the ECR repositories `images` are pulled from: everything under the first path segment (the
    pull-through-cache prefix, e.g. `repository/docker-hub/*`), or the repository itself."""
    out = set()
    for image in images:
        m = _ECR.match(image)
        if not m:
            continue
        path = image[m.end():].split("@", 1)[0]
        repo = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
        arn = f"arn:{partition}:ecr:{m.group(2)}:{m.group(1)}:repository/"
        out.add(arn + (f"{repo.split('/', 1)[0]}/*" if "/" in repo else repo))
    return sorted(out)
