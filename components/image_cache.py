"""An in-region source for the Docker Hub images GPU nodes pull on a cold start: an ECR pull-through cache rule."""

import json
from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired

from ._common import child, token

DOCKER_HUB = "registry-1.docker.io"
"""Upstream registry URL of Docker Hub in a pull-through cache rule (ECR CreatePullThroughCacheRule)."""
_DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


def docker_hub_repository(image: str) -> Optional[str]:
    """The Docker Hub repository of an image reference (`vllm/vllm-openai:v0.33.0` -> `vllm/vllm-openai`,
    `python:3.12` -> `library/python`), or None when the image lives in another registry."""
    name = image.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if first not in _DOCKER_HUB_NAMES:
            return None
        name = rest
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return repo if "/" in repo else f"library/{repo}"


def mirrored(image: str, registry: str, prefix: str) -> str:
    """`image` as pulled through the cache: `<registry>/<prefix>/<docker hub repository>[:tag|@digest]`. Images of
    other registries are returned unchanged."""
    repo = docker_hub_repository(image)
    if repo is None:
        return image
    name = image.split("@", 1)[0]
    suffix = image[len(name):]  # @sha256:...
    last = name.rsplit("/", 1)[-1]
    tag = ":" + last.rsplit(":", 1)[1] if ":" in last else ""
    return f"{registry}/{prefix}/{repo}{tag}{suffix}"


def ecr_registry(account: str, region: str) -> str:
    """The private ECR registry of an account in a region, as image references name it."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def pulled_image(image: str, account: str, region: str, prefix: Optional[str]) -> str:
    """The reference GPU nodes pull for a model's `image`: through the account's pull-through cache under `prefix`
    when there is one (None: the image itself). The model pods and the pre-loaded data-volume snapshot both use
    this, so the snapshot holds exactly the reference the kubelet asks containerd for."""
    return mirrored(image, ecr_registry(account, region), prefix) if prefix else image


def pulled_images(images: list[str], account: str, region: str, prefix: Optional[str]) -> list[str]:
    """:func:`pulled_image` of each image, each reference once, sorted."""
    return sorted({pulled_image(i, account, region, prefix) for i in images})


def node_pull_policy(partition: str, region: str, account: str, prefix: str) -> dict:
    """What the GPU nodes need beyond pulling from ECR: let a pull through the cache import the upstream image and
    create its repository on the first pull (ECR user guide, pull-through-cache-iam), only under the cache prefix."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "PullThroughCacheImport", "Effect": "Allow",
        "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
        "Resource": f"arn:{partition}:ecr:{region}:{account}:repository/{prefix}/*",
    }]}


class ImageCacheArgs(TypedDict):
    """Inputs of ImageCache."""

    credential_arn: pulumi.Input[str]
    """Secrets Manager secret (name starting `ecr-pullthroughcache/`) with Docker Hub credentials: ECR requires an
    authenticated upstream for Docker Hub."""
    node_role_name: pulumi.Input[str]
    """Role of the nodes that pull (the Karpenter node role); gets the import permission on the prefix."""
    repository_prefix: NotRequired[str]
    """ECR repository prefix of the cached images. Default `docker-hub`."""


class ImageCache(pulumi.ComponentResource):
    """ECR pull-through cache for Docker Hub: the first pull of an image in the region fetches it once (through one
    NAT IP, authenticated, so no anonymous rate limit), every later node pulls it from ECR in-region, which also
    serves the HTTP range requests SOCI's parallel pull uses. Rewrite image references with `image_for`."""

    registry: pulumi.Output[str]
    """`<account>.dkr.ecr.<region>.amazonaws.com`."""
    repository_prefix: pulumi.Output[str]
    """Prefix under which the cached repositories appear."""

    def __init__(self, name: str, args: ImageCacheArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("ImageCache"), name, None, opts)
        prefix = args.get("repository_prefix", "docker-hub")
        self.rule = aws.ecr.PullThroughCacheRule(
            f"{name}-rule",
            ecr_repository_prefix=prefix,
            upstream_registry_url=DOCKER_HUB,
            credential_arn=args["credential_arn"],
            opts=child(self),
        )
        identity = aws.get_caller_identity_output()
        region = aws.get_region_output()
        partition = aws.get_partition_output()
        self.node_policy = aws.iam.RolePolicy(
            f"{name}-node-import",
            role=args["node_role_name"],
            policy=pulumi.Output.all(partition.partition, region.region, identity.account_id).apply(
                lambda a: json.dumps(node_pull_policy(a[0], a[1], a[2], prefix))),
            opts=child(self),
        )
        self._account = self.rule.registry_id
        self._region = region.region
        self.registry = pulumi.Output.all(self._account, self._region).apply(lambda a: ecr_registry(a[0], a[1]))
        self.repository_prefix = self.rule.ecr_repository_prefix
        self.register_outputs({"registry": self.registry, "repository_prefix": self.repository_prefix})

    def image_for(self, image: str) -> pulumi.Output[str]:
        """The reference to pull `image` through this cache (unchanged when not a Docker Hub image)."""
        return pulumi.Output.all(self._account, self._region, self.repository_prefix).apply(
            lambda a: pulled_image(image, a[0], a[1], a[2]))
