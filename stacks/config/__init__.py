"""Typed stack configuration: read every `gpu-burst:*` key once, validate it with pydantic, and hand typed objects
inward. Every problem is reported on one line `gpu-burst:<path>: <message>`, all at once, before any resource
is declared."""

import json
from typing import Any, Literal

import pulumi
from pydantic import Field, ValidationError, model_validator

from .addons import AddonsConfig, HttpAddonConfig, KedaConfig, MonitoringConfig, NvidiaDevicePluginConfig
from .base import Duration, Strict, duration_seconds
from .foundation import (
    SUPPORTED_KUBERNETES_VERSIONS,
    ClusterConfig,
    KarpenterConfig,
    LogType,
    NatGateways,
    NetworkConfig,
    NetworkMode,
    NodeAmi,
    SystemNodesConfig,
)
from .gpu import KNOWN_GPU_FAMILIES, CapacityType, GpuAmiFamily, GpuConfig, GpuPoolConfig
from .models import GatewayConfig, ModelConfig

NAMESPACE = "gpu-burst"
SECRET_KEYS = ("hfToken", "apiKey", "apiKeys")
"""Config keys read as Pulumi secrets (never validated as plaintext, never stored in the typed model)."""

_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"


class StackConfig(Strict):
    """The whole stack. Sections map 1:1 to `gpu-burst:<section>` keys in `Pulumi.<stack>.yaml`."""

    environment: Literal["dev", "staging", "prod"]
    region: str = Field(pattern=_REGION)
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    system_nodes: SystemNodesConfig = SystemNodesConfig()
    karpenter: KarpenterConfig = KarpenterConfig()
    gpu: GpuConfig = GpuConfig()
    addons: AddonsConfig = AddonsConfig()
    models: list[ModelConfig] = []
    gateway: GatewayConfig = GatewayConfig()
    hf_token_set: bool = False
    """Whether `gpu-burst:hfToken` is set; the value itself stays a Pulumi secret outside this model."""
    api_key_names: list[str] = []
    """Names of the keys in `gpu-burst:apiKeys` (the keys themselves stay Pulumi secrets outside this model)."""

    @model_validator(mode="after")
    def _cross(self):
        problems = []
        names = [m.served_name for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"models: servedName must be unique, duplicated: {dup}")
        pools = {p.name: p for p in self.gpu.pools}
        for i, m in enumerate(self.models):
            pool = pools.get(m.pool)
            if pool is None:
                problems.append(f"models[{i}].pool: '{m.pool}' is not a pool; allowed: {sorted(pools)}")
            elif m.gpus > max(pool.gpus_per_node):
                problems.append(
                    f"models[{i}].gpus: {m.gpus} GPUs do not fit on one node of pool '{m.pool}' "
                    f"(gpusPerNode {pool.gpus_per_node})"
                )
            elif m.gpus * max(m.min_replicas, 1) > pool.gpu_limit:
                problems.append(f"models[{i}].gpus: {m.gpus} GPUs exceed pool '{m.pool}' gpuLimit {pool.gpu_limit}")
            if m.needs_hf_token and self.gateway.require_hf_token_for_gated and not self.hf_token_set:
                problems.append(
                    f"models[{i}].needsHfToken: model '{m.hf_model_id}' is gated but gpu-burst:hfToken is not set; "
                    "run `pulumi config set --secret hfToken <token>`"
                )
        if self.karpenter.replicas and self.karpenter.replicas > self.system_nodes.max_size:
            problems.append(
                f"karpenter.replicas: {self.karpenter.replicas} replicas need as many system nodes "
                f"(hostname anti-affinity) but systemNodes.maxSize is {self.system_nodes.max_size}"
            )
        problems += _gateway_problems(self)
        if problems:
            # pydantic prefixes "Value error, "; the loader strips it and splits on the marker.
            raise ValueError(" ;; ".join(problems))
        return self

    @property
    def karpenter_replicas(self) -> int:
        return self.karpenter.replicas or (2 if self.system_nodes.min_size >= 2 else 1)


_KEY_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NLB_MAX_IDLE_SECONDS = 6000
"""tcp.idle_timeout.seconds range of an NLB TCP listener is 60-6000 s (AWS ELB docs network/update-idle-timeout)."""


def _gateway_problems(cfg: "StackConfig") -> list[str]:
    """Cross-section rules of the front door: TLS when public, certificate in the stack's region, key names, and a
    hold budget the NLB can carry."""
    import re

    gw, out = cfg.gateway, []
    if gw.public and not gw.certificate_arn:
        out.append("gateway.public: an internet-facing endpoint without TLS would send API keys in clear text; "
                   "set gateway.certificateArn (an ACM certificate) or public: false")
    cert_region = gw.certificate_region()
    if cert_region and cert_region != cfg.region:
        out.append(f"gateway.certificateArn: the certificate is in {cert_region}, the NLB in {cfg.region}; "
                   f"use an ACM certificate from {cfg.region}")
    bad = [n for n in cfg.api_key_names if not re.match(_KEY_NAME, n) or len(n) > 63]
    if bad:
        out.append(f"apiKeys: key names {bad} are not allowed; use lowercase letters, digits and '-' "
                   "(the name is a Secret data key and a metric label)")
    known = set(cfg.api_key_names) or {"default"}
    unknown = sorted(set(gw.key_requests_per_minute) - known)
    if unknown:
        out.append(f"gateway.keyRequestsPerMinute: {unknown} are not keys of gpu-burst:apiKeys; "
                   f"allowed: {sorted(known)}")
    h = cfg.addons.http_addon
    silence = duration_seconds(h.readiness_timeout) + duration_seconds(h.response_header_timeout) + 60
    if not gw.certificate_arn and silence > NLB_MAX_IDLE_SECONDS:
        out.append(f"addons.httpAddon.readinessTimeout: readinessTimeout + responseHeaderTimeout + 60s "
                   f"({int(silence)}s) exceed the NLB idle timeout limit; allowed: at most {NLB_MAX_IDLE_SECONDS}s")
    return out


class ConfigError(pulumi.RunError):
    """Invalid stack configuration (a RunError, so Pulumi prints the message without a stack trace)."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("invalid stack configuration:\n" + "\n".join(lines))


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_errors(err: ValidationError) -> list[str]:
    """One `gpu-burst:<path>: <message>` line per problem."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] in ("literal_error", "enum"):
            msg = f"{msg} (got {e.get('input')!r})"
        if " ;; " in msg or (not loc and msg):
            for part in msg.split(" ;; "):
                sub, _, text = part.partition(": ")
                lines.append(f"{NAMESPACE}:{sub}: {text}" if text else f"{NAMESPACE}:{_path(loc)}: {part}")
            continue
        lines.append(f"{NAMESPACE}:{_path(loc)}: {msg}")
    return lines


def validate(raw: dict[str, Any]) -> StackConfig:
    """Validate a raw dict of `gpu-burst:*` values (keys without the namespace) plus `region`."""
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e)) from None


def _all_config() -> dict[str, Any]:
    from pulumi.runtime import config as rc

    merged = dict(rc.get_config_env())
    merged.update(rc.CONFIG.get())
    return merged


def raw_from_pulumi() -> dict[str, Any]:
    """Collect the namespace's keys from the running Pulumi program's config (JSON strings are decoded)."""
    raw: dict[str, Any] = {}
    for key, value in _all_config().items():
        ns, _, name = key.partition(":")
        if ns != NAMESPACE or name in SECRET_KEYS:
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass  # plain strings such as `environment: dev`
        raw[name] = value
    raw["region"] = pulumi.Config("aws").get("region") or ""
    raw["hfTokenSet"] = bool(_all_config().get(f"{NAMESPACE}:hfToken"))
    raw["apiKeyNames"] = api_key_names(_all_config().get(f"{NAMESPACE}:apiKeys"))
    return raw


def api_key_names(value: Any) -> list[str]:
    """Names of the keys in `gpu-burst:apiKeys` (a map name → key); the keys are not kept."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return ["<not a map>"]
    return sorted(value) if isinstance(value, dict) else ([] if value is None else ["<not a map>"])


def load() -> StackConfig:
    """Load and validate the stack configuration; raises :class:`ConfigError` listing every problem."""
    raw = raw_from_pulumi()
    if not raw["region"]:
        raise ConfigError(["aws:region: required; run `pulumi config set aws:region us-west-2`"])
    return validate(raw)


__all__ = [
    "AddonsConfig", "CapacityType", "ClusterConfig", "ConfigError", "Duration", "GatewayConfig", "GpuAmiFamily",
    "GpuConfig", "GpuPoolConfig", "HttpAddonConfig", "KNOWN_GPU_FAMILIES", "KarpenterConfig", "KedaConfig", "LogType",
    "ModelConfig", "MonitoringConfig", "NAMESPACE", "NatGateways", "NetworkConfig", "NetworkMode", "NodeAmi",
    "NvidiaDevicePluginConfig", "SECRET_KEYS", "SUPPORTED_KUBERNETES_VERSIONS", "StackConfig", "SystemNodesConfig",
    "duration_seconds", "format_errors", "load", "raw_from_pulumi", "validate",
]
