"""Config sections for the inference workload: the models (`gpu-burst:models`) and the gateway (`gpu-burst:gateway`)."""

import re
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from .base import Cidr, Duration, Strict, duration_seconds

VLLM_IMAGE = "vllm/vllm-openai:v0.29.0"
"""Pinned vLLM OpenAI-server image (release v0.29.0, 2026-09). Its default tag is built against CUDA 13, which needs
an NVIDIA driver >= 580 (AL2023/Bottlerocket NVIDIA AMIs ship 580); use the `-cu129` variant on older drivers."""

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


RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "keda", "monitoring",
                       "envoy-gateway-system", "envoy-ai-gateway-system")
"""Namespaces the stack or its add-ons own (Karpenter and the LBC live in kube-system)."""
_KEY_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_HOSTNAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$"


class GatewayConfig(Strict):
    """`gpu-burst:gateway` — the OpenAI-compatible front door (Envoy Gateway + AI Gateway behind an LBC NLB), and
    the namespace the model services live in."""

    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] = "inference"
    """Namespace of the model Deployments, Services, routes, ScaledObjects and the edge's routes and key Secrets."""
    public: bool = False
    """false: internal NLB (reachable from the VPC and peered networks); true: internet-facing NLB (needs TLS)."""
    allowed_cidrs: list[Cidr] = []
    """Source CIDRs allowed through the load balancer; empty means the VPC CIDR (internal) or 0.0.0.0/0 (public)."""
    certificate_arn: Optional[str] = None
    """ACM certificate ARN (same region as the stack): the NLB terminates TLS on 443 and the endpoint is https://."""
    domain: Optional[str] = None
    """DNS name clients use for the endpoint (you create the record pointing at the NLB), e.g. `llm.example.com`."""
    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 600
    """Requests per minute each API key may send (per Envoy replica); over it: 429 with Retry-After."""
    key_requests_per_minute: dict[str, Annotated[int, Field(ge=1, le=1_000_000)]] = {}
    """Per key name: overrides `requestsPerMinute`."""
    replicas: Optional[Annotated[int, Field(ge=1, le=10)]] = None
    """Replicas of Envoy and the edge controllers; default 2 when systemNodes.minSize >= 2, else 1."""
    require_hf_token_for_gated: bool = True

    @field_validator("namespace")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_NAMESPACES:
            raise ValueError(f"'{v}' is reserved by the stack or its add-ons; use a namespace of its own such as "
                             "'inference' (not one of " + ", ".join(RESERVED_NAMESPACES) + ")")
        return v

    @field_validator("certificate_arn")
    @classmethod
    def _acm(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.match(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+$", v):
            raise ValueError(f"'{v}' is not an ACM certificate ARN; use arn:aws:acm:<region>:<account>:certificate/<id>")
        return v

    @field_validator("domain")
    @classmethod
    def _hostname(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        if "://" in v or "/" in v:
            raise ValueError(f"'{v}' is a URL; give the host name only, e.g. llm.example.com")
        if "*" in v:
            raise ValueError(f"'{v}' is a wildcard; give the one host name clients use, e.g. llm.example.com")
        if not re.match(_HOSTNAME, v):
            raise ValueError(f"'{v}' is not a DNS host name; use lowercase labels separated by dots, e.g. "
                             "llm.example.com")
        return v

    @field_validator("key_requests_per_minute")
    @classmethod
    def _key_names(cls, v: dict) -> dict:
        bad = sorted(k for k in v if not re.match(_KEY_NAME, k))
        if bad:
            raise ValueError(f"key names {bad} are not allowed; use lowercase letters, digits and '-'")
        return v

    def certificate_region(self) -> Optional[str]:
        """Region part of the certificate ARN."""
        return self.certificate_arn.split(":")[3] if self.certificate_arn else None
