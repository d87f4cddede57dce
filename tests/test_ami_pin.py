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


# Bottlerocket CHANGELOG: v1.53.0 "Add new kubernetes 1.35 variants" (aws-k8s-1.35-nvidia), v1.61.0 "Add new
# Kubernetes 1.36 variants"; v1.64.0 (2026-07-22) is a later release that carries both.
@pytest.mark.parametrize("stack,alias", [("dev", f"al2023@{AL2023_AMI_VERSION}"), ("prod", "bottlerocket@v1.64.0")])
def test_each_stack_pins_a_release_with_nvidia_images_for_its_kubernetes(mocks, stack, alias):
    evaluate_stack(stack, secrets={"hfToken": "hf_x"})
    (nc,) = mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert nc.inputs["spec"]["amiSelectorTerms"] == [{"alias": alias}]
