"""The GPU AMI is a release that exists for the cluster version, and the SSM parameter Karpenter resolves for it."""

import pytest

from stack_helpers import evaluate_stack
from stacks.config.gpu import AL2023_AMI_VERSION, al2023_ssm_parameter


def test_pinned_release_is_one_with_nvidia_amis_for_the_supported_versions():
    # awslabs/amazon-eks-ami CHANGELOG.md, "AMI Release v20260714": amazon-eks-node-al2023-x86_64-nvidia-1.35-v20260714
    # and ...-1.36-v20260714. (v20260818, pinned before, is not in the release history.)
    assert AL2023_AMI_VERSION == "v20260714"


def test_ssm_parameter_karpenter_resolves_for_the_alias():
    assert al2023_ssm_parameter("1.35", "v20260714") == (
        "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/nvidia/"
        "amazon-eks-node-al2023-x86_64-nvidia-1.35-v20260714/image_id")
    assert al2023_ssm_parameter("1.36", "v20260714", "arm64").endswith(
        "/arm64/nvidia/amazon-eks-node-al2023-arm64-nvidia-1.36-v20260714/image_id")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_pin_that_release(mocks, stack):
    evaluate_stack(stack, secrets={"hfToken": "hf_x"})
    (nc,) = mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert nc.inputs["spec"]["amiSelectorTerms"] == [{"alias": f"al2023@{AL2023_AMI_VERSION}"}]
