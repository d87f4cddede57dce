"""`preflight` with moto for EC2/IAM and botocore's Stubber for Service Quotas (moto does not implement the
EC2 quotas), so the quota calls still go through the real request/response shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from burstctl import preflight as pf

REGION = "us-west-2"


@pytest.fixture
def aws(aws_session) -> Iterator[None]:
    yield
    # The spot role is account-wide in the shared moto account: leave it absent for the next test.
    iam = boto3.client("iam", region_name=REGION)
    try:
        iam.delete_role(RoleName="AWSServiceRoleForEC2Spot")
    except iam.exceptions.NoSuchEntityException:
        pass


def quota_client(values: dict[str, object]) -> tuple[object, Stubber]:
    """A service-quotas client answering get_service_quota in order. A value may be a number, an error code, or
    ("default", n) for an account that never changed the quota (NoSuchResource, then the AWS default)."""
    client = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(client)
    for code, value in values.items():
        params = {"ServiceCode": "ec2", "QuotaCode": code}
        if isinstance(value, str):
            stub.add_client_error("get_service_quota", service_error_code=value, http_status_code=400,
                                  expected_params=params)
        elif isinstance(value, tuple):
            stub.add_client_error("get_service_quota", service_error_code="NoSuchResourceException",
                                  http_status_code=400, expected_params=params)
            stub.add_response("get_aws_default_service_quota", {"Quota": {
                "ServiceCode": "ec2", "QuotaCode": code, "QuotaName": "default", "Value": float(value[1]),
                "Unit": "None", "Adjustable": True, "GlobalQuota": False}}, expected_params=params)
        else:
            stub.add_response("get_service_quota", {"Quota": {
                "ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)", "QuotaCode": code,
                "QuotaArn": f"arn:aws:servicequotas:{REGION}:123456789012:ec2/{code}", "QuotaName": code,
                "Value": float(value), "Unit": "None", "Adjustable": True, "GlobalQuota": False}},
                expected_params=params)
    stub.activate()
    return client, stub


def ssm_client(answers: dict[str, object]) -> object:
    """An SSM client answering get_parameter per path, in order: an AMI id, or an error code."""
    client = boto3.client("ssm", region_name=REGION)
    stub = Stubber(client)
    for path, value in answers.items():
        if isinstance(value, tuple):  # (code, http status)
            stub.add_client_error("get_parameter", service_error_code=value[0], http_status_code=value[1],
                                  expected_params={"Name": path})
        else:
            stub.add_response("get_parameter", {"Parameter": {
                "Name": path, "Type": "String", "Value": value, "Version": 1, "DataType": "aws:ec2:image",
                "ARN": f"arn:aws:ssm:{REGION}::parameter{path}"}}, expected_params={"Name": path})
    stub.activate()
    return client


AL2023_NVIDIA = ("/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/nvidia/"
                 "amazon-eks-node-al2023-x86_64-nvidia-1.35-{v}/image_id")


def any_ami() -> object:
    """An SSM client answering one get_parameter (whatever the name) with an AMI id: for tests about other checks."""
    client = boto3.client("ssm", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("get_parameter", {"Parameter": {"Name": "/aws/service/x", "Type": "String",
                                                      "Value": "ami-0123456789abcdef0", "Version": 1}})
    stub.activate()
    return client


ADDONS = ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent")


def addon_info(addon: str, k8s: str, builds: list[str], default: object = None) -> dict:
    """One add-on as DescribeAddonVersions answers for a Kubernetes version (newest build first, as EKS lists them)."""
    return {"addonName": addon, "type": "networking", "owner": "aws", "publisher": "eks", "addonVersions": [
        {"addonVersion": b, "architecture": ["amd64", "arm64"], "computeTypes": ["ec2", "auto"],
         "compatibilities": [{"clusterVersion": k8s, "platformVersions": ["*"], "defaultVersion": b == default}],
         "requiresConfiguration": False, "requiresIamPermissions": False} for b in builds]}


def eks_client(k8s: str = "1.35", answers: dict | None = None) -> object:
    """An EKS client answering describe_addon_versions for the four add-ons in order. By default each publishes the
    stack's default build (EKS's default too) and a newer one; `answers` replaces an add-on's answer with a list of
    builds (the first is EKS's default) or an error code."""
    from stacks.config.eks_addons import DEFAULT_ADDON_VERSIONS

    client = boto3.client("eks", region_name=REGION)
    stub = Stubber(client)
    for addon in ADDONS:
        params = {"addonName": addon, "kubernetesVersion": k8s}
        answer = (answers or {}).get(addon)
        if isinstance(answer, str):
            stub.add_client_error("describe_addon_versions", service_error_code=answer, http_status_code=403,
                                  expected_params=params)
            continue
        builds = answer if answer is not None else [DEFAULT_ADDON_VERSIONS[k8s][addon]]
        newer = [] if answer is not None else ["v9.9.9-eksbuild.1"]
        stub.add_response("describe_addon_versions", {"addons": [
            addon_info(addon, k8s, newer + builds, builds[0] if builds else None)]} if builds or newer
            else {"addons": []}, expected_params=params)
    stub.activate()
    return client


def sts_client(arn: str) -> object:
    """An STS client answering get_caller_identity with `arn` (as `aws sts get-caller-identity` prints it)."""
    client = boto3.client("sts", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("get_caller_identity", {"UserId": "AROAEXAMPLE:alice", "Account": "123456789012", "Arn": arn})
    stub.activate()
    return client


def clients(quotas: object, ssm: object = None, eks: object = None, sts: object = None) -> pf.AwsClients:
    ssm = ssm or any_ami()
    return pf.AwsClients(boto3.client("ec2", region_name=REGION), boto3.client("iam", region_name=REGION), quotas,
                         REGION, ssm, sts or boto3.client("sts", region_name=REGION), eks or eks_client(),
                         boto3.client("acm", region_name=REGION), boto3.client("route53", region_name=REGION))


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


# -- the stack file ----------------------------------------------------------------------------------------------
def test_stack_file_is_read_like_the_program_reads_its_config(fixtures: Path):
    raw = pf.read_stack_file(fixtures / "Pulumi.prod.yaml")
    assert raw["region"] == REGION and raw["hfTokenSet"] is True and "hfToken" not in raw
    dev = pf.read_stack_file(fixtures / "Pulumi.dev.yaml")
    assert "apiKey" not in dev and dev["hfTokenSet"] is False
    assert dev["models"][0]["servedName"] == "qwen2-5-1-5b-instruct"  # JSON string decoded, as raw_from_pulumi does
    cfg = pf.load_stack(fixtures / "Pulumi.prod.yaml")
    assert pf.vcpu_needs(cfg) == {("G", "spot"): (128, ["gpu-spot"]), ("G", "on-demand"): (64, ["gpu-on-demand"]),
                                  ("P", "on-demand"): (192, ["gpu-large"])}


def test_pool_with_both_capacity_types_counts_against_both_quotas(tmp_path: Path):
    stack = tmp_path / "Pulumi.x.yaml"
    stack.write_text("config:\n  aws:region: eu-west-1\n  gpu-burst:environment: staging\n  gpu-burst:gpu:\n"
                     "    pools:\n    - {name: mixed, instanceFamilies: [g6, p5], capacityTypes: [spot, on-demand],"
                     " gpuLimit: 8, gpusPerNode: [1, 8], cpuLimit: 200}\n")
    needs = pf.vcpu_needs(pf.load_stack(stack))
    assert needs == {(c, t): (200, ["mixed"]) for c in "GP" for t in ("spot", "on-demand")}


# -- checks --------------------------------------------------------------------------------------------------------
def test_dev_stack_passes(aws, fixtures: Path):
    quotas, stub = quota_client({"L-DB2E81BA": 64})
    checks = pf.preflight(clients(quotas), pf.load_stack(fixtures / "Pulumi.dev.yaml"))
    stub.assert_no_pending_responses()
    got = by_name(checks)
    assert [(c.name, c.status) for c in checks] == [
        ("quota L-DB2E81BA", "pass"), ("family g5", "pass"), ("family g6", "pass"),
        (f"ami {pf.load_stack(fixtures / 'Pulumi.dev.yaml').gpu.ami_alias} x86_64", "pass"),
        *((f"addon {a}", "pass") for a in ADDONS), ("spot service-linked role", "skip"),
        ("data-volume snapshot", "skip"), ("cluster creator", "pass")]
    assert got["quota L-DB2E81BA"].data == {"quota_code": "L-DB2E81BA", "value": 64, "needed": 64,
                                            "pools": ["gpu-on-demand"], "capacity_type": "on-demand"}
    assert got["family g5"].data["azs"] == ["us-west-2a", "us-west-2b", "us-west-2c"]
    assert got["spot service-linked role"].detail == "no pool uses spot"


def test_quota_of_a_time_sliced_pool_says_what_its_gpus_serve(aws, tmp_path: Path):
    stack = tmp_path / "Pulumi.x.yaml"
    stack.write_text("config:\n  aws:region: us-west-2\n  gpu-burst:environment: dev\n  gpu-burst:gpu:\n"
                     "    pools:\n    - {name: shared, timeSlicing: 4, gpuLimit: 2, cpuLimit: 32}\n"
                     "    - {name: whole, trafficClass: whole, gpuLimit: 2, cpuLimit: 32}\n")
    quotas, _ = quota_client({"L-DB2E81BA": 64})
    check = by_name(pf.check_quotas(clients(quotas), pf.load_stack(stack)))["quota L-DB2E81BA"]
    # Slices do not change the instances' vCPUs the quota counts: both pools' cpuLimit, as for whole GPUs.
    assert check.status == "pass" and check.data["needed"] == 64 and check.data["time_slicing"] == {"shared": 4}
    assert "pools shared (2 GPUs x 4 slices), whole may use 64" in check.detail


def test_fresh_account_quota_zero_fails_with_the_increase_command(aws, fixtures: Path):
    quotas, _ = quota_client({"L-DB2E81BA": 0})
    check = by_name(pf.preflight(clients(quotas), pf.load_stack(fixtures / "Pulumi.dev.yaml")))["quota L-DB2E81BA"]
    assert check.status == "fail" and "no GPU node can launch" in check.detail
    assert "--quota-code L-DB2E81BA --desired-value 64 --region us-west-2" in check.cause


def test_prod_quotas_default_denied_and_short(aws, fixtures: Path):
    # Sorted buckets: G on-demand, G spot, P on-demand.
    quotas, stub = quota_client({"L-DB2E81BA": ("default", 64), "L-3819A6DF": 32, "L-417A185B": "AccessDeniedException"})
    got = by_name(pf.check_quotas(clients(quotas), pf.load_stack(fixtures / "Pulumi.prod.yaml")))
    stub.assert_no_pending_responses()
    assert got["quota L-DB2E81BA"].status == "pass"  # the AWS default applies when never changed
    assert got["quota L-3819A6DF"].status == "fail"
    assert "only 32 of 128 vCPUs" in got["quota L-3819A6DF"].detail
    assert got["quota L-417A185B"].status == "fail" and "AccessDeniedException" in got["quota L-417A185B"].detail


def test_family_offered_in_too_few_azs(aws, fixtures: Path, tmp_path: Path):
    # moto offers p5e only in us-west-2c: a 3-AZ stack gets a warning, a 2-AZ stack (a, b) a failure.
    cfg = pf.load_stack(fixtures / "Pulumi.prod.yaml")
    got = by_name(pf.check_offerings(clients(None), cfg))
    assert got["family p5e"].status == "warn" and got["family p5e"].data["azs"] == ["us-west-2c"]
    assert got["family g6e"].status == "pass"
    two = tmp_path / "Pulumi.two.yaml"
    two.write_text((fixtures / "Pulumi.prod.yaml").read_text().replace(
        "  gpu-burst:gpu:", "  gpu-burst:network:\n    azCount: 2\n  gpu-burst:gpu:"))
    got = by_name(pf.check_offerings(clients(None), pf.load_stack(two)))
    assert got["family p5e"].status == "fail" and "remove it from instanceFamilies of gpu-large" in got["family p5e"].cause


def test_existing_network_uses_the_subnets_azs(aws, tmp_path: Path):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24", AvailabilityZone=f"us-west-2{az}")["Subnet"]
               ["SubnetId"] for i, az in enumerate("cd")]
    stack = tmp_path / "Pulumi.existing.yaml"
    stack.write_text(json.dumps({"config": {"aws:region": REGION, "gpu-burst:environment": "dev",
                                            "gpu-burst:network": {"mode": "existing", "vpcId": vpc,
                                                                  "privateSubnetIds": subnets}}}))
    cfg = pf.load_stack(stack)
    assert pf.stack_azs(clients(None), cfg) == ["us-west-2c", "us-west-2d"]
    got = by_name(pf.check_offerings(clients(None), cfg))
    assert got["family g5"].status == "warn"  # moto: g5 not in us-west-2d
    assert got["family g6"].status == "pass"


def test_spot_role(aws, fixtures: Path, tmp_path: Path):
    cfg = pf.load_stack(fixtures / "Pulumi.prod.yaml")
    c = clients(None)
    missing = pf.check_spot_role(c, cfg)[0]
    assert missing.status == "fail" and "create-service-linked-role --aws-service-name spot.amazonaws.com" in missing.cause
    creates = tmp_path / "Pulumi.slr.yaml"
    creates.write_text((fixtures / "Pulumi.prod.yaml").read_text() +
                       "  gpu-burst:karpenter:\n    createSpotServiceLinkedRole: true\n")
    assert pf.check_spot_role(c, pf.load_stack(creates))[0].status == "pass"
    c.iam.create_role(RoleName="AWSServiceRoleForEC2Spot", Path="/aws-service-role/spot.amazonaws.com/",
                      AssumeRolePolicyDocument="{}")
    assert pf.check_spot_role(c, cfg)[0].status == "pass"


def test_after_deploy_discovery_tags(aws, unique):
    c = clients(None)
    vpc = c.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    tag = [{"Key": "karpenter.sh/discovery", "Value": unique}]
    for i, az in enumerate("ab"):
        c.ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-west-2{az}",
                            TagSpecifications=[{"ResourceType": "subnet", "Tags": tag}])
    got = by_name(pf.check_discovery(c, unique))
    assert got["discovery subnets"].status == "pass" and "in us-west-2a, us-west-2b" in got["discovery subnets"].detail
    assert got["discovery security group"].status == "fail"
    sg = c.ec2.create_security_group(GroupName="eks-cluster-sg", Description="cluster", VpcId=vpc)["GroupId"]
    c.ec2.create_tags(Resources=[sg], Tags=tag)
    assert by_name(pf.check_discovery(c, unique))["discovery security group"].status == "pass"
    other = by_name(pf.check_discovery(c, unique + "-other"))
    assert other["discovery subnets"].status == "fail" and "subnetSelectorTerms" in other["discovery subnets"].cause


# -- the command -----------------------------------------------------------------------------------------------
def test_cli_exit_codes_and_json(aws, invoke, fixtures: Path, monkeypatch):
    quotas, _ = quota_client({"L-DB2E81BA": 64})
    monkeypatch.setattr(pf, "make_clients", lambda region, profile=None, timeout=None: clients(quotas))
    r = invoke("preflight", "--stack-file", fixtures / "Pulumi.dev.yaml", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["stack"]["pools"] == ["gpu-on-demand"] and doc["stack"]["region"] == REGION
    assert [c["name"] for c in doc["checks"]] == ["quota L-DB2E81BA", "family g5", "family g6",
                                                  f"ami {pf.load_stack(fixtures / 'Pulumi.dev.yaml').gpu.ami_alias} "
                                                  "x86_64", *(f"addon {a}" for a in ADDONS),
                                                  "spot service-linked role", "data-volume snapshot",
                                                  "cluster creator"]

    quotas, _ = quota_client({"L-DB2E81BA": 8})
    r = invoke("preflight", "--stack-file", fixtures / "Pulumi.dev.yaml", "--after-deploy", "--cluster-name", "gone")
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and "L-DB2E81BA" in r.stdout and "check(s) failed" in r.stdout


def test_cli_bad_input_exits_2(invoke, fixtures: Path, tmp_path: Path):
    r = invoke("preflight", "--stack-file", fixtures / "Pulumi.dev.yaml", "--after-deploy")
    assert r.exit_code == 2 and "--cluster-name" in r.stderr
    r = invoke("preflight", "--stack-file", tmp_path / "Pulumi.none.yaml")
    assert r.exit_code == 2 and "--stack-file" in r.stderr
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config:\n  aws:region: us-west-2\n  gpu-burst:environment: dev\n  gpu-burst:gpu:\n"
                   "    pools: [{name: p, instanceFamilies: [m5]}]\n")
    r = invoke("preflight", "--stack-file", bad)
    assert r.exit_code == 2
    assert "gpu-burst:gpu.pools[0].instanceFamilies" in r.stderr and "allowed:" in r.stderr
    noregion = tmp_path / "Pulumi.noregion.yaml"
    noregion.write_text("config:\n  gpu-burst:environment: dev\n")
    r = invoke("preflight", "--stack-file", noregion)
    assert r.exit_code == 2 and "aws:region" in r.stderr


def test_repo_stack_files_need_no_secrets(aws, invoke, monkeypatch):
    # A fresh clone has no secrets set: preflight needs none, and says what `pulumi up` will still need.
    root = Path(__file__).resolve().parents[2]
    for stack in ("Pulumi.dev.yaml", "Pulumi.prod.yaml", "Pulumi.prod-us.yaml", "Pulumi.prod-eu.yaml"):
        cfg = pf.load_stack(root / stack)
        # The stub answers in call order: the buckets sorted, as check_quotas asks them.
        quotas, _ = quota_client({pf.QUOTAS[k][0]: 10_000 for k in sorted(pf.vcpu_needs(cfg))})
        monkeypatch.setattr(pf, "make_clients", lambda region, profile=None, timeout=None: clients(quotas))
        r = invoke("preflight", "--stack-file", root / stack, "--json")
        doc = json.loads(r.stdout)
        assert r.exit_code in (0, 1) and "checks" in doc, r.stdout + r.stderr
        gated = [m for m in cfg.models if m.needs_hf_token]
        notes = [c for c in doc["checks"] if c["name"] == "hf token"]
        assert bool(notes) == bool(gated)
        if notes:
            assert notes[0]["status"] == "warn" and "pulumi config set --secret hfToken" in notes[0]["cause"]


# -- bad regions, server errors, timeouts ----------------------------------------------------------------------
def test_bad_region_names_the_flag(invoke, fixtures: Path, tmp_path: Path):
    for args in (["preflight", "--stack-file", fixtures / "Pulumi.dev.yaml", "--region", "mars-1"],
                 ["sweep", "--cluster-name", "c", "--region", "mars-1"],
                 ["sweep", "--cluster-name", "c", "--region", "us-mars-1", "--json"]):
        r = invoke(*args)
        assert r.exit_code == 2, r.stdout + r.stderr
        assert "--region" in r.stderr and "is not an AWS region" in r.stderr and "Traceback" not in r.stderr
    odd = tmp_path / "Pulumi.odd.yaml"
    odd.write_text((fixtures / "Pulumi.dev.yaml").read_text().replace("aws:region: us-west-2",
                                                                      "aws:region: eu-mars-9"))
    r = invoke("preflight", "--stack-file", odd)
    # the stack file's key, not the flag, is named when the file's own region is unknown
    assert r.exit_code == 2 and "aws:region: 'eu-mars-9' is not an AWS region" in r.stderr, r.stderr


def test_5xx_from_aws_is_not_a_missing_permission(aws, fixtures: Path):
    client = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error("get_service_quota", service_error_code="ServiceUnavailableException",
                          service_message="Service is unavailable", http_status_code=503)
    stub.activate()
    check = by_name(pf.check_quotas(clients(client), pf.load_stack(fixtures / "Pulumi.dev.yaml")))["quota L-DB2E81BA"]
    assert check.status == "fail" and "503" in check.detail
    assert "retry" in check.cause and "allow" not in check.cause
    denied = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(denied)
    stub.add_client_error("get_service_quota", service_error_code="AccessDeniedException", http_status_code=400)
    stub.activate()
    check = by_name(pf.check_quotas(clients(denied), pf.load_stack(fixtures / "Pulumi.dev.yaml")))["quota L-DB2E81BA"]
    assert "allow servicequotas:GetServiceQuota" in check.cause


def test_hung_aws_endpoint_fails_in_seconds(silent_server: str, fixtures: Path, monkeypatch):
    import threading
    import time

    from burstctl import aws
    from burstctl.output import CheckError

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    cfg = aws.client_config(0.3)
    hung = pf.AwsClients(*(boto3.client(svc, region_name=REGION, endpoint_url=silent_server, config=cfg)
                           for svc in ("ec2", "iam", "service-quotas")), REGION,
                         boto3.client("ssm", region_name=REGION, endpoint_url=silent_server, config=cfg))
    out: dict = {}

    def run():
        try:
            pf.preflight(hung, pf.load_stack(fixtures / "Pulumi.dev.yaml"))
        except CheckError as e:
            out["error"] = str(e)

    started = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "AWS call without a timeout"
    assert "did not answer in time" in out.get("error", ""), out
    assert time.monotonic() - started < 10


# -- the GPU AMI alias ---------------------------------------------------------------------------------------------
def test_ami_alias_parameter_paths_match_karpenter():
    # aws/karpenter-provider-aws@v1.14.1 pkg/providers/amifamily/al2023.go resolvePath, bottlerocket.go.
    assert pf.ami_parameter("al2023", "v20260818", "1.35", "x86_64") == AL2023_NVIDIA.format(v="v20260818")
    assert pf.ami_parameter("al2023", "latest", "1.35", "x86_64") == \
        "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/nvidia/recommended/image_id"
    assert pf.ami_parameter("bottlerocket", "v1.64.0", "1.35", "x86_64") == \
        "/aws/service/bottlerocket/aws-k8s-1.35-nvidia/x86_64/1.64.0/image_id"
    assert pf.family_arch("g6e") == "x86_64" and pf.family_arch("g5g") == "arm64" and pf.family_arch("p6-b200") \
        == "x86_64"


def test_ami_alias_resolves_or_fails_clearly(aws, fixtures: Path, tmp_path: Path):
    cfg = pf.load_stack(fixtures / "Pulumi.prod.yaml")
    path = pf.ami_parameter("al2023", cfg.gpu.ami_version, cfg.cluster.kubernetes_version, "x86_64")
    ok = pf.check_ami(clients(None, ssm_client({path: "ami-0abcdef1234567890"})), cfg)
    assert [(c.status, c.data["pools"]) for c in ok] == [("pass", ["gpu-spot", "gpu-on-demand", "gpu-large"])]
    assert "ami-0abcdef1234567890" in ok[0].detail
    missing = pf.check_ami(clients(None, ssm_client({path: ("ParameterNotFound", 400)})), cfg)[0]
    assert missing.status == "fail" and path in missing.detail and "does not exist" in missing.detail
    assert "gpu-burst:gpu.amiVersion" in missing.cause and "get-parameters-by-path" in missing.cause
    denied = pf.check_ami(clients(None, ssm_client({path: ("AccessDeniedException", 400)})), cfg)[0]
    assert "allow ssm:GetParameter" in denied.cause
    down = pf.check_ami(clients(None, ssm_client({path: ("InternalServerError", 500)})), cfg)[0]
    assert "retry" in down.cause and "allow" not in down.cause
    br = tmp_path / "Pulumi.br.yaml"
    br.write_text((fixtures / "Pulumi.prod.yaml").read_text().replace(
        "  gpu-burst:gpu:\n", "  gpu-burst:gpu:\n    amiFamily: bottlerocket\n    amiVersion: v1.64.0\n"))
    brcfg = pf.load_stack(br)
    brpath = f"/aws/service/bottlerocket/aws-k8s-{brcfg.cluster.kubernetes_version}-nvidia/x86_64/1.64.0/image_id"
    got = pf.check_ami(clients(None, ssm_client({brpath: ("ParameterNotFound", 400)})), brcfg)[0]
    assert got.status == "fail" and got.name == "ami bottlerocket@v1.64.0 x86_64" and brpath in got.detail


# -- the EKS add-on builds -----------------------------------------------------------------------------------------
def test_pinned_addon_builds_are_checked_against_the_regions_published_builds(aws, fixtures: Path, tmp_path: Path):
    from stacks.config.eks_addons import DEFAULT_ADDON_VERSIONS

    cfg = pf.load_stack(fixtures / "Pulumi.dev.yaml")
    got = by_name(pf.check_addon_versions(clients(None), cfg))
    pinned = DEFAULT_ADDON_VERSIONS["1.35"]["coredns"]
    assert got["addon coredns"].status == "pass"
    assert got["addon coredns"].data == {"addon": "coredns", "kubernetes": "1.35", "version": pinned,
                                         "default": pinned, "newest": "v9.9.9-eksbuild.1"}
    # A build the region does not list (withdrawn, or a typo that has the right shape) fails with EKS's default.
    eks = eks_client(answers={"coredns": ["v1.14.3-eksbuild.16", "v1.14.3-eksbuild.20"], "vpc-cni": []})
    got = by_name(pf.check_addon_versions(clients(None, eks=eks), cfg))
    bad = got["addon coredns"]
    assert bad.status == "fail" and f"{pinned} is not published for Kubernetes 1.35 in {REGION}" in bad.detail
    assert "EKS default v1.14.3-eksbuild.16, newest v1.14.3-eksbuild.20" in bad.detail
    assert "pulumi config set --path 'cluster.addonVersions.coredns' v1.14.3-eksbuild.16" in bad.cause
    assert "aws eks describe-addon-versions --addon-name coredns --kubernetes-version 1.35" in bad.cause
    assert got["addon vpc-cni"].status == "fail" and "offers no vpc-cni build" in got["addon vpc-cni"].detail
    assert got["addon kube-proxy"].status == "pass"
    # The question names the stack's Kubernetes version (the stub refuses any other parameters).
    k136 = tmp_path / "Pulumi.k136.yaml"
    k136.write_text((fixtures / "Pulumi.dev.yaml").read_text().replace('kubernetesVersion: "1.35"',
                                                                        'kubernetesVersion: "1.36"'))
    eks = eks_client("1.36")
    assert {c.status for c in pf.check_addon_versions(clients(None, eks=eks), pf.load_stack(k136))} == {"pass"}
    denied = pf.check_addon_versions(clients(None, eks=eks_client(answers={a: "AccessDeniedException" for a in ADDONS})),
                                     cfg)
    assert {c.status for c in denied} == {"fail"} and "allow eks:DescribeAddonVersions" in denied[0].cause


# -- the cluster creator -------------------------------------------------------------------------------------------
def _admins(fixtures: Path, tmp_path: Path, cluster: str) -> object:
    stack = tmp_path / "Pulumi.admins.yaml"
    stack.write_text((fixtures / "Pulumi.dev.yaml").read_text().replace("  gpu-burst:cluster:\n",
                                                                        "  gpu-burst:cluster:\n" + cluster))
    return pf.load_stack(stack)


SSO_ROLE = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/us-west-2/AWSReservedSSO_Admin_1f9ff11932198c00"
SSO_SESSION = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_1f9ff11932198c00/alice@example.com"


def test_caller_listed_as_an_admin_is_reported(aws, fixtures: Path, tmp_path: Path):
    # The SSO role is listed with its path; the session ARN has none. EKS gives the creator its own entry, and refuses
    # the listed one as a duplicate.
    cfg = _admins(fixtures, tmp_path, "    adminPrincipalArns:\n      - arn:aws:iam::123456789012:role/platform\n"
                                      f"      - {SSO_ROLE}\n")
    (check,) = pf.check_cluster_creator(clients(None, sts=sts_client(SSO_SESSION)), cfg)
    assert check.status == "fail"
    assert check.detail.startswith("the caller, role AWSReservedSSO_Admin_1f9ff11932198c00 of 123456789012, is also "
                                   "gpu-burst:cluster.adminPrincipalArns[1]: ")
    assert "ResourceInUseException" in check.detail
    assert check.cause.startswith("remove gpu-burst:cluster.adminPrincipalArns[1] (the creator stays an admin)")
    assert check.data == {"caller": SSO_SESSION, "principal": "arn:aws:iam::123456789012:role/"
                          "AWSReservedSSO_Admin_1f9ff11932198c00", "listed_as": ["cluster.adminPrincipalArns[1]"]}


def test_caller_user_in_access_entries_is_reported_and_others_pass(aws, fixtures: Path, tmp_path: Path):
    user = "arn:aws:iam::123456789012:user/ops/bob"
    cfg = _admins(fixtures, tmp_path, f"    accessEntries:\n      - principalArn: {user}\n"
                                      "        policy: AmazonEKSViewPolicy\n")
    (check,) = pf.check_cluster_creator(clients(None, sts=sts_client(user)), cfg)
    assert check.status == "fail" and check.data["listed_as"] == ["cluster.accessEntries[0].principalArn"]
    # Another user of the same name in another account, a role of the same name, and the root user are not it.
    for caller in ("arn:aws:iam::210987654321:user/bob", "arn:aws:sts::123456789012:assumed-role/bob/s",
                   "arn:aws:iam::123456789012:root"):
        (check,) = pf.check_cluster_creator(clients(None, sts=sts_client(caller)), cfg)
        assert check.status == "pass", caller
    (check,) = pf.check_cluster_creator(clients(None, sts=sts_client(SSO_SESSION)), pf.load_stack(
        fixtures / "Pulumi.dev.yaml"))
    assert check.status == "pass" and check.data["listed_as"] == []


def test_caller_unknown_is_a_failure_that_says_why(aws, fixtures: Path):
    sts = boto3.client("sts", region_name=REGION)
    stub = Stubber(sts)
    stub.add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403)
    stub.activate()
    (check,) = pf.check_cluster_creator(clients(None, sts=sts), pf.load_stack(fixtures / "Pulumi.dev.yaml"))
    assert check.status == "fail" and "ExpiredToken" in check.detail and "aws sso login" in check.cause
