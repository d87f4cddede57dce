"""AWS Load Balancer Controller under mocks: upstream IAM policy statement for statement, Pod Identity bound to the
chart's service account, pinned chart on the system nodes."""

import json

from pulumi_mocks import ACCOUNT
from test_workload_support import dependency_names, run_workload
from upstream import LBC_IAM_POLICY, load_upstream, needs_upstream

from components.lbc_iam import controller_policy
from components.load_balancer_controller import NAMESPACE, SERVICE_ACCOUNT


def _policy(mocks) -> dict:
    (p,) = [r for r in mocks.of_type("aws:iam/policy:Policy") if r.name == "gpu-burst-lbc-policy"]
    return json.loads(p.inputs["policy"])


@needs_upstream
def test_controller_policy_equals_upstream_iam_policy_statement_for_statement(mocks):
    run_workload("prod")
    upstream = load_upstream(LBC_IAM_POLICY)
    ours = _policy(mocks)
    assert ours["Version"] == upstream["Version"]
    assert len(ours["Statement"]) == len(upstream["Statement"])
    for mine, theirs in zip(ours["Statement"], upstream["Statement"]):
        assert mine == theirs
    assert controller_policy("aws") == upstream


def test_policy_follows_the_partition():
    doc = json.dumps(controller_policy("aws-us-gov"))
    assert "arn:aws:" not in doc and "arn:aws-us-gov:elasticloadbalancing:*:*:targetgroup/*/*" in doc


def test_role_is_assumed_only_through_pod_identity_by_the_charts_service_account(mocks):
    run_workload("prod")
    (role,) = [r for r in mocks.of_type("aws:iam/role:Role") if r.name == "gpu-burst-lbc-role"]
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"] == [{
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity", "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {
            "aws:SourceAccount": ACCOUNT, "aws:RequestTag/eks-cluster-name": "gpu-burst-eks",
            "aws:RequestTag/kubernetes-namespace": NAMESPACE,
            "aws:RequestTag/kubernetes-service-account": SERVICE_ACCOUNT}}}]
    (att,) = [r for r in mocks.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
              if r.name == "gpu-burst-lbc-policy-attach"]
    assert att.inputs["policyArn"] == mocks.state("gpu-burst-lbc-policy")["arn"]
    assoc = mocks.named("gpu-burst-lbc-identity")
    assert (assoc.inputs["namespace"], assoc.inputs["serviceAccount"]) == (NAMESPACE, SERVICE_ACCOUNT)
    assert assoc.inputs["roleArn"] == mocks.state("gpu-burst-lbc-role")["arn"]
    rel = mocks.named("gpu-burst-lbc-release").inputs
    assert rel["namespace"] == NAMESPACE
    assert rel["values"]["serviceAccount"] == {"create": True, "name": assoc.inputs["serviceAccount"]}
    assert rel["values"]["clusterName"] == assoc.inputs["clusterName"] == "gpu-burst-eks"
    assert rel["values"]["region"] == "us-west-2" and rel["values"]["vpcId"] == "vpc-1"
    assert rel["values"]["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
    assert rel["values"]["enableServiceMutatorWebhook"] is False
    assert "gpu-burst-lbc-identity" in dependency_names(mocks, "gpu-burst-lbc-release")
