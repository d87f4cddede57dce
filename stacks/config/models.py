"""Config sections for the inference workload: the models (`gpu-burst:models`) and the gateway (`gpu-burst:gateway`)."""

import re
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from .base import Cidr, Duration, Strict, duration_seconds

VLLM_VERSION = "0.33.0"
"""vLLM release the image pin and every flag/env name below were checked against (the vllm 0.33.0 wheel on PyPI,
which `pip index versions vllm` lists as the newest release; tag v0.33.0 of vllm-project/vllm)."""
VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
"""Pinned vLLM OpenAI-server image. Like 0.29 (torch 2.13) the 0.33 wheel (torch 2.14) links libcudart.so.13, which
needs an NVIDIA driver >= 580 (the AL2023/Bottlerocket NVIDIA AMIs ship 580); use the `-cu129` variant on older
drivers."""
_REVISION = r"^[0-9a-f]{40}$"

_SERVED_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1035 label: the served name also names the Deployment, Service, InterceptorRoute and ScaledObject, so the
PromQL, dashboards and alerts can refer to it without a lookup table."""

MANAGED_FLAGS = ("--model", "--served-model-name", "--port", "--host", "--api-key", "--tensor-parallel-size",
                 "--max-model-len", "--gpu-memory-utilization", "--download-dir")
"""vLLM flags derived from the model's own keys (or kept out of the spec, like the API key); extraArgs may not set them."""


class ModelConfig(Strict):
    """One served model: a vLLM Deployment scaled 0→1 by the HTTP add-on and 1→N by its queue depth."""

    served_name: Annotated[str, Field(max_length=40)]
    """Name clients send as `model` (and in the routing header), the `model_name` label of vLLM's metrics, and the
    Kubernetes name of every object of the model."""
    hf_model_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")]
    revision: Annotated[str, Field(pattern=_REVISION)]
    """Hugging Face commit hash (40 hex digits) of `hfModelId`: what the staging Job copies to the model store and
    what every replica loads, so a scale event months later serves the same weights and tokenizer."""
    runai_concurrency: Annotated[int, Field(ge=1, le=256)] = 32
    """Run:ai Model Streamer reader threads against S3 (`concurrency`); the streamer's benchmark reached its best
    S3 figure at 32 (runai-model-streamer docs/src/benchmarks.md)."""
    runai_memory_limit_gib: Annotated[int, Field(ge=1, le=64)] = 4
    """CPU staging buffer of the streamer (`memory_limit`). Its default is 40 GB, more than the pod's memory limit."""
    image: str = VLLM_IMAGE
    """vLLM image; must carry an explicit version tag or digest (no `:latest`)."""
    gpus: Annotated[int, Field(ge=1, le=8)] = 1
    """GPUs per replica = `--tensor-parallel-size`; must fit on one node of the pool."""
    max_model_len: Annotated[int, Field(ge=256, le=1048576)] = 8192
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.98)] = 0.90
    extra_args: list[str] = []
    min_replicas: Annotated[int, Field(ge=0, le=100)] = 0
    max_replicas: Annotated[int, Field(ge=1, le=100)] = 4
    idle_before_scale_to_zero: Duration = "15m"
    """KEDA cooldownPeriod: how long without traffic before the last replica (and then its GPU node) goes away."""
    target_queue_depth: Annotated[int, Field(ge=1, le=1000)] = 4
    """Requests waiting in vLLM's queue per replica before another replica is added (Prometheus trigger threshold)."""
    target_concurrency: Annotated[int, Field(ge=1, le=10000)] = 64
    """In-flight requests per replica at the interceptor (second 1→N signal, and the route's scaling metric)."""
    pool: Annotated[str, Field(min_length=1)] = "gpu-on-demand"
    needs_hf_token: bool = False
    startup_budget: Duration = "20m"
    """Budget of the startupProbe: GPU node + image pull + weights download/load + compile."""
    drain_timeout: Duration = "2m"
    """preStop delay for in-flight requests (streams) before SIGTERM; terminationGracePeriodSeconds adds 30 s."""
    cpu: Annotated[str, Field(pattern=r"^[0-9]+(m)?$")] = "4"
    memory: Annotated[str, Field(pattern=r"^[0-9]+(Mi|Gi)$")] = "16Gi"
    shm_size: Annotated[str, Field(pattern=r"^[0-9]+(Mi|Gi)$")] = "8Gi"
    cache_size: Annotated[str, Field(pattern=r"^[0-9]+(Mi|Gi)$")] = "60Gi"
    """Size limit (and ephemeral-storage request) of the model cache emptyDir on the GPU node's data volume."""

    @field_validator("served_name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not re.match(_SERVED_NAME, v):
            raise ValueError(
                f"servedName '{v}' must be a DNS label (lowercase letters, digits and '-', starting with a letter, "
                "e.g. 'qwen2-5-1-5b-instruct'): it also names the model's Deployment, Service and route"
            )
        return v

    @field_validator("image")
    @classmethod
    def _pinned(cls, v: str) -> str:
        last = v.rsplit("/", 1)[-1]
        if "@sha256:" not in v and (":" not in last or last.endswith(":latest")):
            raise ValueError(f"image '{v}' is not pinned; use an explicit release tag such as {VLLM_IMAGE}")
        return v

    @field_validator("extra_args")
    @classmethod
    def _managed_flags(cls, v: list[str]) -> list[str]:
        clash = [a for a in v if a.split("=")[0] in MANAGED_FLAGS]
        if clash:
            raise ValueError(f"extraArgs may not set {clash}; these flags are derived from the model's own keys")
        return v

    @model_validator(mode="after")
    def _replicas(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) > maxReplicas ({self.max_replicas})")
        if duration_seconds(self.startup_budget) < 900:
            raise ValueError(f"startupBudget '{self.startup_budget}' cannot cover node + image + weights; use at least 15m")
        if duration_seconds(self.idle_before_scale_to_zero) < 60:
            raise ValueError(
                f"idleBeforeScaleToZero '{self.idle_before_scale_to_zero}' would thrash GPU nodes; use at least 1m"
            )
        if not 10 <= duration_seconds(self.drain_timeout) <= 3600:
            raise ValueError(f"drainTimeout '{self.drain_timeout}' must be between 10s and 1h")
        return self

    # -- derived values used by the components ----------------------------------------------------------------
    @property
    def idle_seconds(self) -> int:
        return int(duration_seconds(self.idle_before_scale_to_zero))

    @property
    def startup_seconds(self) -> int:
        return int(duration_seconds(self.startup_budget))

    @property
    def drain_seconds(self) -> int:
        return int(duration_seconds(self.drain_timeout))


class GatewayConfig(Strict):
    """`gpu-burst:gateway` — how clients reach the interceptor, and where the model services live."""

    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] = "inference"
    """Namespace of the model Deployments, Services, routes and ScaledObjects (created by the stack)."""
    public: bool = False
    """false: internal NLB (reachable from the VPC and peered networks); true: internet-facing NLB."""
    allowed_cidrs: list[Cidr] = []
    """Source CIDRs allowed through the load balancer; empty means the VPC CIDR (internal) or 0.0.0.0/0 (public)."""
    load_balancer_controller: Literal["in-tree", "aws-lbc"] = "in-tree"
    """Who provisions the NLB: the EKS built-in cloud provider (`in-tree`, works on a bare cluster) or the AWS Load
    Balancer Controller (`aws-lbc`, must be installed; IP targets, configurable TCP idle timeout)."""
    idle_timeout_seconds: Annotated[int, Field(ge=60, le=6000)] = 900
    """NLB TCP idle timeout (aws-lbc only; the in-tree NLB keeps AWS's fixed 350 s default)."""
    certificate_arn: Optional[str] = None
    """ACM certificate ARN: when set, the NLB terminates TLS on 443 and the endpoint is https://."""
    model_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = "X-Model"
    """Request header that selects the model at the interceptor (it cannot read the JSON body)."""
    domain: Optional[str] = None
    """Optional DNS zone: each model is also routed by host `<servedName>.<domain>` (you create the wildcard record)."""
    require_hf_token_for_gated: bool = True

    @field_validator("certificate_arn")
    @classmethod
    def _acm(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.match(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+$", v):
            raise ValueError(f"'{v}' is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)")
        return v
