"""In-region image source: the ECR pull-through cache rule, the node permission it needs, and the image references
the model pods pull through it."""

import json

import pytest
import test_workload_support as tws
from pulumi_mocks import ACCOUNT, REGION
from test_workload_support import named, run_workload

from components.image_cache import docker_hub_repository, mirrored
from stacks.config import ConfigError, validate

SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/docker-hub-AbCdEf"
REG = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


@pytest.mark.parametrize("image,expected", [
    ("vllm/vllm-openai:v0.33.0", f"{REG}/docker-hub/vllm/vllm-openai:v0.33.0"),
    ("docker.io/vllm/vllm-openai:v0.33.0", f"{REG}/docker-hub/vllm/vllm-openai:v0.33.0"),
    ("python:3.12", f"{REG}/docker-hub/library/python:3.12"),  # official images need library/ (ECR user guide)
    ("vllm/vllm-openai@sha256:" + "a" * 64, f"{REG}/docker-hub/vllm/vllm-openai@sha256:" + "a" * 64),
    ("vllm/vllm-openai:v0.33.0@sha256:" + "b" * 64, f"{REG}/docker-hub/vllm/vllm-openai:v0.33.0@sha256:" + "b" * 64),
    ("public.ecr.aws/docker/library/python:3.12", "public.ecr.aws/docker/library/python:3.12"),
    ("ghcr.io/acme/vllm:1.0", "ghcr.io/acme/vllm:1.0"),
    ("localhost:5000/vllm:1", "localhost:5000/vllm:1"),
])
def test_docker_hub_references_are_rewritten_others_kept(image, expected):
    assert mirrored(image, REG, "docker-hub") == expected


def test_repository_of_references():
    assert docker_hub_repository("registry-1.docker.io/vllm/vllm-openai:v1") == "vllm/vllm-openai"
    assert docker_hub_repository("quay.io/x/y:1") is None


def test_the_cache_rule_grant_and_model_images(mocks, monkeypatch):
    import yaml

    raw = yaml.safe_load((tws.ROOT / "Pulumi.dev.yaml").read_text())["config"]["gpu-burst:gpu"]
    monkeypatch.setattr(tws, "raw_config", lambda stack, **extra: {
        **{k.split(":", 1)[1]: v for k, v in yaml.safe_load((tws.ROOT / f"Pulumi.{stack}.yaml").read_text())[
            "config"].items() if k.startswith("gpu-burst:")},
        "region": REGION, **extra, "gpu": {**raw, "imageCache": {"dockerHubCredentialArn": SECRET}}})
    _, _, cfg = run_workload("dev")
    (rule,) = [r for r in mocks.created if r.typ == "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"]
    assert rule.inputs == {"ecrRepositoryPrefix": "docker-hub", "upstreamRegistryUrl": "registry-1.docker.io",
                           "credentialArn": SECRET}
    (pol,) = [r for r in mocks.created if r.name == "gpu-burst-image-cache-node-import"]
    assert pol.inputs["role"] == "node-role"  # the Foundation's node role name (an Output), not a literal
    assert json.loads(pol.inputs["policy"])["Statement"] == [{
        "Sid": "PullThroughCacheImport", "Effect": "Allow",
        "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
        "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/docker-hub/*"}]
    for m in cfg.models:
        c = named(mocks, "Deployment", m.served_name)["spec"]["template"]["spec"]["containers"][0]
        assert c["image"] == f"{REG}/docker-hub/vllm/vllm-openai:v0.33.0"


def test_without_image_cache_nothing_is_created_and_images_stay(mocks):
    _, _, cfg = run_workload("dev")
    assert [r for r in mocks.created if r.typ.startswith("aws:ecr/")] == []
    c = named(mocks, "Deployment", cfg.models[0].served_name)["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "vllm/vllm-openai:v0.33.0"


@pytest.mark.parametrize("secret", ["arn:aws:secretsmanager:us-west-2:123456789012:secret:dockerhub",
                                    "not-an-arn"])
def test_credentials_must_be_a_pull_through_cache_secret(secret):
    with pytest.raises(ConfigError) as e:
        validate({"environment": "dev", "region": "us-west-2",
                  "gpu": {"imageCache": {"dockerHubCredentialArn": secret}}})
    assert any(line.startswith("gpu-burst:gpu.imageCache.dockerHubCredentialArn:") and "ecr-pullthroughcache/" in line
               for line in e.value.lines), e.value.lines
