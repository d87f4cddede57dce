"""`sweep` against moto: finds exactly the Karpenter and AWS Load Balancer Controller leftovers of one cluster,
deletes only with --yes, in an order AWS accepts, idempotent."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Iterator

import boto3
import pytest

from burstctl import sweep as sw

REGION = "us-west-2"


@pytest.fixture
def aws(aws_session, monkeypatch, unique) -> Iterator[dict]:
    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    eks = boto3.client("eks", region_name=REGION)  # no cluster of this name: the one that made them is gone
    # No waiting in tests: a delete AWS refuses (still in use) is reported at once.
    monkeypatch.setattr(sw, "RETRY_SECONDS", 0.0)
    monkeypatch.setattr(sw, "RETRY_INTERVAL", 0.0)
    monkeypatch.setattr(sw, "make_clients",
                        lambda region, profile=None, timeout=None: sw.SweepClients(ec2, iam, region, elbv2, eks))
    yield {"ec2": ec2, "iam": iam, "elbv2": elbv2, "eks": eks, "cluster": unique, **_leftovers(ec2, iam, unique),
           **_lbc_leftovers(ec2, elbv2, unique)}


def _clients(aws: dict) -> sw.SweepClients:
    return sw.SweepClients(aws["ec2"], aws["iam"], REGION, aws["elbv2"])


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


def _lbc_leftovers(ec2, elbv2, cluster: str) -> dict:
    """What the LBC v3.5.0 makes for one LoadBalancer Service, tagged as it tags them (pkg/deploy/tracking/provider.go,
    pkg/networking/backend_sg_provider.go), plus look-alikes that must survive."""
    stack = "envoy-gateway-system/gpu-burst-edge-nlb-1a2b3c4"
    svc = {"elbv2.k8s.aws/cluster": cluster, "service.k8s.aws/stack": stack}
    # Names as the LBC builds them: k8s-<namespace:8>-<name:8>-<hash:10>, k8s-traffic-<cluster>-<hash:10>.
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:10]
    lbc_name = f"k8s-envoygat-gpuburst-{digest}"
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]

    def sg(name: str, tags: dict[str, str]) -> str:
        return ec2.create_security_group(GroupName=name, Description="[k8s] test", VpcId=vpc,
                                         TagSpecifications=_tags("security-group", tags) if tags else [])["GroupId"]

    frontend = sg(lbc_name, {**svc, "service.k8s.aws/resource": "ManagedLBSecurityGroup"})
    backend = sg(f"k8s-traffic-{re.sub('[^A-Za-z0-9]', '', cluster)}-{digest}",
                 {"elbv2.k8s.aws/cluster": cluster, "elbv2.k8s.aws/resource": "backend-sg"})
    # EKS's cluster group: survives, and loses only the rule that referred to the backend group.
    nodes = sg(f"eks-cluster-sg-{cluster}", {f"kubernetes.io/cluster/{cluster}": "owned"})
    other_backend = sg(f"k8s-traffic-other-{cluster}", {"elbv2.k8s.aws/cluster": f"other-{cluster}",
                                                        "elbv2.k8s.aws/resource": "backend-sg"})
    cluster_only = sg(f"tagged-not-lbc-{cluster}", {"elbv2.k8s.aws/cluster": cluster})
    # The LBC lets the NLB reach the Envoy pods through the nodes' group (pkg/networking/networking_manager.go).
    ec2.authorize_security_group_ingress(GroupId=nodes, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 10080, "ToPort": 10080,
         "UserIdGroupPairs": [{"GroupId": backend, "Description": "elbv2.k8s.aws/targetGroupBinding=shared"}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.40.0.0/16"}]}])

    def lb(name: str, tags: dict[str, str]) -> str:
        return elbv2.create_load_balancer(Name=name, Subnets=[subnet], Type="network", Scheme="internal",
                                          SecurityGroups=[frontend], **({"Tags": _elb_tags(tags)} if tags else {})
                                          )["LoadBalancers"][0]["LoadBalancerArn"]

    def tg(name: str, tags: dict[str, str]) -> str:
        return elbv2.create_target_group(Name=name, Protocol="TCP", Port=10080, VpcId=vpc, TargetType="ip",
                                         **({"Tags": _elb_tags(tags)} if tags else {}))["TargetGroups"][0]["TargetGroupArn"]

    nlb = lb(lbc_name, svc)
    target_group = tg(lbc_name, {**svc, "service.k8s.aws/resource": f"{stack}:80"})
    # The listener holds the target group: deleting it before the load balancer is refused (ResourceInUse).
    elbv2.create_listener(LoadBalancerArn=nlb, Protocol="TCP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}])
    decoy_lbs = [lb(f"other-{cluster}", {**svc, "elbv2.k8s.aws/cluster": f"other-{cluster}"}),
                 lb(f"untagged-{cluster}", {}), lb(f"only-cluster-{cluster}", {"elbv2.k8s.aws/cluster": cluster})]
    decoy_tgs = [tg(f"other-{cluster}", {**svc, "elbv2.k8s.aws/cluster": f"other-{cluster}"}),
                 tg(f"untagged-{cluster}", {})]
    return {"nlb": nlb, "target_group": target_group, "lbc_sgs": [frontend, backend], "nodes_sg": nodes,
            "decoy_sgs": [nodes, other_backend, cluster_only], "decoy_lbs": decoy_lbs, "decoy_tgs": decoy_tgs}


def _elb_tags(tags: dict[str, str]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _groups(aws: dict, ids: list[str]) -> set[str]:
    return {g["GroupId"] for g in aws["ec2"].describe_security_groups(
        Filters=[{"Name": "group-id", "Values": ids}])["SecurityGroups"]}


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
    found = sw.find(_clients(aws), aws["cluster"])
    assert sorted(x.id for x in found if x.kind == "instance") == sorted(aws["nodes"])
    assert [x.id for x in found if x.kind == "launch-template"] == [aws["lt"]]
    assert sorted(x.id for x in found if x.kind == "instance-profile") == sorted(aws["profiles"])
    assert all(x.action == "found" for x in found)


def test_find_only_this_clusters_load_balancer_controller_resources(aws):
    found = sw.find(_clients(aws), aws["cluster"])
    assert [x.id for x in found if x.kind == "load-balancer"] == [aws["nlb"]]
    assert [x.id for x in found if x.kind == "target-group"] == [aws["target_group"]]
    assert sorted(x.id for x in found if x.kind == "security-group") == sorted(aws["lbc_sgs"])
    stack = "service envoy-gateway-system/gpu-burst-edge-nlb-1a2b3c4"
    details = {x.id: x.detail for x in found}
    assert details[aws["target_group"]] == f"TCP:10080 ip for {stack}"
    assert details[aws["lbc_sgs"][0]].endswith(f"for {stack}")
    assert details[aws["lbc_sgs"][1]].endswith("for shared backend")
    # Listed in the order they are deleted: load balancers first, security groups last.
    assert [x.kind for x in found] == sorted((x.kind for x in found), key=sw.KINDS.index)


def test_dry_run_deletes_nothing(aws, invoke):
    r = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--json")
    assert r.exit_code == 1  # leftovers remain
    doc = json.loads(r.stdout)
    assert doc["dry_run"] is True and doc["found"] == 9 and doc["errors"] == 0
    assert {x["kind"] for x in doc["leftovers"]} == {"instance", "launch-template", "instance-profile",
                                                     "load-balancer", "target-group", "security-group"}
    assert set(doc["leftovers"][0]) == {"kind", "id", "name", "detail", "action"}
    assert _state(aws["ec2"], aws["nodes"]) == {"running"}
    assert len(_templates(aws)) == 2
    assert len(_profiles(aws)) == 3
    assert aws["elbv2"].describe_load_balancers(LoadBalancerArns=[aws["nlb"]])["LoadBalancers"]
    assert _groups(aws, aws["lbc_sgs"]) == set(aws["lbc_sgs"])
    table = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION)
    assert table.exit_code == 1 and "would delete" in table.stdout and "--yes" in table.stdout


def test_yes_deletes_and_second_run_is_clean(aws, invoke):
    r = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--yes", "--json")
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    assert doc["found"] == 9 and {x["action"] for x in doc["leftovers"]} == {"deleted"}
    ec2, iam, elbv2 = aws["ec2"], aws["iam"], aws["elbv2"]
    live_lbs = {lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]}
    assert aws["nlb"] not in live_lbs and set(aws["decoy_lbs"]) <= live_lbs
    live_tgs = {tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]}
    assert aws["target_group"] not in live_tgs and set(aws["decoy_tgs"]) <= live_tgs
    assert _groups(aws, aws["lbc_sgs"] + aws["decoy_sgs"]) == set(aws["decoy_sgs"])
    # The nodes' group keeps its own rules; only the one that referred to the deleted backend group is gone.
    (nodes,) = ec2.describe_security_groups(GroupIds=[aws["nodes_sg"]])["SecurityGroups"]
    assert [(p["FromPort"], p["UserIdGroupPairs"]) for p in nodes["IpPermissions"]] == [(443, [])]
    (backend,) = [x for x in doc["leftovers"] if x["id"] == aws["lbc_sgs"][1]]
    assert backend["detail"].endswith("1 rule(s) of other groups referring to it removed")
    assert _state(ec2, aws["nodes"]) <= {"shutting-down", "terminated"}
    assert _state(ec2, aws["system"] + aws["other"]) == {"running"}
    assert [t["LaunchTemplateId"] for t in _templates(aws)] == [aws["pulumi_lt"]]
    assert [p["InstanceProfileName"] for p in _profiles(aws)] == [aws["unrelated"]]
    assert iam.get_role(RoleName=f"{aws['cluster']}-karpenter-node")  # the role itself belongs to Pulumi
    again = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--yes")
    assert again.exit_code == 0 and "nothing left behind" in again.stdout


def test_yes_refuses_while_the_cluster_runs_unless_forced(aws, invoke):
    aws["eks"].create_cluster(name=aws["cluster"], roleArn="arn:aws:iam::123456789012:role/eks-cluster",
                              resourcesVpcConfig={"subnetIds": []})
    assert aws["eks"].describe_cluster(name=aws["cluster"])["cluster"]["status"] == "ACTIVE"
    r = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--yes", "--json")
    assert r.exit_code == 2 and "ACTIVE" in r.stderr and "--force" in r.stderr, r.stdout + r.stderr
    assert aws["elbv2"].describe_load_balancers(LoadBalancerArns=[aws["nlb"]])["LoadBalancers"]
    assert _state(aws["ec2"], aws["nodes"]) == {"running"}
    report = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--json")
    assert report.exit_code == 1 and json.loads(report.stdout)["found"] == 9  # a report is never refused
    forced = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--yes", "--force", "--json")
    assert forced.exit_code == 0 and {x["action"] for x in json.loads(forced.stdout)["leftovers"]} == {"deleted"}


def test_delete_tolerates_already_gone(aws):
    c = _clients(aws)
    found = sw.find(c, aws["cluster"])
    aws["ec2"].delete_security_group(GroupId=aws["lbc_sgs"][0])
    aws["iam"].remove_role_from_instance_profile(InstanceProfileName=aws["profiles"][0],
                                                 RoleName=f"{aws['cluster']}-karpenter-node")
    aws["iam"].delete_instance_profile(InstanceProfileName=aws["profiles"][0])
    aws["ec2"].delete_launch_template(LaunchTemplateId=aws["lt"])
    actions = {x.id: x.action for x in sw.delete(c, found)}
    assert actions[aws["profiles"][0]] == "already gone" and actions[aws["lt"]] == "already gone"
    assert actions[aws["lbc_sgs"][0]] == "already gone"
    assert actions[aws["profiles"][1]] == "deleted" and actions[aws["lbc_sgs"][1]] == "deleted"


class _StillInUse:
    """An EC2 client whose DeleteSecurityGroup answers DependencyViolation the first `times` calls, as AWS does while
    a deleted NLB's network interfaces still hold its security group."""

    def __init__(self, ec2, times: int):
        self._ec2, self.left, self.calls = ec2, times, 0

    def __getattr__(self, name):
        return getattr(self._ec2, name)

    def delete_security_group(self, **kw):
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise ClientError({"Error": {"Code": "DependencyViolation", "Message": "resource sg has a dependent "
                                         "object"}}, "DeleteSecurityGroup")
        return self._ec2.delete_security_group(**kw)


def test_security_groups_still_in_use_are_retried(aws, monkeypatch):
    monkeypatch.setattr(sw, "RETRY_SECONDS", 60.0)
    monkeypatch.setattr(sw.time, "sleep", lambda s: None)
    ec2 = _StillInUse(aws["ec2"], times=3)
    c = sw.SweepClients(ec2, aws["iam"], REGION, aws["elbv2"])
    notes = []
    done = sw.delete(c, [x for x in sw.find(c, aws["cluster"]) if x.kind == "security-group"],
                     progress=lambda item, note: notes.append(note))
    assert [x.action for x in done] == ["deleted", "deleted"] and ec2.calls == 5
    assert notes.count("DependencyViolation, retrying") == 3
    assert _groups(aws, aws["lbc_sgs"]) == set()


def test_a_security_group_still_in_use_after_the_wait_is_an_error(aws, monkeypatch, invoke):
    ec2 = _StillInUse(aws["ec2"], times=1000)
    monkeypatch.setattr(sw, "make_clients", lambda region, profile=None, timeout=None: sw.SweepClients(
        ec2, aws["iam"], region, aws["elbv2"]))
    r = invoke("sweep", "--cluster-name", aws["cluster"], "--region", REGION, "--yes", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["errors"] == 2
    assert {x["action"] for x in doc["leftovers"] if x["kind"] == "security-group"} == {"error: DependencyViolation"}
    assert {x["action"] for x in doc["leftovers"] if x["kind"] != "security-group"} == {"deleted"}
    assert _groups(aws, aws["lbc_sgs"]) == set(aws["lbc_sgs"])


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
                                                 aws_secret_access_key="y"), REGION,
                               boto3.client("elbv2", region_name=REGION, aws_access_key_id="x",
                                            aws_secret_access_key="y"))

    for code, status, says, never in (("Unavailable", 503, "retry", "allow"),
                                      ("UnauthorizedOperation", 403, "allow ec2:DescribeInstances", "retry"),
                                      ("AuthFailure", 401, "credentials were not accepted", "allow")):
        monkeypatch.setattr(sw, "make_clients", lambda region, profile=None, timeout=None, c=clients(code, status): c)
        r = invoke("sweep", "--cluster-name", "c", "--region", REGION, "--json")
        doc = json.loads(r.stdout)
        assert r.exit_code == 1 and code in doc["error"] and says in doc["error"] and never not in doc["error"], doc
