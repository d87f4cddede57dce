"""Config of the AWS foundation: values a real AWS API would refuse or that lock everyone out are one-line errors
naming the key, before any resource is declared."""

import pulumi
import pytest

from stacks.config import ConfigError, validate

BASE = {"environment": "dev", "region": "us-west-2"}


def errors(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate({**BASE, **raw})
    assert isinstance(e.value, pulumi.RunError)
    return e.value.lines


@pytest.mark.parametrize("cidr", ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "10.0.0.0/8",
                                  "192.168.1.0/24", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16"])
def test_public_endpoint_refuses_documentation_and_private_ranges(cidr):
    (line,) = errors({"cluster": {"publicAccessCidrs": ["52.94.76.0/22", cidr]}})
    assert line.startswith(f"gpu-burst:cluster.publicAccessCidrs[1]: '{cidr}' is a private, documentation or "
                           "otherwise reserved range")


def test_public_endpoint_accepts_public_ranges_and_the_default():
    assert validate({**BASE, "cluster": {"publicAccessCidrs": ["52.94.76.0/22"]}}).cluster.public_access_cidrs == [
        "52.94.76.0/22"]
    assert validate(BASE).cluster.public_access_cidrs == ["0.0.0.0/0"]


def test_assumed_role_session_arn_gets_the_role_arn_to_use():
    (line,) = errors({"cluster": {"adminPrincipalArns": [
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123abcd/alice@example.com"]}})
    assert line.startswith("gpu-burst:cluster.adminPrincipalArns[0]: ")
    assert "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123abcd" in line


@pytest.mark.parametrize("arn", [
    "arn:aws:iam::123456789012:group/admins", "arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:root",
    "arn:aws:eks:us-west-2:123456789012:cluster/x", "arn:aws:iam::123456789012:role/",
])
def test_only_iam_roles_and_users_are_principals(arn):
    (line,) = errors({"cluster": {"accessEntries": [{"principalArn": arn}]}})
    assert line.startswith("gpu-burst:cluster.accessEntries[0].principalArn: ")
    assert "arn:<partition>:iam::<12-digit account>:role/<name>" in line


@pytest.mark.parametrize("arn", ["arn:aws:iam::123456789012:role/ci/gpu-burst-preview",
                                 "arn:aws-us-gov:iam::123456789012:user/alice", "arn:aws-cn:iam::123456789012:role/x"])
def test_role_and_user_arns_in_every_partition_are_accepted(arn):
    assert validate({**BASE, "cluster": {"adminPrincipalArns": [arn]}}).cluster.admin_principal_arns == [arn]


def test_access_entry_policy_and_scope_are_typed():
    (line,) = errors({"cluster": {"accessEntries": [
        {"principalArn": "arn:aws:iam::123456789012:role/ci", "policy": "AmazonEKSViewPolicyy"}]}})
    assert line == ("gpu-burst:cluster.accessEntries[0].policy: 'AmazonEKSViewPolicyy' is not allowed; allowed: "
                    "'AmazonEKSClusterAdminPolicy', 'AmazonEKSAdminPolicy', 'AmazonEKSEditPolicy' or 'AmazonEKSViewPolicy'")
    (line,) = errors({"cluster": {"accessEntries": [
        {"principalArn": "arn:aws:iam::123456789012:role/ci", "policy": "AmazonEKSClusterAdminPolicy",
         "namespaces": ["inference"]}]}})
    assert line.startswith("gpu-burst:cluster.accessEntries[0].namespaces: AmazonEKSClusterAdminPolicy is cluster-scoped")


def test_a_principal_has_one_access_entry():
    arn = "arn:aws:iam::123456789012:role/ci"
    (line,) = errors({"cluster": {"adminPrincipalArns": [arn], "accessEntries": [{"principalArn": arn}]}})
    assert line == (f"gpu-burst:cluster: ['{arn}'] listed more than once in adminPrincipalArns/accessEntries; "
                    "allowed: one access entry per principal")


@pytest.mark.parametrize("version", ["1.32", "1.33", "1.34"])
def test_versions_past_standard_support_are_refused(version):
    (line,) = errors({"cluster": {"kubernetesVersion": version}})
    assert line == f"gpu-burst:cluster.kubernetesVersion: '{version}' is not allowed; allowed: '1.35' or '1.36'"


def test_log_retention_must_be_a_cloudwatch_value():
    (line,) = errors({"cluster": {"logRetentionDays": 31}})
    assert line.startswith("gpu-burst:cluster.logRetentionDays: 31 is not a CloudWatch Logs retention; allowed: 1, 3,")


def test_karpenter_controller_requests_are_configurable():
    cfg = validate({**BASE, "karpenter": {"controllerCpu": "750m", "controllerMemory": "900Mi"}})
    assert (cfg.karpenter.controller_cpu, cfg.karpenter.controller_memory) == ("750m", "900Mi")
    (line,) = errors({"karpenter": {"controllerCpu": "lots"}})
    assert line.startswith("gpu-burst:karpenter.controllerCpu: 'lots' is not a CPU amount")
