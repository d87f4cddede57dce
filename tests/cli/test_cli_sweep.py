"""`sweep` against moto: finds exactly Karpenter's leftovers of one cluster, deletes only with --yes, idempotent."""

from __future__ import annotations

import json
from typing import Iterator

import boto3
import pytest

from burstctl import sweep as sw

REGION = "us-west-2"


@pytest.fixture
def aws(aws_session, monkeypatch, unique) -> Iterator[dict]:
    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    monkeypatch.setattr(sw, "make_clients", lambda region, profile=None, timeout=None: sw.SweepClients(ec2, iam, region))
    yield {"ec2": ec2, "iam": iam, "cluster": unique, **_leftovers(ec2, iam, unique)}


def _tags(resource: str, tags: dict[str, str]) -> list[dict]:
    return [{"ResourceType": resource, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def _leftovers(ec2, iam, cluster: str) -> dict:
    """Two Karpenter nodes of the cluster plus look-alikes that must survive."""
    ami = "ami-12c6146b"  # moto accepts any id; listing its catalogue costs seconds
    karpenter = {f"kubernetes.io/cluster/{cluster}": "owned", "karpenter.sh/nodepool": "gpu-on-demand",
                 "karpenter.k8s.aws/ec2nodeclass": "gpu", "Name": "gpu-on-demand-7xk2p"}

    def run(tags: dict[str, str], n: int = 1) -> list[str]:
        got = ec2.run_instances(ImageId=ami, MinCount=n, MaxCount=n, InstanceType="g6.xlarge",
                                TagSpecifications=_tags("instance", tags))
        return [i["InstanceId"] for i in got["Instances"]]

    nodes = run(karpenter, 2)
    system = run({f"kubernetes.io/cluster/{cluster}": "owned", "eks:nodegroup-name": "system"})  # not Karpenter's
    other = run({**karpenter, f"kubernetes.io/cluster/{cluster}": "x", "kubernetes.io/cluster/other": "owned"})
    gone = run(karpenter)
    ec2.terminate_instances(InstanceIds=gone)

    lt_tags = {f"kubernetes.io/cluster/{cluster}": "owned", "karpenter.k8s.aws/cluster": cluster,
               "karpenter.k8s.aws/ec2nodeclass": "gpu"}
    lt = ec2.create_launch_template(LaunchTemplateName=f"karpenter.k8s.aws/{cluster}",
                                    LaunchTemplateData={"ImageId": ami},
                                    TagSpecifications=_tags("launch-template", lt_tags))["LaunchTemplate"]
    pulumi_lt = ec2.create_launch_template(LaunchTemplateName=f"{cluster}-system-nodes", LaunchTemplateData={"ImageId": ami},
                                           TagSpecifications=_tags("launch-template",
                                                                   {f"kubernetes.io/cluster/{cluster}": "owned"}))

    iam.create_role(RoleName=f"{cluster}-karpenter-node", AssumeRolePolicyDocument="{}")
    by_path = f"{cluster}_123456789"
    iam.create_instance_profile(InstanceProfileName=by_path, Path=f"/karpenter/{REGION}/{cluster}/8a1c/")
    iam.add_role_to_instance_profile(InstanceProfileName=by_path, RoleName=f"{cluster}-karpenter-node")
    by_tag = f"{cluster}-legacy-karpenter-profile"
    iam.create_instance_profile(InstanceProfileName=by_tag, Tags=[
        {"Key": "karpenter.k8s.aws/ec2nodeclass", "Value": "gpu"},
        {"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"}])
    iam.create_instance_profile(InstanceProfileName=f"{cluster}-unrelated", Path=f"/karpenter/{REGION}/other-{cluster}/1/")
    return {"nodes": nodes, "unrelated": f"{cluster}-unrelated", "system": system, "other": other, "lt": lt["LaunchTemplateId"],
            "pulumi_lt": pulumi_lt["LaunchTemplate"]["LaunchTemplateId"], "profiles": [by_path, by_tag]}


def _templates(aws: dict) -> list[dict]:
    return [t for t in aws["ec2"].describe_launch_templates()["LaunchTemplates"]
            if aws["cluster"] in t["LaunchTemplateName"]]


def _profiles(aws: dict) -> list[dict]:
    return [p for p in aws["iam"].list_instance_profiles()["InstanceProfiles"]
            if aws["cluster"] in p["InstanceProfileName"] + p["Path"]]


def _state(ec2, ids: list[str]) -> set[str]:
    got = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    return {i["State"]["Name"] for r in got for i in r["Instances"]}


def test_find_only_this_clusters_karpenter_resources(aws):
    found = sw.find(sw.SweepClients(aws["ec2"], aws["iam"], REGION), aws["cluster"])
    assert sorted(x.id for x in found if x.kind == "instance") == sorted(aws["nodes"])
    assert [x.id for x in found if x.kind == "launch-template"] == [aws["lt"]]
    assert sorted(x.id for x in found if x.kind == "instance-profile") == sorted(aws["profiles"])
    assert all(x.action == "found" for x in found)


def test_dry_run_deletes_nothing(aws, invoke):
    r = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--json")
    assert r.exit_code == 1  # leftovers remain
    doc = json.loads(r.stdout)
    assert doc["dry_run"] is True and doc["found"] == 5 and doc["errors"] == 0
    assert {x["kind"] for x in doc["leftovers"]} == {"instance", "launch-template", "instance-profile"}
    assert set(doc["leftovers"][0]) == {"kind", "id", "name", "detail", "action"}
    assert _state(aws["ec2"], aws["nodes"]) == {"running"}
    assert len(_templates(aws)) == 2
    assert len(_profiles(aws)) == 3
    table = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION)
    assert table.exit_code == 1 and "would delete" in table.stdout and "--yes" in table.stdout


def test_yes_deletes_and_second_run_is_clean(aws, invoke):
    r = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--yes", "--json")
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    assert doc["found"] == 5 and {x["action"] for x in doc["leftovers"]} == {"deleted"}
    ec2, iam = aws["ec2"], aws["iam"]
    assert _state(ec2, aws["nodes"]) <= {"shutting-down", "terminated"}
    assert _state(ec2, aws["system"] + aws["other"]) == {"running"}
    assert [t["LaunchTemplateId"] for t in _templates(aws)] == [aws["pulumi_lt"]]
    assert [p["InstanceProfileName"] for p in _profiles(aws)] == [aws["unrelated"]]
    assert iam.get_role(RoleName=f"{aws['cluster']}-karpenter-node")  # the role itself belongs to Pulumi
    again = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--yes")
    assert again.exit_code == 0 and "nothing left behind" in again.stdout


def test_delete_tolerates_already_gone(aws):
    c = sw.SweepClients(aws["ec2"], aws["iam"], REGION)
    found = sw.find(c, aws["cluster"])
    aws["iam"].remove_role_from_instance_profile(InstanceProfileName=aws["profiles"][0],
                                                 RoleName=f"{aws['cluster']}-karpenter-node")
    aws["iam"].delete_instance_profile(InstanceProfileName=aws["profiles"][0])
    aws["ec2"].delete_launch_template(LaunchTemplateId=aws["lt"])
    actions = {x.id: x.action for x in sw.delete(c, found)}
    assert actions[aws["profiles"][0]] == "already gone" and actions[aws["lt"]] == "already gone"
    assert actions[aws["profiles"][1]] == "deleted"


def test_bad_cluster_name_exits_2(invoke):
    r = invoke("sweep", "--cluster-name", "bad name*", "--region", REGION)
    assert r.exit_code == 2 and "--cluster-name" in r.stderr
    r = invoke("sweep", "--cluster-name", "burst-dev")
    assert r.exit_code == 2  # --region is required (typer's own usage error)


def test_aws_errors_say_what_they_mean(monkeypatch, invoke):
    from botocore.stub import Stubber

    def clients(code: str, status: int) -> sw.SweepClients:
        ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
        stub = Stubber(ec2)
        stub.add_client_error("describe_instances", service_error_code=code, http_status_code=status)
        stub.activate()
        return sw.SweepClients(ec2, boto3.client("iam", region_name=REGION, aws_access_key_id="x",
                                                 aws_secret_access_key="y"), REGION)

    for code, status, says, never in (("Unavailable", 503, "retry", "allow"),
                                      ("UnauthorizedOperation", 403, "allow ec2:DescribeInstances", "retry"),
                                      ("AuthFailure", 401, "credentials were not accepted", "allow")):
        monkeypatch.setattr(sw, "make_clients", lambda region, profile=None, timeout=None, c=clients(code, status): c)
        r = invoke("sweep", "--cluster-name", "c", "--region", REGION, "--json")
        doc = json.loads(r.stdout)
        assert r.exit_code == 1 and code in doc["error"] and says in doc["error"] and never not in doc["error"], doc
