"""`snapshot build` against moto (EC2, IAM, STS, ECR: real launches, volumes, snapshots, tags, terminations) with
botocore's Stubber for SSM, which moto cannot simulate for a Bottlerocket builder (agent registration, command
invocations that fail or take time). Snapshot state progression, which moto skips (its snapshots are completed at
once), is replayed by an after-call hook on DescribeSnapshots. No test sleeps: every wait polls with delay 0."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import yaml
from botocore.stub import ANY, Stubber

from burstctl import snapshot as sn
from burstctl.output import BadInput, CheckError
from stacks.config import SNAPSHOT_TAG, image_snapshot_tags, snapshot_filters, validate

REGION = "us-west-2"
ROOT = Path(__file__).resolve().parents[2]
VLLM = "vllm/vllm-openai:v0.33.0"
FAST = sn.Timeouts(running=5, ssm_online=5, command=5, stopped=5, snapshot=5, poll=0)


def _stack_raw(**gpu: Any) -> dict:
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: v for k, v in doc.items() if k.startswith("gpu-burst:")}
    raw["gpu"] = {**raw["gpu"], "amiFamily": "bottlerocket", "amiVersion": "v1.64.0",
                  "dataVolumeSnapshotId": "auto", **gpu}
    return raw


def _cfg(**gpu: Any) -> Any:
    return validate({**_stack_raw(**gpu), "region": REGION})


def _stack_file(tmp_path: Path, **gpu: Any) -> Path:
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["gpu-burst:gpu"] = _stack_raw(**gpu)["gpu"]
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class Clock:
    """A clock the waits read; each poll (sleep) advances it by one second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += 1


_AMI: list[str] = []


@pytest.fixture
def account(aws_session, unique) -> Iterator[dict]:
    """A subnet, a builder instance profile and a Bottlerocket-like AMI in the shared moto account."""
    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    iam.create_role(RoleName=unique, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iam.create_instance_profile(InstanceProfileName=unique)
    iam.add_role_to_instance_profile(InstanceProfileName=unique, RoleName=unique)
    if not _AMI:  # listing moto's AMI catalogue takes over a second: once per session
        _AMI.append(ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"])
    yield {"subnet": subnet, "profile": unique, "ami": _AMI[0], "vpc": vpc}
    # snapshots are account-wide in the shared moto account: remove this test's
    for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": [SNAPSHOT_TAG]}])[
            "Snapshots"]:
        ec2.delete_snapshot(SnapshotId=s["SnapshotId"])


class Ssm:
    """An SSM client scripted with Stubber: the builder's AMI parameter, the agent's registration and one
    invocation status sequence per command, in call order."""

    def __init__(self) -> None:
        self.client = boto3.client("ssm", region_name=REGION)
        self.stub = Stubber(self.client)
        self.sent: list[dict] = []
        self.client.meta.events.register("provide-client-params.ssm.SendCommand",
                                         lambda params, **_: self.sent.append(params))

    def ami(self, path: str, ami: str) -> "Ssm":
        self.stub.add_response("get_parameter", {"Parameter": {"Name": path, "Type": "String", "Value": ami,
                                                               "Version": 1, "DataType": "aws:ec2:image"}},
                               {"Name": path})
        return self

    def online_after(self, polls: int) -> "Ssm":
        for _ in range(polls):
            self.stub.add_response("describe_instance_information", {"InstanceInformationList": []})
        self.stub.add_response("describe_instance_information", {"InstanceInformationList": [
            {"InstanceId": "i-x", "PingStatus": "Online", "PlatformType": "Linux"}]})
        return self

    def command(self, *statuses: str, stdout: str = "", stderr: str = "") -> "Ssm":
        self.stub.add_response("send_command", {"Command": {"CommandId": str(uuid.uuid4())}},
                               {"InstanceIds": ANY, "DocumentName": "AWS-RunShellScript", "Comment": ANY,
                                "Parameters": ANY})
        for st in statuses:
            if st == "InvocationDoesNotExist":
                self.stub.add_client_error("get_command_invocation", "InvocationDoesNotExist", http_status_code=400)
            else:
                self.stub.add_response("get_command_invocation", {
                    "Status": st, "StatusDetails": st, "StandardOutputContent": stdout if st == "Success" else "",
                    "StandardErrorContent": stderr}, {"CommandId": ANY, "InstanceId": ANY})
        return self

    def happy(self, p: sn.Plan, ami: str) -> "Ssm":
        listed = "\n".join(sn.containerd_name(i) for i in p.images) + "\nlocalhost/kubernetes/pause:0.1.0\n"
        self.ami(p.ami_parameter, ami).online_after(2)
        self.command("InvocationDoesNotExist", "InProgress", "Success")   # stop kubelet
        for _ in p.images:
            self.command("Pending", "InProgress", "Success")              # pull
        return self.command("Success", stdout=listed)                      # images ls -q

    def activate(self) -> Any:
        self.stub.activate()
        return self.client


def _clients(ssm: Any) -> sn.Clients:
    return sn.Clients(ec2=boto3.client("ec2", region_name=REGION), ssm=ssm,
                      sts=boto3.client("sts", region_name=REGION), iam=boto3.client("iam", region_name=REGION),
                      ecr=lambda r: boto3.client("ecr", region_name=r), region=REGION)


def _plan(account: dict, cfg: Any = None, **kw: Any) -> sn.Plan:
    cfg = cfg or _cfg()
    args = {"subnet_id": account["subnet"], "instance_profile": account["profile"], "instance_type": "m6i.large",
            "security_group_ids": [], "volume_size_gib": None, "public_ip": False, **kw}
    return sn.plan(cfg, "123456789012", **args)


def _builders(vpc: str) -> list[dict]:
    ec2 = boto3.client("ec2", region_name=REGION)
    res = ec2.describe_instances(Filters=[{"Name": f"tag-key", "Values": [sn.BUILDER_TAG]},
                                          {"Name": "vpc-id", "Values": [vpc]}])["Reservations"]
    return [i for r in res for i in r["Instances"]]


def _snapshots(tags: dict) -> list[dict]:
    ec2 = boto3.client("ec2", region_name=REGION)
    return ec2.describe_snapshots(OwnerIds=["self"], Filters=snapshot_filters(tags))["Snapshots"]


# -- the build -------------------------------------------------------------------------------------------------------
def test_build_follows_the_reference_steps_tags_the_snapshot_and_terminates(account):
    p = _plan(account)
    ssm = Ssm().happy(p, account["ami"])
    events: list[tuple[str, str]] = []
    clock = Clock()
    r = sn.build(_clients(ssm.activate()), p, yes=True, timeouts=FAST,
                 progress=lambda s, st, d: events.append((s, st)), sleep=clock.sleep, clock=clock)
    ssm.stub.assert_no_pending_responses()
    assert r.status == "built" and r.snapshot_id.startswith("snap-")
    assert [s.name for s in r.steps] == ["launch builder", "wait for SSM agent", "stop kubelet", "pull images",
                                         "stop builder", "snapshot data volume"]
    # the tags are the stack's: the `auto` lookup's filters find exactly this snapshot
    assert p.tags == image_snapshot_tags([VLLM], "1.64.0", "1.35")
    assert [s["SnapshotId"] for s in _snapshots(p.tags)] == [r.snapshot_id]
    snap = _snapshots(p.tags)[0]
    assert snap["Encrypted"] is True and snap["VolumeSize"] == 100
    # the builder: Bottlerocket's admin container in user data, IMDSv2 hop 1, terminated at the end
    (inst,) = _builders(account["vpc"])
    assert inst["State"]["Name"] == "terminated" and r.cleanup == f"{inst['InstanceId']} terminated"
    ec2 = boto3.client("ec2", region_name=REGION)
    ud = ec2.describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(ud).decode() == "[settings.host-containers.admin]\nenabled = true\n"
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert {t["Key"]: t["Value"] for t in inst["Tags"]}[sn.BUILDER_TAG] == p.tags[SNAPSHOT_TAG]
    # the commands: kubelet stopped, the image pulled into k8s.io under the name the CRI plugin looks up
    cmds = [c["Parameters"]["commands"][0] for c in ssm.sent]
    assert cmds[0] == "apiclient exec admin sheltie systemctl stop kubelet"
    assert cmds[1] == ("apiclient exec admin sheltie ctr -a /run/containerd/containerd.sock -n k8s.io images pull "
                       "--label io.cri-containerd.image=managed --platform linux/amd64 "
                       "docker.io/vllm/vllm-openai:v0.33.0")
    assert cmds[2].endswith("-n k8s.io images ls -q")
    assert ("pull images", "tick") in events and ("snapshot data volume", "done") in events


def test_a_second_build_finds_the_snapshot_and_does_nothing(account):
    p = _plan(account)
    ssm = Ssm().happy(p, account["ami"])
    first = sn.build(_clients(ssm.activate()), p, yes=True, timeouts=FAST, sleep=lambda s: None)
    idle = Ssm()  # any SSM call would fail: nothing is scripted
    again = sn.build(_clients(idle.activate()), p, yes=True, timeouts=FAST, sleep=lambda s: None)
    assert again.status == "exists" and again.snapshot_id == first.snapshot_id and again.steps == []
    assert len(_builders(account["vpc"])) == 1  # no second builder was launched


def test_without_yes_it_only_plans(account):
    r = sn.build(_clients(Ssm().activate()), _plan(account), yes=False, timeouts=FAST)
    assert r.status == "planned" and r.snapshot_id is None and _builders(account["vpc"]) == []


def test_a_failed_pull_terminates_the_builder_and_says_why(account):
    p = _plan(account)
    ssm = Ssm().ami(p.ami_parameter, account["ami"]).online_after(0).command("Success")
    ssm.command("InProgress", "Failed", stderr="ctr: failed to resolve reference: 429 Too Many Requests")
    with pytest.raises(CheckError) as e:
        sn.build(_clients(ssm.activate()), p, yes=True, timeouts=FAST, sleep=lambda s: None)
    msg = str(e.value)
    assert "429 Too Many Requests" in msg and "ended Failed" in msg and "terminated" in msg
    (inst,) = _builders(account["vpc"])
    assert inst["State"]["Name"] == "terminated" and _snapshots(p.tags) == []


def test_an_agent_that_never_registers_times_out_and_terminates(account):
    p = _plan(account)
    ssm = Ssm().ami(p.ami_parameter, account["ami"])
    for _ in range(6):
        ssm.stub.add_response("describe_instance_information", {"InstanceInformationList": []})
    clock = Clock()
    with pytest.raises(CheckError) as e:
        sn.build(_clients(ssm.activate()), p, yes=True, timeouts=FAST, sleep=clock.sleep, clock=clock)
    assert "did not finish within 5 s" in str(e.value) and "AmazonSSMManagedInstanceCore" in str(e.value)
    assert [i["State"]["Name"] for i in _builders(account["vpc"])] == ["terminated"]


def test_ctrl_c_during_the_build_still_terminates_the_builder(account):
    p = _plan(account)
    ssm = Ssm().ami(p.ami_parameter, account["ami"]).online_after(0).command("Success")

    def interrupt(step: str, state: str, detail: str) -> None:
        if step == "pull images" and state == "start":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sn.build(_clients(ssm.activate()), p, yes=True, timeouts=FAST, progress=interrupt, sleep=lambda s: None)
    assert [i["State"]["Name"] for i in _builders(account["vpc"])] == ["terminated"]


def _replay_snapshot_states(ec2: Any, states: list[tuple[str, str]]) -> None:
    """DescribeSnapshots by id answers the given (State, Progress) in turn, as EC2 reports a snapshot being written."""
    seq = list(states)

    def rewrite(parsed: dict, model: Any, **_: Any) -> None:
        if seq and parsed.get("Snapshots") and len(parsed["Snapshots"]) == 1:
            state, progress = seq.pop(0)
            parsed["Snapshots"][0].update({"State": state, "Progress": progress})

    ec2.meta.events.register("after-call.ec2.DescribeSnapshots", rewrite)


def test_snapshot_progress_is_reported_until_completed(account):
    p = _plan(account)
    clients = _clients(Ssm().happy(p, account["ami"]).activate())
    _replay_snapshot_states(clients.ec2, [("completed", "100%")] * 0)  # the idempotence lookups are not by id
    ticks: list[str] = []
    sid: dict = {}

    def report(step: str, state: str, detail: str) -> None:
        if step == "snapshot data volume" and state == "tick":
            ticks.append(detail)
        if step == "snapshot data volume" and state == "start" and not sid:
            sid["armed"] = True
            _replay_snapshot_states(clients.ec2, [("pending", "10%"), ("pending", "70%")])

    r = sn.build(clients, p, yes=True, timeouts=FAST, progress=report, sleep=lambda s: None)
    assert r.status == "built" and ticks == ["10%", "70%"]


def test_a_snapshot_in_error_is_deleted_and_the_builder_terminated(account):
    p = _plan(account)
    clients = _clients(Ssm().happy(p, account["ami"]).activate())

    def arm(step: str, state: str, detail: str) -> None:
        if step == "snapshot data volume" and state == "start":
            _replay_snapshot_states(clients.ec2, [("pending", "5%"), ("error", "5%")])

    with pytest.raises(CheckError) as e:
        sn.build(clients, p, yes=True, timeouts=FAST, progress=arm, sleep=lambda s: None)
    assert "failed" in str(e.value) and "deleted" in str(e.value)
    ec2 = boto3.client("ec2", region_name=REGION)
    assert [s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
            if any(t["Key"] == SNAPSHOT_TAG for t in s.get("Tags", []))] == []
    assert [i["State"]["Name"] for i in _builders(account["vpc"])] == ["terminated"]


def test_a_snapshot_still_being_written_is_waited_for_not_built_twice(account):
    p = _plan(account)
    ec2 = boto3.client("ec2", region_name=REGION)
    vol = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=20)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": k, "Value": v} for k, v in p.tags.items()]}])
    pending = {k: snap[k] for k in ("SnapshotId", "VolumeId", "StartTime", "OwnerId", "VolumeSize", "Encrypted")}
    pending.update({"State": "pending", "Progress": "50%", "Tags": snap["Tags"]})
    clients = _clients(Ssm().activate())  # any SSM call (a launch) would fail
    answers: list = []

    def pending_first(parsed: dict, **_: Any) -> None:
        if answers:
            parsed["Snapshots"] = answers.pop(0)

    clients.ec2.meta.events.register("after-call.ec2.DescribeSnapshots", pending_first)
    # lookups: completed (none yet), pending (this one); then, with --yes, polled once pending and once completed
    answers[:] = [[], [pending]]
    assert sn.build(clients, p, yes=False, timeouts=FAST).status == "pending"
    answers[:] = [[], [pending], [pending]]
    r = sn.build(clients, p, yes=True, timeouts=FAST, sleep=lambda s: None)
    assert r.status == "exists" and r.snapshot_id == snap["SnapshotId"] and _builders(account["vpc"]) == []
    assert [s.name for s in r.steps] == ["snapshot data volume"]


def test_images_in_ecr_pull_with_a_token_that_never_reaches_the_output(account):
    secret = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf"
    cfg = _cfg(imageCache={"dockerHubCredentialArn": secret})
    p = _plan(account, cfg)
    ecr_ref = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/docker-hub/{VLLM}"
    assert p.images == [ecr_ref] and p.tags == image_snapshot_tags([ecr_ref], "1.64.0", "1.35")
    ssm = Ssm().happy(p, account["ami"])
    r = sn.build(_clients(ssm.activate()), p, yes=True, timeouts=FAST, sleep=lambda s: None)
    token = base64.b64decode(boto3.client("ecr", region_name=REGION).get_authorization_token()[
        "authorizationData"][0]["authorizationToken"]).decode()
    pull = ssm.sent[1]["Parameters"]["commands"][0]
    assert f"--user {token} {ecr_ref}" in pull
    assert token.split(":", 1)[1] not in json.dumps(r.as_dict(), default=str)
    assert all(token.split(":", 1)[1] not in c["Comment"] for c in ssm.sent)


@pytest.mark.parametrize("image,name", [
    ("vllm/vllm-openai:v0.33.0", "docker.io/vllm/vllm-openai:v0.33.0"),
    ("python:3.12", "docker.io/library/python:3.12"),
    ("index.docker.io/vllm/vllm-openai:v1", "docker.io/vllm/vllm-openai:v1"),
    ("vllm/vllm-openai:v1@sha256:" + "a" * 64, "docker.io/vllm/vllm-openai@sha256:" + "a" * 64),
    ("ghcr.io/acme/vllm", "ghcr.io/acme/vllm:latest"),
    ("localhost:5000/vllm:1", "localhost:5000/vllm:1"),
    ("123456789012.dkr.ecr.us-west-2.amazonaws.com/docker-hub/vllm/vllm-openai:v0.33.0",
     "123456789012.dkr.ecr.us-west-2.amazonaws.com/docker-hub/vllm/vllm-openai:v0.33.0"),
])
def test_containerd_names_are_the_cri_normalized_references(image, name):
    # distribution/reference ParseDockerRef, which the CRI plugin resolves a pod's image with
    assert sn.containerd_name(image) == name


# -- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,flag", [
    ({"subnet_id": "subnet-xyz"}, "--subnet-id"),
    ({"instance_profile": "has space"}, "--instance-profile"),
    ({"instance_type": "M6I.large"}, "--instance-type"),
    ({"security_group_ids": ["sg-1"]}, "--security-group-id"),
    ({"volume_size_gib": 500}, "--volume-size-gib"),
])
def test_bad_flags_are_one_line_naming_the_flag(kw, flag):
    args = {"subnet_id": "subnet-0123456789abcdef0", "instance_profile": "builder", "instance_type": "m6i.large",
            "security_group_ids": [], "volume_size_gib": None, **kw}
    with pytest.raises(BadInput) as e:
        sn.check_flags(args["subnet_id"], args["instance_profile"], args["instance_type"],
                       args["security_group_ids"], args["volume_size_gib"], 200)
    assert str(e.value).startswith(f"{flag}: ") and "allowed" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("gpu,key", [({"amiFamily": "al2023", "amiVersion": "v20260714",
                                       "dataVolumeSnapshotId": None}, "gpu-burst:gpu.amiFamily")])
def test_a_stack_that_cannot_use_a_snapshot_is_refused(gpu, key):
    cfg = validate({**_stack_raw(**gpu), "region": REGION})
    with pytest.raises(BadInput) as e:
        sn.stack_identity(cfg, "123456789012")
    assert str(e.value).startswith(key)


@pytest.mark.parametrize("kw,flag,words", [
    ({"instance_type": "m6g.large"}, "--instance-type", "x86_64"),
    ({"instance_type": "m6i.huge"}, "--instance-type", "does not exist"),
    ({"subnet_id": "subnet-0123456789abcdef0"}, "--subnet-id", "does not exist"),
    ({"instance_profile": "no-such-profile"}, "--instance-profile", "does not exist"),
])
def test_flags_the_account_refuses_are_bad_input_before_any_launch(account, kw, flag, words):
    with pytest.raises(BadInput) as e:
        sn.build(_clients(Ssm().activate()), _plan(account, **kw), yes=True, timeouts=FAST)
    assert str(e.value).startswith(f"{flag}: ") and words in str(e.value)
    assert _builders(account["vpc"]) == []


def test_an_ami_release_without_the_variant_fails_before_launch_and_names_the_key(account):
    p = _plan(account)
    ssm = Ssm()
    ssm.stub.add_client_error("get_parameter", "ParameterNotFound", http_status_code=400)
    with pytest.raises(CheckError) as e:
        sn.build(_clients(ssm.activate()), p, yes=True, timeouts=FAST)
    assert str(e.value).startswith("gpu-burst:gpu.amiVersion: Bottlerocket 1.64.0 has no aws-k8s-1.35 x86_64 AMI")
    assert _builders(account["vpc"]) == []


# -- the command -----------------------------------------------------------------------------------------------------
def test_cli_reports_a_plan_as_a_table_and_as_json(invoke, account, tmp_path, monkeypatch):
    monkeypatch.setattr(sn, "make_clients", lambda region, profile, timeout: _clients(Ssm().activate()))
    f = _stack_file(tmp_path)
    args = ["snapshot", "build", "--stack-file", f, "--subnet-id", account["subnet"], "--instance-profile",
            account["profile"], "--no-progress"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "not built yet (run with --yes to build it)" in r.stdout and "docker.io" not in r.stdout
    assert VLLM in r.stdout and "1.64.0 aws-k8s-1.35 x86_64" in r.stdout
    j = invoke(*args, "--json")
    doc = json.loads(j.stdout)
    assert doc["status"] == "planned" and doc["plan"]["images"] == [VLLM]
    assert doc["plan"]["ami_parameter"] == "/aws/service/bottlerocket/aws-k8s-1.35/x86_64/1.64.0/image_id"


@pytest.mark.parametrize("extra,words", [
    (["--subnet-id", "nope"], "--subnet-id: 'nope' is not a subnet id"),
    (["--volume-size-gib", "900"], "--volume-size-gib: 900 GiB"),
])
def test_cli_bad_flags_exit_2_with_one_json_error(invoke, tmp_path, extra, words):
    f = _stack_file(tmp_path)
    base = {"--subnet-id": "subnet-0123456789abcdef0", "--instance-profile": "builder"}
    for k, v in zip(extra[::2], extra[1::2]):
        base[k] = v
    r = invoke("snapshot", "build", "--stack-file", f, *[x for kv in base.items() for x in kv], "--json")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and doc["error"].startswith(words)


def test_cli_refuses_an_al2023_stack_naming_the_key(invoke, tmp_path):
    f = _stack_file(tmp_path, amiFamily="al2023", amiVersion="v20260714", dataVolumeSnapshotId=None)
    r = invoke("snapshot", "build", "--stack-file", f, "--subnet-id", "subnet-0123456789abcdef0",
               "--instance-profile", "builder", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"].startswith("gpu-burst:gpu.amiFamily: al2023")


# -- preflight -------------------------------------------------------------------------------------------------------
def _pf_clients() -> Any:
    from burstctl import preflight as pf

    return pf.AwsClients(boto3.client("ec2", region_name=REGION), boto3.client("iam", region_name=REGION), None,
                         REGION, None, boto3.client("sts", region_name=REGION))


def _tagged_snapshot(tags: dict, size_gib: int = 20) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    vol = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=size_gib)["VolumeId"]
    return ec2.create_snapshot(VolumeId=vol, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": k, "Value": v} for k, v in tags.items()]}])["SnapshotId"]


def test_preflight_reports_whether_the_auto_snapshot_exists(account):
    from burstctl import preflight as pf

    (missing,) = pf.check_image_snapshot(_pf_clients(), _cfg())
    assert missing.status == "warn" and "GPU nodes will pull the image" in missing.detail
    assert "burstctl snapshot build --stack-file" in missing.cause
    sid = _tagged_snapshot(image_snapshot_tags([VLLM], "1.64.0", "1.35"))
    (found,) = pf.check_image_snapshot(_pf_clients(), _cfg())
    assert found.status == "pass" and found.data["snapshot_id"] == sid
    # the same tags as the builder writes: a snapshot for another release does not count
    (other,) = pf.check_image_snapshot(_pf_clients(), _cfg(amiVersion="v1.63.0"))
    assert other.status == "warn"


def test_preflight_checks_an_explicit_snapshot_id(account):
    from burstctl import preflight as pf

    sid = _tagged_snapshot({SNAPSHOT_TAG: "manual"})
    (ok,) = pf.check_image_snapshot(_pf_clients(), _cfg(dataVolumeSnapshotId=sid, fastImagePull=False))
    assert ok.status == "pass"
    (bad,) = pf.check_image_snapshot(_pf_clients(), _cfg(dataVolumeSnapshotId="snap-0123456789abcdef0",
                                                         fastImagePull=False))
    assert bad.status == "fail" and "is missing" in bad.detail


def test_preflight_fails_a_snapshot_larger_than_the_nodes_data_volume(account):
    # EC2 refuses a volume smaller than its snapshot, so no GPU node could launch: explicit id and `auto` alike.
    from burstctl import preflight as pf

    cfg = _cfg(volumeSizeGib=150)
    sid = _tagged_snapshot(image_snapshot_tags([VLLM], "1.64.0", "1.35"), size_gib=250)
    (auto,) = pf.check_image_snapshot(_pf_clients(), cfg)
    assert auto.status == "fail" and f"{sid} is 250 GiB, larger than gpu.volumeSizeGib (150 GiB)" in auto.detail
    assert "--volume-size-gib 150" in auto.cause
    (explicit,) = pf.check_image_snapshot(_pf_clients(), _cfg(volumeSizeGib=150, dataVolumeSnapshotId=sid,
                                                              fastImagePull=False))
    assert explicit.status == "fail" and explicit.data["volume_size_gib"] == 250
    (fits,) = pf.check_image_snapshot(_pf_clients(), _cfg(volumeSizeGib=250, dataVolumeSnapshotId=sid,
                                                          fastImagePull=False))
    assert fits.status == "pass"


# -- IAM -------------------------------------------------------------------------------------------------------------
def _record_actions(clients: sn.Clients) -> set:
    actions: set = set()

    def record(model: Any, **_: Any) -> None:
        actions.add(f"{model.service_model.signing_name}:{model.name}")

    ecr = clients.ecr(REGION)
    for c in (clients.ec2, clients.ssm, clients.sts, clients.iam, ecr):
        c.meta.events.register("before-parameter-build", record)
    clients.ecr = lambda region: ecr
    return actions


def _allowed(policy: dict) -> set:
    out = set()
    for st in policy["Statement"]:
        out.update([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    return out


def test_the_documented_operator_policy_covers_every_call_of_a_build(account):
    secret = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf"
    p = _plan(account, _cfg(imageCache={"dockerHubCredentialArn": secret}))
    clients = _clients(Ssm().happy(p, account["ami"]).activate())
    calls = _record_actions(clients)
    sn.build(clients, p, yes=True, timeouts=FAST, sleep=lambda s: None)
    role = "arn:aws:iam::123456789012:role/gpu-burst-snapshot-builder"
    policy = sn.operator_policy("aws", REGION, "123456789012", role, sn.ecr_repositories("aws", p.images))
    # GetCallerIdentity needs no permission; tags given in RunInstances/CreateSnapshot need ec2:CreateTags
    assert calls - {"sts:GetCallerIdentity"} <= _allowed(policy), sorted(calls - _allowed(policy))
    assert {"ec2:RunInstances", "ec2:CreateSnapshot", "ssm:SendCommand", "ec2:TerminateInstances"} <= calls
    by_sid = {st["Sid"]: st for st in policy["Statement"]}
    # every action that creates or changes something is scoped by a builder/snapshot tag or to one role/document
    assert by_sid["LaunchTaggedBuilder"]["Condition"] == {"Null": {f"aws:RequestTag/{sn.BUILDER_TAG}": "false"}}
    assert by_sid["OperateBuilder"]["Condition"] == {"Null": {f"ec2:ResourceTag/{sn.BUILDER_TAG}": "false"}}
    assert by_sid["CreateTaggedSnapshot"]["Condition"] == {"Null": {f"aws:RequestTag/{SNAPSHOT_TAG}": "false"}}
    assert by_sid["OnTaggedBuilder"]["Condition"] == {"StringLike": {f"ssm:resourceTag/{sn.BUILDER_TAG}": "*"}}
    assert by_sid["PassBuilderRole"] == {"Sid": "PassBuilderRole", "Effect": "Allow", "Action": "iam:PassRole",
                                         "Resource": role,
                                         "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}
    assert by_sid["EcrPull"]["Resource"] == [f"arn:aws:ecr:{REGION}:123456789012:repository/docker-hub/*"]
    unscoped = [st["Sid"] for st in policy["Statement"] if st["Resource"] == "*"]
    assert unscoped == ["Describe", "EcrToken"]


def test_without_ecr_images_the_policy_has_no_ecr_rights():
    policy = sn.operator_policy("aws", REGION, "123456789012", "arn:aws:iam::123456789012:role/b",
                                sn.ecr_repositories("aws", [VLLM]))
    assert not [a for a in _allowed(policy) if a.startswith("ecr:")]


def test_cli_prints_the_policy_for_the_stack(invoke, tmp_path):
    f = _stack_file(tmp_path)
    r = invoke("snapshot", "policy", "--stack-file", f, "--builder-role-arn",
               "arn:aws:iam::123456789012:role/gpu-burst-snapshot-builder")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["Version"] == "2012-10-17" and "ec2:RunInstances" in _allowed(doc)
    bad = invoke("snapshot", "policy", "--stack-file", f, "--builder-role-arn", "gpu-burst-snapshot-builder")
    assert bad.exit_code == 2 and "--builder-role-arn" in bad.stderr


def test_the_docs_list_every_statement_of_the_policy_and_no_hand_run_script():
    cli = (ROOT / "docs" / "cli.md").read_text()
    section = cli[cli.index("## snapshot build"):cli.index("## sweep")]
    sids = [st["Sid"] for st in sn.operator_policy("aws", REGION, "123456789012", "arn:aws:iam::1:role/b",
                                                    ["arn:aws:ecr:x"])["Statement"]]
    assert [s for s in sids if f"`{s}`" not in section] == []
    cold = (ROOT / "docs" / "cold-start.md").read_text()
    assert "snapshot.sh" not in cold and "burstctl snapshot build --stack-file" in cold


def test_cli_exits_1_when_the_builder_could_not_be_terminated(invoke, account, tmp_path, monkeypatch):
    p = _plan(account)
    clients = _clients(Ssm().happy(p, account["ami"]).activate())

    def deny(params: Any, **_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "TerminateInstances")

    clients.ec2.meta.events.register("before-call.ec2.TerminateInstances", deny)
    monkeypatch.setattr(sn, "make_clients", lambda region, profile, timeout: clients)
    monkeypatch.setattr(sn, "Timeouts", lambda: FAST)
    r = invoke("snapshot", "build", "--stack-file", _stack_file(tmp_path), "--subnet-id", account["subnet"],
               "--instance-profile", account["profile"], "--yes", "--no-progress", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["status"] == "built"
    assert doc["cleanup"].startswith("could not terminate") and "aws ec2 terminate-instances" in doc["cleanup"]
    boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[doc["instance_id"]])
